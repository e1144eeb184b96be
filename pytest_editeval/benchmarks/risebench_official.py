"""RISEBench as officially scored (PhoenixZ810/RISEBench ``gpt_eval.py`` + ``utils.py``, current code), as pure
functions and data: the rows, the judge calls per category and row flag, the reply reader, the per-row rules and
the Accuracy indicator.

- Data: one JSON list of row objects (``datav2_total_w_subtask.json``; RISEBench-64's ``data_total.json`` also
  reads) with image paths relative to the folder holding ``<category>_images/``. Rows are untrusted: a bad one
  comes back with ``problem`` set and becomes one error row; it never raises.
- Templates: the 14 module-level ``prompt_*`` strings of the user's copy of the official ``utils.py``, read with
  ``ast`` and never executed, each checked against its SHA-256. The texts are not shipped (no licence upstream).
- Upstream bugs (B1..B11) are reproduced where they change numbers that are published, and each deviation made
  here is named where it is made: B6 (a reply count the official script crashes on), B8 (a missing output image)
  and B10 (image modes JPEG cannot hold).

Flags follow pandas: a row field is *set* when the key is present and its value is not null/NaN. Pillow is never
imported here (images.py prepares the images).
"""

from __future__ import annotations

import ast
import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pytest_editeval.data.jsonfile import read_capped, read_text
from pytest_editeval.data.paths import first_file_inside, unsafe_name_reason
from pytest_editeval.errors import InputError
from pytest_editeval.judges.replies import UnreadableReply
from pytest_editeval.judges.requests import EDITED, ImageRef, Question, input_image, reference_image

# --- The benchmark's shape -------------------------------------------------------------------------------------

CATEGORIES: tuple[str, ...] = ("temporal_reasoning", "causal_reasoning", "spatial_reasoning", "logical_reasoning")
CATEGORY_LABELS: dict[str, str] = {"temporal_reasoning": "Temporal", "causal_reasoning": "Causal",
                                   "spatial_reasoning": "Spatial", "logical_reasoning": "Logical"}
LOGICAL = "logical_reasoning"
SPATIAL = "spatial_reasoning"
# The official per-subtask lines, in its order; only these names get one.
SUBTASKS: dict[str, tuple[str, ...]] = {
    "temporal_reasoning": ("Life Progression", "Material Progression", "Environmental Cycles",
                           "Societal Transformation"),
    "causal_reasoning": ("Structural Deformation", "State Transition", "Chemical and Biological Transformation",
                         "Physics Manifestation"),
    "spatial_reasoning": ("Component Assembly", "Object Arrangement", "Viewpoint Generation", "Structural Inference",
                          "Layout Reasoning"),
    "logical_reasoning": ("Pattern Prediction", "Mathematical Derivation", "Puzzle Solving"),
}
ROW_COUNTS: dict[str, int] = {"temporal_reasoning": 85, "causal_reasoning": 90, "spatial_reasoning": 100,
                              "logical_reasoning": 85}

# --- Templates -------------------------------------------------------------------------------------------------

