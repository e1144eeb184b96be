"""The judge: one interface, three backends chosen by name.

A judge is asked a backend-neutral request (requests.Request: prompt texts and prepared images, in the order the
benchmark gives them) and answers with the reply text and, where the backend reports it, the tokens it used
(`answer`); it names itself for the cache (`identity`) and for reports (`describe`); `interrupt` makes requests in
flight fail at once, `close` releases what it holds (threads, connections, a model, a server process) and is safe
to call twice. A question asked several times (--editeval-judge-samples) passes its sample number: a backend that
takes a seed asks sample k with its own seed, and names it in `identity(k)`; a judge that cannot vary its answer
(a greedy model in this process) is `deterministic` and names every sample the same, so they are one answer.

Backends (one module each, registered in BACKENDS or with `register`):
  openai        openai_http.py        any OpenAI-compatible chat-completions endpoint (today's client)
  transformers  transformers_local.py the judge model in this process (AutoModelForImageTextToText)
  vllm          vllm_managed.py       `vllm serve MODEL` started and stopped by the plugin, asked over HTTP

A backend module declares its own options in `OPTIONS` (option_types.Option; the shared ones are in options.py),
may check a run's spec in `configure(spec, facts)` and builds its judge in `create(spec, ...)`. Its module is
imported at option time for `OPTIONS`, so it imports only the stdlib at its top (torch, httpx: inside functions).
This module imports only the stdlib.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from pytest_editeval.errors import InputError

if TYPE_CHECKING:
    import threading

    from pytest_editeval.data.cache import Cache
    from pytest_editeval.judges.requests import Request
    from pytest_editeval.judges.settings import JudgeSpec


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
    about: str = ""  # where the judge runs, in a few words (--help)
    adapter_needs: tuple[str, ...] = ()  # what a LoRA adapter (--editeval-judge-adapter) needs besides


BACKENDS = {
    "openai": Backend("pytest_editeval.judges.openai_http", ("httpx",), None,
                      "an OpenAI-compatible endpoint, default"),
    "transformers": Backend("pytest_editeval.judges.transformers_local", ("torch", "transformers", "PIL"),
                            "local-judge", "the judge model in this process", ("peft",)),
    "vllm": Backend("pytest_editeval.judges.vllm_managed", ("httpx",), "vllm",
                    "a `vllm serve` the plugin starts and stops"),
}
NAMES = tuple(BACKENDS)  # the built-in ones; names() also has those registered later
DEFAULT_BACKEND = "openai"


def register(name: str, backend: Backend) -> None:
    """Add a judge backend (before pytest reads its options: a plugin's import, not a conftest.py hook)."""
    BACKENDS[name] = backend


def names() -> tuple[str, ...]:
    return tuple(BACKENDS)


def module_of(name: str):
    return importlib.import_module(BACKENDS[name].module)


def own_options(name: str) -> tuple:
    """The options backend `name` declares (its module's OPTIONS)."""
    return tuple(getattr(module_of(name), "OPTIONS", ()))


def backend_option():
    from pytest_editeval.options.types import Option, choice

    return Option("judge-backend", "where the judge runs: " + ", ".join(
        f"{name} ({b.about})" if b.about else name for name, b in BACKENDS.items()),
        choice("judge backend", names()), default=DEFAULT_BACKEND, one_judge=True)


def all_options() -> list:
    """Every judge option: the backend choice, the shared ones, then each backend's own (once each, however many
    backends list it)."""
    from pytest_editeval.judges.options import RUN, SHARED

    out = [backend_option(), *SHARED, *RUN]
    for name in names():
        out += [opt for opt in own_options(name) if opt not in out]
    return out


def declared_by(option_name: str) -> tuple[str, ...]:
    """The backends whose own options include `option_name` (empty: a shared option)."""
    return tuple(name for name in names() if any(o.name == option_name for o in own_options(name)))


def option_with_field(field_name: str):
    """The judge option that sets JudgeSpec value `field_name`, or None."""
    return next((opt for opt in all_options() if opt.field == field_name), None)


def configure(spec: "JudgeSpec", facts) -> "JudgeSpec":
    """The backend's own checks and settings of a run's judge (settings.JudgeFacts), before anything runs."""
    hook = getattr(module_of(spec.backend), "configure", None)
    return hook(spec, facts) if hook is not None else spec


def install_hint(extra: str) -> str:
    return f"pip install 'pytest-editeval[{extra}]'"


def check_installed(backend: str, *, adapter: bool = False) -> None:
    """One line naming the pip command when the chosen backend's libraries are missing (checked without
    importing them: torch alone takes seconds)."""
    spec = BACKENDS[backend]
    needs = spec.needs + (spec.adapter_needs if adapter else ())
    missing = [name for name in needs if importlib.util.find_spec(name) is None]
    if missing:
        extra = spec.extra or "test"
        raise InputError(f"--editeval-judge-backend {backend} needs {', '.join(missing)}, which is not installed: "
                         f"{install_hint(extra)}")


def create(spec: "JudgeSpec", *, stop: "threading.Event", max_in_flight: int, cache: "Cache",
           say: Callable[[str], None], workdir) -> Judge:
    """The judge of `spec`, from its backend's module (imported now). `say` prints one progress line;
    `workdir` is the run's .editeval folder (logs of a managed server)."""
    module = module_of(spec.backend)
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
