"""Baselines, the regression gate, the compare CLI, the HTML report (in a real headless browser), JUnit and
pytest-html, and the Python API for test suites."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_editeval.benchmarks.gedit import GEDIT
from pytest_editeval.scoring.compare import paired_delta, parse_compare_gate, resolve_compare_gate
from pytest_editeval.testing.judge_server import rule_scores

from .conftest import output_of


def _row(key, subset, overall, status="scored"):
    return {"key": key, "subset": subset, "status": status,
            "scores": {"overall": overall, "semantic_consistency": overall, "perceptual_quality": overall}}


def _gate(text):
    return resolve_compare_gate(parse_compare_gate(text), GEDIT, ["text_change", "color_alter"])


def test_compare_gate_expressions():
    gate = _gate("overall[text_change]:-0.5")
    assert (gate.metric, gate.subset, gate.max_drop) == ("overall", "text_change", -0.5)
    assert _gate("sc:-0.2").metric == "semantic_consistency"
    for bad in ("overall-0.2", "error_rate:-1", "quality:-1", "overall:x", "o[colour]:-1"):
        with pytest.raises(ValueError):
            _gate(bad)


def test_paired_delta_pairs_rows_both_scored_and_gives_a_bootstrap_interval():
    base = [_row(f"k{i}", "a" if i < 6 else "b", 5.0 + (i % 3)) for i in range(12)]
    current = [_row(r["key"], r["subset"], r["scores"]["overall"] - 1.0) for r in base]
    current[0]["status"] = "error"  # unpaired: excluded from both sides
    current.append(_row("new", "a", 10.0))  # not in the baseline: excluded
    d = paired_delta(current, base, "overall")
    assert d.n == 11 and d.delta == pytest.approx(-1.0)
    assert d.ci_low == pytest.approx(-1.0) and d.ci_high == pytest.approx(-1.0)  # a constant shift has no noise
    noisy = [_row(r["key"], r["subset"], r["scores"]["overall"] + (0.5 if i % 2 else -0.7)) for i, r in enumerate(base)]
    d = paired_delta(noisy, base, "overall")
    assert d.ci_low < d.delta < d.ci_high and d.ci_low < 0
    assert paired_delta(noisy, base, "overall") == d  # seeded: reproducible
    assert paired_delta(noisy, base, "overall", subset="b").n == 6


@pytest.fixture
def saved_baseline(run, pytester):
    result = run("--editeval-save=good-ckpt")
    assert result.ret == 0
    path = pytester.path / ".editeval" / "runs" / "good-ckpt.json"
    assert path.is_file()
    return path


def _worse_judge(judge):
    judge.scores = lambda call: [max(0.0, s - 3) for s in rule_scores(call)] if "#text_change" in (call.instruction or "") \
        else rule_scores(call)


def test_saved_run_has_metadata(saved_baseline):
    data = json.loads(saved_baseline.read_text())
    meta = data["meta"]
    assert meta["name"] == "good-ckpt" and meta["protocol"] == "official" and meta["judge_model"] == "gpt-4.1"
    assert meta["model"] == "my-model" and meta["model_digest"] is None and re.match(r"\d{4}-\d\d-\d\dT", meta["timestamp"])
    assert {"python", "pytest-editeval", "pytest"} <= set(meta["versions"])


def test_regression_against_baseline_fails_the_gate(run, judge, saved_baseline, tmp_path):
    _worse_judge(judge)
    out = tmp_path / "cmp.json"
    result = run("--editeval-compare=good-ckpt", "--editeval-compare-fail=overall:-0.5",
                 "--editeval-compare-fail=overall[text_change]:-0.5", "--editeval-compare-fail=o[color_alter]:-0.1",
                 f"--editeval-json={out}", cache_dir=tmp_path / "fresh-cache")
    assert result.ret == 1, output_of(result)
    result.stdout.fnmatch_lines([
        "*Model*Score*Baseline*Delta*",
        "vs good-ckpt: Overall -* (95% CI * to *, n=44 paired rows; * vs *)",
        "PASS compare overall:-0.5: *",
        "FAIL compare overall[[]text_change]:-0.5: -* (95% CI*n=4 paired rows*",
        "PASS compare o[[]color_alter]:-0.1: +0.000*",
    ])
    data = json.loads(out.read_text())
    gates = {g["expression"]: g for g in data["comparison"]["gates"]}
    assert not gates["overall[text_change]:-0.5"]["passed"] and gates["overall:-0.5"]["passed"]
    assert data["comparison"]["baseline"]["name"] == "good-ckpt"


def test_missing_or_unreadable_baseline_is_a_usage_error(run, pytester, saved_baseline):
    missing = run("--editeval-compare=nope")
    assert missing.ret == 4 and "no saved run 'nope'" in output_of(missing) and "good-ckpt" in output_of(missing)
    (pytester.path / "broken.json").write_text("{not json")
    broken = run(f"--editeval-compare={pytester.path / 'broken.json'}")
    assert broken.ret == 4 and "cannot read saved run" in output_of(broken)
    no_baseline = run("--editeval-compare-fail=overall:-0.2")
    assert no_baseline.ret == 4 and "needs a baseline" in output_of(no_baseline)


@pytest.mark.slow  # pytest runs of its own, in subprocesses
def test_compare_cli(run, judge, saved_baseline, pytester, tmp_path):
    _worse_judge(judge)
    assert run("--editeval-save=new-ckpt", cache_dir=tmp_path / "other").ret == 0
    cli = [sys.executable, "-m", "pytest_editeval.cli", "compare", "good-ckpt", "new-ckpt",  # like diff: old first
           f"--rootdir={pytester.path}"]
    ok = subprocess.run(cli + ["--compare-fail=overall:-1"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "Overall" in ok.stdout and "text_change" in ok.stdout and "95% CI" in ok.stdout
    bad = subprocess.run(cli + ["--compare-fail=overall[text_change]:-0.5"], capture_output=True, text=True)
    assert bad.returncode == 1 and "FAIL compare overall[text_change]:-0.5: -" in bad.stdout
    assert "(95% CI " in bad.stdout and " paired rows; " in bad.stdout  # the CI as the plugin prints it
    missing = subprocess.run(cli[:4] + ["good-ckpt", "nope", f"--rootdir={pytester.path}"], capture_output=True, text=True)
    assert missing.returncode == 2 and "no saved run 'nope'" in missing.stderr
    script = Path(sys.executable).with_name("pytest-editeval")  # the console script is installed
    via_script = subprocess.run([str(script), *cli[3:], "--compare-fail=overall:-1"], capture_output=True, text=True)
    assert via_script.returncode == 0 and via_script.stdout == ok.stdout


@pytest.fixture
def html_report(run, judge, saved_baseline, tmp_path):
    def reply(scores, call):
        if call.instruction and "#color_alter-1" in call.instruction:
            return "no score </td><script>alert('judge')</script>"
        return json.dumps({"score": scores, "reasoning": "<img src=x onerror=alert(1)> looks fine"})
    judge.reply = reply
    path = tmp_path / "report.html"
    result = run(f"--editeval-html={path}", "--editeval-compare=good-ckpt", "--editeval-judge-parse-retries=0",
                 "--editeval-compare-fail=overall:-9", cache_dir=tmp_path / "html-cache")
    assert result.ret == 1  # the unreadable row is an error
    return path


def test_html_report_is_self_contained_escaped_and_complete(html_report):
    text = html_report.read_text()
    assert not re.search(r"""(src|href)=['"]?(https?:)?//""", text)  # nothing fetched from the network
    assert "<script>alert" not in text and "<img src=x" not in text
    assert "&lt;img src=x onerror=alert(1)&gt; looks fine" in text
    assert text.count("data:image/jpeg;base64,") == 2 * 44  # source and edited thumbnails of every row
    assert len(text) < 2_000_000
    assert "id='errors'" in text and "no score list in reply" in text
    assert "O baseline" in text and "Score distributions" in text and "<svg" in text
    # beside each delta: the paired difference with its 95% interval, and the compare gate's verdict on its row
    assert "O paired &Delta; (95% CI)" in text and "<b class='pass'>PASS overall:-9</b>" in text
    assert re.search(r"<td>[+-]\d\.\d{3} <small>\[-?\d\.\d{3}, -?\d\.\d{3}\] n=\d+</small>", text)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (.ci/run installs Debian's chromium)")
def test_html_report_renders_and_filters_in_a_real_browser(html_report, tmp_path):
    from PIL import Image

    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, *BROWSER_FLAGS, f"--user-data-dir={tmp_path / 'p1'}", "--window-size=1200,1600",
                    f"--screenshot={shot}", html_report.as_uri()], capture_output=True, timeout=120, check=True)
    image = Image.open(shot).convert("L")
    assert image.size == (1200, 1600) and image.getextrema()[0] < 100  # something dark (text) was drawn
    dom = subprocess.run([CHROMIUM, *BROWSER_FLAGS, f"--user-data-dir={tmp_path / 'p2'}", "--virtual-time-budget=3000",
                          "--dump-dom", html_report.as_uri() + "#subset=text_change&sort=overall-asc"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    rows = re.findall(r"<tr data-subset=\"([^\"]+)\"[^>]*?data-overall=\"([^\"]*)\"[^>]*?>", dom)
    shown = [(s, float(o)) for s, o in rows if s == "text_change"]
    hidden = re.findall(r"<tr data-subset=\"(?!text_change)[^\"]+\"[^>]*hidden", dom)
    assert len(shown) == 4 and len(hidden) == len(rows) - 4
    assert [o for _, o in shown] == sorted(o for _, o in shown)  # sorted by overall, ascending
    assert re.search(r'<span id="shown">4</span>', dom)


def test_pytest_html_gets_image_links_not_blobs(run, tmp_path):
    report = tmp_path / "pytest-report.html"
    result = run("-k", "color_alter", f"--html={report}", "--self-contained-html")
    assert result.ret == 0
    text = report.read_text()
    assert text.count("edited image") >= 4 and "file://" in text


def test_marker_api(pytester, run, edits, judge, gedit):
    pytester.makepyfile(test_quality=f"""
        import pytest

        @pytest.mark.editeval(benchmark="gedit", subsets=["color_alter", "text_change"], limit=2, images=r"{edits}")
        def test_headline(editeval_result):
            assert editeval_result.score("overall") >= 0.5
            assert editeval_result.score("sc", subset="color_alter") >= 0
            assert editeval_result.intersection.score("overall").n <= 4
            assert not editeval_result.errors and len(editeval_result.samples) == 4

        @pytest.mark.editeval(benchmark="gedit", subsets=["color_alter", "text_change"], limit=2, images=r"{edits}")
        def test_too_demanding(editeval_result):
            assert editeval_result.score("overall") >= 9.9
    """)
    result = pytester.runpytest(f"--editeval-judge-url={judge.url}", "-p", "no:cacheprovider",
                                f"--editeval-dataset={gedit[0]}", f"--editeval-cache-dir={pytester.path / 'c'}")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*assert * [[]overall, macro: n=4, stderr *] >= 9.9*"])
    assert judge.count == 8  # the slice was judged once for both tests


def test_marker_api_errors_are_one_line(pytester, judge):
    pytester.makepyfile("""
        import pytest

        @pytest.mark.editeval(benchmark="gedit", subsets=["color_alter"], colour="red")
        def test_a(editeval_result):
            pass

        def test_b(editeval_result):
            pass
    """)
    result = pytester.runpytest(f"--editeval-judge-url={judge.url}")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*editeval: @pytest.mark.editeval does not take colour*",
                                 "*editeval_result needs @pytest.mark.editeval*"])


def test_own_parametrized_test_with_sample_judge_and_source_fixtures(run, pytester, judge):
    pytester.makepyfile(test_own="""
        from PIL import Image

        def test_my_model(editeval_sample, editeval_source_image, editeval_judge):
            edited = Image.new("RGB", editeval_source_image.size, (37, 90, 160))
            verdict = editeval_judge(editeval_sample, edited)
            assert verdict.status == "scored" and verdict.metric("overall") is not None
    """)
    result = run("-k", "test_my_model and color_alter")
    result.assert_outcomes(passed=4, deselected=84)
    assert judge.count == 8
