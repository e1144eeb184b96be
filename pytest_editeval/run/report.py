"""Reporting a run: what its verdicts amount to (outcome.decide), the results JSON, the files it writes and the
facts of its terminal summary, with its title. One code path for a run in one process, the merge of a run's
shards (`pytest-editeval merge`) and the title of `pytest-editeval compare`, so that they cannot disagree: each
fills in a RunFacts and finishes through a RunReport."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_editeval.data.paths import printable
from pytest_editeval.scoring.outcome import Outcome, Stop, comparison_section, decide
from pytest_editeval.scoring.verdict import Verdict

if TYPE_CHECKING:
    from pytest_editeval.benchmarks import Benchmark
    from pytest_editeval.report.results import RunResults


@dataclass
class RunFacts:
    """What finishing needs, however the run was made."""

    benchmark: Benchmark
    language: str
    protocol: str
    model: str
    judge: dict | None  # the results' judge section, usage and cost included; None: no judge (--collect-only)
    verdicts: list[Verdict]  # in selection order
    selected_ids: list[str]  # every row the run was to evaluate
    subset_order: list[str]
    allow_missing: bool
    benchmark_info: dict
    meta: dict
    thresholds: list = field(default_factory=list)  # resolved gate.Threshold
    gate_policy: str = "auto"
    baseline: RunResults | None = None
    baseline_name: str | None = None
    compare_gates: list = field(default_factory=list)  # resolved compare.CompareGate
    compare_skipped: str | None = None  # why the comparison was skipped (one line)
    stopped: Stop | None = None
    withheld: str | None = None  # why a run that ran whole is not gated on its own (a shard)
    shard: dict | None = None  # a shard's share (results.ShardInfo)
    missing_origin: str = ""  # where missing edited images were looked for
    warnings: list[str] = field(default_factory=list)  # said once in the summary


@dataclass
class Outputs:
    """Where the results go (none of them: nothing is written)."""

    rootpath: Path  # holds .editeval/runs/
    json_path: Path | None = None
    html_path: Path | None = None
    save_name: str | None = None
    max_pixels: int = 4096 * 4096

    @property
    def any(self) -> bool:
        return bool(self.json_path or self.save_name or self.html_path)


@dataclass
class ImageSources:
    """How the HTML report reads a row's images: `read_source(row id)` its first input image, `source_path(row
    id)` that image's file where the dataset keeps one, `edited_path(sample)` its edited image (default: the path
    the sample records)."""

    read_source: Callable[[str], bytes]
    source_path: Callable[[str], Path | None] | None = None
    edited_path: Callable | None = None


@dataclass
class ProcessCounts:
    """What the processes of a run counted (a merge has none of its own: its shards' usage is in the judge)."""

    counts: list[dict]  # judge and cache counters, one dict per process (xdist workers too)
    output_dir: str | None = None  # model mode: where the generated images went
    still_running: list[str] = field(default_factory=list)
    no_items: bool = False  # the collection arguments excluded every benchmark item
    table_judges: bool = False  # a panel's judges get their own table rows


def title(benchmark: Benchmark, language: str, protocol: str, judge: dict | None) -> str:
    """The summary's title names the judge: model, backend, weights digest, and a recipe other than the default."""
    from pytest_editeval.judges import label

    recipe = (judge or {}).get("recipe")
    shown = f", recipe {recipe}" if recipe and recipe != benchmark.recipe(None).name else ""
    # printable: a title read back from a results file (merge, compare) is untrusted text
    return printable(f"editeval: {benchmark.name} ({language}), protocol {protocol}{shown}, "
                     f"judge {label(judge) if judge else '?'}")


def results_title(results: RunResults, benchmark: Benchmark) -> str:
    """The title of a run read back from its results file (the same as when it ran)."""
    return title(benchmark, results.language, results.protocol, results.judge.model_dump())


class RunReport:
    def __init__(self, facts: RunFacts) -> None:
        self.facts = facts

    @property
    def title(self) -> str:
        f = self.facts
        return title(f.benchmark, f.language, f.protocol, f.judge)

    def outcome(self) -> Outcome:
        f = self.facts
        return decide(f.verdicts, f.selected_ids, f.benchmark, f.subset_order, thresholds=f.thresholds,
                      gate_policy=f.gate_policy, allow_missing=f.allow_missing,
                      stopped=f.stopped.message if f.stopped else None, baseline=f.baseline,
                      compare_gates=f.compare_gates, judge=f.judge, withheld=f.withheld)

    def results(self, outcome: Outcome, extra: dict | None = None) -> RunResults:
        """The results JSON's model (built only when needed: pydantic is slow to import)."""
        from pytest_editeval.report.results import build_results

        f = self.facts
        results = build_results(
            benchmark=f.benchmark.name, benchmark_info=f.benchmark_info, language=f.language, protocol=f.protocol,
            model=f.model, judge=f.judge if f.judge is not None else {"model": ""},
            verdicts=outcome.verdicts, aggregates=outcome.aggregates, gate=outcome.gate, complete=outcome.complete,
            allow_missing=f.allow_missing, stopped=outcome.stopped, meta=f.meta,
            comparison=comparison_section(f.baseline, outcome), shard=f.shard,
            judge_aggregates=outcome.judge_aggregates)
        if extra:
            results.extra = extra
        return results

    def write(self, outputs: Outputs, outcome: Outcome, sources: Callable[[], ImageSources],
              extra: Callable[[RunResults], dict] | None = None) -> list[str]:
        """Write the results JSON, the saved run and the HTML report that `outputs` names (report/files.py keeps
        a complete run's files from an incomplete one); returns the summary's "what: where" lines. `sources` is
        asked only for an HTML report, `extra(results)` (the results JSON's `extra` fields) only when a file is
        written."""
        from pytest_editeval.report import files

        if not outputs.any:
            return []
        results = self.results(outcome)
        if extra is not None:
            results.extra = extra(results)
        data = results.model_dump_json(indent=2).encode("utf-8")
        written = []
        if outputs.json_path is not None:
            written.append(files.write_results_json(outputs.json_path, data, stopped=bool(outcome.stopped),
                                                    scored=outcome.aggregates.full.num, complete=outcome.complete))
        if outputs.save_name is not None:
            written.append(files.save_run(outputs.rootpath, outputs.save_name, data, complete=outcome.complete))
        if outputs.html_path is not None:
            images = sources()
            written.append(files.write_html(outputs.html_path, results, self.facts.benchmark, self.facts.baseline,
                                            images.read_source, outputs.max_pixels, images.edited_path,
                                            images.source_path, stopped=bool(outcome.stopped)))
        return written

    def summary_facts(self, outcome: Outcome, written: list[str], process: ProcessCounts | None = None):
        """The terminal summary's facts (report/terminal.py renders them); the caller adds the extension lines."""
        from pytest_editeval.report.terminal import SummaryFacts
        from pytest_editeval.scoring.judge_cost import usage_lines

        f = self.facts
        started = process is None or any(c["started"] for c in process.counts)
        counts = process.counts if process is not None and started else None
        return SummaryFacts(
            title=self.title, benchmark=f.benchmark, model=f.model, dataset=f"{f.benchmark.name}-{f.language}",
            outcome=outcome, stopped=f.stopped.message if f.stopped else None,
            stopped_code=f.stopped.exit_code if f.stopped else None,
            no_items=process.no_items if process else False, allow_missing=f.allow_missing,
            missing_origin=f.missing_origin, counts=counts,
            judge_notes=sorted({n for c in counts or () for n in c.get("judge_notes", ())}),
            output_dir=process.output_dir if process else None,
            baseline=f.baseline, baseline_name=f.baseline_name, compare_skipped=f.compare_skipped, written=written,
            still_running=process.still_running if process else [], warnings=f.warnings, withheld=f.withheld,
            usage_lines=usage_lines(f.judge) if f.judge and started else [],
            judge_aggregates=outcome.judge_aggregates if process and process.table_judges else None)
