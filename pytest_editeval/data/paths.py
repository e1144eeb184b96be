"""Names and paths that come from outside (dataset keys, task types, file names in a user's JSONL): what makes
one unsafe to use as a file name, and whether a path stays inside the folder it belongs to.

Dataset fields become file names in the model-mode output layout, so a key of `../../x` or `/tmp/x` would
write outside the output folder. Such a row is an error row with the reason; it never becomes a path.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

MAX_NAME_BYTES = 200


def unsafe_name_reason(value: object) -> str | None:
    """Why `value` cannot be one path component (a file or folder name), or None when it can."""
    if not isinstance(value, str) or not value:
        return "is empty or not text"
    if "/" in value or "\\" in value:
        return "contains a path separator"
    if ".." in value:
        return "contains '..'"
    if value.startswith("."):
        return "starts with a dot"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return "contains a NUL or control character"
    if len(value.encode("utf-8", errors="replace")) > MAX_NAME_BYTES:
        return f"is over {MAX_NAME_BYTES} bytes"
    return None


def printable(value: object, limit: int | None = None) -> str:
    """An untrusted text (an id, a key, a name) as it may reach a terminal or a log: every character that
    str.isprintable() refuses (C0 and C1 controls such as U+009B, which a terminal reads as an escape sequence,
    bidirectional overrides such as U+202E, which reorder what is shown, zero-width and other format characters,
    lone surrogates) is written as its escape (\\x9b, \\u202e); shortened to `limit` characters with "...".
    The one helper for text without quotes; `shown` is the same rule, quoted (repr applies it)."""
    text = value if isinstance(value, str) else str(value)
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)
    return text if limit is None or len(text) <= limit else text[: limit - 3] + "..."


def shown(value: object, limit: int = 60) -> str:
    """An untrusted value as it may be printed, quoted: repr() escapes exactly what `printable` escapes, and it
    is shortened."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def stand_in_name(kind: str, value: object) -> str:
    """A safe, stable name for an unsafe value (test ids, file names): kind plus a hash of the value."""
    return f"bad-{kind}-{hashlib.sha256(repr(value).encode()).hexdigest()[:12]}"


def first_file_inside(folder: Path, candidates) -> Path | None:
    """The first of `candidates` that is a file (None if none is); one that is a link leading out of `folder` is
    refused (InputError): a results folder must not make the judge read arbitrary files."""
    from pytest_editeval.errors import InputError

    base = folder.resolve()
    for candidate in candidates:
        if candidate.is_file():
            if not candidate.resolve().is_relative_to(base):
                raise InputError(f"{candidate} is a link to {candidate.resolve()}, outside {folder}: copy the image "
                                 "into the folder instead")
            return candidate
    return None


def is_inside(path: Path, root: Path) -> bool:
    """Whether `path`, with every symlink resolved, lies within `root` (also resolved)."""
    return path.resolve().is_relative_to(root.resolve())
