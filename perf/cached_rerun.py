"""A fully cached re-run of the 606 English rows takes under 3 s, with zero judge calls and without importing
torch (issue 4). Run: python perf/cached_rerun.py"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from common import API_KEY, constant_scores, edits, full_dataset, probe_folder, run_pytest

from pytest_editeval.testing import JudgeServer


def main() -> None:
    root, rows = full_dataset()
    jsonl = edits("full-en-edits", [r for r in rows if r.language == "en"])
    with JudgeServer(api_key=API_KEY, scores=constant_scores) as judge, tempfile.TemporaryDirectory() as tmp:
        args = ["--editeval-benchmark=gedit", f"--editeval-dataset={root}", f"--editeval-images={jsonl}",
                f"--editeval-judge-url={judge.url}", f"--editeval-cache-dir={Path(tmp) / 'cache'}",
                "--editeval-threshold=overall>=7"]
        first, code, out, _ = run_pytest(Path(tmp) / "first", *args)
        assert code == 0 and judge.count == 1212, (judge.count, out[-2000:])
        walls = []
        for attempt in range(3):
            wall, code, out, _ = run_pytest(probe_folder(Path(tmp) / f"rerun{attempt}"), *args)
            assert code == 0 and "judge requests: 0; cache: 1212 hits, 0 computed" in out, out[-2000:]
            assert "HEAVY-MODULES: []" in out
            walls.append(wall)
        assert judge.count == 1212
    print(f"first run (606 rows judged, 1212 requests, judge latency 0): {first:.2f} s")
    print(f"fully cached re-run x3: median {statistics.median(walls):.2f} s, max {max(walls):.2f} s; "
          "judge requests 0; torch not imported")
    print(f"target < 3 s -> {'MET' if max(walls) < 3 else 'MISSED'}")


if __name__ == "__main__":
    main()
