"""A panel of judges (--editeval-judge-panel FILE): answers combined per question by weighted mean or median, each
judge's own scores kept, per-judge table rows, each answer cached under its own judge (so a panel re-uses single
judge runs), and a bad panel file as one line naming the file and the key. Runs as users run them (pytester)
against loopback judges; the expectations are the tests' own arithmetic."""

import json
import math
import statistics

import pytest

from pytest_editeval.benchmarks import Parsed
from pytest_editeval.benchmarks.kris import KRIS
from pytest_editeval.scoring.judge_noise import reducer
from pytest_editeval.testing import JudgeServer, rule_scores

from .conftest import API_KEY, output_of
from .expected import expected_row

SC, PQ, OVERALL = "semantic_consistency", "perceptual_quality", "overall"


def shifted(by):
    """A judge that scores every answer `by` higher than the loopback rule (kept in 0..10)."""
    return lambda call: [min(10.0, max(0.0, v + by)) for v in rule_scores(call)]


def expected_scores(row, by):
    """(SC, PQ) of `row` by a judge shifted by `by`: each reply's min, as the rule gives it, shifted."""
    sc, pq, _ = expected_row(row)
    return min(10.0, max(0.0, sc + by)), min(10.0, max(0.0, pq + by))


@pytest.fixture
def judges():
    with JudgeServer(api_key=API_KEY, scores=shifted(0)) as a, JudgeServer(api_key=API_KEY, scores=shifted(2)) as b, \
            JudgeServer(api_key=API_KEY, scores=shifted(-3)) as c:
        yield {"judge-a": a, "judge-b": b, "judge-c": c}


@pytest.fixture
def panel_run(pytester, monkeypatch, gedit, edits, judges, tmp_path):
    monkeypatch.setenv("EDITEVAL_JUDGE_API_KEY", API_KEY)
    for name, server in judges.items():
        monkeypatch.setenv(f"{name.upper().replace('-', '_')}_URL", server.url)

    def _run(panel_text, *args):
        panel = tmp_path / "panel.toml"
        panel.write_text(panel_text)
        return pytester.runpytest("--editeval-benchmark=gedit", f"--editeval-dataset={gedit[0]}",
                                  f"--editeval-images={edits}", f"--editeval-cache-dir={tmp_path / 'cache'}",
                                  "--editeval-judge-backoff=0.01", "-p", "no:cacheprovider",
                                  f"--editeval-judge-panel={panel}", *args)

    return _run


def member(name, weight=1, **extra):
    lines = [f'name = "{name}"', 'model = "gpt-4.1"', f'url_variable = "{name.upper().replace("-", "_")}_URL"',
             f"weight = {weight}", *(f"{k} = {json.dumps(v)}" for k, v in extra.items())]
    return "[[judges]]\n" + "\n".join(lines) + "\n"


