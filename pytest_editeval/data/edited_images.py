"""Image mode: edited images the user generated elsewhere, mapped to benchmark keys and checked up front.

Two inputs are accepted:
- a JSONL of {"id": key, "image_path": path}, any benchmark; relative paths are relative to the JSONL file (so a
  results folder can be moved or uploaded as a CI artifact and still be read) and must stay inside its folder;
- a folder in the benchmark's official output layout (GEdit: fullset/{task_type}/{language}/{key}.png; ImgEdit:
  {key}.png; KRIS: {category}/{id}.jpg or .png), read by the benchmark module.

Every problem is found before any test runs and reported as one line naming the file, line, id or path.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pytest_editeval.data.dataset import Row
from pytest_editeval.data.jsonfile import TOO_DEEP, open_regular, read_text
from pytest_editeval.data.paths import is_inside, shown
from pytest_editeval.errors import InputError

MAX_JSONL_BYTES = 64 << 20  # about 200 bytes a row: far more rows than any benchmark has


@dataclass(frozen=True)
class EditedImages:
    paths: dict[str, Path]  # benchmark key -> edited image file
    origin: Path  # the JSONL file or the folder they came from

    @property
    def default_model_name(self) -> str:
        folder = self.origin.parent if self.origin.is_file() else self.origin
        return folder.name if folder.name != "fullset" else folder.parent.name


def load_edited_images(spec: str, benchmark, rows: list[Row], selected: Iterable[Row], language: str) -> EditedImages:
    """`rows`: every row of the dataset (any language); `selected`: the rows this run evaluates."""
    origin = Path(spec).expanduser()
    if not origin.exists():
        raise InputError(f"--editeval-images {spec}: no such file or folder")
    origin = origin.resolve()
    all_keys = {row.key for row in rows}
    language_rows = [row for row in rows if row.language == language]
    if origin.is_dir():
        paths = benchmark.edited_in_folder(origin, language_rows, language)
    else:
        paths = _from_jsonl(origin, all_keys)
    if not paths.keys() & {row.key for row in language_rows}:
        # An empty JSONL, or images of the other language: nothing to evaluate is a mistake, not a result.
        found = f"its {len(paths)} image(s) belong to no" if paths else "it holds no image for any"
        raise InputError(f"--editeval-images {spec}: {found} {language!r} row of the benchmark; check the file, "
                         "the --editeval-language and the --editeval-dataset")
    _check_readable(paths, selected, origin)
    return EditedImages(paths=paths, origin=origin)


def _from_jsonl(path: Path, all_keys: set[str]) -> dict[str, Path]:
    paths: dict[str, Path] = {}
    first_line: dict[str, int] = {}
    shape = 'each line must be {"id": KEY, "image_path": PATH}'
    lines = read_text(path, "edited-image list", MAX_JSONL_BYTES).splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            entry = json.loads(line)
        except TOO_DEEP:
            raise InputError(f"{where}: nested too deeply to be read; {shape}") from None
        except ValueError as exc:
            raise InputError(f"{where}: not valid JSON ({exc.args[0]}); {shape}") from None
        if not isinstance(entry, dict) or "id" not in entry or "image_path" not in entry:
            raise InputError(f"{where}: missing 'id' or 'image_path'; {shape}")
        key, image = str(entry["id"]), str(entry["image_path"])
        if key not in all_keys:
            raise InputError(f"{where}: id {key!r} is not a key of the benchmark dataset")
        if key in first_line:
            raise InputError(f"{where}: id {key!r} appears twice (first on line {first_line[key]})")
        image_path = Path(image)  # no ~ expansion: only a path written out in full is taken as given
        if not image_path.is_absolute():
            image_path = path.parent / image_path
            # A relative path (or a symlink it meets) must not lead out of the JSONL's folder: the file may come
            # from elsewhere (a CI artifact), and whatever it points at is read and sent to the judge.
            if not is_inside(image_path, path.parent):
                raise InputError(f"{where}: image_path {shown(image)} for id {key!r} leads outside {path.parent}; "
                                 "relative paths must stay in the JSONL's folder (write an absolute path if you mean "
                                 "that file)")
        if not image_path.is_file():
            raise InputError(f"{where}: image {image_path} for id {key!r} does not exist")
        first_line[key] = number
        paths[key] = image_path
    return paths


# File signatures of the image formats Pillow decodes for us; checked without importing or decoding anything.
_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")


def _looks_like_image(head: bytes) -> bool:
    return head.startswith(_SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def _check_readable(paths: dict[str, Path], selected: Iterable[Row], origin: Path) -> None:
    """Check each selected image's file signature: a text file named .png is caught now, before any test
    runs; an image truncated further in fails its own row when it is decoded."""
    for sample in selected:
        image = paths.get(sample.key)
        if image is None:
            continue
        try:
            with open_regular(image) as fh:  # a FIFO named as an image would block the run
                head = fh.read(12)
        except OSError as exc:
            raise InputError(f"{image} (id {sample.key!r}, from {origin}) cannot be read: {exc.strerror}") from None
        if not _looks_like_image(head):
            raise InputError(f"{image} (id {sample.key!r}, from {origin}) is not a readable image "
                             "(not a PNG, JPEG, WebP, GIF, BMP or TIFF file)")
