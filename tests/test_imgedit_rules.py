"""ImgEdit-Bench's pure core: safe tar extraction, locating and reading the download (every field untrusted),
the judge call, the official reply rule, the published aggregation, and the dataset factory."""

from __future__ import annotations

import base64
import io
import json
import os
import random
import re
import tarfile
import time
from pathlib import Path

import pytest

from pytest_editeval.benchmarks import imgedit_official as ie
from pytest_editeval.data import archives
from pytest_editeval.data.archives import extract_tar, extracted_folder
from pytest_editeval.errors import InputError
from pytest_editeval.judges.replies import UnreadableReply
from pytest_editeval.judges.requests import EDITED, ImageRef, input_image
from pytest_editeval.testing.imgedit_factory import (
    BAD_ROWS,
    edited_red,
    expected_values,
    imgedit_reply,
    imgedit_rule_scores,
    make_imgedit_dataset,
    synthetic_template,
    synthetic_uge_script,
    synthetic_uge_template,
    write_imgedit_edits,
)
from pytest_editeval.testing.judge_server import JudgeCall

REFERENCE_HASHES = Path("/work/shared/reference/imgedit/prompt_hashes.json")


# ---------------------------------------------------------------------------------------------------------------
# Tar archives built by the tests


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], mode: str = "w") -> Path:
    with tarfile.open(path, mode) as archive:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, None


def _leftovers(target: Path) -> list[str]:
    return sorted(p.name for p in target.iterdir()) if target.exists() else []


def test_extract_writes_files_and_folders_without_the_archives_modes(tmp_path):
    setuid = tarfile.TarInfo("Benchmark/singleturn/run.sh")
    setuid.mode = 0o4777
    folder = tarfile.TarInfo("Benchmark/singleturn")
    folder.type, folder.mode = tarfile.DIRTYPE, 0o777
    tar = _tar(tmp_path / "Benchmark.tar", [
        (folder, None),
        _file("./Benchmark/singleturn/singleturn.json", b"{}"),
        _file("Benchmark/singleturn/daily object/000000001.jpg", b"jpeg"),
        (setuid, b"#!/bin/sh\n"),
    ])
    out = extract_tar(tar, tmp_path / "cache")
    assert out == extracted_folder(tar, tmp_path / "cache") and out.parent == tmp_path / "cache"
    assert (out / "Benchmark/singleturn/singleturn.json").read_bytes() == b"{}"
    assert (out / "Benchmark/singleturn/daily object/000000001.jpg").read_bytes() == b"jpeg"
    assert not os.stat(out / "Benchmark/singleturn/run.sh").st_mode & 0o4000
    assert _leftovers(tmp_path / "cache") == [out.name]  # no partial folder left


def test_extract_is_idempotent_and_a_changed_archive_is_extracted_again(tmp_path, monkeypatch):
    tar = _tar(tmp_path / "Benchmark.tar", [_file("a/b.txt", b"one")])
    first = extract_tar(tar, tmp_path / "cache")

    def no_second_write(*args, **kwargs):
        raise AssertionError("a finished extraction must not be redone")

    monkeypatch.setattr(archives, "_write", no_second_write)
    assert extract_tar(tar, tmp_path / "cache") == first
    monkeypatch.undo()
    _tar(tar, [_file("a/b.txt", b"two!")])
    os.utime(tar, ns=(time.time_ns(), time.time_ns() + 10**9))
    second = extract_tar(tar, tmp_path / "cache")
    assert second != first and (second / "a/b.txt").read_bytes() == b"two!"
    assert (first / "a/b.txt").read_bytes() == b"one"


def test_extract_only_the_members_under_a_prefix(tmp_path):
    tar = _tar(tmp_path / "Benchmark.tar", [
        _file("Benchmark/singleturn/singleturn.json", b"{}"),
        _file("Benchmark/singleturnX/not-me.txt"),
        _file("Benchmark/multiturn/README.md"),
        _file("Benchmark/hard/000000001.jpg"),
        _special("Benchmark/hard/link.jpg", tarfile.SYMTYPE, "/etc/passwd"),  # never written: not refused
    ])
    out = extract_tar(tar, tmp_path / "x", members_under="Benchmark/singleturn/")
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == [
        "Benchmark", "Benchmark/singleturn", "Benchmark/singleturn/singleturn.json"]
    assert out != extracted_folder(tar, tmp_path / "x")  # the prefix is part of the finished folder's name
    with pytest.raises(InputError, match=r"Benchmark.tar holds no member under Benchmark/nothing/"):
        extract_tar(tar, tmp_path / "x", members_under="Benchmark/nothing")


