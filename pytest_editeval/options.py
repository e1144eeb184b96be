"""Command-line options, their ini twins, and validation of single values.

Every option `--editeval-x` has an ini twin `editeval_x` (thresholds: `editeval_thresholds`, one per line).
Precedence: command line, then ini, then the default; "given" is tested with `is not None`, so that a value
of 0 is not mistaken for "unset". Single values are checked by argparse `type=` callables (exit code 4 and
one line, before anything runs); the same callables check ini values. This module imports only the stdlib.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .benchmarks import BUILTIN as _BENCHMARK_REGISTRY
from .hub import HUBS
from .judges import NAMES as JUDGE_BACKENDS

BUILTIN_BENCHMARKS = tuple(_BENCHMARK_REGISTRY)  # plus entry points and [tool.editeval.benchmarks.*] tables
# A little above the largest image a GEdit-Bench run meets (sources about 0.26 MP, model outputs up to 2048 x 2048,
# raw photos up to about 12 MP): one hostile 13000 x 13000 PNG would cost 0.5 GB decoded.
DEFAULT_MAX_PIXELS = 4096 * 4096
DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu", "npu", "hpu")


def _choice(name: str, choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in choices:
            raise argparse.ArgumentTypeError(f"unknown {name} {value!r}: known {name}s are {', '.join(choices)}")
        return value
    parse.__name__ = name
    parse.choices = choices  # shown as the metavar {a,b}
    return parse


def _number(kind: type, minimum: float, inclusive: bool = True) -> Callable[[str], Any]:
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
    return parse


def _url(value: str) -> str:
    from .judges.settings import url_problem  # stdlib only

    problem = url_problem(value)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return value


def _device(value: str) -> str:
    import re

    if not re.fullmatch(rf"(?:{'|'.join(DEVICE_TYPES)})(?::\d+)?", value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a device: use cpu, cuda, cuda:N (or mps, xpu, npu, hpu)")
    return value


def _judge_device(value: str) -> str:
    return value if value == "auto" else _device(value)


def _shell_words(value: str) -> list[str]:
    import shlex

    try:
        return shlex.split(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"cannot split {value!r} into arguments: {exc}") from None


def _device_list(value: str) -> list[str]:
    return [_device(name) for name in _subset_list(value)]


def _subset_list(value: str) -> list[str]:
    names = [s.strip() for s in value.split(",") if s.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected a comma-separated list of subset names")
    return names


def _from_parser(module: str, name: str) -> Callable[[str], Any]:
    """An argparse type from one of our pure parsers (which raise ValueError); imported on first use, so
    that this module stays stdlib-only."""
    def parse(value: str) -> Any:
        import importlib

        parser = getattr(importlib.import_module(module, __package__), name)
        try:
            return parser(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    parse.__name__ = name
    return parse


_threshold = _from_parser(".gate", "parse_threshold")
_price = _from_parser(".judge_cost", "parse_price")
_shard = _from_parser(".shards", "parse_shard")
compare_gate = _from_parser(".compare", "parse_compare_gate")


def _json_object(value: str) -> dict:
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


def _ray_address(value: str) -> str:
    """local, auto, ray://HOST:PORT (Ray Client) or HOST:PORT (the head node's GCS)."""
    import re

    if value in ("local", "auto") or re.fullmatch(r"(?:ray://)?[A-Za-z0-9._-]+:\d{1,5}", value):
        return value
    raise argparse.ArgumentTypeError(f"{value!r} is not a Ray address: use auto (the cluster this machine belongs "
                                     "to), local (start one here), ray://HOST:PORT or HOST:PORT")


def _run_name(value: str) -> str:
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a run name (letters, digits, '.', '_', '-')")
    return value


