"""Shared set-up of the benchmark scripts: datasets written once under perf/.data/, a loopback judge,
and a timed `pytest` subprocess run as a user would start it."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from pytest_editeval.testing.gedit_factory import REAL_COUNTS, make_gedit_dataset, write_edited_images

DATA = Path(__file__).resolve().parent / ".data"
API_KEY = "sk-benchmark"


def dataset(name: str, *, rows_per_subset, languages=("en", "cn"), size=(512, 512), noise=8):
    """(folder, rows): written on first use, reused afterwards. Noisy 512x512 PNGs of about 0.55 MB, the size
    of GEdit-Bench's pre-resized `input_image`."""
    root = DATA / name
    marker = root / "rows.json"
    if not marker.exists():
        print(f"writing dataset {name} (once)...", flush=True)
        rows = make_gedit_dataset(root, rows_per_subset=rows_per_subset, languages=languages, size=size,
                                  noise=noise, shards=2, row_group_size=100)
        marker.write_text(json.dumps([r.__dict__ for r in rows]))
    from pytest_editeval.testing.gedit_factory import GeditRow

    return root, [GeditRow(**r) for r in json.loads(marker.read_text())]


def edits(name: str, rows, *, noise=8) -> Path:
    folder = DATA / name
    jsonl = folder / "edits.jsonl"
    if not jsonl.exists():
        print(f"writing {len(rows)} edited images ({name}, once)...", flush=True)
        write_edited_images(folder, rows, noise=noise)
    return jsonl


def constant_scores(call) -> list[float]:
    """The benchmarks' judge answers without looking at the images: its own CPU use is not what is measured."""
    return [8.0, 7.0]


def run_pytest(folder: Path, *args: str) -> tuple[float, int, str, int]:
    """(wall seconds, exit code, output, peak RSS in MB) of one `python -m pytest` process."""
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "EDITEVAL_JUDGE_API_KEY": API_KEY}
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    # Plugins the benchmarks do not use (the test extra installs pytest-html) are left out of the timings.
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:html",
                           "-p", "no:metadata", *args], cwd=folder,
                          env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the max over all children so far; runs are ordered so this is the largest one.
    return wall, proc.returncode, proc.stdout + proc.stderr, max(peak, before) // 1024


REAL = REAL_COUNTS


HEAVY_PROBE = '''
import sys
def pytest_sessionfinish(session):
    heavy = sorted(m for m in ("torch", "diffusers", "transformers") if m in sys.modules)
    print("HEAVY-MODULES:", heavy)
'''


def probe_folder(folder: Path) -> Path:
    """A run folder whose conftest.py reports whether torch/diffusers were imported."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "conftest.py").write_text(HEAVY_PROBE)
    return folder


def full_dataset():
    """GEdit-Bench's real shape: 606 English + 606 Chinese rows with the real per-type counts."""
    return dataset("full", rows_per_subset=REAL_COUNTS)
