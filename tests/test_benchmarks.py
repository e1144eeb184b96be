"""What each benchmark adds beyond the shared contract (test_contract.py): ImgEdit's archive, hub and templates,
KRIS's multi-image rows, official misreadings and anomaly fix, user-declared sets, entry points, and saved runs
of results schema 1 still serving as baselines. Run as users run pytest, against the loopback judge."""

import json
import math
import shutil
from pathlib import Path

import pytest

from pytest_editeval.testing import imgedit_factory as imgedit
from pytest_editeval.testing import kris_factory as kris

from .conftest import API_KEY, output_of


@pytest.fixture
def brun(pytester, monkeypatch, judge, tmp_path):
    monkeypatch.setenv("EDITEVAL_JUDGE_API_KEY", API_KEY)

    def _run(benchmark, *args, images=None, dataset=None, subprocess=False):
        base = [f"--editeval-benchmark={benchmark}", f"--editeval-judge-url={judge.url}",
                f"--editeval-cache-dir={tmp_path / 'cache'}", "--editeval-judge-backoff=0.01", "-p", "no:cacheprovider",
                *([f"--editeval-dataset={dataset}"] if dataset else []),
                *([f"--editeval-images={images}"] if images else [])]
        runner = pytester.runpytest_subprocess if subprocess else pytester.runpytest
        return runner(*base, *args)

    return _run


def _imgedit_judge(judge):
    judge.scores, judge.reply = imgedit.imgedit_rule_scores, imgedit.imgedit_reply


# ---- ImgEdit-Bench ---------------------------------------------------------------------------------------------
def test_imgedit_from_its_tar_extracted_once_with_old_alter_rows(brun, judge, tmp_path, pytester):
    rows = imgedit.make_imgedit_dataset(tmp_path / "dl", rows_per_type=1, layout="tar", old_alter=True)
    _imgedit_judge(judge)
    edits = imgedit.write_imgedit_edits(tmp_path / "edits", rows)
    tar = tmp_path / "dl" / "Benchmark.tar"
    result = brun("imgedit", dataset=tar, images=edits)
    assert result.ret == 0, output_of(result)
    result.assert_outcomes(passed=9)
    text = output_of(result)
    assert "'alter'" in text and "adjust" in text  # the old name is said once, and scored as adjust
    assert "differ from the official texts (SHA-256)" in text  # the tests' templates are not the real ones
    extracted = [p for p in (pytester.path / ".editeval" / "datasets").iterdir() if not p.name.startswith(".")]
    assert len(extracted) == 1 and not (extracted[0] / "Benchmark" / "hard").exists()  # singleturn only
    stamp = (extracted[0] / "Benchmark" / "singleturn" / "singleturn.json").stat().st_mtime_ns
    assert brun("imgedit", dataset=tar, images=edits).ret == 0
    assert (extracted[0] / "Benchmark" / "singleturn" / "singleturn.json").stat().st_mtime_ns == stamp


@pytest.mark.slow  # pytest runs of its own, in subprocesses
def test_imgedit_hub_download_fetches_only_the_benchmark_tar(brun, judge, tmp_path, monkeypatch, hub):
    published = tmp_path / "published"
    rows = imgedit.make_imgedit_dataset(published, rows_per_type=1, layout="tar")
    (published / "train").mkdir()
    (published / "train" / "part-00000.parquet").write_bytes(b"1.2 M training pairs" * 100)
    hub.add_repo("dataset", "sysuyy/ImgEdit", published)
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    _imgedit_judge(judge)
    result = brun("imgedit", images=imgedit.write_imgedit_edits(tmp_path / "edits", rows), subprocess=True)
    assert result.ret == 0, output_of(result)
    assert hub.downloads == ["Benchmark.tar"]
    extracted = [p for p in (tmp_path / "hf-cache").rglob("singleturn.json")]
    assert extracted  # unpacked in the hub's cache, beside the download, once for every project


