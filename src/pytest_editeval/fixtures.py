"""Fixtures of the plugin (loaded through `pytest_plugins` of the entry point; they import nothing heavy)."""

from __future__ import annotations

import pytest

from .state import PLUGIN_KEY, VERDICT_KEY


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
    if plugin is None or plugin.settings.generation is None or not plugin.settings.generation.model:
        raise pytest.UsageError("editeval_pipeline needs --editeval-model (or override this fixture)")
    editor = plugin.load_editor()
    yield editor
    editor.release()