def _attack(name: str) -> list:
    good = _file("Benchmark/singleturn/ok.txt")
    return {
        "absolute": [good, _file("/etc/evil")],
        "dotdot": [good, _file("Benchmark/singleturn/../../evil")],
        "dotdot_only_outside_prefix": [good, _file("../evil")],
        "symlink": [good, _special("Benchmark/singleturn/link", tarfile.SYMTYPE, "/etc/passwd")],
        "relative_symlink": [good, _special("Benchmark/singleturn/link", tarfile.SYMTYPE, "ok.txt")],
        "hardlink": [good, _special("Benchmark/singleturn/hard", tarfile.LNKTYPE, "Benchmark/singleturn/ok.txt")],
        "chardevice": [good, _special("Benchmark/singleturn/null", tarfile.CHRTYPE)],
        "blockdevice": [good, _special("Benchmark/singleturn/sda", tarfile.BLKTYPE)],
        "fifo": [good, _special("Benchmark/singleturn/pipe", tarfile.FIFOTYPE)],
        "control_char": [good, _file("Benchmark/singleturn/a\nb")],
        "big_member": [good, _file("Benchmark/singleturn/big", b"x" * 2000)],
        "total": [good] + [_file(f"Benchmark/singleturn/f{i}", b"x" * 900) for i in range(4)],
        "count": [good] + [_file(f"Benchmark/singleturn/f{i}") for i in range(12)],
        "clash": [good, _file("Benchmark/singleturn/ok.txt/inner")],
    }[name]


@pytest.mark.parametrize("attack, member, why", [
    ("absolute", "/etc/evil", "absolute"),
    ("dotdot", "Benchmark/singleturn/../../evil", r"'\.\.'"),
    ("dotdot_only_outside_prefix", "../evil", r"'\.\.'"),
    ("symlink", "Benchmark/singleturn/link", "links are refused"),
    ("relative_symlink", "Benchmark/singleturn/link", "links are refused"),
    ("hardlink", "Benchmark/singleturn/hard", "links are refused"),
    ("chardevice", "Benchmark/singleturn/null", "device, FIFO"),
    ("blockdevice", "Benchmark/singleturn/sda", "device, FIFO"),
    ("fifo", "Benchmark/singleturn/pipe", "device, FIFO"),
    ("control_char", "Benchmark/singleturn/a\\nb", "control characters"),
    ("big_member", "Benchmark/singleturn/big", "per-member cap of 1000"),
    ("total", "Benchmark/singleturn/f2", "total cap of 2500"),
    ("count", "Benchmark/singleturn/f9", "more than 10 members"),
    ("clash", "Benchmark/singleturn/ok.txt/inner", "clashes"),
])
def test_every_attack_is_refused_naming_archive_and_member_and_nothing_stays(tmp_path, attack, member, why):
    tar = _tar(tmp_path / "Benchmark.tar", _attack(attack))
    target = tmp_path / "cache"
    with pytest.raises(InputError) as caught:
        extract_tar(tar, target, members_under="Benchmark/singleturn", max_member_bytes=1000,
                    max_total_bytes=2500, max_members=10)
    message = str(caught.value)
    assert str(tar) in message and member in message and "\n" not in message
    assert re.search(why, message)
    assert _leftovers(target) == []  # refused before writing, or the partial folder was removed
    assert not (tmp_path / "evil").exists() and not Path("/etc/evil").exists()


def test_default_caps_are_generous_but_finite():
    assert archives.DEFAULT_MAX_TOTAL_BYTES == 4 << 30
    assert archives.DEFAULT_MAX_MEMBER_BYTES == 100 << 20
    assert archives.DEFAULT_MAX_MEMBERS == 50_000


def test_an_interrupted_extraction_leaves_no_folder_that_looks_finished(tmp_path, monkeypatch):
    tar = _tar(tmp_path / "Benchmark.tar", [_file(f"d/f{i}", b"data") for i in range(5)])
    target = tmp_path / "cache"
    calls = []
    real_copy = archives.shutil.copyfileobj

    def dies_on_third_file(src, dst, length=0):
        calls.append(1)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real_copy(src, dst, length)

    monkeypatch.setattr(archives.shutil, "copyfileobj", dies_on_third_file)
    with pytest.raises(InputError, match="No space left on device"):
        extract_tar(tar, target)
    assert _leftovers(target) == []
    monkeypatch.undo()
    # A process killed outright leaves its hidden partial folder: it is ignored, never taken as finished.
    final = extracted_folder(tar, target)
    crashed = target / f".{final.name}.partial-killed"
    crashed.mkdir(parents=True)
    (crashed / "d").mkdir()
    out = extract_tar(tar, target)
    assert out == final and len(list((out / "d").iterdir())) == 5