def test_a_weighted_mean_panel_keeps_every_judges_scores(panel_run, run, judges, en_rows, tmp_path):
    # A single-judge run of judge-a first: the panel then re-uses its answers (same judge, same cache key).
    single = tmp_path / "single.json"
    assert run(f"--editeval-judge-url={judges['judge-a'].url}", f"--editeval-json={single}").ret == 0
    assert judges["judge-a"].count == 2 * len(en_rows)
    out = tmp_path / "panel.json"
    html = tmp_path / "panel.html"
    result = panel_run(member("judge-a", 1) + member("judge-b", 3), f"--editeval-json={out}",
                       "--editeval-table-judges", f"--editeval-html={html}")
    assert result.ret == 0, output_of(result)
    assert judges["judge-a"].count == 2 * len(en_rows)  # all from the cache
    assert judges["judge-b"].count == 2 * len(en_rows)
    result.stdout.fnmatch_lines([f"judge requests: {2 * len(en_rows)}; cache: {2 * len(en_rows)} hits, "
                                 f"{2 * len(en_rows)} computed"])
    data = json.loads(out.read_text())
    by_key = {r.key: r for r in en_rows}
    for sample in data["samples"]:
        row = by_key[sample["key"]]
        (sc_a, pq_a), (sc_b, pq_b) = expected_scores(row, 0), expected_scores(row, 2)
        sc, pq = (1 * sc_a + 3 * sc_b) / 4, (1 * pq_a + 3 * pq_b) / 4
        assert sample["scores"][SC] == pytest.approx(sc, abs=1e-12)
        assert sample["scores"][PQ] == pytest.approx(pq, abs=1e-12)
        assert sample["scores"][OVERALL] == pytest.approx(math.sqrt(sc * pq), abs=1e-12)
        assert sample["judge_scores"]["judge-a"][OVERALL] == pytest.approx(math.sqrt(sc_a * pq_a), abs=1e-12)
        assert sample["judge_scores"]["judge-b"][SC] == pytest.approx(sc_b, abs=1e-12)
        assert set(sample["answers"][SC]["judges"]) == {"judge-a", "judge-b"}
    # Each judge's own aggregates: judge-a's are the single-judge run's.
    alone = json.loads(single.read_text())["aggregates"]["full"]["macro"][OVERALL]["mean"]
    assert data["judge_aggregates"]["judge-a"]["full"]["macro"][OVERALL]["mean"] == pytest.approx(alone, abs=1e-12)
    assert data["judge"]["backend"] == "panel" and data["judge"]["parameters"] == {"reduce": "mean"}
    assert [(m["name"], m["weight"], m["backend"]) for m in data["judge"]["panel"]] == [
        ("judge-a", 1.0, "openai"), ("judge-b", 3.0, "openai")]
    assert API_KEY not in out.read_text()
    # One row per judge in the table, after the panel's own headline rows.
    b_macro = data["judge_aggregates"]["judge-b"]["full"]["macro"][OVERALL]["mean"]
    line = next(line for line in result.outlines if "| Overall" in line and "OVERALL (macro) [judge-b]" in line)
    assert f"{b_macro:.3f}" in line
    assert "judge gpt-4.1 + ... (panel)" not in result.stdout.str()
    # The HTML report has the panel's judges: weight, own headline, usage (judge-a's all from the cache).
    report = html.read_text()
    judges_table = report[report.index("<table id='judges'>"):]
    judges_table = judges_table[:judges_table.index("</table>")]
    a_macro = data["judge_aggregates"]["judge-a"]["full"]["macro"][OVERALL]["mean"]
    assert f"<td>3</td><td>{b_macro:.3f}</td>" in judges_table and f"<td>1</td><td>{a_macro:.3f}</td>" in judges_table
    assert f"0 requests, 0 + 0 tokens; the cache saved {2 * len(en_rows)} answers" in judges_table
    assert API_KEY not in report
    assert "judge judge-a + judge-b (panel)" in result.stdout.str()


def test_a_median_panel_takes_the_middle_judge_per_question(panel_run, judges, en_rows, tmp_path):
    out = tmp_path / "panel.json"
    result = panel_run(member("judge-a") + member("judge-b") + member("judge-c"),
                       "--editeval-judge-panel-reduce=median", f"--editeval-json={out}")
    assert result.ret == 0, output_of(result)
    by_key = {r.key: r for r in en_rows}
    for sample in json.loads(out.read_text())["samples"]:
        row = by_key[sample["key"]]
        scores = [expected_scores(row, by) for by in (0, 2, -3)]
        sc, pq = statistics.median(s[0] for s in scores), statistics.median(s[1] for s in scores)
        assert (sample["scores"][SC], sample["scores"][PQ]) == pytest.approx((sc, pq), abs=1e-12)


def test_panel_samples_and_cost_per_judge(panel_run, judges, en_rows, tmp_path):
    out = tmp_path / "panel.json"
    result = panel_run(member("judge-a", price=[2, 8]) + member("judge-b", price=[1, 1]),
                       "--editeval-judge-samples=2", f"--editeval-json={out}")
    assert result.ret == 0, output_of(result)
    assert judges["judge-a"].count == judges["judge-b"].count == 4 * len(en_rows)
    data = json.loads(out.read_text())
    for entry in data["judge"]["panel"]:
        assert entry["usage"]["requests"] == 4 * len(en_rows) and entry["cost"]["usd"] > 0
    assert data["judge"]["cost"]["usd"] == pytest.approx(sum(m["cost"]["usd"] for m in data["judge"]["panel"]))
    result.stdout.fnmatch_lines(["judge tokens (judge-a): * prompt + * completion in 176 requests, $* at $2/$8 *",
                                 "judge tokens (judge-b): * in 176 requests, $* at $1/$1 *",
                                 "judge panel cost: $*"])


