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


# ---------------------------------------------------------------------------------------------------------------
# Names given twice, and ids printed to the terminal

def _plugin_run(pytester, monkeypatch, judge, tmp_path):
    from .conftest import API_KEY

    monkeypatch.setenv("EDITEVAL_JUDGE_API_KEY", API_KEY)

    def run(benchmark: str, dataset: Path, images: Path, *args: str):
        return pytester.runpytest(f"--editeval-benchmark={benchmark}", f"--editeval-dataset={dataset}",
                                  f"--editeval-images={images}", f"--editeval-judge-url={judge.url}",
                                  f"--editeval-cache-dir={tmp_path / 'cache'}", "--editeval-judge-backoff=0.01",
                                  "-p", "no:cacheprovider", *args)

    return run


def test_a_kris_id_given_twice_is_said_in_one_line(pytester, monkeypatch, judge, tmp_path):
    import json

    from pytest_editeval.testing import kris_factory as kris

    from .conftest import output_of

    rows = kris.make_kris_dataset(tmp_path / "dl", rows_per_category=2, categories=("color_change",))
    annotation = tmp_path / "dl" / "KRIS_Bench" / "color_change" / "annotation.json"
    entries = json.loads(annotation.read_text("utf-8"))
    # The second row's id given twice: json.load keeps the last, so one row of the file is lost.
    annotation.write_text('{"1": %s, "2": %s, "2": %s}' % (json.dumps(entries["1"]), json.dumps(entries["1"]),
                                                            json.dumps(entries["2"])), encoding="utf-8")
    judge.scores, judge.reply = (lambda call: []), kris.kris_reply
    result = _plugin_run(pytester, monkeypatch, judge, tmp_path)(
        "kris", tmp_path / "dl", kris.write_kris_edits(tmp_path / "edits", rows))
    text = output_of(result)
    assert result.ret == 0, text
    lines = [line for line in text.splitlines() if "repeated name" in line]
    assert lines == [f"editeval: {annotation}: 1 repeated name(s) in a JSON object ('2'); the last value is used, "
                     "as the official scripts' json.load does"]


def test_rows_repeated_in_a_dataset_and_hostile_ids_are_said_escaped(pytester, monkeypatch, judge, tmp_path):
    from pytest_editeval.testing import make_gedit_dataset, write_edited_images

    from .conftest import output_of

    hostile = "k\u009b31m\u202eevil"  # a C1 escape (CSI) and a right-to-left override
    rows = make_gedit_dataset(tmp_path / "dl", rows_per_subset=1, languages=("en",),
                              overrides={0: {"key": hostile}, 1: {"key": "abcdef0123"}, 2: {"key": "abcdef0123"}})
    edits = write_edited_images(tmp_path / "edits", rows[1:2] + rows[3:])
    result = _plugin_run(pytester, monkeypatch, judge, tmp_path)("gedit", tmp_path / "dl", edits)
    text = output_of(result)
    assert "\u009b" not in text and "\u202e" not in text
    missing = [line for line in text.splitlines() if line.startswith("MISSING:")]
    assert len(missing) == 1 and "en-background_change-k\\x9b31m\\u202eevil" in missing[0], text
    repeated = [line for line in text.splitlines() if "repeats" in line]
    assert repeated == ["editeval: the dataset repeats 1 row(s) (en-material_alter-abcdef0123): each copy after the "
                        "first is an error row; fix the dataset (a row must be unique by id and by key)"]
    assert "the dataset holds the row abcdef0123 twice; only the first is evaluated" in text