UTILS_FILE = "utils.py"
UTILS_SHA256 = "c8a693294768b7ceb355d98d3bc71f40c4fe51979a2e84ffc07f829764b676a3"
TEMPLATE_SHA256: dict[str, str] = {
    "prompt_consist": "84b272d821670cd2466866e27d80bed659dc677964a62a2c1459ad673c4eaf70",
    "prompt_reasoning": "2a1a3394442065a25958b03047158bf670dbb0c771c5d9a7d299cdc02eb0c25b",
    "prompt_reasoning_w_input": "b781425c015b41a646eae87dea188b871f89a4749a8911281e1e3ac52f050cd0",
    "prompt_generation": "2d607960deffa2e1b5178bfbf9f06c865654ddbe35b249caa9e59c616ff6c916",
    "prompt_spatial_ref": "df84b77e28183eddb0e822170970bec0a85302844ffae3c4a0effde7ada5279b",
    "prompt_spatial_ref_img": "4e043b8e696d40a4be73538134b4182dc5a87a354e5878983c943a536e22e25d",
    "prompt_spatial_ref_w_input": "444d3a201c30fb2fe2a88e48aca355c4f075f655c2edc4ae50a6e1fb263c668d",
    "prompt_spatial_qual": "3bead46a4b0bcf295700caec5c116809dd72d4a03a750f7bb9da3e2563123c80",
    "prompt_spatial_cons": "b20ca629d36da9cf2fa591ef3c1dd5909177b4d245172479345d6fa137c4c55e",
    "prompt_logical_cons_ans": "28a6dd5a2e714acf681455acbf8dc01491559ecdcc54523e50a382d1c4689aaf",
    "prompt_logical_cons": "49b6870dfb1b4cb64e303d27845794e403d48ef877b85178fea9c48a425475c1",
    "prompt_logical_txt": "6719763c72ab8ef9e015ed4efe3ef96c4cd01c0c2cda8457cad1a91ac69eb956",
    "prompt_logical_img": "ce89313d6047592decded49f4324000ced3c91f87153ca458dc1f55634e08cd6",
    "prompt_logical_img_wo_q": "8cd49d5335cd303c810affa011b21dcd1416fcbb76df00f175ee3af949dcaa8d",
}
# Sent exactly as stored (never formatted); the others go through str.format with these names.
RAW_TEMPLATES = frozenset({"prompt_generation", "prompt_spatial_qual", "prompt_logical_img_wo_q"})
MAX_UTILS_BYTES = 4 * 1024 * 1024  # the official file is about 30 KB
SCORER_URL = "https://github.com/PhoenixZ810/RISEBench"


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def find_templates(given: Path | None, beside: Iterable[Path]) -> Path:
    """The official scorer's utils.py: `given` (--editeval-judge-prompts), else one beside the data."""
    if given is not None:
        if not Path(given).is_file():
            raise InputError(f"RISEBench judge templates {given} do not exist: pass the official scorer's {UTILS_FILE} "
                             f"({SCORER_URL})")
        return Path(given)
    for folder in beside:
        if (Path(folder) / UTILS_FILE).is_file():
            return Path(folder) / UTILS_FILE
    raise InputError(f"no RISEBench judge templates: they are the prompt_* strings of {UTILS_FILE} in the official "
                     f"scorer ({SCORER_URL}), not shipped here (it states no licence); download it and pass "
                     f"--editeval-judge-prompts=PATH/TO/{UTILS_FILE}")


def load_templates(path: Path) -> tuple[dict[str, str], list[str]]:
    """(the 14 templates by name, the names whose text differs from the official one). The file is untrusted:
    parsed with `ast`, never executed; each module-level `prompt_* = "..."` is read with literal_eval (the last
    assignment wins, as running it would leave it)."""
    source = read_text(Path(path), "RISEBench judge templates file", MAX_UTILS_BYTES)
    try:
        tree = ast.parse(source, filename=str(path))
    except (SyntaxError, ValueError) as exc:
        raise InputError(f"RISEBench judge templates file {path} is not valid Python ({type(exc).__name__}): pass the "
                         f"official scorer's {UTILS_FILE}") from None
    found: dict[str, object] = {}
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) \
            else []
        for target in targets:
            if isinstance(target, ast.Name) and target.id in TEMPLATE_SHA256 and node.value is not None:
                try:
                    found[target.id] = ast.literal_eval(node.value)
                except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                    found[target.id] = None
    missing = [name for name in TEMPLATE_SHA256 if name not in found]
    if missing:
        raise InputError(f"{path} lacks the RISEBench judge template(s) {', '.join(missing)}: pass the official "
                         f"scorer's {UTILS_FILE} ({SCORER_URL})")
    not_text = [name for name in TEMPLATE_SHA256 if not isinstance(found[name], str)]
    if not_text:
        raise InputError(f"{path}: {', '.join(not_text)} is not a plain string literal, so it cannot be read without "
                         f"running the file: pass the official scorer's {UTILS_FILE}")
    templates = {name: str(found[name]) for name in TEMPLATE_SHA256}
    for name, text in templates.items():
        if name in RAW_TEMPLATES:
            continue
        try:
            text.format(instruct="", reference="")
        except (KeyError, IndexError, ValueError) as exc:
            raise InputError(f"{path}: template {name} cannot be filled with instruct and reference "
                             f"({type(exc).__name__}: {exc}): pass the official scorer's {UTILS_FILE}") from None
    return templates, [n for n, t in templates.items() if sha256_text(t) != TEMPLATE_SHA256[n]]


