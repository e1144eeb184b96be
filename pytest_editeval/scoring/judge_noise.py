"""How much of a score is the judge: repeated judging, panels of judges, and the judge's share of the error
(pure functions; the benchmark supplies only its own row formula and how answers to one question combine).

Samples. With `--editeval-judge-samples K` every question of a row is asked K times (sample k of each question
together make the row's k-th sample). Two orders give the row's scores:
  average_first (default)  the K answers to each question are averaged first (the benchmark's
                           `combine_answers`: GEdit averages each sample's min(scores), ImgEdit each sample's mean
                           sub-score, KRIS each value), then the row formula runs once on those means
                           (GEdit: O = sqrt(mean SC x mean PQ)). EditScore's `average_first`.
  average_last             the row formula runs on each sample, and its results are averaged
                           (GEdit: O = mean of sqrt(SC_k x PQ_k)). EditScore's `average_last` (its default).
For metrics that are linear in the answers (GEdit's SC and PQ, ImgEdit's score, KRIS's VC, VQ, IF, KP) both
orders give the same number; they differ for a non-linear formula (GEdit's O, a geometric mean, is larger under
average_first when the samples disagree).

The judge spread of a row, for each metric: the sample standard deviation (n - 1 in the denominator) of the
formula's result on each of the row's K samples. None with fewer than 2 samples.

Two standard errors of an aggregate mean:
  stderr        over rows, as always: SD of the row scores / sqrt(n). It contains the judge's noise too.
  judge_stderr  the judge's share alone: for a mean over n rows whose row i has spread s_i over K_i samples,
                  judge_stderr = sqrt(sum_i s_i^2 / K_i) / n
                (the variance of a mean of K_i samples is s_i^2 / K_i; rows are judged independently). Under
                average_first a non-linear metric's row score is not exactly the mean of its samples' scores and
                this is its first-order (delta-method) value. A pooled metric (KRIS's AVG) pools every value of
                every row: n is the number of values, and a row's term is the variance over its samples of the
                sum of its values (they come from the same replies, so their errors are not independent). A macro mean over S
                subsets combines the subsets' judge errors as the row errors are combined:
                  sqrt(sum_s judge_stderr_s^2) / S.
  judge_sd      (a threshold metric, `judge_sd<=0.5`, `judge_sd[subset]`): the root mean square, over the scored
                rows of the part, of the rows' spread of the benchmark's headline metric:
                  judge_sd = sqrt(mean_i s_i^2)
                the typical disagreement of the judge with itself on one row, in the headline's units.

Panels. Several judges answer each question; their answers (each judge's K samples first averaged as above) are
combined per question by their weighted mean or weighted median, then the row formula runs. Each judge's own
row scores are kept beside the panel's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_editeval.benchmarks import Benchmark, Parsed

AVERAGE_FIRST = "first"
AVERAGE_LAST = "last"
AVERAGE_ORDERS = (AVERAGE_FIRST, AVERAGE_LAST)
PANEL_REDUCTIONS = ("mean", "median")


# ---- basic statistics ----------------------------------------------------------------------------------------
def sample_sd(values: Sequence[float]) -> float | None:
    """Sample standard deviation (n - 1 in the denominator); None for fewer than 2 values."""
    n = len(values)
    if n < 2:
        return None
    mean = math.fsum(values) / n
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))


def weighted_mean(values: Sequence[float], weights: Sequence[float]) -> float:
    total = math.fsum(weights)
    return math.fsum(v * w for v, w in zip(values, weights)) / total


def weighted_median(values: Sequence[float], weights: Sequence[float]) -> float:
    """The value below which lies less than half the weight and at or below which lies at least half. Where the
    weight below a value is exactly half, the mean of it and the next value: with equal weights this is the
    ordinary median (the mean of the two middle values for an even count)."""
    pairs = sorted(zip(values, weights))
    half = math.fsum(weights) / 2
    cumulative = 0.0
    for i, (value, weight) in enumerate(pairs):
        cumulative += weight
        if math.isclose(cumulative, half, rel_tol=1e-12, abs_tol=1e-12) and i + 1 < len(pairs):
            return (value + pairs[i + 1][0]) / 2
        if cumulative > half:
            return value
    return pairs[-1][0]


Reduce = Callable[[Sequence["float | None"]], "float | None"]


def reducer(name: str, weights: Sequence[float]) -> Reduce:
    """The panel's per-question combination: weighted mean or weighted median of the judges' values. It takes one
    value per judge, in the panel's order, None where that judge has none (a KRIS answer without its KP): a value
    keeps its own judge's weight, a missing one takes its weight out; None when no judge has a value."""
    combine_values = weighted_median if name == "median" else weighted_mean

    def reduce(values: Sequence[float | None]) -> float | None:
        pairs = [(v, w) for v, w in zip(values, weights, strict=True) if v is not None]
        if not pairs:
            return None
        return combine_values([v for v, _ in pairs], [w for _, w in pairs])

    return reduce


