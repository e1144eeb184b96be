"""The result table (pure rendering), generic over the benchmark's metrics, scopes and groups.

Long layout (EvalScope's shape, GEdit): Model | Dataset | Metric | Subset | Num | Score | ±; per metric one row
per subset, then one per group, then the headline rows of each scope and averaging (GEdit: OVERALL (macro) is
the official average, OVERALL (micro) EvalScope's, then the same for the Intersection rows).
Wide layout (KRIS-Bench's published table): Model | Dataset | Subset | Num | one column per metric, the headline
metric's followed by its ±; subsets, then groups (dimensions, knowledge types), then the headline rows.
`±` is the mean's standard error over rows; with repeated judging a `± judge` column follows it, the judge's
share (judge_noise.py). With a panel and `--editeval-table-judges`, each judge's own headline rows follow the
panel's, marked `[judge name]`.
Scores use the metric's decimals, as its official scorer prints them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_editeval.scoring.aggregate import Aggregates, MetricStats
from pytest_editeval.scoring.gate import SPREAD_METRIC, GateResult

if TYPE_CHECKING:
    from pytest_editeval.benchmarks import Benchmark


def _fmt(value: float | None, decimals: int) -> str:
    return "-" if value is None else f"{value:.{decimals}f}"


def _baseline_mean(baseline: dict | None, scope: str, kind: str, name: str | None, metric: str) -> float | None:
    """A mean from a saved run's `aggregates` (plain dict): kind is subsets, groups, macro or micro."""
    if baseline is None:
        return None
    part = baseline.get(scope, {})
    if kind in ("subsets", "groups"):
        entry = part.get(kind, {}).get(name)
        stats = entry["metrics"].get(metric) if entry else None
    else:
        stats = part.get(kind, {}).get(metric)
    return stats["mean"] if stats else None


def _lines(aggregates: Aggregates, benchmark: "Benchmark") -> list[tuple[str, str, str | None, str, object]]:
    """(label, scope, name, kind, part) for every row of the table, in order: subsets, groups, headlines."""
    full_name = benchmark.scopes[0].name
    full = aggregates.scope(full_name)
    lines = [(name, full_name, name, "subsets", part) for name, part in full.subsets.items()]
    lines += [(name, full_name, name, "groups", part) for name, part in full.groups.items()]
    for scope in benchmark.scopes:
        agg = aggregates.scope(scope.name)
        for averaging in benchmark.table_averagings:
            label = f"{scope.label} ({benchmark.averaging_labels[averaging]})"
            lines.append((label, scope.name, None, averaging, agg))
    return lines


def _stats(kind: str, part, metric: str) -> tuple[MetricStats, int]:
    if kind in ("subsets", "groups"):
        return part.metrics[metric], part.num
    return getattr(part, kind)[metric], part.num


def judged_repeatedly(aggregates: Aggregates) -> bool:
    """Whether any mean has a judge error (the table then shows its `± judge` column)."""
    for scope in aggregates.scopes.values():
        parts = [*scope.subsets.values(), *scope.groups.values()]
        stats = [s for p in parts for s in p.metrics.values()] + [*scope.macro.values(), *scope.micro.values()]
        if any(s.judge_stderr is not None for s in stats):
            return True
    return False


def _judge_lines(benchmark: "Benchmark", judge_aggregates: dict[str, Aggregates] | None):
    """(label, scope, None, averaging, part) of each panel judge's headline rows."""
    out = []
    for judge, aggregates in (judge_aggregates or {}).items():
        for scope in benchmark.scopes:
            agg = aggregates.scope(scope.name)
            for averaging in benchmark.table_averagings:
                out.append((f"{scope.label} ({benchmark.averaging_labels[averaging]}) [{judge}]", None, None,
                            averaging, agg))
    return out


