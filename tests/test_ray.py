"""Model mode on Ray (`--editeval-ray`), on this machine's CPUs: a local Ray instance with two (or three) actors,
the tiny diffusers pipeline and the loopback judge. Every run is a subprocess, as users run pytest: a Ray driver
must not live on in the test process."""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import API_KEY, interruptible, output_of
from .tiny import PIXEL_TOLERANCE, max_pixel_difference, needs_diffusers, shared_tiny

if importlib.util.find_spec("ray") is None:  # not imported here: every Ray driver is a subprocess
    pytest.skip("the Ray tests need the [ray] extra (installed by the test extra)", allow_module_level=True)

RAY_CPU = ["--editeval-ray=local", "--editeval-ray-gpus-per-actor=0"]
# One Ray instance at a time (pytest-xdist's loadgroup keeps these tests on one worker): two on 2 cores crowd out.
pytestmark = [pytest.mark.ray, pytest.mark.xdist_group("ray")]
PIX2PIX = "StableDiffusionInstructPix2PixPipeline"
ROWS = ["--editeval-subsets=color_alter,text_change", "--editeval-limit=3"]  # 6 rows

# Part of the conftest below, called inside a Ray actor: the sockets in LISTEN state of the Ray instance the
# actor belongs to (the driver that started it, the raylet's parent, and every process under it), from /proc.
LISTENING_SOCKETS = """
def _parent(pid):
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])

def _tree(root):
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                children.setdefault(_parent(int(entry.name)), []).append(int(entry.name))
            except (OSError, IndexError, ValueError):
                pass
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo.extend(children.get(pid, []))
    return found

def _inodes(pids):
    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            pass
    return inodes

def _address(hex_address):
    raw = bytes.fromhex(hex_address)
    if len(raw) == 4:
        return ipaddress.IPv4Address(raw[::-1])
    address = ipaddress.IPv6Address(b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
    return address.ipv4_mapped or address

def listening_sockets():
    driver = _parent(os.getppid())  # this actor's parent is the raylet; the raylet's, the driver
    inodes = _inodes(_tree(driver))
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # LISTEN, and one of this instance's sockets
                host, port = fields[1].split(":")
                scope = "loopback" if _address(host).is_loopback else "OPEN"
                found.append(f"{_address(host)}:{int(port, 16)} {scope}")
    return found
"""


# A custom editor for the conftest: the tiny pipeline when TINY_MODEL is set (loaded on first use, so inside each
# actor), else a flat image from the seed; it kills its own process (an OOM kill) on rows naming KILL_ON, once
# across the run with KILL_ONCE, and records its process ids. Every setting is read when the fixture builds it,
# on the driver, and travels with the pickled editor.
EDITOR_CONFTEST = """
import os, signal, time
import ipaddress
from pathlib import Path
import pytest
from PIL import Image

class Editor:
    editeval_identity = None  # never cached: every run generates

    def __init__(self):
        self.tiny = os.environ.get("TINY_MODEL")
        self.config = os.environ.get("TINY_CONFIG")
        self.kill_on = os.environ.get("KILL_ON")
        self.kill_once = os.environ.get("KILL_ONCE")  # a marker file: only the first actor to get there dies
        self.pids = os.environ.get("PIDS_FILE")
        self.delay = float(os.environ.get("EDIT_DELAY", "0"))
        self.listening = os.environ.get("LISTENING_FILE")
        self.pipe = None

    def __call__(self, image, instruction, seed):
        if self.listening and not os.path.exists(self.listening):
            with open(self.listening, "w") as fh:
                fh.write("\\n".join(listening_sockets()))
        if self.pids:
            with open(self.pids, "a") as fh:
                fh.write(f"{os.getpid()}\\n")
        if self.kill_on and self.kill_on in instruction and self._first():
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(self.delay)
        if self.tiny:
            if self.pipe is None:
                import json
                from pathlib import Path
                from pytest_editeval.generation.pipeline import GenerationSettings, load_diffusers_editor
                settings = GenerationSettings(model=self.tiny, device="cpu", config=json.loads(self.config))
                self.pipe = load_diffusers_editor(settings, Path(self.tiny), "cpu")
            return self.pipe(image, instruction, seed)
        return Image.new("RGB", image.size, (seed % 256, 90, 160))

    def _first(self):
        if not self.kill_once:
            return True
        try:
            os.close(os.open(self.kill_once, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return True
        except FileExistsError:
            return False

@pytest.fixture(scope="session")
def editeval_pipeline():
    return Editor()
""" + LISTENING_SOCKETS