def test_imgedit_prompts_come_from_the_user_and_a_missing_file_is_one_line(brun, judge, tmp_path):
    rows = imgedit.make_imgedit_dataset(tmp_path / "dl", rows_per_type=1)
    (tmp_path / "dl" / "Benchmark" / "singleturn" / "judge_prompt.json").unlink()
    edits = imgedit.write_imgedit_edits(tmp_path / "edits", rows)
    missing = brun("imgedit", dataset=tmp_path / "dl", images=edits)
    assert missing.ret == 4 and "pass --editeval-judge-prompts FILE" in output_of(missing)
    prompts = tmp_path / "mine.json"
    prompts.write_text(json.dumps({t: imgedit.synthetic_template(t) for t in imgedit.EDIT_TYPES}))
    _imgedit_judge(judge)
    given = brun("imgedit", f"--editeval-judge-prompts={prompts}", dataset=tmp_path / "dl", images=edits)
    assert given.ret == 0, output_of(given)
    assert all(call.prompt.startswith("\n") and "(case " in call.prompt for call in judge.calls)


@pytest.mark.slow  # pytest runs of its own, in subprocesses
def test_imgedit_uge_from_the_tar_with_the_official_script_read_not_run(brun, judge, tmp_path, pytester):
    """The UGE suite from Benchmark.tar (only Benchmark/hard/ is extracted), its template read from the user's
    copy of UGE_bench.py, which would exit if it were run; the official overall: round(row mean, 2)."""
    rows = imgedit.make_imgedit_uge_dataset(tmp_path / "dl", layout="tar", script=False)
    script = tmp_path / "ImgEdit" / "Benchmark" / "UGE" / "UGE_bench.py"
    script.parent.mkdir(parents=True)
    script.write_text(imgedit.synthetic_uge_script(imgedit.synthetic_uge_template()), encoding="utf-8")
    _imgedit_judge(judge)
    edits = imgedit.write_imgedit_edits(tmp_path / "edits", rows)
    out = tmp_path / "uge.json"
    result = brun("imgedit-uge", f"--editeval-judge-prompts={script}", f"--editeval-json={out}",
                  dataset=tmp_path / "dl" / "Benchmark.tar", images=edits, subprocess=True)
    assert result.ret == 0, output_of(result)
    result.assert_outcomes(passed=len(rows))
    assert all(call.prompt.startswith("\nSYNTHETIC UGE TEST TEMPLATE. Instruction: Remove") for call in judge.calls)
    assert "UGE judge template in" in output_of(result) and "differs from the official text" in output_of(result)
    data = json.loads(out.read_text())
    scores = [round(sum(imgedit.expected_values(r.key)) / 3, 2) for r in rows]
    assert data["aggregates"]["full"]["macro"]["score"]["mean"] == round(sum(scores) / len(scores), 2)
    extracted = [p for p in (pytester.path / ".editeval" / "datasets").iterdir() if not p.name.startswith(".")]
    assert len(extracted) == 1 and not (extracted[0] / "Benchmark" / "singleturn").exists()  # hard/ only


def test_imgedit_uge_needs_its_template_and_is_not_a_subset_of_imgedit(brun, judge, tmp_path):
    rows = imgedit.make_imgedit_uge_dataset(tmp_path / "uge", script=False)
    edits = imgedit.write_imgedit_edits(tmp_path / "edits", rows)
    missing = brun("imgedit-uge", dataset=tmp_path / "uge", images=edits)
    errors = [line for line in missing.errlines if line.startswith("ERROR: editeval:")]
    assert missing.ret == 4 and len(errors) == 1, output_of(missing)
    assert "no UGE judge template" in errors[0] and "--editeval-judge-prompts=PATH/TO/UGE_bench.py" in errors[0]
    basic = imgedit.make_imgedit_dataset(tmp_path / "basic", rows_per_type=1)
    as_subset = brun("imgedit", "--editeval-subsets=uge", dataset=tmp_path / "basic",
                     images=imgedit.write_imgedit_edits(tmp_path / "basic-edits", basic))
    assert as_subset.ret == 4
    assert "unknown subset(s) uge" in output_of(as_subset) and "--editeval-benchmark=imgedit-uge" in output_of(as_subset)


