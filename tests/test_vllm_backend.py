"""The vllm backend's process management through its own code path, with a stand-in for `vllm serve` (the loopback
judge run as the server command, testing/_scaffold/stand_in_vllm.py): start, health wait, the start-up timeout, a failed
start, a crash mid-run, a clean stop, Ctrl-C, and no orphan process after kill -9 of pytest."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_editeval.data.cache import Cache, folder_identity
from pytest_editeval.judges import managed_server, vllm_managed
from pytest_editeval.judges.settings import JudgeSpec

from .conftest import interruptible, output_of

pytestmark = pytest.mark.slow  # each test starts a stand-in vLLM server process, most a pytest run too
STAND_IN = f"{sys.executable} -m pytest_editeval.testing._scaffold.stand_in_vllm"
SLICE = ["--editeval-subsets=color_alter,text_change,subject-add", "--editeval-limit=1"]


@pytest.fixture(scope="session")
def judge_model(tmp_path_factory):
    """What `vllm serve` is given: a model folder (the stand-in only records it; its digest names the judge)."""
    folder = tmp_path_factory.mktemp("vllm-judge") / "tiny-judge"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "qwen2_5_vl"}')
    (folder / "model.safetensors").write_bytes(b"weights" * 100)
    return folder


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    """The files the stand-in writes (its pid and command line; the parameters of each request), through the
    environment the plugin passes on to the server."""
    files = {"record": tmp_path / "stand-in.json", "requests": tmp_path / "requests.jsonl"}
    monkeypatch.setenv("EDITEVAL_STANDIN_RECORD", str(files["record"]))
    monkeypatch.setenv("EDITEVAL_STANDIN_REQUESTS", str(files["requests"]))
    return files


def _base(gedit, edits, judge_model, cache):
    return ["--editeval-benchmark=gedit", f"--editeval-dataset={gedit[0]}", f"--editeval-images={edits}",
            f"--editeval-cache-dir={cache}", "-p", "no:cacheprovider", "--editeval-judge-backend=vllm",
            f"--editeval-judge-model={judge_model}", f"--editeval-judge-serve-command={STAND_IN}", *SLICE]


@pytest.fixture
def vllm_run(pytester, gedit, edits, judge_model, stand_in, tmp_path):
    def _run(*args, subprocess=True, cache_dir=None):
        runner = pytester.runpytest_subprocess if subprocess else pytester.runpytest
        return runner(*_base(gedit, edits, judge_model, cache_dir or tmp_path / "cache"), *args)
    return _run


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in state  # a zombie has ended; only its parent's wait is missing


def _gone(pid: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not _alive(pid)


def _end_leftovers(record: Path) -> None:
    """A failed test must not leave its server behind for the rest of the suite."""
    if record.is_file():
        try:
            os.killpg(json.loads(record.read_text())["pgid"], signal.SIGKILL)
        except (ProcessLookupError, PermissionError, ValueError):
            pass


def _wait_for(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not (path.is_file() and path.stat().st_size) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert path.is_file(), f"{path} never appeared"


def test_the_server_is_started_asked_and_stopped(vllm_run, run, stand_in, judge_model, tmp_path):
    http, served = tmp_path / "http.json", tmp_path / "vllm.json"
    assert run(f"--editeval-json={http}", "--editeval-judge-recipe=editscore", *SLICE).ret == 0
    result = vllm_run(f"--editeval-json={served}", "--editeval-judge-recipe=editscore",
                      "--editeval-judge-serve-args=--tensor-parallel-size 1 --max-model-len 4096")
    assert result.ret == 0, output_of(result)
    scores = lambda path: {s["id"]: s["scores"] for s in json.loads(path.read_text())["samples"]}  # noqa: E731
    assert scores(served) == scores(http) and len(scores(served)) == 3
    record = json.loads(stand_in["record"].read_text())
    port = record["argv"][record["argv"].index("--port") + 1]
    assert record["argv"] == ["serve", str(judge_model), "--host", "127.0.0.1", "--port", port,
                              "--served-model-name", str(judge_model), "--tensor-parallel-size", "1",
                              "--max-model-len", "4096"]
    assert record["key_set"] and _gone(record["pid"], timeout=1)  # stopped at the end of the session
    requests = [json.loads(line) for line in stand_in["requests"].read_text().splitlines()]
    assert len(requests) == 6 and all(r["authorized"] for r in requests)  # the run's own key, through VLLM_API_KEY
    assert {json.dumps({k: v for k, v in r.items() if k != "authorized"}, sort_keys=True) for r in requests} == {
        json.dumps({"model": str(judge_model), "max_tokens": 512, "temperature": 0.7, "top_p": 0.9, "top_k": 20,
                    "seed": 42}, sort_keys=True)}  # vLLM takes top_k; the openai backend never sends it
    digest = folder_identity(judge_model, Cache(None))
    result.stdout.fnmatch_lines([
        f"*editeval: starting vllm serve on 127.0.0.1:{port} (pid *; log *.editeval/logs/vllm-serve.log)",
        "*editeval: vllm serve is ready after * s",
        f"*editeval: gedit (en), protocol official, recipe editscore, judge {judge_model} (vllm, sha256 {digest[:12]})*",
        "judge requests: 6; cache: 0 hits, 6 computed",
        "judge: vllm serve (pid *) ready in * s; log *vllm-serve.log",
    ])
    judge = json.loads(served.read_text())["judge"]
    assert judge["backend"] == "vllm" and judge["digest"] == digest and judge["host"] == "127.0.0.1"
    assert judge["parameters"]["serve_args"] == ["--tensor-parallel-size", "1", "--max-model-len", "4096"]
    # a fully cached re-run starts no server at all
    stand_in["record"].unlink()
    again = vllm_run("--editeval-judge-recipe=editscore",
                     "--editeval-judge-serve-args=--tensor-parallel-size 1 --max-model-len 4096")
    assert again.ret == 0, output_of(again)
    again.stdout.fnmatch_lines(["judge requests: 0; cache: 6 hits, 0 computed"])
    assert "starting vllm serve" not in output_of(again) and not stand_in["record"].exists()


def test_a_server_that_never_answers_its_health_check_is_stopped_at_the_timeout(vllm_run, stand_in, monkeypatch):
    monkeypatch.setenv("EDITEVAL_STANDIN_STARTUP_S", "60")
    monkeypatch.setattr(managed_server, "PROGRESS_EVERY_S", 0.3)  # an in-process run: its progress lines are seen
    began = time.monotonic()
    result = vllm_run("--editeval-judge-startup-timeout=1.5", subprocess=False)
    assert result.ret == 2, output_of(result)
    assert time.monotonic() - began < 30
    result.stdout.fnmatch_lines([
        "*editeval: vllm serve (pid *) is still starting: * s of at most 1.5 s; log *vllm-serve.log",
        "editeval STOPPED (exit 2): vllm serve did not answer http://127.0.0.1:*/health within 1.5 s "
        "(--editeval-judge-startup-timeout); its log *vllm-serve.log ends: INFO stand-in vllm: loading *tiny-judge",
    ])
    assert _gone(json.loads(stand_in["record"].read_text())["pid"], timeout=1)


def test_a_failed_start_is_one_line_with_the_tail_of_its_log(vllm_run, stand_in, monkeypatch):
    monkeypatch.setenv("EDITEVAL_STANDIN_FAIL_AT_START", "No CUDA GPUs are available")
    result = vllm_run()
    assert result.ret == 2, output_of(result)
    result.stdout.fnmatch_lines([
        "editeval STOPPED (exit 2): vllm serve exited with code 1 before it was ready; its log *vllm-serve.log ends: "
        "INFO stand-in vllm: loading *tiny-judge | ValueError: No CUDA GPUs are available"])
    assert "Traceback" not in output_of(result)


def test_a_crash_mid_run_stops_the_run_with_one_line(vllm_run, stand_in, monkeypatch):
    monkeypatch.setenv("EDITEVAL_STANDIN_CRASH_AFTER", "2")
    result = vllm_run("--editeval-judge-workers=1")
    assert result.ret == 2, output_of(result)
    result.stdout.fnmatch_lines([
        "editeval STOPPED (exit 2): vllm serve (pid *) exited with code 1 during the run; its log *vllm-serve.log "
        "ends: * | RuntimeError: CUDA error: an illegal memory access was encountered",
        "*of 3 benchmark rows ran before the stop"])
    assert len(stand_in["requests"].read_text().splitlines()) == 2
    assert _gone(json.loads(stand_in["record"].read_text())["pid"], timeout=1)


def _pytest_process(gedit, edits, judge_model, folder: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parents[1]),
                                                                    os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen([sys.executable, "-m", "pytest", *_base(gedit, edits, judge_model, folder / "cache")],
                            cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            preexec_fn=interruptible)


@pytest.mark.parametrize("when", ["starting", "serving"])
def test_no_orphan_after_kill_9_of_pytest(gedit, edits, judge_model, stand_in, monkeypatch, tmp_path, when):
    """pytest gets no chance to clean up: the guard notices its parent is gone and ends the server's group."""
    if when == "starting":
        monkeypatch.setenv("EDITEVAL_STANDIN_STARTUP_S", "120")
    else:
        monkeypatch.setenv("EDITEVAL_STANDIN_LATENCY_S", "120")
    pytest_process = _pytest_process(gedit, edits, judge_model, tmp_path)
    try:
        _wait_for(stand_in["record"] if when == "starting" else stand_in["requests"])
        server = json.loads(stand_in["record"].read_text())["pid"]
        assert _alive(server)
        pytest_process.kill()
        pytest_process.wait(10)
        assert _gone(server, timeout=10), "the server outlived pytest"
    finally:
        pytest_process.kill()
        pytest_process.communicate()
        _end_leftovers(stand_in["record"])