@pytest.fixture(autouse=True)
def isolated_ray(monkeypatch):
    """Each test's Ray is its own: Ray's temp folder (its sessions and the `ray start` address record) is private,
    and RAY_ADDRESS is cleared, so that no Ray instance running on the machine is found or joined. The folder is
    short: Ray's socket paths must fit in 107 characters. Ray's usage reports (sent to the internet by its head
    process) are off: a test talks to loopback only."""
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    monkeypatch.setenv("RAY_TMPDIR", str(folder))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def tiny_pix2pix(tmp_path_factory):
    needs_diffusers()
    return shared_tiny(PIX2PIX, tmp_path_factory)


def _fast_config():
    from pytest_editeval.testing.tiny_pipelines import FAST_CONFIGS

    return json.dumps(FAST_CONFIGS[PIX2PIX])


@pytest.fixture(scope="module")
def local_reference(tiny_pix2pix, gedit, tmp_path_factory):
    """The tiny pipeline's images and scores for the 6 rows, generated locally in one process."""
    from pytest_editeval.testing import JudgeServer

    folder = tmp_path_factory.mktemp("local-reference")
    with JudgeServer(api_key=API_KEY) as judge:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--editeval-benchmark=gedit",
             f"--editeval-dataset={gedit[0]}", f"--editeval-judge-url={judge.url}", *ROWS,
             f"--editeval-model={tiny_pix2pix}", f"--editeval-generation-config={_fast_config()}",
             "--editeval-device=cpu", f"--editeval-output-dir={folder / 'out'}",
             f"--editeval-cache-dir={folder / 'cache'}", f"--editeval-json={folder / 'local.json'}"],
            cwd=folder, env={**os.environ, "EDITEVAL_JUDGE_API_KEY": API_KEY}, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]
    return _edited(folder / "out"), _scores(folder / "local.json")


def _edited(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.png"))
            if not p.name.endswith("_SRCIMG.png")}


def _scores(path: Path) -> dict:
    return {s["id"]: s["scores"] for s in json.loads(path.read_text())["samples"]}


def _assert_same_images(images: dict, reference: dict) -> None:
    assert images.keys() == reference.keys() and len(images) == 6
    worst = max(max_pixel_difference(images[name], reference[name]) for name in images)
    print("largest pixel difference between the Ray run and the local run:", worst)
    assert worst <= PIXEL_TOLERANCE


def _ray_processes() -> set[int]:
    """Process ids of Ray's own servers (raylet, GCS) of this test's Ray folder: not those of other Ray
    instances on the machine."""
    folder = os.environ["RAY_TMPDIR"].encode()
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if (b"raylet" in command or b"gcs_server" in command) and folder in command:
                found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.is_file() and "\nState:\tZ" in status.read_text())


