"""Rate limits (openai backend, judges/rate.py): concurrency adapted by AIMD on 429s, Retry-After pausing the whole
client, the provider's x-ratelimit headers pacing it (requests and tokens), an exhausted quota stopping the run.
Whole runs as users start them (pytester) against the loopback judge behind a token bucket; the window's
arithmetic alone with a fake clock."""

import json
import threading

import pytest

from pytest_editeval.judges.openai_http import JudgeClient
from pytest_editeval.judges.rate import INITIAL_WINDOW, Budget, RateControl, Ticket, parse_duration
from pytest_editeval.judges.settings import JudgeSettings
from pytest_editeval.testing import Fault, JudgeServer

from .conftest import API_KEY, output_of


@pytest.mark.parametrize("text, seconds", [("1s", 1.0), ("6m0s", 360.0), ("1h2m3.5s", 3723.5), ("250ms", 0.25),
                                           ("0.5", 0.5), ("20ms", 0.02), ("", None), ("soon", None), ("1x", None)])
def test_reset_durations_as_providers_write_them(text, seconds):
    assert parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_the_window_grows_additively_and_halves_once_per_burst_of_429s():
    clock = Clock()
    control = RateControl(64, clock=clock)
    assert control.window == INITIAL_WINDOW
    first = [control.acquire() for _ in range(8)]
    for ticket in first:  # slow start: one more per answer (the window doubles in a round trip)
        control.release(ticket, 200)
    assert control.window == 16
    burst = [control.acquire() for _ in range(16)]
    for ticket in burst:  # sixteen 429s of requests sent before the first cut: one signal, one halving
        control.release(ticket, 429)
    assert control.window == 8 and control.threshold == 8 and control.cuts == 1
    later = control.acquire()
    control.release(later, 429)  # sent after the cut: a new signal
    assert control.window == 4
    expected = 4.0
    for _ in range(4):  # above the threshold now: one per round trip (1/window per answer)
        ticket = control.acquire()
        control.release(ticket, 200)
        expected += 1 / expected
    assert control.window == pytest.approx(expected, abs=1e-12) and 4.9 < expected < 5
    assert RateControl(64, adaptive=False).window == 64  # fixed: --editeval-judge-workers always


def test_the_bucket_model_never_waits_for_what_can_never_come():
    """Two readings after which the reserve on top of one request could never be met: a bucket of one request,
    and requests that took nothing (timeouts, answered without headers). The wait ends when the bucket has
    refilled, as the provider said; it never waits for ever."""
    one = Budget()
    assert one.update(Ticket(0, 0.0), limit=1, remaining=0, reset_s=60)
    assert 59.9 < one.wait(0.0, sent=1, cost=1.0) <= 60.0  # the provider's own reset
    assert one.wait(60.0, sent=1, cost=1.0) == 0.0
    ten = Budget()
    assert ten.update(Ticket(0, 0.0), limit=10, remaining=9, reset_s=6)  # 1 request / 6 s
    # 9 more requests sent since that reading, none answered with headers (timeouts): the model says the bucket
    # holds at most 1, and it gets there 6 s later.
    assert ten.wait(0.0, sent=10, cost=1.0) == pytest.approx(6.0)
    assert ten.wait(6.0, sent=10, cost=1.0) == 0.0
    # An 11th request sent: more than the bucket holds since the reading. The refill counts against them as it
    # came: 9 + t/6 - 10 >= 1 at t = 12 s.
    assert ten.wait(0.0, sent=11, cost=1.0) == pytest.approx(12.0)
    assert ten.wait(12.0, sent=11, cost=1.0) == 0.0


def test_retry_after_pauses_the_whole_client_not_one_request(run, judge):
    """One 429 with Retry-After 0.6 s at the start: every request waits for it, not only the one that got it (in
    the fixed mode of before, the others go on at once)."""
    judge.latency = 0.05
    for mode, quiet in (("adaptive", True), ("fixed", False)):
        judge.calls.clear()
        judge.faults.append(Fault("status", 429, headers={"Retry-After": "1", "retry-after-ms": "600"}))
        result = run("--editeval-no-cache", f"--editeval-judge-concurrency={mode}")
        assert result.ret == 0, output_of(result)
        limited = judge.calls[0].arrived_at
        during = [c for c in judge.calls[1:] if limited + 0.1 < c.arrived_at < limited + 0.5]
        assert (not during) == quiet, (mode, len(during))


def test_a_rate_limited_run_adapts_and_scores_every_row(run, en_rows, tmp_path):
    """64 workers against 40 requests a second (bursts of 10), 2 samples a question: almost no 429s, every row
    scored exactly as without a limit, and the summary says how the client adapted."""
    reference, limited = tmp_path / "reference.json", tmp_path / "limited.json"
    with JudgeServer(api_key=API_KEY) as free:
        assert run(f"--editeval-judge-url={free.url}", "--editeval-judge-samples=2", "--editeval-no-cache",
                   f"--editeval-json={reference}").ret == 0
    with JudgeServer(api_key=API_KEY, latency=0.1, rate_limit=40, burst=10) as server:
        result = run(f"--editeval-judge-url={server.url}", "--editeval-judge-samples=2", "--editeval-no-cache",
                     "--editeval-judge-workers=64", f"--editeval-json={limited}")
        assert result.ret == 0, output_of(result)
        granted = len(server.granted_at)
        assert granted == 4 * len(en_rows)
        assert server.limited < 0.05 * server.count, (server.limited, server.count)
    scores = [{s["id"]: s["scores"] for s in json.loads(p.read_text())["samples"]} for p in (reference, limited)]
    assert scores[0] == scores[1]
    result.stdout.fnmatch_lines([f"judge: {server.limited} of {server.count} requests answered 429 (rate limit); "
                                 "concurrency adapted between * and * (ended at *)*requests waited for the provider's "
                                 "x-ratelimit budget to refill"])


def test_the_token_headers_pace_the_client():
    """A provider that limits tokens a second: once the client knows what a request costs (the replies' usage), it
    waits for the token budget instead of being refused."""
    text = "judge this edit please " * 40  # about 230 prompt tokens a request (the loopback counts 4 chars a token)
    with JudgeServer(api_key=API_KEY, latency=0.05, scores=lambda call: [8.0, 7.0],
                     token_rate_limit=6000, token_burst=1500) as server:
        client = JudgeClient(JudgeSettings(url=server.url, model="m", api_key=API_KEY, backoff_s=0.2),
                             max_in_flight=32)
        todo = list(range(80))
        lock = threading.Lock()

        def work():
            while True:
                with lock:
                    if not todo:
                        return
                    todo.pop()
                client.complete([{"type": "text", "text": text}])

        threads = [threading.Thread(target=work) for _ in range(32)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        client.close()
        assert len(server.granted_at) == 80
        assert server.limited <= 5, server.limited  # the first round trip, before any reply said what it costs
        assert client.rate.paced > 0


def test_an_exhausted_quota_stops_the_run_in_one_line(run, judge):
    body = json.dumps({"error": {"message": "You exceeded your current quota", "type": "insufficient_quota",
                                 "code": "insufficient_quota"}})
    judge.faults.extend([Fault("status", 429, text=body)] * 20)
    result = run()
    assert result.ret == 4
    assert "editeval STOPPED (exit 4): judge quota exhausted: HTTP 429 insufficient_quota from " in output_of(result)
    assert judge.count < 20
