"""The plugin object of an evaluation run: it wires the stages together through pytest's hooks.

configure   resolve settings, read the sample index, check the edited images and thresholds (usage errors)
collect     add the virtual benchmark module; parametrize `editeval_sample` with the selected rows
run loop    queue the selected rows for the judge ahead of the items; each item waits for its own verdict
report      put the verdict on the TestReport (travels through xdist); collect it on the controller
finish      stop and join every thread; aggregate, gate (exit status 1 when the gate fails), write files, print
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .aggregate import Aggregates, aggregate
from .cache import Cache, write_atomic
from .dataset import Sample, SourceImages, find_data_files, load_index, select_samples, subset_order
from .edited_images import load_edited_images
from .errors import EditEvalError, InputError, JudgeFatalError
from .gate import GateResult, check_subsets, evaluate_gate
from .hub import resolve_dataset
from .settings import RunSettings, resolve
from .state import PLUGIN_KEY, VERDICT_KEY
from .verdict import Verdict

PREPARE_AHEAD_THREADS = 4


class BenchmarkModule(pytest.Module):
    """A module collector whose object is our own `benchmark_items` module, placed at a virtual path in
    the invocation folder: items are ordinary Functions (fixtures, marks, -k, --lf and xdist all work)."""

    def _getobj(self):
        from . import benchmark_items

        return benchmark_items


@dataclass
class Outcome:
    verdicts: list[Verdict]
    aggregates: Aggregates
    gate: GateResult
    complete: bool  # every selected row ran, none is missing its image, and the run was not stopped
    all_ran: bool  # every selected row ran (not a -k / -x / Ctrl-C / stopped run)
    stopped: str | None = None  # the fatal error that stopped the run
    deltas: list = field(default_factory=list)  # paired differences with the baseline
    compare_outcomes: list = field(default_factory=list)

    @property
    def compare_failed(self) -> bool:
        return any(not o.passed for o in self.compare_outcomes)

    @property
    def failed(self) -> bool:
        """Whether the gate (thresholds, missing rows, compare gates) fails the session."""
        return self.gate.evaluated and (not self.gate.passed or self.compare_failed)


@dataclass
class Stop:
    """A fatal error that stopped the run: its one line and the exit status it gives."""

    message: str
    exit_code: int


class EditEvalPlugin:
    @classmethod
    def install(cls, config: pytest.Config) -> None:
        try:
            plugin = cls(config, resolve(config, need_judge=not config.option.collectonly))
        except InputError as exc:
            raise pytest.UsageError(f"editeval: {exc}") from None
        config.stash[PLUGIN_KEY] = plugin
        config.pluginmanager.register(plugin, "editeval-session")
        if config.pluginmanager.hasplugin("xdist"):
            config.pluginmanager.register(_XdistHooks(plugin), "editeval-xdist")

    def __init__(self, config: pytest.Config, settings: RunSettings) -> None:
        self.config = config
        self.settings = settings
        workerinput = getattr(config, "workerinput", None)
        self.is_worker = workerinput is not None
        if self.is_worker and workerinput.get("editeval_dataset_dir"):
            # The controller already resolved (downloaded) the dataset: workers must not hit the hub again.
            self.dataset_dir = Path(workerinput["editeval_dataset_dir"])
            self.fresh_after = workerinput.get("editeval_fresh_after")
            self.started_at = workerinput.get("editeval_started_at")
        else:
            self.dataset_dir = resolve_dataset(settings.dataset, settings.hub, settings.offline)
            self.started_at = time.time()
            self.fresh_after = self.started_at if settings.refresh else None
        self.files = find_data_files(self.dataset_dir)
        index = load_index(self.files)
        self.subset_order = subset_order(s.subset for s in index if s.language == settings.language)
        self.selected = select_samples(index, settings.language, settings.subsets, settings.limit)
        try:
            check_subsets(settings.thresholds, self.subset_order)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        self.generation = settings.generation  # model mode when set
        self.producer = None
        if self.generation is None:
            language_keys = {s.key for s in index if s.language == settings.language}
            self.edited = load_edited_images(settings.images, {s.key for s in index}, language_keys, self.selected,
                                             settings.language)
            self.model_name = settings.model_name or self.edited.default_model_name
        else:
            self.edited = None
            self.model_name = settings.model_name or _model_display_name(self.generation.model)
            if self.generation.model and not config.option.collectonly:
                self.generation.check_devices()  # before collection, before any file is written
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
        try:
            for gate in settings.compare_gates:
                check_subsets([gate], self.subset_order)
        except ValueError as exc:
            raise InputError(str(exc).replace("threshold", "compare gate")) from None
        if settings.compare_gates and self.baseline is None and self.compare_skipped is None:
            raise InputError("--editeval-compare-fail needs a baseline: add --editeval-compare NAME_OR_PATH")
        self.position = {s.id: i for i, s in enumerate(self.selected)}
        self.records: dict[str, dict] = {}  # sample id -> record: one per row, however many tests look at it
        self.stop = threading.Event()
        self.scheduler = None
        self.client = None
        self.sources: SourceImages | None = None
        self.cache: Cache | None = None
        self.outcome: Outcome | None = None
        self.stopped: Stop | None = None
        self.session: pytest.Session | None = None
        self.benchmark_items = 0
        self.custom_editor = False
        self.worker_counts: list[dict] = []  # judge and cache counters reported by xdist workers
        self.written: list[str] = []  # "what: where" lines for the summary
        self._threads: list[threading.Thread] = []  # helper threads to join at the end
        self.still_running: list[str] = []  # threads that did not stop when asked (said in the summary)
        invocation = Path(config.invocation_params.dir)
        self.anchor = invocation if invocation.is_relative_to(config.rootpath) else None

    # ---- collection -------------------------------------------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(self, collector):
        report = yield
        at_anchor = (isinstance(collector, pytest.Directory) and collector.path == self.anchor) or (
            self.anchor is None and isinstance(collector, pytest.Session))
        if report.passed and at_anchor:
            folder = self.anchor or self.config.rootpath
            report.result.append(BenchmarkModule.from_parent(
                collector, path=folder / f"editeval_{self.settings.benchmark}"))
        return report

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "editeval_sample" in metafunc.fixturenames:
            metafunc.parametrize("editeval_sample", self.selected, ids=[s.id for s in self.selected],
                                 indirect=True)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, session: pytest.Session, items) -> None:
        benchmark_items = [item for item in items if _sample_of(item) is not None]
        self.benchmark_items = len(benchmark_items)
        if self.generation is not None and benchmark_items:
            self.custom_editor = not _default_fixture(session, benchmark_items[0], "editeval_pipeline")
            if not self.custom_editor and not self.generation.model:
                raise pytest.UsageError(
                    "editeval: no edited images: give --editeval-images PATH (a JSONL of {id, image_path} or a "
                    "folder fullset/{task_type}/{language}/{key}.png), or --editeval-model ID_OR_DIR (a diffusers "
                    "pipeline), or override the editeval_pipeline fixture in conftest.py")

    # ---- running ----------------------------------------------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session):
        self.session = session
        samples = [s for s in map(_sample_of, session.items) if s is not None]
        if samples and not session.config.option.collectonly:
            self._start(samples)
        try:
            return (yield)
        finally:
            self.stop_threads()
            if not self.is_worker and not session.config.option.collectonly:
                self.outcome = self._evaluate()
                if self.outcome.failed:
                    session.testsfailed += 1  # the gate decides the exit status (1), like pytest-cov

    def _start(self, samples: list[Sample]) -> None:
        from .evaluation import RowEvaluator
        from .judges.client import JudgeClient
        from .scheduler import Scheduler

        workers = self.settings.workers
        sources = SourceImages(self.files)
        usable = [s for s in samples if s.problem is None]
        if usable:  # decode the first rows' data while the HTTP client is set up
            self._spawn(sources.read, usable[0], name="editeval-prefetch-first")
        self.client = JudgeClient(self.settings.judge, stop=self.stop, max_in_flight=workers)
        root = self.settings.cache_dir
        self.cache = Cache(root if root is None else root.resolve(), fresh_after=self.fresh_after,
                           shared_after=self.started_at if self.is_worker else None)
        if self.generation is None:
            paths, origin = self.edited.paths, self.edited.origin
            edited_image = lambda sample: paths.get(sample.key)  # noqa: E731
            where = str(origin)
        else:
            self.producer = self._producer(usable, sources)
            edited_image = self.producer.result
            where = str(self.generation.output_dir)
        self.sources = sources
        self._evaluator_parts = dict(sources=sources, edited_origin=where, client=self.client, cache=self.cache,
                                     protocol=self.settings.protocol, max_pixels=self.settings.max_pixels)
        evaluator = RowEvaluator(edited_image=edited_image, **self._evaluator_parts)
        # Each row asks its two questions at once, so workers/2 rows fill the request slots; a few more rows
        # prepare their images (CPU) meanwhile. More would only hold more decoded images in memory.
        self.scheduler = Scheduler(evaluator.evaluate, -(-workers // 2) + PREPARE_AHEAD_THREADS, self.stop)
        # Without a shared cache, xdist workers cannot tell who judges what: judge only one's own items.
        if not (self.is_worker and not self.cache.enabled):
            self.scheduler.submit(samples)

    def _spawn(self, target, *args, name: str) -> None:
        thread = threading.Thread(target=_quietly(target), args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def stop_threads(self) -> None:
        """Stop and join every thread this run started, and close the judge's connections. Called when the run
        loop ends (normally or not) and again at unconfigure; does nothing the second time."""
        from .scheduler import JOIN_TIMEOUT_S, join_all

        if self.producer is not None:
            self.producer.request_stop()  # releases judge threads waiting for images that will not come
        still_alive = []
        if self.scheduler is not None:
            still_alive += self.scheduler.shutdown(interrupt=self.client.interrupt if self.client else None)
        if self.producer is not None and not self.producer.join(JOIN_TIMEOUT_S):
            still_alive.append("editeval-generate")
        still_alive += join_all(self._threads, JOIN_TIMEOUT_S)
        if self.client is not None:
            self.client.close()
        if still_alive:  # said in the summary; nothing legitimate takes this long once interrupted
            self.still_running = sorted(set(still_alive))

    def _producer(self, samples: list[Sample], sources: SourceImages):
        from .generation import ImageProducer, check_model_folder, folder_identity, resolve_model

        gen = self.generation
        identity = None
        if not self.custom_editor:
            try:
                self.model_folder = resolve_model(gen)
                class_name = gen.pipeline_cls or check_model_folder(self.model_folder).get("_class_name", "")
            except EditEvalError as exc:
                raise pytest.UsageError(f"editeval: {exc}") from None
            identity = gen.identity(folder_identity(self.model_folder, self.cache), class_name)
        producer = ImageProducer(samples, sources, self.cache, gen.output_dir, gen.seed, gen.batch_size, identity,
                                 self.stop, self.settings.max_pixels)
        producer.resolve_cached()
        return producer

    def load_editor(self):
        """The default editor: the diffusers pipeline of --editeval-model (called by the fixture)."""
        from .generation import load_diffusers_editor, resolve_model

        gen = self.generation
        folder = getattr(self, "model_folder", None) or resolve_model(gen)
        return load_diffusers_editor(gen, folder, gen.resolve_device())

    def _ensure_generating(self, request) -> None:
        """Load the pipeline the first time an image must actually be generated, then start the producer."""
        from .generation import GenerationSetupError

        if self.producer is None or not self.producer.pending or self.producer.started:
            return
        setup_error = None
        try:
            editor = request.getfixturevalue("editeval_pipeline")
        except GenerationSetupError as exc:
            setup_error = str(exc)
        if setup_error is not None:  # stopped outside the except block, so it is reported as itself
            self.producer.fail_pending(setup_error)
            self._stop_run(setup_error, pytest.ExitCode.USAGE_ERROR)
        identity = getattr(editor, "editeval_identity", None)
        if self.custom_editor and identity is not None:  # a custom editor's images are cached once it names itself
            self.producer.adopt_identity(identity)
            if not self.settings.model_name:
                self.model_name = _identity_name(identity) or self.model_name
        self.producer.start(editor)

    def _stop_run(self, message: str, code: pytest.ExitCode):
        """A fatal error: remember it (the summary leads with it and no gate is applied) and stop pytest. An
        xdist worker cannot pytest.exit (the controller would take it for a crash): it fails this item and
        asks its session to stop; the reason and exit status reach the controller in workeroutput."""
        if self.stopped is None:
            self.stopped = Stop(message, int(code))
        if self.is_worker and self.session is not None:
            self.session.shouldstop = f"editeval: {message}"
            pytest.fail(f"editeval: {message}", pytrace=False)
        pytest.exit(f"editeval: {message}", returncode=code)

    def verdict_for(self, sample: Sample, request=None) -> Verdict:
        if self.scheduler is None:
            self._start([])
        if request is not None:
            self._ensure_generating(request)
        try:
            return self.scheduler.result(sample)
        except JudgeFatalError as exc:
            fatal = exc
        # outside the except block: the stop is reported as itself, not as an error while handling another
        self._stop_run(str(fatal), pytest.ExitCode.USAGE_ERROR if fatal.usage else pytest.ExitCode.INTERRUPTED)

    def judge_image(self, sample: Sample, image) -> Verdict:
        """Judge any image (PIL or a file) as the edit of `sample`: the `editeval_judge` fixture."""
        from .evaluation import RowEvaluator

        if self.scheduler is None:
            self._start([])
        path = Path(image) if isinstance(image, (str, Path)) else self._keep_for_judging(sample, image)
        return RowEvaluator(edited_image=lambda _: path, **self._evaluator_parts).evaluate(sample)

    def _keep_for_judging(self, sample: Sample, image) -> Path:
        import hashlib
        import io

        buf = io.BytesIO()
        image.save(buf, format="PNG")
        data = buf.getvalue()
        folder = (self.settings.cache_dir or Path(self.config.rootpath) / ".editeval") / "judged-images"
        # Named by hashes only: the row key is a dataset string, not a file name.
        name = hashlib.sha256(sample.id.encode()).hexdigest()[:16]
        path = folder / f"{name}-{hashlib.sha256(data).hexdigest()[:16]}.png"
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data)
        return path

    def source_image(self, sample: Sample):
        """The row's `input_image` as an RGB PIL image (what the editing model receives)."""
        from .images import decode_rgb

        if self.scheduler is None:
            self._start([])
        return decode_rgb(self.sources.read(sample), f"source image of {sample.id}", self.settings.max_pixels)

    def evaluate_all(self, request) -> Outcome:
        """Judge every selected row now (the marker API: no items of our own) and return the outcome."""
        if self.generation is not None:
            self.custom_editor = not _default_fixture(request.session, request.node, "editeval_pipeline")
            if not self.custom_editor and not self.generation.model:
                raise InputError("no edited images for this slice: pass images=... to the marker, "
                                 "--editeval-images / --editeval-model, or override editeval_pipeline")
        self._start(self.selected)
        try:
            for sample in self.selected:
                self.records[sample.id] = self.verdict_for(sample, request).to_record()
        finally:
            self.stop_threads()
            if self.producer is not None:
                self.producer.write_jsonl(self.settings.language)
        return self._evaluate()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        # Only the plugin's own items carry their row: a user's test that also looks at a row's verdict
        # (editeval_verdict) must not count that row a second time.
        verdict = item.stash.get(VERDICT_KEY, None) if _sample_of(item) is not None else None
        if verdict is not None and call.when == "call" and self.settings.junit_properties:
            item.user_properties.extend(_junit_properties(verdict))
        report = yield
        if verdict is not None and report.when == "call":
            report.editeval = verdict.to_record()  # plain JSON-able dict: xdist carries it to the controller
            if verdict.edited_image and item.config.pluginmanager.hasplugin("html"):
                _attach_image_links(report, verdict)
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record = getattr(report, "editeval", None)
        if record is not None:
            self.records[record["id"]] = record

    # ---- finishing --------------------------------------------------------------------------------
    def _evaluate(self) -> Outcome:
        verdicts = sorted((Verdict.from_record(r) for r in self.records.values()),
                          key=lambda v: self.position.get(v.id, len(self.position)))
        aggregates = aggregate(verdicts, self.subset_order, expected_rows=len(self.selected))
        all_ran = {v.id for v in verdicts} >= set(self.position) and self.stopped is None
        complete = all_ran and aggregates.full.missing == 0
        stopped = self.stopped.message if self.stopped else None
        gate = evaluate_gate(self.settings.thresholds, aggregates, all_ran=all_ran, policy=self.settings.gate_policy,
                             allow_missing=self.settings.allow_missing, stopped=stopped)
        deltas, compare_outcomes = [], []
        if self.baseline is not None:
            from .compare import compare_runs

            deltas, compare_outcomes = compare_runs(
                [v.to_record() for v in verdicts if v.status != "missing"],
                [sample.model_dump() for sample in self.baseline.samples],
                self.settings.compare_gates, list(aggregates.full.subsets))
        return Outcome(verdicts, aggregates, gate, complete, all_ran, stopped, deltas, compare_outcomes)

    def _results(self, outcome: Outcome):
        """The run as the pydantic results model (built only when a file is written: pydantic is slow to import)."""
        from .report.results import build_results
        from .runs import run_metadata

        judge, gen = self.settings.judge, self.generation
        comparison = None
        if self.baseline is not None:
            comparison = {
                "baseline": self.baseline.meta or {"model": self.baseline.model},
                "deltas": [d.to_dict() for d in outcome.deltas],
                "gates": [{"expression": o.gate.expression, **o.delta.to_dict(), "passed": o.passed}
                          for o in outcome.compare_outcomes],
            }
        meta = run_metadata(self.settings.save_name, model=self.model_name,
                            revision=gen.revision if gen else None, protocol=self.settings.protocol,
                            judge_model=judge.model if judge else "", seed=gen.seed if gen else None,
                            model_digest=((self.producer and self.producer.identity) or {}).get("model"))
        return build_results(
            benchmark=self.settings.benchmark, language=self.settings.language, protocol=self.settings.protocol,
            model=self.model_name, judge_model=judge.model if judge else "", judge_host=judge.host if judge else "",
            judge_endpoint=judge.public_endpoint.split("?")[0] if judge else None,
            verdicts=outcome.verdicts, aggregates=outcome.aggregates, gate=outcome.gate, complete=outcome.complete,
            allow_missing=self.settings.allow_missing, stopped=outcome.stopped, meta=meta, comparison=comparison)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.is_worker:
            self._report_to_controller()
            return
        if session.config.option.collectonly:
            return
        if self.outcome is None:  # the run loop never ran (e.g. stopped during collection)
            self.outcome = self._evaluate()
        if self.stopped is not None:
            session.exitstatus = self.stopped.exit_code  # also when a worker stopped (xdist)
        s = self.settings
        results = self._results(self.outcome) if (s.json_path or s.save_name or s.html_path) else None
        data = results.model_dump_json(indent=2).encode("utf-8") if results is not None else b""
        if s.json_path is not None:
            self._write_results(s.json_path, data)
        if s.save_name is not None:
            self._save_run(data)
        if s.html_path is not None:
            self._write_html(results)
            self.written.append(f"HTML report written to {s.html_path}")
        if self.producer is not None:
            self.producer.write_jsonl(self.settings.language)

    def _write_results(self, path: Path, data: bytes) -> None:
        """The results JSON; a run that stopped, or scored nothing, never replaces a file holding scored rows."""
        from .runs import holds_scored_rows, incomplete_path

        outcome = self.outcome
        kept = holds_scored_rows(path) if (outcome.stopped or outcome.aggregates.full.num == 0) else 0
        if kept:
            target = incomplete_path(path)
            write_atomic(target, data)
            self.written.append(f"results written to {target}; {path} kept as it was (it holds {kept} scored rows "
                                "and this run is incomplete)")
        else:
            write_atomic(path, data)
            self.written.append(f"results written to {path}")

    def _save_run(self, data: bytes) -> None:
        """--editeval-save NAME: only a complete run may become NAME (a baseline); another is NAME.incomplete."""
        from .runs import INCOMPLETE_SUFFIX, run_path

        name = self.settings.save_name
        if self.outcome.complete:
            path = run_path(self.config.rootpath, name)
            write_atomic(path, data)
            self.written.append(f"run saved as {name} ({path})")
        else:
            path = run_path(self.config.rootpath, name + INCOMPLETE_SUFFIX)
            write_atomic(path, data)
            self.written.append(f"run NOT saved as {name}, because it is incomplete; saved as "
                                f"{name}{INCOMPLETE_SUFFIX} ({path}), and {name} is left as it was")

    def _write_html(self, results) -> None:
        from .report.html import render_report, thumbnails

        sources = self.sources or SourceImages(self.files)  # the run's reader, when it ran any row
        by_id = {s.id: s for s in self.selected}
        thumbs = thumbnails(results.samples, lambda sample_id: sources.read(by_id[sample_id]),
                            self.settings.max_pixels)
        write_atomic(self.settings.html_path, render_report(results, self.baseline, thumbs).encode("utf-8"))

    def _report_to_controller(self) -> None:
        """xdist: what only this worker knows travels back in workeroutput (stash does not)."""
        output = self.config.workeroutput
        output["editeval_counts"] = self._counts()
        if self.stopped is not None:
            output["editeval_stopped"] = [self.stopped.message, self.stopped.exit_code]

    def _counts(self) -> dict:
        cache = self.cache
        return {"requests": self.client.requests_sent if self.client else 0,
                "hits": cache.hits if cache else 0, "misses": cache.misses if cache else 0,
                "shared": cache.shared if cache else 0,
                "corrupt": cache.corrupt if cache else 0,
                "write_errors": sorted(set(cache.write_errors)) if cache else [],
                "generated": self.producer.generated if self.producer else 0,
                "from_cache": (len(self.producer.samples) - len(self.producer.pending)) if self.producer else 0,
                "started": self.client is not None}

    def worker_done(self, output: dict) -> None:
        """The controller's side of `_report_to_controller`."""
        if "editeval_counts" in output:
            self.worker_counts.append(output["editeval_counts"])
        if "editeval_stopped" in output and self.stopped is None:
            message, code = output["editeval_stopped"]
            self.stopped = Stop(message, code)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.is_worker or self.outcome is None:
            return
        from .report.terminal import SummaryFacts, summary_lines

        s = self.settings
        counts = [self._counts(), *self.worker_counts]
        facts = SummaryFacts(
            title=f"editeval: {s.benchmark} ({s.language}), protocol {s.protocol}, "
                  f"judge {s.judge.model if s.judge else '?'}",
            model=self.model_name, dataset=f"gedit-{s.language}", outcome=self.outcome,
            stopped=self.stopped.message if self.stopped else None,
            stopped_code=self.stopped.exit_code if self.stopped else None,
            no_items=self.benchmark_items == 0 and not self.config.pluginmanager.hasplugin("dsession"),
            allow_missing=s.allow_missing, missing_origin=str(self.edited.origin) if self.edited else
            str(self.generation.output_dir) if self.generation else "",
            counts=counts if any(c["started"] for c in counts) else None,
            output_dir=str(self.generation.output_dir) if self.producer is not None or (
                self.generation is not None and any(c["generated"] or c["from_cache"] for c in counts)) else None,
            baseline=self.baseline, baseline_name=(self.baseline.meta.get("name") or s.compare) if self.baseline else None,
            compare_skipped=self.compare_skipped, written=self.written, still_running=self.still_running)
        terminalreporter.section(facts.title)
        for line, style in summary_lines(facts):
            terminalreporter.write_line(line, **style)

    def pytest_unconfigure(self, config) -> None:
        self.stop_threads()  # joined before pytest returns, whatever happened before
        if self.still_running:
            import sys

            sys.stderr.write(f"editeval: threads still running at exit: {', '.join(self.still_running)}\n")


