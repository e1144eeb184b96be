"""The result table in EvalScope's shape (pure rendering).

Columns Model | Dataset | Metric | Subset | Num | Score; per metric one row per subset, then the headline rows:
OVERALL (macro) is the official GEdit-Bench average (unweighted mean of subset means), OVERALL (micro) is
EvalScope's sample-weighted mean, then the same two for the Intersection rows. Scores use 3 decimals, as the
official scorer prints them.
"""

from __future__ import annotations

from ..aggregate import Aggregates, MetricStats, ScopeAggregate
from ..gate import GateResult

METRIC_LABELS = {
    "semantic_consistency": "Semantic Consistency",
    "perceptual_quality": "Perceptual Quality",
    "overall": "Overall",
}


def _score(stats: MetricStats) -> str:
    return "-" if stats.mean is None else f"{stats.mean:.3f}"


def _baseline_value(baseline: dict | None, scope: str, averaging_or_subset: str, metric: str,
                    subset: bool) -> float | None:
    """A mean from a saved run's `aggregates` (plain dict), or None when it has no such row."""
    if baseline is None:
        return None
    part = baseline.get(scope, {})
    if subset:
        entry = part.get("subsets", {}).get(averaging_or_subset)
        return entry[metric]["mean"] if entry else None
    return part.get(averaging_or_subset, {}).get(metric, {}).get("mean")


def _with_baseline(row: list[object], current: float | None, base: float | None) -> list[object]:
    delta = "-" if current is None or base is None else f"{current - base:+.3f}"
    return [*row, "-" if base is None else f"{base:.3f}", delta]


def table_rows(aggregates: Aggregates, model: str, dataset: str, baseline: dict | None = None) -> list[list[object]]:
    rows: list[list[object]] = []
    headline: list[tuple[str, ScopeAggregate, str]] = [
        ("OVERALL (macro)", aggregates.full, "macro"),
        ("OVERALL (micro)", aggregates.full, "micro"),
        ("INTERSECTION (macro)", aggregates.intersection, "macro"),
        ("INTERSECTION (micro)", aggregates.intersection, "micro"),
    ]
    for metric, label in METRIC_LABELS.items():
        for name, subset in aggregates.full.subsets.items():
            stats = subset.metrics[metric]
            row = [model, dataset, label, name, subset.num, _score(stats)]
            if baseline is not None:
                row = _with_baseline(row, stats.mean, _baseline_value(baseline, "full", name, metric, True))
            rows.append(row)
        for row_label, scope, averaging in headline:
            stats = getattr(scope, averaging)[metric]
            row = [model, dataset, label, row_label, scope.num, _score(stats)]
            if baseline is not None:
                scope_name = "full" if scope is aggregates.full else "intersection"
                row = _with_baseline(row, stats.mean, _baseline_value(baseline, scope_name, averaging, metric, False))
            rows.append(row)
    return rows


def render_table(aggregates: Aggregates, model: str, dataset: str, baseline: dict | None = None) -> str:
    from tabulate import tabulate

    headers = ["Model", "Dataset", "Metric", "Subset", "Num", "Score"]
    align = ["left", "left", "left", "left", "right", "right"]
    if baseline is not None:
        headers += ["Baseline", "Delta"]
        align += ["right", "right"]
    return tabulate(table_rows(aggregates, model, dataset, baseline), headers=headers, tablefmt="pretty",
                    colalign=align)


def render_comparison(deltas, outcomes, baseline_name: str, evaluated: bool) -> list[tuple[str, bool]]:
    """(line, is_failure) pairs: headline paired deltas with their 95% CI, then each compare gate."""
    lines: list[tuple[str, bool]] = []
    for d in deltas:
        if d.subset is None:
            lines.append((f"vs {baseline_name}: {METRIC_LABELS[d.metric]} {_delta(d)}", False))
    for o in outcomes:
        mark = "PASS" if o.passed else "FAIL"
        lines.append((f"{mark} compare {o.gate.expression}: {_delta(o.delta)}", evaluated and not o.passed))
    return lines


def _delta(d) -> str:
    if d.delta is None:
        return "no row scored by both runs"
    return (f"{d.delta:+.3f} (95% CI {d.ci_low:+.3f} to {d.ci_high:+.3f}, n={d.n} paired rows; "
            f"{d.current:.3f} vs {d.baseline:.3f})")


def render_counts(aggregates: Aggregates) -> str:
    full = aggregates.full
    line = f"rows: {full.num} scored, {full.errors} errors, {full.missing} missing (no edited image)"
    if full.errors:
        line += f"; error rate {full.error_rate:.1%} (errors are excluded from the means)"
    return line


def render_gate(gate: GateResult) -> list[tuple[str, bool]]:
    """(line, is_failure) pairs: one per threshold, one per other failure (missing rows), then the verdict."""
    lines: list[tuple[str, bool]] = []
    for o in gate.outcomes:
        actual = "no scored rows" if o.actual is None else f"{o.actual:.4f}"
        mark = "PASS" if o.passed else "FAIL"
        lines.append((f"{mark} {o.threshold.expression}: actual {actual} (n={o.n})",
                      gate.evaluated and not o.passed))
    for failure in gate.failures:
        lines.append((f"FAIL {failure}", True))
    if not gate.outcomes and not gate.failures:
        return lines
    if not gate.evaluated:
        lines.append((f"editeval gate NOT APPLIED: {gate.reason}", False))
    elif gate.passed:
        lines.append(("editeval gate PASSED", False))
    else:
        missed = sum(not o.passed for o in gate.outcomes)
        causes = ([f"{missed} of {len(gate.outcomes)} thresholds missed"] if missed else []) + list(gate.failures)
        lines.append((f"editeval gate FAILED: {'; '.join(causes)}", True))
    return lines
