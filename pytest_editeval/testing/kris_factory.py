"""Writes a small dataset shaped like KRIS-Bench (``KRIS_Bench/<category>/annotation.json`` and the images it
names, with the real data's quirks: mixed extensions, list-valued ori_img, a ground-truth view, an absent gt_img
key, empty hints, a stray .DS_Store), rows broken on purpose, and edited images for it."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pytest_editeval.benchmarks.kris_official import CATEGORIES, KP_CATEGORIES, TEMPORAL_FRAMES, id_order
from pytest_editeval.testing.datasets import DatasetWriter, WrittenDataset

EXTENSIONS = ("jpg", "png", "jpeg")  # cycled per image, as mixed as the real folders
VERBS = ("make the {obj} bigger", "turn the {obj} blue", "move the {obj} to the left", "show the {obj} melted")
OBJECTS = ("apple", "cube", "kettle", "candle", "tree", "clock")

# Rows broken on purpose (make_kris_dataset's bad_rows): the loader must return each with `problem` set.
DEFECTS = {
    "absolute_path": "ori_img is an absolute path",
    "dotdot": "ori_img climbs out with '..'",
    "separator": "ori_img names a file in a subfolder",
    "control_char": "ori_img holds a control character",
    "leading_dot": "ori_img is a hidden file",
    "too_long": "ori_img is over 200 bytes",
    "missing_file": "ori_img names no existing file",
    "ins_not_string": "ins_en is a list",
    "unsafe_id": "the row id is a path",
    "entry_not_object": "the annotation entry is a string",
    "frames_ambiguous": "temporal frames leave two frames missing (temporal_prediction only)",
    "gt_missing": "viewpoint_change row without gt_img (viewpoint_change only)",
}


@dataclass(frozen=True)
class KrisFactoryRow:
    """A row as written. For a good row (defect None), `inputs`, `references` and `target_frame` are what the
    loader must return; a bad row's fields are the broken values written."""

    category: str
    id: str
    instruction: object
    explanation: str
    ori_img: object  # a file name, or a list of them
    gt_img: str | None  # None: the key is absent (abstract_reasoning)
    target_frame: int | None = None
    defect: str | None = None
    written: dict = field(default_factory=dict, repr=False)  # the exact annotation entry

    @property
    def key(self) -> str:
        return f"{self.category}/{self.id}"

    @property
    def inputs(self) -> tuple[str, ...]:
        names = self.ori_img if isinstance(self.ori_img, list) else [self.ori_img]
        return tuple(f"{self.category}/{n}" for n in names)

    @property
    def references(self) -> dict[str, str]:
        return {"gt": f"{self.category}/{self.gt_img}"} if self.category == "viewpoint_change" else {}


def _image_bytes(ext: str, rgb: tuple[int, int, int], size: tuple[int, int]) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, rgb).save(buf, format="PNG" if ext == "png" else "JPEG", quality=95)
    return buf.getvalue()


def _colour(*parts: object) -> tuple[int, int, int]:
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return digest[0], digest[1], digest[2]


