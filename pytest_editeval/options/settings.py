"""Everything a run needs, resolved once in pytest_configure from options, ini, environment and `.env`.

The API key comes only from EDITEVAL_JUDGE_API_KEY (environment first, then a `.env` file in the invocation
folder or the rootdir); it is never accepted on the command line or in ini files, and it is held out of every
repr so that tracebacks with --showlocals cannot print it. Only the openai backend needs a URL and a key; the
transformers and vllm backends run the judge on this machine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_editeval.errors import InputError
from pytest_editeval.generation.pipeline import GenerationSettings
from pytest_editeval.generation.ray_actors import RaySettings, ray_version_problem
from pytest_editeval.judges.panel import PanelSpec
from pytest_editeval.judges.settings import JudgeFacts, JudgeSpec
from pytest_editeval.options import table as options
from pytest_editeval.scoring.gate import Threshold
from pytest_editeval.scoring.judge_cost import Price

if TYPE_CHECKING:  # run/ imports these settings; an import back would be a cycle
    from pytest_editeval.run.shards import Shard


@dataclass(frozen=True)
class RunSettings:
    benchmark: str
    dataset: str  # a hub id or a local path; the benchmark's own default when not given
    hub: str
    offline: bool
    language: str
    subsets: list[str] | None
    limit: int | None
    images: str | None
    allow_missing: bool  # score the rows that have images; missing rows do not fail the gate
    max_pixels: int  # largest image decoded for a row
    model_name: str | None
    protocol: str
    thresholds: list[Threshold]
    gate_policy: str
    json_path: Path | None
    html_path: Path | None
    save_name: str | None
    compare: str | None
    compare_gates: list
    compare_missing: str  # error | skip: what a --editeval-compare baseline that does not exist does
    cache_dir: Path | None
    refresh: bool
    workers: int
    junit_properties: bool
    judge: JudgeSpec | None = field(repr=False)  # None for --collect-only: no judge needed
    judge_samples: int = 1  # --editeval-judge-samples: answers per question
    judge_average: str = "first"  # first | last (judge_noise.py)
    panel: PanelSpec | None = field(default=None, repr=False)  # --editeval-judge-panel: several judges
    table_judges: bool = False  # the table shows each panel judge's own headline rows
    judge_price: Price | None = None  # --editeval-judge-price: USD per million prompt, completion tokens
    judge_recipe: str | None = None  # --editeval-judge-recipe (None: the benchmark's own)
    generation: GenerationSettings | None = None  # model mode (no --editeval-images)
    shard: Shard | None = None  # --editeval-shard K/N: this run's share of the selected rows
    ray: RaySettings | None = None  # model mode on Ray actors
    # The benchmarks' own options (Benchmark.options) by their names with _, read as attributes too:
    # settings.judge_prompts, settings.kris_fix_anomaly.
    benchmark_values: dict = field(default_factory=dict)

    def __getattr__(self, name: str):  # only for names that are not fields
        values = self.__dict__.get("benchmark_values", {})
        if name in values:
            return values[name]
        raise AttributeError(name)


def environment(config) -> dict[str, str]:
    """os.environ over the values of `.env` files (invocation folder first, then rootdir)."""
    from dotenv import dotenv_values

    merged: dict[str, str] = {}
    for folder in (config.rootpath, config.invocation_params.dir):
        env_file = Path(folder) / ".env"
        if env_file.is_file():
            merged.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    merged.update(os.environ)
    return merged


def resolve(config, *, need_judge: bool = True, benchmark_name: str | None = None) -> RunSettings:
    """The run's settings; defaults that depend on the benchmark (dataset, hub, language, protocol, judge model
    and request parameters) come from the chosen benchmark's declarations. Options are read in one fixed order,
    so that of several bad values the same one is always reported."""
    from pytest_editeval import benchmarks

    try:
        get = lambda name: options.value(config, name)  # noqa: E731
        default = lambda name: options.value_or_default(config, name)  # noqa: E731
        name = benchmark_name or get("benchmark")
        benchmark = benchmarks.get(name, Path(config.rootpath))
        protocol, recipe = benchmark.judging(get("protocol"), get("judge-recipe"))  # checked also when no judge is needed
        language = _language(get, benchmark, name)
        judge, panel = _judges(config, get, default, environment(config), benchmark, protocol, recipe, need_judge)
        samples = default("judge-samples")
        thresholds = get("threshold") or []
        _check_spread_thresholds(samples, thresholds)
        cache_dir = None if get("no-cache") else Path(get("cache-dir") or config.rootpath / ".editeval" / "cache")
        json_path = get("json")
        ray = _ray_settings(config, get)
        return RunSettings(
            benchmark=name,
            **_data_fields(get, benchmark, language),
            protocol=protocol.name,
            thresholds=thresholds,
            **_output_fields(get, json_path),
            benchmark_values={benchmarks.option_value_name(opt.name): default(opt.name)
                              for opt in benchmarks.declared_options()},
            cache_dir=Path(cache_dir).expanduser() if cache_dir else None,
            refresh=bool(get("refresh")),
            workers=default("judge-workers"),
            junit_properties=bool(config.getini("editeval_junit_properties")),
            judge=judge,
            judge_recipe=recipe.name,
            judge_samples=samples,
            judge_average=default("judge-average"),
            panel=panel,
            table_judges=bool(get("table-judges")),
            judge_price=get("judge-price"),
            generation=None if get("images") else _generation_settings(config, get, ray),
            shard=get("shard"),
            ray=ray,
        )
    except options.IniValueError as exc:
        raise InputError(str(exc)) from None


def _language(get, benchmark, name: str) -> str:
    """--editeval-language, or the benchmark's first language; one it does not have is a usage error."""
    language = get("language") or benchmark.languages[0]
    if language not in benchmark.languages:
        raise InputError(f"unknown language {language!r}: known languages are "
                         + ", ".join(benchmark.languages) + f" ({name})")
    return language


