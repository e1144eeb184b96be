"""Real servers and gateways in front of the openai backend: a wrong model name or a server error answered to every
first request stops the run in one line; a server that answers one request at a time is not flooded by retries;
LiteLLM's renamed rate-limit hints are read; a usage error of the vllm backend says only itself. Whole runs as
users start them (pytester) against the loopback judge."""

import json
import math
import re

import pytest

from pytest_editeval.judges.openai_http import JudgeClient, retry_after_seconds
from pytest_editeval.judges.rate import RateControl
from pytest_editeval.judges.settings import JudgeSettings
from pytest_editeval.testing import Fault, JudgeServer
from pytest_editeval.testing._scaffold.rate_simulation import simulate
from pytest_editeval.testing.judge_server import LIMITER_SHAPES

from .conftest import API_KEY, output_of

ELEVEN_ROWS = "--editeval-limit=1"  # one row per GEdit subset: 11 rows, 22 questions

PINNED = json.dumps({"error": {"message": "Server is pinned to Qwen/Qwen2.5-VL-7B-Instruct; got model 'qwen-wrong'",
                               "type": "invalid_request_error"}})
LITELLM = json.dumps({"error": {"message": "litellm.BadRequestError: Invalid model name passed in model=qwen-wrong. "
                                           "Call `/v1/models` to view available models for your key.",
                                "type": "None", "param": "None", "code": "400"}})


@pytest.mark.parametrize("status, body, shown", [
    (400, PINNED, "HTTP 400: '{\"error\": {\"message\": \"Server is pinned to Qwen/Qwen2.5-VL-7B-Instruct"),
    (400, LITELLM, "Invalid model name passed in model=qwen-wrong"),
    (500, '{"error": {"message": "Internal Server Error"}}', "HTTP 500: "),
])
def test_every_first_request_failing_the_same_way_stops_the_run_in_one_line(run, judge, status, body, shown):
    judge.faults.extend([Fault("status", status, text=body)] * 200)
    result = run("--editeval-no-cache", ELEVEN_ROWS, "--editeval-judge-retries=5")
    out = output_of(result)
    assert result.ret == 4, out
    stopped = [line for line in out.splitlines() if line.startswith("editeval STOPPED (exit 4): ")]
    assert len(stopped) == 1 and shown in stopped[0], out
    assert "the judge's first 6 answers" in stopped[0]
    assert "check --editeval-judge-model and --editeval-judge-url" in stopped[0]
    # Stopped after the first answers (the requests already in flight included), not after 11 rows x retries.
    assert judge.count <= 2 * 11, judge.count


def test_failures_after_a_success_stay_row_errors(run, judge):
    """One answer read: the judge serves this run; later failures are each row's own (counted, not fatal)."""
    judge.faults.extend([Fault("reply", text=json.dumps({"score": [5, 5], "reasoning": "ok"}))]
                        + [Fault("status", 400, text=PINNED)] * 200)
    result = run("--editeval-no-cache", ELEVEN_ROWS, "--editeval-judge-workers=1")
    out = output_of(result)
    assert result.ret == 1, out
    assert "STOPPED" not in out and "judge refused the request: HTTP 400" in out


def test_different_failures_are_not_one_cause(run, judge):
    judge.faults.extend([Fault("status", 400, text=PINNED), Fault("status", 400, text=LITELLM)] * 100)
    result = run("--editeval-no-cache", ELEVEN_ROWS)
    assert result.ret == 1 and "STOPPED" not in output_of(result), output_of(result)


@pytest.mark.slow  # several seconds: a judge that answers one request at a time
def test_a_server_that_answers_one_request_at_a_time_is_not_flooded(run, tmp_path):
    """Requests queue on a serial server, so the last ones of a burst time out; each time-out halves the window as
    a 429 does, so retries do not pile onto the queue: the number of requests stays bounded and every row is
    scored."""
    with JudgeServer(api_key=API_KEY, latency=0.2, serial=True) as server:
        result = run(f"--editeval-judge-url={server.url}", "--editeval-no-cache", ELEVEN_ROWS,
                     "--editeval-judge-timeout=1", "--editeval-judge-workers=64", "--editeval-judge-retries=5")
        out = output_of(result)
        assert result.ret == 0, out
        # 22 questions, about 5 answered a timeout: the first rounds time out past the 5th in the queue and are asked
        # again, but each round of time-outs halves the window (before: 6 attempts for most rows, every row an
        # error after more than 120 requests).
        assert server.count < 3 * 22, server.count
        assert "requests timed out" in out


