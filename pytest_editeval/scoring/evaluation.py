"""One benchmark row -> one Verdict: benchmark.questions(row) -> the judge (any backend of judges/, or a panel of
them; each question asked --editeval-judge-samples times; cached, bounded re-asks) -> benchmark.parse ->
benchmark.score_row (through judge_noise.score_samples when there are several samples or judges).

Errors of this row become an error Verdict; only a fault that makes the whole run pointless (JudgeFatalError)
escapes. A question whose replies all stay unreadable after the re-asks is either missing for the row only (a
benchmark whose `unanswered` says what the row keeps without it: KRIS) or makes the row an error row (the
default); a row with nothing read at all is always an error row. An unreadable question is never cached: the next
run asks it again, and only it.

The cache key of an answer is computed without preparing any image: from the digests of the exact
bytes each image refers to, the recipe that prepares it, the prompt texts' digests and the judge's identity.
Digests are memoised by file identity, so a fully cached re-run reads no image at all.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from pathlib import Path

from pytest_editeval.benchmarks import Benchmark, Parsed
from pytest_editeval.data.cache import COMPUTED, DEFERRED, HIT, SHARED, Cache, cache_key, memoised_sha256
from pytest_editeval.data.dataset import ImageStore, Row
from pytest_editeval.data.images import NEEDS_INPUT_SIZE, image_size, prepare, read_image_file, sniff_mime
from pytest_editeval.errors import InputError, SampleError, UnansweredQuestion
from pytest_editeval.judges import Judge
from pytest_editeval.judges.panel import Voice
from pytest_editeval.judges.replies import UnreadableReply, read_reply
from pytest_editeval.judges.requests import EDITED, ImageRef, PreparedImage, Question
from pytest_editeval.scoring.judge_cost import add, empty_saved
from pytest_editeval.scoring.judge_noise import AVERAGE_FIRST, combine, fmean, score_samples
from pytest_editeval.scoring.verdict import Verdict

ANSWER_KIND = "judge-answer-v2"


class RowEvaluator:
    def __init__(self, *, benchmark: Benchmark, protocol: str, images: ImageStore, context: dict,
                 edited_image: Callable[[Row], Path | None], edited_origin: str, cache: Cache, max_pixels: int,
                 judge: Judge | None = None, voices: list[Voice] | None = None, samples: int = 1,
                 order: str = AVERAGE_FIRST, reduce: str = "mean") -> None:
        """`judge`: the run's judge; or `voices`: a panel's judges (judges/panel.py). `samples`: how many times
        each question is asked (--editeval-judge-samples); `order`: average_first or average_last
        (judge_noise.py); `reduce`: how a panel combines its judges' answers (mean or median)."""
        self.benchmark = benchmark
        self.protocol = protocol
        self.images = images
        self.context = context
        # row -> edited image file: a lookup in image mode; in model mode it waits for the producer and raises
        # SampleError when the row could not be generated.
        self.edited_image = edited_image
        self.edited_origin = edited_origin
        self.voices = voices if voices is not None else [Voice("", 1.0, judge)]
        self.judge = self.voices[0].judge
        self.samples = samples
        self.order = order
        self.reduce = reduce
        self.cache = cache
        self.max_pixels = max_pixels
        self._saved_lock = threading.Lock()
        # per judge name: what the answers read from earlier runs' cache entries cost when they were asked
        self.saved: dict[str, dict] = {v.name: empty_saved() for v in self.voices}
        # A row judged ahead (speculatively) counts its cache reads only once its item takes the verdict: under
        # xdist another worker may own the row, and the reads would be counted by both.
        self._unclaimed: dict[str, list] = {}
        # Questions that stayed unreadable in this run, by cache key: never stored in the cache (the next run asks
        # them again), but not asked twice in one run when a deferred row is judged again.
        self._lost: dict[str, UnansweredQuestion] = {}
        # Answers a row computed before it was deferred: counted as computed then, so not as hits when the row
        # comes back and reads them (each question counts once: computed or hit).
        self._computed_before_deferral: dict[str, set[str]] = {}

    @property
    def _plain(self) -> bool:
        """One judge, one sample: answers are recorded exactly as before repeated judging existed."""
        return len(self.voices) == 1 and self.samples == 1

    def evaluate(self, row: Row, *, blocking: bool = True, speculative: bool = False):
        """A Verdict, or DEFERRED when (non-blocking) another process is judging this row right now.
        `speculative`: judged ahead of its item; its cache reads count when `claim(row)` is called."""
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
            slots = self._slots(questions, images)
        except OSError as exc:
            return Verdict.failed(row, f"cannot read edited image {image_path}: {exc.strerror or exc}", shown_path)
        except InputError as exc:
            return Verdict.failed(row, str(exc), shown_path)
        try:
            read = self._judged(row, questions, images, slots, blocking=blocking, speculative=speculative)
        except SampleError as exc:
            return Verdict.failed(row, str(exc), shown_path)
        except OSError as exc:  # the edited image vanished or became unreadable between the checks and now
            return Verdict.failed(row, f"cannot read edited image {image_path}: {exc}", shown_path)
        if read is DEFERRED:
            return DEFERRED
        return self._verdict(row, questions, slots, read, shown_path)

    def _slots(self, questions: list[Question], images: "RowImages") -> list[tuple[int, int, int, str]]:
        """(judge j, sample k, question i, cache key) of every answer the row needs. Each is cached under its own
        judge's identity for that sample; a deterministic judge names all its samples alike, so they share one
        key and are asked once. Reads the images' digests only, never prepares them."""
        identities = [images.identity(q) for q in questions]
        return [(j, k, i, cache_key({"kind": ANSWER_KIND, "question": identities[i], **voice.judge.identity(k)}))
                for j, voice in enumerate(self.voices) for k in range(self.samples)
                for i in range(len(questions))]

    def _judged(self, row: Row, questions: list[Question], images: "RowImages", slots: list, *,
                blocking: bool, speculative: bool):
        """Each distinct answer of the row read, {cache key: (Parsed, payload)}; or DEFERRED while another
        process is asking one of them. Raises the row's SampleError (an unanswerable question, a failed image)."""
        deadline = time.monotonic() + max(v.judge.row_deadline_s for v in self.voices)
        first_slot: dict[str, tuple[int, int, int]] = {}
        for j, k, i, key in slots:
            first_slot.setdefault(key, (j, k, i))
        origins: dict[str, list] = {key: [] for key in first_slot}
        found = self._found(questions, images, deadline, first_slot, origins, blocking)
        with self._saved_lock:
            computed = self._computed_before_deferral.pop(row.id, set())
        computed |= {key for key in first_slot if origins[key][:1] == [COMPUTED]}
        if any(p is DEFERRED for p in found.values()):
            if computed:  # remembered, so that these are not counted as hits when the row comes back
                with self._saved_lock:
                    self._computed_before_deferral[row.id] = computed
            return DEFERRED
        reads = self._reads({k: v for k, v in found.items() if k not in computed}, origins, first_slot)
        if speculative:
            with self._saved_lock:
                self._unclaimed[row.id] = reads
        else:
            self._count(reads)
        return self._read_all(questions, images, deadline, first_slot, found)

    def _found(self, questions: list[Question], images: "RowImages", deadline: float,
               first_slot: dict[str, tuple[int, int, int]], origins: dict[str, list], blocking: bool) -> dict[str, object]:
        """Each distinct answer's payload: from the cache, else asked now; an UnansweredQuestion for one that
        stayed unreadable, DEFERRED for one another process is asking (non-blocking)."""
        found = {key: self.cache.lookup("answers", key, origins[key], count=False) for key in first_slot}
        missing = [key for key, payload in found.items() if payload is None]

        def answered(key: str) -> object:
            j, k, i = first_slot[key]
            return self._answered(key, lambda: self._ask(questions[i], images, deadline, self.voices[j], k),
                                  origins[key], blocking)

        # A row's questions (and samples, and judges) are asked at once: it holds several request slots for one
        # judge latency instead of one slot for several, so fewer rows (and decoded images) are in flight.
        for key, payload in zip(missing, concurrently([lambda key=key: answered(key) for key in missing])):
            found[key] = payload
        return found

    def _answered(self, key: str, ask: Callable[[], dict], origin: list, blocking: bool) -> object:
        """One answer through the cache (asked when nobody has it), or the UnansweredQuestion it ended with."""
        with self._saved_lock:
            if key in self._lost:  # asked in this run already (a row judged again after a deferral)
                return self._lost[key]
        try:
            return self.cache.get_or_compute("answers", key, ask, blocking=blocking, checked=True, origin=origin,
                                             count=False)
        except UnansweredQuestion as exc:  # raised out of the computation, so nothing was stored
            with self._saved_lock:
                self._lost[key] = exc
            return exc

    def _read_all(self, questions: list[Question], images: "RowImages", deadline: float,
                  first_slot: dict[str, tuple[int, int, int]], found: dict[str, object]) -> dict[str, tuple[Parsed, dict]]:
        """Every answer read with the benchmark's rules (see _read_or_lost)."""
        read: dict[str, tuple[Parsed, dict]] = {}
        lost: list[UnansweredQuestion] = []
        for key, (j, k, i) in first_slot.items():
            read[key] = self._read_or_lost(questions[i], found[key], images, deadline, key, self.voices[j], k, lost)
        if len(lost) == len(first_slot):  # nothing at all was read: an error row, with the first question's reason
            raise lost[0]
        return read

    def _verdict(self, row: Row, questions: list[Question], slots: list, read: dict[str, tuple[Parsed, dict]],
                 shown_path: str) -> Verdict:
        """The scored Verdict from the answers read: as before repeated judging existed for one judge asked once,
        else through judge_noise.score_samples, with each judge's and sample's answers kept beside the overall."""
        # answers[j][k][question name]
        parsed = [[{} for _ in range(self.samples)] for _ in self.voices]
        payloads = [[{} for _ in range(self.samples)] for _ in self.voices]
        for j, k, i, key in slots:
            parsed[j][k][questions[i].name], payloads[j][k][questions[i].name] = read[key]
        if self._plain:
            scores = self.benchmark.score_row(row, parsed[0][0])
            answers = {name: _answer_record(parsed[0][0][name], payloads[0][0][name]) for name in parsed[0][0]}
            return Verdict.scored(row, scores, answers, shown_path)
        combined = score_samples(self.benchmark, row, parsed, order=self.order,
                                 weights=[v.weight for v in self.voices], reduce=self.reduce,
                                 judge_names=[v.name for v in self.voices])
        answers = {}
        for q in questions:
            answers[q.name] = self._combined_answer(q.name, combined.answers[q.name], parsed, payloads)
        return Verdict.scored(row, combined.scores, answers, shown_path,
                              judge_sd=combined.judge_sd if self.samples > 1 else {},
                              sample_scores=combined.sample_scores if self.samples > 1 else [],
                              judge_scores=combined.judge_scores)

    def _combined_answer(self, name: str, overall: Parsed, parsed: list, payloads: list) -> dict:
        """One question's answer as results keep it with several samples or judges: the combined values, and
        the samples under it (one judge) or each judge's mean and samples (a panel)."""
        entry: dict = {"values": overall.values, "reasoning": overall.reasoning,
                       **({"unreadable": list(overall.unreadable)} if overall.unreadable else {})}
        per_judge = {}
        for j, voice in enumerate(self.voices):
            samples = [_answer_record(parsed[j][k][name], payloads[j][k][name]) for k in range(self.samples)]
            if len(self.voices) == 1:
                entry["samples"] = samples
            else:
                mean = combine(self.benchmark, name, [parsed[j][k][name] for k in range(self.samples)], fmean)
                per_judge[voice.name] = {"values": mean.values, "samples": samples}
        if per_judge:
            entry["judges"] = per_judge
        return entry

    def claim(self, row: Row) -> None:
        """The row's item took the verdict judged ahead: its cache reads are this process's to count."""
        with self._saved_lock:
            reads = self._unclaimed.pop(row.id, None)
        if reads is not None:
            self._count(reads)

    def _reads(self, found: dict, origins: dict, first_slot: dict) -> list[tuple[str, str, dict | None]]:
        """(HIT or SHARED, judge name, the answer's stored usage) of each answer this row read from the cache."""
        reads = []
        for key, payload in found.items():
            origin = origins[key][:1]
            if origin in ([HIT], [SHARED]) and isinstance(payload, dict):
                usage = payload.get("usage")
                judge = self.voices[first_slot[key][0]].name
                reads.append((origin[0], judge, usage if isinstance(usage, dict) else None))
        return reads

    def _count(self, reads: list[tuple[str, str, dict | None]]) -> None:
        """Count the cache reads, and add what each answer read from an earlier run's entry had cost."""
        for origin, _, _ in reads:
            self.cache.count_found(origin)
        with self._saved_lock:
            for origin, judge, usage in reads:
                if origin != HIT:
                    continue
                saved = self.saved[judge]
                saved["answers"] += 1
                if usage is not None:
                    saved["prompt_tokens"] += int(usage.get("prompt_tokens") or 0)
                    saved["completion_tokens"] += int(usage.get("completion_tokens") or 0)

    def _ask(self, question: Question, images: "RowImages", deadline: float, voice: Voice | None = None,
             sample: int = 0) -> dict:
        """Ask until the reply is readable (bounded re-asks). A reply with some values unreadable is asked again
        too; after the last attempt the best one is kept and its unreadable values stay missing. The payload
        stored: the reply, and the tokens all its attempts cost (when the judge reports them)."""
        voice = voice or self.voices[0]
        judge = voice.judge
        attempts = judge.parse_retries + 1
        request = images.request(question)
        partial, problem = None, ""
        usage: dict | None = None
        for _ in range(attempts):
            answer = judge.answer(request, deadline, sample)
            if answer.usage is not None:
                usage = add([usage, answer.usage], ("prompt_tokens", "completion_tokens"))
            text = answer.text
            try:
                parsed = self._parse(question, text)
            except UnreadableReply as exc:
                problem = str(exc)
                continue
            if not parsed.unreadable:
                return _payload(text, usage)
            if partial is None or len(parsed.unreadable) < partial[0]:
                partial = (len(parsed.unreadable), text)
            problem = f"unreadable: {', '.join(parsed.unreadable)}"
        if partial is not None:
            return _payload(partial[1], usage)
        who = self._who(voice, sample)
        raise UnansweredQuestion(f"{who}{question.name}: judge reply unreadable after {attempts} attempts ({problem})",
                                 reply=text, usage=usage)

    def _who(self, voice: Voice, sample: int) -> str:
        """Which judge and sample an error is about (nothing for one judge asked once: as before)."""
        parts = ([f"judge {voice.name}"] if len(self.voices) > 1 else []) + \
                ([f"sample {sample + 1} of {self.samples}"] if self.samples > 1 else [])
        return f"{', '.join(parts)}: " if parts else ""

    def _read_or_lost(self, question: Question, payload: object, images: "RowImages", deadline: float, key: str,
                      voice: Voice, sample: int, lost: list[UnansweredQuestion]) -> tuple[Parsed, dict]:
        """The answer read (see _read); for a question that stayed unreadable, what the benchmark keeps of the
        row without it (its metrics missing, the reason kept beside them), or the row's error when the
        benchmark cannot score the row without it."""
        try:
            if isinstance(payload, UnansweredQuestion):
                raise payload
            return self._read(question, payload, images, deadline, key, voice, sample)
        except UnansweredQuestion as exc:
            lost.append(exc)
            kept = self.benchmark.unanswered(question)
            if kept is None:
                raise
            return kept, {"reply": exc.reply, "error": str(exc), **({"usage": exc.usage} if exc.usage else {})}

    def _read(self, question: Question, payload: dict, images: "RowImages", deadline: float,
              key: str, voice: Voice | None = None, sample: int = 0) -> tuple[Parsed, dict]:
        """The stored reply, read with the benchmark's rules. A reply stored by an older reader that this one
        cannot read is asked again, and replaced."""
        try:
            return self._parse(question, payload["reply"]), payload
        except UnreadableReply:
            fresh = self._ask(question, images, deadline, voice, sample)
            try:
                self.cache.put("answers", key, fresh)
            except Exception:
                pass
            return self._parse(question, fresh["reply"]), fresh

    def _parse(self, question: Question, text: str) -> Parsed:
        """The benchmark's reading of a reply; whatever else its reader raises on a hostile reply is an
        UnreadableReply too (re-asked, then an error row with that reason), never a crash of the row."""
        return read_reply(lambda reply: self.benchmark.parse(question, reply), text)


