"""A panel of judges (`--editeval-judge-panel FILE`): several judges answer every question; their answers are
combined per question by weighted mean or weighted median (`--editeval-judge-panel-reduce`), then the benchmark's
row formula runs (judge_noise.score_samples). Every judge's own row scores are kept beside the panel's.

The file is TOML, a list of judges (stdlib only; read at configure time, before any test runs):

    [[judges]]
    name = "gpt-4.1"                    # optional: how results and the table name it (default: its model)
    backend = "openai"                  # openai (default), transformers or vllm
    model = "gpt-4.1"
    url_variable = "OPENAI_BASE_URL"    # the environment variables holding its URL and its key (openai):
    key_variable = "OPENAI_API_KEY"     #   keys are never written in the file
    weight = 2                          # optional, default 1
    price = [2.0, 8.0]                  # optional: USD per million prompt and completion tokens
    temperature = 1.0                   # optional judge settings (see KEYS)

    [[judges]]
    backend = "transformers"
    model = "/models/Qwen2.5-VL-7B-Instruct"
    adapter = "EditScore/EditScore-7B"

Each judge asks with the run's recipe and protocol; unset settings take the run's (the recipe's and protocol's
defaults under the command line's options). Each answer is cached under its own judge's identity, so a panel
re-uses the answers of single-judge runs of its judges, and the reverse. A judge that fails a row fails the row
for the panel (an error row, counted), as a single judge would.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import InputError
from .settings import JudgeSettings, JudgeSpec, cleartext_problem, credentials_problem, url_fault

BACKENDS = ("openai", "transformers", "vllm")
# key -> (backends it applies to, JudgeSpec field, type check)
COMMON_KEYS = {"temperature": "temperature", "max_tokens": "max_tokens", "top_p": "top_p", "top_k": "top_k",
               "seed": "seed", "timeout": "timeout_s", "retries": "retries", "parse_retries": "parse_retries",
               "backoff": "backoff_s", "concurrency": "concurrency"}
LOCAL_KEYS = {"adapter": "adapter", "hub": "hub", "device": "device", "precision": "precision",
              "batch_size": "batch_size", "serve_command": "serve_command", "serve_args": "serve_args",
              "startup_timeout": "startup_timeout_s"}
OWN_KEYS = ("name", "backend", "model", "url_variable", "key_variable", "weight", "price", "allow_http")
KNOWN_KEYS = (*OWN_KEYS, *COMMON_KEYS, *LOCAL_KEYS)
SECRET_KEYS = ("key", "api_key", "token", "password", "url")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
DEFAULT_URL_VARIABLE = "EDITEVAL_JUDGE_URL"
DEFAULT_KEY_VARIABLE = "EDITEVAL_JUDGE_API_KEY"


@dataclass(frozen=True)
class PanelMember:
    name: str
    weight: float
    spec: JudgeSpec
    price: Any = None  # judge_cost.Price, or None


@dataclass(frozen=True)
class PanelSpec:
    path: Path
    members: tuple[PanelMember, ...]
    reduce: str = "mean"  # mean | median


def load_panel(path: Path, *, base: JudgeSpec, env: Mapping[str, str], reduce: str,
               default_price=None, check_installed: Callable[[str, bool], None] | None = None) -> PanelSpec:
    """The panel of `path`; every problem is one InputError line naming the file and the key. `base` is the
    run's own judge settings (recipe, generation defaults, timeouts), which each judge's keys override."""
    from ..jsonfile import TOO_DEEP, config_text
    from ..judge_cost import parse_price

    shown = str(path)
    try:
        data = tomllib.loads(config_text(Path(path)))
    except TOO_DEEP:
        raise InputError(f"judge panel {shown}: nested too deeply to be read (no real one is)") from None
    except FileNotFoundError:
        raise InputError(f"judge panel {shown}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"judge panel {shown}: cannot read it ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"judge panel {shown}: not valid TOML ({exc})") from None
    unknown = [k for k in data if k != "judges"]
    if unknown:
        raise InputError(f"judge panel {shown}: unknown top-level key {unknown[0]!r}: the file holds [[judges]] "
                         "tables only")
    entries = data.get("judges")
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise InputError(f"judge panel {shown}: judges: expected a list of [[judges]] tables (at least one)")
    members = []
    for index, entry in enumerate(entries):
        where = f"judge panel {shown}: judges[{index}]"

        def bad(key: str, why: str, where: str = where) -> InputError:
            return InputError(f"{where}.{key}: {why}")

        for key in entry:
            if key in SECRET_KEYS:
                raise bad(key, "URLs and keys are never written in the panel file: name the environment variables "
                               "that hold them with url_variable and key_variable")
            if key not in KNOWN_KEYS:
                raise bad(key, f"unknown key (known: {', '.join(KNOWN_KEYS)})")
        backend = entry.get("backend", "openai")
        if backend not in BACKENDS:
            raise bad("backend", f"{backend!r} is not a judge backend ({', '.join(BACKENDS)})")
        model = entry.get("model")
        if not isinstance(model, str) or not model.strip():
            raise bad("model", "required: the judge model (its name at the endpoint, or a hub id or folder)")
        weight = entry.get("weight", 1)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight <= 0:
            raise bad("weight", f"{weight!r} must be a number > 0")
        price = None
        if "price" in entry:
            raw = entry["price"]
            if not (isinstance(raw, list) and len(raw) == 2):
                raise bad("price", "expected [IN, OUT]: USD per million prompt and completion tokens")
            try:
                price = parse_price(",".join(str(v) for v in raw))
            except ValueError as exc:
                raise bad("price", str(exc)) from None
        changes: dict = {"backend": backend, "model": model}
        for key, field in COMMON_KEYS.items():
            if key in entry:
                changes[field] = _checked(entry[key], key, field, bad)
        for key, field in LOCAL_KEYS.items():
            if key in entry:
                if backend == "openai":
                    raise bad(key, f"applies to the transformers and vllm backends, not {backend}")
                changes[field] = _checked(entry[key], key, field, bad)
        for key in ("url_variable", "key_variable", "allow_http"):
            if key in entry and backend != "openai":
                raise bad(key, f"applies to the openai backend, not {backend}")
        spec = dataclasses.replace(base, http=None, **changes)
        if backend == "openai":
            spec = dataclasses.replace(spec, http=_http(entry, spec, env, bad))
        if check_installed is not None:
            try:
                check_installed(backend, bool(spec.adapter))
            except InputError as exc:
                raise InputError(f"{where}: {exc}") from None
        name = entry.get("name", model)
        if not isinstance(name, str) or not name.strip():
            raise bad("name", "must be a non-empty string")
        if any(m.name == name for m in members):
            raise bad("name", f"{name!r} names two judges: give each a distinct name")
        members.append(PanelMember(name=name, weight=float(weight), spec=spec, price=price or default_price))
    if sum(m.spec.backend == "vllm" for m in members) > 1:
        raise InputError(f"judge panel {shown}: two vllm judges would start two servers on one machine; run one "
                         "`vllm serve` yourself and name it as an openai judge")
    return PanelSpec(path=Path(path), members=tuple(members), reduce=reduce)


def _checked(value: Any, key: str, field: str, bad) -> Any:
    numbers = {"temperature": float, "top_p": float, "timeout_s": float, "backoff_s": float,
               "startup_timeout_s": float}
    integers = ("max_tokens", "top_k", "seed", "retries", "parse_retries", "batch_size")
    if field in numbers:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise bad(key, f"{value!r} must be a finite number >= 0")
        return float(value)
    if field in integers:
        least = 1 if field in ("max_tokens", "batch_size") else 0
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise bad(key, f"{value!r} must be a whole number")
        return value
    if field == "serve_args":
        if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise bad(key, "expected a list of strings")
        return tuple(value)
    if field == "concurrency":
        if value not in ("adaptive", "fixed"):
            raise bad(key, f"{value!r}: adaptive or fixed")
        return value
    if not isinstance(value, str) or not value:
        raise bad(key, "expected a non-empty string")
    return value


def _http(entry: Mapping, spec: JudgeSpec, env: Mapping[str, str], bad) -> JudgeSettings:
    url_variable = entry.get("url_variable", DEFAULT_URL_VARIABLE)
    key_variable = entry.get("key_variable", DEFAULT_KEY_VARIABLE)
    for key, variable in (("url_variable", url_variable), ("key_variable", key_variable)):
        if not isinstance(variable, str) or not _ENV_NAME.fullmatch(variable):
            # never echoed: a URL or a key pasted here by mistake must not reach a CI log
            raise bad(key, "expected the name of an environment variable (letters, digits and _, e.g. "
                           "OPENAI_API_KEY), not its value")
    url = env.get(url_variable, "").strip()
    if not url:
        raise bad("url_variable", f"the environment variable {url_variable} (or a .env line) holds no URL")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- reading it checks it (a port out of range raises)
    except ValueError as exc:  # the message names the fault, never the URL (it may hold credentials)
        raise bad("url_variable", f"{url_variable} does not hold a valid URL: {url_fault(exc)}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise bad("url_variable", f"{url_variable} does not hold an http(s) URL")
    if credentials_problem(url):
        raise bad("url_variable", credentials_problem(url))
    allow_http = entry.get("allow_http", False)
    if not isinstance(allow_http, bool):
        raise bad("allow_http", f"{allow_http!r} must be true or false")
    if not allow_http:
        problem = cleartext_problem(url)
        if problem:
            raise bad("url_variable", f"{problem} (allow_http = true in the panel file accepts it)")
    key = env.get(key_variable, "").strip()
    if not key:
        raise bad("key_variable", f"the environment variable {key_variable} (or a .env line) holds no key (use any "
                                  "non-empty value for a local server that needs none)")
    return JudgeSettings(url=url, model=spec.model, api_key=key, timeout_s=spec.timeout_s, max_tokens=spec.max_tokens,
                         temperature=spec.temperature, retries=spec.retries, parse_retries=spec.parse_retries,
                         backoff_s=spec.backoff_s, row_deadline_s=spec.row_deadline_s, top_p=spec.top_p,
                         seed=spec.seed, concurrency=spec.concurrency)


@dataclass(frozen=True)
class Voice:
    """One judge of a run as the evaluation asks it: its name, weight and the judge itself (a single judge is a
    panel of one, named "")."""

    name: str
    weight: float
    judge: Any  # judges.Judge
    price: Any = None


class Panel:
    """The panel's judges as one for the run's lifecycle: counted, described, interrupted and closed together."""

    backend = "panel"

    def __init__(self, voices: list[Voice], reduce: str, recipe: str | None) -> None:
        self.voices = voices
        self.reduce = reduce
        self.recipe = recipe

    @property
    def requests_sent(self) -> int:
        return sum(v.judge.requests_sent for v in self.voices)

    @property
    def deterministic(self) -> bool:
        return all(v.judge.deterministic for v in self.voices)

    @property
    def row_deadline_s(self) -> float:
        return max(v.judge.row_deadline_s for v in self.voices)

    @property
    def still_running(self) -> list[str]:
        return [name for v in self.voices for name in getattr(v.judge, "still_running", [])]

    def describe(self) -> dict:
        members = [{"name": v.name, "weight": v.weight, **v.judge.describe()} for v in self.voices]
        return {"backend": self.backend, "model": " + ".join(v.name for v in self.voices), "recipe": self.recipe,
                "parameters": {"reduce": self.reduce}, "panel": members}

    def notes(self) -> list[str]:
        return [f"{v.name}: {note}" for v in self.voices for note in v.judge.notes()]

    def usage(self) -> dict:
        from ..judge_cost import add

        return add(v.judge.usage() for v in self.voices)

    def interrupt(self) -> None:
        for v in self.voices:
            v.judge.interrupt()

    def close(self) -> None:
        for v in self.voices:
            v.judge.close()
