"""KRIS-Bench (mercurystraw/Kris_Bench): 1,267 rows in 20 categories, three judge calls a row, scored exactly as
the official scripts do and aggregated as published (kris_official.py holds the rules).

Data: `KRIS_Bench/<category>/annotation.json` plus its images, from the Hugging Face dataset
`Liang0223/KRIS_Bench` or a local folder (holding KRIS_Bench/ or being it). Rows may have several inputs
(multi-element references, temporal frames): model mode gives them to pipelines that take a list of images.
Metrics: VC, VQ, IF and, in the knowledge categories, KP; each 1-5 reply normalised to 0-100 as (s - 1) * 25.
A metric the judge never answered readably (after bounded re-asks; a whole question, or one value of the dual
IF+KP reply) is missing for that row only; a row is an error row only when nothing was read. AVG pools
every metric value of the rows below a heading (category, dimension, knowledge type, Overall); the headline is
Overall AVG. The anomaly_correction template bug is reproduced by default (every published number carries it);
`--editeval-kris-fix-anomaly` fixes it and the results say so. Output layout: <category>/<id>.png (the official
scripts read <id>.jpg, then .png; both are read in image mode).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pytest_editeval.benchmarks import Benchmark, BenchmarkOptions, Group, Metric, Parsed, Protocol
from pytest_editeval.benchmarks import kris_official as official
from pytest_editeval.data.dataset import Dataset, FileImages, Row
from pytest_editeval.options.types import Option

FRAME = "target_frame"
RANGE = {"low": 0.0, "high": 100.0, "decimals": 2}
METRICS = (
    Metric("vc", "Visual Consistency", "VC", aliases=("visual_consistency",), **RANGE),
    Metric("vq", "Visual Quality", "VQ", aliases=("visual_quality",), **RANGE),
    Metric("if", "Instruction Following", "IF", aliases=("instruction_following",), **RANGE),
    Metric("kp", "Knowledge Plausibility", "KP", aliases=("knowledge_plausibility",), **RANGE),
    Metric("avg", "Average", "AVG", aliases=("average",), pooled=True, **RANGE),
)
OURS = {"VC": "vc", "VQ": "vq", "IF": "if", "KP": "kp"}  # the official short names -> our metric names
HUB_FILES = ["**/annotation.json", "**/*.jpg", "**/*.jpeg", "**/*.JPG", "**/*.png", "*.md"]


class KrisBench(Benchmark):
    name = "kris"
    dataset_writer = "pytest_editeval.testing.kris_factory:WRITER"  # make_dataset, the fixture plugin, the demo
    title = "KRIS-Bench"
    metrics = METRICS
    headline_metric = "avg"
    groups = (
        *(Group(d, members) for d, members in official.DIMENSIONS.items()),
        *(Group(k, tuple(c for d in dims for c in official.DIMENSIONS[d]), metrics=("avg",))
          for k, dims in official.KNOWLEDGE_TYPES.items()),
    )
    protocols = (Protocol("official", "metrics_*.py: three calls a row, raw bytes labelled JPEG (temporal frames "
                          "re-encoded JPEG q85), max_tokens 1000, no temperature", headline_averaging="micro",
                          max_tokens=1000),)
    options = (Option("kris-fix-anomaly", "KRIS: judge anomaly_correction rows with their own template and hint "
                      "(fixes an upstream bug that every published number carries; said in the results)", None,
                      flag=True, default=False, group="Judge"),)
    default_dataset = "Liang0223/KRIS_Bench"
    default_hub = "huggingface"
    default_judge_model = "gpt-4o"  # the official scripts' (BAGEL's published numbers: gpt-4o-2024-11-20)
    default_averaging = "micro"  # values pooled over rows, never means of category means
    averaging_labels = {"macro": "mean of categories", "micro": "pooled"}
    table_layout = "wide"
    table_averagings = ("micro",)
    row_formula = "each reply's 1-5 score normalised to 0-100 as (s - 1) * 25; AVG pools every value"

    def known_subsets(self) -> tuple[str, ...]:
        return official.CATEGORIES

    def resolve_dataset(self, spec: str, hub: str, offline: bool) -> Path:
        from pytest_editeval.data.hub import resolve_dataset

        return resolve_dataset(spec, hub, offline, allow_patterns=HUB_FILES)

    def load(self, folder: Path, options: BenchmarkOptions) -> Dataset:
        root = official.find_root(folder)
        rows, warnings = official.load_rows(root)
        return Dataset(rows=[_row(r) for r in rows], images=FileImages(root), root=root, warnings=warnings,
                       context={"fix_anomaly": options.kris_fix_anomaly})

    def recipe_options(self, options: BenchmarkOptions) -> dict:
        return {"kris_fix_anomaly": options.kris_fix_anomaly,
                "anomaly_correction": ("judged with its own template and hint (fixed)" if options.kris_fix_anomaly
                                       else "judged with the generic template, as every published number (bug kept)"),
                "missing_metric": "a metric never answered readably is skipped for its row only"}

    def questions(self, row: Row, protocol: str, context: Mapping):
        return official.questions(_official_row(row), fix_anomaly=bool(context.get("fix_anomaly")))

    def parse(self, question, text: str) -> Parsed:
        values = official.parse(question.name, text)  # UnreadableReply when nothing is readable
        return Parsed(values={OURS[m]: v for m, v in values.items()},
                      unreadable=tuple(OURS[m] for m, v in values.items() if v is None))

    def unanswered(self, question) -> Parsed:
        """The official scripts keep a row whose question stayed unreadable (its metrics null) and count its other
        metrics: so here, the question's metrics are missing for this row only."""
        metrics = tuple(OURS[m] for m in official.QUESTION_METRICS[question.name])
        return Parsed(values=dict.fromkeys(metrics), unreadable=metrics)

    def score_row(self, row: Row, answers: Mapping[str, Parsed]) -> dict[str, float | None]:
        scores: dict[str, float | None] = {}
        for parsed in answers.values():
            for metric, raw in parsed.values.items():
                scores[metric] = None if raw is None else official.normalise(raw)
        present = [v for v in scores.values() if v is not None]
        scores["avg"] = sum(present) / len(present) if present else None  # this row's; aggregates pool values
        return scores

    def output_path(self, row: Row) -> Path:
        return Path(row.subset) / f"{row.get('id')}.png"

    def edited_in_folder(self, folder: Path, rows: list[Row], language: str) -> dict[str, Path]:
        return official.edited_images_in_folder(folder, [_official_row(r) for r in rows if r.problem is None])


KRIS = KrisBench()


def _row(r: official.KrisRow) -> Row:
    return Row(id=f"{r.category}-{official._printable(r.id)}", key=r.key, subset=r.category,
               instruction=r.instruction if isinstance(r.instruction, str) else "", language="en",
               inputs=tuple(r.inputs), references=tuple(sorted(r.references.items())),
               extra=(("id", r.id), ("explanation", r.explanation), (FRAME, r.target_frame)), problem=r.problem)


def _official_row(row: Row) -> official.KrisRow:
    return official.KrisRow(category=row.subset, id=row.get("id"), instruction=row.instruction,
                            explanation=row.get("explanation") or "", inputs=tuple(row.inputs),
                            references=dict(row.references), target_frame=row.get(FRAME))
