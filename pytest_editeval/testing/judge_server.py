"""A real OpenAI-compatible chat-completions server on 127.0.0.1, for tests and benchmarks.

Its answers are deterministic and computable from the request (`rule_scores`), so tests can check exact
end-to-end scores. Faults can be queued (`faults`), one per incoming request: an HTTP status with headers,
a hang, a dropped connection, a non-JSON body, or an arbitrary reply text. `down()` / `up()` stop and restart
listening on the same port. Only loopback is ever bound.
A /health route answers 200 (vLLM's health check); an empty `api_key` accepts any request, as vLLM without a key
does. `_scaffold/stand_in_vllm.py` runs this server as a stand-in for `vllm serve`.

Like OpenAI, every answer reports its `usage` (prompt and completion tokens, estimated from the request's text
and images and the reply's length; `usage=False` leaves it out). `rate_limit=R` puts the server behind a token
bucket of R requests a second (`burst`, default R, requests at once): beyond it, 429 with Retry-After
(`retry-after-ms` too), and every answer carries OpenAI's `x-ratelimit-limit/remaining/reset-requests` headers
(`rate_headers=False` leaves them out); `token_rate_limit` does the same for tokens a second. `limiter` picks
how the limit is told, as providers and gateways do: "bucket" (the above), "retry-after" (a 429 says only
`Retry-After` in whole seconds, the HTTP standard's form; no other header), "litellm" (the bucket's headers as a
LiteLLM proxy passes them on: each renamed `llm_provider-NAME`) and "overstated" (headers that claim more room
than the bucket has: 60 x R a minute, reset in 1 s, with `Retry-After: 1` on a 429). `serial=True` answers one
request at a time, as a server without batching does: requests queue for it, and one the client gave up on
still takes its turn. `noisy(...)` makes a scoring rule that varies with the request's seed, as a sampling judge
does.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import math
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SC_MARKER = "Editing instruction: "


@dataclass
class JudgeCall:
    aspect: str  # "semantic_consistency" | "perceptual_quality"
    instruction: str | None
    prompt: str
    image_urls: list[str]
    text_first: bool
    body: dict
    authorized: bool
    path: str = "/v1/chat/completions"  # the request's path and query, as received
    arrived_at: float = field(default_factory=time.perf_counter)  # when the server received it

    @property
    def images(self) -> list[bytes]:
        """The images' bytes, decoded only when a scoring rule looks at them (keeps the server cheap)."""
        return [base64.b64decode(url.split(",", 1)[1]) for url in self.image_urls]


@dataclass
class Fault:
    # status | hang | drop | garbage | reply (a reply text) | body (a raw HTTP body, e.g. huge) | drip (the
    # headers at once, then the reply one byte every `seconds`: each read is quick, the answer never ends)
    kind: str
    status: int = 500
    headers: dict = field(default_factory=dict)
    seconds: float = 0.0
    text: str = ""


def mean_rgb(image: bytes) -> list[float]:
    from PIL import Image, ImageStat

    with Image.open(io.BytesIO(image)) as img:
        return ImageStat.Stat(img.convert("RGB")).mean


def mean_red(image: bytes) -> float:
    return mean_rgb(image)[0]


