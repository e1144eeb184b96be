"""Shards: one run split over the jobs of a CI matrix (`--editeval-shard K/N`), and the merge of their results
(`pytest-editeval merge`) into the run one process would have made.

The share. The benchmark's selected rows (language, --editeval-subsets, --editeval-limit; never -k, which
acts on the items afterwards) are dealt subset by subset: within a subset, rows in the order of the SHA-256 of
their id, dealt round-robin, the deal continuing from one subset into the next. So every subset is spread over
the shards (its counts differ by at most one), the shards' sizes differ by at most one, each row is in exactly
one shard, and the deal depends on the row ids alone: the same on every machine, whatever the worker count.
Hash order rather than dataset order, so that a subset's first rows (often its easiest or its largest
images) are not all in shard 1.

The merge. A shard's results JSON carries a `shard` section: its index and count, the whole selection's size
and fingerprint, the benchmark's subset order, the dataset it read, and every row it owns (id, key, subset,
tags, position in the whole selection). Shard files are untrusted input: whatever does not belong together (a
foreign or tampered file, a shard missing or given twice, a row in two shards) is one line naming it, before
anything is aggregated. The verdicts are then put back in the whole selection's order and go through the same
aggregation, gate, comparison, table, JSON and HTML code as a run in one process.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_editeval.errors import InputError

if TYPE_CHECKING:
    from pytest_editeval.data.dataset import Row
    from pytest_editeval.report.results import RunResults

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
MAX_SHARDS = 10_000


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """`K/N` with 1 <= K <= N (ValueError: one line saying what is accepted)."""
    match = _SHARD.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a shard: expected K/N, e.g. 2/4 (the second of four shards)")
    index, count = int(match[1]), int(match[2])
    if not 1 <= index <= count:
        raise ValueError(f"shard {text!r}: K must be between 1 and N (e.g. 1/{max(count, 1)} to {max(count, 1)}/"
                         f"{max(count, 1)})")
    if count > MAX_SHARDS:
        raise ValueError(f"shard {text!r}: at most {MAX_SHARDS} shards")
    return Shard(index, count)


def _order_key(row_id: str) -> tuple[str, str]:
    return hashlib.sha256(row_id.encode("utf-8")).hexdigest(), row_id


def deal(rows: Sequence["Row"], count: int) -> list[int]:
    """The shard (1-based) of each row of the selection, by the rule in the module docstring."""
    by_subset: dict[str, list[int]] = {}
    for position, row in enumerate(rows):
        by_subset.setdefault(row.subset, []).append(position)
    shard_of = [0] * len(rows)
    dealt = 0
    for positions in by_subset.values():
        for turn, position in enumerate(sorted(positions, key=lambda p: _order_key(rows[p].id))):
            shard_of[position] = (dealt + turn) % count + 1
        dealt += len(positions)
    return shard_of


def share(rows: Sequence["Row"], shard: Shard) -> list[tuple[int, "Row"]]:
    """(position in the selection, row) of the rows this shard owns, in selection order."""
    return [(position, row) for position, (row, owner) in enumerate(zip(rows, deal(rows, shard.count)))
            if owner == shard.index]


def selection_sha256(ids: Sequence[str]) -> str:
    """The whole selection's fingerprint: its row ids in order."""
    return hashlib.sha256("\n".join(ids).encode("utf-8")).hexdigest()


def shard_section(shard: Shard, selection: Sequence["Row"], owned: Sequence[tuple[int, "Row"]],
                  subset_order: Sequence[str], dataset: str, hub: str) -> dict:
    """What a shard's results JSON says about its share (results.ShardInfo)."""
    return {"index": shard.index, "count": shard.count, "selected_rows": len(selection),
            "selection_sha256": selection_sha256([r.id for r in selection]), "subsets": list(subset_order),
            "dataset": dataset, "hub": hub,
            "rows": [{"id": r.id, "key": r.key, "subset": r.subset, "tags": sorted(r.tags), "position": p}
                     for p, r in owned]}


