"""The `openai` judge backend: any OpenAI-compatible chat-completions endpoint over HTTP, with bounded, classified
retries. A question (texts and images in order) becomes one user message whose content parts keep that order;
images travel as base64 data URLs.

Faults are sorted into three kinds:
- fatal for the run (JudgeFatalError): 401/403 wrong key, 404 wrong URL or model, a redirect (never followed:
  the key must not travel to a place the user did not name), a judge that was never reachable, or one whose
  first answers were all the same failure (a wrong model's 400, a 500 to everything: first_answers.py).
  Failing every item one by one would waste time and hide the cause.
- transient (retried with exponential backoff, honouring Retry-After): 408/409/425/429/5xx, timeouts, dropped
  connections, a 200 whose body is not the expected JSON, and connection errors once the judge has answered
  at least once (it went down mid-run and may come back).
- row errors (SampleError): whatever is still failing after the bounded retries, other 4xx such as a content
  filter's 400, an answer over 4 MiB, and replies with no readable score after the bounded re-asks.

Every attempt has a total deadline, the judge timeout (httpx's own timeouts bound each read: a server that sends a
byte a second would never time out), and the row deadline bounds the whole row: waits for a place, Retry-After
pauses and retries included. Reply texts have the key (and the URL's query values) redacted, then are capped at
64 KiB (marked where cut), before they are parsed or stored anywhere. Each reply's
`usage` (prompt and completion tokens) is kept with it and summed per client. How many requests are in flight
is decided by rate.RateControl: adapted to the provider's rate limit (429s, Retry-After, x-ratelimit headers), or
fixed at --editeval-judge-workers.
"""

from __future__ import annotations

import email.utils
import json
import math
import random
import re
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pytest_editeval.errors import JudgeFatalError, SampleError
from pytest_editeval.judges import Answer
from pytest_editeval.judges.first_answers import FirstAnswers
from pytest_editeval.judges.rate import RateControl, limit_header
from pytest_editeval.judges.requests import Request
from pytest_editeval.judges.settings import (
    JudgeFacts,
    JudgeSettings,
    JudgeSpec,
    cleartext_problem,
    credentials_problem,
    public_url,
    url_fault,
)
from pytest_editeval.options.types import Option, url

if TYPE_CHECKING:  # httpx is imported on the first real request only (cached runs never need it)
    import httpx

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
FATAL_STATUS = {401, 403, 404}
REDIRECT_STATUS = {301, 302, 303, 307, 308}
MAX_BODY_BYTES = 4 << 20  # a chat completion is a few KB; anything near this is not one
MAX_REPLY_BYTES = 64 << 10
MAX_BACKOFF_S = 60.0
# Before the judge has ever answered, give up on connection errors quickly: it is most likely a wrong URL
# or a server that is not up, and the user should hear so at once.
INITIAL_CONNECT_ATTEMPTS = 3
# A request the provider keeps rate-limiting (adaptive concurrency: 429s spend no retry) gives up after this many.
MAX_RATE_LIMITED = 50


KEY_VARIABLE = "EDITEVAL_JUDGE_API_KEY"
URL_VARIABLE = "EDITEVAL_JUDGE_URL"
MODEL_VARIABLE = "EDITEVAL_JUDGE_MODEL"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")

OPTIONS = (
    Option("judge-url", "OpenAI-compatible base URL of the judge (or EDITEVAL_JUDGE_URL); /chat/completions is "
           "appended to its path, a query (?api-version=...) is kept", url, metavar="URL", field="url",
           one_judge=True),
    Option("judge-allow-http", "allow a plain http:// judge URL to a host that is not this machine (the key then "
           "travels in clear)", None, flag=True, field="allow_http", panel_key="allow_http", one_judge=True),
    # In a panel file the URL and the key are never written: the names of the variables that hold them are.
    Option("url-variable", "the environment variable holding the judge's URL (a panel key)", panel_key="url_variable",
           panel_only=True, default=URL_VARIABLE),
    Option("key-variable", "the environment variable holding the judge's key (a panel key)", panel_key="key_variable",
           panel_only=True, default=KEY_VARIABLE),
)