def _quietly(target):
    """A helper thread's target whose failure is left to the code that needs its result."""
    def run(*args):
        try:
            target(*args)
        except Exception:  # noqa: BLE001 - a prefetch that failed is simply done again where it is needed
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


def _sample_of(item: pytest.Item) -> Sample | None:
    """The row of one of the plugin's own benchmark items (a user's test over editeval_sample is not one)."""
    if getattr(getattr(item, "function", None), "__module__", None) != "pytest_editeval.benchmark_items":
        return None
    callspec = getattr(item, "callspec", None)
    sample = callspec.params.get("editeval_sample") if callspec is not None else None
    return sample if isinstance(sample, Sample) else None


def _default_fixture(session: pytest.Session, item: pytest.Item, name: str) -> bool:
    """Whether the fixture `name` seen by `item` is still the plugin's own (not overridden in a conftest)."""
    definitions = session._fixturemanager.getfixturedefs(name, item) or []
    return bool(definitions) and definitions[-1].func.__module__ == "pytest_editeval.fixtures"


def _attach_image_links(report, verdict: Verdict) -> None:
    """pytest-html: the edited image (and its source, in model mode) as file links, never base64 blobs."""
    from pytest_html import extras

    edited = Path(verdict.edited_image)
    links = [extras.url(edited.resolve().as_uri(), name="edited image")]
    source = edited.with_name(f"{edited.stem}_SRCIMG.png")
    if source.is_file():
        links.append(extras.url(source.resolve().as_uri(), name="source image"))
    report.extras = [*getattr(report, "extras", []), *links]


