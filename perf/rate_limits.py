"""Full speed under a provider's rate limit, and no slower without one (judges/rate.py).

The loopback judge is put behind a token bucket (JudgeServer(rate_limit=R, burst=R): R requests a second, 429
with Retry-After beyond it, and OpenAI's x-ratelimit-* headers on every answer), answers after LATENCY seconds,
and is asked by a whole pytest run started with --editeval-judge-workers 64: 44 GEdit rows x 2 questions x 5
samples = 440 requests, no cache.

The limiter tells its state in one of the shapes providers and gateways use (JudgeServer(limiter=...)):
  bucket       x-ratelimit-* headers on every answer, retry-after-ms and Retry-After on a 429 (OpenAI's way)
  retry-after  a 429 with only `Retry-After` in whole seconds (the HTTP standard's form), nothing else
  litellm      the bucket's headers as a LiteLLM proxy passes them on: renamed llm_provider-NAME
  overstated   headers that claim more room than the bucket has (60 x R a minute, reset in 1 s)
each on a short run (44 rows x 2 questions x 1 sample = 88 requests) and a long one (x 5 samples = 440).

Targets, in every shape and both lengths:
  limited    sustained throughput >= 90% of the allowed rate, with < 5% of the requests answered 429.
             Sustained throughput = (requests let through - the bucket's burst) / (last - first let through):
             a perfectly paced client gets exactly R.
  unlimited  with a limit far above demand, the adaptive run is as fast as a fixed-concurrency run
             (--editeval-judge-concurrency fixed, the behaviour before adaptation): median wall time within 5%,
             on the short run and the long one.
Run: python perf/rate_limits.py [runs] [limited|unlimited|all]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

from common import API_KEY, constant_scores, dataset, edits, run_pytest

from pytest_editeval.testing import JudgeServer

RATE, LATENCY, WORKERS, SAMPLES = 20.0, 0.5, 64, 5
SHAPES = ("bucket", "retry-after", "litellm", "overstated")
LENGTHS = (1, SAMPLES)  # samples a question: 88 and 440 requests


def _run(root, jsonl, judge, folder, *extra, samples: int = SAMPLES) -> tuple[float, str]:
    wall, code, out, _ = run_pytest(folder, "--editeval-benchmark=gedit", f"--editeval-dataset={root}",
                                    f"--editeval-images={jsonl}", f"--editeval-judge-url={judge.url}",
                                    f"--editeval-judge-workers={WORKERS}", f"--editeval-judge-samples={samples}",
                                    "--editeval-no-cache", "--editeval-judge-backoff=0.5", *extra)
    assert code == 0, out
    return wall, out


def limited(root, jsonl, rows, *, shape: str, samples: int) -> dict:
    with JudgeServer(api_key=API_KEY, latency=LATENCY, scores=constant_scores, rate_limit=RATE, burst=RATE,
                     limiter=shape) as judge, tempfile.TemporaryDirectory() as tmp:
        wall, out = _run(root, jsonl, judge, Path(tmp), samples=samples)
        granted = judge.granted_at
        assert len(granted) == 2 * len(rows) * samples, len(granted)
        span = granted[-1] - granted[0]
        return {"wall": wall, "requests": judge.count, "limited": judge.limited, "share_429": judge.limited / judge.count,
                "sustained": (len(granted) - RATE) / span, "note": next((line for line in out.splitlines()
                                                                         if "answered 429" in line), "")}


def unlimited(root, jsonl, rows, mode: str, samples: int) -> float:
    with JudgeServer(api_key=API_KEY, latency=0.2, scores=constant_scores, rate_limit=10_000, burst=10_000) as judge, \
            tempfile.TemporaryDirectory() as tmp:
        wall, _ = _run(root, jsonl, judge, Path(tmp), f"--editeval-judge-concurrency={mode}", samples=samples)
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
        for shape in SHAPES:
            for samples in LENGTHS:
                results = [limited(root, jsonl, rows, shape=shape, samples=samples) for _ in range(runs)]
                sustained, share = show(f"limit {RATE:g}/s, {shape}, {2 * len(rows) * samples} requests", results)
                print(f"target: sustained >= 90% and 429 < 5% -> "
                      f"{'MET' if sustained >= 0.9 and share < 0.05 else 'MISSED'}")
    if parts in ("unlimited", "all"):
        for samples in LENGTHS:
            far_above_demand(root, jsonl, rows, runs, samples)


def far_above_demand(root, jsonl, rows, runs: int, samples: int) -> None:
    walls: dict[str, list[float]] = {"adaptive": [], "fixed": []}
    for _ in range(runs):  # interleaved, so that the machine's load falls on both alike
        for mode in walls:
            walls[mode].append(unlimited(root, jsonl, rows, mode, samples))
    adaptive, fixed = statistics.median(walls["adaptive"]), statistics.median(walls["fixed"])
    print(f"limit far above demand, {2 * len(rows) * samples} requests: adaptive {adaptive:.2f} s (range "
          f"{min(walls['adaptive']):.2f} to "
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
