"""KRIS-Bench protocol rules (benchmarks/kris_official.py): data reading, the three judge calls per row, the
official reply parsers, the pooled aggregation, and the test dataset writer."""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
from pathlib import Path

import pytest

from pytest_editeval.benchmarks import kris_official as kris
from pytest_editeval.benchmarks.kris_official import (
    AVG,
    CATEGORIES,
    DIMENSIONS,
    EDITED,
    KP_CATEGORIES,
    ROW_COUNTS,
    KrisRow,
    aggregate,
    edited_images_in_folder,
    extract_dual_scores,
    extract_knowledge_score,
    extract_score,
    find_root,
    load_prompts,
    load_rows,
    parse,
    questions,
)
from pytest_editeval.errors import InputError
from pytest_editeval.judges.replies import UnreadableReply
from pytest_editeval.judges.requests import ImageRef, input_image, reference_image
from pytest_editeval.testing.kris_factory import DEFECTS, edited_red, make_kris_dataset, write_kris_edits

REFERENCE = Path("/work/shared/reference/kris")
PACKAGE = Path(kris.__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("kris")
    rows = make_kris_dataset(root, rows_per_category=4)
    return root, rows


@pytest.fixture(scope="module")
def loaded(dataset):
    root, _ = dataset
    rows, warnings = load_rows(find_root(root))
    return {r.key: r for r in rows}, warnings


# --- Constants -------------------------------------------------------------------------------------------------

def test_categories_dimensions_and_scripts_partition_the_twenty_folders():
    assert len(CATEGORIES) == len(set(CATEGORIES)) == 20
    assert sorted(c for members in DIMENSIONS.values() for c in members) == sorted(CATEGORIES)
    assert sorted(c for members in kris.SCRIPTS.values() for c in members) == sorted(CATEGORIES)
    assert {d for dims in kris.KNOWLEDGE_TYPES.values() for d in dims} == set(DIMENSIONS)
    kp_dimensions = ("Social Science", "Natural Science", "Logical Reasoning")
    assert KP_CATEGORIES == {c for d in kp_dimensions for c in DIMENSIONS[d]}
    assert kris.SCORE_KEYS == {"VC": "consistency_score", "VQ": "quality_score", "IF": "instruction_score",
                               "KP": "knowledge_score"}


def test_real_row_counts_and_value_counts():
    assert set(ROW_COUNTS) == set(CATEGORIES)
    assert sum(ROW_COUNTS.values()) == 1267
    # Bagel's Overall pools 4,469 values: 3 per row, plus KP on the knowledge rows.
    assert sum(n * len(kris.metrics_of(c)) for c, n in ROW_COUNTS.items()) == 4469


def test_normalisation_maps_1_to_5_onto_0_to_100():
    assert [kris.normalise(s) for s in range(1, 6)] == [0.0, 25.0, 50.0, 75.0, 100.0]


# --- Prompts and licence ---------------------------------------------------------------------------------------

def test_prompts_load_and_match_their_pinned_hashes():
    prompts = load_prompts()
    assert set(prompts) == set(kris.TEMPLATE_SHA256)
    for name, text in prompts.items():
        assert hashlib.sha256(text.encode()).hexdigest() == kris.TEMPLATE_SHA256[name]


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="reference copy not on this machine")
def test_packaged_prompts_are_a_byte_exact_copy_of_the_reference():
    assert (PACKAGE / "benchmarks/prompts/kris_prompts.json").read_bytes() == (REFERENCE / "prompts.json").read_bytes()


def test_damaged_prompts_file_is_refused(tmp_path, monkeypatch):
    data = json.loads((PACKAGE / "benchmarks/prompts/kris_prompts.json").read_text("utf-8"))
    data["templates"]["prompt_quality"]["text"] += " "
    (tmp_path / "benchmarks/prompts").mkdir(parents=True)
    (tmp_path / "benchmarks/prompts/kris_prompts.json").write_text(json.dumps(data), encoding="utf-8")
    monkeypatch.setattr(kris.resources, "files", lambda package: tmp_path)
    kris._checked_templates.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="prompt_quality .*installation is damaged"):
            load_prompts()
    finally:
        kris._checked_templates.cache_clear()


def test_licence_file_carries_the_attribution_and_the_plain_apache_text():
    text = (PACKAGE / "benchmarks/prompts/LICENSE-KRIS-prompts.txt").read_text("utf-8")
    assert "Copyright (c) 2025 mercurystraw" in text and "unmodified" in text
    assert "mercurystraw/Kris_Bench" in text and "utils/prompts.py" in text
    apache = text[text.index("                                 Apache License"):]
    assert apache.startswith("                                 Apache License\n                           Version 2.0")
    assert "END OF TERMS AND CONDITIONS" in apache
    # The canonical apache.org LICENSE-2.0.txt is this text with one leading blank line.
    assert hashlib.md5(("\n" + apache).encode()).hexdigest() == "3b83ef96387f14655fc854ddc3c6bd57"


# --- Data ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["parent", "kris_bench"])
def test_find_root_accepts_the_parent_or_the_folder_itself(tmp_path, layout):
    make_kris_dataset(tmp_path, rows_per_category=1, layout=layout, categories=["color_change"])
    expected = tmp_path / "KRIS_Bench" if layout == "parent" else tmp_path
    assert find_root(tmp_path) == expected
    assert find_root(expected) == expected


