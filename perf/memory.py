"""The peak memory of a 1,212-row image-mode run stays under 500 MB (issue 4): images are read and encoded
when their row is judged, not all at start. Run: python perf/memory.py

The dataset has 1,212 English rows (twice GEdit-Bench's per-type counts; 512x512 sources of ~0.55 MB) so
that one run judges all 1,212. The pytest process reports its own peak RSS (VmHWM of /proc/self/status) at the
end of the session. getrusage(RUSAGE_CHILDREN) is not used: on Linux a child's maxrss starts from its parent's
size at fork and survives exec, so a first run that writes the dataset in this process would report this
process's gigabytes as the child's."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from common import API_KEY, REAL, constant_scores, dataset, edits, run_pytest

PEAK_PROBE = """
def pytest_unconfigure(config):
    status = open("/proc/self/status").read()
    print("PEAK-RSS-KB", status.split("VmHWM:")[1].split()[0], flush=True)
"""

from pytest_editeval.testing import JudgeServer  # noqa: E402  (after the probe text, which documents the run)


def main() -> None:
    root, rows = dataset("x2-en", rows_per_subset={k: 2 * v for k, v in REAL.items()}, languages=("en",))
    jsonl = edits("x2-en-edits", rows)
    with JudgeServer(api_key=API_KEY, latency=0.05, scores=constant_scores) as judge, \
            tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "run"
        folder.mkdir()
        (folder / "conftest.py").write_text(PEAK_PROBE)
        wall, code, out, _ = run_pytest(folder, "-s", "--editeval-benchmark=gedit",
                                              f"--editeval-dataset={root}", f"--editeval-images={jsonl}",
                                              f"--editeval-judge-url={judge.url}", "--editeval-judge-workers=16",
                                              f"--editeval-cache-dir={Path(tmp) / 'cache'}")
        assert code == 0, out[-3000:]
        assert judge.count == 2 * len(rows)
        peak_mb = int(re.search(r"PEAK-RSS-KB (\d+)", out).group(1)) // 1024
    data_mb = sum(p.stat().st_size for p in root.rglob("*.parquet")) / 1e6
    print(f"{len(rows)} rows judged ({judge.count} requests, 16 in flight, 50 ms judge latency) in {wall:.1f} s")
    print(f"dataset {data_mb:.0f} MB of Parquet; peak RSS of the pytest process: {peak_mb} MB")
    print(f"target < 500 MB -> {'MET' if peak_mb < 500 else 'MISSED'}")


if __name__ == "__main__":
    main()
