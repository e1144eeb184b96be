"""No reply can crash a row or leave a run ungated: every byte string a judge can send is either a reading or a
counted error row with a one-line reason. Property-based over the reply readers of every benchmark and over the
HTTP layer's reading of a body; then the specific replies that crashed, end to end against a loopback judge."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pytest_editeval import benchmarks
from pytest_editeval.benchmarks import kris_official
from pytest_editeval.benchmarks.kris_official import QUESTION_METRICS, RAW_MAX, RAW_MIN
from pytest_editeval.errors import SampleError
from pytest_editeval.judges import Answer
from pytest_editeval.judges.openai_http import JudgeClient, _Reply
from pytest_editeval.judges.replies import UnreadableReply, read_reply
from pytest_editeval.judges.requests import Question
from pytest_editeval.judges.settings import JudgeSettings
from pytest_editeval.testing.judge_server import judge_call

from .conftest import output_of

PROPERTY = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Pieces of the shapes the readers look for, so that generated texts reach their deeper branches.
_PIECES = ["[", "]", "{", "}", "(", ")", '"', "'", ":", ": ", ",", " ", "\n", "\\", "0", "1", "3", "5", "7.5", "-1",
           "10", "25", "1e400", "-1e400", "NaN", "Infinity", "nan", "inf", "²", "٣", "true", "null", '"score"',
           "score", "Score: ", "||V^=^V||", "```json", "```", "/5", " out of 5", "consistency_score",
           "quality_score", "instruction_score", "knowledge_score", "Consistency score: ", "Instruction score:",
           "Knowledge score: ", '"reasoning": ', "\ud800", "\x00", "\u202e"]
hostile_texts = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(blacklist_categories=())),  # lone surrogates included (a JSON "\ud800")
    st.lists(st.sampled_from(_PIECES), max_size=60).map("".join),
    st.binary().map(lambda raw: raw.decode("utf-8", errors="replace")),
    # what a looping model produces: deep nesting, alone or around a score
    st.tuples(st.sampled_from(["[", "{", '{"score": ', '{"score": [', "[[", '{"a": ']), st.integers(500, 6000),
              st.sampled_from(["", "5", "5]", '"score": [5, 5]}', "]" * 10])).map(lambda t: t[0] * t[1] + t[2]),
)

_ROOT = Path(__file__).parent


def _readers():
    """(name, benchmark, question) for every question shape of every built-in benchmark and judge recipe."""
    out = []
    for name in benchmarks.known_names(_ROOT):
        bench = benchmarks.get(name, _ROOT)
        recipes = [r.name for r in bench.judge_recipes] or [None]
        for recipe in recipes:
            instance = bench.with_judge_recipe(recipe) if recipe else bench
            names = list(QUESTION_METRICS) if name == "kris" else ["semantic_consistency", "perceptual_quality"] \
                if bench.judge_recipes else ["judge"]
            out += [(f"{name}/{recipe or 'own'}/{q}", instance, Question(q, ())) for q in names]
    return out


READERS = _readers()


def _check_reading(bench, question, parsed) -> None:
    """A reading is only ever finite numbers in the benchmark's range (never a guess, never nan)."""
    values = parsed.values
    if isinstance(values, dict):
        assert {m.lower() for m in values} <= {m.lower() for m in QUESTION_METRICS[question.name]}
        assert any(v is not None for v in values.values())
        assert all(v is None or (isinstance(v, int) and RAW_MIN <= v <= RAW_MAX) for v in values.values())
    else:
        assert values and all(isinstance(v, (int, float)) and math.isfinite(v) and v >= 0 for v in values)


def test_every_built_in_benchmark_has_a_reader_here():
    assert {name.split("/")[0] for name, _, _ in READERS} >= {"gedit", "imgedit", "imgedit-uge", "kris"}


@pytest.mark.parametrize("name, bench, question", READERS, ids=[r[0] for r in READERS])
@PROPERTY
@given(text=hostile_texts)
@example(text="[" * 5000)
@example(text="{" * 5000)
@example(text='{"score": ' + "[" * 3000 + "5" + "]" * 3000 + "}")
@example(text="[" * 900 + "5" + "]" * 900)
@example(text="Score: 5" + "\ud800")
def test_every_reply_is_a_reading_or_unreadable(name, bench, question, text):
    try:
        parsed = bench.parse(question, text)
    except UnreadableReply as exc:
        assert str(exc) and "\n" not in str(exc)[:200].strip("\n") or len(str(exc)) < 400
        return
    _check_reading(bench, question, parsed)


@pytest.mark.parametrize("text", ["[" * 5000, "[" * 100_000, '{"score": [' + "[" * 5000])
def test_the_gedit_reader_says_a_deeply_nested_reply_is_unreadable(text):
    with pytest.raises(UnreadableReply, match="no score list|nested"):
        benchmarks.get("gedit", _ROOT).parse(Question("semantic_consistency", ()), text)


def test_a_reader_that_fails_any_other_way_is_an_unreadable_reply_with_its_reason():
    def broken(text):
        raise TypeError("unsupported operand type(s)")

    with pytest.raises(UnreadableReply, match="the reply reader failed: TypeError: unsupported operand"):
        read_reply(broken, "anything")
    assert read_reply(lambda text: text.upper(), "ok") == "OK"


