"""What a new user meets first, run the way a user runs it: options without a benchmark, re-runs that must not
replace a complete run's files, a gate over no rows, ini thresholds replaced from the command line, the demo
of every benchmark, `compare` across judge endpoints, the cache counters, the version, model mode on the CPU."""

from __future__ import annotations

import json
import os

import pytest

from .conftest import output_of


# ---- options without a benchmark ---------------------------------------------------------------------------
@pytest.mark.slow  # several seconds: pytest runs of its own, in subprocesses
def test_gate_options_on_the_command_line_without_a_benchmark_are_a_usage_error(pytester, edits):
    pytester.makepyfile("def test_plain(): pass")
    for args, named in ((["--editeval-threshold=overall>=7"], "--editeval-threshold"),
                        ([f"--editeval-images={edits}"], "--editeval-images"),
                        ([f"--editeval-images={edits}", "--editeval-threshold=overall>=7"], "--editeval-threshold")):
        result = pytester.runpytest_subprocess(*args)
        assert result.ret == 4, output_of(result)
        lines = [line for line in output_of(result).splitlines() if "without --editeval-benchmark" in line]
        assert len(lines) == 1 and named in lines[0] and "add --editeval-benchmark NAME" in lines[0]
        assert "passed" not in output_of(result)


def test_the_same_options_in_an_ini_file_keep_one_warning(pytester, edits):
    pytester.makepyfile("def test_plain(): pass")
    pytester.makeini(f"""
        [pytest]
        editeval_images = {edits}
        editeval_thresholds =
            overall>=7
    """)
    result = pytester.runpytest_subprocess()
    assert result.ret == 0
    result.stdout.fnmatch_lines(["editeval: editeval_images, editeval_thresholds given, but nothing is evaluated: "
                                 "add --editeval-benchmark*"])


@pytest.mark.slow  # several seconds: pytest runs of its own, in a subprocess
def test_images_on_the_command_line_serve_a_marked_test(pytester, gedit, edits, judge, monkeypatch):
    from .conftest import API_KEY

    monkeypatch.setenv("EDITEVAL_JUDGE_API_KEY", API_KEY)
    pytester.makepyfile(f"""
        import pytest

        @pytest.mark.editeval(benchmark="gedit", dataset={str(gedit[0])!r}, subsets=["color_alter"], limit=2)
        def test_slice(editeval_result):
            assert editeval_result.score("overall") > 0
    """)
    result = pytester.runpytest_subprocess(f"--editeval-images={edits}", f"--editeval-judge-url={judge.url}",
                                           "-p", "no:cacheprovider")
    assert result.ret == 0, output_of(result)
    result.assert_outcomes(passed=1)


# ---- a run that is not complete keeps the complete run's files ---------------------------------------------
@pytest.mark.slow  # several seconds: three runs of all 44 rows
def test_a_rerun_that_is_not_complete_writes_beside_the_complete_run(run, tmp_path):
    out, html = tmp_path / "results.json", tmp_path / "report.html"
    complete = run(f"--editeval-json={out}", f"--editeval-html={html}")
    assert complete.ret == 0
    before_json, before_html = out.read_bytes(), html.read_bytes()
    assert json.loads(before_json)["complete"] is True
    partial = run(f"--editeval-json={out}", f"--editeval-html={html}", "-k", "color_alter")
    assert out.read_bytes() == before_json and html.read_bytes() == before_html
    beside_json, beside_html = tmp_path / "results.incomplete.json", tmp_path / "report.incomplete.html"
    assert len(json.loads(beside_json.read_bytes())["samples"]) == 4
    partial.stdout.fnmatch_lines([
        f"results written to {beside_json}; {out} kept as it was (it holds 44 scored rows of a complete run and "
        "this run is incomplete)",
        f"HTML report written to {beside_html}; {html} kept as it was (it holds 44 scored rows of a complete run "
        "and this run is incomplete)"])
    again = run(f"--editeval-json={out}", f"--editeval-html={html}")  # a complete run replaces it, as before
    again.stdout.fnmatch_lines([f"results written to {out}", f"HTML report written to {html}"])


def test_an_unreachable_judge_keeps_the_html_report(run, judge, tmp_path):
    out, html = tmp_path / "results.json", tmp_path / "report.html"
    assert run(f"--editeval-json={out}", f"--editeval-html={html}").ret == 0
    before = html.read_bytes()
    judge.down()
    stopped = run(f"--editeval-json={out}", f"--editeval-html={html}", "--editeval-threshold=error_rate<=0.02",
                  "--editeval-judge-retries=0", "--editeval-no-cache")
    assert stopped.ret != 0 and html.read_bytes() == before
    text = output_of(stopped)
    assert f"{html} kept as it was" in text and "report.incomplete.html" in text
    assert "PASS error_rate" not in text