def test_imgedit_model_mode_writes_the_official_flat_layout(brun, judge, pytester, tmp_path):
    rows = imgedit.make_imgedit_dataset(tmp_path / "dl", rows_per_type=1)
    pytester.makeconftest("""
        import pytest
        from PIL import Image

        @pytest.fixture(scope="session")
        def editeval_pipeline():
            return lambda image, instruction, seed: Image.new("RGB", image.size, (110, 90, 160))
    """)
    _imgedit_judge(judge)
    out = tmp_path / "out"
    result = brun("imgedit", f"--editeval-output-dir={out}", dataset=tmp_path / "dl")
    assert result.ret == 0, output_of(result)
    assert sorted(p.name for p in out.glob("*.png")) == sorted(f"{r.key}.png" for r in rows)
    rejudged = brun("imgedit", dataset=tmp_path / "dl", images=out)  # the layout is image mode's input
    assert rejudged.ret == 0 and "judge requests: 0" in output_of(rejudged)


# ---- KRIS-Bench --------------------------------------------------------------------------------------------------
CATEGORIES_SMALL = ("color_change", "multi-element_composition", "temporal_prediction", "viewpoint_change",
                    "physics", "anomaly_correction")


def test_kris_multi_image_rows_need_an_editor_that_takes_a_list(brun, judge, pytester, tmp_path):
    kris.make_kris_dataset(tmp_path / "dl", rows_per_category=1, categories=CATEGORIES_SMALL)
    pytester.makeconftest("""
        import pytest
        from PIL import Image

        class OneImage:
            editeval_identity = {"model": "one-image"}
            def __call__(self, image, instruction, seed):
                return Image.new("RGB", image.size, (112, 90, 160))

        class Many(OneImage):
            editeval_identity = {"model": "many-images"}
            editeval_multi_image = True
            def __call__(self, image, instruction, seed):
                first = image[0] if isinstance(image, list) else image
                return Image.new("RGB", first.size, (112, 90, 160))

        @pytest.fixture(scope="session")
        def editeval_pipeline(request):
            return Many() if request.config.getoption("--editeval-model-name") == "many" else OneImage()
    """)
    judge.scores, judge.reply = (lambda call: []), kris.kris_reply
    one = brun("kris", f"--editeval-output-dir={tmp_path / 'one'}", dataset=tmp_path / "dl")
    assert one.ret == 1
    one.assert_outcomes(passed=len(CATEGORIES_SMALL) - 2, failed=2)  # multi-element and temporal rows
    assert "input images and the editor takes one; use a pipeline that takes a list of images" in output_of(one)
    many = brun("kris", "--editeval-model-name=many", f"--editeval-output-dir={tmp_path / 'many'}",
                dataset=tmp_path / "dl")
    assert many.ret == 0, output_of(many)
    assert (tmp_path / "many" / "temporal_prediction" / "1.png").is_file()


