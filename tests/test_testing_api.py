"""The public testing API as a user's tests use it: the fixture plugin's loopback judge and datasets, make_dataset
for every built-in benchmark, and a benchmark registered from outside the package (an entry point) that brings its
own dataset writer."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap

import pytest

import pytest_editeval.testing as testing
from pytest_editeval import benchmarks
from pytest_editeval.testing import make_dataset


def _gate(folder, made, judge, *extra):
    """`pytest` with pytest-editeval on `made`'s data and `judge`, in `folder`, as a CI job runs it."""
    env = {**os.environ, "EDITEVAL_JUDGE_API_KEY": judge.api_key or "any"}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--rootdir={folder}",
                           *made.options(), f"--editeval-judge-url={judge.url}", "--editeval-judge-model=loopback",
                           f"--editeval-json={folder / 'results.json'}", *extra],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=300)


def test_the_public_surface_is_small():
    assert set(testing.__all__) == {"DatasetWriter", "Fault", "JudgeCall", "JudgeServer", "MadeDataset",
                                    "WrittenDataset", "json_reply", "make_dataset", "rule_scores"}


# ---- the fixture plugin, from a user's test file -------------------------------------------------------------
USER_TEST = '''
import json, os, subprocess, sys

pytest_plugins = ["pytest_editeval.testing.fixtures"]


def test_my_gate(editeval_judge, editeval_dataset, tmp_path):
    made = editeval_dataset("gedit", rows_per_subset=1, languages=("en",))
    (tmp_path.parent / "judge-url").write_text(editeval_judge.url)
    env = {**os.environ, "EDITEVAL_JUDGE_API_KEY": editeval_judge.api_key}
    gate = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--rootdir={tmp_path}",
                           *made.options(), f"--editeval-judge-url={editeval_judge.url}",
                           "--editeval-judge-model=loopback", "--editeval-threshold=overall>=2.0",
                           f"--editeval-json={tmp_path / 'results.json'}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert gate.returncode == 0, gate.stdout[-3000:]
    assert "editeval gate PASSED" in gate.stdout
    samples = json.loads((tmp_path / "results.json").read_text())["samples"]
    assert sorted(s["key"] for s in samples) == sorted(r.key for r in made.rows)
    assert len(made.rows) == 11 and editeval_judge.count == 2 * len(made.rows)  # SC and PQ for each row
'''