# ---- the merge ------------------------------------------------------------------------------------------------
class MergeError(InputError):
    """The shard files do not make one run: one line naming the file and what does not match."""


@dataclass
class ShardFile:
    path: Path
    results: "RunResults"

    @property
    def name(self) -> str:
        return str(self.path)

    @property
    def label(self) -> str:
        shard = self.results.shard
        return f"shard {shard.index}/{shard.count} ({self.path})"


def read_shard(path: Path) -> ShardFile:
    """A shard's results JSON, read as untrusted input: any problem is one MergeError line."""
    from pydantic import ValidationError

    from pytest_editeval.data.jsonfile import TOO_DEEP, read_bytes_capped, too_deep
    from pytest_editeval.report.results import read_results
    from pytest_editeval.report.runs import MAX_RESULTS_BYTES

    try:
        raw = read_bytes_capped(path, MAX_RESULTS_BYTES)
        if raw is None:
            raise MergeError(f"{path}: over {MAX_RESULTS_BYTES >> 20} MB, not a results file of pytest-editeval")
        results = read_results(raw)
    except TOO_DEEP:
        raise MergeError(too_deep(path, "shard file")) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "the top level"
        raise MergeError(f"{path} is not a results file of pytest-editeval ({where}: "
                         f"{first.get('msg', 'invalid')})") from None
    except ValueError as exc:  # not JSON at all
        raise MergeError(f"cannot read {path}: not valid JSON ({(str(exc).splitlines() or [''])[0][:160]})") from None
    except OSError as exc:
        raise MergeError(f"cannot read {path}: {exc.strerror or exc}") from None
    if results.shard is None:
        raise MergeError(f"{path} is not a shard's results (it has no shard section): run each shard with "
                         "--editeval-shard K/N --editeval-json PATH")
    return ShardFile(path, results)


# What must be equal in every shard: (what it is, how to read it off the results).
AGREEMENT = (
    ("benchmark", lambda r: r.benchmark),
    ("language", lambda r: r.language),
    ("protocol", lambda r: r.protocol),
    ("judge backend", lambda r: r.judge.backend),
    ("judge model", lambda r: r.judge.model),
    ("judge weights", lambda r: (r.judge.digest, r.judge.adapter_digest)),
    ("judge recipe", lambda r: r.judge.recipe),
    ("judge endpoint", lambda r: r.judge.endpoint or r.judge.host),
    ("judge samples per question", lambda r: (r.judge.samples_per_question, r.judge.sample_average)),
    ("judge panel", lambda r: [(m.get("name"), m.get("weight"), m.get("backend"), m.get("model"))
                               for m in r.judge.panel]),
    ("model", lambda r: r.model),
    ("model digest", lambda r: r.meta.get("model_digest")),
    ("seed", lambda r: r.meta.get("seed")),
    ("benchmark options", lambda r: r.benchmark_info.options),
    ("allow-missing setting", lambda r: r.allow_missing),
    ("shard count", lambda r: r.shard.count),
    ("selection (rows selected before sharding)", lambda r: (r.shard.selected_rows, r.shard.selection_sha256)),
    ("subset order", lambda r: r.shard.subsets),
)


