"""How many requests an HTTP judge gets at once, adapted to the provider's rate limit (stdlib only).

A provider that limits requests (or tokens) per minute answers 429 beyond its limit. A fixed number of requests
in flight either wastes the limit (too few) or hammers it (too many: each 429 costs a round trip and a backoff).
`RateControl` adapts instead, and is shared by every request of one judge:

- Concurrency: additive increase, multiplicative decrease (AIMD, as TCP). The window of requests in flight starts
  at min(8, --editeval-judge-workers), grows by one per answered request while under its threshold (slow start:
  it doubles every round trip), and by 1/window per answer (one per round trip) above it. A 429 halves it, and so
  does a request that timed out (a server that answers one request at a time queues the others until they time
  out: its time-outs are its 429s), at most once per round trip (only a request sent after the last cut can cut
  again, so that one burst of 429s is one signal, not twenty). It never exceeds --editeval-judge-workers; below
  1 it still paces (one request in flight, sent every round trip / window), down to 1/16.
- Pacing: once an answer has measured the round trip, requests go out evenly at window / round trip (twice that
  in slow start, 1.2 x above it, as Linux paces TCP), never in a burst. A rate limiter answers 429 at once while
  a judge takes its latency, so a paced client hears the first 429 after the bucket runs dry and before many
  more requests went out: a limit that says nothing but 429 costs about one refused request per cut, where a
  burst of answers releasing a burst of requests cost all of them.
- Retry-After (seconds or an HTTP date, and `retry-after-ms`) on a 429 or 503 pauses the whole client, not just
  the request that got it: every other request would get the same answer.
- Where no header is believed (none sent, or headers the 429s contradicted), the 429s themselves measure the
  limiter: each says its bucket was empty when that request arrived, so the requests let through between two
  429s (a quarter second apart at least) are what it refilled meanwhile. That refill then paces the requests (one
  every 1/refill seconds at most), each later 429 measures it again instead of halving the window, and a
  whole-second Retry-After, which is rounded up (`1` for the 50 ms a bucket of 20 a second needs), pauses only
  one request's refill, within its last second. Without that, a run of 88 requests against a gateway whose
  headers overstated its room paused a whole second twice where the bucket needed 50 ms. A refill measured across
  a whole-second pause is only a floor (a bucket of 5 refilling 20 a second is full after a quarter of it, and
  measures 27% of the rate): until a 429 measures it without such a pause in between, the pace doubles after
  every 1.5 pauses' time without a 429.
- The `x-ratelimit-limit-*`, `x-ratelimit-remaining-*` and `x-ratelimit-reset-*` headers (requests and tokens,
  OpenAI's and Azure's names; reset as `1s`, `6m0s`, `250ms` or seconds; behind a LiteLLM proxy the same names
  prefixed `llm_provider-`, as are its Retry-After hints), when a provider sends them, describe
  its token bucket: `remaining` is what was left when the request arrived, and `(limit - remaining) / reset` is
  the rate at which it refills (the smallest of the last 16 readings: `remaining` is rounded down, which makes a
  reading too high, never too low). Before each request the client estimates what is left now (that value, plus
  the refill since that request was sent, minus the requests sent after it) and waits, pausing every request,
  until one request's worth (and 20 ms of refill to spare) is there. While the headers show room beyond the
  requests in flight, the window grows by one per answer (the pacing, not the window, then holds the rate). For
  tokens, a request's worth is the mean prompt + completion tokens of the replies so far. So a provider that says
  its limit is never asked far beyond it, and one that says nothing is still found by the 429s. Headers that
  showed room for a request the provider then refused, or a 429 whose own headers claim room (a gateway's headers
  that claim more than its limiter grants), are not believed again: when headers and 429s disagree, the 429s win,
  from the first refusal that shows it.
- A limit far above demand costs the slow start: an answer whose headers leave room for the whole window opens
  it at once; without headers the window doubles every round trip.

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

# Sent at once, before anything is known about the provider. Opening every place at once (or paced a few ms apart)
# would spare a limit far above demand its one round trip at 8, but was measured to flood what answers slowly or
# late: a server that answers one request at a time (time-outs after a second, every queued request abandoned, not
# cancelled) and, on a loaded machine, a small bucket whose 429s arrive after tens of milliseconds (20 of 196
# requests refused against a burst of 10, where 8 at once is refused nothing).
INITIAL_WINDOW = 8
RATE_READINGS = 16
DECREASE = 0.5  # a 429 or a time-out multiplies the window by this
# Below 1 the window still paces (one request every round trip / window): a limit under one request a round trip.
MIN_WINDOW = 1 / 16
# Pacing: requests go out at gain x window / round trip (as Linux paces TCP: twice the rate in slow start).
SLOW_START_GAIN = 2.0
STEADY_GAIN = 1.2
RTT_WEIGHT = 0.125  # the smoothed round trip's weight of each new answer (TCP's SRTT)
DISAGREEMENTS_TOLERATED = 1  # 429s to requests the headers said had clear room, before the headers are ignored
ROOM_MARGIN = 0.25  # clear room: a quarter of the limit to spare
# A request goes out once the bucket holds its cost plus this much refill: the provider counted the remaining
# when the request arrived, a little after it was sent, so the estimate runs a few milliseconds ahead.
RESERVE_S = 0.02
MAX_PAUSE_S = 60.0
# The refill measured between two 429s (each says the bucket was empty when its request arrived): only across at
# least this long and this many requests let through, so that one burst's neighbouring refusals measure nothing.
REFILL_SPAN_S = 0.25
REFILL_GRANTS = 2
REFUSALS_KEPT = 64
# A refill measured across a long pause (a whole-second Retry-After) is only a floor: a bucket smaller than that
# pause's refill was full before it ended. Until a 429 measures it without such a pause, the pace doubles after
# every stretch this many times that pause long without a 429.
PROBE_AFTER_PAUSES = 1.5
PROBE_GAIN = 2.0
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


def _whole_seconds(headers: Mapping[str, str] | None, retry_after: float) -> bool:
    """The hint came as Retry-After in whole seconds (not retry-after-ms, not an HTTP date)."""
    return float(retry_after).is_integer() and (headers is None or limit_header(headers, "retry-after-ms") is None)


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


# A LiteLLM proxy passes the provider's own headers on renamed `llm_provider-NAME`; the plain name wins when both come.
GATEWAY_PREFIXES = ("", "llm_provider-")


def limit_header(headers: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        for prefix in GATEWAY_PREFIXES:
            value = headers.get(prefix + name)
            if value is not None:
                return value
    return None


@dataclass
class Ticket:
    """One request's place: its send order and time (what a later answer's headers are measured against), and
    whether the requests headers said it clearly fitted when it went out."""

    seq: int
    sent_at: float
    room: bool = False


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
        self.disagreements = 0  # 429s to requests that, by these headers, had room

    @property
    def trusted(self) -> bool:
        """A provider whose headers keep showing room that its 429s deny is paced by its 429s alone."""
        return self.disagreements < DISAGREEMENTS_TOLERATED

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

    def refused(self, ticket: Ticket, room: bool = False) -> None:
        """`ticket` was answered 429: the provider took nothing from its bucket for it. `room`: these headers
        said it fitted when it was sent."""
        if ticket.seq > self.as_of_seq:
            self._refused.append(ticket.seq)
        self.disagreements += room

    def _taken_since(self, sent: int) -> int:
        """Requests sent after the reading and not refused: by the model, each took from the bucket."""
        return max(0, sent - self.as_of_seq - 1 - len(self._refused))

    def left(self, now: float, sent: int, cost: float) -> float | None:
        """What is left now, by the model: None when nothing is known (or the headers are not to be trusted)."""
        if self.remaining is None or not self.trusted:
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
        self.round_trip: float | None = None  # smoothed seconds from sending to an answered request's answer
        self.next_send_at = 0.0  # pacing: the earliest time the next request may go out
        self.in_flight = 0
        self.sent = 0
        self.paused_until = 0.0
        self.last_cut_seq = -1
        self.refill: float | None = None  # requests a second the limiter let through between its last 429s
        self._refusals: deque[Ticket] = deque(maxlen=REFUSALS_KEPT)
        self._paused_after: dict[int, float] = {}  # a refused request's seq: the pause its Retry-After began
        self.probe_after_s: float | None = None  # the refill is a floor: raise it after this long without a 429
        self.last_refused_at = 0.0
        self.requests = Budget()
        self.tokens = Budget()
        self._token_costs = (0.0, 0)  # (sum, count) of the replies' prompt + completion tokens
        self._cv = threading.Condition()
        # what happened, for one summary line
        self.limited = 0  # answers with status 429
        self.timed_out = 0  # requests that got no answer within the judge timeout
        self.cuts = 0
        self.smallest = self.window
        self.largest = self.window
        self.paused_s = 0.0
        self.pauses = 0  # Retry-After pauses of the whole client
        self.paced = 0  # requests that waited for the provider's bucket to refill (x-ratelimit headers)

    # ---- sending ---------------------------------------------------------------------------------------------
    def acquire(self, deadline: float | None = None) -> Ticket | None:
        """Wait for a place (window, pause, pacing, provider budget); None once the run stops, or once `deadline`
        (the row's, on this clock) passes first: a pause never outlasts the row that waits for it."""
        paced = False
        with self._cv:
            while True:
                if self.stop.is_set():
                    return None
                now = self.clock()
                if deadline is not None and now >= deadline:
                    return None
                wait = self.wait(now)
                if wait == 0:
                    return self.take(now, paced)
                paced = paced or (self.adaptive and self._budget_wait(now) > 0)
                self._cv.wait(min(wait, 0.5) if deadline is None else max(0.0, min(wait, 0.5, deadline - now)))

    def wait(self, now: float) -> float:
        """Seconds until the next request may go out (0: now; math.inf: when an answer frees a place). With
        the lock held, or from a single thread (a simulation)."""
        if self.max_window is not None and self.in_flight >= max(1, math.floor(self.window)):
            return math.inf
        if not self.adaptive:
            return 0.0
        wait = max(self.paused_until - now, self.next_send_at - now, self._budget_wait(now))
        return wait if wait > 1e-6 else 0.0  # a microsecond is now (and rounding cannot keep it in the future)

    def _budget_wait(self, now: float) -> float:
        # The provider's bucket, by its headers: everybody waits for its refill (recomputed whenever an answer
        # brings fresher headers).
        return max(self.requests.wait(now, self.sent, 1.0), self.tokens.wait(now, self.sent, self._token_cost()))

    def take(self, now: float, paced: bool = False) -> Ticket:
        """The next request goes out now (`wait(now)` said 0); `paced`: it waited for the provider's bucket."""
        self.paced += paced
        ticket = Ticket(self.sent, now, room=self._fits(self.requests, now, 1.0))
        self.in_flight += 1
        self.sent += 1
        if self.adaptive and self.round_trip:
            # Paced at the window's rate (twice it in slow start), not in bursts: a burst of answers would
            # otherwise send a burst of requests, all of which a rate limit refuses before any 429 is seen.
            # Also while headers show room: they may claim more than the limiter grants.
            gain = SLOW_START_GAIN if self.window < self.threshold else STEADY_GAIN
            self.next_send_at = max(now, self.next_send_at) + self.round_trip / (gain * self.window)
        if self.adaptive and self._refill_paces():
            self.next_send_at = max(self.next_send_at, now + 1 / self.refill)
        return ticket

    def _refill_paces(self) -> bool:
        """The refill measured from the 429s paces the requests where no header that is believed does."""
        return self.refill is not None and (self.requests.remaining is None or not self.requests.trusted)

    def _fits(self, budget: Budget, now: float, cost: float) -> bool:
        """The headers show clear room for one more request: a quarter of the limit (or one request) to spare
        beyond it, so that a refusal is a contradiction, not the model's few milliseconds of error."""
        left = budget.left(now, self.sent, cost)
        return left is not None and left >= cost + max(cost, ROOM_MARGIN * (budget.limit or 0.0))

    def release(self, ticket: Ticket, status: int | None, headers: Mapping[str, str] | None = None,
                retry_after: float | None = None, *, timed_out: bool = False) -> None:
        """The answer to `ticket` arrived (status None: no answer; `timed_out`: none within the judge timeout)."""
        with self._cv:
            self.in_flight -= 1
            self.limited += status == 429
            self.timed_out += timed_out
            if self.adaptive:
                now = self.clock()
                if headers is not None:
                    self._read_headers(ticket, headers)
                if status == 429:
                    self.requests.refused(ticket, room=ticket.room or self._claims_room(ticket))
                    # A request's tokens are only estimated (the mean so far): a refusal there is no contradiction.
                    self.tokens.refused(ticket)
                    self._measure_refill(ticket)
                    self.last_refused_at = now
                    self._cut(ticket)
                elif timed_out:
                    # A server that answers one request at a time queues the rest: the time-outs are its 429s.
                    self._cut(ticket)
                elif status is not None and 200 <= status < 300:
                    elapsed = max(0.0, now - ticket.sent_at)
                    self.round_trip = elapsed if self.round_trip is None else \
                        (1 - RTT_WEIGHT) * self.round_trip + RTT_WEIGHT * elapsed
                    self._grow(room=self._room())
                    if self._refill_paces() and self.probe_after_s is not None \
                            and now - self.last_refused_at >= self.probe_after_s:
                        self.refill *= PROBE_GAIN  # no 429 for that long: the floor was low; the next 429 says
                        self.last_refused_at = now
                if retry_after is not None and status in (429, 503) and retry_after > 0:
                    if status == 429 and self._refill_paces() and _whole_seconds(headers, retry_after):
                        # A whole-second Retry-After is rounded up (a bucket of 20 a second needs 50 ms, and says
                        # 1): the wait lies within its last second, where the measured refill says where.
                        retry_after = max(retry_after - 1, min(retry_after, 1 / self.refill))
                    until = now + min(retry_after, MAX_PAUSE_S)
                    if status == 429:
                        self._paused_after[ticket.seq] = until - now
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
    def _grow(self, room: bool = False) -> None:
        if self.window >= self.max_window:
            return
        fast = room or self.window < self.threshold
        # Above one request in flight: one more per round trip. Below it (pacing only) the window grows in
        # proportion to itself, which the same answers at this slower pace make about as gentle.
        step = 1.0 if fast else min(1.0, self.window) / self.window
        self.window = min(self.max_window, self.window + min(step, max(self.window, MIN_WINDOW)))
        self.largest = max(self.largest, self.window)

    def _claims_room(self, ticket: Ticket) -> bool:
        """This 429's own headers show clear room for the request it refused (requests to spare, and its tokens if
        told): the provider contradicts itself, and its 429 is the one to believe."""
        requests, tokens = self.requests, self.tokens
        if requests.as_of_seq != ticket.seq or requests.remaining is None:
            return False
        cost = self._token_cost()
        if tokens.as_of_seq == ticket.seq and tokens.remaining is not None and (not cost or tokens.remaining < 2 * cost):
            return False  # perhaps refused for its tokens, which its headers show short (or of unknown cost)
        return requests.remaining >= 1.0 + max(1.0, ROOM_MARGIN * (requests.limit or 0.0))

    def _room(self) -> bool:
        """The provider's headers show more left than the requests in flight would take."""
        left = self.requests.left(self.clock(), self.sent, 1.0)
        return left is not None and left >= self.in_flight + 1

    def _measure_refill(self, ticket: Ticket) -> None:
        """A 429 says the bucket was empty when its request arrived; so did an earlier one. The requests sent
        between them and let through are what the bucket refilled in between (give or take the one it held):
        their rate is the limiter's, whatever its headers claim."""
        earlier = next((old for old in reversed(self._refusals)
                        if old.seq < ticket.seq and ticket.sent_at - old.sent_at >= REFILL_SPAN_S), None)
        if earlier is not None:
            refused_between = sum(earlier.seq < old.seq < ticket.seq for old in self._refusals)
            granted = ticket.seq - earlier.seq - 1 - refused_between
            if granted >= REFILL_GRANTS:
                self.refill = granted / (ticket.sent_at - earlier.sent_at)
                pause = self._paused_after.get(earlier.seq, 0.0)
                self.probe_after_s = PROBE_AFTER_PAUSES * pause if pause > 2 / self.refill else None
        self._refusals.append(ticket)
        known = {old.seq for old in self._refusals}
        self._paused_after = {seq: pause for seq, pause in self._paused_after.items() if seq in known}

    def _cut(self, ticket: Ticket) -> None:
        if ticket.seq <= self.last_cut_seq:  # sent before the last cut: the same burst, already answered
            return
        if self._refill_paces():
            return  # the 429 measured the limiter's refill, which now paces the requests: the window need not hold them
        self.threshold = max(MIN_WINDOW, self.window * DECREASE)
        self.window = self.threshold
        self.last_cut_seq = self.sent - 1
        self.cuts += 1
        self.smallest = min(self.smallest, self.window)

    def _read_headers(self, ticket: Ticket, headers: Mapping[str, str]) -> None:
        said = self.requests.update(
            ticket, _number(limit_header(headers, "x-ratelimit-limit-requests")),
            _number(limit_header(headers, "x-ratelimit-remaining-requests")),
            parse_duration(limit_header(headers, "x-ratelimit-reset-requests")))
        self.tokens.update(
            ticket, _number(limit_header(headers, "x-ratelimit-limit-tokens")),
            _number(limit_header(headers, "x-ratelimit-remaining-tokens")),
            parse_duration(limit_header(headers, "x-ratelimit-reset-tokens")))
        # Room for the whole window: the limit is far above demand, so skip the slow start.
        if said and self.requests.trusted and self.requests.remaining is not None \
                and self.requests.remaining >= self.max_window and self.window < self.threshold:
            self.window = float(self.max_window)
            self.largest = self.window

    def _token_cost(self) -> float:
        spent, count = self._token_costs
        return spent / count if count else 0.0

    # ---- reporting -------------------------------------------------------------------------------------------
    def note(self) -> str | None:
        """One line when the provider limited the run (None otherwise)."""
        if not self.limited and not self.pauses and not self.paced and not self.timed_out:
            return None
        parts = [f"{self.limited} of {self.sent} requests answered 429 (rate limit)"]
        if self.timed_out:
            parts.append(f"{self.timed_out} requests timed out")
        if self.adaptive:
            parts.append(f"concurrency adapted between {math.floor(self.smallest)} and {math.floor(self.largest)} "
                         f"(ended at {math.floor(self.window)})")
            if self.pauses:
                parts.append(f"paused {self.pauses} times ({self.paused_s:.1f} s in all) on Retry-After")
            if self.refill is not None:
                parts.append(f"paced by the refill its 429s measured (last {self.refill:.1f} requests/s)")
            if self.paced:
                parts.append(f"{self.paced} requests waited for the provider's x-ratelimit budget to refill")
        return "; ".join(parts)