# --- Rows ------------------------------------------------------------------------------------------------------

DATA_FILES = ("datav2_total_w_subtask.json", "data_total.json")  # the 360-row file, then RISEBench-64's
IMAGE_ARCHIVE = "data.zip"
MAX_DATA_BYTES = 64 * 1024 * 1024
MAX_PATH_BYTES = 400
NAN = float("nan")
_ABSENT = object()


@dataclass(frozen=True)
class RiseRow:
    """One row as the official scorer reads it. Paths are POSIX strings relative to the image root.

    `reference` is the value `{reference}` is filled with (NaN when the key is absent, printed "nan" as
    officially); the flags are already resolved as the official code tests them."""

    index: str
    category: str
    subtask: str | None
    instruction: str
    image: str
    reference: object = NAN
    reference_img: str | None = None  # read on spatial and logical rows only
    reference_txt: object = None  # logical rows judged against a text answer (None: not set)
    reasoning_img: bool = False  # the reasoning judge also sees the input image
    consistency_free: bool = False  # no appearance-consistency call; the current completion rule skips it
    b1_weights: bool = False  # Score-Origin uses 0.2*VP + 0.8*R (bug B1, decided per row as pandas does)
    wo_ins: bool = False  # the data file has a reasoning_wo_ins column (bug B3: every logical image row)
    problem: str | None = None

    @property
    def logical(self) -> bool:
        return self.category == LOGICAL


def _is_set(entry: Mapping, key: str) -> bool:
    """pandas' `not pd.isna(item[key])`: present, not null, not NaN (an empty string counts as set)."""
    value = entry.get(key, _ABSENT)
    return value is not _ABSENT and value is not None and not (isinstance(value, float) and math.isnan(value))


def _null_kept(values: Iterable[object]) -> bool:
    """Whether pandas (2.x, as the official runs) keeps an explicit null of this column as None: only in an object
    column, one holding a value that is not a plain number. A column of numbers or nulls only is float, and its
    nulls are NaN."""
    return any(v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))) for v in values)


def _b1_weights(entry: Mapping, has_column: bool, null_kept: bool) -> bool:
    """`'consistency_free' in row and row['consistency_free']`: the column exists in the data and the row's value
    is truthy, where an absent key is NaN (truthy) and an explicit null is None (falsy) where the column keeps it
    (`_null_kept`), else NaN (truthy). Logical rows have their own weights."""
    if not has_column or entry.get("category") == LOGICAL:
        return False
    value = entry.get("consistency_free", NAN)
    return bool(NAN if value is None and not null_kept else value)