def _junit_properties(verdict: Verdict) -> list[tuple[str, object]]:
    props: list[tuple[str, object]] = [("editeval_status", verdict.status)]
    for name in ("semantic_consistency", "perceptual_quality", "overall"):
        value = verdict.metric(name)
        if value is not None:
            props.append((f"editeval_{name}", f"{value:.6g}"))
    return props


class _XdistHooks:
    """Registered only when pytest-xdist is installed (its hooks are unknown otherwise)."""

    def __init__(self, plugin: EditEvalPlugin) -> None:
        self.plugin = plugin

    def pytest_xdist_auto_num_workers(self, config):
        """`-n auto` in model mode: one worker per visible GPU (each worker takes its own)."""
        generation = self.plugin.generation
        if generation is None or self.plugin.custom_editor:
            return None
        if generation.device is not None and not generation.device.startswith("cuda"):
            return None
        import torch

        return torch.cuda.device_count() or None

    def pytest_configure_node(self, node) -> None:
        node.workerinput["editeval_dataset_dir"] = str(self.plugin.dataset_dir)
        node.workerinput["editeval_fresh_after"] = self.plugin.fresh_after
        node.workerinput["editeval_started_at"] = self.plugin.started_at

    def pytest_testnodedown(self, node, error) -> None:
        self.plugin.worker_done(getattr(node, "workeroutput", None) or {})


