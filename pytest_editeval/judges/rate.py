"""How many requests an HTTP judge gets at once, adapted to the provider's rate limit (stdlib only).

A provider that limits requests (or tokens) per minute answers 429 beyond its limit. A fixed number of requests
in flight either wastes the limit (too few) or hammers it (too many: each 429 costs a round trip and a backoff).
`RateControl` adapts instead, and is shared by every request of one judge:

- Concurrency: additive increase, multiplicative decrease (AIMD, as TCP). The window of requests in flight starts
  at min(8, --editeval-judge-workers). Until the first answer arrives it opens by 8 more every 50 ms: a rate
  limiter answers 429 at once (a judge takes seconds to answer), so a small limit shows itself after a few steps,
  and a large one costs a fraction of the first round trip instead of all of it. Then it grows by one per answered
  request while under its threshold (slow start: it doubles every round trip), and by 1/window per answer (one
  per round trip) above it. A 429 halves it, at most once per round trip (only a request sent after the last cut
  can cut again, so that one burst of 429s is one signal, not twenty). It never exceeds
  --editeval-judge-workers nor goes below 1.
- Retry-After (seconds or an HTTP date, and `retry-after-ms`) on a 429 or 503 pauses the whole client, not just
  the request that got it: every other request would get the same answer.
- The `x-ratelimit-limit-*`, `x-ratelimit-remaining-*` and `x-ratelimit-reset-*` headers (requests and tokens,
  OpenAI's and Azure's names; reset as `1s`, `6m0s`, `250ms` or seconds), when a provider sends them, describe
  its token bucket: `remaining` is what was left when the request arrived, and `(limit - remaining) / reset` is
  the rate at which it refills (the smallest of the last 16 readings: `remaining` is rounded down, which makes a
  reading too high, never too low). Before each request the client estimates what is left now (that value, plus
  the refill since that request was sent, minus the requests sent after it) and waits, pausing every request,
  until one request's worth (and 20 ms of refill to spare) is there. While the headers show room beyond the
  requests in flight, the window grows by one per answer (the pacing, not the window, then holds the rate). For
  tokens, a request's worth is the mean prompt + completion tokens of the replies so far. So a provider that says
  its limit is never asked far beyond it, and one that says nothing is still found by the 429s.
- A limit far above demand costs little: the window is fully open about 0.4 s after the first request, and an
  answer whose headers leave room for the whole window opens it at once.

`adaptive=False` (--editeval-judge-concurrency fixed) is the old behaviour: --editeval-judge-workers requests in
flight, a Retry-After delaying only its own request.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

INITIAL_WINDOW = 8
RATE_READINGS = 16
PROBE_STEP_S = 0.05  # before the first answer, the window opens by INITIAL_WINDOW this often
# A request goes out once the bucket holds its cost plus this much refill: the provider counted the remaining
# when the request arrived, a little after it was sent, so the estimate runs a few milliseconds ahead.
RESERVE_S = 0.02
MAX_PAUSE_S = 60.0
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_duration(value: str | None) -> float | None:
    """Seconds from `1s`, `6m0s`, `1h2m3.5s`, `250ms` (OpenAI's x-ratelimit-reset-* form) or a plain number."""
    if value is None:
        return None
    text = value.strip().lower()
    if not text:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text.replace(" ", ""):
        return None
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(float(number) * scale[unit] for number, unit in parts)


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _header(headers: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = headers.get(name)
        if value is not None:
            return value
    return None


@dataclass
class Ticket:
    """One request's place: its send order and time (what a later answer's headers are measured against)."""

    seq: int
    sent_at: float


class Budget:
    """A provider's bucket of requests or tokens as its headers describe it (see the module docstring)."""

    def __init__(self) -> None:
        self.limit: float | None = None
        self.remaining: float | None = None
        self.rate: float | None = None  # refill per second, from (limit - remaining) / reset
        self._rates: deque[float] = deque(maxlen=RATE_READINGS)
        self.as_of_seq = -1  # the request whose answer said so
        self.as_of_time = 0.0
        self._refused: list[int] = []  # requests sent after it that were answered 429: they took nothing

    def update(self, ticket: Ticket, limit: float | None, remaining: float | None, reset_s: float | None) -> bool:
        """Take an answer's headers (only if fresher than what is known); True if they said anything."""
        if remaining is None or ticket.seq < self.as_of_seq:
            return False
        if limit is not None:
            self.limit = limit
        if reset_s is not None and reset_s > 0 and self.limit is not None and self.limit > remaining:
            self._rates.append((self.limit - remaining) / reset_s)
            self.rate = min(self._rates)
        self.remaining, self.as_of_seq, self.as_of_time = remaining, ticket.seq, ticket.sent_at
        self._refused = [seq for seq in self._refused if seq > ticket.seq]
        return True

    def refused(self, ticket: Ticket) -> None:
        """`ticket` was answered 429: the provider took nothing from its bucket for it."""
        if ticket.seq > self.as_of_seq:
            self._refused.append(ticket.seq)

    def _taken_since(self, sent: int) -> int:
        """Requests sent after the reading and not refused: by the model, each took from the bucket."""
        return max(0, sent - self.as_of_seq - 1 - len(self._refused))

    def left(self, now: float, sent: int, cost: float) -> float | None:
        """What is left now, by the model: None when nothing is known."""
        if self.remaining is None:
            return None
        refilled = self.remaining + (self.rate or 0.0) * max(0.0, now - self.as_of_time)
        if self.limit is not None:
            refilled = min(self.limit, refilled)
        return refilled - self._taken_since(sent) * cost

    def wait(self, now: float, sent: int, cost: float) -> float:
        """Seconds until one more request of `cost` fits (0: it fits now)."""
        left = self.left(now, sent, cost)
        if left is None or not self.rate:
            return 0.0  # nothing known, or no refill rate: the 429s will tell
        need = cost + self.rate * RESERVE_S
        if self.limit is not None and self.limit - self._taken_since(sent) * cost < need:
            # The model above (refill capped at the limit first, then every request since taken) can never show
            # room here: a bucket of one request, or more requests since the reading than the bucket holds
            # (spread out while it refilled, or timed out and took nothing). Waiting on it would never end, so the
            # refill is counted against those requests as it came, and one request without the reserve is asked.
            elapsed = max(0.0, now - self.as_of_time)
            left = min(self.limit, self.remaining + self.rate * elapsed - self._taken_since(sent) * cost)
            need = cost
        if left >= need:
            return 0.0
        return min(MAX_PAUSE_S, (need - left) / self.rate)


class RateControl:
    """The requests in flight of one judge client: `acquire` before sending, `release` with the answer."""

    def __init__(self, max_in_flight: int | None, *, adaptive: bool = True, stop: threading.Event | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_window = max_in_flight
        self.adaptive = adaptive and max_in_flight is not None
        self.stop = stop or threading.Event()
        self.clock = clock
        self.window = float(min(INITIAL_WINDOW, max_in_flight) if self.adaptive else (max_in_flight or math.inf))
        self.threshold = math.inf  # slow start below it
        self.probing = self.adaptive  # no answer yet: the window opens with time (see the module docstring)
        self.started_at: float | None = None
        self.in_flight = 0
        self.sent = 0
        self.paused_until = 0.0
        self.last_cut_seq = -1
        self.requests = Budget()
        self.tokens = Budget()
        self._token_costs = (0.0, 0)  # (sum, count) of the replies' prompt + completion tokens
        self._cv = threading.Condition()
        # what happened, for one summary line
        self.limited = 0  # answers with status 429
        self.cuts = 0
        self.smallest = self.window
        self.largest = self.window
        self.paused_s = 0.0
        self.pauses = 0  # Retry-After pauses of the whole client
        self.paced = 0  # requests that waited for the provider's bucket to refill (x-ratelimit headers)

    # ---- sending ---------------------------------------------------------------------------------------------
    def acquire(self, deadline: float | None = None) -> Ticket | None:
        """Wait for a place (window, pause, provider budget); None once the run stops, or once `deadline` (the
        row's, on this clock) passes first: a pause never outlasts the row that waits for it."""
        paced = False
        with self._cv:
            while True:
                if self.stop.is_set():
                    return None
                now = self.clock()
                if deadline is not None and now >= deadline:
                    return None
                if self.probing:
                    self._probe(now)
                if self.max_window is not None and self.in_flight >= max(1, math.floor(self.window)):
                    self._cv.wait(PROBE_STEP_S if self.probing else 0.5)
                    continue
                wait = self.paused_until - now if self.adaptive else 0.0
                if self.adaptive and wait <= 0:
                    # The provider's bucket, by its headers: everybody waits for its refill (recomputed whenever an
                    # answer brings fresher headers).
                    wait = max(self.requests.wait(now, self.sent, 1.0),
                               self.tokens.wait(now, self.sent, self._token_cost()))
                    if wait > 0:
                        paced = True
                if wait > 0:
                    self._cv.wait(min(wait, 0.5))
                    continue
                self.in_flight += 1
                ticket = Ticket(self.sent, now)
                self.sent += 1
                self.paced += paced
                return ticket

    def release(self, ticket: Ticket, status: int | None, headers: Mapping[str, str] | None = None,
                retry_after: float | None = None) -> None:
        """The answer to `ticket` arrived (status None: no answer, a transport error)."""
        with self._cv:
            self.in_flight -= 1
            if status == 429:
                self.limited += 1
            if self.adaptive:
                now = self.clock()
                if status is not None:
                    self.probing = False  # an answer: from now on the answers drive the window
                if headers is not None:
                    self._read_headers(ticket, headers)
                if status == 429:
                    self.requests.refused(ticket)
                    self.tokens.refused(ticket)
                    self._cut(ticket)
                elif status is not None and 200 <= status < 300:
                    self._grow(room=self._room())
                if retry_after is not None and status in (429, 503) and retry_after > 0:
                    until = now + min(retry_after, MAX_PAUSE_S)
                    if until > self.paused_until:
                        self.pauses += 1
                        self.paused_s += until - max(now, self.paused_until)
                        self.paused_until = until
            self._cv.notify_all()

    def observe_tokens(self, total: int) -> None:
        """A reply's prompt + completion tokens (what a request costs against a token limit)."""
        with self._cv:
            spent, count = self._token_costs
            self._token_costs = (spent + total, count + 1)

    def wake(self) -> None:
        """A stop: requests waiting for a place give up at once."""
        with self._cv:
            self._cv.notify_all()

    # ---- the window ------------------------------------------------------------------------------------------
    def _probe(self, now: float) -> None:
        if self.started_at is None:
            self.started_at = now
        steps = int((now - self.started_at) / PROBE_STEP_S)
        self.window = max(self.window, float(min(self.max_window, INITIAL_WINDOW * (1 + steps))))
        self.largest = max(self.largest, self.window)

    def _grow(self, room: bool = False) -> None:
        if self.window >= self.max_window:
            return
        fast = room or self.window < self.threshold
        self.window = min(self.max_window, self.window + (1.0 if fast else 1.0 / self.window))
        self.largest = max(self.largest, self.window)

    def _room(self) -> bool:
        """The provider's headers show more left than the requests in flight would take."""
        left = self.requests.left(self.clock(), self.sent, 1.0)
        return left is not None and left >= self.in_flight + 1

    def _cut(self, ticket: Ticket) -> None:
        if ticket.seq <= self.last_cut_seq:  # sent before the last cut: the same burst, already answered
            return
        self.threshold = max(1.0, self.window / 2)
        self.window = self.threshold
        self.last_cut_seq = self.sent - 1
        self.cuts += 1
        self.smallest = min(self.smallest, self.window)

    def _read_headers(self, ticket: Ticket, headers: Mapping[str, str]) -> None:
        said = self.requests.update(
            ticket, _number(_header(headers, "x-ratelimit-limit-requests")),
            _number(_header(headers, "x-ratelimit-remaining-requests")),
            parse_duration(_header(headers, "x-ratelimit-reset-requests")))
        self.tokens.update(
            ticket, _number(_header(headers, "x-ratelimit-limit-tokens")),
            _number(_header(headers, "x-ratelimit-remaining-tokens")),
            parse_duration(_header(headers, "x-ratelimit-reset-tokens")))
        # Room for the whole window: the limit is far above demand, so skip the slow start.
        if said and self.requests.remaining is not None and self.requests.remaining >= self.max_window \
                and self.window < self.threshold:
            self.window = float(self.max_window)
            self.largest = self.window

    def _token_cost(self) -> float:
        spent, count = self._token_costs
        return spent / count if count else 0.0

    # ---- reporting -------------------------------------------------------------------------------------------
    def note(self) -> str | None:
        """One line when the provider limited the run (None otherwise)."""
        if not self.limited and not self.pauses and not self.paced:
            return None
        parts = [f"{self.limited} of {self.sent} requests answered 429 (rate limit)"]
        if self.adaptive:
            parts.append(f"concurrency adapted between {math.floor(self.smallest)} and {math.floor(self.largest)} "
                         f"(ended at {math.floor(self.window)})")
            if self.pauses:
                parts.append(f"paused {self.pauses} times ({self.paused_s:.1f} s in all) on Retry-After")
            if self.paced:
                parts.append(f"{self.paced} requests waited for the provider's x-ratelimit budget to refill")
        return "; ".join(parts)