def find_data(path: Path, extract_to: Path | None = None) -> tuple[Path, Path]:
    """(the row file, the image root) for a local copy: the JSON itself, or a folder holding it (or data/ holding
    it). The image root is the first folder holding `<category>_images/` among the JSON's folder, its data/, the
    given folder's data/ and the folder; a `data.zip` beside the JSON is unpacked (once) when none holds them."""
    path = Path(path).expanduser()
    if path.is_file():
        data_file, folder = path, path.parent
    elif path.is_dir():
        data_file = next((c for name in DATA_FILES for c in (path / name, path / "data" / name) if c.is_file()), None)
        if data_file is None:
            raise InputError(f"{path} holds no RISEBench data file: expected {DATA_FILES[0]} (the hub download) or "
                             f"data/{DATA_FILES[1]} (the GitHub repository), or pass the JSON file itself")
        folder = path
    else:
        raise InputError(f"RISEBench data {path} does not exist: pass the hub download's folder or its "
                         f"{DATA_FILES[0]}")
    candidates = [data_file.parent, data_file.parent / "data", folder / "data", folder]
    for candidate in candidates:
        if _holds_images(candidate):
            return data_file, candidate
    archive = next((c / IMAGE_ARCHIVE for c in (data_file.parent, folder) if (c / IMAGE_ARCHIVE).is_file()), None)
    if archive is not None:
        target = (extract_to if extract_to is not None else archive.parent) / "risebench-images"
        unpacked = extract_images(archive, target)
        for candidate in (unpacked / "data", unpacked):
            if _holds_images(candidate):
                return data_file, candidate
    raise InputError(f"no RISEBench images next to {data_file}: expected data/<category>_images/ (e.g. "
                     f"data/temporal_reasoning_images/), or the hub's {IMAGE_ARCHIVE} beside it")


def _holds_images(folder: Path) -> bool:
    return any((folder / f"{c}_images").is_dir() for c in CATEGORIES)


def load_rows(data_file: Path, image_root: Path) -> tuple[list[RiseRow], list[str]]:
    """Every row in file order, and warnings. A file that is not a JSON list of objects is an InputError; a bad
    row is a row with `problem` set."""
    raw = read_capped(data_file, "RISEBench data file", MAX_DATA_BYTES)
    try:
        entries = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InputError(f"RISEBench data file {data_file} is not JSON ({type(exc).__name__}): pass the hub's "
                         f"{DATA_FILES[0]}") from None
    if not isinstance(entries, list):
        raise InputError(f"RISEBench data file {data_file} is a JSON {type(entries).__name__}, not a list of rows")
    objects = [e for e in entries if isinstance(e, dict)]
    # Column-level facts (pandas builds one table): B1 and B3 depend on whether ANY row has the key.
    has_cf_column = any("consistency_free" in e for e in objects)
    cf_null_kept = _null_kept(e["consistency_free"] for e in objects if "consistency_free" in e)
    wo_ins = any("reasoning_wo_ins" in e for e in objects)
    rows, seen = [], set()
    for position, entry in enumerate(entries):
        row = _row(position, entry, image_root, has_cf_column, cf_null_kept, wo_ins)
        if row.problem is None and row.index in seen:
            row = _bad(f"{row.index}~{position + 1}", f"index {row.index!r} appears twice in {data_file.name}",
                       row.category)
        seen.add(row.index)
        rows.append(row)
    warnings = []
    unknown = sorted({r.subtask for r in rows if r.problem is None and r.subtask is not None
                      and r.subtask not in SUBTASKS[r.category]})
    if unknown:
        warnings.append(f"RISEBench: subtask(s) {', '.join(map(repr, unknown[:5]))} are not among the 16 official "
                        "ones: their rows count in their category only, as the official scorer prints no line for them")
    no_reference = sum(1 for r in rows if r.problem is None and not r.logical and isinstance(r.reference, float))
    if no_reference:
        warnings.append(f"RISEBench: {no_reference} row(s) have no 'reference': the judge is sent the text 'nan' in "
                        "its place, as the official scorer does")
    return rows, warnings


def _bad(index: str, problem: str, category: str = "") -> RiseRow:
    return RiseRow(index=index, category=category, subtask=None, instruction="", image="", problem=problem)


def row_index_text(entry: object, position: int) -> str:
    index = entry.get("index") if isinstance(entry, dict) else None
    return index if isinstance(index, str) and unsafe_name_reason(index) is None else f"row-{position + 1}"


