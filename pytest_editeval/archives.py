"""Safe extraction of a downloaded tar archive (e.g. ImgEdit-Bench's ``Benchmark.tar``).

Everything in an archive is untrusted. Before a byte is written, every member is checked: no absolute path,
no ``..``, no control character, no link, device or FIFO, nothing that would land outside the target, and
caps on the member count, each member's size and the total size. One bad member refuses the whole archive
with an InputError naming the archive and the member.

Members are written by this module (never by ``tarfile.extract``), so no owner, mode, time or link from the
archive reaches the disk. Extraction goes into a hidden temporary sibling folder that is renamed into place
when complete: an interrupted run leaves only a ``.partial`` folder, never a half folder that looks finished.
The finished folder's name carries a fingerprint of the archive (name, size, mtime) and of the member
prefix, so a second call finds it and does nothing, and a changed archive is extracted afresh.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .errors import InputError

DEFAULT_MAX_TOTAL_BYTES = 4 << 30  # the real Benchmark.tar is a few hundred MB
DEFAULT_MAX_MEMBER_BYTES = 100 << 20
DEFAULT_MAX_MEMBERS = 50_000
_COPY_CHUNK = 1 << 20


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
                max_member_bytes: int = DEFAULT_MAX_MEMBER_BYTES) -> Path:
    """Extract `tar_path` under the folder `target` and return the finished folder (member paths are relative
    to it). `members_under` (e.g. "Benchmark/singleturn") extracts only the members below that folder; the
    others are still counted and their names checked, but never written."""
    tar_path = Path(tar_path)
    if not tar_path.is_file():
        raise InputError(f"archive {tar_path} does not exist or is not a file")
    final = extracted_folder(tar_path, target, members_under=members_under)
    if final.is_dir():
        return final  # finished earlier: only a complete extraction is ever renamed to this name
    prefix = _clean_prefix(members_under)
    try:
        with tarfile.open(tar_path, "r:*") as archive:
            plan = _plan(archive, tar_path, prefix, max_total_bytes, max_members, max_member_bytes)
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
    total = 0
    count = 0
    # Iterating reads one header at a time, so an archive with millions of members is refused early.
    for member in archive:
        count += 1
        if count > max_members:
            raise InputError(f"archive {tar_path} has more than {max_members} members (refused at {member.name!r})")
        relative = _member_path(member.name, tar_path)
        if relative is None:
            continue  # the archive's root itself ("." or "./")
        if relative.parts[:len(prefix_parts)] != prefix_parts:
            continue
        where = f"archive {tar_path}, member {member.name!r}"
        if member.issym() or member.islnk():
            raise InputError(f"{where}: links are refused (points to {member.linkname!r})")
        if not (member.isreg() or member.isdir()):
            raise InputError(f"{where}: only regular files and folders are extracted (this is a device, FIFO "
                             "or other special member)")
        if member.isreg():
            if member.size > max_member_bytes:
                raise InputError(f"{where}: {member.size} bytes exceeds the per-member cap of {max_member_bytes}")
            total += member.size
            if total > max_total_bytes:
                raise InputError(f"{where}: the archive's content exceeds the total cap of {max_total_bytes} bytes")
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
            with source, open(destination, "wb") as out:  # a later duplicate name replaces the earlier, as tar does
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
