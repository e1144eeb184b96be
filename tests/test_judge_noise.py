"""Repeated judging (--editeval-judge-samples): every question asked K times with its own seed, each answer cached on
its own, the row's scores from the samples in a stated order, the judge's spread per row, its standard error per
aggregate, a threshold on the spread, and a comparison whose interval includes the judge's noise. Runs as users
run them (pytester), against loopback judges that answer each seed differently, as a sampling judge does;
expectations are the tests' own arithmetic over what the judge server itself answered."""

import collections
import json
import math
import statistics
import subprocess
import sys

import pytest

from pytest_editeval.benchmarks import Parsed
from pytest_editeval.benchmarks.gedit import GEDIT
from pytest_editeval.benchmarks.imgedit import IMGEDIT
from pytest_editeval.benchmarks.kris import KRIS
from pytest_editeval.scoring import judge_noise
from pytest_editeval.testing import JudgeServer
from pytest_editeval.testing.judge_server import noisy

from .conftest import API_KEY, output_of

SC, PQ, OVERALL = "semantic_consistency", "perceptual_quality", "overall"
K = 4


@pytest.fixture
def noisy_judge():
    with JudgeServer(api_key=API_KEY, scores=noisy(amplitude=2, salt="first judging")) as server:
        yield server


def _server_replies(server) -> collections.Counter:
    """Every reply text the server sent (its rule applied to each request it received)."""
    return collections.Counter(server.reply(server.scores(call), call) for call in server.calls)


def _recorded_replies(data) -> collections.Counter:
    return collections.Counter(s["reply"] for row in data["samples"] for a in row["answers"].values()
                               for s in a["samples"])


@pytest.mark.slow  # several seconds: repeated judging of every row
def test_samples_are_asked_with_their_own_seeds_and_scored_mean_first(run, noisy_judge, en_rows, tmp_path):
    out = tmp_path / "r.json"
    result = run(f"--editeval-judge-url={noisy_judge.url}", f"--editeval-judge-samples={K}", f"--editeval-json={out}")
    assert result.ret == 0, output_of(result)
    requests = 2 * len(en_rows) * K
    assert noisy_judge.count == requests
    # Sample 0 is asked exactly as one sample always was (no seed: the official protocol sends none); sample k
    # with seed k: each distinct, each as often as the rows' questions.
    seeds = collections.Counter(call.body.get("seed") for call in noisy_judge.calls)
    assert seeds == {None: 2 * len(en_rows), 1: 2 * len(en_rows), 2: 2 * len(en_rows), 3: 2 * len(en_rows)}
    data = json.loads(out.read_text())
    # Every sample is kept, and the samples are exactly the judge's answers, one per request.
    assert _recorded_replies(data) == _server_replies(noisy_judge)
    assert data["judge"]["samples_per_question"] == K and data["judge"]["sample_average"] == "first"
    disagreeing = 0
    for row in data["samples"]:
        sc_k = [min(s["values"]) for s in row["answers"][SC]["samples"]]
        pq_k = [min(s["values"]) for s in row["answers"][PQ]["samples"]]
        assert len(sc_k) == len(pq_k) == K
        o_k = [math.sqrt(a * b) for a, b in zip(sc_k, pq_k)]
        # average_first: each question's mean over the samples, then the row formula once.
        sc, pq = statistics.fmean(sc_k), statistics.fmean(pq_k)
        assert row["scores"][SC] == pytest.approx(sc, abs=1e-12)
        assert row["scores"][PQ] == pytest.approx(pq, abs=1e-12)
        assert row["scores"][OVERALL] == pytest.approx(math.sqrt(sc * pq), abs=1e-12)
        assert [s[OVERALL] for s in row["sample_scores"]] == pytest.approx(o_k, abs=1e-12)
        assert row["judge_sd"][OVERALL] == pytest.approx(statistics.stdev(o_k), abs=1e-12)
        assert row["judge_sd"][SC] == pytest.approx(statistics.stdev(sc_k), abs=1e-12)
        disagreeing += len(set(o_k)) > 1
    assert disagreeing > len(en_rows) / 2  # the judge is noisy: the spreads measured are real ones
    # The judge's standard error: sqrt(sum of the rows' s^2 / K) / n, and combined over subsets for the macro mean.
    full = data["aggregates"]["full"]
    by_subset = collections.defaultdict(list)
    for row in data["samples"]:
        by_subset[row["subset"]].append(row["judge_sd"][OVERALL] ** 2 / K)
    micro = math.sqrt(sum(v for vs in by_subset.values() for v in vs)) / len(en_rows)
    per_subset = {s: math.sqrt(sum(vs)) / len(vs) for s, vs in by_subset.items()}
    macro = math.sqrt(sum(e * e for e in per_subset.values())) / len(per_subset)
    assert full["micro"][OVERALL]["judge_stderr"] == pytest.approx(micro, rel=1e-12)
    assert full["macro"][OVERALL]["judge_stderr"] == pytest.approx(macro, rel=1e-12)
    for subset, error in per_subset.items():
        assert full["subsets"][subset]["metrics"][OVERALL]["judge_stderr"] == pytest.approx(error, rel=1e-12)
    # judge_sd: the root mean square of the rows' spread of the headline metric.
    rms = math.sqrt(statistics.fmean(row["judge_sd"][OVERALL] ** 2 for row in data["samples"]))
    assert full["judge_sd"] == pytest.approx(rms, rel=1e-12)
    # The table shows both errors of each mean.
    header = next(line for line in result.outlines if "| Score |" in line)
    assert [c.strip() for c in header.strip("|").split("|")][-3:] == ["Score", "±", "± judge"]
    line = next(line for line in result.outlines if "| Overall" in line and "OVERALL (macro)" in line)
    assert line.split("|")[-2].strip() == f"{macro:.3f}"
    assert line.split("|")[-3].strip() == f"{full['macro'][OVERALL]['stderr']:.3f}"