def _gone(pids, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(_alive(pid) for pid in pids):
            return True
        time.sleep(0.2)
    return False


def test_ray_generation_gives_the_local_images_and_scores(run, pytester, tiny_pix2pix, local_reference, tmp_path):
    images, scores = local_reference
    servers_before = _ray_processes()
    out, results = tmp_path / "out", tmp_path / "ray.json"
    args = [*RAY_CPU, "--editeval-ray-actors=2", *ROWS, f"--editeval-model={tiny_pix2pix}",
            f"--editeval-generation-config={_fast_config()}", f"--editeval-output-dir={out}"]
    result = run(*args, f"--editeval-json={results}", images=None, subprocess=True)
    assert result.ret == 0, output_of(result)
    result.stdout.fnmatch_lines(["editeval: generating on 2 Ray actor(s) at local (on CPUs, 1 node(s))",
                                 "generated 6 images (0 from the cache), saved under*"])
    _assert_same_images(_edited(out), images)
    assert _scores(results) == scores  # per-row seeds: the same edits, so the same scores
    assert json.loads(results.read_text())["meta"]["model_digest"]
    assert _ray_processes() <= servers_before  # the local instance was shut down with the run
    # a fully cached re-run needs no actor: Ray is never started, not even imported
    pytester.makeconftest("""
        import sys
        def pytest_sessionfinish(session):
            print("RAY-IMPORTED:", "ray" in sys.modules)
    """)
    again = run(*args, images=None, subprocess=True)
    assert again.ret == 0, output_of(again)
    again.stdout.fnmatch_lines(["*RAY-IMPORTED: False", "generated 0 images (6 from the cache)*"])
    assert "Ray actor" not in output_of(again)


def test_a_killed_actor_costs_only_its_rows(run, pytester, tiny_pix2pix, local_reference, tmp_path, monkeypatch):
    """One actor is SIGKILLed (as the OOM killer does) while it edits a row: its rows are retried on the other
    actor, and the run ends with the local run's images and scores."""
    images, scores = local_reference
    pytester.makeconftest(EDITOR_CONFTEST)
    monkeypatch.setenv("TINY_MODEL", str(tiny_pix2pix))
    monkeypatch.setenv("TINY_CONFIG", _fast_config())
    monkeypatch.setenv("KILL_ON", "#text_change-1")
    monkeypatch.setenv("KILL_ONCE", str(tmp_path / "killed-once"))
    out, results = tmp_path / "out", tmp_path / "ray.json"
    result = run(*RAY_CPU, "--editeval-ray-actors=2", *ROWS, f"--editeval-output-dir={out}",
                 f"--editeval-json={results}", images=None, subprocess=True)
    assert result.ret == 0, output_of(result)
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["editeval: Ray actor * (pid * on *) was lost: *",
                                 "editeval: * row(s) in flight on a lost actor were retried on another actor"])
    assert (tmp_path / "killed-once").exists()
    _assert_same_images(_edited(out), images)
    assert _scores(results) == scores


def test_a_row_that_kills_every_actor_is_an_error_within_the_bound(run, pytester, tmp_path, monkeypatch):
    """The killing row takes two actors and fails alone; the third actor finishes the run. In batches of two, the
    killing row shares its batch with #text_change-2 (the same source size): that row runs again alone and
    passes, and the killing row is then lost alone, as in batches of one."""
    pytester.makeconftest(EDITOR_CONFTEST)
    monkeypatch.setenv("KILL_ON", "#text_change-1")  # every time: a row no process survives
    results = tmp_path / "ray.json"
    result = run(*RAY_CPU, "--editeval-ray-actors=3", "--editeval-subsets=color_alter,text_change",
                 "--editeval-batch-size=2", f"--editeval-output-dir={tmp_path / 'out'}",
                 f"--editeval-json={results}", images=None, subprocess=True)
    assert result.ret == 1, output_of(result)  # the error row fails its item; the run went on
    result.assert_outcomes(passed=7, failed=1)
    result.stdout.fnmatch_lines(["*: generation lost with its Ray actor 2 times (Ray actor * (pid *), Ray actor * "
                                 "(pid *)): *"])
    assert output_of(result).count("was lost: ") == 2  # the bound: two actors, the third finished the run
    errors = [s for s in json.loads(results.read_text())["samples"] if s["status"] == "error"]
    assert [s["id"].split("-")[1] for s in errors] == ["text_change"] and "#text_change-1" in errors[0]["instruction"]


