"""The judge: one interface, three backends chosen by name.

A judge is asked a backend-neutral request (requests.Request: prompt texts and prepared images, in the order the
benchmark gives them) and answers with the reply text and, where the backend reports it, the tokens it used
(`answer`); it names itself for the cache (`identity`) and for reports (`describe`); `interrupt` makes requests in
flight fail at once, `close` releases what it holds (threads, connections, a model, a server process) and is safe
to call twice. A question asked several times (--editeval-judge-samples) passes its sample number: a backend that
takes a seed asks sample k with its own seed, and names it in `identity(k)`; a judge that cannot vary its answer
(a greedy model in this process) is `deterministic` and names every sample the same, so they are one answer.

Backends (one module each, imported only when chosen):
  openai        openai_http.py        any OpenAI-compatible chat-completions endpoint (today's client)
  transformers  transformers_local.py the judge model in this process (AutoModelForImageTextToText)
  vllm          vllm_managed.py       `vllm serve MODEL` started and stopped by the plugin, asked over HTTP

This module is imported at configure time: it imports only the stdlib.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..errors import InputError

if TYPE_CHECKING:
    import threading

    from ..cache import Cache
    from .requests import Request
    from .settings import JudgeSpec


@dataclass(frozen=True)
class Answer:
    """A judge's reply text (capped) and the tokens it cost, as the backend reported them (None: not reported)."""

    text: str
    usage: dict | None = None  # {"prompt_tokens": int, "completion_tokens": int}


class Judge(Protocol):
    backend: str
    requests_sent: int
    deterministic: bool  # asked again, it gives the same reply: its samples are one answer

    @property
    def parse_retries(self) -> int: ...

    @property
    def row_deadline_s(self) -> float: ...

    def answer(self, request: "Request", deadline: float | None = None, sample: int = 0) -> Answer:
        """The reply (capped) and its usage; raises SampleError for this request, JudgeFatalError for the run."""

    def ask(self, request: "Request", deadline: float | None = None, sample: int = 0) -> str:
        """The reply text alone."""

    def identity(self, sample: int = 0) -> dict:
        """Everything about the judge that can change its answers to `sample` (input of the cache key; never a
        secret)."""

    def usage(self) -> dict:
        """Tokens this judge reported in this process: {prompt_tokens, completion_tokens, requests}."""

    def describe(self) -> dict:
        """The judge as results name it: backend, model, digest, recipe, endpoint, generation parameters."""

    def notes(self) -> list[str]:
        """Facts about how the judge ran that the summary says once (device, a narrowed processor...)."""

    def interrupt(self) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Backend:
    module: str
    needs: tuple[str, ...]  # top-level modules that must be importable
    extra: str | None  # the pip extra that installs them


BACKENDS = {
    "openai": Backend("pytest_editeval.judges.openai_http", ("httpx",), None),
    "transformers": Backend("pytest_editeval.judges.transformers_local", ("torch", "transformers", "PIL"),
                            "local-judge"),
    "vllm": Backend("pytest_editeval.judges.vllm_managed", ("httpx",), "vllm"),
}
NAMES = tuple(BACKENDS)


def install_hint(extra: str) -> str:
    return f"pip install 'pytest-editeval[{extra}]'"


def check_installed(backend: str, *, adapter: bool = False) -> None:
    """One line naming the pip command when the chosen backend's libraries are missing (checked without
    importing them: torch alone takes seconds)."""
    spec = BACKENDS[backend]
    needs = spec.needs + (("peft",) if adapter and backend == "transformers" else ())
    missing = [name for name in needs if importlib.util.find_spec(name) is None]
    if missing:
        extra = spec.extra or "test"
        raise InputError(f"--editeval-judge-backend {backend} needs {', '.join(missing)}, which is not installed: "
                         f"{install_hint(extra)}")


def create(spec: "JudgeSpec", *, stop: "threading.Event", max_in_flight: int, cache: "Cache",
           say: Callable[[str], None], workdir) -> Judge:
    """The judge of `spec`, from its backend's module (imported now). `say` prints one progress line;
    `workdir` is the run's .editeval folder (logs of a managed server)."""
    module = importlib.import_module(BACKENDS[spec.backend].module)
    return module.create(spec, stop=stop, max_in_flight=max_in_flight, cache=cache, say=say, workdir=workdir)


def label(judge: dict, recipe: bool = False) -> str:
    """How a judge is named in one line: `gpt-4.1 (openai)`, `Qwen2.5-VL-7B (transformers, sha256 1a2b3c4d5e6f)`."""
    parts = [judge.get("backend") or "openai"]
    if judge.get("digest"):
        parts.append(f"sha256 {judge['digest'][:12]}")
    if judge.get("adapter_digest"):
        parts.append(f"adapter {judge['adapter_digest'][:12]}")
    if recipe and judge.get("recipe"):
        parts.append(f"recipe {judge['recipe']}")
    return f"{judge.get('model') or '?'} ({', '.join(parts)})"


def different_judges(baseline: dict, current: dict) -> tuple[str, str] | None:
    """The two judges' labels when two runs were judged differently (model, backend, weights, adapter or
    recipe): their scores are on different scales. Fields an older results file lacks count as equal."""
    def known(key: str) -> bool:
        return bool(baseline.get(key)) and bool(current.get(key))

    differs = ((baseline.get("backend") or "openai") != (current.get("backend") or "openai")
               or baseline.get("model") != current.get("model")
               or bool(baseline.get("adapter_digest")) != bool(current.get("adapter_digest"))
               or any(known(k) and baseline[k] != current[k] for k in ("digest", "adapter_digest", "recipe")))
    if not differs:
        return None
    show_recipe = known("recipe") and baseline["recipe"] != current["recipe"]
    return label(baseline, show_recipe), label(current, show_recipe)