def check_together(files: Sequence[ShardFile], benchmark) -> list[tuple[int, str]]:
    """Check that the files are the shards of one run; returns the whole selection as (position, id) in order.
    Raises MergeError naming the first thing that does not match."""
    if not files:
        raise MergeError("no shard files given")
    first = files[0]
    for other in files[1:]:
        for what, read in AGREEMENT:
            mine, theirs = read(first.results), read(other.results)
            if mine != theirs:
                raise MergeError(f"the shards do not belong together: {what} {_shown(theirs)} in {other.name} but "
                                 f"{_shown(mine)} in {first.name}")
    count = first.results.shard.count
    by_index: dict[int, ShardFile] = {}
    for f in files:
        index = f.results.shard.index
        if not 1 <= index <= count:
            raise MergeError(f"{f.name}: shard index {index} is outside 1..{count}")
        if index in by_index:
            raise MergeError(f"shard {index}/{count} is given twice: {by_index[index].name} and {f.name}")
        by_index[index] = f
    absent = [str(i) for i in range(1, count + 1) if i not in by_index]
    if absent:
        raise MergeError(f"shard{'s' if len(absent) > 1 else ''} {', '.join(f'{i}/{count}' for i in absent)} "
                         f"{'are' if len(absent) > 1 else 'is'} missing: give all {count} shard files (got "
                         f"{', '.join(f'{i}/{count}' for i in sorted(by_index))})")
    owner: dict[str, ShardFile] = {}
    at: dict[int, str] = {}
    for f in files:
        _check_own_rows(f, benchmark)
        for row in f.results.shard.rows:
            if row.id in owner:
                raise MergeError(f"row {_shown(row.id)} is in two shards: {owner[row.id].label} and {f.label}")
            if row.position in at:
                raise MergeError(f"{f.label}: row {_shown(row.id)} claims position {row.position}, which is "
                                 f"{_shown(at[row.position])}'s")
            owner[row.id] = f
            at[row.position] = row.id
    total = first.results.shard.selected_rows
    if sorted(at) != list(range(total)):
        raise MergeError(f"the shards' rows do not make the selection of {total} rows they name (they hold "
                         f"{len(at)} rows at other positions): a shard file was changed or comes from another run")
    ordered = [(p, at[p]) for p in range(total)]
    if selection_sha256([i for _, i in ordered]) != first.results.shard.selection_sha256:
        raise MergeError("the shards' rows do not make the selection they name (its fingerprint differs): a shard "
                         "file was changed or comes from another run")
    return ordered


def _check_own_rows(f: ShardFile, benchmark) -> None:
    """A shard's samples and missing ids are its own rows, once each, with their own key and subset, and every
    score is one of the benchmark's metrics within its range."""
    rows = {row.id: row for row in f.results.shard.rows}
    if len(rows) != len(f.results.shard.rows):
        raise MergeError(f"{f.label}: a row is listed twice in its shard section")
    ranges = {m.name: (m.low, m.high) for m in benchmark.metrics}
    seen: set[str] = set()
    for sample in f.results.samples:
        row = rows.get(sample.id)
        if row is None:
            raise MergeError(f"{f.label}: sample {_shown(sample.id)} is not one of the shard's rows")
        if sample.id in seen:
            raise MergeError(f"{f.label}: sample {_shown(sample.id)} appears twice")
        seen.add(sample.id)
        if (sample.key, sample.subset, sorted(sample.tags)) != (row.key, row.subset, sorted(row.tags)):
            raise MergeError(f"{f.label}: sample {_shown(sample.id)} does not match its row (key, subset or tags)")
        if sample.language != f.results.language:
            raise MergeError(f"{f.label}: sample {_shown(sample.id)} is in language {_shown(sample.language)}, the "
                             f"run in {_shown(f.results.language)}")
        if sample.status not in ("scored", "error"):
            raise MergeError(f"{f.label}: sample {_shown(sample.id)} has status {_shown(sample.status)} (scored or "
                             "error expected)")
        for metric, value in sample.scores.items():
            if metric not in ranges:
                raise MergeError(f"{f.label}: sample {_shown(sample.id)} has a score for {_shown(metric)}, which is "
                                 f"not a metric of {benchmark.name}")
            low, high = ranges[metric]
            if value is not None and not low <= value <= high:
                raise MergeError(f"{f.label}: sample {_shown(sample.id)} has {metric} {value}, outside {low:g}..{high:g}")
    for row_id in f.results.missing:
        if row_id not in rows:
            raise MergeError(f"{f.label}: missing row {_shown(row_id)} is not one of the shard's rows")
        if row_id in seen:
            raise MergeError(f"{f.label}: row {_shown(row_id)} is both a sample and missing")
        seen.add(row_id)


