"""Writes a small dataset shaped like ImgEdit-Bench's download (Benchmark/singleturn/ with singleturn.json,
judge_prompt.json and JPEG originals in folders such as `animal/` and `daily object/`, optionally wrapped as
Benchmark.tar), edited images for it, and a loopback judge's rule and reply text.

The judge templates are SYNTHETIC (written here; the official texts are not ours to ship): each holds
`<edit_prompt>` once and asks for `Brief reasoning:` plus three `<Label>: <1-5>` lines with the official
labels. The edited image's red level encodes a score level derived from the key, so a loopback judge can
answer deterministically and tests can compute the expected numbers.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_editeval.benchmarks.imgedit_official import (
    EDIT_TYPES,
    PLACEHOLDER,
    PROMPTS_FILE,
    ROWS_FILE,
    SUBSET_BASIC,
    SUBSET_UGE,
    TAR_NAME,
    UGE_ROWS_FILE,
    UGE_SCRIPT,
    UGE_TYPE,
    reply_labels,
    row_order,
)
from pytest_editeval.testing.datasets import DatasetWriter, WrittenDataset

if TYPE_CHECKING:
    from pytest_editeval.testing.judge_server import JudgeCall

LAYOUTS = ("folder", "tar", "singleturn")
BAD_ROWS = ("absolute_id", "dotdot_id", "hidden_id", "control_id", "long_id", "missing_image", "outside_symlink",
            "unknown_type", "prompt_not_string", "surrogate_prompt", "bad_key", "not_object")

# Image folders per edit type, as in the real data (compose ids are nested: compose/human/14.jpg).
_FOLDERS = {
    "add": ("for_add",), "style": ("style",), "compose": ("compose/human", "compose/objects"),
    "action": ("human", "clothes"), "extract": ("animal", "clothes", "daily object", "transport"),
}
_COMMON_FOLDERS = ("animal", "architecture", "daily object", "human", "transport")
_VERBS = {
    "add": "Add a small hat to", "adjust": "Make the colour warmer on", "extract": "Extract", "replace":
    "Replace with a bicycle", "remove": "Remove", "background": "Put a beach behind", "style":
    "Render in watercolour", "compose": "Add a lamp and remove the cup near", "action": "Make wave",
}
_OBJECTS = ("the dog", "the house", "the mug", "the person", "the car", "the café sign")


@dataclass(frozen=True)
class ImgEditCase:
    """A row the factory wrote, as the loader should read it back."""

    key: str
    edit_type: str  # the loader's edit_type: "adjust" even when written as "alter", "unknown" for a bad type
    prompt: str
    image_id: str
    subset: str = SUBSET_BASIC
    problem: str | None = None  # for a bad row: a fragment of the loader's `problem`


def synthetic_template(edit_type: str) -> str:
    labels = reply_labels(edit_type)
    return (f"\nSYNTHETIC TEST TEMPLATE ({edit_type}). The first image is the original, the second the edit.\n"
            f"Instruction: {PLACEHOLDER}\nAnswer in four lines:\nBrief reasoning: <one sentence>\n"
            + "".join(f"{label}: <1-5>\n" for label in labels))


def synthetic_uge_template() -> str:
    return (f"\nSYNTHETIC UGE TEST TEMPLATE. Instruction: {PLACEHOLDER}\n"
            "Brief reasoning: <one sentence>\nScore: <1-5>\n")


def edited_level(key: str) -> int:
    """The score level 1..5 that the edited image of `key` encodes."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 5 + 1


def edited_red(key: str) -> int:
    """Red level of the edited image written for `key`: 30, 70, ..., 190 (far apart; PNG keeps it exact)."""
    return 30 + 40 * (edited_level(key) - 1)


def rule_values(level: int) -> list[int]:
    """The three sub-scores the loopback judge gives an edit of `level`."""
    return [level, level, max(1, level - 1)]


def expected_values(key: str) -> list[int]:
    return rule_values(edited_level(key))


def imgedit_rule_scores(call: "JudgeCall") -> list[float]:
    """JudgeServer `scores=` rule: the level read back from the edited (last) image's red channel."""
    from pytest_editeval.testing.judge_server import mean_red

    level = max(1, min(5, round((mean_red(call.images[-1]) - 30) / 40) + 1))
    return [float(v) for v in rule_values(level)]


