"""The extension hooks (pytest_editeval/hookspecs.py), each implemented in a user's conftest.py the way the docs
show it, in a pytester run against loopback judges: fields added to the results JSON, lines added to the summary,
one call per row's verdict (also under xdist, on the controller), one call per judge created (a panel's: one per
member), and a hook that raises as one line that fails the run without losing what it computed."""

import json

import pytest

from pytest_editeval.testing import JudgeServer

from .conftest import API_KEY, output_of


def test_results_json_hook_adds_its_fields_under_extra(run, pytester, en_rows, tmp_path):
    pytester.makeconftest("""
        def pytest_editeval_results_json(config, results):
            scored = sum(s["status"] == "scored" for s in results["samples"])
            return {"ci_job": "nightly-7", "scored_rows": scored, "benchmark_seen": results["benchmark"]}
    """)
    out = tmp_path / "results.json"
    result = run(f"--editeval-json={out}")
    assert result.ret == 0, output_of(result)
    data = json.loads(out.read_text())
    assert data["extra"] == {"ci_job": "nightly-7", "scored_rows": len(en_rows), "benchmark_seen": "gedit"}
    assert len(data["samples"]) == len(en_rows)


def test_without_an_implementation_the_results_have_no_extra_fields(run, tmp_path):
    out = tmp_path / "results.json"
    assert run(f"--editeval-json={out}").ret == 0
    assert json.loads(out.read_text())["extra"] == {}


def test_a_results_json_hook_that_raises_is_one_line_and_the_results_are_still_written(run, pytester, en_rows,
                                                                                       tmp_path):
    pytester.makeconftest("""
        def pytest_editeval_results_json(config, results):
            raise KeyError("no CI_JOB in the environment")
    """)
    out = tmp_path / "results.json"
    result = run(f"--editeval-json={out}", "--editeval-threshold=overall>=0")
    assert result.ret == 1  # the gate passed, but an extension failed: said and failed, never silently dropped
    data = json.loads(out.read_text())
    assert data["extra"] == {} and len(data["samples"]) == len(en_rows) and data["gate"]["passed"]
    lines = [line for line in result.outlines if "pytest_editeval_results_json" in line]
    assert lines == [f"editeval: hook pytest_editeval_results_json in {pytester.path / 'conftest.py'} raised KeyError: "
                     "'no CI_JOB in the environment'; the results were written without its fields"], output_of(result)


def test_a_results_json_hook_must_return_json_fields(run, pytester, tmp_path):
    pytester.makeconftest("""
        def pytest_editeval_results_json(config, results):
            return {"when": object()}
    """)
    out = tmp_path / "results.json"
    result = run(f"--editeval-json={out}")
    assert result.ret == 1
    assert json.loads(out.read_text())["extra"] == {}
    result.stdout.fnmatch_lines(["editeval: hook pytest_editeval_results_json in *conftest.py returned a value that "
                                 "is not JSON (when: Object of type object is not JSON serializable); the results were "
                                 "written without its fields"])


def test_summary_lines_hook_adds_lines_before_the_gate(run, pytester, tmp_path):
    pytester.makeconftest("""
        def pytest_editeval_summary_lines(config, results):
            overall = results["aggregates"]["full"]["macro"]["overall"]
            return [f"team dashboard: overall {overall['mean']:.4f} over {overall['n']} rows"]
    """)
    out = tmp_path / "results.json"
    result = run(f"--editeval-json={out}", "--editeval-threshold=overall>=0")
    assert result.ret == 0, output_of(result)
    overall = json.loads(out.read_text())["aggregates"]["full"]["macro"]["overall"]
    result.stdout.fnmatch_lines([f"team dashboard: overall {overall['mean']:.4f} over {overall['n']} rows",
                                 "editeval gate PASSED*"])


def test_a_summary_lines_hook_that_raises_fails_the_run_with_one_line(run, pytester):
    pytester.makeconftest("""
        def pytest_editeval_summary_lines(config, results):
            return [results["no-such-field"]]
    """)
    result = run("--editeval-threshold=overall>=0")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["editeval: hook pytest_editeval_summary_lines in *conftest.py raised KeyError: "
                                 "'no-such-field'"])


VERDICT_CONFTEST = """
    def pytest_editeval_verdict(config, verdict):
        where = "worker" if hasattr(config, "workerinput") else "controller"  # (the suite itself may run in a worker)
        with open(config.rootpath / "verdicts.txt", "a") as f:
            f.write(f"{where} {verdict['id']} {verdict['status']} {verdict['scores'].get('overall')}\\n")
        verdict["scores"].clear()  # a copy: changing it changes nothing in the run
"""


@pytest.mark.parametrize("xdist", [[], pytest.param(["-n", "2"], marks=pytest.mark.slow)],  # xdist: seconds
                         ids=["one-process", "xdist"])
def test_verdict_hook_is_called_once_per_row_on_the_recording_process(run, pytester, en_rows, tmp_path, xdist):
    pytester.makeconftest(VERDICT_CONFTEST)
    out = tmp_path / "results.json"
    result = run(f"--editeval-json={out}", *xdist)
    assert result.ret == 0, output_of(result)
    calls = (pytester.path / "verdicts.txt").read_text().splitlines()
    samples = {s["id"]: s for s in json.loads(out.read_text())["samples"]}
    assert len(calls) == len(en_rows) == len(samples)
    for where, row_id, status, overall in (call.split(" ") for call in calls):
        assert where == "controller" and status == "scored"
        assert float(overall) == samples[row_id]["scores"]["overall"]  # the scores stay whole in the results
    assert {c.split(" ")[1] for c in calls} == set(samples)


