import pytest

from pytest_editeval.judges.replies import UnreadableReply, parse_reply


@pytest.mark.parametrize("text, scores", [
    ('{"score": [7, 8], "reasoning": "ok"}', [7, 8]),
    ('{\n"score" : [6.5, 9.0],\n"reasoning" : "..."\n}', [6.5, 9.0]),
    ('||V^=^V||\n{"score": [3, 4], "reasoning": "r"}\n||V^=^V||', [3, 4]),
    ('Here you go:\n```json\n{"score": [5, 10], "reasoning": "fine"}\n```', [5, 10]),
    ('```\n{"score": [1, 2]}\n```', [1, 2]),
    ('After looking at both images, my answer is {"score": [8, 2], "reasoning": "too much"} as requested.', [8, 2]),
    ("[6, 0]", [6, 0]),
    ("  [6.5 , 7.25] ", [6.5, 7.25]),
    ("7", [7]),
    ("7.5", [7.5]),
    ('{"score": 9, "reasoning": "single"}', [9]),
    ('{"score": ["8", "9"]}', [8, 9]),
    ('{"Score": [4, 4]}', [4, 4]),
    # broken JSON (unescaped quote in the reasoning) but a readable score list
    ('{"score": [7, 3], "reasoning": "the "cat" is blue"}', [7, 3]),
    ('The scores are: score = [2, 9]. Reasoning: ...', [2, 9]),
    ('{"score": [0, 10], "reasoning": "颜色已改变"}', [0, 10]),
])
def test_every_reply_shape_is_read(text, scores):
    assert parse_reply(text).scores == [float(s) for s in scores]


def test_reasoning_is_kept():
    assert parse_reply('{"score": [7, 8], "reasoning": "looks right"}').reasoning == "looks right"


@pytest.mark.parametrize("text, why", [
    ("", "empty"),
    (None, "empty"),
    ("I cannot evaluate these images.", "no score"),
    ('{"reasoning": "no score key"}', "no score"),
    ('{"score": [11, 5]}', "out of range"),
    ('{"score": [-1, 5]}', "out of range"),
    ("[12]", "out of range"),
    ('{"score": []}', "no score"),
    ('{"score": [true, false]}', "no score"),
    ("Maybe [1, 2] or maybe [3, 4].", "no score"),  # two candidate lists: ambiguous, never guessed
])
def test_unreadable_replies_raise(text, why):
    with pytest.raises(UnreadableReply, match=why):
        parse_reply(text)