def imgedit_reply(scores: list[float], call: "JudgeCall") -> str:
    """JudgeServer `reply=` text in the official shape: the labels the (synthetic) template asks for."""
    labels = re.findall(r"^(.+): <1-5>$", call.prompt, flags=re.MULTILINE) or ["Score"]
    labels = (labels * len(scores))[:len(scores)]
    return "Brief reasoning: judged by rule.\n" + "\n".join(f"{lab}: {int(s)}" for lab, s in zip(labels, scores))


def _jpeg(number: int, size: tuple[int, int] = (24, 16)) -> bytes:
    from PIL import Image

    image = Image.new("RGB", size, (number * 37 % 256, number * 91 % 256, 128))
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=80)
    return buf.getvalue()


def _png(rgb: tuple[int, int, int], size: tuple[int, int]) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, rgb).save(buf, format="PNG")
    return buf.getvalue()


def _image_id(edit_type: str, i: int, shared: bool) -> tuple[str, int]:
    """(id, image number): rows 2k and 2k+1 of a type share one original when `shared` (in the real data one
    image serves up to 20 rows)."""
    slot = i // 2 if shared else i
    folders = _FOLDERS.get(edit_type, _COMMON_FOLDERS)
    # Start each type at another folder, so that even 2 rows a type use all folders ('daily object' included).
    folder = folders[(slot + EDIT_TYPES.index(edit_type)) % len(folders)]
    number = 1000 + slot if shared else 1000 + EDIT_TYPES.index(edit_type) * 1000 + i
    if folder.startswith("compose/"):
        return f"{folder}/{number % 97}.jpg", number
    if folder == "clothes":
        return f"{folder}/{number:08d}.jpg", number
    return f"{folder}/{number:09d}.jpg", number


