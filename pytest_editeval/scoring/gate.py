"""Threshold expressions and the gate (pure functions), generic over the benchmark's metrics, scopes and groups.

Grammar:  [SCOPE.][macro.|micro.]METRIC[\\[SUBSET_OR_GROUP\\]] OP NUMBER
  SCOPE   one of the benchmark's scopes (GEdit: full, intersection; default full)
  METRIC  one of the benchmark's metrics or their aliases (GEdit: semantic_consistency | perceptual_quality |
          overall, aliases sc, pq, o), or error_rate | missing_rate | judge_sd
  OP      >= > <= < ==
Examples: overall>=7.0, sc[color_alter]>=6.5, intersection.overall>7, micro.pq>=7, error_rate<=0.02.
Without a subset, METRIC is the benchmark's default mean (GEdit: macro, the official) unless `macro.`/`micro.`
is given. error_rate = rows whose judging failed / rows judged; missing_rate = rows without an edited image /
rows selected; judge_sd = the root mean square of the rows' judge spread (SD over their
--editeval-judge-samples) of the headline metric, in its units (judge_noise.py).

An expression is parsed for its form when the option is read (argparse) and resolved against the chosen
benchmark at configure time (metric, scope, subset or group names), both before any test runs.

Besides the thresholds, a selected row without an edited image fails the gate unless missing rows are allowed
(--editeval-allow-missing): a checkpoint that produced images for 2 of 44 rows must not pass on those 2.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from pytest_editeval.scoring.aggregate import Aggregates

if TYPE_CHECKING:
    from pytest_editeval.benchmarks import Benchmark

COUNT_METRICS = ("error_rate", "missing_rate")  # rates of rows, not means of scores
SPREAD_METRIC = "judge_sd"  # how much the judge disagrees with itself (repeated judging)
ROW_METRICS = (*COUNT_METRICS, SPREAD_METRIC)  # gate metrics that are not one of the benchmark's
AVERAGINGS = ("macro", "micro")
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
    re.VERBOSE | re.IGNORECASE,
)


@dataclass(frozen=True)
class Threshold:
    expression: str
    metric: str
    op: str
    value: float
    subset: str | None = None  # a subset or a group
    scope: str = "full"
    averaging: str | None = None  # macro | micro; None until resolved (the benchmark's default)
    prefixes: tuple[str, ...] = ()


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
    """Parse one expression's form; raises ValueError with a message that shows the accepted form."""
    match = _EXPRESSION.match(text)
    if not match:
        raise ValueError(
            f"malformed threshold {text!r}: expected e.g. 'overall>=7.0', 'sc[color_alter]>=6.5', "
            "'intersection.micro.pq>7' or 'error_rate<=0.02'"
        )
    return Threshold(
        expression=text.strip(), metric=match["metric"].lower(), op=match["op"], value=float(match["value"]),
        subset=match["subset"].strip() if match["subset"] else None,
        prefixes=tuple(p.lower() for p in filter(None, match["prefixes"].split("."))),
    )


def resolve_threshold(t: Threshold, benchmark: "Benchmark", known_subsets: Iterable[str],
                      what: str = "threshold") -> Threshold:
    """The threshold with its names checked against the benchmark and the run's subsets (ValueError: one line
    that lists what is accepted)."""
    scopes = [s.name for s in benchmark.scopes]
    scope, averaging = scopes[0], None
    for prefix in t.prefixes:
        if prefix in scopes:
            scope = prefix
        elif prefix in AVERAGINGS:
            averaging = prefix
        else:
            raise ValueError(f"unknown prefix {prefix!r} in {what} {t.expression!r}: use "
                             + ", ".join(f"{p}." for p in [*scopes, *AVERAGINGS]))
    aliases = benchmark.metric_aliases()
    metric = t.metric if t.metric in ROW_METRICS else aliases.get(t.metric)
    if metric is None:
        raise ValueError(f"unknown metric {t.metric!r} in {what} {t.expression!r}: {benchmark.name} has "
                         + ", ".join(sorted([*aliases, *ROW_METRICS])))
    known = [*known_subsets, *benchmark.group_names()]
    if t.subset is not None and t.subset not in known:
        raise ValueError(f"unknown subset {t.subset!r} in {what} {t.expression!r}: known subsets are "
                         + ", ".join(known))
    return replace(t, metric=metric, scope=scope, averaging=averaging or benchmark.default_averaging)


def actual_value(t: Threshold, aggregates: Aggregates) -> tuple[float | None, int]:
    scope = aggregates.scope(t.scope)
    # A subset or group, or the whole scope: the counting metrics read the same fields on either.
    part = scope if t.subset is None else scope.subsets.get(t.subset) or scope.groups.get(t.subset)
    if part is None:
        return None, 0
    if t.metric == "error_rate":
        return part.error_rate, part.num + part.errors
    if t.metric == "missing_rate":
        return part.missing_rate, part.num + part.errors + part.missing
    if t.metric == SPREAD_METRIC:
        return part.judge_sd, part.num
    if t.subset is not None:
        stats = part.metrics[t.metric]
    else:  # the whole scope averages its subsets (macro) or its rows (micro)
        stats = (scope.macro if t.averaging == "macro" else scope.micro)[t.metric]
    return stats.mean, stats.n


def evaluate_gate(thresholds: list[Threshold], aggregates: Aggregates, *, all_ran: bool, policy: str = "auto",
                  allow_missing: bool = False, stopped: str | None = None, withheld: str | None = None) -> GateResult:
    """policy: auto = gate only a run in which every selected row ran; always = gate whatever ran; never =
    report only. A run stopped by a fatal error is never gated (its exit status says why). `withheld`: why this
    run is not gated on its own under `auto` (a shard: its merge is gated)."""
    outcomes = []
    for t in thresholds:
        actual, n = actual_value(t, aggregates)
        passed = actual is not None and n > 0 and OPERATORS[t.op](actual, t.value)  # nothing measured never passes
        outcomes.append(ThresholdOutcome(t, actual, n, passed))
    if policy == "never":
        return GateResult(False, None, outcomes, reason="--editeval-gate=never")
    if stopped is not None:
        return GateResult(False, None, outcomes, reason=f"the run stopped: {stopped}")
    if withheld is not None and policy != "always":
        return GateResult(False, None, outcomes, reason=withheld)
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
