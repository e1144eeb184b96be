"""`pytest-editeval demo FOLDER`: the whole flow on your own machine, with no key, no GPU and no network.

It writes a small GEdit-shaped dataset, edited images for its English rows, a `pytest.ini` that names them, and a
`conftest.py` that starts the loopback test judge (a real OpenAI-compatible server on 127.0.0.1 that scores by
a fixed rule) for the run. Then `cd FOLDER && pytest` runs the gate as it would run against a real judge.
"""

from __future__ import annotations

from pathlib import Path

CONFTEST = '''"""Starts the loopback test judge of pytest-editeval for this demo (replace it with a real judge: delete this
file and set EDITEVAL_JUDGE_URL and EDITEVAL_JUDGE_API_KEY)."""

import os

import pytest

from pytest_editeval.testing import JudgeServer

_judge = JudgeServer(api_key="demo-key", latency=0.05)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    if not hasattr(config, "workerinput"):  # one judge for the whole run, also under xdist
        _judge.up()
        os.environ["EDITEVAL_JUDGE_URL"] = _judge.url
    os.environ.setdefault("EDITEVAL_JUDGE_API_KEY", "demo-key")


def pytest_unconfigure(config):
    _judge.down()
'''

PYTEST_INI = """[pytest]
editeval_benchmark = gedit
editeval_dataset = dataset
editeval_images = my-model/edits.jsonl
editeval_judge_model = demo-judge
editeval_html = report.html
editeval_json = results.json
editeval_thresholds =
    overall>=3.0
    error_rate<=0.02
"""


def write_demo(folder: Path, rows_per_subset: int = 4) -> Path:
    from .gedit_factory import make_gedit_dataset, write_edited_images

    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()):
        raise FileExistsError(f"{folder} is not empty: pick a new folder for the demo")
    rows = make_gedit_dataset(folder / "dataset", rows_per_subset=rows_per_subset, size=(64, 64))
    write_edited_images(folder / "my-model", [r for r in rows if r.language == "en"], scale=1.5)
    (folder / "conftest.py").write_text(CONFTEST, encoding="utf-8")
    (folder / "pytest.ini").write_text(PYTEST_INI, encoding="utf-8")
    return folder