def configure(spec: JudgeSpec, facts: JudgeFacts) -> JudgeSpec:
    """The endpoint and key of the judge: from --editeval-judge-url (or EDITEVAL_JUDGE_URL) and
    EDITEVAL_JUDGE_API_KEY, or, for a panel's judge, from the variables its table names."""
    if facts.panel_entry is not None:
        return spec.with_values(http=_panel_http(facts.panel_entry, spec, facts.env, facts.bad))
    from pytest_editeval.errors import InputError

    model = spec.model or facts.env.get(MODEL_VARIABLE) or facts.default_model
    spec = spec.with_values(model=model)
    address = spec.values.get("url") or facts.env.get(URL_VARIABLE)
    if not address:
        raise InputError(f"no judge URL: pass --editeval-judge-url (an OpenAI-compatible base URL) or set {URL_VARIABLE}")
    try:
        address = url(address)
    except Exception as exc:  # argparse.ArgumentTypeError from the environment value
        raise InputError(f"{URL_VARIABLE}: {exc}") from None
    # Decided on the URL alone, before any connection or DNS lookup.
    problem = None if spec.values.get("allow_http") else cleartext_problem(address)
    if problem:
        raise InputError(problem)
    key = facts.env.get(KEY_VARIABLE, "").strip()
    if not key:
        raise InputError(f"no judge API key: set {KEY_VARIABLE} in the environment or in a .env file "
                         "(use any non-empty value for a local server that needs none)")
    return spec.with_values(http=JudgeSettings.of(spec, url=address, api_key=key))  # top_k: not an OpenAI parameter


def _panel_http(entry, spec: JudgeSpec, env, bad) -> JudgeSettings:
    url_variable = entry.get("url_variable", URL_VARIABLE)
    key_variable = entry.get("key_variable", KEY_VARIABLE)
    for key, variable in (("url_variable", url_variable), ("key_variable", key_variable)):
        if not isinstance(variable, str) or not _ENV_NAME.fullmatch(variable):
            # never echoed: a URL or a key pasted here by mistake must not reach a CI log
            raise bad(key, "expected the name of an environment variable (letters, digits and _, e.g. "
                           "OPENAI_API_KEY), not its value")
    address = env.get(url_variable, "").strip()
    if not address:
        raise bad("url_variable", f"the environment variable {url_variable} (or a .env line) holds no URL")
    try:
        parts = urlsplit(address)
        parts.port  # noqa: B018 -- reading it checks it (a port out of range raises)
    except ValueError as exc:  # the message names the fault, never the URL (it may hold credentials)
        raise bad("url_variable", f"{url_variable} does not hold a valid URL: {url_fault(exc)}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise bad("url_variable", f"{url_variable} does not hold an http(s) URL")
    if credentials_problem(address):
        raise bad("url_variable", credentials_problem(address))
    allow_http = entry.get("allow_http", False)
    if not isinstance(allow_http, bool):
        raise bad("allow_http", f"{allow_http!r} must be true or false")
    if not allow_http:
        problem = cleartext_problem(address)
        if problem:
            raise bad("url_variable", f"{problem} (allow_http = true in the panel file accepts it)")
    key = env.get(key_variable, "").strip()
    if not key:
        raise bad("key_variable", f"the environment variable {key_variable} (or a .env line) holds no key (use any "
                                  "non-empty value for a local server that needs none)")
    return JudgeSettings.of(spec, url=address, api_key=key)


def create(spec: JudgeSpec, *, stop: threading.Event, max_in_flight: int, **_) -> "JudgeClient":
    return JudgeClient(spec.http, stop=stop, max_in_flight=max_in_flight, recipe=spec.recipe)


def _usage(body: dict) -> dict | None:
    """The reply's token counts, if the server reported them as OpenAI does."""
    usage = body.get("usage") if isinstance(body, dict) else None
    if not isinstance(usage, dict):
        return None
    counts = {name: usage.get(name) for name in ("prompt_tokens", "completion_tokens")}
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts.values()):
        return None
    return counts


