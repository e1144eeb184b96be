"""What an option is (`Option`) and the argparse types that check single values (stdlib only).

Every part of the plugin that owns options declares them with these: the core table (options.py), each judge
backend (judges/*.py, its `OPTIONS`), the options every judge shares (judges/options.py) and each benchmark (its
`options`). options.py gathers them into one table; `--help`, the ini twins, the docs reference and the panel
file's keys are all made from that table. A type that raises argparse.ArgumentTypeError gives exit code 4 and one
line, before anything runs; the same callables check ini values.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu", "npu", "hpu")
PRECISIONS = ("float32", "float16", "bfloat16")


def choice(name: str, choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in choices:
            raise argparse.ArgumentTypeError(f"unknown {name} {value!r}: known {name}s are {', '.join(choices)}")
        return value
    parse.__name__ = name
    parse.choices = choices  # shown as the metavar {a,b}
    return parse


def number(kind: type, minimum: float, inclusive: bool = True) -> Callable[[str], Any]:
    def parse(value: str) -> Any:
        try:
            number = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a{'n integer' if kind is int else ' number'}") from None
        if not math.isfinite(number):  # nan would turn every comparison (a deadline, a limit) off
            raise argparse.ArgumentTypeError(f"{value!r} is not a finite number")
        if number < minimum or (not inclusive and number == minimum):
            bound = f">= {minimum}" if inclusive else f"> {minimum}"
            raise argparse.ArgumentTypeError(f"{value!r} must be {bound}")
        return number
    parse.__name__ = "integer" if kind is int else "number"
    parse.kind, parse.minimum, parse.inclusive = kind, minimum, inclusive  # the panel file checks its numbers alike
    return parse


def url(value: str) -> str:
    from pytest_editeval.judges.settings import url_problem  # stdlib only

    problem = url_problem(value)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return value


def device(value: str) -> str:
    import re

    if not re.fullmatch(rf"(?:{'|'.join(DEVICE_TYPES)})(?::\d+)?", value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a device: use cpu, cuda, cuda:N (or mps, xpu, npu, hpu)")
    return value


def judge_device(value: str) -> str:
    return value if value == "auto" else device(value)


def shell_words(value: str) -> list[str]:
    import shlex

    try:
        return shlex.split(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"cannot split {value!r} into arguments: {exc}") from None


def device_list(value: str) -> list[str]:
    return [device(name) for name in subset_list(value)]


def subset_list(value: str) -> list[str]:
    names = [s.strip() for s in value.split(",") if s.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected a comma-separated list of subset names")
    return names


def from_parser(module: str, name: str) -> Callable[[str], Any]:
    """An argparse type from one of our pure parsers (which raise ValueError); imported on first use, so
    that this module stays stdlib-only."""
    def parse(value: str) -> Any:
        import importlib

        parser = getattr(importlib.import_module(module), name)
        try:
            return parser(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    parse.__name__ = name
    return parse


threshold = from_parser("pytest_editeval.scoring.gate", "parse_threshold")
price = from_parser("pytest_editeval.scoring.judge_cost", "parse_price")
shard = from_parser("pytest_editeval.run.shards", "parse_shard")
compare_gate = from_parser("pytest_editeval.scoring.compare", "parse_compare_gate")


def json_object(value: str) -> dict:
    import json

    def no_constant(name: str):  # json.loads takes NaN and Infinity, which are not JSON
        raise ValueError(f"{name} is not a finite number")

    try:
        parsed = json.loads(value, parse_constant=no_constant)
    except (ValueError, RecursionError) as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc.args[0] if exc.args else exc}): {value!r}") from None
    if not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object of pipeline arguments, got {value!r}")
    return parsed


def ray_address(value: str) -> str:
    """local, auto, ray://HOST:PORT (Ray Client) or HOST:PORT (the head node's GCS)."""
    import re

    if value in ("local", "auto") or re.fullmatch(r"(?:ray://)?[A-Za-z0-9._-]+:\d{1,5}", value):
        return value
    raise argparse.ArgumentTypeError(f"{value!r} is not a Ray address: use auto (the cluster this machine belongs "
                                     "to), local (start one here), ray://HOST:PORT or HOST:PORT")


def run_name(value: str) -> str:
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a run name (letters, digits, '.', '_', '-')")
    return value


def path(value: str):
    """A file or folder the user named (~ expanded); whether it exists is said where it is read."""
    from pathlib import Path

    return Path(value).expanduser()


def flag(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{value!r} is not a boolean (true/false)")


@dataclass(frozen=True)
class Option:
    """One option `--editeval-NAME` and its ini twin. `default` is written here once: `{default}` in the help
    shows it, settings read it (`value_or_default`). A judge setting names the `field` it sets on the judge's spec
    and, when a panel file may set it per judge, its `panel_key` (`panel_only`: a key of the panel file that has
    no command-line option)."""

    name: str  # without the --editeval- prefix
    help: str
    type: Callable[[str], Any] | None = str
    flag: bool = False
    repeat: bool = False
    metavar: str | None = None
    default: Any = None
    group: str | None = None  # the --help group's title; None: options.GROUPS places it
    field: str | None = None  # the JudgeSpec value it sets (judge options)
    panel_key: str | None = None  # its key in a [[judges]] table of --editeval-judge-panel
    panel_only: bool = False  # a panel key without a command-line option
    one_judge: bool = False  # names one judge: with a panel, each judge names it in the panel file

    @property
    def shown_help(self) -> str:
        return self.help.replace("{default}", shown_value(self.default))

    @property
    def shown_metavar(self) -> str | None:
        """What --help shows for the value: never argparse's default (the dest in capitals), which reads like an
        environment variable."""
        choices = getattr(self.type, "choices", None)
        return self.metavar or ("{" + ",".join(choices) + "}" if choices else "VALUE")

    @property
    def dest(self) -> str:
        return "editeval_" + self.name.replace("-", "_")

    @property
    def ini(self) -> str:
        return {"threshold": "editeval_thresholds", "compare-fail": "editeval_compare_fail"}.get(self.name, self.dest)


def shown_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(map(str, value)) or "none"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 120, not 120.0
    return "none" if value is None else str(value)
