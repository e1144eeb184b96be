"""Aggregation of per-row verdicts, generic over a benchmark's metrics, scopes and groups (pure functions).

For each scope (GEdit: the full set and the Intersection rows) and metric:
- per subset: the mean over the subset's rows that have the metric;
- macro: the unweighted mean of the subset means (GEdit's official headline; ImgEdit's type mean, with the
  subset means rounded first where the benchmark publishes them rounded);
- micro: the mean over all rows (EvalScope's OVERALL; ImgEdit's sample mean; KRIS's Overall);
- per group (KRIS's dimensions and knowledge types): the mean pooled over the group's rows.
Each part also counts, per metric, its scored rows whose value of that metric the judge never gave readably
(`unreadable`: KRIS keeps such a row, its metric missing for that row only).
A pooled metric (KRIS's AVG) pools every metric value of the rows instead of one score per row. Errored and
missing rows are counted, never scored, except where the benchmark's official scorer gives them scores
(RISEBench: 0 in Accuracy; Benchmark.unscored_row_scores). Sums use math.fsum so that results do not depend on row order.

Each mean has two standard errors: over rows (`stderr`), and, when the rows were judged several times, of the
judge alone (`judge_stderr`, from the rows' spread over their samples); each part also has `judge_sd`, the root
mean square of its rows' spread of the headline metric (formulas in judge_noise.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from pytest_editeval.scoring.judge_noise import judge_stderr, macro_judge_stderr, rms_spread
from pytest_editeval.scoring.verdict import Verdict

if TYPE_CHECKING:
    from pytest_editeval.benchmarks import Benchmark


@dataclass(frozen=True)
class MetricStats:
    mean: float | None
    n: int
    stderr: float | None  # standard error of the mean over rows; None when n < 2
    judge_stderr: float | None = None  # the judge's share (repeated judging only; judge_noise.py)

    def to_dict(self) -> dict:
        return {"mean": self.mean, "n": self.n, "stderr": self.stderr, "judge_stderr": self.judge_stderr}


class _RowCounts:
    """The rates of a part with `num` scored, `errors` and `missing` rows."""

    num: int
    errors: int
    missing: int

    @property
    def error_rate(self) -> float:
        """Rows whose judging failed over the rows judged (scored or failed); missing rows were never judged."""
        return _share(self.errors, self.errors + self.num)

    @property
    def missing_rate(self) -> float:
        """Rows without an edited image over the rows selected."""
        return _share(self.missing, self.num + self.errors + self.missing)


@dataclass(frozen=True)
class SubsetAggregate(_RowCounts):
    num: int  # rows scored
    errors: int
    missing: int
    metrics: dict[str, MetricStats]
    judge_sd: float | None = None  # RMS of the rows' judge spread of the headline metric (repeated judging)
    unreadable: dict[str, int] = field(default_factory=dict)  # metric -> scored rows missing it (never read)


@dataclass(frozen=True)
class ScopeAggregate(_RowCounts):
    subsets: dict[str, SubsetAggregate]
    macro: dict[str, MetricStats]
    micro: dict[str, MetricStats]
    groups: dict[str, SubsetAggregate]
    num: int
    errors: int
    missing: int
    judge_sd: float | None = None
    unreadable: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Aggregates:
    scopes: dict[str, ScopeAggregate]
    expected_rows: int = 0
    seen_rows: int = 0

    def scope(self, name: str) -> ScopeAggregate:
        return self.scopes[name]

    @property
    def full(self) -> ScopeAggregate:
        return next(iter(self.scopes.values()))


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def mean_stats(values: list[float]) -> MetricStats:
    n = len(values)
    if n == 0:
        return MetricStats(None, 0, None)
    mean = math.fsum(values) / n
    if n < 2:
        return MetricStats(mean, n, None)
    variance = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    return MetricStats(mean, n, math.sqrt(variance / n))


def macro_stats(per_subset: list[MetricStats], decimals: int | None = None) -> MetricStats:
    """Unweighted mean of subset means (each rounded to `decimals` first, when the benchmark publishes them
    so); its standard errors combine the subsets' (independent) errors."""
    present = [s for s in per_subset if s.mean is not None]
    if not present:
        return MetricStats(None, 0, None)
    k = len(present)
    means = [round(s.mean, decimals) if decimals is not None else s.mean for s in present]  # type: ignore[arg-type]
    mean = math.fsum(means) / k
    n = sum(s.n for s in present)
    judge = macro_judge_stderr([s.judge_stderr for s in present])
    if any(s.stderr is None for s in present):
        return MetricStats(mean, n, None, judge)
    return MetricStats(mean, n, math.sqrt(math.fsum(s.stderr**2 for s in present)) / k, judge)  # type: ignore[operator]