def test_a_corrupt_or_missing_archive_is_one_input_error(tmp_path):
    bad = tmp_path / "Benchmark.tar"
    bad.write_bytes(b"this is not a tar file at all" * 40)
    with pytest.raises(InputError, match="cannot read archive .*Benchmark.tar"):
        extract_tar(bad, tmp_path / "x")
    good = _tar(tmp_path / "good.tar", [_file("a/b.bin", os.urandom(5000))])
    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(good.read_bytes()[:1500])
    with pytest.raises(InputError, match="truncated.tar"):
        extract_tar(truncated, tmp_path / "y")
    assert _leftovers(tmp_path / "y") == []
    with pytest.raises(InputError, match="does not exist"):
        extract_tar(tmp_path / "missing.tar", tmp_path / "z")


def test_gzipped_archives_are_read_too(tmp_path):
    tar = _tar(tmp_path / "Benchmark.tar.gz", [_file("a/b.txt", b"zipped")], mode="w:gz")
    assert (extract_tar(tar, tmp_path / "x") / "a/b.txt").read_bytes() == b"zipped"


# ---------------------------------------------------------------------------------------------------------------
# Constants and packaged fingerprints


def test_constants_follow_the_leaderboard():
    assert ie.EDIT_TYPES == ("add", "adjust", "extract", "replace", "remove", "background", "style", "compose",
                             "action")
    assert [ie.TYPE_LABELS[t] for t in ie.EDIT_TYPES] == [
        "Add", "Adjust", "Extract", "Replace", "Remove", "Background", "Style", "Hybrid", "Action"]
    assert sum(ie.ROW_COUNTS.values()) == 737 and list(ie.ROW_COUNTS) == list(ie.EDIT_TYPES)
    assert ie.PLACEHOLDER == "<edit_prompt>"
    assert dict(ie.OFFICIAL_REQUEST_PARAMETERS) == {}  # no temperature, no max_tokens


def test_the_packaged_fingerprints_are_the_reference_file_and_hold_no_prompt_text():
    packaged = Path(ie.__file__).parent / "prompts" / "imgedit_prompt_hashes.json"
    if REFERENCE_HASHES.is_file():
        assert packaged.read_bytes() == REFERENCE_HASHES.read_bytes()
    data = json.loads(packaged.read_text("utf-8"))
    assert set(data["basic"]) == set(ie.EDIT_TYPES)
    assert all(len(v["sha256"]) == 64 and v["chars"] > 1000 for v in data["basic"].values())
    assert max(len(s) for s in _strings(data)) < 400  # fingerprints and labels only, never a template
    assert ie.reply_labels("adjust") == ("Prompt Compliance", "Visual Seamlessness", "Physical & Detail Fidelity")


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


# ---------------------------------------------------------------------------------------------------------------
# Locating the download


@pytest.mark.parametrize("layout, point_at", [
    ("folder", "."), ("folder", "Benchmark"), ("folder", "Benchmark/singleturn"),
    ("singleturn", "."), ("singleturn", "singleturn"), ("tar", "Benchmark.tar"), ("tar", "."),
])
def test_find_singleturn_accepts_every_documented_layout(tmp_path, layout, point_at):
    make_imgedit_dataset(tmp_path / "data", layout=layout)
    found = ie.find_singleturn(tmp_path / "data" / point_at, extract_to=tmp_path / "extracted")
    assert found.name == "singleturn" and (found / ie.ROWS_FILE).is_file()
    if layout == "tar":
        benchmark = found.parent
        assert sorted(p.name for p in benchmark.iterdir()) == ["singleturn"]  # hard/ and multiturn/ not unpacked
        assert found.is_relative_to(tmp_path / "extracted")


def test_find_singleturn_extracts_beside_the_tar_without_an_extraction_folder(tmp_path):
    make_imgedit_dataset(tmp_path, layout="tar")
    assert ie.find_singleturn(tmp_path / "Benchmark.tar", extract_to=None).is_relative_to(tmp_path)


@pytest.mark.parametrize("make, match", [
    (lambda p: p / "missing", "does not exist"),
    (lambda p: (p / "notes.txt", (p / "notes.txt").write_text("x"))[0], "not a .tar archive"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "no ImgEdit-Bench single-turn data"),
])
def test_find_singleturn_says_what_it_expected(tmp_path, make, match):
    with pytest.raises(InputError, match=match) as caught:
        ie.find_singleturn(make(tmp_path), extract_to=tmp_path / "x")
    assert "expected Benchmark.tar, a folder holding Benchmark/singleturn/" in str(caught.value)


def test_a_tar_without_the_singleturn_part_is_refused(tmp_path):
    tar = _tar(tmp_path / "Benchmark.tar", [_file("Benchmark/hard/a.jpg")])
    with pytest.raises(InputError, match="no member under Benchmark/singleturn/"):
        ie.find_singleturn(tar, extract_to=tmp_path / "x")


# ---------------------------------------------------------------------------------------------------------------
# Rows