MARKER_FIELDS = {"benchmark", "dataset", "hub", "offline", "language", "subsets", "limit", "images", "protocol",
                 "allow_missing"}


def evaluate_slice(request, slice_options: dict):
    """The `editeval_result` fixture's work: evaluate the marker's slice once, with the run's judge settings."""
    import dataclasses

    from .api import EditEvalResult
    from .options import BENCHMARKS

    unknown = sorted(set(slice_options) - MARKER_FIELDS)
    if unknown:
        raise InputError(f"@pytest.mark.editeval does not take {', '.join(unknown)}; it takes "
                         + ", ".join(sorted(MARKER_FIELDS)))
    if slice_options.get("benchmark") not in BENCHMARKS:
        raise InputError(f"@pytest.mark.editeval needs benchmark= one of {', '.join(BENCHMARKS)}")
    config = request.config
    settings = resolve(config)
    overrides = {k: (list(v) if k == "subsets" else v) for k, v in slice_options.items()}
    if "images" in overrides:
        overrides["images"] = str(overrides["images"])
        overrides["generation"] = None
    # A slice reports only through its fixture: no files, thresholds or baselines of the benchmark run.
    settings = dataclasses.replace(settings, **overrides, json_path=None, html_path=None, save_name=None,
                                   compare=None, compare_gates=[], thresholds=[])
    plugin = EditEvalPlugin(config, settings)
    plugin.is_worker = False
    outcome = plugin.evaluate_all(request)
    missing = [v.id for v in outcome.verdicts if v.status == "missing"]
    if missing and not settings.allow_missing:
        raise InputError(f"{len(missing)} of {len(outcome.verdicts)} rows of this slice have no edited image "
                         f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}): a score over the others "
                         "would pass by omission; pass allow_missing=True to the marker or --editeval-allow-missing")
    return EditEvalResult(outcome)


def make_judge(request):
    plugin = request.config.stash.get(PLUGIN_KEY, None)
    if plugin is None:
        raise pytest.UsageError("editeval_judge needs a benchmark run: pass --editeval-benchmark (and the judge options)")
    return plugin.judge_image