def rule_scores(call: JudgeCall) -> list[float]:
    """SC from a hash of the instruction; PQ from the edited image's red level (see gedit_factory.edited_red)."""
    if call.aspect == "semantic_consistency":
        h = int(hashlib.sha256((call.instruction or "").encode()).hexdigest()[:8], 16)
        return [float(h % 11), float((h // 11) % 11)]
    bucket = max(0, min(8, round((mean_red(call.images[-1]) - 12) / 25)))
    return [float(bucket + 2), float(10 - bucket)]


def json_reply(scores: list[float], call: JudgeCall) -> str:
    return json.dumps({"score": [int(s) if float(s).is_integer() else s for s in scores],
                       "reasoning": f"judged {call.aspect}"})


def judge_call(texts: list[str], image_urls: list[str], text_first: bool, body: dict, authorized: bool = True,
               path: str = "/v1/chat/completions") -> JudgeCall:
    """What a request asks, as the scoring rules see it: the aspect and instruction come from its first text."""
    prompt = texts[0] if texts else ""
    aspect = "semantic_consistency" if SC_MARKER in prompt else "perceptual_quality"
    instruction = prompt.split(SC_MARKER, 1)[1].rstrip("\n") if aspect == "semantic_consistency" else None
    return JudgeCall(aspect, instruction, prompt, image_urls, text_first, body, authorized, path)


def reply_for_request(request, scores: Callable[[JudgeCall], list[float]] = rule_scores,
                      reply: Callable[[list[float], JudgeCall], str] = json_reply) -> str:
    """This server's reply to a backend-neutral request (texts and judges.requests.PreparedImage parts, in
    order): what the tests' scripted in-process judge says, so that its scores equal the HTTP judge's."""
    texts = [part for part in request if isinstance(part, str)]
    urls = [part.data_url for part in request if not isinstance(part, str)]
    call = judge_call(texts, urls, bool(request) and isinstance(request[0], str), {})
    return reply(scores(call), call)


def noisy(rule: Callable[[JudgeCall], list[float]] = rule_scores, amplitude: int = 2, salt: str = "",
          high: float = 10.0) -> Callable[[JudgeCall], list[float]]:
    """A scoring rule that, like a sampling judge, answers a request differently for each seed: `rule`'s scores
    each moved by a whole number in -amplitude..amplitude drawn from (request, seed, salt), kept in 0..high.
    Two servers with different salts are two re-judgings by the same judge."""
    import random

    def scores(call: JudgeCall) -> list[float]:
        base = rule(call)
        images = hashlib.sha256("".join(call.image_urls).encode()).hexdigest()
        what = json.dumps([call.prompt, call.instruction, images, call.body.get("seed"), salt])
        rnd = random.Random(hashlib.sha256(what.encode()).hexdigest())
        return [float(min(high, max(0.0, v + rnd.randint(-amplitude, amplitude)))) for v in base]

    return scores


def usage_of(call: JudgeCall, reply: str) -> dict:
    """Token counts as an OpenAI-like server would report them: about 4 characters a token, 85 an image."""
    prompt = sum(len(p.get("text", "")) for p in call.body["messages"][0]["content"] if isinstance(p, dict)) // 4
    return {"prompt_tokens": prompt + 85 * len(call.image_urls), "completion_tokens": max(1, len(reply) // 4),
            "total_tokens": prompt + 85 * len(call.image_urls) + max(1, len(reply) // 4)}


class TokenBucket:
    """`rate` a second, `burst` at once; `take` at a request's arrival: (granted, headers to send)."""

    def __init__(self, rate: float, burst: float | None, kind: str,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self.kind = kind  # requests | tokens
        self.clock = clock  # a test's fake clock simulates a provider without waiting for it
        self.level = self.burst
        self.at = clock()

    def _refill(self) -> None:
        now = self.clock()
        self.level = min(self.burst, self.level + (now - self.at) * self.rate)
        self.at = now

    def take(self, cost: float) -> tuple[bool, float]:
        """(granted, seconds until `cost` would fit)."""
        self._refill()
        if self.level >= cost:
            self.level -= cost
            return True, 0.0
        return False, (cost - self.level) / self.rate

    def headers(self) -> dict:
        return {f"x-ratelimit-limit-{self.kind}": str(int(self.burst)),
                f"x-ratelimit-remaining-{self.kind}": str(int(self.level)),
                f"x-ratelimit-reset-{self.kind}": f"{(self.burst - self.level) / self.rate:.3f}s"}


class JudgeServer:
    def __init__(self, api_key: str = "test-key", latency: float = 0.0,
                 scores: Callable[[JudgeCall], list[float]] = rule_scores,
                 reply: Callable[[list[float], JudgeCall], str] = json_reply, *, usage: bool = True,
                 rate_limit: float | None = None, burst: float | None = None, rate_headers: bool = True,
                 token_rate_limit: float | None = None, token_burst: float | None = None,
                 limiter: str = "bucket", serial: bool = False, port: int = 0) -> None:
        if limiter not in LIMITER_SHAPES:
            raise ValueError(f"limiter {limiter!r}: one of {', '.join(LIMITER_SHAPES)}")
        self.api_key = api_key
        self.limiter = limiter
        self.serial = threading.Lock() if serial else None  # held while a request is answered
        self.latency = latency
        self.scores = scores
        self.reply = reply
        self.usage = usage
        self.requests_bucket = TokenBucket(rate_limit, burst, "requests") if rate_limit else None
        self.tokens_bucket = TokenBucket(token_rate_limit, token_burst, "tokens") if token_rate_limit else None
        self.rate_headers = rate_headers
        self.limited = 0  # requests answered 429 by the rate limit
        self.granted_at: list[float] = []  # time.perf_counter() of each request the rate limit let through
        self.faults: deque[Fault] = deque()
        self.calls: list[JudgeCall] = []
        self.lock = threading.Lock()
        self.port = port  # 0: a free port, chosen when it first comes up (then kept by down() / up())
        self.first_request_at: float | None = None  # time.perf_counter() of the first request received
        self.last_response_at: float | None = None  # ... and of the last answer sent
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def count(self) -> int:
        with self.lock:
            return len(self.calls)

    def __enter__(self) -> JudgeServer:
        return self.up()

    def __exit__(self, *exc) -> None:
        self.down()

    def up(self) -> JudgeServer:
        handler = _make_handler(self)
        server = _QuietServer(("127.0.0.1", self.port), handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def handle(self, body: dict, authorized: bool, path: str = "/v1/chat/completions"
               ) -> tuple[int, dict, bytes, float, bool]:
        """(status, headers, payload, delay, drop) for one request."""
        content = body["messages"][0]["content"]
        texts = [p["text"] for p in content if p.get("type") == "text"]
        images = [p["image_url"]["url"] for p in content if p.get("type") == "image_url"]
        call = judge_call(texts, images, content[0].get("type") == "text", body, authorized, path)
        with self.lock:
            if self.first_request_at is None:
                self.first_request_at = time.perf_counter()
            self.calls.append(call)
            fault = self.faults.popleft() if self.faults else None
            limited = self._rate_limit(call, fault) if authorized else None
        if not authorized:
            return 401, {}, b'{"error": {"message": "Incorrect API key provided"}}', self.latency, False
        if limited is not None and limited[0] == 429:  # a rate limiter answers at once
            return 429, limited[1], b'{"error": {"message": "Rate limit reached", "type": "requests"}}', 0.0, False
        rate_headers = limited[1] if limited is not None else {}
        delay = self.latency
        if fault is not None:
            if fault.kind == "status":
                body = fault.text.encode() if fault.text else b'{"error": {"message": "injected"}}'
                return fault.status, fault.headers, body, delay, False
            if fault.kind == "hang":
                delay += fault.seconds
            if fault.kind == "drop":
                return 0, {}, b"", delay, True
            if fault.kind == "garbage":
                return 200, {}, b"<html>bad gateway</html>", delay, False
            if fault.kind == "body":
                return 200, {}, fault.text.encode(), delay, False
            if fault.kind == "drip":
                return 200, {"x-drip-seconds": str(fault.seconds)}, b"", delay, False
        text = fault.text if fault is not None and fault.kind == "reply" else self.reply(self.scores(call), call)
        payload = {"id": "cmpl-test", "object": "chat.completion", "model": body.get("model"),
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                "finish_reason": "stop"}]}
        if self.usage:
            payload["usage"] = usage_of(call, text)
        return 200, rate_headers, json.dumps(payload).encode(), delay, False

    def _rate_limit(self, call: JudgeCall, fault) -> tuple[int, dict] | None:
        """(200 or 429, headers) under the rate limit (None without one); called with the lock held."""
        if self.requests_bucket is None and self.tokens_bucket is None:
            return None
        headers: dict = {}
        waits = []
        cost = None
        if self.tokens_bucket is not None:  # what the reply will count, known here (the rules are deterministic)
            text = fault.text if fault is not None and fault.kind == "reply" else self.reply(self.scores(call), call)
            usage = usage_of(call, text)
            cost = usage["prompt_tokens"] + usage["completion_tokens"]
        buckets = [(b, c) for b, c in ((self.requests_bucket, 1.0), (self.tokens_bucket, cost)) if b is not None]
        for bucket, need in buckets:  # look before taking: a refused request costs nothing
            bucket._refill()
            if bucket.level < need:
                waits.append((need - bucket.level) / bucket.rate)
        if not waits:
            for bucket, need in buckets:
                bucket.take(need)
            self.granted_at.append(time.perf_counter())
        if self.rate_headers:
            for bucket, _ in buckets:
                headers.update(bucket.headers())
        if waits:
            self.limited += 1
            wait = max(waits)
            headers["retry-after-ms"] = str(max(1, round(wait * 1000)))
            headers["retry-after"] = str(max(1, math.ceil(wait)))
        return (429 if waits else 200), self._shaped(headers, bool(waits))

    def _shaped(self, headers: dict, refused: bool) -> dict:
        """The limiter's headers as this server's `limiter` shape tells them (see the module docstring)."""
        if self.limiter == "retry-after":
            return {"retry-after": headers["retry-after"]} if refused else {}
        if self.limiter == "litellm":
            return {f"llm_provider-{name}": value for name, value in headers.items()}
        if self.limiter == "overstated" and self.requests_bucket is not None:
            claimed = 60 * self.requests_bucket.rate  # a minute's worth, said to come back within a second
            shown = {"x-ratelimit-limit-requests": str(int(claimed)),
                     "x-ratelimit-remaining-requests": str(int(claimed - self.requests_bucket.burst
                                                               + self.requests_bucket.level)),
                     "x-ratelimit-reset-requests": "1s"}
            return {**shown, "retry-after": "1"} if refused else shown
        return headers


LIMITER_SHAPES = ("bucket", "retry-after", "litellm", "overstated")


class _QuietServer(ThreadingHTTPServer):
    allow_reuse_address = True
    # socketserver's default backlog of 5 drops connections that arrive together (64 workers opening theirs at
    # once), and the client's kernel retries them only after a second: a stall no real server has.
    request_queue_size = 256

    def handle_error(self, request, client_address) -> None:
        # A client that stops mid-request (a run stopped at once, a timeout) is normal here, not a crash.
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def _make_handler(judge: JudgeServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body in one write (the server flushes after each request), as real servers send them: written
        # apart, the body waits for the client's delayed ACK of the headers (Nagle), 40 ms on every answer, a 429
        # included, a stall no real server has.
        wbufsize = -1

        def log_message(self, *args) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:
            # vLLM's health check: 200 once the server serves (the stand-in listens only then).
            self._send(200 if self.path == "/health" else 404, {}, b"")

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            raw = self.rfile.read(length)
            # OpenAI's layout, and Azure's (/v1/deployments/NAME/chat/completions?api-version=...)
            route = self.path.split("?", 1)[0].rstrip("/")
            if not re.fullmatch(r"/v1(/deployments/[^/]+)?/chat/completions", route):
                self._send(404, {}, b'{"error": "not found"}')
                return
            authorized = (not judge.api_key or self.headers.get("authorization") == f"Bearer {judge.api_key}"
                          or self.headers.get("api-key") == judge.api_key)
            with judge.serial or contextlib.nullcontext():  # one request at a time, queued in arrival order
                try:
                    status, headers, payload, delay, drop = judge.handle(json.loads(raw), authorized, self.path)
                except Exception as exc:  # a malformed request is the client's bug: say so loudly
                    self._send(400, {}, json.dumps({"error": repr(exc)}).encode())
                    return
                if delay:
                    time.sleep(delay)
            if drop:
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            drip = headers.pop("x-drip-seconds", None)
            if drip is not None:
                self._drip(float(drip))
                return
            self._send(status, headers, payload)
            with judge.lock:
                judge.last_response_at = time.perf_counter()

        def _drip(self, seconds: float) -> None:
            """Headers at once, then a chat completion's body one byte every `seconds` (stops when the client
            goes away)."""
            payload = b'{"choices": [{"message": {"content": "' + b" " * 4096 + b'[5, 5]"}}]}'
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.flush()
            for i in range(len(payload)):
                self.wfile.write(payload[i:i + 1])
                self.wfile.flush()
                time.sleep(seconds)

        def _send(self, status: int, headers: dict, payload: bytes) -> None:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

    return Handler

