"""The plugin object of an evaluation run: pytest's hooks, each handing off to the process's role (roles.py:
a single process, the xdist controller or a worker), which holds the Run (run/), to the items (items.py) or to
xdist (xdist.py).

configure   resolve settings, choose the role, set up the Run (usage errors, before any test runs)
collect     add the virtual benchmark module; parametrize `editeval_sample` with the selected rows
run loop    start the Run ahead of the items; each item waits for its own verdict
report      put the verdict on the TestReport (travels through xdist); record it where the role says
finish      stop and join every thread; aggregate, gate (exit status 1 when the gate fails), write, print
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_editeval.errors import EditEvalError, InputError, JudgeFatalError
from pytest_editeval.options.settings import resolve
from pytest_editeval.pytest_plugin import items
from pytest_editeval.pytest_plugin.roles import SingleProcess, choose
from pytest_editeval.pytest_plugin.state import PLUGIN_KEY, VERDICT_KEY
from pytest_editeval.run import Run
from pytest_editeval.scoring.verdict import Verdict


class EditEvalPlugin:
    @classmethod
    def install(cls, config: pytest.Config) -> None:
        role = choose(config)
        try:
            role.run = Run(resolve(config, need_judge=not role.collect_only), role.context())
        except EditEvalError as exc:
            raise pytest.UsageError(f"editeval: {exc}") from None
        plugin = config.stash[PLUGIN_KEY] = cls(config, role)
        config.pluginmanager.register(plugin, "editeval-session")
        if config.pluginmanager.hasplugin("xdist"):
            from pytest_editeval.pytest_plugin.xdist import XdistHooks

            config.pluginmanager.register(XdistHooks(role.run), "editeval-xdist")

    def __init__(self, config: pytest.Config, role: SingleProcess) -> None:
        self.config = config
        self.role = role
        self.run = role.run
        invocation = Path(config.invocation_params.dir)
        self.anchor = invocation if invocation.is_relative_to(config.rootpath) else None

    # ---- collection -------------------------------------------------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(self, collector):
        report = yield
        at_anchor = (isinstance(collector, pytest.Directory) and collector.path == self.anchor) or (
            self.anchor is None and isinstance(collector, pytest.Session))
        if report.passed and at_anchor:
            folder = self.anchor or self.config.rootpath
            report.result.append(items.benchmark_module(collector, folder / f"editeval_{self.run.plan.benchmark.name}"))
        return report

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "editeval_sample" in metafunc.fixturenames:
            selected = self.run.plan.selected
            metafunc.parametrize("editeval_sample", selected, ids=[r.id for r in selected], indirect=True)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, session: pytest.Session, items) -> None:
        own = [item for item in items if _row_of(item) is not None]
        self.role.benchmark_items = len(own)
        if self.run.plan.generation is not None and own:
            self._check_editor(_is_default_fixture(session, own[0], "editeval_pipeline"), pytest.UsageError(
                "editeval: no edited images: give --editeval-images PATH (a JSONL of {id, image_path} or a "
                "folder in the benchmark's output layout), or --editeval-model ID_OR_DIR (a diffusers "
                "pipeline), or override the editeval_pipeline fixture in conftest.py"))

    def _check_editor(self, default_fixture: bool, no_editor: Exception) -> None:
        """Model mode: a custom editor (the editeval_pipeline fixture overridden), or the model to load."""
        self.run.execution.custom_editor = not default_fixture
        if default_fixture and not self.run.plan.generation.model:
            raise no_editor

    # ---- running ----------------------------------------------------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session):
        rows = [r for r in map(_row_of, session.items) if r is not None]
        return (yield from self.role.run_loop(session, rows))

    def verdict_for(self, row, request=None) -> Verdict:
        """The row's verdict for a fixture; a fatal judge answer or set-up error stops the run."""
        execution = self.run.execution
        if request is not None and execution.needs_editor:
            self._start_generating(request)
        try:
            return execution.result(row)
        except JudgeFatalError as exc:
            fatal = exc
        # outside the except block: the stop is reported as itself, not as an error while handling another
        self.role.stop(str(fatal), pytest.ExitCode.USAGE_ERROR if fatal.usage else pytest.ExitCode.INTERRUPTED)

    def _start_generating(self, request) -> None:
        """Load the editor the first time an image must actually be generated, then start the producer."""
        from pytest_editeval.generation.pipeline import GenerationSetupError

        setup_error = None
        try:
            self.run.execution.adopt_editor(request.getfixturevalue("editeval_pipeline"))
        except GenerationSetupError as exc:
            setup_error = str(exc)
        if setup_error is not None:  # stopped outside the except block, so it is reported as itself
            self.run.execution.producer.fail_pending(setup_error)
            self.role.stop(setup_error, pytest.ExitCode.USAGE_ERROR)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        # Only the plugin's own items carry their row: a user's test that also looks at a row's verdict
        # (editeval_verdict) must not count that row a second time.
        verdict = item.stash.get(VERDICT_KEY, None) if _row_of(item) is not None else None
        if verdict is not None and call.when == "call" and self.run.settings.junit_properties:
            item.user_properties.extend(items.junit_properties(verdict, self.run.plan.benchmark.metrics))
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
            self.run.execution.record(record)
            self.role.recorded(report, record)

    # ---- finishing --------------------------------------------------------------------------------------
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self.role.finish(session)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        self.role.summary(terminalreporter)

    def pytest_unconfigure(self, config) -> None:
        self.role.unconfigure()


_row_of = items.row_of
_is_default_fixture = items.is_default_fixture

MARKER_FIELDS = {"benchmark", "dataset", "hub", "offline", "language", "subsets", "limit", "images", "protocol",
                 "allow_missing"}


def evaluate_slice(request, slice_options: dict):
    """The `editeval_result` fixture's work: evaluate the marker's slice once, with the run's judge settings."""
    import dataclasses

    from pytest_editeval import benchmarks
    from pytest_editeval.api import EditEvalResult

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
    role = SingleProcess(config)  # the slice runs in this process, whatever the session's role
    role.run = run = Run(settings, role.context())
    slice_plugin = EditEvalPlugin(config, role)
    if run.plan.generation is not None:
        slice_plugin._check_editor(_is_default_fixture(request.session, request.node, "editeval_pipeline"), InputError(
            "no edited images for this slice: pass images=... to the marker, --editeval-images / --editeval-model, "
            "or override editeval_pipeline"))

    def verdict_for(row):
        return slice_plugin.verdict_for(row, request)

    outcome = run.evaluate_all(verdict_for)
    missing = [v.id for v in outcome.verdicts if v.status == "missing"]
    if missing and not settings.allow_missing:
        raise InputError(f"{len(missing)} of {len(outcome.verdicts)} rows of this slice have no edited image "
                         f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}): a score over the others "
                         "would pass by omission; pass allow_missing=True to the marker or --editeval-allow-missing")
    return EditEvalResult(outcome, run.plan.benchmark)


def make_judge(request):
    plugin = request.config.stash.get(PLUGIN_KEY, None)
    if plugin is None:
        raise pytest.UsageError("editeval_judge needs a benchmark run: pass --editeval-benchmark (and the judge options)")
    return plugin.run.execution.judge_image
