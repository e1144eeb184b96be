"""A panel of judges (`--editeval-judge-panel FILE`): several judges answer every question; their answers are
combined per question by weighted mean or weighted median (`--editeval-judge-panel-reduce`), then the benchmark's
row formula runs (judge_noise.score_samples). Every judge's own row scores are kept beside the panel's.

The file is TOML, a list of judges (stdlib only; read at configure time, before any test runs):

    [[judges]]
    name = "gpt-4.1"                    # optional: how results and the table name it (default: its model)
    backend = "openai"                  # a name of the judges registry (default openai)
    model = "gpt-4.1"
    url_variable = "OPENAI_BASE_URL"    # the environment variables holding its URL and its key (openai):
    key_variable = "OPENAI_API_KEY"     #   keys are never written in the file
    weight = 2                          # optional, default 1
    price = [2.0, 8.0]                  # optional: USD per million prompt and completion tokens
    temperature = 1.0                   # optional judge settings: their options' panel keys

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

import argparse
import math
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_editeval.errors import InputError
from pytest_editeval.judges import DEFAULT_BACKEND, configure, declared_by, names
from pytest_editeval.judges.settings import JudgeFacts, JudgeSpec
from pytest_editeval.options.types import shell_words

# The panel's own keys; every other key is a judge option's `panel_key` (judges/options.py, each backend's OPTIONS).
OWN_KEYS = ("name", "backend", "model", "weight", "price")
SECRET_KEYS = ("key", "api_key", "token", "password", "url")


def key_options() -> dict:
    """{panel key: its option}, from the judge options' declarations."""
    from pytest_editeval.judges import all_options

    return {opt.panel_key: opt for opt in all_options() if opt.panel_key}


def known_keys() -> tuple[str, ...]:
    return (*OWN_KEYS, *key_options())


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
               default_price=None, check_installed: Callable[[str, bool], None] | None = None,
               facts: JudgeFacts | None = None) -> PanelSpec:
    """The panel of `path`; every problem is one InputError line naming the file and the key. `base` is the
    run's own judge settings (recipe, generation defaults, timeouts), which each judge's keys override."""
    facts = facts or JudgeFacts()
    shown = str(path)
    members: list[PanelMember] = []
    for index, entry in enumerate(_entries(Path(path), shown)):
        where = f"judge panel {shown}: judges[{index}]"
        bad = _bad_key(where)
        spec, weight, price = _member_spec(entry, where, shown, base, env, check_installed, facts, bad)
        name = entry.get("name", entry["model"])
        if not isinstance(name, str) or not name.strip():
            raise bad("name", "must be a non-empty string")
        if any(m.name == name for m in members):
            raise bad("name", f"{name!r} names two judges: give each a distinct name")
        members.append(PanelMember(name=name, weight=weight, spec=spec, price=price or default_price))
    if sum(m.spec.backend == "vllm" for m in members) > 1:
        raise InputError(f"judge panel {shown}: two vllm judges would start two servers on one machine; run one "
                         "`vllm serve` yourself and name it as an openai judge")
    return PanelSpec(path=Path(path), members=tuple(members), reduce=reduce)


def _entries(path: Path, shown: str) -> list[dict]:
    """The file's [[judges]] tables (at least one); anything else in it is an InputError."""
    from pytest_editeval.data.jsonfile import TOO_DEEP, config_text

    try:
        data = tomllib.loads(config_text(path))
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
    return entries


def _bad_key(where: str) -> Callable[[str, str], InputError]:
    """The error maker of one judge's table: `judge panel FILE: judges[i].KEY: why`."""
    def bad(key: str, why: str) -> InputError:
        return InputError(f"{where}.{key}: {why}")

    return bad


