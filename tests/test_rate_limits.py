"""Rate limits (openai backend, judges/rate.py): concurrency adapted by AIMD on 429s, Retry-After pausing the whole
client, the provider's x-ratelimit headers pacing it (requests and tokens), an exhausted quota stopping the run.
Whole runs as users start them (pytester) against the loopback judge behind a token bucket; the window's
arithmetic alone with a fake clock."""

import heapq
import json
import math

import pytest

from pytest_editeval.judges.rate import INITIAL_WINDOW, Budget, RateControl, Ticket, parse_duration
from pytest_editeval.testing import Fault, JudgeServer
from pytest_editeval.testing.judge_server import TokenBucket

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


@pytest.mark.slow  # several seconds: waits out a Retry-After
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


@pytest.mark.slow  # several seconds: waits out rate limits
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


class Simulated:
    """Callers of one RateControl and a provider's token bucket in simulated time, in one thread: the control's
    clock and its condition variable are this object, so a wait moves the clock to the next answer due (or to the
    end of the wait) and delivers that answer. The provider is the loopback judge's TokenBucket on the same clock,
    answering as the loopback server does (200 after `latency` with its headers; 429 at once with Retry-After).
    Nothing waits for real time: the counts are the same on an idle machine and a busy one."""

    def __init__(self, control: RateControl, bucket: TokenBucket, cost: float, latency: float) -> None:
        self.now = 0.0
        self.control, self.bucket, self.cost, self.latency = control, bucket, cost, latency
        control.clock, control._cv = self.clock, self
        bucket.clock, bucket.at = self.clock, 0.0
        self.answers: list = []  # (due, order, ticket, status, headers, retry_after), a heap
        self.order = 0
        self.todo = self.busy = self.done = self.limited = self.waits = 0
        self.granted_at: list[float] = []

    def clock(self) -> float:
        return self.now

    # what RateControl calls on its condition variable
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass

    def notify_all(self) -> None:
        pass

    def wait(self, timeout: float) -> None:
        self.waits += 1
        assert self.waits < 100_000, "the client waited without end"
        self._advance(self.now + max(timeout, 1e-6))  # a real wait takes time, however short it was asked to be

    def _advance(self, until: float) -> None:
        if self.answers and self.answers[0][0] <= until:
            due, _, ticket, status, headers, retry_after = heapq.heappop(self.answers)
            self.now = max(self.now, due)
            self.busy -= 1
            self.control.release(ticket, status, headers, retry_after)
            if status == 200:
                self.control.observe_tokens(int(self.cost))  # the reply's usage
                self.done += 1
            else:
                self.todo += 1  # asked again (a 429 spends no retry)
        else:
            self.now = until

    def _send(self, ticket: Ticket) -> None:
        granted, wait = self.bucket.take(self.cost)
        headers = self.bucket.headers()
        if granted:
            self.granted_at.append(self.now)
            answer = (self.now + self.latency, 200, headers, None)
        else:
            self.limited += 1
            headers["retry-after-ms"] = str(max(1, round(wait * 1000)))
            answer = (self.now + 0.001, 429, headers, max(1, round(wait * 1000)) / 1000)
        self.order += 1
        heapq.heappush(self.answers, (answer[0], self.order, ticket, *answer[1:]))

    def run(self, requests: int, callers: int) -> None:
        self.todo = requests
        while self.done < requests:
            assert self.now < 600, "the simulated run never ended"
            if self.todo and self.busy < callers:
                self.todo -= 1
                self.busy += 1
                ticket = self.control.acquire()  # may wait: answers arrive meanwhile
                self._send(ticket)
            else:
                self._advance(math.inf)


def test_the_token_headers_pace_the_client():
    """A provider that limits tokens a second (6,000, bursts of 1,500; a request costs 240): once the client knows
    what a request costs (the replies' usage), it waits for the token budget instead of being refused. 80 requests
    from 32 callers, in simulated time."""
    control = RateControl(32)
    run = Simulated(control, TokenBucket(6000, 1500, "tokens"), cost=240, latency=0.05)
    run.run(requests=80, callers=32)
    assert len(run.granted_at) == 80 and control.limited == run.limited
    assert run.limited <= 5, run.limited  # the first round trip, before any reply said what it costs
    assert control.paced > 0
    # the provider's limit is used, not exceeded: 80 x 240 tokens = the burst + 6,000 a second for the rest
    floor = (80 * 240 - 1500) / 6000
    assert floor <= run.granted_at[-1] <= floor / 0.9, (run.granted_at[-1], floor)


def test_an_exhausted_quota_stops_the_run_in_one_line(run, judge):
    body = json.dumps({"error": {"message": "You exceeded your current quota", "type": "insufficient_quota",
                                 "code": "insufficient_quota"}})
    judge.faults.extend([Fault("status", 429, text=body)] * 20)
    result = run()
    assert result.ret == 4
    assert "editeval STOPPED (exit 4): judge quota exhausted: HTTP 429 insufficient_quota from " in output_of(result)
    assert judge.count < 20