def test_kris_official_misreadings_unreadable_metrics_and_the_anomaly_fix(brun, judge, tmp_path):
    rows = kris.make_kris_dataset(tmp_path / "dl", rows_per_category=1, categories=CATEGORIES_SMALL)
    edits = kris.write_kris_edits(tmp_path / "edits", rows)

    def reply(scores, call):
        if "quality_score" in call.prompt:  # the template's trailing-comma example: invalid JSON, and the
            return '1. Detect artifacts.\n{"quality_score": 4,\n}'  # first standalone digit (1) is what counts
        if "knowledge_score" in call.prompt:  # KP never readable: missing for this row only
            return json.dumps({"instruction_score": 3})
        return kris.kris_reply(scores, call)

    judge.scores, judge.reply = (lambda call: []), reply
    out = tmp_path / "kris.json"
    result = brun("kris", f"--editeval-json={out}", "--editeval-judge-parse-retries=1", dataset=tmp_path / "dl",
                  images=edits)
    assert result.ret == 0, output_of(result)
    data = json.loads(out.read_text())
    samples = {s["subset"]: s for s in data["samples"]}
    assert all(s["scores"]["vq"] == 0.0 for s in samples.values())  # read as 1, as the official parser does
    assert samples["physics"]["scores"]["kp"] is None and samples["physics"]["scores"]["if"] == 50.0
    assert "unreadable metric values after the re-asks: 1 (kp 1)" in output_of(result)
    assert data["benchmark_info"]["options"]["kris_fix_anomaly"] is False
    anomaly_prompts = {call.prompt for call in judge.calls if "#anomaly_correction" in call.prompt}
    judge.calls.clear()
    fixed = brun("kris", f"--editeval-json={out}", "--editeval-kris-fix-anomaly", dataset=tmp_path / "dl",
                 images=edits)
    assert fixed.ret == 0 and json.loads(out.read_text())["benchmark_info"]["options"]["kris_fix_anomaly"]
    fixed_prompts = {call.prompt for call in judge.calls if "#anomaly_correction" in call.prompt}
    assert fixed_prompts - anomaly_prompts  # another instruction template, with the hint
    assert any("Because of a rule" in p or "explanation" in p.lower() for p in fixed_prompts - anomaly_prompts)


REFUSAL = "I am sorry, but I cannot assess these images."
# The dual template's own output layout (reasoning unquoted): invalid JSON, and the official fallback only tries
# `instruction_score:` / `knowledge_score:` with the colon right after the name, so it reads nothing at all.
DUAL_TEMPLATE_LAYOUT = ('{\n  "instruction_score": 4,\n  "instruction_reasoning": 1. Detect Difference 2. Match\n'
                        '  "knowledge_score": 3,\n  "knowledge_reasoning": 1. Detect Difference 2. Match\n}')


def _body_texts(call) -> list[str]:
    return [p["text"] for p in call.body["messages"][0]["content"] if p.get("type") == "text"]


