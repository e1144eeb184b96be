"""One evaluation run, in three parts with small interfaces, none of which imports pytest:

plan.py      setting up: the benchmark, its dataset and the selected rows, the edited images or the generation
             settings, thresholds and the baseline, all checked before any test runs (Plan)
execute.py   executing: judges, the image producer, the scheduler, the rows' records, the threads (Execution)
report.py    reporting: outcome, results JSON, files, summary facts and title (RunReport); a merge of shards
             and the `compare` command finish through the same code
context.py   the host's facts (rootpath, collect-only, an xdist worker's share, the terminal, extension hooks)
scheduler.py runs rows ahead of the items; every thread joined when the run stops
shards.py    --editeval-shard's share of each shard, and `pytest-editeval merge` putting shards back together

The pytest face (`pytest_editeval.pytest_plugin`: roles.py, session.py) builds a RunContext and hands pytest's
hooks to a Run; the marker API (`editeval_result`) runs a Run of its own.
"""

from __future__ import annotations

from pytest_editeval.options.settings import RunSettings
from pytest_editeval.run.context import RunContext, WorkerShare
from pytest_editeval.run.execute import Execution
from pytest_editeval.run.plan import Plan
from pytest_editeval.run.report import ImageSources, Outputs, ProcessCounts, RunFacts, RunReport, title
from pytest_editeval.scoring.outcome import Outcome, Stop

__all__ = ["Execution", "ImageSources", "Outcome", "Outputs", "Plan", "ProcessCounts", "Run", "RunContext",
           "RunFacts", "RunReport", "Stop", "WorkerShare", "title"]


class Run:
    """A plan, its execution, and the report of both."""

    def __init__(self, settings: RunSettings, ctx: RunContext) -> None:
        self.settings = settings
        self.ctx = ctx
        self.plan = Plan(settings, ctx)
        self.execution = Execution(self.plan, ctx)

    def report(self, for_results: bool = True) -> RunReport:
        """The run as it stands; `for_results`: with what only the results need (the judge's usage and cost, the
        meta), else just what the outcome needs."""
        plan, ex, s = self.plan, self.execution, self.settings
        judge = ex.judge_info(ex.all_counts() if for_results else None)
        meta = self._meta(judge or {}) if for_results else {}
        baseline = plan.baseline
        return RunReport(RunFacts(
            benchmark=plan.benchmark, language=s.language, protocol=s.protocol, model=self.model_name, judge=judge,
            verdicts=ex.verdicts(), selected_ids=list(plan.position), subset_order=plan.subset_order,
            allow_missing=s.allow_missing, benchmark_info=plan.benchmark.info(plan.options), meta=meta,
            thresholds=plan.thresholds, gate_policy=s.gate_policy, baseline=baseline,
            baseline_name=(baseline.meta.get("name") or s.compare) if baseline is not None else None,
            compare_gates=plan.compare_gates, compare_skipped=plan.compare_skipped, stopped=ex.stopped,
            withheld=plan.shard_withheld, shard=plan.shard_section(), missing_origin=plan.missing_origin,
            warnings=plan.warnings))

    def _meta(self, judge: dict) -> dict:
        from pytest_editeval.report.runs import run_metadata

        gen, producer = self.plan.generation, self.execution.producer
        return run_metadata(self.settings.save_name, model=self.model_name, benchmark=self.plan.benchmark.name,
                            revision=gen.revision if gen else None, protocol=self.settings.protocol,
                            judge_model=judge.get("model") or "", seed=gen.seed if gen else None,
                            model_digest=((producer and producer.identity) or {}).get("model"),
                            judge_backend=judge.get("backend"), judge_digest=judge.get("digest"),
                            judge_recipe=judge.get("recipe"))

    @property
    def model_name(self) -> str:
        return self.execution.model_name or self.plan.model_name

    def outcome(self) -> Outcome:
        return self.report(for_results=False).outcome()

    def outputs(self) -> Outputs:
        s = self.settings
        return Outputs(self.ctx.rootpath, s.json_path, s.html_path, s.save_name, s.max_pixels)

    def image_sources(self) -> ImageSources:
        """The HTML report's images: the sources from the dataset (a dataset of image files links them)."""
        by_id = {r.id: r for r in self.plan.selected}
        store = self.plan.dataset.images
        file_of = getattr(store, "path", None)
        return ImageSources(lambda row_id: store.read(by_id[row_id].inputs[0]),
                            (lambda row_id: file_of(by_id[row_id].inputs[0])) if file_of else None)

    def write_files(self, outcome: Outcome, extra=None) -> list[str]:
        """The files the settings name, and model mode's edits.jsonl; `extra(results)`: the results JSON's `extra`
        fields (the extension hook), asked only when a file is written."""
        written = self.report().write(self.outputs(), outcome, self.image_sources, extra)
        self.execution.write_edits_jsonl()
        return written

    def process_counts(self, no_items: bool = False) -> ProcessCounts:
        ex, gen = self.execution, self.plan.generation
        counts = ex.all_counts()
        generated = gen is not None and any(c["generated"] or c["from_cache"] for c in counts)
        return ProcessCounts(counts, output_dir=str(gen.output_dir) if ex.producer is not None or generated else None,
                             still_running=ex.still_running, no_items=no_items,
                             table_judges=self.settings.table_judges)

    def evaluate_all(self, verdict_for) -> Outcome:
        """Judge every selected row now (no items of our own) and return the outcome: the marker API."""
        self.execution.evaluate_all(verdict_for)
        return self.outcome()
