"""ImgEdit-Bench (PKU-YuanGroup/ImgEdit) as its official scripts score it, as pure functions and data.

What this module covers (the plugin wires it to the judge, the cache and the report):
- locating the user's download (``Benchmark.tar`` or an unpacked folder) and reading its rows and judge
  templates, where every field is untrusted: a bad row becomes a row with ``problem`` set, never an exception;
- the judge call of a row, exactly as ``Benchmark/Basic/basic_bench.py`` sends it;
- reading a reply with the exact line rule of ``step1_get_avgscore.py``;
- the row, type and overall scores of ``step1``/``step2`` and the leaderboard.

The judge templates are not shipped (their licence is unclear): they are read from the user's
``judge_prompt.json`` and compared with the SHA-256 fingerprints in ``benchmarks/prompts/imgedit_prompt_hashes.json``.
Sources and known bugs of the official scripts: see the project's ImgEdit protocol notes (PROTOCOL.md).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path, PurePosixPath, PureWindowsPath
from types import MappingProxyType

from pytest_editeval.data.archives import extract_tar
from pytest_editeval.data.jsonfile import TOO_DEEP, read_json_object, read_text, repeated_names_warning, too_deep
from pytest_editeval.errors import InputError
from pytest_editeval.judges.replies import UnreadableReply
from pytest_editeval.judges.requests import EDITED, ImageRef, Question, input_image

# The nine basic edit types in the leaderboard's column order, with its labels ("compose" is shown as Hybrid).
EDIT_TYPES = ("add", "adjust", "extract", "replace", "remove", "background", "style", "compose", "action")
TYPE_LABELS = MappingProxyType({
    "add": "Add", "adjust": "Adjust", "extract": "Extract", "replace": "Replace", "remove": "Remove",
    "background": "Background", "style": "Style", "compose": "Hybrid", "action": "Action",
})
# Rows per type of the official row file (737 rows, 171 distinct originals); for docs and tests only.
ROW_COUNTS = MappingProxyType({
    "add": 95, "adjust": 94, "extract": 117, "replace": 92, "remove": 86, "background": 94, "style": 100,
    "compose": 23, "action": 36,
})
# Row files made before 2025-06-16 call the adjust rows "alter"; the prompt file only has "adjust".
LEGACY_TYPES = MappingProxyType({"alter": "adjust"})

PLACEHOLDER = "<edit_prompt>"
QUESTION_NAME = "score"
# basic_bench.py sends no temperature and no max_tokens: the judge's defaults apply.
OFFICIAL_REQUEST_PARAMETERS: Mapping[str, object] = MappingProxyType({})
OFFICIAL_SCRIPT_MODEL = "gpt-4o"  # the scripts' default; the leaderboard image says GPT-4.1 was used
SCORE_RANGE = (1, 5)

SUBSET_BASIC = "basic"
SUBSET_UGE = "uge"
UGE_TYPE = "uge"  # UGE rows have no edit_type: one template serves all 47 rows

TAR_NAME = "Benchmark.tar"
SINGLETURN = "singleturn"
SINGLETURN_MEMBERS = "Benchmark/singleturn"  # the only part of the tar the basic suite needs
HARD_MEMBERS = "Benchmark/hard"
ROWS_FILE = "singleturn.json"
PROMPTS_FILE = "judge_prompt.json"
UGE_ROWS_FILE = "UGE_edit.json"
UGE_SCRIPT = "UGE_bench.py"  # the official UGE scorer, whose module-level string `prompt` is the template
UGE_TEMPLATE_NAME = "prompt"

MAX_JSON_BYTES = 64 << 20
MAX_ID_BYTES = 200
_SAFE_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_ASCII_NUMBER = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class ImgEditRow:
    """One benchmark row. `key` identifies it everywhere (originals are shared by several rows). A row with
    `problem` set could not be read safely; the plugin reports it as an error row with that reason."""

    key: str
    edit_type: str  # one of EDIT_TYPES ("alter" already mapped), UGE_TYPE, or "unknown" for a bad type
    prompt: str
    image_id: str  # the row's `id` field: the original's path relative to the image folder
    image: Path | None  # the original image; None when `problem` is set
    subset: str = SUBSET_BASIC
    problem: str | None = None

    @property
    def test_id(self) -> str:
        """Readable, stable test id (`-k add`, `-k 1082`); safe even for a hostile key."""
        if _SAFE_KEY.fullmatch(self.key):
            name = self.key
        else:  # surrogatepass: a JSON key may hold a lone surrogate escape
            name = "key-" + hashlib.sha256(self.key.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        return f"{self.edit_type}-{name}" if self.subset == SUBSET_BASIC else f"{self.subset}-{name}"


# ---------------------------------------------------------------------------------------------------------------
# Locating the data


def find_singleturn(path: Path, *, extract_to: Path | None) -> Path:
    """The `singleturn` folder (holding singleturn.json) of a user's download. `path` may be `Benchmark.tar`
    (only its Benchmark/singleturn/ part is extracted, into `extract_to`, or beside the tar when None), a
    folder holding Benchmark/singleturn/, singleturn/ or Benchmark.tar, or the singleturn folder itself."""
    path = Path(path).expanduser()
    expected = (f"expected {TAR_NAME}, a folder holding Benchmark/{SINGLETURN}/ or {SINGLETURN}/, "
                f"or the {SINGLETURN} folder itself (holding {ROWS_FILE})")
    if not path.exists():
        raise InputError(f"ImgEdit-Bench data {path} does not exist: {expected}")
    if path.is_file():
        if not _looks_like_tar(path):
            raise InputError(f"ImgEdit-Bench data {path} is a file but not a .tar archive: {expected}")
        return _singleturn_in(_extracted(path, SINGLETURN_MEMBERS, extract_to) / "Benchmark" / SINGLETURN,
                              path, expected)
    for candidate in (path / "Benchmark" / SINGLETURN, path / SINGLETURN, path):
        if (candidate / ROWS_FILE).is_file():
            return candidate
    if (path / TAR_NAME).is_file():
        return find_singleturn(path / TAR_NAME, extract_to=extract_to)
    raise InputError(f"no ImgEdit-Bench single-turn data in {path}: {expected}")


def find_uge(path: Path, *, extract_to: Path | None, rows_file: Path | None = None,
             also_look_in: tuple[Path, ...] = ()) -> tuple[Path, Path]:
    """(UGE_edit.json, folder of the UGE originals) of a user's download. ASSUMPTION, not verified against the
    tar: the 47 UGE originals sit flat in `Benchmark/hard/` (the official UGE_edit.json ids are bare file
    names). UGE_edit.json, which the official repository keeps in Benchmark/UGE/ on GitHub, is `rows_file`
    when given, else looked for in hard/, beside it, in a UGE/ folder beside it, then in `also_look_in` (the
    folder of the user's UGE_bench.py: the repository keeps both in Benchmark/UGE/). `path` is `Benchmark.tar`
    (only Benchmark/hard/ is extracted), a folder holding Benchmark/hard/, hard/ or Benchmark.tar, or the
    hard folder itself."""
    path = Path(path).expanduser()
    expected = (f"expected {TAR_NAME}, a folder holding Benchmark/hard/ or hard/, or the hard folder itself, "
                f"with {UGE_ROWS_FILE} inside it or passed separately")
    if not path.exists():
        raise InputError(f"ImgEdit-Bench UGE data {path} does not exist: {expected}")
    if path.is_file():
        if not _looks_like_tar(path):
            raise InputError(f"ImgEdit-Bench UGE data {path} is a file but not a .tar archive: {expected}")
        hard = _extracted(path, HARD_MEMBERS, extract_to) / "Benchmark" / "hard"
        search = [hard, path.parent, path.parent / "UGE"]
    else:
        hard = next((c for c in (path / "Benchmark" / "hard", path / "hard") if c.is_dir()), None)
        if hard is None and (path / TAR_NAME).is_file():
            return find_uge(path / TAR_NAME, extract_to=extract_to, rows_file=rows_file, also_look_in=also_look_in)
        hard = hard or path
        search = [hard, hard.parent, hard.parent / "UGE"]
    if rows_file is not None:
        if not Path(rows_file).is_file():
            raise InputError(f"UGE row file {rows_file} does not exist")
        return Path(rows_file), hard
    found = next((c / UGE_ROWS_FILE for c in [*search, *also_look_in] if (c / UGE_ROWS_FILE).is_file()), None)
    if found is None:
        raise InputError(f"no {UGE_ROWS_FILE} for the UGE images in {hard}: {expected} (the official one is "
                         "Benchmark/UGE/UGE_edit.json in the ImgEdit repository)")
    return found, hard


def find_uge_template(rows_file: Path, hard: Path, given: Path | None) -> Path:
    """The UGE judge template: `given` (--editeval-judge-prompts), else the official UGE_bench.py beside the
    row file, in hard/, beside it or in a UGE/ folder beside it. It is not shipped with this plugin (the
    repository has no licence), so a download without it gets one line that says where it comes from."""
    if given is not None:
        if not Path(given).is_file():
            raise InputError(f"UGE judge template {given} does not exist: pass the official {UGE_SCRIPT} or a text "
                             "file of the template")
        return Path(given)
    for folder in (rows_file.parent, hard, hard.parent, hard.parent / "UGE"):
        if (folder / UGE_SCRIPT).is_file():
            return folder / UGE_SCRIPT
    raise InputError(f"no UGE judge template: the official one is the string `{UGE_TEMPLATE_NAME}` in "
                     f"Benchmark/UGE/{UGE_SCRIPT} of the ImgEdit repository (PKU-YuanGroup/ImgEdit), not shipped "
                     f"here; pass --editeval-judge-prompts=PATH/TO/{UGE_SCRIPT} (or a text file of the template)")


def _looks_like_tar(path: Path) -> bool:
    return path.name.lower().endswith((".tar", ".tar.gz", ".tgz"))


def _extracted(tar_path: Path, members: str, extract_to: Path | None) -> Path:
    return extract_tar(tar_path, extract_to if extract_to is not None else tar_path.parent, members_under=members)


def _singleturn_in(folder: Path, source: Path, expected: str) -> Path:
    if not (folder / ROWS_FILE).is_file():
        raise InputError(f"{source} holds no Benchmark/{SINGLETURN}/{ROWS_FILE}: {expected}")
    return folder


# ---------------------------------------------------------------------------------------------------------------
# Rows


def load_rows(singleturn: Path) -> tuple[list[ImgEditRow], list[str]]:
    """The basic suite's rows and warnings. Order: by edit type in EDIT_TYPES order (rows of an unknown type
    last), then by numeric key (non-numeric keys after, alphabetically). Bad rows come back with `problem`."""
    singleturn = Path(singleturn)
    data, duplicates = _read_json_object(singleturn / ROWS_FILE, "ImgEdit-Bench row file")
    images = _ImageRoot(singleturn)
    rows = [_basic_row(key, value, images) for key, value in data.items()]
    warnings = repeated_names_warning(singleturn / ROWS_FILE, duplicates)
    legacy = sum(1 for v in data.values() if isinstance(v, dict) and v.get("edit_type") in LEGACY_TYPES)
    if legacy:
        warnings.append(f"{singleturn / ROWS_FILE}: {legacy} row(s) use the old edit_type 'alter' (row files before "
                        "2025-06-16); they are judged with the 'adjust' template and reported under adjust")
    return sorted(rows, key=row_order), warnings


def load_uge_rows(rows_file: Path, images: Path) -> tuple[list[ImgEditRow], list[str]]:
    """The UGE suite's rows ({key: {"id", "prompt"}}, originals in `images`), ordered by numeric key."""
    data, duplicates = _read_json_object(Path(rows_file), "ImgEdit-Bench UGE row file")
    root = _ImageRoot(Path(images))
    rows = [_uge_row(key, value, root) for key, value in data.items()]
    return sorted(rows, key=row_order), repeated_names_warning(Path(rows_file), duplicates)


