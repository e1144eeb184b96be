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

from . import options
from .errors import InputError
from .gate import Threshold
from .generation import GenerationSettings
from .judge_cost import Price
from .judges.panel import PanelSpec
from .judges.settings import JudgeSettings, JudgeSpec, cleartext_problem
from .ray_generation import RaySettings, ray_version_problem
from .shards import Shard

KEY_VARIABLE = "EDITEVAL_JUDGE_API_KEY"
URL_VARIABLE = "EDITEVAL_JUDGE_URL"
MODEL_VARIABLE = "EDITEVAL_JUDGE_MODEL"


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
    judge_prompts: Path | None  # ImgEdit: a judge prompt file other than the download's own
    kris_fix_anomaly: bool  # KRIS: judge anomaly_correction with its own template (an upstream bug, fixed)
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
    and request parameters) come from the chosen benchmark's declarations."""
    from . import benchmarks

    try:
        get = lambda name: options.value(config, name)  # noqa: E731
        name = benchmark_name or get("benchmark")
        benchmark = benchmarks.get(name, Path(config.rootpath))
        protocol = benchmark.protocol(get("protocol")).name
        language = get("language") or benchmark.languages[0]
        if language not in benchmark.languages:
            raise InputError(f"unknown language {language!r}: known languages are "
                             + ", ".join(benchmark.languages) + f" ({name})")
        env = environment(config)
        recipe = benchmark.recipe(get("judge-recipe")).name  # checked here, also when no judge is needed
        panel_file = get("judge-panel")
        for option in ("judge-panel-reduce", "table-judges"):
            if get(option) is not None and not panel_file:
                raise InputError(f"--editeval-{option} is for a panel of judges: add --editeval-judge-panel FILE")
        judge, panel = None, None
        if need_judge and panel_file:
            panel = _panel(config, get, env, benchmark, protocol, Path(panel_file).expanduser())
            judge = panel.members[0].spec
        elif need_judge:
            judge = _judge_spec(config, get, env, benchmark, protocol)
        samples = get("judge-samples") or 1
        thresholds = get("threshold") or []
        if samples < 2 and any(t.metric == "judge_sd" for t in thresholds):
            first = next(t for t in thresholds if t.metric == "judge_sd")
            raise InputError(f"threshold {first.expression!r} gates the judge's spread over repeated answers: pass "
                             "--editeval-judge-samples 2 or more (each question is asked once by default)")
        cache_dir = None if get("no-cache") else Path(get("cache-dir") or config.rootpath / ".editeval" / "cache")
        json_path = get("json")
        ray = _ray_settings(config, get)
        return RunSettings(
            benchmark=name,
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
            protocol=protocol,
            thresholds=thresholds,
            gate_policy=get("gate") or "auto",
            json_path=Path(json_path) if json_path else None,
            html_path=Path(get("html")) if get("html") else None,
            save_name=get("save"),
            compare=get("compare"),
            compare_gates=get("compare-fail") or [],
            compare_missing=get("compare-missing") or "error",
            judge_prompts=Path(get("judge-prompts")).expanduser() if get("judge-prompts") else None,
            kris_fix_anomaly=bool(get("kris-fix-anomaly")),
            cache_dir=Path(cache_dir).expanduser() if cache_dir else None,
            refresh=bool(get("refresh")),
            workers=get("judge-workers") or 8,
            junit_properties=bool(config.getini("editeval_junit_properties")),
            judge=judge,
            judge_recipe=recipe,
            judge_samples=samples,
            judge_average=get("judge-average") or "first",
            panel=panel,
            table_judges=bool(get("table-judges")),
            judge_price=get("judge-price"),
            generation=None if get("images") else _generation_settings(config, get, ray),
            shard=get("shard"),
            ray=ray,
        )
    except options.IniValueError as exc:
        raise InputError(str(exc)) from None


# Options that mean something for some backends only: given to another, they are a usage error, not ignored.
BACKEND_OPTIONS = {
    "judge-url": ("openai",), "judge-allow-http": ("openai",), "judge-model-hub": ("transformers", "vllm"),
    "judge-adapter": ("transformers", "vllm"), "judge-device": ("transformers",),
    "judge-precision": ("transformers",), "judge-batch-size": ("transformers",), "judge-serve-command": ("vllm",),
    "judge-serve-args": ("vllm",), "judge-startup-timeout": ("vllm",),
}
# What the plugin itself passes to `vllm serve`: the user's --editeval-judge-serve-args must not set it.
RESERVED_SERVE_ARGS = ("--host", "--port", "--served-model-name", "--api-key", "--lora-modules")


