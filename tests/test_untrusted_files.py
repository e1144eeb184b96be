"""Files from outside cannot exhaust the machine or lead the product elsewhere: archives (every member and
header counted, bounded in bytes and time), names given twice, deeply nested or huge data files, ids printed
to the terminal, images a shard file names, the cache's image digest, and a cache folder that misbehaves."""

from __future__ import annotations

import importlib
import io
import tarfile
from pathlib import Path

import pytest

from pytest_editeval.data import archives
from pytest_editeval.data.archives import extract_tar
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
    first, second = json.dumps(entries["1"]), json.dumps(entries["2"])
    annotation.write_text(f'{{"1": {first}, "2": {first}, "2": {second}}}', encoding="utf-8")
    judge.scores, judge.reply = (lambda call: []), kris.kris_reply
    result = _plugin_run(pytester, monkeypatch, judge, tmp_path)(
        "kris", tmp_path / "dl", kris.write_kris_edits(tmp_path / "edits", rows))
    text = output_of(result)
    assert result.ret == 0, text
    lines = [line for line in text.splitlines() if "repeated name" in line]
    assert lines == [f"editeval: {annotation}: 1 repeated name(s) in a JSON object ('2'); the last value is used, "
                     "as the official scripts' json.load does"]


def test_rows_repeated_in_a_dataset_and_hostile_ids_are_said_escaped(pytester, monkeypatch, judge, tmp_path):
    from pytest_editeval.testing.gedit_factory import make_gedit_dataset, write_edited_images

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


# ---------------------------------------------------------------------------------------------------------------
# Every file the product reads is size- and depth-capped


@pytest.mark.parametrize("body", ["1+" * 200_000 + "1", "-" * 200_000 + "1"])
def test_a_deeply_nested_uge_script_is_one_line(pytester, monkeypatch, judge, tmp_path, body):
    from pytest_editeval.testing import imgedit_factory as imgedit

    from .conftest import output_of

    rows = imgedit.make_imgedit_uge_dataset(tmp_path / "uge", script=False)
    script = tmp_path / "UGE_bench.py"
    script.write_text(f"prompt = {body}\n", encoding="utf-8")
    edits = imgedit.write_imgedit_edits(tmp_path / "edits", rows)
    result = _plugin_run(pytester, monkeypatch, judge, tmp_path)("imgedit-uge", tmp_path / "uge", edits,
                                                                 f"--editeval-judge-prompts={script}")
    text = output_of(result)
    assert result.ret == 4 and "INTERNALERROR" not in text and "Traceback" not in text, text
    assert f"UGE judge script {script} is nested too deeply to be read (no real one is): not read" in text
    assert judge.count == 0


def _deep_json(path: Path) -> Path:
    path.write_text('{"schema_version": 2, "samples": ' + "[" * 100_000 + "]" * 100_000 + "}", encoding="utf-8")
    return path


def _saved_run(run, tmp_path) -> Path:
    out = tmp_path / "good.json"
    assert run("-q", f"--editeval-json={out}", "--editeval-subsets=color_alter").ret == 0
    return out


def test_a_deeply_nested_or_huge_baseline_is_one_line(run, tmp_path, monkeypatch):
    from .conftest import output_of

    runs = importlib.import_module("pytest_editeval.report.runs")  # the module the run will use (as for parquet below)

    deep = _deep_json(tmp_path / "deep.json")
    result = run("--editeval-subsets=color_alter", f"--editeval-compare={deep}")
    text = output_of(result)
    assert result.ret == 4 and "INTERNALERROR" not in text and "Traceback" not in text, text
    assert f"saved run {deep} is nested too deeply to be read (no real one is): not read" in text
    # A file over the cap is refused from its size: never read into memory (the cap scaled down here).
    big = tmp_path / "big.json"
    big.write_bytes(b" " * 5000)
    monkeypatch.setattr(runs, "MAX_RESULTS_BYTES", 4096)
    result = run("--editeval-subsets=color_alter", f"--editeval-compare={big}")
    assert result.ret == 4 and f"saved run {big} is over 4,096 bytes, more than any real one holds: not read" \
        in output_of(result)


