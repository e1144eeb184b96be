"""Full speed under a provider's rate limit, and no slower without one (judges/rate.py).

The loopback judge is put behind a token bucket (JudgeServer(rate_limit=R, burst=R): R requests a second, 429
with Retry-After beyond it, and OpenAI's x-ratelimit-* headers on every answer), answers after LATENCY seconds,
and is asked by a whole pytest run started with --editeval-judge-workers 64: 44 GEdit rows x 2 questions x 5
samples = 440 requests, no cache.

Targets (issue 10):
  limited    sustained throughput >= 90% of the allowed rate, with < 5% of the requests answered 429.
             Sustained throughput = (requests let through - the bucket's burst) / (last - first let through):
             a perfectly paced client gets exactly R.
  unlimited  with a limit far above demand, the adaptive run is as fast as a fixed-concurrency run
             (--editeval-judge-concurrency fixed, the behaviour before adaptation): median wall time within 5%.
Also measured, without a target: the limited run against a provider that sends no x-ratelimit headers (only
429 + Retry-After), where only the AIMD window adapts.
Run: python perf/rate_limits.py [runs]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

from common import API_KEY, constant_scores, dataset, edits, run_pytest

from pytest_editeval.testing import JudgeServer

RATE, LATENCY, WORKERS, SAMPLES = 20.0, 0.5, 64, 5


def _run(root, jsonl, judge, folder, *extra) -> tuple[float, str]:
    wall, code, out, _ = run_pytest(folder, "--editeval-benchmark=gedit", f"--editeval-dataset={root}",
                                    f"--editeval-images={jsonl}", f"--editeval-judge-url={judge.url}",
                                    f"--editeval-judge-workers={WORKERS}", f"--editeval-judge-samples={SAMPLES}",
                                    "--editeval-no-cache", "--editeval-judge-backoff=0.5", *extra)
    assert code == 0, out
    return wall, out


def limited(root, jsonl, rows, *, headers: bool) -> dict:
    with JudgeServer(api_key=API_KEY, latency=LATENCY, scores=constant_scores, rate_limit=RATE, burst=RATE,
                     rate_headers=headers) as judge, tempfile.TemporaryDirectory() as tmp:
        wall, out = _run(root, jsonl, judge, Path(tmp))
        granted = judge.granted_at
        assert len(granted) == 2 * len(rows) * SAMPLES, len(granted)
        span = granted[-1] - granted[0]
        return {"wall": wall, "requests": judge.count, "limited": judge.limited, "share_429": judge.limited / judge.count,
                "sustained": (len(granted) - RATE) / span, "note": next((line for line in out.splitlines()
                                                                         if "answered 429" in line), "")}


def unlimited(root, jsonl, rows, mode: str) -> float:
    with JudgeServer(api_key=API_KEY, latency=0.2, scores=constant_scores, rate_limit=10_000, burst=10_000) as judge, \
            tempfile.TemporaryDirectory() as tmp:
        wall, _ = _run(root, jsonl, judge, Path(tmp), f"--editeval-judge-concurrency={mode}")
        assert judge.limited == 0
        return wall


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    parts = sys.argv[2] if len(sys.argv) > 2 else "all"  # limited | unlimited | all
    root, rows = dataset("throughput", rows_per_subset=4, languages=("en",), size=(512, 512))
    jsonl = edits("throughput-edits", rows)
    print(f"{len(rows)} rows x 2 questions x {SAMPLES} samples = {2 * len(rows) * SAMPLES} requests, "
          f"--editeval-judge-workers {WORKERS}, judge latency {LATENCY} s; {runs} runs each")
    if parts in ("limited", "all"):
        with_headers = [limited(root, jsonl, rows, headers=True) for _ in range(runs)]
        without = [limited(root, jsonl, rows, headers=False) for _ in range(runs)]
        sustained, share = show(f"limit {RATE:g}/s with x-ratelimit headers", with_headers)
        print(f"target: sustained >= 90% and 429 < 5% -> {'MET' if sustained >= 0.9 and share < 0.05 else 'MISSED'}")
        show(f"limit {RATE:g}/s, 429 + Retry-After only (no target)", without)
    if parts in ("unlimited", "all"):
        walls: dict[str, list[float]] = {"adaptive": [], "fixed": []}
        for _ in range(runs):  # interleaved, so that the machine's load falls on both alike
            for mode in walls:
                walls[mode].append(unlimited(root, jsonl, rows, mode))
        adaptive, fixed = statistics.median(walls["adaptive"]), statistics.median(walls["fixed"])
        print(f"limit far above demand: adaptive {adaptive:.2f} s (range {min(walls['adaptive']):.2f} to "
              f"{max(walls['adaptive']):.2f}), fixed {fixed:.2f} s (range {min(walls['fixed']):.2f} to "
              f"{max(walls['fixed']):.2f}); ratio {adaptive / fixed:.3f}")
        print(f"target: adaptive <= 1.05 x fixed -> {'MET' if adaptive <= 1.05 * fixed else 'MISSED'}")


def show(name, results):
    sustained = [r["sustained"] / RATE for r in results]
    shares = [r["share_429"] for r in results]
    wall = statistics.median(r["wall"] for r in results)
    print(f"{name}: sustained throughput {statistics.median(sustained):.1%} of {RATE:g}/s (range {min(sustained):.1%} "
          f"to {max(sustained):.1%}); 429 answers {statistics.median(shares):.1%} of requests (range "
          f"{min(shares):.1%} to {max(shares):.1%}); wall {wall:.1f} s")
    print(f"  {results[-1]['note'].strip()}")
    return statistics.median(sustained), statistics.median(shares)


if __name__ == "__main__":
    main()
