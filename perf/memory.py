"""The peak memory of a 1,212-row image-mode run stays under 500 MB (issue 4): images are read and encoded
when their row is judged, not all at start. Run: python perf/memory.py

The dataset has 1,212 English rows (twice GEdit-Bench's per-type counts; 512x512 sources of ~0.55 MB) so
that one run judges all 1,212. Peak RSS of the pytest process is read with getrusage(RUSAGE_CHILDREN)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from common import API_KEY, REAL, constant_scores, dataset, edits, run_pytest

from pytest_editeval.testing import JudgeServer


def main() -> None:
    root, rows = dataset("x2-en", rows_per_subset={k: 2 * v for k, v in REAL.items()}, languages=("en",))
    jsonl = edits("x2-en-edits", rows)
    with JudgeServer(api_key=API_KEY, latency=0.05, scores=constant_scores) as judge, \
            tempfile.TemporaryDirectory() as tmp:
        wall, code, out, peak_mb = run_pytest(Path(tmp) / "run", "--editeval-benchmark=gedit",
                                              f"--editeval-dataset={root}", f"--editeval-images={jsonl}",
                                              f"--editeval-judge-url={judge.url}", "--editeval-judge-workers=16",
                                              f"--editeval-cache-dir={Path(tmp) / 'cache'}")
        assert code == 0, out[-3000:]
        assert judge.count == 2 * len(rows)
    data_mb = sum(p.stat().st_size for p in root.rglob("*.parquet")) / 1e6
    print(f"{len(rows)} rows judged ({judge.count} requests, 16 in flight, 50 ms judge latency) in {wall:.1f} s")
    print(f"dataset {data_mb:.0f} MB of Parquet; peak RSS of the pytest process: {peak_mb} MB")
    print(f"target < 500 MB -> {'MET' if peak_mb < 500 else 'MISSED'}")


if __name__ == "__main__":
    main()
