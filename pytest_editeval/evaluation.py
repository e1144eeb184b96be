"""One benchmark row -> one Verdict: benchmark.questions(row) -> the judge (any backend of judges/; cached, bounded
re-asks) -> benchmark.parse -> benchmark.score_row.

Errors of this row become an error Verdict; only a fault that makes the whole run pointless (JudgeFatalError)
escapes. The cache key of an answer is computed without preparing any image: from the digests of the exact
bytes each image refers to, the recipe that prepares it, the prompt texts' digests and the judge's identity.
Digests are memoised by file identity, so a fully cached re-run reads no image at all.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable

from .benchmarks import Benchmark, Parsed
from .cache import DEFERRED, Cache, cache_key, file_identity, memoised_sha256
from .dataset import ImageStore, Row
from .errors import InputError, SampleError
from .images import NEEDS_INPUT_SIZE, image_size, prepare, sniff_mime
from .judges import Judge
from .judges.replies import UnreadableReply
from .judges.requests import EDITED, ImageRef, PreparedImage, Question
from .verdict import Verdict

ANSWER_KIND = "judge-answer-v2"


class RowEvaluator:
    def __init__(self, *, benchmark: Benchmark, protocol: str, images: ImageStore, context: dict,
                 edited_image: Callable[[Row], Path | None], edited_origin: str, judge: Judge, cache: Cache,
                 max_pixels: int) -> None:
        self.benchmark = benchmark
        self.protocol = protocol
        self.images = images
        self.context = context
        # row -> edited image file: a lookup in image mode; in model mode it waits for the producer and raises
        # SampleError when the row could not be generated.
        self.edited_image = edited_image
        self.edited_origin = edited_origin
        self.judge = judge
        self.cache = cache
        self.max_pixels = max_pixels

    def evaluate(self, row: Row, *, blocking: bool = True):
        """A Verdict, or DEFERRED when (non-blocking) another process is judging this row right now."""
        if row.problem is not None:  # an unsafe dataset row: never looked up, generated or judged
            return Verdict.failed(row, row.problem)
        try:
            image_path = self.edited_image(row)
        except SampleError as exc:
            return Verdict.failed(row, str(exc))
        if image_path is None:
            return Verdict.missing(row, f"no edited image for {row.key} in {self.edited_origin}")
        shown_path = str(image_path)
        images = RowImages(row, self.images, image_path, self.cache, self.max_pixels)
        questions = self.benchmark.questions(row, self.protocol, self.context)
        try:
            keys = [cache_key({"kind": ANSWER_KIND, "question": images.identity(q), **self.judge.identity()})
                    for q in questions]
        except OSError as exc:
            return Verdict.failed(row, f"cannot read edited image {image_path}: {exc.strerror or exc}", shown_path)
        except InputError as exc:
            return Verdict.failed(row, str(exc), shown_path)
        deadline = time.monotonic() + self.judge.row_deadline_s

        def answered(question: Question, key: str) -> object:
            return self.cache.get_or_compute("answers", key, lambda: self._ask(question, images, deadline),
                                             blocking=blocking, checked=True)

        try:
            payloads = [self.cache.lookup("answers", key) for key in keys]
            missing = [i for i, p in enumerate(payloads) if p is None]
            # A row's questions are asked at once: it holds several request slots for one judge latency instead
            # of one slot for several, so fewer rows (and decoded images) are in flight.
            for i, payload in zip(missing, concurrently([lambda i=i: answered(questions[i], keys[i]) for i in missing])):
                payloads[i] = payload
            if any(p is DEFERRED for p in payloads):
                return DEFERRED
            parsed = {q.name: self._read(q, p, images, deadline, key) for q, p, key in zip(questions, payloads, keys)}
        except SampleError as exc:
            return Verdict.failed(row, str(exc), shown_path)
        except OSError as exc:  # the edited image vanished or became unreadable between the checks and now
            return Verdict.failed(row, f"cannot read edited image {image_path}: {exc}", shown_path)
        scores = self.benchmark.score_row(row, {name: p for name, (p, _) in parsed.items()})
        answers = {name: {"values": p.values, "reasoning": p.reasoning, "reply": reply,
                          **({"unreadable": list(p.unreadable)} if p.unreadable else {})}
                   for name, (p, reply) in parsed.items()}
        return Verdict.scored(row, scores, answers, shown_path)

    def _ask(self, question: Question, images: "RowImages", deadline: float) -> dict:
        """Ask until the reply is readable (bounded re-asks). A reply with some values unreadable is asked again
        too; after the last attempt the best one is kept and its unreadable values stay missing."""
        attempts = self.judge.parse_retries + 1
        request = images.request(question)
        partial, problem = None, ""
        for _ in range(attempts):
            text = self.judge.ask(request, deadline)
            try:
                parsed = self.benchmark.parse(question, text)
            except UnreadableReply as exc:
                problem = str(exc)
                continue
            if not parsed.unreadable:
                return {"reply": text}
            if partial is None or len(parsed.unreadable) < partial[0]:
                partial = (len(parsed.unreadable), text)
            problem = f"unreadable: {', '.join(parsed.unreadable)}"
        if partial is not None:
            return {"reply": partial[1]}
        raise SampleError(f"{question.name}: judge reply unreadable after {attempts} attempts ({problem})")

    def _read(self, question: Question, payload: dict, images: "RowImages", deadline: float,
              key: str) -> tuple[Parsed, str]:
        """The stored reply, read with the benchmark's rules. A reply stored by an older reader that this one
        cannot read is asked again, and replaced."""
        try:
            return self.benchmark.parse(question, payload["reply"]), payload["reply"]
        except UnreadableReply:
            fresh = self._ask(question, images, deadline)
            try:
                self.cache.put("answers", key, fresh)
            except Exception:  # noqa: BLE001 - a cache that cannot be written is reported by the cache
                pass
            return self.benchmark.parse(question, fresh["reply"]), fresh["reply"]


class RowImages:
    """A row's images by name ("edited", "input:0", "reference:gt"): their digests (all a cache lookup needs),
    their bytes (read only when a request must really be built), and their prepared bytes, made once per recipe
    and shared by the row's questions."""

    def __init__(self, row: Row, store: ImageStore, edited: Path, cache: Cache, max_pixels: int) -> None:
        self.row = row
        self.store = store
        self.edited = edited
        self.cache = cache
        self.max_pixels = max_pixels
        self._bytes: dict[str, bytes] = {}
        self._digests: dict[str, str] = {}
        self._prepared: dict[tuple, PreparedImage] = {}
        self._lock = threading.Lock()

    def _locate(self, name: str):
        kind, _, which = name.partition(":")
        if kind == "input":
            return self.row.inputs[int(which)]
        if kind == "reference":
            return self.row.reference(which)
        raise ValueError(f"unknown image name {name!r}")

    def digest(self, name: str) -> str:
        if name not in self._digests:
            if name == EDITED:
                digest, data = memoised_sha256(self.cache, {"kind": "file", **file_identity(self.edited)},
                                               self.edited.read_bytes)
            else:
                locator = self._locate(name)
                digest, data = memoised_sha256(self.cache, self.store.identity(locator),
                                               lambda: self.store.read(locator))
            self._digests[name] = digest
            if data is not None:
                self._bytes[name] = data
        return self._digests[name]

    def data(self, name: str) -> bytes:
        if name not in self._bytes:
            self._bytes[name] = self.edited.read_bytes() if name == EDITED else self.store.read(self._locate(name))
        return self._bytes[name]

    def identity(self, question: Question) -> dict:
        """What fixes the exact request without building it (input of the cache key)."""
        parts = []
        for part in question.parts:
            if isinstance(part, str):
                parts.append({"text_sha256": _sha256_text(part)})
                continue
            entry = {"image": part.image, "sha256": self.digest(part.image), "recipe": part.recipe, "mime": part.mime}
            if part.recipe in NEEDS_INPUT_SIZE:  # the bytes sent depend on the first input's size too
                entry["input_sha256"] = self.digest("input:0")
            parts.append(entry)
        return {"name": question.name, "parts": parts}

    def prepared(self, ref: ImageRef) -> PreparedImage:
        key = (ref.image, ref.recipe, ref.mime)
        with self._lock:
            if key not in self._prepared:
                what = "edited image" if ref.image == EDITED else f"{ref.image.replace(':', ' ')} image"
                data = prepare(ref.recipe, self.data(ref.image), what, self.max_pixels,
                               input_size=lambda: image_size(self.data("input:0"), "input image", self.max_pixels))
                self._prepared[key] = PreparedImage(data, ref.mime or sniff_mime(data))
            return self._prepared[key]

    def data_url(self, ref: ImageRef) -> str:
        return self.prepared(ref).data_url

    def request(self, question: Question) -> list[str | PreparedImage]:
        """The question as every judge backend receives it: its texts and prepared images, in order."""
        return [part if isinstance(part, str) else self.prepared(part) for part in question.parts]


def _sha256_text(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def concurrently(calls: list[Callable[[], object]]) -> list[object]:
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

    helpers = [threading.Thread(target=run, args=(i,), name="editeval-question", daemon=True)
               for i in range(len(calls) - 1)]
    for helper in helpers:
        helper.start()
    run(len(calls) - 1)
    for helper in helpers:
        helper.join()
    for error in errors:
        if error is not None:
            raise error
    return results