def make_imgedit_dataset(root: Path, *, rows_per_type: int | dict = 2, layout: str = "folder",
                         old_alter: bool = False, shared_originals: bool = True, with_uge: bool = False,
                         bad_rows: Iterable[str] = ()) -> list[ImgEditCase]:
    """Write the dataset under `root`: `Benchmark/singleturn/` (layout "folder"), `singleturn/` (layout
    "singleturn") or `Benchmark.tar` (layout "tar", which also holds Benchmark/multiturn/ and
    Benchmark/hard/ so that partial extraction is exercised). `with_uge` adds 3 UGE rows in hard/ (with
    UGE_edit.json inside it: this project's assumption). `bad_rows` names rows from BAD_ROWS to add.
    Returns the basic rows (then the UGE ones) in the loader's order."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}")
    bad_rows = tuple(bad_rows)
    unknown = [b for b in bad_rows if b not in BAD_ROWS]
    if unknown or ("outside_symlink" in bad_rows and layout == "tar"):
        raise ValueError(f"bad_rows: unknown {unknown} or a symlink row in a tar (extraction refuses links)")
    root = Path(root)
    base = root / ".staging" if layout == "tar" else root
    benchmark = base / "Benchmark" if layout in ("folder", "tar") else base
    singleturn = benchmark / "singleturn"
    singleturn.mkdir(parents=True, exist_ok=True)

    cases: list[ImgEditCase] = []
    entries: dict[str, object] = {}
    written: set[str] = set()
    index = 0
    for edit_type in EDIT_TYPES:
        count = rows_per_type[edit_type] if isinstance(rows_per_type, dict) else rows_per_type
        for i in range(count):
            key = str(22 + 37 * index + index % 3)  # non-contiguous, mixed digit counts (22 ... 1000+)
            index += 1
            image_id, number = _image_id(edit_type, i, shared_originals)
            prompt = f"{_VERBS[edit_type]} {_OBJECTS[(i + index) % len(_OBJECTS)]} (case {key})"
            if image_id not in written:
                target = singleturn / image_id
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(_jpeg(number))
                written.add(image_id)
            written_type = "alter" if old_alter and edit_type == "adjust" else edit_type
            entries[key] = {"id": image_id, "prompt": prompt, "edit_type": written_type}
            cases.append(ImgEditCase(key, edit_type, prompt, image_id))
    bad = [_bad_row(kind, 9000 + n, singleturn, root) for n, kind in enumerate(bad_rows)]
    for case, value in bad:
        entries[case.key] = value
    # The real file is in no particular order: write it shuffled so that the loader's sort is exercised.
    ordered = dict(sorted(entries.items(), key=lambda kv: hashlib.md5(kv[0].encode()).hexdigest()))
    (singleturn / ROWS_FILE).write_text(json.dumps(ordered, indent=4), encoding="utf-8")
    prompts = {t: synthetic_template(t) for t in EDIT_TYPES}
    (singleturn / PROMPTS_FILE).write_text(json.dumps(prompts, indent=2), encoding="utf-8")

    uge = _write_uge(benchmark / "hard") if with_uge else []
    if layout == "tar":
        (benchmark / "multiturn").mkdir(exist_ok=True)
        (benchmark / "multiturn" / "README.txt").write_text("multi-turn suite: not scored\n", encoding="utf-8")
        (benchmark / "hard").mkdir(exist_ok=True)
        (benchmark / "hard" / "000000001.jpg").write_bytes(_jpeg(1))
        with tarfile.open(root / TAR_NAME, "w") as archive:
            archive.add(benchmark, arcname="Benchmark")
        shutil.rmtree(base)
    return sorted(cases + [case for case, _ in bad], key=row_order) + uge


def _bad_row(kind: str, number: int, singleturn: Path, root: Path) -> tuple[ImgEditCase, object]:
    """One row of a kind in BAD_ROWS: (what the loader should report, the JSON value written)."""
    key, edit_type, prompt, image_id = str(number), "add", f"bad row {kind}", "for_add/000001000.jpg"
    problems = {
        "absolute_id": ("/etc/hosts", "absolute"), "dotdot_id": ("../outside.jpg", "'..'"),
        "hidden_id": ("animal/.hidden.jpg", "hidden"), "control_id": ("animal/a\x00b.jpg", "control character"),
        "long_id": ("animal/" + "a" * 250 + ".jpg", "longer than"),
        "missing_image": ("animal/999999999.jpg", "not found"), "outside_symlink": ("animal/link.jpg", "outside"),
    }
    if kind in problems:
        image_id, problem = problems[kind]
        if kind == "outside_symlink":
            outside = root / "outside.jpg"
            outside.write_bytes(_jpeg(7))
            (singleturn / "animal").mkdir(exist_ok=True)
            (singleturn / image_id).symlink_to(outside)
        value = {"id": image_id, "prompt": prompt, "edit_type": edit_type}
        return ImgEditCase(key, edit_type, prompt, image_id, problem=problem), value
    if kind == "unknown_type":
        value = {"id": image_id, "prompt": prompt, "edit_type": "recolor"}
        return ImgEditCase(key, "unknown", prompt, image_id, problem="unknown edit_type"), value
    if kind == "prompt_not_string":
        value = {"id": image_id, "prompt": 42, "edit_type": edit_type}
        return ImgEditCase(key, edit_type, "", image_id, problem="'prompt' must be a string"), value
    if kind == "surrogate_prompt":
        value = {"id": image_id, "prompt": "bad \ud800 text", "edit_type": edit_type}
        return ImgEditCase(key, edit_type, "bad \ud800 text", image_id, problem="not valid Unicode"), value
    if kind == "bad_key":
        value = {"id": image_id, "prompt": prompt, "edit_type": edit_type}
        return ImgEditCase("../" + key, edit_type, prompt, image_id, problem="key"), value
    # not_object
    return ImgEditCase(key, "unknown", "", "", problem="not an object"), "just a string"


def _write_uge(hard: Path, extra: tuple[tuple[str, int], ...] = ()) -> list[ImgEditCase]:
    hard.mkdir(parents=True, exist_ok=True)
    cases, entries = [], {}
    for key, number in (("1", 29784), ("2", 65904), ("10", 29784), *extra):  # keys 1 and 10 share an original
        image_id = f"{number:09d}.jpg"
        (hard / image_id).write_bytes(_jpeg(number))
        prompt = f"Remove the object on the left and recolour the rest (uge {key})"
        entries[key] = {"id": image_id, "prompt": prompt}
        cases.append(ImgEditCase(key, UGE_TYPE, prompt, image_id, subset=SUBSET_UGE))
    (hard / UGE_ROWS_FILE).write_text(json.dumps(entries, indent=1), encoding="utf-8")
    return cases


UGE_BAD_ROWS = (("9001", {"id": "/etc/hosts", "prompt": "bad row absolute_id"}, "absolute"),
                ("9002", {"id": "../outside.jpg", "prompt": "bad row dotdot_id"}, "'..'"),
                ("../9003", {"id": "000029784.jpg", "prompt": "bad row bad_key"}, "key"))


def synthetic_uge_script(template: str) -> str:
    """A stand-in for the official UGE_bench.py: the template as its module-level string `prompt`, among code
    that must never run (the plugin reads the string with `ast`)."""
    return ("import sys\n\n"
            "sys.exit('UGE_bench.py was executed: it must only be parsed')\n\n"
            f"prompt = {template!r}\n")


def make_imgedit_uge_dataset(root: Path, *, layout: str = "folder", hostile: bool = False,
                             script: bool = True) -> list[ImgEditCase]:
    """ImgEdit-Bench's UGE suite as this project assumes the download holds it: the originals and UGE_edit.json
    in `Benchmark/hard/` (6 rows, two sharing an original; `hostile` adds UGE_BAD_ROWS), and, with `script`,
    `Benchmark/UGE/UGE_bench.py` holding a SYNTHETIC template (see synthetic_uge_script). Layout "tar" writes
    Benchmark.tar instead (extraction takes only Benchmark/hard/, so the script must then be passed). Returns
    the good rows in the loader's order, then the bad ones."""
    if layout not in ("folder", "tar"):
        raise ValueError("layout must be folder or tar")
    root = Path(root)
    base = root / ".staging" if layout == "tar" else root
    hard = base / "Benchmark" / "hard"
    cases = _write_uge(hard, extra=(("20", 41017), ("21", 58321), ("300", 65904)))
    if hostile:
        entries = json.loads((hard / UGE_ROWS_FILE).read_text(encoding="utf-8"))
        for key, value, problem in UGE_BAD_ROWS:
            entries[key] = value
            cases.append(ImgEditCase(key, UGE_TYPE, value["prompt"], value["id"], subset=SUBSET_UGE, problem=problem))
        (hard / UGE_ROWS_FILE).write_text(json.dumps(entries, indent=1), encoding="utf-8")
    if script:
        (base / "Benchmark" / "UGE").mkdir(parents=True, exist_ok=True)
        (base / "Benchmark" / "UGE" / UGE_SCRIPT).write_text(synthetic_uge_script(synthetic_uge_template()),
                                                             encoding="utf-8")
    if layout == "tar":
        with tarfile.open(root / TAR_NAME, "w") as archive:
            archive.add(base / "Benchmark", arcname="Benchmark")
        shutil.rmtree(base)
    return cases


