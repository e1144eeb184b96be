"""The plugin end to end, run as users run it (pytester), against the loopback judge."""

import json

import pytest

from pytest_editeval.testing.gedit_factory import write_edited_images

from .conftest import API_KEY, output_of
from .expected import expected_headline, expected_row, reported_usage


def test_official_scores_are_exact(run, judge, en_rows, tmp_path):
    out = tmp_path / "results.json"
    result = run(f"--editeval-json={out}")
    assert result.ret == 0
    result.assert_outcomes(passed=len(en_rows))
    data = json.loads(out.read_text())
    assert len(judge.calls) == 2 * len(en_rows)  # two questions per row, nothing asked twice
    by_key = {s["key"]: s for s in data["samples"]}
    for row in en_rows:
        sc, pq, o = expected_row(row)
        sample = by_key[row.key]
        scores = sample["scores"]
        assert (scores["semantic_consistency"], scores["perceptual_quality"]) == (sc, pq)
        assert scores["overall"] == pytest.approx(o, abs=1e-12)
        assert sample["id"] == f"en-{row.task_type}-{row.key}" and sample["status"] == "scored"
        assert ("intersection" in sample["tags"]) == row.intersection
        assert sample["answers"]["semantic_consistency"]["reasoning"]
    macro, micro = expected_headline(en_rows)
    full = data["aggregates"]["full"]
    for i, metric in enumerate(("semantic_consistency", "perceptual_quality", "overall")):
        assert full["macro"][metric]["mean"] == pytest.approx(macro[i], abs=1e-12)
        assert full["micro"][metric]["mean"] == pytest.approx(micro[i], abs=1e-12)
        assert full["macro"][metric]["n"] == len(en_rows) and full["macro"][metric]["stderr"] > 0
    inter_macro, _ = expected_headline([r for r in en_rows if r.intersection])
    assert data["aggregates"]["intersection"]["macro"]["overall"]["mean"] == pytest.approx(inter_macro[2], abs=1e-12)
    assert data["aggregates"]["intersection"]["num"] == sum(r.intersection for r in en_rows) < len(en_rows)
    assert data["benchmark"] == "gedit" and data["language"] == "en" and data["protocol"] == "official"
    assert data["model"] == "my-model"
    assert data["judge"] == {"backend": "openai", "model": "gpt-4.1", "digest": None, "adapter_digest": None, "recipe": "viescore",
                             "host": "127.0.0.1", "endpoint": f"{judge.url}/chat/completions", "parameters": {"max_tokens": 1400},
                             "samples_per_question": 1, "sample_average": "first",
                             "usage": {**reported_usage(judge), "requests": 2 * len(en_rows)},
                             "cache_saved": {"prompt_tokens": 0, "completion_tokens": 0, "answers": 0}, "cost": None,
                             "panel": []}
    assert data["complete"] and data["gate"]["evaluated"]
    text = output_of(result)
    assert f"| my-model | gedit-en | Overall              | OVERALL (macro)      |  {len(en_rows)} | {macro[2]:.3f} |" in text
    assert "INTERSECTION (micro)" in text and f"rows: {len(en_rows)} scored, 0 errors, 0 missing" in text


def test_items_have_readable_stable_ids(run, en_rows):
    result = run("--collect-only", "-q")
    ids = [line for line in result.outlines if "::" in line]
    assert len(ids) == len(en_rows)
    assert ids[0] == f"editeval_gedit::test_edit[en-background_change-{en_rows[0].key}]"


def test_gate_pass_and_fail_exit_codes(run):
    passed = run("--editeval-threshold=overall>=0.5", "--editeval-threshold=error_rate<=0")
    assert passed.ret == 0
    passed.stdout.fnmatch_lines(["PASS overall>=0.5: actual * (n=44)", "editeval gate PASSED"])
    failed = run("--editeval-threshold=overall>=9.5", "--editeval-threshold=sc[color_alter]>=0")
    assert failed.ret == 1
    failed.stdout.fnmatch_lines(["FAIL overall>=9.5: actual * (n=44)", "PASS sc[[]color_alter]>=0: actual * (n=4)",
                                 "editeval gate FAILED: 1 of 2 thresholds missed"])
    failed.assert_outcomes(passed=44)  # a low score fails the gate, not the items