class JudgeClient:
    """Thread-safe: one instance serves all the scheduler's worker threads."""

    backend = "openai"
    deterministic = False  # even at temperature 0 a served model may answer differently

    def __init__(self, settings: JudgeSettings, stop: threading.Event | None = None,
                 max_in_flight: int | None = None, recipe: str | None = None) -> None:
        self.settings = settings
        self.recipe = recipe
        self.stop = stop or threading.Event()
        # Requests in flight are capped here, not by the number of threads: threads beyond the cap prepare
        # the next rows' images (CPU) while the judge works on the current ones (network).
        self.rate = RateControl(max_in_flight or None, adaptive=settings.concurrency == "adaptive", stop=self.stop)
        self.requests_sent = 0
        self.prompt_tokens = 0
        self.replies_without_usage = 0  # a provider that reports no usage: its tokens are unknown, never guessed
        self.completion_tokens = 0
        self._answered_once = False
        self._first_answers = FirstAnswers()  # a run whose every first request fails the same way stops
        self._lock = threading.Lock()
        self._client: "httpx.Client | None" = None
        self._backend = None  # the client's InterruptibleBackend, once the client exists
        self.fatal: JudgeFatalError | None = None  # once set, every request raises it

    @property
    def _http(self) -> "httpx.Client":
        """Created on the first request: a fully cached run never sets up TLS or a connection pool."""
        import httpx

        from pytest_editeval.judges.transport import interruptible_transport

        with self._lock:
            if self._client is None:
                limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
                transport, self._backend = interruptible_transport(limits=limits)
                # Redirects are never followed: the key must not travel to a place the user did not name.
                self._client = httpx.Client(timeout=self.settings.timeout_s, headers=self.settings.auth_headers(),
                                            transport=transport, follow_redirects=False)
            return self._client

    def interrupt(self) -> None:
        """Stop: no new request goes out, and requests in flight fail at once (their threads can be joined)."""
        self.stop.set()
        self.rate.wake()
        with self._lock:
            backend = self._backend
        if backend is not None:
            backend.interrupt()

    def fail(self, error: JudgeFatalError) -> None:
        """From outside (a managed server that died): every request in flight or still to come raises `error`."""
        with self._lock:
            if self.fatal is None:
                self.fatal = error
        self.interrupt()

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    # ---- the Judge interface -------------------------------------------------------------------------------
    @property
    def parse_retries(self) -> int:
        return self.settings.parse_retries

    @property
    def row_deadline_s(self) -> float:
        return self.settings.row_deadline_s

    def answer(self, request: Request, deadline: float | None = None, sample: int = 0) -> Answer:
        return self.complete_answer(render_request(request), deadline, sample)

    def ask(self, request: Request, deadline: float | None = None, sample: int = 0) -> str:
        return self.answer(request, deadline, sample).text

    def identity(self, sample: int = 0) -> dict:
        return self.settings.identity(sample)

    def usage(self) -> dict:
        with self._lock:
            return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                    "requests": self.requests_sent}

    def describe(self) -> dict:
        s = self.settings
        return {"backend": self.backend, "model": s.model, "host": s.host, "endpoint": s.public_endpoint.split("?")[0],
                "recipe": self.recipe, "parameters": {k: v for k, v in s.request_parameters().items() if k != "model"}}

    def notes(self) -> list[str]:
        notes = [self.rate.note()]
        if self.replies_without_usage:  # no count here: xdist workers' notes are merged as one set of lines
            notes.append(f"judge {self.settings.model}: the provider sent replies without token usage; their tokens "
                         "are not in the token count or the cost")
        return [note for note in notes if note]

    def complete(self, content: list[dict], deadline: float | None = None) -> str:
        """The judge's reply text to one user message of `content` parts (transport retries included)."""
        return self.complete_answer(content, deadline).text

    def complete_answer(self, content: list[dict], deadline: float | None = None, sample: int = 0) -> Answer:
        deadline = deadline or time.monotonic() + self.settings.row_deadline_s
        payload = {**self.settings.request_parameters(sample), "messages": [{"role": "user", "content": content}]}
        return self._complete(payload, deadline)

    def _complete(self, payload: dict, deadline: float) -> Answer:
        import httpx

        s = self.settings
        last = "no attempt made"
        attempt = 0
        limited = 0  # answers 429 (rate limit) to this request
        while True:
            if self.stop.is_set():
                self._raise_stopped()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SampleError(f"judge gave no usable answer within the row deadline ({last})")
            retry_after: float | None = None
            timeout = min(s.timeout_s, remaining)
            try:
                response = self._post(payload, timeout, deadline)
            except _RowDeadlinePassed:
                raise SampleError(f"judge gave no usable answer within the row deadline ({last}; the rest of it was "
                                  "spent waiting for a place to send: Retry-After, rate limit or concurrency)") from None
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                last = f"cannot connect: {_reason(exc)}"
                if self.stop.is_set():  # our own interrupt broke the connection
                    self._raise_stopped()
                if not self._answered_once and attempt + 1 >= INITIAL_CONNECT_ATTEMPTS:
                    self._fatal(f"judge unreachable at {s.public_endpoint} ({last}); check --editeval-judge-url "
                                "and that the server is up", usage=False)
            except httpx.TimeoutException as exc:
                last = f"no complete answer within {timeout:g} s ({type(exc).__name__})"
            except httpx.TransportError as exc:
                last = f"connection failed: {_reason(exc)}"
            else:
                self._answered_once = True
                self._watch_first_answers(id(payload), response)
                outcome = self._read(response)
                if isinstance(outcome, Answer):
                    return outcome
                last, retry_after = outcome
                if response.status == 429 and self.rate.adaptive:
                    # A rate limit is a signal to wait, which the client's rate control acts on; it is not a fault
                    # of this request, so it spends no retry (the row deadline and a cap still bound it).
                    limited += 1
                    if limited > MAX_RATE_LIMITED:
                        raise SampleError(f"judge answered HTTP 429 (rate limit) {limited} times to one request")
                    delay = 0.0 if retry_after is not None else \
                        s.backoff_s * 2 ** min(limited - 1, 6) * (0.5 + random.random() / 2)
                    self.stop.wait(min(delay, MAX_BACKOFF_S, max(0.0, deadline - time.monotonic())))
                    continue
            attempt += 1
            if attempt > s.retries:
                raise SampleError(f"judge request failed after {attempt} attempts: {last}")
            if retry_after is not None and self.rate.adaptive:
                delay = 0.0  # the whole client is paused for it (rate.py): the retry waits for its place
            elif retry_after is not None:
                delay = retry_after
            else:
                delay = s.backoff_s * 2 ** (attempt - 1) * (0.5 + random.random() / 2)
            self.stop.wait(min(delay, MAX_BACKOFF_S, max(0.0, deadline - time.monotonic())))

    def _post(self, payload: dict, timeout: float, deadline: float | None = None) -> "_Reply":
        ticket = self.rate.acquire(deadline)
        if ticket is None:  # a fatal answer (or a stop) arrived while this request waited for its place
            if self.stop.is_set():
                self._raise_stopped()
            raise _RowDeadlinePassed
        # The attempt's whole exchange (connect, headers, body) ends by then, however slowly the judge sends.
        if deadline is not None:
            timeout = max(0.01, min(timeout, deadline - time.monotonic()))
        client = self._http  # made first: the backend exists from then on
        with self._backend.deadline(timeout) if self._backend is not None else nullcontext():
            return self._exchange(client, payload, timeout, ticket)

    def _exchange(self, client: "httpx.Client", payload: dict, timeout: float, ticket) -> "_Reply":
        import httpx

        with self._lock:  # counted once it may go out, not while it waits for its place
            self.requests_sent += 1
        status, headers, retry_after, timed_out = None, None, None, False
        try:
            with client.stream("POST", self.settings.endpoint, json=payload, timeout=timeout) as response:
                status = response.status_code
                if status in FATAL_STATUS or status in REDIRECT_STATUS:
                    self._fatal_status(response)  # before the place is freed: nothing else goes out
                headers = response.headers
                if status in RETRYABLE_STATUS or status >= 500:
                    retry_after = retry_after_seconds(headers)
                return _Reply(status, headers, _read_capped(response, MAX_BODY_BYTES), retry_after)
        except httpx.TimeoutException:
            timed_out = True  # a sign of load, as a 429 is (rate.py)
            raise
        finally:
            self.rate.release(ticket, status, headers, retry_after, timed_out=timed_out)

    def _watch_first_answers(self, request: int, reply: "_Reply") -> None:
        """Stop the run when the judge's first answers all fail the same way (first_answers.py)."""
        if 200 <= reply.status < 300:
            self._first_answers.succeeded()
            return
        if reply.status in (429, 503) or reply.retry_after is not None or reply.status < 400:
            return  # "later", not "never": a rate limit, a server still loading
        body = reply.body.decode("utf-8", errors="replace") if reply.body is not None else "(body over the cap)"
        line = self._first_answers.failed(request, f"HTTP {reply.status}: {self._excerpt(body)}")
        if line is not None:
            self._fatal(f"{line} from {self.settings.public_endpoint} (model {self.settings.model!r}); check "
                        "--editeval-judge-model and --editeval-judge-url", usage=True)

    def _read(self, reply: "_Reply") -> Answer | tuple[str, float | None]:
        """The reply (capped, with its usage), or (what went wrong, Retry-After seconds) for a retryable fault."""
        status = reply.status  # fatal statuses were handled in _post
        if status == 429 and reply.body is not None and b"insufficient_quota" in reply.body:
            self._fatal(f"judge quota exhausted: HTTP 429 insufficient_quota from {self.settings.public_endpoint}; "
                        "asking again will not help: check the account's plan and billing", usage=True)
        if status in RETRYABLE_STATUS or status >= 500:
            return f"HTTP {status}", reply.retry_after
        if reply.body is None:
            raise SampleError(f"judge answer larger than {MAX_BODY_BYTES >> 20} MiB: not read (HTTP {status})")
        text = reply.body.decode("utf-8", errors="replace")
        if status >= 400:
            raise SampleError(f"judge refused the request: HTTP {status}: {self._excerpt(text)}")
        try:
            body = json.loads(text)
            message = body["choices"][0]["message"]
            content = message.get("content")
        except (ValueError, RecursionError, KeyError, IndexError, TypeError, AttributeError):
            return f"HTTP {status} with a body that is not a chat completion: {self._excerpt(text)}", None
        usage = _usage(body)
        with self._lock:
            if usage is None:
                self.replies_without_usage += 1
            else:
                self.prompt_tokens += usage["prompt_tokens"]
                self.completion_tokens += usage["completion_tokens"]
        if usage is not None:
            self.rate.observe_tokens(usage["prompt_tokens"] + usage["completion_tokens"])
        # Redacted before it is stored anywhere (cache, results, report): a judge may echo the request's headers.
        return Answer(cap_reply(self.settings.redact(_message_text(content))), usage)

    def _fatal_status(self, response: "httpx.Response"):
        s, status = self.settings, response.status_code
        if status in REDIRECT_STATUS:
            location = public_url(response.headers.get("location", "")) or "(no Location header)"
            self._fatal(f"judge answered HTTP {status}, a redirect to {location}, from {s.public_endpoint}; the key "
                        "is never sent to a redirect target: put the final URL in --editeval-judge-url", usage=True)
        if status == 404:
            self._fatal(f"judge endpoint or model not found: HTTP 404 from {s.public_endpoint} (model {s.model!r}); "
                        "check --editeval-judge-url and --editeval-judge-model", usage=True)
        self._fatal(f"judge rejected the API key: HTTP {status} from {s.public_endpoint}; "
                    "check EDITEVAL_JUDGE_API_KEY (environment or .env)", usage=True)

    def _fatal(self, message: str, *, usage: bool):
        """Stop every other request (each would get the same answer) and raise the run-stopping error."""
        with self._lock:
            if self.fatal is None:
                self.fatal = JudgeFatalError(message, usage=usage)
        self.stop.set()
        raise self.fatal

    def _raise_stopped(self):
        if self.fatal is not None:
            raise self.fatal
        raise SampleError("run interrupted before the judge answered")

    def _excerpt(self, text: str, limit: int = 160) -> str:
        # Redacted before it is cut: a secret across the cut would otherwise survive minus its last characters.
        return repr(" ".join(self.settings.redact(text)[:4 * limit].split())[:limit])