def _member_spec(entry: dict, where: str, shown: str, base: JudgeSpec, env: Mapping[str, str],
                 check_installed: Callable[[str, bool], None] | None, facts: JudgeFacts,
                 bad: Callable[[str, str], InputError]) -> tuple[JudgeSpec, float, Any]:
    """One judge's checked settings: its JudgeSpec (the run's, with the table's keys over them), weight and
    price (None when the table sets none). Checked in the table's reading order, so the first problem is named."""
    _check_keys(entry, bad)
    backend = entry.get("backend", DEFAULT_BACKEND)
    if backend not in names():
        raise bad("backend", f"{backend!r} is not a judge backend ({', '.join(names())})")
    model = entry.get("model")
    if not isinstance(model, str) or not model.strip():
        raise bad("model", "required: the judge model (its name at the endpoint, or a hub id or folder)")
    weight = entry.get("weight", 1)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight <= 0:
        raise bad("weight", f"{weight!r} must be a number > 0")
    price = _price(entry, bad)
    changes = {"backend": backend, "model": model, **_option_values(entry, backend, bad)}
    spec = base.with_values(http=None, **changes)
    spec = configure(spec, JudgeFacts(env=env, panel=f"judge panel {shown}", panel_entry=entry, bad=bad,
                                      processes=facts.processes, worker=facts.worker))
    if check_installed is not None:
        try:
            check_installed(backend, bool(spec.adapter))
        except InputError as exc:
            raise InputError(f"{where}: {exc}") from None
    return spec, float(weight), price


def _check_keys(entry: dict, bad: Callable[[str, str], InputError]) -> None:
    """Only known keys; a secret written in the file is refused before anything else is read."""
    for key in entry:
        if key in SECRET_KEYS:
            raise bad(key, "URLs and keys are never written in the panel file: name the environment variables "
                           "that hold them with url_variable and key_variable")
        if key not in known_keys():
            raise bad(key, f"unknown key (known: {', '.join(known_keys())})")


def _price(entry: dict, bad: Callable[[str, str], InputError]):
    """The judge's `price = [IN, OUT]` as a judge_cost.Price, or None when the table sets none."""
    from pytest_editeval.scoring.judge_cost import parse_price

    if "price" not in entry:
        return None
    raw = entry["price"]
    if not (isinstance(raw, list) and len(raw) == 2):
        raise bad("price", "expected [IN, OUT]: USD per million prompt and completion tokens")
    try:
        return parse_price(",".join(str(v) for v in raw))
    except ValueError as exc:
        raise bad("price", str(exc)) from None


def _option_values(entry: dict, backend: str, bad: Callable[[str, str], InputError]) -> dict:
    """{JudgeSpec field: value} of the judge option keys the table sets, each checked as its option's type is
    and refused when it belongs to another backend."""
    values: dict = {}
    for key, opt in key_options().items():
        if key not in entry:
            continue
        owners = declared_by(opt.name)
        if owners and backend not in owners:
            raise bad(key, f"applies to the {' and '.join(owners)} backend{'s' if len(owners) > 1 else ''}, "
                           f"not {backend}")
        if opt.field:  # keys without one (url_variable...) are read by their backend's configure
            values[opt.field] = _checked(entry[key], key, opt, bad)
    return values


def _checked(value: Any, key: str, opt, bad) -> Any:
    """A panel value (a TOML value, not a string) checked as its option's type checks the command line's."""
    kind = getattr(opt.type, "kind", None)
    if kind is float:
        bound = f"{'>=' if opt.type.inclusive else '>'} {opt.type.minimum:g}"
        if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
                or value < opt.type.minimum or (not opt.type.inclusive and value == opt.type.minimum)):
            raise bad(key, f"{value!r} must be a finite number {bound}")
        return float(value)
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int) or value < opt.type.minimum:
            raise bad(key, f"{value!r} must be a whole number >= {opt.type.minimum}")
        return value
    if opt.flag:
        if not isinstance(value, bool):
            raise bad(key, f"{value!r} must be true or false")
        return value
    if opt.type is shell_words:  # a list in the file: no shell quoting to undo
        if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise bad(key, "expected a list of strings")
        return tuple(value)
    if not isinstance(value, str) or not value:
        raise bad(key, "expected a non-empty string")
    if opt.type not in (None, str):
        try:
            return opt.type(value)
        except argparse.ArgumentTypeError as exc:
            raise bad(key, str(exc)) from None
    return value


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
        from pytest_editeval.scoring.judge_cost import add

        return add(v.judge.usage() for v in self.voices)

    def interrupt(self) -> None:
        for v in self.voices:
            v.judge.interrupt()

    def close(self) -> None:
        for v in self.voices:
            v.judge.close()
