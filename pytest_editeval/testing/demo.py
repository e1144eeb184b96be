"""`pytest-editeval demo FOLDER [--benchmark NAME]`: the whole flow on your own machine, with no key, no GPU and
no network.

It writes a small dataset shaped like the benchmark's, edited images for it, a `pytest.ini` that names them and
the judge's URL, and a `conftest.py` that starts the loopback test judge (a real OpenAI-compatible server on
127.0.0.1 that scores by the benchmark's fixed rule) for the run. Then `cd FOLDER && pytest` runs the gate as it
would run against a real judge. The judge listens on a port fixed when the folder is written, so its endpoint
(part of every cache key) is the same on every run and a re-run is answered from the cache.

Each benchmark's demo is declared beside its dataset writer: a module `testing/*_factory.py` with a `DEMOS`
dict {benchmark name: DemoSet}. A new benchmark adds its writer, its judge rule and its DemoSet there, and
the demo (and the command's --benchmark choices) pick it up.
"""

from __future__ import annotations

import hashlib
import importlib
import pkgutil
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

DEFAULT_BENCHMARK = "gedit"
DEMO_KEY = "demo-key"
PORT_RANGE = (20000, 30000)  # below Linux's ephemeral ports (32768+), so no outgoing connection takes it meanwhile


@dataclass(frozen=True)
class DemoSet:
    """What the demo of one benchmark needs: `write(folder)` writes a small dataset and edited images for it under
    `folder` and returns the ini settings that name them ({"dataset": ..., "images": ...}, relative to the
    folder); `scores` and `reply` are the loopback judge's rule (JudgeServer's arguments); `thresholds` the
    demo's gate."""

    write: Callable[[Path], dict[str, str]]
    scores: Callable | None = None  # None: JudgeServer's default (GEdit's rule)
    reply: Callable | None = None
    thresholds: tuple[str, ...] = ()


def demos() -> dict[str, DemoSet]:
    """Every benchmark with a demo: the DEMOS of each `*_factory` module of this package."""
    found: dict[str, DemoSet] = {}
    package = importlib.import_module(__package__)
    for module in pkgutil.iter_modules(package.__path__):
        if module.name.endswith("_factory"):
            found.update(getattr(importlib.import_module(f"{__package__}.{module.name}"), "DEMOS", {}))
    return dict(sorted(found.items(), key=lambda item: (item[0] != DEFAULT_BENCHMARK, item[0])))


def demo_judge(benchmark: str, port: int = 0):
    """The loopback judge of a benchmark's demo, not yet listening (`up()` starts it)."""
    from .judge_server import JudgeServer

    demo = demos()[benchmark]
    rules = {name: rule for name, rule in (("scores", demo.scores), ("reply", demo.reply)) if rule is not None}
    return JudgeServer(api_key=DEMO_KEY, latency=0.05, port=port, **rules)


CONFTEST = '''"""Starts the loopback test judge of pytest-editeval for this demo on 127.0.0.1:{port} (the URL in pytest.ini).
To use a real judge: delete this file, set editeval_judge_url (or EDITEVAL_JUDGE_URL) and editeval_judge_model,
and EDITEVAL_JUDGE_API_KEY in the environment or a .env file."""

import os

import pytest

from pytest_editeval.testing.demo import demo_judge

DEMO_BENCHMARK = {benchmark!r}
DEMO_PORT = {port}  # fixed: the judge's endpoint is part of every cache key, so a re-run hits the cache
_judge = demo_judge(DEMO_BENCHMARK, DEMO_PORT)
_started = []


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    if not hasattr(config, "workerinput"):  # one judge for the whole run, also under xdist
        try:
            _judge.up()
        except OSError as exc:
            raise pytest.UsageError(
                f"demo judge: cannot listen on 127.0.0.1:{{DEMO_PORT}} ({{exc.strerror or exc}}): another run of "
                "this demo may be using it; wait for it, or change DEMO_PORT here and the port in pytest.ini") from None
        _started.append(_judge)
    os.environ.setdefault("EDITEVAL_JUDGE_API_KEY", "{key}")


def pytest_unconfigure(config):
    for judge in _started:
        judge.down()
'''


def _free_port(folder: Path) -> int:
    """A port free now, the same for the same folder name where possible (a fresh demo of the same name keeps
    its endpoint, and with it the cache under its .editeval/)."""
    low, high = PORT_RANGE
    start = int(hashlib.sha256(folder.resolve().name.encode()).hexdigest()[:8], 16) % (high - low)
    for step in range(200):
        port = low + (start + step * 7919) % (high - low)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise OSError(f"no free port on 127.0.0.1 between {low} and {high} for the demo judge")


def write_demo(folder: Path, benchmark: str = DEFAULT_BENCHMARK) -> Path:
    known = demos()
    if benchmark not in known:
        raise KeyError(f"no demo for {benchmark!r}: demos exist for {', '.join(known)}")
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()):
        raise FileExistsError(f"{folder} is not empty: pick a new folder for the demo")
    demo = known[benchmark]
    settings = demo.write(folder)
    port = _free_port(folder)
    lines = ["[pytest]", f"editeval_benchmark = {benchmark}", f"editeval_dataset = {settings['dataset']}",
             f"editeval_images = {settings['images']}", f"editeval_judge_url = http://127.0.0.1:{port}/v1",
             "editeval_judge_model = demo-judge", "editeval_html = report.html", "editeval_json = results.json"]
    if demo.thresholds:
        lines += ["editeval_thresholds =", *(f"    {t}" for t in demo.thresholds)]
    (folder / "pytest.ini").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "conftest.py").write_text(CONFTEST.format(benchmark=benchmark, port=port, key=DEMO_KEY),
                                        encoding="utf-8")
    return folder