def test_rows_come_in_type_order_then_numeric_key_order(tmp_path):
    cases = make_imgedit_dataset(tmp_path, rows_per_type=3)
    rows, warnings = ie.load_rows(tmp_path / "Benchmark" / "singleturn")
    assert warnings == []
    assert [(r.key, r.edit_type, r.prompt, r.image_id) for r in rows] == \
        [(c.key, c.edit_type, c.prompt, c.image_id) for c in cases]
    assert [r.edit_type for r in rows] == [t for t in ie.EDIT_TYPES for _ in range(3)]
    keys = [int(r.key) for r in rows]
    assert keys == sorted(keys) and len(str(keys[0])) < len(str(keys[-1]))  # numeric, not string, order
    assert all(r.problem is None and r.image.is_file() for r in rows)
    assert rows[0].test_id == f"add-{rows[0].key}"
    shared = {}
    for r in rows:
        shared.setdefault(r.image_id, []).append(r.key)
    assert max(len(v) for v in shared.values()) >= 2  # several keys, one original
    assert any(r.image_id.startswith("daily object/") for r in rows)


def test_numeric_order_survives_leading_zeros_and_huge_keys(tmp_path):
    folder = tmp_path / "singleturn"
    (folder / "animal").mkdir(parents=True)
    (folder / "animal" / "a.jpg").write_bytes(b"\xff\xd8\xff")
    keys = ["100", "22", "9", "010", "abc", "9" * 5000, "\ud800"]
    row = {"id": "animal/a.jpg", "prompt": "p", "edit_type": "add"}
    (folder / ie.ROWS_FILE).write_text(json.dumps({k: row for k in keys}))
    rows, _ = ie.load_rows(folder)
    assert [r.key for r in rows] == ["9", "010", "22", "100", "9" * 5000, "abc", "\ud800"]
    assert rows[4].problem.startswith("key '9999") and rows[6].problem.startswith("key '\\ud800'")
    assert [r.test_id for r in rows][4:] == [rows[4].test_id, "add-abc", rows[6].test_id]
    assert rows[6].test_id.startswith("add-key-")


def test_old_alter_rows_are_adjust_rows_with_one_warning(tmp_path):
    make_imgedit_dataset(tmp_path, rows_per_type=3, old_alter=True)
    rows, warnings = ie.load_rows(tmp_path / "Benchmark" / "singleturn")
    assert len(warnings) == 1 and "3 row(s)" in warnings[0] and "'alter'" in warnings[0]
    assert [r.edit_type for r in rows].count("adjust") == 3 and all(r.problem is None for r in rows)
    assert ie.template_for(rows[3], {t: synthetic_template(t) for t in ie.EDIT_TYPES}).startswith(
        "\nSYNTHETIC TEST TEMPLATE (adjust)")


@pytest.mark.parametrize("kind", BAD_ROWS)
def test_a_bad_row_is_a_row_with_a_problem_and_the_rest_still_loads(tmp_path, kind):
    cases = make_imgedit_dataset(tmp_path, rows_per_type=1, bad_rows=[kind])
    rows, _ = ie.load_rows(tmp_path / "Benchmark" / "singleturn")
    bad = [r for r in rows if r.problem]
    expected = [c for c in cases if c.problem]
    assert len(bad) == 1 and len(rows) == 10
    assert bad[0].key == expected[0].key and bad[0].edit_type == expected[0].edit_type
    assert expected[0].problem in bad[0].problem and bad[0].image is None
    assert "\n" not in bad[0].problem
    assert all(ch.isalnum() or ch in "-_" for ch in bad[0].test_id)
    with pytest.raises(ValueError):
        ie.question(bad[0], "t <edit_prompt>")


@pytest.mark.parametrize("image_id, why", [
    ("C:/x.jpg", "absolute"), ("animal\\a.jpg", "backslash"), ("animal//a.jpg", "empty path component"),
    ("é" * 101, "longer than 200 bytes"), ("", "empty"), ("./animal/a.jpg", "hidden"),
])
def test_unsafe_ids(image_id, why):
    assert why in ie.unsafe_relative_path(image_id)


def test_a_symlink_inside_the_folder_is_fine(tmp_path):
    folder = tmp_path / "singleturn"
    (folder / "animal").mkdir(parents=True)
    (folder / "animal" / "a.jpg").write_bytes(b"\xff\xd8\xff")
    (folder / "human").symlink_to(folder / "animal")
    (folder / ie.ROWS_FILE).write_text(json.dumps({"1": {"id": "human/a.jpg", "prompt": "p", "edit_type": "add"},
                                                   "2": [1, 2]}))
    rows, _ = ie.load_rows(folder)
    assert rows[0].problem is None and rows[0].image == folder / "human" / "a.jpg"
    assert rows[1].problem == "row is a list, not an object"