def test_find_root_refuses_other_folders(tmp_path):
    with pytest.raises(InputError, match="not a KRIS-Bench folder.*KRIS_Bench/<category>/annotation.json"):
        find_root(tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        find_root(tmp_path / "nope")


def test_rows_come_back_as_written(dataset, loaded):
    _, written = dataset
    rows, warnings = loaded
    assert warnings == []
    assert list(rows) == [w.key for w in written]
    for w in written:
        row = rows[w.key]
        assert row.problem is None, row.problem
        assert (row.category, row.id, row.instruction, row.explanation) == (w.category, w.id, w.instruction,
                                                                            w.explanation)
        assert row.inputs == w.inputs and row.references == w.references
        assert row.target_frame == w.target_frame


def test_row_shapes_follow_the_category(loaded):
    rows, _ = loaded
    assert len(rows["multi-element_composition/1"].inputs) == 2
    assert len(rows["multi-element_composition/2"].inputs) == 3
    assert [rows[f"temporal_prediction/{i}"].target_frame for i in "1234"] == [1, 2, 3, 4]
    assert rows["viewpoint_change/1"].references == {"gt": "viewpoint_change/1_gt.jpg"}
    assert rows["temporal_prediction/1"].references == {}  # the held-out frame is never sent
    assert rows["abstract_reasoning/1"].problem is None  # gt_img absent there, as in the real data
    assert rows["rule-based_reasoning/1"].explanation == ""
    assert rows["anomaly_correction/1"].explanation and rows["physics/1"].explanation
    assert {Path(p).suffix for r in rows.values() for p in r.inputs} == {".jpg", ".png", ".jpeg"}


def test_rows_are_ordered_by_category_then_numeric_id(tmp_path):
    make_kris_dataset(tmp_path, rows_per_category={"physics": 11, "color_change": 2},
                      categories=["physics", "color_change"])
    rows, _ = load_rows(find_root(tmp_path))
    assert [r.key for r in rows] == ["color_change/1", "color_change/2", *(f"physics/{i}" for i in range(1, 12))]


def test_row_paths_resolve_under_the_root(dataset, loaded):
    root, _ = dataset
    rows, _ = loaded
    row = rows["viewpoint_change/2"]
    assert all(p.is_file() for p in row.input_files(root / "KRIS_Bench"))
    assert row.reference_files(root / "KRIS_Bench")["gt"].is_file()


def test_unknown_and_hidden_folders(tmp_path):
    make_kris_dataset(tmp_path, rows_per_category=1, categories=["color_change"])
    (tmp_path / "KRIS_Bench/object_count").mkdir()
    (tmp_path / "KRIS_Bench/.cache").mkdir()
    (tmp_path / "KRIS_Bench/README.md").write_text("hi")
    rows, warnings = load_rows(find_root(tmp_path))
    assert [r.key for r in rows] == ["color_change/1"]
    assert len(warnings) == 1 and "object_count" in warnings[0] and "ignored" in warnings[0]


@pytest.mark.parametrize("content, message", [
    (None, "is missing"),
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "one JSON object"),
    (b"\xff\xfe{}", "not UTF-8"),
])
def test_unreadable_annotation_of_a_present_category_is_an_input_error(tmp_path, content, message):
    make_kris_dataset(tmp_path, rows_per_category=1, categories=["color_change", "physics"])
    annotation = tmp_path / "KRIS_Bench/physics/annotation.json"
    if content is None:
        annotation.unlink()
    else:
        annotation.write_bytes(content)
    with pytest.raises(InputError, match=message):
        load_rows(find_root(tmp_path))


def test_oversized_annotation_is_refused_without_reading_it_all(tmp_path, monkeypatch):
    make_kris_dataset(tmp_path, rows_per_category=3, categories=["color_change"])
    monkeypatch.setattr(kris, "MAX_ANNOTATION_BYTES", 100)
    with pytest.raises(InputError, match="over 100 bytes, more than any real one holds"):
        load_rows(find_root(tmp_path))


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_each_bad_row_becomes_a_problem_row_and_the_rest_still_load(tmp_path, defect):
    only_in = {"frames_ambiguous": "temporal_prediction", "gt_missing": "viewpoint_change"}
    category = only_in.get(defect, "multi-element_composition")
    other = "color_change" if category != "color_change" else "physics"
    make_kris_dataset(tmp_path, rows_per_category=2, categories=[category, other], bad_rows=[(category, defect)])
    rows, _ = load_rows(find_root(tmp_path))
    problems = [r for r in rows if r.problem]
    assert len(problems) == 1 and len(rows) == 5
    bad = problems[0]
    assert bad.category == category and "\n" not in bad.problem
    assert bad.key.startswith(f"{category}/") and bad.key.count("/") == 1
    with pytest.raises(ValueError, match="cannot be judged"):
        questions(bad)


