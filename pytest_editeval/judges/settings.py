"""The judge's connection and request settings (stdlib only: imported at configure time)."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit


@dataclass(frozen=True)
class JudgeSettings:
    url: str
    model: str
    api_key: str = field(repr=False)  # never shown: not in reprs, messages, reports or cache keys
    timeout_s: float = 120.0
    max_tokens: int | None = 1400
    temperature: float | None = None
    retries: int = 5
    parse_retries: int = 2
    backoff_s: float = 1.0
    row_deadline_s: float = 900.0

    @property
    def endpoint(self) -> str:
        url = self.url.rstrip("/")
        return url if url.endswith("/chat/completions") else url + "/chat/completions"

    @property
    def public_endpoint(self) -> str:
        """The endpoint without any user:password part, safe to print."""
        parts = urlsplit(self.endpoint)
        return urlunsplit(parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else "")))

    @property
    def host(self) -> str:
        return urlsplit(self.endpoint).hostname or ""

    def request_parameters(self) -> dict:
        params: dict = {"model": self.model}
        if self.max_tokens is not None:
            params["max_tokens"] = self.max_tokens
        if self.temperature is not None:
            params["temperature"] = self.temperature
        return params