def _read_json_object(path: Path, what: str, *, rows: bool = True) -> tuple[dict, list[str]]:
    data, duplicates = read_json_object(path, what, MAX_JSON_BYTES)
    if rows and not data:
        raise InputError(f"{what} {path} holds no rows")
    return data, duplicates


class _ImageRoot:
    """Resolves untrusted `id` fields against one image folder; files are checked once per id (shared)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.resolved = folder.resolve()
        self._checked: dict[str, tuple[Path | None, str | None]] = {}

    def resolve(self, image_id: object) -> tuple[Path | None, str | None]:
        """(path, None) or (None, why the id is refused)."""
        if not isinstance(image_id, str):
            return None, f"'id' must be a string, not {type(image_id).__name__}"
        if image_id not in self._checked:
            self._checked[image_id] = self._check(image_id)
        return self._checked[image_id]

    def _check(self, image_id: str) -> tuple[Path | None, str | None]:
        why = unsafe_relative_path(image_id)
        if why:
            return None, f"'id' {_shown(image_id)} is refused: {why}"
        path = self.folder.joinpath(*image_id.split("/"))
        try:
            real = path.resolve()
        except (OSError, RuntimeError):  # a symlink loop
            return None, f"'id' {_shown(image_id)} cannot be resolved"
        if not real.is_relative_to(self.resolved):
            return None, f"'id' {_shown(image_id)} resolves outside {self.folder}"
        if not real.is_file():
            return None, f"original image {_shown(image_id)} not found in {self.folder}"
        return path, None


def unsafe_relative_path(value: str) -> str | None:
    """Why `value` is not a plain relative path below a folder (None if it is)."""
    if not value:
        return "empty"
    if not _encodable(value):
        return "not valid Unicode (a lone surrogate escape)"
    if len(value.encode("utf-8")) > MAX_ID_BYTES:
        return f"longer than {MAX_ID_BYTES} bytes"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return "control character"
    if "\\" in value or PurePosixPath(value).is_absolute() or PureWindowsPath(value).drive:
        return "absolute path or backslash"
    parts = value.split("/")
    if ".." in parts:
        return "'..' component"
    if any(p.startswith(".") for p in parts):
        return "hidden ('.'-prefixed) component"
    if any(p == "" for p in parts):
        return "empty path component"
    return None


def _basic_row(key: str, value: object, images: _ImageRoot) -> ImgEditRow:
    if not isinstance(value, dict):
        return ImgEditRow(key, "unknown", "", "", None, problem=f"row is a {type(value).__name__}, not an object")
    raw_type = value.get("edit_type")
    edit_type = LEGACY_TYPES.get(raw_type, raw_type) if isinstance(raw_type, str) else None
    known = edit_type in EDIT_TYPES
    prompt, image_id = value.get("prompt"), value.get("id")
    row = ImgEditRow(key, edit_type if known else "unknown", prompt if isinstance(prompt, str) else "",
                     image_id if isinstance(image_id, str) else "", None)
    problem = _key_problem(key)
    if problem is None and not known:
        problem = f"unknown edit_type {_shown(raw_type)} (known: {', '.join(EDIT_TYPES)})"
    if problem is None:
        problem = _prompt_problem(prompt)
    image, why = images.resolve(image_id)
    problem = problem or why
    return replace(row, image=None if problem else image, problem=problem)


def _uge_row(key: str, value: object, images: _ImageRoot) -> ImgEditRow:
    if not isinstance(value, dict):
        return ImgEditRow(key, UGE_TYPE, "", "", None, SUBSET_UGE, f"row is a {type(value).__name__}, not an object")
    prompt, image_id = value.get("prompt"), value.get("id")
    row = ImgEditRow(key, UGE_TYPE, prompt if isinstance(prompt, str) else "",
                     image_id if isinstance(image_id, str) else "", None, SUBSET_UGE)
    problem = _key_problem(key)
    if problem is None:
        problem = _prompt_problem(prompt)
    image, why = images.resolve(image_id)
    problem = problem or why
    return replace(row, image=None if problem else image, problem=problem)


def _prompt_problem(prompt: object) -> str | None:
    if not isinstance(prompt, str):
        return f"'prompt' must be a string, not {type(prompt).__name__}"
    if not _encodable(prompt):
        return "'prompt' is not valid Unicode (a lone surrogate escape)"
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _key_problem(key: str) -> str | None:
    # The key names the model's output file (<key>.png) and the test id: letters, digits, '_' and '-' only.
    if _SAFE_KEY.fullmatch(key):
        return None
    return f"key {_shown(key)} is refused: a key must be 1-64 letters, digits, '_' or '-' (official keys are numbers)"


def row_order(row: ImgEditRow) -> tuple:
    """Sort key of the documented row order: edit type (EDIT_TYPES order, unknown last), then numeric key."""
    type_index = EDIT_TYPES.index(row.edit_type) if row.edit_type in EDIT_TYPES else len(EDIT_TYPES)
    # Numeric order without int(): a hostile key may have more digits than int() accepts.
    digits = row.key.lstrip("0") if _ASCII_NUMBER.fullmatch(row.key) else None
    if digits is None:
        return type_index, 1, 0, "", row.key
    return type_index, 0, len(digits), digits, row.key


def _shown(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------------------------------
# Judge templates


def load_judge_prompts(path: Path) -> dict[str, str]:
    """The nine basic templates from the user's judge_prompt.json (or the folder holding it), each checked to
    hold `<edit_prompt>` exactly once. Extra keys are ignored."""
    path = Path(path)
    if path.is_dir():
        path = path / PROMPTS_FILE
    data, _ = _read_json_object(path, "ImgEdit-Bench judge prompt file", rows=False)
    missing = [t for t in EDIT_TYPES if t not in data]
    if missing:
        raise InputError(f"judge prompt file {path} lacks template(s) for {', '.join(missing)} "
                         f"(it needs one per edit type: {', '.join(EDIT_TYPES)})")
    prompts: dict[str, str] = {}
    for edit_type in EDIT_TYPES:
        prompts[edit_type] = checked_template(data[edit_type], f"judge prompt file {path}, template {edit_type!r}")
    return prompts


def load_uge_prompt(path: Path) -> str:
    """The UGE template, used byte for byte: from the official `UGE_bench.py` (its module-level string
    `prompt`, read with `ast`, never run) or from a UTF-8 text file holding the template itself."""
    path = Path(path)
    if path.suffix == ".py":
        return _template_in_script(path, read_text(path, "UGE judge script", MAX_JSON_BYTES))
    return checked_template(read_text(path, "UGE judge template", MAX_JSON_BYTES), f"UGE judge template {path}")


def _template_in_script(path: Path, source: str) -> str:
    """The string assigned to `prompt` at the top level of the official script (the last such assignment, as
    Python would leave it); the script is untrusted, so it is parsed, never executed."""
    import ast

    try:
        tree = ast.parse(source, filename=str(path))
    except TOO_DEEP:
        raise InputError(too_deep(path, "UGE judge script") + f"; pass the official {UGE_SCRIPT} or a text file of "
                         "the template") from None
    except (SyntaxError, ValueError) as exc:
        raise InputError(f"UGE judge script {path} is not valid Python ({exc.__class__.__name__}); pass the "
                         f"official {UGE_SCRIPT} or a text file of the template") from None
    found: object = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == UGE_TEMPLATE_NAME
                                                for t in node.targets):
            found = node.value.value if isinstance(node.value, ast.Constant) else node.value
    if found is None:
        raise InputError(f"UGE judge script {path} assigns no string to `{UGE_TEMPLATE_NAME}` at its top level, "
                         f"where the official {UGE_SCRIPT} keeps the template")
    if not isinstance(found, str):
        raise InputError(f"UGE judge script {path}: `{UGE_TEMPLATE_NAME}` is not a plain string literal, so it "
                         "cannot be read without running the script; pass a text file of the template")
    return checked_template(found, f"UGE judge template in {path}")


def checked_template(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise InputError(f"{where} must be a string, not {type(value).__name__}")
    count = value.count(PLACEHOLDER)
    if count != 1:
        raise InputError(f"{where} must hold the placeholder {PLACEHOLDER} exactly once (found {count})")
    return value


@lru_cache(maxsize=1)
def _official_fingerprints() -> dict:
    raw = resources.files("pytest_editeval").joinpath("benchmarks/prompts/imgedit_prompt_hashes.json").read_text("utf-8")
    return json.loads(raw)


def reply_labels(edit_type: str) -> tuple[str, ...]:
    """The three score labels the official template of `edit_type` asks for (e.g. 'Prompt Compliance')."""
    return tuple(_official_fingerprints()["basic"][edit_type]["reply_labels"])


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def fingerprint_mismatches(prompts: Mapping[str, str]) -> list[str]:
    """Warnings, one per template that is not the official text (UTF-8 SHA-256 against the packaged
    fingerprints). A mismatch is allowed (a user may judge with their own wording), but such scores are not
    comparable with published numbers."""
    official = _official_fingerprints()["basic"]
    return [_mismatch(f"template {name!r}", text, official[name]) for name, text in prompts.items()
            if name in official and sha256_text(text) != official[name]["sha256"]]


def uge_fingerprint_mismatches(template: str) -> list[str]:
    official = _official_fingerprints()["uge"]
    return [] if sha256_text(template) == official["sha256"] else [_mismatch("UGE template", template, official)]


def _mismatch(what: str, text: str, official: Mapping) -> str:
    hints = []
    if len(text) != official["chars"]:
        hints.append(f"{len(text)} characters, official {official['chars']}")
    stripped = (official.get("starts_with_newline") and not text.startswith("\n")) or \
        (official.get("ends_with_newline") and not text.endswith("\n"))
    if stripped:
        hints.append("leading/trailing newline missing: stripped?")
    detail = f" ({'; '.join(hints)})" if hints else ""
    return (f"ImgEdit-Bench judge {what} is not the official text{detail}: scores are not comparable with "
            "published numbers")


# ---------------------------------------------------------------------------------------------------------------
# The judge call, the reply, the scores


def question(row: ImgEditRow, template: str) -> Question:
    """The row's one judge call, as basic_bench.py (and UGE_bench.py) send it: the template with the row's
    prompt in place of `<edit_prompt>` (str.replace, nothing stripped), then the original, then the edited
    image, both as their files' raw bytes labelled image/png (the originals are JPEG: bug reproduced)."""
    if row.problem is not None:
        raise ValueError(f"row {row.key!r} has a problem and cannot be judged: {row.problem}")
    return Question(QUESTION_NAME, (
        template.replace(PLACEHOLDER, row.prompt),
        ImageRef(input_image(0), recipe="raw", mime="image/png"),
        ImageRef(EDITED, recipe="raw", mime="image/png"),
    ))