def merged_verdicts(files: Sequence[ShardFile], ordered: Sequence[tuple[int, str]]) -> list:
    """Every shard's verdicts (scored, error and missing rows), in the whole selection's order."""
    from pytest_editeval.scoring.verdict import Verdict

    position = {row_id: p for p, row_id in ordered}
    verdicts = []
    for f in files:
        language = f.results.language
        rows = {row.id: row for row in f.results.shard.rows}
        verdicts += [Verdict.from_record(sample.model_dump()) for sample in f.results.samples]
        for row_id in f.results.missing:
            row = rows[row_id]
            verdicts.append(Verdict(id=row.id, key=row.key, subset=row.subset, language=language,
                                    tags=sorted(row.tags), status="missing", error="no edited image"))
    return sorted(verdicts, key=lambda v: position[v.id])


def _shown(value) -> str:
    """An untrusted value as it may be printed (escaped, shortened)."""
    from pytest_editeval.data.paths import shown

    return shown(value, 80)


# ---- the merge command ---------------------------------------------------------------------------------------
@dataclass
class MergeRequest:
    """What `pytest-editeval merge` was asked (its options mirror the plugin's)."""

    paths: list[Path]
    thresholds: list = field(default_factory=list)  # parsed gate.Threshold
    gate_policy: str = "auto"
    compare: str | None = None
    compare_gates: list = field(default_factory=list)  # parsed compare.CompareGate
    compare_missing: str = "error"
    json_path: Path | None = None
    html_path: Path | None = None
    save_name: str | None = None
    dataset: str | None = None  # for the HTML's source thumbnails; default: the dataset the shards read
    offline: bool = False
    rootdir: Path = Path(".")
    max_pixels: int = 4096 * 4096
    image_folders: list[Path] = field(default_factory=list)  # where the HTML may read edited images (--images)


@dataclass
class MergeResult:
    lines: list[tuple[str, dict]]  # the same summary lines a run in one process prints
    exit_code: int  # 0 gate passed (or --gate=never), 1 gate failed, 2 not gated: a shard stopped or ran partly


def merge(request: MergeRequest) -> MergeResult:
    """Check the shards, then finish them as one run through the run's own reporting (run/report.py): the same
    outcome, results JSON, files, title and summary lines (MergeError / InputError: one line, nothing written)."""
    from pytest_editeval import benchmarks
    from pytest_editeval.report.terminal import summary_lines
    from pytest_editeval.run.report import ImageSources, Outputs, RunReport

    files = [read_shard(Path(p)) for p in request.paths]
    first = files[0].results
    benchmark = benchmarks.get(first.benchmark, request.rootdir)
    ordered = check_together(files, benchmark)
    notes = [f"merged {len(files)} shards of {first.shard.selected_rows} selected rows: "
             + ", ".join(f.label for f in sorted(files, key=lambda f: f.results.shard.index))]
    report = RunReport(_merged_facts(request, files, ordered, benchmark, notes))
    outcome = report.outcome()
    not_found: list[str] = []

    def sources() -> ImageSources:
        read_source, source_path = _source_reader(request, benchmark, first, notes,
                                                  [f.path.resolve().parent for f in files])
        edited_path, missing = _edited_images(files, request.image_folders)
        not_found.append(missing)
        return ImageSources(read_source, source_path, edited_path)

    outputs = Outputs(request.rootdir, request.json_path, request.html_path, request.save_name, request.max_pixels)
    written = report.write(outputs, outcome, sources, extra=lambda _: shared_extra(files))
    if not_found and not_found[0]:
        notes.append(f"HTML report: {len(not_found[0])} edited image(s) not found inside the shard file's folder or "
                     "a folder given with --images (images are read from nowhere else; download each shard's "
                     f"images beside its results file, or name their folder), e.g. {_shown(not_found[0][0])}: shown "
                     "without a thumbnail")
    lines = [(report.title, {"bold": True}), *summary_lines(report.summary_facts(outcome, written))]
    if outcome.failed:
        code = 1
    elif not outcome.gate.evaluated and request.gate_policy != "never":
        # A merge exists to gate: one that cannot be (a shard stopped, or ran only some of its rows) never
        # passes by omission.
        code = 2
        lines.append(("editeval merge: exit 2, because the merged run was not gated; rerun the shard, or pass "
                      "--gate=always to gate the rows that ran", {"red": True, "bold": True}))
    else:
        code = 0
    return MergeResult(lines, code)


