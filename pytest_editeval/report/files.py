"""The files a run writes at its end: the results JSON, the saved run, the HTML report. Shared by a run in one
process (run/report.py) and the merge of shards (shards.py), so both follow the same rules: a run that is not complete
(Ctrl-C, a -k re-run, a stop) never replaces the results JSON or HTML report of a complete run, a stopped or
empty run never replaces one that holds scored rows (each is written beside it, as NAME.incomplete.EXT), and
only a complete run may become a saved run NAME. Each function returns the summary line that says where the file
went."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pytest_editeval.data.cache import write_atomic


def write_results_json(path: Path, data: bytes, *, stopped: bool, scored: int, complete: bool) -> str:
    """The results JSON, or beside it when the file there must be kept (see the module)."""
    from pytest_editeval.report.runs import describe_results_file

    return _write_or_keep(path, data, "results", describe_results_file(path), stopped=stopped, scored=scored,
                          complete=complete)


def _write_or_keep(path: Path, data: bytes, what: str, existing: tuple[bool, int], *, stopped: bool, scored: int,
                   complete: bool) -> str:
    """Write `data` to `path`, unless the file there (`existing`: it is a complete run, it holds N scored rows)
    must not be replaced by this run: then beside it, with one line that says where and why."""
    from pytest_editeval.report.runs import incomplete_path

    was_complete, kept = existing
    reason = None
    if was_complete and not complete:
        reason = f"it holds {kept} scored rows of a complete run and this run is incomplete"
    elif kept and (stopped or scored == 0):
        reason = f"it holds {kept} scored rows and this run {'stopped' if stopped else 'scored none'}"
    if reason is None:
        write_atomic(path, data)
        return f"{what} written to {path}"
    target = incomplete_path(path)
    write_atomic(target, data)
    return f"{what} written to {target}; {path} kept as it was ({reason})"


def save_run(rootpath: Path, name: str, data: bytes, *, complete: bool) -> str:
    """--editeval-save NAME: only a complete run may become NAME (a baseline); another is NAME.incomplete."""
    from pytest_editeval.report.runs import INCOMPLETE_SUFFIX, run_path

    if complete:
        path = run_path(rootpath, name)
        write_atomic(path, data)
        return f"run saved as {name} ({path})"
    path = run_path(rootpath, name + INCOMPLETE_SUFFIX)
    write_atomic(path, data)
    return (f"run NOT saved as {name}, because it is incomplete; saved as {name}{INCOMPLETE_SUFFIX} ({path}), and "
            f"{name} is left as it was")


def write_html(path: Path, results, benchmark, baseline, read_source: Callable[[str], bytes], max_pixels: int,
               edited_path: Callable | None = None, source_path: Callable[[str], Path | None] | None = None, *,
               stopped: bool = False) -> str:
    """The self-contained HTML report; `read_source(row id)` gives a row's first input image, `edited_path(sample)`
    where its edited image is (default: the path the sample records), `source_path(row id)` the input image's file
    where the dataset keeps it as one (full-size links)."""
    from pytest_editeval.report.html import describe_report, full_size_links, render_report, thumbnails

    if edited_path is not None:  # located once: a locator may count what it cannot find
        located = {sample.id: edited_path(sample) for sample in results.samples}
        edited_path = lambda sample: located[sample.id]  # noqa: E731
    thumbs = thumbnails(results.samples, read_source, max_pixels, edited_path)
    links = full_size_links(results.samples, Path(path).parent, edited_path, source_path)
    scored = sum(1 for s in results.samples if s.status == "scored")
    return _write_or_keep(path, render_report(results, benchmark, baseline, thumbs, links).encode("utf-8"),
                          "HTML report", describe_report(path), stopped=stopped, scored=scored,
                          complete=results.complete)