def test_average_last_runs_the_formula_on_each_sample_then_averages(run, noisy_judge, tmp_path):
    first, last = tmp_path / "first.json", tmp_path / "last.json"
    assert run(f"--editeval-judge-url={noisy_judge.url}", f"--editeval-judge-samples={K}",
               f"--editeval-json={first}").ret == 0
    asked = noisy_judge.count
    result = run(f"--editeval-judge-url={noisy_judge.url}", f"--editeval-judge-samples={K}",
                 "--editeval-judge-average=last", f"--editeval-json={last}")
    assert result.ret == 0, output_of(result)
    assert noisy_judge.count == asked  # the order changes the arithmetic, not the answers: all from the cache
    rows_first = {r["id"]: r for r in json.loads(first.read_text())["samples"]}
    data = json.loads(last.read_text())
    assert data["judge"]["sample_average"] == "last"
    larger = 0
    for row in data["samples"]:
        o_k = [s[OVERALL] for s in row["sample_scores"]]
        assert row["scores"][OVERALL] == pytest.approx(statistics.fmean(o_k), abs=1e-12)
        other = rows_first[row["id"]]["scores"]
        # SC and PQ are linear in the answers: both orders agree. O, a geometric mean, is never smaller when the
        # samples are averaged first (Cauchy-Schwarz), and larger where they disagree.
        assert row["scores"][SC] == pytest.approx(other[SC], abs=1e-12)
        assert other[OVERALL] >= row["scores"][OVERALL] - 1e-12
        larger += other[OVERALL] > row["scores"][OVERALL] + 1e-9
    assert larger > 0


def test_the_html_report_shows_the_judges_share_of_each_mean_and_each_rows_spread(run, noisy_judge, tmp_path):
    out, html = tmp_path / "r.json", tmp_path / "r.html"
    result = run(f"--editeval-judge-url={noisy_judge.url}", f"--editeval-judge-samples={K}", f"--editeval-json={out}",
                 f"--editeval-html={html}")
    assert result.ret == 0, output_of(result)
    data, report = json.loads(out.read_text()), html.read_text()
    macro = data["aggregates"]["full"]["macro"][OVERALL]
    assert macro["judge_stderr"] > 0
    assert (f"{macro['mean']:.3f} <small>&plusmn; {macro['stderr']:.3f}</small> <small class='judge'>(judge "
            f"&plusmn; {macro['judge_stderr']:.3f})</small>") in report
    for sample in data["samples"]:
        assert f"data-judge_sd='{sample['judge_sd'][OVERALL]:.6f}'" in report
        assert f"<small class='judge'>judge sd {sample['judge_sd'][OVERALL]:.3f}</small>" in report
    assert "<option value='judge_sd-desc'>Judge spread high first</option>" in report
    assert f"Each question was asked {K} times" in report