@pytest.mark.parametrize("content, match", [
    (None, "does not exist"),
    (b"{not json", "is not valid JSON"),
    (b"\xff\xfe\x00garbage", "is not valid JSON"),
    (b"[1, 2]", "one JSON object"),
    (b"{}", "holds no rows"),
    (b"[" * 100_000 + b"]" * 100_000, "is nested too deeply to be read"),
])
def test_an_unreadable_row_file_is_one_input_error(tmp_path, content, match):
    folder = tmp_path / "singleturn"
    folder.mkdir()
    if content is not None:
        (folder / ie.ROWS_FILE).write_bytes(content)
    with pytest.raises(InputError, match=match) as caught:
        ie.load_rows(folder)
    assert "\n" not in str(caught.value)


def test_an_oversized_row_file_is_refused_unread(tmp_path, monkeypatch):
    folder = tmp_path / "singleturn"
    folder.mkdir()
    (folder / ie.ROWS_FILE).write_text(json.dumps({"1": {"id": "a.jpg", "prompt": "x" * 2000, "edit_type": "add"}}))
    monkeypatch.setattr(ie, "MAX_JSON_BYTES", 1024)
    with pytest.raises(InputError, match="is over 1,024 bytes"):
        ie.load_rows(folder)


def test_repeated_keys_warn_and_the_last_wins(tmp_path):
    folder = tmp_path / "singleturn"
    (folder / "animal").mkdir(parents=True)
    (folder / "animal" / "a.jpg").write_bytes(b"\xff\xd8\xff")
    text = ('{"1": {"id": "animal/a.jpg", "prompt": "first", "edit_type": "add"},'
            ' "1": {"id": "animal/a.jpg", "prompt": "second", "edit_type": "add"}}')
    (folder / ie.ROWS_FILE).write_text(text)
    rows, warnings = ie.load_rows(folder)
    assert [r.prompt for r in rows] == ["second"] and "repeated" in warnings[0]


# ---------------------------------------------------------------------------------------------------------------
# Judge templates


def _write_prompts(folder: Path, prompts: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ie.PROMPTS_FILE).write_text(json.dumps(prompts), encoding="utf-8")
    return folder / ie.PROMPTS_FILE


def test_judge_prompts_are_read_from_the_file_or_its_folder(tmp_path):
    make_imgedit_dataset(tmp_path)
    folder = tmp_path / "Benchmark" / "singleturn"
    prompts = ie.load_judge_prompts(folder)
    assert prompts == ie.load_judge_prompts(folder / ie.PROMPTS_FILE)
    assert list(prompts) == list(ie.EDIT_TYPES) and all(p.count("<edit_prompt>") == 1 for p in prompts.values())
    assert "Physical & Detail Fidelity: <1-5>" in prompts["adjust"]


@pytest.mark.parametrize("change, match", [
    (lambda p: p.pop("compose"), "lacks template.*compose"),
    (lambda p: p.clear(), "lacks template.*add, adjust"),
    (lambda p: p.update(style=["not", "text"]), "'style' must be a string"),
    (lambda p: p.update(add="no placeholder"), "'add' must hold the placeholder <edit_prompt> exactly once .found 0"),
    (lambda p: p.update(add="<edit_prompt> <edit_prompt>"), "found 2"),
])
def test_bad_judge_prompts_are_one_input_error(tmp_path, change, match):
    prompts = {t: synthetic_template(t) for t in ie.EDIT_TYPES}
    change(prompts)
    with pytest.raises(InputError, match=match):
        ie.load_judge_prompts(_write_prompts(tmp_path, prompts))


def test_modified_templates_warn_and_official_ones_do_not(monkeypatch):
    prompts = {t: synthetic_template(t) for t in ie.EDIT_TYPES}
    warnings = ie.fingerprint_mismatches(prompts)
    assert len(warnings) == 9 and all("not the official text" in w for w in warnings)
    assert "'add'" in warnings[0] and "characters, official 2053" in warnings[0]
    # Pretend the synthetic texts were the official ones: unmodified copies give no warning.
    fake = {"basic": {t: {"sha256": ie.sha256_text(p), "chars": len(p), "starts_with_newline": True,
                          "ends_with_newline": True} for t, p in prompts.items()}}
    monkeypatch.setattr(ie, "_official_fingerprints", lambda: fake)
    assert ie.fingerprint_mismatches(prompts) == []
    stripped = dict(prompts, style=prompts["style"].strip())
    [warning] = ie.fingerprint_mismatches(stripped)
    assert "'style'" in warning and "stripped?" in warning


# ---------------------------------------------------------------------------------------------------------------
# The judge call


