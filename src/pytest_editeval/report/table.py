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


def table_rows(aggregates: Aggregates, model: str, dataset: str) -> list[list[object]]:
    rows: list[list[object]] = []
    headline: list[tuple[str, ScopeAggregate, str]] = [
        ("OVERALL (macro)", aggregates.full, "macro"),
        ("OVERALL (micro)", aggregates.full, "micro"),
        ("INTERSECTION (macro)", aggregates.intersection, "macro"),
        ("INTERSECTION (micro)", aggregates.intersection, "micro"),
    ]
    for metric, label in METRIC_LABELS.items():
        for name, subset in aggregates.full.subsets.items():
            rows.append([model, dataset, label, name, subset.num, _score(subset.metrics[metric])])
        for row_label, scope, averaging in headline:
            stats = getattr(scope, averaging)[metric]
            rows.append([model, dataset, label, row_label, scope.num, _score(stats)])
    return rows


def render_table(aggregates: Aggregates, model: str, dataset: str) -> str:
    from tabulate import tabulate

    return tabulate(table_rows(aggregates, model, dataset),
                    headers=["Model", "Dataset", "Metric", "Subset", "Num", "Score"], tablefmt="pretty",
                    colalign=("left", "left", "left", "left", "right", "right"))


def render_counts(aggregates: Aggregates) -> str:
    full = aggregates.full
    line = f"rows: {full.num} scored, {full.errors} errors, {full.missing} missing (no edited image)"
    if full.errors:
        line += f"; error rate {full.error_rate:.1%} (errors are excluded from the means)"
    return line


def render_gate(gate: GateResult) -> list[tuple[str, bool]]:
    """(line, is_failure) pairs: one per threshold, then the verdict."""
    lines: list[tuple[str, bool]] = []
    for o in gate.outcomes:
        actual = "no scored rows" if o.actual is None else f"{o.actual:.4f}"
        mark = "PASS" if o.passed else "FAIL"
        lines.append((f"{mark} {o.threshold.expression}: actual {actual} (n={o.n})",
                      gate.evaluated and not o.passed))
    if not gate.outcomes:
        return lines
    if not gate.evaluated:
        lines.append((f"editeval gate NOT APPLIED: {gate.reason}", False))
    elif gate.passed:
        lines.append(("editeval gate PASSED", False))
    else:
        failed = sum(not o.passed for o in gate.outcomes)
        lines.append((f"editeval gate FAILED: {failed} of {len(gate.outcomes)} thresholds missed", True))
    return lines
