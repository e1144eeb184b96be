"""The option table: every `--editeval-*` option, its ini twin, its --help group, and how a value is read.

Options are declared where they belong (option_types.Option): the core ones below; the judge's in the judges
package (judges/options.py for those every judge shares, each backend's module for its own); a benchmark's by its
benchmark class (`options`). `all_options()` gathers them from the registries, so a new backend, benchmark or
option needs no change here. Every option `--editeval-x` has an ini twin `editeval_x` (thresholds:
`editeval_thresholds`, one per line). Precedence: command line, then ini, then the declared default; "given" is
tested with `is not None`, so that a value of 0 is not mistaken for "unset". Single values are checked by
argparse `type=` callables (exit code 4 and one line, before anything runs); the same callables check ini values.
This module, and every declaration it gathers, imports only the stdlib.
"""

from __future__ import annotations

import argparse
from typing import Any

from pytest_editeval import benchmarks, judges
from pytest_editeval.data.hub import HUBS
from pytest_editeval.options.types import (
    DEVICE_TYPES,
    PRECISIONS,
    Option,
    choice,
    compare_gate,
    device,
    device_list,
    flag,
    json_object,
    number,
    ray_address,
    run_name,
    shard,
    subset_list,
    threshold,
)

# A little above the largest image a GEdit-Bench run meets (sources about 0.26 MP, model outputs up to 2048 x 2048,
# raw photos up to about 12 MP): one hostile 13000 x 13000 PNG would cost 0.5 GB decoded.
DEFAULT_MAX_PIXELS = 4096 * 4096
__all__ = ["DEFAULT_MAX_PIXELS", "DEVICE_TYPES", "Option", "compare_gate"]

