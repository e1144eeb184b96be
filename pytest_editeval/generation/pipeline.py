"""Model mode: edited images made by a diffusers pipeline (or any callable) ahead of the judge.

A producer thread edits the selected rows in item order, in batches of rows whose sources have the same
size, and saves each image the moment it exists: in the content-addressed cache (so a re-run costs no GPU
work) and in the official layout under the output folder (so a run can be re-judged later in image mode).
Judge threads wait only for their own row's image, so with generation time G and judge time J per row the
run takes about N x max(G, J), not N x (G + J).

torch and diffusers are imported only when a pipeline is actually loaded: --collect-only, image mode and a
run whose images are all cached never import them.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_editeval.data.cache import Cache, cache_key, memoised_sha256, write_atomic
from pytest_editeval.data.dataset import ImageStore, Row
from pytest_editeval.data.images import decode_rgb
from pytest_editeval.errors import CacheWriteError, EditEvalError, InputError, SampleError

# Pipelines whose __call__ takes a single prompt: batch size 1 whatever is asked.
ONE_PROMPT_PER_CALL = {"QwenImageEditPlusPipeline"}
# Pipelines that take a list of input images for one prompt (KRIS-Bench's multi-reference and temporal rows).
MULTI_IMAGE_PIPELINES = {"QwenImageEditPlusPipeline"}
# Arguments the plugin passes itself; a generation config must not set them.
RESERVED_ARGUMENTS = {"image", "prompt", "generator"}
OOM_ADVICE = ("lower --editeval-batch-size, use --editeval-precision bfloat16, --editeval-cpu-offload, or "
              "--editeval-device-map balanced across GPUs")


class GenerationSetupError(EditEvalError):
    """The pipeline cannot be built (unknown class, incomplete folder, wrong class, bad config): stop the run."""


class GenerationInterrupted(Exception):
    """A pipeline call ended early because the run is stopping: its output is incomplete."""


@dataclass(frozen=True)
class GenerationSettings:
    model: str | None
    model_hub: str = "modelscope"
    revision: str | None = None
    offline: bool = False
    pipeline_cls: str | None = None
    precision: str | None = None
    device: str | None = None
    device_map: str | None = None
    cpu_offload: bool = False
    config: dict = field(default_factory=dict)
    seed: int = 0
    batch_size: int = 1
    output_dir: Path = Path(".editeval/outputs")
    worker_index: int = 0  # pytest-xdist worker number: picks this worker's GPU
    devices: tuple[str, ...] = ()  # --editeval-devices, one per worker

    def device_type(self) -> str:
        """cuda or cpu, without importing torch (a cached run must not): an explicit device, else cuda."""
        return (self.device or "cuda").split(":")[0]

    def resolve_device(self) -> str:
        if self.device:
            return self.device
        import torch

        count = torch.cuda.device_count()
        if not count:
            raise GenerationSetupError("no CUDA device is visible: pass --editeval-device cpu to generate on the "
                                       "CPU (slow), or run on a GPU machine")
        return f"cuda:{self.worker_index % count}"

    def check_devices(self) -> None:
        """Stop before anything runs or is written when a device cannot be used: a typo'd or absent GPU would
        otherwise surface only at the first generated row. A CPU needs no check and imports no torch."""
        wanted = [self.device] if self.device else list(self.devices) or ["cuda"]
        if all(name.split(":")[0] == "cpu" for name in wanted):
            return
        try:
            import torch
        except ImportError:
            raise InputError("model mode needs torch and diffusers: pip install 'pytest-editeval[model]'") from None
        for name in wanted:
            kind, _, index = name.partition(":")
            if kind == "cuda":
                count = torch.cuda.device_count()
                if not count:
                    raise InputError(f"device {name}: no CUDA device is visible; pass --editeval-device cpu to "
                                     "generate on the CPU (slow), or run on a GPU machine")
                if index and int(index) >= count:
                    raise InputError(f"device {name} does not exist: {count} CUDA device(s) are visible "
                                     f"(cuda:0 to cuda:{count - 1})")
            elif kind == "mps" and not torch.backends.mps.is_available():
                raise InputError(f"device {name}: MPS is not available on this machine; pass --editeval-device cpu")
            elif kind == "xpu" and not (hasattr(torch, "xpu") and torch.xpu.is_available()):
                raise InputError(f"device {name}: no XPU is available on this machine; pass --editeval-device cpu")

    def dtype_name(self, device: str) -> str:
        return self.precision or ("bfloat16" if device.startswith("cuda") else "float32")

    def identity(self, folder_hash: str, class_name: str) -> dict:
        """What determines a generated image, besides the row: part of its cache key."""
        return {"model": folder_hash, "pipeline": class_name, "precision": self.dtype_name(self.device_type()),
                "device_type": self.device_type(), "config": self.config}


def row_seed(seed: int, key: str) -> int:
    """A row's seed from the global seed and the row key: results do not depend on order, batch or worker."""
    return int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:8], 16)


