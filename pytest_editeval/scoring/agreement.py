"""Agreement between two judges (pure functions): two saved runs of the same images, judged by different judges
or by one judge twice. This is how a team checks that a cheap local judge tracks the official one on its own data
before trusting it in CI, and how much of a difference between two runs is the judge alone.

Rows are paired by key over the rows both runs scored. Per metric, overall and per subset: Pearson, Spearman and
Kendall (tau-b, ties counted) correlations; the mean difference A - B with a 95% bootstrap interval (rows
resampled, seeded, so it is reproducible); pairwise ranking agreement, the share of row pairs both judges order
the same way (a tie in both counts as the same order); and the rows on which they disagree most.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

BOOTSTRAP_ITERATIONS = 2000
WORST_ROWS = 10


@dataclass(frozen=True)
class Agreement:
    metric: str
    subset: str | None  # None: every paired row
    n: int
    pearson: float | None
    spearman: float | None
    kendall: float | None
    mean_difference: float | None  # mean of A - B
    ci_low: float | None
    ci_high: float | None
    ranking_agreement: float | None  # share of row pairs ordered the same way by both
    worst: list[dict] = field(default_factory=list)  # [{key, subset, a, b, difference}], largest |A - B| first

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def pearson(x: list[float], y: list[float]) -> float | None:
    n = len(x)
    if n < 2:
        return None
    mx, my = math.fsum(x) / n, math.fsum(y) / n
    sxy = math.fsum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx = math.fsum((a - mx) ** 2 for a in x)
    syy = math.fsum((b - my) ** 2 for b in y)
    if sxx == 0 or syy == 0:
        return None  # a constant judge correlates with nothing
    return sxy / math.sqrt(sxx * syy)


def ranks(values: list[float]) -> list[float]:
    """Average ranks (1-based), ties sharing the mean of their positions."""
    order = sorted(range(len(values)), key=values.__getitem__)
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(x: list[float], y: list[float]) -> float | None:
    return pearson(ranks(x), ranks(y))


def _sign(value: float) -> int:
    return (value > 0) - (value < 0)


def kendall_and_ranking(x: list[float], y: list[float]) -> tuple[float | None, float | None]:
    """(Kendall's tau-b, the share of pairs both order the same way), in one pass over the pairs."""
    n = len(x)
    if n < 2:
        return None, None
    concordant = discordant = ties_x = ties_y = same = 0
    for i in range(n):
        for j in range(i + 1, n):
            sx, sy = _sign(x[i] - x[j]), _sign(y[i] - y[j])
            same += sx == sy
            if sx == 0 and sy == 0:
                continue
            if sx == 0:
                ties_x += 1
            elif sy == 0:
                ties_y += 1
            elif sx == sy:
                concordant += 1
            else:
                discordant += 1
    pairs = n * (n - 1) // 2
    denominator = math.sqrt((concordant + discordant + ties_x) * (concordant + discordant + ties_y))
    tau = (concordant - discordant) / denominator if denominator else None
    return tau, same / pairs


def mean_difference(differences: list[float], seed: int = 0) -> tuple[float | None, float | None, float | None]:
    if not differences:
        return None, None, None
    mean = math.fsum(differences) / len(differences)
    rnd = random.Random(seed)
    n = len(differences)
    samples = sorted(math.fsum(differences[rnd.randrange(n)] for _ in range(n)) / n
                     for _ in range(BOOTSTRAP_ITERATIONS))
    return mean, samples[int(0.025 * BOOTSTRAP_ITERATIONS)], samples[int(0.975 * BOOTSTRAP_ITERATIONS) - 1]


def paired(a_rows: list[dict], b_rows: list[dict], metric: str, subset: str | None = None) -> list[tuple[dict, float, float]]:
    """(row of A, A's value, B's value) for the rows both runs scored on `metric`, in A's order."""
    b_by_key = {r["key"]: r for r in b_rows if r.get("status") == "scored"}
    out = []
    for row in a_rows:
        other = b_by_key.get(row["key"])
        if row.get("status") != "scored" or other is None or (subset is not None and row["subset"] != subset):
            continue
        a, b = row["scores"].get(metric), other["scores"].get(metric)
        if a is not None and b is not None:
            out.append((row, float(a), float(b)))
    return out


def agreement(a_rows: list[dict], b_rows: list[dict], metric: str, subset: str | None = None) -> Agreement:
    pairs = paired(a_rows, b_rows, metric, subset)
    x, y = [a for _, a, _ in pairs], [b for _, _, b in pairs]
    tau, same = kendall_and_ranking(x, y)
    mean, low, high = mean_difference([a - b for a, b in zip(x, y)])
    worst = sorted(pairs, key=lambda p: (-abs(p[1] - p[2]), p[0]["key"]))[:WORST_ROWS]
    return Agreement(metric, subset, len(pairs), pearson(x, y), spearman(x, y), tau, mean, low, high, same,
                     [{"key": r["key"], "subset": r["subset"], "a": a, "b": b, "difference": a - b}
                      for r, a, b in worst])


def agreements(a_rows: list[dict], b_rows: list[dict], metrics: list[str], subsets: list[str]) -> list[Agreement]:
    """Every metric over all paired rows, then per subset."""
    out = [agreement(a_rows, b_rows, m) for m in metrics]
    out += [agreement(a_rows, b_rows, m, s) for m in metrics for s in subsets]
    return out