CORE = [
    Option("benchmark", "benchmark to evaluate (turns the plugin on): " + ", ".join(benchmarks.BUILTIN)
           + ", a package's, or one declared in [tool.editeval.benchmarks.NAME] of pyproject.toml", metavar="NAME"),
    Option("dataset", "hub id or local path of the benchmark's data (default: the benchmark's own, e.g. "
           "stepfun-ai/GEdit-Bench)", metavar="ID_OR_PATH"),
    Option("hub", "hub to download the dataset from: modelscope or huggingface (default: the benchmark's)",
           choice("hub", HUBS)),
    Option("offline", "use the hub's local cache only, no network", None, flag=True),
    Option("language", "instruction language (GEdit: en or cn; default: the benchmark's first)", metavar="LANG"),
    Option("subsets", "comma-separated task types to evaluate (default: all)", subset_list, metavar="A,B"),
    Option("limit", "evaluate only the first N rows of each subset", number(int, 1), metavar="N"),
    Option("shard", "run only shard K of N: a deterministic, balanced share of the selected rows (every subset "
           "spread over the shards); gate the shards' merged results with `pytest-editeval merge`", shard,
           metavar="K/N"),
    Option("images", "edited images: a JSONL of {id, image_path} or a folder fullset/{task}/{lang}/{key}.png",
           metavar="PATH"),
    Option("allow-missing", "score the rows that have an edited image and pass over the others, as the official "
           "scorer does (default: a selected row without an image fails the gate)", None, flag=True),
    Option("max-pixels", "largest image (width x height) decoded for a row; a bigger one is an error row "
           f"(default {DEFAULT_MAX_PIXELS:,})", number(int, 1), metavar="N"),
    Option("model-name", "model name shown in the table and results (default: the images' folder name, the "
           "model's id or folder name, or a custom editor's editeval_identity name)", metavar="NAME"),
    Option("model", "model mode: a ModelScope / Hugging Face id or a folder saved with save_pretrained",
           metavar="ID_OR_DIR"),
    Option("model-hub", "hub of --editeval-model: modelscope (default) or huggingface",
           choice("hub", HUBS)),
    Option("model-revision", "revision of --editeval-model on its hub", metavar="REV"),
    Option("pipeline-cls", "diffusers pipeline class (default: _class_name of model_index.json)", metavar="NAME"),
    Option("precision", "float32, float16 or bfloat16 (default: bfloat16 on cuda, float32 on cpu)",
           choice("precision", PRECISIONS)),
    Option("device", "device of the pipeline: cpu, cuda, cuda:N, ... (default cuda:<xdist worker index>; without a "
           "visible CUDA device that is a usage error: pass cpu to generate on the CPU)", device, metavar="DEV"),
    Option("devices", "comma-separated devices, one per xdist worker (e.g. cuda:0,cuda:1)", device_list,
           metavar="A,B"),
    Option("device-map", "accelerate placement for from_pretrained, e.g. balanced", metavar="MAP"),
    Option("cpu-offload", "enable_model_cpu_offload() for cards that are too small", None, flag=True),
    Option("generation-config", "JSON of pipeline arguments (over [tool.editeval.generation] in pyproject.toml)",
           json_object, metavar="JSON"),
    Option("seed", "global seed; each row's seed derives from it and the row key (default 0)", number(int, 0),
           metavar="N"),
    Option("batch-size", "rows per pipeline call, among rows whose sources have the same size (default 1)",
           number(int, 1), metavar="N"),
    Option("output-dir", "where generated images are saved (default .editeval/outputs/<model> under the rootdir)",
           metavar="DIR"),
    Option("ray", "model mode on a Ray cluster: auto (the cluster this machine belongs to), local (start one "
           "here), ray://HOST:PORT or HOST:PORT; one actor per GPU, each loading the pipeline once "
           "(pip install 'pytest-editeval[ray]')", ray_address, metavar="ADDRESS"),
    Option("ray-gpus-per-actor", "GPUs of each Ray actor (default 1; 0 generates on the actors' CPUs and needs "
           "--editeval-ray-actors)", number(float, 0), metavar="G"),
    Option("ray-actors", "number of Ray actors (default: the cluster's GPUs / --editeval-ray-gpus-per-actor)",
           number(int, 1), metavar="N"),
    Option("table-judges", "with a panel: add each judge's own headline rows to the table", None, flag=True),
    Option("protocol", "how the judge is asked and read (prompts, images, sampling, headline averaging): one of the "
           "benchmark's protocols (default: its first; GEdit: official, evalscope) or judge recipes (GEdit: editscore, "
           "EditScore's prompts, 0..25 scale and sampling, asked with the default protocol); PROTOCOL+RECIPE joins "
           "both (GEdit: evalscope+editscore)", metavar="NAME", group="Judge"),
    Option("judge-recipe", "deprecated (removed in the next release): --editeval-protocol takes the recipe names "
           "(e.g. editscore) now", metavar="NAME", group="Judge"),
    Option("threshold", "gate expression, repeatable, e.g. 'overall>=7.0', 'sc[color_alter]>=6.5', "
           "'error_rate<=0.02' (rows whose judging failed / rows judged), 'missing_rate<=0.05' (selected rows without "
           "an edited image / selected rows)", threshold, repeat=True, metavar="EXPR"),
    Option("gate", "when to gate: auto (complete runs only, default), always, never",
           choice("gate policy", ("auto", "always", "never"))),
    Option("json", "write the full results as JSON to PATH", metavar="PATH"),
    Option("html", "write a self-contained HTML report to PATH", metavar="PATH"),
    Option("save", "save this run's results as NAME under .editeval/runs/", run_name, metavar="NAME"),
    Option("compare", "compare with a saved run (a name under .editeval/runs/ or a JSON path)", metavar="NAME_OR_PATH"),
    Option("compare-fail", "fail when a paired difference drops below DELTA, e.g. 'overall:-0.2', repeatable",
           compare_gate, repeat=True, metavar="EXPR"),
    Option("compare-missing", "when the --editeval-compare baseline does not exist: error (default), or skip the "
           "comparison with one line (a CI workflow's first run)", choice("compare-missing policy", ("error", "skip"))),
    Option("cache-dir", "cache folder (default .editeval/cache under the rootdir)", metavar="DIR"),
    Option("no-cache", "neither read nor write the cache", None, flag=True),
    Option("refresh", "recompute cached entries and overwrite them", None, flag=True),
]
DEPRECATED = {"judge-recipe": "protocol"}  # old spelling -> the option that replaces it (one release)


def all_options() -> list[Option]:
    """Every command-line option: the core's, the judges' (shared, then each registered backend's own), the
    benchmarks'. (Panel-only keys of the judges are not options.)"""
    return [o for o in (*CORE, *judges.all_options(), *benchmarks.declared_options()) if not o.panel_only]


def by_name() -> dict[str, Option]:
    # Read from the registries at each call, not kept: a backend registered (or a declaration patched) after
    # this module's import is seen, and the table is small (about 60 us to build).
    return {o.name: o for o in all_options()}


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
     ("judge-*", "row-deadline", "protocol")),
    ("Gate", "what fails the run",
     ("threshold", "gate", "allow-missing", "compare", "compare-fail", "compare-missing")),
    ("Output", "what is written and kept",
     ("json", "html", "save", "table-judges", "cache-dir", "no-cache", "refresh")),
    ("Scale", "more than one process or machine",
     ("shard", "ray", "ray-*")),
]
OTHER_GROUP = "Other"