def test_ctrl_c_stops_the_server(gedit, edits, judge_model, stand_in, monkeypatch, tmp_path):
    monkeypatch.setenv("EDITEVAL_STANDIN_LATENCY_S", "120")
    pytest_process = _pytest_process(gedit, edits, judge_model, tmp_path)
    try:
        _wait_for(stand_in["requests"])
        server = json.loads(stand_in["record"].read_text())["pid"]
        pytest_process.send_signal(signal.SIGINT)
        output, _ = pytest_process.communicate(timeout=60)
        assert pytest_process.returncode == 2, output.decode()
        assert _gone(server, timeout=1)  # stopped before pytest returned, not by the guard afterwards
        assert b"KeyboardInterrupt" in output
    finally:
        pytest_process.kill()
        _end_leftovers(stand_in["record"])


# ---- usage errors, and the command line ------------------------------------------------------------------------
def test_no_vllm_command_is_one_line_naming_the_extra(vllm_run):
    result = vllm_run("--editeval-judge-serve-command=/nonexistent/vllm", subprocess=False)
    assert result.ret == 4, output_of(result)
    assert ("--editeval-judge-backend vllm cannot find '/nonexistent/vllm': pip install 'pytest-editeval[vllm]' on "
            "a CUDA machine, or name vLLM's command with --editeval-judge-serve-command") in output_of(result)


