"""A pytest plugin for testing with pytest-editeval without a network: a loopback judge and benchmark-shaped data.

Load it from a conftest.py (`pytest_plugins = ["pytest_editeval.testing.fixtures"]`) or with
`-p pytest_editeval.testing.fixtures`. Fixtures:

- `editeval_judge`: a loopback judge (JudgeServer, GEdit's scoring rule) listening on 127.0.0.1 for the test and
  stopped at its teardown. Pass `editeval_judge.url` as --editeval-judge-url and `editeval_judge.api_key` as
  EDITEVAL_JUDGE_API_KEY; `editeval_judge.calls` holds what it was asked, `.faults` queues failures.
- `editeval_judge_for`: `editeval_judge_for("kris", latency=0.1)` starts one that answers by that benchmark's rule
  (keyword arguments go to JudgeServer); each is stopped at the test's teardown.
- `editeval_dataset`: `editeval_dataset("imgedit", rows_per_type=1)` writes a small dataset shaped like the
  benchmark's and edited images for it under the test's tmp_path (make_dataset; keyword arguments go to the
  benchmark's writer), and returns a MadeDataset (`.options()`, `.rows`, `.judge()`).

For a whole run (`pytest-editeval demo` writes this): the ini setting `editeval_loopback_judge = BENCHMARK` starts
that benchmark's loopback judge before the run, on the port of the run's judge URL (http://127.0.0.1:PORT/v1), and
stops it after; it accepts any API key and, where none is set, sets EDITEVAL_JUDGE_API_KEY for the run.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import pytest

from pytest_editeval.testing.datasets import dataset_writer, make_dataset
from pytest_editeval.testing.judge_server import JudgeServer

LOOPBACK_KEY = "loopback-key"
LOOPBACK_INI = "editeval_loopback_judge"


@pytest.fixture
def editeval_judge_for(request):
    started: list[JudgeServer] = []

    def start(benchmark: str = "gedit", **server_options) -> JudgeServer:
        writer = dataset_writer(benchmark, request.config.rootpath)
        judge = writer.judge(**{"api_key": LOOPBACK_KEY, **server_options})
        started.append(judge.up())
        return judge

    yield start
    for judge in started:
        judge.down()


@pytest.fixture
def editeval_judge(editeval_judge_for) -> JudgeServer:
    return editeval_judge_for("gedit")


@pytest.fixture
def editeval_dataset(tmp_path_factory, request):
    def write(benchmark: str, **writer_options):
        folder = tmp_path_factory.mktemp(f"{benchmark}-dataset")
        return make_dataset(benchmark, folder, rootpath=request.config.rootpath, **writer_options)

    return write


# ---- a loopback judge for a whole run ---------------------------------------------------------------------------
def pytest_addoption(parser) -> None:
    parser.addini(LOOPBACK_INI, "start this benchmark's loopback test judge for the run, on the port of "
                  "editeval_judge_url (http://127.0.0.1:PORT/v1); for trying the gate without a real judge", default="")


@pytest.hookimpl(tryfirst=True)  # before pytest-editeval's own configure reads the judge's settings
def pytest_configure(config) -> None:
    benchmark = (config.getini(LOOPBACK_INI) or "").strip()
    if not benchmark or hasattr(config, "workerinput"):  # one judge for the whole run, also under xdist
        return
    judge = _run_judge(config, benchmark)
    try:
        judge.up()
    except OSError as exc:
        raise pytest.UsageError(
            f"{LOOPBACK_INI}: cannot listen on 127.0.0.1:{judge.port} ({exc.strerror or exc}): another run may be "
            "using it; wait for it, or change the port in editeval_judge_url") from None
    config.stash[_RUN_JUDGE] = judge
    os.environ.setdefault("EDITEVAL_JUDGE_API_KEY", LOOPBACK_KEY)


def pytest_unconfigure(config) -> None:
    judge = config.stash.get(_RUN_JUDGE, None)
    if judge is not None:
        judge.down()


_RUN_JUDGE = pytest.StashKey[JudgeServer]()


def _run_judge(config, benchmark: str) -> JudgeServer:
    from pytest_editeval.errors import InputError
    from pytest_editeval.options.table import value

    try:
        url = value(config, "judge-url") or os.environ.get("EDITEVAL_JUDGE_URL", "")
    except ValueError as exc:  # an ini value that is not a URL: said as pytest-editeval says it
        raise pytest.UsageError(str(exc)) from None
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname != "127.0.0.1" or not parts.port:
        raise pytest.UsageError(f"{LOOPBACK_INI} = {benchmark}: the judge URL must be http://127.0.0.1:PORT/v1 "
                                f"(the loopback judge listens there), not {url or 'unset'}; set editeval_judge_url")
    try:
        writer = dataset_writer(benchmark, config.rootpath)
    except InputError as exc:
        raise pytest.UsageError(f"{LOOPBACK_INI}: {exc}") from None
    # The port stays fixed: the judge's endpoint is part of every cache key, so a re-run is answered from the cache.
    return writer.judge(api_key="", latency=0.05, port=parts.port)
