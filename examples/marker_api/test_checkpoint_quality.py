"""Thresholds in your own test suite. Each marker names a slice of the benchmark; the slice is evaluated once
per session (and read from the cache on later sessions) and shared by every test that names it.

Run:  pytest test_checkpoint_quality.py --editeval-images=outputs/edits.jsonl --editeval-judge-url=...
(or --editeval-model=... for model mode); the judge key comes from EDITEVAL_JUDGE_API_KEY.
"""

import pytest

COLOR_AND_TEXT = pytest.mark.editeval(benchmark="gedit", subsets=["color_alter", "text_change"], limit=4)


@COLOR_AND_TEXT
def test_headline_quality(editeval_result):
    assert editeval_result.score("overall") >= 2.0
    assert editeval_result.score("perceptual_quality", averaging="micro") >= 2.0


@COLOR_AND_TEXT
def test_color_edits_follow_the_instruction(editeval_result):
    assert editeval_result.score("semantic_consistency", subset="color_alter") >= 1.0


@COLOR_AND_TEXT
def test_judge_could_read_every_row(editeval_result):
    assert not editeval_result.errors, [f"{v.id}: {v.error}" for v in editeval_result.errors]