def template_for(row: ImgEditRow, prompts: Mapping[str, str]) -> str:
    """The template that judges `row` (edit_type already mapped from 'alter'). `prompts` is what
    load_judge_prompts returns; add the UGE template under UGE_TYPE to judge UGE rows."""
    return prompts[row.edit_type]


def parse_official(text: str | None, *, check_range: bool = True) -> list[int]:
    """The sub-scores of a reply, by step1_get_avgscore.py's rule: for each line (str.splitlines), strip it,
    split it on ': ', keep it if that gives exactly two parts and the second `.isdigit()`, take int().

    Raises UnreadableReply (the plugin re-asks) when no line is kept, and, unless `check_range` is False,
    when a kept value is outside 1..5 (the official script accepts `Label: 9`: PROTOCOL.md bug 4). A digit
    that int() cannot read (e.g. '²', which isdigit() accepts; the official script crashes on it) is
    unreadable too. Linear in the reply's length."""
    if text is None or not text.strip():
        raise UnreadableReply("empty reply")
    values: list[int] = []
    for line in text.splitlines():
        parts = line.strip().split(": ")
        if len(parts) != 2 or not parts[1].isdigit():
            continue
        try:
            value = int(parts[1])
        except ValueError:  # superscripts and other non-decimal digits, or more digits than int() accepts
            raise UnreadableReply(f"a score line int() cannot read: {_excerpt(line)}") from None
        if check_range and not SCORE_RANGE[0] <= value <= SCORE_RANGE[1]:
            raise UnreadableReply(f"score {value} outside {SCORE_RANGE[0]}..{SCORE_RANGE[1]}: {_excerpt(line)}")
        values.append(value)
    if not values:
        raise UnreadableReply(f"no '<Label>: <digits>' line in reply: {_excerpt(text)}")
    return values