def test_kris_an_unreadable_question_loses_only_its_own_metrics(brun, judge, tmp_path):
    """A question whose reply stays unreadable after the re-asks (a refusal; the dual reply in the template's
    unquoted layout) loses its own metrics for its row only: the row's other metrics count, the missing ones are
    counted per metric in the summary and the JSON, and every mean pools what the judge answered (the official
    skip-the-metric rule). Only a row with nothing read is an error row."""
    counts = {"color_change": 2, "physics": 2, "chemistry": 2, "multi-element_composition": 1}
    rows = kris.make_kris_dataset(tmp_path / "dl", rows_per_category=counts, categories=tuple(counts))
    edits = kris.write_kris_edits(tmp_path / "edits", rows)
    unanswered = {"physics-1": {"vc"}, "color_change-2": {"if"}, "chemistry-1": {"if", "kp"},
                  "multi-element_composition-1": {"vc", "vq", "if"}}  # the last: nothing read, an error row
    asked: dict[tuple[str, str], int] = {}

    def reply(scores, call):
        multi_vq = any(t.startswith("This is the image to evaluate:") for t in _body_texts(call))  # its only row
        if multi_vq and "vq" in unanswered.get("multi-element_composition-1", ()):
            asked["multi-element_composition-1", "vq"] = asked.get(("multi-element_composition-1", "vq"), 0) + 1
            return REFUSAL
        row = next((r.split()[0] for r in call.prompt.split(" #")[1:]), "")
        metric = "if" if "instruction_score" in call.prompt else "vc" if "consistency_score" in call.prompt else ""
        if metric in unanswered.get(row, ()):
            asked[row, metric] = asked.get((row, metric), 0) + 1
            return DUAL_TEMPLATE_LAYOUT if "knowledge_score" in call.prompt else REFUSAL
        return kris.kris_reply(scores, call)

    judge.scores, judge.reply = (lambda call: []), reply
    out = tmp_path / "kris.json"
    junit, html = tmp_path / "junit.xml", tmp_path / "report.html"
    result = brun("kris", f"--editeval-json={out}", "--editeval-judge-parse-retries=1", f"--junitxml={junit}",
                  f"--editeval-html={html}", dataset=tmp_path / "dl", images=edits)
    text = output_of(result)
    assert result.ret == 1, text  # the row with nothing read fails its item
    result.assert_outcomes(passed=len(rows) - 1, failed=1, warnings=3)
    assert set(asked.values()) == {2}, asked  # each unreadable question asked twice (one re-ask), never more
    assert len(asked) == 6  # physics-1 VC, color_change-2 IF, chemistry-1 IF+KP, the multi row VC, VQ and IF
    data = json.loads(out.read_text())
    samples = {s["id"]: s for s in data["samples"]}
    expected = {}  # what the judge answered readably, row by row, on the published 0-100 scale
    for row in rows:
        rid = f"{row.category}-{row.id}"
        expected[rid] = {m: v for m, v in kris.expected_scores(row).items() if m not in unanswered.get(rid, ())}
    error = samples.pop("multi-element_composition-1")
    assert error["status"] == "error" and "unreadable after 2 attempts" in error["error"]
    for rid, sample in samples.items():
        assert sample["status"] == "scored", (rid, sample["error"])
        read = {m: v for m, v in sample["scores"].items() if m != "avg" and v is not None}
        assert read == pytest.approx(expected[rid]), rid
        assert sorted(m for a in sample["answers"].values() for m in a.get("unreadable", ())) == \
            sorted(unanswered.get(rid, ()))
    refused = samples["physics-1"]["answers"]
    assert [a["reply"] for a in refused.values() if a.get("unreadable")] == [REFUSAL]
    assert any("unreadable after 2 attempts" in a.get("error", "") for a in refused.values())
    # Per metric, in the summary and in the JSON (the error row's metrics are its error, not counted here).
    assert "unreadable metric values after the re-asks: 4 (vc 1, if 2, kp 1)" in text
    full = data["aggregates"]["full"]
    assert full["unreadable"] == {"vc": 1, "if": 2, "kp": 1}
    assert full["subsets"]["chemistry"]["unreadable"] == {"if": 1, "kp": 1}
    assert full["subsets"]["color_change"]["unreadable"] == {"if": 1}
    assert full["subsets"]["physics"]["unreadable"] == {"vc": 1}
    assert full["subsets"]["multi-element_composition"]["unreadable"] == {}
    assert full["num"] == len(rows) - 1 and full["errors"] == 1
    # The partially read rows pass, each with one warning line naming what is missing.
    assert "physics-1: vc unreadable after the re-asks" in text
    assert "chemistry-1: if, kp unreadable after the re-asks" in text
    assert '<property name="editeval_unreadable" value="if,kp" />' in junit.read_text()
    assert "unreadable, missing for this row only: VC@knowledge: judge reply unreadable after 2" in html.read_text()
    # Means: every value the judge answered, pooled (category, dimension, Overall), nothing else.
    scored = {rid: e for rid, e in expected.items() if rid != "multi-element_composition-1"}

    def pooled(rids, metric=None):
        values = [v for rid in rids for m, v in scored[rid].items() if metric in (None, m)]
        return math.fsum(values) / len(values)

    for category in counts:
        rids = [rid for rid in scored if rid.rsplit("-", 1)[0] == category]
        if not rids:
            continue
        metrics = full["subsets"][category]["metrics"]
        assert metrics["avg"]["mean"] == pytest.approx(pooled(rids)), category
        assert metrics["avg"]["n"] == sum(len(scored[rid]) for rid in rids)
        for metric in ("vc", "vq", "if"):
            assert metrics[metric]["mean"] == pytest.approx(pooled(rids, metric)), (category, metric)
    natural = [rid for rid in scored if rid.startswith(("physics", "chemistry"))]
    assert full["groups"]["Natural Science"]["metrics"]["avg"]["mean"] == pytest.approx(pooled(natural))
    assert full["groups"]["Natural Science"]["metrics"]["kp"]["n"] == 3
    assert full["micro"]["avg"]["mean"] == pytest.approx(pooled(scored))
    assert full["micro"]["avg"]["n"] == sum(len(e) for e in scored.values())
    assert f"{pooled(scored):.2f}" in text
    # An unreadable question is never cached: the next run asks it again, and only it.
    unanswered.clear()
    judge.calls.clear()
    again = brun("kris", f"--editeval-json={out}", dataset=tmp_path / "dl", images=edits)
    assert again.ret == 0, output_of(again)
    again.assert_outcomes(passed=len(rows))
    assert len(judge.calls) == 6 and "unreadable metric values" not in output_of(again)
    assert json.loads(out.read_text())["aggregates"]["full"]["unreadable"] == {}