@pytest.mark.slow  # several seconds: repeated judging of every row
def test_raising_the_samples_asks_only_the_new_ones(run, noisy_judge, en_rows, tmp_path):
    """Each sample is cached on its own, and sample 0 is the single-sample run's answer."""
    questions = 2 * len(en_rows)
    result = run(f"--editeval-judge-url={noisy_judge.url}")
    assert result.ret == 0 and noisy_judge.count == questions
    result = run(f"--editeval-judge-url={noisy_judge.url}", "--editeval-judge-samples=4")
    assert result.ret == 0 and noisy_judge.count == 4 * questions
    result.stdout.fnmatch_lines([f"judge requests: {3 * questions}; cache: {questions} hits, {3 * questions} computed"])
    result = run(f"--editeval-judge-url={noisy_judge.url}", "--editeval-judge-samples=8")
    assert result.ret == 0 and noisy_judge.count == 8 * questions
    result.stdout.fnmatch_lines([f"judge requests: {4 * questions}; cache: {4 * questions} hits, "
                                 f"{4 * questions} computed"])
    result = run(f"--editeval-judge-url={noisy_judge.url}", "--editeval-judge-samples=8")
    assert result.ret == 0 and noisy_judge.count == 8 * questions  # nothing new to ask


def test_a_threshold_gates_the_judge_spread(run, noisy_judge, tmp_path):
    out = tmp_path / "r.json"
    result = run(f"--editeval-judge-url={noisy_judge.url}", f"--editeval-judge-samples={K}", f"--editeval-json={out}",
                 "--editeval-threshold=judge_sd<=0.01", "--editeval-threshold=judge_sd[color_alter]<=10")
    data = json.loads(out.read_text())
    spread = data["aggregates"]["full"]["judge_sd"]
    color = data["aggregates"]["full"]["subsets"]["color_alter"]["judge_sd"]
    assert spread > 0.01 and 0 < color <= 10
    assert result.ret == 1
    result.stdout.fnmatch_lines([f"FAIL judge_sd<=0.01: actual {spread:.4f} (n=44)",
                                 f"PASS judge_sd[color_alter]<=10: actual {color:.4f} (n=4)",
                                 "editeval gate FAILED: 1 of 2 thresholds missed"])


def test_a_spread_threshold_without_samples_is_a_usage_error(run):
    result = run("--editeval-threshold=judge_sd<=0.5")
    assert result.ret == 4
    assert "threshold 'judge_sd<=0.5' gates the judge's spread over repeated answers: pass " \
           "--editeval-judge-samples 2 or more" in output_of(result)


