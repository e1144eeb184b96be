"""The editeval section of pytest's terminal summary, as (line, style) pairs (pure rendering).

Order: a fatal stop first (one line), then the table, the row counts, what is missing or partial, the judge
and cache counters, generation, the comparison, the files written, and the gate's verdict last.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pytest_editeval.data.paths import printable
from pytest_editeval.report.table import render_comparison, render_counts, render_gate, render_table

RED = {"red": True}
RED_BOLD = {"red": True, "bold": True}
YELLOW = {"yellow": True}
YELLOW_BOLD = {"yellow": True, "bold": True}
PLAIN: dict = {}
SHOWN_IDS = 3


@dataclass
class SummaryFacts:
    title: str
    benchmark: object  # benchmarks.Benchmark
    model: str
    dataset: str
    outcome: object  # session.Outcome
    stopped: str | None = None
    stopped_code: int | None = None
    no_items: bool = False
    allow_missing: bool = False
    missing_origin: str = ""
    counts: list[dict] | None = None  # judge and cache counters, one dict per process (xdist workers too)
    output_dir: str | None = None
    baseline: object = None
    baseline_name: str | None = None
    compare_skipped: str | None = None
    written: list[str] = field(default_factory=list)
    still_running: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # the dataset's and the benchmark's, said once
    judge_notes: list[str] = field(default_factory=list)  # how the judge ran (device, load time, server)
    withheld: str | None = None  # why this run is not gated on its own (a shard): said even without thresholds
    usage_lines: list[str] = field(default_factory=list)  # the judge's tokens, cost and cache savings
    judge_aggregates: dict | None = None  # a panel's judges, each alone: shown as their own table rows
    extension_lines: list[str] = field(default_factory=list)  # from conftest.py (pytest_editeval_summary_lines)
    extension_failures: list[str] = field(default_factory=list)  # extension hooks that raised: the run failed


Lines = list[tuple[str, dict]]


def summary_lines(f: SummaryFacts) -> Lines:
    """The section's (line, style) pairs, in the order the module docstring gives."""
    return [*_opening_lines(f), *_result_lines(f), *_missing_lines(f), *_completeness_lines(f), *_judge_lines(f),
            *_comparison_lines(f), *_closing_lines(f), *_gate_lines(f)]


def _opening_lines(f: SummaryFacts) -> Lines:
    """Before the numbers: a fatal stop, the dataset's and benchmark's warnings, a collection that ran nothing."""
    lines: Lines = []
    if f.stopped:
        lines.append((f"editeval STOPPED (exit {f.stopped_code}): {f.stopped}", RED_BOLD))
    for warning in f.warnings:
        lines.append((f"editeval: {warning}", YELLOW))
    if f.no_items:
        lines.append(("no benchmark rows were collected: the collection arguments exclude the benchmark; run pytest "
                      "without path arguments, or in the folder you want", YELLOW))
    return lines


def _result_lines(f: SummaryFacts) -> Lines:
    """The table (when any row ran), the row counts, and the metric values still unreadable after the re-asks."""
    outcome = f.outcome
    agg = outcome.aggregates
    lines: Lines = []
    if agg.seen_rows:
        baseline = f.baseline.model_dump()["aggregates"] if f.baseline is not None else None
        lines.append((render_table(agg, f.benchmark, f.model, f.dataset, baseline, f.judge_aggregates), PLAIN))
    lines.append((render_counts(agg), RED if agg.full.errors else PLAIN))
    unreadable = agg.full.unreadable
    if unreadable:
        detail = ", ".join(f"{metric} {n}" for metric, n in unreadable.items())
        rows = sum(1 for v in outcome.verdicts if v.status == "scored" and v.unreadable_metrics())
        lines.append((f"unreadable metric values after the re-asks: {sum(unreadable.values())} ({detail}) in "
                      f"{rows} scored row{'s' if rows != 1 else ''}; each is missing for its row only, the row's "
                      "other metrics count", YELLOW))
    return lines


def _completeness_lines(f: SummaryFacts) -> Lines:
    """How many of the expected rows ran, when not all did: a run that is not complete says so loudly."""
    agg = f.outcome.aggregates
    if f.stopped:
        return [(f"{agg.seen_rows} of {agg.expected_rows} benchmark rows ran before the stop", RED)]
    if not f.outcome.all_ran:
        return [(f"PARTIAL RUN: {agg.seen_rows} of {agg.expected_rows} benchmark rows ran (-k, --lf, -x, "
                 "deselection or an interruption)", YELLOW_BOLD)]
    return []