@pytest.mark.slow  # several seconds: repeated judging of every row
def test_kris_repeated_judging_keeps_a_metric_that_one_sample_read(brun, judge, tmp_path):
    """With --editeval-judge-samples 2, a question one sample never read takes the other sample's value (nothing
    missing); one no sample read is missing for its row only."""
    counts = {"physics": 2, "chemistry": 1}
    rows = kris.make_kris_dataset(tmp_path / "dl", rows_per_category=counts, categories=tuple(counts))
    edits = kris.write_kris_edits(tmp_path / "edits", rows)

    def reply(scores, call):
        if "#physics-1" in call.prompt and "consistency_score" in call.prompt and call.body.get("seed") is None:
            return REFUSAL  # sample 0 only
        if "#chemistry-1" in call.prompt and "knowledge_score" in call.prompt:
            return DUAL_TEMPLATE_LAYOUT  # every sample
        return kris.kris_reply(scores, call)

    judge.scores, judge.reply = (lambda call: []), reply
    out = tmp_path / "kris.json"
    result = brun("kris", f"--editeval-json={out}", "--editeval-judge-samples=2", "--editeval-judge-parse-retries=0",
                  dataset=tmp_path / "dl", images=edits)
    assert result.ret == 0, output_of(result)
    result.assert_outcomes(passed=len(rows), warnings=1)
    data = json.loads(out.read_text())
    samples = {s["id"]: s for s in data["samples"]}
    for row in rows:
        rid = f"{row.category}-{row.id}"
        lost = {"if", "kp"} if rid == "chemistry-1" else set()
        read = {m: v for m, v in samples[rid]["scores"].items() if m != "avg" and v is not None}
        assert read == pytest.approx({m: v for m, v in kris.expected_scores(row).items() if m not in lost}), rid
    vc = samples["physics-1"]["answers"]["VC@knowledge"]
    assert "unreadable" not in vc and [s.get("unreadable") for s in vc["samples"]] == [["vc"], None]
    assert data["aggregates"]["full"]["unreadable"] == {"if": 1, "kp": 1}
    assert "unreadable metric values after the re-asks: 2 (if 1, kp 1) in 1 scored row;" in output_of(result)


