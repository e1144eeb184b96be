"""Safe extraction of a downloaded tar archive (e.g. ImgEdit-Bench's ``Benchmark.tar``).

Everything in an archive is untrusted. Before a byte is written, every member is checked: no absolute path,
no ``..``, no control character, no link, device or FIFO, no name given twice, nothing that would land outside
the target, and caps on the member count, each member's size and the total size. One bad member refuses the
whole archive with an InputError naming the archive and the member.

The caps hold for the whole archive, not only for the members under the wanted folder: a compressed archive is
read through `_BoundedStream`, which stops at the total cap (every member, every header and padding block counts),
refuses any header larger than `max_header_bytes` (a GNU long name or pax header is read into memory whole) and
gives up after `max_seconds`. So a small `.tar.bz2` that decompresses to terabytes, or a 1 GiB long-name header,
costs at most the caps, never the machine.

Members are written by this module (never by ``tarfile.extract``), so no owner, mode, time or link from the
archive reaches the disk. Extraction goes into a hidden temporary sibling folder that is renamed into place
when complete: an interrupted run leaves only a ``.partial`` folder, never a half folder that looks finished.
The finished folder's name carries a fingerprint of the archive (name, size, mtime) and of the member
prefix, so a second call finds it and does nothing, and a changed archive is extracted afresh.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import lzma
import os
import shutil
import tarfile
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pytest_editeval.errors import InputError

DEFAULT_MAX_TOTAL_BYTES = 4 << 30  # the real Benchmark.tar is a few hundred MB
DEFAULT_MAX_MEMBER_BYTES = 100 << 20
DEFAULT_MAX_MEMBERS = 50_000
DEFAULT_MAX_HEADER_BYTES = 1 << 20  # a real long name or pax header is a few hundred bytes
DEFAULT_MAX_SECONDS = 600.0  # reading the real archive takes seconds
_COPY_CHUNK = 1 << 20
_BLOCK = tarfile.BLOCKSIZE


class _Refused(tarfile.ReadError):
    """The bounded stream stopped reading: the message says which cap."""


@dataclass(frozen=True)
class _Planned:
    member: tarfile.TarInfo
    relative: PurePosixPath  # the member's clean path inside the target
    is_dir: bool


def extracted_folder(tar_path: Path, target: Path, *, members_under: str | None = None) -> Path:
    """Where `extract_tar` puts (or has put) this archive's contents: `target/<tar stem>-<fingerprint>`."""
    stat = tar_path.stat()
    identity = {"name": tar_path.name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                "members_under": _clean_prefix(members_under)}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    return target / f"{tar_path.stem}-{digest}"


def extract_tar(tar_path: Path, target: Path, *, members_under: str | None = None,
                max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES, max_members: int = DEFAULT_MAX_MEMBERS,
                max_member_bytes: int = DEFAULT_MAX_MEMBER_BYTES, max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
                max_seconds: float = DEFAULT_MAX_SECONDS, clock: Callable[[], float] = time.monotonic) -> Path:
    """Extract `tar_path` under the folder `target` and return the finished folder (member paths are relative
    to it). `members_under` (e.g. "Benchmark/singleturn") extracts only the members below that folder; the
    others are still counted against the caps and their names checked, but never written."""
    tar_path = Path(tar_path)
    if not tar_path.is_file():
        raise InputError(f"archive {tar_path} does not exist or is not a file")
    final = extracted_folder(tar_path, target, members_under=members_under)
    if final.is_dir():
        return final  # finished earlier: only a complete extraction is ever renamed to this name
    prefix = _clean_prefix(members_under)
    # Each member costs at most its header block and a padding block beyond what the plan counts.
    stream_cap = max_total_bytes + (max_members + 2) * 2 * _BLOCK
    try:
        with _BoundedStream(tar_path, stream_cap, max_header_bytes, clock() + max_seconds, clock) as stream, \
                tarfile.open(fileobj=stream, mode="r:") as archive:
            plan = _plan(archive, tar_path, prefix, max_total_bytes, max_members, max_member_bytes)
            stream.reading_members = True  # from here on, reads are member data (in chunks of _COPY_CHUNK)
            if not plan:
                what = f"no member under {prefix}/" if prefix else "no member"
                raise InputError(f"archive {tar_path} holds {what}: is it the right archive?")
            target.mkdir(parents=True, exist_ok=True)
            partial = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=target))
            try:
                _write(archive, tar_path, plan, partial)
                _publish(partial, final)
            finally:
                shutil.rmtree(partial, ignore_errors=True)  # gone after a rename; left over after a failure
    except _Refused as exc:
        raise InputError(f"archive {tar_path} refused: {exc}") from None
    except (tarfile.TarError, EOFError, zlib.error) as exc:  # zlib: a damaged .tar.gz
        raise InputError(f"cannot read archive {tar_path}: {exc} (is the download complete?)") from None
    except OSError as exc:
        raise InputError(f"cannot extract archive {tar_path} into {target}: {exc.strerror or exc}") from None
    return final


