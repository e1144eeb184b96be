"""The benchmark's test items. Each selected row becomes one parametrized item of `test_edit` (parametrized
indirectly through the `editeval_sample` fixture in `pytest_generate_tests`), collected under a virtual module
`editeval_<benchmark>` in the folder pytest was started from, so that fixtures in that folder's conftest.py apply
to these items too; and what the plugin reads off its items (their row) and writes on their reports."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from pytest_editeval.data.dataset import Row
from pytest_editeval.errors import UnreadableMetricsWarning


def test_edit(editeval_verdict):
    """A low score does not fail the row (the gate judges scores); an error does, with its reason. A row scored
    without some metrics (the judge never answered them readably) passes with one warning naming them."""
    from pytest_editeval.data.paths import printable  # ids and reasons come from the dataset and the judge: never raw on a terminal

    if editeval_verdict.status == "missing":
        pytest.skip(printable(editeval_verdict.error or ""))
    if editeval_verdict.status == "error":
        pytest.fail(f"{printable(editeval_verdict.id)}: {printable(editeval_verdict.error)}", pytrace=False)
    lost = editeval_verdict.unreadable_metrics()
    if lost:
        why = "; ".join(editeval_verdict.unreadable_reasons())
        warnings.warn(UnreadableMetricsWarning(
            f"{printable(editeval_verdict.id)}: {', '.join(lost)} unreadable after the re-asks, missing for this row only (its "
            f"other metrics count){f': {printable(why)}' if why else ''}"), stacklevel=1)


def benchmark_module(parent, path: Path) -> pytest.Module:
    """A module collector at a virtual path whose object is this module: its items are ordinary Functions
    (fixtures, marks, -k, --lf and xdist all work). `obj` is set through pytest's public setter, so nothing is
    imported from `path`."""
    import importlib

    module = pytest.Module.from_parent(parent, path=path)
    module.obj = importlib.import_module(__name__)  # (re)imported: pytester's in-process runs drop new modules
    return module


def row_of(item: pytest.Item) -> Row | None:
    """The row of one of the plugin's own benchmark items (a user's test over editeval_sample is not one)."""
    if getattr(getattr(item, "function", None), "__module__", None) != __name__:
        return None
    callspec = getattr(item, "callspec", None)
    row = callspec.params.get("editeval_sample") if callspec is not None else None
    return row if isinstance(row, Row) else None


def is_default_fixture(session: pytest.Session, item: pytest.Item, name: str) -> bool:
    """Whether the fixture `name` seen by `item` is still the plugin's own (not overridden in a conftest).
    pytest has no public API for "which definition of a fixture does this item see", hence the fixture manager."""
    definitions = session._fixturemanager.getfixturedefs(name, item) or []
    return bool(definitions) and definitions[-1].func.__module__ == "pytest_editeval.pytest_plugin.fixtures"


def junit_properties(verdict, metrics) -> list[tuple[str, object]]:
    props: list[tuple[str, object]] = [("editeval_status", verdict.status)]
    if verdict.status == "scored" and verdict.unreadable_metrics():
        props.append(("editeval_unreadable", ",".join(verdict.unreadable_metrics())))
    for metric in metrics:
        value = verdict.metric(metric.name)
        if value is not None:
            props.append((f"editeval_{metric.name}", f"{value:.6g}"))
    return props


def attach_image_links(report, verdict) -> None:
    """pytest-html: the edited image (and its source, in model mode) as file links, never base64 blobs."""
    from pytest_html import extras

    edited = Path(verdict.edited_image)
    links = [extras.url(edited.resolve().as_uri(), name="edited image")]
    source = edited.with_name(f"{edited.stem}_SRCIMG.png")
    if source.is_file():
        links.append(extras.url(source.resolve().as_uri(), name="source image"))
    report.extras = [*getattr(report, "extras", []), *links]
