"""The contract every registered benchmark passes, run as users run pytest against the loopback judge: collection,
exact per-row scores and headline (the test's own arithmetic), the table, the JSON, the HTML, bad rows as error
rows that write nothing outside, and missing images failing the gate."""

import json
import math
import re
import statistics
from html import escape
from pathlib import Path

import pytest

from pytest_editeval.benchmarks import BUILTIN
from pytest_editeval.testing import imgedit_factory as imgedit
from pytest_editeval.testing import kris_factory as kris
from pytest_editeval.testing import risebench_factory as rise
from pytest_editeval.testing.gedit_factory import make_gedit_dataset, write_edited_images

from .conftest import API_KEY, output_of
from .expected import expected_row as gedit_expected_row
from .test_risebench_rules import expected_row as rise_expected_row


class Gedit:
    name = "gedit"
    headline_label = "OVERALL (macro)"

    def dataset(self, root: Path, hostile: bool = False):
        overrides = {0: {"key": "../../../../tmp/contract-escape"}, 5: {"task_type": "a/b"}} if hostile else None
        rows = make_gedit_dataset(root, rows_per_subset=2, languages=("en",), overrides=overrides)
        bad = {r.key for r in rows if "/" in r.key or "/" in r.task_type}
        return root, [r for r in rows if r.key not in bad], len(bad)

    def edits(self, folder: Path, rows, skip=()):
        return write_edited_images(folder, [r for r in rows if r.key not in skip])

    def judge(self, server):
        pass  # the default rule (testing.judge_server.rule_scores)

    def key(self, row):
        return row.key

    def subset(self, row):
        return row.task_type

    def row_scores(self, row):
        sc, pq, o = gedit_expected_row(row)
        return {"semantic_consistency": sc, "perceptual_quality": pq, "overall": o}

    def headline(self, rows):  # official: macro over task types of the overall score
        by = {}
        for row in rows:
            by.setdefault(row.task_type, []).append(self.row_scores(row)["overall"])
        return statistics.fmean(statistics.fmean(v) for v in by.values())

    def expected_ids(self, rows):
        return {f"en-{r.task_type}-{r.key}" for r in rows}


class ImgEdit:
    name = "imgedit"
    headline_label = "OVERALL (type mean, official)"

    def dataset(self, root: Path, hostile: bool = False):
        rows = imgedit.make_imgedit_dataset(root, rows_per_type=2,
                                            bad_rows=("dotdot_id", "absolute_id", "bad_key") if hostile else ())
        good = [r for r in rows if not r.problem]
        return root, good, len(rows) - len(good)

    def edits(self, folder: Path, rows, skip=()):
        return imgedit.write_imgedit_edits(folder, rows, skip=skip)

    def judge(self, server):
        server.scores, server.reply = imgedit.imgedit_rule_scores, imgedit.imgedit_reply

    def key(self, row):
        return row.key

    def subset(self, row):
        return row.edit_type

    def row_scores(self, row):
        values = imgedit.expected_values(row.key)
        return {"score": round(sum(values) / len(values), 2)}

    def headline(self, rows):  # the leaderboard: mean of the type scores, each rounded to 2 decimals
        by = {}
        for row in rows:
            by.setdefault(row.edit_type, []).append(self.row_scores(row)["score"])
        return statistics.fmean(round(statistics.fmean(v), 2) for v in by.values())

    def expected_ids(self, rows):
        return {f"{r.edit_type}-{r.key}" for r in rows}


class ImgEditUge(ImgEdit):
    """ImgEdit-Bench's UGE suite: one subset, the official overall = round(mean of the row scores, 2)."""
    name = "imgedit-uge"
    headline_label = "OVERALL (official, rounded)"

    def dataset(self, root: Path, hostile: bool = False):
        rows = imgedit.make_imgedit_uge_dataset(root, hostile=hostile)
        good = [r for r in rows if not r.problem]
        return root, good, len(rows) - len(good)

    def subset(self, row):
        return "uge"

    def headline(self, rows):
        return round(statistics.fmean(self.row_scores(row)["score"] for row in rows), 2)

    def expected_ids(self, rows):
        return {f"uge-{r.key}" for r in rows}


