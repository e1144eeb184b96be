import pytest

from pytest_editeval.benchmarks.gedit import GEDIT
from pytest_editeval.benchmarks.gedit import SUBSETS as GEDIT_SUBSETS
from pytest_editeval.scoring.gate import evaluate_gate, resolve_threshold
from pytest_editeval.scoring.gate import parse_threshold as parse_form
from pytest_editeval.scoring.verdict import Verdict

from .rows import aggregate_gedit, gedit_row, scored


def parse_threshold(text):
    """Parsed for its form, then resolved against GEdit-Bench, as a run does before any test."""
    return resolve_threshold(parse_form(text), GEDIT, GEDIT_SUBSETS)


@pytest.mark.parametrize("text, metric, op, value, subset, scope, averaging", [
    ("overall>=7.0", "overall", ">=", 7.0, None, "full", "macro"),
    ("semantic_consistency[color_alter]>=6.5", "semantic_consistency", ">=", 6.5, "color_alter", "full", "macro"),
    ("intersection.overall>7", "overall", ">", 7.0, None, "intersection", "macro"),
    ("micro.perceptual_quality>=7", "perceptual_quality", ">=", 7.0, None, "full", "micro"),
    ("error_rate<=0.02", "error_rate", "<=", 0.02, None, "full", "macro"),
    ("sc[subject-add] < 3", "semantic_consistency", "<", 3.0, "subject-add", "full", "macro"),
    ("intersection.micro.pq==5", "perceptual_quality", "==", 5.0, None, "intersection", "micro"),
    (" o >= .5 ", "overall", ">=", 0.5, None, "full", "macro"),
])
def test_parse(text, metric, op, value, subset, scope, averaging):
    t = parse_threshold(text)
    assert (t.metric, t.op, t.value, t.subset, t.scope, t.averaging) == (metric, op, value, subset, scope, averaging)


@pytest.mark.parametrize("text, message", [
    ("overall>=", "malformed"), ("overall 7", "malformed"), ("overall=>7", "malformed"),
    ("quality>=7", "unknown metric"), ("weird.overall>=7", "unknown prefix"), ("", "malformed"),
])
def test_malformed(text, message):
    with pytest.raises(ValueError, match=message):
        parse_threshold(text)


def test_unknown_subset_is_rejected():
    with pytest.raises(ValueError, match="unknown subset 'colour'"):
        parse_threshold("sc[colour]>=1")


def _sample(i, subset):
    return gedit_row(i, subset)


def _agg(values):
    verdicts = [scored(i, s, v, v) for i, (s, v) in enumerate(values)]
    return aggregate_gedit(verdicts, expected_rows=len(values))


def test_gate_pass_fail_and_actual_values():
    agg = _agg([("color_alter", 8), ("text_change", 6)])
    result = evaluate_gate([parse_threshold("overall>=7"), parse_threshold("o[text_change]>=6.5"),
                            parse_threshold("error_rate<=0")], agg, all_ran=True)
    assert result.evaluated and not result.passed
    assert [(o.actual, o.n, o.passed) for o in result.outcomes] == [(7.0, 2, True), (6.0, 1, False), (0.0, 2, True)]


def test_threshold_of_zero_is_a_real_threshold_and_missing_subset_fails():
    agg = _agg([("color_alter", 0)])
    result = evaluate_gate([parse_threshold("overall>=0"), parse_threshold("o[text_change]>=0")], agg, all_ran=True)
    assert [o.passed for o in result.outcomes] == [True, False]
    assert result.outcomes[1].actual is None


def test_partial_runs_are_not_gated_unless_asked():
    agg = _agg([("color_alter", 1)])
    thresholds = [parse_threshold("overall>=7")]
    skipped = evaluate_gate(thresholds, agg, all_ran=False)
    assert not skipped.evaluated and skipped.passed is None and "partial run" in skipped.reason
    forced = evaluate_gate(thresholds, agg, all_ran=False, policy="always")
    assert forced.evaluated and not forced.passed
    never = evaluate_gate(thresholds, agg, all_ran=True, policy="never")
    assert not never.evaluated and never.passed is None


def test_missing_rows_fail_the_gate_unless_allowed_and_have_a_rate():
    rows = [("color_alter", 8), ("color_alter", 7), ("text_change", 6), ("text_change", 5)]
    verdicts = [scored(i, s, v, v) for i, (s, v) in enumerate(rows[:2])]
    verdicts += [Verdict.missing(_sample(i + 2, s), "no edited image") for i, (s, _) in enumerate(rows[2:])]
    agg = aggregate_gedit(verdicts, expected_rows=4)
    thresholds = [parse_threshold("overall>=0"), parse_threshold("missing_rate<=0.5"),
                  parse_threshold("missing_rate[text_change]<=0.5"), parse_threshold("error_rate<=0")]
    failed = evaluate_gate(thresholds, agg, all_ran=True)
    assert failed.evaluated and failed.passed is False
    assert failed.failures == ("2 of 4 selected rows have no edited image",)
    assert [(o.actual, o.n, o.passed) for o in failed.outcomes] == [
        (7.5, 2, True), (0.5, 4, True), (1.0, 2, False), (0.0, 2, True)]
    allowed = evaluate_gate(thresholds[:2], agg, all_ran=True, allow_missing=True)
    assert allowed.evaluated and allowed.passed and not allowed.failures
