"""A benchmark's rows, whatever the benchmark: what a row is, where its images come from, and which rows a run
selects. Each benchmark module reads its own files into these types (benchmarks/gedit.py from Parquet,
imgedit.py and kris.py from JSON and image files).

Rows are read as untrusted input: a row whose fields cannot be used safely (an unsafe key, a file outside the
dataset) carries a `problem` and becomes an error row with that reason; it is never generated or judged.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from pytest_editeval.data.paths import is_inside
from pytest_editeval.errors import InputError


@dataclass(frozen=True)
class Row:
    id: str  # the test id: stable, readable, safe to print and to select with -k
    key: str  # the benchmark's own row key: the JSONL "id", the results' "key", paired on in comparisons
    subset: str
    instruction: str
    language: str = "en"
    inputs: tuple[Any, ...] = ()  # the images the editing model gets, in order (locators of the image store)
    references: tuple[tuple[str, Any], ...] = ()  # judge-only images by name (KRIS's viewpoint ground truth)
    tags: frozenset[str] = frozenset()  # e.g. {"intersection"}: rows a scope keeps
    extra: tuple[tuple[str, Any], ...] = ()  # the benchmark's own fields (an edit type, a target frame...)
    problem: str | None = None  # why this row cannot be used: it becomes an error row with this reason

    def get(self, name: str, default: Any = None) -> Any:
        return dict(self.extra).get(name, default)

    def reference(self, name: str) -> Any:
        return dict(self.references)[name]


class ImageStore(Protocol):
    """Where a dataset's images are: bytes by locator, and an identity that names them without reading them."""

    def read(self, locator: Any) -> bytes: ...

    def identity(self, locator: Any) -> dict: ...


class FileImages:
    """Images that are files under one folder; a locator is the path relative to it (POSIX)."""

    MAX_BYTES = 256 << 20  # no dataset image is anywhere near this; a bigger file is not one

    def __init__(self, root: Path) -> None:
        self.root = root
        self._identities: dict[str, dict] = {}
        self._lock = threading.Lock()

    def path(self, locator: str) -> Path:
        path = self.root / locator
        if not is_inside(path, self.root):  # rows were checked when read; checked again where a file is opened
            raise InputError(f"dataset image {locator!r} lies outside {self.root}")
        return path

    def identity(self, locator: str) -> dict:
        """Names the image by its bytes (read once per process): a file replaced by another of the same size
        with its time restored is another image, and must not keep the old answers."""
        with self._lock:
            known = self._identities.get(locator)
        if known is None:
            known = {"kind": "dataset-file", "path": locator, "sha256": hashlib.sha256(self.read(locator)).hexdigest()}
            with self._lock:
                self._identities[locator] = known
        return known

    def read(self, locator: str) -> bytes:
        from pytest_editeval.data.images import read_image_file

        return read_image_file(self.path(locator), "dataset image", self.MAX_BYTES)


@dataclass
class Dataset:
    rows: list[Row]  # every row of the dataset, all languages, in the benchmark's order
    images: ImageStore
    root: Path
    warnings: list[str] = field(default_factory=list)  # said once at the start of the run
    context: dict = field(default_factory=dict)  # what the benchmark needs at judging time (prompt templates)


def flag_repeated_rows(rows: Sequence[Row]) -> tuple[list[Row], list[str]]:
    """Every benchmark's rows, with a row whose id, or whose key in its language, an earlier row already has made
    an error row (its edited image, its results and its comparison are found by that key: two rows cannot share
    it), and the one line that says so (empty when every row is unique)."""
    from pytest_editeval.data.paths import printable

    seen_ids: set[str] = set()
    seen_keys: set[tuple[str, str]] = set()
    out: list[Row] = []
    repeated: list[str] = []
    for row in rows:
        if row.id in seen_ids or (row.language, row.key) in seen_keys:
            repeated.append(row.id)
            row = replace(row, problem=f"the dataset holds the row {printable(row.key)} twice; only the first is "
                                       "evaluated, this copy is an error row", inputs=())
        seen_ids.add(row.id)
        seen_keys.add((row.language, row.key))
        out.append(row)
    if not repeated:
        return out, []
    listed = ", ".join(printable(i, 60) for i in repeated[:3]) + (" ..." if len(repeated) > 3 else "")
    return out, [f"the dataset repeats {len(repeated)} row(s) ({listed}): each copy after the first is an error row; "
                 "fix the dataset (a row must be unique by id and by key)"]


def select_rows(rows: Iterable[Row], language: str, subsets: Sequence[str] | None, limit: int | None,
                order: list[str], hints: Mapping[str, str] | None = None) -> list[Row]:
    """Rows of one language, grouped by subset in the benchmark's order, dataset order inside a subset;
    `limit` keeps the first N rows of each subset (EvalScope's `limit`). `hints`: what to say of a subset name
    that is not the benchmark's but means something to its users (ImgEdit's `uge`)."""
    by_subset: dict[str, list[Row]] = {}
    for row in rows:
        if row.language == language:
            by_subset.setdefault(row.subset, []).append(row)
    known = [s for s in order if s in by_subset]
    wanted = list(subsets) if subsets else known
    unknown = [s for s in wanted if s not in by_subset]
    if unknown:
        hint = next((hints[s.lower()] for s in unknown if hints and s.lower() in hints), "")
        raise InputError(
            f"unknown subset(s) {', '.join(unknown)} for language {language!r}: known subsets are "
            + ", ".join(known) + (f" ({hint})" if hint else "")
        )
    out: list[Row] = []
    for name in (s for s in known if s in wanted):
        chosen = by_subset[name]
        out.extend(chosen[:limit] if limit else chosen)
    return out
