"""A gate you can trust: no silent pass, no borrowed scores, no crash at exit, nothing written outside its
folders, secrets only over safe channels, bad images and huge replies as counted row errors, failures that keep
earlier results, each row counted once. Run as users run pytest (pytester, in-process or in a subprocess)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from pytest_editeval.testing import JudgeServer
from pytest_editeval.testing.gedit_factory import bomb_png, make_gedit_dataset, write_edited_images
from pytest_editeval.testing.judge_server import Fault

from .conftest import API_KEY, interruptible, output_of

ROWS = 44


def _jsonl(folder, entries):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "edits.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))
    return path


# ---- 1. missing rows ------------------------------------------------------------------------------------
@pytest.mark.slow  # several seconds: two runs of the plugin
def test_missing_images_fail_the_gate_and_are_named(run, en_rows, edits, tmp_path, judge):
    entries = [json.loads(line) for line in edits.read_text().splitlines()][:2]
    for entry in entries:
        entry["image_path"] = str(edits.parent / entry["image_path"])
    partial_edits = _jsonl(tmp_path / "two", entries)
    out = tmp_path / "two.json"
    result = run("--editeval-threshold=overall>=1", "--editeval-threshold=error_rate<=0",
                 "--editeval-threshold=missing_rate<=0.5", f"--editeval-json={out}", images=partial_edits)
    assert result.ret == 1, output_of(result)
    result.stdout.fnmatch_lines([
        f"MISSING: 42 of {ROWS} selected rows have no edited image in * (en-background_change-*, *, * and 39 more): "
        "they fail the gate*--editeval-allow-missing*",
        "FAIL missing_rate<=0.5: actual 0.9545 (n=44)",
        "FAIL 42 of 44 selected rows have no edited image",
        "editeval gate FAILED: 1 of 3 thresholds missed; 42 of 44 selected rows have no edited image"])
    data = json.loads(out.read_text())
    assert not data["complete"] and data["gate"]["evaluated"] and data["gate"]["passed"] is False
    assert data["aggregates"]["full"]["missing_rate"] == pytest.approx(42 / 44) and len(data["missing"]) == 42
    allowed = run("--editeval-threshold=overall>=1", "--editeval-allow-missing", images=partial_edits)
    assert allowed.ret == 0
    allowed.stdout.fnmatch_lines(["missing: 42 of 44 selected rows*(--editeval-allow-missing)",
                                  "editeval gate PASSED"])


@pytest.mark.parametrize("case", ["empty", "other-language"])
def test_images_that_match_no_row_are_a_usage_error(run, gedit, tmp_path, case):
    if case == "empty":
        path = _jsonl(tmp_path / "empty", [])
    else:
        cn_rows = [r for r in gedit[1] if r.language == "cn"][:3]
        path = write_edited_images(tmp_path / "cn", cn_rows)
    result = run(images=path)
    assert result.ret == 4, output_of(result)
    assert "row of the benchmark; check the file, the --editeval-language and the --editeval-dataset" in \
        output_of(result)


# ---- 2. the judge's endpoint is part of its identity ----------------------------------------------------
def test_another_endpoint_never_answers_from_the_first_ones_cache(run, judge, tmp_path):
    cache = tmp_path / "shared-cache"
    assert run("--editeval-judge-model=qwen-vl-max", cache_dir=cache).ret == 0
    assert judge.count == 2 * ROWS
    with JudgeServer(api_key=API_KEY) as other:
        result = run("--editeval-judge-model=qwen-vl-max", f"--editeval-judge-url={other.url}", cache_dir=cache)
        assert result.ret == 0
        assert other.count == 2 * ROWS  # a different judge: every question asked again
        result.stdout.fnmatch_lines(["judge requests: 88; cache: 0 hits, 88 computed"])
    judge.calls.clear()
    same = run("--editeval-judge-model=qwen-vl-max", f"--editeval-judge-url={judge.url}/chat/completions/",
               cache_dir=cache)  # the first endpoint, written another way
    assert judge.count == 0
    same.stdout.fnmatch_lines(["judge requests: 0; cache: 88 hits, 0 computed"])


# ---- 3. every thread joined: no crash at exit, Ctrl-C within a second ------------------------------------
THREAD_REPORT = """
    import atexit, threading
    def _left():
        names = sorted(t.name for t in threading.enumerate() if t.name.startswith("editeval"))
        print("EDITEVAL-THREADS-AT-EXIT:", names, flush=True)
    atexit.register(_left)
