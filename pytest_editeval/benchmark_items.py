"""The benchmark's test function. Each selected row becomes one parametrized item of `test_edit`
(parametrized indirectly through the `editeval_sample` fixture in `pytest_generate_tests`), collected under a
virtual module `editeval_<benchmark>` in the folder pytest was started from, so that fixtures in that
folder's conftest.py apply to these items too."""

import pytest


def test_edit(editeval_verdict):
    """A low score does not fail the row (the gate judges scores); an error does, with its reason."""
    if editeval_verdict.status == "missing":
        pytest.skip(editeval_verdict.error)
    if editeval_verdict.status == "error":
        pytest.fail(f"{editeval_verdict.id}: {editeval_verdict.error}", pytrace=False)
