"""Shards of a run (`--editeval-shard K/N`) and their merge (`pytest-editeval merge`): the share's properties,
shard runs as users run them, and a merge that gives the whole run's aggregates, gate, JSON rows and HTML, for
every registered benchmark. Shard files are untrusted: what does not belong together is one line, exit 2."""

import hashlib
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from pytest_editeval.data.dataset import Row
from pytest_editeval.run.shards import deal, parse_shard

from .conftest import API_KEY, output_of
from .test_contract import ADAPTERS

pytestmark = pytest.mark.slow  # each test runs several shard runs and merges them
HEADLINE = {"gedit": "overall", "imgedit": "score", "imgedit-uge": "score", "kris": "avg", "risebench": "accuracy"}


# ---- the share --------------------------------------------------------------------------------------------------
def _rows(sizes: dict[str, int]) -> list[Row]:
    return [Row(id=f"en-{subset}-k{i}", key=f"k{i}", subset=subset, instruction="x")
            for subset, size in sizes.items() for i in range(size)]


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7])
def test_the_deal_is_a_balanced_partition_that_spreads_every_subset(count):
    rows = _rows({"a": 13, "b": 1, "c": 4, "d": 9, "e": 2})
    owner = deal(rows, count)
    assert set(owner) <= set(range(1, count + 1)) and len(owner) == len(rows)  # each row in exactly one shard
    sizes = Counter(owner)
    assert max(sizes.values()) - min(sizes.get(k, 0) for k in range(1, count + 1)) <= 1
    for subset in "abcde":
        per_shard = Counter(o for o, r in zip(owner, rows) if r.subset == subset)
        counts = [per_shard.get(k, 0) for k in range(1, count + 1)]
        assert max(counts) - min(counts) <= 1, (subset, counts)  # a subset is spread over the shards


def test_the_deal_depends_on_the_row_ids_alone():
    rows = _rows({"a": 11, "b": 6, "c": 5})
    owner = dict(zip((r.id for r in rows), deal(rows, 3)))
    # the dataset's order inside a subset does not matter (hash order), only the ids and the subsets' order
    reordered = [*reversed(rows[:11]), *rows[11:17][::2], *rows[11:17][1::2], *rows[17:]]
    assert dict(zip((r.id for r in reordered), deal(reordered, 3))) == owner
    # the test's own arithmetic: within a subset, sha256(id) order, dealt round-robin, continuing across subsets
    expected, dealt = {}, 0
    for subset in "abc":
        ids = sorted((r.id for r in rows if r.subset == subset), key=lambda i: hashlib.sha256(i.encode()).hexdigest())
        expected.update({row_id: (dealt + turn) % 3 + 1 for turn, row_id in enumerate(ids)})
        dealt += len(ids)
    assert owner == expected


@pytest.mark.parametrize("text, message", [
    ("0/3", "K must be between 1 and N"), ("4/3", "K must be between 1 and N"), ("2", "expected K/N"),
    ("a/b", "expected K/N"), ("1/0", "K must be between 1 and N"),
])
def test_shard_spellings(text, message):
    with pytest.raises(ValueError, match=message):
        parse_shard(text)
    assert parse_shard(" 2 / 4 ").index == 2


# ---- shard runs ---------------------------------------------------------------------------------------------
def _expected_share(rows, index, count):
    """The ids of shard index/count, by the documented rule (the test's own arithmetic)."""
    expected, dealt = [], 0
    subsets = list(dict.fromkeys(r.task_type for r in rows))
    for subset in subsets:
        ids = sorted((f"en-{r.task_type}-{r.key}" for r in rows if r.task_type == subset),
                     key=lambda i: hashlib.sha256(i.encode()).hexdigest())
        expected += [i for turn, i in enumerate(ids) if (dealt + turn) % count + 1 == index]
        dealt += len(ids)
    return set(expected)


def test_a_shard_collects_its_share_the_same_under_xdist_and_k(run, en_rows, tmp_path):
    collected = run("--editeval-shard=2/3", "--collect-only", "-q")
    assert collected.ret == 0, output_of(collected)
    ids = {line.split("[", 1)[1].rstrip("]") for line in collected.outlines if "::test_edit[" in line}
    assert ids == _expected_share(en_rows, 2, 3) and len(ids) == 15
    out = tmp_path / "xdist.json"
    result = run("-n", "2", "--editeval-shard=2/3", f"--editeval-json={out}", "--editeval-threshold=overall>=9")
    assert result.ret == 0, output_of(result)  # a shard is not gated on its own, even below the threshold
    result.stdout.fnmatch_lines(["editeval gate NOT APPLIED: shard 2/3 (15 of 44 selected rows) is not gated on its "
                                 "own: gate the merged shards with `pytest-editeval merge`*"])
    data = json.loads(out.read_text())
    assert {r["id"] for r in data["shard"]["rows"]} == ids == {s["id"] for s in data["samples"]}
    assert data["shard"]["index"] == 2 and data["shard"]["count"] == 3 and data["shard"]["selected_rows"] == 44
    assert data["expected_rows"] == 15 and data["complete"] and data["gate"]["evaluated"] is False
    # -k narrows the items, never the share: a partial shard
    partial = tmp_path / "partial.json"
    narrowed = run("--editeval-shard=2/3", "-k", "color_alter", f"--editeval-json={partial}")
    assert narrowed.ret == 0
    narrowed.stdout.fnmatch_lines(["PARTIAL RUN: * of 15 benchmark rows ran*"])
    data = json.loads(partial.read_text())
    assert {r["id"] for r in data["shard"]["rows"]} == ids and not data["complete"]


