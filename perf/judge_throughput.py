"""Judging is network-bound: the run must keep --editeval-judge-workers requests in flight across items.

Target (issue 2): 44 rows (88 requests) against a loopback judge with 200 ms latency, 16 workers, finish
within 1.3 x the ideal (88 x 0.2 s / 16 = 1.1 s) plus at most 2 s of start-up.
Run: python perf/judge_throughput.py
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from common import API_KEY, constant_scores, dataset, edits, run_pytest

from pytest_editeval.testing import JudgeServer

LATENCY, WORKERS, RUNS = 0.2, 16, 5


def main() -> None:
    root, rows = dataset("throughput", rows_per_subset=4, languages=("en",), size=(512, 512))
    jsonl = edits("throughput-edits", rows)
    ideal = 2 * len(rows) * LATENCY / WORKERS
    walls, spans, startups = [], [], []
    for _ in range(RUNS):
        with JudgeServer(api_key=API_KEY, latency=LATENCY, scores=constant_scores) as judge, \
                tempfile.TemporaryDirectory() as tmp:
            # Start-up alone: the same run with --collect-only (imports, index, image checks).
            startup, code, _, _ = run_pytest(Path(tmp) / "c", "--editeval-benchmark=gedit",
                                             f"--editeval-dataset={root}", f"--editeval-images={jsonl}",
                                             "--collect-only", f"--editeval-judge-url={judge.url}")
            assert code == 0
            wall, code, out, _ = run_pytest(Path(tmp) / "r", "--editeval-benchmark=gedit",
                                            f"--editeval-dataset={root}", f"--editeval-images={jsonl}",
                                            f"--editeval-judge-url={judge.url}", f"--editeval-judge-workers={WORKERS}",
                                            "--editeval-no-cache")
            assert code == 0, out
            assert judge.count == 2 * len(rows), judge.count
            walls.append(wall)
            spans.append(judge.last_response_at - judge.first_request_at)
            startups.append(startup)
    limit = 1.3 * ideal + 2.0
    wall, span = statistics.median(walls), statistics.median(spans)
    print(f"rows={len(rows)} requests={2 * len(rows)} latency={LATENCY}s workers={WORKERS}; medians of {RUNS} runs")
    print(f"ideal judge time            {ideal:.2f} s")
    print(f"judge span (first request to last answer) {span:.2f} s = {span / ideal:.2f} x ideal "
          f"(range {min(spans):.2f} to {max(spans):.2f} s)")
    print(f"whole pytest run            {wall:.2f} s (range {min(walls):.2f} to {max(walls):.2f} s; "
          f"start-up alone, --collect-only: {statistics.median(startups):.2f} s)")
    print(f"target: whole run <= 1.3 x ideal + 2 s = {limit:.2f} s -> {'MET' if wall <= limit else 'MISSED'} "
          f"(median; {sum(w <= limit for w in walls)} of {RUNS} runs within)")


if __name__ == "__main__":
    main()