def test_a_threshold_over_no_rows_never_passes(run):
    result = run("-k", "no_such_row", "--editeval-threshold=error_rate<=0.02", "--editeval-gate=always")
    result.stdout.fnmatch_lines(["FAIL error_rate<=0.02: actual none: no rows were judged (n=0)",
                                 "editeval gate FAILED*"])
    assert result.ret == 1


# ---- command-line thresholds over ini thresholds -----------------------------------------------------------
def test_command_line_thresholds_replacing_the_ini_ones_are_said(run, pytester):
    pytester.makeini("""
        [pytest]
        editeval_thresholds =
            overall>=9.9
            error_rate<=0.02
    """)
    result = run("--editeval-threshold=overall>=0", "--editeval-subsets=color_alter")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["editeval: --editeval-threshold on the command line replaces the 2 value(s) of "
                                 "ini editeval_thresholds (overall>=9.9; error_rate<=0.02): repeat them on the "
                                 "command line to keep them"])
    assert "FAIL overall>=9.9" not in output_of(result)
    plain = run("--editeval-subsets=color_alter")
    assert "replaces the" not in output_of(plain)


# ---- compare across endpoints ------------------------------------------------------------------------------
@pytest.mark.slow  # several seconds: runs of the plugin and the compare command
def test_compare_warns_when_one_model_name_was_judged_at_two_endpoints(run, pytester, tmp_path):
    import subprocess
    import sys

    from pytest_editeval.testing import JudgeServer

    from .conftest import API_KEY

    assert run("--editeval-save=first", "--editeval-subsets=color_alter").ret == 0
    with JudgeServer(api_key=API_KEY) as other:
        assert run("--editeval-save=second", "--editeval-subsets=color_alter", f"--editeval-judge-url={other.url}",
                   cache_dir=tmp_path / "other-cache").ret == 0
        other_url = other.url
    cli = [sys.executable, "-m", "pytest_editeval.cli", "compare", "first", "second", f"--rootdir={pytester.path}"]
    done = subprocess.run(cli, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1 and "first and second were judged by gpt-4.1 at two endpoints" in warnings[0]
    assert f"{other_url}/chat/completions" in warnings[0]
    same = subprocess.run(cli[:4] + ["first", "first", f"--rootdir={pytester.path}"], capture_output=True, text=True)
    assert same.returncode == 0 and "WARNING" not in same.stderr


# ---- the demo of every benchmark ---------------------------------------------------------------------------
def _demo(folder, *args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "pytest_editeval.cli", "demo", str(folder), *args],
                          capture_output=True, text=True, timeout=300)


def _pytest_in(folder, *args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=folder,
                          capture_output=True, text=True, timeout=600)


def _cache_line(stdout: str) -> tuple[int, int, int]:
    import re

    found = re.search(r"^judge requests: (\d+); cache: (\d+) hits, (\d+) computed$", stdout, re.MULTILINE)
    assert found, stdout
    return int(found[1]), int(found[2]), int(found[3])


@pytest.mark.slow  # several seconds: pytest runs of its own, in subprocesses
@pytest.mark.parametrize("benchmark, rows", [("gedit", 44), ("imgedit", 18), ("imgedit-uge", 6), ("kris", 60),
                                             ("risebench", 16)])
def test_the_demo_of_each_benchmark_passes_and_its_rerun_is_answered_from_the_cache(tmp_path, benchmark, rows):
    folder = tmp_path / f"demo-{benchmark}-{os.getpid()}"  # its judge's port follows the name: unique per run
    written = _demo(folder, *([] if benchmark == "gedit" else ["--benchmark", benchmark]))
    assert written.returncode == 0, written.stderr
    assert f"{benchmark} demo written to {folder}" in written.stdout
    cold = _pytest_in(folder)
    assert cold.returncode == 0, cold.stdout[-3000:]
    assert f"{rows} passed" in cold.stdout and "editeval gate PASSED" in cold.stdout
    samples = json.loads((folder / "results.json").read_text())["samples"]
    questions = sum(len(s["answers"]) for s in samples)
    requests, hits, computed = _cache_line(cold.stdout)
    assert requests == computed and hits + computed == questions  # each question counted once: hit or computed
    subsets = {s["subset"] for s in samples}
    # a -k by subset where the item ids carry it (RISEBench's ids do not: its subsets are display names)
    some = samples[0]["subset"] if len(subsets) > 1 and samples[0]["subset"] in samples[0]["id"] else samples[0]["id"]
    warm = _pytest_in(folder, "-k", some)  # a -k re-run: the same endpoint, so the same keys
    requests, hits, computed = _cache_line(warm.stdout)
    assert requests == 0 and computed == 0 and hits > 0
    assert "kept as it was" in warm.stdout  # and the complete run's files stay