def test_a_shard_is_gated_on_its_own_only_when_asked(run):
    always = run("--editeval-shard=1/3", "--editeval-gate=always", "--editeval-threshold=overall>=9")
    assert always.ret == 1
    always.stdout.fnmatch_lines(["FAIL overall>=9: actual * (n=15)", "editeval gate FAILED: 1 of 1 thresholds missed"])


def test_the_shard_option_from_ini_and_bad_values(run, pytester):
    pytester.makeini("[pytest]\nediteval_shard = 3/3\n")
    from_ini = run("--collect-only", "-q")
    assert from_ini.ret == 0 and sum("::test_edit[" in line for line in from_ini.outlines) == 14
    for value, message in [("0/3", "K must be between 1 and N"), ("three", "expected K/N"),
                           ("45/45", "the selection has 44 rows, so some of 45 shards would be empty; use at most "
                                     "44 shards")]:
        bad = run(f"--editeval-shard={value}")
        assert bad.ret == 4, output_of(bad)
        assert message in output_of(bad) and "Traceback" not in output_of(bad)


# ---- the merge gives the whole run ----------------------------------------------------------------------------
@pytest.fixture
def bench_run(pytester, monkeypatch, judge, tmp_path):
    monkeypatch.setenv("EDITEVAL_JUDGE_API_KEY", API_KEY)

    def _run(adapter, dataset, images, *args):
        adapter.judge(judge)
        return pytester.runpytest(
            f"--editeval-benchmark={adapter.name}", f"--editeval-dataset={dataset}", f"--editeval-images={images}",
            f"--editeval-judge-url={judge.url}", f"--editeval-cache-dir={tmp_path / 'cache'}",
            "--editeval-judge-backoff=0.01", "-p", "no:cacheprovider", *args)

    return _run


def merge(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "pytest_editeval.cli", "merge", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd)


def _summary(lines):
    """The table and the gate's lines, as printed."""
    return ([line for line in lines if line.startswith(("+", "|"))],
            [line for line in lines if line.startswith(("PASS", "FAIL", "editeval gate"))])


def _samples_text(path: Path) -> str:
    text = path.read_text()
    return text[text.index('"samples":'):text.index('"missing":')]


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_merged_shards_give_the_whole_run(name, bench_run, tmp_path):
    bench = ADAPTERS[name]
    dataset, rows, _ = bench.dataset(tmp_path / "data")
    images = bench.edits(tmp_path / "edits", rows, skip={bench.key(rows[1])})  # a missing row fails the gate
    gates = [f"--editeval-threshold={HEADLINE[name]}>=0", "--editeval-threshold=error_rate<=0.5"]
    whole = bench_run(bench, dataset, images, *gates, f"--editeval-json={tmp_path / 'whole.json'}",
                      f"--editeval-html={tmp_path / 'whole.html'}")
    assert whole.ret == 1, output_of(whole)
    shards = [tmp_path / f"shard-{k}.json" for k in (1, 2, 3)]
    for k, path in enumerate(shards, 1):
        shard = bench_run(bench, dataset, images, *gates, f"--editeval-shard={k}/3", f"--editeval-json={path}")
        assert shard.ret == 0, output_of(shard)  # never gated on its own, whatever its rows
    merged = merge(*reversed(shards), *(g.replace("--editeval-", "--") for g in gates),
                   f"--json={tmp_path / 'merged.json'}", f"--html={tmp_path / 'merged.html'}")
    assert merged.returncode == 1, merged.stdout + merged.stderr  # the missing row fails the merged gate too
    assert "Traceback" not in merged.stderr
    assert _summary(merged.stdout.splitlines()) == _summary(whole.outlines)
    assert "editeval gate FAILED: 1 of" in merged.stdout
    one, combined = (json.loads((tmp_path / f).read_text()) for f in ("whole.json", "merged.json"))
    assert _samples_text(tmp_path / "merged.json") == _samples_text(tmp_path / "whole.json")  # byte for byte
    paid = ("usage", "cache_saved", "cost")  # what each run paid: the shards found the whole run's answers cached
    for key in one:
        if key == "judge":
            assert {k: v for k, v in combined[key].items() if k not in paid} == \
                {k: v for k, v in one[key].items() if k not in paid}
        elif key != "meta":
            assert combined[key] == one[key], key
    assert combined["shard"] is None and combined["meta"]["merged_shards"] == 3
    # The same report, but for what each run paid (the judge's usage section, as `paid` in the JSON).
    assert _unpaid_html(tmp_path / "merged.html") == _unpaid_html(tmp_path / "whole.html")
    assert "<h2>Judge</h2><p id='judge-usage'>" in (tmp_path / "whole.html").read_text()


