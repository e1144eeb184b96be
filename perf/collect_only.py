"""`--collect-only` of the full 1,212-row dataset must not decode images, call the judge or import torch,
and take under 2 s (issue 2). Run: python perf/collect_only.py"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from common import API_KEY, full_dataset, probe_folder, run_pytest

from pytest_editeval.testing import JudgeServer


def main() -> None:
    root, rows = full_dataset()
    size_mb = sum(p.stat().st_size for p in root.rglob("*.parquet")) / 1e6
    with JudgeServer(api_key=API_KEY) as judge, tempfile.TemporaryDirectory() as tmp:
        walls = []
        for language in ("en", "cn"):
            for attempt in range(3):
                folder = probe_folder(Path(tmp) / f"{language}{attempt}")
                wall, code, out, _ = run_pytest(folder, "--editeval-benchmark=gedit", f"--editeval-dataset={root}",
                                                f"--editeval-language={language}", "--collect-only",
                                                f"--editeval-judge-url={judge.url}", "--editeval-images=/dev/null")
                assert code == 0, out
                assert "606 tests collected" in out and "HEAVY-MODULES: []" in out, out
                walls.append(wall)
        assert judge.count == 0
    print(f"dataset: {len(rows)} rows, {size_mb:.0f} MB of Parquet")
    print(f"--collect-only wall time over 6 runs (3 en, 3 cn): median {statistics.median(walls):.2f} s, "
          f"max {max(walls):.2f} s; judge requests 0; torch/diffusers/transformers imported: none")
    print(f"target < 2 s -> {'MET' if max(walls) < 2 else 'MISSED'}")


if __name__ == "__main__":
    main()
