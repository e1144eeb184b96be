"""Hooks for people who extend pytest-editeval: implement them in a `conftest.py` (or a plugin) by name, as any
pytest hook. The plugin registers these specifications in `pytest_addhooks`; a hook no one implements costs
nothing.

What a hook is given is a copy in the shapes of the results JSON (docs: Reference > Results JSON): the run's
results, one row's sample, the judge as `judge` names it. Never the run's own objects, never a secret (the judge's
description carries no key and no URL query). A hook that raises is one line naming the hook, the file it lives in
and the error; what the run computed is kept, and the run fails (see each hook).

Only a pytest run calls them: `pytest-editeval merge` and `pytest-editeval compare` load no conftest.py. A merged
run's results JSON keeps the `extra` fields every shard gave with the same value.

Imported by the plugin's entry point in every pytest run: it imports pytest alone.
"""

from __future__ import annotations

import pytest


@pytest.hookspec
def pytest_editeval_results_json(config: pytest.Config, results: dict) -> dict | None:
    """Fields to add to the results JSON, under its `extra` object, before the file is written.

    Called once on the process that writes the files (the xdist controller), when the run writes a results
    file (`--editeval-json`, `--editeval-save` or `--editeval-html`). `results` is the file's content as a dict
    (a copy: changing it changes nothing). Return a dict of JSON values, or None. Two implementations giving
    the same field, a value that is not JSON, or a raise: one line in the summary, the file is written without
    the hook's fields, and the run fails (exit status 1).
    """


@pytest.hookspec
def pytest_editeval_summary_lines(config: pytest.Config, results: dict) -> list[str] | None:
    """Lines to add to the editeval section of the terminal summary, shown just before the gate's verdict.

    Called once on the process that prints the summary (the xdist controller). `results` is the run's results
    JSON as a dict (a copy), the same whether a file is written or not. Return a list of strings, or None. A
    raise, or something other than a list of strings: one line in the summary, and the run fails (exit 1).
    """


@pytest.hookspec
def pytest_editeval_verdict(config: pytest.Config, verdict: dict) -> None:
    """Called with each benchmark row's verdict, once per row, on the process that records it (the xdist
    controller, as each worker's report arrives; the run's own process otherwise).

    `verdict` is the row's sample as the results JSON will hold it (id, key, subset, status, error, scores,
    answers, ...; a copy); a row without an edited image comes with status "missing" (the results list its id
    under `missing`). Rows that do not run (deselected, or after a stop) have no call, and neither have the
    `editeval_result` fixture's slices. A raise (or `pytest.fail`) fails that row's test item with one line;
    its verdict still counts in the results and the gate.
    """


@pytest.hookspec
def pytest_editeval_judge_created(config: pytest.Config, name: str, description: dict) -> None:
    """Called when the run creates a judge: once for a single judge (`name` is ""), once per member of a panel
    (`name` is the member's name), on the process that creates it (each xdist worker creates its own).

    `description` is the judge as the results JSON's `judge` names it (backend, model, endpoint without
    credentials or query, recipe, generation parameters; a copy). A raise refuses the run before any question
    is asked: one line, exit status 4, as any other bad judge setting.
    """