@pytest.mark.parametrize("defect", ["absolute_path", "too_long", "control_char", "missing_file", "leading_dot"])
def test_bad_image_names_in_single_image_categories(tmp_path, defect):
    make_kris_dataset(tmp_path, rows_per_category=1, categories=["size_adjustment"],
                      bad_rows=[("size_adjustment", defect)])
    rows, _ = load_rows(find_root(tmp_path))
    assert [r.problem is None for r in rows] == [True, False]
    assert "ori_img" in rows[1].problem


def test_problem_reasons_say_what_is_wrong(tmp_path):
    bad = [("color_change", d) for d in ("absolute_path", "missing_file", "ins_not_string", "unsafe_id")]
    make_kris_dataset(tmp_path, rows_per_category=1, categories=["color_change", "temporal_prediction"],
                      bad_rows=bad + [("temporal_prediction", "frames_ambiguous")])
    rows, _ = load_rows(find_root(tmp_path))
    reasons = {r.key: r.problem for r in rows if r.problem}
    assert "not a plain file name" in reasons["color_change/2"]
    assert "no such file" in reasons["color_change/3"]
    assert "ins_en" in reasons["color_change/4"]
    assert "row id" in reasons["color_change/..\\x2fevil"]
    assert "exactly one" in reasons["temporal_prediction/2"]


def test_temporal_frames_outside_one_to_four_or_unreadable(tmp_path):
    make_kris_dataset(tmp_path, rows_per_category=1, categories=["temporal_prediction"])
    folder = tmp_path / "KRIS_Bench/temporal_prediction"
    annotation = json.loads((folder / "annotation.json").read_text())
    for name in ("9-1.jpg", "9-2.jpg", "9-5.jpg", "frame.jpg"):
        (folder / name).write_bytes(b"x")
    annotation["9"] = {"ori_img": ["9-1.jpg", "9-2.jpg", "9-5.jpg"], "ins_en": "predict", "explain_en": ""}
    annotation["10"] = {"ori_img": ["9-1.jpg", "9-2.jpg", "frame.jpg"], "ins_en": "predict", "explain_en": ""}
    (folder / "annotation.json").write_text(json.dumps(annotation))
    rows = {r.key: r for r in load_rows(find_root(tmp_path))[0]}
    assert rows["temporal_prediction/1"].problem is None
    assert "exactly one" in rows["temporal_prediction/9"].problem
    assert "<id>-<frame>" in rows["temporal_prediction/10"].problem


def test_lone_surrogates_from_json_escapes_never_reach_the_file_system(tmp_path):
    make_kris_dataset(tmp_path, rows_per_category=1, categories=["color_change"])
    path = tmp_path / "KRIS_Bench/color_change/annotation.json"
    annotation = json.loads(path.read_text())
    annotation["2"] = {"ori_img": "\ud800.jpg", "ins_en": "x"}
    annotation["\udcff"] = {"ori_img": "1.jpg", "ins_en": "x"}
    path.write_text(json.dumps(annotation))  # ensure_ascii: the file holds the escapes, valid UTF-8
    rows = load_rows(find_root(tmp_path))[0]
    assert [r.problem is None for r in rows] == [True, False, False]
    assert all("not valid Unicode" in r.problem for r in rows[1:])
    assert rows[2].key == "color_change/\\udcff"


def test_wrong_ori_img_shape_is_a_problem_row(tmp_path):
    make_kris_dataset(tmp_path, rows_per_category=1, categories=["color_change", "multi-element_composition"])
    for category, value in (("color_change", ["1.jpg"]), ("multi-element_composition", "1_1.jpg")):
        path = tmp_path / "KRIS_Bench" / category / "annotation.json"
        annotation = json.loads(path.read_text())
        annotation["1"]["ori_img"] = value
        path.write_text(json.dumps(annotation))
    rows, _ = load_rows(find_root(tmp_path))
    assert all(r.problem and "ori_img must be" in r.problem for r in rows)


# --- Questions -------------------------------------------------------------------------------------------------

def raw(image: str) -> ImageRef:
    return ImageRef(image, recipe="raw", mime="image/jpeg")


def jpeg85(image: str) -> ImageRef:
    return ImageRef(image, recipe="rgb-jpeg85", mime="image/jpeg")


ORIGINAL_AND_EDITED = ("This is the original image:", raw(input_image(0)), "This is the edited image:", raw(EDITED))


def test_common_category_questions(loaded):
    prompts = load_prompts()
    row = loaded[0]["count_change/1"]
    vc, vq, if_ = questions(row)
    assert [q.name for q in (vc, vq, if_)] == ["VC@common", "VQ@common", "IF@common"]
    assert vc.parts == (prompts["prompt_consist"].format(instruct=row.instruction), *ORIGINAL_AND_EDITED)
    assert vq.parts == (prompts["prompt_quality"], "This is the edited image:", raw(EDITED))
    assert if_.parts == (prompts["prompt_instruction_following"].format(instruct=row.instruction),
                         *ORIGINAL_AND_EDITED)
    assert row.instruction in vc.parts[0] and "{instruct}" not in vc.parts[0]


def test_quality_template_is_sent_raw_with_its_doubled_braces(loaded):
    vq = questions(loaded[0]["physics/1"])[1]
    assert vq.parts[0] == load_prompts()["prompt_quality"] and "{{" in vq.parts[0]