def _judge_spec(config, get, env: dict[str, str], benchmark, protocol_name: str) -> JudgeSpec:
    """The run's judge: backend, model, recipe and generation parameters (the recipe's, then the protocol's
    defaults under the user's options), checked before anything runs."""
    from . import judges

    backend = get("judge-backend") or "openai"
    for name, backends in BACKEND_OPTIONS.items():
        if get(name) is not None and backend not in backends:
            raise InputError(f"--editeval-{name} is for --editeval-judge-backend {' or '.join(backends)}; this run's "
                             f"judge backend is {backend}")
    recipe = benchmark.recipe(get("judge-recipe"))
    judges.check_installed(backend, adapter=bool(get("judge-adapter")))
    protocol = benchmark.protocol(protocol_name)  # what the reference implementation sends
    max_tokens = recipe.max_tokens if recipe.max_tokens is not None else protocol.max_tokens
    temperature = recipe.temperature if recipe.temperature is not None else protocol.temperature
    common = _common_judge_settings(get, recipe, max_tokens, temperature)
    if backend == "openai":
        model = get("judge-model") or env.get(MODEL_VARIABLE) or benchmark.default_judge_model
        return JudgeSpec(backend=backend, model=model, http=_http_settings(get, env, model, common), **common)
    model = get("judge-model")
    if not model:
        raise InputError(f"--editeval-judge-backend {backend} needs --editeval-judge-model: a folder saved with "
                         "save_pretrained or a ModelScope / Hugging Face id, e.g. Qwen/Qwen2.5-VL-7B-Instruct")
    worker, worker_index = _xdist_worker(config)
    if backend == "vllm" and (getattr(config.option, "numprocesses", None) or worker != "gw0"):
        raise InputError("--editeval-judge-backend vllm starts one server for the run: run it without -n, or start "
                         "`vllm serve` yourself and pass --editeval-judge-backend openai --editeval-judge-url "
                         "http://127.0.0.1:PORT/v1")
    serve_args = tuple(get("judge-serve-args") or ())
    reserved = [a for a in serve_args if a.split("=", 1)[0] in RESERVED_SERVE_ARGS]
    if reserved:
        raise InputError(f"--editeval-judge-serve-args must not set {', '.join(reserved)}: the plugin passes "
                         f"{', '.join(RESERVED_SERVE_ARGS)} itself")
    device = get("judge-device")
    if backend == "transformers" and device and device.startswith("cuda"):
        _check_cuda(device, "--editeval-judge-device")
    return JudgeSpec(
        backend=backend, model=model, hub=get("judge-model-hub") or "modelscope", offline=bool(get("offline")),
        adapter=get("judge-adapter"), device=device, precision=get("judge-precision"),
        batch_size=get("judge-batch-size") or 1,
        worker_index=worker_index,
        serve_command=get("judge-serve-command") or "vllm", serve_args=serve_args,
        startup_timeout_s=get("judge-startup-timeout") or 1800.0, **common)


def _common_judge_settings(get, recipe, max_tokens, temperature) -> dict:
    """The judge settings every backend (and every judge of a panel) shares: the recipe's and protocol's defaults
    under the user's options."""
    given = {name: get(name) for name in ("judge-max-tokens", "judge-temperature", "judge-timeout", "judge-seed",
                                          "judge-retries", "judge-parse-retries", "judge-backoff", "row-deadline")}
    pick = lambda name, default: given[name] if given[name] is not None else default  # noqa: E731
    return dict(
        recipe=recipe.name, max_tokens=pick("judge-max-tokens", max_tokens),
        temperature=pick("judge-temperature", temperature), top_p=recipe.top_p, top_k=recipe.top_k,
        seed=pick("judge-seed", recipe.seed), parse_retries=pick("judge-parse-retries", 2),
        row_deadline_s=pick("row-deadline", 900.0), timeout_s=pick("judge-timeout", 120.0),
        retries=pick("judge-retries", 5), backoff_s=pick("judge-backoff", 1.0),
        concurrency=get("judge-concurrency") or "adaptive")


# A panel names each judge in its file: the options that name one judge would be ambiguous beside it.
ONE_JUDGE_OPTIONS = ("judge-backend", "judge-model", "judge-url", "judge-allow-http", "judge-model-hub",
                     "judge-adapter", "judge-device", "judge-precision", "judge-batch-size", "judge-serve-command",
                     "judge-serve-args", "judge-startup-timeout")