def mean_score(values: Iterable[int]) -> float:
    """The unrounded mean of a reply's sub-scores."""
    values = list(values)
    if not values:
        raise ValueError("no sub-scores to average")
    return sum(values) / len(values)


def row_score(values: Iterable[int]) -> float:
    """A row's score as step1 stores it: round(mean of the kept sub-scores, 2) (however many were kept)."""
    return round(mean_score(values), 2)


def type_scores(row_scores: Mapping[str, tuple[str, float]], *, rounded: bool = True) -> dict[str, float]:
    """Per edit type, the mean of its rows' scores (`row_scores`: key -> (edit_type, score) of SCORED rows
    only: errors and unreadable rows are left out, never counted as 0). As step2_typescore.py: pass
    `row_score` values and keep `rounded` for the published numbers (round 2 dp); pass `mean_score` values
    with rounded=False for fully unrounded ones. Types without a scored row are absent; EDIT_TYPES order."""
    by_type: dict[str, list[float]] = {}
    for edit_type, score in row_scores.values():
        by_type.setdefault(edit_type, []).append(score)
    order = [t for t in EDIT_TYPES if t in by_type] + sorted(set(by_type) - set(EDIT_TYPES))
    means = {t: sum(by_type[t]) / len(by_type[t]) for t in order}
    return {t: round(m, 2) for t, m in means.items()} if rounded else means


