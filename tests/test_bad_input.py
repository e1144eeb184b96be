"""Every kind of bad input gets one clear line and exit code 4 before any test runs."""

import json

import pytest

from pytest_editeval.testing.gedit_factory import make_gedit_dataset

from .conftest import output_of


def _error_lines(result):
    return [line for line in output_of(result).splitlines() if line.startswith("ERROR")]


def _assert_usage_error(result, *fragments):
    text = output_of(result)
    assert result.ret == 4, text
    assert "Traceback" not in text
    lines = _error_lines(result)
    assert lines, text
    for fragment in fragments:
        assert fragment in text, (fragment, text)


def _jsonl(tmp_path, lines):
    path = tmp_path / "edits.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def an_image(edits):
    return next((edits.parent / "images").iterdir())


def test_jsonl_not_found(run, tmp_path):
    _assert_usage_error(run(images=tmp_path / "nope.jsonl"), "nope.jsonl: no such file or folder")


def test_line_that_is_not_json(run, tmp_path, en_rows, an_image):
    path = _jsonl(tmp_path, [json.dumps({"id": en_rows[0].key, "image_path": str(an_image)}), "{oops"])
    _assert_usage_error(run(images=path), f"{path}:2: not valid JSON", '{"id": KEY, "image_path": PATH}')


def test_line_without_image_path(run, tmp_path, en_rows):
    path = _jsonl(tmp_path, [json.dumps({"id": en_rows[0].key})])
    _assert_usage_error(run(images=path), f"{path}:1: missing 'id' or 'image_path'")


def test_unknown_id(run, tmp_path, an_image):
    path = _jsonl(tmp_path, [json.dumps({"id": "deadbeef", "image_path": str(an_image)})])
    _assert_usage_error(run(images=path), f"{path}:1: id 'deadbeef' is not a key of the benchmark dataset")


def test_duplicate_id(run, tmp_path, en_rows, an_image):
    line = json.dumps({"id": en_rows[0].key, "image_path": str(an_image)})
    path = _jsonl(tmp_path, [line, "", line])
    _assert_usage_error(run(images=path), f"{path}:3: id '{en_rows[0].key}' appears twice (first on line 1)")


def test_missing_image_file(run, tmp_path, en_rows):
    path = _jsonl(tmp_path, [json.dumps({"id": en_rows[0].key, "image_path": "gone/x.png"})])
    _assert_usage_error(run(images=path), f"image {tmp_path / 'gone' / 'x.png'} for id '{en_rows[0].key}' does not exist")


def test_file_that_is_not_an_image(run, tmp_path, en_rows):
    (tmp_path / "fake.png").write_text("not a png")
    path = _jsonl(tmp_path, [json.dumps({"id": en_rows[0].key, "image_path": "fake.png"})])
    _assert_usage_error(run(images=path), "fake.png (id", "is not a readable image")


def test_folder_without_official_layout(run, tmp_path):
    _assert_usage_error(run(images=tmp_path), "a folder must hold the official layout")


def test_unknown_subset(run):
    _assert_usage_error(run("--editeval-subsets=color_alter,colour_alter"),
                        "unknown subset(s) colour_alter for language 'en': known subsets are background_change")


def test_unknown_language(run):
    _assert_usage_error(run("--editeval-language=zh"), "unknown language 'zh': known languages are en, cn")


def test_unknown_benchmark(run):
    _assert_usage_error(run("--editeval-benchmark=imgedt"),
                        "unknown benchmark 'imgedt': known benchmarks are gedit, imgedit, imgedit-uge, kris, risebench")


def test_dataset_folder_without_data_files(run, tmp_path):
    (tmp_path / "empty").mkdir()
    _assert_usage_error(run(f"--editeval-dataset={tmp_path / 'empty'}"), "no Parquet or Arrow data files under")


def test_dataset_with_wrong_columns(run, tmp_path):
    make_gedit_dataset(tmp_path / "ds", rows_per_subset=1, columns_to_drop=["Intersection_exist"])
    _assert_usage_error(run(f"--editeval-dataset={tmp_path / 'ds'}"), "lacks column(s) Intersection_exist",
                        "this is not a GEdit-Bench data file")


