"""Saved runs (`--editeval-save NAME`) and baselines (`--editeval-compare NAME_OR_PATH`)."""

from __future__ import annotations

import datetime
import platform
import sys
from importlib import metadata
from pathlib import Path

from pytest_editeval.data.jsonfile import TOO_DEEP, read_bytes_capped, read_capped, too_deep
from pytest_editeval.errors import InputError

RUNS_FOLDER = Path(".editeval") / "runs"
INCOMPLETE_SUFFIX = ".incomplete"  # NAME.incomplete.json: a run that must not replace NAME
# A results file holds a few MB per thousand rows, with every judge reply's reasoning; no real one comes near.
MAX_RESULTS_BYTES = 512 << 20


class RunNotFound(InputError):
    """No saved run by that name or path (a CI workflow's first run may skip the comparison)."""


def package_versions() -> dict[str, str]:
    """Versions of what produced the numbers; torch and diffusers only if this run imported them."""
    from pytest_editeval import __version__
    names = ["pytest", "pillow", "httpx", "pyarrow"]
    names += [n for n in ("torch", "diffusers", "transformers", "peft") if n in sys.modules]
    # the code that ran, not the install's metadata (an editable install keeps the version it was installed at)
    out = {"python": platform.python_version(), "pytest-editeval": __version__}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def run_metadata(name: str | None, *, model: str, revision: str | None, protocol: str, judge_model: str,
                 seed: int | None, model_digest: str | None = None, benchmark: str | None = None,
                 judge_backend: str | None = None, judge_digest: str | None = None,
                 judge_recipe: str | None = None) -> dict:
    """`model_digest`: the SHA-256 of the pipeline folder's files (model mode), which names the exact weights
    even when the revision was a branch; `judge_digest` the same for a judge that runs on this machine."""
    return {
        "name": name, "benchmark": benchmark, "model": model, "revision": revision, "model_digest": model_digest,
        "protocol": protocol,
        "judge_model": judge_model, "judge_backend": judge_backend, "judge_digest": judge_digest,
        "judge_recipe": judge_recipe, "seed": seed, "versions": package_versions(),
        "timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
    }


def run_path(rootpath: Path, name: str) -> Path:
    return rootpath / RUNS_FOLDER / f"{name}.json"


def load_run(name_or_path: str, rootpath: Path):
    """A saved run (RunResults), from a path or a name saved under .editeval/runs/."""
    from pydantic import ValidationError

    from pytest_editeval.report.results import read_results

    path = Path(name_or_path).expanduser()
    if not path.is_file():
        path = run_path(rootpath, name_or_path)
    if not path.is_file():
        saved = sorted(p.stem for p in (rootpath / RUNS_FOLDER).glob("*.json"))
        raise RunNotFound(f"no saved run {name_or_path!r} (looked for {path}); saved runs: "
                          + (", ".join(saved) if saved else "none (make one with --editeval-save NAME)"))
    raw = read_capped(path, "saved run", MAX_RESULTS_BYTES)
    try:
        return read_results(raw)
    except TOO_DEEP:
        raise InputError(too_deep(path, "saved run") + "; pass a file written by --editeval-save or --editeval-json") \
            from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "the top level"
        raise InputError(f"{path} is not a saved run of pytest-editeval ({where}: {first.get('msg', 'invalid')}); "
                         "pass a file written by --editeval-save or --editeval-json") from None
    except ValueError as exc:  # not JSON at all
        raise InputError(f"cannot read saved run {path}: not valid JSON ({str(exc).splitlines()[0][:160]})") from None
    except OSError as exc:
        raise InputError(f"cannot read saved run {path}: {exc.strerror or exc}") from None


def holds_scored_rows(path: Path) -> int:
    """How many scored rows the results file at `path` holds (0 when it is absent or unreadable)."""
    import json

    try:
        raw = read_bytes_capped(path, MAX_RESULTS_BYTES)
        data = json.loads(raw) if raw is not None else {}
        return sum(1 for s in data.get("samples", []) if isinstance(s, dict) and s.get("status") == "scored")
    except (OSError, ValueError, AttributeError, *TOO_DEEP):
        return 0


def describe_results_file(path: Path) -> tuple[bool, int]:
    """(whether the results file at `path` is a complete run, how many scored rows it holds); (False, 0) when it
    is absent or unreadable."""
    import json

    try:
        data = json.loads(path.read_bytes())
        return data.get("complete") is True, holds_scored_rows(path)
    except (OSError, ValueError, AttributeError):
        return False, 0


def incomplete_path(path: Path) -> Path:
    """Where a run that must not replace `path` is written instead: NAME.incomplete.json beside it."""
    return path.with_name(path.stem + INCOMPLETE_SUFFIX + path.suffix)