class _SimulatedRay:
    """Ray as RayEditorPool uses it, driven step by step by the test, in-process (no Ray is started). Each actor
    runs its calls one at a time, in order. A call's reply leaves the actor only when the actor takes its next
    call or has none: the race a loaded machine loses now and then (the reply is still on its way when the next
    call kills the process), lost here every time. A call whose instruction names KILL kills its actor."""

    class RayError(Exception):
        pass

    class RayActorError(RayError):
        pass

    class ObjectLostError(RayError):
        pass

    class GetTimeoutError(RayError):
        pass

    class _Actor:
        def __init__(self, world):
            self.world, self.calls, self.unsent, self.alive = world, [], None, True
            self.edit = self  # handle.edit.remote(...)

        def remote(self, images, instructions, seeds):
            ref = object()
            if self.alive:
                self.calls.append((ref, instructions))
            else:
                self.world.values[ref] = self.world.RayActorError("the actor died")
            return ref

    def __init__(self):
        self.exceptions = self  # ray.exceptions.RayActorError is self.RayActorError
        self.values, self.actors, self.killed_by_rows = {}, [], []

    def actor(self):
        self.actors.append(self._Actor(self))
        return self.actors[-1]

    def step(self):
        for actor in [a for a in self.actors if a.alive]:
            if not actor.calls:
                self._send(actor)
                continue
            ref, instructions = actor.calls.pop(0)
            if any("KILL" in text for text in instructions):
                self.killed_by_rows.append(instructions)
                actor.calls.insert(0, (ref, instructions))
                self.kill(actor)
                continue
            self._send(actor)
            actor.unsent = (ref, ["png of " + text for text in instructions])

    def _send(self, actor):
        if actor.unsent:
            ref, value = actor.unsent
            self.values[ref] = ("ok", value)
            actor.unsent = None

    def kill(self, actor, no_restart=True):
        if actor.alive:  # the reply not sent yet dies with the process, as every call not run
            actor.alive = False
            lost = [actor.unsent[0]] if actor.unsent else []
            for ref in lost + [ref for ref, _ in actor.calls]:
                self.values[ref] = self.RayActorError("the actor died unexpectedly before finishing this task")
            actor.calls, actor.unsent = [], None

    def wait(self, refs, num_returns=1, timeout=None):
        ready = [ref for ref in refs if ref in self.values]
        return ready[:num_returns], [ref for ref in refs if ref not in ready[:num_returns]]

    def get(self, ref, timeout=None):
        if ref not in self.values:
            raise self.GetTimeoutError("not yet")
        value = self.values[ref]
        if isinstance(value, Exception):
            raise value
        return value


@pytest.mark.parametrize("batch", [1, 2])
def test_a_row_that_kills_every_actor_costs_no_other_row_when_replies_lag(batch):
    """Deterministic: a lost batch waits for an idle actor rather than queueing behind another actor's batch, so
    each death is charged to the batch that was running even when the reply of the batch before it never left
    the dying process; a lost batch of several rows runs again row by row. Then the killing row takes exactly
    two actors and is the only error row; every other row comes back."""
    from pytest_editeval.generation.ray_actors import ATTEMPTS, RayEditorPool, RaySettings, _Actor

    ray = _SimulatedRay()
    pool = RayEditorPool(RaySettings("local", 0, 3), started_ray=False, ray=ray)
    pool.actors = [_Actor(number, ray.actor()) for number in (1, 2, 3)]
    rows = [f"row {i}" + (" KILL" if i == 4 else "") for i in range(9)]
    todo, results = [rows[i:i + batch] for i in range(0, len(rows), batch)], {}
    for _ in range(100):
        while todo and pool.has_room():
            texts = todo.pop(0)
            pool.submit(tuple(texts), [None] * len(texts), texts, [0] * len(texts))
        if not todo and not pool.busy:
            break
        ray.step()
        for token, value in pool.collect(timeout=0):
            results.update(zip(token, [value] * len(token) if isinstance(value, str) else value))
    assert sorted(results) == sorted(rows)
    errors = {row: value for row, value in results.items() if not value.startswith("png of ")}
    assert list(errors) == ["row 4 KILL"], errors
    assert errors["row 4 KILL"].startswith(f"generation lost with its Ray actor {ATTEMPTS} times (Ray actor ")
    assert len(ray.killed_by_rows) == ATTEMPTS and [a.alive for a in ray.actors].count(True) == 3 - ATTEMPTS
    assert all(results[row] == f"png of {row}" for row in rows if row not in errors)