def _judges(config, get, default, env: dict[str, str], benchmark, protocol, recipe,
            need_judge: bool) -> tuple[JudgeSpec | None, PanelSpec | None]:
    """(the run's judge, its panel or None); (None, None) when no judge is needed (--collect-only). A panel's
    options without a panel are usage errors even then: they would evaluate nothing."""
    panel_file = get("judge-panel")
    for option in ("judge-panel-reduce", "table-judges"):
        if get(option) is not None and not panel_file:
            raise InputError(f"--editeval-{option} is for a panel of judges: add --editeval-judge-panel FILE")
    if not need_judge:
        return None, None
    base, facts = _judge_base(config, get, benchmark, protocol, recipe), _judge_facts(config, env, benchmark)
    if panel_file:
        panel = _panel(get, base, facts, Path(panel_file).expanduser(), default("judge-panel-reduce"))
        return panel.members[0].spec, panel
    return _judge_spec(get, base, facts), None


def _check_spread_thresholds(samples: int, thresholds: list[Threshold]) -> None:
    """A judge_sd threshold needs repeated answers: with one sample it would gate a spread that is never measured."""
    if samples < 2 and any(t.metric == "judge_sd" for t in thresholds):
        first = next(t for t in thresholds if t.metric == "judge_sd")
        raise InputError(f"threshold {first.expression!r} gates the judge's spread over repeated answers: pass "
                         "--editeval-judge-samples 2 or more (each question is asked once by default)")


def _data_fields(get, benchmark, language: str) -> dict:
    """RunSettings' fields of what is evaluated: the dataset and its rows, the images and their bounds."""
    return dict(
        dataset=get("dataset") or benchmark.default_dataset,
        hub=get("hub") or benchmark.default_hub,
        offline=bool(get("offline")),
        language=language,
        subsets=get("subsets"),
        limit=get("limit"),
        images=get("images"),
        allow_missing=bool(get("allow-missing")),
        max_pixels=get("max-pixels") or options.DEFAULT_MAX_PIXELS,
        model_name=get("model-name"),
    )


