"""The benchmark's sample index, read from the dataset's Parquet or Arrow shards.

Collection needs only the small columns (key, task type, instruction, language, intersection flag), read
column by column with pyarrow: no image byte is read or decoded until a row is judged. Source images are then
fetched one row at a time through `SourceImages`, which keeps at most a couple of Parquet row groups in
memory, so a full run's memory does not grow with the dataset.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from .errors import InputError

GEDIT_SUBSETS = (
    "background_change", "color_alter", "material_alter", "motion_change", "ps_human", "style_change",
    "subject-add", "subject-remove", "subject-replace", "text_change", "tone_transfer",
)
LANGUAGES = ("en", "cn")
INDEX_COLUMNS = ("key", "task_type", "instruction", "instruction_language", "Intersection_exist")
IMAGE_COLUMN = "input_image"
DATA_SUFFIXES = (".parquet", ".arrow")


@dataclass(frozen=True)
class Sample:
    key: str
    subset: str
    language: str
    instruction: str
    intersection: bool
    shard: int  # index into the dataset's sorted list of data files
    row: int  # row inside that file

    @property
    def id(self) -> str:
        """Stable, readable test id: `-k color_alter`, `-k en` and `--lf` select on it."""
        return f"{self.language}-{self.subset}-{self.key}"


def find_data_files(root: Path) -> list[Path]:
    if not root.is_dir():
        raise InputError(f"dataset folder {root} does not exist: pass --editeval-dataset a folder or a hub id")
    files = sorted(p for p in root.rglob("*") if p.suffix in DATA_SUFFIXES and p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    if not files:
        raise InputError(
            f"no Parquet or Arrow data files under {root}: point --editeval-dataset at the folder holding "
            "the GEdit-Bench files (e.g. data/train-00000-of-00002.parquet)"
        )
    return files


def _open_table(path: Path, columns: Sequence[str] | None):
    """The file's table (only `columns`), memory-mapped for Arrow, column-pruned for Parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if path.suffix == ".parquet":
            return pq.read_table(path, columns=list(columns) if columns else None)
        source = pa.memory_map(str(path))
        try:
            table = pa.ipc.open_file(source).read_all()
        except pa.ArrowInvalid:  # `datasets.save_to_disk` writes the IPC *stream* format
            source.seek(0)
            table = pa.ipc.open_stream(source).read_all()
        return table.select(list(columns)) if columns else table
    except (OSError, ValueError, KeyError) as exc:
        if isinstance(exc, KeyError) or "No match for FieldRef" in str(exc) or "not in schema" in str(exc):
            raise InputError(_missing_columns_message(path)) from None
        raise InputError(f"cannot read dataset file {path}: {str(exc).splitlines()[0]}") from None


def _schema_names(path: Path) -> list[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if path.suffix == ".parquet":
            return list(pq.read_schema(path).names)
        source = pa.memory_map(str(path))
        try:
            return list(pa.ipc.open_file(source).schema.names)
        except pa.ArrowInvalid:
            source.seek(0)
            return list(pa.ipc.open_stream(source).schema.names)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read dataset file {path}: {str(exc).splitlines()[0]}") from None


def _missing_columns_message(path: Path) -> str:
    names = _schema_names(path)
    missing = [c for c in (*INDEX_COLUMNS, IMAGE_COLUMN) if c not in names]
    return (f"dataset file {path} lacks column(s) {', '.join(missing)} (it has: {', '.join(names)}): "
            "this is not a GEdit-Bench data file")


def load_index(files: list[Path]) -> list[Sample]:
    """Every row of the dataset, in file order, without touching image bytes."""
    samples: list[Sample] = []
    for shard, path in enumerate(files):
        names = _schema_names(path)
        if any(c not in names for c in (*INDEX_COLUMNS, IMAGE_COLUMN)):
            raise InputError(_missing_columns_message(path))
        table = _open_table(path, INDEX_COLUMNS)
        cols = {name: table.column(name).to_pylist() for name in INDEX_COLUMNS}
        for row in range(table.num_rows):
            samples.append(Sample(
                key=str(cols["key"][row]),
                subset=str(cols["task_type"][row]),
                language=str(cols["instruction_language"][row]),
                instruction=str(cols["instruction"][row]),
                intersection=bool(cols["Intersection_exist"][row]),
                shard=shard,
                row=row,
            ))
    return samples


def select_samples(samples: Iterable[Sample], language: str, subsets: Sequence[str] | None,
                   limit: int | None) -> list[Sample]:
    """Rows of one language, grouped by subset in the official order, dataset order inside a subset;
    `limit` keeps the first N rows of each subset (EvalScope's `limit`)."""
    by_subset: dict[str, list[Sample]] = {}
    for s in samples:
        if s.language == language:
            by_subset.setdefault(s.subset, []).append(s)
    known = subset_order(by_subset)
    wanted = list(subsets) if subsets else known
    unknown = [s for s in wanted if s not in by_subset]
    if unknown:
        raise InputError(
            f"unknown subset(s) {', '.join(unknown)} for language {language!r}: known subsets are "
            + ", ".join(known)
        )
    out: list[Sample] = []
    for name in (s for s in known if s in wanted):
        rows = by_subset[name]
        out.extend(rows[:limit] if limit else rows)
    return out


def subset_order(names: Iterable[str]) -> list[str]:
    names = set(names)
    return [s for s in GEDIT_SUBSETS if s in names] + sorted(names - set(GEDIT_SUBSETS))


class SourceImages:
    """Fetches `input_image` bytes per row, keeping only a few Parquet row groups (or an mmap) in memory."""

    def __init__(self, files: list[Path], max_cached_groups: int = 2) -> None:
        self.files = files
        self._max = max_cached_groups
        self._groups: OrderedDict[tuple[int, int], object] = OrderedDict()
        self._layout: dict[int, list[int]] = {}  # shard -> cumulative row counts of its row groups
        self._arrow: dict[int, object] = {}
        self._lock = threading.Lock()

    def read(self, sample: Sample) -> bytes:
        path = self.files[sample.shard]
        with self._lock:
            if path.suffix == ".parquet":
                column, offset = self._parquet_group(sample.shard, sample.row)
            else:
                column, offset = self._arrow_column(sample.shard), sample.row
            value = column[offset].as_py()
        data = value.get("bytes") if isinstance(value, dict) else value
        if not data:
            raise InputError(f"row {sample.key} of {path} has no input_image bytes")
        return data

    def _parquet_group(self, shard: int, row: int):
        import bisect

        import pyarrow.parquet as pq

        path = self.files[shard]
        if shard not in self._layout:
            meta = pq.ParquetFile(path).metadata
            starts, total = [], 0
            for i in range(meta.num_row_groups):
                starts.append(total)
                total += meta.row_group(i).num_rows
            self._layout[shard] = starts
        starts = self._layout[shard]
        group = bisect.bisect_right(starts, row) - 1
        cache_key = (shard, group)
        if cache_key not in self._groups:
            column = pq.ParquetFile(path).read_row_group(group, columns=[IMAGE_COLUMN]).column(0)
            self._groups[cache_key] = column
            while len(self._groups) > self._max:
                self._groups.popitem(last=False)
        self._groups.move_to_end(cache_key)
        return self._groups[cache_key], row - starts[group]

    def _arrow_column(self, shard: int):
        if shard not in self._arrow:
            self._arrow[shard] = _open_table(self.files[shard], [IMAGE_COLUMN]).column(0)
        return self._arrow[shard]
