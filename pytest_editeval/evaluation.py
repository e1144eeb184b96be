"""One benchmark row -> one Verdict: read its images, ask the judge both questions (or read the answers
from the cache), apply the per-row formula. Errors of this row become an error Verdict; only a fault that
makes the whole run pointless (JudgeFatalError) escapes."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable

from .cache import DEFERRED, Cache, cache_key, file_identity, memoised_sha256
from .dataset import Sample, SourceImages
from .errors import InputError, SampleError
from .judges.client import JudgeClient
from .judges.protocol import RowImages, requests_for_row
from .verdict import JudgedAspect, Verdict


class RowEvaluator:
    def __init__(self, *, sources: SourceImages, edited_image: Callable[[Sample], Path | None], edited_origin: str,
                 client: JudgeClient, cache: Cache, protocol: str, max_pixels: int) -> None:
        self.sources = sources
        # key -> edited image file: a lookup in image mode; in model mode it waits for the producer and raises
        # SampleError when the row could not be generated.
        self.edited_image = edited_image
        self.edited_origin = edited_origin
        self.client = client
        self.cache = cache
        self.protocol = protocol
        self.max_pixels = max_pixels

    def evaluate(self, sample: Sample, *, blocking: bool = True):
        """A Verdict, or DEFERRED when (non-blocking) another process is judging this row right now."""
        if sample.problem is not None:  # an unsafe dataset row: never looked up, generated or judged
            return Verdict.failed(sample, sample.problem)
        try:
            image_path = self.edited_image(sample)
        except SampleError as exc:
            return Verdict.failed(sample, str(exc))
        if image_path is None:
            return Verdict.missing(sample, f"no edited image for {sample.key} in {self.edited_origin}")
        shown_path = str(image_path)
        try:
            images = self._row_images(sample, image_path)
        except OSError as exc:
            return Verdict.failed(sample, f"cannot read edited image {image_path}: {exc.strerror or exc}", shown_path)
        except InputError as exc:
            return Verdict.failed(sample, str(exc), shown_path)
        deadline = time.monotonic() + self.client.settings.row_deadline_s
        requests = requests_for_row(self.protocol, sample.instruction, images, self.max_pixels)
        # The judge's identity includes its endpoint: the same model name behind another URL is another judge.
        keys = [cache_key({"kind": "judge-verdict", **r.identity(), **self.client.settings.identity()})
                for r in requests]

        def judged(request, key) -> object:
            def ask() -> dict:
                parsed, raw = self.client.ask(request, deadline)
                return {"scores": parsed.scores, "reasoning": parsed.reasoning, "reply": raw}

            return self.cache.get_or_compute("verdicts", key, ask, blocking=blocking, checked=True)

        try:
            payloads = [self.cache.lookup("verdicts", key) for key in keys]
            missing = [i for i, p in enumerate(payloads) if p is None]
            # Questions still to ask are asked at once: a row holds two request slots for one judge latency
            # instead of one slot for two, so half as many rows (and decoded images) are in flight.
            for i, payload in zip(missing, _concurrently([lambda i=i: judged(requests[i], keys[i]) for i in missing])):
                payloads[i] = payload
        except SampleError as exc:
            return Verdict.failed(sample, str(exc), shown_path)
        except OSError as exc:  # the edited image vanished or became unreadable between the checks and now
            return Verdict.failed(sample, f"cannot read edited image {image_path}: {exc}", shown_path)
        if any(p is DEFERRED for p in payloads):
            return DEFERRED
        sc, pq = (JudgedAspect(scores=[float(s) for s in p["scores"]], reasoning=p.get("reasoning"))
                  for p in payloads)
        return Verdict.scored(sample, sc, pq, shown_path)


    def _row_images(self, sample: Sample, image_path: Path) -> RowImages:
        source_sha, source = memoised_sha256(self.cache, self.sources.identity(sample),
                                             lambda: self.sources.read(sample))
        edited_sha, edited = memoised_sha256(self.cache, {"kind": "file", **file_identity(image_path)},
                                             image_path.read_bytes)
        return RowImages(source_sha, edited_sha,
                         (lambda: source) if source is not None else (lambda: self.sources.read(sample)),
                         (lambda: edited) if edited is not None else image_path.read_bytes)


def _concurrently(calls: list[Callable[[], object]]) -> list[object]:
    """Run the calls at once (all but the last in helper threads); results in order, or the first error."""
    if len(calls) < 2:
        return [call() for call in calls]
    results: list[object] = [None] * len(calls)
    errors: list[BaseException | None] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            results[i] = calls[i]()
        except BaseException as exc:  # re-raised below, in the row's own thread
            errors[i] = exc

    helpers = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(calls) - 1)]
    for helper in helpers:
        helper.start()
    run(len(calls) - 1)
    for helper in helpers:
        helper.join()
    for error in errors:
        if error is not None:
            raise error
    return results
