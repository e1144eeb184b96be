"""One benchmark row -> one Verdict: read its images, ask the judge both questions (or read the answers
from the cache), apply the per-row formula. Errors of this row become an error Verdict; only a fault that
makes the whole run pointless (JudgeFatalError) escapes."""

from __future__ import annotations

import time
from pathlib import Path

from .cache import DEFERRED, Cache, cache_key
from .dataset import Sample, SourceImages
from .errors import InputError, SampleError
from .judge.client import JudgeClient
from .judge.protocol import RowImages, requests_for_row
from .verdict import JudgedAspect, Verdict


class RowEvaluator:
    def __init__(self, *, sources: SourceImages, edited: dict[str, Path], edited_origin: Path,
                 client: JudgeClient, cache: Cache, protocol: str) -> None:
        self.sources = sources
        self.edited = edited
        self.edited_origin = edited_origin
        self.client = client
        self.cache = cache
        self.protocol = protocol

    def evaluate(self, sample: Sample, *, blocking: bool = True):
        """A Verdict, or DEFERRED when (non-blocking) another process is judging this row right now."""
        image_path = self.edited.get(sample.key)
        if image_path is None:
            return Verdict.missing(sample, f"no edited image for {sample.key} in {self.edited_origin}")
        shown_path = str(image_path)
        try:
            images = RowImages(source=self.sources.read(sample), edited=image_path.read_bytes())
        except OSError as exc:
            return Verdict.failed(sample, f"cannot read edited image {image_path}: {exc.strerror or exc}", shown_path)
        except InputError as exc:
            return Verdict.failed(sample, str(exc), shown_path)
        deadline = time.monotonic() + self.client.settings.row_deadline_s
        aspects: list[JudgedAspect] = []
        try:
            for request in requests_for_row(self.protocol, sample.instruction, images):
                identity = {"kind": "judge-verdict", **request.identity(),
                            **self.client.settings.request_parameters()}

                def ask(request=request) -> dict:
                    parsed, raw = self.client.ask(request, deadline)
                    return {"scores": parsed.scores, "reasoning": parsed.reasoning, "reply": raw}

                payload = self.cache.get_or_compute("verdicts", cache_key(identity), ask, blocking=blocking)
                if payload is DEFERRED:
                    return DEFERRED
                aspects.append(JudgedAspect(scores=[float(s) for s in payload["scores"]],
                                            reasoning=payload.get("reasoning")))
        except SampleError as exc:
            return Verdict.failed(sample, str(exc), shown_path)
        except OSError as exc:  # Pillow: truncated or undecodable edited image (only built on a cache miss)
            return Verdict.failed(sample, f"edited image {image_path} cannot be decoded: {exc}", shown_path)
        return Verdict.scored(sample, aspects[0], aspects[1], shown_path)