def test_the_question_is_text_then_original_then_edited_raw_and_labelled_png():
    row = ie.ImgEditRow("1082", "adjust", r"Make it \1 warmer & 'bright' <edit_prompt>", "animal/000342021.jpg",
                        Path("/data/animal/000342021.jpg"))
    template = "\nRate this: <edit_prompt>\nPrompt Compliance: <1-5>\n"
    q = ie.question(row, template)
    assert q.name == "score"
    assert q.parts == (
        "\nRate this: Make it \\1 warmer & 'bright' <edit_prompt>\nPrompt Compliance: <1-5>\n",
        ImageRef(input_image(0), recipe="raw", mime="image/png"),
        ImageRef(EDITED, recipe="raw", mime="image/png"),
    )


# ---------------------------------------------------------------------------------------------------------------
# The reply: step1_get_avgscore.py's line rule


def _official_step1(entry: str):
    """The rule as PROTOCOL.md states it, written out as plainly as possible, to compare against."""
    scores = []
    for line in entry.splitlines():
        parts = line.strip().split(": ")
        if len(parts) == 2 and parts[1].isdigit():
            scores.append(int(parts[1]))
    return round(sum(scores) / len(scores), 2) if scores else None


@pytest.mark.parametrize("reply, values", [
    ("Brief reasoning: fine.\nPrompt Compliance: 4\nVisual Naturalness: 5\nPhysical & Detail Integrity: 3", [4, 5, 3]),
    ("**Prompt Compliance**: 4\n**Visual Naturalness**: 2", [4, 2]),
    ("- Prompt Compliance: 4\n- Visual Naturalness: 5\n- Physical: 1", [4, 5, 1]),
    ("Prompt Compliance: 4   \r\nVisual Naturalness: 5\r\n", [4, 5]),
    ("Brief reasoning: colour: fine: ok\nScore: 3", [3]),  # two ': ' on the reasoning line: ignored
    ("Brief reasoning: 3\nA: 5", [3, 5]),  # a reasoning line that is just digits counts (official)
    ("Prompt Compliance: 4/5\nVisual: 4.\n**Label:** 4\nLabel: 4 (good)\nOnly: 2", [2]),
    ("Label: ٣\nOther: 5", [3, 5]),  # Arabic-Indic digit: isdigit() and int() both accept it
    ("Score:4\nScore : 4\nScore: 5", [4, 5]),  # no space after the colon: dropped; before it: kept
    ("Score: 05", [5]),
])
def test_the_official_line_rule(reply, values):
    assert ie.parse_official(reply) == values
    assert ie.row_score(values) == _official_step1(reply)


@pytest.mark.parametrize("reply, why", [
    (None, "empty"), ("", "empty"), ("   \n ", "empty"),
    ("Brief reasoning: no numbers here.", "no '<Label>: <digits>' line"),
    ("Score: 4/5\nScore: 4.\n**Score:** 4\nScore: 3 (fair)", "no '<Label>: <digits>' line"),
    ("Score: 2.", "no '<Label>: <digits>' line"),  # UGE README's own sample reply is dropped by this rule
    ("Prompt Compliance: 9\nB: 4", "score 9 outside 1..5"),
    ("A: 0\nB: 4", "score 0 outside 1..5"),
    ("A: ²\nB: 4", "int\\(\\) cannot read"),  # '²'.isdigit() is True, int('²') fails: the official crashes
    ("A: " + "1" * 5000, "int\\(\\) cannot read"),  # more digits than int() accepts
])
def test_unreadable_replies_are_re_asked(reply, why):
    with pytest.raises(UnreadableReply, match=why):
        ie.parse_official(reply)


def test_without_the_range_check_out_of_range_values_count_as_officially():
    assert ie.parse_official("A: 9\nB: 4", check_range=False) == [9, 4]
    assert ie.row_score([9, 4]) == _official_step1("A: 9\nB: 4") == 6.5


def test_the_rule_matches_the_official_on_random_replies():
    rng = random.Random(7)
    fragments = ["Brief reasoning: ok", "Prompt Compliance: 4", "**Visual**: 5", "Label: 3 (fair)", "Score: 2.",
                 "x: 1: 2", "  - Physical: 1  ", "Label: 4/5", "12", "Style Fidelity: 5\r", "\u2028Score: 3",
                 "A:\t4", "A: 6", "B: ²", "", "Label: ٣", "Score: 0"]
    for _ in range(2000):
        reply = "\n".join(rng.choice(fragments) for _ in range(rng.randint(0, 6)))
        try:
            official = _official_step1(reply)
        except ValueError:  # the official script crashes ('²'): ours must re-ask instead
            with pytest.raises(UnreadableReply):
                ie.parse_official(reply)
            continue
        if official is None:
            with pytest.raises(UnreadableReply):
                ie.parse_official(reply)
        elif any(v in reply for v in ("A: 6", "Score: 0")):
            with pytest.raises(UnreadableReply, match="outside 1..5"):
                ie.parse_official(reply)
            assert ie.row_score(ie.parse_official(reply, check_range=False)) == official
        else:
            assert ie.row_score(ie.parse_official(reply)) == official