# ---- the model folder ----------------------------------------------------------------------------------
def resolve_model(settings: GenerationSettings) -> Path:
    from pytest_editeval.data.hub import resolve

    try:
        return resolve(settings.model, settings.model_hub, "model", revision=settings.revision,
                       offline=settings.offline)
    except InputError as exc:
        raise GenerationSetupError(str(exc)) from None


def check_model_folder(folder: Path) -> dict:
    """model_index.json must exist and every component it names must be a non-empty folder: a missing
    tokenizer folder loads silently and fails much later."""
    index_file = folder / "model_index.json"
    if not index_file.is_file():
        raise GenerationSetupError(
            f"{folder} is not a diffusers pipeline folder: no model_index.json (save it with save_pretrained)")
    from pytest_editeval.data.jsonfile import TOO_DEEP, config_text

    try:
        index = json.loads(config_text(index_file))
    except (ValueError, OSError, *TOO_DEEP) as exc:  # UnicodeDecodeError is a ValueError
        raise GenerationSetupError(f"{index_file} is not valid JSON: {str(exc)[:160] or type(exc).__name__}") from None
    for name, spec in index.items():
        if name.startswith("_") or not (isinstance(spec, list) and len(spec) == 2 and spec[0] and spec[1]):
            continue
        component = folder / name
        if not component.is_dir() or not any(component.iterdir()):
            raise GenerationSetupError(
                f"model folder {folder} is incomplete: component '{name}' ({spec[1]}) named in model_index.json "
                "is missing or empty")
    return index


# ---- loading a diffusers pipeline ----------------------------------------------------------------------
class DiffusersEditor:
    """Wraps a loaded pipeline as the editor the producer calls, batch by batch."""

    def __init__(self, pipe: Any, class_name: str, config: dict, device: str) -> None:
        self.pipe = pipe
        self.class_name = class_name
        self.config = config
        self.device = device
        self.max_batch = 1 if class_name in ONE_PROMPT_PER_CALL else None
        self.editeval_multi_image = class_name in MULTI_IMAGE_PIPELINES
        self._interrupted = False

    def edit_batch(self, images: list, instructions: list[str], seeds: list[int]) -> list:
        import torch

        if self._interrupted:
            raise GenerationInterrupted()
        # CPU generators: the same seed gives the same noise on any device, alone or in a batch.
        generators = [torch.Generator(device="cpu").manual_seed(s) for s in seeds]
        single = len(images) == 1
        output = self.pipe(image=images[0] if single else images, prompt=instructions[0] if single else instructions,
                           generator=generators[0] if single else generators, **self.config)
        if self._interrupted:  # the denoising loop skipped its remaining steps: the images are unfinished
            raise GenerationInterrupted()
        return list(getattr(output, "images", None) or [])

    def interrupt(self) -> None:
        """Ask a call in flight to end early: diffusers pipelines with an `interrupt` property skip their
        remaining denoising steps when `_interrupt` is set (others finish the call, then stop)."""
        self._interrupted = True
        pipe = self.pipe
        if pipe is not None and isinstance(getattr(type(pipe), "interrupt", None), property):
            pipe._interrupt = True

    def __call__(self, image, instruction: str, seed: int):
        return self.edit_batch([image], [instruction], [seed])[0]

    def release(self) -> None:
        from pytest_editeval.accelerator import free_accelerator_memory

        self.pipe = None
        free_accelerator_memory()


