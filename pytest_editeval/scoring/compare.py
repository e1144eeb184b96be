"""Comparison with a saved baseline run (pure functions), generic over the benchmark's metrics.

Rows are paired by key over the rows both runs scored, so that a changed error rate or a partial run cannot
masquerade as a quality change. Each difference comes with a 95% bootstrap confidence interval (rows
resampled within each subset, seeded, so the interval is reproducible) and n, so that a user can tell judge
noise from a real regression.

When rows were judged several times (--editeval-judge-samples), each resampled row's score is also redrawn from
its own samples (judge_noise.resampled_row: the K samples drawn with replacement), in both runs, so the interval
includes the judge's noise explicitly. This is deliberately conservative: a paired row's difference already
varies with the judge's noise, and redrawing the samples adds the judge's variance of the mean once more
(about judge_stderr^2 of each run), so the interval errs wide: judge noise is not called a regression.

Compare gates:  METRIC[\\[SUBSET\\]]:DELTA   e.g. `overall:-0.2` fails when the headline drops by more than 0.2,
`overall[text_change]:-0.5` when that subset's mean does. Without a subset the headline is averaged as the
benchmark's default (GEdit: macro, unweighted over subsets, as the official average; KRIS: micro, over rows).
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from pytest_editeval.scoring.gate import COUNT_METRICS, SPREAD_METRIC
from pytest_editeval.scoring.judge_noise import resampled_row

if TYPE_CHECKING:
    from pytest_editeval.benchmarks import Benchmark

_COMPARE = re.compile(r"^\s*(?P<metric>[a-z_]+)(?:\[(?P<subset>[^\[\]]+)\])?\s*:\s*(?P<delta>[-+]?(?:\d+(?:\.\d*)?|\.\d+))\s*$",
                      re.IGNORECASE)
BOOTSTRAP_ITERATIONS = 2000


@dataclass(frozen=True)
class CompareGate:
    expression: str
    metric: str
    subset: str | None
    max_drop: float  # the lowest delta (current - baseline) still accepted, e.g. -0.2
    members: tuple[str, ...] | None = None  # when `subset` names a group: its subsets, whose rows are pooled


@dataclass(frozen=True)
class PairedDelta:
    metric: str
    subset: str | None
    n: int
    current: float | None
    baseline: float | None
    delta: float | None
    ci_low: float | None
    ci_high: float | None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class CompareOutcome:
    gate: CompareGate
    delta: PairedDelta
    passed: bool


def parse_compare_gate(text: str) -> CompareGate:
    match = _COMPARE.match(text)
    if not match:
        raise ValueError(f"malformed compare gate {text!r}: expected e.g. 'overall:-0.2' or 'overall[text_change]:-0.5'")
    if match["metric"].lower() in COUNT_METRICS:
        raise ValueError(f"compare gate {text!r}: {match['metric']} is a rate, not a score; gate it with a threshold")
    if match["metric"].lower() == SPREAD_METRIC:
        raise ValueError(f"compare gate {text!r}: {SPREAD_METRIC} is the judge's spread, not a score; gate it with "
                         "a threshold")
    return CompareGate(text.strip(), match["metric"].lower(), match["subset"].strip() if match["subset"] else None,
                       float(match["delta"]))


def resolve_compare_gate(gate: CompareGate, benchmark: "Benchmark", known_subsets) -> CompareGate:
    aliases = benchmark.metric_aliases()
    metric = aliases.get(gate.metric)
    if metric is None:
        raise ValueError(f"unknown metric {gate.metric!r} in compare gate {gate.expression!r}: {benchmark.name} "
                         f"has {', '.join(sorted(aliases))}")
    if gate.subset is not None and gate.subset not in known_subsets:
        raise ValueError(f"unknown subset {gate.subset!r} in compare gate {gate.expression!r}: known subsets are "
                         + ", ".join(known_subsets))
    group = next((g for g in benchmark.groups if g.name == gate.subset), None)
    return replace(gate, metric=metric, members=tuple(group.subsets) if group is not None else None)


def _samples(record: dict, metric: str) -> list[float]:
    return [s[metric] for s in record.get("sample_scores") or () if s.get(metric) is not None]


def _pairs(current: list[dict], baseline: list[dict], metric: str, subsets: tuple[str, ...] | None) -> dict[str, list]:
    """subset -> [(current, baseline, current's samples, baseline's samples)] for the rows both runs scored on
    this metric, in `subsets` (None: all) (the samples: the row formula on each of the row's samples; empty with
    one sample)."""
    base = {s["key"]: s for s in baseline if s.get("status") == "scored"}
    out: dict[str, list] = {}
    for row in current:
        other = base.get(row["key"])
        if row.get("status") != "scored" or other is None or (subsets is not None and row["subset"] not in subsets):
            continue
        mine, theirs = row["scores"].get(metric), other["scores"].get(metric)
        if mine is None or theirs is None:
            continue
        out.setdefault(row["subset"], []).append((mine, theirs, _samples(row, metric), _samples(other, metric)))
    return out


def _macro(groups: list[list[float]]) -> float:
    return math.fsum(math.fsum(g) / len(g) for g in groups) / len(groups)


def _micro(groups: list[list[float]]) -> float:
    values = [v for g in groups for v in g]
    return math.fsum(values) / len(values)


def paired_delta(current: list[dict], baseline: list[dict], metric: str, subset: str | None = None,
                 averaging: str = "macro", seed: int = 0, judge_noise: bool = True,
                 members: tuple[str, ...] | None = None) -> PairedDelta:
    """`judge_noise=False` resamples rows only, even where rows have several samples. `members`: `subset` is a
    group of these subsets, whose rows are pooled (as the group's aggregate pools them)."""
    if members is not None:
        pairs = _pairs(current, baseline, metric, members)
        pairs = {subset or "": [p for g in pairs.values() for p in g]} if pairs else {}
    else:
        pairs = _pairs(current, baseline, metric, (subset,) if subset else None)
    n = sum(len(v) for v in pairs.values())
    if not n:
        return PairedDelta(metric, subset, 0, None, None, None, None, None)
    mean = _macro if averaging == "macro" else _micro
    groups = list(pairs.values())
    cur = mean([[p[0] for p in g] for g in groups])
    base = mean([[p[1] for p in g] for g in groups])
    rnd = random.Random(seed)
    if judge_noise and any(p[2] or p[3] for g in groups for p in g):
        def draw(group: list) -> float:
            c, b, cs, bs = group[rnd.randrange(len(group))]
            return resampled_row(c, cs, rnd.randrange) - resampled_row(b, bs, rnd.randrange)

        samples = sorted(mean([[draw(g) for _ in g] for g in groups]) for _ in range(BOOTSTRAP_ITERATIONS))
    else:  # rows only (the draws are exactly those of a run without samples)
        deltas = [[p[0] - p[1] for p in g] for g in groups]
        samples = sorted(mean([[d[rnd.randrange(len(d))] for _ in d] for d in deltas])
                         for _ in range(BOOTSTRAP_ITERATIONS))
    low = samples[int(0.025 * BOOTSTRAP_ITERATIONS)]
    high = samples[int(0.975 * BOOTSTRAP_ITERATIONS) - 1]
    return PairedDelta(metric, subset, n, cur, base, cur - base, low, high)


def compare_runs(current: list[dict], baseline: list[dict], gates: list[CompareGate], subsets: list[str],
                 metrics: list[str], averaging: str = "macro") -> tuple[list[PairedDelta], list[CompareOutcome]]:
    """Headline and per-subset paired deltas of every metric, and the gates' outcomes. Rows are records with
    `key`, `subset`, `status` and `scores` (results schema 2)."""
    deltas = [paired_delta(current, baseline, m, averaging=averaging) for m in metrics]
    deltas += [paired_delta(current, baseline, m, s, averaging=averaging) for s in subsets for m in metrics]
    outcomes = []
    for gate in gates:
        delta = paired_delta(current, baseline, gate.metric, gate.subset, averaging=averaging, members=gate.members)
        outcomes.append(CompareOutcome(gate, delta, delta.delta is not None and delta.delta >= gate.max_drop))
    return deltas, outcomes


def different_endpoints(baseline_judge: dict, current_judge: dict) -> tuple[str, str] | None:
    """The two endpoints (scheme, host, port and path) when two runs' judges share a model name but were asked
    at different endpoints: one name behind two providers (or two versions of a server) may be two judges. Files
    that name no endpoint (older ones, in-process judges) count as equal. The values come from files: shown
    escaped and cut."""
    a, b = baseline_judge.get("endpoint"), current_judge.get("endpoint")
    if not (isinstance(a, str) and isinstance(b, str) and a and b) or a == b:
        return None
    return printable(a), printable(b)


def printable(text: str, limit: int = 200) -> str:
    shown = "".join(c if c.isprintable() and not 0x202A <= ord(c) <= 0x202E and not 0x2066 <= ord(c) <= 0x2069
                    else c.encode("unicode_escape").decode("ascii") for c in text[:limit])
    return shown + ("..." if len(text) > limit else "")
