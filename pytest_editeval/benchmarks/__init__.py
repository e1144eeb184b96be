"""Benchmarks as plug-ins: what a benchmark declares, and the registry that finds one by name.

A benchmark is one module (gedit.py, imgedit.py, kris.py) holding a `Benchmark` subclass. It owns everything
that is particular to it: its dataset index and images, the questions each row asks the judge (prompt texts and
images in order), how a reply is read, the per-row formula, its metrics, scopes and groups for aggregation, its
headline, its protocols, and its output layout. Everything generic (items, scheduling, cache, judge client,
aggregation, gate, compare, table, HTML, JSON) works from these declarations.

The registry is the only place that knows them all: built-in names map to "module:attribute" strings imported
on first use; third-party packages add theirs through the entry-point group `pytest_editeval.benchmarks`; a
team declares its own sets without code in `[tool.editeval.benchmarks.NAME]` of pyproject.toml (custom.py).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_editeval.errors import InputError

if TYPE_CHECKING:
    from pytest_editeval.data.dataset import Dataset, Row
    from pytest_editeval.judges.requests import Question

ENTRY_POINT_GROUP = "pytest_editeval.benchmarks"
BUILTIN = {
    "gedit": "pytest_editeval.benchmarks.gedit:GEDIT",
    "imgedit": "pytest_editeval.benchmarks.imgedit:IMGEDIT",
    "imgedit-uge": "pytest_editeval.benchmarks.imgedit_uge:IMGEDIT_UGE",
    "kris": "pytest_editeval.benchmarks.kris:KRIS",
    "risebench": "pytest_editeval.benchmarks.risebench:RISEBENCH",
}


@dataclass(frozen=True)
class Metric:
    """One per-row score: its name in results and thresholds, how people read it, and its valid range."""

    name: str
    label: str  # "Semantic Consistency"
    short: str  # "SC"
    aliases: tuple[str, ...] = ()  # extra threshold names ("sc")
    low: float = 0.0
    high: float = 10.0
    higher_is_better: bool = True
    decimals: int = 3  # as the official scorer prints it
    pooled: bool = False  # aggregated by pooling the row's other metric values (KRIS-Bench's AVG)


@dataclass(frozen=True)
class Scope:
    """A set of rows aggregated on its own: all rows, or those carrying a tag (GEdit's Intersection)."""

    name: str  # "full", "intersection": the threshold prefix
    label: str  # "OVERALL", "INTERSECTION": the table's headline rows
    tag: str | None = None  # rows must carry this tag; None = every row


@dataclass(frozen=True)
class Group:
    """Subsets pooled together (KRIS-Bench's dimensions and knowledge types): thresholds can name it."""

    name: str
    subsets: tuple[str, ...]
    metrics: tuple[str, ...] | None = None  # shown for these metrics only (None: all)


@dataclass(frozen=True)
class Protocol:
    """One judging recipe of a benchmark: what the judge is sent and how the headline is averaged."""

    name: str
    description: str
    headline_averaging: str = "macro"  # macro (mean of subset means) or micro (mean over rows)
    max_tokens: int | None = None  # request parameters the reference implementation sends
    temperature: float | None = None


@dataclass(frozen=True)
class JudgeRecipe:
    """How the judge is asked and its replies read (prompts, score scale, sampling): a benchmark's own, or an
    alternative one its metrics support (GEdit-Bench: VIEScore, or EditScore's variant). Sampling fields left
    None take the protocol's values."""

    name: str
    description: str
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None


@dataclass
class Parsed:
    """A judge reply as read by the benchmark: `values` (a score list, or {name: number or None}), the judge's
    reasoning if it gave one, and which expected values stayed unreadable (re-asked, then kept as missing)."""

    values: Any
    reasoning: str | None = None
    unreadable: tuple[str, ...] = ()


class Benchmark:
    """What every benchmark declares. Subclasses set the class attributes and implement the methods."""

    name: str = ""
    title: str = ""  # "GEdit-Bench"
    metrics: tuple[Metric, ...] = ()
    headline_metric: str = ""
    scopes: tuple[Scope, ...] = (Scope("full", "OVERALL"),)
    groups: tuple[Group, ...] = ()
    protocols: tuple[Protocol, ...] = ()
    languages: tuple[str, ...] = ("en",)
    default_dataset: str = ""
    default_hub: str = "huggingface"
    default_judge_model: str = "gpt-4.1"
    default_averaging: str = "macro"  # thresholds and the API without macro./micro.
    averaging_labels: Mapping[str, str] = {"macro": "macro", "micro": "micro"}  # the table's names for them
    subset_decimals: int | None = None  # macro means of subset means rounded to this first, as published
    table_layout: str = "long"  # long: one row per metric and subset (EvalScope's shape); wide: metrics as columns
    table_averagings: tuple[str, ...] = ("macro", "micro")  # the headline rows the table shows, per scope
    row_formula: str = ""  # one line for reports: how a row's scores come from the replies
    subset_hints: Mapping[str, str] = {}  # a name users may try as a subset -> where it really is
    # judge recipes --editeval-protocol also takes, the default first; empty: only the benchmark's own (its name)
    judge_recipes: tuple[JudgeRecipe, ...] = ()
    # The benchmark's own options (option_types.Option; stdlib only: read at pytest's option time); the run reads
    # their values in BenchmarkOptions by their names with _ (--editeval-judge-prompts: options.judge_prompts).
    options: tuple = ()
    judge_recipe: str = ""  # the recipe this instance asks with ("" before with_judge_recipe: the default)
    # "module:attribute" of its pytest_editeval.testing.DatasetWriter (test data, the loopback judge's rule), imported
    # only by make_dataset, the fixture plugin and the demo; "" when it has none
    dataset_writer: str = ""

    # ---- data -------------------------------------------------------------------------------------------
    def load(self, folder: Path, options: "BenchmarkOptions") -> "Dataset":
        """The dataset index (rows and an image store) from a local folder or file the hub code resolved."""
        raise NotImplementedError

    def resolve_dataset(self, spec: str, hub: str, offline: bool) -> Path:
        """A local folder (or file) for `--editeval-dataset`: the hub download of this benchmark's files."""
        from pytest_editeval.data.hub import resolve_dataset

        return resolve_dataset(spec, hub, offline)

    def subset_order(self, names) -> list[str]:
        names = set(names)
        known = [s for s in self.known_subsets() if s in names]
        return known + sorted(names - set(known))

    def known_subsets(self) -> tuple[str, ...]:
        return ()

    # ---- judging ----------------------------------------------------------------------------------------
    def questions(self, row: "Row", protocol: str, context: Mapping) -> list["Question"]:
        """The row's judge calls; `context` is what `load` put in Dataset.context (prompt templates...)."""
        raise NotImplementedError

    def parse(self, question: "Question", text: str) -> Parsed:
        """Read one reply; raise judges.replies.UnreadableReply when nothing usable is in it (re-asked)."""
        raise NotImplementedError

    def score_row(self, row: "Row", answers: Mapping[str, Parsed]) -> dict[str, float | None]:
        raise NotImplementedError

    def unanswered(self, question: "Question") -> Parsed | None:
        """What a row keeps of `question` when every reply to it stayed unreadable after the re-asks: an answer
        whose values are all missing (and named in `unreadable`), so that the row's other questions still count
        (KRIS-Bench). None, the default: the row cannot be scored without it and is an error row (GEdit's
        overall needs both its questions; ImgEdit asks one)."""
        return None

    def unscored_row_scores(self, verdict) -> dict[str, float | None]:
        """What a row that was not scored (status error or missing) counts in the means, where the official scorer
        counts such rows (RISEBench: 0 in Accuracy). Default: nothing, such rows are only counted as rows."""
        return {}

    def combine_answers(self, question: str, answers: list[Parsed],
                        reduce: Callable[[list[float | None]], float | None]) -> Parsed:
        """Several answers to one question (a judge's samples, a panel's judges) as one answer whose values the
        row formula reads as their mean (or, for a panel, their median): `reduce` combines the numbers, one per
        answer in the answers' order (None where an answer has none: a panel's reduce weighs each value by its
        own judge). This default combines position by position (a score list of the same length in each answer)
        or name by name (a mapping of values; None where no answer has one). A benchmark whose row formula first
        reduces each answer to one number (GEdit's min, ImgEdit's mean) combines those numbers instead."""
        first = answers[0].values
        if isinstance(first, Mapping):
            names = list(dict.fromkeys(name for a in answers for name in a.values))
            values: Any = {name: reduce([a.values.get(name) for a in answers]) for name in names}
            unreadable = tuple(name for name in names if values[name] is None)
        else:
            if len({len(a.values) for a in answers}) != 1:
                raise ValueError(f"{self.name}: the answers to {question} have different numbers of values; "
                                 "the benchmark must say how they combine (Benchmark.combine_answers)")
            values = [reduce([a.values[i] for a in answers]) for i in range(len(first))]
            unreadable = ()
        return Parsed(values=values, reasoning=answers[0].reasoning, unreadable=unreadable)

    # ---- model mode and image mode ----------------------------------------------------------------------
    def output_path(self, row: "Row") -> Path:
        """Where model mode saves a row's edited image, relative to the output folder (official layout)."""
        raise NotImplementedError

    def source_copy_path(self, row: "Row") -> Path | None:
        """Where model mode also saves the row's source image (GEdit's `_SRCIMG`), if the layout has one."""
        return None

    def edited_in_folder(self, folder: Path, rows: list["Row"], language: str) -> dict[str, Path]:
        """Image mode from a folder in the official output layout: {row key: image path}."""
        raise NotImplementedError

    # ---- derived ----------------------------------------------------------------------------------------
    def metric(self, name: str) -> Metric:
        return next(m for m in self.metrics if m.name == name)

    def metric_aliases(self) -> dict[str, str]:
        out = {}
        for m in self.metrics:
            out[m.name] = m.name
            for alias in m.aliases:
                out[alias] = m.name
        return out

    def protocol(self, name: str | None) -> Protocol:
        if name is None:
            return self.protocols[0]
        for protocol in self.protocols:
            if protocol.name == name:
                return protocol
        raise InputError(f"unknown protocol {name!r} for {self.name}: it has {', '.join(self.protocol_names())}")

    def recipe(self, name: str | None) -> JudgeRecipe:
        """The judging recipe called `name` (None: the default); a usage error naming the choices otherwise."""
        recipes = self.judge_recipes or (JudgeRecipe(self.name, f"{self.title or self.name}'s own judge prompts"),)
        if name is None:
            return recipes[0]
        for recipe in recipes:
            if recipe.name == name:
                return recipe
        names = ", ".join(r.name for r in recipes)
        raise InputError(f"unknown judge recipe {name!r} for {self.name}: it has {names}")

    def judging(self, name: str | None, recipe: str | None = None) -> tuple[Protocol, JudgeRecipe]:
        """How the judge is asked, from the one option --editeval-protocol NAME: a protocol (asked with the
        default recipe), a judge recipe (asked with the default protocol), or PROTOCOL+RECIPE. `recipe` is the
        deprecated --editeval-judge-recipe, which still picks the recipe for one release."""
        protocol_name = None
        if name is not None:
            first, plus, second = name.partition("+")
            recipe_names = [r.name for r in self.judge_recipes] or [self.recipe(None).name]
            if plus:
                protocol_name, named_recipe = first, second
            elif first in self.protocol_names():
                protocol_name, named_recipe = first, None
            elif first in recipe_names:
                named_recipe = first
            else:
                choices = [*self.protocol_names(), *(r for r in recipe_names[1:])]
                raise InputError(f"unknown protocol {name!r} for {self.name}: it has {', '.join(choices)}")
            if named_recipe is not None and recipe is not None and named_recipe != recipe:
                raise InputError(f"--editeval-protocol {name} and --editeval-judge-recipe {recipe} name two recipes: "
                                 "drop --editeval-judge-recipe (deprecated)")
            recipe = named_recipe or recipe
        return self.protocol(protocol_name), self.recipe(recipe)

    @staticmethod
    def judge_parameters(protocol: Protocol, recipe: JudgeRecipe) -> dict:
        """The sampling values the judge is sent unless the user sets them: the recipe's where it sets them
        (EditScore's sampling), else the protocol's (what the reference implementation sends)."""
        def pick(name):
            value = getattr(recipe, name)
            return value if value is not None else getattr(protocol, name, None)

        return {name: pick(name) for name in ("max_tokens", "temperature", "top_p", "top_k", "seed")}

    def with_judge_recipe(self, name: str | None) -> "Benchmark":
        """This benchmark asking with recipe `name` (a copy: benchmark objects are shared by runs)."""
        import copy

        recipe = self.recipe(name)
        if recipe.name == (self.judge_recipe or self.recipe(None).name):
            return self
        other = copy.copy(self)
        other.judge_recipe = recipe.name
        return other

    def protocol_names(self) -> list[str]:
        return [p.name for p in self.protocols]

    def scope(self, name: str) -> Scope:
        return next(s for s in self.scopes if s.name == name)

    def group_names(self) -> list[str]:
        return [g.name for g in self.groups]

    def info(self, options: "BenchmarkOptions | None" = None) -> dict:
        """What results files say about the benchmark, so that their numbers can be read without this code."""
        return {"title": self.title, "row_formula": self.row_formula,
                "headline": f"{self.headline_metric}, {self.default_averaging} mean of the {self.scopes[0].name} set",
                "metrics": [{"name": m.name, "label": m.label, "short": m.short, "low": m.low, "high": m.high,
                             "decimals": m.decimals, "pooled": m.pooled} for m in self.metrics],
                "options": self.recipe_options(options) if options is not None else {}}

    def recipe_options(self, options: "BenchmarkOptions") -> dict:
        """The benchmark options that changed how rows were scored (recorded in the results)."""
        return {}


class BenchmarkOptions:
    """What the run tells a benchmark when it loads its data and builds its questions: the language, where an
    archive is unpacked (the hub cache or .editeval/), how to warn, and the values of the benchmark options
    (declared in `Benchmark.options`), read as attributes: `options.judge_prompts` (None when not given)."""

    def __init__(self, language: str, extract_to: Path | None = None, warn: Callable[[str], None] = print,
                 **values: Any) -> None:
        self.language = language
        self.extract_to = extract_to
        self.warn = warn
        self.values = values

    def __getattr__(self, name: str) -> Any:  # only for names that are not set above
        if name.startswith("__") or name == "values":
            raise AttributeError(name)
        return self.values.get(name)

    def __repr__(self) -> str:
        return f"BenchmarkOptions(language={self.language!r}, extract_to={self.extract_to!r}, {self.values!r})"


def option_value_name(option_name: str) -> str:
    """The attribute a benchmark option's value is read by (judge-prompts -> judge_prompts)."""
    return option_name.replace("-", "_")


def declared_options() -> list:
    """The options the built-in benchmarks declare, each once: benchmarks that declare one name share it, their
    help texts joined ("ImgEdit: ...; RISEBench: ..."). Benchmarks of entry points and pyproject tables are not
    imported at option time (a package's import may be heavy): their options come with their own plugin."""
    import dataclasses

    out: dict = {}
    for target in dict.fromkeys(BUILTIN.values()):
        module_name, _, attribute = target.partition(":")
        for opt in getattr(getattr(importlib.import_module(module_name), attribute), "options", ()):
            known = out.get(opt.name)
            if known is None:
                out[opt.name] = opt
            elif opt.help not in known.help:
                if (known.type, known.flag, known.repeat) != (opt.type, opt.flag, opt.repeat):
                    raise TypeError(f"benchmarks declare --editeval-{opt.name} with two different types")
                out[opt.name] = dataclasses.replace(known, help=f"{known.help}; {opt.help}")
    return list(out.values())


# ---- the registry --------------------------------------------------------------------------------------------
def known_names(rootpath: Path | None = None) -> list[str]:
    names = list(BUILTIN) + [ep.name for ep in _entry_points() if ep.name not in BUILTIN]
    if rootpath is not None:
        from pytest_editeval.benchmarks.custom import declared_names

        names += [n for n in declared_names(rootpath) if n not in names]
    return names


def get(name: str, rootpath: Path | None = None) -> Benchmark:
    """The benchmark called `name`, imported now; a usage error that lists the known names otherwise."""
    if name in BUILTIN:
        return _load(BUILTIN[name], name)
    for ep in _entry_points():
        if ep.name == name:
            return _load(ep.value, name)
    if rootpath is not None:
        from pytest_editeval.benchmarks.custom import declared, declared_names

        if name in declared_names(rootpath):
            return declared(name, rootpath)
    raise InputError(f"unknown benchmark {name!r}: known benchmarks are {', '.join(known_names(rootpath))}")


def _entry_points():
    from importlib.metadata import entry_points

    return list(entry_points(group=ENTRY_POINT_GROUP))


def _load(target: str, name: str) -> Benchmark:
    module_name, _, attribute = target.partition(":")
    try:
        obj = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise InputError(f"benchmark {name!r} cannot be loaded from {target}: {exc}") from None
    benchmark = obj() if isinstance(obj, type) else obj
    if not isinstance(benchmark, Benchmark):
        raise InputError(f"benchmark {name!r} ({target}) is not a pytest_editeval.benchmarks.Benchmark")
    return benchmark