def test_corrupt_dataset_file(run, tmp_path):
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "train.parquet").write_bytes(b"PAR1 garbage")
    _assert_usage_error(run(f"--editeval-dataset={tmp_path / 'ds'}"), "cannot read dataset file")


def test_unknown_hub_id_offline(run, tmp_path, monkeypatch):
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path / "empty-cache"))
    _assert_usage_error(run("--editeval-dataset=stepfun-ai/GEdit-Bench", "--editeval-offline"),
                        "is not in the ModelScope cache")


@pytest.mark.parametrize("expression, message", [
    ("overall>=seven", "malformed threshold 'overall>=seven'"),
    ("quality>=7", "unknown metric 'quality'"),
    ("sc[colour]>=1", "unknown subset 'colour' in threshold 'sc[colour]>=1'"),
])
def test_bad_threshold(run, expression, message):
    _assert_usage_error(run(f"--editeval-threshold={expression}"), message)


def test_bad_threshold_in_ini(run, pytester):
    pytester.makeini("[pytest]\nediteval_thresholds =\n    overall>=7\n    overall>>7\n")
    _assert_usage_error(run(), "ini option editeval_thresholds: malformed threshold 'overall>>7'")


@pytest.mark.parametrize("option, message", [
    ("--editeval-limit=0", "'0' must be >= 1"),
    ("--editeval-judge-workers=x", "'x' is not an integer"),
    ("--editeval-judge-url=ftp://host", "is not an http(s) URL"),
    ("--editeval-judge-url=http://127.0.0.1:99999/v1", "not a valid URL: Port out of range"),
    ("--editeval-gate=sometimes", "unknown gate policy 'sometimes'"),
])
def test_bad_single_values(run, option, message):
    _assert_usage_error(run(option), message)


def test_no_judge_url(pytester, gedit, edits, monkeypatch):
    monkeypatch.setenv("EDITEVAL_JUDGE_API_KEY", "k")
    monkeypatch.delenv("EDITEVAL_JUDGE_URL", raising=False)
    result = pytester.runpytest("--editeval-benchmark=gedit", f"--editeval-dataset={gedit[0]}",
                                f"--editeval-images={edits}")
    _assert_usage_error(result, "no judge URL: pass --editeval-judge-url")


def test_no_api_key_names_the_variable(run, monkeypatch):
    monkeypatch.delenv("EDITEVAL_JUDGE_API_KEY")
    _assert_usage_error(run(), "no judge API key: set EDITEVAL_JUDGE_API_KEY")


def test_no_images_says_how_to_give_them(pytester, gedit, judge, monkeypatch):
    monkeypatch.setenv("EDITEVAL_JUDGE_API_KEY", "k")
    result = pytester.runpytest("--editeval-benchmark=gedit", f"--editeval-dataset={gedit[0]}",
                                f"--editeval-judge-url={judge.url}")
    _assert_usage_error(result, "no edited images: give --editeval-images PATH", "--editeval-model ID_OR_DIR",
                        "override the editeval_pipeline fixture in conftest.py")


def test_wrong_key_stops_the_run_with_one_line(run, judge, monkeypatch):
    monkeypatch.setenv("EDITEVAL_JUDGE_API_KEY", "sk-wrong-key-123")
    result = run()
    text = output_of(result)
    assert result.ret == 4
    assert f"editeval: judge rejected the API key: HTTP 401 from {judge.url}/chat/completions" in text
    assert "sk-wrong-key-123" not in text
    assert judge.count <= 8  # stopped at once: at most the requests already in flight
    result.assert_outcomes()  # no item failed one by one


def test_wrong_model_or_url_stops_the_run(run, judge):
    result = run(f"--editeval-judge-url={judge.url}/v2")
    assert result.ret == 4
    assert "judge endpoint or model not found: HTTP 404 from" in output_of(result)


def test_judge_down_stops_the_run_and_says_so(run):
    from pytest_editeval.testing import JudgeServer

    with JudgeServer() as closed:
        port = closed.port
    result = run(f"--editeval-judge-url=http://127.0.0.1:{port}/v1")
    assert result.ret == 2
    assert f"editeval: judge unreachable at http://127.0.0.1:{port}/v1/chat/completions" in output_of(result)
