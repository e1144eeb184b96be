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

from .cache import file_identity
from .errors import InputError
from .paths import shown, stand_in_name, unsafe_name_reason

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
    problem: str | None = None  # why this row cannot be used (an unsafe key or task type): an error row

    @property
    def id(self) -> str:
        """Stable, readable test id: `-k color_alter`, `-k en` and `--lf` select on it. An unsafe key or task type
        is replaced by a stand-in, so that no dataset string reaches a file name or the terminal unescaped."""
        key = self.key if unsafe_name_reason(self.key) is None else stand_in_name("key", self.key)
        return f"{self.language}-{self.subset}-{key}"


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
            return pq.ParquetFile(path).read(columns=list(columns) if columns else None, use_threads=False)
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
            key, subset = str(cols["key"][row]), str(cols["task_type"][row])
            problem = _row_problem(key, subset)
            if unsafe_name_reason(subset):  # grouped and printed under a stand-in, never as the raw string
                subset = stand_in_name("task-type", subset)
            samples.append(Sample(
                key=key,
                subset=subset,
                language=str(cols["instruction_language"][row]),
                instruction=str(cols["instruction"][row]),
                intersection=bool(cols["Intersection_exist"][row]),
                shard=shard,
                row=row,
                problem=problem,
            ))
    return samples


def _row_problem(key: str, subset: str) -> str | None:
    """Keys and task types name files of the output layout: an unsafe one makes its row an error row."""
    for what, value in (("key", key), ("task type", subset)):
        reason = unsafe_name_reason(value)
        if reason:
            return f"dataset {what} {shown(value)} {reason}: it cannot name a file, so this row is not evaluated"
    return None


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
    """Fetches `input_image` bytes per row without holding the dataset in memory.

    Parquet is streamed in small batches through a buffered reader (no pre-buffering: a row group of the real
    dataset also holds `input_image_raw`, several MB a row, which must never be read). A forward-moving
    cursor per row group means rows asked for in roughly dataset order are read once, and a small LRU of
    batches serves the worker threads that ask slightly out of order. Arrow files are memory-mapped.
    """

    BATCH_ROWS = 8
    CACHED_BATCHES = 8  # 64 rows, ~35 MB of 0.55 MB sources: more than the rows being worked on at once
    OPEN_CURSORS = 1

    def __init__(self, files: list[Path]) -> None:
        self.files = files
        self._batches: OrderedDict[tuple[int, int, int], list] = OrderedDict()
        # Open batch iterators hold read buffers: keep only the most recent ones.
        self._cursors: OrderedDict[tuple[int, int], tuple[object, int]] = OrderedDict()
        self._group_starts: dict[int, list[int]] = {}
        self._arrow: dict[int, object] = {}
        self._file_identity: dict[int, dict] = {}
        self._lock = threading.Lock()

    def identity(self, sample: Sample) -> dict:
        """What identifies a row's source image without reading it (the key of its memoised digest): the data
        file's identity, stat'ed once per file, and the row."""
        if sample.shard not in self._file_identity:
            self._file_identity[sample.shard] = file_identity(self.files[sample.shard])
        return {"kind": "dataset-image", **self._file_identity[sample.shard], "row": sample.row,
                "column": IMAGE_COLUMN}

    def read(self, sample: Sample) -> bytes:
        path = self.files[sample.shard]
        with self._lock:
            value = self._parquet_value(sample) if path.suffix == ".parquet" else \
                self._arrow_column(sample.shard)[sample.row].as_py()
        data = value.get("bytes") if isinstance(value, dict) else value
        if not data:
            raise InputError(f"row {sample.key} of {path} has no input_image bytes")
        return data

    def _parquet_value(self, sample: Sample):
        import bisect

        starts = self._starts(sample.shard)
        group = bisect.bisect_right(starts, sample.row) - 1
        offset = sample.row - starts[group]
        index = (sample.shard, group, offset // self.BATCH_ROWS)
        if index not in self._batches:
            self._advance_to(index)
        self._batches.move_to_end(index)
        return self._batches[index][offset % self.BATCH_ROWS]

    def _starts(self, shard: int) -> list[int]:
        if shard not in self._group_starts:
            import pyarrow.parquet as pq

            meta = pq.ParquetFile(self.files[shard]).metadata
            starts, total = [], 0
            for i in range(meta.num_row_groups):
                starts.append(total)
                total += meta.row_group(i).num_rows
            self._group_starts[shard] = starts
        return self._group_starts[shard]

    def _advance_to(self, index: tuple[int, int, int]) -> None:
        shard, group, wanted = index
        cursor = self._cursors.get((shard, group))
        if cursor is None or cursor[1] > wanted:  # behind the cursor and evicted: start the group again
            import pyarrow.parquet as pq

            # A row group's image column is often one dictionary page (~70 MB here, decoded as a whole even
            # for one row): close older cursors first so that two groups are never decoded at once.
            self._cursors.pop((shard, group), None)
            while len(self._cursors) >= self.OPEN_CURSORS:
                self._cursors.popitem(last=False)
            import pyarrow as pa

            pa.default_memory_pool().release_unused()  # hand the closed group's pages back to the OS

            reader = pq.ParquetFile(self.files[shard], pre_buffer=False, buffer_size=1 << 20)
            batches = reader.iter_batches(batch_size=self.BATCH_ROWS, row_groups=[group], columns=[IMAGE_COLUMN],
                                          use_threads=False)
            cursor = (batches, 0)
        batches, position = cursor
        while position <= wanted:
            batch = next(batches)
            self._batches[(shard, group, position)] = batch.column(0).to_pylist()
            self._batches.move_to_end((shard, group, position))
            while len(self._batches) > self.CACHED_BATCHES:
                self._batches.popitem(last=False)
            position += 1
        self._cursors[(shard, group)] = (batches, position)
        self._cursors.move_to_end((shard, group))
        while len(self._cursors) > self.OPEN_CURSORS:
            self._cursors.popitem(last=False)

    def _arrow_column(self, shard: int):
        if shard not in self._arrow:
            self._arrow[shard] = _open_table(self.files[shard], [IMAGE_COLUMN]).column(0)
        return self._arrow[shard]
