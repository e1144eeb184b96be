"""RISEBench (PhoenixZ810/RISEBench): 360 reasoning-informed edits in four categories (temporal, causal, spatial,
logical) and 16 subtasks, up to three GPT-4.1 judge calls a row, scored exactly as the official ``gpt_eval.py``
(risebench_official.py holds the rules).

Data: the hub dataset (`PhoenixZ/RISEBench`, since renamed `VisionXLab/RISEBench`: both names work) with its JSON
and `data.zip`, or a local copy (the folder, or the JSON itself). Judge templates: the user's copy of the official
`utils.py` (`--editeval-judge-prompts`, or one beside the data), read with `ast`, never run, checked by SHA-256.

Subsets are the 16 subtasks (a row without a known subtask sits in a subset named after its category); the four
categories are groups (Temporal, Causal, Spatial, Logical), and the headline is Accuracy pooled over every row, as
published (x100). Metrics per row: accuracy (the current completion rule) and accuracy_legacy (the rule before
2026-04-13, which the paper's numbers use), score (Score-Origin), the three dimensions raw and as
Score-Percentage (25 * (x - 1); the mean of it is the official percentage of the mean).

Rows that were not judged count as the official scorer counts them: a row whose judging failed (an unreadable
reply after the re-asks, a judge or image error) is 0 in Accuracy and absent from the score means; a row without
an edited image is the labelled B8 auto-fail (every dimension 1, never complete). Both stay error / missing rows
and fail the gate as for every benchmark.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from pytest_editeval.benchmarks import Benchmark, BenchmarkOptions, Group, Metric, Parsed, Protocol
from pytest_editeval.benchmarks import risebench_official as official
from pytest_editeval.data.dataset import Dataset, FileImages, Row
from pytest_editeval.options.types import Option, path

HUB_NAMES = ("PhoenixZ/RISEBench", "VisionXLab/RISEBench")
HUB_FILES = ["*.json", "**/*.json", "*.zip", "**/*.zip", "*.md", "**/*_images/*"]
CONSISTENCY_FREE = "consistency-free"  # row tags: what the aggregation of an unjudged row needs to know
B1_WEIGHTS = "b1-weights"
INVALID = "invalid rows"  # the subset of rows whose category cannot be read
DIMENSIONS = {"consistency": "ApprConsistency", "reasoning": "Reasoning", "plausibility": "VisualPlausibility"}

_DIM = {"low": 0.0, "high": 10.0, "decimals": 3}  # the judge is asked 1-5 (0/1 logical); no range check (B11)
_PCT = {"low": -25.0, "high": 225.0, "decimals": 1}
METRICS = (
    Metric("accuracy", "Accuracy", "Acc", aliases=("acc",), low=0.0, high=100.0, decimals=1),
    Metric("accuracy_legacy", "Accuracy, rule before 2026-04-13", "Acc-legacy", aliases=("acc_legacy",), low=0.0,
           high=100.0, decimals=1),
    Metric("score", "Score-Origin", "Score", aliases=("score_origin",), **_DIM),
    Metric("score_pct", "Score-Percentage", "Score%", aliases=("score_percentage",), **_PCT),
    Metric("reasoning", "Reasoning", "R", **_DIM),
    Metric("consistency", "Appearance Consistency", "AC", aliases=("appr_consistency",), **_DIM),
    Metric("plausibility", "Visual Plausibility", "VP", aliases=("visual_plausibility",), **_DIM),
    Metric("reasoning_pct", "Reasoning, Score-Percentage", "R%", **_PCT),
    Metric("consistency_pct", "Appearance Consistency, Score-Percentage", "AC%", **_PCT),
    Metric("plausibility_pct", "Visual Plausibility, Score-Percentage", "VP%", **_PCT),
    # B6: rows whose replies give a count of numbers the official script crashes on (each reply's first is read).
    Metric("b6_fallback", "Rows the official scorer would crash on (B6)", "B6%", low=0.0, high=100.0, decimals=1,
           higher_is_better=False),
)


def _subset_of(category: str, subtask: str | None) -> str:
    return subtask if subtask in official.SUBTASKS[category] else category


class RiseBench(Benchmark):
    name = "risebench"
    dataset_writer = "pytest_editeval.testing.risebench_factory:WRITER"  # make_dataset, the fixture plugin, the demo
    title = "RISEBench"
    metrics = METRICS
    headline_metric = "accuracy"
    groups = tuple(Group(official.CATEGORY_LABELS[c], (*official.SUBTASKS[c], c)) for c in official.CATEGORIES)
    protocols = (Protocol("official", "gpt_eval.py (2026-04-13): up to three calls a row (consistency, reasoning, "
                          "plausibility), the prompt text then the images, each RGB (RGBA/P only), thumbnail 768, "
                          "JPEG at Pillow's defaults; max_tokens 4096, temperature 0", headline_averaging="micro",
                          max_tokens=4096, temperature=0.0),)
    options = (Option("judge-prompts", "RISEBench: the official scorer's utils.py", path, metavar="FILE",
                      group="Judge"),)
    default_dataset = HUB_NAMES[0]
    default_hub = "huggingface"
    default_judge_model = "gpt-4.1-2025-04-14"
    default_averaging = "micro"  # pooled over rows, never means of category means
    averaging_labels = {"macro": "mean of subsets", "micro": "pooled, official"}
    table_layout = "wide"
    table_averagings = ("micro",)
    row_formula = ("Accuracy: 100 when the row is complete (every dimension it is judged on is 5; consistency-free "
                   "rows: reasoning and plausibility), else 0; Score-Origin 0.3AC+0.5R+0.2VP (0.2VP+0.8R where the "
                   "data's consistency_free column says so, bug B1; logical 0.3AC+0.7R), halved but not below 1 "
                   "when R is 1; Score-Percentage 25*(x-1)")
    subset_hints = {name: f"{c} is a category: select its subtasks ({', '.join(official.SUBTASKS[c])}); thresholds "
                    f"and score() take the category as {official.CATEGORY_LABELS[c]}"
                    for c in official.CATEGORIES for name in (c, official.CATEGORY_LABELS[c].lower())}

    def known_subsets(self) -> tuple[str, ...]:
        return tuple(s for c in official.CATEGORIES for s in (*official.SUBTASKS[c], c))

    def resolve_dataset(self, spec: str, hub: str, offline: bool) -> Path:
        from pytest_editeval.data.hub import resolve_dataset

        return resolve_dataset(spec, hub, offline, allow_patterns=HUB_FILES)

    def load(self, folder: Path, options: BenchmarkOptions) -> Dataset:
        data_file, image_root = official.find_data(folder, options.extract_to)
        rows, warnings = official.load_rows(data_file, image_root)
        given = options.judge_prompts
        beside = [data_file.parent, Path(folder) if Path(folder).is_dir() else data_file.parent]
        templates_file = official.find_templates(given, beside)
        templates, differing = official.load_templates(templates_file)
        if differing:
            which = "all 14" if len(differing) == len(official.TEMPLATE_SHA256) else ", ".join(differing)
            warnings.append(f"RISEBench judge templates in {templates_file} differ from the official texts (SHA-256): "
                            f"{which}; scores are not comparable with published numbers")
        return Dataset(rows=[_row(r) for r in rows], images=FileImages(image_root), root=image_root,
                       warnings=warnings, context={"templates": templates})

    def recipe_options(self, options: BenchmarkOptions) -> dict:
        return {"completion_rule": "accuracy: the current rule (2026-04-13); accuracy_legacy: the earlier rule",
                "failed_rows": "a row whose judging failed counts 0 in accuracy and is absent from the score means",
                "missing_image": "auto-fail (B8): every judged dimension 1, never complete",
                "image_modes": "modes JPEG cannot hold (LA, I;16, I, F) are made RGB first (B10 fix)"}

    def questions(self, row: Row, protocol: str, context: Mapping):
        return official.questions(row.get("rise"), context["templates"])

    def parse(self, question, text: str) -> Parsed:
        return Parsed(values=official.parse(text))

    def combine_answers(self, question: str, answers: list[Parsed],
                        reduce: Callable[[list[float | None]], float | None]) -> Parsed:
        if len({len(a.values) for a in answers}) == 1:
            return super().combine_answers(question, answers, reduce)
        # Answers with different numbers of values: their first numbers (what the B6 fallback reads).
        return Parsed(values=[reduce([a.values[0] for a in answers])], reasoning=answers[0].reasoning)

    def score_row(self, row: Row, answers: Mapping[str, Parsed]) -> dict[str, float | None]:
        scores = official.score_row(row.get("rise"), {name: list(p.values) for name, p in answers.items()})
        return {**_scores(scores), "b6_fallback": 100.0 if scores.official_would_crash else 0.0}

    def unscored_row_scores(self, verdict) -> dict[str, float | None]:
        if verdict.status == "missing":
            return _scores(official.missing_image_scores(_stand_in(verdict)))
        return {"accuracy": 0.0, "accuracy_legacy": 0.0}

    def output_path(self, row: Row) -> Path:
        rise = row.get("rise")
        return Path(rise.category) / f"{rise.index}.png"

    def edited_in_folder(self, folder: Path, rows: list[Row], language: str) -> dict[str, Path]:
        return official.edited_images_in_folder(folder, [r.get("rise") for r in rows if r.problem is None])


RISEBENCH = RiseBench()


def _scores(s: official.RowScores) -> dict[str, float | None]:
    return {"accuracy": 100.0 if s.complete else 0.0, "accuracy_legacy": 100.0 if s.complete_legacy else 0.0,
            "score": s.score, "score_pct": official.percent(s.score),
            "reasoning": s.reasoning, "consistency": s.consistency, "plausibility": s.plausibility,
            "reasoning_pct": official.percent(s.reasoning), "consistency_pct": official.percent(s.consistency),
            "plausibility_pct": official.percent(s.plausibility)}


def _category_of(subset: str) -> str:
    return next((c for c in official.CATEGORIES if subset == c or subset in official.SUBTASKS[c]), subset)


def _stand_in(verdict) -> official.RiseRow:
    """What the B8 rule needs of a row that never reached the judge, from its verdict (subset and tags)."""
    tags = set(verdict.tags)
    return official.RiseRow(index=verdict.key, category=_category_of(verdict.subset), subtask=None, instruction="",
                            image="", consistency_free=CONSISTENCY_FREE in tags, b1_weights=B1_WEIGHTS in tags)


def _row(r: official.RiseRow) -> Row:
    subset = _subset_of(r.category, r.subtask) if r.category in official.CATEGORIES else INVALID
    tags = frozenset(t for t, on in ((CONSISTENCY_FREE, r.consistency_free), (B1_WEIGHTS, r.b1_weights)) if on)
    return Row(id=r.index, key=r.index, subset=subset, instruction=r.instruction,
               language="en", inputs=(r.image,) if r.problem is None else (),
               references=((official.ANSWER, r.reference_img),) if r.reference_img else (),
               tags=tags, extra=(("rise", r),), problem=r.problem)
