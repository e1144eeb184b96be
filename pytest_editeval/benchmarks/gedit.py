"""GEdit-Bench (stepfun-ai/GEdit-Bench): 606 English and 606 Chinese rows in 11 task types, judged with the
VIEScore recipe (viescore.py) exactly as the official scorer does.

Data: Parquet or Arrow shards with the columns key, task_type, instruction, instruction_language,
Intersection_exist and input_image (a Hugging Face {bytes, path} struct). Collection reads only the five small
columns; source images are streamed one row at a time (parquet.ParquetImages).
Scopes: the full set and the Intersection rows (`Intersection_exist`), each with macro (official) and micro
(EvalScope) means. Output layout: fullset/{task_type}/{language}/{key}.png, with the source as {key}_SRCIMG.png.
"""

from __future__ import annotations

from pathlib import Path

from pytest_editeval.benchmarks import Benchmark, BenchmarkOptions, Scope, viescore
from pytest_editeval.data.dataset import Dataset, Row
from pytest_editeval.data.paths import is_inside, shown, stand_in_name, unsafe_name_reason
from pytest_editeval.errors import InputError

SUBSETS = (
    "background_change", "color_alter", "material_alter", "motion_change", "ps_human", "style_change",
    "subject-add", "subject-remove", "subject-replace", "text_change", "tone_transfer",
)
INDEX_COLUMNS = ("key", "task_type", "instruction", "instruction_language", "Intersection_exist")
IMAGE_COLUMN = "input_image"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
INTERSECTION = "intersection"


class GEditBench(viescore.VieScoreRecipe, Benchmark):
    name = "gedit"
    dataset_writer = "pytest_editeval.testing.gedit_factory:WRITER"  # make_dataset, the fixture plugin, the demo
    title = "GEdit-Bench"
    scopes = (Scope("full", "OVERALL"), Scope("intersection", "INTERSECTION", tag=INTERSECTION))
    languages = ("en", "cn")
    default_dataset = "stepfun-ai/GEdit-Bench"
    default_hub = "modelscope"
    default_judge_model = "gpt-4.1"
    default_averaging = "macro"

    def known_subsets(self) -> tuple[str, ...]:
        return SUBSETS

    def load(self, folder: Path, options: BenchmarkOptions) -> Dataset:
        from pytest_editeval.data.parquet import ParquetImages, find_data_files

        files = find_data_files(folder, "GEdit-Bench")
        return Dataset(rows=load_index(files), images=ParquetImages(files, IMAGE_COLUMN), root=folder)

    def output_path(self, row: Row) -> Path:
        return Path("fullset") / row.subset / row.language / f"{row.key}.png"

    def source_copy_path(self, row: Row) -> Path | None:
        return Path("fullset") / row.subset / row.language / f"{row.key}_SRCIMG.png"

    def edited_in_folder(self, folder: Path, rows: list[Row], language: str) -> dict[str, Path]:
        """fullset/{task_type}/{language}/{key}.png ({key}_SRCIMG.png ignored)."""
        fullset = folder if folder.name == "fullset" else folder / "fullset"
        if not fullset.is_dir():
            raise InputError(
                f"--editeval-images {folder}: a folder must hold the official layout "
                "fullset/{task_type}/{language}/{key}.png (or pass a JSONL of {\"id\", \"image_path\"})")
        keys = {row.key for row in rows}
        paths: dict[str, Path] = {}
        for image in sorted(fullset.glob(f"*/{language}/*")):
            if image.suffix.lower() not in IMAGE_SUFFIXES or image.stem.endswith("_SRCIMG"):
                continue
            if image.stem not in keys:
                raise InputError(f"{image}: {image.stem!r} is not a key of the benchmark dataset")
            if image.stem in paths:
                raise InputError(f"{image}: key {image.stem!r} appears twice (also {paths[image.stem]})")
            if not is_inside(image, folder):
                raise InputError(f"{image} is a link that leads outside {folder}: the official layout must hold the "
                                 "images themselves (or pass a JSONL with absolute paths)")
            paths[image.stem] = image
        return paths


GEDIT = GEditBench()


def load_index(files: list[Path]) -> list[Row]:
    """Every row of the dataset, in file order, without touching image bytes."""
    from pytest_editeval.data.parquet import open_table, schema_names

    rows: list[Row] = []
    for shard, path in enumerate(files):
        names = schema_names(path)
        if any(c not in names for c in (*INDEX_COLUMNS, IMAGE_COLUMN)):
            missing = [c for c in (*INDEX_COLUMNS, IMAGE_COLUMN) if c not in names]
            raise InputError(f"dataset file {path} lacks column(s) {', '.join(missing)} (it has: {', '.join(names)}): "
                             "this is not a GEdit-Bench data file")
        table = open_table(path, INDEX_COLUMNS)
        cols = {name: table.column(name).to_pylist() for name in INDEX_COLUMNS}
        for index in range(table.num_rows):
            rows.append(_row(cols, index, shard))
    return rows


def _row(cols: dict, index: int, shard: int) -> Row:
    key, subset = str(cols["key"][index]), str(cols["task_type"][index])
    language = str(cols["instruction_language"][index])
    problem = _row_problem(key, subset)
    if unsafe_name_reason(subset):  # grouped and printed under a stand-in, never as the raw string
        subset = stand_in_name("task-type", subset)
    shown_key = key if unsafe_name_reason(key) is None else stand_in_name("key", key)
    return Row(
        id=f"{language}-{subset}-{shown_key}", key=key, subset=subset, language=language,
        instruction=str(cols["instruction"][index]), inputs=((shard, index),),
        tags=frozenset({INTERSECTION}) if bool(cols["Intersection_exist"][index]) else frozenset(),
        problem=problem,
    )


def _row_problem(key: str, subset: str) -> str | None:
    """Keys and task types name files of the output layout: an unsafe one makes its row an error row."""
    for what, value in (("key", key), ("task type", subset)):
        reason = unsafe_name_reason(value)
        if reason:
            return f"dataset {what} {shown(value)} {reason}: it cannot name a file, so this row is not evaluated"
    return None
