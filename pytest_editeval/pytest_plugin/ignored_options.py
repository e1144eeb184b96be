"""editeval options given to a run that evaluates nothing: without --editeval-benchmark and without a test
marked @pytest.mark.editeval, they would be ignored in silence (a typo'd benchmark option in a CI script, an
ini file copied from another project). Set in an ini file (a repository whose other tests run without a
benchmark), one warning line says so at the end of the run. Given on the command line, a gate option is a usage
error: a CI line that forgot --editeval-benchmark would otherwise pass a gate that never ran."""

from __future__ import annotations

import pytest

from pytest_editeval.options import table as options

# Gate options no marked test reads (a slice is asserted in its own test): an error at once, on the command line.
GATE_OPTIONS = ("threshold", "compare-fail")
# Options a marked test does read: an error once collection has found no marked test.
SLICE_OPTIONS = ("images",)


def _usage_line(names: list[str]) -> str:
    return (f"editeval: {', '.join(names)} given without --editeval-benchmark: nothing would be evaluated or gated; "
            "add --editeval-benchmark NAME (or a test marked @pytest.mark.editeval), or drop the option")


class IgnoredOptions:
    def __init__(self, names: list[str], slice_options_on_command_line: list[str]) -> None:
        self.names = names
        self.slice_options = slice_options_on_command_line
        self.marker_seen = False
        self.said = False  # the usage error was raised (and printed by pytest) during collection

    def pytest_collection_modifyitems(self, config, items) -> None:
        self.marker_seen = self.marker_seen or any(item.get_closest_marker("editeval") for item in items)
        if self.slice_options and not self.marker_seen and not hasattr(config, "workerinput"):
            self.said = True
            raise pytest.UsageError(_usage_line(self.slice_options))

    def pytest_runtest_logreport(self, report) -> None:  # under xdist the controller collects nothing itself
        self.marker_seen = self.marker_seen or "editeval" in report.keywords

    def pytest_sessionfinish(self, session) -> None:
        if self._unused_slice_options(session.config):  # xdist: the workers collected, the controller decides
            session.exitstatus = pytest.ExitCode.USAGE_ERROR

    def _unused_slice_options(self, config) -> bool:
        return bool(self.slice_options) and not self.marker_seen and not hasattr(config, "workerinput")

    def pytest_terminal_summary(self, terminalreporter) -> None:
        config = terminalreporter.config
        if self._unused_slice_options(config):
            if not self.said:
                terminalreporter.write_line(_usage_line(self.slice_options), red=True, bold=True)
        elif not self.marker_seen and not hasattr(config, "workerinput"):
            terminalreporter.write_line(
                f"editeval: {', '.join(self.names)} given, but nothing is evaluated: add --editeval-benchmark "
                "(or a test marked @pytest.mark.editeval); they were ignored", yellow=True)


def install(config: pytest.Config, names: list[str]) -> None:
    on_command_line = options.given_on_command_line(config)
    gates = [f"--editeval-{name}" for name in GATE_OPTIONS if f"--editeval-{name}" in on_command_line]
    if gates:
        raise pytest.UsageError(_usage_line(gates))
    slices = [f"--editeval-{name}" for name in SLICE_OPTIONS if f"--editeval-{name}" in on_command_line]
    config.pluginmanager.register(IgnoredOptions(names, slices), "editeval-ignored-options")