def _values(rows: list[Verdict], metric, plain: list[str]) -> list[float]:
    """The values a metric aggregates over `rows`: one per row, or every plain metric's (pooled metrics)."""
    if metric.pooled:
        return [v.scores[m] for v in rows for m in plain if v.scores.get(m) is not None]
    return [v.scores[metric.name] for v in rows if v.scores.get(metric.name) is not None]


def _stats(rows: list[Verdict], metric, plain: list[str]) -> MetricStats:
    values = _values(rows, metric, plain)
    stats = mean_stats(values)
    if not any(v.sample_scores for v in rows):
        return stats
    # The judge's error: each value of a row (the metric's, or every plain metric's for a pooled one) with its K.
    judged = [v for v in rows if v.scores.get(metric.name) is not None] if not metric.pooled else rows
    spread_of = plain if metric.pooled else [metric.name]
    return MetricStats(stats.mean, stats.n, stats.stderr,
                       judge_stderr(judged, spread_of, len(values), pooled=metric.pooled))


def _counted(rows: list[Verdict], benchmark: "Benchmark") -> list[Verdict]:
    """The rows the means are taken over: the scored ones, and unscored ones the benchmark's official scorer
    counts (Benchmark.unscored_row_scores), with those scores."""
    out = []
    for v in rows:
        if v.status == "scored":
            out.append(v)
        elif scores := benchmark.unscored_row_scores(v):
            out.append(replace(v, scores=scores))
    return out


def _part(rows: list[Verdict], benchmark: "Benchmark") -> SubsetAggregate:
    scored = [v for v in rows if v.status == "scored"]
    plain = [m.name for m in benchmark.metrics if not m.pooled]
    counted = _counted(rows, benchmark)
    return SubsetAggregate(
        num=len(scored), errors=sum(v.status == "error" for v in rows), missing=sum(v.status == "missing" for v in rows),
        metrics={m.name: _stats(counted, m, plain) for m in benchmark.metrics},
        judge_sd=rms_spread(scored, benchmark.headline_metric), unreadable=unreadable_counts(scored, benchmark))


def unreadable_counts(scored: list[Verdict], benchmark: "Benchmark") -> dict[str, int]:
    """Per metric (the benchmark's order; names it does not declare after), the scored rows lacking it because
    the judge never answered it readably."""
    counts: dict[str, int] = {}
    for v in scored:
        for metric in v.unreadable_metrics():
            counts[metric] = counts.get(metric, 0) + 1
    order = [m.name for m in benchmark.metrics]
    return {m: counts[m] for m in sorted(counts, key=lambda m: (order.index(m) if m in order else len(order), m))}


def aggregate_scope(verdicts: list[Verdict], benchmark: "Benchmark", subset_order: Iterable[str]) -> ScopeAggregate:
    by_subset: dict[str, list[Verdict]] = {}
    for v in verdicts:
        by_subset.setdefault(v.subset, []).append(v)
    subset_order = list(subset_order)
    order = [s for s in subset_order if s in by_subset] + sorted(set(by_subset) - set(subset_order))
    subsets = {name: _part(by_subset[name], benchmark) for name in order}
    groups = {g.name: _part([v for s in g.subsets for v in by_subset.get(s, [])], benchmark)
              for g in benchmark.groups if any(s in by_subset for s in g.subsets)}
    whole = _part(verdicts, benchmark)
    return ScopeAggregate(
        subsets=subsets,
        macro={m.name: macro_stats([s.metrics[m.name] for s in subsets.values()], benchmark.subset_decimals)
               for m in benchmark.metrics},
        micro=whole.metrics, groups=groups,
        num=whole.num, errors=whole.errors, missing=whole.missing, judge_sd=whole.judge_sd,
        unreadable=whole.unreadable,
    )


def aggregate(verdicts: list[Verdict], benchmark: "Benchmark", subset_order: Iterable[str],
              expected_rows: int) -> Aggregates:
    subset_order = list(subset_order)
    return Aggregates(
        scopes={scope.name: aggregate_scope([v for v in verdicts if v.has(scope.tag)], benchmark, subset_order)
                for scope in benchmark.scopes},
        expected_rows=expected_rows,
        seen_rows=len(verdicts),
    )
