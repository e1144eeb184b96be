"""The process a pytest session runs in, as one object chosen once (as pytest-cov's Central, DistMaster and
DistWorker): a single process, the xdist controller, or an xdist worker. Each says how its process starts the
run, records a verdict, stops on a fatal error, finishes and summarises; session.py hands pytest's hooks to it.

single process   runs the items, decides the outcome, writes the files, prints the summary
xdist controller the same, from the records its workers' reports carry and the counters they send back
                 (xdist.py); its own Run starts no judge
xdist worker     runs its items and reports; decides, writes and prints nothing; a fatal stop fails the item and
                 travels back to the controller
"""

from __future__ import annotations

import contextlib
import sys
import threading

import pytest

from pytest_editeval.errors import EditEvalError
from pytest_editeval.pytest_plugin import hookcalls
from pytest_editeval.run import Run, RunContext, WorkerShare
from pytest_editeval.scoring.outcome import Outcome, Stop

_SAY_LOCK = threading.Lock()


class SingleProcess:
    """The process that runs the items and reports on them."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.collect_only = bool(config.option.collectonly)  # lists the items: no run, no outcome, no files
        self.hooks = hookcalls.ConftestHooks(config)
        self.run: Run | None = None
        self.session: pytest.Session | None = None
        self.outcome: Outcome | None = None
        self.written: list[str] = []  # "what: where" lines for the summary
        self.benchmark_items = 0
        self.usage_error = False  # the run could not start: the usage line says it all (no summary, no files)

    # ---- set-up -------------------------------------------------------------------------------------------
    def context(self) -> RunContext:
        from pytest_editeval.generation.pipeline import silence_diffusers_deprecations
        from pytest_editeval.options.table import replaced_ini_lines

        return RunContext(rootpath=self.config.rootpath, collect_only=self.collect_only, say=self._say,
                          judge_created=self.hooks.judge_created, notes=tuple(replaced_ini_lines(self.config)),
                          quiet_diffusers=lambda: silence_diffusers_deprecations(self.config))

    def _say(self, line: str) -> None:
        """One progress line on the terminal now (a judge server starting, a judge model loading), from any
        thread: output capture is suspended for it, as pytest's live logging does."""
        plugins = self.config.pluginmanager
        reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
        if reporter is None:
            return
        with _SAY_LOCK, (capture.global_and_fixture_disabled() if capture else contextlib.nullcontext()):
            reporter.write_line(f"editeval: {line}")

    # ---- the run loop -------------------------------------------------------------------------------------
    def run_loop(self, session: pytest.Session, rows: list):
        """pytest_runtestloop's wrapper: start the run ahead of the items, stop it after them, decide."""
        self.session = session
        if rows and not self.collect_only:
            try:
                self.run.execution.start(rows)
            except EditEvalError as exc:
                self.usage_error = True
                raise pytest.UsageError(f"editeval: {exc}") from None
        ended_normally = False
        try:
            result = yield
            ended_normally = not (session.shouldstop or session.shouldfail)
            return result
        finally:
            self.run.execution.stop_threads(drain=ended_normally)
            if self.decides:
                self.outcome = self.run.outcome()
                if self.outcome.failed:
                    session.testsfailed += 1  # the gate decides the exit status (1), like pytest-cov

    @property
    def decides(self) -> bool:
        """Whether this process decides the outcome (and writes and prints it)."""
        return not self.collect_only and not self.usage_error

    def recorded(self, report: pytest.TestReport, record: dict) -> None:
        """A row's verdict was recorded here: pytest_editeval_verdict; a hook that raises fails this item with one
        line (its verdict still counts)."""
        try:
            self.hooks.verdict(record)
        except hookcalls.HookFailed as exc:
            line = f"editeval: {exc}"
            if report.longrepr is not None:
                report.sections.append(("editeval hook", line))
            else:
                report.longrepr = line
            report.outcome = "failed"

    def stop(self, message: str, code: pytest.ExitCode):
        """A fatal error: remember it (the summary leads with it and no gate is applied) and stop pytest."""
        execution = self.run.execution
        if execution.stopped is None:
            execution.stopped = Stop(message, int(code))
        pytest.exit(f"editeval: {message}", returncode=code)

    # ---- finishing ----------------------------------------------------------------------------------------
    def finish(self, session: pytest.Session) -> None:
        if not self.decides:
            return
        if self.outcome is None:  # the run loop never ran (e.g. stopped during collection)
            self.outcome = self.run.outcome()
        stopped = self.run.execution.stopped
        if stopped is not None:
            session.exitstatus = stopped.exit_code  # also when a worker stopped (xdist)
        self.written = self.run.write_files(self.outcome, extra=self.hooks.results_fields)
        self._fail_on_hook_failures(session)

    def _fail_on_hook_failures(self, session: pytest.Session | None) -> None:
        if self.hooks.failures and session is not None and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def no_items(self) -> bool:
        return self.benchmark_items == 0

    def summary(self, terminalreporter) -> None:
        if self.outcome is None:
            return
        run, outcome = self.run, self.outcome
        report = run.report()
        facts = report.summary_facts(outcome, self.written, run.process_counts(no_items=self.no_items()))
        facts.extension_lines = self.hooks.summary_lines(lambda: report.results(outcome))
        self._fail_on_hook_failures(self.session)
        facts.extension_failures = list(self.hooks.failures)
        from pytest_editeval.report.terminal import summary_lines

        terminalreporter.section(facts.title)
        for line, style in summary_lines(facts):
            terminalreporter.write_line(line, **style)

    def unconfigure(self) -> None:
        execution = self.run.execution
        execution.stop_threads()  # joined before pytest returns, whatever happened before
        if execution.still_running:
            sys.stderr.write(f"editeval: threads still running at exit: {', '.join(execution.still_running)}\n")