# diffusers' own deprecation notices (its deprecate() helper, and numpy's under its schedulers), raised on every
# pipeline call of every row: noise to a user of the plugin, who cannot act on them. Only diffusers' modules.
DIFFUSERS_DEPRECATIONS = {DeprecationWarning: "ignore::DeprecationWarning:diffusers",
                          FutureWarning: "ignore::FutureWarning:diffusers"}  # category: pytest's filter line


def silence_diffusers_deprecations(config=None) -> None:
    """Ignore diffusers' deprecation warnings from now on: in the current warning filters (the item that loads
    the pipeline), and, given pytest's config, in the filters pytest applies to every later item (the generation
    thread's warnings are recorded by whichever item runs meanwhile)."""
    import warnings

    for category, line in DIFFUSERS_DEPRECATIONS.items():
        warnings.filterwarnings("ignore", category=category, module="diffusers")  # diffusers and its submodules
        if config is not None and line not in config.getini("filterwarnings"):
            config.addinivalue_line("filterwarnings", line)


def load_diffusers_editor(settings: GenerationSettings, folder: Path, device: str) -> DiffusersEditor:
    index = check_model_folder(folder)
    import diffusers
    import torch

    class_name = settings.pipeline_cls or index.get("_class_name")
    cls = getattr(diffusers, class_name or "", None)
    if not (isinstance(cls, type) and hasattr(cls, "from_pretrained") and hasattr(cls, "_get_signature_keys")):
        raise GenerationSetupError(
            f"unknown pipeline class {class_name!r}: not a pipeline of diffusers {diffusers.__version__}; check "
            "--editeval-pipeline-cls (e.g. QwenImageEditPipeline, FluxKontextPipeline)")
    expected, optional = cls._get_signature_keys(cls)
    present = {k for k, v in index.items() if not k.startswith("_")}
    missing = sorted(set(expected) - set(optional) - present)
    if missing:
        raise GenerationSetupError(
            f"{class_name} does not fit {folder}: it needs component(s) {', '.join(missing)} that the folder lacks "
            f"(its model_index.json is for {index.get('_class_name')}); check --editeval-pipeline-cls")
    dtype = getattr(torch, settings.dtype_name(device))
    kwargs: dict = {"dtype": dtype}
    if settings.device_map:
        kwargs["device_map"] = settings.device_map
    try:
        pipe = cls.from_pretrained(str(folder), **kwargs)
        if settings.cpu_offload:
            pipe.enable_model_cpu_offload(device=device)
        elif not settings.device_map:
            pipe = pipe.to(device)
    except Exception as exc:  # OSError, ValueError, AttributeError, safetensors' own error, NotImplementedError...
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:240]
        raise GenerationSetupError(f"cannot load {class_name} from {folder} on {device}: {type(exc).__name__}: "
                                   f"{reason}") from None
    if hasattr(pipe, "set_progress_bar_config"):
        pipe.set_progress_bar_config(disable=True)
    check_generation_config(pipe, class_name, settings.config)
    return DiffusersEditor(pipe, class_name, settings.config, device)


