"""How far two judges agree: the statistics against hand-computed values, and `pytest-editeval agreement` on
two saved runs of the same images, as a team runs it before trusting a cheaper judge."""

import json
import math

import pytest

from pytest_editeval.scoring.agreement import agreement, kendall_and_ranking, pearson, ranks, spearman
from pytest_editeval.testing.judge_server import rule_scores


def test_correlations_against_hand_computed_values():
    x = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert pearson(x, [2 * v for v in x]) == pytest.approx(1.0)
    assert spearman(x, [v ** 3 for v in x]) == pytest.approx(1.0)  # monotone: ranks agree exactly
    assert pearson(x, [-v for v in x]) == pytest.approx(-1.0)
    assert pearson(x, [3.0] * 5) is None  # a constant judge correlates with nothing
    assert ranks([10.0, 20.0, 20.0, 5.0]) == [2.0, 3.5, 3.5, 1.0]
    # x has one tie: 5 concordant pairs, 0 discordant, 1 tied in x only -> tau-b = 5 / sqrt(6 * 5)
    tau, same = kendall_and_ranking([1.0, 2.0, 2.0, 3.0], [1.0, 3.0, 2.0, 4.0])
    assert tau == pytest.approx(5 / math.sqrt(30)) and same == pytest.approx(5 / 6)


def test_agreement_pairs_rows_both_scored_and_names_the_largest_disagreements():
    def row(key, value, status="scored"):
        return {"key": key, "subset": "s", "status": status, "scores": {"overall": value}}

    a = [row(f"k{i}", float(i)) for i in range(8)] + [row("only-a", 5.0)]
    b = [row(f"k{i}", float(i) + (3.0 if i == 2 else 0.0)) for i in range(8)] + [row("k9", 1.0, "error")]
    result = agreement(a, b, "overall")
    assert result.n == 8 and result.worst[0]["key"] == "k2" and result.worst[0]["difference"] == -3.0
    assert result.mean_difference == pytest.approx(-3 / 8) and result.ci_low <= -3 / 8 <= result.ci_high


@pytest.mark.slow  # several seconds: two runs of 44 rows
def test_agreement_cli_on_two_saved_runs(run, judge, pytester, tmp_path, capsys):
    from pytest_editeval.cli import main

    assert run("--editeval-save=judge-a", "--editeval-judge-model=big-judge").ret == 0
    judge.scores = lambda call: [min(10.0, s + 1) for s in rule_scores(call)] if "#text_change" in (
        call.instruction or "") else rule_scores(call)
    assert run("--editeval-save=judge-b", "--editeval-judge-model=small-judge").ret == 0
    runs = pytester.path / ".editeval" / "runs"
    capsys.readouterr()
    out, html = tmp_path / "agree.json", tmp_path / "agree.html"
    code = main(["agreement", str(runs / "judge-a.json"), str(runs / "judge-b.json"), f"--json={out}",
                 f"--html={html}"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "big-judge" in printed and "small-judge" in printed and "Same order" in printed
    assert "largest disagreements, Overall: " in printed
    data = json.loads(out.read_text())
    overall = next(a for a in data["agreements"] if a["metric"] == "semantic_consistency" and a["subset"] is None)
    assert overall["n"] == 44 and overall["mean_difference"] == pytest.approx(-4 / 44)  # +1 on 4 of 44 rows' SC
    same = next(a for a in data["agreements"] if a["metric"] == "perceptual_quality" and a["subset"] is None)
    assert same["pearson"] == pytest.approx(1.0) and same["ranking_agreement"] == 1.0  # PQ unchanged
    assert "id='agreement'" in html.read_text()
    assert main(["agreement", str(runs / "judge-a.json"), str(tmp_path / "nope.json")]) == 2