def test_ctrl_c_stops_the_actors_and_joins_every_thread(gedit, judge, tmp_path):
    pids, results = tmp_path / "pids", tmp_path / "ray.json"
    (tmp_path / "conftest.py").write_text(EDITOR_CONFTEST)
    servers_before = _ray_processes()
    env = {**os.environ, "EDITEVAL_JUDGE_API_KEY": API_KEY, "PIDS_FILE": str(pids), "EDIT_DELAY": "0.5"}
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--editeval-benchmark=gedit",
         f"--editeval-dataset={gedit[0]}", f"--editeval-judge-url={judge.url}", *RAY_CPU, "--editeval-ray-actors=2",
         f"--editeval-cache-dir={tmp_path / 'cache'}", f"--editeval-output-dir={tmp_path / 'out'}",
         f"--editeval-json={results}"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=interruptible)

    def started() -> bool:  # both actors editing, and some images back on the driver
        saved = list((tmp_path / "out").rglob("*.png")) if (tmp_path / "out").is_dir() else []
        return pids.exists() and len(set(pids.read_text().split())) == 2 and len(saved) >= 2

    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not started() and process.poll() is None:
            time.sleep(0.1)
        assert started(), "the actors never got going"
        time.sleep(0.5)  # rows in flight on both actors
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 2, output[-3000:]  # pytest's "interrupted"
    assert "KeyboardInterrupt" in output and "threads still running" not in output
    actors = {int(pid) for pid in pids.read_text().split()}
    assert len(actors) == 2 and _gone(actors), "the Ray actors outlived the run"
    assert _gone(_ray_processes() - servers_before), "the local Ray instance outlived the run"
    data = json.loads(results.read_text())  # the partial run's results are written
    assert not data["complete"] and data["rows_ran"] < 44


def test_an_override_that_cannot_travel_is_one_line(run, pytester):
    pytester.makeconftest("""
        import threading
        import pytest
        from PIL import Image

        class Holding:
            def __init__(self):
                self.lock = threading.Lock()
            def __call__(self, image, instruction, seed):
                return Image.new("RGB", image.size)

        @pytest.fixture(scope="session")
        def editeval_pipeline():
            return Holding()
    """)
    result = run(*RAY_CPU, "--editeval-ray-actors=2", *ROWS, images=None, subprocess=True)
    assert result.ret == 4, output_of(result)
    result.stdout.fnmatch_lines(["editeval STOPPED (exit 4): the editeval_pipeline override cannot be sent to the Ray "
                                 "actors (TypeError: cannot pickle '_thread.lock' object): return a picklable "
                                 "callable*, or run without --editeval-ray"])
    assert "Traceback" not in output_of(result)


@pytest.mark.parametrize("args, message", [
    (["--editeval-ray=local", "--editeval-ray-gpus-per-actor=0", "--editeval-ray-actors=2", "IMAGES"],
     "--editeval-ray generates the edited images on Ray actors (model mode): drop --editeval-images"),
    (["--editeval-ray-actors=2"], "--editeval-ray-actors needs --editeval-ray ADDRESS"),
    (["--editeval-ray=local", "--editeval-device=cpu"], "--editeval-device does not apply with --editeval-ray"),
    (["--editeval-ray=local", "--editeval-ray-gpus-per-actor=0"],
     "--editeval-ray-gpus-per-actor 0 generates on the actors' CPUs: say how many actors with --editeval-ray-actors N"),
    (["--editeval-ray=somewhere"], "'somewhere' is not a Ray address"),
    (["--editeval-ray=local", "--editeval-ray-gpus-per-actor=0", "--editeval-ray-actors=2", "-n", "2"],
     "--editeval-ray spreads generation over the cluster itself: run without -n (pytest-xdist)"),
])
def test_ray_usage_errors_before_anything_runs(run, edits, args, message):
    args = [f"--editeval-images={edits}" if a == "IMAGES" else a for a in args]
    result = run(*args, images=None)
    assert result.ret == 4, output_of(result)
    assert message in output_of(result) and "Traceback" not in output_of(result)