def test_merge_compares_saves_and_follows_the_missing_rows_setting(run, tmp_path, pytester):
    whole = run("--editeval-save=base", f"--editeval-json={tmp_path / 'base.json'}")
    assert whole.ret == 0
    shards = [tmp_path / f"s{k}.json" for k in (1, 2)]
    for k, path in enumerate(shards, 1):
        assert run(f"--editeval-shard={k}/2", f"--editeval-json={path}").ret == 0
    first = merge(*shards, "--compare=last-good", "--compare-missing=skip", "--save=candidate",
                  f"--rootdir={pytester.path}")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "no saved run 'last-good'" in first.stdout and "comparison skipped (--compare-missing=skip)" in first.stdout
    assert (pytester.path / ".editeval" / "runs" / "candidate.json").is_file()
    compared = merge(*shards, "--compare=base", "--compare-fail=overall:-0.01", "--compare-fail=sc[text_change]:0.5",
                     f"--rootdir={pytester.path}", f"--json={tmp_path / 'c.json'}")
    assert compared.returncode == 1, compared.stdout + compared.stderr
    assert "PASS compare overall:-0.01: +0.000" in compared.stdout
    assert "FAIL compare sc[text_change]:0.5: +0.000" in compared.stdout
    assert json.loads((tmp_path / "c.json").read_text())["comparison"]["gates"][0]["passed"] is True
    missing_baseline = merge(*shards, "--compare=nope", f"--rootdir={pytester.path}")
    assert missing_baseline.returncode == 2 and "no saved run 'nope'" in missing_baseline.stderr


def test_a_partial_or_stopped_shard_is_not_gated_by_the_merge(run, tmp_path):
    shards = [tmp_path / f"s{k}.json" for k in (1, 2)]
    assert run("--editeval-shard=1/2", f"--editeval-json={shards[0]}").ret == 0
    assert run("--editeval-shard=2/2", "-k", "color_alter", f"--editeval-json={shards[1]}").ret == 0
    merged = merge(*shards, "--threshold=overall>=0")
    assert merged.returncode == 2, merged.stdout + merged.stderr  # never passes by omission
    assert "editeval gate NOT APPLIED: partial run: 24 of 44 rows ran" in merged.stdout
    assert "PARTIAL RUN: 24 of 44 benchmark rows ran" in merged.stdout
    forced = merge(*shards, "--threshold=overall>=0", "--gate=always")
    assert forced.returncode == 0 and "editeval gate PASSED" in forced.stdout
    data = json.loads(shards[1].read_text())
    data["stopped"] = "judge answered 401 Unauthorized"
    shards[1].write_text(json.dumps(data))
    stopped = merge(*shards, "--threshold=overall>=0")
    assert stopped.returncode == 2
    assert stopped.stdout.splitlines()[1] == ("editeval STOPPED (exit 2): shard 2/2 stopped: judge answered 401 "
                                              "Unauthorized")


# ---- shard files are untrusted ----------------------------------------------------------------------------------
@pytest.fixture
def three_shards(run, tmp_path):
    paths = [tmp_path / f"shard-{k}.json" for k in (1, 2, 3)]
    for k, path in enumerate(paths, 1):
        assert run(f"--editeval-shard={k}/3", f"--editeval-json={path}").ret == 0
    assert run(f"--editeval-json={tmp_path / 'whole.json'}").ret == 0
    assert run("--editeval-shard=1/2", f"--editeval-json={tmp_path / 'other-count.json'}").ret == 0
    return paths


def _tampered(path: Path, folder: Path, change) -> Path:
    data = json.loads(path.read_text())
    change(data)
    out = folder / f"tampered-{len(list(folder.glob('tampered-*')))}-{path.name}"
    out.write_text(json.dumps(data))
    return out


def _set(data, dotted, value):
    *parents, last = dotted.split(".")
    for part in parents:
        data = data[part]
    data[last] = value


