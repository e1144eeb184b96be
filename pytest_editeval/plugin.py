"""pytest entry point (`pytest11: editeval`). Imported in every pytest run of the environment, so it imports
only pytest and the stdlib-only option table; everything else loads when `--editeval-benchmark` is given.
`-p no:editeval` leaves pytest untouched."""

from __future__ import annotations

import pytest

from pytest_editeval.options import table as options

pytest_plugins = ["pytest_editeval.pytest_plugin.fixtures"]


def pytest_addoption(parser) -> None:
    options.register(parser)


def pytest_addhooks(pluginmanager) -> None:
    """The hooks a conftest.py may implement to extend a run (hookspecs.py)."""
    from pytest_editeval import hookspecs
    pluginmanager.add_hookspecs(hookspecs)


@pytest.hookimpl(trylast=True)
def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "editeval(**slice): evaluate a benchmark slice for this test")
    try:
        benchmark = options.value(config, "benchmark")
    except options.IniValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    if benchmark is None:
        given = options.given(config)
        if given:
            from pytest_editeval.pytest_plugin import ignored_options
            ignored_options.install(config, given)
        return
    if not hasattr(config, "workerinput"):  # said once, by the process that prints
        for line in options.deprecation_lines(config):
            config.get_terminal_writer().line(line, yellow=True)
    from pytest_editeval.pytest_plugin.session import EditEvalPlugin  # the heavy part, only for evaluation runs

    EditEvalPlugin.install(config)
