"""Every example in examples/ runs against the loopback judge and the test dataset."""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import API_KEY, output_of
from .tiny import needs_diffusers, shared_tiny

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_image_mode_example(run, judge):
    # the example lists 3 of the test dataset's 44 English rows: the other 41 are missing and fail the gate
    result = run(images=EXAMPLES / "image_mode" / "edits.jsonl")
    assert result.ret == 1
    result.assert_outcomes(passed=3, skipped=41)
    result.stdout.fnmatch_lines(["rows: 3 scored, 0 errors, 41 missing*", "MISSING: 41 of 44 selected rows*"])
    assert judge.count == 6
    allowed = run("--editeval-allow-missing", images=EXAMPLES / "image_mode" / "edits.jsonl")
    assert allowed.ret == 0


def test_custom_model_example(run, pytester, tmp_path):
    shutil.copy(EXAMPLES / "custom_model" / "conftest.py", pytester.path / "conftest.py")
    args = ("--editeval-subsets=color_alter,text_change", f"--editeval-output-dir={tmp_path / 'out'}")
    first = run(*args, images=None)
    assert first.ret == 0, output_of(first)
    first.assert_outcomes(passed=8)
    first.stdout.fnmatch_lines(["generated 8 images (0 from the cache)*"])
    again = run(*args, images=None)  # the editor names its identity: its images are cached
    again.stdout.fnmatch_lines(["judge requests: 0*", "generated 0 images (8 from the cache)*"])


def test_marker_api_example(pytester, judge, gedit, edits, monkeypatch):
    monkeypatch.setenv("EDITEVAL_JUDGE_API_KEY", API_KEY)
    shutil.copy(EXAMPLES / "marker_api" / "test_checkpoint_quality.py", pytester.path)
    result = pytester.runpytest(f"--editeval-judge-url={judge.url}", f"--editeval-dataset={gedit[0]}",
                                f"--editeval-images={edits}", f"--editeval-cache-dir={pytester.path / 'c'}")
    result.assert_outcomes(passed=3)
    assert judge.count == 16  # one slice of 8 rows, judged once for the three tests


def _workflow_command() -> list[str]:
    text = (EXAMPLES / "ci" / "gate-checkpoint.yml").read_text()
    block = re.search(r"- name: gate\n\s+run: >-\n((?:\s{10}.*\n)+)", text).group(1)
    return shlex.split(" ".join(line.strip() for line in block.splitlines()))


def _checkpoint(tmp_path_factory, tmp_path) -> Path:
    """A checkpoint folder of this test's own (the workflow names its outputs after it): the run's shared tiny
    pipeline, copied (a few hundred KB), instead of a build of its own."""
    return shutil.copytree(shared_tiny("StableDiffusionInstructPix2PixPipeline", tmp_path_factory), tmp_path / "checkpoint")


@pytest.mark.torch
def test_ci_workflow_example_gates_a_checkpoint(pytester, judge, gedit, tmp_path, tmp_path_factory):
    needs_diffusers()  # the workflow runs model mode
    from pytest_editeval.testing.tiny_pipelines import FAST_CONFIGS

    checkpoint = _checkpoint(tmp_path_factory, tmp_path)
    env = {**os.environ, "EDITEVAL_JUDGE_API_KEY": API_KEY, "EDITEVAL_JUDGE_URL": judge.url,
           "EDITEVAL_JUDGE_MODEL": "judge-for-ci", "CHECKPOINT": str(checkpoint)}
    local = [f"--editeval-dataset={gedit[0]}", "--editeval-device=cpu", "--editeval-subsets=color_alter",
             "--editeval-generation-config=" + json.dumps(FAST_CONFIGS["StableDiffusionInstructPix2PixPipeline"]),
             "-p", "no:cacheprovider"]
    command = [a.replace('"$CHECKPOINT"', str(checkpoint)).replace("$CHECKPOINT", str(checkpoint))
               for a in _workflow_command()]
    assert command[0] == "pytest" and "--editeval-html=editeval-report.html" in command
    # the very first run: no last-good baseline exists yet, and the workflow must still gate
    first = subprocess.run([sys.executable, "-m", "pytest", *command[1:], *local], cwd=pytester.path, env=env,
                           capture_output=True, text=True)
    assert first.returncode == 1, first.stdout[-3000:]  # the thresholds decide, not a usage error
    assert "no saved run 'last-good'" in first.stdout and "comparison skipped" in first.stdout
    assert "FAIL overall>=7.0" in first.stdout
    # the last good run the workflow compares against (promoted by its last step)
    shutil.copy(pytester.path / ".editeval" / "runs" / "candidate.json",
                pytester.path / ".editeval" / "runs" / "last-good.json")
    result = subprocess.run([sys.executable, "-m", "pytest", *command[1:], *local], cwd=pytester.path, env=env,
                            capture_output=True, text=True)
    # the loopback judge scores far below the workflow's overall>=7.0: the gate fails, the artifacts are there
    assert result.returncode == 1, result.stdout[-3000:]
    assert "FAIL overall>=7.0" in result.stdout and "PASS compare overall:-0.2" in result.stdout
    for artifact in ("editeval-report.html", "editeval-results.json", "editeval-junit.xml",
                     ".editeval/runs/candidate.json"):
        assert (pytester.path / artifact).is_file(), artifact
    assert (pytester.path / ".editeval" / "outputs" / "checkpoint" / "edits.jsonl").is_file()


