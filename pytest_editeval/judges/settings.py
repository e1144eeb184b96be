"""The judge's settings (stdlib only: imported at configure time): `JudgeSpec`, the backend-neutral choice of a
run, and `JudgeSettings`, the connection and request settings of an OpenAI-compatible endpoint (the openai
backend's, and the vllm backend's once its server listens).

URLs are taken as users write them: a base URL (`https://host/v1`), the full endpoint
(`.../chat/completions`), or an Azure-style URL with a query (`.../deployments/gpt-4.1?api-version=2024-10-21`),
whose query is kept on the request. Query values can be credentials (`?key=...`), so they never appear in
messages, results or cache keys; neither does the API key (replies and error excerpts are redacted). A
user:password part is refused (`url_problem`): httpx would send it as Basic credentials in place of the key.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

CHAT_PATH = "/chat/completions"
DEFAULT_PORTS = {"http": 80, "https": 443}
MIN_REDACTED_KEY = 8  # shorter keys are placeholders (see JudgeSettings.redact)
# Azure OpenAI takes its key in an `api-key` header; everything else takes a bearer token.
AZURE_HOST_SUFFIXES = (".openai.azure.com", ".cognitiveservices.azure.com", ".services.ai.azure.com")


def is_loopback_host(host: str) -> bool:
    """Loopback by name or address, decided without any DNS lookup (a lookup could already leak the host)."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cleartext_problem(url: str) -> str | None:
    """Why sending a key to `url` would expose it (plain http to a host off this machine), else None."""
    parts = urlsplit(url)
    if parts.scheme == "http" and not is_loopback_host(parts.hostname or ""):
        return (f"judge URL {public_url(url)} is plain http to a host that is not this machine: the API key would "
                "travel in clear; use https://, or pass --editeval-judge-allow-http if that network is trusted")
    return None


