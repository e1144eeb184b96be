"""Aggregation of per-sample verdicts into per-subset, macro and micro means (pure functions).

Official GEdit-Bench headline = macro: the unweighted mean of the per-subset (task type) means. EvalScope's
OVERALL = micro: the mean over all scored rows. Both are computed, for the full set and for the Intersection
rows. Errored and missing rows are counted, never scored. Sums use math.fsum so that the result does not
depend on the order in which rows finished.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

from .verdict import METRICS, Verdict


@dataclass(frozen=True)
class MetricStats:
    mean: float | None
    n: int
    stderr: float | None  # standard error of the mean; None when n < 2

    def to_dict(self) -> dict:
        return {"mean": self.mean, "n": self.n, "stderr": self.stderr}


@dataclass(frozen=True)
class SubsetAggregate:
    num: int
    errors: int
    missing: int
    metrics: dict[str, MetricStats]

    @property
    def error_rate(self) -> float:
        return _rate(self.errors, self.num)

    @property
    def missing_rate(self) -> float:
        return _share(self.missing, self.num + self.errors + self.missing)


@dataclass(frozen=True)
class ScopeAggregate:
    subsets: dict[str, SubsetAggregate]
    macro: dict[str, MetricStats]
    micro: dict[str, MetricStats]
    num: int
    errors: int
    missing: int

    @property
    def error_rate(self) -> float:
        return _rate(self.errors, self.num)

    @property
    def missing_rate(self) -> float:
        return _share(self.missing, self.num + self.errors + self.missing)


@dataclass(frozen=True)
class Aggregates:
    full: ScopeAggregate
    intersection: ScopeAggregate
    expected_rows: int = 0
    seen_rows: int = 0

    def scope(self, name: str) -> ScopeAggregate:
        return self.full if name == "full" else self.intersection


def _rate(errors: int, scored: int) -> float:
    """error_rate: errors over the rows that were judged (scored or failed); missing rows were never judged."""
    return _share(errors, errors + scored)


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


def macro_stats(per_subset: list[MetricStats]) -> MetricStats:
    """Unweighted mean of subset means; its standard error combines the subsets' (independent) errors."""
    present = [s for s in per_subset if s.mean is not None]
    if not present:
        return MetricStats(None, 0, None)
    k = len(present)
    mean = math.fsum(s.mean for s in present) / k  # type: ignore[misc]
    n = sum(s.n for s in present)
    if any(s.stderr is None for s in present):
        return MetricStats(mean, n, None)
    return MetricStats(mean, n, math.sqrt(math.fsum(s.stderr**2 for s in present)) / k)  # type: ignore[operator]


def aggregate_scope(verdicts: list[Verdict], subset_order: Iterable[str]) -> ScopeAggregate:
    by_subset: dict[str, list[Verdict]] = {}
    for v in verdicts:
        by_subset.setdefault(v.subset, []).append(v)
    order = [s for s in subset_order if s in by_subset] + sorted(set(by_subset) - set(subset_order))
    subsets: dict[str, SubsetAggregate] = {}
    for name in order:
        rows = by_subset[name]
        scored = [v for v in rows if v.status == "scored"]
        subsets[name] = SubsetAggregate(
            num=len(scored),
            errors=sum(v.status == "error" for v in rows),
            missing=sum(v.status == "missing" for v in rows),
            metrics={m: mean_stats([v.metric(m) for v in scored]) for m in METRICS},  # type: ignore[misc]
        )
    all_scored = [v for v in verdicts if v.status == "scored"]
    return ScopeAggregate(
        subsets=subsets,
        macro={m: macro_stats([s.metrics[m] for s in subsets.values()]) for m in METRICS},
        micro={m: mean_stats([v.metric(m) for v in all_scored]) for m in METRICS},  # type: ignore[misc]
        num=len(all_scored),
        errors=sum(s.errors for s in subsets.values()),
        missing=sum(s.missing for s in subsets.values()),
    )


def aggregate(verdicts: list[Verdict], subset_order: Iterable[str], expected_rows: int) -> Aggregates:
    subset_order = list(subset_order)
    return Aggregates(
        full=aggregate_scope(verdicts, subset_order),
        intersection=aggregate_scope([v for v in verdicts if v.intersection], subset_order),
        expected_rows=expected_rows,
        seen_rows=len(verdicts),
    )