def test_time_outs_halve_the_window_once_per_burst():
    control = RateControl(64)
    burst = [control.acquire() for _ in range(8)]
    for ticket in burst:
        control.release(ticket, None, timed_out=True)
    assert control.window == 4 and control.cuts == 1 and control.timed_out == 8
    ticket = control.acquire()
    control.release(ticket, None)  # a dropped connection is not a sign of load
    assert control.window == 4


@pytest.mark.parametrize("headers, seconds", [
    ({"llm_provider-retry-after": "2"}, 2.0),
    ({"llm_provider-retry-after-ms": "250"}, 0.25),
    ({"llm_provider-retry-after-ms": "250", "llm_provider-retry-after": "1"}, 0.25),
    ({"retry-after": "3", "llm_provider-retry-after": "1"}, 3.0),
])
def test_litellm_renamed_retry_hints_are_read(headers, seconds):
    import httpx

    assert retry_after_seconds(httpx.Headers(headers)) == pytest.approx(seconds)


def test_litellm_renamed_rate_headers_pace_the_client():
    control = RateControl(64)
    ticket = control.acquire()
    control.release(ticket, 200, {"llm_provider-x-ratelimit-limit-requests": "20",
                                  "llm_provider-x-ratelimit-remaining-requests": "10",
                                  "llm_provider-x-ratelimit-reset-requests": "500ms",
                                  "llm_provider-x-ratelimit-limit-tokens": "1000",
                                  "llm_provider-x-ratelimit-remaining-tokens": "900",
                                  "llm_provider-x-ratelimit-reset-tokens": "1s"})
    assert control.requests.limit == 20 and control.requests.remaining == 10 and control.requests.rate == 20
    assert control.tokens.remaining == 900 and control.tokens.rate == 100


def test_a_litellm_proxy_run_is_paced_by_its_renamed_headers():
    """Behind LiteLLM the bucket's headers arrive renamed: the client reads them and waits for the refill."""
    with JudgeServer(api_key=API_KEY, latency=0.05, scores=lambda call: [8.0, 7.0], rate_limit=20, burst=5,
                     limiter="litellm") as server:
        client = JudgeClient(JudgeSettings(url=server.url, model="m", api_key=API_KEY, backoff_s=0.2),
                             max_in_flight=16)
        try:
            for _ in range(3):
                client.complete([{"type": "text", "text": "judge"}])
        finally:
            client.close()
        assert client.rate.requests.limit == 5 and client.rate.requests.rate is not None


def test_vllm_not_installed_is_only_the_usage_line(pytester, gedit, edits, tmp_path):
    """No results file, no PARTIAL RUN line: a usage error says only itself."""
    results = tmp_path / "results.json"
    result = pytester.runpytest(
        "--editeval-benchmark=gedit", f"--editeval-dataset={gedit[0]}", f"--editeval-images={edits}",
        f"--editeval-cache-dir={tmp_path / 'cache'}", "-p", "no:cacheprovider", "--editeval-judge-backend=vllm",
        f"--editeval-judge-model={tmp_path}", "--editeval-judge-serve-command=/nonexistent/vllm", ELEVEN_ROWS,
        f"--editeval-json={results}")
    out = output_of(result)
    assert result.ret == 4, out
    assert "--editeval-judge-backend vllm cannot find '/nonexistent/vllm'" in out
    assert "PARTIAL" not in out and "rows ran" not in out and "STOPPED" not in out, out
    assert not results.exists()


@pytest.mark.parametrize("requests", [88, 440])
@pytest.mark.parametrize("shape", LIMITER_SHAPES)
def test_the_rate_control_finds_every_limiter_shapes_rate(shape, requests):
    """A simulated run (fake clock) of 64 places against 20 requests a second with a burst of 20, answers after
    0.5 s: whatever the limiter says (headers, renamed headers, a whole-second Retry-After alone, headers claiming
    room it does not have), fewer than 5% of the requests are refused and the rate is >= 90% of the limit, short
    runs included (a slow start, paced, instead of one burst of 64)."""
    result = simulate(requests=requests, workers=64, rate=20, burst=20, latency=0.5, shape=shape)
    assert result.sent - result.refused == requests
    assert result.refused < 0.05 * result.sent, (result.refused, result.sent)
    assert result.sustained >= 0.9, result.sustained


@pytest.mark.parametrize("requests", [88, 440])
@pytest.mark.parametrize("shape", LIMITER_SHAPES)
def test_the_rate_control_keeps_the_targets_with_a_loopback_runs_overheads(shape, requests):
    """As above, with what a real run over loopback HTTP adds: an answer takes 0.52 s for the judge's 0.5 s, and a
    429 comes back in 5 ms, not 1. Headers that overstate the room (1,200 a minute, reset in 1 s, while the bucket
    refills 20 a second) on the short run were the known miss: two whole-second Retry-After pauses where the bucket
    needed 50 ms (88.5% of the rate), until the refill measured between 429s paced the requests."""
    result = simulate(requests=requests, workers=64, rate=20, burst=20, latency=0.52, refusal_s=0.005, shape=shape)
    assert result.sent - result.refused == requests
    assert result.refused < 0.05 * result.sent, (result.refused, result.sent)
    assert result.sustained >= 0.9, result.sustained