@dataclass(frozen=True)
class _Reply:
    status: int
    headers: "httpx.Headers"
    body: bytes | None  # None: larger than MAX_BODY_BYTES, not read
    retry_after: float | None = None  # seconds, from a retryable answer's Retry-After


class _RowDeadlinePassed(Exception):
    """The row deadline passed while a request waited for its place (a Retry-After pause, the provider's budget)."""


def _read_capped(response: "httpx.Response", limit: int) -> bytes | None:
    """The body, or None once it passes `limit` bytes (a runaway or hostile server cannot exhaust memory)."""
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def cap_reply(text: str, limit: int = MAX_REPLY_BYTES) -> str:
    """The reply's first `limit` bytes of UTF-8, marked where it was cut: replies are stored in the cache, the
    JSON and the HTML, and parsed with regular expressions, so their size is bounded. A lone surrogate (a JSON
    "\\ud800" escape) cannot be written as UTF-8: it becomes "?"."""
    data = text.encode("utf-8", errors="replace")
    if len(data) <= limit:
        return data.decode("utf-8")
    kept = data[:limit].decode("utf-8", errors="ignore")
    return f"{kept}\n[reply cut: first {limit >> 10} KiB of {len(data):,} bytes kept]"


def _message_text(content: object) -> str:
    if isinstance(content, list):  # some servers return content parts; a text that is not a string is no text
        return "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return content if isinstance(content, str) else ""


def retry_after_seconds(headers: "httpx.Headers") -> float | None:
    # OpenAI's and Azure's retry-after-ms is finer than Retry-After; a LiteLLM proxy passes the provider's
    # hints renamed llm_provider-NAME.
    milliseconds = limit_header(headers, "retry-after-ms")
    if milliseconds:
        try:
            seconds = float(milliseconds) / 1000
        except ValueError:
            seconds = math.nan
        if math.isfinite(seconds):
            return max(0.0, seconds)
    value = limit_header(headers, "retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = None
    if seconds is not None:  # nan or inf: no usable hint
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:160]


def render_request(request: Request) -> list[dict]:
    """OpenAI chat content parts of a backend-neutral request, in its order; images as base64 data URLs."""
    return render(list(request), lambda image: image.data_url)


def render(parts: list[object], data_url) -> list[dict]:
    """OpenAI chat content parts of a question, in its order: texts as text parts, images as data URLs
    (`data_url(image_ref)` prepares each one)."""
    out = []
    for part in parts:
        if isinstance(part, str):
            out.append({"type": "text", "text": part})
        else:
            detail = getattr(part, "detail", None)
            out.append({"type": "image_url", "image_url": {"url": data_url(part), **({"detail": detail} if detail else {})}})
    return out
