"""Fixtures of the plugin (loaded through `pytest_plugins` of the entry point; they import nothing heavy)."""

from __future__ import annotations

import pytest

from pytest_editeval.pytest_plugin.state import PLUGIN_KEY, SLICES_KEY, VERDICT_KEY


@pytest.fixture
def editeval_sample(request):
    """The benchmark row of this item (parametrized by the plugin under --editeval-benchmark)."""
    if not hasattr(request, "param"):
        raise pytest.UsageError("editeval_sample is given only to items parametrized by --editeval-benchmark")
    return request.param


@pytest.fixture
def editeval_verdict(request, editeval_sample):
    """This row's Verdict: judged ahead by the scheduler, or read from the cache."""
    plugin = request.config.stash[PLUGIN_KEY]
    verdict = plugin.verdict_for(editeval_sample, request)
    request.node.stash[VERDICT_KEY] = verdict
    return verdict


@pytest.fixture(scope="session")
def editeval_pipeline(request):
    """The image editor of model mode: by default the diffusers pipeline of --editeval-model, loaded once per
    process, the first time an image must actually be generated, and released at the end of the session.

    Override it in your conftest.py with any callable `(image, instruction, seed) -> PIL.Image` for models
    that are not diffusers pipelines (give it an `editeval_identity` dict to have its images cached)."""
    plugin = request.config.stash.get(PLUGIN_KEY, None)
    if plugin is None or plugin.run.plan.generation is None or not plugin.run.plan.generation.model:
        raise pytest.UsageError("editeval_pipeline needs --editeval-model (or override this fixture)")
    editor = plugin.run.execution.load_editor()
    yield editor
    editor.release()


@pytest.fixture
def editeval_result(request):
    """The result of the benchmark slice named by this test's @pytest.mark.editeval(...): evaluated once per
    session (and answered from the cache on later sessions), shared by every test with the same marker."""
    import json

    from pytest_editeval.errors import EditEvalError
    from pytest_editeval.pytest_plugin.session import evaluate_slice

    marker = request.node.get_closest_marker("editeval")
    if marker is None:
        pytest.fail("editeval_result needs @pytest.mark.editeval(benchmark='gedit', ...) on the test (or imgedit, "
                    "kris, a declared benchmark)", pytrace=False)
    key = json.dumps(marker.kwargs, sort_keys=True, default=str)
    slices = request.config.stash.setdefault(SLICES_KEY, {})
    if key not in slices:
        try:
            slices[key] = evaluate_slice(request, dict(marker.kwargs))
        except EditEvalError as exc:
            pytest.fail(f"editeval: {exc}", pytrace=False)
    return slices[key]


@pytest.fixture(scope="session")
def editeval_judge(request):
    """A judge for your own tests: `editeval_judge(sample, image)` scores a PIL image (or an image file) as
    an edit of `sample` (an `editeval_sample`) and returns its Verdict. Override it to use another judge."""
    from pytest_editeval.pytest_plugin.session import make_judge

    return make_judge(request)


@pytest.fixture
def editeval_source_image(request, editeval_sample):
    """The current row's source image (`input_image`, RGB), for tests that edit it themselves."""
    return request.config.stash[PLUGIN_KEY].run.execution.source_image(editeval_sample)
