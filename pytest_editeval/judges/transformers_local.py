"""The `transformers` judge backend: the judge model in this process, no key, no images leaving the machine.

Any chat VLM that `AutoModelForImageTextToText` and `AutoProcessor` load (Qwen2.5-VL, Qwen3-VL, LLaVA, ...),
from a folder or a ModelScope / Hugging Face id through the same hub code as model mode, with an optional PEFT
LoRA adapter merged in (EditScore's adapters on Qwen2.5-VL / Qwen3-VL). A request becomes one user message whose
content keeps the request's order of texts and images (the same prompt texts and prepared image bytes the HTTP
backend sends), rendered by the model's own chat template.

Requests from the scheduler's threads are queued; one model thread takes up to `--editeval-judge-batch-size` of
them at a time (left-padded), generates, and decodes only the new tokens. Greedy by default; a recipe that
samples (EditScore) seeds torch before each generate call, as EditScore does before each of its calls, so at
batch 1 its seeding is reproduced exactly; at larger batches a reply also depends on its batch-mates, and the
batch size is then part of the cache key.

Weights load on the first request, in the model thread: a fully cached run never loads them, and in model mode
the judge loads after generation has started (its first request waits for the first edited image). Without a
working torchvision (a CPU-only torch next to a CUDA torchvision wheel, or none), Qwen-VL processors cannot be
built as saved (they always build a video processor); the processor is then narrowed to its image processor and
tokenizer, which is all a judge uses, and the summary says so.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_editeval.errors import InputError, JudgeFatalError, SampleError
from pytest_editeval.judges import Answer
from pytest_editeval.judges.options import LOCAL_MODEL
from pytest_editeval.judges.requests import PreparedImage, Request
from pytest_editeval.judges.settings import JudgeFacts, JudgeSpec, require_model, resolve_adapter, sample_seed
from pytest_editeval.options.types import PRECISIONS, Option, choice, judge_device, number

if TYPE_CHECKING:
    from pytest_editeval.data.cache import Cache

# When the recipe sets no limit (ImgEdit, KRIS send none): long enough for any rubric's reasoning.
DEFAULT_MAX_NEW_TOKENS = 1024
# How long the model thread waits for a batch to fill once it holds one request: a row asks its questions at
# once and rows arrive together, so a short wait fills batches; a judge call takes far longer than this.
GATHER_S = 0.05
EXAMPLE_ID = "Qwen/Qwen2.5-VL-7B-Instruct"

OPTIONS = (
    *LOCAL_MODEL,
    Option("judge-device", "transformers: device of the judge model: cpu, cuda, cuda:N, or auto (accelerate "
           "places it over the GPUs); default cuda:<xdist worker index> when CUDA is visible, else cpu", judge_device,
           metavar="DEV", field="device", panel_key="device", one_judge=True),
    Option("judge-precision", "transformers: float32, float16 or bfloat16 (default: bfloat16 on cuda, float32 on "
           "cpu)", choice("precision", PRECISIONS), field="precision", panel_key="precision", one_judge=True),
    Option("judge-batch-size", "transformers: requests per generate call (default {default})", number(int, 1),
           metavar="N", default=1, field="batch_size", panel_key="batch_size", one_judge=True),
)


def configure(spec: JudgeSpec, facts: JudgeFacts) -> JudgeSpec:
    require_model(spec)
    if spec.device and spec.device.startswith("cuda"):
        _check_cuda(spec.device, f"{facts.panel}: device" if facts.panel else "--editeval-judge-device")
    return spec


def _check_cuda(device: str, option: str) -> None:
    try:
        import torch
    except ImportError:  # said by check_installed before this
        return
    count = torch.cuda.device_count()
    index = device.partition(":")[2]
    if not count:
        raise InputError(f"{option} {device}: no CUDA device is visible; pass cpu, or run on a GPU machine")
    if index and int(index) >= count:
        raise InputError(f"{option} {device} does not exist: {count} CUDA device(s) are visible")


def create(spec: JudgeSpec, *, stop: threading.Event, cache: "Cache", say, **_) -> "TransformersJudge":
    """Resolve the model (and adapter) folders and their digests now (the cache keys need them); load later."""
    from pytest_editeval.data.cache import folder_identity
    from pytest_editeval.data.hub import resolve

    folder = resolve(spec.model, spec.hub, "model", offline=spec.offline, option="--editeval-judge-model",
                     example=EXAMPLE_ID, what="judge model")
    if not (folder / "config.json").is_file():
        raise InputError(f"judge model {folder} has no config.json: --editeval-judge-model must be a folder saved "
                         "with save_pretrained (or a hub id of one)")
    adapter = resolve_adapter(spec)
    digest = folder_identity(folder, cache)
    adapter_digest = folder_identity(adapter, cache) if adapter is not None else None
    return TransformersJudge(spec, folder, adapter, digest, adapter_digest, stop=stop, say=say)


class _Pending:
    __slots__ = ("request", "seed", "done", "text", "error")

    def __init__(self, request: Request, seed: int | None = None) -> None:
        self.request = request
        self.seed = seed  # a sampling judge's seed for this request (its sample's); None when greedy
        self.done = threading.Event()
        self.text: str | None = None
        self.error: Exception | None = None

    def finish(self, text: str | None = None, error: Exception | None = None) -> None:
        self.text, self.error = text, error
        self.done.set()


class TransformersJudge:
    backend = "transformers"

    def __init__(self, spec: JudgeSpec, folder: Path, adapter: Path | None, digest: str,
                 adapter_digest: str | None, *, stop: threading.Event, say=print) -> None:
        self.spec = spec
        self.folder = folder
        self.adapter = adapter
        self.digest = digest
        self.adapter_digest = adapter_digest
        self.stop = stop
        self.say = say
        self.device = spec.device or _default_device(spec.worker_index)
        self.precision = spec.precision or ("bfloat16" if self.device.startswith(("cuda", "auto")) else "float32")
        self.requests_sent = 0
        self.batches: list[int] = []  # the size of each generate call (how full batches were)
        self.fatal: JudgeFatalError | None = None
        self.model = None
        self.processor = None
        self._notes: list[str] = []
        self._queue: deque[_Pending] = deque()
        self._cv = threading.Condition()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self.still_running: list[str] = []  # threads that did not end when closed

    # ---- the Judge interface -------------------------------------------------------------------------------
    @property
    def parse_retries(self) -> int:
        # Asking a greedy judge again gives the same reply: an unreadable one is an error at once.
        return self.spec.parse_retries if self.spec.sampling else 0

    @property
    def deterministic(self) -> bool:
        """Greedy: the same request always gets the same reply, so repeated samples are one answer."""
        return not self.spec.sampling

    @property
    def row_deadline_s(self) -> float:
        return self.spec.row_deadline_s

    def generation(self, sample: int = 0) -> dict:
        s = self.spec
        out: dict = {"max_new_tokens": s.max_tokens or DEFAULT_MAX_NEW_TOKENS, "do_sample": s.sampling}
        if s.sampling:
            out.update({k: v for k, v in (("temperature", s.temperature), ("top_p", s.top_p), ("top_k", s.top_k))
                        if v is not None})
            out["seed"] = sample_seed(s.seed if s.seed is not None else 0, sample)  # sampling is always seeded
            out["batch_size"] = s.batch_size  # a sampled reply depends on its batch-mates
        return out

    def identity(self, sample: int = 0) -> dict:
        # A greedy judge's samples are one answer: its identity does not depend on the sample.
        return {"backend": self.backend, "model_digest": self.digest, "adapter_digest": self.adapter_digest,
                "precision": self.precision, "device_type": self.device.split(":")[0],
                "generation": self.generation(sample)}

    def usage(self) -> dict:
        return {"prompt_tokens": 0, "completion_tokens": 0, "requests": self.requests_sent}

    def describe(self) -> dict:
        return {"backend": self.backend, "model": self.spec.model, "digest": self.digest,
                "adapter_digest": self.adapter_digest, "recipe": self.spec.recipe,
                "parameters": {**self.generation(), "device": self.device, "precision": self.precision,
                               "batch_size": self.spec.batch_size}}

    def notes(self) -> list[str]:
        batches = self.batches
        if not batches:
            return list(self._notes)
        return [*self._notes, f"{len(batches)} generate calls, {sum(batches) / len(batches):.1f} requests each on "
                              "average"]

    def answer(self, request: Request, deadline: float | None = None, sample: int = 0) -> Answer:
        return Answer(self.ask(request, deadline, sample))

    def ask(self, request: Request, deadline: float | None = None, sample: int = 0) -> str:
        from pytest_editeval.judges.openai_http import cap_reply

        pending = _Pending(request, self.generation(sample).get("seed"))
        with self._cv:
            if self.fatal is not None:
                raise self.fatal
            if self.stop.is_set() or self._closing.is_set():
                raise SampleError("run interrupted before the judge answered")
            self._queue.append(pending)
            self.requests_sent += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="editeval-judge-model", daemon=True)
                self._thread.start()
            self._cv.notify()
        pending.done.wait()
        if pending.error is not None:
            raise pending.error
        return cap_reply(pending.text or "")

    def interrupt(self) -> None:
        """Stop: queued requests fail at once, a generate call in flight ends at its next token."""
        self.stop.set()
        with self._cv:
            self._cv.notify_all()

    def close(self) -> None:
        from pytest_editeval.run.scheduler import JOIN_TIMEOUT_S

        self._closing.set()
        with self._cv:
            self._cv.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(JOIN_TIMEOUT_S)
            if thread.is_alive():  # said in the summary; the weights stay in memory until it ends
                self.still_running = [thread.name]
                return
        self._release()

    # ---- the model thread ----------------------------------------------------------------------------------
    def _serve(self) -> None:
        try:
            self._load()
        except Exception as exc:
            self.fatal = JudgeFatalError(_load_failure(self.spec, self.folder, self.device, exc), usage=True)
            self.stop.set()
        try:
            while True:
                batch = self._next_batch()
                if batch is None:
                    return
                if not batch:
                    continue
                if self.fatal is not None:
                    for pending in batch:
                        pending.finish(error=self.fatal)
                    continue
                self._answer(batch)
        finally:  # however this thread ends, nobody is left waiting for an answer
            with self._cv:
                self._closing.set()
                left, self._queue = list(self._queue), deque()
            for pending in left:
                pending.finish(error=self.fatal or SampleError("the judge stopped before it answered"))

    def _next_batch(self) -> list[_Pending] | None:
        """Up to batch-size requests, waiting briefly for the batch to fill; None when the judge closes. After a
        stop, every request still queued fails at once."""
        size = self.spec.batch_size
        with self._cv:
            while not self._queue:
                if self._closing.is_set():
                    return None
                self._cv.wait(0.5)
            gather_until = time.monotonic() + GATHER_S
            while len(self._queue) < size and not self._stopping():
                remaining = gather_until - time.monotonic()
                if remaining <= 0:
                    break
                self._cv.wait(remaining)
            # One seed a batch (torch is seeded once a generate call): a sample with another seed waits its turn.
            seed = self._queue[0].seed
            batch = []
            for pending in list(self._queue):
                if len(batch) == size:
                    break
                if pending.seed == seed:
                    batch.append(pending)
            for pending in batch:
                self._queue.remove(pending)
        if self._stopping() and self.fatal is None:
            for pending in batch:
                pending.finish(error=SampleError("run interrupted before the judge answered"))
            return []
        return batch

    def _stopping(self) -> bool:
        return self.stop.is_set() or self._closing.is_set()

    def _answer(self, batch: list[_Pending]) -> None:
        try:
            texts = self._generate([p.request for p in batch], batch[0].seed)
        except _Interrupted:
            for pending in batch:
                pending.finish(error=SampleError("run interrupted while the judge was answering"))
            return
        except Exception as exc:
            if _out_of_memory(exc):
                error = SampleError(f"judge out of memory on {self.device} at batch {len(batch)}: lower "
                                    "--editeval-judge-batch-size, or use --editeval-judge-precision bfloat16")
                for pending in batch:
                    pending.finish(error=error)
            elif len(batch) > 1:  # one request the model cannot take must not fail its batch-mates
                for pending in batch:
                    self._answer([pending])
            else:
                batch[0].finish(error=SampleError(f"judge generation failed: {type(exc).__name__}: "
                                                  f"{_first_line(exc)}"))
            return
        self.batches.append(len(batch))
        for pending, text in zip(batch, texts):
            pending.finish(text=text)

    def _generate(self, requests: list[Request], seed: int | None = None) -> list[str]:
        import torch
        from transformers import LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

        judge = self

        class _StopRequested(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                return judge._stopping()

        conversations = [[{"role": "user", "content": _content(request)}] for request in requests]
        inputs = self.processor.apply_chat_template(
            conversations, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt",
            processor_kwargs={"padding": True})
        inputs = inputs.to(self.model.device)
        prompt_length = inputs["input_ids"].shape[1]
        s, generation = self.spec, self.generation()
        kwargs: dict = {"max_new_tokens": generation["max_new_tokens"], "do_sample": s.sampling}
        if s.sampling:
            kwargs.update({k: generation[k] for k in ("temperature", "top_p", "top_k") if k in generation})
            torch.manual_seed(generation["seed"] if seed is None else seed)
        else:  # greedy whatever the model's generation_config.json says
            kwargs.update(temperature=None, top_p=None, top_k=None)
        processors = self.extra_logits_processors(requests, prompt_length)
        with torch.inference_mode():
            out = self.model.generate(**inputs, **kwargs, stopping_criteria=StoppingCriteriaList([_StopRequested()]),
                                      logits_processor=LogitsProcessorList(processors))
        if self._stopping():
            raise _Interrupted()
        return self.processor.batch_decode(out[:, prompt_length:], skip_special_tokens=True)

    def extra_logits_processors(self, requests: list[Request], prompt_length: int) -> list:
        """Logits processors added to each generate call (none). Tests override this to make a tiny random
        judge spell a scripted reply (testing._scaffold.tiny_judges.ScriptedReplies)."""
        return []

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForImageTextToText

        started = time.monotonic()
        name = self.spec.model + (f" + adapter {self.spec.adapter}" if self.adapter else "")
        self.say(f"loading the judge model {name} on {self.device} in {self.precision}")
        kwargs: dict = {"dtype": getattr(torch, self.precision)}
        if self.device == "auto":
            kwargs["device_map"] = "auto"
        model = AutoModelForImageTextToText.from_pretrained(str(self.folder), **kwargs)
        if self.adapter is not None:
            import warnings

            from peft import PeftModel

            # Merged, as EditScore does: generation then runs at the base model's speed. (peft calls a
            # transformers API deprecated for v6; nothing a user can act on.)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                model = PeftModel.from_pretrained(model, str(self.adapter)).merge_and_unload()
        if self.device != "auto":
            model = model.to(self.device)
        self.model = model.eval()
        self.processor, narrowed = load_processor(self.folder)
        self.processor.tokenizer.padding_side = "left"  # batched generation appends after the prompt
        self._notes.append(f"{name} on {self.device} in {self.precision}, batch size {self.spec.batch_size}, "
                           f"loaded in {time.monotonic() - started:.1f} s")
        if narrowed:
            self._notes.append("processor narrowed to its image processor and tokenizer: torchvision cannot be "
                               "imported here (only video inputs need it)")

    def _release(self) -> None:
        if self.model is None:
            return
        from pytest_editeval.accelerator import free_accelerator_memory

        self.model = self.processor = None
        free_accelerator_memory()


class _Interrupted(Exception):
    pass


def load_processor(folder: Path):
    """(processor, narrowed): the folder's AutoProcessor; without torchvision, the same processor class built
    from its image processor and tokenizer only (video processors need torchvision, judges never send video)."""
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(str(folder)), False
    except Exception as exc:
        if _torchvision_works():
            raise
        first = exc
    try:
        return image_only_processor(folder), True
    except Exception as exc:
        raise first from exc


def image_only_processor(folder: Path):
    import transformers
    from transformers import AutoConfig, AutoImageProcessor, AutoTokenizer
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

    config = AutoConfig.from_pretrained(str(folder))
    name = PROCESSOR_MAPPING_NAMES.get(config.model_type)
    cls = getattr(transformers, name or "", None)
    if cls is None:
        raise ValueError(f"no processor class is known for model type {config.model_type!r}")
    attributes = [a for a in cls.get_attributes() if "video" not in a]
    narrowed = type(f"{cls.__name__}ImageOnly", (cls,), {"get_attributes": classmethod(lambda _: attributes)})
    processor_dict, _ = cls.get_processor_dict(str(folder))
    parts = {"image_processor": AutoImageProcessor.from_pretrained(str(folder)),
             "tokenizer": AutoTokenizer.from_pretrained(str(folder))}
    return narrowed.from_args_and_dict([parts[a] for a in attributes], processor_dict)


def _torchvision_works() -> bool:
    try:
        import torchvision  # noqa: F401
    except Exception:
        return False
    return True


def _content(request: Request) -> list[dict]:
    """Chat content parts in the request's order: texts, and images decoded from the prepared bytes."""
    import io

    from PIL import Image

    out = []
    for part in request:
        if isinstance(part, PreparedImage):
            with Image.open(io.BytesIO(part.data)) as image:
                out.append({"type": "image", "image": image.convert("RGB")})
        else:
            out.append({"type": "text", "text": part})
    return out


def _default_device(worker_index: int) -> str:
    import torch

    count = torch.cuda.device_count()
    return f"cuda:{worker_index % count}" if count else "cpu"


def _out_of_memory(exc: Exception) -> bool:
    return "out of memory" in str(exc).lower() or type(exc).__name__ == "OutOfMemoryError"


def _load_failure(spec: JudgeSpec, folder: Path, device: str, exc: Exception) -> str:
    if isinstance(exc, ImportError) and "peft" in str(exc).lower():
        from pytest_editeval.judges import install_hint

        return f"--editeval-judge-adapter needs peft: {install_hint('local-judge')}"
    return (f"cannot load the judge model {spec.model} ({folder}) on {device}: {type(exc).__name__}: "
            f"{_first_line(exc)}")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:240]