class Kris:
    name = "kris"
    headline_label = "OVERALL (pooled)"

    def dataset(self, root: Path, hostile: bool = False):
        bad = [("count_change", "dotdot"), ("physics", "absolute_path"), ("color_change", "unsafe_id")] if hostile else []
        rows = kris.make_kris_dataset(root, rows_per_category=1, bad_rows=bad)
        good = [r for r in rows if not r.defect]
        return root, good, len(rows) - len(good)

    def edits(self, folder: Path, rows, skip=()):
        return kris.write_kris_edits(folder, [r for r in rows if self.key(r) not in skip])

    def judge(self, server):
        server.scores, server.reply = (lambda call: []), kris.kris_reply

    def key(self, row):
        return f"{row.category}/{row.id}"

    def subset(self, row):
        return row.category

    def row_scores(self, row):
        scores = kris.expected_scores(row)
        return {**scores, "avg": statistics.fmean(scores.values())}

    def headline(self, rows):  # Overall AVG: every metric value of every row, pooled
        values = [v for row in rows for v in kris.expected_scores(row).values()]
        return math.fsum(values) / len(values)

    def expected_ids(self, rows):
        return {f"{r.category}-{r.id}" for r in rows}


class RiseBench:
    name = "risebench"
    headline_label = "OVERALL (pooled, official)"
    decimals = 1

    def dataset(self, root: Path, hostile: bool = False):
        bad = ("dotdot_image", "unsafe_index", "bad_category") if hostile else ()
        rows = rise.make_risebench_dataset(root, bad_rows=bad)
        rise.write_stand_in_utils(root / "utils.py")
        good = [r for r in rows if not r.defect]
        return root, good, len(rows) - len(good)

    def edits(self, folder: Path, rows, skip=()):
        return rise.write_risebench_edits(folder, rows, skip=skip)

    def judge(self, server):
        server.scores, server.reply = (lambda call: []), rise.risebench_reply

    def key(self, row):
        return row.index

    def subset(self, row):
        return row.subtask

    def row_scores(self, row):
        return {m: v for m, v in rise_expected_row(row, rise.edited_level(row)).items() if v is not None}

    def headline(self, rows):  # Accuracy x100 pooled over every row
        return math.fsum(rise_expected_row(row, rise.edited_level(row))["accuracy"] for row in rows) / len(rows)

    def expected_ids(self, rows):
        return {r.index for r in rows}


ADAPTERS = {"gedit": Gedit(), "imgedit": ImgEdit(), "imgedit-uge": ImgEditUge(), "kris": Kris(),
            "risebench": RiseBench()}


def test_every_registered_benchmark_has_a_contract():
    assert set(ADAPTERS) == set(BUILTIN)


@pytest.fixture(params=sorted(ADAPTERS))
def bench(request):
    return ADAPTERS[request.param]


@pytest.fixture
def brun(pytester, monkeypatch, judge, tmp_path):
    monkeypatch.setenv("EDITEVAL_JUDGE_API_KEY", API_KEY)

    def _run(adapter, dataset, images, *args, subprocess=False):
        adapter.judge(judge)
        base = [f"--editeval-benchmark={adapter.name}", f"--editeval-dataset={dataset}",
                f"--editeval-images={images}", f"--editeval-judge-url={judge.url}",
                f"--editeval-cache-dir={tmp_path / 'cache'}", "--editeval-judge-backoff=0.01", "-p", "no:cacheprovider"]
        runner = pytester.runpytest_subprocess if subprocess else pytester.runpytest
        return runner(*base, *args)

    return _run


def test_collection(bench, brun, tmp_path):
    dataset, rows, _ = bench.dataset(tmp_path / "data")
    result = brun(bench, dataset, bench.edits(tmp_path / "edits", rows), "--collect-only", "-q")
    assert result.ret == 0, output_of(result)
    ids = {line.split("[", 1)[1].rstrip("]") for line in result.outlines if "::test_edit[" in line}
    assert ids == bench.expected_ids(rows)


