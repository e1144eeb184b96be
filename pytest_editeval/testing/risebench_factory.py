"""Writes a small dataset shaped like RISEBench (the hub's ``datav2_total_w_subtask.json`` and
``data/<category>_images/``, optionally zipped as ``data.zip``) with the row flags that change the judge calls
(consistency_free set, absent and explicit null; reasoning_img; reference_img; reference_txt; reasoning_wo_ins),
rows broken on purpose, edited images for it, a stand-in for the official ``utils.py`` (templates with the
official names and placeholders but NOT the official texts, which are not redistributable), and a loopback judge
that answers each template with scores computable from the edited image.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pytest_editeval.benchmarks.risebench_official import CATEGORIES, RAW_TEMPLATES, SUBTASKS, TEMPLATE_SHA256
from pytest_editeval.testing.datasets import DatasetWriter, WrittenDataset

DATA_FILE = "datav2_total_w_subtask.json"
ABSENT = "<absent>"  # a flag whose key is not written at all
VARIANTS = {  # cycled over a category's rows: which flags each row carries
    "temporal_reasoning": ("plain", "consistency_free", "reasoning_img", "cf_null"),
    "causal_reasoning": ("plain", "reasoning_img", "consistency_free", "cf_null"),
    "spatial_reasoning": ("plain", "reference_img", "reasoning_img", "consistency_free", "reference_img"),
    "logical_reasoning": ("reference_txt", "reference_img", "reference_img"),
}
DEFECTS = {
    "dotdot_image": "image climbs out with '..'",
    "absolute_image": "image is an absolute path",
    "unsafe_index": "index is a path",
    "missing_image": "image names no file",
    "bad_category": "category is not one of the four",
    "logical_without_reference": "logical row with neither reference (the official scorer crashes)",
}


@dataclass(frozen=True)
class RiseFactoryRow:
    index: str
    category: str
    subtask: str | None
    variant: str
    instruction: str = ""
    defect: str | None = None
    written: dict = field(default_factory=dict, repr=False)

    @property
    def key(self) -> str:
        return self.index

    @property
    def consistency_free(self) -> bool:
        """Set as pandas sees it: present and not null."""
        return self.written.get("consistency_free") is not None

    @property
    def has_reference_img(self) -> bool:
        return self.written.get("reference_img") is not None


def _png(rgb: tuple[int, int, int], size: tuple[int, int] = (16, 16), fmt: str = "PNG") -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, rgb).save(buf, format=fmt)
    return buf.getvalue()


def _colour(*parts: object) -> tuple[int, int, int]:
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return 20 + digest[0] % 40, 200 + digest[1] % 40, 20 + digest[2] % 40  # green-ish: never an edited image


def make_risebench_dataset(root: Path, *, rows_per_subtask: int = 1, wo_ins_column: bool = False,
                           bad_rows: Iterable[str] = (), archive: bool = False, subtasks: bool = True) -> list[RiseFactoryRow]:
    """Rows for every subtask (its category's flag variants cycled), in category then subtask order, written to
    ``root/datav2_total_w_subtask.json`` with images under ``root/data/``. `wo_ins_column`: one logical row
    carries reasoning_wo_ins (bug B3 switches every logical image row). `archive`: the images go into
    ``root/data.zip`` instead (as on the hub). `subtasks=False` leaves the subtask key out (RISEBench-64).
    `bad_rows`: DEFECTS keys, each appended as one broken row."""
    root = Path(root)
    images = root / "data"
    files: dict[str, bytes] = {}
    entries: list[dict] = []
    rows: list[RiseFactoryRow] = []
    wo_ins_written = False
    for category in CATEGORIES:
        n = 0
        for subtask in SUBTASKS[category]:
            for _ in range(rows_per_subtask):
                n += 1
                variant = VARIANTS[category][(n - 1) % len(VARIANTS[category])]
                index = f"{category}_{n}"
                ext = "png" if n % 2 else "jpg"
                image = f"{category}_images/{n}.{ext}"
                files[image] = _png(_colour(index, "input"), fmt="PNG" if ext == "png" else "JPEG")
                entry: dict = {"index": index, "category": category, "instruction": f"Show {index} after a while",
                               "image": image}
                if subtasks:
                    entry["subtask"] = subtask
                if category != "logical_reasoning":
                    entry["reference"] = f"the expected look of {index}"
                if variant == "consistency_free":
                    entry["consistency_free"] = "True"
                elif variant == "cf_null":
                    entry["consistency_free"] = None
                elif variant == "reasoning_img":
                    entry["reasoning_img"] = "True"
                elif variant == "reference_img":
                    entry["reference_img"] = f"{category}_images/{n}_ref.png"
                    files[entry["reference_img"]] = _png(_colour(index, "answer"))
                elif variant == "reference_txt":
                    entry["reference_txt"] = f"the answer of {index} is 7"
                if wo_ins_column and category == "logical_reasoning" and variant == "reference_img" and not wo_ins_written:
                    entry["reasoning_wo_ins"] = "True"
                    wo_ins_written = True
                entries.append(entry)
                rows.append(RiseFactoryRow(index, category, subtask if subtasks else None, variant,
                                           entry["instruction"], None, entry))
    for number, defect in enumerate(bad_rows, start=1):
        entry, category = _bad_entry(defect, number, files)
        entries.append(entry)
        rows.append(RiseFactoryRow(str(entry.get("index")), category, None, "bad", "", defect, entry))
    root.mkdir(parents=True, exist_ok=True)
    (root / DATA_FILE).write_text(json.dumps(entries, indent=1), encoding="utf-8")
    if archive:
        with zipfile.ZipFile(root / "data.zip", "w") as zf:
            for name, data in files.items():
                zf.writestr(f"data/{name}", data)
    else:
        for name, data in files.items():
            (images / name).parent.mkdir(parents=True, exist_ok=True)
            (images / name).write_bytes(data)
    return rows


def _bad_entry(defect: str, number: int, files: dict[str, bytes]) -> tuple[dict, str]:
    category = "temporal_reasoning"
    index = f"{category}_bad{number}"
    entry = {"index": index, "category": category, "subtask": SUBTASKS[category][0], "instruction": "x",
             "image": f"{category}_images/bad{number}.png", "reference": "y"}
    files[entry["image"]] = _png((1, 2, 3))
    if defect == "dotdot_image":
        entry["image"] = "../../outside.png"
    elif defect == "absolute_image":
        entry["image"] = "/etc/passwd"
    elif defect == "unsafe_index":
        entry["index"] = "../../../../tmp/contract-escape"
    elif defect == "missing_image":
        entry["image"] = f"{category}_images/nothing{number}.png"
    elif defect == "bad_category":
        entry["category"] = "cosmic_reasoning"
    elif defect == "logical_without_reference":
        category = entry["category"] = "logical_reasoning"
    else:
        raise ValueError(f"unknown defect {defect!r}: one of {', '.join(DEFECTS)}")
    return entry, category


# --- Edited images ---------------------------------------------------------------------------------------------

def edited_level(row) -> int:
    """0..8: which answers the loopback judge gives for this row's edit (see `LEVELS`)."""
    return int(hashlib.sha256(str(row.index).encode()).hexdigest()[:4], 16) % 9


def edited_red(level: int) -> int:
    return 25 * level + 12


def write_risebench_edits(folder: Path, rows: Iterable, ext: str = "png", *, skip: Iterable[str] = (),
                          levels: dict[str, int] | None = None, size: tuple[int, int] = (16, 16)) -> Path:
    """Edited images as the official script reads them, ``<folder>/<category>/<index>.<ext>``, for every good
    row not in `skip`; each painted red = 25 * level + 12, green 90, blue 160 (`levels` overrides a row's)."""
    from PIL import Image

    folder = Path(folder)
    skip = set(skip)
    for row in rows:
        if getattr(row, "defect", None) or row.index in skip:
            continue
        level = (levels or {}).get(row.index, edited_level(row))
        target = folder / row.category / f"{row.index}.{ext}"
        target.parent.mkdir(parents=True, exist_ok=True)
        image = Image.new("RGB", size, (edited_red(level), 90, 160))
        # one pixel of the row's own: no two rows' edits are the same bytes (identical requests are asked once)
        digest = hashlib.sha256(str(row.index).encode()).digest()
        image.putpixel((size[0] - 1, size[1] - 1), (digest[0], digest[1], digest[2]))
        buf = io.BytesIO()
        image.save(buf, format="JPEG" if ext != "png" else "PNG")
        target.write_bytes(buf.getvalue())
    return folder


# --- Stand-in templates ----------------------------------------------------------------------------------------

STAND_IN_MARK = "RISE stand-in template "
PLACEHOLDERS = {name: ("instruct", "reference") for name in TEMPLATE_SHA256}
PLACEHOLDERS.update({name: () for name in RAW_TEMPLATES})
PLACEHOLDERS.update({"prompt_consist": ("instruct",), "prompt_spatial_ref_img": ("instruct",),
                     "prompt_spatial_cons": ("instruct",), "prompt_logical_cons": ("instruct",),
                     "prompt_logical_txt": ("reference",), "prompt_logical_img": ("instruct",)})


def stand_in_template(name: str) -> str:
    """A template with the official name and placeholders, not the official text."""
    fields = "".join(f"\n{p}: {{{p}}}" for p in PLACEHOLDERS[name])
    return f"{STAND_IN_MARK}{name}{fields}\nEnd with **Final Score:** **X**.\n"


def write_stand_in_utils(path: Path, *, extra: str = "") -> Path:
    """A utils.py holding the 14 stand-in templates as module-level strings (and `extra` source, e.g. code that
    must never run). Returns the path."""
    lines = ['"""Stand-in for RISEBench\'s utils.py: same names and placeholders, not the official texts."""', "",
             "import os", ""]
    lines += [f"{name} = {stand_in_template(name)!r}" for name in TEMPLATE_SHA256]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    return path


# --- A loopback judge ------------------------------------------------------------------------------------------

# (ApprConsistency, Reasoning, VisualPlausibility) a 1-5 template is answered with, per level of the edit.
LEVELS: dict[int, tuple[int, int, int]] = {0: (5, 5, 5), 1: (5, 1, 4), 2: (3, 4, 5), 3: (4, 5, 5), 4: (5, 5, 4),
                                           5: (1, 2, 3), 6: (2, 3, 1), 7: (0, 5, 5), 8: (4, 5, 5)}
# (consistency, reasoning) a binary (logical) template is answered with; 3 is a 1-5 style answer (bug B7).
BINARY: dict[int, tuple[int, int]] = {0: (1, 1), 1: (1, 0), 2: (0, 0), 3: (0, 1), 4: (3, 1), 5: (1, 1),
                                      6: (0, 0), 7: (1, 0), 8: (1, 1)}
B6_LEVEL = 8  # the reasoning reply ends with a numbered note: its capture reads two numbers (bug B6)
KIND = {"prompt_consist": 0, "prompt_spatial_cons": 0, "prompt_reasoning": 1, "prompt_reasoning_w_input": 1,
        "prompt_spatial_ref": 1, "prompt_spatial_ref_img": 1, "prompt_spatial_ref_w_input": 1,
        "prompt_generation": 2, "prompt_spatial_qual": 2, "prompt_logical_cons_ans": 0, "prompt_logical_cons": 0,
        "prompt_logical_txt": 1, "prompt_logical_img": 1, "prompt_logical_img_wo_q": 1}
LOGICAL_TEMPLATES = frozenset(n for n in TEMPLATE_SHA256 if n.startswith("prompt_logical"))


def template_of(call) -> str | None:
    prompt = call.prompt
    if STAND_IN_MARK not in prompt:
        return None
    return prompt.split(STAND_IN_MARK, 1)[1].split("\n", 1)[0]


def level_of(red: float) -> int:
    return max(0, min(8, round((red - 12) / 25)))


def answer_for(template: str, level: int) -> list[int]:
    """The numbers the loopback judge's reply to `template` carries for an edit of `level`."""
    kind = KIND[template]
    value = BINARY[level][kind] if template in LOGICAL_TEMPLATES else LEVELS[level][kind]
    if kind == 1 and level == B6_LEVEL:
        return [value, 1]
    return [value]


def risebench_reply(scores, call) -> str:
    """JudgeServer `reply=`: the template named in the stand-in prompt and the last image's red level (the
    edited image comes last in every RISEBench call) give the answer, in the official closing-line format."""
    from pytest_editeval.testing.judge_server import mean_rgb

    template = template_of(call)
    if template is None or not call.images:
        return "I cannot tell what to judge."
    numbers = answer_for(template, level_of(mean_rgb(call.images[-1])[0]))
    note = f"\n\n{numbers[1]}. a numbered note" if len(numbers) > 1 else ""
    return f"The edit was judged by rule.\n**Final Score:** **{numbers[0]}**{note}"


# --- The declaration benchmarks/risebench.py names ----------------------------------------------------------------

def write_dataset(folder: Path, **options) -> WrittenDataset:
    """RISEBench's writer for make_dataset: one row per subtask under `folder/dataset` with a stand-in utils.py
    beside it (found there as --editeval-judge-prompts would be), their edits in `folder/my-model`. `options` go to
    make_risebench_dataset."""
    rows = make_risebench_dataset(folder / "dataset", **options)
    write_stand_in_utils(folder / "dataset" / "utils.py")
    return WrittenDataset(folder / "dataset", write_risebench_edits(folder / "my-model", rows), rows)


# Its judge templates are stand-ins (the official texts are not redistributable): the run says so in one warning
# line, and risebench_reply answers them by rule. The demo's gate passes on the data written here (accuracy 25.0).
WRITER = DatasetWriter(write_dataset, lambda call: [], risebench_reply, ("accuracy>=20", "error_rate<=0.02"))