def test_a_huge_reply_is_read_in_linear_time():
    reply = ("Brief reasoning: " + "blah: " * 2000 + "\n") * 5 + "Score: 4\n" * 2000 + "x" * 20_000
    started = time.process_time()  # this process's CPU time: the same on a busy machine
    assert ie.parse_official(reply) == [4] * 2000
    with pytest.raises(UnreadableReply):
        ie.parse_official("y: z\n" * 13_000)
    assert time.process_time() - started < 1.0


# ---------------------------------------------------------------------------------------------------------------
# Scores and aggregation


def test_row_scores_are_rounded_means_of_however_many_values_were_kept():
    assert ie.row_score([4, 4, 5]) == 4.33 and ie.mean_score([4, 4, 5]) == pytest.approx(13 / 3)
    assert ie.row_score([1, 1, 2]) == 1.33 and ie.row_score([3, 4]) == 3.5 and ie.row_score([5]) == 5.0
    with pytest.raises(ValueError):
        ie.row_score([])


def test_type_scores_overall_and_sample_mean():
    scored = {"1": ("add", 4.33), "2": ("add", 3.0), "3": ("add", 3.67), "4": ("style", 5.0),
              "5": ("compose", 1.0)}
    types = ie.type_scores(scored)
    assert types == {"add": 3.67, "style": 5.0, "compose": 1.0}  # EDIT_TYPES order, absent types absent
    assert list(types) == ["add", "style", "compose"]
    assert ie.type_scores(scored, rounded=False)["add"] == pytest.approx(11.0 / 3)
    assert ie.overall_type_mean(types) == 3.22  # (3.67 + 5 + 1) / 3: each type counts once
    assert ie.sample_mean(scored) == 3.4  # 17 / 5: each row counts once
    assert ie.overall_type_mean(types, rounded=False) == pytest.approx(9.67 / 3)
    assert ie.overall_type_mean({}) is None and ie.sample_mean({}) is None


# The ImgEdit leaderboard (GPT-4.1 judge), columns in EDIT_TYPES order, then the published Overall.
LEADERBOARD = {
    "BAGEL": ([3.81, 3.59, 1.58, 3.85, 3.16, 3.39, 4.51, 2.67, 4.25], 3.42),
    "Step1X-Edit": ([3.88, 3.14, 1.76, 3.40, 2.41, 3.16, 4.63, 2.64, 2.52], 3.06),
    "OmniGen2": ([3.57, 3.06, 1.77, 3.74, 3.20, 3.57, 4.81, 2.52, 4.68], 3.44),
    "Instruct-P2P": ([2.45, 1.83, 1.44, 2.01, 1.50, 1.44, 3.55, 1.20, 1.46], 1.88),
}


@pytest.mark.parametrize("model", LEADERBOARD)
def test_the_headline_is_the_leaderboards_overall(model):
    columns, overall = LEADERBOARD[model]
    assert ie.overall_type_mean(dict(zip(ie.EDIT_TYPES, columns))) == overall


# ---------------------------------------------------------------------------------------------------------------
# The model's output and image mode


def test_output_name_and_the_flat_folder_reader(tmp_path):
    cases = make_imgedit_dataset(tmp_path / "data")
    rows, _ = ie.load_rows(tmp_path / "data" / "Benchmark" / "singleturn")
    assert ie.output_name(rows[0]) == f"{rows[0].key}.png"
    edits = write_imgedit_edits(tmp_path / "edits", rows, skip=[rows[1].key])
    (edits / "notes.txt").write_text("ignored")
    (edits / "99999.png").write_bytes(b"not asked for")
    (edits / f"{rows[2].key}.png").unlink()
    (edits / f"{rows[2].key}.png").symlink_to(edits / f"{rows[0].key}.png")  # inside: fine
    (edits / "1.png").mkdir()
    found = ie.edited_images_in_folder(edits, [r.key for r in rows] + ["1", "../etc"])
    assert set(found) == {r.key for r in rows} - {rows[1].key}
    assert found[rows[0].key] == edits / f"{rows[0].key}.png" and len(cases) == len(rows)


def test_the_flat_folder_reader_refuses_symlinks_that_leave_it(tmp_path):
    edits = tmp_path / "edits"
    edits.mkdir()
    (tmp_path / "secret.png").write_bytes(b"x")
    (edits / "22.png").symlink_to(tmp_path / "secret.png")
    with pytest.raises(InputError, match="22.png: a symlink that leaves"):
        ie.edited_images_in_folder(edits, ["22"])
    (edits / "23.png").symlink_to(edits / "23.png")
    with pytest.raises(InputError, match="broken or looping"):
        ie.edited_images_in_folder(edits, ["23"])
    with pytest.raises(InputError, match="is not a folder"):
        ie.edited_images_in_folder(tmp_path / "nope", ["22"])