def test_instruction_braces_are_inserted_verbatim():
    row = KrisRow("color_change", "1", "make it {red} {0} }{ {instruct}", "", ("color_change/1.jpg",))
    text = questions(row)[0].parts[0]
    assert "**Editing Instruction**: make it {red} {0} }{ {instruct}\n" in text


def test_anomaly_correction_uses_the_generic_template_unless_fixed(loaded):
    prompts = load_prompts()
    row = loaded[0]["anomaly_correction/1"]
    assert questions(row)[2].parts[0] == prompts["prompt_instruction_following"].format(instruct=row.instruction)
    fixed = questions(row, fix_anomaly=True)[2]
    assert fixed.name == "IF@common"
    assert fixed.parts == (prompts["prompt_abnormal_instruction_following"].format(
        instruct=row.instruction, explanation=row.explanation), *ORIGINAL_AND_EDITED)
    assert row.explanation in fixed.parts[0]
    # The fix touches anomaly_correction only.
    other = loaded[0]["color_change/1"]
    assert questions(other, fix_anomaly=True) == questions(other)


@pytest.mark.parametrize("category", sorted(KP_CATEGORIES))
def test_knowledge_categories_ask_the_dual_question(loaded, category):
    prompts = load_prompts()
    row = loaded[0][f"{category}/1"]
    vc, vq, dual = questions(row)
    assert [q.name for q in (vc, vq, dual)] == ["VC@knowledge", "VQ@knowledge", "IF+KP@knowledge"]
    assert vc.parts == (prompts["prompt_consist"].format(instruct=row.instruction), *ORIGINAL_AND_EDITED)
    assert vq.parts == (prompts["prompt_quality"], "This is the edited image:", raw(EDITED))
    expected = prompts["prompt_dual_evaluation"].format(instruct=row.instruction, explanation=row.explanation)
    assert dual.parts == (expected, *ORIGINAL_AND_EDITED)
    assert "{explanation}" not in dual.parts[0]
    assert kris.QUESTION_METRICS[dual.name] == ("IF", "KP")


def test_viewpoint_instruction_question_adds_the_ground_truth_last(loaded):
    prompts = load_prompts()
    row = loaded[0]["viewpoint_change/1"]
    vc, vq, if_ = questions(row)
    assert vc.name == "VC@view" and vq.name == "VQ@view"
    assert if_.parts == (prompts["prompt_view_instruction_following"].format(instruct=row.instruction),
                         *ORIGINAL_AND_EDITED, "This is the ground truth image:", raw(reference_image("gt")))


def test_multi_element_questions_list_every_reference(loaded):
    prompts = load_prompts()
    row = loaded[0]["multi-element_composition/2"]
    assert len(row.inputs) == 3
    refs = ("Reference Image 1:", raw(input_image(0)), "Reference Image 2:", raw(input_image(1)),
            "Reference Image 3:", raw(input_image(2)), "Predicted Image:", raw(EDITED))
    vc, vq, if_ = questions(row)
    assert vc == kris.Question("VC@multi", (prompts["prompt_consist_multi"].format(instruct=row.instruction), *refs))
    assert if_ == kris.Question("IF@multi", (prompts["prompt_instruction_multi"].format(instruct=row.instruction),
                                             *refs))
    assert vq == kris.Question("VQ@multi", (prompts["prompt_quality"], "This is the image to evaluate:", raw(EDITED)))


def test_temporal_questions_put_the_edit_at_the_missing_frame_all_reencoded():
    prompts = load_prompts()
    # Inputs deliberately out of frame order: frames are sent sorted by number, inputs keep their own index.
    row = KrisRow("temporal_prediction", "7", "predict frame 2", "",
                  ("temporal_prediction/7-4.png", "temporal_prediction/7-1.jpg", "temporal_prediction/7-3.jpg"),
                  target_frame=2)
    vc, vq, if_ = questions(row)
    frames = ("Frame 1 (Reference):", jpeg85(input_image(1)), "Frame 2 (Generated):", jpeg85(EDITED),
              "Frame 3 (Reference):", jpeg85(input_image(2)), "Frame 4 (Reference):", jpeg85(input_image(0)))
    assert vc.name == "VC@temporal" and vc.parts == (
        prompts["prompt_consist_temporal"].format(instruct=row.instruction), *frames)
    assert if_.name == "IF@temporal" and if_.parts == (
        prompts["prompt_instruction_temporal"].format(instruct=row.instruction), *frames)
    assert vq.parts == (prompts["prompt_quality"], "This is the image to evaluate:", jpeg85(EDITED))


def test_every_question_name_is_known_and_every_image_exists(loaded):
    rows, _ = loaded
    for row in rows.values():
        qs = questions(row)
        assert len(qs) == 3 and len({q.name for q in qs}) == 3
        assert {m for q in qs for m in kris.QUESTION_METRICS[q.name]} == set(kris.metrics_of(row.category))
        for q in qs:
            assert isinstance(q.parts[0], str) and q.images
            for image in q.images:
                if image.image.startswith("input:"):
                    assert int(image.image.split(":")[1]) < len(row.inputs)
                elif image.image.startswith("reference:"):
                    assert image.image.split(":", 1)[1] in row.references


# --- Reply parsing ---------------------------------------------------------------------------------------------