def test_exact_scores_table_json_and_html(bench, brun, judge, tmp_path):
    dataset, rows, _ = bench.dataset(tmp_path / "data")
    out, html = tmp_path / "results.json", tmp_path / "report.html"
    result = brun(bench, dataset, bench.edits(tmp_path / "edits", rows), f"--editeval-json={out}",
                  f"--editeval-html={html}")
    assert result.ret == 0, output_of(result)
    result.assert_outcomes(passed=len(rows))
    data = json.loads(out.read_text())
    assert data["schema_version"] == 2 and data["benchmark"] == bench.name and data["complete"]
    by_key = {s["key"]: s for s in data["samples"]}
    for row in rows:
        sample = by_key[bench.key(row)]
        assert sample["status"] == "scored" and sample["subset"] == bench.subset(row)
        for metric, value in bench.row_scores(row).items():
            assert sample["scores"][metric] == pytest.approx(value, abs=1e-9), (row, metric)
    benchmark_headline, described = data["benchmark_info"]["headline"].split(", ", 1)
    averaging = described.split()[0]  # "micro mean of the full set": the benchmark's own averaging
    actual = data["aggregates"]["full"][averaging][benchmark_headline]["mean"]
    assert actual == pytest.approx(bench.headline(rows), abs=1e-9)
    text = output_of(result)
    decimals = getattr(bench, "decimals", 3 if bench.name == "gedit" else 2)
    assert bench.headline_label in text and f"{bench.headline(rows):.{decimals}f}" in text
    assert f"rows: {len(rows)} scored, 0 errors, 0 missing" in text
    page = html.read_text()
    for metric in data["benchmark_info"]["metrics"]:
        assert f"{metric['label']} ({metric['short']})" in page
    assert "How the scores are computed" in page and page.count("<tr data-subset=") == len(rows)
    _check_report_page(page, html.parent, bench.name, len(rows), tmp_path)


def _check_report_page(page: str, folder: Path, name: str, edited: int, rootpath: Path) -> None:
    """The report names what produced it, draws no empty chart, links every edited image at full size, and
    shows a group only in the metrics it declares (KRIS's knowledge types: AVG), as the terminal table does."""
    from urllib.parse import unquote

    from pytest_editeval import benchmarks
    assert "id='run-header'" in page and "127.0.0.1" in page and "pytest-editeval" in page
    assert "(n=0)" not in page and ">score</text>" in page
    links = re.findall(r"<a class='full' href='([^']+)'>", page)
    assert len(links) >= edited and all((folder / unquote(h)).is_file() for h in links)
    declared = benchmarks.get(name, rootpath)
    for group in declared.groups:
        row = re.search(rf"<tr><td class='l'>{re.escape(escape(group.name))}</td><td>\d+</td>(.*?)</tr>", page)
        assert row is not None, group.name
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1))
        assert len(cells) == len(declared.metrics)
        for metric, cell in zip(declared.metrics, cells):
            assert (cell != "") == (group.metrics is None or metric.name in group.metrics), (group.name, metric.name)


def test_bad_rows_are_error_rows_and_write_nothing_outside(bench, brun, judge, tmp_path):
    dataset, rows, bad = bench.dataset(tmp_path / "hostile", hostile=True)
    assert bad >= 1
    out = tmp_path / "hostile.json"
    result = brun(bench, dataset, bench.edits(tmp_path / "edits", rows), f"--editeval-json={out}")
    assert result.ret == 1, output_of(result)  # the error rows fail their items; the rest is scored
    result.assert_outcomes(passed=len(rows), failed=bad)
    assert "Traceback" not in output_of(result)
    data = json.loads(out.read_text())
    assert sum(s["status"] == "error" for s in data["samples"]) == bad
    assert not Path("/tmp/contract-escape.png").exists()


def test_missing_images_fail_the_gate(bench, brun, tmp_path):
    dataset, rows, _ = bench.dataset(tmp_path / "data")
    skipped = bench.key(rows[0])
    images = bench.edits(tmp_path / "edits", rows, skip={skipped})
    result = brun(bench, dataset, images)
    assert result.ret == 1, output_of(result)
    result.stdout.fnmatch_lines([f"MISSING: 1 of {len(rows)} selected rows have no edited image*",
                                 "editeval gate FAILED: 1 of * selected rows have no edited image"])
    allowed = brun(bench, dataset, images, "--editeval-allow-missing")
    assert allowed.ret == 0, output_of(allowed)