def _panel(config, get, env: dict[str, str], benchmark, protocol_name: str, path: Path) -> PanelSpec:
    """The judges of --editeval-judge-panel, each with the run's recipe and settings under its own keys."""
    from . import judges
    from .judges.panel import load_panel

    clash = [name for name in ONE_JUDGE_OPTIONS if get(name) is not None]
    if clash:
        raise InputError(f"--editeval-{clash[0]} (or the ini key editeval_{clash[0].replace('-', '_')}) names one "
                         f"judge; with --editeval-judge-panel each judge is named in {path}: set it there and remove "
                         f"it from the command line and the ini file (see the README's panel keys)")
    recipe = benchmark.recipe(get("judge-recipe"))
    protocol = benchmark.protocol(protocol_name)
    max_tokens = recipe.max_tokens if recipe.max_tokens is not None else protocol.max_tokens
    temperature = recipe.temperature if recipe.temperature is not None else protocol.temperature
    worker, worker_index = _xdist_worker(config)
    base = JudgeSpec(backend="openai", model="", offline=bool(get("offline")), worker_index=worker_index,
                     **_common_judge_settings(get, recipe, max_tokens, temperature))
    panel = load_panel(path, base=base, env=env, reduce=get("judge-panel-reduce") or "mean",
                       default_price=get("judge-price"),
                       check_installed=lambda backend, adapter: judges.check_installed(backend, adapter=adapter))
    if any(m.spec.backend == "vllm" for m in panel.members) and (
            getattr(config.option, "numprocesses", None) or worker != "gw0"):
        raise InputError(f"judge panel {path}: a vllm judge starts one server for the run: run it without -n, or "
                         "start `vllm serve` yourself and name it as an openai judge")
    return panel


def _xdist_worker(config) -> tuple[str, int]:
    """(this process's xdist worker id, its index): ("gw0", 0) in a single process; the index picks a worker's
    device (cuda:<index>) and a vllm judge's single server."""
    worker = getattr(config, "workerinput", {}).get("workerid", "gw0")
    return worker, int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0


def _check_cuda(device: str, option: str) -> None:
    try:
        import torch
    except ImportError:  # said by check_installed before this
        return
    count = torch.cuda.device_count()
    index = device.partition(":")[2]
    if not count:
        raise InputError(f"{option} {device}: no CUDA device is visible; pass cpu, or run on a GPU machine")
    if index and int(index) >= count:
        raise InputError(f"{option} {device} does not exist: {count} CUDA device(s) are visible")


def _http_settings(get, env: dict[str, str], model: str, common: dict) -> JudgeSettings:
    url = get("judge-url") or env.get(URL_VARIABLE)
    if not url:
        raise InputError(f"no judge URL: pass --editeval-judge-url (an OpenAI-compatible base URL) or set {URL_VARIABLE}")
    try:
        url = options._url(url)
    except Exception as exc:  # argparse.ArgumentTypeError from the environment value
        raise InputError(f"{URL_VARIABLE}: {exc}") from None
    # Decided on the URL alone, before any connection or DNS lookup.
    problem = None if get("judge-allow-http") else cleartext_problem(url)
    if problem:
        raise InputError(problem)
    key = env.get(KEY_VARIABLE, "").strip()
    if not key:
        raise InputError(f"no judge API key: set {KEY_VARIABLE} in the environment or in a .env file "
                         "(use any non-empty value for a local server that needs none)")
    return JudgeSettings(
        url=url, model=model, api_key=key, timeout_s=common["timeout_s"], max_tokens=common["max_tokens"],
        temperature=common["temperature"], retries=common["retries"], parse_retries=common["parse_retries"],
        backoff_s=common["backoff_s"], row_deadline_s=common["row_deadline_s"],
        top_p=common["top_p"], seed=common["seed"],  # top_k is not an OpenAI parameter: never sent here
        concurrency=common["concurrency"])


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
    from .jsonfile import TOO_DEEP, config_text

    try:
        table = tomllib.loads(config_text(pyproject)).get("tool", {}).get("editeval", {}).get("generation", {})
    except TOO_DEEP:
        raise InputError(f"cannot read [tool.editeval.generation] from {pyproject}: nested too deeply") from None
    except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read [tool.editeval.generation] from {pyproject}: {exc}") from None
    if not isinstance(table, dict):
        raise InputError(f"[tool.editeval.generation] in {pyproject} must be a table of pipeline arguments")
    return table