@pytest.mark.xfail(strict=True, reason="known miss: the opening window of 8 costs a round trip where nothing limits; "
                   "opening all 64 at once floods a one-request-at-a-time server and a small bucket (see rate.py)")
@pytest.mark.parametrize("requests", [88, 440])
def test_without_a_limit_the_adaptive_run_is_as_fast_as_a_fixed_one(requests):
    """A limit far above demand (10,000 a second), 64 places, answers after 0.2 s: nothing limits, so adaptive
    concurrency must not hold requests back behind a slow start. It may spread its first 64 requests over at most
    0.13 s (a few milliseconds apart, so that a limiter's first 429 stops them); a fixed window of 64 sends them
    at once. Simulated time: a slow start from 8 takes three more round trips, 0.4 s late on 88 requests."""
    runs = {mode: simulate(requests=requests, workers=64, rate=10_000, burst=10_000, latency=0.2, adaptive=mode)
            for mode in (True, False)}
    assert runs[True].refused == runs[False].refused == 0
    assert runs[False].finished_at == pytest.approx(0.2 * math.ceil(requests / 64))
    assert runs[True].finished_at <= runs[False].finished_at + 0.13, (runs[True].finished_at, runs[False].finished_at)


def test_when_headers_and_429s_disagree_the_429s_win():
    control = RateControl(64)
    first = control.acquire()
    claims = {"x-ratelimit-limit-requests": "1200", "x-ratelimit-remaining-requests": "1190",
              "x-ratelimit-reset-requests": "1s"}
    control.release(first, 200, claims)
    assert control.window == 64  # the headers say there is room for every place
    refused = control.acquire()
    control.release(refused, 429, {**claims, "retry-after": "1"}, 1.0)
    assert not control.requests.trusted and control.requests.left(control.clock(), control.sent, 1.0) is None
    assert control.window == 32


def test_a_429_whose_own_headers_claim_room_is_believed_over_them():
    """A gateway whose 429 says 1,180 requests remain (1,200 a minute, reset in 1 s) contradicts itself: the first
    such 429 ends the trust in its headers, even before any request was sent on their word; the refusal's
    `remaining: 0` from an honest bucket is no contradiction, nor is a refusal for tokens while requests remain."""
    claims = {"x-ratelimit-limit-requests": "1200", "x-ratelimit-remaining-requests": "1180",
              "x-ratelimit-reset-requests": "1s", "retry-after": "1"}
    overstated = RateControl(64)
    overstated.release(overstated.acquire(), 429, claims, 1.0)
    assert not overstated.requests.trusted
    honest = RateControl(64)
    honest.release(honest.acquire(), 429, {"x-ratelimit-limit-requests": "20", "x-ratelimit-remaining-requests": "0",
                                           "x-ratelimit-reset-requests": "1s"}, 0.05)
    assert honest.requests.trusted and honest.requests.remaining == 0
    tokens = RateControl(64)
    tokens.observe_tokens(240)
    tokens.release(tokens.acquire(), 429, {**claims, "x-ratelimit-limit-tokens": "1500",
                                           "x-ratelimit-remaining-tokens": "100", "x-ratelimit-reset-tokens": "1s"}, 1.0)
    assert tokens.requests.trusted and tokens.tokens.trusted


