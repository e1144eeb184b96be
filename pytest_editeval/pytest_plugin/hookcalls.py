"""Calling the extension hooks of hookspecs.py for the run: nothing is built or copied when no plugin implements a
hook; each hook gets a copy (what it changes never reaches the run); and a hook that raises, or returns what its
specification does not allow, becomes one HookFailed line naming the hook, the file it lives in and the error.
The callers decide what a failure does (hookspecs.py says it per hook)."""

from __future__ import annotations

import copy
import json
from pathlib import Path


class HookFailed(Exception):
    """One line: which hook, where it lives, what went wrong."""


def implemented(config, name: str) -> bool:
    hook = getattr(config.hook, name, None)
    return hook is not None and bool(hook.get_hookimpls())


def results_fields(config, results: dict) -> dict:
    """The `extra` fields of the results JSON, from every implementation of pytest_editeval_results_json."""
    name = "pytest_editeval_results_json"
    fields: dict = {}
    for returned in _call(config, name, results=copy.deepcopy(results)):
        if not isinstance(returned, dict) or not all(isinstance(k, str) for k in returned):
            raise HookFailed(f"{_named(config, name)} returned {type(returned).__name__}, not a dict of fields")
        for key, value in returned.items():
            if key in fields:
                raise HookFailed(f"{_named(config, name)}: two implementations give the field {key!r}")
            try:
                json.dumps(value, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise HookFailed(f"{_named(config, name)} returned a value that is not JSON ({key}: {exc})") from None
            fields[key] = value
    return fields


def summary_lines(config, results: dict) -> list[str]:
    name = "pytest_editeval_summary_lines"
    lines: list[str] = []
    for returned in _call(config, name, results=copy.deepcopy(results)):
        if not isinstance(returned, (list, tuple)) or not all(isinstance(line, str) for line in returned):
            raise HookFailed(f"{_named(config, name)} returned {type(returned).__name__}, not a list of strings")
        lines.extend(returned)
    return lines


def verdict(config, record: dict) -> None:
    if implemented(config, "pytest_editeval_verdict"):
        _call(config, "pytest_editeval_verdict", verdict=copy.deepcopy(record))


def judge_created(config, name: str, description: dict) -> None:
    if implemented(config, "pytest_editeval_judge_created"):
        _call(config, "pytest_editeval_judge_created", name=name, description=copy.deepcopy(description))


def _call(config, hook_name: str, **kwargs) -> list:
    from pytest import fail  # pytest.fail in a hook: the user's own way to say "this fails"

    try:
        return getattr(config.hook, hook_name)(config=config, **kwargs)
    except fail.Exception as exc:
        raise HookFailed(f"{_named(config, hook_name, exc)} failed: {_first_line(exc)}") from None
    except Exception as exc:
        raise HookFailed(f"{_named(config, hook_name, exc)} raised {type(exc).__name__}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "(no message)"


def _named(config, name: str, exc: BaseException | None = None) -> str:
    """'hook NAME in FILE': the implementation the traceback went through (the first one without a traceback)."""
    impls = getattr(config.hook, name).get_hookimpls()
    by_code = {impl.function.__code__: impl for impl in impls if hasattr(impl.function, "__code__")}
    found = None
    tb = exc.__traceback__ if exc is not None else None
    while tb is not None:
        found = by_code.get(tb.tb_frame.f_code, found)
        tb = tb.tb_next
    impl = found or (impls[-1] if len(impls) == 1 else None)
    if impl is None:
        return f"hook {name}"
    module = getattr(impl.plugin, "__file__", None)
    return f"hook {name} in {Path(module) if module else impl.plugin_name}"


class ConftestHooks:
    """The extension hooks of one pytest session, with what a failure does: a failed results or summary hook adds
    nothing and is remembered (said in the summary; the run fails), a refused judge stops the run (InputError)."""

    def __init__(self, config) -> None:
        self.config = config
        self.failures: list[str] = []

    def judge_created(self, name: str, description: dict) -> None:
        """A hook that raises refuses the judge: the run does not start (InputError, one usage line)."""
        from pytest_editeval.errors import InputError

        try:
            judge_created(self.config, name, description)
        except HookFailed as exc:
            raise InputError(str(exc)) from None

    def verdict(self, record: dict) -> None:
        verdict(self.config, record)

    def results_fields(self, results) -> dict:
        """The results JSON's `extra` fields (pytest_editeval_results_json) for the RunResults `results`."""
        if not implemented(self.config, "pytest_editeval_results_json"):
            return {}
        try:
            return results_fields(self.config, results.model_dump(mode="json"))
        except HookFailed as exc:
            self.failures.append(f"editeval: {exc}; the results were written without its fields")
            return {}

    def summary_lines(self, results) -> list[str]:
        """pytest_editeval_summary_lines; `results()` builds the RunResults only when a hook is implemented."""
        if not implemented(self.config, "pytest_editeval_summary_lines"):
            return []
        try:
            return summary_lines(self.config, results().model_dump(mode="json"))
        except HookFailed as exc:
            self.failures.append(f"editeval: {exc}")
            return []
