"""Secrets never appear in output, reports, caches or files: not a key pasted into the URL's variable, not a URL's
password, not a key a judge echoes back (in a reply it stores, or in an error excerpt across its cut); and a URL's
user:password is never sent in place of the key."""

from __future__ import annotations

import json

import pytest

from pytest_editeval.judges.settings import JudgeSettings
from pytest_editeval.testing.judge_server import Fault

from .conftest import API_KEY, output_of

PASTED_KEY = "sk-proj-PASTEDKEY0123456789abcdefXYZ"
PASSWORD = "hunter2-PASSWORD-93ab"


def _everything_written(*folders) -> list:
    return [p for folder in folders for p in folder.rglob("*") if p.is_file()]


def _assert_nowhere(secret: str, result, *folders) -> None:
    assert secret not in output_of(result)
    for path in _everything_written(*folders):
        assert secret.encode() not in path.read_bytes(), path


@pytest.mark.parametrize("where", ["environment", "option"])
@pytest.mark.parametrize("value, shown", [
    (PASTED_KEY, "the value (36 characters, not shown: it may be a key) is not an http(s) URL"),
    (f"htps://user:{PASSWORD}@judge.example.com/v1", "'htps://judge.example.com/v1' is not an http(s) URL"),
    (f"https//{PASSWORD}@judge.example.com/v1", "characters, not shown: it may be a key) is not an http(s) URL"),
    (f"https://judge.example.com:{PASSWORD}/v1", "not a valid URL: Port is not a number"),
])
def test_a_value_that_is_not_a_url_is_never_printed_whole(pytester, gedit, edits, monkeypatch, where, value, shown):
    monkeypatch.setenv("EDITEVAL_JUDGE_API_KEY", API_KEY)
    args = ["--editeval-benchmark=gedit", f"--editeval-dataset={gedit[0]}", f"--editeval-images={edits}",
            "-p", "no:cacheprovider"]
    if where == "environment":
        monkeypatch.setenv("EDITEVAL_JUDGE_URL", value)
    else:
        monkeypatch.delenv("EDITEVAL_JUDGE_URL", raising=False)
        args.append(f"--editeval-judge-url={value}")
    result = pytester.runpytest(*args)
    text = output_of(result)
    assert result.ret == 4, text
    assert shown in text and "Traceback" not in text
    for secret in (PASTED_KEY, PASSWORD):
        assert secret not in text


def test_a_url_with_a_password_is_refused_before_anything_is_sent(run, judge, tmp_path, pytester):
    url = judge.url.replace("http://", f"http://user:{PASSWORD}@")
    result = run(f"--editeval-judge-url={url}")
    text = output_of(result)
    assert result.ret == 4, text
    assert (f"judge URL {judge.url}/chat/completions has a user:password part: it would be sent as Basic "
            "credentials in place of the API key") not in text  # the URL is shown as given, without the password
    assert f"judge URL {judge.url} has a user:password part: it would be sent as Basic credentials" in text
    assert judge.count == 0
    _assert_nowhere(PASSWORD, result, tmp_path, pytester.path)


def test_a_key_echoed_by_the_judge_is_stored_nowhere(run, judge, tmp_path, pytester):
    # A judge (or a proxy in front of it) that puts the request's Authorization header in its answers: in the
    # replies that score, and in a 400's body where the key sits across the excerpt's cut.
    judge.reply = lambda scores, call: json.dumps({"score": [int(s) for s in scores],
                                                   "reasoning": f"request had Authorization: Bearer {API_KEY}"})
    # The excerpt was cut from the first 640 characters before redaction: the key minus its last character got out.
    echo_at_the_cut = " " * 620 + API_KEY + " and more"
    judge.faults.append(Fault("status", 400, text=echo_at_the_cut))
    cache, out, html = tmp_path / "cache", tmp_path / "echo.json", tmp_path / "echo.html"
    result = run("--editeval-subsets=color_alter", f"--editeval-json={out}", f"--editeval-html={html}",
                 "--editeval-save=echo", cache_dir=cache)
    text = output_of(result)
    result.stdout.fnmatch_lines(["rows: 3 scored, 1 errors, 0 missing*"])
    assert "judge refused the request: HTTP 400: '*** and more'" in text
    data = json.loads(out.read_text())
    replies = [a["reply"] for s in data["samples"] for a in (s.get("answers") or {}).values()]
    assert replies and all("Authorization: Bearer ***" in r for r in replies)
    assert list(cache.rglob("*.json")) and html.is_file()
    for secret in (API_KEY, API_KEY[:-1], API_KEY[:-2]):
        _assert_nowhere(secret, result, tmp_path, pytester.path)


def test_a_placeholder_key_is_not_redacted_from_replies_but_a_real_one_is():
    def settings(key):
        return JudgeSettings(url="http://127.0.0.1:8000/v1?sig=QUERYSECRET", model="m", api_key=key)

    reply = '{"score": [1, 5], "reasoning": "ok"} sk-real-key-0123456789 QUERYSECRET'
    assert settings("1").redact(reply) == '{"score": [1, 5], "reasoning": "ok"} sk-real-key-0123456789 ***'
    assert settings("sk-real-key-0123456789").redact(reply) == '{"score": [1, 5], "reasoning": "ok"} *** ***'
