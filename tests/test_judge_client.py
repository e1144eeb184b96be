"""The HTTP client against a real loopback server: retries, fatal errors, re-asks, request parameters."""

import time

import pytest

from pytest_editeval.errors import JudgeFatalError, SampleError
from pytest_editeval.judges.openai_http import JudgeClient
from pytest_editeval.judges.settings import JudgeSettings
from pytest_editeval.testing import JudgeServer
from pytest_editeval.testing.judge_server import Fault

from .rows import ask, requests_for_row
from .test_judge_requests import _png

KEY = "sk-client-test"


@pytest.fixture
def server():
    with JudgeServer(api_key=KEY) as s:
        yield s


def _client(server, **overrides):
    settings = dict(url=server.url, model="judge-x", api_key=KEY, timeout_s=2.0, retries=3, backoff_s=0.01)
    settings.update(overrides)
    return JudgeClient(JudgeSettings(**settings))


def _request(protocol="official"):
    return requests_for_row(protocol, "make the car red", (_png((16, 16)), _png((16, 16))))[0]


def test_official_request_parameters(server):
    parsed, raw = ask(_client(server), _request())
    body = server.calls[0].body
    assert body["model"] == "judge-x" and body["max_tokens"] == 1400 and "temperature" not in body
    assert server.calls[0].authorized and server.calls[0].text_first
    assert parsed.values and raw.startswith("{")


@pytest.mark.parametrize("fault", [
    Fault("status", 429), Fault("status", 429, headers={"Retry-After": "0"}), Fault("status", 503),
    Fault("status", 500), Fault("drop"), Fault("garbage"), Fault("hang", seconds=3.0),
])
def test_transient_faults_are_retried(server, fault):
    server.faults.extend([fault, fault])
    parsed, _ = ask(_client(server, timeout_s=0.5), _request())
    assert parsed.values
    assert server.count == 3


def test_retry_after_is_honoured(server):
    server.faults.append(Fault("status", 429, headers={"Retry-After": "1"}))
    start = time.monotonic()
    ask(_client(server), _request())
    assert time.monotonic() - start >= 0.95


def test_retries_are_bounded_and_become_a_row_error(server):
    server.faults.extend([Fault("status", 503)] * 10)
    with pytest.raises(SampleError, match=r"failed after 4 attempts: HTTP 503"):
        ask(_client(server), _request())
    assert server.count == 4


def test_wrong_key_stops_at_once(server):
    client = JudgeClient(JudgeSettings(url=server.url, model="m", api_key="wrong", backoff_s=0.01))
    with pytest.raises(JudgeFatalError, match=r"HTTP 401 from http://127\.0\.0\.1:\d+/v1/chat/completions") as info:
        ask(client, _request())
    assert info.value.usage and server.count == 1
    assert "wrong" not in str(info.value)


def test_wrong_url_is_a_404_that_stops_at_once(server):
    with pytest.raises(JudgeFatalError, match=r"HTTP 404 .*/v1/wrong/chat/completions \(model 'judge-x'\)"):
        ask(_client(server, url=server.url + "/wrong"), _request())
    assert server.count == 0  # the server's router answered 404 before recording a call


def test_unreachable_judge_is_fatal_quickly():
    with JudgeServer() as s:
        port = s.port
    client = JudgeClient(JudgeSettings(url=f"http://127.0.0.1:{port}/v1", model="m", api_key="k", backoff_s=0.01))
    start = time.monotonic()
    with pytest.raises(JudgeFatalError, match="judge unreachable") as info:
        ask(client, _request())
    assert not info.value.usage
    assert time.monotonic() - start < 5


def test_unreadable_reply_is_re_asked_then_an_error(server):
    server.faults.extend([Fault("reply", text="I'd rather not say.")] * 3)
    with pytest.raises(SampleError, match="unreadable after 3 attempts"):
        ask(_client(server, parse_retries=2), _request())
    assert server.count == 3


def test_unreadable_then_readable_reply(server):
    server.faults.append(Fault("reply", text='{"score": [42, 1]}'))
    parsed, _ = ask(_client(server), _request())
    assert parsed.values and server.count == 2


def test_content_filter_400_is_a_row_error_not_retried(server):
    server.faults.append(Fault("status", 400))
    with pytest.raises(SampleError, match="HTTP 400"):
        ask(_client(server), _request())
    assert server.count == 1


def test_row_deadline_bounds_a_hanging_judge(server):
    server.faults.extend([Fault("hang", seconds=5)] * 5)
    start = time.monotonic()
    with pytest.raises(SampleError):
        ask(_client(server, timeout_s=0.3, retries=10, row_deadline_s=1.0), _request())
    assert time.monotonic() - start < 2.5


def test_evalscope_defaults_are_sent_when_configured(server):
    ask(_client(server, max_tokens=4096, temperature=0.0), _request("evalscope"))
    body = server.calls[0].body
    assert body["max_tokens"] == 4096 and body["temperature"] == 0.0
    assert not server.calls[0].text_first