"""


@pytest.mark.slow  # pytest runs of its own, in subprocesses
def test_no_plugin_thread_outlives_the_session(run, pytester, judge):
    """-x stops the session while other rows' requests are in flight: those threads are interrupted and
    joined before pytest_unconfigure returns, not left running into interpreter shutdown."""
    pytester.makeconftest(THREAD_REPORT + """
    import pytest
    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(config):
        names = sorted(t.name for t in threading.enumerate() if t.name.startswith("editeval"))
        print("EDITEVAL-THREADS-AFTER-UNCONFIGURE:", names, flush=True)
""")
    judge.latency = 1.0
    judge.reply = lambda scores, call: "unreadable" if "#background_change-0" in (call.instruction or "") else \
        json.dumps({"score": scores})
    result = run("-x", "--editeval-judge-parse-retries=0", subprocess=True)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["EDITEVAL-THREADS-AFTER-UNCONFIGURE: []", "EDITEVAL-THREADS-AT-EXIT: []"])


@pytest.mark.slow  # pytest runs of its own, in subprocesses
def test_ctrl_c_with_requests_in_flight_stops_at_once_and_joins(tmp_path, gedit, edits, judge):
    judge.latency = 30.0  # every request hangs: only an interrupt can free the threads
    (tmp_path / "conftest.py").write_text(THREAD_REPORT.replace("\n    ", "\n"))
    env = {**os.environ, "EDITEVAL_JUDGE_API_KEY": API_KEY, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--editeval-benchmark=gedit",
         f"--editeval-dataset={gedit[0]}", f"--editeval-images={edits}", f"--editeval-judge-url={judge.url}",
         f"--editeval-cache-dir={tmp_path / 'cache'}"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        preexec_fn=interruptible)
    deadline = time.monotonic() + 30
    while judge.count < 8:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.02)
    start = time.monotonic()
    os.kill(proc.pid, signal.SIGINT)
    log = proc.communicate(timeout=60)[0]
    assert time.monotonic() - start < 5, log
    assert proc.returncode == 2 and "KeyboardInterrupt" in log
    assert "EDITEVAL-THREADS-AT-EXIT: []" in log, log


# ---- 5. nothing escapes its folder -----------------------------------------------------------------------
HOSTILE = {0: {"key": "../../../../tmp/editeval-escape"}, 1: {"key": "/tmp/editeval-abs"},
           2: {"key": "nul\x00key"}, 3: {"key": "k" * 201}, 4: {"task_type": "a/../../b"},
           5: {"key": ".hidden"}}


def test_unsafe_keys_and_task_types_are_error_rows_and_write_nothing_outside(run, pytester, tmp_path, judge):
    escapes = ["/tmp/editeval-escape.png", "/tmp/editeval-abs.png"]  # where the hostile keys point
    for path in escapes:
        if os.path.exists(path):
            os.remove(path)  # left by an older version of the plugin
    rows = make_gedit_dataset(tmp_path / "hostile", rows_per_subset=1, languages=("en",), overrides=HOSTILE)
    pytester.makeconftest("""
        import pytest
        from PIL import Image

        @pytest.fixture(scope="session")
        def editeval_pipeline():
            return lambda image, instruction, seed: Image.new("RGB", image.size, (seed % 256, 90, 160))
    """)
    out, results = tmp_path / "out", tmp_path / "hostile.json"
    result = run(f"--editeval-dataset={tmp_path / 'hostile'}", f"--editeval-output-dir={out}",
                 f"--editeval-json={results}", images=None)
    assert result.ret == 1  # the error rows fail their items; the other rows ran
    result.assert_outcomes(passed=len(rows) - len(HOSTILE), failed=len(HOSTILE))
    text = output_of(result)
    assert "contains a path separator: it cannot name a file, so this row is not evaluated" in text
    assert "contains a NUL or control character" in text and "is over 200 bytes" in text
    assert "starts with a dot" in text and "dataset task type 'a/../../b' contains a path separator" in text
    assert "Traceback" not in text and "generation stopped" not in text
    assert not any(os.path.exists(path) for path in escapes)
    written = [p for p in out.rglob("*") if p.is_file()]
    assert written and all(p.resolve().is_relative_to(out.resolve()) for p in written)
    data = json.loads(results.read_text())
    assert sum(s["status"] == "error" for s in data["samples"]) == len(HOSTILE)
    assert judge.count == 2 * (len(rows) - len(HOSTILE))


def test_jsonl_paths_may_not_lead_out_of_its_folder(run, tmp_path, en_rows, edits):
    outside = next((edits.parent / "images").iterdir())
    folder = tmp_path / "jsonl-folder"
    folder.mkdir()
    (folder / "link.png").symlink_to(outside)
    via_link = _jsonl(folder, [{"id": en_rows[0].key, "image_path": "link.png"}])
    result = run(images=via_link)
    assert result.ret == 4 and "leads outside" in output_of(result), output_of(result)
    climbing = _jsonl(tmp_path / "climb", [{"id": en_rows[0].key, "image_path": f"../../{outside.name}"}])
    assert run(images=climbing).ret == 4
    absolute = _jsonl(tmp_path / "absolute", [{"id": en_rows[0].key, "image_path": str(folder / "link.png")}])
    result = run("--editeval-allow-missing", images=absolute)  # the user's own absolute path is trusted
    assert result.ret == 0, output_of(result)


# ---- 6. secrets only over safe channels; URLs as users write them ----------------------------------------
@pytest.mark.slow  # pytest runs of its own, in subprocesses
def test_plain_http_to_another_host_is_refused_before_any_connection(run):
    result = run("--editeval-judge-url=http://judge.example.com/v1")
    assert result.ret == 4
    assert ("judge URL http://judge.example.com/v1 is plain http to a host that is not this machine: the API key "
            "would travel in clear") in output_of(result)
    # allowed on request: the run then goes on to the judge (unreachable here, exit 2), not a usage error
    allowed = run("--editeval-judge-url=http://0.0.0.0:9/v1", "--editeval-judge-allow-http", subprocess=True)
    assert allowed.ret == 2 and "judge unreachable at http://0.0.0.0:9/v1/chat/completions" in output_of(allowed)


def test_azure_style_url_keeps_its_query_and_never_shows_it(run, judge, tmp_path, pytester):
    url = f"{judge.url}/deployments/gpt-4.1?api-version=2024-10-21&sig=QUERYSECRET123"
    out = tmp_path / "azure.json"
    result = run(f"--editeval-judge-url={url}", f"--editeval-json={out}", "-k", "color_alter")
    assert result.ret == 0, output_of(result)
    assert {c.path for c in judge.calls} == {
        "/v1/deployments/gpt-4.1/chat/completions?api-version=2024-10-21&sig=QUERYSECRET123"}
    assert "QUERYSECRET123" not in output_of(result)
    for path in [*tmp_path.rglob("*"), *pytester.path.rglob("*")]:
        if path.is_file():
            assert b"QUERYSECRET123" not in path.read_bytes(), path


def test_a_redirect_stops_the_run_and_the_key_never_follows(run, judge):
    with JudgeServer(api_key=API_KEY) as elsewhere:
        judge.faults.extend([Fault("status", 301, headers={"Location": f"{elsewhere.url}/chat/completions?t=x"})]
                            * 100)
        result = run("--editeval-judge-workers=2")
        assert result.ret == 4, output_of(result)
        text = output_of(result)
        assert f"judge answered HTTP 301, a redirect to {elsewhere.url}/chat/completions?t=***" in text
        assert "the key is never sent to a redirect target" in text
        assert elsewhere.count == 0 and judge.count <= 2  # stopped at once, not retried row by row


# ---- 7. bad images and huge replies are counted row errors -----------------------------------------------
@pytest.mark.slow  # several seconds: two runs of the plugin on hostile images
def test_decompression_bomb_and_broken_images_are_error_rows(run, en_rows, edits, tmp_path, judge):
    folder = tmp_path / "bad-images"
    entries = [json.loads(line) for line in edits.read_text().splitlines()]
    for entry in entries:
        entry["image_path"] = str(edits.parent / entry["image_path"])
    (folder / "images").mkdir(parents=True)
    (folder / "images" / "bomb.png").write_bytes(bomb_png())
    whole = (edits.parent / entries[1]["image_path"]).read_bytes()
    truncated = whole[: len(whole) // 2]
    (folder / "images" / "truncated.png").write_bytes(truncated)
    entries[0]["image_path"], entries[1]["image_path"] = "images/bomb.png", "images/truncated.png"
    out = tmp_path / "bad.json"
    result = run(f"--editeval-json={out}", "--editeval-threshold=error_rate<=0", images=_jsonl(folder, entries))
    assert result.ret == 1
    result.assert_outcomes(passed=ROWS - 2, failed=2)
    text = output_of(result)
    assert "edited image is larger than 16,777,216 pixels" in text and "raise --editeval-max-pixels" in text
    assert "edited image cannot be decoded" in text and "Traceback" not in text
    result.stdout.fnmatch_lines([f"rows: {ROWS - 2} scored, 2 errors, 0 missing*", "FAIL error_rate<=0:*"])
    data = json.loads(out.read_text())
    assert sum(s["status"] == "error" for s in data["samples"]) == 2
    capped = run("--editeval-max-pixels=100", "-k", "color_alter", cache_dir=tmp_path / "c2")
    capped.assert_outcomes(failed=4, deselected=40)
    assert "pixels, over the limit of 100" in output_of(capped)


def test_huge_replies_are_capped_everywhere(run, judge, tmp_path):
    huge = json.dumps({"score": [5, 5], "reasoning": "y" * 300_000})
    judge.reply = lambda scores, call: huge
    judge.faults.append(Fault("body", text="x" * (5 << 20)))
    cache, out = tmp_path / "cache", tmp_path / "huge.json"
    result = run("-k", "color_alter", f"--editeval-json={out}", "--editeval-judge-retries=0", cache_dir=cache)
    text = output_of(result)
    assert "judge answer larger than 4 MiB: not read" in text
    entries = list((cache / "answers").rglob("*.json"))
    assert entries and all(p.stat().st_size < 80_000 for p in entries)
    replies = [json.loads(p.read_text())["payload"]["reply"] for p in entries]
    assert all("[reply cut: first 64 KiB of 300,0" in r for r in replies)
    assert out.stat().st_size < 500_000


# ---- 8. failures do not destroy earlier results ----------------------------------------------------------
def test_a_failed_run_never_replaces_a_good_baseline_or_results(run, judge, tmp_path, pytester, monkeypatch):
    out = tmp_path / "results.json"
    assert run("--editeval-save=base", f"--editeval-json={out}").ret == 0
    saved = pytester.path / ".editeval" / "runs" / "base.json"
    good_run, good_results = saved.read_bytes(), out.read_bytes()
    monkeypatch.setenv("EDITEVAL_JUDGE_API_KEY", "sk-wrong")
    failed = run("--editeval-save=base", f"--editeval-json={out}", "--editeval-threshold=overall>=0",
                 "--editeval-refresh")
    assert failed.ret == 4
    text = output_of(failed)
    section = [line for line in text.split("editeval: gedit (en)", 1)[1].splitlines()[1:] if line.strip()]
    assert section[0].startswith("editeval STOPPED (exit 4): judge rejected the API key: HTTP 401"), section[:3]
    assert "PARTIAL RUN" not in text and "benchmark rows ran before the stop" in text
    assert saved.read_bytes() == good_run and out.read_bytes() == good_results
    incomplete = json.loads((pytester.path / ".editeval" / "runs" / "base.incomplete.json").read_text())
    assert not incomplete["complete"] and "judge rejected the API key" in incomplete["stopped"]
    assert incomplete["gate"] == {**incomplete["gate"], "evaluated": False, "passed": None}
    assert json.loads((tmp_path / "results.incomplete.json").read_text())["stopped"]
    assert "run NOT saved as base, because it is incomplete; saved as base.incomplete" in text
    assert f"{out} kept as it was (it holds {ROWS} scored rows" in text


def test_partial_run_json_has_no_gate_verdict(run, tmp_path):
    out = tmp_path / "partial.json"
    run("-k", "color_alter", "--editeval-threshold=overall>=0", f"--editeval-json={out}")
    gate = json.loads(out.read_text())["gate"]
    assert gate["evaluated"] is False and gate["passed"] is None


def test_first_ci_run_without_a_baseline_can_skip_the_comparison(run):
    result = run("--editeval-compare=last-good", "--editeval-compare-fail=overall:-0.2",
                 "--editeval-compare-missing=skip", "--editeval-threshold=overall>=0")
    assert result.ret == 0, output_of(result)
    result.stdout.fnmatch_lines(["no saved run 'last-good'*; comparison skipped (--editeval-compare-missing=skip)"])
    assert run("--editeval-compare=last-good").ret == 4  # without the switch a missing baseline is an error


@pytest.mark.slow  # pytest runs of its own, in subprocesses
def test_unreachable_judge_is_exit_2_with_the_reason_first(run):
    result = run("--editeval-judge-url=http://127.0.0.1:9/v1", subprocess=True)
    assert result.ret == 2
    result.stdout.fnmatch_lines(["*editeval STOPPED (exit 2): judge unreachable at http://127.0.0.1:9/v1/chat/*"])


# ---- 9. small things a new user hit ----------------------------------------------------------------------
@pytest.mark.slow  # pytest runs of its own, in subprocesses
def test_help_names_values_plainly_and_the_docs_reference_lists_every_option(pytester):
    import importlib.util
    import re
    from pathlib import Path

    text = output_of(pytester.runpytest_subprocess("--help"))
    options = sorted(set(re.findall(r"--editeval-[a-z0-9-]+", text)))
    assert len(options) > 40 and not re.search(r"--editeval-[a-z0-9-]+[ =]EDITEVAL_", text)
    assert "without a visible CUDA device that is a usage error" in " ".join(text.split())
    # The option reference of the docs site, generated from the code as `mkdocs build` generates it.
    spec = importlib.util.spec_from_file_location("gen_reference", Path(__file__).resolve().parents[1] / "docs/gen_reference.py")
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    reference = generator.pages()["reference/options.md"]
    assert [o for o in options if f"| `{o}` |" not in reference] == []


@pytest.mark.slow  # pytest runs of its own, in subprocesses
def test_unusable_device_is_a_usage_error_before_anything_is_written(run, tmp_path, pytester):
    model = tmp_path / "model"
    model.mkdir()
    (model / "model_index.json").write_text("{}")
    out, cache = tmp_path / "out", tmp_path / "cache"
    typo = run(f"--editeval-model={model}", "--editeval-device=gpu0", images=None)
    assert typo.ret == 4 and "'gpu0' is not a device" in output_of(typo)
    absent = run(f"--editeval-model={model}", "--editeval-device=cuda:0", f"--editeval-output-dir={out}",
                 images=None, cache_dir=cache, subprocess=True)
    assert absent.ret == 4, output_of(absent)
    assert "device cuda:0: no CUDA device is visible; pass --editeval-device cpu" in output_of(absent)
    assert "collected" not in output_of(absent) and not out.exists() and not cache.exists()


def test_summary_says_where_every_file_went(run, tmp_path, pytester):
    html, out = tmp_path / "r.html", tmp_path / "r.json"
    result = run(f"--editeval-html={html}", f"--editeval-json={out}", "--editeval-save=mine")
    result.stdout.fnmatch_lines([f"results written to {out}", "run saved as mine (*mine.json)",
                                 f"HTML report written to {html}"])


@pytest.mark.slow  # several seconds: a pytest run with xdist workers, in a subprocess
def test_xdist_run_counts_the_judge_requests_of_its_workers(run):
    result = run("-n", "2", "--editeval-threshold=overall>=0")
    assert result.ret == 0
    # (a retried request, e.g. a keep-alive connection the server closed, adds to the requests, not the answers)
    result.stdout.fnmatch_lines(["judge requests: *; cache: 0 hits, 88 computed*"])


def test_options_without_a_benchmark_are_said_not_ignored(pytester, edits):
    pytester.makepyfile("def test_plain(): pass")
    pytester.makeini("[pytest]\nediteval_max_pixels = 100\n")
    result = pytester.runpytest("--editeval-judge-timeout=5")  # options that gate nothing: one warning line
    assert result.ret == 0
    result.stdout.fnmatch_lines(["editeval: --editeval-judge-timeout, editeval_max_pixels given, but nothing is "
                                 "evaluated: add --editeval-benchmark*"])


def test_html_report_spells_out_metrics_thresholds_and_the_recipe(run, tmp_path):
    html = tmp_path / "r.html"
    run(f"--editeval-html={html}", "--editeval-threshold=overall>=9")
    text = html.read_text()
    assert "Semantic Consistency (SC)" in text and "Perceptual Quality (PQ)" in text and "Overall (O)" in text
    assert "FAIL overall&gt;=9: actual" in text and "(n=44)" in text
    assert "How the scores are computed" in text and "O = sqrt(SC x PQ)" in text


def test_a_custom_editors_identity_names_the_model(run, pytester, tmp_path):
    pytester.makeconftest("""
        import pytest
        from PIL import Image

        class Editor:
            editeval_identity = {"model": "acme-edit-v3", "version": 2}

            def __call__(self, image, instruction, seed):
                return Image.new("RGB", image.size, (seed % 256, 90, 160))

        @pytest.fixture(scope="session")
        def editeval_pipeline():
            return Editor()
    """)
    result = run("-k", "color_alter", f"--editeval-output-dir={tmp_path / 'out'}", images=None)
    assert "| acme-edit-v3 | gedit-en |" in output_of(result)


def test_compare_cli_reads_like_diff_and_says_bad_files_in_one_line(run, pytester, judge, capsys):
    from pytest_editeval.cli import main

    run("--editeval-save=old", "--editeval-subsets=color_alter")
    judge.scores = lambda call: [1.0, 1.0]
    run("--editeval-save=new", "--editeval-subsets=color_alter", "--editeval-refresh")
    runs = pytester.path / ".editeval" / "runs"
    capsys.readouterr()
    assert main(["compare", str(runs / "old.json"), str(runs / "new.json"), "--compare-fail=overall:-0.5"]) == 1
    printed = capsys.readouterr()
    assert "vs " in printed.out and "(95% CI " in printed.out and "n=4 paired rows" in printed.out
    assert "FAIL compare overall:-0.5:" in printed.out
    assert main(["compare", str(runs / "new.json"), "--baseline", str(runs / "old.json")]) == 0  # explicit form
    capsys.readouterr()
    main(["compare", str(runs / "new.json"), str(runs / "old.json")])  # reversed: newer first
    assert "the order is BASELINE NEW (like diff)" in capsys.readouterr().err
    (pytester.path / "other.json").write_text('{"hello": 1}')
    assert main(["compare", str(pytester.path / "other.json"), str(runs / "new.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a saved run of pytest-editeval" in err[0]


@pytest.mark.slow  # pytest runs of its own, in subprocesses
def test_demo_runs_the_whole_flow_without_a_key(tmp_path, monkeypatch):
    from pytest_editeval.cli import main

    monkeypatch.delenv("EDITEVAL_JUDGE_API_KEY", raising=False)
    assert main(["demo", str(tmp_path / "demo")]) == 0
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=tmp_path / "demo",
                            capture_output=True, text=True, timeout=300)
    assert result.returncode in (0, 1), result.stdout[-2000:]
    assert "editeval gate" in result.stdout and (tmp_path / "demo" / "report.html").is_file()


# ---- 10. each row counted once ---------------------------------------------------------------------------
def test_user_tests_over_rows_do_not_count_rows_twice(run, pytester, tmp_path):
    pytester.makepyfile(test_mine="""
        def test_uses_every_public_fixture(editeval_sample, editeval_verdict, editeval_source_image, editeval_judge):
            assert editeval_verdict.id == editeval_sample.id
            assert editeval_judge(editeval_sample, editeval_source_image).status == "scored"
    """)
    out = tmp_path / "once.json"
    result = run("--editeval-subsets=color_alter", "--editeval-limit=2", f"--editeval-json={out}",
                 "--editeval-threshold=overall>=0")
    result.assert_outcomes(passed=4)  # two benchmark items and two of the user's
    result.stdout.fnmatch_lines(["rows: 2 scored, 0 errors, 0 missing*", "PASS overall>=0: actual * (n=2)"])
    data = json.loads(out.read_text())
    assert len(data["samples"]) == 2 and data["aggregates"]["full"]["macro"]["overall"]["n"] == 2


@pytest.mark.slow  # several seconds: a pytest run with xdist workers, in a subprocess
def test_a_fatal_answer_under_xdist_stops_the_run_with_its_exit_status(run, monkeypatch):
    monkeypatch.setenv("EDITEVAL_JUDGE_API_KEY", "sk-wrong")
    result = run("-n", "2", "--editeval-threshold=overall>=0")
    assert result.ret == 4, output_of(result)
    result.stdout.fnmatch_lines(["editeval STOPPED (exit 4): judge rejected the API key: HTTP 401*",
                                 "0 of 44 benchmark rows ran before the stop"])
    assert "INTERNALERROR" not in output_of(result)


def test_a_marker_slice_with_missing_images_fails_unless_allowed(pytester, judge, gedit, edits, tmp_path, monkeypatch):
    monkeypatch.setenv("EDITEVAL_JUDGE_API_KEY", API_KEY)
    entries = [json.loads(line) for line in edits.read_text().splitlines()][:3]
    for entry in entries:
        entry["image_path"] = str(edits.parent / entry["image_path"])
    few = _jsonl(tmp_path / "few", entries)
    pytester.makepyfile(f"""
        import pytest

        @pytest.mark.editeval(benchmark="gedit", images={str(few)!r})
        def test_strict(editeval_result):
            assert editeval_result.score("overall") >= 0

        @pytest.mark.editeval(benchmark="gedit", images={str(few)!r}, allow_missing=True)
        def test_allowed(editeval_result):
            assert len(editeval_result.missing) == 41 and editeval_result.score("overall").n == 3
    """)
    result = pytester.runpytest(f"--editeval-judge-url={judge.url}", f"--editeval-dataset={gedit[0]}",
                                f"--editeval-cache-dir={tmp_path / 'c'}")
    result.assert_outcomes(passed=1, errors=1)  # the slice's fixture fails, with one line
    result.stdout.fnmatch_lines(["*41 of 44 rows of this slice have no edited image*pass allow_missing=True*"])