def _clean_prefix(prefix: str | None) -> str | None:
    if prefix is None:
        return None
    parts = [p for p in prefix.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise ValueError(f"members_under must name a folder inside the archive, not {prefix!r}")
    return "/".join(parts)


def _plan(archive: tarfile.TarFile, tar_path: Path, prefix: str | None, max_total_bytes: int, max_members: int,
          max_member_bytes: int) -> list[_Planned]:
    """Check every member and list those to write; raises before anything is written."""
    prefix_parts = tuple(prefix.split("/")) if prefix else ()
    plan: list[_Planned] = []
    written: set[PurePosixPath] = set()
    total = 0
    count = 0
    # Iterating reads one header at a time, so an archive with millions of members is refused early; each
    # member is counted before the stream moves past its content, so no member is decompressed beyond the caps.
    for member in archive:
        count += 1
        where = f"archive {tar_path}, member {member.name!r}"
        if count > max_members:
            raise InputError(f"archive {tar_path} has more than {max_members} members (refused at {member.name!r})")
        # Every member counts, extracted or not, and so do its long-name and pax headers (read into memory).
        total += member.size + max(0, member.offset_data - member.offset - _BLOCK)
        if total > max_total_bytes:
            raise InputError(f"{where}: the archive's members and headers exceed the total cap of {max_total_bytes} "
                             "bytes (every member counts, not only those extracted)")
        relative = _member_path(member.name, tar_path)
        if relative is None:
            continue  # the archive's root itself ("." or "./")
        if relative.parts[:len(prefix_parts)] != prefix_parts:
            continue
        if member.issym() or member.islnk():
            raise InputError(f"{where}: links are refused (points to {member.linkname!r})")
        if not (member.isreg() or member.isdir()):
            raise InputError(f"{where}: only regular files and folders are extracted (this is a device, FIFO "
                             "or other special member)")
        if member.isreg():
            if member.size > max_member_bytes:
                raise InputError(f"{where}: {member.size} bytes exceeds the per-member cap of {max_member_bytes}")
            if relative in written:  # tar would let the later copy replace the earlier one without a word
                raise InputError(f"{where}: the archive holds this name twice, so one copy would silently replace "
                                 "the other; refused (download the archive again)")
            written.add(relative)
        plan.append(_Planned(member, relative, member.isdir()))
    return plan


def _member_path(name: str, tar_path: Path) -> PurePosixPath | None:
    """The member's path relative to the target, or None for the archive root; InputError if unsafe."""
    where = f"archive {tar_path}, member {name!r}"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise InputError(f"{where}: control characters in a member name are refused")
    if name.startswith("/") or PurePosixPath(name).is_absolute():
        raise InputError(f"{where}: absolute paths are refused")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InputError(f"{where}: '..' in a member path is refused")
    return PurePosixPath(*parts) if parts else None


def _write(archive: tarfile.TarFile, tar_path: Path, plan: list[_Planned], partial: Path) -> None:
    root = partial.resolve()
    for item in plan:
        where = f"archive {tar_path}, member {item.member.name!r}"
        destination = root.joinpath(*item.relative.parts)
        # We never create links, so this only fails for names the checks above should already have refused;
        # it stays as the last line of defence.
        if not destination.resolve().is_relative_to(root):
            raise InputError(f"{where}: would be written outside the extraction folder")
        try:
            if item.is_dir:
                destination.mkdir(parents=True, exist_ok=True)
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            source = archive.extractfile(item.member)
            if source is None:
                raise InputError(f"{where}: cannot be read as a file")
            with source, open(destination, "wb") as out:  # exclusive: _plan refused names given twice
                shutil.copyfileobj(source, out, _COPY_CHUNK)
        except (FileExistsError, NotADirectoryError, IsADirectoryError):
            raise InputError(f"{where}: clashes with another member (a file and a folder of the same name)") from None


def _publish(partial: Path, final: Path) -> None:
    """Rename the complete extraction into place; if another process finished first, keep theirs."""
    try:
        os.rename(partial, final)
    except OSError:
        if not final.is_dir():
            raise


class _BoundedStream(io.RawIOBase):
    """The archive's decompressed bytes, as a seekable file for `tarfile`, that refuses (with `_Refused`) to
    go past `max_bytes`, to hand out a header larger than `max_header_bytes` in one read, or to go on after the
    `deadline`. Skipping forward in a compressed stream means decompressing: it is done here in chunks, so that
    the deadline is checked between them (the decompressors' own seek would run to the end unchecked)."""

    def __init__(self, path: Path, max_bytes: int, max_header_bytes: int, deadline: float,
                 clock: Callable[[], float]) -> None:
        super().__init__()
        self._file = open(path, "rb")
        magic = self._file.read(6)
        self._file.seek(0)
        self._source = _decompressed(self._file, magic)
        self.compressed = self._source is not self._file
        self.max_bytes, self.max_header_bytes = max_bytes, max_header_bytes
        self.deadline, self.clock = deadline, clock
        self.position = 0
        self.reading_members = False  # True while member data is copied: reads are then chunks, not headers

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def close(self) -> None:
        try:
            if self._source is not self._file:
                self._source.close()
            self._file.close()
        finally:
            super().close()

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self.max_bytes + 1 - self.position
        if not self.reading_members and size > self.max_header_bytes:
            raise _Refused(f"a header of {size} bytes at offset {self.position} is over the cap of "
                           f"{self.max_header_bytes} bytes (a GNU long name or pax header this large is not a real one)")
        self._check(self.position + size)
        data = self._read_source(size)
        self.position += len(data)
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = {io.SEEK_SET: offset, io.SEEK_CUR: self.position + offset}.get(whence)
        if target is None:
            raise io.UnsupportedOperation("only absolute and relative seeks")
        self._check(target)
        if not self.compressed:
            self.position = self._source.seek(target)
            return self.position
        if target < self.position:
            self._source.seek(0)  # a rewind: decompression starts again from the beginning (cheap to ask for)
            self.position = 0
        while self.position < target:
            self._check(target)
            data = self._read_source(min(_COPY_CHUNK, target - self.position))
            if not data:
                break
            self.position += len(data)
        return self.position

    def _check(self, end: int) -> None:
        if end > self.max_bytes:
            raise _Refused(f"it decompresses to more than {self.max_bytes} bytes, the cap for its members, "
                           "headers and padding together")
        if self.clock() > self.deadline:
            raise _Refused("reading it took longer than the time cap (is it a decompression bomb?)")

    def _read_source(self, size: int) -> bytes:
        try:
            return self._source.read(size)
        except (OSError, EOFError, lzma.LZMAError, zlib.error) as exc:  # a damaged compressed stream
            raise tarfile.ReadError(f"damaged compressed data ({exc})") from None


def _decompressed(raw, magic: bytes):
    """A reader of the decompressed bytes, by the file's own signature (as tarfile's "r:*" decides)."""
    if magic.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if magic.startswith(b"BZh"):
        return bz2.BZ2File(raw, "rb")
    if magic.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(raw, "rb")
    return raw