# ---------------------------------------------------------------------------------------------------------------
# UGE suite


@pytest.mark.parametrize("layout", ["folder", "tar", "singleturn"])
def test_uge_rows_load_from_every_layout(tmp_path, layout):
    cases = make_imgedit_dataset(tmp_path, layout=layout, with_uge=True)
    rows_file, images = ie.find_uge(tmp_path, extract_to=tmp_path / "x")
    rows, warnings = ie.load_uge_rows(rows_file, images)
    assert warnings == [] and images.name == "hard"
    assert [(r.key, r.prompt, r.image_id) for r in rows] == \
        [(c.key, c.prompt, c.image_id) for c in cases if c.subset == "uge"]
    assert [r.key for r in rows] == ["1", "2", "10"] and rows[0].image_id == rows[2].image_id
    assert all(r.subset == "uge" and r.problem is None for r in rows) and rows[0].test_id == "uge-1"
    template = ie.load_uge_prompt(_text(tmp_path / "uge.txt", synthetic_uge_template()))
    assert ie.question(rows[0], template).parts[0].startswith("\nSYNTHETIC UGE TEST TEMPLATE. Instruction: Remove")
    assert "not the official text" in ie.uge_fingerprint_mismatches(template)[0]


def _text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("source, message", [
    ("prompt = f'{x} <edit_prompt>'\n", "not a plain string literal"),
    ("template = 'Instruction: <edit_prompt>'\n", "assigns no string to `prompt`"),
    ("prompt = 'Instruction: <edit_prompt>'\ndef broken(:\n", "is not valid Python"),
    ("prompt = 'no marker here'\n", "exactly once"),
])
def test_the_uge_template_is_read_from_the_script_without_running_it(tmp_path, source, message):
    script = _text(tmp_path / "UGE_bench.py", synthetic_uge_script(synthetic_uge_template()))
    assert ie.load_uge_prompt(script) == synthetic_uge_template()  # the script exits if it is ever run
    with pytest.raises(InputError, match=message):
        ie.load_uge_prompt(_text(tmp_path / "bad" / "UGE_bench.py", source))


def test_uge_rows_file_can_be_passed_and_a_missing_one_is_explained(tmp_path):
    hard = tmp_path / "hard"
    hard.mkdir()
    with pytest.raises(InputError, match="no UGE_edit.json"):
        ie.find_uge(tmp_path, extract_to=None)
    rows_file = _text(tmp_path / "mine.json", json.dumps({"1": {"id": "000000001.jpg", "prompt": "p"}}))
    assert ie.find_uge(tmp_path, extract_to=None, rows_file=rows_file) == (rows_file, hard)
    # A checkout of the ImgEdit repository keeps UGE_edit.json beside UGE_bench.py (Benchmark/UGE/).
    beside = _text(tmp_path / "repo" / "Benchmark" / "UGE" / "UGE_edit.json", rows_file.read_text())
    assert ie.find_uge(tmp_path, extract_to=None, also_look_in=(beside.parent,)) == (beside, hard)
    rows, _ = ie.load_uge_rows(rows_file, hard)
    assert "not found" in rows[0].problem
    with pytest.raises(InputError, match="exactly once"):
        ie.load_uge_prompt(_text(tmp_path / "t.txt", "no marker"))


# ---------------------------------------------------------------------------------------------------------------
# The factory's loopback rule: edited image -> reply -> official parse -> expected score


def test_the_loopback_rule_reads_the_level_back_from_the_edited_image(tmp_path):
    make_imgedit_dataset(tmp_path / "data", rows_per_type=2)
    singleturn = tmp_path / "data" / "Benchmark" / "singleturn"
    rows, _ = ie.load_rows(singleturn)
    prompts = ie.load_judge_prompts(singleturn)
    edits = ie.edited_images_in_folder(write_imgedit_edits(tmp_path / "edits", rows), [r.key for r in rows])
    assert len({edited_red(r.key) for r in rows}) > 1
    scored = {}
    for row in rows:
        q = ie.question(row, ie.template_for(row, prompts))
        urls = ["data:image/png;base64," + base64.b64encode(p.read_bytes()).decode()
                for p in (row.image, edits[row.key])]
        call = JudgeCall(aspect="score", instruction=row.prompt, prompt=q.texts[0], image_urls=urls,
                         text_first=True, body={}, authorized=True)
        reply = imgedit_reply(imgedit_rule_scores(call), call)
        assert reply.splitlines()[1].startswith(ie.reply_labels(row.edit_type)[0] + ": ")
        values = ie.parse_official(reply)
        assert values == expected_values(row.key)
        scored[row.key] = (row.edit_type, ie.row_score(values))
    assert set(ie.type_scores(scored)) == set(ie.EDIT_TYPES)