def url_problem(url: str) -> str | None:
    """Why `url` cannot be a judge's URL (one sentence that never shows a secret it may hold), else None.

    A value that fails here is often not a URL at all but a key pasted into the wrong variable, or a credentialed
    URL with a typo: it is shown only as public_url shows it (no user:password, no query values), and not at all
    when it has no host. A URL with user:password is refused: httpx would send those as Basic credentials in
    place of the API key, silently."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- reading it checks it (a port out of range raises)
    except ValueError as exc:
        return f"not a valid URL: {url_fault(exc)}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        shown = repr(public_url(url)) if parts.hostname else f"the value ({len(url)} characters, not shown: it may be " \
                                                             "a key)"
        return f"{shown} is not an http(s) URL (e.g. https://dashscope.aliyuncs.com/compatible-mode/v1)"
    return credentials_problem(url)


def url_fault(exc: ValueError) -> str:
    """What urlsplit (or reading the port) found wrong; two of Python's messages quote a part of the value (which
    may be a secret): those are named instead."""
    text = str(exc)
    if "could not be cast" in text:
        return "Port is not a number"
    if "netloc" in text:
        return "its host has characters that change under NFKC normalization"
    return text


def credentials_problem(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        return (f"judge URL {public_url(url)} has a user:password part: it would be sent as Basic credentials in "
                "place of the API key; remove it and put the key in the key's environment variable")
    return None


def public_url(url: str) -> str:
    """`url` safe to print: no user:password, query values replaced by ***."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
    query = "&".join(f"{name}=***" for name, _ in parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def sample_seed(seed: int | None, sample: int) -> int | None:
    """The seed of a question's `sample`-th answer (--editeval-judge-samples): sample 0 keeps the judge's own seed
    (None stays None: one sample is asked exactly as before, with the same cache key); sample k > 0 is seeded
    seed + k (0 + k without a seed), as EditScore seeds its passes."""
    if sample == 0:
        return seed
    return (seed or 0) + sample


def _default(field_name: str):
    """A judge setting's default, as its option declares it (judges/options.py)."""
    from pytest_editeval.judges.options import SHARED

    return next(opt.default for opt in SHARED if opt.field == field_name)


@dataclass(frozen=True)
class JudgeSettings:
    url: str
    model: str
    api_key: str = field(repr=False)  # never shown: not in reprs, messages, reports or cache keys
    timeout_s: float = _default("timeout_s")
    max_tokens: int | None = 1400
    temperature: float | None = None
    retries: int = _default("retries")
    parse_retries: int = _default("parse_retries")
    backoff_s: float = _default("backoff_s")
    row_deadline_s: float = _default("row_deadline_s")
    # Sent only when set (a recipe's sampling, e.g. EditScore's): answers cached before they existed keep their keys.
    top_p: float | None = None
    top_k: int | None = None  # not an OpenAI parameter: only servers that take it (vLLM) are sent it
    seed: int | None = None
    concurrency: str = _default("concurrency")  # adaptive (AIMD on 429, rate-limit headers honoured) | fixed (rate.py)

    @classmethod
    def of(cls, spec: "JudgeSpec", *, url: str, api_key: str, model: str | None = None, top_k: bool = False):
        """The HTTP settings of `spec`'s judge at `url`: every setting JudgeSettings has, taken from the spec (one
        copy for every backend that asks over HTTP). top_k only where the server takes it (vLLM)."""
        names = {f.name for f in dataclasses.fields(cls)} - {"url", "model", "api_key", "top_k"}
        return cls(url=url, model=model or spec.model, api_key=api_key, top_k=spec.top_k if top_k else None,
                   **{name: getattr(spec, name) for name in names})

    @property
    def endpoint(self) -> str:
        """The chat-completions URL: `/chat/completions` appended to the path unless it is there, query kept."""
        parts = urlsplit(self.url)
        path = parts.path.rstrip("/")
        if not path.endswith(CHAT_PATH):
            path += CHAT_PATH
        return urlunsplit(parts._replace(path=path))

    @property
    def public_endpoint(self) -> str:
        """The endpoint safe to print: no user:password, no query values."""
        return public_url(self.endpoint)

    @property
    def host(self) -> str:
        return urlsplit(self.endpoint).hostname or ""

    def endpoint_identity(self) -> str:
        """Who answers, for the cache key: scheme, host, port and path, normalised so that one endpoint written
        two ways is one judge (`https://h/v1/` = `https://H:443/v1/chat/completions`); never credentials or
        query values."""
        parts = urlsplit(self.endpoint)
        port = parts.port or DEFAULT_PORTS.get(parts.scheme)
        return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}{parts.path}"

    def auth_headers(self) -> dict[str, str]:
        if self.host.endswith(AZURE_HOST_SUFFIXES):
            return {"api-key": self.api_key}
        return {"Authorization": f"Bearer {self.api_key}"}

    def redact(self, text: str) -> str:
        """`text` without the key or any query value of the URL (a server may echo either back). A key shorter than
        MIN_REDACTED_KEY characters is a stand-in for a local server that needs none ("x", "EMPTY"): replacing it
        would rewrite ordinary words and digits of every reply, so it is left as it is."""
        query = [value for _, value in parse_qsl(urlsplit(self.url).query) if len(value) >= 4]
        secrets = [*([self.api_key] if len(self.api_key) >= MIN_REDACTED_KEY else []), *query]
        for secret in sorted(filter(None, secrets), key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    def request_parameters(self, sample: int = 0) -> dict:
        """What every request sends besides its messages; `sample` picks the seed of a repeated question."""
        params: dict = {"model": self.model}
        if self.max_tokens is not None:
            params["max_tokens"] = self.max_tokens
        if self.temperature is not None:
            params["temperature"] = self.temperature
        seed = sample_seed(self.seed, sample)
        for name, value in (("top_p", self.top_p), ("top_k", self.top_k), ("seed", seed)):
            if value is not None:
                params[name] = value
        return params

    def identity(self, sample: int = 0) -> dict:
        """Everything about the judge that can change its answers (input of the cache key)."""
        return {"endpoint": self.endpoint_identity(), **self.request_parameters(sample)}


@dataclass(frozen=True)
class JudgeSpec:
    """The judge of a run, whatever its backend. The sampling values are the protocol's defaults under the user's
    options; every other judge setting (the shared ones of judges/options.py and the backend's own `OPTIONS`) is
    in `values`, by the field name its option declares, and read as an attribute (`spec.timeout_s`,
    `spec.serve_args`); one that is not set reads as its option's default."""

    backend: str  # a name of the judges registry (openai, transformers, vllm)
    model: str  # openai: the model name sent; transformers, vllm: a hub id or a local folder
    recipe: str  # the judging recipe (viescore, editscore, or a benchmark's own)
    max_tokens: int | None = None
    temperature: float | None = None  # None or 0: greedy
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    offline: bool = False
    worker_index: int = 0  # this process's xdist worker index: picks a local judge's default device
    http: JudgeSettings | None = field(default=None, repr=False)  # a judge asked over HTTP: its endpoint and key
    values: Mapping[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:  # only for names that are not dataclass fields
        if name.startswith("__"):
            raise AttributeError(name)
        values = self.__dict__.get("values", {})
        if name in values:
            return values[name]
        from pytest_editeval.judges import option_with_field

        opt = option_with_field(name)
        if opt is None:
            raise AttributeError(f"JudgeSpec has no setting {name!r}")
        return opt.default

    def with_values(self, **changes: Any) -> "JudgeSpec":
        """A copy with `changes`: dataclass fields replaced, judge settings put in `values`."""
        own = {f.name for f in dataclasses.fields(self)}
        fields = {k: v for k, v in changes.items() if k in own}
        values = {**self.values, **{k: v for k, v in changes.items() if k not in own}}
        return dataclasses.replace(self, **fields, values=values)

    @property
    def sampling(self) -> bool:
        return bool(self.temperature)

    def generation_parameters(self) -> dict:
        """The generation parameters that are set (recorded in results and cache keys)."""
        names = ("max_tokens", "temperature", "top_p", "top_k", "seed")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}


@dataclass(frozen=True)
class JudgeFacts:
    """What a backend's `configure` may need to know about the run besides the spec (settings.py fills it)."""

    env: Mapping[str, str] = field(default_factory=dict, repr=False)  # os.environ over .env files
    default_model: str = ""  # the benchmark's judge model (an openai judge without --editeval-judge-model)
    processes: int = 0  # pytest-xdist's -n (0: none)
    worker: str = "gw0"  # this process's xdist worker id
    panel: str | None = None  # "judge panel FILE" for a judge of a panel file, else None
    panel_entry: Mapping | None = field(default=None, repr=False)  # its [[judges]] table
    bad: Callable[[str, str], Exception] | None = field(default=None, repr=False)  # a panel key's error line

    @property
    def single_process(self) -> bool:
        return not self.processes and self.worker == "gw0"


def require_model(spec: JudgeSpec) -> None:
    """A backend that loads the judge model needs its name: there is no default to guess."""
    if not spec.model:
        from pytest_editeval.errors import InputError

        raise InputError(f"--editeval-judge-backend {spec.backend} needs --editeval-judge-model: a folder saved with "
                         "save_pretrained or a ModelScope / Hugging Face id, e.g. Qwen/Qwen2.5-VL-7B-Instruct")


def resolve_adapter(spec: JudgeSpec):
    """The judge's LoRA adapter folder (--editeval-judge-adapter: a folder or a hub id), or None without one; the
    in-process and the vllm backends load it alike. The hub code is imported only when an adapter is named."""
    if not spec.adapter:
        return None
    from pytest_editeval.data.hub import resolve
    from pytest_editeval.errors import InputError

    adapter = resolve(spec.adapter, spec.hub, "model", offline=spec.offline, option="--editeval-judge-adapter",
                      example="EditScore/EditScore-7B", what="judge adapter")
    if not (adapter / "adapter_config.json").is_file():
        raise InputError(f"judge adapter {adapter} has no adapter_config.json: --editeval-judge-adapter must be "
                         "a PEFT LoRA adapter folder (or a hub id of one)")
    return adapter
