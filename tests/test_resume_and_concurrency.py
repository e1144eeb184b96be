"""Never lose or repeat work: re-runs, kill -9 and resume, concurrent runs on one cache, xdist, faults mid-run.

These start real pytest processes against the loopback judge and count the requests it receives."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from pytest_editeval.data.cache import Cache
from pytest_editeval.testing.judge_server import Fault

from .conftest import API_KEY, interruptible, output_of

ROWS = 44


def _comparable(path):
    """The results minus where the edited images live, when the run happened (its meta) and what its judging cost
    (a cached re-run pays nothing, and says what the cache saved instead)."""
    data = json.loads(path.read_text())
    data.pop("meta")
    for paid in ("usage", "cache_saved", "cost"):
        data["judge"].pop(paid)
    for sample in data["samples"]:
        sample.pop("edited_image")
    return data


def _launch(folder, gedit, edits, judge, cache, out, *extra):
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "EDITEVAL_JUDGE_API_KEY": API_KEY, "PYTHONUNBUFFERED": "1"}
    args = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
            "--editeval-benchmark=gedit", f"--editeval-dataset={gedit[0]}", f"--editeval-images={edits}",
            f"--editeval-judge-url={judge.url}", f"--editeval-cache-dir={cache}", f"--editeval-json={out}",
            "--editeval-judge-backoff=0.05", *extra]
    return subprocess.Popen(args, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True, preexec_fn=interruptible)


def _wait_for_calls(judge, n, timeout=30):
    deadline = time.monotonic() + timeout
    while judge.count < n:
        assert time.monotonic() < deadline, f"judge saw only {judge.count} requests"
        time.sleep(0.01)


def _entries(cache):
    """Judge answers stored (the cache also memoises image digests under digests/)."""
    return len(list((cache / "answers").rglob("*.json")))


@pytest.fixture
def reference(run, judge, tmp_path_factory):
    """Results of one uninterrupted run, with a cache of its own (its requests are not counted)."""
    out = tmp_path_factory.mktemp("reference") / "reference.json"
    result = run(f"--editeval-json={out}", cache_dir=tmp_path_factory.mktemp("reference-cache"))
    assert result.ret == 0
    judge.calls.clear()
    return _comparable(out)


def test_cached_rerun_makes_no_judge_call_and_gives_identical_results(run, judge, tmp_path, reference):
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    assert run(f"--editeval-json={first}").ret == 0
    assert judge.count == 2 * ROWS
    result = run(f"--editeval-json={second}", "--editeval-threshold=overall>=9.9")  # a new threshold hits the cache
    assert judge.count == 2 * ROWS
    result.stdout.fnmatch_lines(["judge requests: 0; cache: 88 hits, 0 computed"])
    assert _comparable(first) == reference
    assert {**_comparable(second), "gate": None} == {**reference, "gate": None}


def test_refresh_recomputes_and_no_cache_neither_reads_nor_writes(run, judge, tmp_path):
    run()
    judge.calls.clear()
    run("--editeval-refresh")
    assert judge.count == 2 * ROWS
    judge.calls.clear()
    no_cache_dir = tmp_path / "never-written"
    run("--editeval-no-cache", cache_dir=no_cache_dir)
    run("--editeval-no-cache", cache_dir=no_cache_dir)
    assert judge.count == 4 * ROWS and not no_cache_dir.exists()


def test_corrupt_cache_entries_are_recomputed_in_a_run(run, judge, tmp_path, reference):
    cache = tmp_path / "cache"
    run()
    damaged = sorted((cache / "answers").rglob("*.json"))[:5] + sorted((cache / "digests").rglob("*.json"))[:3]
    for path in damaged:
        path.write_text(path.read_text()[:30])
    judge.calls.clear()
    out = tmp_path / "after.json"
    result = run(f"--editeval-json={out}")
    assert judge.count == 5  # a damaged digest memo costs a re-hash, not a judge call
    result.stdout.fnmatch_lines([f"*{len(damaged)} corrupt entries recomputed*"])
    assert _comparable(out) == reference


@pytest.mark.slow  # pytest runs of its own, in subprocesses
def test_sigkill_then_resume_repeats_no_finished_work(tmp_path, gedit, edits, judge, reference):
    judge.latency = 0.05
    cache, out = tmp_path / "cache", tmp_path / "out.json"
    proc = _launch(tmp_path / "run1", gedit, edits, judge, cache, out, "--editeval-judge-workers=4")
    _wait_for_calls(judge, 30)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    stored = _entries(cache)
    assert 0 < stored < 2 * ROWS and not out.exists()
    reader = Cache(cache)  # every entry the killed run left is whole: the cache's own checksum accepts it
    assert all(reader.get("answers", p.stem) is not None for p in (cache / "answers").rglob("*.json"))
    assert reader.corrupt == 0
    time.sleep(0.3)  # a request sent just before the kill must reach the judge's count before it is cleared
    judge.calls.clear()
    judge.latency = 0.0
    proc = _launch(tmp_path / "run2", gedit, edits, judge, cache, out)
    log = proc.communicate(timeout=120)[0]
    assert proc.returncode == 0, log
    assert judge.count == 2 * ROWS - stored  # finished answers were not asked again
    assert _comparable(out) == reference


@pytest.mark.slow  # several seconds: pytest runs of its own, in subprocesses
def test_two_concurrent_runs_share_one_cache_without_repeating_work(tmp_path, gedit, edits, judge, reference):
    judge.latency = 0.05
    cache = tmp_path / "shared-cache"
    outs = [tmp_path / "a.json", tmp_path / "b.json"]
    procs = [_launch(tmp_path / name, gedit, edits, judge, cache, out, "--editeval-judge-workers=4")
             for name, out in zip(("a", "b"), outs)]
    logs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    assert judge.count == 2 * ROWS  # each question asked once across both runs
    assert _comparable(outs[0]) == _comparable(outs[1]) == reference


@pytest.mark.slow  # pytest runs of its own, in subprocesses
@pytest.mark.parametrize("workers", ["0", "2"])
def test_xdist_gives_the_same_results_table_and_exit_code(run, judge, tmp_path, workers, reference):
    out = tmp_path / "xdist.json"
    result = run("-n", workers, f"--editeval-json={out}", "--editeval-threshold=overall>=9", subprocess=True)
    assert result.ret == 1, output_of(result)
    assert judge.count == 2 * ROWS  # workers never judged the same row twice
    assert _comparable(out)["samples"] == reference["samples"]
    assert _comparable(out)["aggregates"] == reference["aggregates"]
    result.stdout.fnmatch_lines(["*Overall*OVERALL (macro)*44*", "editeval gate FAILED: 1 of 1 thresholds missed"])
    assert "PARTIAL" not in output_of(result)


@pytest.mark.slow  # pytest runs of its own, in subprocesses
def test_judge_down_mid_run_and_back(tmp_path, gedit, edits, judge, reference):
    judge.latency = 0.02
    out = tmp_path / "out.json"
    proc = _launch(tmp_path / "run", gedit, edits, judge, tmp_path / "cache", out, "--editeval-judge-workers=4",
                   "--editeval-judge-retries=8", "--editeval-judge-backoff=0.2")
    _wait_for_calls(judge, 20)
    judge.down()
    time.sleep(1.0)
    judge.up()
    log = proc.communicate(timeout=120)[0]
    assert proc.returncode == 0, log
    assert _comparable(out) == reference


def test_429_storm_and_a_hanging_request_are_survived(run, judge, tmp_path, reference):
    judge.faults.extend([Fault("status", 429, headers={"Retry-After": "0"})] * 40 + [Fault("hang", seconds=3)])
    out = tmp_path / "out.json"
    result = run(f"--editeval-json={out}", "--editeval-judge-timeout=1", "--editeval-judge-retries=8")
    assert result.ret == 0, output_of(result)
    assert _comparable(out) == reference


@pytest.mark.slow  # several seconds: pytest runs of its own, in subprocesses
def test_ctrl_c_stops_promptly_keeps_finished_work_and_resumes(tmp_path, gedit, edits, judge, reference):
    judge.latency = 0.2
    cache, out = tmp_path / "cache", tmp_path / "out.json"
    proc = _launch(tmp_path / "run1", gedit, edits, judge, cache, out, "--editeval-judge-workers=4")
    _wait_for_calls(judge, 12)
    start = time.monotonic()
    os.kill(proc.pid, signal.SIGINT)
    log = proc.communicate(timeout=30)[0]
    assert time.monotonic() - start < 5, log
    assert "KeyboardInterrupt" in log and "PARTIAL RUN" in log
    partial = json.loads(out.read_text())
    assert not partial["complete"] and not partial["gate"]["evaluated"]
    stored = _entries(cache)
    judge.calls.clear()
    judge.latency = 0.0
    proc = _launch(tmp_path / "run2", gedit, edits, judge, cache, out)
    assert proc.wait(timeout=120) == 0
    assert judge.count == 2 * ROWS - stored
    assert _comparable(out) == reference