def _flag(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{value!r} is not a boolean (true/false)")


@dataclass(frozen=True)
class Option:
    name: str  # without the --editeval- prefix
    help: str
    type: Callable[[str], Any] | None = str
    flag: bool = False
    repeat: bool = False
    metavar: str | None = None

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


OPTIONS = [
    Option("benchmark", "benchmark to evaluate (turns the plugin on): " + ", ".join(BUILTIN_BENCHMARKS)
           + ", a package's, or one declared in [tool.editeval.benchmarks.NAME] of pyproject.toml", metavar="NAME"),
    Option("dataset", "hub id or local path of the benchmark's data (default: the benchmark's own, e.g. "
           "stepfun-ai/GEdit-Bench)", metavar="ID_OR_PATH"),
    Option("hub", "hub to download the dataset from: modelscope or huggingface (default: the benchmark's)",
           _choice("hub", HUBS)),
    Option("offline", "use the hub's local cache only, no network", None, flag=True),
    Option("language", "instruction language (GEdit: en or cn; default: the benchmark's first)", metavar="LANG"),
    Option("subsets", "comma-separated task types to evaluate (default: all)", _subset_list, metavar="A,B"),
    Option("limit", "evaluate only the first N rows of each subset", _number(int, 1), metavar="N"),
    Option("shard", "run only shard K of N: a deterministic, balanced share of the selected rows (every subset "
           "spread over the shards); gate the shards' merged results with `pytest-editeval merge`", _shard,
           metavar="K/N"),
    Option("images", "edited images: a JSONL of {id, image_path} or a folder fullset/{task}/{lang}/{key}.png",
           metavar="PATH"),
    Option("allow-missing", "score the rows that have an edited image and pass over the others, as the official "
           "scorer does (default: a selected row without an image fails the gate)", None, flag=True),
    Option("max-pixels", "largest image (width x height) decoded for a row; a bigger one is an error row "
           f"(default {DEFAULT_MAX_PIXELS:,})", _number(int, 1), metavar="N"),
    Option("model-name", "model name shown in the table and results (default: the images' folder name, the "
           "model's id or folder name, or a custom editor's editeval_identity name)", metavar="NAME"),
    Option("model", "model mode: a ModelScope / Hugging Face id or a folder saved with save_pretrained",
           metavar="ID_OR_DIR"),
    Option("model-hub", "hub of --editeval-model: modelscope (default) or huggingface",
           _choice("hub", HUBS)),
    Option("model-revision", "revision of --editeval-model on its hub", metavar="REV"),
    Option("pipeline-cls", "diffusers pipeline class (default: _class_name of model_index.json)", metavar="NAME"),
    Option("precision", "float32, float16 or bfloat16 (default: bfloat16 on cuda, float32 on cpu)",
           _choice("precision", ("float32", "float16", "bfloat16"))),
    Option("device", "device of the pipeline: cpu, cuda, cuda:N, ... (default cuda:<xdist worker index>; without a "
           "visible CUDA device that is a usage error: pass cpu to generate on the CPU)", _device, metavar="DEV"),
    Option("devices", "comma-separated devices, one per xdist worker (e.g. cuda:0,cuda:1)", _device_list,
           metavar="A,B"),
    Option("device-map", "accelerate placement for from_pretrained, e.g. balanced", metavar="MAP"),
    Option("cpu-offload", "enable_model_cpu_offload() for cards that are too small", None, flag=True),
    Option("generation-config", "JSON of pipeline arguments (over [tool.editeval.generation] in pyproject.toml)",
           _json_object, metavar="JSON"),
    Option("seed", "global seed; each row's seed derives from it and the row key (default 0)", _number(int, 0),
           metavar="N"),
    Option("batch-size", "rows per pipeline call, among rows whose sources have the same size (default 1)",
           _number(int, 1), metavar="N"),
    Option("output-dir", "where generated images are saved (default .editeval/outputs/<model> under the rootdir)",
           metavar="DIR"),
    Option("judge-backend", "where the judge runs: openai (an OpenAI-compatible endpoint, default), transformers "
           "(the judge model in this process), vllm (a `vllm serve` the plugin starts and stops)",
           _choice("judge backend", JUDGE_BACKENDS)),
    Option("judge-recipe", "how the judge is asked and read: the benchmark's own (GEdit: viescore, the default) or "
           "editscore (GEdit's metrics with EditScore's prompts, 0..25 scale and sampling)", metavar="NAME"),
    Option("ray", "model mode on a Ray cluster: auto (the cluster this machine belongs to), local (start one "
           "here), ray://HOST:PORT or HOST:PORT; one actor per GPU, each loading the pipeline once "
           "(pip install 'pytest-editeval[ray]')", _ray_address, metavar="ADDRESS"),
    Option("ray-gpus-per-actor", "GPUs of each Ray actor (default 1; 0 generates on the actors' CPUs and needs "
           "--editeval-ray-actors)", _number(float, 0), metavar="G"),
    Option("ray-actors", "number of Ray actors (default: the cluster's GPUs / --editeval-ray-gpus-per-actor)",
           _number(int, 1), metavar="N"),
    Option("judge-url", "OpenAI-compatible base URL of the judge (or EDITEVAL_JUDGE_URL); /chat/completions is "
           "appended to its path, a query (?api-version=...) is kept", _url, metavar="URL"),
    Option("judge-allow-http", "allow a plain http:// judge URL to a host that is not this machine (the key then "
           "travels in clear)", None, flag=True),
    Option("judge-model", "judge model: its name at the endpoint for openai (or EDITEVAL_JUDGE_MODEL; default: the "
           "benchmark's, e.g. gpt-4.1); a hub id or a folder for transformers and vllm (required)",
           metavar="NAME_ID_OR_DIR"),
    Option("judge-model-hub", "hub of --editeval-judge-model and --editeval-judge-adapter: modelscope (default) or "
           "huggingface", _choice("hub", HUBS)),
    Option("judge-adapter", "a PEFT LoRA adapter on the judge model (hub id or folder), e.g. EditScore/EditScore-7B",
           metavar="ID_OR_DIR"),
    Option("judge-device", "transformers: device of the judge model: cpu, cuda, cuda:N, or auto (accelerate "
           "places it over the GPUs); default cuda:<xdist worker index> when CUDA is visible, else cpu", _judge_device,
           metavar="DEV"),
    Option("judge-precision", "transformers: float32, float16 or bfloat16 (default: bfloat16 on cuda, float32 on "
           "cpu)", _choice("precision", ("float32", "float16", "bfloat16"))),
    Option("judge-batch-size", "transformers: requests per generate call (default 1)", _number(int, 1),
           metavar="N"),
    Option("judge-seed", "seed of a sampling judge (default: the recipe's; editscore 42)", _number(int, 0),
           metavar="N"),
    Option("judge-serve-command", "vllm: the command that runs vLLM's CLI (default vllm); the plugin appends "
           "`serve MODEL --host 127.0.0.1 --port P ...`", metavar="CMD"),
    Option("judge-serve-args", "vllm: more arguments for `vllm serve`, e.g. '--tensor-parallel-size 4 "
           "--max-model-len 8192'", _shell_words, metavar="ARGS"),
    Option("judge-startup-timeout", "vllm: seconds the server may take to answer its health check (default 1800)",
           _number(float, 0, False), metavar="S"),
    Option("judge-workers", "judge requests kept in flight (default 8); with adaptive concurrency the most kept in "
           "flight", _number(int, 1), metavar="N"),
    Option("judge-concurrency", "adaptive (default): requests in flight adapt to the provider's rate limit (a slow "
           "start from 8, doubled per round trip; halved on a 429 or a time-out; sent evenly, never in bursts; "
           "Retry-After and x-ratelimit-* headers, also LiteLLM's llm_provider-*, pause the whole client), up to "
           "--editeval-judge-workers; fixed: always --editeval-judge-workers",
           _choice("judge concurrency", ("adaptive", "fixed"))),
    Option("judge-samples", "ask each question K times (distinct seeds where the backend takes one), each answer "
           "cached on its own; rows then report the judge's spread and aggregates its standard error (default 1)",
           _number(int, 1), metavar="K"),
    Option("judge-average", "with several samples: first (default) = the row formula on each question's mean over "
           "the samples; last = the mean of the row formula's results on each sample",
           _choice("averaging order", ("first", "last"))),
    Option("judge-panel", "a TOML file of several judges (backend, model, the environment variables of their URL "
           "and key, weight) whose answers are combined per question", metavar="FILE"),
    Option("judge-panel-reduce", "how a panel combines its judges' answers to a question: mean (weighted, default) "
           "or median (weighted)", _choice("panel reduction", ("mean", "median"))),
    Option("table-judges", "with a panel: add each judge's own headline rows to the table", None, flag=True),
    Option("judge-price", "USD per million prompt and completion tokens, e.g. '2,8': the run's judge cost, and what "
           "the cache saved, in the summary and the results", _price, metavar="IN,OUT"),
    Option("judge-timeout", "seconds a judge request attempt may take in all, however slowly the answer arrives "
           "(default 120)", _number(float, 0, False), metavar="S"),
    Option("judge-max-tokens", "max_tokens sent to the judge (default: the protocol's; GEdit 1400 official, "
           "4096 evalscope)", _number(int, 1), metavar="N"),
    Option("judge-temperature", "temperature sent to the judge (default: the protocol's; GEdit none official, 0.0 "
           "evalscope)", _number(float, 0), metavar="T"),
    Option("judge-retries", "retries of a failed judge request (default 5)", _number(int, 0), metavar="N"),
    Option("judge-parse-retries", "re-asks when a reply has no readable score (default 2)", _number(int, 0),
           metavar="N"),
    Option("judge-backoff", "first retry delay in seconds, doubled each retry (default 1.0)",
           _number(float, 0), metavar="S"),
    Option("row-deadline", "seconds one row may spend on the judge, retries, re-asks and Retry-After pauses "
           "included (default 900)",
           _number(float, 0, False), metavar="S"),
    Option("protocol", "judging recipe of the benchmark (default official; GEdit also evalscope)", metavar="NAME"),
    Option("judge-prompts", "ImgEdit: the judge prompt JSON to use instead of the download's "
           "Benchmark/singleturn/judge_prompt.json; RISEBench: the official scorer's utils.py", metavar="FILE"),
    Option("kris-fix-anomaly", "KRIS: judge anomaly_correction rows with their own template and hint (fixes an "
           "upstream bug that every published number carries; said in the results)", None, flag=True),
    Option("threshold", "gate expression, repeatable, e.g. 'overall>=7.0', 'sc[color_alter]>=6.5', "
           "'error_rate<=0.02' (rows whose judging failed / rows judged), 'missing_rate<=0.05' (selected rows without "
           "an edited image / selected rows)", _threshold, repeat=True, metavar="EXPR"),
    Option("gate", "when to gate: auto (complete runs only, default), always, never",
           _choice("gate policy", ("auto", "always", "never"))),
    Option("json", "write the full results as JSON to PATH", metavar="PATH"),
    Option("html", "write a self-contained HTML report to PATH", metavar="PATH"),
    Option("save", "save this run's results as NAME under .editeval/runs/", _run_name, metavar="NAME"),
    Option("compare", "compare with a saved run (a name under .editeval/runs/ or a JSON path)", metavar="NAME_OR_PATH"),
    Option("compare-fail", "fail when a paired difference drops below DELTA, e.g. 'overall:-0.2', repeatable",
           compare_gate, repeat=True, metavar="EXPR"),
    Option("compare-missing", "when the --editeval-compare baseline does not exist: error (default), or skip the "
           "comparison with one line (a CI workflow's first run)", _choice("compare-missing policy", ("error", "skip"))),
    Option("cache-dir", "cache folder (default .editeval/cache under the rootdir)", metavar="DIR"),
    Option("no-cache", "neither read nor write the cache", None, flag=True),
    Option("refresh", "recompute cached entries and overwrite them", None, flag=True),
]
BY_NAME = {o.name: o for o in OPTIONS}


# The groups `pytest --help` and the options reference show, in order: (title, what they are about, members).
# A member ending in "*" takes every option that starts so; an option matched by none lands in "Other" (a test
# keeps that group empty).
GROUPS: list[tuple[str, str, tuple[str, ...]]] = [
    ("Data", "which benchmark, which rows, from where",
     ("benchmark", "dataset", "hub", "offline", "language", "subsets", "limit", "max-pixels")),
    ("Images or model", "image mode (edited images you have) or model mode (the plugin edits them)",
     ("images", "model-name", "model", "model-hub", "model-revision", "pipeline-cls", "precision", "device",
      "devices", "device-map", "cpu-offload", "generation-config", "seed", "batch-size", "output-dir")),
    ("Judge", "who scores the edits, how it is asked, and how its answers are combined",
     ("judge-*", "row-deadline", "protocol", "kris-fix-anomaly")),
    ("Gate", "what fails the run",
     ("threshold", "gate", "allow-missing", "compare", "compare-fail", "compare-missing")),
    ("Output", "what is written and kept",
     ("json", "html", "save", "table-judges", "cache-dir", "no-cache", "refresh")),
    ("Scale", "more than one process or machine",
     ("shard", "ray", "ray-*")),
]
OTHER_GROUP = "Other"


def group_of(name: str) -> str:
    """The group title of option `name` (without --editeval-)."""
    for title, _, members in GROUPS:
        for member in members:
            if member == name or (member.endswith("*") and name.startswith(member[:-1])):
                return title
    return OTHER_GROUP


def register(parser) -> None:
    """Every option in its group (pytest --help shows one section a group), each with its ini twin."""
    titles = {group_of(opt.name) for opt in OPTIONS}
    groups = {title: parser.getgroup(f"editeval {title.lower()}", f"pytest-editeval, {title.lower()}: {about}")
              for title, about, _ in [*GROUPS, (OTHER_GROUP, "not yet placed in a group", ())] if title in titles}
    for opt in OPTIONS:
        group = groups[group_of(opt.name)]
        flag = "--editeval-" + opt.name
        if opt.flag:
            group.addoption(flag, dest=opt.dest, action="store_true", default=None, help=opt.help)
        elif opt.repeat:
            group.addoption(flag, dest=opt.dest, action="append", type=opt.type, default=None,
                            metavar=opt.shown_metavar, help=opt.help)
        else:
            group.addoption(flag, dest=opt.dest, type=opt.type, default=None, metavar=opt.shown_metavar,
                            help=opt.help)
        parser.addini(opt.ini, help=opt.help, type="linelist" if opt.repeat else "string")
    parser.addini("editeval_junit_properties", type="bool", default=True,
                  help="add each row's scores to JUnit XML as <property> entries (default true)")


def given_on_command_line(config) -> list[str]:
    """The editeval options set on the command line, as --editeval-NAME."""
    return [f"--editeval-{opt.name}" for opt in OPTIONS if config.getoption(opt.dest) is not None]


def given(config) -> list[str]:
    """The editeval options set on the command line or in the ini file, as the user wrote their names."""
    names = given_on_command_line(config)
    names += [opt.ini for opt in OPTIONS if config.getini(opt.ini)]  # unset ini values read as "" or []
    return names


def replaced_ini_lines(config) -> list[str]:
    """One line for each repeatable option given on the command line while the ini file sets it too: the command
    line replaces the ini values (pytest's rule for options that append), so no gate line may vanish unseen."""
    lines = []
    for opt in OPTIONS:
        if opt.repeat and config.getoption(opt.dest) is not None:
            ini = [line.strip() for line in config.getini(opt.ini) if line.strip()]
            if ini:
                lines.append(f"--editeval-{opt.name} on the command line replaces the {len(ini)} value(s) of ini "
                             f"{opt.ini} ({'; '.join(ini)}): repeat them on the command line to keep them")
    return lines


class IniValueError(ValueError):
    pass


def value(config, name: str) -> Any:
    """The option's value: command line, else ini (checked with the same parser), else None."""
    opt = BY_NAME[name]
    given = config.getoption(opt.dest)
    if given is not None:
        return given
    raw = config.getini(opt.ini)
    if not raw:
        return None
    parse = _flag if opt.flag else (opt.type or str)
    try:
        if opt.repeat:
            return [parse(line) for line in raw if line.strip()]
        return parse(raw.strip())
    except argparse.ArgumentTypeError as exc:
        raise IniValueError(f"ini option {opt.ini}: {exc}") from None
