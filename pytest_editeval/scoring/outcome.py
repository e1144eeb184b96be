"""What a run's verdicts amount to: aggregates, the gate and the comparison with a baseline (pure).

One function for a run in one process (run/report.py) and for the merge of a run's shards (shards.py, the `merge`
command), so that both give the same numbers, the same gate and the same comparison by construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pytest_editeval.scoring.aggregate import Aggregates, aggregate
from pytest_editeval.scoring.gate import GateResult, evaluate_gate
from pytest_editeval.scoring.verdict import Verdict

if TYPE_CHECKING:
    from pytest_editeval.benchmarks import Benchmark


@dataclass
class Outcome:
    verdicts: list[Verdict]
    aggregates: Aggregates
    gate: GateResult
    complete: bool  # every selected row ran, none is missing its image, and the run was not stopped
    all_ran: bool  # every selected row ran (not a -k / -x / Ctrl-C / stopped run)
    stopped: str | None = None  # the fatal error that stopped the run
    deltas: list = field(default_factory=list)  # paired differences with the baseline
    compare_outcomes: list = field(default_factory=list)
    compare_warnings: list = field(default_factory=list)
    judge_aggregates: dict = field(default_factory=dict)  # a panel: judge name -> Aggregates of its own scores

    @property
    def compare_failed(self) -> bool:
        return any(not o.passed for o in self.compare_outcomes)

    @property
    def failed(self) -> bool:
        """Whether the gate (thresholds, missing rows, compare gates) fails the session."""
        return self.gate.evaluated and (not self.gate.passed or self.compare_failed)


@dataclass
class Stop:
    """A fatal error that stopped the run: its one line and the exit status it gives."""

    message: str
    exit_code: int


def decide(verdicts: list[Verdict], selected_ids: Sequence[str], benchmark: "Benchmark", subset_order: list[str], *,
           thresholds: list, gate_policy: str, allow_missing: bool, stopped: str | None, baseline=None,
           compare_gates: Sequence = (), judge: dict | None = None, withheld: str | None = None) -> Outcome:
    """`verdicts` in selection order; `selected_ids`: every row the run was to evaluate; `withheld`: why a run
    that ran whole is still not gated on its own (a shard), unless the policy is `always`."""
    aggregates = aggregate(verdicts, benchmark, subset_order, expected_rows=len(selected_ids))
    judge_names = list(dict.fromkeys(name for v in verdicts for name in v.judge_scores))
    judge_aggregates = {name: aggregate([v.as_judge(name) for v in verdicts], benchmark, subset_order,
                                        expected_rows=len(selected_ids)) for name in judge_names}
    all_ran = {v.id for v in verdicts} >= set(selected_ids) and stopped is None
    complete = all_ran and aggregates.full.missing == 0
    gate = evaluate_gate(thresholds, aggregates, all_ran=all_ran, policy=gate_policy, allow_missing=allow_missing,
                         stopped=stopped, withheld=withheld)
    deltas, compare_outcomes, warnings = [], [], []
    if baseline is not None:
        from pytest_editeval.scoring.compare import compare_runs

        deltas, compare_outcomes = compare_runs(
            [v.to_record() for v in verdicts if v.status != "missing"], baseline.sample_records(),
            list(compare_gates), list(aggregates.full.subsets), [m.name for m in benchmark.metrics if not m.pooled],
            benchmark.default_averaging)
        warnings = comparability(baseline, benchmark.name, judge)
    return Outcome(verdicts, aggregates, gate, complete, all_ran, stopped, deltas, compare_outcomes, warnings,
                   judge_aggregates)


def comparability(baseline, benchmark_name: str, judge: dict | None) -> list[str]:
    """Why a comparison with the baseline may not compare like with like (said, never hidden). `judge`: this
    run's judge as results name it (backend, model, digest, adapter, recipe)."""
    from pytest_editeval.judges import different_judges

    warnings = []
    if baseline.benchmark != benchmark_name:
        warnings.append(f"the baseline is a {baseline.benchmark} run and this is {benchmark_name}: "
                        "rows are paired by key only")
    judges = different_judges(baseline.judge.model_dump(), judge) if judge else None
    if judges:
        warnings.append(f"the baseline was judged by {judges[0]}, this run by {judges[1]}: judges score on "
                        "different scales")
    return warnings


def comparison_section(baseline, outcome: Outcome) -> dict | None:
    """The results JSON's `comparison` (None without a baseline)."""
    if baseline is None:
        return None
    return {
        "baseline": baseline.meta or {"model": baseline.model},
        "deltas": [d.to_dict() for d in outcome.deltas],
        "gates": [{"expression": o.gate.expression, **o.delta.to_dict(), "passed": o.passed}
                  for o in outcome.compare_outcomes],
        "warnings": outcome.compare_warnings,
    }
