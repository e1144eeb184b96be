"""One evaluation run, without pytest's hooks: set-up, scheduling, per-row results, finishing.

set-up      the benchmark, its dataset index and the selected rows; the edited images (image mode) or the
            generation settings (model mode); thresholds and the baseline, all checked before any test runs
scheduling  every selected row is queued for the judge ahead of the items; model mode generates ahead of it
results     one record per row (keyed by its id), from the run's own items or from xdist workers
finishing   every thread stopped and joined; aggregate, gate, write the JSON, the saved run and the HTML

session.py hands pytest's hooks to a Run; the marker API (`editeval_result`) runs a Run of its own.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from . import benchmarks
from .benchmarks import BenchmarkOptions
from .cache import Cache, write_atomic
from .dataset import Row, flag_repeated_rows, select_rows
from .edited_images import load_edited_images
from .errors import InputError
from .gate import resolve_threshold
from .outcome import Outcome, Stop, comparison_section, decide
from .settings import RunSettings
from .verdict import Verdict

__all__ = ["Outcome", "Run", "Stop"]

PREPARE_AHEAD_THREADS = 4
_SAY_LOCK = threading.Lock()


class Run:
    def __init__(self, config, settings: RunSettings, *, worker: dict | None = None) -> None:
        """`worker`: the xdist workerinput of a worker process (the controller resolved the dataset already)."""
        self.config = config
        self.settings = settings
        self.benchmark = benchmarks.get(settings.benchmark, Path(config.rootpath)).with_judge_recipe(
            settings.judge_recipe)
        self.is_worker = worker is not None
        self.warnings: list[str] = []
        if worker and worker.get("editeval_dataset_dir"):
            # The controller already resolved (downloaded) the dataset: workers must not hit the hub again.
            self.dataset_dir = Path(worker["editeval_dataset_dir"])
            self.fresh_after = worker.get("editeval_fresh_after")
            self.started_at = worker.get("editeval_started_at")
        else:
            self.dataset_dir = self.benchmark.resolve_dataset(settings.dataset, settings.hub, settings.offline)
            self.started_at = time.time()
            self.fresh_after = self.started_at if settings.refresh else None
        # An archive the user passed is unpacked under .editeval/; one from a hub, beside it in the hub's cache.
        local = Path(settings.dataset).expanduser().exists()
        self.options = BenchmarkOptions(
            language=settings.language, extract_to=Path(config.rootpath) / ".editeval" / "datasets" if local else None,
            judge_prompts=settings.judge_prompts, kris_fix_anomaly=settings.kris_fix_anomaly,
            warn=self.warnings.append)
        self.dataset = self.benchmark.load(self.dataset_dir, self.options)
        self.dataset.rows, repeated = flag_repeated_rows(self.dataset.rows)
        self.warnings[:0] = [*self.dataset.warnings, *repeated]
        rows = self.dataset.rows
        self.subset_order = self.benchmark.subset_order(r.subset for r in rows if r.language == settings.language)
        self.selection = select_rows(rows, settings.language, settings.subsets, settings.limit, self.subset_order,
                                     self.benchmark.subset_hints)
        self.selected = self.selection  # what this process evaluates: the selection, or a shard's share of it
        self.owned: list[tuple[int, Row]] = []
        if settings.shard is not None:
            self._take_share(settings.shard)
        self.thresholds = self._resolved(settings.thresholds, "threshold")
        if not self.is_worker:
            from .options import replaced_ini_lines

            self.warnings.extend(replaced_ini_lines(config))
        self.generation = settings.generation  # model mode when set
        self.producer = None
        if self.generation is None:
            # --collect-only needs no images (a CI job may list the items before they exist)
            self.edited = None if config.option.collectonly else \
                load_edited_images(settings.images, self.benchmark, rows, self.selected, settings.language)
            self.model_name = settings.model_name or (self.edited.default_model_name if self.edited else "model")
        else:
            self.edited = None
            self.model_name = settings.model_name or _model_display_name(self.generation.model)
            if self.generation.model and not config.option.collectonly and settings.ray is None:
                self.generation.check_devices()  # before collection, before any file is written (Ray: on the actors)
        self.baseline = None
        self.compare_skipped: str | None = None
        if settings.compare:
            from .runs import RunNotFound, load_run

            try:
                self.baseline = load_run(settings.compare, config.rootpath)
            except RunNotFound as exc:
                if settings.compare_missing != "skip":
                    raise
                self.compare_skipped = f"{exc}; comparison skipped (--editeval-compare-missing=skip)"
        self.compare_gates = self._resolved_compare_gates(settings.compare_gates)
        if settings.compare_gates and self.baseline is None and self.compare_skipped is None:
            raise InputError("--editeval-compare-fail needs a baseline: add --editeval-compare NAME_OR_PATH")
        self.position = {r.id: i for i, r in enumerate(self.selected)}
        self.records: dict[str, dict] = {}  # row id -> record: one per row, however many tests look at it
        self.stop = threading.Event()
        self.scheduler = None
        self.judge = None  # the judge (judges.Judge), created when the run starts
        self.cache: Cache | None = None
        self.stopped: Stop | None = None
        self.custom_editor = False
        self.written: list[str] = []  # "what: where" lines for the summary
        self._threads: list[threading.Thread] = []  # helper threads to join at the end
        self.still_running: list[str] = []  # threads that did not stop when asked (said in the summary)
        self._evaluator_parts: dict = {}
        self.worker_judge: dict | None = None  # the judge as an xdist worker described it (the controller's own
        # Run never starts one)
        self.worker_counts: list[dict] = []  # judge and cache counters reported by xdist workers
        self.voices: list = []  # the judges as the evaluation asks them (judges.panel.Voice), once started
        self.evaluator = None
        self.ray_pool = None  # the Ray actors of --editeval-ray, once generation has started

    def _take_share(self, shard) -> None:
        from .shards import share

        if shard.count > len(self.selection):
            raise InputError(f"--editeval-shard {shard}: the selection has {len(self.selection)} rows, so some of "
                             f"{shard.count} shards would be empty; use at most {len(self.selection)} shards")
        self.owned = share(self.selection, shard)
        self.selected = [row for _, row in self.owned]

    @property
    def shard_withheld(self) -> str | None:
        """Why a shard is not gated on its own (one line in the summary)."""
        shard = self.settings.shard
        if shard is None:
            return None
        return (f"shard {shard} ({len(self.selected)} of {len(self.selection)} selected rows) is not gated on its "
                "own: gate the merged shards with `pytest-editeval merge` (or pass --editeval-gate=always)")

    def _resolved(self, thresholds, what: str):
        try:
            return [resolve_threshold(t, self.benchmark, self.subset_order, what) for t in thresholds]
        except ValueError as exc:
            raise InputError(str(exc)) from None

    def _resolved_compare_gates(self, gates):
        from .compare import resolve_compare_gate

        try:
            return [resolve_compare_gate(g, self.benchmark, [*self.subset_order, *self.benchmark.group_names()])
                    for g in gates]
        except ValueError as exc:
            raise InputError(str(exc)) from None

    @property
    def dataset_label(self) -> str:
        return f"{self.benchmark.name}-{self.settings.language}"

    # ---- running ----------------------------------------------------------------------------------------
    def start(self, rows: list[Row]) -> None:
        from .evaluation import RowEvaluator
        from .scheduler import Scheduler

        s = self.settings
        specs = [m.spec for m in s.panel.members] if s.panel is not None else [s.judge]
        workers = s.workers
        for spec in specs:
            if spec.backend == "transformers":  # enough rows in flight to fill a batch, also at one question a row
                workers = max(workers, 2 * spec.batch_size)
        usable = [r for r in rows if r.problem is None]
        if usable and usable[0].inputs:  # read the first row's image while the judge is set up
            self._spawn(self.dataset.images.read, usable[0].inputs[0], name="editeval-prefetch-first")
        root = self.settings.cache_dir
        self.cache = Cache(root if root is None else root.resolve(), fresh_after=self.fresh_after,
                           shared_after=self.started_at if self.is_worker else None)
        self.judge, self.voices = self._create_judges(workers)
        if self.generation is None:
            paths, origin = self.edited.paths, self.edited.origin
            edited_image = lambda row: paths.get(row.key)  # noqa: E731
            where = str(origin)
        else:
            self.producer = self._producer(usable)
            edited_image = self.producer.result
            where = str(self.generation.output_dir)
        self._evaluator_parts = dict(benchmark=self.benchmark, protocol=self.settings.protocol,
                                     images=self.dataset.images, context=self.dataset.context,
                                     edited_origin=where, voices=self.voices, samples=s.judge_samples,
                                     order=s.judge_average, reduce=s.panel.reduce if s.panel else "mean",
                                     cache=self.cache, max_pixels=self.settings.max_pixels)
        evaluator = self.evaluator = RowEvaluator(edited_image=edited_image, **self._evaluator_parts)
        # Each row asks its questions (times its samples and judges) at once, so workers/2 rows fill the request
        # slots (at two questions a row); a few more rows prepare their images (CPU) meanwhile. More would only
        # hold more decoded images in memory.
        per_row = s.judge_samples * len(self.voices)
        self.scheduler = Scheduler(evaluator.evaluate, -(-workers // (2 * per_row)) + PREPARE_AHEAD_THREADS,
                                   self.stop, claim=evaluator.claim)
        # Without a shared cache, xdist workers cannot tell who judges what: judge only one's own items.
        if not (self.is_worker and not self.cache.enabled):
            self.scheduler.submit(rows)

    def _create_judges(self, workers: int):
        """(the run's judge, its voices): one judge, or a panel's judges with their names and weights."""
        from . import judges
        from .hookcalls import HookFailed, judge_created
        from .judges.panel import Panel, Voice

        s = self.settings
        workdir = Path(self.config.rootpath) / ".editeval"
        members = [("", 1.0, s.judge, s.judge_price)] if s.panel is None else \
            [(m.name, m.weight, m.spec, m.price) for m in s.panel.members]
        voices = []
        try:
            for name, weight, spec, price in members:
                judge = judges.create(spec, stop=self.stop, max_in_flight=workers, cache=self.cache, say=self._say,
                                      workdir=workdir)
                voices.append(Voice(name, weight, judge, price))
                judge_created(self.config, name, judge.describe())  # a conftest may log or refuse it
        except BaseException as exc:
            for voice in voices:
                voice.judge.close()
            if isinstance(exc, HookFailed):
                raise InputError(str(exc)) from None
            raise
        if s.panel is None:
            return voices[0].judge, voices
        return Panel(voices, s.panel.reduce, s.judge.recipe), voices

    def _say(self, line: str) -> None:
        """One progress line on the terminal now (a judge server starting, a judge model loading), from any
        thread: output capture is suspended for it, as pytest's live logging does."""
        import contextlib

        plugins = self.config.pluginmanager
        reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
        if reporter is None or self.is_worker:
            return
        with _SAY_LOCK, (capture.global_and_fixture_disabled() if capture else contextlib.nullcontext()):
            reporter.write_line(f"editeval: {line}")

    def judge_info(self, counts: list[dict] | None = None) -> dict:
        """The judge as results name it: the started judge's own account, an xdist worker's, or the settings';
        with `counts` (this process's and the workers'), what it used and cost."""
        s = self.settings
        if self.judge is not None:
            info = self.judge.describe()
        elif self.worker_judge is not None:
            info = dict(self.worker_judge)
        elif s.judge is None:
            return {"backend": None, "model": ""}
        elif s.panel is not None:
            info = {"backend": "panel", "model": " + ".join(m.name for m in s.panel.members), "recipe": s.judge.recipe,
                    "parameters": {"reduce": s.panel.reduce},
                    "panel": [{"name": m.name, "weight": m.weight, "backend": m.spec.backend, "model": m.spec.model}
                              for m in s.panel.members]}
        elif s.judge.http is not None:
            spec, http = s.judge, s.judge.http
            info = {"backend": spec.backend, "model": http.model, "host": http.host,
                    "endpoint": http.public_endpoint.split("?")[0], "recipe": spec.recipe}
        else:
            spec = s.judge
            info = {"backend": spec.backend, "model": spec.model, "recipe": spec.recipe}
        info.update(samples_per_question=s.judge_samples, sample_average=s.judge_average)
        if counts is not None:
            info.update(self._usage_and_cost(counts, info))
        return info

    def prices(self) -> dict:
        """judge name ("" for a single judge) -> its price (None where none was given)."""
        s = self.settings
        if s.panel is not None:
            return {m.name: m.price for m in s.panel.members}
        return {"": s.judge_price}

    def _usage_and_cost(self, counts: list[dict], info: dict) -> dict:
        from .judge_cost import SAVED_FIELDS, add, cost_section

        names = list(self.prices())
        usage = {n: add(c.get("usage", {}).get(n) for c in counts) for n in names}
        saved = {n: add((c.get("saved", {}).get(n) for c in counts), SAVED_FIELDS) for n in names}
        total_usage, total_saved = add(usage.values()), add(saved.values(), SAVED_FIELDS)
        prices = self.prices()
        out: dict = {"usage": total_usage, "cache_saved": total_saved}
        if self.settings.panel is None:
            out["cost"] = cost_section(total_usage, total_saved, prices[""])
            return out
        members = []
        for member in info.get("panel", []):
            name = member.get("name")
            members.append({**member, "usage": usage.get(name), "cache_saved": saved.get(name),
                            "cost": cost_section(usage.get(name, {}), saved.get(name, {}), prices.get(name))})
        out["panel"] = members
        if members and all(m["cost"] is not None for m in members):
            out["cost"] = {"usd": round(sum(m["cost"]["usd"] for m in members), 6),
                           "cache_saved_usd": round(sum(m["cost"]["cache_saved_usd"] for m in members), 6)}
        return out

    def _spawn(self, target, *args, name: str) -> None:
        thread = threading.Thread(target=_quietly(target), args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def stop_threads(self, drain: bool = False) -> None:
        """Stop and join every thread this run started, and close the judge (its connections, its model thread,
        its server). Called when the run loop ends (normally or not) and again at unconfigure; does nothing the
        second time. `drain`: the run ended normally, so judge requests in flight finish before the stop."""
        from .scheduler import JOIN_TIMEOUT_S, join_all

        if self.producer is not None:
            self.producer.request_stop()  # releases judge threads waiting for images that will not come
        still_alive = []
        if self.scheduler is not None:
            still_alive += self.scheduler.shutdown(interrupt=self.judge.interrupt if self.judge else None,
                                                   drain=drain and not self.stop.is_set())
        if self.producer is not None and not self.producer.join(JOIN_TIMEOUT_S):
            still_alive.append("editeval-generate")
        still_alive += join_all(self._threads, JOIN_TIMEOUT_S)
        if self.ray_pool is not None:  # after the producer: nothing uses Ray any more
            self.ray_pool.shutdown()
            self.warnings.extend(self.ray_pool.summary())
            self.ray_pool = None
        if self.judge is not None:
            self.judge.close()
            still_alive += getattr(self.judge, "still_running", [])
        if still_alive:  # said in the summary; nothing legitimate takes this long once interrupted
            self.still_running = sorted(set(still_alive))

    def _producer(self, rows: list[Row]):
        from .generation import ImageProducer, check_model_folder, folder_identity, resolve_model

        gen = self.generation
        identity = None
        if not self.custom_editor:
            self.model_folder = resolve_model(gen)
            class_name = gen.pipeline_cls or check_model_folder(self.model_folder).get("_class_name", "")
            identity = gen.identity(folder_identity(self.model_folder, self.cache), class_name)
        producer = ImageProducer(rows, self.dataset.images, self.benchmark, self.cache, gen.output_dir, gen.seed,
                                 gen.batch_size, identity, self.stop, self.settings.max_pixels)
        producer.resolve_cached()
        return producer

    def load_editor(self):
        """The default editor: the diffusers pipeline of --editeval-model (called by the fixture)."""
        from .generation import load_diffusers_editor, resolve_model, silence_diffusers_deprecations

        gen = self.generation
        if self.settings.ray is not None:  # each Ray actor loads it; nothing heavy on the driver
            from .ray_generation import RemotePipeline

            return RemotePipeline(gen)
        folder = getattr(self, "model_folder", None) or resolve_model(gen)
        silence_diffusers_deprecations(self.config)
        return load_diffusers_editor(gen, folder, gen.resolve_device())

    def adopt_editor(self, editor) -> None:
        """The editor exists (its fixture was set up): a custom one that names itself gets its images cached
        and names the model in the table; then generation starts."""
        identity = getattr(editor, "editeval_identity", None)
        if self.custom_editor and identity is not None:
            self.producer.adopt_identity(identity)
            if not self.settings.model_name:
                self.model_name = _identity_name(identity) or self.model_name
        if self.settings.ray is not None and self.producer.pending and not self.stop.is_set():
            from .ray_generation import RayEditorPool

            # The editor's calls move to the actors (raises GenerationSetupError: one line, the run stops).
            self.ray_pool = editor = RayEditorPool.start(self.settings.ray, editor, self.generation, self.stop)
            if editor is None:  # the run stopped meanwhile: no row waits for an image
                self.producer.fail_pending("generation stopped before this row")
                return
        self.producer.start(editor)

    @property
    def needs_editor(self) -> bool:
        return self.producer is not None and bool(self.producer.pending) and not self.producer.started

    def result(self, row: Row) -> Verdict:
        """This row's verdict (raises JudgeFatalError when the judge cannot serve the run)."""
        if self.scheduler is None:
            self.start([])
        return self.scheduler.result(row)

    def judge_image(self, row: Row, image) -> Verdict:
        """Judge any image (PIL or a file) as the edit of `row`: the `editeval_judge` fixture."""
        from .evaluation import RowEvaluator

        if self.scheduler is None:
            self.start([])
        path = Path(image) if isinstance(image, (str, Path)) else self._keep_for_judging(row, image)
        return RowEvaluator(edited_image=lambda _: path, **self._evaluator_parts).evaluate(row)

    def _keep_for_judging(self, row: Row, image) -> Path:
        import hashlib
        import io

        buf = io.BytesIO()
        image.save(buf, format="PNG")
        data = buf.getvalue()
        folder = (self.settings.cache_dir or Path(self.config.rootpath) / ".editeval") / "judged-images"
        # Named by hashes only: the row key is a dataset string, not a file name.
        name = hashlib.sha256(row.id.encode()).hexdigest()[:16]
        path = folder / f"{name}-{hashlib.sha256(data).hexdigest()[:16]}.png"
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data)
        return path

    def source_image(self, row: Row):
        """The row's first input image as an RGB PIL image (what the editing model receives)."""
        from .images import decode_rgb

        if not row.inputs:
            raise InputError(f"row {row.id} has no input image")
        return decode_rgb(self.dataset.images.read(row.inputs[0]), f"input image of {row.id}",
                          self.settings.max_pixels)

    def record(self, record: dict) -> None:
        self.records[record["id"]] = record

    # ---- finishing --------------------------------------------------------------------------------------
    def all_counts(self) -> list[dict]:
        """This process's counters and every xdist worker's."""
        return [self.counts(), *self.worker_counts]

    def outcome(self) -> Outcome:
        verdicts = sorted((Verdict.from_record(r) for r in self.records.values()),
                          key=lambda v: self.position.get(v.id, len(self.position)))
        return decide(verdicts, list(self.position), self.benchmark, self.subset_order, thresholds=self.thresholds,
                      gate_policy=self.settings.gate_policy, allow_missing=self.settings.allow_missing,
                      stopped=self.stopped.message if self.stopped else None, baseline=self.baseline,
                      compare_gates=self.compare_gates, judge=self.judge_info() if self.settings.judge else None,
                      withheld=self.shard_withheld)

    def results(self, outcome: Outcome):
        """The run as the pydantic results model (built only when a file is written: pydantic is slow to import)."""
        from .report.results import build_results
        from .runs import run_metadata

        judge, gen = self.judge_info(self.all_counts()), self.generation
        shard = None
        if self.settings.shard is not None:
            from .shards import shard_section

            local = Path(self.settings.dataset).expanduser().exists()
            shard = shard_section(self.settings.shard, self.selection, self.owned, self.subset_order,
                                  self.settings.dataset, "local" if local else self.settings.hub)
        meta = run_metadata(self.settings.save_name, model=self.model_name, benchmark=self.benchmark.name,
                            revision=gen.revision if gen else None, protocol=self.settings.protocol,
                            judge_model=judge.get("model") or "", seed=gen.seed if gen else None,
                            model_digest=((self.producer and self.producer.identity) or {}).get("model"),
                            judge_backend=judge.get("backend"), judge_digest=judge.get("digest"),
                            judge_recipe=judge.get("recipe"))
        return build_results(
            benchmark=self.benchmark.name, benchmark_info=self.benchmark.info(self.options),
            language=self.settings.language, protocol=self.settings.protocol,
            model=self.model_name, judge=judge,
            verdicts=outcome.verdicts, aggregates=outcome.aggregates, gate=outcome.gate, complete=outcome.complete,
            allow_missing=self.settings.allow_missing, stopped=outcome.stopped, meta=meta,
            comparison=comparison_section(self.baseline, outcome), shard=shard,
            judge_aggregates=outcome.judge_aggregates)

    def write_files(self, outcome: Outcome, extra_fields=None) -> None:
        """`extra_fields(results)`: the results JSON's `extra` fields (the extension hook), asked only when a
        file is written."""
        from .report import files

        s = self.settings
        results = self.results(outcome) if (s.json_path or s.save_name or s.html_path) else None
        if results is not None and extra_fields is not None:
            results.extra = extra_fields(results)
        data = results.model_dump_json(indent=2).encode("utf-8") if results is not None else b""
        if s.json_path is not None:
            self.written.append(files.write_results_json(s.json_path, data, stopped=bool(outcome.stopped),
                                                         scored=outcome.aggregates.full.num,
                                                         complete=outcome.complete))
        if s.save_name is not None:
            self.written.append(files.save_run(self.config.rootpath, s.save_name, data, complete=outcome.complete))
        if s.html_path is not None:
            by_id = {r.id: r for r in self.selected}
            store = self.dataset.images
            file_of = getattr(store, "path", None)  # a dataset of image files (not parquet) links its sources
            self.written.append(files.write_html(
                s.html_path, results, self.benchmark, self.baseline, lambda row_id: store.read(by_id[row_id].inputs[0]),
                s.max_pixels, source_path=(lambda row_id: file_of(by_id[row_id].inputs[0])) if file_of else None,
                stopped=bool(outcome.stopped)))
        self.write_edits_jsonl()

    def write_edits_jsonl(self) -> None:
        if self.producer is not None:
            self.producer.write_jsonl([r for r in self.dataset.rows if r.language == self.settings.language])

    def counts(self) -> dict:
        """Judge and cache counters of this process (summed with the xdist workers' for the summary)."""
        cache = self.cache
        return {"requests": self.judge.requests_sent if self.judge else 0,
                "hits": cache.hits if cache else 0, "misses": cache.misses if cache else 0,
                "shared": cache.shared if cache else 0, "corrupt": cache.corrupt if cache else 0,
                "write_errors": sorted(set(cache.write_errors)) if cache else [],
                "generated": self.producer.generated if self.producer else 0,
                "from_cache": (len(self.producer.rows) - len(self.producer.pending)) if self.producer else 0,
                "started": self.judge is not None,
                "judge_notes": self.judge_notes(),
                "usage": {v.name: v.judge.usage() for v in self.voices},
                "saved": dict(self.evaluator.saved) if self.evaluator is not None else {}}

    def judge_notes(self) -> list[str]:
        if self.judge is None:
            return []
        notes = list(self.judge.notes())
        samples = self.settings.judge_samples
        for voice in self.voices:
            if samples > 1 and voice.judge.deterministic:
                who = f"{voice.name}: " if voice.name else ""
                notes.append(f"{who}a greedy (deterministic) judge: its {samples} samples of each question are one "
                             "answer, asked once, so its spread is 0 by construction; give it a sampling temperature "
                             "(--editeval-judge-temperature) to measure its noise")
        return notes

    # ---- the marker API ---------------------------------------------------------------------------------
    def evaluate_all(self, verdict_for) -> Outcome:
        """Judge every selected row now (no items of our own) and return the outcome."""
        self.start(self.selected)
        try:
            for row in self.selected:
                self.record(verdict_for(row).to_record())
        finally:
            self.stop_threads()
            self.write_edits_jsonl()
        return self.outcome()


def _quietly(target):
    """A helper thread's target whose failure is left to the code that needs its result."""
    def run(*args):
        try:
            target(*args)
        except Exception:
            pass
    return run


def _model_display_name(model: str | None) -> str:
    """The model's name in the table: its hub id, or its folder's name."""
    if not model:
        return "custom-editor"
    local = Path(model).expanduser()
    return local.resolve().name if local.exists() else model


def _identity_name(identity) -> str | None:
    if isinstance(identity, dict):
        for key in ("name", "model"):
            if isinstance(identity.get(key), str) and identity[key]:
                return identity[key]
    return None