def make_kris_dataset(root: Path, *, rows_per_category: int | Mapping[str, int] = 2, layout: str = "parent",
                      bad_rows: Iterable[tuple[str, str]] = (), categories: Iterable[str] = CATEGORIES,
                      size: tuple[int, int] = (16, 16)) -> list[KrisFactoryRow]:
    """Write a KRIS-shaped dataset and return its rows in the loader's order.

    layout "parent": ``root/KRIS_Bench/<category>/``; "kris_bench": ``root/<category>/`` (root is the folder).
    bad_rows: (category, defect) pairs, defect a key of DEFECTS; each adds one broken row after the good ones."""
    if layout not in ("parent", "kris_bench"):
        raise ValueError(f"layout must be 'parent' or 'kris_bench', not {layout!r}")
    bench = Path(root) / "KRIS_Bench" if layout == "parent" else Path(root)
    wanted_bad: dict[str, list[str]] = {}
    for category, defect in bad_rows:
        if defect not in DEFECTS:
            raise ValueError(f"unknown defect {defect!r}; known: {', '.join(DEFECTS)}")
        wanted_bad.setdefault(category, []).append(defect)
    rows: list[KrisFactoryRow] = []
    for c_index, category in enumerate(categories):
        folder = bench / category
        folder.mkdir(parents=True, exist_ok=True)
        if c_index == 0:
            (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")  # the real folders carry some
        count = rows_per_category[category] if isinstance(rows_per_category, Mapping) else rows_per_category
        written: dict[str, object] = {}
        for i in range(count):
            row = _good_row(folder, category, str(i + 1), i, size)
            written[row.id] = row.written
            rows.append(row)
        for j, defect in enumerate(wanted_bad.pop(category, [])):
            row = _bad_row(folder, category, str(count + j + 1), defect, size)
            written[row.id] = row.written
            rows.append(row)
        (folder / "annotation.json").write_text(json.dumps(written, ensure_ascii=False, indent=2), encoding="utf-8")
    if wanted_bad:
        raise ValueError(f"bad_rows name categories not written: {', '.join(wanted_bad)}")
    order = {c: i for i, c in enumerate(CATEGORIES)}
    return sorted(rows, key=lambda r: (order[r.category], id_order(r.id)))


def _good_row(folder: Path, category: str, row_id: str, i: int, size: tuple[int, int]) -> KrisFactoryRow:
    def image(name: str, *salt: object) -> str:
        (folder / name).write_bytes(_image_bytes(name.rsplit(".", 1)[1], _colour(category, row_id, *salt), size))
        return name

    ext = EXTENSIONS[i % len(EXTENSIONS)]
    target_frame = None
    if category == "multi-element_composition":
        ori_img: object = [image(f"{row_id}_{k}.{EXTENSIONS[(i + k) % 3]}", k) for k in range(1, 2 + (i % 2) + 1)]
    elif category == "temporal_prediction":
        target_frame = TEMPORAL_FRAMES[i % 4]
        ori_img = [image(f"{row_id}-{f}.{ext}", f) for f in TEMPORAL_FRAMES if f != target_frame]
    else:
        ori_img = image(f"{row_id}.{ext}")
    if category == "viewpoint_change":
        gt_img: str | None = image(f"{row_id}_gt.jpg", "gt")
    elif category == "temporal_prediction":  # the held-out frame: shipped, never sent to the judge
        gt_img = image(f"{row_id}-{target_frame}.{ext}", target_frame)
    elif category == "abstract_reasoning":
        gt_img = None
    else:
        gt_img = ""
    # Hints as in the real data: knowledge categories and anomaly_correction, but empty for rule-based_reasoning.
    explained = (category in KP_CATEGORIES and category != "rule-based_reasoning") or category == "anomaly_correction"
    obj = OBJECTS[(i + len(category)) % len(OBJECTS)]
    explanation = f"Because of a rule about the {obj} ({category} #{row_id})." if explained else ""
    instruction = VERBS[i % len(VERBS)].format(obj=obj) + f" #{category}-{row_id}"
    entry: dict[str, object] = {"ori_img": ori_img}
    if gt_img is not None:
        entry["gt_img"] = gt_img
    entry |= {"ins_en": instruction, "explain_en": explanation}
    return KrisFactoryRow(category, row_id, instruction, explanation, ori_img, gt_img, target_frame, None, entry)


def _bad_row(folder: Path, category: str, row_id: str, defect: str, size: tuple[int, int]) -> KrisFactoryRow:
    good = _good_row(folder, category, row_id, 0, size)
    entry = dict(good.written)
    broken_name = {
        "absolute_path": str((folder / good.inputs[0].split("/", 1)[1]).resolve()),  # exists, but absolute
        "dotdot": f"../{category}/{good.inputs[0].split('/', 1)[1]}",
        "separator": f"sub/{row_id}.jpg",
        "control_char": f"{row_id}\x07.jpg",
        "leading_dot": f".{row_id}.jpg",
        "too_long": "a" * 201 + ".jpg",
        "missing_file": f"{row_id}-nowhere.jpg",
    }
    if defect in broken_name:
        name = broken_name[defect]
        if defect in ("separator", "leading_dot"):  # the file exists: only the name rule may reject it
            (folder / name).parent.mkdir(exist_ok=True)
            (folder / name).write_bytes(_image_bytes("jpg", (1, 2, 3), size))
        entry["ori_img"] = [name, *entry["ori_img"][1:]] if isinstance(entry["ori_img"], list) else name
    elif defect == "ins_not_string":
        entry["ins_en"] = ["not", "a", "string"]
    elif defect == "unsafe_id":
        row_id = "../evil"
    elif defect == "entry_not_object":
        entry = "just a string"  # type: ignore[assignment]
    elif defect == "frames_ambiguous":
        if category != "temporal_prediction":
            raise ValueError("frames_ambiguous applies to temporal_prediction only")
        names = [f"{row_id}-1.jpg", f"{row_id}-1.png", f"{row_id}-2.jpg"]  # frames 1, 1, 2: 3 and 4 missing
        for name in names:
            (folder / name).write_bytes(_image_bytes(name.rsplit(".", 1)[1], (9, 9, 9), size))
        entry["ori_img"] = names
    elif defect == "gt_missing":
        if category != "viewpoint_change":
            raise ValueError("gt_missing applies to viewpoint_change only")
        entry["gt_img"] = ""
    fields = entry if isinstance(entry, dict) else {}
    return KrisFactoryRow(category, row_id, fields.get("ins_en"), str(fields.get("explain_en", "")),
                          fields.get("ori_img"), fields.get("gt_img"), None, defect, entry)


def edited_red(row) -> int:
    """The red level of the edited image `write_kris_edits` writes for a row (category and id): a loopback
    judge can turn it into scores. 12, 37, ..., 212: far apart, so JPEG's small drift never changes it."""
    digest = hashlib.sha256(f"{row.category}/{row.id}".encode()).hexdigest()
    return 25 * (int(digest[:4], 16) % 9) + 12


def write_kris_edits(folder: Path, rows: Iterable, ext: str = "jpg", *, size: tuple[int, int] = (16, 16)) -> Path:
    """Edited images as the official scripts expect them, ``<folder>/<category>/<id>.<ext>``, for every row
    that is not broken (rows carrying a `defect` or a `problem` are skipped). Returns `folder`."""
    if ext not in ("jpg", "png"):
        raise ValueError(f"ext must be 'jpg' or 'png', not {ext!r}")
    folder = Path(folder)
    for row in rows:
        if getattr(row, "defect", None) or getattr(row, "problem", None):
            continue
        target = folder / row.category / f"{row.id}.{ext}"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(_image_bytes(ext, (edited_red(row), 90, 160), size))
    return folder


# --- A loopback judge for KRIS-Bench rows --------------------------------------------------------------------
SCORE_KEYS = ("consistency_score", "quality_score", "instruction_score", "knowledge_score")


def edited_level(red: float) -> int:
    """The 1..5 level an edited image's red channel (see `edited_red`) stands for."""
    return round((red - 12) / 25) % 5 + 1


def rule_levels(level: int) -> dict[str, int]:
    """The raw 1-5 score the loopback judge gives each metric of an edit of `level` (all different, so that a
    metric read as another is caught)."""
    return {"consistency_score": level, "quality_score": level, "instruction_score": max(1, level - 1),
            "knowledge_score": min(5, level + 1)}


def expected_scores(row) -> dict[str, float]:
    """{vc, vq, if[, kp]} on the published 0-100 scale for a row judged by `kris_reply`."""
    raw = rule_levels(edited_level(edited_red(row)))
    scores = {"vc": raw["consistency_score"], "vq": raw["quality_score"], "if": raw["instruction_score"]}
    if row.category in KP_CATEGORIES:
        scores["kp"] = raw["knowledge_score"]
    return {metric: (value - 1) * 25.0 for metric, value in scores.items()}


def kris_reply(scores, call) -> str:
    """JudgeServer `reply=`: the edited image is the one the factory paints with green 90 and blue 160; its red
    level gives the scores; the reply is JSON with the score keys the template asks for."""
    from pytest_editeval.testing.judge_server import mean_rgb

    # JPEG moves a flat colour by a level or two; a dataset image lands this close to both by chance < 0.1%.
    edited = [rgb for rgb in map(mean_rgb, call.images) if abs(rgb[1] - 90) <= 4 and abs(rgb[2] - 160) <= 4]
    if not edited:
        return "I cannot find the edited image."
    levels = rule_levels(edited_level(min(edited, key=lambda rgb: abs(rgb[1] - 90) + abs(rgb[2] - 160))[0]))
    answer = {key: levels[key] for key in SCORE_KEYS if key in call.prompt}
    return json.dumps({**answer, "reasoning": "judged by rule"})


def write_dataset(folder: Path, **options) -> WrittenDataset:
    """KRIS-Bench's writer for make_dataset and the demo: 3 rows per category under `folder/dataset`, their edits
    in `folder/my-model`. `options` go to make_kris_dataset."""
    rows = make_kris_dataset(folder / "dataset", **{"rows_per_category": 3, **options})
    return WrittenDataset(folder / "dataset", write_kris_edits(folder / "my-model", rows), rows)


# KRIS-Bench's declaration (benchmarks/kris.py names it): kris_reply reads the scores from the edited image.
WRITER = DatasetWriter(write_dataset, lambda call: [], kris_reply, ("avg>=40", "error_rate<=0.02"))