def test_compare_and_agreement_say_a_deeply_nested_file_in_one_line(run, tmp_path, capsys):
    from pytest_editeval.cli import main

    good, deep = _saved_run(run, tmp_path), _deep_json(tmp_path / "deep.json")
    capsys.readouterr()
    for argv in (["compare", str(deep), str(good)], ["compare", str(good), str(deep)],
                 ["agreement", str(good), str(deep)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err == f"error: saved run {deep} is nested too deeply to be read (no real one is): not read; pass a " \
                      "file written by --editeval-save or --editeval-json\n"


def test_compare_shows_no_control_characters_from_a_saved_run(run, tmp_path, capsys):
    import json

    from pytest_editeval.cli import main

    good = _saved_run(run, tmp_path)
    data = json.loads(good.read_text("utf-8"))
    data["model"] = "m\u009b2J\u202eodel"
    other = tmp_path / "other.json"
    other.write_text(json.dumps(data), encoding="utf-8")
    capsys.readouterr()
    assert main(["compare", str(good), str(other)]) == 0
    out = capsys.readouterr().out
    assert "\u009b" not in out and "\u202e" not in out and "m\\x9b2J\\u202eodel" in out


def test_a_file_over_its_cap_is_refused_from_its_size_without_reading_it(tmp_path, monkeypatch):
    from pytest_editeval.data import jsonfile
    huge = tmp_path / "huge.json"
    with open(huge, "wb") as fh:  # 3 GB, sparse: no disk, and no read of it may happen
        fh.truncate(3 << 30)
    real_open = jsonfile.open_regular

    class NoRead:
        def __init__(self, fh):
            self.fh = fh

        def fileno(self):
            return self.fh.fileno()

        def read(self, size):
            raise AssertionError("a file over its cap must not be read")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

    monkeypatch.setattr(jsonfile, "open_regular", lambda path: NoRead(real_open(path)))
    with pytest.raises(InputError) as caught:
        jsonfile.read_capped(huge, "saved run", 512 << 20)
    assert str(caught.value) == f"saved run {huge} is over 536,870,912 bytes, more than any real one holds: not read"
    assert jsonfile.read_bytes_capped(huge, 512 << 20) is None


def test_a_fifo_named_as_a_file_is_refused_without_blocking(tmp_path):
    import os

    from pytest_editeval.data import jsonfile
    fifo = tmp_path / "baseline.json"
    os.mkfifo(fifo)
    with pytest.raises(InputError) as caught:
        jsonfile.read_capped(fifo, "saved run", 1 << 20)
    assert str(caught.value) == (f"cannot read saved run {fifo}: not a regular file (a FIFO, device, socket or "
                                 "folder)")


# ---------------------------------------------------------------------------------------------------------------
# The cache: image digests from the bytes, a read-only folder, entries that are not files


def _bmp_edits(folder: Path, rows, red_of) -> Path:
    """Edited images as BMP (uncompressed: every image of a size has the same file size), and their JSONL."""
    import json

    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for row in rows:
        path = folder / f"{row.key}.bmp"
        Image.new("RGB", (row.width, row.height), (red_of(row), 90, 160)).save(path, format="BMP")
        lines.append(json.dumps({"id": row.key, "image_path": path.name}))
    (folder / "edits.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder / "edits.jsonl"


def test_an_image_replaced_by_one_of_the_same_size_and_time_is_judged_again(run, en_rows, judge, tmp_path):
    import json
    import os

    from PIL import Image

    rows = [r for r in en_rows if r.task_type == "color_alter"]
    edits = _bmp_edits(tmp_path / "bmp", rows, lambda row: 40)
    out = tmp_path / "out.json"
    first = run("-q", "--editeval-subsets=color_alter", f"--editeval-json={out}", images=edits)
    assert first.ret == 0
    before = {s["key"]: s["scores"] for s in json.loads(out.read_text())["samples"]}
    requests = judge.count
    replaced = tmp_path / "bmp" / f"{rows[0].key}.bmp"
    stat = replaced.stat()
    Image.new("RGB", (rows[0].width, rows[0].height), (220, 90, 160)).save(replaced, format="BMP")
    os.utime(replaced, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert replaced.stat().st_size == stat.st_size and replaced.stat().st_mtime_ns == stat.st_mtime_ns
    second = run("-q", "--editeval-subsets=color_alter", f"--editeval-json={out}", images=edits)
    assert second.ret == 0
    after = {s["key"]: s["scores"] for s in json.loads(out.read_text())["samples"]}
    assert judge.count - requests == 2  # the replaced image's two questions, asked again; the others cached
    assert after[rows[0].key] != before[rows[0].key]
    assert all(after[r.key] == before[r.key] for r in rows[1:])


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder nobody can write in, root included (chattr +i where the tests run as root)."""
    import os
    import subprocess

    folder = tmp_path / "readonly-cache"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("running as root on a file system without chattr +i: no folder is read-only to root here")
    try:
        yield folder
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_a_read_only_cache_folder_is_one_line_and_every_row_is_scored(run, read_only_folder):
    from .conftest import output_of

    result = run("--editeval-subsets=color_alter", cache_dir=read_only_folder)
    text = output_of(result)
    assert result.ret == 0, text
    assert "cannot read edited image" not in text
    result.assert_outcomes(passed=4)
    lines = [line for line in text.splitlines() if "cannot write cache entry" in line]
    assert lines == [f"editeval cache: cannot write cache entry under {read_only_folder}: Permission denied; free "
                     "some space, make the folder writable or pass --editeval-cache-dir / --editeval-no-cache"] or \
        lines == [f"editeval cache: cannot write cache entry under {read_only_folder}: Operation not permitted; free "
                  "some space, make the folder writable or pass --editeval-cache-dir / --editeval-no-cache"], text


@pytest.mark.slow  # several seconds: two runs of the plugin, one in a subprocess
def test_a_fifo_in_the_cache_is_skipped_never_waited_on(run, judge, tmp_path):
    import os

    from .conftest import output_of

    cache = tmp_path / "fifo-cache"
    assert run("-q", "--editeval-subsets=color_alter", cache_dir=cache).ret == 0
    requests = judge.count
    entry = sorted((cache / "answers").rglob("*.json"))[0]
    entry.unlink()
    os.mkfifo(entry)
    result = run("--editeval-subsets=color_alter", cache_dir=cache, subprocess=True, timeout=120)
    text = output_of(result)
    assert result.ret == 0, text
    assert judge.count - requests == 1  # that entry alone is asked again, and stored as a file
    assert "1 corrupt entries recomputed" in text and entry.is_file()


# ---------------------------------------------------------------------------------------------------------------
# `pytest-editeval merge` reads images only from folders the user named


@pytest.mark.slow  # several seconds: a run and its merge
def test_merge_reads_no_image_a_shard_file_points_elsewhere(run, tmp_path):
    import json
    import subprocess
    import sys

    from PIL import Image

    shards = tmp_path / "shards"
    shards.mkdir()
    secret = tmp_path / "secret"
    secret.mkdir()
    Image.new("RGB", (24, 24), (250, 10, 10)).save(secret / "edited.png")
    cwd = tmp_path / "a" / "b"
    cwd.mkdir(parents=True)
    paths = []
    for k in (1, 2):
        path = shards / f"shard-{k}.json"
        assert run(f"--editeval-shard={k}/2", f"--editeval-json={path}", "--editeval-subsets=color_alter").ret == 0
        data = json.loads(path.read_text())
        for i, sample in enumerate(data["samples"]):  # an absolute path, and a way up from the working folder
            sample["edited_image"] = str(secret / "edited.png") if i % 2 else "../../secret/edited.png"
        path.write_text(json.dumps(data))
        paths.append(path)

    def merged(*args: str) -> str:
        html = tmp_path / "merged.html"
        result = subprocess.run([sys.executable, "-m", "pytest_editeval.cli", "merge", *map(str, paths),
                                 f"--html={html}", *args], capture_output=True, text=True, cwd=cwd)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout, html.read_text()

    # The dataset the shards recorded lies outside their folder: a shard file cannot make the merge read it.
    dataset = data["shard"]["dataset"]
    out, page = merged()
    rows = page.count("<tr data-subset=")
    assert rows == 4 and "data:image/jpeg" not in page
    assert [line for line in out.splitlines() if "HTML report without source thumbnails" in line] == [
        f"editeval: HTML report without source thumbnails: cannot load the dataset {dataset}: the shards read it from "
        f"the local path {dataset}, which a shard file names outside its own folder, so it is not read: pass "
        "--dataset PATH to read the source images from it"]
    out, page = merged(f"--dataset={dataset}")
    assert page.count("data:image/jpeg") == rows  # the sources only: no edited image was read
    assert [line for line in out.splitlines() if "edited image(s) not found" in line] == [
        "editeval: HTML report: 4 edited image(s) not found inside the shard file's folder or a folder given with "
        "--images (images are read from nowhere else; download each shard's images beside its results file, or "
        "name their folder), e.g. '../../secret/edited.png': shown without a thumbnail"]
    # Named on the command line, the folder is read: the absolute path inside it, and the relative one's tail.
    _, page = merged(f"--images={secret}", f"--dataset={dataset}")
    assert page.count("data:image/jpeg") == 2 * rows


def test_a_dataset_whose_index_decodes_to_more_than_the_cap_is_one_line(run, monkeypatch, gedit):
    from .conftest import output_of

    # pytester drops modules first imported during an earlier run; import_module gives the one this run will use
    # (the package attribute may still name a dropped one).
    parquet = importlib.import_module("pytest_editeval.data.parquet")

    monkeypatch.setattr(parquet, "MAX_INDEX_BYTES", 1000)  # the cap scaled down: the test set's index is larger
    result = run("--editeval-subsets=color_alter")
    text = output_of(result)
    assert result.ret == 4 and "Traceback" not in text, text
    lines = [line for line in text.splitlines() if "index columns decode to" in line]
    assert len(lines) == 1 and "over the cap of 1,000 (no real dataset comes near): not read" in lines[0]
    assert str(gedit[0]) in lines[0]


def test_a_deeply_nested_judge_panel_is_one_line(pytester, gedit, edits, tmp_path):
    from .conftest import output_of

    panel = tmp_path / "panel.toml"
    panel.write_text("judges = " + "[" * 100_000 + "]" * 100_000 + "\n", encoding="utf-8")
    result = pytester.runpytest("--editeval-benchmark=gedit", f"--editeval-dataset={gedit[0]}",
                                f"--editeval-images={edits}", f"--editeval-judge-panel={panel}", "-p", "no:cacheprovider")
    text = output_of(result)
    assert result.ret == 4 and "INTERNALERROR" not in text and "Traceback" not in text, text
    assert f"judge panel {panel}: nested too deeply to be read (no real one is)" in text


def test_agreement_on_a_run_without_its_aggregates_is_one_line(run, tmp_path, capsys):
    import json

    from pytest_editeval.cli import main

    good = _saved_run(run, tmp_path)
    data = json.loads(good.read_text("utf-8"))
    data["aggregates"] = {}
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(data), encoding="utf-8")
    capsys.readouterr()
    assert main(["agreement", str(broken), str(good)]) == 2
    assert capsys.readouterr().err == (f"error: {broken} has no 'full' aggregates: pass a file written by "
                                       "--editeval-save or --editeval-json\n")
