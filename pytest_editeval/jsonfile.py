"""Reading a benchmark's JSON and text files (row indexes, prompt files, templates) as untrusted input:
size-capped before parsing, one JSON object required, repeated names reported (the last value wins, as
`json.load` does), every failure one line naming the file."""

from __future__ import annotations

import json
from pathlib import Path

from .errors import InputError


def read_capped(path: Path, what: str, max_bytes: int) -> bytes:
    """The file's bytes, never more than `max_bytes` read; every failure one line naming the file."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(max_bytes + 1)
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(raw) > max_bytes:
        raise InputError(f"{what} {path} is over {max_bytes:,} bytes, more than any real one holds: not read")
    return raw


def read_text(path: Path, what: str, max_bytes: int) -> str:
    """A capped UTF-8 text file (see read_capped)."""
    try:
        return read_capped(path, what, max_bytes).decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{what} {path} is not UTF-8 text") from None


def read_json_object(path: Path, what: str, max_bytes: int) -> tuple[dict, list[str]]:
    """(the object, the names that appeared twice in it). `what` names the file in messages."""
    if not path.is_file():
        raise InputError(f"{what} {path} does not exist")
    raw = read_capped(path, what, max_bytes)
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, object]]) -> dict:
        seen: dict = {}
        for name, value in items:
            if name in seen:
                duplicates.append(name)
            seen[name] = value
        return seen

    try:
        data = json.loads(raw.decode("utf-8"), object_pairs_hook=pairs)
    except UnicodeDecodeError:
        raise InputError(f"{what} {path} is not valid JSON (not UTF-8 text)") from None
    except (ValueError, RecursionError) as exc:
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise InputError(f"{what} {path} is not valid JSON ({reason})") from None
    if not isinstance(data, dict):
        raise InputError(f"{what} {path} must hold one JSON object, not a {type(data).__name__}")
    return data, duplicates


def repeated_names_warning(path: Path, duplicates: list[str]) -> list[str]:
    """The one line that says a JSON object named something twice (empty when it did not): the earlier value is
    lost, as the official scripts' `json.load` loses it, and that is never silent."""
    if not duplicates:
        return []
    from .paths import shown

    listed = ", ".join(shown(d) for d in duplicates[:5]) + (" ..." if len(duplicates) > 5 else "")
    return [f"{path}: {len(duplicates)} repeated name(s) in a JSON object ({listed}); the last value is used, "
            "as the official scripts' json.load does"]
