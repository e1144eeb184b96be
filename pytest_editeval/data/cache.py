"""A content-addressed store for judge verdicts (and, later, generated images).

Keys are SHA-256 hashes of a canonical JSON of everything that determines the value (never a secret).
Writes are atomic (temporary file in the same folder, fsync, rename), so a process killed at any moment
leaves either a complete entry or none. Each entry carries a checksum of its payload: a corrupt or truncated
entry is detected, ignored and recomputed, never trusted. A per-entry file lock (filelock) makes several
processes (xdist workers, two CI jobs sharing a cache) compute each entry once: whoever holds the lock
computes; the others either skip ahead (speculative work) or wait and then read the result.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pytest_editeval.data.jsonfile import TOO_DEEP, read_bytes_capped
from pytest_editeval.errors import CacheWriteError

FORMAT = 1
MAX_ENTRY_BYTES = 16 << 20  # an entry holds one judge reply (capped far below this) and its parse


class _Deferred:
    def __repr__(self) -> str:
        return "DEFERRED"


# Returned by a non-blocking compute when another process holds the entry's lock.
DEFERRED = _Deferred()
# Where a payload came from (Cache.lookup / get_or_compute `origin`).
HIT, SHARED, COMPUTED = "hit", "shared", "computed"


def cache_key(identity: dict) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _checksum(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class Cache:
    """`root=None` disables the cache (neither read nor write). `fresh_after`: entries written before this
    Unix time are ignored and recomputed (--editeval-refresh), entries written during this run are trusted,
    so that xdist workers of a refreshing run still share their work.

    `shared_after`: in an xdist worker, the run's start time; an entry written after it was computed by a
    sibling worker during this run, and is counted as `shared`, not as a hit, so that a cold run reads
    "0 hits, N computed" whatever the number of workers."""

    def __init__(self, root: Path | None, fresh_after: float | None = None,
                 shared_after: float | None = None) -> None:
        self.root = root
        self.fresh_after = fresh_after
        self.shared_after = shared_after
        self.hits = 0
        self.shared = 0
        self.misses = 0  # entries computed (and stored) by this process
        self.corrupt = 0
        self.write_errors: list[str] = []
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.root is not None

    def path(self, kind: str, key: str) -> Path:
        assert self.root is not None
        return self.root / kind / key[:2] / f"{key}.json"

    def get(self, kind: str, key: str, *, count_corrupt: bool = True) -> dict | None:
        entry = self._entry(kind, key, count_corrupt=count_corrupt)
        return None if entry is None else entry["payload"]

    def _entry(self, kind: str, key: str, *, count_corrupt: bool = True) -> dict | None:
        if self.root is None:
            return None
        path = self.path(kind, key)
        try:
            # A regular file only (a FIFO put in the cache would block the run) of a bounded size, read as
            # untrusted: anything else is an invalid entry, recomputed and replaced.
            raw = read_bytes_capped(path, MAX_ENTRY_BYTES)
            entry = json.loads(raw) if raw is not None else None
            valid = (entry.get("format") == FORMAT and entry.get("key") == key
                     and entry.get("sha256") == _checksum(entry.get("payload")))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, AttributeError, *TOO_DEEP):
            valid = False
        if not valid:
            if count_corrupt:
                with self._lock:
                    self.corrupt += 1
            return None
        if self.fresh_after is not None and entry.get("created", 0) < self.fresh_after:
            return None
        return entry

    def _count_found(self, entry: dict, origin: list | None = None, count: bool = True) -> None:
        found = SHARED if self.shared_after is not None and entry.get("created", 0) >= self.shared_after else HIT
        if count:
            self.count_found(found)
        if origin is not None:
            origin.append(found)

    def count_found(self, found: str, n: int = 1) -> None:
        """Count `n` entries read (HIT or SHARED). Callers that may read an entry for work another process
        reports (an xdist worker judging ahead) look up with count=False and count here once the work is theirs."""
        with self._lock:
            if found == SHARED:
                self.shared += n
            else:
                self.hits += n

    def lookup(self, kind: str, key: str, origin: list | None = None, count: bool = True) -> dict | None:
        """`get`, counted as a hit (or as shared, see the class) when found; `origin` gets which (HIT, SHARED)."""
        entry = self._entry(kind, key)
        if entry is None:
            return None
        self._count_found(entry, origin, count)
        return entry["payload"]

    def put(self, kind: str, key: str, payload: dict) -> None:
        if self.root is None:
            return
        path = self.path(kind, key)
        entry = {"format": FORMAT, "key": key, "created": time.time(), "sha256": _checksum(payload),
                 "payload": payload}
        try:
            write_atomic(path, json.dumps(entry, ensure_ascii=False).encode("utf-8"), durable=True)
        except OSError as exc:
            raise CacheWriteError(self._unwritable(exc)) from None

    def _unwritable(self, exc: OSError) -> str:
        """Record why the cache cannot be written (said once in the summary, however many entries it hit)."""
        message = f"cannot write cache entry under {self.root}: {exc.strerror or exc}; " \
                  "free some space, make the folder writable or pass --editeval-cache-dir / --editeval-no-cache"
        with self._lock:
            self.write_errors.append(message)
        return message

    def _computed_only(self, compute, origin: list | None):
        """Compute without storing (no cache, or a cache folder that cannot be written), counted as computed."""
        payload = compute()
        with self._lock:
            self.misses += 1
        if origin is not None:
            origin.append(COMPUTED)
        return payload

    def get_or_compute(self, kind: str, key: str, compute: Callable[[], dict], *, blocking: bool = True,
                       checked: bool = False, origin: list | None = None, count: bool = True):
        """The cached payload, else compute, store and return it. Non-blocking: DEFERRED when another
        process is computing the same entry right now. `checked`: the caller has just looked it up. `origin`
        gets where the payload came from: HIT (a run before this one), SHARED (another process of this run) or
        COMPUTED. `count`: as for `lookup` (entries computed here are always counted: this process asked)."""
        entry = None if checked else self._entry(kind, key)
        if entry is not None:
            self._count_found(entry, origin, count)
            return entry["payload"]
        if self.root is None:
            return self._computed_only(compute, origin)
        from filelock import FileLock, Timeout

        lock_path = self.path(kind, key).with_suffix(".lock")
        lock = FileLock(str(lock_path), thread_local=False)
        try:
            lock_path.parent.mkdir(parents=True, exist_ok=True)
            lock.acquire(timeout=-1 if blocking else 0)
        except Timeout:
            return DEFERRED
        except OSError as exc:  # a read-only or full cache folder: the value is computed, not stored (one line)
            self._unwritable(exc)
            return self._computed_only(compute, origin)
        try:
            entry = self._entry(kind, key, count_corrupt=False)  # somebody may have finished it meanwhile
            if entry is not None:
                self._count_found(entry, origin, count)
                return entry["payload"]
            payload = compute()
            with self._lock:
                self.misses += 1
            if origin is not None:
                origin.append(COMPUTED)
            try:
                self.put(kind, key, payload)
            except CacheWriteError:
                pass  # the value is still good for this run; the error is reported in the summary
            return payload
        finally:
            lock.release()


def write_atomic(path: Path, data: bytes, *, durable: bool = False) -> None:
    """Write via a temporary file in the same folder and a rename: readers see the old file or the whole new
    one, never a part. `durable` fsyncs first, so that a crash cannot leave an empty file behind the rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def file_identity(path: Path) -> dict:
    """What identifies a file's content without reading it: path, size and modification time (as git's index)."""
    stat = path.stat()
    return {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def memoised_sha256(cache: Cache, identity: dict, load: Callable[[], bytes] | None = None, *,
                    path: Path | None = None) -> tuple[str, bytes | None]:
    """SHA-256 of some bytes (`load()`) or of a file streamed in chunks (`path`, for multi-GB weights),
    memoised in the cache under `identity` (e.g. a file's identity), so that cached runs need not read or hash
    hundreds of MB. Returns (digest, the bytes if `load` had to be called)."""
    key = cache_key(identity)
    memo = cache.get("digests", key)
    if memo is not None:
        return memo["sha256"], None
    data = None
    if path is not None:
        hasher = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                hasher.update(chunk)
        digest = hasher.hexdigest()
    else:
        data = load()
        digest = hashlib.sha256(data).hexdigest()
    try:
        cache.put("digests", key, {"sha256": digest})
    except CacheWriteError:
        pass  # reported with the other cache write errors; the digest is still right
    return digest, data

def folder_identity(folder: Path, cache: Cache) -> str:
    """A hash of the folder's files (names and content); each file's digest is memoised by its identity, so
    that multi-GB weights are read once, not on every run."""
    parts = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and ".cache" not in p.parts):
        digest, _ = memoised_sha256(cache, {"kind": "file", **file_identity(path)}, path=path)
        parts.append(f"{path.relative_to(folder).as_posix()}:{digest}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()