def _step(text: str, name: str) -> list[str]:
    block = re.search(rf"- name: {name}\n\s+run: >-\n((?:\s{{10}}.*\n)+)", text).group(1)
    return shlex.split(" ".join(line.strip() for line in block.splitlines()))


@pytest.mark.torch
def test_sharded_ci_workflow_example_merges_three_shards(judge, gedit, tmp_path, tmp_path_factory):
    """The sharded workflow's commands with N=3 on the CPU: each shard job in its own folder with its own cache,
    its results and images copied as the artifacts are downloaded, then the merge job, twice (no baseline yet;
    then the promoted one). The merge equals the same run in one process."""
    needs_diffusers()  # the workflow runs model mode
    import glob

    from pytest_editeval.testing.tiny_pipelines import FAST_CONFIGS

    text = (EXAMPLES / "ci" / "gate-checkpoint-sharded.yml").read_text()
    matrix = re.search(r"shard: \[([\d, ]+)\]", text).group(1).split(",")
    assert len(matrix) == int(re.search(r"SHARDS: (\d+)", text).group(1))  # the matrix and N agree
    shard_command, merge_command = _step(text, "shard"), _step(text, "merge")
    assert shard_command[0] == "pytest" and merge_command[:2] == ["pytest-editeval", "merge"]
    checkpoint = _checkpoint(tmp_path_factory, tmp_path)
    # One torch thread: on 2 cores, torch's default threads fight the run's own threads (4x slower here).
    env = {**os.environ, "EDITEVAL_JUDGE_API_KEY": API_KEY, "EDITEVAL_JUDGE_URL": judge.url,
           "EDITEVAL_JUDGE_MODEL": "judge-for-ci", "OMP_NUM_THREADS": "1"}
    local = [f"--editeval-dataset={gedit[0]}", "--editeval-device=cpu", "--editeval-subsets=color_alter,text_change",
             "--editeval-generation-config=" + json.dumps(FAST_CONFIGS["StableDiffusionInstructPix2PixPipeline"]),
             "-p", "no:cacheprovider"]

    def pytest_in(folder: Path, command: list[str]) -> subprocess.CompletedProcess:
        folder.mkdir(parents=True)
        return subprocess.run([sys.executable, "-m", "pytest", *command[1:], *local], cwd=folder, env=env,
                              capture_output=True, text=True)

    merge_folder = tmp_path / "merge-job"
    for k in (1, 2, 3):
        command = [a.replace("${{ matrix.shard }}", str(k)).replace("$SHARDS", "3").replace("$CHECKPOINT",
                                                                                             str(checkpoint))
                   for a in shard_command]
        job = tmp_path / f"shard-job-{k}"
        result = pytest_in(job, command)
        assert result.returncode == 0, result.stdout[-3000:]  # not gated on its own
        assert f"editeval gate NOT APPLIED: shard {k}/3" in result.stdout
        assert (job / ".editeval" / "cache").is_dir()  # its own cache
        artifact = merge_folder / "shards" / f"editeval-shard-{k}"  # as download-artifact lays them out
        shutil.copytree(job / "edited", artifact / "edited")
        shutil.copy(job / "shard.json", artifact / "shard.json")

    def merge_job() -> subprocess.CompletedProcess:
        files = sorted(glob.glob(str(merge_folder / merge_command[2])))  # the shell's glob
        assert len(files) == 3
        # The workflow's shards read the hub's dataset; here they read a local folder, which a merge reads only
        # when it is named on its command line (a path inside a shard file is never followed).
        return subprocess.run([sys.executable, "-m", "pytest_editeval.cli", "merge", *files, *merge_command[3:],
                               f"--dataset={gedit[0]}"], cwd=merge_folder, env=env, capture_output=True, text=True)

    first = merge_job()  # the very first run: no last-good baseline yet
    assert first.returncode == 1, first.stdout + first.stderr  # the thresholds decide (loopback scores are low)
    assert "no saved run 'last-good'" in first.stdout and "comparison skipped" in first.stdout
    assert "FAIL overall>=7.0" in first.stdout and "not found" not in first.stdout
    runs = merge_folder / ".editeval" / "runs"
    shutil.copy(runs / "candidate.json", runs / "last-good.json")  # the workflow's last step
    second = merge_job()
    assert second.returncode == 1 and "PASS compare overall:-0.2" in second.stdout, second.stdout
    report = (merge_folder / "editeval-report.html").read_text()
    merged = json.loads((merge_folder / "editeval-results.json").read_text())
    assert merged["complete"] and merged["expected_rows"] == 8
    assert report.count("data:image/jpeg") == 2 * 8  # every row's source and edited thumbnail, from the artifacts
    # the same run in one process gives the same rows, aggregates and gate
    whole_command = [a.replace("$CHECKPOINT", str(checkpoint)) for a in shard_command
                     if not a.startswith("--editeval-shard")]
    whole = pytest_in(tmp_path / "one-job", [*whole_command, "--editeval-threshold=overall>=7.0",
                                             "--editeval-threshold=error_rate<=0.02"])
    assert whole.returncode == 1, whole.stdout[-3000:]
    one = json.loads((tmp_path / "one-job" / "shard.json").read_text())

    def rows(data):
        return [{k: v for k, v in s.items() if k != "edited_image"} for s in data["samples"]]

    assert rows(merged) == rows(one) and merged["aggregates"] == one["aggregates"]
    assert merged["gate"] == one["gate"] and merged["meta"]["model_digest"] == one["meta"]["model_digest"]