def fmean(values: Sequence[float | None]) -> float | None:
    """The plain mean of the values that are there (None when none is): how a judge's samples combine."""
    present = [v for v in values if v is not None]
    return math.fsum(present) / len(present) if present else None


# ---- one row --------------------------------------------------------------------------------------------------
@dataclass
class RowScores:
    """What K samples (of one judge or of a panel) make of one row."""

    scores: dict[str, float | None]  # the row's scores (the order's combination)
    sample_scores: list[dict[str, float | None]]  # the row formula on each sample (for the spread and the CI)
    judge_sd: dict[str, float | None]  # per metric: SD over the samples
    answers: dict[str, "Parsed"]  # per question: what the row formula read under average_first
    judge_scores: dict[str, dict[str, float | None]] = field(default_factory=dict)  # a panel's judges, each alone


def combine(benchmark: "Benchmark", question: str, answers: Sequence["Parsed"], reduce: Reduce) -> "Parsed":
    """Answers to one question as one (a single answer is returned as it is, so one sample scores as always)."""
    if len(answers) == 1:
        return answers[0]
    return benchmark.combine_answers(question, list(answers), reduce)


def mean_scores(per_sample: Sequence[Mapping[str, float | None]]) -> dict[str, float | None]:
    """Each metric's mean over the samples that have it (None where none has)."""
    names = list(dict.fromkeys(name for scores in per_sample for name in scores))
    out: dict[str, float | None] = {}
    for name in names:
        present = [s[name] for s in per_sample if s.get(name) is not None]
        out[name] = fmean(present) if present else None
    return out


def spread(per_sample: Sequence[Mapping[str, float | None]]) -> dict[str, float | None]:
    """Each metric's sample SD over the samples (None with fewer than 2 values)."""
    names = list(dict.fromkeys(name for scores in per_sample for name in scores))
    return {name: sample_sd([s[name] for s in per_sample if s.get(name) is not None]) for name in names}


def score_samples(benchmark: "Benchmark", row, answers: Sequence[Sequence[Mapping[str, "Parsed"]]], *,
                  order: str = AVERAGE_FIRST, weights: Sequence[float] | None = None, reduce: str = "mean",
                  judge_names: Sequence[str] = ()) -> RowScores:
    """A row's scores from `answers[j][k][question]`: judge j's k-th answer to each question (one judge unless a
    panel; K samples each). See the module docstring for the two orders and the panel's combination."""
    judges = len(answers)
    samples = len(answers[0])
    questions = list(answers[0][0])
    across = reducer(reduce, weights or [1.0] * judges)

    def panel(per_judge: Sequence["Parsed"], question: str) -> "Parsed":
        return combine(benchmark, question, per_judge, across)

    # The k-th sample of the panel: each question's k-th answers combined across the judges.
    sample_answers = [{q: panel([answers[j][k][q] for j in range(judges)], q) for q in questions}
                      for k in range(samples)]
    sample_scores = [benchmark.score_row(row, sample) for sample in sample_answers]
    # Each judge's K samples averaged per question, then combined across the judges.
    averaged = [{q: combine(benchmark, q, [answers[j][k][q] for k in range(samples)], fmean) for q in questions}
                for j in range(judges)]
    first = {q: panel([averaged[j][q] for j in range(judges)], q) for q in questions}
    if order == AVERAGE_LAST:
        scores = mean_scores(sample_scores) if samples > 1 else dict(sample_scores[0])
    else:
        scores = benchmark.score_row(row, first)
    judge_scores = {}
    if judges > 1:
        for j, name in enumerate(judge_names):
            if order == AVERAGE_LAST:
                judge_scores[name] = mean_scores([benchmark.score_row(row, answers[j][k]) for k in range(samples)])
            else:
                judge_scores[name] = benchmark.score_row(row, averaged[j])
    return RowScores(scores=dict(scores), sample_scores=[dict(s) for s in sample_scores],
                     judge_sd=spread(sample_scores) if samples > 1 else {}, answers=first, judge_scores=judge_scores)