def _output_fields(get, json_path) -> dict:
    """RunSettings' fields of what the run decides and writes: the gate, the result files, the comparison."""
    return dict(
        gate_policy=get("gate") or "auto",
        json_path=Path(json_path) if json_path else None,
        html_path=Path(get("html")) if get("html") else None,
        save_name=get("save"),
        compare=get("compare"),
        compare_gates=get("compare-fail") or [],
        compare_missing=get("compare-missing") or "error",
    )


def _judge_base(config, get, benchmark, protocol, recipe) -> JudgeSpec:
    """The judge settings every backend (and every judge of a panel) shares: the shared judge options' values
    (judges/options.py), the sampling ones defaulting to the protocol's and recipe's."""
    from pytest_editeval.judges.options import SHARED

    sampling = benchmark.judge_parameters(protocol, recipe)
    values = {}
    for opt in SHARED:
        if opt.field:
            given = None if opt.panel_only else get(opt.name)
            values[opt.field] = given if given is not None else sampling.get(opt.field, opt.default)
    _, worker_index = _xdist_worker(config)
    return JudgeSpec(backend="", model="", recipe=recipe.name, offline=bool(get("offline")),
                     worker_index=worker_index).with_values(**values)


def _judge_facts(config, env: dict[str, str], benchmark) -> JudgeFacts:
    worker, _ = _xdist_worker(config)
    return JudgeFacts(env=env, default_model=benchmark.default_judge_model, worker=worker,
                      processes=getattr(config.option, "numprocesses", None) or 0)


def _judge_spec(get, base: JudgeSpec, facts: JudgeFacts) -> JudgeSpec:
    """The run's judge: the backend's own options (a backend's option given to another backend is a usage error,
    not ignored), then the backend's own checks (its `configure`), before anything runs."""
    from pytest_editeval import judges
    backend = get("judge-backend") or judges.DEFAULT_BACKEND
    own = judges.own_options(backend)
    for opt in judges.all_options():
        owners = () if opt.panel_only else judges.declared_by(opt.name)
        if owners and opt not in own and get(opt.name) is not None:
            raise InputError(f"--editeval-{opt.name} is for --editeval-judge-backend {' or '.join(owners)}; this run's "
                             f"judge backend is {backend}")
    values = {opt.field: get(opt.name) for opt in own if opt.field and get(opt.name) is not None}
    judges.check_installed(backend, adapter=bool(values.get("adapter")))
    spec = base.with_values(backend=backend, model=get("judge-model") or "", **values)
    return judges.configure(spec, facts)


def _panel(get, base: JudgeSpec, facts: JudgeFacts, path: Path, reduce: str) -> PanelSpec:
    """The judges of --editeval-judge-panel, each with the run's recipe and settings under its own keys."""
    from pytest_editeval import judges
    from pytest_editeval.judges.panel import load_panel

    # A panel names each judge in its file: the options that name one judge would be ambiguous beside it.
    clash = [opt.name for opt in judges.all_options() if opt.one_judge and get(opt.name) is not None]
    if clash:
        raise InputError(f"--editeval-{clash[0]} (or the ini key editeval_{clash[0].replace('-', '_')}) names one "
                         f"judge; with --editeval-judge-panel each judge is named in {path}: set it there and remove "
                         f"it from the command line and the ini file (see the README's panel keys)")
    return load_panel(path, base=base, env=facts.env, reduce=reduce,
                      default_price=get("judge-price"), facts=facts,
                      check_installed=lambda backend, adapter: judges.check_installed(backend, adapter=adapter))


def _xdist_worker(config) -> tuple[str, int]:
    """(this process's xdist worker id, its index): ("gw0", 0) in a single process; the index picks a worker's
    device (cuda:<index>) and a vllm judge's single server."""
    worker = getattr(config, "workerinput", {}).get("workerid", "gw0")
    return worker, int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0


