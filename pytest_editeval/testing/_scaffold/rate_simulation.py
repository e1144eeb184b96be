"""A deterministic simulation of the HTTP judge's rate control (judges/rate.py) against a provider's rate limiter,
on a simulated clock: what a run of `requests` requests through `workers` places would see, without threads,
sockets or wall-clock time. The limiter is a token bucket (`rate` a second, `burst` at once) that tells its state
in one of the loopback judge's shapes (testing/judge_server.py: bucket, retry-after, litellm, overstated); an
answer takes `latency` seconds, a 429 `refusal_s` (a limiter answers at once: a millisecond by default; a real loopback
run adds a few milliseconds of HTTP to both). A refused request is asked again, as the client does. `adaptive=False`
is --editeval-judge-concurrency fixed (`workers` requests in flight, nothing else).
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

from pytest_editeval.judges.rate import RateControl

REFUSAL_S = 0.001


@dataclass(frozen=True)
class Simulated:
    sent: int  # requests sent, 429s included
    refused: int  # answered 429
    granted_at: tuple[float, ...]  # when each granted request reached the limiter
    rate: float
    burst: float
    most: float  # the most a client could be let through a second: the limit, or its places / latency
    finished_at: float  # when the last answer arrived: the run's length

    @property
    def share_refused(self) -> float:
        return self.refused / self.sent

    @property
    def sustained(self) -> float:
        """Requests let through a second after the burst, as a share of the most there could be (1.0: perfectly
        paced)."""
        span = self.granted_at[-1] - self.granted_at[0]
        return (len(self.granted_at) - self.burst) / span / self.most


def _headers(shape: str, rate: float, burst: float, level: float, refused_for: float | None) -> dict:
    if shape == "retry-after":
        return {"retry-after": str(max(1, math.ceil(refused_for)))} if refused_for is not None else {}
    if shape == "overstated":
        claimed = 60 * rate
        said = {"x-ratelimit-limit-requests": str(int(claimed)),
                "x-ratelimit-remaining-requests": str(int(claimed - burst + level)), "x-ratelimit-reset-requests": "1s"}
        return {**said, "retry-after": "1"} if refused_for is not None else said
    said = {"x-ratelimit-limit-requests": str(int(burst)), "x-ratelimit-remaining-requests": str(int(level)),
            "x-ratelimit-reset-requests": f"{(burst - level) / rate:.3f}s"}
    if refused_for is not None:
        said.update({"retry-after-ms": str(max(1, round(refused_for * 1000))),
                     "retry-after": str(max(1, math.ceil(refused_for)))})
    prefix = "llm_provider-" if shape == "litellm" else ""
    return {prefix + name: value for name, value in said.items()}


def simulate(*, requests: int, workers: int, rate: float, burst: float, latency: float, shape: str = "bucket",
             refusal_s: float = REFUSAL_S, adaptive: bool = True, limit_s: float = 3600.0) -> Simulated:
    from pytest_editeval.judges.openai_http import retry_after_seconds

    now = 0.0
    control = RateControl(workers, adaptive=adaptive, clock=lambda: now)
    level, refilled_at = burst, 0.0
    waiting, sent, refused, granted_at = requests, 0, 0, []
    answers: list = []  # (time, order, ticket, status, headers, retry_after)
    while (waiting or answers) and now < limit_s:
        wait = math.inf
        while waiting:
            wait = control.wait(now)
            if wait > 0:
                break
            ticket = control.take(now)
            waiting -= 1
            sent += 1
            level, refilled_at = min(burst, level + (now - refilled_at) * rate), now
            if level >= 1:
                level -= 1
                granted_at.append(now)
                answer = (now + latency, sent, ticket, 200, _headers(shape, rate, burst, level, None))
            else:
                refused += 1
                answer = (now + refusal_s, sent, ticket, 429, _headers(shape, rate, burst, level, (1 - level) / rate))
            heapq.heappush(answers, answer)
        now = min(answers[0][0] if answers else math.inf, now + wait)
        while answers and answers[0][0] <= now:
            _, _, ticket, status, headers = heapq.heappop(answers)
            lowered = {name.lower(): value for name, value in headers.items()}
            control.release(ticket, status, lowered, retry_after_seconds(lowered) if status == 429 else None)
            waiting += status == 429  # asked again
    return Simulated(sent, refused, tuple(granted_at), rate, burst, min(rate, workers / latency), now)