# A plain transcription of the official algorithm (PROTOCOL.md "Reply parsing"), with the official regexes, used as
# an oracle for the linear-time implementation.
def official_common(text, key, prefix):
    m = re.search(r"\{[^{}]*" + re.escape(key) + r"[^{}]*\}", text, re.DOTALL)
    if m:
        try:
            score = json.loads(m.group(0)).get(key)
            if score is not None:
                return int(score)
        except Exception:
            pass
    patterns = ([rf"{prefix}[_\s]*score\s*[:：]?\s*([1-5])"] if prefix else []) + \
        [r"([1-5])\s*/\s*5", r"([1-5])\s+out\s+of\s+5", r"\b([1-5])\b"]
    for p in patterns:
        m = re.search(p, text, re.IGNORECASE | re.DOTALL)
        if m:
            return int(m.group(1))
    return None


def official_knowledge(text, key, prefix):
    m = re.search(r"\{[^{}]*" + key + r"[^{}]*\}", text, re.DOTALL)
    if m:
        try:
            data = json.loads(m.group(0))
            return int(data.get(key, 0)) if data.get(key) is not None else None
        except Exception:
            pass
    for p in (rf"{prefix}[_\s]*score\s*[:：]\s*([1-5])", r"([1-5])\s*/\s*5", r"([1-5])\s+out\s+of\s+5"):
        m = re.search(p, text, re.IGNORECASE)
        if m:
            return int(m.group(1))
    digits = re.findall(r"\b([1-5])\b", text)
    return int(digits[0]) if digits else None


def official_dual(text):
    m = re.search(r"\{[^{}]*instruction_score[^{}]*\}", text, re.DOTALL)
    if m:
        try:
            d = json.loads(m.group(0))
            return (int(d["instruction_score"]) if d.get("instruction_score") is not None else None,
                    int(d["knowledge_score"]) if d.get("knowledge_score") is not None else None)
        except Exception:
            pass
    m1 = re.search(r"instruction[_\s]*score\s*[:：]\s*([1-5])", text, re.IGNORECASE)
    m2 = re.search(r"knowledge[_\s]*score\s*[:：]\s*([1-5])", text, re.IGNORECASE)
    return (int(m1.group(1)) if m1 else None, int(m2.group(1)) if m2 else None)


QUALITY_TRAILING_COMMA = ('Structural coherence: ✔\n1. Detect artifacts: none\n{\n"reasoning": "Looks natural, '
                          '2 small flaws.",\n"quality_score": 4,\n}')
DUAL_UNQUOTED_REASONING = ('{\n  "instruction_score": 4,\n  "instruction_reasoning": 1. Detect Difference 2. Expected '
                           'Visual Caption 3. Instruction Match 4. Decision\n  "knowledge_score": 3,\n  '
                           '"knowledge_reasoning": 1. Detect Difference\n}')

# (reply, score_key, prefix, official common reading)
COMMON_CASES = [
    ('Compared... {\n"reasoning": "fine",\n"consistency_score": 4\n}', "consistency_score", "consistency", 4),
    ('{"consistency_score": 4.0}', "consistency_score", "consistency", 4),
    ('{"consistency_score": "4"}', "consistency_score", "consistency", 4),
    ('{"consistency_score": 4.5}', "consistency_score", "consistency", 4),
    ('{"consistency_score": 0}', "consistency_score", "consistency", 0),
    ('{"consistency_score": 7}', "consistency_score", "consistency", 7),
    # Trailing comma: invalid JSON; the quoted key defeats the prefix; the first standalone digit wins ("1. Detect").
    (QUALITY_TRAILING_COMMA, "quality_score", "quality", 1),
    ('{"quality_score": 4,}', "quality_score", "quality", 4),
    ('Step 2 done. Quality score: 3', "quality_score", "quality", 3),
    ('Step 2 done. quality_score 3', "quality_score", "quality", 3),  # colon optional in metrics_common
    ('Step 2 done. QUALITY SCORE：5', "quality_score", "quality", 5),  # full-width colon, any case
    ('Step 2 done. quality_score 3', "quality_score", None, 2),  # multi/temporal: no prefix pattern
    ('I would give it 3/5, step 2', "consistency_score", None, 3),
    ('step 12: 4 out of 5', "consistency_score", None, 4),
    ('{"consistency_score": null} so 2 / 5', "consistency_score", "consistency", 2),  # null falls through
    ('{"note": "consistency_score pending"} 2 out of 5', "consistency_score", "consistency", 2),
    ('{"consistency_score": "four"} then 5', "consistency_score", "consistency", 5),
    ('{"a": {"consistency_score": 3}}', "consistency_score", "consistency", 3),  # the inner, brace-free object
    ('{"x": 1} {"consistency_score": 2}', "consistency_score", "consistency", 2),
    ('Excellent work, no score.', "consistency_score", "consistency", None),
    ('', "consistency_score", "consistency", None),
    ('Scores 12 and 55 only', "consistency_score", None, None),
]


@pytest.mark.parametrize("reply, key, prefix, expected", COMMON_CASES)
def test_common_extractor_reads_as_the_official_one(reply, key, prefix, expected):
    assert extract_score(reply, key, prefix) == expected == official_common(reply, key, prefix)