def test_the_demo_names_the_benchmarks_it_has(tmp_path):
    unknown = _demo(tmp_path / "d", "--benchmark", "nope")
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == "error: no demo for 'nope': demos exist for gedit, imgedit, imgedit-uge, kris, risebench"
    assert not (tmp_path / "d").exists()


def test_a_dataset_writer_that_declares_a_demo_is_picked_up(tmp_path, monkeypatch):
    from pytest_editeval import benchmarks
    from pytest_editeval.cli import main

    extra = tmp_path / "more"
    extra.mkdir()
    (extra / "mine_bench.py").write_text(  # a future benchmark: only its dataset_writer declaration is needed
        "from pytest_editeval.benchmarks.gedit import GEditBench\n"
        "from pytest_editeval.testing import DatasetWriter\n"
        "from pytest_editeval.testing.gedit_factory import write_dataset\n"
        "class MineBench(GEditBench):\n"
        "    name = 'mine'\n"
        "    dataset_writer = 'mine_bench:WRITER'\n"
        "WRITER = DatasetWriter(write_dataset, thresholds=('overall>=0',))\n")
    monkeypatch.syspath_prepend(str(extra))
    monkeypatch.setitem(benchmarks.BUILTIN, "mine", "mine_bench:MineBench")
    assert main(["demo", str(tmp_path / "d"), "--benchmark", "mine"]) == 0
    ini = (tmp_path / "d" / "pytest.ini").read_text()
    assert "editeval_benchmark = mine" in ini and "    overall>=0" in ini
    assert "editeval_loopback_judge = mine" in ini and not (tmp_path / "d" / "conftest.py").exists()


# ---- the version ---------------------------------------------------------------------------------------------
def test_the_command_the_package_and_the_readme_name_one_version():
    import re
    import subprocess
    import sys
    import tomllib
    from pathlib import Path

    import pytest_editeval

    root = Path(__file__).resolve().parents[1]
    version = tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]
    assert pytest_editeval.__version__ == version
    shown = subprocess.run([sys.executable, "-m", "pytest_editeval.cli", "--version"], capture_output=True, text=True)
    assert shown.returncode == 0 and shown.stdout.strip() == f"pytest-editeval {version}"
    readme = (root / "README.md").read_text()
    assert set(re.findall(r"editeval-(\d+\.\d+\.\d+)", readme)) <= {version}  # e.g. pytest's "plugins:" line


def test_the_readme_speaks_of_the_product_and_its_own_measurements():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for phrase in ("GPU_NOTES", "this task", "this session", "before this session", "no session", "sessions share"):
        assert phrase not in readme, phrase


# ---- model mode on the CPU, as the README's recipe runs it ---------------------------------------------------
MODEL_RECIPE = ["-o", "editeval_images=", "--editeval-model=tiny-pix2pix", "--editeval-device=cpu",
                '--editeval-generation-config={"num_inference_steps": 2}', "--editeval-limit=1"]


@pytest.mark.torch  # the recipe builds a tiny pipeline and runs model mode, in subprocesses
def test_the_cpu_model_mode_recipe_runs_quietly_and_counts_each_cache_apart(tmp_path):
    import subprocess
    import sys

    pytest.importorskip("diffusers")
    folder = tmp_path / f"editeval-demo-{os.getpid()}"  # its judge's port follows the name: unique per run
    assert _demo(folder).returncode == 0
    built = subprocess.run([sys.executable, "-m", "pytest_editeval.testing.tiny_pipelines", "tiny-pix2pix"],
                           cwd=folder, capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    assert (folder / "tiny-pix2pix" / "model_index.json").is_file()
    two = ["-k", "color_alter or text_change"]  # two of the recipe's 11 rows keep the test short
    cold = _pytest_in(folder, *MODEL_RECIPE, *two)
    assert cold.returncode == 0, cold.stdout[-3000:]
    assert "2 passed" in cold.stdout and "warning" not in cold.stdout.lower()  # diffusers' deprecations: silenced
    assert "generated 2 images (0 from the cache)" in cold.stdout
    assert _cache_line(cold.stdout) == (4, 0, 4)
    warm = _pytest_in(folder, *MODEL_RECIPE, *two)
    assert "generated 0 images (2 from the cache)" in warm.stdout
    assert _cache_line(warm.stdout) == (0, 4, 0)  # the judge's answers only: the images are counted above