# ---- aggregates ------------------------------------------------------------------------------------------------
def row_judge_variances(verdict, metrics: Sequence[str]) -> list[float]:
    """s^2 / K of each of the row's values of `metrics` that has a spread (the variance of its K-sample mean)."""
    k = len(verdict.sample_scores)
    out = []
    for metric in metrics:
        sd = verdict.judge_sd.get(metric)
        if sd is None:
            continue
        present = sum(1 for s in verdict.sample_scores if s.get(metric) is not None)
        out.append(sd * sd / (present or k))
    return out


def row_pooled_variance(verdict, metrics: Sequence[str]) -> list[float]:
    """The judge variance of a row's share of a pooled mean (KRIS's AVG): the row's values of `metrics` come from
    the same replies (IF and KP share one), so their errors are not independent; the variance of their sum is
    taken over the samples directly, s_sum^2 / K (samples lacking one of the row's values left out)."""
    present = [m for m in metrics if verdict.scores.get(m) is not None]
    sums = [math.fsum(s[m] for m in present) for s in verdict.sample_scores
            if all(s.get(m) is not None for m in present)]
    sd = sample_sd(sums) if present else None
    return [] if sd is None else [sd * sd / len(sums)]


def judge_stderr(verdicts: Sequence, metrics: Sequence[str], n_values: int, *, pooled: bool = False) -> float | None:
    """sqrt(sum of the rows' judge variances) / n over the values a mean is taken of: one metric's s^2 / K per
    row, or for a pooled metric (`metrics`: every plain metric) the variance of each row's sum of values; None
    when no row has a spread."""
    if not n_values:
        return None
    per_row = row_pooled_variance if pooled else row_judge_variances
    variances = [v for verdict in verdicts for v in per_row(verdict, metrics)]
    if not variances:
        return None
    return math.sqrt(math.fsum(variances)) / n_values


def macro_judge_stderr(per_subset: Sequence[float | None]) -> float | None:
    """The judge error of an unweighted mean of S subset means: sqrt(sum_s e_s^2) / S (None if one lacks it)."""
    if not per_subset or any(e is None for e in per_subset):
        return None
    return math.sqrt(math.fsum(e * e for e in per_subset)) / len(per_subset)  # type: ignore[operator]


def rms_spread(verdicts: Sequence, metric: str) -> float | None:
    """judge_sd: the root mean square of the rows' spread of `metric` (None when no row has one)."""
    spreads = [v.judge_sd.get(metric) for v in verdicts]
    present = [s for s in spreads if s is not None]
    if not present:
        return None
    return math.sqrt(math.fsum(s * s for s in present) / len(present))


def resampled_row(score: float, samples: Sequence[float], draw: Callable[[int], int]) -> float:
    """A bootstrap draw of a row's score with the judge's noise: the row's score moved by the difference between
    the mean of K samples drawn with replacement and the mean of its samples. Under average_last this is exactly
    the mean of the drawn samples; under average_first its first-order equivalent."""
    k = len(samples)
    if k < 2:
        return score
    drawn = math.fsum(samples[draw(k)] for _ in range(k)) / k
    return score + drawn - math.fsum(samples) / k