@pytest.mark.parametrize(("statement", "said"), [
    ('raise ValueError("overall below our floor")', "raised ValueError: overall below our floor"),
    ('pytest.fail("overall below our floor")', "failed: overall below our floor"),
], ids=["raise", "pytest.fail"])
def test_a_verdict_hook_that_raises_fails_that_item_with_one_line(run, pytester, en_rows, tmp_path, statement, said):
    refused = en_rows[3]
    pytester.makeconftest(f"""
        import pytest

        def pytest_editeval_verdict(config, verdict):
            if verdict["key"] == {refused.key!r}:
                {statement}
    """)
    out = tmp_path / "results.json"
    result = run(f"--editeval-json={out}")
    assert result.ret == 1
    result.assert_outcomes(passed=len(en_rows) - 1, failed=1)
    lines = [line for line in result.outlines if line.startswith("editeval: hook pytest_editeval_verdict")]
    assert lines == [f"editeval: hook pytest_editeval_verdict in {pytester.path / 'conftest.py'} {said}"], \
        output_of(result)
    # (the short summary adds " - REASON" where it fits, and always on CI)
    assert [line.split(" - ")[0] for line in result.outlines if line.startswith("FAILED ")] == \
        [f"FAILED editeval_gedit::test_edit[en-{refused.task_type}-{refused.key}]"]
    data = json.loads(out.read_text())
    assert len(data["samples"]) == len(en_rows) and all(s["status"] == "scored" for s in data["samples"])


JUDGE_CONFTEST = """
    import json

    def pytest_editeval_judge_created(config, name, description):
        with open(config.rootpath / "judges.jsonl", "a") as f:
            f.write(json.dumps({"name": name, "description": description}) + "\\n")
"""


def test_judge_created_hook_sees_the_judge_as_results_name_it_never_its_key(run, pytester, judge):
    pytester.makeconftest(JUDGE_CONFTEST)
    result = run()
    assert result.ret == 0, output_of(result)
    text = (pytester.path / "judges.jsonl").read_text()
    calls = [json.loads(line) for line in text.splitlines()]
    assert len(calls) == 1 and calls[0]["name"] == ""
    described = calls[0]["description"]
    assert described["backend"] == "openai" and described["model"] == "gpt-4.1"
    assert described["endpoint"] == judge.url + "/chat/completions"
    assert API_KEY not in text


def test_judge_created_hook_is_called_once_per_panel_member(pytester, monkeypatch, gedit, edits, tmp_path):
    pytester.makeconftest(JUDGE_CONFTEST)
    monkeypatch.setenv("EDITEVAL_JUDGE_API_KEY", API_KEY)
    with JudgeServer(api_key=API_KEY) as a, JudgeServer(api_key=API_KEY) as b:
        panel = tmp_path / "panel.toml"
        members = []
        for name, server in (("judge-a", a), ("judge-b", b)):
            variable = name.upper().replace("-", "_") + "_URL"
            monkeypatch.setenv(variable, server.url)
            members.append(f'[[judges]]\nname = "{name}"\nmodel = "gpt-4.1"\nurl_variable = "{variable}"\n')
        panel.write_text("\n".join(members))
        result = pytester.runpytest("--editeval-benchmark=gedit", f"--editeval-dataset={gedit[0]}",
                                    f"--editeval-images={edits}", f"--editeval-cache-dir={tmp_path / 'cache'}",
                                    "--editeval-judge-backoff=0.01", "-p", "no:cacheprovider",
                                    f"--editeval-judge-panel={panel}")
    assert result.ret == 0, output_of(result)
    text = (pytester.path / "judges.jsonl").read_text()
    calls = [json.loads(line) for line in text.splitlines()]
    assert [c["name"] for c in calls] == ["judge-a", "judge-b"]
    assert [c["description"]["endpoint"] for c in calls] == [a.url + "/chat/completions", b.url + "/chat/completions"]
    assert API_KEY not in text


def test_a_judge_created_hook_that_raises_refuses_the_run_with_one_line(run, pytester, judge):
    pytester.makeconftest("""
        def pytest_editeval_judge_created(config, name, description):
            if description["model"] != "our-approved-judge":
                raise RuntimeError(f"judge {description['model']} is not on the approved list")
    """)
    result = run()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if "pytest_editeval_judge_created" in line]
    assert len(errors) == 1 and errors[0].startswith("ERROR: editeval: hook pytest_editeval_judge_created in ") \
        and errors[0].endswith("raised RuntimeError: judge gpt-4.1 is not on the approved list"), output_of(result)
    assert not judge.calls  # refused before any question was asked


def test_merged_shards_keep_the_extra_fields_every_shard_gave_alike(run, pytester, tmp_path):
    """`pytest-editeval merge` loads no conftest.py: it keeps the fields the shards agree on, and no other."""
    import subprocess
    import sys

    pytester.makeconftest("""
        def pytest_editeval_results_json(config, results):
            return {"pipeline": "p-42", "shard_job": results["shard"]["index"]}
    """)
    shards = [tmp_path / f"s{k}.json" for k in (1, 2)]
    for k, path in enumerate(shards, 1):
        assert run(f"--editeval-shard={k}/2", f"--editeval-json={path}").ret == 0
        assert json.loads(path.read_text())["extra"] == {"pipeline": "p-42", "shard_job": k}
    merged = tmp_path / "merged.json"
    done = subprocess.run([sys.executable, "-m", "pytest_editeval.cli", "merge", *map(str, shards), f"--json={merged}"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(merged.read_text())["extra"] == {"pipeline": "p-42"}
