"""`make_dataset(benchmark, folder)`: a small dataset shaped like a benchmark's, edited images for it, and the
loopback judge rule that scores them, for any benchmark that declares a dataset writer.

Each benchmark names its writer on its declaration, as a lazy "module:attribute" reference to a `DatasetWriter`:

    class MyBench(Benchmark):
        name = "my-bench"
        dataset_writer = "my_package.my_bench_factory:WRITER"

so `make_dataset`, the fixture plugin (`pytest_editeval.testing.fixtures`) and `pytest-editeval demo` find it
through the benchmark registry (built-in names, entry points) and a new benchmark changes none of them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_editeval.errors import InputError


@dataclass(frozen=True)
class WrittenDataset:
    """What a writer wrote: the dataset (for --editeval-dataset), the edited images (for --editeval-images) and
    the rows in the writer's own row type (their keys, subsets and the values the judge rule gives them)."""

    dataset: Path
    images: Path
    rows: Sequence[Any] = ()


@dataclass(frozen=True)
class DatasetWriter:
    """A benchmark's test data and the loopback judge that scores it.

    `write(folder, **options)` writes a small dataset and edited images under `folder` and returns a
    WrittenDataset (options are the writer's own: rows per subset, layout...). `scores` and `reply` are the
    JudgeServer rule that answers this benchmark's questions from the edited images (None: JudgeServer's default,
    GEdit's rule). `thresholds` a gate the written data passes; `demo`: whether `pytest-editeval demo` offers it."""

    write: Callable[..., WrittenDataset]
    scores: Callable | None = None
    reply: Callable | None = None
    thresholds: tuple[str, ...] = ()
    demo: bool = True

    def judge(self, **server_options):
        """A loopback JudgeServer answering by this benchmark's rule, not yet listening (`up()` starts it)."""
        from pytest_editeval.testing.judge_server import JudgeServer

        rules = {name: rule for name, rule in (("scores", self.scores), ("reply", self.reply)) if rule is not None}
        return JudgeServer(**{**rules, **server_options})


@dataclass(frozen=True)
class MadeDataset:
    """`make_dataset`'s answer: where the data is, the rows, and the judge rule and gate that go with it."""

    benchmark: str
    dataset: Path
    images: Path
    rows: Sequence[Any]
    writer: DatasetWriter

    @property
    def thresholds(self) -> tuple[str, ...]:
        return self.writer.thresholds

    def judge(self, **server_options):
        """A loopback JudgeServer that scores this data by the benchmark's rule (not yet listening)."""
        return self.writer.judge(**server_options)

    def options(self) -> list[str]:
        """The command-line options that run a gate on this data (add the judge's URL and model)."""
        return [f"--editeval-benchmark={self.benchmark}", f"--editeval-dataset={self.dataset}",
                f"--editeval-images={self.images}"]


def dataset_writer(benchmark: str, rootpath: Path | None = None) -> DatasetWriter:
    """The DatasetWriter the benchmark called `benchmark` declares; a usage error naming the benchmarks that have
    one otherwise."""
    from pytest_editeval.benchmarks import get

    target = get(benchmark, rootpath).dataset_writer
    if not target:
        raise InputError(f"benchmark {benchmark!r} declares no dataset writer (Benchmark.dataset_writer); "
                         f"benchmarks with one: {', '.join(writer_names(rootpath))}")
    module_name, _, attribute = target.partition(":")
    try:
        writer = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise InputError(f"the dataset writer of benchmark {benchmark!r} cannot be loaded from {target}: {exc}") from None
    if not isinstance(writer, DatasetWriter):
        raise InputError(f"the dataset writer of benchmark {benchmark!r} ({target}) is not a "
                         "pytest_editeval.testing.DatasetWriter")
    return writer


def writer_names(rootpath: Path | None = None) -> list[str]:
    """The registered benchmarks that declare a dataset writer (their modules are imported to see)."""
    from pytest_editeval.benchmarks import get, known_names

    names = []
    for name in known_names(rootpath):
        try:
            if get(name, rootpath).dataset_writer:
                names.append(name)
        except InputError:  # a benchmark that cannot be loaded has no writer to offer; `get` says why when asked
            continue
    return names


def make_dataset(benchmark: str, folder: Path, *, rootpath: Path | None = None, **options) -> MadeDataset:
    """Write a small dataset shaped like `benchmark`'s and edited images for it under `folder`, with the writer
    the benchmark declares (`options` go to it). `rootpath`: where the pyproject.toml of benchmarks declared
    there lives."""
    writer = dataset_writer(benchmark, rootpath)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = writer.write(folder, **options)
    return MadeDataset(benchmark=benchmark, dataset=Path(written.dataset), images=Path(written.images),
                       rows=list(written.rows), writer=writer)