@pytest.mark.parametrize("reply, expected", [
    ('{"consistency_score": 5}', 5),
    ('Step 1 ok. consistency_score 4', 1),  # the colon is required here: the digit fallback takes "1"
    ('Step 1 ok. consistency_score: 4', 4),
    ('{"consistency_score": null} 2/5', None),  # valid JSON decides, even without a value
    ('{"note": "consistency_score pending"} 2 out of 5', None),
    ('Step 1: {"consistency_score": 4,}', 1),  # trailing comma: the first standalone digit wins
])
def test_knowledge_extractor_reads_as_the_official_one(reply, expected):
    assert extract_knowledge_score(reply, "consistency_score", "consistency") == expected
    assert official_knowledge(reply, "consistency_score", "consistency") == expected


@pytest.mark.parametrize("reply, expected", [
    ('{"instruction_score": 4, "knowledge_score": 2, "instruction_reasoning": "ok"}', (4, 2)),
    ('{"instruction_score": 4.5, "knowledge_score": "3"}', (4, 3)),
    ('{"instruction_score": 4}', (4, None)),
    (DUAL_UNQUOTED_REASONING, (None, None)),  # template layout copied: invalid JSON, quoted keys, no digit fallback
    ('Instruction score: 4\nKnowledge_score： 2', (4, 2)),
    ('instruction_score: 5 and nothing else, 3/5', (5, None)),
    ('{"instruction_score": "x", "knowledge_score": 2} instruction score: 3', (3, None)),
    ('{"instruction_score": 7, "knowledge_score": 3}', (7, 3)),
])
def test_dual_extractor_reads_as_the_official_one(reply, expected):
    assert extract_dual_scores(reply) == expected == official_dual(reply)


@pytest.mark.parametrize("name, reply, expected", [
    ("VQ@common", QUALITY_TRAILING_COMMA, {"VQ": 1}),  # official reading kept, odd as it is
    ("VQ@knowledge", QUALITY_TRAILING_COMMA, {"VQ": 1}),
    ("VC@common", '{"consistency_score": 4.5}', {"VC": 4}),
    ("IF@view", 'After review, instruction score 5', {"IF": 5}),
    ("IF@multi", 'After review, instruction score 5 (step 2)', {"IF": 5}),
    ("IF@temporal", 'Frame 2 fits. {"instruction_score": 3}', {"IF": 3}),
    ("IF+KP@knowledge", '{"instruction_score": 4}', {"IF": 4, "KP": None}),
    ("IF+KP@knowledge", '{"instruction_score": 9, "knowledge_score": 2}', {"IF": None, "KP": 2}),
    ("IF+KP@knowledge", '{"instruction_score": 2, "knowledge_score": 1}', {"IF": 2, "KP": 1}),
])
def test_parse_returns_the_question_metrics(name, reply, expected):
    assert parse(name, reply) == expected


@pytest.mark.parametrize("name, reply, why", [
    ("VC@common", "", "empty reply"),
    ("VC@common", None, "empty reply"),
    ("VC@common", "Looks great, nothing changed.", "no consistency_score"),
    ("VC@common", '{"consistency_score": 0}', "outside 1..5"),
    ("VC@common", '{"consistency_score": 7}', "outside 1..5"),
    ("VC@common", '{"consistency_score": 5.5}', "outside 1..5"),  # int() would give 5: the value is still out
    ("VQ@temporal", '{"quality_score": 0.5}', "outside 1..5"),
    ("VC@knowledge", '{"consistency_score": null} 2/5', "no consistency_score"),
    ("IF+KP@knowledge", DUAL_UNQUOTED_REASONING, "no instruction_score; no knowledge_score"),
    ("IF+KP@knowledge", '{"instruction_score": 0, "knowledge_score": 6}', "outside"),
])
def test_parse_raises_unreadable_when_no_metric_is_readable(name, reply, why):
    with pytest.raises(UnreadableReply, match=re.escape(why)):
        parse(name, reply)


def test_parse_refuses_unknown_question_names():
    with pytest.raises(KeyError):
        parse("VC", "{}")


def test_extractors_match_the_official_regexes_on_random_replies():
    rng = random.Random(20250614)
    pieces = ['{', '}', '"consistency_score"', 'consistency_score', 'instruction_score', '"knowledge_score"',
              'knowledge score', ': ', '：', ',', ' ', '\n', '1', '3', '5', '7', '4.5', '/5', ' out of 5', 'null',
              '"x"', 'quality', '_score', '[', ']', 'Step ', '. ']
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 25)))
        for key, prefix in (("consistency_score", "consistency"), ("consistency_score", None)):
            assert extract_score(text, key, prefix) == official_common(text, key, prefix), text
        assert extract_knowledge_score(text, "consistency_score", "consistency") == \
            official_knowledge(text, "consistency_score", "consistency"), text
        assert extract_dual_scores(text) == official_dual(text), text


ADVERSARIAL_64K = [
    "{" + "consistency_score" * 3800,  # quadratic for the official JSON regex
    "{" + "instruction_score " * 3600 + "knowledge_score" * 100,
    "{" * 65536,
    "{" + " " * 65530 + "{",
    " " * 65536,
    "1" + " " * 65535,
    "1 " * 32768,
    "consistency" + " " * 65530,
    "instruction_" * 5400,
    '{"consistency_score": ' + "[" * 60000 + "}",  # json.loads recursion, caught like the official except
    "é" * 32768,
]