def _merged_facts(request: MergeRequest, files: Sequence[ShardFile], ordered, benchmark, notes: list[str]):
    """The merged run as the run's report reads it: its verdicts in the whole selection's order, the judge with
    the shards' usage summed, the first stop (in shard order) and the merge's own gates and baseline."""
    from pytest_editeval.run.report import RunFacts
    from pytest_editeval.scoring.judge_cost import merged as merged_usage
    from pytest_editeval.scoring.outcome import Stop

    first = files[0].results
    subset_order = list(first.shard.subsets)
    thresholds, compare_gates = _resolved_gates(request, benchmark, subset_order)
    baseline, compare_skipped = _baseline(request)
    stopped = next((f"shard {f.results.shard.index}/{f.results.shard.count} stopped: {f.results.stopped}" for f in
                    sorted(files, key=lambda f: f.results.shard.index) if f.results.stopped), None)
    return RunFacts(
        benchmark=benchmark, language=first.language, protocol=first.protocol, model=first.model,
        judge={**first.judge.model_dump(), **merged_usage([f.results.judge.model_dump() for f in files])},
        verdicts=merged_verdicts(files, ordered), selected_ids=[row_id for _, row_id in ordered],
        subset_order=subset_order, allow_missing=first.allow_missing,
        benchmark_info=first.benchmark_info.model_dump(), meta=_merged_meta(files, request.save_name),
        thresholds=thresholds, gate_policy=request.gate_policy, baseline=baseline,
        baseline_name=(baseline.meta.get("name") or request.compare) if baseline is not None else None,
        compare_gates=compare_gates, compare_skipped=compare_skipped,
        stopped=Stop(stopped, 2) if stopped else None, warnings=notes)


def shared_extra(files: Sequence[ShardFile]) -> dict:
    """The `extra` fields (a conftest.py's pytest_editeval_results_json) that every shard gave with the same value:
    the merge runs no hooks of its own, and a field the shards disagree on describes no one merged run."""
    first, *others = [f.results.extra for f in files]
    return {key: value for key, value in first.items() if all(key in o and o[key] == value for o in others)}


def _resolved_gates(request: MergeRequest, benchmark, subset_order: list[str]):
    from pytest_editeval.scoring.compare import resolve_compare_gate
    from pytest_editeval.scoring.gate import resolve_threshold

    try:
        thresholds = [resolve_threshold(t, benchmark, subset_order, "threshold") for t in request.thresholds]
        gates = [resolve_compare_gate(g, benchmark, [*subset_order, *benchmark.group_names()])
                 for g in request.compare_gates]
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if request.compare_gates and request.compare is None:
        raise InputError("--compare-fail needs a baseline: add --compare NAME_OR_PATH")
    return thresholds, gates


def _baseline(request: MergeRequest):
    from pytest_editeval.report.runs import RunNotFound, load_run

    if request.compare is None:
        return None, None
    try:
        return load_run(request.compare, request.rootdir), None
    except RunNotFound as exc:
        if request.compare_missing != "skip":
            raise
        return None, f"{exc}; comparison skipped (--compare-missing=skip)"