# ---- user-declared sets, entry points ----------------------------------------------------------------------------
def _declared_set(folder: Path, count=4):
    folder.mkdir(parents=True)
    from PIL import Image

    lines = []
    for i in range(count):
        Image.new("RGB", (24, 24), (20 * i, 40, 60)).save(folder / f"src{i}.png")
        lines.append(json.dumps({"id": f"case{i}", "instruction": f"make it red #{i}", "source_image": f"src{i}.png",
                                 "subset": "colour" if i % 2 else "shape"}))
    (folder / "rows.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "rows.jsonl"


def test_a_team_declares_its_own_set_in_pyproject(brun, judge, pytester, tmp_path):
    _declared_set(pytester.path / "evals" / "acme")
    pytester.makepyprojecttoml("""
        [tool.editeval.benchmarks.acme-edits]
        rows = "evals/acme/rows.jsonl"
        recipe = "viescore"
    """)
    edits = tmp_path / "edits"
    for subset, keys in (("shape", ("case0", "case2")), ("colour", ("case1", "case3"))):
        (edits / subset).mkdir(parents=True, exist_ok=True)
        for key in keys:
            shutil.copy(pytester.path / "evals" / "acme" / "src0.png", edits / subset / f"{key}.png")
    out = tmp_path / "acme.json"
    result = brun("acme-edits", f"--editeval-json={out}", "--editeval-threshold=overall>=0",
                  "--editeval-threshold=sc[colour]>=0", images=edits)
    assert result.ret == 0, output_of(result)
    result.assert_outcomes(passed=4)
    assert len(judge.calls) == 8 and "editeval gate PASSED" in output_of(result)
    assert json.loads(out.read_text())["benchmark"] == "acme-edits"


def test_bad_declarations_are_one_line_naming_the_table_and_key(brun, pytester):
    pytester.makepyprojecttoml("""
        [tool.editeval.benchmarks.acme-edits]
        rows = "evals/acme/rows.jsonl"
        recipe = "viescore-plus"
    """)
    result = brun("acme-edits")
    assert result.ret == 4
    assert "[tool.editeval.benchmarks.acme-edits] in" in output_of(result) and "unknown recipe 'viescore-plus'" in \
        output_of(result)


def test_a_package_registers_a_benchmark_through_the_entry_point(monkeypatch):
    from importlib.metadata import EntryPoint

    from pytest_editeval import benchmarks
    point = EntryPoint(name="gedit-copy", value="pytest_editeval.benchmarks.gedit:GEDIT",
                       group=benchmarks.ENTRY_POINT_GROUP)
    monkeypatch.setattr(benchmarks, "_entry_points", lambda: [point])
    assert "gedit-copy" in benchmarks.known_names()
    assert benchmarks.get("gedit-copy").title == "GEdit-Bench"


# ---- saved runs of schema 1 ----------------------------------------------------------------------------------------
@pytest.mark.slow  # several seconds: two runs of all 44 rows
def test_a_schema_1_saved_run_is_still_a_baseline(run, pytester, tmp_path):
    from pytest_editeval.cli import main

    run("--editeval-save=new")
    new = json.loads((pytester.path / ".editeval" / "runs" / "new.json").read_text())
    old = _as_schema_1(new)
    (pytester.path / "old.json").write_text(json.dumps(old))
    result = run(f"--editeval-compare={pytester.path / 'old.json'}", "--editeval-compare-fail=overall:-0.01")
    assert result.ret == 0, output_of(result)
    result.stdout.fnmatch_lines(["vs *: Overall +0.000 (95% CI +0.000 to +0.000, n=44 paired rows*",
                                 "PASS compare overall:-0.01*"])
    assert main(["compare", str(pytester.path / "old.json"), str(pytester.path / ".editeval" / "runs" / "new.json"),
                 "--compare-fail=overall:-0.01"]) == 0


def _as_schema_1(data):
    """What 0.1 wrote: GEdit's metrics as named fields, reasoning per aspect, no tags."""
    old = {k: v for k, v in data.items() if k not in ("benchmark_info", "rows_ran", "allow_missing", "stopped")}
    old["schema_version"] = 1
    old["samples"] = []
    for s in data["samples"]:
        sample = {k: v for k, v in s.items() if k not in ("scores", "answers", "tags")}
        sample.update(s["scores"])
        sample["intersection"] = "intersection" in s["tags"]
        sample["sc_scores"] = s["answers"]["semantic_consistency"]["values"]
        sample["pq_scores"] = s["answers"]["perceptual_quality"]["values"]
        old["samples"].append(sample)
    for scope in old["aggregates"].values():
        scope.pop("groups", None)
        scope["subsets"] = {name: {"num": v["num"], "errors": v["errors"], "missing": v["missing"], **v["metrics"]}
                            for name, v in scope["subsets"].items()}
    old["gate"] = {k: v for k, v in data["gate"].items() if k != "failures"}
    return old
