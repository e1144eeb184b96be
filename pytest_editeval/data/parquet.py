"""Parquet and Arrow shards of a hub dataset: the files, their columns, and a streaming reader of one image column.

Collection needs only small columns, read column by column with pyarrow: no image byte is read or decoded until
a row is judged. Images are then fetched one row at a time through `ParquetImages`, which keeps at most a couple
of row groups in memory, so a full run's memory does not grow with the dataset.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

from pytest_editeval.data.cache import file_identity
from pytest_editeval.errors import InputError

DATA_SUFFIXES = (".parquet", ".arrow")
# Decoded sizes, from the file's own metadata, checked before a column is read: the real index columns are a few
# hundred KB, and a row group's image column tens of MB.
MAX_INDEX_BYTES = 256 << 20
MAX_GROUP_IMAGE_BYTES = 2 << 30


def find_data_files(root: Path, what: str = "the benchmark") -> list[Path]:
    if not root.is_dir():
        raise InputError(f"dataset folder {root} does not exist: pass --editeval-dataset a folder or a hub id")
    files = sorted(p for p in root.rglob("*") if p.suffix in DATA_SUFFIXES and p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    if not files:
        raise InputError(
            f"no Parquet or Arrow data files under {root}: point --editeval-dataset at the folder holding "
            f"{what}'s files (e.g. data/train-00000-of-00002.parquet)"
        )
    return files


def open_table(path: Path, columns: Sequence[str] | None):
    """The file's table (only `columns`), memory-mapped for Arrow, column-pruned for Parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if path.suffix == ".parquet":
            reader = pq.ParquetFile(path)
            size = _decoded_bytes(reader.metadata, columns)
            if size > MAX_INDEX_BYTES:
                raise InputError(f"dataset file {path}: its index columns decode to {size:,} bytes, over the cap of "
                                 f"{MAX_INDEX_BYTES:,} (no real dataset comes near): not read")
            return reader.read(columns=list(columns) if columns else None, use_threads=False)
        source = pa.memory_map(str(path))
        try:
            table = pa.ipc.open_file(source).read_all()
        except pa.ArrowInvalid:  # `datasets.save_to_disk` writes the IPC *stream* format
            source.seek(0)
            table = pa.ipc.open_stream(source).read_all()
        return table.select(list(columns)) if columns else table
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"cannot read dataset file {path}: {str(exc).splitlines()[0]}") from None


def _decoded_bytes(meta, columns: Sequence[str] | None, groups: Sequence[int] | None = None) -> int:
    """The decoded size the metadata states for `columns` (all if None) of the row groups `groups` (all)."""
    total = 0
    for g in range(meta.num_row_groups) if groups is None else groups:
        group = meta.row_group(g)
        for c in range(group.num_columns):
            chunk = group.column(c)
            if columns is None or chunk.path_in_schema.split(".")[0] in columns:
                total += max(chunk.total_uncompressed_size, 0)
    return total


def schema_names(path: Path) -> list[str]:
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


class ParquetImages:
    """Fetches one image column's bytes per row without holding the dataset in memory. A locator is
    (shard, row): the index of the data file in `files` and the row inside it.

    Parquet is streamed in small batches through a buffered reader (no pre-buffering: a row group of the real
    dataset also holds `input_image_raw`, several MB a row, which must never be read). A forward-moving
    cursor per row group means rows asked for in roughly dataset order are read once, and a small LRU of
    batches serves the worker threads that ask slightly out of order. Arrow files are memory-mapped.
    """

    BATCH_ROWS = 8
    CACHED_BATCHES = 8  # 64 rows, ~35 MB of 0.55 MB sources: more than the rows being worked on at once
    OPEN_CURSORS = 1

    def __init__(self, files: list[Path], column: str) -> None:
        self.files = files
        self.column = column
        self._batches: OrderedDict[tuple[int, int, int], list] = OrderedDict()
        # Open batch iterators hold read buffers: keep only the most recent ones.
        self._cursors: OrderedDict[tuple[int, int], tuple[object, int]] = OrderedDict()
        self._group_starts: dict[int, list[int]] = {}
        self._arrow: dict[int, object] = {}
        self._file_identity: dict[int, dict] = {}
        self._lock = threading.Lock()

    def identity(self, locator: tuple[int, int]) -> dict:
        """What identifies a row's image without reading it (the key of its memoised digest): the data file's
        identity, stat'ed once per file, the row and the column."""
        shard, row = locator
        if shard not in self._file_identity:
            self._file_identity[shard] = file_identity(self.files[shard])
        return {"kind": "dataset-image", **self._file_identity[shard], "row": row, "column": self.column}

    def read(self, locator: tuple[int, int]) -> bytes:
        shard, row = locator
        path = self.files[shard]
        with self._lock:
            value = self._parquet_value(shard, row) if path.suffix == ".parquet" else \
                self._arrow_column(shard)[row].as_py()
        data = value.get("bytes") if isinstance(value, dict) else value
        if not data:
            raise InputError(f"row {row} of {path} has no {self.column} bytes")
        return data

    def _parquet_value(self, shard: int, row: int):
        import bisect

        starts = self._starts(shard)
        group = bisect.bisect_right(starts, row) - 1
        offset = row - starts[group]
        index = (shard, group, offset // self.BATCH_ROWS)
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
            size = _decoded_bytes(reader.metadata, [self.column], [group])
            if size > MAX_GROUP_IMAGE_BYTES:
                raise InputError(f"dataset file {self.files[shard]}: row group {group}'s {self.column} column decodes "
                                 f"to {size:,} bytes, over the cap of {MAX_GROUP_IMAGE_BYTES:,}: not read")
            batches = reader.iter_batches(batch_size=self.BATCH_ROWS, row_groups=[group], columns=[self.column],
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
            self._arrow[shard] = open_table(self.files[shard], [self.column]).column(0)
        return self._arrow[shard]