@pytest.mark.parametrize("args, message", [
    (["--editeval-ray=local"], "editeval STOPPED (exit 4): the Ray cluster at local has 0 GPU(s), not enough for one "
                               "actor of 1 GPU(s): to generate on CPUs pass --editeval-ray-gpus-per-actor 0 "
                               "--editeval-ray-actors N"),
    (["--editeval-ray=127.0.0.1:1"], "editeval STOPPED (exit 4): cannot connect to the Ray cluster at 127.0.0.1:1: "
                                     "nothing answers at 127.0.0.1:1 (Connection refused)*"),
    (["--editeval-ray=auto"], "editeval STOPPED (exit 4): cannot connect to the Ray cluster at auto: no running Ray "
                              "instance found (RAY_ADDRESS is not set and no `ray start` address is recorded in "
                              "*/ray/ray_current_cluster): start one with `ray start --head`, or pass --editeval-ray "
                              "local or HOST:PORT"),
])
def test_a_cluster_that_cannot_serve_is_one_line(run, pytester, args, message):
    pytester.makeconftest(EDITOR_CONFTEST)
    result = run(*args, *ROWS, images=None, subprocess=True)
    assert result.ret == 4, output_of(result)
    result.stdout.fnmatch_lines([message])
    assert "Traceback" not in output_of(result)


def _silent_port():
    """A loopback port that accepts connections and never answers (no Ray head behind it)."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    return listener


@pytest.mark.parametrize("where", ["RAY_ADDRESS", "address file"])
def test_auto_with_an_address_of_a_ray_that_went_away_is_one_line_at_once(run, pytester, isolated_ray, monkeypatch,
                                                                          where):
    """`auto` finds the address of a Ray instance that is gone (a stale `ray start` record, or RAY_ADDRESS): one
    line at once, not Ray's start-up retrying the head for minutes."""
    pytester.makeconftest(EDITOR_CONFTEST)
    with _silent_port() as listener:
        dead = f"127.0.0.1:{listener.getsockname()[1]}"
    if where == "RAY_ADDRESS":
        monkeypatch.setenv("RAY_ADDRESS", dead)
        source = "RAY_ADDRESS"
    else:
        (isolated_ray / "ray").mkdir()
        (isolated_ray / "ray" / "ray_current_cluster").write_text(dead + "\n")
        source = f"the last `ray start` address, from {isolated_ray}/ray/ray_current_cluster"
    result = run("--editeval-ray=auto", "--editeval-ray-gpus-per-actor=0", "--editeval-ray-actors=1", *ROWS,
                 images=None, subprocess=True, timeout=120)
    assert result.ret == 4, output_of(result)
    result.stdout.fnmatch_lines([f"editeval STOPPED (exit 4): cannot connect to the Ray cluster at auto: nothing "
                                 f"answers at {dead} (Connection refused, {source}); start it with `ray start "
                                 "--head`, or check the address"])
    assert "Traceback" not in output_of(result)


