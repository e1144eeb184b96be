"""Judging is network-bound: the run must keep --editeval-judge-workers requests in flight across items.

Target (issue 2): 44 rows (88 requests) against a loopback judge with 200 ms latency, 16 workers, finish
within 1.3 x the ideal (88 x 0.2 s / 16 = 1.1 s) plus at most 2 s of start-up.
Run: python benchmarks/judge_throughput.py
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from common import API_KEY, constant_scores, dataset, edits, run_pytest

from pytest_editeval.testing import JudgeServer

LATENCY, WORKERS = 0.2, 16


def main() -> None:
    root, rows = dataset("throughput", rows_per_subset=4, languages=("en",), size=(512, 512))
    jsonl = edits("throughput-edits", rows)
    ideal = 2 * len(rows) * LATENCY / WORKERS
    with JudgeServer(api_key=API_KEY, latency=LATENCY, scores=constant_scores) as judge, tempfile.TemporaryDirectory() as tmp:
        # Start-up alone: the same run with --collect-only (imports, index, image checks).
        startup, code, _, _ = run_pytest(Path(tmp) / "c", "--editeval-benchmark=gedit", f"--editeval-dataset={root}",
                                         f"--editeval-images={jsonl}", "--collect-only",
                                         f"--editeval-judge-url={judge.url}")
        assert code == 0
        wall, code, out, _ = run_pytest(Path(tmp) / "r", "--editeval-benchmark=gedit", f"--editeval-dataset={root}",
                                        f"--editeval-images={jsonl}", f"--editeval-judge-url={judge.url}",
                                        f"--editeval-judge-workers={WORKERS}", "--editeval-no-cache")
        assert code == 0, out
        assert judge.count == 2 * len(rows), judge.count
        first = judge.first_request_at
        span = judge.last_response_at - first
    limit = 1.3 * ideal + 2.0
    print(f"rows={len(rows)} requests={judge.count} latency={LATENCY}s workers={WORKERS}")
    print(f"ideal judge time            {ideal:.2f} s")
    print(f"judge span (first request to last answer) {span:.2f} s = {span / ideal:.2f} x ideal")
    print(f"whole pytest run            {wall:.2f} s (start-up alone, --collect-only: {startup:.2f} s)")
    print(f"target: whole run <= 1.3 x ideal + 2 s = {limit:.2f} s -> {'MET' if wall <= limit else 'MISSED'}")
    print(re.findall(r"\d+ passed in [\d.]+s", out)[-1])


if __name__ == "__main__":
    main()
