"""KRIS-Bench as officially scored (mercurystraw/Kris_Bench ``metrics_*.py``; aggregation of ByteDance-Seed/Bagel
``eval/gen/kris/summarize.py``), as pure functions and data.

- Data: ``KRIS_Bench/<category>/annotation.json`` plus the images it names, read as untrusted input: a bad row
  never raises, it comes back with ``problem`` set so that the run records one error row and goes on.
- Questions: three judge calls per row, each declared as a backend-neutral `Question` (prompt text, the verbatim
  text labels and the images, in the official order and encoding).
- Parsing: the official score extractors, reproduced exactly (their odd readings included), plus one product fix:
  a JSON score outside 1..5 is unreadable (re-asked) instead of being kept.
- Aggregation: scores normalised to 0-100 with ``(s - 1) * 25`` and pooled over rows (not means of means).

Rows are keyed ``"<category>/<id>"`` (`KrisRow.key`): ids restart at "1" in every category. Known upstream bugs
are treated as ``/work/shared/reference/kris/PROTOCOL.md`` says: reproduced by default, the anomaly_correction
template bug fixable on request (``fix_anomaly``). Pillow is never imported here.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from pytest_editeval.data.jsonfile import read_json_object, repeated_names_warning
from pytest_editeval.data.paths import first_file_inside
from pytest_editeval.errors import InputError
from pytest_editeval.judges.replies import UnreadableReply
from pytest_editeval.judges.requests import EDITED, ImageRef, Part, Question, input_image, reference_image

# --- The benchmark's shape -------------------------------------------------------------------------------------

# Dimensions in the published table's order, each with its category folders; CATEGORIES follows the same order,
# which is also the order rows are listed and run in.
DIMENSIONS: dict[str, tuple[str, ...]] = {
    "Attribute Perception": ("count_change", "color_change", "size_adjustment", "part_completion",
                             "anomaly_correction"),
    "Spatial Perception": ("viewpoint_change", "position_movement"),
    "Temporal Prediction": ("temporal_prediction",),
    "Social Science": ("humanities", "practical_knowledge"),
    "Natural Science": ("biology", "chemistry", "geography", "medicine", "mathematics", "physics"),
    "Logical Reasoning": ("abstract_reasoning", "rule-based_reasoning"),
    "Instruction Decomposition": ("multi-element_composition", "multi-instruction_execution"),
}
CATEGORIES: tuple[str, ...] = tuple(c for members in DIMENSIONS.values() for c in members)
DIMENSION_OF: dict[str, str] = {c: d for d, members in DIMENSIONS.items() for c in members}
KNOWLEDGE_TYPES: dict[str, tuple[str, ...]] = {
    "Factual": ("Attribute Perception", "Spatial Perception", "Temporal Prediction"),
    "Conceptual": ("Social Science", "Natural Science"),
    "Procedural": ("Logical Reasoning", "Instruction Decomposition"),
}

# Rows per category of the real benchmark (Bagel's final_data.json): 1,267 in all.
ROW_COUNTS: dict[str, int] = {
    "count_change": 50, "color_change": 50, "size_adjustment": 50, "part_completion": 50, "anomaly_correction": 75,
    "viewpoint_change": 50, "position_movement": 50, "temporal_prediction": 74, "humanities": 75,
    "practical_knowledge": 50, "biology": 68, "chemistry": 75, "geography": 75, "medicine": 50, "mathematics": 50,
    "physics": 75, "abstract_reasoning": 75, "rule-based_reasoning": 75, "multi-element_composition": 75,
    "multi-instruction_execution": 75,
}

# Metrics: short name -> the JSON key the judge answers with, and the label reports print.
METRICS: tuple[str, ...] = ("VC", "VQ", "IF", "KP")
SCORE_KEYS: dict[str, str] = {"VC": "consistency_score", "VQ": "quality_score", "IF": "instruction_score",
                              "KP": "knowledge_score"}
METRIC_LABELS: dict[str, str] = {"VC": "Visual Consistency", "VQ": "Visual Quality", "IF": "Instruction Following",
                                 "KP": "Knowledge Plausibility"}
RAW_MIN, RAW_MAX = 1, 5

# Which official script judges a category; it fixes the templates, the content layout and the reply parser.
SCRIPTS: dict[str, tuple[str, ...]] = {
    "common": ("count_change", "color_change", "anomaly_correction", "position_movement", "size_adjustment",
               "part_completion", "multi-instruction_execution"),
    "knowledge": ("abstract_reasoning", "mathematics", "practical_knowledge", "medicine", "rule-based_reasoning",
                  "biology", "geography", "chemistry", "humanities", "physics"),
    "view": ("viewpoint_change",),
    "multi": ("multi-element_composition",),
    "temporal": ("temporal_prediction",),
}
SCRIPT_OF: dict[str, str] = {c: s for s, members in SCRIPTS.items() for c in members}
# KP exists only where metrics_knowledge asks for it: Social Science, Natural Science and Logical Reasoning.
KP_CATEGORIES: frozenset[str] = frozenset(SCRIPTS["knowledge"])
# Categories whose annotation's explain_en reaches a judge (anomaly_correction only with fix_anomaly=True).
EXPLAINED_CATEGORIES: frozenset[str] = KP_CATEGORIES | {"anomaly_correction"}
TEMPORAL_FRAMES = (1, 2, 3, 4)


def normalise(score: int) -> float:
    """A raw 1..5 score on the published 0-100 scale (Bagel's summarize.py since 2025-06-15)."""
    return (score - 1) * 25.0


def metrics_of(category: str) -> tuple[str, ...]:
    return ("VC", "VQ", "IF", "KP") if category in KP_CATEGORIES else ("VC", "VQ", "IF")


# --- Prompt templates ------------------------------------------------------------------------------------------

PROMPTS_RESOURCE = "benchmarks/prompts/kris_prompts.json"
# Pinned here as well as recorded in the file: the shipped texts must stay the unmodified Apache-2.0 originals.
TEMPLATE_SHA256: dict[str, str] = {
    "prompt_consist": "d4eed281e816dd4ec94bb79777bf2ffd14cd2258a86f95d3524f44161d860c14",
    "prompt_quality": "e4dd2bffe1e0db4489faeab14dbfd9df9779dbbfb10f4f26f899a55a3b225cac",
    "prompt_instruction_following": "7230580658d5411849859a3dabb3cd143881ac7e1a1343c6b34f21091a6dddf3",
    "prompt_dual_evaluation": "521866619f71b5268d097d7ec0e8f64b1d5e99770359f51936f75a00b3950564",
    "prompt_abnormal_instruction_following": "d76d20816f6b2429850d8a33a91277ba86c03eec5398d76cca6eb26a282b3614",
    "prompt_view_instruction_following": "ec2d29e6f3c93eabcfdbf77920a29d4e2a233011ee98eb5b81e7874895bdd8f2",
    "prompt_consist_temporal": "6cc203d16ac510cf1979484050af597290064bd9eca639803c2733e59b5136c9",
    "prompt_instruction_temporal": "8a96dbf10e506cccc4b0fc4783a5ab2f46a40249f987feae0df34cef957737f7",
    "prompt_consist_multi": "9b6f3b5bd3c569ef559fbcdfb6459f3d7199a179f0cee2763f5f9ab29280d1dd",
    "prompt_instruction_multi": "9a5c3a142e5fa88f7dbc128bea7d85e5095e12fc3e8c1426654d1fe314f2e55e",
}


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@lru_cache(maxsize=1)
def _checked_templates() -> tuple[tuple[str, str], ...]:
    raw = resources.files("pytest_editeval").joinpath(PROMPTS_RESOURCE).read_text("utf-8")
    templates = json.loads(raw)["templates"]
    out = []
    for name, expected in TEMPLATE_SHA256.items():
        entry = templates.get(name) or {}
        text = entry.get("text")
        if not isinstance(text, str) or _sha256_text(text) != expected or entry.get("sha256") != expected:
            raise RuntimeError(f"packaged KRIS-Bench prompt {name} does not match its SHA-256: the installation "
                               "is damaged")
        out.append((name, text))
    return tuple(out)


def load_prompts() -> dict[str, str]:
    """The ten official templates by name, as the official scripts hold them (before any ``.format``)."""
    return dict(_checked_templates())


# --- Rows ------------------------------------------------------------------------------------------------------

ANNOTATION_FILE = "annotation.json"
BENCH_FOLDER = "KRIS_Bench"
MAX_ANNOTATION_BYTES = 16 * 1024 * 1024  # the real files are under 100 KB; a bigger one is not an annotation
MAX_NAME_BYTES = 200
_DECIMAL_ID = re.compile(r"[0-9]{1,18}")
_FRAME_NAME = re.compile(r"(\d+)-(\d+)")  # the temporal script's own pattern; the second number is the frame


@dataclass(frozen=True)
class KrisRow:
    """One benchmark row. Paths are POSIX strings relative to the KRIS_Bench folder ("<category>/<file>").

    A row with ``problem`` set could not be read safely (unsafe or missing file, wrong field type...): it must be
    reported as an error row with that reason and never judged; its other fields hold what could be read."""

    category: str
    id: str  # the annotation's key as written ("1".."N" in the real data)
    instruction: str  # ins_en
    explanation: str  # explain_en ("" when absent)
    inputs: tuple[str, ...]  # the images the editing model receives, in ori_img order
    references: dict[str, str] = field(default_factory=dict)  # judge-only images: {"gt": ...} for viewpoint_change
    target_frame: int | None = None  # temporal_prediction: the frame (1..4) the model must generate
    problem: str | None = None

    @property
    def key(self) -> str:
        """Unique across the benchmark (ids restart in every category), readable in test ids."""
        return f"{self.category}/{_printable(self.id)}"

    @property
    def dimension(self) -> str:
        return DIMENSION_OF[self.category]

    def input_files(self, root: Path) -> list[Path]:
        return [root / p for p in self.inputs]

    def reference_files(self, root: Path) -> dict[str, Path]:
        return {name: root / p for name, p in self.references.items()}


def _printable(text: str, limit: int = 80) -> str:
    """The id itself when it is a safe name; otherwise an escaped, bounded form that stays unique."""
    if _name_problem(text) is None:
        return text
    escaped = text.encode("unicode_escape").decode("ascii").replace("/", "\\x2f")
    if len(escaped) > limit:
        escaped = escaped[:limit] + "~" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return escaped


def find_root(path: Path) -> Path:
    """The KRIS_Bench folder: `path` itself or its ``KRIS_Bench`` child (what a clone or download holds)."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise InputError(f"KRIS-Bench folder {path} does not exist: pass the folder holding KRIS_Bench/ or "
                         "KRIS_Bench/ itself")
    for candidate in (path / BENCH_FOLDER, path):
        if candidate.is_dir() and any((candidate / c / ANNOTATION_FILE).is_file() for c in CATEGORIES):
            return candidate
    raise InputError(f"{path} is not a KRIS-Bench folder: expected KRIS_Bench/<category>/{ANNOTATION_FILE} "
                     f"(e.g. KRIS_Bench/color_change/{ANNOTATION_FILE}) in it or under it")


def load_rows(root: Path) -> tuple[list[KrisRow], list[str]]:
    """Every row of every known category folder under `root` (a `find_root` result), in CATEGORIES order then
    numeric id order, and warnings (unknown folders). A bad row comes back with ``problem`` set; an
    annotation.json that cannot be read at all is an InputError."""
    warnings: list[str] = []
    present: list[str] = []
    try:
        entries = sorted(Path(root).iterdir())
    except OSError as exc:
        raise InputError(f"cannot list KRIS-Bench folder {root}: {exc.strerror}") from None
    for entry in entries:
        if not entry.is_dir() or entry.name.startswith("."):
            continue
        if entry.name in DIMENSION_OF:
            present.append(entry.name)
        else:
            warnings.append(f"{entry}: not a KRIS-Bench category folder, ignored (known: {', '.join(CATEGORIES)})")
    rows: list[KrisRow] = []
    for category in (c for c in CATEGORIES if c in present):
        annotations, duplicates = _read_annotations(Path(root) / category / ANNOTATION_FILE)
        warnings += repeated_names_warning(Path(root) / category / ANNOTATION_FILE, duplicates)
        rows.extend(sorted((_row(category, Path(root) / category, key, value) for key, value in annotations.items()),
                           key=lambda r: id_order(r.id)))
    return rows, warnings


def id_order(row_id: str) -> tuple:
    """Sort key of ids inside a category: decimal ids by value ("2" before "10"), then any others by text."""
    return (0, int(row_id), row_id) if _DECIMAL_ID.fullmatch(row_id) else (1, 0, row_id)


def _read_annotations(path: Path) -> tuple[dict, list[str]]:
    """(the annotations, the ids that appeared twice)."""
    if not path.is_file():
        raise InputError(f"{path} is missing: every KRIS-Bench category folder needs its {ANNOTATION_FILE}")
    return read_json_object(path, "KRIS-Bench annotation", MAX_ANNOTATION_BYTES)


def _name_problem(name: object) -> str | None:
    """Why `name` cannot be a file name inside a category folder (None when it can)."""
    if not isinstance(name, str):
        return f"is a {type(name).__name__}, not a file name"
    if not name:
        return "is empty"
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a JSON escape: no file system call may see it
        return "is not valid Unicode text"
    if len(encoded) > MAX_NAME_BYTES:
        return f"is over {MAX_NAME_BYTES} bytes"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return "holds a control character"
    if "/" in name or "\\" in name or ".." in name or name.startswith(".") or Path(name).is_absolute():
        return "is not a plain file name (absolute, '..', a path separator or a leading dot)"
    return None


def _row(category: str, folder: Path, row_id: str, value: object) -> KrisRow:
    def bad(problem: str, **fields) -> KrisRow:
        base = {"instruction": "", "explanation": "", "inputs": ()} | fields
        return KrisRow(category, row_id, problem=problem, **base)

    reason = _name_problem(row_id)
    if reason:
        return bad(f"row id {reason}")
    if not isinstance(value, dict):
        return bad(f"annotation entry is a {type(value).__name__}, not an object")
    instruction, explanation = value.get("ins_en"), value.get("explain_en", "")
    if not isinstance(instruction, str):
        return bad("ins_en is missing or not a string")
    if category in EXPLAINED_CATEGORIES and not isinstance(explanation, str):
        return bad("explain_en is not a string", instruction=instruction)
    explanation = explanation if isinstance(explanation, str) else ""
    names, reason = _input_names(category, value.get("ori_img"))
    # Only viewpoint_change's judge sees gt_img; temporal_prediction's held-out frame is never sent.
    references = {"gt": value.get("gt_img")} if category == "viewpoint_change" else {}
    if reason is None and references and not references["gt"]:
        reason = "gt_img (the ground-truth view the judge compares with) is missing or empty"
    if reason is None:
        reason = _files_problem(folder, [*(("ori_img", n) for n in names),
                                         *(("gt_img", n) for n in references.values())])
    if reason:
        return bad(reason, instruction=instruction, explanation=explanation)
    target_frame = None
    if category == "temporal_prediction":
        target_frame, reason = _target_frame(names)
        if reason:
            return bad(reason, instruction=instruction, explanation=explanation)
    return KrisRow(category, row_id, instruction, explanation, tuple(f"{category}/{n}" for n in names),
                   {k: f"{category}/{n}" for k, n in references.items()}, target_frame)


def _input_names(category: str, ori_img: object) -> tuple[list, str | None]:
    if category in ("multi-element_composition", "temporal_prediction"):
        if not isinstance(ori_img, list) or not ori_img:
            return [], "ori_img must be a non-empty list of file names for " + category
        return ori_img, None
    if not isinstance(ori_img, str):
        return [], "ori_img must be one file name for " + category
    return [ori_img], None


def _files_problem(folder: Path, named: list[tuple[str, object]]) -> str | None:
    for field_name, name in named:
        reason = _name_problem(name)
        if reason:
            return f"{field_name} {_printable(str(name))!r} {reason}"
        if not (folder / name).is_file():
            return f"{field_name} {name!r}: no such file in {folder}"
    return None


def _target_frame(names: list[str]) -> tuple[int | None, str | None]:
    """The frame of 1..4 missing from the three reference names (`(\\d+)-(\\d+)`, second number)."""
    frames = []
    for name in names:
        match = _FRAME_NAME.search(name)
        if not match:
            return None, f"temporal frame name {name!r} does not read as <id>-<frame>"
        frames.append(int(match.group(2)))
    missing = set(TEMPORAL_FRAMES) - set(frames)
    if len(set(frames)) != len(frames) or not set(frames) <= set(TEMPORAL_FRAMES) or len(missing) != 1:
        return None, f"temporal frames {frames} do not leave exactly one of frames 1-4 to generate"
    return missing.pop(), None


# --- Questions -------------------------------------------------------------------------------------------------

RAW_RECIPE = "raw"  # the file's bytes as they are, labelled image/jpeg whatever they hold (PROTOCOL bug 7)
TEMPORAL_RECIPE = "rgb-jpeg85"  # the temporal script re-encodes every image: convert("RGB"), JPEG quality 85
SENT_MIME = "image/jpeg"

# Question names: "<metrics>@<script>". The metrics part says what a reply yields; the script part picks the
# official parser, which differs between scripts (prefix patterns, JSON handling).
QUESTION_METRICS: dict[str, tuple[str, ...]] = {
    **{f"{m}@{s}": (m,) for s in ("common", "view", "knowledge", "multi", "temporal") for m in ("VC", "VQ")},
    **{f"IF@{s}": ("IF",) for s in ("common", "view", "multi", "temporal")},
    "IF+KP@knowledge": ("IF", "KP"),
}


def questions(row: KrisRow, *, fix_anomaly: bool = False) -> list[Question]:
    """The row's three judge calls (VC, VQ, then IF or IF+KP), each as the official script sends it.

    fix_anomaly=False reproduces the published numbers: anomaly_correction is judged with the generic
    instruction template (PROTOCOL bug 2); True sends prompt_abnormal_instruction_following with explain_en."""
    if row.problem:
        raise ValueError(f"row {row.key} cannot be judged: {row.problem}")
    prompts = load_prompts()
    script = SCRIPT_OF[row.category]
    instruct = row.instruction

    if script == "multi":
        context = _multi_parts(row)
        return [
            Question("VC@multi", (prompts["prompt_consist_multi"].format(instruct=instruct), *context)),
            Question("VQ@multi", (prompts["prompt_quality"], "This is the image to evaluate:", _raw(EDITED))),
            Question("IF@multi", (prompts["prompt_instruction_multi"].format(instruct=instruct), *context)),
        ]
    if script == "temporal":
        context = _temporal_parts(row)
        # The official call passes N=<target frame>, which the templates never use: kept for exactness.
        return [
            Question("VC@temporal", (prompts["prompt_consist_temporal"].format(N=row.target_frame, instruct=instruct),
                                     *context)),
            Question("VQ@temporal", (prompts["prompt_quality"], "This is the image to evaluate:", _jpeg85(EDITED))),
            Question("IF@temporal", (prompts["prompt_instruction_temporal"].format(N=row.target_frame,
                                                                                   instruct=instruct), *context)),
        ]

    pair = ("This is the original image:", _raw(input_image(0)), "This is the edited image:", _raw(EDITED))
    consistency = Question(f"VC@{script}", (prompts["prompt_consist"].format(instruct=instruct), *pair))
    # The quality template is sent raw, never formatted: the judge sees its doubled braces (PROTOCOL bug 4).
    quality = Question(f"VQ@{script}", (prompts["prompt_quality"], "This is the edited image:", _raw(EDITED)))
    if script == "knowledge":
        dual = prompts["prompt_dual_evaluation"].format(instruct=instruct, explanation=row.explanation)
        return [consistency, quality, Question("IF+KP@knowledge", (dual, *pair))]
    if script == "view":
        view = prompts["prompt_view_instruction_following"].format(instruct=instruct)
        return [consistency, quality, Question("IF@view", (view, *pair, "This is the ground truth image:",
                                                           _raw(reference_image("gt"))))]
    if row.category == "anomaly_correction" and fix_anomaly:
        instruction_prompt = prompts["prompt_abnormal_instruction_following"].format(
            instruct=instruct, explanation=row.explanation)
    else:
        instruction_prompt = prompts["prompt_instruction_following"].format(instruct=instruct)
    return [consistency, quality, Question("IF@common", (instruction_prompt, *pair))]


def _raw(image: str) -> ImageRef:
    return ImageRef(image, recipe=RAW_RECIPE, mime=SENT_MIME)


def _jpeg85(image: str) -> ImageRef:
    return ImageRef(image, recipe=TEMPORAL_RECIPE, mime=SENT_MIME)


def _multi_parts(row: KrisRow) -> tuple[Part, ...]:
    parts: list[Part] = []
    for index in range(len(row.inputs)):
        parts += [f"Reference Image {index + 1}:", _raw(input_image(index))]
    return (*parts, "Predicted Image:", _raw(EDITED))


def _temporal_parts(row: KrisRow) -> tuple[Part, ...]:
    """The four frames in frame order, the edited image at the missing one."""
    by_frame = {int(_FRAME_NAME.search(Path(path).name).group(2)): index for index, path in enumerate(row.inputs)}
    parts: list[Part] = []
    for frame in TEMPORAL_FRAMES:
        if frame == row.target_frame:
            parts += [f"Frame {frame} (Generated):", _jpeg85(EDITED)]
        else:
            parts += [f"Frame {frame} (Reference):", _jpeg85(input_image(by_frame[frame]))]
    return tuple(parts)


# --- Reply parsing ---------------------------------------------------------------------------------------------
#
# The official extractors, in three variants (metrics_common's extract_score_and_reason, used by the common,
# view, multi and temporal scripts; metrics_knowledge's single-score extractors; its dual extractor). They run
# in linear time: the JSON step finds the official `\{[^{}]*key[^{}]*\}` match without that regex's
# backtracking, and every fallback pattern scans each character a bounded number of times.

_BRACE_FREE_BLOCK = re.compile(r"\{([^{}]*)\}")
_DEFAULT_PATTERNS = tuple(re.compile(p, re.IGNORECASE | re.DOTALL)
                          for p in (r"([1-5])\s*/\s*5", r"([1-5])\s+out\s+of\s+5", r"\b([1-5])\b"))
# What `except Exception` around json.loads + int() catches in the official code, for the inputs it can meet.
_JSON_FAILURES = (ValueError, TypeError, OverflowError, RecursionError)


@dataclass(frozen=True)
class _Reading:
    value: int | None  # what the official extractor returns
    raw: object = None  # the JSON value it came from (None when read by a regex)


def _json_block(text: str, key: str) -> str | None:
    """The first match of the official ``re.search(r"\\{[^{}]*" + key + r"[^{}]*\\}", text, re.DOTALL)``: the
    first brace-free ``{...}`` holding `key` (a match cannot contain a brace, so it is exactly such a block)."""
    for match in _BRACE_FREE_BLOCK.finditer(text):
        if key in match.group(1):
            return match.group(0)
    return None


def _prefix_pattern(name: str, colon_required: bool) -> re.Pattern:
    colon = "[:：]" if colon_required else "[:：]?"
    return re.compile(rf"{name}[_\s]*score\s*{colon}\s*([1-5])", re.IGNORECASE | re.DOTALL)


def _first_pattern(text: str, patterns: Iterable[re.Pattern]) -> _Reading:
    for pattern in patterns:
        match = pattern.search(text)
        if match:
            return _Reading(int(match.group(1)))
    return _Reading(None)


def _read_common(text: str, score_key: str, prefix_name: str | None) -> _Reading:
    block = _json_block(text, score_key)
    if block is not None:
        try:
            raw = json.loads(block).get(score_key)
            if raw is not None:  # a missing or null key falls through to the patterns
                return _Reading(int(raw), raw)
        except _JSON_FAILURES:
            pass
    prefix = (_prefix_pattern(prefix_name, colon_required=False),) if prefix_name else ()
    return _first_pattern(text, (*prefix, *_DEFAULT_PATTERNS))


def _read_knowledge_single(text: str, score_key: str, prefix_name: str) -> _Reading:
    block = _json_block(text, score_key)
    if block is not None:
        try:
            raw = json.loads(block).get(score_key)
            return _Reading(int(raw) if raw is not None else None, raw)  # valid JSON decides, even without the key
        except _JSON_FAILURES:
            pass
    return _first_pattern(text, (_prefix_pattern(prefix_name, colon_required=True), *_DEFAULT_PATTERNS))


def _read_dual(text: str) -> tuple[_Reading, _Reading]:
    block = _json_block(text, "instruction_score")
    if block is not None:
        try:
            data = json.loads(block)
            raws = data.get("instruction_score"), data.get("knowledge_score")
            return tuple(_Reading(int(raw) if raw is not None else None, raw) for raw in raws)  # type: ignore
        except _JSON_FAILURES:
            pass
    # Only the two colon prefixes: no digit fallback, so an unquoted-reasoning reply reads as None, None.
    return (_first_pattern(text, (_prefix_pattern("instruction", colon_required=True),)),
            _first_pattern(text, (_prefix_pattern("knowledge", colon_required=True),)))


def extract_score(text: str, score_key: str, prefix_name: str | None) -> int | None:
    """metrics_common's extract_score_and_reason, score only, exactly (0, 7 and 4.5 -> 4 included).
    prefix_name: "consistency" / "instruction" / "quality" (common and view scripts), None (multi, temporal)."""
    return _read_common(text, score_key, prefix_name).value


def extract_knowledge_score(text: str, score_key: str, prefix_name: str) -> int | None:
    """metrics_knowledge's extract_consistency_score / extract_quality_score, exactly."""
    return _read_knowledge_single(text, score_key, prefix_name).value


def extract_dual_scores(text: str) -> tuple[int | None, int | None]:
    """metrics_knowledge's extract_dual_scores: (instruction_score, knowledge_score), exactly."""
    instruction, knowledge = _read_dual(text)
    return instruction.value, knowledge.value


_PREFIXES = {"VC": "consistency", "VQ": "quality", "IF": "instruction"}


def _reader(question_name: str) -> Callable[[str], dict[str, _Reading]]:
    metric, _, script = question_name.partition("@")
    if question_name == "IF+KP@knowledge":
        return lambda text: dict(zip(("IF", "KP"), _read_dual(text)))
    if script == "knowledge":
        return lambda text: {metric: _read_knowledge_single(text, SCORE_KEYS[metric], _PREFIXES[metric])}
    prefix = _PREFIXES[metric] if script in ("common", "view") else None  # multi and temporal pass none
    return lambda text: {metric: _read_common(text, SCORE_KEYS[metric], prefix)}


def _in_range(reading: _Reading) -> bool:
    # Regex readings are 1..5 by construction; a JSON value is checked as written, so 5.5 and 0.5 are out
    # while 4.5 is in (and reads as 4, like the official int()).
    number = reading.raw if isinstance(reading.raw, (int, float)) else reading.value
    return number is not None and RAW_MIN <= number <= RAW_MAX


def parse(question_name: str, text: str | None) -> dict[str, int | None]:
    """The scores a reply to the named question gives, read as the official script reads them, except that a
    JSON score outside 1..5 counts as unreadable (PROTOCOL bug 6). Raises UnreadableReply when no metric of the
    question is readable; the dual IF+KP question may return one metric as None (re-ask for it)."""
    if question_name not in QUESTION_METRICS:
        raise KeyError(f"unknown KRIS-Bench question {question_name!r}")
    if text is None or not text.strip():
        raise UnreadableReply("empty reply")
    scores: dict[str, int | None] = {}
    reasons: list[str] = []
    for metric, reading in _reader(question_name)(text).items():
        if reading.value is None:
            reasons.append(f"no {SCORE_KEYS[metric]}")
            scores[metric] = None
        elif not _in_range(reading):
            reasons.append(f"{SCORE_KEYS[metric]} {reading.raw!r} is outside {RAW_MIN}..{RAW_MAX}")
            scores[metric] = None
        else:
            scores[metric] = reading.value
    if all(v is None for v in scores.values()):
        raise UnreadableReply(f"{'; '.join(reasons)} in reply: {_excerpt(text)}")
    return scores


def _excerpt(text: str, limit: int = 120) -> str:
    flat = " ".join(text[:4 * limit].split())
    return repr(flat if len(flat) <= limit else flat[: limit - 3] + "...")


# --- Aggregation -----------------------------------------------------------------------------------------------

AVG = "AVG"  # the pooled mean over every metric value below a heading


@dataclass(frozen=True)
class Mean:
    value: float | None  # mean of normalised scores (0-100); None when no value was available
    n: int  # how many values it pools


@dataclass(frozen=True)
class KrisAggregates:
    """Published KRIS-Bench aggregates. Each level maps a metric (VC, VQ, IF, KP where it exists) and AVG to a
    pooled Mean; only categories and dimensions with at least one row appear."""

    categories: dict[str, dict[str, Mean]]
    dimensions: dict[str, dict[str, Mean]]
    knowledge_types: dict[str, Mean]  # Factual / Conceptual / Procedural, AVG only (as published)
    overall: Mean  # the headline


def _pool(values: list[float]) -> Mean:
    return Mean(sum(values) / len(values) if values else None, len(values))


def aggregate(rows: Iterable[tuple[str, Mapping[str, int | None]]], *,
              drop_incomplete_rows: bool = False) -> KrisAggregates:
    """Pool (category, {metric: raw 1..5 or None}) rows as Bagel's summarize.py does: normalise each value,
    then average over rows, never over category means. A None (a metric that stayed unreadable) is skipped for
    that metric only; drop_incomplete_rows=True instead drops such a row from every metric (Bagel's own
    metrics scripts keep only complete rows)."""
    by_category: dict[str, dict[str, list[float]]] = {}
    for category, scores in rows:
        if category not in DIMENSION_OF:
            raise ValueError(f"unknown KRIS-Bench category {category!r}")
        allowed = metrics_of(category)
        unknown = [m for m, v in scores.items() if m not in allowed and v is not None]
        if unknown:
            raise ValueError(f"{category} has no metric {', '.join(unknown)} (it has {', '.join(allowed)})")
        if drop_incomplete_rows and any(scores.get(m) is None for m in allowed):
            continue
        bucket = by_category.setdefault(category, {m: [] for m in allowed})
        for metric in allowed:
            score = scores.get(metric)
            if score is None:
                continue
            if isinstance(score, bool) or not isinstance(score, int) or not RAW_MIN <= score <= RAW_MAX:
                raise ValueError(f"{category} {metric} score {score!r} is not an integer in {RAW_MIN}..{RAW_MAX}")
            bucket[metric].append(normalise(score))

    def level(buckets: list[dict[str, list[float]]]) -> dict[str, Mean]:
        merged: dict[str, list[float]] = {}
        for bucket in buckets:
            for metric, values in bucket.items():
                merged.setdefault(metric, []).extend(values)
        out = {m: _pool(merged[m]) for m in METRICS if m in merged}
        out[AVG] = _pool([v for m in METRICS for v in merged.get(m, [])])
        return out

    categories = {c: level([by_category[c]]) for c in CATEGORIES if c in by_category}
    dimension_buckets = {d: [by_category[c] for c in members if c in by_category] for d, members in DIMENSIONS.items()}
    dimensions = {d: level(b) for d, b in dimension_buckets.items() if b}
    knowledge_types = {
        k: level([b for d in dims for b in dimension_buckets[d]])[AVG]
        for k, dims in KNOWLEDGE_TYPES.items() if any(dimension_buckets[d] for d in dims)
    }
    overall = level(list(by_category.values()))[AVG]
    return KrisAggregates(categories, dimensions, knowledge_types, overall)


# --- Edited images (image mode) --------------------------------------------------------------------------------

EDITED_SUFFIXES = (".jpg", ".png")  # the official scripts read <id>.jpg, then <id>.png


def edited_images_in_folder(folder: Path, rows: Iterable[KrisRow]) -> dict[str, Path]:
    """The edited image of each readable row found as ``<folder>/<category>/<id>.jpg`` (else ``.png``), keyed
    by `KrisRow.key`. Rows without one are simply absent. A file or folder that is a symlink leading out of
    `folder` is refused (InputError): a results folder must not make the judge read arbitrary files."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise InputError(f"edited-images folder {folder} does not exist: expected <category>/<id>.jpg (or .png) "
                         "under it")
    found: dict[str, Path] = {}
    for row in rows:
        if row.problem:  # never judged; its id may not even be a safe file name
            continue
        path = first_file_inside(folder, (folder / row.category / f"{row.id}{suffix}" for suffix in EDITED_SUFFIXES))
        if path is not None:
            found[row.key] = path
    return found
