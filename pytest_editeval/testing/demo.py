"""`pytest-editeval demo FOLDER [--benchmark NAME]`: the whole flow on your own machine, with no key, no GPU and
no network.

It writes a small dataset shaped like the benchmark's and edited images for it (the benchmark's dataset writer,
as make_dataset does), and a `pytest.ini` that names them, the judge's URL, and the loopback test judge that the
fixture plugin (`pytest_editeval.testing.fixtures`) starts for the run: a real OpenAI-compatible server on
127.0.0.1 that scores by the benchmark's fixed rule. Then `cd FOLDER && pytest` runs the gate as it would run
against a real judge. The judge listens on a port fixed when the folder is written, so its endpoint (part of every
cache key) is the same on every run and a re-run is answered from the cache.

The benchmarks with a demo are the registered ones whose dataset writer (Benchmark.dataset_writer) says `demo`: a
new benchmark that declares its writer gets one, and a --benchmark choice, with no change here.
"""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

from pytest_editeval.testing.datasets import dataset_writer, writer_names
from pytest_editeval.testing.fixtures import LOOPBACK_INI

DEFAULT_BENCHMARK = "gedit"
PORT_RANGE = (20000, 30000)  # below Linux's ephemeral ports (32768+), so no outgoing connection takes it meanwhile


def demos() -> list[str]:
    """Every registered benchmark with a demo, the default first."""
    names = [name for name in writer_names() if dataset_writer(name).demo]
    return sorted(names, key=lambda name: (name != DEFAULT_BENCHMARK, name))


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
    writer = dataset_writer(benchmark)
    written = writer.write(folder)
    port = _free_port(folder)
    lines = ["# The loopback test judge is started for the run by the fixture plugin (editeval_loopback_judge). To use",
             "# a real judge: delete the addopts and editeval_loopback_judge lines, set editeval_judge_url (or",
             "# EDITEVAL_JUDGE_URL) and editeval_judge_model, and EDITEVAL_JUDGE_API_KEY in the environment or .env.",
             "[pytest]", "addopts = -p pytest_editeval.testing.fixtures", f"{LOOPBACK_INI} = {benchmark}",
             f"editeval_benchmark = {benchmark}",
             f"editeval_dataset = {Path(written.dataset).relative_to(folder).as_posix()}",
             f"editeval_images = {Path(written.images).relative_to(folder).as_posix()}",
             f"editeval_judge_url = http://127.0.0.1:{port}/v1",  # fixed: a re-run's cache keys are the same
             "editeval_judge_model = demo-judge", "editeval_html = report.html", "editeval_json = results.json"]
    if writer.thresholds:
        lines += ["editeval_thresholds =", *(f"    {t}" for t in writer.thresholds)]
    (folder / "pytest.ini").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder
