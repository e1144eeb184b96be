"""RISEBench scored as the official gpt_eval.py does: the reply reader, the judge calls per category and row flag,
the per-row rules (B1, B2, B6, B7, B8, B11), the aggregates, the templates read from the user's utils.py, the image
preparation and the data layouts. Expected figures are this file's own arithmetic over what the loopback judge
answered, following the published formulas."""

import ast
import io
import json
import math
from pathlib import Path

import pytest

from pytest_editeval.benchmarks import BenchmarkOptions
from pytest_editeval.benchmarks import risebench_official as official
from pytest_editeval.benchmarks.risebench import RISEBENCH
from pytest_editeval.errors import InputError
from pytest_editeval.judges.replies import UnreadableReply
from pytest_editeval.testing import risebench_factory as rise

from .conftest import API_KEY, output_of

# --- the tests' own arithmetic (PROTOCOL: section 3 and 4) -----------------------------------------------------


def expected_row(row, level: int) -> dict:
    """A row's scores from what the loopback judge answers for an edit of `level`."""
    logical = row.category == "logical_reasoning"
    cf_set = row.written.get("consistency_free") is not None
    e1 = None if cf_set else rise.answer_for("prompt_logical_cons" if logical else "prompt_consist", level)
    e2 = rise.answer_for("prompt_logical_img" if logical else "prompt_reasoning", level)
    e3 = None if logical else rise.answer_for("prompt_generation", level)
    s = ([None] if e1 is None else e1) + e2 + (e3 or [])
    crash = len(s) not in (2, 3)
    if crash:  # the official script would crash: each reply's first number
        s = [None if e1 is None else e1[0], e2[0]] + ([] if e3 is None else [e3[0]])
    if len(s) == 3:
        ac, r, vp = s
    else:
        ac, r, vp = 4 * min(s[0], 1) + 1, 4 * min(s[1], 1) + 1, None
    # B1: the file has a consistency_free column, so an absent key is NaN (truthy); an explicit null is falsy.
    b1 = "consistency_free" not in row.written or bool(row.written["consistency_free"])
    if logical:
        score = 0.3 * ac + 0.7 * r
    elif b1:
        score = 0.2 * vp + 0.8 * r
    else:
        score = 0.3 * ac + 0.5 * r + 0.2 * vp
    if r == 1:
        score = max(1, score * 0.5)
    if logical:
        complete = legacy = ac == 5 and r == 5
    else:
        legacy = ac == 5 and r == 5 and vp == 5
        complete = (r == 5 and vp == 5) if cf_set else legacy

    def pct(x):
        return None if x is None else 25 * (x - 1)

    return {"accuracy": 100.0 * complete, "accuracy_legacy": 100.0 * legacy, "score": score, "score_pct": pct(score),
            "reasoning": r, "consistency": ac, "plausibility": vp, "reasoning_pct": pct(r),
            "consistency_pct": pct(ac), "plausibility_pct": pct(vp), "b6_fallback": 100.0 * crash}


def mean(values):
    values = [v for v in values if v is not None]
    return math.fsum(values) / len(values) if values else None


# --- the reply reader ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("reply, numbers", [
    ("**Final Score:** **4**", [4]), ("Final Score: 4/5", [4]), ("Final Score: 4 out of 5", [4]),
    ("Final Score: 3.5", [3]), ("**Final Score:** **1-5**", [1]), ("FINAL SCORE: 10", [10]), ("Final Score: 0", [0]),
    ("Final Score: 5\n\n1. note", [5, 1]), ("Final Scores: 4, 5", [4, 5]), ("Final Score: 2\nFinal Score: 5", [2]),
    ("the final score is 4. Final Score: 3", [3]),
    ("Final Score - 4", None), ("Final Score: X", None), ("Score: 4", None),
    ("Failed to obtain answer via API. ", None), ("Final Scores: none", []),
])
def test_reply_reader_is_the_official_extract(reply, numbers):
    assert official.extract(reply) == numbers
    if numbers:
        assert official.parse(reply) == numbers
    else:
        with pytest.raises(UnreadableReply):
            official.parse(reply)


# --- per-row rules on the published arithmetic -----------------------------------------------------------------

def _row(category="logical_reasoning", **flags):
    return official.RiseRow(index="x_1", category=category, subtask=None, instruction="i", image="a.png", **flags)


@pytest.mark.parametrize("answers, score, complete", [
    (([1], [1]), 5.0, True), (([1], [0]), 1.1, False), (([0], [0]), 1.0, False), (([0], [1]), 3.8, False),
    (([3], [1]), 5.0, True),  # B7: a 1-5 style 3 on a binary template maps to 5
])
def test_logical_rows_give_the_bagel_values(answers, score, complete):
    out = official.score_row(_row(reference_txt="7"), {"consistency": answers[0], "reasoning": answers[1]})
    assert out.score == pytest.approx(score) and out.complete is complete and out.plausibility is None


def test_bagel_logical_line_is_reproduced():
    """BAGEL's published Logical line: 1 row at 5.0, 28 at 1.1, 56 at 1.0 -> Score-Origin 1.08, Score-Percentage
    2.0, Accuracy 1/85, Reasoning 89/85, Consistency 201/85."""
    replies = [([1], [1])] + [([1], [0])] * 28 + [([0], [0])] * 56
    rows = [official.score_row(_row(reference_txt="7"), {"consistency": c, "reasoning": r}) for c, r in replies]
    assert mean([r.score for r in rows]) == pytest.approx(1.08)
    assert 25 * (mean([r.score for r in rows]) - 1) == pytest.approx(2.0)
    assert mean([float(r.complete) for r in rows]) == pytest.approx(0.011765, abs=1e-6)
    assert mean([r.reasoning for r in rows]) == pytest.approx(1.047059, abs=1e-6)
    assert mean([r.consistency for r in rows]) == pytest.approx(2.364706, abs=1e-6)


def test_b1_weights_follow_the_column_and_the_row_value():
    replies = {"consistency": [5], "reasoning": [3], "plausibility": [4]}
    assert official.score_row(_row("causal_reasoning", b1_weights=True), replies).score == pytest.approx(3.2)
    assert official.score_row(_row("causal_reasoning"), replies).score == pytest.approx(3.8)
    # R = 1 halves, never below 1; R = 0 is not halved (B11)
    low = {"consistency": [5], "reasoning": [1], "plausibility": [5]}
    assert official.score_row(_row("causal_reasoning"), low).score == pytest.approx(1.5)
    zero = {"consistency": [5], "reasoning": [0], "plausibility": [5]}
    assert official.score_row(_row("causal_reasoning"), zero).score == pytest.approx(2.5)


def test_b6_lengths_the_official_script_crashes_on_read_first_numbers():
    out = official.score_row(_row("temporal_reasoning"), {"consistency": [4, 2], "reasoning": [5], "plausibility": [3]})
    assert out.official_would_crash and (out.consistency, out.reasoning, out.plausibility) == (4, 5, 3)
    # three numbers on a logical row are read raw as (AC, R, VP), as officially
    raw = official.score_row(_row(reference_txt="7"), {"consistency": [1], "reasoning": [1, 5]})
    assert not raw.official_would_crash and (raw.consistency, raw.reasoning, raw.plausibility) == (1, 1, 5)


def test_b8_missing_image_is_an_auto_fail():
    temporal = official.missing_image_scores(_row("temporal_reasoning", b1_weights=True))
    assert (temporal.consistency, temporal.reasoning, temporal.plausibility, temporal.score) == (1, 1, 1, 1)
    logical = official.missing_image_scores(_row(reference_txt="7"))
    assert (logical.consistency, logical.reasoning, logical.plausibility, logical.score) == (1, 1, None, 1)
    assert not temporal.complete and not logical.complete_legacy


# --- end to end against the loopback judge ---------------------------------------------------------------------

@pytest.fixture
def run(pytester, monkeypatch, judge, tmp_path):
    monkeypatch.setenv("EDITEVAL_JUDGE_API_KEY", API_KEY)

    def _run(data, images, *args, subprocess=False):
        judge.scores, judge.reply = (lambda call: []), getattr(judge, "rise_reply", rise.risebench_reply)
        runner = pytester.runpytest_subprocess if subprocess else pytester.runpytest
        shown = [f"--editeval-images={images}"] if images is not None else []  # None: model mode
        return runner("--editeval-benchmark=risebench", f"--editeval-dataset={data}", *shown,
                      f"--editeval-judge-url={judge.url}", f"--editeval-cache-dir={tmp_path / 'cache'}",
                      "--editeval-judge-backoff=0.01", "-p", "no:cacheprovider", *args)

    return _run


def _dataset(tmp_path, **kwargs):
    data = tmp_path / "data"
    rows = rise.make_risebench_dataset(data, **kwargs)
    rise.write_stand_in_utils(data / "utils.py")
    return data, [r for r in rows if not r.defect]


def test_rows_aggregates_and_legacy_rule(run, tmp_path):
    data, rows = _dataset(tmp_path, rows_per_subtask=2)
    levels = {r.index: i % 9 for i, r in enumerate(rows)}  # every level, in every category
    levels.update({r.index: 3 for r in rows if r.consistency_free})  # AC 4, R 5, VP 5: complete by the current rule
    out = tmp_path / "r.json"
    result = run(data, rise.write_risebench_edits(tmp_path / "edits", rows, levels=levels), f"--editeval-json={out}")
    assert result.ret == 0, output_of(result)
    results = json.loads(out.read_text())
    expected = {r.index: expected_row(r, levels[r.index]) for r in rows}
    for sample in results["samples"]:
        for metric, value in expected[sample["key"]].items():
            assert sample["scores"][metric] == pytest.approx(value), (sample["key"], metric)
    full = results["aggregates"]["full"]
    for metric in ("accuracy", "accuracy_legacy", "score_pct", "reasoning_pct", "consistency_pct", "plausibility_pct"):
        assert full["micro"][metric]["mean"] == pytest.approx(mean(e[metric] for e in expected.values())), metric
    for category, label in official.CATEGORY_LABELS.items():
        mine = [expected[r.index] for r in rows if r.category == category]
        group = full["groups"][label]["metrics"]
        assert group["accuracy"]["mean"] == pytest.approx(mean(e["accuracy"] for e in mine))
        assert group["score"]["mean"] == pytest.approx(mean(e["score"] for e in mine))
    for subtask in official.SUBTASKS["causal_reasoning"]:
        mine = [expected[r.index] for r in rows if r.subtask == subtask]
        assert full["subsets"][subtask]["metrics"]["accuracy"]["mean"] == pytest.approx(mean(e["accuracy"] for e in mine))
    # the consistency-free rows make the two completion rules differ, and some rows hit B6
    assert full["micro"]["accuracy"]["mean"] > full["micro"]["accuracy_legacy"]["mean"]
    assert full["micro"]["b6_fallback"]["mean"] > 0
    text = output_of(result)
    assert "OVERALL (pooled, official)" in text and f"{full['micro']['accuracy']['mean']:.1f}" in text
    assert "differ from the official texts (SHA-256): all 14" in text


def test_each_judge_call_is_the_official_one(run, judge, tmp_path):
    data, rows = _dataset(tmp_path, wo_ins_column=True)
    result = run(data, rise.write_risebench_edits(tmp_path / "edits", rows, levels={r.index: 0 for r in rows}))
    assert result.ret == 0, output_of(result)
    seen = {}
    for call in judge.calls:
        instruct = call.prompt.split("instruct: ", 1)[1].split("\n", 1)[0] if "instruct: " in call.prompt else None
        seen.setdefault(rise.template_of(call), []).append((instruct, call))
        assert call.body["max_tokens"] == 4096 and call.body["temperature"] == 0
        assert call.text_first
        parts = call.body["messages"][0]["content"]
        assert all(p["image_url"]["detail"] == "high" and p["image_url"]["url"].startswith("data:image/jpeg")
                   for p in parts if p["type"] == "image_url")
    # B3: one row carries reasoning_wo_ins, so EVERY logical image row gets the no-question template
    assert len(seen["prompt_logical_img_wo_q"]) == 2 and "prompt_logical_img" not in seen
    # B4: the spatial reference-image rows' consistency call shows the answer image first
    answers = {r.index: r for r in rows if r.has_reference_img}
    spatial = [call for _, call in seen["prompt_spatial_cons"] if call.prompt.count("spatial_reasoning_2 ")]
    assert spatial and all(_is_answer_image(call.images[0]) for call in spatial)
    # consistency-free rows have no consistency call; every row has one reasoning call
    cf = sum(r.consistency_free for r in rows)
    consistency_calls = sum(len(seen.get(t, [])) for t in ("prompt_consist", "prompt_spatial_cons",
                                                           "prompt_logical_cons", "prompt_logical_cons_ans"))
    assert consistency_calls == len(rows) - cf and len(answers) == 4
    assert len(judge.calls) == 3 * 13 - cf + 2 * 3


def _is_answer_image(data: bytes) -> bool:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        r, g, b = image.convert("RGB").getpixel((0, 0))
    return g > 150 and b < 100  # the factory's dataset colours; edited images are green 90, blue 160


def test_a_failed_row_counts_zero_in_accuracy_and_is_absent_from_score_means(run, judge, tmp_path):
    data, rows = _dataset(tmp_path)
    levels = {r.index: 0 for r in rows}  # every row complete when read
    victim = "temporal_reasoning_1"

    def reply(scores, call):
        if f"Show {victim} after" in call.prompt:
            return "I would rather not give a number."
        return rise.risebench_reply(scores, call)

    judge.rise_reply = reply
    out = tmp_path / "r.json"
    result = run(data, rise.write_risebench_edits(tmp_path / "edits", rows, levels=levels), f"--editeval-json={out}")
    assert result.ret == 1, output_of(result)
    assert f"rows: {len(rows) - 1} scored, 1 errors, 0 missing" in output_of(result)
    results = json.loads(out.read_text())
    failed = next(s for s in results["samples"] if s["key"] == victim)
    assert failed["status"] == "error" and "unreadable after 3 attempts" in failed["error"]
    micro = results["aggregates"]["full"]["micro"]
    assert micro["accuracy"]["mean"] == pytest.approx(100.0 * (len(rows) - 1) / len(rows))
    assert micro["accuracy"]["n"] == len(rows) and micro["score"]["n"] == len(rows) - 1


def test_a_missing_image_is_an_auto_fail_and_still_fails_the_gate(run, tmp_path):
    data, rows = _dataset(tmp_path)
    levels = {r.index: 0 for r in rows}
    skipped = next(r for r in rows if r.category == "logical_reasoning")
    edits = rise.write_risebench_edits(tmp_path / "edits", rows, levels=levels, skip={skipped.index})
    assert run(data, edits).ret == 1
    out = tmp_path / "r.json"
    result = run(data, edits, "--editeval-allow-missing", f"--editeval-json={out}")
    assert result.ret == 0, output_of(result)
    logical = json.loads(out.read_text())["aggregates"]["full"]["groups"]["Logical"]["metrics"]
    assert logical["accuracy"]["mean"] == pytest.approx(100 * 2 / 3)
    assert logical["score"]["mean"] == pytest.approx((5 + 5 + 1) / 3)
    assert logical["reasoning"]["mean"] == pytest.approx((5 + 5 + 1) / 3)


# --- templates, data, images -----------------------------------------------------------------------------------

def test_without_templates_one_line_says_what_to_download(run, tmp_path):
    data = tmp_path / "data"
    rows = rise.make_risebench_dataset(data)
    result = run(data, rise.write_risebench_edits(tmp_path / "edits", rows))
    assert result.ret != 0
    lines = [line for line in output_of(result).splitlines() if "no RISEBench judge templates" in line]
    assert len(lines) == 1 and "github.com/PhoenixZ810/RISEBench" in lines[0]
    assert "--editeval-judge-prompts=PATH/TO/utils.py" in lines[0] and "Traceback" not in output_of(result)


def test_templates_are_read_never_run(tmp_path):
    marker = tmp_path / "ran"
    path = rise.write_stand_in_utils(tmp_path / "utils.py", extra=f"open({str(marker)!r}, 'w').write('x')\n")
    templates, differing = official.load_templates(path)
    assert not marker.exists() and set(templates) == set(official.TEMPLATE_SHA256)
    assert templates["prompt_generation"] == rise.stand_in_template("prompt_generation")
    assert differing == list(official.TEMPLATE_SHA256)


def test_official_hashes_give_no_warning(tmp_path, monkeypatch):
    path = rise.write_stand_in_utils(tmp_path / "utils.py")
    monkeypatch.setattr(official, "TEMPLATE_SHA256",
                        {n: official.sha256_text(rise.stand_in_template(n)) for n in official.TEMPLATE_SHA256})
    assert official.load_templates(path)[1] == []
    data = tmp_path / "data"
    rise.make_risebench_dataset(data)
    dataset = RISEBENCH.load(data, BenchmarkOptions(language="en", judge_prompts=path))
    assert not [w for w in dataset.warnings if "SHA-256" in w]


def test_a_template_missing_from_utils_is_one_line(tmp_path):
    path = rise.write_stand_in_utils(tmp_path / "utils.py")
    path.write_text(path.read_text().replace("prompt_spatial_qual =", "prompt_other ="))
    with pytest.raises(InputError, match="lacks the RISEBench judge template.s. prompt_spatial_qual"):
        official.load_templates(path)


def test_hub_archive_and_subtaskless_file(tmp_path):
    data = tmp_path / "hub"
    rise.make_risebench_dataset(data, archive=True, subtasks=False)
    rise.write_stand_in_utils(data / "utils.py")
    dataset = RISEBENCH.load(data, BenchmarkOptions(language="en", extract_to=tmp_path / "x"))
    assert len(dataset.rows) == 16 and not [r for r in dataset.rows if r.problem]
    assert {r.subset for r in dataset.rows} == set(official.CATEGORIES)  # B9: no subtask lines
    assert (tmp_path / "x" / "risebench-images" / "data" / "temporal_reasoning_images").is_dir()


def test_image_mode_reads_png_then_jpg_then_jpeg_under_images(tmp_path):
    rows = [official.RiseRow(index="temporal_reasoning_1", category="temporal_reasoning", subtask=None,
                             instruction="", image="a")]
    folder = tmp_path / "out" / "images" / "temporal_reasoning"
    folder.mkdir(parents=True)
    for ext in ("jpeg", "jpg"):
        (folder / f"temporal_reasoning_1.{ext}").write_bytes(b"x")
    assert official.edited_images_in_folder(tmp_path / "out", rows)["temporal_reasoning_1"].suffix == ".jpg"
    (folder / "temporal_reasoning_1.png").write_bytes(b"x")
    assert official.edited_images_in_folder(tmp_path / "out", rows)["temporal_reasoning_1"].suffix == ".png"


@pytest.mark.parametrize("mode, sent_mode", [("RGB", "RGB"), ("RGBA", "RGB"), ("P", "RGB"), ("L", "L"),
                                             ("LA", "RGB"), ("I;16", "RGB")])
def test_image_preparation(mode, sent_mode):
    from PIL import Image

    from pytest_editeval.data.images import RISE_THUMB768_JPEG75, prepare

    buf = io.BytesIO()
    Image.new("RGB", (1600, 800), (200, 100, 50)).convert(mode).save(buf, format="PNG" if mode != "I;16" else "TIFF")
    sent = prepare(RISE_THUMB768_JPEG75, buf.getvalue(), "image", 10_000_000)
    with Image.open(io.BytesIO(sent)) as image:
        assert image.format == "JPEG" and image.size == (768, 384) and image.mode == sent_mode
    small = io.BytesIO()
    Image.new("RGB", (40, 30), (1, 2, 3)).save(small, format="PNG")
    with Image.open(io.BytesIO(prepare(RISE_THUMB768_JPEG75, small.getvalue(), "image", 10_000_000))) as image:
        assert image.size == (40, 30)  # never enlarged


def test_bad_rows_are_error_rows_with_their_reason(tmp_path):
    data = tmp_path / "data"
    rise.make_risebench_dataset(data, bad_rows=tuple(rise.DEFECTS))
    rise.write_stand_in_utils(data / "utils.py")
    problems = [r.problem for r in RISEBENCH.load(data, BenchmarkOptions(language="en")).rows if r.problem]
    assert len(problems) == len(rise.DEFECTS)
    assert any("official scorer crashes" in p for p in problems)
    assert not Path("/tmp/contract-escape.png").exists()


@pytest.mark.slow  # several seconds: downloads and unpacks from a loopback hub
@pytest.mark.parametrize("repo", ["PhoenixZ/RISEBench", "VisionXLab/RISEBench"])
def test_both_hub_names_download_the_json_and_the_image_archive(run, tmp_path, monkeypatch, hub, repo):
    published = tmp_path / "published"
    rows = [r for r in rise.make_risebench_dataset(published, archive=True) if not r.defect]
    utils = rise.write_stand_in_utils(tmp_path / "scorer" / "utils.py")
    hub.add_repo("dataset", repo, published)
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    edits = rise.write_risebench_edits(tmp_path / "edits", rows, levels={r.index: 0 for r in rows})
    result = run(repo, edits, f"--editeval-judge-prompts={utils}", subprocess=True)
    assert result.ret == 0, output_of(result)
    result.assert_outcomes(passed=len(rows))
    assert sorted(hub.downloads) == ["data.zip", rise.DATA_FILE]


def test_model_mode_gives_the_instruction_and_the_input_image(run, pytester, tmp_path):
    data, rows = _dataset(tmp_path)
    seen = tmp_path / "seen.txt"
    pytester.makeconftest(f"""
        import pytest
        from PIL import Image

        class Editor:
            editeval_identity = {{"model": "rise-recorder"}}
            def __call__(self, image, instruction, seed):
                with open({str(seen)!r}, "a") as fh:
                    fh.write(instruction + "\\t" + repr(image.convert("RGB").getpixel((0, 0))) + "\\n")
                return Image.new("RGB", image.size, (12, 90, 160))

        @pytest.fixture(scope="session")
        def editeval_pipeline():
            return Editor()
    """)
    out = tmp_path / "out"
    result = run(data, None, f"--editeval-output-dir={out}")
    assert result.ret == 0, output_of(result)
    lines = dict(line.split("\t") for line in seen.read_text().splitlines())
    assert set(lines) == {r.instruction for r in rows}
    for row in rows:  # the row's own input image, as the dataset holds it
        got, written = ast.literal_eval(lines[row.instruction]), rise._colour(row.index, "input")
        assert max(abs(a - b) for a, b in zip(got, written)) <= 4  # JPEG inputs move a flat colour slightly
        assert (out / row.category / f"{row.index}.png").is_file()


# --- second review: the official code's own arithmetic where the note paraphrased it ---------------------------

def _rewrite_rows(data: Path, change) -> None:
    """Edit the written RISEBench JSON in place: change(entry) for every row."""
    path = data / rise.DATA_FILE
    entries = json.loads(path.read_text())
    for entry in entries:
        change(entry)
    path.write_text(json.dumps(entries))


def test_r1_halving_keeps_a_nan_score_nan_as_the_official_comparison_does(run, tmp_path):
    """calculate_score: `score = score * 0.5; score = 1 if score < 1 else score`. NaN < 1 is false, so a NaN score
    stays NaN (max(1, NaN) would give 1). It happens where consistency_free is set (no consistency call) but falsy
    ("" or false): the intended weights then need the missing AC."""
    data, rows = _dataset(tmp_path)
    falsy = {"temporal_reasoning_2": "", "causal_reasoning_3": False}  # both consistency-free rows of the factory

    def change(entry):
        if entry.get("index") in falsy:
            entry["consistency_free"] = falsy[entry["index"]]

    _rewrite_rows(data, change)
    levels = {r.index: 0 for r in rows}
    levels.update({"temporal_reasoning_2": 1, "causal_reasoning_3": 3})  # R 1, VP 4; and R 5, VP 5
    out = tmp_path / "r.json"
    result = run(data, rise.write_risebench_edits(tmp_path / "edits", rows, levels=levels), f"--editeval-json={out}")
    assert result.ret == 0, output_of(result)
    samples = {s["key"]: s for s in json.loads(out.read_text())["samples"]}
    halved = samples["temporal_reasoning_2"]["scores"]
    assert halved["reasoning"] == 1 and halved["consistency"] is None
    assert halved["score"] is None and halved["score_pct"] is None and halved["accuracy"] == 0
    plain = samples["causal_reasoning_3"]["scores"]
    assert plain["score"] is None and plain["accuracy"] == 100 and plain["accuracy_legacy"] == 0
    temporal = json.loads(out.read_text())["aggregates"]["full"]["groups"]["Temporal"]["metrics"]
    assert temporal["score"]["n"] == 3 and temporal["accuracy"]["n"] == 4


@pytest.mark.parametrize("cf_value, null_weights", [
    ("True", "intended"),  # an object column: pandas keeps the explicit null as None, which is falsy
    (1, "b1"),  # numbers only: a float column, where the null is NaN, which is truthy
    (None, "b1"),  # a column of nulls only: float NaN everywhere, so B1 weights on every row
])
def test_b1_weights_of_an_explicit_null_follow_the_column_type_pandas_infers(run, tmp_path, cf_value, null_weights):
    data, rows = _dataset(tmp_path)

    def change(entry):
        if "consistency_free" in entry and entry["consistency_free"] is not None:
            entry["consistency_free"] = cf_value

    _rewrite_rows(data, change)
    out = tmp_path / "r.json"
    levels = {r.index: 2 for r in rows}  # AC 3, R 4, VP 5: B1 weights 4.2, intended 3.9
    result = run(data, rise.write_risebench_edits(tmp_path / "edits", rows, levels=levels), f"--editeval-json={out}")
    assert result.ret == 0, output_of(result)
    samples = {s["key"]: s for s in json.loads(out.read_text())["samples"]}
    nulls = [r.index for r in rows if r.variant == "cf_null"]
    assert nulls
    for index in nulls:
        expected = 0.2 * 5 + 0.8 * 4 if null_weights == "b1" else 0.3 * 3 + 0.5 * 4 + 0.2 * 5
        assert samples[index]["scores"]["score"] == pytest.approx(expected), index
    plain = next(r.index for r in rows if r.variant == "plain" and r.category != "logical_reasoning")
    assert samples[plain]["scores"]["score"] == pytest.approx(4.2)  # key absent: NaN, truthy, B1 weights


# BAGEL (cfg_img_scale 1.5, GPT-4.1, old completion rule), as published in its EVAL.md: rows whose totals are the
# integer totals those lines imply. (AC, R, VP) per row, None: a consistency-free row; with the 360-row file's
# consistency_free column every temporal, causal and spatial row takes the B1 weights.
BAGEL_ROWS = {
    "temporal_reasoning": {(5, 5, 5): 2, (4, 1, 3): 16, (3, 1, 3): 9, (None, 3, 4): 5, (3, 4, 4): 11, (3, 3, 4): 23,
                           (3, 3, 3): 19},
    "causal_reasoning": {(5, 5, 5): 5, (3, 1, 3): 29, (3, 1, 4): 1, (None, 4, 4): 2, (4, 4, 4): 24, (4, 3, 4): 17,
                         (3, 3, 4): 8, (3, 3, 3): 4},
    "spatial_reasoning": {(5, 5, 5): 14, (4, 1, 4): 5, (3, 1, 4): 9, (3, 4, 5): 30, (3, 3, 5): 4, (3, 3, 4): 38},
    # binary replies (consistency, reasoning): 1 row at 5.0, 28 at 1.1, 56 at 1.0
    "logical_reasoning": {(1, 1): 1, (1, 0): 28, (0, 0): 56},
}
BAGEL_PUBLISHED = {  # line: (Score-Origin, Score-Percentage, Accuracy)
    "Overall": (2.537778, 38.444444, 0.061111), "Temporal": (2.654118, 41.352941, 0.023529),
    "Causal": (2.788889, 44.722222, 0.055556), "Spatial": (3.452000, 61.300000, 0.140000),
    "Logical": (1.080000, 2.000000, 0.011765),
}
BAGEL_DIMENSIONS = {  # line: (Reasoning, ApprConsistency, VisualPlausibility) Score-Origin
    "Overall": (2.458333, 3.141643, 3.920000), "Temporal": (2.588235, 3.250000, 3.505882),
    "Causal": (2.733333, 3.579545, 3.688889), "Spatial": (3.300000, 3.330000, 4.480000),
    "Logical": (1.047059, 2.364706, None),
}


def test_aggregates_reproduce_the_published_bagel_lines():
    from pytest_editeval.benchmarks import Parsed
    from pytest_editeval.benchmarks.risebench import _row as dataset_row
    from pytest_editeval.scoring.aggregate import aggregate
    from pytest_editeval.scoring.verdict import Verdict

    verdicts = []
    for category, kinds in BAGEL_ROWS.items():
        n = 0
        for kind, count in kinds.items():
            for _ in range(count):
                n += 1
                logical = category == "logical_reasoning"
                cf = not logical and kind[0] is None
                row = dataset_row(official.RiseRow(
                    index=f"{category}_{n}", category=category, subtask=official.SUBTASKS[category][0],
                    instruction="", image="a.png", reference_txt="7" if logical else None, consistency_free=cf,
                    b1_weights=not logical))
                answers = {"reasoning": Parsed([kind[1]])}
                if not cf:
                    answers["consistency"] = Parsed([kind[0]])
                if not logical:
                    answers["plausibility"] = Parsed([kind[2]])
                verdicts.append(Verdict.scored(row, RISEBENCH.score_row(row, answers), {}, None))
    assert [sum(v.key.startswith(c) for v in verdicts) for c in official.CATEGORIES] == [85, 90, 100, 85]
    full = aggregate(verdicts, RISEBENCH, RISEBENCH.known_subsets(), len(verdicts)).full
    lines = {"Overall": full.micro, **{label: full.groups[label].metrics for label in BAGEL_PUBLISHED if label != "Overall"}}
    for label, (score, percentage, accuracy) in BAGEL_PUBLISHED.items():
        got = lines[label]
        assert got["score"].mean == pytest.approx(score, abs=1e-6), label
        assert got["score_pct"].mean == pytest.approx(percentage, abs=1e-6), label
        assert got["accuracy_legacy"].mean / 100 == pytest.approx(accuracy, abs=1e-6), label
    for label, dims in BAGEL_DIMENSIONS.items():
        for metric, published in zip(("reasoning", "consistency", "plausibility"), dims):
            if published is None:
                assert lines[label][metric].n == 0, (label, metric)
            else:
                assert lines[label][metric].mean == pytest.approx(published, abs=1e-6), (label, metric)
    # the second published table: Score-Percentage of the three dimensions overall (36.5 / 53.5 / 73.0)
    assert [round(full.micro[m].mean, 1) for m in ("reasoning_pct", "consistency_pct", "plausibility_pct")] == \
        [36.5, 53.5, 73.0]
    assert (full.micro["consistency"].n, full.micro["plausibility"].n) == (353, 275)


