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
    verdict = plugin.verdict_for(editeval_sample)
    request.node.stash[VERDICT_KEY] = verdict
    return verdict
