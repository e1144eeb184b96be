"""Writes a small dataset with GEdit-Bench's columns and storage (Parquet or Arrow shards, image columns as
Hugging Face {bytes, path} structs), and edited images for it."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, replace
from pathlib import Path

from pytest_editeval.benchmarks.gedit import SUBSETS as GEDIT_SUBSETS
from pytest_editeval.testing.datasets import DatasetWriter, WrittenDataset

CN_VERBS = {"en": "change the color of the {obj} to {color}", "cn": "把{obj}的颜色改成{color}"}
OBJECTS = ["car", "cat", "sky", "house", "shirt", "flower", "boat"]
COLORS = ["red", "blue", "green", "yellow", "purple"]


@dataclass(frozen=True)
class GeditRow:
    key: str
    task_type: str
    instruction: str
    language: str
    intersection: bool
    width: int
    height: int


def _png(width: int, height: int, rgb: tuple[int, int, int], noise: int = 0, seed: int = 0,
         mark: int | None = None) -> bytes:
    from PIL import Image

    if noise:  # photo-like size on disk: noise does not compress (Pillow's C noise generator, fast)
        bands = [Image.effect_noise((width, height), noise).point(lambda v, c=c: max(0, min(255, v - 128 + c)))
                 for c in rgb]
        image = Image.merge("RGB", bands)
    else:
        image = Image.new("RGB", (width, height), rgb)
    if mark is not None:  # one pixel that differs per row, so that no two rows send identical images
        image.putpixel((0, 0), (rgb[0], mark % 256, (mark // 256) % 256))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


# Rows per task type of the real dataset (per language), in GEDIT_SUBSETS order: 606 in all.
REAL_COUNTS = dict(zip(GEDIT_SUBSETS, (40, 40, 40, 40, 70, 60, 60, 57, 60, 99, 40)))


def make_gedit_dataset(root: Path, *, rows_per_subset: int | dict = 2, languages=("en", "cn"), subsets=GEDIT_SUBSETS,
                       size: tuple[int, int] = (32, 32), shards: int = 2, fmt: str = "parquet",
                       row_group_size: int = 16, noise: int = 0, columns_to_drop=(),
                       overrides: dict[int, dict] | None = None) -> list[GeditRow]:
    """Write `root/data/train-0000i-of-0000N.{parquet,arrow}` and return the rows in file order.
    `overrides`: row index -> fields to replace (e.g. {"key": "../../x"}), for datasets with hostile rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows: list[GeditRow] = []
    images: list[bytes] = []
    for language in languages:
        for s_index, subset in enumerate(subsets):
            count = rows_per_subset[subset] if isinstance(rows_per_subset, dict) else rows_per_subset
            for i in range(count):
                key = hashlib.md5(f"{language}/{subset}/{i}".encode()).hexdigest()
                obj, color = OBJECTS[(i + s_index) % len(OBJECTS)], COLORS[i % len(COLORS)]
                instruction = CN_VERBS[language].format(obj=obj, color=color) + f" #{subset}-{i}"
                width, height = size if i % 3 else (size[0] * 2, size[1])  # mixed source sizes
                row = GeditRow(key, subset, instruction, language, i % 4 != 3, width, height)
                rows.append(replace(row, **(overrides or {}).get(len(rows), {})))
                images.append(_png(width, height, (40 + 20 * s_index, 10 * i % 255, 128), noise, seed=len(rows),
                                   mark=len(rows)))
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    table = pa.table({
        "key": [r.key for r in rows],
        "task_type": [r.task_type for r in rows],
        "instruction": [r.instruction for r in rows],
        "instruction_language": [r.language for r in rows],
        "input_image": pa.array([{"bytes": b, "path": f"{r.key}.png"} for r, b in zip(rows, images)], image_type),
        "input_image_raw": pa.array([{"bytes": b, "path": f"{r.key}_raw.png"} for r, b in zip(rows, images)],
                                    image_type),
        "Intersection_exist": [r.intersection for r in rows],
    })
    for column in columns_to_drop:
        table = table.drop_columns([column])
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    per_shard = -(-len(rows) // shards)
    for shard in range(shards):
        part = table.slice(shard * per_shard, per_shard)
        name = data / f"train-{shard:05d}-of-{shards:05d}.{fmt}"
        if fmt == "parquet":
            pq.write_table(part, name, row_group_size=row_group_size)
        else:  # the IPC stream format that `datasets.save_to_disk` writes
            with pa.OSFile(str(name), "wb") as sink, pa.ipc.new_stream(sink, part.schema) as writer:
                writer.write_table(part)
    return rows


def bomb_png(width: int = 20000, height: int = 20000) -> bytes:
    """A valid greyscale PNG of width x height black pixels that compresses to a few hundred KB: a
    decompression bomb (20000 x 20000 is 400 MB decoded from about 400 KB). Written without decoding it."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor = zlib.compressobj(9)
    row = b"\x00" * (width + 1)  # filter byte 0, then one byte a pixel
    parts = [compressor.compress(row) for _ in range(height)]
    idat = b"".join(parts) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def edited_red(row: GeditRow) -> int:
    """The red level of the edited image the helpers write for a row (the loopback judge's PQ depends on it)."""
    return 25 * (int(row.key[:4], 16) % 9) + 12  # 12, 37, ..., 212: far from JPEG's +-2 drift between buckets


def write_edited_images(folder: Path, rows: list[GeditRow], *, layout: str = "jsonl", scale: float = 1.0,
                        relative: bool = True, noise: int = 0) -> Path:
    """Edited images for `rows` (size scaled by `scale`, so the official resize is exercised). Returns the
    JSONL file (layout "jsonl") or the folder holding `fullset/` (layout "official")."""
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for row in rows:
        size = (max(1, int(row.width * scale)), max(1, int(row.height * scale)))
        data = _png(*size, (edited_red(row), 90, 160), noise, seed=int(row.key[:6], 16), mark=int(row.key[:6], 16))
        if layout == "official":
            target = folder / "fullset" / row.task_type / row.language / f"{row.key}.png"
        else:
            target = folder / "images" / f"{row.key}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        entries.append({"id": row.key, "image_path": str(target.relative_to(folder) if relative else target)})
    if layout == "official":
        return folder
    jsonl = folder / "edits.jsonl"
    jsonl.write_text("".join(json.dumps(e) + "\n" for e in entries), encoding="utf-8")
    return jsonl


def write_dataset(folder: Path, **options) -> WrittenDataset:
    """GEdit's writer for make_dataset and the demo: 4 rows per task type in English and Chinese under
    `folder/dataset`, edited images of the English rows (1.5 x the source size) in `folder/my-model`.
    `options` go to make_gedit_dataset."""
    rows = make_gedit_dataset(folder / "dataset", **{"rows_per_subset": 4, "size": (64, 64), **options})
    edited = [r for r in rows if r.language == "en"]
    images = write_edited_images(folder / "my-model", edited, scale=1.5)
    return WrittenDataset(folder / "dataset", images, edited)


# GEdit's declaration (benchmarks/gedit.py names it): the default judge rule (judge_server.rule_scores) scores it.
WRITER = DatasetWriter(write_dataset, thresholds=("overall>=3.0", "error_rate<=0.02"))
