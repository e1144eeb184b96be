import math
import random

import pytest

from pytest_editeval.benchmarks import Parsed
from pytest_editeval.benchmarks.gedit import SUBSETS as GEDIT_SUBSETS
from pytest_editeval.benchmarks.viescore import score_row
from pytest_editeval.scoring.aggregate import macro_stats, mean_stats
from pytest_editeval.scoring.verdict import Verdict

from .rows import aggregate_gedit, gedit_row
from .rows import scored as _scored


def row_scores(sc, pq):
    scores = score_row({"semantic_consistency": Parsed(sc), "perceptual_quality": Parsed(pq)})
    return scores["semantic_consistency"], scores["perceptual_quality"], scores["overall"]


def test_row_formula_is_min_then_geometric_mean():
    assert row_scores([8, 6], [9, 4]) == (6.0, 4.0, math.sqrt(24.0))
    assert row_scores([7], [7]) == (7.0, 7.0, 7.0)
    assert row_scores([0, 10], [10, 10])[2] == 0.0


def _sample(i, subset, intersection=True):
    return gedit_row(i, subset, intersection)


def aggregate(verdicts, subsets, expected_rows):
    assert list(subsets) == list(GEDIT_SUBSETS)
    return aggregate_gedit(verdicts, expected_rows)


def test_macro_is_unweighted_mean_of_subset_means_and_micro_is_sample_weighted():
    verdicts = [_scored(0, "color_alter", 9, 9), _scored(1, "color_alter", 9, 9), _scored(2, "color_alter", 9, 9),
                _scored(3, "text_change", 3, 3)]
    agg = aggregate(verdicts, GEDIT_SUBSETS, expected_rows=4)
    assert agg.full.macro["semantic_consistency"].mean == pytest.approx((9 + 3) / 2)
    assert agg.full.micro["semantic_consistency"].mean == pytest.approx((9 * 3 + 3) / 4)
    assert agg.full.subsets["color_alter"].num == 3
    assert list(agg.full.subsets) == ["color_alter", "text_change"]  # official order


def test_errors_and_missing_are_counted_not_scored():
    verdicts = [_scored(0, "color_alter", 8, 8), Verdict.failed(_sample(1, "color_alter"), "judge down"),
                Verdict.missing(_sample(2, "color_alter"), "no image")]
    agg = aggregate(verdicts, GEDIT_SUBSETS, expected_rows=3)
    sub = agg.full.subsets["color_alter"]
    assert (sub.num, sub.errors, sub.missing) == (1, 1, 1)
    assert sub.metrics["overall"].mean == 8.0
    assert agg.full.error_rate == 0.5


def test_intersection_scope_only_holds_intersection_rows():
    verdicts = [_scored(0, "color_alter", 8, 8, True), _scored(1, "color_alter", 2, 2, False)]
    agg = aggregate(verdicts, GEDIT_SUBSETS, expected_rows=2)
    assert agg.scope('intersection').macro["overall"].mean == 8.0
    assert agg.full.macro["overall"].mean == 5.0


def test_aggregation_does_not_depend_on_finishing_order():
    rnd = random.Random(3)
    verdicts = [_scored(i, GEDIT_SUBSETS[i % 11], rnd.uniform(0, 10), rnd.uniform(0, 10)) for i in range(200)]
    first = aggregate(verdicts, GEDIT_SUBSETS, 200)
    rnd.shuffle(verdicts)
    assert aggregate(verdicts, GEDIT_SUBSETS, 200) == first


def test_spread_is_standard_error():
    stats = mean_stats([2.0, 4.0, 6.0])
    assert stats.mean == 4.0 and stats.n == 3
    assert stats.stderr == pytest.approx(2.0 / math.sqrt(3))
    assert mean_stats([5.0]).stderr is None
    assert mean_stats([]).mean is None
    macro = macro_stats([mean_stats([2.0, 4.0]), mean_stats([6.0, 8.0])])
    assert macro.mean == 5.0 and macro.n == 4
    assert macro.stderr == pytest.approx(math.sqrt(1.0 + 1.0) / 2)
