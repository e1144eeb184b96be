"""Threshold expressions and the quality gate (pure functions).

Grammar:  [full.|intersection.][macro.|micro.]METRIC[\\[SUBSET\\]] OP NUMBER
  METRIC  semantic_consistency | perceptual_quality | overall | error_rate | missing_rate   (aliases: sc, pq, o)
  OP      >= > <= < ==
Examples: overall>=7.0, sc[color_alter]>=6.5, intersection.overall>7, micro.pq>=7, error_rate<=0.02.
Without a subset, METRIC is the macro (official) mean unless `micro.` is given.
error_rate = rows whose judging failed / rows judged; missing_rate = rows without an edited image / rows selected.

Besides the thresholds, a selected row without an edited image fails the gate unless missing rows are allowed
(--editeval-allow-missing): a checkpoint that produced images for 2 of 44 rows must not pass on those 2.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from typing import Callable, Iterable

from .aggregate import Aggregates

METRIC_ALIASES = {
    "semantic_consistency": "semantic_consistency", "sc": "semantic_consistency",
    "perceptual_quality": "perceptual_quality", "pq": "perceptual_quality",
    "overall": "overall", "o": "overall",
    "error_rate": "error_rate",
    "missing_rate": "missing_rate",
}
COUNT_METRICS = ("error_rate", "missing_rate")  # rates of rows, not means of scores
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq,
}
_EXPRESSION = re.compile(
    r"""^\s*
    (?P<prefixes>(?:[a-z]+\.)*)
    (?P<metric>[a-z_]+)
    (?:\[(?P<subset>[^\[\]]+)\])?
    \s*(?P<op>>=|<=|==|>|<)\s*
    (?P<value>[-+]?(?:\d+(?:\.\d*)?|\.\d+))
    \s*$""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Threshold:
    expression: str
    metric: str
    op: str
    value: float
    subset: str | None = None
    scope: str = "full"  # full | intersection
    averaging: str = "macro"  # macro | micro (ignored for a single subset)


@dataclass(frozen=True)
class ThresholdOutcome:
    threshold: Threshold
    actual: float | None
    n: int
    passed: bool

    def to_dict(self) -> dict:
        return {"expression": self.threshold.expression, "actual": self.actual, "n": self.n,
                "passed": self.passed}


@dataclass(frozen=True)
class GateResult:
    evaluated: bool
    passed: bool | None  # None when the gate was not evaluated
    outcomes: list[ThresholdOutcome]
    reason: str | None = None  # why the gate was not evaluated
    failures: tuple[str, ...] = ()  # what failed the gate besides thresholds (rows without an edited image)

    def to_dict(self) -> dict:
        return {"evaluated": self.evaluated, "passed": self.passed, "reason": self.reason,
                "failures": list(self.failures), "thresholds": [o.to_dict() for o in self.outcomes]}


def parse_threshold(text: str) -> Threshold:
    """Parse one expression; raises ValueError with a message that shows the accepted form."""
    match = _EXPRESSION.match(text)
    if not match:
        raise ValueError(
            f"malformed threshold {text!r}: expected e.g. 'overall>=7.0', 'sc[color_alter]>=6.5', "
            "'intersection.micro.pq>7' or 'error_rate<=0.02'"
        )
    scope, averaging = "full", "macro"
    for prefix in filter(None, match["prefixes"].split(".")):
        if prefix in ("full", "intersection"):
            scope = prefix
        elif prefix in ("macro", "micro"):
            averaging = prefix
        else:
            raise ValueError(
                f"unknown prefix {prefix!r} in threshold {text!r}: use full., intersection., macro. or micro."
            )
    metric = METRIC_ALIASES.get(match["metric"])
    if metric is None:
        raise ValueError(
            f"unknown metric {match['metric']!r} in threshold {text!r}: use one of "
            + ", ".join(sorted(METRIC_ALIASES))
        )
    return Threshold(
        expression=text.strip(), metric=metric, op=match["op"], value=float(match["value"]),
        subset=match["subset"].strip() if match["subset"] else None, scope=scope, averaging=averaging,
    )


def check_subsets(thresholds: Iterable[Threshold], known_subsets: Iterable[str]) -> None:
    known = list(known_subsets)
    for t in thresholds:
        if t.subset is not None and t.subset not in known:
            raise ValueError(
                f"unknown subset {t.subset!r} in threshold {t.expression!r}: known subsets are "
                + ", ".join(known)
            )


def actual_value(t: Threshold, aggregates: Aggregates) -> tuple[float | None, int]:
    scope = aggregates.scope(t.scope)
    if t.subset is not None:
        sub = scope.subsets.get(t.subset)
        if sub is None:
            return None, 0
        if t.metric == "error_rate":
            return sub.error_rate, sub.num + sub.errors
        if t.metric == "missing_rate":
            return sub.missing_rate, sub.num + sub.errors + sub.missing
        stats = sub.metrics[t.metric]
        return stats.mean, stats.n
    if t.metric == "error_rate":
        return scope.error_rate, scope.num + scope.errors
    if t.metric == "missing_rate":
        return scope.missing_rate, scope.num + scope.errors + scope.missing
    stats = (scope.macro if t.averaging == "macro" else scope.micro)[t.metric]
    return stats.mean, stats.n


def evaluate_gate(thresholds: list[Threshold], aggregates: Aggregates, *, all_ran: bool, policy: str = "auto",
                  allow_missing: bool = False, stopped: str | None = None) -> GateResult:
    """policy: auto = gate only a run in which every selected row ran; always = gate whatever ran; never =
    report only. A run stopped by a fatal error is never gated (its exit status says why)."""
    outcomes = []
    for t in thresholds:
        actual, n = actual_value(t, aggregates)
        passed = actual is not None and OPERATORS[t.op](actual, t.value)
        outcomes.append(ThresholdOutcome(t, actual, n, passed))
    if policy == "never":
        return GateResult(False, None, outcomes, reason="--editeval-gate=never")
    if stopped is not None:
        return GateResult(False, None, outcomes, reason=f"the run stopped: {stopped}")
    if not all_ran and policy != "always":
        return GateResult(
            False, None, outcomes,
            reason=f"partial run: {aggregates.seen_rows} of {aggregates.expected_rows} rows ran "
            "(use --editeval-gate=always to gate a partial run)",
        )
    failures = []
    missing = aggregates.full.missing
    if missing and not allow_missing:
        failures.append(f"{missing} of {aggregates.seen_rows} selected rows have no edited image")
    return GateResult(True, not failures and all(o.passed for o in outcomes), outcomes, failures=tuple(failures))