def _ray_settings(config, get) -> RaySettings | None:
    """--editeval-ray and its companions, checked together (one line each, before any test runs)."""
    address, gpus, actors = get("ray"), get("ray-gpus-per-actor"), get("ray-actors")
    if address is None:
        companions = [name for name, value in (("ray-gpus-per-actor", gpus), ("ray-actors", actors)) if value is not None]
        if companions:
            raise InputError(f"--editeval-{companions[0]} needs --editeval-ray ADDRESS (auto, local, ray://HOST:PORT)")
        return None
    if get("images"):
        raise InputError("--editeval-ray generates the edited images on Ray actors (model mode): drop "
                         "--editeval-images, or drop --editeval-ray to judge the images you have")
    placed = [name for name in ("device", "devices") if get(name) is not None]
    if placed:
        raise InputError(f"--editeval-{placed[0]} does not apply with --editeval-ray: Ray gives each actor its own "
                         "GPU(s) (--editeval-ray-gpus-per-actor; 0 for the CPU)")
    if getattr(config, "workerinput", None) is not None or (getattr(config.option, "numprocesses", None) or 0) != 0:
        raise InputError("--editeval-ray spreads generation over the cluster itself: run without -n (pytest-xdist)")
    gpus = 1.0 if gpus is None else float(gpus)
    if gpus == 0 and actors is None:
        raise InputError("--editeval-ray-gpus-per-actor 0 generates on the actors' CPUs: say how many actors with "
                         "--editeval-ray-actors N")
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise InputError("--editeval-ray needs Ray, which is not installed: pip install 'pytest-editeval[ray]'")
    too_old = ray_version_problem()
    if too_old:
        raise InputError(too_old)
    return RaySettings(address=address, gpus_per_actor=gpus, actors=actors)


def _generation_settings(config, get, ray: RaySettings | None = None) -> GenerationSettings:
    model = get("model")
    generation_config = {**_pyproject_generation_table(Path(config.rootpath)), **(get("generation-config") or {})}
    folder_name = safe_folder_name(get("model-name") or (Path(model).name if model else "custom-editor"))
    output_dir = get("output-dir") or Path(config.rootpath) / ".editeval" / "outputs" / folder_name
    devices = get("devices")
    _, index = _xdist_worker(config)
    device = get("device") or (devices[index % len(devices)] if devices else None)
    if ray is not None:  # inside an actor: its own GPU(s) as Ray assigned them, or its CPU
        device = "cuda" if ray.gpus_per_actor > 0 else "cpu"
    return GenerationSettings(
        model=model, model_hub=get("model-hub") or "modelscope", revision=get("model-revision"),
        offline=bool(get("offline")), pipeline_cls=get("pipeline-cls"), precision=get("precision"),
        device=device, device_map=get("device-map"), cpu_offload=bool(get("cpu-offload")),
        config=generation_config, seed=get("seed") or 0, batch_size=get("batch-size") or 1,
        output_dir=Path(output_dir).expanduser(), worker_index=index, devices=tuple(devices or ()),
    )


def safe_folder_name(name: str) -> str:
    """A model name as one folder name: no separators, no leading dot, nothing that climbs out of .editeval/."""
    import re

    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "model"
    return cleaned[:100]


def _pyproject_generation_table(rootpath: Path) -> dict:
    """[tool.editeval.generation] of the rootdir's pyproject.toml: pipeline arguments kept with the project."""
    import tomllib

    pyproject = rootpath / "pyproject.toml"
    if not pyproject.is_file():
        return {}
    from pytest_editeval.data.jsonfile import TOO_DEEP, config_text

    try:
        table = tomllib.loads(config_text(pyproject)).get("tool", {}).get("editeval", {}).get("generation", {})
    except TOO_DEEP:
        raise InputError(f"cannot read [tool.editeval.generation] from {pyproject}: nested too deeply") from None
    except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read [tool.editeval.generation] from {pyproject}: {exc}") from None
    if not isinstance(table, dict):
        raise InputError(f"[tool.editeval.generation] in {pyproject} must be a table of pipeline arguments")
    return table
