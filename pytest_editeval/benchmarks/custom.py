"""A team's own benchmark, declared without code in the pyproject.toml of the rootdir:

    [tool.editeval.benchmarks.acme-edits]
    rows = "evals/acme/rows.jsonl"     # {"id", "instruction", "source_image", "subset"}, paths relative to the file
    recipe = "viescore"                 # GEdit's SC / PQ / O questions and formula; or "imgedit":
    # recipe = "imgedit"
    # prompts = "evals/acme/judge_prompts.json"   # {subset or "default": template with <edit_prompt>}

Then `pytest --editeval-benchmark=acme-edits --editeval-images=...` works like GEdit: items, judge, table, gate,
cache, model mode. Rows are untrusted like any dataset's: an id that cannot name a file or an image path that
leaves the rows file's folder makes that row an error row. A bad declaration is a usage error naming the table
and the key.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from pytest_editeval.benchmarks import Benchmark, BenchmarkOptions, viescore
from pytest_editeval.benchmarks.imgedit import ImgEditRecipe
from pytest_editeval.data.dataset import Dataset, FileImages, Row
from pytest_editeval.data.paths import is_inside, shown, stand_in_name, unsafe_name_reason
from pytest_editeval.errors import InputError

RECIPES = ("viescore", "imgedit")
MAX_ROWS_BYTES = 64 << 20
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def _table(rootpath: Path) -> dict:
    path = rootpath / "pyproject.toml"
    if not path.is_file():
        return {}
    return _read(str(path), path.stat().st_mtime_ns)


@lru_cache(maxsize=8)
def _read(path: str, _mtime: int) -> dict:
    import tomllib

    from pytest_editeval.data.jsonfile import TOO_DEEP, config_text

    try:
        data = tomllib.loads(config_text(Path(path)))
    except TOO_DEEP:
        raise InputError(f"cannot read {path}: nested too deeply to be read (no real one is)") from None
    except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    table = data.get("tool", {}).get("editeval", {}).get("benchmarks", {})
    if not isinstance(table, dict):
        raise InputError(f"[tool.editeval.benchmarks] in {path} must be a table of benchmark tables")
    return table


def declared_names(rootpath: Path) -> list[str]:
    return list(_table(rootpath))


def declared(name: str, rootpath: Path) -> Benchmark:
    spec = _table(rootpath)[name]
    where = f"[tool.editeval.benchmarks.{name}] in {rootpath / 'pyproject.toml'}"
    if not isinstance(spec, dict):
        raise InputError(f"{where} must be a table with `rows` and `recipe`")
    unknown = sorted(set(spec) - {"rows", "recipe", "prompts", "title", "judge_model"})
    if unknown:
        raise InputError(f"{where}: unknown key(s) {', '.join(unknown)}; it takes rows, recipe, prompts, title, "
                         "judge_model")
    rows = spec.get("rows")
    if not isinstance(rows, str) or not rows:
        raise InputError(f"{where}: `rows` must name a JSONL file of {{\"id\", \"instruction\", \"source_image\", "
                         "\"subset\"}")
    recipe = spec.get("recipe", "viescore")
    if recipe not in RECIPES:
        raise InputError(f"{where}: unknown recipe {recipe!r}: use {' or '.join(RECIPES)}")
    prompts = spec.get("prompts")
    if recipe == "imgedit" and not isinstance(prompts, str):
        raise InputError(f"{where}: recipe \"imgedit\" needs `prompts`, a JSON file of templates by subset (or "
                         "\"default\"), each holding <edit_prompt>")
    cls = ViescoreSet if recipe == "viescore" else ImgeditSet
    return cls(name, rootpath / rows, where, str(spec.get("title") or name),
               prompts=rootpath / prompts if isinstance(prompts, str) else None,
               judge_model=str(spec.get("judge_model") or "gpt-4.1"))


class DeclaredSet(Benchmark):
    """Rows from a JSONL; one scope; output layout <subset>/<id>.png."""

    def __init__(self, name: str, rows_file: Path, where: str, title: str, *, prompts: Path | None,
                 judge_model: str) -> None:
        self.name, self.title, self.rows_file, self.where = name, title, rows_file, where
        self.prompts_file = prompts
        self.default_dataset = str(rows_file)
        self.default_judge_model = judge_model

    def resolve_dataset(self, spec: str, hub: str, offline: bool) -> Path:
        path = Path(spec).expanduser()
        if not path.is_file():
            raise InputError(f"{self.where}: rows file {path} does not exist")
        return path

    def load(self, folder: Path, options: BenchmarkOptions) -> Dataset:
        rows = read_rows(folder, self.where)
        return Dataset(rows=rows, images=FileImages(folder.parent), root=folder.parent,
                       context=self.context(options))

    def context(self, options: BenchmarkOptions) -> dict:
        return {}

    def output_path(self, row: Row) -> Path:
        return Path(row.subset) / f"{row.key}.png"

    def edited_in_folder(self, folder: Path, rows: list[Row], language: str) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for row in rows:
            if row.problem is not None:
                continue
            for candidate in (folder / row.subset / f"{row.key}{s}" for s in IMAGE_SUFFIXES):
                if candidate.is_file():
                    if not is_inside(candidate, folder):
                        raise InputError(f"{candidate} is a link that leads outside {folder}")
                    found[row.key] = candidate
                    break
        return found


class ViescoreSet(viescore.VieScoreRecipe, DeclaredSet):
    pass


class ImgeditSet(ImgEditRecipe, DeclaredSet):
    averaging_labels = {"macro": "subset mean", "micro": "sample mean"}

    def context(self, options: BenchmarkOptions) -> dict:
        from pytest_editeval.benchmarks import imgedit_official as official
        from pytest_editeval.data.jsonfile import read_json_object, repeated_names_warning

        path = options.judge_prompts or self.prompts_file
        data, duplicates = read_json_object(path, f"{self.where}: prompts file", MAX_ROWS_BYTES)
        for line in repeated_names_warning(path, duplicates):
            options.warn(line)
        return {"prompts": {k: official.checked_template(v, f"{self.where}: prompts file {path}, template {k!r}")
                            for k, v in data.items()}}


def read_rows(path: Path, where: str) -> list[Row]:
    """The JSONL's rows: {"id", "instruction", "source_image", "subset"}. A malformed line is a usage error
    (it is the team's own file); an unsafe value makes its row an error row."""
    if path.stat().st_size > MAX_ROWS_BYTES:
        raise InputError(f"{where}: rows file {path} is over {MAX_ROWS_BYTES >> 20} MiB")
    rows, seen = [], set()
    for number, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested deeper than any real row
            raise InputError(f"{path}:{number}: not valid JSON ({str(exc)[:160]}); each line is "
                             '{"id", "instruction", "source_image", "subset"}') from None
        if not isinstance(entry, dict) or not all(k in entry for k in ("id", "instruction", "source_image")):
            raise InputError(f"{path}:{number}: needs id, instruction and source_image (and a subset)")
        key, subset = str(entry["id"]), str(entry.get("subset") or "all")
        if key in seen:
            raise InputError(f"{path}:{number}: id {key!r} appears twice")
        seen.add(key)
        problem = None
        for what, value in (("id", key), ("subset", subset)):
            reason = unsafe_name_reason(value)
            if reason and problem is None:
                problem = f"{what} {shown(value)} {reason}: it cannot name a file, so this row is not evaluated"
        image = str(entry["source_image"])
        if problem is None and (Path(image).is_absolute() or not is_inside(path.parent / image, path.parent)):
            problem = f"source_image {shown(image)} leads outside {path.parent}"
        elif problem is None and not (path.parent / image).is_file():
            problem = f"source_image {shown(image)} does not exist"
        safe_subset = subset if unsafe_name_reason(subset) is None else stand_in_name("subset", subset)
        safe_key = key if unsafe_name_reason(key) is None else stand_in_name("id", key)
        rows.append(Row(id=f"{safe_subset}-{safe_key}", key=key, subset=safe_subset,
                        instruction=str(entry["instruction"]), language=str(entry.get("language") or "en"),
                        inputs=(image,) if problem is None else (), problem=problem))
    if not rows:
        raise InputError(f"{where}: rows file {path} holds no row")
    return rows