class Controller(SingleProcess):
    """The xdist controller: its workers run the items; their reports carry the records (xdist.py)."""

    def no_items(self) -> bool:
        return False  # the workers collect the items


class Worker(SingleProcess):
    """An xdist worker: runs its items and reports to the controller; decides, writes and prints nothing."""

    def context(self) -> RunContext:
        from pytest_editeval.generation.pipeline import silence_diffusers_deprecations

        # No progress lines (the controller prints) and no notes (the controller says them once).
        return RunContext(rootpath=self.config.rootpath, collect_only=self.collect_only,
                          worker=WorkerShare.from_input(self.config.workerinput), in_worker=True,
                          judge_created=self.hooks.judge_created,
                          quiet_diffusers=lambda: silence_diffusers_deprecations(self.config))

    @property
    def decides(self) -> bool:
        return False

    def recorded(self, report: pytest.TestReport, record: dict) -> None:
        pass  # the controller records the row again, and calls the hook there

    def stop(self, message: str, code: pytest.ExitCode):
        """pytest.exit would look like a crash to the controller: fail this item and ask the session to stop;
        the reason and exit status reach the controller in workeroutput."""
        execution = self.run.execution
        if execution.stopped is None:
            execution.stopped = Stop(message, int(code))
        if self.session is not None:
            self.session.shouldstop = f"editeval: {message}"
            pytest.fail(f"editeval: {message}", pytrace=False)
        pytest.exit(f"editeval: {message}", returncode=code)

    def finish(self, session: pytest.Session) -> None:
        from pytest_editeval.pytest_plugin.xdist import report_to_controller

        report_to_controller(self.config, self.run)

    def summary(self, terminalreporter) -> None:
        pass

    def no_items(self) -> bool:
        return False


def choose(config: pytest.Config) -> SingleProcess:
    """The role of this process, decided once."""
    if getattr(config, "workerinput", None) is not None:
        return Worker(config)
    if (getattr(config.option, "dist", "no") or "no") != "no":
        return Controller(config)
    return SingleProcess(config)