def test_partial_run_is_said_and_not_gated_unless_always(run):
    partial = run("-k", "color_alter", "--editeval-threshold=overall>=9.5")
    assert partial.ret == 0
    partial.assert_outcomes(passed=4, deselected=40)
    partial.stdout.fnmatch_lines(["PARTIAL RUN: 4 of 44 benchmark rows ran*", "editeval gate NOT APPLIED: partial run*"])
    forced = run("-k", "color_alter", "--editeval-threshold=overall>=9.5", "--editeval-gate=always")
    assert forced.ret == 1


def test_subsets_and_limit_select_rows(run, judge):
    result = run("--editeval-subsets=color_alter,text_change", "--editeval-limit=2",
                 "--editeval-threshold=overall>=0")
    result.assert_outcomes(passed=4)
    assert result.ret == 0 and "PARTIAL" not in output_of(result)
    assert len(judge.calls) == 8


def test_chinese_rows_and_instructions_verbatim(run, judge, gedit, tmp_path):
    cn_rows = [r for r in gedit[1] if r.language == "cn"]
    edits = write_edited_images(tmp_path / "cn-model", cn_rows)
    out = tmp_path / "cn.json"
    result = run("--editeval-language=cn", f"--editeval-json={out}", images=edits)
    result.assert_outcomes(passed=len(cn_rows))
    assert {c.instruction for c in judge.calls if c.instruction} == {r.instruction for r in cn_rows}
    assert any("颜色" in c.instruction for c in judge.calls if c.instruction)
    data = json.loads(out.read_text())
    assert data["language"] == "cn" and all(s["id"].startswith("cn-") for s in data["samples"])
    macro, _ = expected_headline(cn_rows)
    assert data["aggregates"]["full"]["macro"]["overall"]["mean"] == pytest.approx(macro[2], abs=1e-12)


def test_evalscope_protocol(run, judge, en_rows, tmp_path):
    out = tmp_path / "es.json"
    result = run("--editeval-protocol=evalscope", f"--editeval-json={out}")
    assert result.ret == 0
    assert all(not c.text_first for c in judge.calls)
    assert {c.body["max_tokens"] for c in judge.calls} == {4096}
    assert {c.body["temperature"] for c in judge.calls} == {0.0}
    data = json.loads(out.read_text())
    _, micro = expected_headline(en_rows)
    assert data["protocol"] == "evalscope"
    assert data["aggregates"]["full"]["micro"]["overall"]["mean"] == pytest.approx(micro[2], abs=1e-12)


def test_official_folder_layout_and_missing_rows(run, judge, en_rows, tmp_path):
    present = en_rows[::2]
    folder = write_edited_images(tmp_path / "official-out", present, layout="official")
    (folder / "fullset" / present[0].task_type / "en" / f"{present[0].key}_SRCIMG.png").write_bytes(b"ignored")
    out = tmp_path / "layout.json"
    result = run(f"--editeval-json={out}", "--editeval-threshold=overall>=0", "--editeval-allow-missing",
                 images=folder)
    result.assert_outcomes(passed=len(present), skipped=len(en_rows) - len(present))
    assert result.ret == 0  # with --editeval-allow-missing, missing rows are passed over as the official scorer does
    data = json.loads(out.read_text())
    assert data["aggregates"]["full"]["missing"] == len(en_rows) - len(present)
    assert len(data["missing"]) == len(en_rows) - len(present) and data["model"] == "official-out"
    assert data["allow_missing"] and not data["complete"] and data["gate"]["passed"] is True
    assert len(judge.calls) == 2 * len(present)
    result.stdout.fnmatch_lines([f"rows: {len(present)} scored, 0 errors, {len(en_rows) - len(present)} missing*",
                                 "missing: 22 of 44 selected rows have no edited image*(--editeval-allow-missing)"])


def test_unreadable_replies_are_errors_counted_and_excluded(run, judge, tmp_path):
    from pytest_editeval.testing.judge_server import json_reply

    def reply(scores, call):  # the judge never answers readably for color_alter rows
        return "no idea" if call.instruction and "#color_alter" in call.instruction else json_reply(scores, call)

    judge.reply = reply
    out = tmp_path / "err.json"
    result = run(f"--editeval-json={out}", "--editeval-judge-parse-retries=1", "--editeval-threshold=error_rate<=0.05")
    result.assert_outcomes(passed=40, failed=4)
    assert result.ret == 1
    result.stdout.fnmatch_lines([
        "en-color_alter-*: semantic_consistency: judge reply unreadable after 2 attempts "
        "(no score list in reply: 'no idea')",
        "rows: 40 scored, 4 errors, 0 missing*error rate 9.1%*", "FAIL error_rate<=0.05: actual 0.0909 (n=44)",
        "FAILED editeval_gedit::test_edit[[]en-color_alter-*"])
    data = json.loads(out.read_text())
    errors = [s for s in data["samples"] if s["status"] == "error"]
    assert len(errors) == 4 and all(not s["scores"] and "unreadable" in s["error"] for s in errors)
    assert data["aggregates"]["full"]["num"] == 40 and "color_alter" in data["aggregates"]["full"]["subsets"]
    assert data["aggregates"]["full"]["subsets"]["color_alter"]["metrics"]["overall"]["mean"] is None
    assert data["schema_version"] == 2