@pytest.mark.parametrize("args, line", [
    (["--editeval-judge-serve-args=--port 9"], "--editeval-judge-serve-args must not set --port: the plugin passes "
                                               "--host, --port, --served-model-name, --api-key, --lora-modules itself"),
    (["-n", "2"], "--editeval-judge-backend vllm starts one server for the run: run it without -n"),
    (["--editeval-judge-batch-size=2"], "--editeval-judge-batch-size is for --editeval-judge-backend transformers"),
])
def test_vllm_usage_errors(vllm_run, args, line):
    result = vllm_run(*args, subprocess=False)
    assert result.ret == 4, output_of(result)
    assert line in output_of(result)


def test_an_adapter_is_served_as_a_lora_module_with_a_rank_vllm_accepts(judge_model, tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"r": 64}')

    def command(*serve_args):
        spec = JudgeSpec(backend="vllm", model="Qwen/Qwen2.5-VL-7B-Instruct", recipe="editscore",
                         values={"serve_args": serve_args})
        judge = vllm_managed.ManagedVllmJudge(spec, ["vllm"], judge_model, adapter, "d", "a", stop=None,
                                              max_in_flight=1, say=print, log_path=tmp_path / "log")
        return judge.serve_command(8000)

    assert command() == ["vllm", "serve", str(judge_model), "--host", "127.0.0.1", "--port", "8000",
                         "--served-model-name", "Qwen/Qwen2.5-VL-7B-Instruct", "--enable-lora", "--lora-modules",
                         f"editeval-judge-adapter={adapter}", "--max-lora-rank", "64"]
    assert command("--max-lora-rank=128")[-3:] == ["--lora-modules", f"editeval-judge-adapter={adapter}",
                                                   "--max-lora-rank=128"]