# ---- the HTTP layer: any body a judge sends ------------------------------------------------------------------
def _client() -> JudgeClient:
    return JudgeClient(JudgeSettings(url="http://127.0.0.1:9/v1", model="m", api_key="sk-property-test-key-123456"))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["text", "type", "content", "x"]),
                                                                 inner, max_size=4),
    max_leaves=12)
content_values = st.one_of(json_values, st.lists(st.dictionaries(st.sampled_from(["type", "text"]), json_values)))


def _completion(content) -> bytes:
    return json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()


def _assert_read(outcome) -> None:
    if isinstance(outcome, Answer):
        assert isinstance(outcome.text, str)
        outcome.text.encode("utf-8")  # storable as it is: no lone surrogate reaches the cache or the JSON
    else:
        reason, retry_after = outcome
        assert isinstance(reason, str) and retry_after is None


@PROPERTY
@given(body=st.one_of(st.binary(max_size=2000), content_values.map(_completion),
                      st.builds(lambda v: json.dumps(v).encode(), json_values)))
@example(body=b"[" * (3 << 20))
@example(body=_completion([{"type": "text", "text": 5}, {"type": "text", "text": {"a": 1}}]))
@example(body=_completion("\ud800 Score: 5"))
@example(body=_completion({"text": "5"}))
def test_every_body_is_an_answer_or_a_counted_fault(body):
    _assert_read(_client()._read(_Reply(200, {}, body)))


@PROPERTY
@given(body=st.binary(max_size=2000), status=st.sampled_from([400, 413, 418, 422]))
def test_every_refusal_body_is_a_one_line_row_error(body, status):
    with pytest.raises(SampleError) as caught:
        _client()._read(_Reply(status, {}, body))
    assert "\n" not in str(caught.value)


def test_content_parts_whose_text_is_not_a_string_are_not_a_crash():
    answer = _client()._read(_Reply(200, {}, _completion([{"type": "text", "text": 5}, {"text": {"a": 1}},
                                                          {"type": "text", "text": "Score: 4"}])))
    assert answer.text == "Score: 4"


def test_a_three_megabyte_nested_body_is_a_body_that_is_not_a_chat_completion():
    reason, _ = _client()._read(_Reply(200, {}, b"[" * (3 << 20)))
    assert reason.startswith("HTTP 200 with a body that is not a chat completion: '[[[[")


def test_kris_reader_reads_a_nested_reply_as_the_official_script_would():
    assert kris_official.parse("VC@common", "[" * 5000 + " consistency score: 4") == {"VC": 4}


# ---- end to end: a run against a loopback judge that sends them ---------------------------------------------
def _hostile(judge, rows):
    """The judge answers the SC question of the first three rows with a hostile reply (by instruction, so the
    rows are the same whatever order the requests arrive in)."""
    ordinary = judge.handle
    nested = json.dumps({"choices": [{"message": {"content": "[" * 5000}}]}).encode()
    parts = json.dumps({"choices": [{"message": {"content": [{"type": "text", "text": 5},
                                                             {"type": "text", "text": {"score": [9]}}]}}]}).encode()
    hostile = {rows[0].instruction: nested, rows[1].instruction: b"[" * (3 << 20), rows[2].instruction: parts}

    def handle(body, authorized, path="/v1/chat/completions"):
        status, headers, payload, delay, drop = ordinary(body, authorized, path)
        content = body["messages"][0]["content"]
        call = judge_call([p["text"] for p in content if p.get("type") == "text"], [], True, body)
        if status == 200 and call.instruction in hostile:
            return 200, {}, hostile[call.instruction], delay, False
        return status, headers, payload, delay, drop

    judge.handle = handle


def test_hostile_replies_are_counted_error_rows_and_the_gate_is_applied(run, judge, en_rows, tmp_path):
    rows = [r for r in en_rows if r.task_type == "color_alter"]
    _hostile(judge, rows)
    out = tmp_path / "hostile.json"
    result = run("--editeval-subsets=color_alter", "--editeval-judge-retries=0", "--editeval-judge-parse-retries=1",
                 "--editeval-threshold=error_rate<=0.5", "--editeval-threshold=overall>=0", f"--editeval-json={out}")
    text = output_of(result)
    assert result.ret == 1, text
    assert "Traceback" not in text and "RecursionError" not in text and "TypeError" not in text
    assert "PARTIAL RUN" not in text
    result.stdout.fnmatch_lines(["rows: 1 scored, 3 errors, 0 missing*", "FAIL error_rate<=0.5: actual 0.75*",
                                 "PASS overall>=0*"])
    assert "judge reply unreadable after 2 attempts (empty reply)" in text
    assert "HTTP 200 with a body that is not a chat completion: '[[[[" in text
    data = json.loads(out.read_text())
    assert data["complete"] is True and data["gate"]["evaluated"] is True
    errors = {s["id"]: s["error"] for s in data["samples"] if s["status"] == "error"}
    assert len(errors) == 3 and all("\n" not in e for e in errors.values())
