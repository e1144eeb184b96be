"""Throughput of the in-process judge (--editeval-judge-backend transformers) at batch sizes 1, 4 and 16.

A tiny random judge (testing/_scaffold/tiny_judges.py: 2 layers, hidden 64) is built, saved and loaded through the backend's
own path; it is asked GEdit's real requests (the official VIEScore SC and PQ texts, about 1,700 tokens with this
byte-level tokenizer, and 512x512 JPEG images, as the official protocol prepares them) from 32 threads at once, as
the scheduler asks. Each reply is forced to the loopback judge's reply (about 60 tokens), so every batch size
generates the same tokens. On a GPU (`cuda`) the same script runs in bfloat16.

Target: batches fill (the mean batch is the configured size: the model thread gathers the scheduler's requests),
and batching never slows the judge down (requests per second at batch 4 >= batch 1, at batch 16 >= batch 4). How
much it speeds up is the hardware's: a 2-core CPU is compute-bound on the ~1,600-token prompts, a GPU is not.
Run: python perf/local_judge_throughput.py [cpu|cuda] [qwen2.5-vl|qwen3-vl|llava]
"""

from __future__ import annotations

import io
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from pytest_editeval import judges
from pytest_editeval.benchmarks.viescore import questions
from pytest_editeval.data.cache import Cache
from pytest_editeval.data.images import prepare
from pytest_editeval.judges.requests import PreparedImage
from pytest_editeval.judges.settings import JudgeSpec
from pytest_editeval.judges.transformers_local import TransformersJudge
from pytest_editeval.testing._scaffold.tiny_judges import BUILDERS, ScriptedReplies
from pytest_editeval.testing.judge_server import reply_for_request

REQUESTS, THREADS, BATCHES, REPEATS = 96, 32, (1, 4, 16), 3


def scripted(self, requests, prompt_length):
    return [ScriptedReplies(self.processor.tokenizer, [reply_for_request(r) for r in requests], prompt_length)]


def gedit_requests(count: int) -> list[list]:
    """`count` requests as the official protocol sends them: SC (text, source, edited) and PQ (text, edited)."""
    from PIL import Image

    out = []
    for i in range(count // 2):
        images = {}
        for name, color in (("input:0", (40 + i % 200, 90, 128)), ("edited", (200, 40 + i % 200, 60))):
            buf = io.BytesIO()
            Image.effect_noise((512, 512), 20).convert("RGB").point(lambda v, c=color[0]: (v + c) % 256).save(
                buf, format="PNG")
            images[name] = buf.getvalue()
        for question in questions(f"change the color of the car to red #{i}", "official"):
            parts = []
            for part in question.parts:
                if isinstance(part, str):
                    parts.append(part)
                else:
                    data = prepare(part.recipe, images[part.image], part.image, 1 << 30, input_size=lambda: (512, 512))
                    parts.append(PreparedImage(data, part.mime))
            out.append(parts)
    return out


def measure(folder: Path, device: str, precision: str, batch: int, requests: list) -> tuple[float, float, float]:
    """(requests per second, mean batch size, load seconds) of one judge answering `requests` from THREADS."""
    spec = JudgeSpec(backend="transformers", model=str(folder), recipe="viescore", max_tokens=1400, device=device,
                     precision=precision, batch_size=batch)
    judge = judges.create(spec, stop=threading.Event(), max_in_flight=THREADS, cache=Cache(None),
                          say=lambda line: None, workdir=None)
    try:
        began = time.perf_counter()
        judge.ask(requests[0])  # loads the weights; not counted in the throughput
        load = time.perf_counter() - began
        judge.batches.clear()
        pending = list(requests)
        lock = threading.Lock()

        def work() -> None:
            while True:
                with lock:
                    if not pending:
                        return
                    request = pending.pop()
                judge.ask(request)

        threads = [threading.Thread(target=work) for _ in range(THREADS)]
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - began
        return len(requests) / wall, sum(judge.batches) / len(judge.batches), load
    finally:
        judge.close()


def main(device: str, family: str) -> int:
    import torch

    precision = "bfloat16" if device == "cuda" else "float32"
    where = torch.cuda.get_device_name(0) if device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}; {family} tiny judge on {device} ({where}), {precision}; {REQUESTS} GEdit "
          f"requests from {THREADS} threads, median of {REPEATS}")
    TransformersJudge.extra_logits_processors = scripted
    requests = gedit_requests(REQUESTS)
    rates, fills = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = BUILDERS[family](Path(tmp) / family)
        for batch in BATCHES:
            runs = [measure(folder, device, precision, batch, requests) for _ in range(REPEATS)]
            rates[batch] = rate = statistics.median(r[0] for r in runs)
            fills[batch] = statistics.median(r[1] for r in runs)
            print(f"batch {batch:2d}: {rate:6.1f} requests/s ({1000 / rate:6.1f} ms a request), mean batch "
                  f"{fills[batch]:4.1f}, load {statistics.median(r[2] for r in runs):.2f} s")
    filled = all(fills[b] >= 0.9 * b for b in BATCHES)
    faster = rates[4] >= rates[1] and rates[16] >= rates[4]
    print(f"target: batches fill ({'yes' if filled else 'no'}) and batching never slows the judge "
          f"({'yes' if faster else 'no'}; batch 16 = {rates[16] / rates[1]:.2f} x batch 1) -> "
          f"{'MET' if filled and faster else 'MISSED'}")
    return 0 if filled and faster else 1


if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(main(args[0] if args else "cpu", args[1] if len(args) > 1 else "qwen2.5-vl"))
