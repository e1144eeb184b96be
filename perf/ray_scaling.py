"""Generation on Ray scales with the actors (issue 11): rows per second of the generation phase with 1 and 2
actors of a local Ray instance, for a pipeline that sleeps a fixed G per call (as a GPU would), against the
loopback judge (constant scores, 50 ms latency, far from the bottleneck).

The generation phase is timed by the editor itself: each call appends its start and end to a file, and
rows/s = calls / (last end - first start), so Ray's start-up (about 5 s here) and the actors' set-up are not
counted; the whole run's wall time is printed beside it. Ideal: linear, 1/G rows/s per actor.
Targets: 1 actor >= 0.9 x 1/G; 2 actors >= 1.8 x the 1-actor rate.
Run: python perf/ray_scaling.py"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from common import API_KEY, constant_scores, dataset, run_pytest

from pytest_editeval.testing import JudgeServer

G = 0.4  # seconds a pipeline call takes

TIMED_EDITOR = '''
import os, time
import pytest
from PIL import Image

class Sleeper:
    editeval_identity = None  # never cached: every run generates

    def __init__(self):
        self.g = float(os.environ["EDIT_SECONDS"])
        self.times = os.environ["TIMES_FILE"]

    def __call__(self, image, instruction, seed):
        start = time.time()
        time.sleep(self.g)
        end = time.time()
        with open(self.times, "a") as fh:
            fh.write(f"{start} {end}\\n")
        return Image.new("RGB", image.size, (seed % 256, 90, 160))

@pytest.fixture(scope="session")
def editeval_pipeline():
    return Sleeper()
'''


def measure(root: Path, rows: int, actors: int | None) -> tuple[float, float]:
    """(rows per second of the generation phase, whole wall time); actors None: no Ray, one process."""
    with JudgeServer(api_key=API_KEY, latency=0.05, scores=constant_scores) as judge, \
            tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "run"
        folder.mkdir()
        (folder / "conftest.py").write_text(TIMED_EDITOR)
        times = Path(tmp) / "times"
        os.environ.update(EDIT_SECONDS=str(G), TIMES_FILE=str(times))
        ray = [] if actors is None else ["--editeval-ray=local", "--editeval-ray-gpus-per-actor=0",
                                         f"--editeval-ray-actors={actors}"]
        wall, code, out, _ = run_pytest(folder, "--editeval-benchmark=gedit", f"--editeval-dataset={root}",
                                        f"--editeval-judge-url={judge.url}", "--editeval-no-cache",
                                        f"--editeval-output-dir={Path(tmp) / 'out'}", *ray)
        assert code == 0, out[-3000:]
        assert judge.count == 2 * rows
        spans = [tuple(map(float, line.split())) for line in times.read_text().splitlines()]
        assert len(spans) == rows, (len(spans), rows)
    return rows / (max(e for _, e in spans) - min(s for s, _ in spans)), wall


def main() -> None:
    root, rows = dataset("ray-scaling", rows_per_subset=4, languages=("en",), size=(256, 256))
    n = len(rows)
    ideal = 1 / G
    local, local_wall = measure(root, n, None)
    print(f"N={n} rows, G={G}s per call, ideal {ideal:.2f} rows/s per actor")
    print(f"one process, no Ray: {local:.2f} rows/s (whole run {local_wall:.1f} s)")
    rates = {}
    for actors in (1, 2):
        rates[actors], wall = measure(root, n, actors)
        print(f"Ray, {actors} actor(s): {rates[actors]:.2f} rows/s = {rates[actors] / ideal:.2f} x ideal of one "
              f"actor (whole run {wall:.1f} s)")
    one_ok = rates[1] >= 0.9 * ideal
    two_ok = rates[2] >= 1.8 * rates[1]
    print(f"target 1 actor >= 0.9 x 1/G: {'MET' if one_ok else 'MISSED'}")
    print(f"target 2 actors >= 1.8 x 1 actor ({rates[2] / rates[1]:.2f} x): {'MET' if two_ok else 'MISSED'}")


if __name__ == "__main__":
    main()
