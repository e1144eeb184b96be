"""Reading the files the product is given (row indexes, prompt files, templates, saved runs, shard files, cache
entries, images) as untrusted input: regular files only (a FIFO or a device would block or never end), size-capped
before parsing, parsed with a bounded depth (a file nested deeper than the parser's recursion limit is one line,
not a RecursionError), one JSON object required, repeated names reported (the last value wins, as `json.load`
does), every failure one line naming the file."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

from pytest_editeval.errors import InputError

# What a parser raises on input nested deeper than it can follow: json and ast raise RecursionError, CPython's
# parser MemoryError ("parser stack overflow") for some shapes (a long run of unary minus signs).
TOO_DEEP = (RecursionError, MemoryError)


class NotRegularFile(OSError):
    """A FIFO, device, socket or folder where a file was expected: never opened for reading."""


def open_regular(path: Path):
    """`path` opened for binary reading, only when it is a regular file: opening does not block (a FIFO without
    a writer would wait forever) and the kind is checked on the open file, so a swap after a check cannot fool it."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegularFile(0, "not a regular file (a FIFO, device, socket or folder)")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes_capped(path: Path, max_bytes: int) -> bytes | None:
    """A regular file's bytes, or None when it holds more than `max_bytes` (never more than that is read);
    OSError (NotRegularFile for a FIFO or device) when it cannot be read."""
    with open_regular(path) as fh:
        raw = _read_at_most(fh, max_bytes)
    return None if raw is None or len(raw) > max_bytes else raw


def _read_at_most(fh, max_bytes: int) -> bytes | None:
    """None when the file's size is already over the cap (nothing is read); else at most one byte more."""
    if os.fstat(fh.fileno()).st_size > max_bytes:
        return None
    return fh.read(max_bytes + 1)


MAX_CONFIG_BYTES = 16 << 20  # a configuration file (a judge panel, a pyproject.toml) is a few KB


def config_text(path: Path, max_bytes: int = MAX_CONFIG_BYTES) -> str:
    """A configuration file's UTF-8 text, for callers that word their own messages: OSError (FileNotFoundError,
    NotRegularFile, or EFBIG when over `max_bytes`, unread) or UnicodeDecodeError as reading would raise."""
    raw = read_bytes_capped(path, max_bytes)
    if raw is None:
        raise OSError(errno.EFBIG, f"over {max_bytes:,} bytes, more than any real one holds: not read")
    return raw.decode("utf-8")


def read_capped(path: Path, what: str, max_bytes: int) -> bytes:
    """The file's bytes, never more than `max_bytes` read; every failure one line naming the file."""
    try:
        with open_regular(path) as fh:
            raw = _read_at_most(fh, max_bytes)
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if raw is None or len(raw) > max_bytes:
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
    except TOO_DEEP:
        raise InputError(too_deep(path, what)) from None
    except ValueError as exc:
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise InputError(f"{what} {path} is not valid JSON ({reason})") from None
    if not isinstance(data, dict):
        raise InputError(f"{what} {path} must hold one JSON object, not a {type(data).__name__}")
    return data, duplicates


def too_deep(path: Path, what: str) -> str:
    """The one line for a file nested deeper than a parser follows (no real file of ours comes near)."""
    return f"{what} {path} is nested too deeply to be read (no real one is): not read"


def repeated_names_warning(path: Path, duplicates: list[str]) -> list[str]:
    """The one line that says a JSON object named something twice (empty when it did not): the earlier value is
    lost, as the official scripts' `json.load` loses it, and that is never silent."""
    if not duplicates:
        return []
    from pytest_editeval.data.paths import shown

    listed = ", ".join(shown(d) for d in duplicates[:5]) + (" ..." if len(duplicates) > 5 else "")
    return [f"{path}: {len(duplicates)} repeated name(s) in a JSON object ({listed}); the last value is used, "
            "as the official scripts' json.load does"]