def _judge_lines(f: SummaryFacts) -> Lines:
    """The judge and cache counters summed over the processes, usage, judge notes, cache write errors and
    generation; merged shards have no counters of their own, only the shards' usage summed."""
    if not f.counts:
        return [(line, PLAIN) for line in f.usage_lines]
    total = {k: sum(c[k] for c in f.counts) for k in ("requests", "hits", "misses", "corrupt", "shared")}
    corrupt = f", {total['corrupt']} corrupt entries recomputed" if total["corrupt"] else ""
    shared = f" ({total['shared']} answers passed between xdist workers)" if total["shared"] else ""
    lines: Lines = [(f"judge requests: {total['requests']}; cache: {total['hits']} hits, {total['misses']} computed"
                     f"{corrupt}{shared}", PLAIN)]
    lines += [(line, PLAIN) for line in f.usage_lines]
    lines += [(f"judge: {note}", PLAIN) for note in f.judge_notes]
    lines += [(f"editeval cache: {message}", RED) for message in sorted({m for c in f.counts for m in c["write_errors"]})]
    if f.output_dir is not None:
        generated = sum(c["generated"] for c in f.counts)
        cached = sum(c["from_cache"] for c in f.counts)
        lines.append((f"generated {generated} images ({cached} from the cache), saved under {f.output_dir} "
                      "(edits.jsonl there re-judges them in image mode)", PLAIN))
    return lines


def _comparison_lines(f: SummaryFacts) -> Lines:
    """A skipped comparison, or the baseline's warnings and each compared metric (and compare gate)."""
    lines: Lines = []
    if f.compare_skipped:
        lines.append((f.compare_skipped, YELLOW))
    if f.baseline is not None:
        outcome = f.outcome
        for warning in outcome.compare_warnings:
            lines.append((f"WARNING: {warning}", YELLOW_BOLD))
        labels = {m.name: m.label for m in f.benchmark.metrics}
        for line, failed in render_comparison(outcome.deltas, outcome.compare_outcomes, f.baseline_name,
                                              outcome.gate.evaluated, labels):
            lines.append((line, RED if failed else {"green": True} if line.startswith("PASS") else PLAIN))
    return lines


def _closing_lines(f: SummaryFacts) -> Lines:
    """The files written (or not), threads left running after a stop, and the conftest.py extensions' lines."""
    lines: Lines = [(line, YELLOW if "NOT saved" in line or "kept as it was" in line else PLAIN) for line in f.written]
    if f.still_running:
        lines.append((f"editeval: threads still running after the stop: {', '.join(f.still_running)}", RED))
    lines += [(line, PLAIN) for line in f.extension_lines]
    lines += [(line, RED) for line in f.extension_failures]
    return lines


def _gate_lines(f: SummaryFacts) -> Lines:
    """The gate's verdict, last; a shard withheld from gating says so even without thresholds."""
    gate = f.outcome.gate
    gate_lines = render_gate(gate)
    if not gate_lines and f.withheld is not None and gate.reason == f.withheld:
        gate_lines = [(f"editeval gate NOT APPLIED: {f.withheld}", False)]
    return [(line, {"red": failed, "green": line.startswith(("PASS", "editeval gate PASSED")),
                    "yellow": not failed and "NOT APPLIED" in line, "bold": line.startswith("editeval gate")})
            for line, failed in gate_lines]


def _missing_lines(f: SummaryFacts) -> Lines:
    missing = [v.id for v in f.outcome.verdicts if v.status == "missing"]
    if not missing:
        return []
    where = f" in {f.missing_origin}" if f.missing_origin else ""
    more = f" and {len(missing) - SHOWN_IDS} more" if len(missing) > SHOWN_IDS else ""
    shown = ", ".join(printable(i, 120) for i in missing[:SHOWN_IDS]) + more
    what = f"{len(missing)} of {f.outcome.aggregates.seen_rows} selected rows have no edited image{where} ({shown})"
    if f.allow_missing:
        return [(f"missing: {what}; the others are scored without them (--editeval-allow-missing)", YELLOW)]
    return [(f"MISSING: {what}: they fail the gate; give their images, or pass --editeval-allow-missing to score "
             "the rows that exist", RED_BOLD)]