def check_generation_config(pipe: Any, class_name: str, config: dict) -> None:
    """Some pipelines swallow unknown keywords silently (**kwargs): check against the call signature."""
    reserved = sorted(RESERVED_ARGUMENTS & set(config))
    if reserved:
        raise GenerationSetupError(f"generation config must not set {', '.join(reserved)}: the plugin passes them")
    accepted = {name for name, p in inspect.signature(pipe.__call__).parameters.items()
                if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    unknown = sorted(set(config) - accepted)
    if unknown:
        raise GenerationSetupError(
            f"{class_name} does not accept generation argument(s) {', '.join(unknown)}; it accepts: "
            + ", ".join(sorted(accepted - RESERVED_ARGUMENTS)))


# ---- the producer --------------------------------------------------------------------------------------
class ImageProducer:
    """Generates the selected rows' edited images in item order, in a background thread, and saves each in the
    benchmark's official output layout (and in the cache)."""

    def __init__(self, rows: list[Row], images: ImageStore, benchmark, cache: Cache, output_dir: Path,
                 seed: int, batch_size: int, identity: dict | None, stop: threading.Event,
                 max_pixels: int) -> None:
        self.rows = rows
        self.images = images
        self.benchmark = benchmark
        self.cache = cache
        self.output_dir = output_dir
        self.seed = seed
        self.batch_size = batch_size
        self.identity = identity  # None: a custom editor without an identity, whose images are not cached
        self.stop = stop
        self.max_pixels = max_pixels
        self.futures: dict[str, Future] = {r.id: Future() for r in rows}
        self.pending: list[Row] = []
        self.generated = 0
        self._thread: threading.Thread | None = None
        self._editor: Callable | None = None
        self._settle_lock = threading.Lock()

    def adopt_identity(self, identity: dict) -> None:
        """A custom editor named its identity once it existed: its cached images can now be used."""
        self.identity = {"custom_editor": identity}
        pending, self.pending = self.pending, []
        self.resolve_cached(pending)

    # which rows still need the GPU
    def resolve_cached(self, rows: list[Row] | None = None) -> None:
        for row in self.rows if rows is None else rows:
            path = self._from_cache(row) if self.identity is not None else None
            if path is not None:
                self._settle(row, path)
            else:
                self.pending.append(row)

    def _key(self, row: Row) -> str:
        return cache_key({"kind": "generated-image", **(self.identity or {}), "seed": self.seed,
                          "row_seed": row_seed(self.seed, row.key), "key": row.key,
                          "source_sha256": self._input_digests(row)})

    def _input_digests(self, row: Row) -> str | list[str]:
        digests = [memoised_sha256(self.cache, self.images.identity(locator), lambda locator=locator:
                                   self.images.read(locator))[0] for locator in row.inputs]
        return digests[0] if len(digests) == 1 else digests

    def _from_cache(self, row: Row) -> Path | None:
        entry = self.cache.lookup("generated", self._key(row), count=False)  # counted as from_cache, not as an answer
        if entry is None:
            return None
        png = self.cache.root / "generated" / entry["file"] if self.cache.root else None
        if png is None or not png.is_file() or hashlib.sha256(png.read_bytes()).hexdigest() != entry["png_sha256"]:
            return None  # image file lost or damaged: generate again
        return self._publish(row, png.read_bytes())

    # generation
    @property
    def started(self) -> bool:
        return self._thread is not None

    def start(self, editor: Callable) -> None:
        if self._thread is None and self.pending and not self.stop.is_set():
            self._editor = editor
            self._thread = threading.Thread(target=self._run, args=(editor,), name="editeval-generate", daemon=True)
            self._thread.start()

    def _settle(self, row: Row, path: Path | None = None, error: str | None = None) -> bool:
        """Give a row its image or its error, once: a row failed by a stop is not revived by a late save."""
        future = self.futures[row.id]
        with self._settle_lock:
            if future.done():
                return False
            if error is None:
                future.set_result(path)
            else:
                future.set_exception(SampleError(error))
            return True

    def fail_pending(self, message: str) -> None:
        for row in self.pending:
            self._settle(row, error=message)

    def request_stop(self) -> None:
        """Stop generating: rows not generated yet fail now (their judge threads are released at once) and a
        pipeline call in flight is asked to end early where the pipeline can (diffusers' interrupt flag)."""
        self.stop.set()
        self.fail_pending("generation stopped before this row")
        interrupt = getattr(self._editor, "interrupt", None)
        if callable(interrupt):
            interrupt()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the generation thread (and its prefetch and saver threads); True once it has ended."""
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def result(self, row: Row) -> Path:
        return self.futures[row.id].result()

    def _run(self, editor: Callable) -> None:
        from concurrent.futures import ThreadPoolExecutor

        todo = list(self.pending)
        max_batch = min(self.batch_size, getattr(editor, "max_batch", None) or self.batch_size)
        takes_lists = bool(getattr(editor, "editeval_multi_image", False))
        try:
            # The GPU loop only calls the pipeline: the next batch's sources are read and decoded while the
            # current one is generated, and PNGs are encoded and written beside it, so the GPU never waits.
            with ThreadPoolExecutor(max_workers=2, thread_name_prefix="editeval-save") as savers, \
                    ThreadPoolExecutor(max_workers=1, thread_name_prefix="editeval-prefetch") as prefetch:
                def next_batch():
                    # `todo` is only touched by the prefetch thread from here until its result is taken.
                    return prefetch.submit(self._next_batch, todo, max_batch, takes_lists) if todo else None

                if getattr(editor, "editeval_parallel", False):
                    self._run_remote(editor, next_batch, savers)
                    return
                upcoming = next_batch()
                while upcoming is not None and not self.stop.is_set():
                    batch = upcoming.result()
                    upcoming = next_batch()
                    outputs = self._generate(editor, batch) if batch else None
                    if outputs is not None:
                        savers.submit(self._save_all, batch, outputs)
        finally:  # whatever happened, no row is left waiting for an image that will never come
            self.fail_pending("generation stopped before this row")

    def _run_remote(self, pool, next_batch, savers) -> None:
        """Several batches in flight on a pool of remote editors (ray_generation.RayEditorPool): a batch is sent
        when an actor has room (the pool bounds it), and saved the moment its PNGs come back, in any order."""
        upcoming = next_batch()
        while not self.stop.is_set():
            while upcoming is not None and pool.has_room() and not self.stop.is_set():
                batch = upcoming.result()
                upcoming = next_batch()
                if batch:
                    rows = [r for r, _ in batch]
                    pool.submit(batch, [img for _, img in batch], [r.instruction for r in rows],
                                [row_seed(self.seed, r.key) for r in rows])
            if upcoming is None and not pool.busy:
                return
            for batch, outputs in pool.collect(timeout=0.2):
                if isinstance(outputs, str):  # the whole batch failed (or its actors died): each row says why
                    for row, _ in batch:
                        self._settle(row, error=outputs)
                else:
                    savers.submit(self._save_all, batch, outputs)

    def _next_batch(self, todo: list[Row], size: int, takes_lists: bool) -> list[tuple[Row, Any]]:
        """The next row plus up to size-1 later rows (within a short window) whose source has its size. A row
        whose sources cannot be decoded, or that has several inputs for an editor that takes one, fails here,
        alone; a row with several inputs is a batch of its own."""
        batch: list[tuple[Row, Any]] = []
        while todo and not batch:
            first = todo.pop(0)
            first_image = self._inputs(first, takes_lists)
            if first_image is not None:
                batch.append((first, first_image))
        index = 0
        while batch and not isinstance(batch[0][1], list) and len(batch) < size and index < min(len(todo), 8 * size):
            candidate = todo[index]
            if len(candidate.inputs) != 1:
                index += 1
                continue
            image = self._inputs(candidate, takes_lists)
            if image is None:
                todo.pop(index)
            elif image.size == batch[0][1].size:
                batch.append((candidate, image))
                todo.pop(index)
            else:
                index += 1
        return batch

    def _inputs(self, row: Row, takes_lists: bool):
        """The row's input image as RGB (several pipelines take a 4-channel input for latents), or the list of
        them for a row with several; None after failing the row with the reason."""
        if len(row.inputs) > 1 and not takes_lists:
            self._settle(row, error=f"this row has {len(row.inputs)} input images and the editor takes one; use a "
                                    "pipeline that takes a list of images (QwenImageEditPlusPipeline) or a custom "
                                    "editor with editeval_multi_image = True")
            return None
        try:
            decoded = [decode_rgb(self.images.read(locator), f"input image {i + 1} of {row.id}", self.max_pixels)
                       for i, locator in enumerate(row.inputs)]
        except (SampleError, InputError) as exc:
            self._settle(row, error=str(exc))
            return None
        return decoded if len(decoded) > 1 else decoded[0]

    def _generate(self, editor: Callable, batch: list[tuple[Row, Any]]) -> list | None:
        """The batch's edited images, or None when the call failed (each row then fails with the reason)."""
        rows = [r for r, _ in batch]
        seeds = [row_seed(self.seed, r.key) for r in rows]
        try:
            if hasattr(editor, "edit_batch"):
                outputs = editor.edit_batch([img for _, img in batch], [r.instruction for r in rows], seeds)
            else:  # any callable (image or images, instruction, seed) -> PIL.Image
                outputs = [editor(img, r.instruction, seed) for (r, img), seed in zip(batch, seeds)]
        except GenerationInterrupted:  # stopped mid-call: its images are incomplete and never saved
            message = "generation stopped before this row"
        except Exception as exc:  # the run goes on: each row of the batch is an error with the reason
            message = generation_failure(exc)
        else:
            return outputs
        for row in rows:
            self._settle(row, error=message)
        return None

    def _save_all(self, batch: list[tuple[Row, Any]], outputs: list) -> None:
        for index, (row, source) in enumerate(batch):
            output = outputs[index] if index < len(outputs) else None
            if isinstance(output, str):  # a remote editor's reason why this row has no image
                self._settle(row, error=output)
                continue
            if not isinstance(output, bytes) and not hasattr(output, "save"):
                self._settle(row, error=f"the pipeline returned no image for this row (got {type(output).__name__})")
                continue
            try:
                png = output if isinstance(output, bytes) else png_bytes(output)  # remote editors send PNG bytes
                path = self._store(row, png, source)
            except Exception as exc:  # a full disk, an image mode PNG cannot hold: this row fails, the run goes on
                self._settle(row, error=f"cannot save the edited image: {type(exc).__name__}: {exc}")
                continue
            if self._settle(row, path):
                self.generated += 1

    def _store(self, row: Row, png: bytes, source) -> Path:
        if self.identity is not None and self.cache.root is not None:
            name = f"{hashlib.sha256(png).hexdigest()}.png"
            target = self.cache.root / "generated" / name[:2] / name
            write_atomic(target, png)
            try:
                self.cache.put("generated", self._key(row), {"file": f"{name[:2]}/{name}", "png_sha256": name[:-4]})
            except CacheWriteError:
                pass
        path = self._publish(row, png)
        copy = self.benchmark.source_copy_path(row)
        if copy is not None and not isinstance(source, list):
            target = self._inside(row, copy)
            if not target.exists():
                write_atomic(target, png_bytes(source))
        return path

    def _inside(self, row: Row, relative: Path) -> Path:
        """A path of the output layout. Its parts come from the dataset and were checked when it was read; it is
        checked again here, where a file is written."""
        path = self.output_dir / relative
        if not path.resolve().is_relative_to(self.output_dir.resolve()):
            raise SampleError(f"row {row.id!r} would write outside {self.output_dir}")
        return path

    def _publish(self, row: Row, png: bytes) -> Path:
        path = self._inside(row, self.benchmark.output_path(row))
        if not path.is_file() or path.read_bytes() != png:
            write_atomic(path, png)
        return path

    def write_jsonl(self, rows: list[Row]) -> Path | None:
        """edits.jsonl of every image of `rows` (the run's language) found in the output layout, this run's and
        earlier ones': image mode accepts it."""
        lines = []
        for row in rows:
            if row.problem is not None:
                continue
            relative = self.benchmark.output_path(row)
            if (self.output_dir / relative).is_file():
                lines.append(json.dumps({"id": row.key, "image_path": relative.as_posix()}))
        if not lines and not self.output_dir.is_dir():
            return None
        jsonl = self.output_dir / "edits.jsonl"
        write_atomic(jsonl, ("\n".join(lines) + "\n").encode() if lines else b"")
        return jsonl


def png_bytes(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def generation_failure(exc: Exception) -> str:
    name = type(exc).__name__
    text = (str(exc).strip().splitlines() or [name])[0][:200]
    if name == "OutOfMemoryError" or "out of memory" in text.lower():
        return f"out of GPU memory while generating ({text}); {OOM_ADVICE}"
    return f"generation failed: {name}: {text}"