def table_rows(aggregates: Aggregates, benchmark: "Benchmark", model: str, dataset: str,
               baseline: dict | None = None, judge_aggregates: dict[str, Aggregates] | None = None
               ) -> list[list[object]]:
    rows: list[list[object]] = []
    lines = _lines(aggregates, benchmark)
    judge_lines = _judge_lines(benchmark, judge_aggregates)
    judged = judged_repeatedly(aggregates)
    if benchmark.table_layout == "wide":
        shown_for = {g.name: g.metrics for g in benchmark.groups}
        for label, scope, name, kind, part in lines + judge_lines:
            row: list[object] = [model, dataset, label, part.num]
            for metric in benchmark.metrics:
                stats, _ = _stats(kind, part, metric.name)
                only = shown_for.get(name) if kind == "groups" else None
                hidden = only is not None and metric.name not in only
                cell = "" if hidden else _fmt(stats.mean, metric.decimals)
                base = _baseline_mean(baseline, scope, kind, name, metric.name) if scope else None
                if cell and baseline is not None and stats.mean is not None and base is not None:
                    cell += f" ({stats.mean - base:+.{metric.decimals}f})"
                row.append(cell)
                if metric.name == benchmark.headline_metric:
                    row.append("" if hidden else _fmt(stats.stderr, metric.decimals))
                    if judged:
                        row.append("" if hidden else _fmt(stats.judge_stderr, metric.decimals))
            rows.append(row)
        return rows
    for metric in benchmark.metrics:
        for label, scope, name, kind, part in lines + judge_lines:
            stats, num = _stats(kind, part, metric.name)
            if stats.n == 0 and kind == "groups":
                continue  # a group without this metric (KRIS's KP outside the knowledge dimensions)
            row = [model, dataset, metric.label, label, num, _fmt(stats.mean, metric.decimals),
                   _fmt(stats.stderr, metric.decimals)]
            if judged:
                row.append(_fmt(stats.judge_stderr, metric.decimals))
            if baseline is not None:
                base = _baseline_mean(baseline, scope, kind, name, metric.name) if scope else None
                delta = "-" if stats.mean is None or base is None else f"{stats.mean - base:+.{metric.decimals}f}"
                row += [_fmt(base, metric.decimals), delta]
            rows.append(row)
    return rows


def render_table(aggregates: Aggregates, benchmark: "Benchmark", model: str, dataset: str,
                 baseline: dict | None = None, judge_aggregates: dict[str, Aggregates] | None = None) -> str:
    from tabulate import tabulate

    spread = ["±", "± judge"] if judged_repeatedly(aggregates) else ["±"]
    if benchmark.table_layout == "wide":
        headers = ["Model", "Dataset", "Subset", "Num"]
        for m in benchmark.metrics:
            headers += [m.short, *spread] if m.name == benchmark.headline_metric else [m.short]
        align = ["left", "left", "left", *("right" for _ in headers[3:])]
    else:
        headers = ["Model", "Dataset", "Metric", "Subset", "Num", "Score", *spread]
        align = ["left", "left", "left", "left", *("right" for _ in headers[4:])]
        if baseline is not None:
            headers += ["Baseline", "Delta"]
            align += ["right", "right"]
    return tabulate(table_rows(aggregates, benchmark, model, dataset, baseline, judge_aggregates), headers=headers,
                    tablefmt="pretty", colalign=align)


def render_comparison(deltas, outcomes, baseline_name: str, evaluated: bool, labels: dict[str, str],
                      decimals: int = 3) -> list[tuple[str, bool]]:
    """(line, is_failure) pairs: headline paired deltas with their 95% CI, then each compare gate."""
    lines: list[tuple[str, bool]] = []
    for d in deltas:
        if d.subset is None:
            lines.append((f"vs {baseline_name}: {labels.get(d.metric, d.metric)} {_delta(d, decimals)}", False))
    for o in outcomes:
        mark = "PASS" if o.passed else "FAIL"
        lines.append((f"{mark} compare {o.gate.expression}: {_delta(o.delta, decimals)}", evaluated and not o.passed))
    return lines


def _delta(d, decimals: int = 3) -> str:
    if d.delta is None:
        return "no row scored by both runs"
    f = f"+.{decimals}f"
    return (f"{d.delta:{f}} (95% CI {d.ci_low:{f}} to {d.ci_high:{f}}, n={d.n} paired rows; "
            f"{d.current:.{decimals}f} vs {d.baseline:.{decimals}f})")


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
        if o.n == 0 and o.threshold.metric != SPREAD_METRIC:
            actual = "none: no rows were judged"
        elif o.actual is not None:
            actual = f"{o.actual:.4f}"
        elif o.threshold.metric == SPREAD_METRIC:
            actual = "no judge spread (each question was asked once: pass --editeval-judge-samples 2 or more)"
        else:
            actual = "no scored rows"
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
