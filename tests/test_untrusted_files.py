"""Files from outside cannot exhaust the machine or lead the product elsewhere: archives (every member and
header counted, bounded in bytes and time), names given twice, deeply nested or huge data files, ids printed
to the terminal, images a shard file names, the cache's image digest, and a cache folder that misbehaves."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from pytest_editeval import archives
from pytest_editeval.archives import extract_tar
from pytest_editeval.errors import InputError

# ---------------------------------------------------------------------------------------------------------------
# Archives


class _Zeros(io.RawIOBase):
    """`size` zero bytes, streamed: a member that decompresses to a lot without being held in memory here."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


def _bomb(path: Path, members: list[tuple[str, int]], fmt: int = tarfile.GNU_FORMAT) -> Path:
    """A bzip2 tar (whatever its name says) of members of zeros: tiny on disk, large decompressed."""
    with tarfile.open(path, "w:bz2", format=fmt) as archive:
        for name, size in members:
            info = tarfile.TarInfo(name)
            info.size = size
            archive.addfile(info, io.BufferedReader(_Zeros(size)))
    return path


@pytest.fixture
def decompressed(monkeypatch):
    """Records every read the bounded stream makes of the decompressor: (total bytes, largest single read)."""
    seen = {"total": 0, "largest": 0}
    real = archives._BoundedStream._read_source

    def counting(self, size):
        data = real(self, size)
        seen["total"] += len(data)
        seen["largest"] = max(seen["largest"], size)
        return data

    monkeypatch.setattr(archives._BoundedStream, "_read_source", counting)
    return seen


def test_members_outside_the_wanted_folder_count_and_decompression_stops_at_the_cap(tmp_path, decompressed):
    cap = 1 << 20
    tar = _bomb(tmp_path / "Benchmark.tar", [("Benchmark/singleturn/singleturn.json", 2),
                                             *((f"Benchmark/other/zeros-{i}", cap // 2) for i in range(16))])
    assert tar.stat().st_size < 4000  # 8 MiB of members in a few KB
    with pytest.raises(InputError) as caught:
        extract_tar(tar, tmp_path / "out", members_under="Benchmark/singleturn", max_total_bytes=cap)
    message = str(caught.value)
    assert "\n" not in message and str(tar) in message and "Benchmark/other/zeros-1" in message
    assert f"total cap of {cap} bytes (every member counts, not only those extracted)" in message
    # The member over the cap is refused from its header: its content is never decompressed.
    assert decompressed["total"] <= cap + 8 * tarfile.BLOCKSIZE
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_huge_long_name_header_is_refused_before_it_is_read(tmp_path, decompressed):
    name = "Benchmark/other/" + "n" * (4 << 20)  # a GNU long-name header of 4 MiB
    tar = _bomb(tmp_path / "Benchmark.tar", [("Benchmark/singleturn/singleturn.json", 2), (name, 1)])
    with pytest.raises(InputError) as caught:
        extract_tar(tar, tmp_path / "out", members_under="Benchmark/singleturn", max_header_bytes=64 << 10)
    message = str(caught.value)
    assert "\n" not in message and len(message) < 400
    assert message.startswith(f"archive {tar} refused: a header of ") and "over the cap of 65536 bytes" in message
    assert decompressed["largest"] <= 64 << 10 and decompressed["total"] < 64 << 10


def test_pax_headers_count_against_the_total(tmp_path):
    name = "Benchmark/other/" + "p" * 3000  # a pax header of about 3 KB
    tar = _bomb(tmp_path / "Benchmark.tar", [("Benchmark/singleturn/singleturn.json", 2), (name, 0)],
                fmt=tarfile.PAX_FORMAT)
    with pytest.raises(InputError, match="members and headers exceed the total cap of 2000 bytes"):
        extract_tar(tar, tmp_path / "out", members_under="Benchmark/singleturn", max_total_bytes=2000)


def test_reading_an_archive_has_a_time_cap(tmp_path):
    tar = _bomb(tmp_path / "Benchmark.tar", [(f"Benchmark/singleturn/f{i}", 10) for i in range(50)])
    ticks = iter(range(10**6))  # a clock that advances one second each time it is read
    with pytest.raises(InputError) as caught:
        extract_tar(tar, tmp_path / "out", max_seconds=20, clock=lambda: float(next(ticks)))
    assert str(caught.value) == (f"archive {tar} refused: reading it took longer than the time cap (is it a "
                                 "decompression bomb?)")
    assert next(ticks) < 40  # it stopped at the cap, not at the end of the archive


def test_a_name_given_twice_in_an_archive_is_refused_not_replaced(tmp_path):
    path = tmp_path / "Benchmark.tar"
    with tarfile.open(path, "w") as archive:
        for data in (b"first", b"second"):
            info = tarfile.TarInfo("Benchmark/singleturn/singleturn.json")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    with pytest.raises(InputError) as caught:
        extract_tar(path, tmp_path / "out")
    assert str(caught.value) == (f"archive {path}, member 'Benchmark/singleturn/singleturn.json': the archive "
                                 "holds this name twice, so one copy would silently replace the other; refused "
                                 "(download the archive again)")