def _row(position: int, entry: object, image_root: Path, has_cf_column: bool, cf_null_kept: bool,
         wo_ins: bool) -> RiseRow:
    name = row_index_text(entry, position)
    if not isinstance(entry, dict):
        return _bad(name, f"row {position + 1} is a JSON {type(entry).__name__}, not an object")
    index = entry.get("index")
    reason = unsafe_name_reason(index)
    if reason:  # it names the output file <category>/<index>.png
        return _bad(name, f"index {_shown(index)} {reason}")
    category = entry.get("category")
    if category not in CATEGORIES:
        return _bad(name, f"category {_shown(category)} is not one of {', '.join(CATEGORIES)}")
    instruction = entry.get("instruction")
    if not isinstance(instruction, str):
        return _bad(name, "instruction is missing or not text", category)
    subtask = entry.get("subtask")
    subtask = subtask if isinstance(subtask, str) else None
    image, reason = _relative_file(entry.get("image"), "image", image_root)
    if reason:
        return _bad(name, reason, category)
    reference_img = None
    if category in (SPATIAL, LOGICAL) and _is_set(entry, "reference_img"):
        reference_img, reason = _relative_file(entry.get("reference_img"), "reference_img", image_root)
        if reason:
            return _bad(name, reason, category)
    reference_txt = entry.get("reference_txt") if _is_set(entry, "reference_txt") else None
    consistency_free = _is_set(entry, "consistency_free")
    if category == LOGICAL and reference_txt is None and reference_img is None:
        return _bad(name, "logical row without reference_txt or reference_img (the official scorer crashes on it)",
                    category)
    if category == LOGICAL and consistency_free:
        return _bad(name, "logical row with consistency_free set (the official scorer crashes on it)", category)
    reference = entry.get("reference", NAN)
    return RiseRow(index=index, category=category, subtask=subtask, instruction=instruction, image=image,
                   reference=reference, reference_img=reference_img, reference_txt=reference_txt,
                   reasoning_img=_is_set(entry, "reasoning_img"), consistency_free=consistency_free,
                   b1_weights=_b1_weights(entry, has_cf_column, cf_null_kept), wo_ins=wo_ins)