@pytest.mark.slow  # pytest runs of its own, in subprocesses
def test_the_comparison_interval_includes_the_judge_noise(run, pytester, tmp_path):
    """The same images judged twice by the same (noisy) judge, 4 samples each: the paired difference is judge noise
    only. The interval that also redraws each row's samples is wider than the rows-only one, and covers 0."""
    from pytest_editeval.report.runs import load_run
    from pytest_editeval.scoring.compare import paired_delta

    for name, salt in (("first", "judging one"), ("second", "judging two")):
        with JudgeServer(api_key=API_KEY, scores=noisy(amplitude=3, salt=salt)) as server:
            result = run(f"--editeval-judge-url={server.url}", f"--editeval-judge-samples={K}",
                         f"--editeval-save={name}", f"--editeval-cache-dir={tmp_path / name}")
            assert result.ret == 0, output_of(result)
    result = subprocess.run([sys.executable, "-m", "pytest_editeval.cli", "compare", "first", "second",
                             "--compare-fail=overall:-0.5", f"--rootdir={pytester.path}"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("PASS compare overall:-0.5"))
    low, high = (float(x) for x in line.split("95% CI ")[1].split(",")[0].split(" to "))
    assert low < 0 < high
    runs = [load_run(name, pytester.path) for name in ("second", "first")]
    records = [r.sample_records() for r in runs]
    with_judge = paired_delta(*records, "overall")
    rows_only = paired_delta(*records, "overall", judge_noise=False)
    assert (with_judge.ci_low, with_judge.ci_high) == pytest.approx((low, high), abs=5e-4)
    assert with_judge.delta == rows_only.delta
    assert with_judge.ci_high - with_judge.ci_low > 1.1 * (rows_only.ci_high - rows_only.ci_low)


# ---- the statistics alone --------------------------------------------------------------------------------------
def test_weighted_median_and_mean():
    assert judge_noise.weighted_median([1, 5, 9], [1, 1, 1]) == 5
    assert judge_noise.weighted_median([1, 5, 9, 10], [1, 1, 1, 1]) == 7  # the two middle values' mean
    assert judge_noise.weighted_median([1, 5, 9], [1, 1, 3]) == 9  # 9 holds more than half the weight
    assert judge_noise.weighted_median([1, 5, 9], [2, 1, 1]) == 3  # exactly half below 5: between 1 and 5
    assert judge_noise.weighted_mean([2, 6], [1, 3]) == 5


def test_each_benchmark_combines_answers_as_its_row_formula_reads_them():
    mean = judge_noise.fmean
    # GEdit: each answer's min, averaged (EditScore averages SC_k = min(scores_k) the same way).
    combined = GEDIT.combine_answers(SC, [Parsed([6, 2]), Parsed([3, 9])], mean)
    assert combined.values == [2.5]
    # ImgEdit: each answer's mean sub-score (however many lines it kept), averaged; rounded once by the row.
    combined = IMGEDIT.combine_answers("score", [Parsed([5, 4, 4]), Parsed([3, 3])], mean)
    assert combined.values == [pytest.approx((13 / 3 + 3) / 2)]
    assert IMGEDIT.score_row(None, {"score": combined})["score"] == round((13 / 3 + 3) / 2, 2)
    # KRIS: value by value; one a sample could not read is averaged over the others.
    combined = KRIS.combine_answers("instruction", [Parsed({"if": 4, "kp": None}), Parsed({"if": 2, "kp": 5})], mean)
    assert combined.values == {"if": 3, "kp": 5} and combined.unreadable == ()


def test_one_answer_is_scored_exactly_as_before():
    answers = [[{SC: Parsed([6, 2]), PQ: Parsed([7, 8])}]]
    scores = judge_noise.score_samples(GEDIT, None, answers)
    assert scores.scores == GEDIT.score_row(None, answers[0][0]) and scores.judge_sd == {}
    assert scores.answers[SC] is answers[0][0][SC]


def test_resampled_rows_move_by_the_drawn_samples_mean():
    draws = iter([0, 0, 1])
    assert judge_noise.resampled_row(5.0, [4.0, 6.0, 8.0], lambda k: next(draws)) == pytest.approx(5.0 + 14 / 3 - 6)
    assert judge_noise.resampled_row(5.0, [4.0], lambda k: 0) == 5.0


def test_a_pooled_means_judge_error_counts_values_of_one_reply_together():
    """KRIS's AVG pools IF and KP, which one reply gives: when the judge moves both together, the row's share of
    the pooled mean moves by their sum, and the judge error is the SD of that sum, not of independent values."""
    from types import SimpleNamespace

    samples = [{"if": 50.0, "kp": 50.0}, {"if": 75.0, "kp": 75.0}, {"if": 25.0, "kp": 25.0}]
    row = SimpleNamespace(scores={"if": 50.0, "kp": 50.0}, sample_scores=samples,
                          judge_sd={"if": 25.0, "kp": 25.0})
    # Sums per sample 100, 150, 50: SD 50, over K=3 samples; two values pooled: n = 2.
    expected = math.sqrt(50.0 ** 2 / 3) / 2
    assert judge_noise.judge_stderr([row], ["if", "kp"], 2, pooled=True) == pytest.approx(expected)
    # Taken as independent values it would be sqrt(2) times smaller.
    independent = judge_noise.judge_stderr([row], ["if", "kp"], 2)
    assert independent == pytest.approx(expected / math.sqrt(2))