def test_exit_first_stops_and_is_partial(run, judge):
    judge.reply = lambda scores, call: "unreadable"
    result = run("-x", "--editeval-judge-parse-retries=0", "--editeval-threshold=overall>=0")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["PARTIAL RUN: 1 of 44*"])


def test_api_key_appears_nowhere(run, tmp_path, pytester):
    out = tmp_path / "secret.json"
    result = run(f"--editeval-json={out}", "-v", "--showlocals", "--editeval-threshold=overall>=9.9",
                 "--junitxml", str(tmp_path / "junit.xml"))
    assert result.ret == 1
    assert API_KEY not in output_of(result)
    for path in [*tmp_path.rglob("*"), *pytester.path.rglob("*")]:
        if path.is_file():
            assert API_KEY.encode() not in path.read_bytes(), path


def test_junit_properties(run, tmp_path):
    junit = tmp_path / "junit.xml"
    run("--junitxml", str(junit), "-k", "color_alter")
    text = junit.read_text()
    assert text.count('name="editeval_overall"') == 4 and 'name="editeval_status" value="scored"' in text


def test_ini_twins_and_command_line_precedence(run, pytester, judge):
    pytester.makeini("""
        [pytest]
        editeval_language = cn
        editeval_subsets = color_alter
        editeval_thresholds =
            overall>=9.9
            error_rate<=1
    """)
    result = run("--editeval-language=en")  # the command line wins over ini
    result.assert_outcomes(passed=4)
    assert {c.instruction for c in judge.calls if c.instruction} <= {c.instruction for c in judge.calls}
    assert all("颜色" not in (c.instruction or "") for c in judge.calls)
    assert result.ret == 1 and "FAIL overall>=9.9" in output_of(result)


def test_key_from_dotenv(run, pytester, monkeypatch):
    monkeypatch.delenv("EDITEVAL_JUDGE_API_KEY")
    pytester.path.joinpath(".env").write_text(f'EDITEVAL_JUDGE_API_KEY="{API_KEY}"\n')
    result = run("-k", "text_change")
    assert result.ret == 0
    result.assert_outcomes(passed=4, deselected=40)


def test_url_and_model_from_environment(run, judge, monkeypatch, pytester, gedit, edits, tmp_path):
    monkeypatch.setenv("EDITEVAL_JUDGE_API_KEY", API_KEY)
    monkeypatch.setenv("EDITEVAL_JUDGE_URL", judge.url)
    monkeypatch.setenv("EDITEVAL_JUDGE_MODEL", "qwen2.5-vl-72b-instruct")
    result = pytester.runpytest("--editeval-benchmark=gedit", f"--editeval-dataset={gedit[0]}",
                                f"--editeval-images={edits}", "--editeval-limit=1", "--editeval-subsets=ps_human",
                                f"--editeval-cache-dir={tmp_path / 'c'}")
    assert result.ret == 0
    assert {c.body["model"] for c in judge.calls} == {"qwen2.5-vl-72b-instruct"}


def test_arrow_dataset(run, tmp_path, judge):
    from pytest_editeval.testing.gedit_factory import make_gedit_dataset

    rows = make_gedit_dataset(tmp_path / "arrow-ds", rows_per_subset=1, fmt="arrow", languages=("en",))
    edits = write_edited_images(tmp_path / "arrow-edits", rows)
    result = run(f"--editeval-dataset={tmp_path / 'arrow-ds'}", images=edits)
    result.assert_outcomes(passed=11)
    assert len(judge.calls) == 22


