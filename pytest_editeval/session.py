"""The plugin object of an evaluation run: pytest's hooks, each handing off to the Run (run.py), the items
(items.py), xdist (xdist.py) or the terminal report (report/terminal.py).

configure   resolve settings and set up the Run (usage errors, before any test runs)
collect     add the virtual benchmark module; parametrize `editeval_sample` with the selected rows
run loop    start the Run ahead of the items; each item waits for its own verdict
report      put the verdict on the TestReport (travels through xdist); record it on the controller
finish      stop and join every thread; aggregate, gate (exit status 1 when the gate fails), write, print
"""

from __future__ import annotations

from pathlib import Path

import pytest

from . import hookcalls, items
from .errors import EditEvalError, InputError, JudgeFatalError
from .run import Outcome, Run, Stop
from .settings import resolve
from .state import PLUGIN_KEY, VERDICT_KEY
from .verdict import Verdict


class EditEvalPlugin:
    @classmethod
    def install(cls, config: pytest.Config) -> None:
        try:
            settings = resolve(config, need_judge=not config.option.collectonly)
            plugin = cls(config, Run(config, settings, worker=getattr(config, "workerinput", None)))
        except EditEvalError as exc:
            raise pytest.UsageError(f"editeval: {exc}") from None
        config.stash[PLUGIN_KEY] = plugin
        config.pluginmanager.register(plugin, "editeval-session")
        if config.pluginmanager.hasplugin("xdist"):
            from .xdist import XdistHooks

            config.pluginmanager.register(XdistHooks(plugin), "editeval-xdist")

    def __init__(self, config: pytest.Config, run: Run) -> None:
        self.config = config
        self.run = run
        self.session: pytest.Session | None = None
        self.outcome: Outcome | None = None
        self.benchmark_items = 0
        self.usage_error = False  # the run could not start: the usage line says it all (no summary, no files)
        self.hook_failures: list[str] = []  # extension hooks that failed (said in the summary; the run fails)
        invocation = Path(config.invocation_params.dir)
        self.anchor = invocation if invocation.is_relative_to(config.rootpath) else None

    @property
    def is_worker(self) -> bool:
        return self.run.is_worker

    # ---- collection -------------------------------------------------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(self, collector):
        report = yield
        at_anchor = (isinstance(collector, pytest.Directory) and collector.path == self.anchor) or (
            self.anchor is None and isinstance(collector, pytest.Session))
        if report.passed and at_anchor:
            folder = self.anchor or self.config.rootpath
            report.result.append(items.benchmark_module(collector, folder / f"editeval_{self.run.benchmark.name}"))
        return report

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "editeval_sample" in metafunc.fixturenames:
            selected = self.run.selected
            metafunc.parametrize("editeval_sample", selected, ids=[r.id for r in selected], indirect=True)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, session: pytest.Session, items) -> None:
        own = [item for item in items if _row_of(item) is not None]
        self.benchmark_items = len(own)
        run = self.run
        if run.generation is not None and own:
            run.custom_editor = not _is_default_fixture(session, own[0], "editeval_pipeline")
            if not run.custom_editor and not run.generation.model:
                raise pytest.UsageError(
                    "editeval: no edited images: give --editeval-images PATH (a JSONL of {id, image_path} or a "
                    "folder in the benchmark's output layout), or --editeval-model ID_OR_DIR (a diffusers "
                    "pipeline), or override the editeval_pipeline fixture in conftest.py")

    # ---- running ----------------------------------------------------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session):
        self.session = session
        rows = [r for r in map(_row_of, session.items) if r is not None]
        if rows and not session.config.option.collectonly:
            try:
                self.run.start(rows)
            except EditEvalError as exc:
                self.usage_error = True
                raise pytest.UsageError(f"editeval: {exc}") from None
        ended_normally = False
        try:
            result = yield
            ended_normally = not (session.shouldstop or session.shouldfail)
            return result
        finally:
            self.run.stop_threads(drain=ended_normally)
            if not self.is_worker and not session.config.option.collectonly and not self.usage_error:
                self.outcome = self.run.outcome()
                if self.outcome.failed:
                    session.testsfailed += 1  # the gate decides the exit status (1), like pytest-cov

    def verdict_for(self, row, request=None) -> Verdict:
        """The row's verdict for a fixture; a fatal judge answer or set-up error stops the run."""
        run = self.run
        if request is not None and run.needs_editor:
            self._start_generating(request)
        try:
            return run.result(row)
        except JudgeFatalError as exc:
            fatal = exc
        # outside the except block: the stop is reported as itself, not as an error while handling another
        self.stop_run(str(fatal), pytest.ExitCode.USAGE_ERROR if fatal.usage else pytest.ExitCode.INTERRUPTED)

    def _start_generating(self, request) -> None:
        """Load the editor the first time an image must actually be generated, then start the producer."""
        from .generation import GenerationSetupError

        setup_error = None
        try:
            self.run.adopt_editor(request.getfixturevalue("editeval_pipeline"))
        except GenerationSetupError as exc:
            setup_error = str(exc)
        if setup_error is not None:  # stopped outside the except block, so it is reported as itself
            self.run.producer.fail_pending(setup_error)
            self.stop_run(setup_error, pytest.ExitCode.USAGE_ERROR)

    def stop_run(self, message: str, code: pytest.ExitCode):
        """A fatal error: remember it (the summary leads with it and no gate is applied) and stop pytest. An
        xdist worker cannot pytest.exit (the controller would take it for a crash): it fails this item and
        asks its session to stop; the reason and exit status reach the controller in workeroutput."""
        if self.run.stopped is None:
            self.run.stopped = Stop(message, int(code))
        if self.is_worker and self.session is not None:
            self.session.shouldstop = f"editeval: {message}"
            pytest.fail(f"editeval: {message}", pytrace=False)
        pytest.exit(f"editeval: {message}", returncode=code)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        # Only the plugin's own items carry their row: a user's test that also looks at a row's verdict
        # (editeval_verdict) must not count that row a second time.
        verdict = item.stash.get(VERDICT_KEY, None) if _row_of(item) is not None else None
        if verdict is not None and call.when == "call" and self.run.settings.junit_properties:
            item.user_properties.extend(items.junit_properties(verdict, self.run.benchmark.metrics))
        report = yield
        if verdict is not None and report.when == "call":
            report.editeval = verdict.to_record()  # plain JSON-able dict: xdist carries it to the controller
            if verdict.edited_image and item.config.pluginmanager.hasplugin("html"):
                items.attach_image_links(report, verdict)
        return report

    @pytest.hookimpl(tryfirst=True)  # before the terminal and the session count the report
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record = getattr(report, "editeval", None)
        if record is not None:
            self.run.record(record)
            if not self.is_worker:  # the process that records the row calls the hook (the controller under xdist)
                self._verdict_hook(report, record)

    def _verdict_hook(self, report: pytest.TestReport, record: dict) -> None:
        """pytest_editeval_verdict; a hook that raises fails this item with one line (its verdict still counts)."""
        try:
            hookcalls.verdict(self.config, record)
        except hookcalls.HookFailed as exc:
            line = f"editeval: {exc}"
            if report.longrepr is not None:
                report.sections.append(("editeval hook", line))
            else:
                report.longrepr = line
            report.outcome = "failed"

    # ---- finishing --------------------------------------------------------------------------------------
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.is_worker:
            from .xdist import report_to_controller

            report_to_controller(self.config, self.run)
            return
        if session.config.option.collectonly or self.usage_error:
            return
        if self.outcome is None:  # the run loop never ran (e.g. stopped during collection)
            self.outcome = self.run.outcome()
        if self.run.stopped is not None:
            session.exitstatus = self.run.stopped.exit_code  # also when a worker stopped (xdist)
        self.run.write_files(self.outcome, extra_fields=self._results_fields)
        if self.hook_failures and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _results_fields(self, results) -> dict:
        """The results JSON's `extra` fields (pytest_editeval_results_json); a failed hook adds none."""
        if not hookcalls.implemented(self.config, "pytest_editeval_results_json"):
            return {}
        try:
            return hookcalls.results_fields(self.config, results.model_dump(mode="json"))
        except hookcalls.HookFailed as exc:
            self.hook_failures.append(f"editeval: {exc}; the results were written without its fields")
            return {}

    def _summary_hook_lines(self) -> list[str]:
        """pytest_editeval_summary_lines; a failed hook is one line, and the run fails."""
        if not hookcalls.implemented(self.config, "pytest_editeval_summary_lines"):
            return []
        try:
            return hookcalls.summary_lines(self.config, self.run.results(self.outcome).model_dump(mode="json"))
        except hookcalls.HookFailed as exc:
            self.hook_failures.append(f"editeval: {exc}")
            if self.session is not None and self.session.exitstatus == pytest.ExitCode.OK:
                self.session.exitstatus = pytest.ExitCode.TESTS_FAILED
            return []

    def worker_done(self, output: dict) -> None:
        """The controller's side of xdist.report_to_controller."""
        if "editeval_counts" in output:
            self.run.worker_counts.append(output["editeval_counts"])
        if output.get("editeval_judge") and self.run.worker_judge is None:
            self.run.worker_judge = output["editeval_judge"]
        if "editeval_stopped" in output and self.run.stopped is None:
            message, code = output["editeval_stopped"]
            self.run.stopped = Stop(message, code)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.is_worker or self.outcome is None:
            return
        from .judge_cost import usage_lines
        from .report.terminal import SummaryFacts, summary_lines

        run, s = self.run, self.run.settings
        counts = run.all_counts()
        generated = run.generation is not None and any(c["generated"] or c["from_cache"] for c in counts)
        facts = SummaryFacts(
            title=_title(run),
            benchmark=run.benchmark, model=run.model_name, dataset=run.dataset_label, outcome=self.outcome,
            stopped=run.stopped.message if run.stopped else None,
            stopped_code=run.stopped.exit_code if run.stopped else None,
            no_items=self.benchmark_items == 0 and not self.config.pluginmanager.hasplugin("dsession"),
            allow_missing=s.allow_missing,
            missing_origin=str(run.edited.origin) if run.edited else str(run.generation.output_dir),
            counts=counts if any(c["started"] for c in counts) else None,
            judge_notes=sorted({n for c in counts for n in c.get("judge_notes", ())}),
            output_dir=str(run.generation.output_dir) if run.producer is not None or generated else None,
            baseline=run.baseline, baseline_name=(run.baseline.meta.get("name") or s.compare) if run.baseline else None,
            compare_skipped=run.compare_skipped, written=run.written, still_running=run.still_running,
            warnings=run.warnings, withheld=run.shard_withheld,
            usage_lines=usage_lines(run.judge_info(counts)) if s.judge and any(c["started"] for c in counts) else [],
            judge_aggregates=self.outcome.judge_aggregates if s.table_judges else None)
        facts.extension_lines = self._summary_hook_lines()
        facts.extension_failures = list(self.hook_failures)
        terminalreporter.section(facts.title)
        for line, style in summary_lines(facts):
            terminalreporter.write_line(line, **style)

    def pytest_unconfigure(self, config) -> None:
        self.run.stop_threads()  # joined before pytest returns, whatever happened before
        if self.run.still_running:
            import sys

            sys.stderr.write(f"editeval: threads still running at exit: {', '.join(self.run.still_running)}\n")


