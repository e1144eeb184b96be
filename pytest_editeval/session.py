"""The plugin object of an evaluation run: it wires the stages together through pytest's hooks.

configure   resolve settings, read the sample index, check the edited images and thresholds (usage errors)
collect     add the virtual benchmark module; parametrize `editeval_sample` with the selected rows
run loop    queue the selected rows for the judge ahead of the items; each item waits for its own verdict
report      put the verdict on the TestReport (travels through xdist); collect it on the controller
finish      aggregate, gate (exit status 1 when a threshold is missed), write JSON, print the table
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
    complete: bool
    deltas: list = field(default_factory=list)  # paired differences with the baseline
    compare_outcomes: list = field(default_factory=list)


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
        else:
            self.dataset_dir = resolve_dataset(settings.dataset, settings.hub, settings.offline)
            self.fresh_after = time.time() if settings.refresh else None
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
            self.edited = load_edited_images(settings.images, {s.key for s in index}, self.selected,
                                             settings.language)
            self.model_name = settings.model_name or self.edited.default_model_name
        else:
            self.edited = None
            self.model_name = settings.model_name or self.generation.output_dir.name
        self.baseline = None
        if settings.compare:
            from .runs import load_run

            self.baseline = load_run(settings.compare, config.rootpath)
        try:
            for gate in settings.compare_gates:
                check_subsets([gate], self.subset_order)
        except ValueError as exc:
            raise InputError(str(exc).replace("threshold", "compare gate")) from None
        if settings.compare_gates and self.baseline is None:
            raise InputError("--editeval-compare-fail needs a baseline: add --editeval-compare NAME_OR_PATH")
        self.position = {s.id: i for i, s in enumerate(self.selected)}
        self.records: dict[str, dict] = {}
        self.stop = threading.Event()
        self.scheduler = None
        self.client = None
        self.sources: SourceImages | None = None
        self.cache: Cache | None = None
        self.outcome: Outcome | None = None
        self.benchmark_items = 0
        self.custom_editor = False
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
        samples = [s for s in map(_sample_of, session.items) if s is not None]
        if samples and not session.config.option.collectonly:
            self._start(samples)
        try:
            return (yield)
        finally:
            if self.scheduler is not None:
                self.scheduler.shutdown()
            if not self.is_worker and not session.config.option.collectonly:
                self.outcome = self._evaluate()
                compare_failed = any(not o.passed for o in self.outcome.compare_outcomes)
                if self.outcome.gate.evaluated and (not self.outcome.gate.passed or compare_failed):
                    session.testsfailed += 1  # the gate decides the exit status (1), like pytest-cov

    def _start(self, samples: list[Sample]) -> None:
        from .evaluation import RowEvaluator
        from .judges.client import JudgeClient
        from .scheduler import Scheduler

        workers = self.settings.workers
        sources = SourceImages(self.files)
        if samples:  # decode the first rows' data while the HTTP client is set up
            threading.Thread(target=sources.read, args=(samples[0],), daemon=True).start()
        self.client = JudgeClient(self.settings.judge, stop=self.stop, max_in_flight=workers)
        root = self.settings.cache_dir
        self.cache = Cache(root if root is None else root.resolve(), fresh_after=self.fresh_after)
        if self.generation is None:
            paths, origin = self.edited.paths, self.edited.origin
            edited_image = lambda sample: paths.get(sample.key)  # noqa: E731
            where = str(origin)
        else:
            self.producer = self._producer(samples, sources)
            edited_image = self.producer.result
            where = str(self.generation.output_dir)
        self.sources = sources
        self._evaluator_parts = dict(sources=sources, edited_origin=where, client=self.client, cache=self.cache,
                                     protocol=self.settings.protocol)
        evaluator = RowEvaluator(edited_image=edited_image, **self._evaluator_parts)
        # Each row asks its two questions at once, so workers/2 rows fill the request slots; a few more rows
        # prepare their images (CPU) meanwhile. More would only hold more decoded images in memory.
        self.scheduler = Scheduler(evaluator.evaluate, -(-workers // 2) + PREPARE_AHEAD_THREADS, self.stop)
        # Without a shared cache, xdist workers cannot tell who judges what: judge only one's own items.
        if not (self.is_worker and not self.cache.enabled):
            self.scheduler.submit(samples)

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
                                 self.stop)
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
        try:
            editor = request.getfixturevalue("editeval_pipeline")
        except GenerationSetupError as exc:
            self.producer.fail_pending(str(exc))
            pytest.exit(f"editeval: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)
        identity = getattr(editor, "editeval_identity", None)
        if self.custom_editor and identity is not None:  # a custom editor's images are cached once it names itself
            self.producer.adopt_identity(identity)
        self.producer.start(editor)

    def verdict_for(self, sample: Sample, request=None) -> Verdict:
        if self.scheduler is None:
            self._start([])
        if request is not None:
            self._ensure_generating(request)
        try:
            return self.scheduler.result(sample)
        except JudgeFatalError as exc:
            code = pytest.ExitCode.USAGE_ERROR if exc.usage else pytest.ExitCode.INTERRUPTED
            pytest.exit(f"editeval: {exc}", returncode=code)

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
        path = folder / f"{sample.key}-{hashlib.sha256(data).hexdigest()[:16]}.png"
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data)
        return path

    def source_image(self, sample: Sample):
        """The row's `input_image` as an RGB PIL image (what the editing model receives)."""
        import io

        from PIL import Image

        if self.scheduler is None:
            self._start([])
        with Image.open(io.BytesIO(self.sources.read(sample))) as img:
            return img.convert("RGB")

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
            self.scheduler.shutdown()
            if self.producer is not None:
                self.producer.write_jsonl(self.settings.language)
        return self._evaluate()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        verdict = item.stash.get(VERDICT_KEY, None)
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
            self.records[report.nodeid] = record

    # ---- finishing --------------------------------------------------------------------------------
    def _evaluate(self) -> Outcome:
        verdicts = sorted((Verdict.from_record(r) for r in self.records.values()),
                          key=lambda v: self.position.get(v.id, len(self.position)))
        aggregates = aggregate(verdicts, self.subset_order, expected_rows=len(self.selected))
        complete = {v.id for v in verdicts} >= set(self.position)
        gate = evaluate_gate(self.settings.thresholds, aggregates, complete=complete,
                             policy=self.settings.gate_policy)
        deltas, compare_outcomes = [], []
        if self.baseline is not None:
            from .compare import compare_runs

            deltas, compare_outcomes = compare_runs(
                [v.to_record() for v in verdicts if v.status != "missing"],
                [sample.model_dump() for sample in self.baseline.samples],
                self.settings.compare_gates, list(aggregates.full.subsets))
        return Outcome(verdicts, aggregates, gate, complete, deltas, compare_outcomes)

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
            verdicts=outcome.verdicts, aggregates=outcome.aggregates, gate=outcome.gate, complete=outcome.complete,
            meta=meta, comparison=comparison)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.is_worker or session.config.option.collectonly:
            return
        if self.outcome is None:
            self.outcome = self._evaluate()
        s = self.settings
        results = self._results(self.outcome) if (s.json_path or s.save_name or s.html_path) else None
        data = results.model_dump_json(indent=2).encode("utf-8") if results is not None else b""
        if s.json_path is not None:
            write_atomic(s.json_path, data)
        if s.save_name is not None:
            from .runs import run_path

            write_atomic(run_path(self.config.rootpath, s.save_name), data)
        if s.html_path is not None:
            self._write_html(results)
        if self.producer is not None:
            self.producer.write_jsonl(self.settings.language)

    def _write_html(self, results) -> None:
        from .report.html import render_report, thumbnails

        sources = self.sources or SourceImages(self.files)  # the run's reader, when it ran any row
        by_id = {s.id: s for s in self.selected}
        thumbs = thumbnails(results.samples, lambda sample_id: sources.read(by_id[sample_id]))
        write_atomic(self.settings.html_path, render_report(results, self.baseline, thumbs).encode("utf-8"))

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.is_worker or self.outcome is None:
            return
        from .report.table import render_counts, render_gate, render_table

        tr, outcome, s = terminalreporter, self.outcome, self.settings
        judge = s.judge.model if s.judge else "?"
        tr.section(f"editeval: {s.benchmark} ({s.language}), protocol {s.protocol}, judge {judge}")
        if self.benchmark_items == 0 and not self.is_worker and not self.config.pluginmanager.hasplugin("dsession"):
            tr.write_line("no benchmark rows were collected: the collection arguments exclude the benchmark; "
                          "run pytest without path arguments, or in the folder you want", yellow=True)
        if outcome.aggregates.seen_rows:
            baseline = self.baseline.model_dump()["aggregates"] if self.baseline is not None else None
            tr.write_line(render_table(outcome.aggregates, self.model_name, f"gedit-{s.language}", baseline))
        tr.write_line(render_counts(outcome.aggregates), red=outcome.aggregates.full.errors > 0)
        if not outcome.complete:
            tr.write_line(f"PARTIAL RUN: {outcome.aggregates.seen_rows} of {outcome.aggregates.expected_rows} "
                          "benchmark rows ran (-k, --lf, -x, deselection or an interruption)", yellow=True, bold=True)
        if self.client is not None and self.cache is not None:
            tr.write_line(f"judge requests: {self.client.requests_sent}; cache: {self.cache.hits} hits, "
                          f"{self.cache.misses} computed" + (f", {self.cache.corrupt} corrupt entries recomputed"
                                                           if self.cache.corrupt else ""))
            for message in sorted(set(self.cache.write_errors)):
                tr.write_line(f"editeval cache: {message}", red=True)
        if self.producer is not None:
            cached = len(self.producer.samples) - len(self.producer.pending)
            tr.write_line(f"generated {self.producer.generated} images ({cached} from the cache), saved under "
                          f"{self.generation.output_dir} (edits.jsonl there re-judges them in image mode)")
        if s.json_path is not None:
            tr.write_line(f"results written to {s.json_path}")
        if self.baseline is not None:
            from .report.table import render_comparison

            name = self.baseline.meta.get("name") or s.compare
            for line, failed in render_comparison(outcome.deltas, outcome.compare_outcomes, name,
                                                  outcome.gate.evaluated):
                tr.write_line(line, red=failed, green=line.startswith("PASS"))
        if s.save_name:
            tr.write_line(f"run saved as {s.save_name} (.editeval/runs/{s.save_name}.json)")
        for line, failed in render_gate(outcome.gate):
            tr.write_line(line, red=failed, green=line.startswith(("PASS", "editeval gate PASSED")),
                          yellow=not failed and "NOT APPLIED" in line, bold=line.startswith("editeval gate"))


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


MARKER_FIELDS = {"benchmark", "dataset", "hub", "offline", "language", "subsets", "limit", "images", "protocol"}


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
    return EditEvalResult(plugin.evaluate_all(request))


def make_judge(request):
    plugin = request.config.stash.get(PLUGIN_KEY, None)
    if plugin is None:
        raise pytest.UsageError("editeval_judge needs a benchmark run: pass --editeval-benchmark (and the judge options)")
    return plugin.judge_image