def _parse_all(replies: list[str]) -> float:
    """CPU seconds of this process (not wall-clock time, which other processes on a busy machine stretch)."""
    started = time.process_time()
    for reply in replies:
        for name in kris.QUESTION_METRICS:
            try:
                parse(name, reply)
            except UnreadableReply:
                pass
    return time.process_time() - started


@pytest.mark.slow  # several seconds: parses hostile 64 KiB replies, then four times as long
def test_parsing_stays_linear_on_hostile_64_kib_replies():
    base = _parse_all(ADVERSARIAL_64K)  # about 0.25 s for all 11 replies x 14 question kinds here
    quadrupled = _parse_all([r * 4 for r in ADVERSARIAL_64K])
    assert base < 5.0
    assert quadrupled < 10 * base + 0.1  # linear: about 4x; quadratic would be 16x


# --- Aggregation -----------------------------------------------------------------------------------------------

def test_aggregate_small_hand_computed_case():
    rows = [
        ("color_change", {"VC": 5, "VQ": 3, "IF": 1}),  # 100, 50, 0
        ("count_change", {"VC": 4, "VQ": None, "IF": 2}),  # 75, -, 25
        ("physics", {"VC": 2, "VQ": 2, "IF": 3, "KP": 1}),  # 25, 25, 50, 0
    ]
    result = aggregate(rows)
    assert result.categories["count_change"]["VQ"] == kris.Mean(None, 0)
    assert result.categories["color_change"][AVG] == kris.Mean(50.0, 3)
    attribute = result.dimensions["Attribute Perception"]
    assert attribute["VC"] == kris.Mean(87.5, 2) and attribute["VQ"] == kris.Mean(50.0, 1)
    assert attribute["IF"] == kris.Mean(12.5, 2) and attribute[AVG] == kris.Mean(50.0, 5)
    assert "KP" not in attribute
    assert result.dimensions["Natural Science"]["KP"] == kris.Mean(0.0, 1)
    assert result.dimensions["Natural Science"][AVG] == kris.Mean(25.0, 4)
    assert result.knowledge_types == {"Factual": kris.Mean(50.0, 5), "Conceptual": kris.Mean(25.0, 4)}
    assert result.overall.n == 9 and result.overall.value == pytest.approx(350 / 9)
    assert set(result.dimensions) == {"Attribute Perception", "Natural Science"}


def test_dimensions_pool_rows_not_category_means():
    rows = [("color_change", {"VC": 5, "VQ": 5, "IF": 5})] + [("size_adjustment", {"VC": 1, "VQ": 1, "IF": 1})] * 3
    dim = aggregate(rows).dimensions["Attribute Perception"]
    assert dim["VC"].value == 25.0 and dim[AVG] == kris.Mean(25.0, 12)  # a mean of category means would be 50


def test_drop_incomplete_rows_removes_the_whole_row():
    rows = [("color_change", {"VC": 5, "VQ": None, "IF": 5}), ("color_change", {"VC": 1, "VQ": 1, "IF": 1})]
    assert aggregate(rows).categories["color_change"]["VC"] == kris.Mean(50.0, 2)
    kept = aggregate(rows, drop_incomplete_rows=True)
    assert kept.categories["color_change"]["VC"] == kris.Mean(0.0, 1) and kept.overall == kris.Mean(0.0, 3)


@pytest.mark.parametrize("row, message", [
    (("color_change", {"VC": 5, "KP": 3}), "has no metric KP"),
    (("color_change", {"VC": 6}), "not an integer in 1..5"),
    (("color_change", {"VC": 4.0}), "not an integer in 1..5"),
    (("color_change", {"VC": True}), "not an integer in 1..5"),
    (("object_count", {"VC": 3}), "unknown KRIS-Bench category"),
])
def test_aggregate_refuses_impossible_scores(row, message):
    with pytest.raises(ValueError, match=message):
        aggregate([row])


def test_empty_aggregate():
    result = aggregate([])
    assert result.categories == {} and result.knowledge_types == {} and result.overall == kris.Mean(None, 0)


def _synthetic_rows(dimension: str, per_metric_means: dict[str, float]) -> list[tuple[str, dict]]:
    """Rows of the real row counts whose normalised values have the quoted mean (to 2 dp) for each metric: the
    total of (s - 1) steps is the integer closest to mean * n / 25, spread as evenly as possible."""
    categories = [c for c in DIMENSIONS[dimension] for _ in range(ROW_COUNTS[c])]
    rows = [(c, {}) for c in categories]
    for metric, mean in per_metric_means.items():
        total = round(mean * len(rows) / 25)
        base, extra = divmod(total, len(rows))
        for index, (_, scores) in enumerate(rows):
            scores[metric] = 1 + base + (1 if index < extra else 0)
    return rows


# Bagel EVAL.md (judge gpt-4o-2024-11-20): dimension AVGs and the knowledge-type / overall values they pool into.
PUBLISHED = {
    "BAGEL": ([64.27, 62.42, 42.45, 55.40, 56.01, 52.54, 50.56], {"Factual": 60.26, "Conceptual": 55.86,
                                                                   "Procedural": 51.69}, 56.21),
    "BAGEL w/ CoT": ([67.42, 68.33, 58.67, 63.55, 61.40, 48.12, 50.22], {"Factual": 66.18, "Conceptual": 61.92,
                                                                          "Procedural": 49.02}, 60.18),
}