def group_of(name: str, declared: Option | None = None) -> str:
    """The group title of option `name` (without --editeval-): its declared group, else the GROUPS pattern."""
    declared = declared or by_name().get(name)
    if declared is not None and declared.group:
        return declared.group
    for title, _, members in GROUPS:
        for member in members:
            if member == name or (member.endswith("*") and name.startswith(member[:-1])):
                return title
    return OTHER_GROUP


def register(parser) -> None:
    """Every option in its group (pytest --help shows one section a group), each with its ini twin."""
    table = all_options()
    titles = {group_of(opt.name, opt) for opt in table}
    groups = {title: parser.getgroup(f"editeval {title.lower()}", f"pytest-editeval, {title.lower()}: {about}")
              for title, about, _ in [*GROUPS, (OTHER_GROUP, "not yet placed in a group", ())] if title in titles}
    for opt in table:
        group = groups[group_of(opt.name, opt)]
        flag = "--editeval-" + opt.name
        if opt.flag:
            group.addoption(flag, dest=opt.dest, action="store_true", default=None, help=opt.shown_help)
        elif opt.repeat:
            group.addoption(flag, dest=opt.dest, action="append", type=opt.type, default=None,
                            metavar=opt.shown_metavar, help=opt.shown_help)
        else:
            group.addoption(flag, dest=opt.dest, type=opt.type, default=None, metavar=opt.shown_metavar,
                            help=opt.shown_help)
        parser.addini(opt.ini, help=opt.shown_help, type="linelist" if opt.repeat else "string")
    parser.addini("editeval_junit_properties", type="bool", default=True,
                  help="add each row's scores to JUnit XML as <property> entries (default true)")


def given_on_command_line(config) -> list[str]:
    """The editeval options set on the command line, as --editeval-NAME."""
    return [f"--editeval-{opt.name}" for opt in _registered(config) if config.getoption(opt.dest) is not None]


def given(config) -> list[str]:
    """The editeval options set on the command line or in the ini file, as the user wrote their names."""
    names = given_on_command_line(config)
    names += [opt.ini for opt in _registered(config) if config.getini(opt.ini)]  # unset ini values read as "" or []
    return names


def replaced_ini_lines(config) -> list[str]:
    """One line for each repeatable option given on the command line while the ini file sets it too: the command
    line replaces the ini values (pytest's rule for options that append), so no gate line may vanish unseen."""
    lines = []
    for opt in _registered(config):
        if opt.repeat and config.getoption(opt.dest) is not None:
            ini = [line.strip() for line in config.getini(opt.ini) if line.strip()]
            if ini:
                lines.append(f"--editeval-{opt.name} on the command line replaces the {len(ini)} value(s) of ini "
                             f"{opt.ini} ({'; '.join(ini)}): repeat them on the command line to keep them")
    return lines


class IniValueError(ValueError):
    pass


def _registered(config) -> list[Option]:
    """The options this pytest run registered (a backend registered after pytest read its options has none)."""
    return [opt for opt in all_options() if config.getoption(opt.dest, default=_UNSET) is not _UNSET]


_UNSET = object()


def value(config, name: str) -> Any:
    """The option's value: command line, else ini (checked with the same parser), else None."""
    opt = by_name()[name]
    given = config.getoption(opt.dest, default=None)
    if given is not None:
        return given
    raw = config.getini(opt.ini)
    if not raw:
        return None
    parse = flag if opt.flag else (opt.type or str)
    try:
        if opt.repeat:
            return [parse(line) for line in raw if line.strip()]
        return parse(raw.strip())
    except argparse.ArgumentTypeError as exc:
        raise IniValueError(f"ini option {opt.ini}: {exc}") from None


def value_or_default(config, name: str) -> Any:
    """The option's value, or its declared default when it is not given."""
    given = value(config, name)
    return by_name()[name].default if given is None else given


def deprecation_lines(config) -> list[str]:
    """One line for each deprecated spelling the run uses (command line or ini), naming what replaces it."""
    return [f"editeval: deprecated: --editeval-{old} (ini {by_name()[old].ini}) goes in the next release: use "
            f"--editeval-{new} {value(config, old)}" for old, new in DEPRECATED.items() if value(config, old) is not None]
