"""Model mode overlaps generation and judging (issue 3): with generation time G and judge time J per row,
wall time should be close to N x max(G, J), not N x (G + J) as in a generate-then-judge harness.
Target: judge-phase wall time within 1.15 x the ideal N x max(G, J).

A fake slow pipeline (a conftest editeval_pipeline that sleeps G per row, as a GPU would) and the loopback
judge whose latency is chosen so that J, the judge time per row at the configured concurrency
(2 requests x latency / 8 in flight), is equal to, below and above G.
Run: python perf/pipelining.py"""

from __future__ import annotations

import tempfile
from pathlib import Path

from common import API_KEY, constant_scores, dataset, run_pytest

from pytest_editeval.testing import JudgeServer

SLOW_EDITOR = '''
import time
import pytest
from PIL import Image

@pytest.fixture(scope="session")
def editeval_pipeline():
    def edit(image, instruction, seed):
        time.sleep({g})
        return Image.new("RGB", image.size, (seed % 256, 90, 160))
    return edit
'''


WORKERS = 8


def measure(root: Path, rows: int, g: float, j: float) -> tuple[float, float]:
    """(wall of the row-processing phase, start-up) for one run."""
    with JudgeServer(api_key=API_KEY, latency=j, scores=constant_scores) as judge, \
            tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "run"
        folder.mkdir()
        (folder / "conftest.py").write_text(SLOW_EDITOR.replace("{g}", str(g)))
        args = ["--editeval-benchmark=gedit", f"--editeval-dataset={root}", f"--editeval-judge-url={judge.url}",
                "--editeval-no-cache", f"--editeval-judge-workers={WORKERS}", f"--editeval-output-dir={Path(tmp) / 'out'}"]
        startup, code, out, _ = run_pytest(folder, *args, "--collect-only")
        wall, code, out, _ = run_pytest(folder, *args)
        assert code == 0, out[-3000:]
        assert judge.count == 2 * rows
    return wall - startup, startup


def main() -> None:
    root, rows = dataset("pipelining", rows_per_subset=4, languages=("en",), size=(256, 256))
    n = len(rows)
    for g, latency in ((0.2, 0.8), (0.3, 0.4), (0.1, 1.2)):
        # J: judge time per row at the configured concurrency (2 requests a row, 8 in flight).
        j = 2 * latency / WORKERS
        phase, startup = measure(root, n, g, latency)
        ideal, sequential = n * max(g, j), n * (g + j)
        print(f"N={n} G={g}s J={j}s (latency {latency}s, {WORKERS} in flight): row phase {phase:.2f} s "
              f"(start-up {startup:.2f} s excluded); "
              f"ideal N*max(G,J) {ideal:.2f} s -> {phase / ideal:.2f} x ideal; generate-then-judge N*(G+J) "
              f"{sequential:.2f} s -> {phase / sequential:.2f} x; target <= 1.15 x ideal: "
              f"{'MET' if phase <= 1.15 * ideal else 'MISSED'}")


if __name__ == "__main__":
    main()