@pytest.mark.parametrize("model", PUBLISHED)
def test_pooling_recomposes_the_published_bagel_numbers(model):
    dimension_avgs, knowledge_types, overall = PUBLISHED[model]
    rows = []
    for dimension, avg in zip(DIMENSIONS, dimension_avgs):
        metrics = kris.metrics_of(DIMENSIONS[dimension][0])
        rows += _spread(dimension, avg, metrics)
    result = aggregate(rows)
    assert [round(result.dimensions[d][AVG].value, 2) for d in DIMENSIONS] == dimension_avgs
    assert {k: round(m.value, 2) for k, m in result.knowledge_types.items()} == knowledge_types
    assert round(result.overall.value, 2) == overall and result.overall.n == 4469
    assert result.knowledge_types["Factual"].n == 449 * 3  # 275 + 100 + 74 rows, 3 values each


def _spread(dimension: str, avg: float, metrics: tuple[str, ...]) -> list[tuple[str, dict]]:
    """Rows of the dimension whose every metric value together averages `avg` (to 2 dp)."""
    categories = [c for c in DIMENSIONS[dimension] for _ in range(ROW_COUNTS[c])]
    slots = len(categories) * len(metrics)
    base, extra = divmod(round(avg * slots / 25), slots)
    steps = iter(base + (1 if i < extra else 0) for i in range(slots))
    return [(c, {m: 1 + next(steps) for m in metrics}) for c in categories]


def test_pooling_recomposes_bagel_attribute_perception_per_metric():
    rows = _synthetic_rows("Attribute Perception", {"VC": 76.64, "VQ": 74.45, "IF": 41.73})
    dim = aggregate(rows).dimensions["Attribute Perception"]
    assert [round(dim[m].value, 2) for m in ("VC", "VQ", "IF", AVG)] == [76.64, 74.45, 41.73, 64.27]
    assert dim[AVG].n == 825


# --- Edited images ---------------------------------------------------------------------------------------------

def test_edited_images_are_found_jpg_first_then_png(tmp_path, loaded):
    rows = list(loaded[0].values())[:6]
    write_kris_edits(tmp_path / "out", rows[:4], ext="png")
    write_kris_edits(tmp_path / "out", rows[:2], ext="jpg")
    found = edited_images_in_folder(tmp_path / "out", rows)
    assert {k: p.suffix for k, p in found.items()} == {rows[0].key: ".jpg", rows[1].key: ".jpg",
                                                        rows[2].key: ".png", rows[3].key: ".png"}
    assert found[rows[0].key] == tmp_path / "out" / rows[0].category / f"{rows[0].id}.jpg"


def test_edited_images_content_derives_from_the_row(tmp_path, loaded):
    from PIL import Image

    rows = [loaded[0]["color_change/1"], loaded[0]["temporal_prediction/2"]]
    found = edited_images_in_folder(write_kris_edits(tmp_path / "out", rows), rows)
    for row in rows:
        with Image.open(found[row.key]) as image:
            assert abs(image.convert("RGB").getpixel((0, 0))[0] - edited_red(row)) <= 3
    assert edited_red(rows[0]) != edited_red(KrisRow("color_change", "2", "", "", ()))


def test_edited_image_symlink_out_of_the_folder_is_refused(tmp_path, loaded):
    row = loaded[0]["color_change/1"]
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(b"\xff\xd8\xff")
    (tmp_path / "out/color_change").mkdir(parents=True)
    (tmp_path / "out/color_change/1.jpg").symlink_to(outside)
    with pytest.raises(InputError, match="outside"):
        edited_images_in_folder(tmp_path / "out", [row])


def test_edited_image_symlink_inside_the_folder_is_fine(tmp_path, loaded):
    row = loaded[0]["color_change/1"]
    write_kris_edits(tmp_path / "out", [KrisRow("color_change", "99", "", "", ())])
    (tmp_path / "out/color_change/1.jpg").symlink_to(tmp_path / "out/color_change/99.jpg")
    assert edited_images_in_folder(tmp_path / "out", [row]) == {row.key: tmp_path / "out/color_change/1.jpg"}


def test_edited_images_skip_problem_rows_and_need_the_folder(tmp_path):
    bad = KrisRow("color_change", "../x", "", "", (), problem="row id is not a plain file name")
    (tmp_path / "out").mkdir()
    assert edited_images_in_folder(tmp_path / "out", [bad]) == {}
    with pytest.raises(InputError, match="does not exist"):
        edited_images_in_folder(tmp_path / "missing", [bad])


def test_factory_writes_edits_only_for_good_rows(tmp_path):
    rows = make_kris_dataset(tmp_path / "data", rows_per_category=1, categories=["color_change"],
                             bad_rows=[("color_change", "unsafe_id")])
    write_kris_edits(tmp_path / "out", rows)
    assert sorted(p.name for p in (tmp_path / "out/color_change").iterdir()) == ["1.jpg"]