def test_merge_refuses_shards_that_do_not_belong_together(three_shards, tmp_path):
    s1, s2, s3 = three_shards
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({"hello": "world"}))
    cases = [
        ([s1, s2], "shard 3/3 is missing: give all 3 shard files (got 1/3, 2/3)"),
        ([s1, s2, s3, s2], f"shard 2/3 is given twice: {s2} and {s2}"),
        ([s1, s2, tmp_path / "other-count.json"], "the shards do not belong together: shard count 2 in"),
        ([s1, s2, tmp_path / "whole.json"], "is not a shard's results (it has no shard section)"),
        ([s1, s2, garbage], f"cannot read {garbage}: not valid JSON"),
        ([s1, s2, foreign], f"{foreign} is not a results file of pytest-editeval"),
        ([s1, s2, tmp_path / "nope.json"], f"cannot read {tmp_path / 'nope.json'}: No such file or directory"),
        ([s1, s2, _tampered(s3, tmp_path, lambda d: _set(d, "judge.model", "other-judge"))],
         "the shards do not belong together: judge model 'other-judge' in"),
        ([s1, s2, _tampered(s3, tmp_path, lambda d: _set(d, "benchmark", "kris"))],
         "the shards do not belong together: benchmark 'kris' in"),
        ([s1, s2, _tampered(s3, tmp_path, lambda d: _set(d, "meta.model_digest", "ab" * 32))],
         "the shards do not belong together: model digest"),
        ([s1, s2, _tampered(s3, tmp_path, lambda d: d["shard"]["rows"].append(
            dict(json.loads(s1.read_text())["shard"]["rows"][0])))], "is in two shards: shard 1/3"),
        ([s1, s2, _tampered(s3, tmp_path, lambda d: _set(d, "shard.rows", d["shard"]["rows"][1:]))],
         "is not one of the shard's rows"),
        ([s1, s2, _tampered(s3, tmp_path, lambda d: d["samples"][0]["scores"].update(overall=11.0))],
         "has overall 11.0, outside 0..10"),
        ([s1, s2, _tampered(s3, tmp_path, lambda d: _set(d, "shard.selection_sha256", "0" * 64))],
         "the shards do not belong together: selection (rows selected before sharding)"),
        ([s1, s2, _tampered(s3, tmp_path, lambda d: _set(d, "shard.index", 9))], "shard index 9 is outside 1..3"),
    ]
    for files, message in cases:
        result = merge(*files)
        assert result.returncode == 2, (message, result.stdout, result.stderr)
        assert message in result.stderr, (message, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and not result.stdout


def test_merge_bad_options_are_one_line(three_shards):
    for args, message in [(["--threshold=overall>=>1"], "malformed threshold"),
                          (["--threshold=sc[colour]>=1"], "unknown subset 'colour'"),
                          (["--compare-fail=overall:-1"], "--compare-fail needs a baseline")]:
        result = merge(*three_shards, *args)
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def test_a_marker_slice_is_never_sharded(pytester, judge, gedit, edits, monkeypatch):
    """--editeval-shard splits the benchmark's own items over CI jobs; a test's @pytest.mark.editeval slice is
    the rows it names, whole, in every job."""
    import shutil

    monkeypatch.setenv("EDITEVAL_JUDGE_API_KEY", API_KEY)
    shutil.copy(Path(__file__).resolve().parents[1] / "examples" / "marker_api" / "test_checkpoint_quality.py",
                pytester.path)
    result = pytester.runpytest(f"--editeval-judge-url={judge.url}", f"--editeval-dataset={gedit[0]}",
                                f"--editeval-images={edits}", f"--editeval-cache-dir={pytester.path / 'c'}",
                                "--editeval-shard=1/3")
    result.assert_outcomes(passed=3)
    assert judge.count == 16  # the slice's 8 rows, not a third of them


def test_merge_report_without_the_dataset_or_the_images_says_so_in_one_line(three_shards, tmp_path):
    moved = [_tampered(path, tmp_path, lambda d: [s.update(edited_image=f"/gone/{s['key']}.png")
                                                  for s in d["samples"]]) for path in three_shards]
    html = tmp_path / "report.html"
    result = merge(*moved, "--dataset=/no/such/dataset", f"--html={html}")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert [line for line in lines if "HTML report without source thumbnails" in line] == [
        "editeval: HTML report without source thumbnails: cannot load the dataset /no/such/dataset: /no/such/dataset: no such "
        "file or folder"]
    assert len([line for line in lines if line.startswith("editeval: HTML report: 44 edited image(s) not found")]) == 1
    page = html.read_text()
    assert "data:image/jpeg" not in page and page.count("<tr data-subset=") == 44  # every row, no thumbnail


def _unpaid_html(path):
    """A report without its judge usage section and its time: requests, tokens and cost differ between a whole
    run and shards that found its answers cached, and the merge is stamped when it was made."""
    text = re.sub(r"<h2>Judge</h2><p id='judge-usage'>[^<]*</p>", "", path.read_text())
    return re.sub(r"<tr><th>Time</th><td>[^<]*</td></tr>", "", text)