@pytest.mark.slow  # pytest runs of its own, in subprocesses
def test_dataset_from_modelscope_cache_offline_imports_no_torch(run, tmp_path, monkeypatch, gedit, pytester):
    import shutil

    cache = tmp_path / "modelscope"
    shutil.copytree(gedit[0], cache / "datasets" / "stepfun-ai" / "GEdit-Bench")
    monkeypatch.setenv("MODELSCOPE_CACHE", str(cache))
    pytester.makeconftest("""
        import sys
        def pytest_sessionfinish(session):
            print("TORCH-IMPORTED:", "torch" in sys.modules)
    """)
    result = run("--editeval-dataset=stepfun-ai/GEdit-Bench", "--editeval-offline", "-k", "tone_transfer",
                 subprocess=True)
    result.assert_outcomes(passed=4, deselected=40)
    result.stdout.fnmatch_lines(["*TORCH-IMPORTED: False"])


@pytest.mark.slow  # pytest runs of its own, in subprocesses
def test_dataset_from_hugging_face_then_from_its_cache(run, tmp_path, monkeypatch, gedit, hub):
    """The real snapshot_download against a loopback Hub: only data files are fetched, and once cached the
    dataset is found again offline, and also when the Hub is down."""
    import shutil

    published = tmp_path / "published"
    shutil.copytree(gedit[0], published)
    (published / "images").mkdir()
    (published / "images" / "preview.bin").write_bytes(b"not a data file" * 100)
    hub.add_repo("dataset", "stepfun-ai/GEdit-Bench", published)
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    args = ["--editeval-dataset=stepfun-ai/GEdit-Bench", "--editeval-hub=huggingface", "-k", "tone_transfer"]
    run(*args, subprocess=True).assert_outcomes(passed=4, deselected=40)
    data_files = sorted(p.relative_to(gedit[0]).as_posix() for p in gedit[0].rglob("*.parquet"))
    assert sorted(hub.downloads) == data_files  # the preview is not fetched
    run(*args, "--editeval-offline", subprocess=True).assert_outcomes(passed=4, deselected=40)
    hub.__exit__(None, None, None)
    run(*args, subprocess=True).assert_outcomes(passed=4, deselected=40)
    assert sorted(hub.downloads) == data_files


@pytest.mark.parametrize("case, message", [
    ("unknown", "dataset nobody/Bench was not found on Hugging Face: check the id (or log in, if it is private), "
                "or pass --editeval-dataset a local folder"),
    ("gated", "dataset nobody/Bench: access refused by Hugging Face (GatedRepoError): log in (HF_TOKEN or "
              "`modelscope login`) with an account that may read it, or pass --editeval-dataset a local folder"),
    ("down", "cannot download dataset nobody/Bench from Hugging Face (*): check the network, use "
             "--editeval-offline with a warmed cache, or pass --editeval-dataset a local folder"),
])
@pytest.mark.slow  # pytest runs of its own, in subprocesses
def test_hub_failures_are_one_line_each(run, tmp_path, monkeypatch, hub, case, message):
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HUB_DOWNLOAD_TIMEOUT", "2")
    if case == "gated":
        hub.gated.add("nobody/Bench")
    if case == "down":
        hub.__exit__(None, None, None)
    result = run("--editeval-dataset=nobody/Bench", "--editeval-hub=huggingface", subprocess=True)
    assert result.ret == 4, output_of(result)
    result.stderr.fnmatch_lines([f"*{message}"])
    assert "Traceback" not in output_of(result)


@pytest.mark.slow  # pytest runs of its own, in subprocesses
def test_plugin_is_inert_when_disabled_or_not_asked(pytester):
    pytester.makepyfile("def test_plain(): pass")
    plain = pytester.runpytest_subprocess()
    plain.assert_outcomes(passed=1)
    assert "editeval:" not in output_of(plain) and "editeval_gedit" not in output_of(plain)
    disabled = pytester.runpytest_subprocess("-p", "no:editeval", "--editeval-benchmark=gedit")
    assert disabled.ret == 4 and "unrecognized arguments: --editeval-benchmark" in output_of(disabled)


@pytest.mark.slow  # pytest runs of its own, in subprocesses
def test_collect_only_imports_nothing_heavy_and_calls_no_judge(run, judge, pytester):
    pytester.makeconftest("""
        import sys
        def pytest_collection_finish(session):
            heavy = sorted(m for m in ("torch", "diffusers", "httpx", "pydantic", "modelscope") if m in sys.modules)
            print("HEAVY-MODULES:", heavy)
    """)
    result = run("--collect-only", "-q", subprocess=True)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["HEAVY-MODULES: []", "44 tests collected*"])
    assert judge.count == 0
