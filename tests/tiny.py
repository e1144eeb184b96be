"""Tiny diffusers pipelines for tests, built in a clean interpreter, and the pixel tolerance model mode promises.

Nothing here imports torch or diffusers: a test process that imports torch inside a pytester test has it dropped
from sys.modules at that test's teardown, and importing torch a second time crashes the interpreter.
"""

import importlib.util
import os
import shutil
import subprocess
import sys

import pytest

# Batch 1 vs batch 2 of the tiny float32 Flux pipeline, or a Ray actor vs the driver: bit-identical on most
# machines, a few levels apart where matrix kernels sum in another order. The README states the same guarantee.
PIXEL_TOLERANCE = 4


def needs_diffusers() -> None:
    if importlib.util.find_spec("diffusers") is None:
        pytest.skip("model mode needs the [model] extra (installed by the test extra)")


def build_tiny(name, folder):
    """Build a tiny pipeline in a clean interpreter: this test process has been through many in-process
    pytester runs, whose module churn can leave diffusers' lazy submodules half-imported."""
    code = f"from pytest_editeval.testing.tiny_pipelines import BUILDERS; BUILDERS[{name!r}]({str(folder)!r})"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    assert (folder / "model_index.json").is_file()
    return folder


def shared_tiny(name, tmp_path_factory):
    """The tiny pipeline `name`, built once per test run and shared read-only by every test that needs it."""
    return shared_folder(name, tmp_path_factory, lambda folder: build_tiny(name, folder))


def shared_folder(name, tmp_path_factory, build, complete="model_index.json"):
    """The folder `name`, made by build(folder) once per test run and shared read-only: under pytest-xdist the
    workers share one copy, built by whichever gets there first (in the run's folder above the workers' own, behind
    a file lock), as pytest-xdist's documentation does for session data. The file `complete` says it was finished."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "tiny-pipelines"
    root.mkdir(exist_ok=True)
    folder = root / name
    with FileLock(str(root / f"{name}.lock")):
        if not (folder / complete).is_file():  # not built yet, or a build that was stopped midway
            shutil.rmtree(folder, ignore_errors=True)
            build(folder)
    return folder


def max_pixel_difference(a: bytes, b: bytes) -> int:
    import io

    from PIL import Image, ImageChops

    with Image.open(io.BytesIO(a)) as first, Image.open(io.BytesIO(b)) as second:
        return max(high for _, high in ImageChops.difference(first.convert("RGB"), second.convert("RGB")).getextrema())