def overall_type_mean(scores_by_type: Mapping[str, float], *, rounded: bool = True) -> float | None:
    """THE OFFICIAL HEADLINE ("Overall" of the ImgEdit leaderboard): the unweighted mean of the type scores,
    each type counting once whatever its row count. With fewer than nine types it is the mean of those
    present (say so when reporting). None without any type."""
    if not scores_by_type:
        return None
    value = sum(scores_by_type.values()) / len(scores_by_type)
    return round(value, 2) if rounded else value


def sample_mean(row_scores: Mapping[str, tuple[str, float]], *, rounded: bool = True) -> float | None:
    """The sample-weighted mean of all scored rows' scores (BAGEL's and lmms-eval's "overall", and the UGE
    suite's official score); NOT the leaderboard headline. None without any scored row."""
    if not row_scores:
        return None
    value = sum(score for _, score in row_scores.values()) / len(row_scores)
    return round(value, 2) if rounded else value


# ---------------------------------------------------------------------------------------------------------------
# The model's output


def output_name(row: ImgEditRow) -> str:
    """The edited image's file name in the one flat output folder, as basic_bench.py reads it."""
    return f"{row.key}.png"


def edited_images_in_folder(folder: Path, keys: Iterable[str]) -> dict[str, Path]:
    """Image mode: `<key>.png` files of a flat folder, for the keys asked (other files are ignored, absent
    keys are absent). A symlink that leaves the folder is refused with an InputError."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise InputError(f"ImgEdit-Bench edited images: {folder} is not a folder (expected one flat folder of "
                         "<key>.png files)")
    root = folder.resolve()
    found: dict[str, Path] = {}
    for key in keys:
        if not _SAFE_KEY.fullmatch(key):
            continue  # a refused key's row is already an error row
        path = folder / f"{key}.png"
        if path.is_symlink():
            try:
                target = path.resolve(strict=True)
            except (OSError, RuntimeError):
                raise InputError(f"{path}: broken or looping symlink") from None
            if not target.is_relative_to(root):
                raise InputError(f"{path}: a symlink that leaves {folder} is refused (it points to {target})")
        if path.is_file():
            found[key] = path
    return found


def _excerpt(text: str, limit: int = 120) -> str:
    flat = " ".join(text[: limit * 4].split())
    return repr(flat if len(flat) <= limit else flat[: limit - 3] + "...")