def _shown(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def _relative_file(value: object, field_name: str, root: Path) -> tuple[str, str | None]:
    """A path relative to the image root that names an existing file inside it, or why not."""
    if not isinstance(value, str) or not value:
        return "", f"{field_name} is missing or not text"
    bad = (len(value.encode("utf-8", "replace")) > MAX_PATH_BYTES or "\\" in value or value.startswith("/")
           or any(ord(ch) < 32 or ord(ch) == 127 for ch in value)
           or any(part in ("", ".", "..") for part in value.split("/")))
    if bad:
        return "", f"{field_name} {_shown(value)} is not a plain relative path inside the data folder"
    path = root / value
    if not path.is_file():
        return "", f"{field_name} {_shown(value)}: no such file in {root}"
    if not path.resolve().is_relative_to(root.resolve()):
        return "", f"{field_name} {_shown(value)} leads outside {root}"
    return value, None


# --- Questions -------------------------------------------------------------------------------------------------

# The official image preparation: RGB for RGBA/P only, thumbnail((768, 768)), JPEG at Pillow's defaults, sent as
# image/jpeg with detail "high" (images.RISE_JPEG768; modes JPEG cannot hold are made RGB first: the B10 fix).
IMAGE_RECIPE = "rise-thumb768-jpeg75"
SENT_MIME = "image/jpeg"
ANSWER = "answer"  # the reference answer image (reference_img), judge-only
# judge1, judge2, judge3 of the official cache, by what they measure.
CONSISTENCY, REASONING, PLAUSIBILITY = "consistency", "reasoning", "plausibility"


def _image(name: str) -> ImageRef:
    return ImageRef(name, recipe=IMAGE_RECIPE, mime=SENT_MIME, detail="high")


def template_plan(row: RiseRow) -> list[tuple[str, str, tuple[str, ...]]]:
    """(question, template name, images in order) of each judge call, as the official code chooses them."""
    source, answer, edited = input_image(0), reference_image(ANSWER), EDITED
    if row.category == LOGICAL:
        if row.reference_txt is not None:  # checked first
            return [(CONSISTENCY, "prompt_logical_cons_ans", (source, edited)),
                    (REASONING, "prompt_logical_txt", (edited,))]
        # B3: the column's presence anywhere in the data, not the row's value, picks the no-question template.
        reasoning = "prompt_logical_img_wo_q" if row.wo_ins else "prompt_logical_img"
        return [(CONSISTENCY, "prompt_logical_cons", (answer, edited)), (REASONING, reasoning, (answer, edited))]
    plan = []
    if row.category == SPATIAL:
        if not row.consistency_free:
            # B4: with a reference answer image, that image takes the "original image" slot.
            plan.append((CONSISTENCY, "prompt_spatial_cons", (answer if row.reference_img else source, edited)))
        if row.reference_img:  # checked before reasoning_img
            plan.append((REASONING, "prompt_spatial_ref_img", (answer, edited)))
        elif row.reasoning_img:
            plan.append((REASONING, "prompt_spatial_ref_w_input", (source, edited)))
        else:
            plan.append((REASONING, "prompt_spatial_ref", (edited,)))
        plan.append((PLAUSIBILITY, "prompt_spatial_qual", (edited,)))
        return plan
    if not row.consistency_free:
        plan.append((CONSISTENCY, "prompt_consist", (source, edited)))
    if row.reasoning_img:
        plan.append((REASONING, "prompt_reasoning_w_input", (source, edited)))
    else:
        plan.append((REASONING, "prompt_reasoning", (edited,)))
    plan.append((PLAUSIBILITY, "prompt_generation", (edited,)))
    return plan


def questions(row: RiseRow, templates: Mapping[str, str]) -> list[Question]:
    """The row's judge calls in the official order (judge1, judge2, judge3): the prompt text first, then its
    images. Formatted templates get instruct and reference (reference_txt on logical rows); raw ones go as stored."""
    if row.problem:
        raise ValueError(f"row {row.index} cannot be judged: {row.problem}")
    reference = row.reference_txt if row.logical else row.reference
    out = []
    for name, template_name, images in template_plan(row):
        template = templates[template_name]
        text = template if template_name in RAW_TEMPLATES else template.format(instruct=row.instruction,
                                                                                reference=reference)
        out.append(Question(name, (text, *(_image(i) for i in images))))
    return out


# --- Reply parsing ---------------------------------------------------------------------------------------------

_FINAL_SCORE = re.compile(r"\*?\*?Final Score\*?\*?:?\s*([\d*\s,\n]*)", re.IGNORECASE)
_FINAL_SCORES = re.compile(r"\*?\*?Final Scores\*?\*?:?\s*([\d*\s,\n]*)", re.IGNORECASE)
_DIGITS = re.compile(r"\d+")


def extract(answer: str) -> list[int] | None:
    """gpt_eval.py's extract(), exactly: every number of the first "Final Score" capture that holds a digit;
    else the same for "Final Scores" ([] when it matched without digits); None when neither matched."""
    for match in _FINAL_SCORE.findall(answer):
        digits = _DIGITS.findall(match)
        if digits:
            return [int(d) for d in digits]
    matches = _FINAL_SCORES.findall(answer)
    if not matches:
        return None
    for match in matches:
        digits = _DIGITS.findall(match)
        if digits:
            return [int(d) for d in digits]
    return []


def parse(text: str | None) -> list[int]:
    """The numbers a reply gives; UnreadableReply (re-asked, then the row fails as officially) when the official
    reader returns None or an empty list, or a number too long to be one (Python refuses to convert it)."""
    if text is None or not text.strip():
        raise UnreadableReply("empty reply")
    try:
        numbers = extract(text)
    except ValueError:  # a digit run over Python's int() limit
        raise UnreadableReply(f"a number too long to read in reply: {_excerpt(text)}") from None
    if not numbers:
        raise UnreadableReply(f"no 'Final Score' with a number in reply: {_excerpt(text)}")
    return numbers


def _excerpt(text: str, limit: int = 120) -> str:
    flat = " ".join(text[:4 * limit].split())
    return repr(flat if len(flat) <= limit else flat[: limit - 3] + "...")


# --- Per-row scores --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowScores:
    """One judged row: the three dimensions (None = NaN), Score-Origin, the Accuracy indicator by the current rule
    and by the rule before 2026-04-13 (B2), and whether the official script would have crashed (B6)."""

    consistency: float | None
    reasoning: float | None
    plausibility: float | None
    score: float | None
    complete: bool
    complete_legacy: bool
    official_would_crash: bool = False


def _logical_map(x: float) -> float:
    """B7: 4*min(x, 1) + 1 (0 -> 1, anything >= 1 -> 5)."""
    return 4 * min(x, 1) + 1


def dimensions(row: RiseRow, replies: Mapping[str, list]) -> tuple[float | None, float | None, float | None, bool]:
    """(ApprConsistency, Reasoning, VisualPlausibility, official_would_crash) from each reply's number list, by
    the official length rule over the concatenated lists: 3 numbers read raw, 2 through the logical mapping.
    Another length crashes the official script (B6): each reply's first number is used instead, flagged."""
    first: list = [None] if CONSISTENCY not in replies else list(replies[CONSISTENCY])
    rest = list(replies[REASONING]) + (list(replies[PLAUSIBILITY]) if PLAUSIBILITY in replies else [])
    numbers = first + rest
    crash = len(numbers) not in (2, 3)
    if crash:
        numbers = [None if CONSISTENCY not in replies else replies[CONSISTENCY][0], replies[REASONING][0]]
        if PLAUSIBILITY in replies:
            numbers.append(replies[PLAUSIBILITY][0])
    if len(numbers) == 3:
        ac, r, vp = numbers
        return ac, r, vp, crash
    ac, r = numbers
    return _logical_map(ac), _logical_map(r), None, crash


def _nan(value: float | None) -> float:
    return NAN if value is None else float(value)


def score_origin(row: RiseRow, ac: float | None, r: float | None, vp: float | None) -> float | None:
    """calculate_score(): the weighted score, halved (never below 1) when Reasoning is 1. B1: the weights are
    0.2*VP + 0.8*R wherever `row.b1_weights`; NaN propagates, also through the halving (`1 if score < 1`)."""
    a, rr, v = _nan(ac), _nan(r), _nan(vp)
    if row.logical:
        score = 0.3 * a + 0.7 * rr
    elif row.b1_weights:
        score = 0.2 * v + 0.8 * rr
    else:
        score = 0.3 * a + 0.5 * rr + 0.2 * v
    if rr == 1:
        score = score * 0.5
        score = 1 if score < 1 else score  # as upstream: NaN < 1 is false, so NaN stays NaN (max() would give 1)
    return None if math.isnan(score) else float(score)


def completion(row: RiseRow, ac: float | None, r: float | None, vp: float | None, *, legacy: bool) -> bool:
    """The Accuracy indicator. Current rule (2026-04-13): consistency-free rows need R == 5 and VP == 5. Legacy
    rule (the paper and older leaderboard rows): every non-logical row needs AC == 5 too, so a consistency-free row
    is never complete (B2)."""
    if row.logical:
        return ac == 5 and r == 5
    if row.consistency_free and not legacy:
        return r == 5 and vp == 5
    return ac == 5 and r == 5 and vp == 5


def score_row(row: RiseRow, replies: Mapping[str, list]) -> RowScores:
    """A judged row's scores from its replies' number lists (each non-empty: parse() guarantees it)."""
    ac, r, vp, crash = dimensions(row, replies)
    return RowScores(ac, r, vp, score_origin(row, ac, r, vp), completion(row, ac, r, vp, legacy=False),
                     completion(row, ac, r, vp, legacy=True), crash)


def missing_image_scores(row: RiseRow) -> RowScores:
    """B8, labelled: the official script aborts on a missing output image; the authors' released sheets hold
    "Auto fail (missing image). Final Score: 1" for each reply. Every dimension the row is judged on is 1 (on
    logical rows 1 itself, not the B7 mapping of 1, which would be 5); never complete."""
    asked = {name for name, _, _ in template_plan(row)}
    ac = 1.0 if CONSISTENCY in asked else None
    vp = 1.0 if PLAUSIBILITY in asked else None
    return RowScores(ac, 1.0, vp, score_origin(row, ac, 1.0, vp), False, False)


def percent(x: float | None) -> float | None:
    """trans_to_percent: Score-Percentage = 25 * (x - 1), unclipped (B11)."""
    return None if x is None else 25.0 * (x - 1)


# --- Edited images (image mode) --------------------------------------------------------------------------------

EDITED_EXTENSIONS = ("png", "jpg", "jpeg")  # find_image's order, lower case only


def edited_images_in_folder(folder: Path, rows: Iterable[RiseRow]) -> dict[str, Path]:
    """{index: path} of `<folder>/<category>/<index>.<ext>` (png, jpg, jpeg: the first that exists), where
    `folder` may also hold them under images/ (the official script's own output folder). A file that leads out
    of `folder` by a link is refused (InputError)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise InputError(f"edited-images folder {folder} does not exist: expected <category>/<index>.png (or .jpg, "
                         ".jpeg) under it")
    root = folder / "images" if not any((folder / c).is_dir() for c in CATEGORIES) and (folder / "images").is_dir() \
        else folder
    found: dict[str, Path] = {}
    for row in rows:
        if row.problem:
            continue
        path = first_file_inside(folder, (root / row.category / f"{row.index}.{ext}" for ext in EDITED_EXTENSIONS))
        if path is not None:
            found[row.index] = path
    return found


# --- The image archive -----------------------------------------------------------------------------------------

MAX_ARCHIVE_MEMBERS = 20_000
MAX_ARCHIVE_BYTES = 8 << 30
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def extract_images(archive: Path, target: Path) -> Path:
    """Unpack the images of the hub's data.zip into `target` (once: an existing `target` is reused). Only image
    files under plain relative paths are written; links, absolute or climbing names, and archives claiming more
    than the caps are refused with one line. Written to a partial folder first, then renamed."""
    import shutil
    import zipfile

    if target.is_dir():
        return target
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.infolist() if not m.is_dir()]
            if len(members) > MAX_ARCHIVE_MEMBERS or sum(m.file_size for m in members) > MAX_ARCHIVE_BYTES:
                raise InputError(f"{archive} holds more than {MAX_ARCHIVE_MEMBERS:,} files or "
                                 f"{MAX_ARCHIVE_BYTES >> 30} GB: not the RISEBench image archive, not unpacked")
            partial = target.with_name(target.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            for member in members:
                name = member.filename
                parts = name.split("/")
                is_link = (member.external_attr >> 16) & 0o170000 == 0o120000
                if (is_link or "\\" in name or name.startswith("/") or any(p in ("", ".", "..") for p in parts)
                        or not name.lower().endswith(IMAGE_SUFFIXES) or parts[0] == "__MACOSX"):
                    continue
                out = partial.joinpath(*parts)
                out.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            partial.mkdir(parents=True, exist_ok=True)
            partial.rename(target)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise InputError(f"cannot unpack RISEBench image archive {archive}: {exc}") from None
    return target