@pytest.mark.slow  # several seconds: runs of the plugin and the compare command
def test_thresholds_and_compare_work_on_the_legacy_accuracy(run, pytester, tmp_path):
    """accuracy_legacy (alias acc_legacy) is a metric like any other: thresholds per category, the compare gate."""
    data, rows = _dataset(tmp_path)
    cf = {r.index for r in rows if r.consistency_free}
    levels = {r.index: 3 if r.index in cf else 0 for r in rows}  # cf rows: R 5, VP 5, complete by the current rule only
    edits = rise.write_risebench_edits(tmp_path / "edits", rows, levels=levels)
    legacy = 100 * (len(rows) - len(cf)) / len(rows)
    temporal = [r for r in rows if r.category == "temporal_reasoning"]
    temporal_legacy = 100 * sum(r.index not in cf for r in temporal) / len(temporal)
    result = run(data, edits, "--editeval-threshold=accuracy>=100", f"--editeval-threshold=accuracy_legacy>={legacy}",
                 f"--editeval-threshold=acc_legacy[Temporal]>={temporal_legacy + 1}", "--editeval-save=base")
    text = output_of(result)
    assert result.ret == 1, text
    assert f"PASS accuracy>=100: actual 100.0000 (n={len(rows)})" in text
    assert f"PASS accuracy_legacy>={legacy}: actual {legacy:.4f} (n={len(rows)})" in text
    assert f"FAIL acc_legacy[Temporal]>={temporal_legacy + 1}: actual {temporal_legacy:.4f} (n={len(temporal)})" in text
    # one more row no longer complete by either rule: the legacy accuracy drops by 100/16 points
    worse = {**levels, "temporal_reasoning_1": 5}
    edits = rise.write_risebench_edits(tmp_path / "edits2", rows, levels=worse)
    result = run(data, edits, "--editeval-save=new", "--editeval-compare=base", "--editeval-compare-fail=accuracy_legacy:-5",
                 "--editeval-compare-fail=accuracy_legacy[Causal]:-5", "--editeval-compare-fail=acc_legacy[Temporal]:-20")
    text = output_of(result)
    assert result.ret == 1, text
    assert "FAIL compare accuracy_legacy:-5: -6.250" in text
    # a category is a group: its subtasks' rows pooled, as in its aggregate line
    causal = sum(r.category == "causal_reasoning" for r in rows)
    assert f"PASS compare accuracy_legacy[Causal]:-5: +0.000 (95% CI +0.000 to +0.000, n={causal} paired" in text
    assert f"FAIL compare acc_legacy[Temporal]:-20: -25.000 (95% CI -75.000 to +0.000, n={len(temporal)} paired" in text
    # the same gate from the command line
    import subprocess
    import sys

    cli = subprocess.run([sys.executable, "-m", "pytest_editeval.cli", "compare", "base", "new", f"--rootdir={pytester.path}",
                          "--compare-fail=acc_legacy[Temporal]:-20"], capture_output=True, text=True)
    assert cli.returncode == 1, cli.stderr
    assert f"FAIL compare acc_legacy[Temporal]:-20: -25.000 (95% CI -75.000 to +0.000, n={len(temporal)} paired" in cli.stdout
