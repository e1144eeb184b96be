"""Shared fixtures: a GEdit-shaped dataset written once per session, edited images for it, a loopback judge
server per test, and a helper that runs the plugin with pytester the way a user would."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# pytester's in-process runs drop modules first imported during a run; httpx imports httpcore lazily and
# keeps a map of its exception classes, so a re-imported httpcore would slip past that map. Import it here.
import httpcore  # noqa: F401
import pytest

from pytest_editeval.testing import JudgeServer
from pytest_editeval.testing.gedit_factory import make_gedit_dataset, write_edited_images

pytest_plugins = ["pytester"]

if sys.dont_write_bytecode:
    # The suite imports the plugin hundreds of times (xdist workers, pytest runs in subprocesses, pytester runs
    # that re-import what they imported), and pytest rewrites the asserts of every module of a pytest plugin at
    # each import unless it finds them cached: with bytecode turned off (PYTHONDONTWRITEBYTECODE) that was half
    # of a typical test's CPU. Turn it back on for this process and the ones it starts (before xdist starts its
    # workers). No PYTHONPYCACHEPREFIX: that would also hide the bytecode pip compiled for torch and diffusers,
    # and a fresh clone would compile them again (113 MB) in every process that starts before the first is done.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    sys.dont_write_bytecode = False

if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest-xdist runs a worker per core: torch's default of a thread per core in each of them (and in the runs
    # they start) would fight for the same cores, several times slower. Set before any test imports torch.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

API_KEY = "sk-test-SECRET-4f9a2c"


def interruptible() -> None:
    """preexec_fn of a pytest run a test interrupts with SIGINT (Ctrl-C): the child starts with SIGINT's default
    action, so Python turns it into KeyboardInterrupt, whatever this process did with the signal (a library the
    suite ran earlier in this worker may have left it ignored, and an ignored signal stays ignored across exec)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
# Tests that build or load tiny torch models, found by the fixtures they use (so a new test is marked as its
# neighbours are); every torch, ray or browser test is also slow (the markers are listed in pyproject.toml).
TORCH_FIXTURES = {"tiny", "tiny_pix2pix", "local_reference", "model_run", "tiny_judges", "local_run"}
SLOW_KINDS = ("torch", "ray", "browser")


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: one worker more than the cores. A third of the suite waits (on pytest subprocesses, loopback
    servers, deadlines), so a worker per core leaves them idle. On 2 cores the whole suite took 5 min 34 s with
    2 workers, 4 min 56 s with 3 and 5 min 2 s with 4 (same tree, one after the other)."""
    return (os.cpu_count() or 1) + 1


def pytest_collection_modifyitems(items):
    for item in items:
        if TORCH_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.torch)
        if any(item.get_closest_marker(kind) for kind in SLOW_KINDS) and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)
    # Slow tests first (a stable sort keeps each file's order): xdist hands out tests in this order, so a 30 s
    # test that starts last keeps one core busy while the other has nothing left to do.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


ROWS_PER_SUBSET = 4  # 11 subsets x 4 = 44 rows per language; every 4th row is outside the Intersection


@pytest.fixture(scope="session")
def gedit(tmp_path_factory):
    """(dataset folder, rows) of a 2-shard Parquet dataset with en and cn rows."""
    root = tmp_path_factory.mktemp("gedit")
    rows = make_gedit_dataset(root, rows_per_subset=ROWS_PER_SUBSET)
    return root, rows


@pytest.fixture(scope="session")
def en_rows(gedit):
    return [r for r in gedit[1] if r.language == "en"]


@pytest.fixture(scope="session")
def edits(tmp_path_factory, en_rows):
    """JSONL of edited images for every English row, at 1.5x the source size (exercises the resize)."""
    return write_edited_images(tmp_path_factory.mktemp("edits") / "my-model", en_rows, scale=1.5)


@pytest.fixture
def judge():
    with JudgeServer(api_key=API_KEY) as server:
        yield server


@pytest.fixture
def hub():
    """A loopback Hugging Face Hub; tests publish folders on it and point HF_ENDPOINT at it."""
    from .hub_server import HubServer

    with HubServer() as server:
        yield server


@pytest.fixture
def run(pytester, monkeypatch, gedit, edits, judge, tmp_path):
    """Run pytest with the plugin in a fresh folder; extra args override the defaults."""
    monkeypatch.setenv("EDITEVAL_JUDGE_API_KEY", API_KEY)
    cache = tmp_path / "cache"

    def _run(*args: str, images: Path | None = edits, subprocess: bool = False, cache_dir: Path = cache,
             **kwargs):
        base = [
            "--editeval-benchmark=gedit", f"--editeval-dataset={gedit[0]}",
            *([] if images is None else [f"--editeval-images={images}"]), f"--editeval-judge-url={judge.url}",
            f"--editeval-cache-dir={cache_dir}", "--editeval-judge-backoff=0.01", "-p", "no:cacheprovider",
        ]
        runner = pytester.runpytest_subprocess if subprocess else pytester.runpytest
        return runner(*base, *args, **kwargs)

    return _run


def output_of(result) -> str:
    return "\n".join(result.outlines + result.errlines)