def _title(run: Run) -> str:
    """The table's title names the judge: model, backend, weights digest, and a recipe other than the default."""
    from .judges import label

    s, judge = run.settings, run.judge_info()
    recipe = judge.get("recipe")
    shown = f", recipe {recipe}" if recipe and recipe != run.benchmark.recipe(None).name else ""
    return (f"editeval: {run.benchmark.name} ({s.language}), protocol {s.protocol}{shown}, "
            f"judge {label(judge) if s.judge else '?'}")


_row_of = items.row_of
_is_default_fixture = items.is_default_fixture

MARKER_FIELDS = {"benchmark", "dataset", "hub", "offline", "language", "subsets", "limit", "images", "protocol",
                 "allow_missing"}


def evaluate_slice(request, slice_options: dict):
    """The `editeval_result` fixture's work: evaluate the marker's slice once, with the run's judge settings."""
    import dataclasses

    from . import benchmarks
    from .api import EditEvalResult

    unknown = sorted(set(slice_options) - MARKER_FIELDS)
    if unknown:
        raise InputError(f"@pytest.mark.editeval does not take {', '.join(unknown)}; it takes "
                         + ", ".join(sorted(MARKER_FIELDS)))
    config = request.config
    known = benchmarks.known_names(Path(config.rootpath))
    if slice_options.get("benchmark") not in known:
        raise InputError(f"@pytest.mark.editeval needs benchmark= one of {', '.join(known)}")
    settings = resolve(config, benchmark_name=slice_options["benchmark"])
    overrides = {k: (list(v) if k == "subsets" else v) for k, v in slice_options.items()}
    if "images" in overrides:
        overrides["images"] = str(overrides["images"])
        overrides["generation"] = None
    # A slice reports only through its fixture: no files, thresholds or baselines of the benchmark run; and it is
    # the marker's rows, never a CI shard's share of them.
    settings = dataclasses.replace(settings, **overrides, json_path=None, html_path=None, save_name=None,
                                   compare=None, compare_gates=[], thresholds=[], shard=None)
    run = Run(config, settings)
    if run.generation is not None:
        run.custom_editor = not _is_default_fixture(request.session, request.node, "editeval_pipeline")
        if not run.custom_editor and not run.generation.model:
            raise InputError("no edited images for this slice: pass images=... to the marker, "
                             "--editeval-images / --editeval-model, or override editeval_pipeline")
    slice_plugin = EditEvalPlugin(config, run)

    def verdict_for(row):
        return slice_plugin.verdict_for(row, request)

    outcome = run.evaluate_all(verdict_for)
    missing = [v.id for v in outcome.verdicts if v.status == "missing"]
    if missing and not settings.allow_missing:
        raise InputError(f"{len(missing)} of {len(outcome.verdicts)} rows of this slice have no edited image "
                         f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}): a score over the others "
                         "would pass by omission; pass allow_missing=True to the marker or --editeval-allow-missing")
    return EditEvalResult(outcome, run.benchmark)


def make_judge(request):
    plugin = request.config.stash.get(PLUGIN_KEY, None)
    if plugin is None:
        raise pytest.UsageError("editeval_judge needs a benchmark run: pass --editeval-benchmark (and the judge options)")
    return plugin.run.judge_image