def write_imgedit_edits(folder: Path, rows: Iterable, *, size: tuple[int, int] = (20, 20),
                        skip: Iterable[str] = ()) -> Path:
    """`<key>.png` in one flat folder for each row (factory cases or loaded rows) without a problem, except
    the keys in `skip`; the red level encodes `edited_level(key)`. Returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    skip = set(skip)
    for row in rows:
        if getattr(row, "problem", None) or row.key in skip:
            continue
        (folder / f"{row.key}.png").write_bytes(_png((edited_red(row.key), 90, 160), size))
    return folder


def write_dataset(folder: Path, **options) -> WrittenDataset:
    """ImgEdit's writer for make_dataset and the demo: 2 rows per edit type under `folder/dataset`, their edits in
    `folder/my-model`. `options` go to make_imgedit_dataset."""
    rows = make_imgedit_dataset(folder / "dataset", **{"rows_per_type": 2, **options})
    return WrittenDataset(folder / "dataset", write_imgedit_edits(folder / "my-model", rows), rows)


def write_uge_dataset(folder: Path, **options) -> WrittenDataset:
    """ImgEdit UGE's writer: the UGE rows under `folder/dataset`, their edits in `folder/my-model`."""
    rows = make_imgedit_uge_dataset(folder / "dataset", **options)
    return WrittenDataset(folder / "dataset", write_imgedit_edits(folder / "my-model", rows), rows)


# The declarations benchmarks/imgedit.py and imgedit_uge.py name: one judge rule scores both.
WRITER = DatasetWriter(write_dataset, imgedit_rule_scores, imgedit_reply, ("score>=2.5", "error_rate<=0.02"))
UGE_WRITER = DatasetWriter(write_uge_dataset, imgedit_rule_scores, imgedit_reply, ("score>=2.5", "error_rate<=0.02"))