def test_an_address_that_answers_but_is_no_ray_head_fails_within_a_deadline(run, pytester, monkeypatch):
    """Something listens at the address but it is no Ray head: Ray's own start-up would retry it for about 12
    minutes; the connection has a deadline, and the run stops with one line. The product bounds the number of
    tries; the length of one try (15 s by default) is the user's to set, and set to 5 s here: Ray's own 20 tries
    would then take at least 120 s, past the runner's deadline, while the product's one try ends well within it."""
    pytester.makeconftest(EDITOR_CONFTEST)
    monkeypatch.setenv("RAY_py_gcs_connect_timeout_s", "5")
    with _silent_port() as listener:
        address = f"127.0.0.1:{listener.getsockname()[1]}"
        result = run(f"--editeval-ray={address}", "--editeval-ray-gpus-per-actor=0", "--editeval-ray-actors=1", *ROWS,
                     images=None, subprocess=True, timeout=120)
    assert result.ret == 4, output_of(result)
    result.stdout.fnmatch_lines([f"editeval STOPPED (exit 4): cannot connect to the Ray cluster at {address}: *"])
    assert "Traceback" not in output_of(result)


def test_a_local_instance_listens_on_loopback_only_and_joins_no_other(run, pytester, monkeypatch, tmp_path):
    """`local` starts this run's own Ray: every socket its processes listen on is bound to loopback, and a
    RAY_ADDRESS in the environment (another cluster, here one that is gone) is not joined."""
    pytester.makeconftest(EDITOR_CONFTEST)
    listening = tmp_path / "listening.txt"
    monkeypatch.setenv("LISTENING_FILE", str(listening))
    with _silent_port() as listener:
        monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{listener.getsockname()[1]}")
    result = run(*RAY_CPU, "--editeval-ray-actors=1", "--editeval-subsets=color_alter", "--editeval-limit=2",
                 images=None, subprocess=True, timeout=300)
    assert result.ret == 0, output_of(result)
    result.stdout.fnmatch_lines(["editeval: generating on 1 Ray actor(s) at local (on CPUs, 1 node(s))"])
    sockets = listening.read_text().splitlines()
    print("\n".join(sockets))
    assert len(sockets) >= 4  # the GCS, the raylet's two servers, the driver's and the actor's workers
    assert all(line.endswith(" loopback") for line in sockets), sockets


def test_a_ray_without_token_authentication_is_one_line(run, pytester, tmp_path, monkeypatch):
    """Ray before 2.52 has no token authentication: --editeval-ray refuses it at start-up, before any test runs
    (the version is read from the installed package's metadata, as here a 2.9 one is seen first)."""
    (tmp_path / "old" / "ray-2.9.3.dist-info").mkdir(parents=True)
    (tmp_path / "old" / "ray-2.9.3.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: ray\n"
                                                                        "Version: 2.9.3\n")
    monkeypatch.syspath_prepend(str(tmp_path / "old"))
    result = run(*RAY_CPU, "--editeval-ray-actors=2", *ROWS, images=None)
    assert result.ret == 4, output_of(result)
    assert ("--editeval-ray needs Ray 2.52 or later (the first with token authentication); this is Ray 2.9.3: "
            "pip install 'pytest-editeval[ray]'" in output_of(result))
    assert output_of(result).count("2.52 or later") == 1 and "Traceback" not in output_of(result)


def test_an_actor_that_cannot_load_the_pipeline_is_one_line(run, tiny_pix2pix):
    result = run(*RAY_CPU, "--editeval-ray-actors=1", *ROWS, f"--editeval-model={tiny_pix2pix}",
                 "--editeval-pipeline-cls=NopeEditPipeline", images=None, subprocess=True)
    assert result.ret == 4, output_of(result)
    result.stdout.fnmatch_lines(["editeval STOPPED (exit 4): Ray actor 1 cannot load the editor: unknown pipeline "
                                 "class 'NopeEditPipeline': not a pipeline of diffusers *"])
    assert "Traceback" not in output_of(result)


def test_without_the_ray_extra_one_line_names_the_pip_command(run, pytester):
    pytester.makeconftest("""
        import sys
        sys.modules["ray"] = None  # as if Ray were not installed
    """)
    result = run(*RAY_CPU, "--editeval-ray-actors=2", images=None, subprocess=True)
    assert result.ret == 4
    assert ("--editeval-ray needs Ray, which is not installed: pip install 'pytest-editeval[ray]'"
            in output_of(result))