def test_the_refill_measured_between_429s_paces_the_client_and_shortens_a_whole_second_retry_after():
    """Without headers to believe, two 429s (each: the bucket was empty) measure the limiter's refill: the
    requests let through between them a second. It then paces the requests, a 429 no longer halves the window,
    and a whole-second Retry-After (rounded up: 1 s for the 50 ms a bucket of 20 a second needs) pauses only as
    long as one request's refill, within its last second; a retry-after-ms hint is exact and obeyed as said."""
    now = [0.0]
    control = RateControl(64, clock=lambda: now[0])
    control.release(control.take(0.0), 429, {"retry-after": "1"}, 1.0)
    assert control.refill is None and control.paused_until == 1.0  # nothing measured: Retry-After is obeyed
    for i in range(20):
        now[0] = 1.0 + 0.02 * i
        control.release(control.take(now[0]), 200, {})
    now[0] = 1.5
    neighbour = control.take(1.5)
    control.release(neighbour, 429, {"retry-after": "1"}, 1.0)
    assert control.refill == pytest.approx(20 / 1.5)  # 20 let through between 0 and 1.5 s
    window = control.window
    now[0] = 1.51
    # Next to the last 429: measured from the one before it (a neighbour's span measures nothing), not cut.
    control.release(control.take(1.51), 429, {"retry-after": "1"}, 1.0)
    assert control.refill == pytest.approx(20 / 1.51) and control.window == window
    assert control.paused_until == pytest.approx(1.51 + 1.51 / 20)
    assert control.take(1.6).sent_at == 1.6 and control.next_send_at >= 1.6 + 1.51 / 20
    now[0] = 1.7
    control.release(control.take(1.7), 429, {"retry-after-ms": "400", "retry-after": "1"}, 0.4)
    assert control.paused_until == pytest.approx(2.1)
    now[0] = 2.2
    control.release(control.take(2.2), 429, {"retry-after": "30"}, 30.0)
    assert control.paused_until == pytest.approx(2.2 + 29)  # a long Retry-After: within its last second only
    assert "paced by the refill its 429s measured (last 12.4 requests/s)" in control.note()


def test_a_limiter_whose_headers_overstate_its_room_costs_one_whole_second_pause(run, tmp_path):
    """Headers that claim 1,200 a minute, reset in 1 s, from a bucket of 20 refilling 20 a second, with
    `Retry-After: 1` on its 429s; 88 requests from 64 workers. Every row is scored, and after the first pause
    (nothing measured yet) the client paces at the refill its 429s measured instead of pausing a whole second again
    (before: two 1 s pauses, 2.0 s in all). The share of 429s is the simulation's to check: here it depends on
    how late a loaded machine delivers the first 429 to the window the headers opened."""
    with JudgeServer(api_key=API_KEY, latency=0.5, rate_limit=20, burst=20, limiter="overstated") as server:
        result = run(f"--editeval-judge-url={server.url}", "--editeval-no-cache", ELEVEN_ROWS,
                     "--editeval-judge-samples=4", "--editeval-judge-workers=64")
        out = output_of(result)
        assert result.ret == 0, out
        assert len(server.granted_at) == 88
        note = next(line for line in out.splitlines() if "answered 429" in line)
    paused = re.search(r"paused (\d+) times \(([\d.]+) s in all\)", note)
    assert paused and float(paused[2]) < 1.5 and "paced by the refill its 429s measured" in note, note


def test_a_refill_measured_across_a_whole_second_pause_is_only_a_floor():
    """A bucket of 5 refilling 20 a second is full a quarter second into a whole-second pause: the 429s around that
    pause measure 5 / 1.3 s, a floor. Without a 429 for 1.5 x that pause the pace doubles; a 429 measured without a
    long pause in between settles it, and the doubling stops."""
    now = [0.0]
    control = RateControl(64, clock=lambda: now[0])
    control.release(control.take(0.0), 429, {"retry-after": "1"}, 1.0)
    for i in range(5):
        now[0] = 1.0 + 0.05 * i
        control.release(control.take(now[0]), 200, {})
    now[0] = 1.3
    control.release(control.take(1.3), 429, {"retry-after": "1"}, 1.0)
    assert control.refill == pytest.approx(5 / 1.3) and control.probe_after_s == pytest.approx(1.5)
    now[0] = 2.7
    control.release(control.take(2.7), 200, {})
    assert control.refill == pytest.approx(5 / 1.3)  # 1.4 s without a 429: not yet
    now[0] = 2.85
    control.release(control.take(2.85), 200, {})
    assert control.refill == pytest.approx(2 * 5 / 1.3)
    now[0] = 3.0
    control.release(control.take(3.0), 429, {"retry-after": "1"}, 1.0)  # after a 0.26 s pause: measured, settled
    assert control.refill == pytest.approx(2 / 1.7) and control.probe_after_s is None


@pytest.mark.parametrize("shape", ["retry-after", "overstated"])
def test_a_bucket_smaller_than_a_whole_second_pause_is_not_held_at_its_floor(shape):
    """20 a second with a burst of 5, 440 requests, answers in 0.5 s, whole-second Retry-After: the first refill
    measured spans a 1 s pause the bucket outlasts by 0.75 s (27% of the rate measured); the pace is raised until
    the 429s measure the rate itself (the 90% target is for a burst of a second's refill; before: 72% and 74%)."""
    result = simulate(requests=440, workers=64, rate=20, burst=5, latency=0.5, shape=shape)
    assert result.refused < 0.05 * result.sent, (result.refused, result.sent)
    assert result.sustained >= 0.8, result.sustained
