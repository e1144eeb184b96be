"""The files a run writes at its end: the results JSON, the saved run, the HTML report. Shared by a run in one
process (run.py) and the merge of shards (shards.py), so both follow the same rules: a stopped or empty run
never replaces a results file that holds scored rows, and only a complete run may become a saved run NAME.
Each function returns the summary line that says where the file went."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..cache import write_atomic


def write_results_json(path: Path, data: bytes, *, stopped: bool, scored: int) -> str:
    """The results JSON; a run that stopped, or scored nothing, never replaces a file holding scored rows."""
    from ..runs import holds_scored_rows, incomplete_path

    kept = holds_scored_rows(path) if (stopped or scored == 0) else 0
    if kept:
        target = incomplete_path(path)
        write_atomic(target, data)
        return (f"results written to {target}; {path} kept as it was (it holds {kept} scored rows and this run is "
                "incomplete)")
    write_atomic(path, data)
    return f"results written to {path}"


def save_run(rootpath: Path, name: str, data: bytes, *, complete: bool) -> str:
    """--editeval-save NAME: only a complete run may become NAME (a baseline); another is NAME.incomplete."""
    from ..runs import INCOMPLETE_SUFFIX, run_path

    if complete:
        path = run_path(rootpath, name)
        write_atomic(path, data)
        return f"run saved as {name} ({path})"
    path = run_path(rootpath, name + INCOMPLETE_SUFFIX)
    write_atomic(path, data)
    return (f"run NOT saved as {name}, because it is incomplete; saved as {name}{INCOMPLETE_SUFFIX} ({path}), and "
            f"{name} is left as it was")


def write_html(path: Path, results, benchmark, baseline, read_source: Callable[[str], bytes], max_pixels: int,
               edited_path: Callable | None = None, source_path: Callable[[str], Path | None] | None = None) -> str:
    """The self-contained HTML report; `read_source(row id)` gives a row's first input image, `edited_path(sample)`
    where its edited image is (default: the path the sample records), `source_path(row id)` the input image's file
    where the dataset keeps it as one (full-size links)."""
    from .html import full_size_links, render_report, thumbnails

    if edited_path is not None:  # located once: a locator may count what it cannot find
        located = {sample.id: edited_path(sample) for sample in results.samples}
        edited_path = lambda sample: located[sample.id]  # noqa: E731
    thumbs = thumbnails(results.samples, read_source, max_pixels, edited_path)
    links = full_size_links(results.samples, Path(path).parent, edited_path, source_path)
    write_atomic(path, render_report(results, benchmark, baseline, thumbs, links).encode("utf-8"))
    return f"HTML report written to {path}"