def test_a_users_test_gates_with_the_fixture_plugins_judge_and_dataset(pytester):
    pytester.makepyfile(test_user=USER_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    url = next(pytester.path.parent.rglob("judge-url")).read_text()
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    with socket.socket() as probe, pytest.raises(OSError):  # stopped at the test's teardown
        probe.settimeout(2)
        probe.connect(("127.0.0.1", port))


def test_a_benchmark_without_a_dataset_writer_is_told_in_one_line(tmp_path, monkeypatch):
    from pytest_editeval.errors import InputError

    with pytest.raises(InputError, match=r"^unknown benchmark 'nope': known benchmarks are gedit, "):
        make_dataset("nope", tmp_path)
    monkeypatch.setattr(type(benchmarks.get("kris")), "dataset_writer", "")
    others = ", ".join(name for name in benchmarks.BUILTIN if name != "kris")
    with pytest.raises(InputError, match=rf"^benchmark 'kris' declares no dataset writer \(Benchmark.dataset_writer\); "
                                         rf"benchmarks with one: {re.escape(others)}$"):
        make_dataset("kris", tmp_path)
    assert not any(tmp_path.iterdir())  # nothing written


# ---- make_dataset for every built-in benchmark ---------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(benchmarks.BUILTIN))
def test_make_dataset_writes_data_each_builtin_benchmark_scores_by_its_judge_rule(name, tmp_path):
    made = make_dataset(name, tmp_path / "made")
    assert made.benchmark == name and made.rows and made.dataset.exists() and made.images.exists()
    with made.judge(api_key="k") as judge:
        gate = _gate(tmp_path, made, judge, *(f"--editeval-threshold={t}" for t in made.thresholds))
    assert gate.returncode == 0, gate.stdout[-3000:]
    samples = json.loads((tmp_path / "results.json").read_text())["samples"]
    assert len(samples) == len(made.rows) and {s["status"] for s in samples} == {"scored"}
    asked = re.search(r"^judge requests: (\d+); cache: \d+ hits, \1 computed$", gate.stdout, re.MULTILINE)
    assert asked and judge.count == int(asked[1]) > 0  # each request the run counted reached the loopback judge


# ---- a benchmark from outside the package, with its own writer -----------------------------------------------
OUTSIDE_BENCHMARK = '''
"""A team's benchmark shipped in its own package: GEdit's judging, its own data (one subset, English only)."""
from pytest_editeval.benchmarks.gedit import GEditBench
from pytest_editeval.testing import DatasetWriter, WrittenDataset
from pytest_editeval.testing.gedit_factory import make_gedit_dataset, write_edited_images


class StylesBench(GEditBench):
    name = "styles"
    title = "Styles"
    dataset_writer = "styles_bench:WRITER"


STYLES = StylesBench()


def write(folder, rows=3):
    written = make_gedit_dataset(folder / "data", rows_per_subset=rows, languages=("en",), subsets=("style_change",))
    return WrittenDataset(folder / "data", write_edited_images(folder / "edits", written), written)


WRITER = DatasetWriter(write, thresholds=("overall>=1.0",))
'''


@pytest.fixture
def outside_benchmark(tmp_path, monkeypatch):
    """`styles`, registered the supported way for a package: the entry-point group pytest_editeval.benchmarks."""
    site = tmp_path / "site"
    (site / "styles_bench-0.1.dist-info").mkdir(parents=True)
    (site / "styles_bench.py").write_text(OUTSIDE_BENCHMARK)
    (site / "styles_bench-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: styles-bench\nVersion: 0.1\n")
    (site / "styles_bench-0.1.dist-info" / "entry_points.txt").write_text(
        "[pytest_editeval.benchmarks]\nstyles = styles_bench:STYLES\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
    return site


def test_a_benchmark_from_an_entry_point_brings_its_own_dataset_writer(outside_benchmark, pytester):
    pytester.makepyfile(test_styles='''
        import json, os, subprocess, sys

        pytest_plugins = ["pytest_editeval.testing.fixtures"]


        def test_styles_gate(editeval_judge_for, editeval_dataset, tmp_path):
            made = editeval_dataset("styles", rows=2)
            judge = editeval_judge_for("styles")
            env = {**os.environ, "EDITEVAL_JUDGE_API_KEY": judge.api_key}
            gate = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                   f"--rootdir={tmp_path}", *made.options(), f"--editeval-judge-url={judge.url}",
                                   "--editeval-judge-model=loopback", f"--editeval-json={tmp_path / 'r.json'}",
                                   *(f"--editeval-threshold={t}" for t in made.thresholds)],
                                  cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
            assert gate.returncode == 0, gate.stdout[-3000:]
            samples = json.loads((tmp_path / "r.json").read_text())["samples"]
            assert [s["subset"] for s in samples] == ["style_change", "style_change"]
    ''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)

    # ... and `pytest-editeval demo` offers it, with nothing in the package changed
    demo = pytester.path / "styles-demo"  # the demo's port follows the folder's name: not the other tests' "demo"
    written = subprocess.run([sys.executable, "-m", "pytest_editeval.cli", "demo", str(demo), "--benchmark", "styles"],
                             capture_output=True, text=True, timeout=300)
    assert written.returncode == 0, written.stderr
    ran = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=demo,
                         capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stdout[-3000:]
    assert "3 passed" in ran.stdout and "editeval gate PASSED" in ran.stdout
    assert "PASS overall>=1.0" in ran.stdout


def test_the_run_wide_loopback_judge_needs_a_loopback_url(pytester):
    pytester.makeini(textwrap.dedent("""
        [pytest]
        addopts = -p pytest_editeval.testing.fixtures
        editeval_loopback_judge = gedit
        editeval_judge_url = https://judge.example.com/v1
    """))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: editeval_loopback_judge = gedit: the judge URL must be "
                                 "http://127.0.0.1:PORT/v1 (the loopback judge listens there), not "
                                 "https://judge.example.com/v1; set editeval_judge_url"])