def _merged_meta(files: Sequence[ShardFile], save_name: str | None) -> dict:
    """The shards' meta (what produced the numbers: model, digest, seed, versions), named and stamped now."""
    import datetime

    first = dict(files[0].results.meta)
    stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
    return {**first, "name": save_name, "timestamp": stamp, "merged_shards": len(files)}


def _source_reader(request: MergeRequest, benchmark, first, notes: list[str], shard_folders: Sequence[Path] = ()):
    """(read a row's source image, its file or None): the HTML's source thumbnails and full-size links come from
    the dataset the shards read (or --dataset); when it cannot be loaded here, one line says so and the report
    has no source thumbnails. A local path that a shard file records is untrusted like the rest of it: it is read
    only when it lies inside a shard file's own folder; anywhere else the user names it with --dataset."""
    from pytest_editeval.benchmarks import BenchmarkOptions
    from pytest_editeval.data.paths import is_inside
    from pytest_editeval.errors import EditEvalError

    spec = request.dataset or first.shard.dataset
    hub = first.shard.hub if request.dataset is None else None
    local = Path(spec).expanduser()

    def none(row_id: str) -> bytes:
        raise KeyError(row_id)

    try:
        if hub == "local" and not local.exists():
            raise InputError(f"the shards read it from the local path {spec}, which is not here: pass --dataset PATH")
        if hub == "local" and not any(is_inside(local, folder) for folder in shard_folders):
            raise InputError(f"the shards read it from the local path {spec}, which a shard file names outside its "
                             "own folder, so it is not read: pass --dataset PATH to read the source images from it")
        if hub is None or hub == "local":
            if not local.exists():
                raise InputError(f"{spec}: no such file or folder")
            folder = local
        else:
            folder = benchmark.resolve_dataset(spec, hub, request.offline)
        options = BenchmarkOptions(language=first.language, extract_to=request.rootdir / ".editeval" / "datasets",
                                   warn=lambda message: None)
        dataset = benchmark.load(folder, options)
    except (EditEvalError, OSError, ValueError) as exc:
        notes.append(f"HTML report without source thumbnails: cannot load the dataset {spec}: {exc}")
        return none, None
    by_id = {row.id: row for row in dataset.rows if row.language == first.language}
    file_of = getattr(dataset.images, "path", None)  # a dataset of image files (not parquet)
    return (lambda row_id: dataset.images.read(by_id[row_id].inputs[0]),
            (lambda row_id: file_of(by_id[row_id].inputs[0])) if file_of else None)


def _edited_images(files: Sequence[ShardFile], image_folders: Sequence[Path] = ()):
    """Where each sample's edited image is on this machine. A shard file is untrusted: the path it records is
    only a hint, and an image is read only from inside the shard file's own folder or a folder the user named
    (--images): the recorded path itself when it lies inside one of them, else (a CI artifact downloaded
    elsewhere) the longest tail of it that exists below one of them. Never an absolute path or a `..` elsewhere."""
    from pytest_editeval.data.paths import is_inside

    named = [Path(folder).expanduser().resolve() for folder in image_folders]
    folder_of = {sample.id: f.path.resolve().parent for f in files for sample in f.results.samples}
    not_found: list[str] = []

    def locate(sample) -> Path | None:
        if not sample.edited_image:
            return None
        recorded = Path(sample.edited_image)
        parts = [part for part in recorded.parts if part not in (recorded.anchor, "")]
        roots = [folder_of[sample.id], *named] if sample.id in folder_of else named
        first = len(parts) - parts[::-1].index("..") if ".." in parts else 0  # tails below the last '..'
        for root in roots:
            if recorded.is_absolute() and is_inside(recorded, root) and recorded.is_file():
                return recorded
            for start in range(first, len(parts)):
                candidate = root.joinpath(*parts[start:])
                if is_inside(candidate, root) and candidate.is_file():
                    return candidate
        not_found.append(sample.edited_image)
        return None

    return locate, not_found