@pytest.mark.parametrize("text, message", [
    (member("judge-a") + 'temprature = 1\n', "judges[0].temprature: unknown key"),
    (member("judge-a") + 'key = "sk-123"\n', "judges[0].key: URLs and keys are never written in the panel file"),
    (member("judge-a", weight=0), "judges[0].weight: 0 must be a number > 0"),
    (member("judge-a") + member("judge-a"), "judges[1].name: 'judge-a' names two judges"),
    ('[[judges]]\nname = "x"\nmodel = "m"\nurl_variable = "NOT_SET_ANYWHERE"\n',
     "judges[0].url_variable: the environment variable NOT_SET_ANYWHERE (or a .env line) holds no URL"),
    (member("judge-a") + "temperature = nan\n", "judges[0].temperature: nan must be a finite number >= 0"),
    (member("judge-a") + 'allow_http = "no"\n', "judges[0].allow_http: 'no' must be true or false"),
    ('[[judges]]\nname = "x"\nmodel = "m"\nurl_variable = "BAD_PORT_URL"\n',
     "judges[0].url_variable: BAD_PORT_URL does not hold a valid URL: Port out of range"),
    (member("judge-a").replace('url_variable = "JUDGE_A_URL"', 'key_variable = "sk-proj-secret123"'),
     "judges[0].key_variable: expected the name of an environment variable (letters, digits and _, e.g. "
     "OPENAI_API_KEY), not its value"),
    ("judges = 3\n", "judges: expected a list of [[judges]] tables"),
    ("[[judges]\n", "not valid TOML"),
])
def test_a_bad_panel_file_is_one_line_naming_the_file_and_the_key(panel_run, monkeypatch, tmp_path, text, message):
    monkeypatch.setenv("BAD_PORT_URL", "http://127.0.0.1:99999/v1")
    result = panel_run(text)
    assert result.ret == 4
    errors = [line for line in result.errlines if line.startswith("ERROR: editeval:")]
    assert len(errors) == 1 and f"judge panel {tmp_path / 'panel.toml'}" in errors[0] and message in errors[0], \
        output_of(result)
    assert "sk-proj-secret123" not in output_of(result)


def test_panel_options_that_name_one_judge_are_refused(panel_run, judges):
    result = panel_run(member("judge-a"), f"--editeval-judge-url={judges['judge-a'].url}")
    assert result.ret == 4
    assert "--editeval-judge-url (or the ini key editeval_judge_url) names one judge; with --editeval-judge-panel each judge is named in" \
        in output_of(result)


@pytest.mark.parametrize("reduce, weights, expected", [("mean", [1, 1, 1], 4.5), ("median", [1, 1, 1], 4.5),
                                                       ("mean", [1, 3, 1], 4.25), ("median", [1, 3, 1], 4.0)])
def test_a_judge_without_a_value_takes_its_weight_out(reduce, weights, expected):
    """A KRIS answer can keep its IF and lose its KP (unreadable after the re-asks): the panel combines the other
    judges' values, each with its own weight, and the missing judge's weight is not counted."""
    answers = [Parsed({"IF": 3.0, "KP": None}), Parsed({"IF": 4.0, "KP": 4.0}), Parsed({"IF": 5.0, "KP": 5.0})]
    combined = KRIS.combine_answers("if_kp", answers, reducer(reduce, weights))
    assert combined.values["KP"] == pytest.approx(expected)
    nobody = KRIS.combine_answers("if_kp", [Parsed({"KP": None})] * 3, reducer(reduce, weights))
    assert nobody.values["KP"] is None and nobody.unreadable == ("KP",)