def _payload(text: str, usage: dict | None) -> dict:
    return {"reply": text} if usage is None else {"reply": text, "usage": usage}


def _answer_record(parsed: Parsed, payload: dict) -> dict:
    """One answer as results keep it: the values read, the judge's reasoning, its reply, its tokens."""
    return {"values": parsed.values, "reasoning": parsed.reasoning, "reply": payload["reply"],
            **({"unreadable": list(parsed.unreadable)} if parsed.unreadable else {}),
            **({"error": payload["error"]} if payload.get("error") else {}),
            **({"usage": payload["usage"]} if payload.get("usage") else {})}


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
                # From the bytes, never from path, size and time: an image replaced by another of the same size
                # with its time restored must not keep the old answers. It is read anyway to be judged.
                data = self.data(EDITED)
                digest = hashlib.sha256(data).hexdigest()
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
            self._bytes[name] = read_image_file(self.edited, "edited image") if name == EDITED else \
                self.store.read(self._locate(name))
        return self._bytes[name]

    def identity(self, question: Question) -> dict:
        """What fixes the exact request without building it (input of the cache key)."""
        parts = []
        for part in question.parts:
            if isinstance(part, str):
                parts.append({"text_sha256": _sha256_text(part)})
                continue
            entry = {"image": part.image, "sha256": self.digest(part.image), "recipe": part.recipe, "mime": part.mime}
            if part.detail is not None:  # only where sent: other benchmarks' cache keys stay as they were
                entry["detail"] = part.detail
            if part.recipe in NEEDS_INPUT_SIZE:  # the bytes sent depend on the first input's size too
                entry["input_sha256"] = self.digest("input:0")
            parts.append(entry)
        return {"name": question.name, "parts": parts}

    def prepared(self, ref: ImageRef) -> PreparedImage:
        key = (ref.image, ref.recipe, ref.mime, ref.detail)
        with self._lock:
            if key not in self._prepared:
                what = "edited image" if ref.image == EDITED else f"{ref.image.replace(':', ' ')} image"
                data = prepare(ref.recipe, self.data(ref.image), what, self.max_pixels,
                               input_size=lambda: image_size(self.data("input:0"), "input image", self.max_pixels))
                self._prepared[key] = PreparedImage(data, ref.mime or sniff_mime(data), ref.detail)
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
