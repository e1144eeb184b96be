"""Every wait is bounded: a request attempt ends at the judge timeout however slowly the judge sends, the row
deadline bounds the whole row (Retry-After pauses included), and no numeric option takes nan or inf. Against
real loopback servers that are slower than any bound asserted here."""

from __future__ import annotations

import json
import time

import pytest

from pytest_editeval.errors import SampleError
from pytest_editeval.judges.openai_http import JudgeClient
from pytest_editeval.judges.settings import JudgeSettings
from pytest_editeval.options.table import all_options
from pytest_editeval.testing import JudgeServer
from pytest_editeval.testing.judge_server import Fault

from .conftest import output_of

# The dripping judge sends about 4,150 bytes at one a second: one answer would take over an hour.
DRIP_S = 1.0


def test_the_client_cuts_an_answer_that_never_ends_at_its_timeout():
    with JudgeServer(api_key="sk-drip-test-key") as server:
        server.faults.extend([Fault("drip", seconds=DRIP_S / 2)] * 3)  # each read well within the timeout
        client = JudgeClient(JudgeSettings(url=server.url, model="m", api_key="sk-drip-test-key", timeout_s=1.0,
                                           retries=1, backoff_s=0.01, row_deadline_s=60))
        start = time.monotonic()
        with pytest.raises(SampleError, match=r"failed after 2 attempts: no complete answer within 1 s"):
            client.complete([{"type": "text", "text": "judge this"}])
        assert time.monotonic() - start < 30  # two attempts of 1 s; one dripped answer takes over half an hour
        assert server.count == 2
        client.close()


@pytest.mark.slow  # several seconds: waits out judge timeouts, in a subprocess
def test_a_judge_that_sends_a_byte_a_second_is_cut_at_the_judge_timeout(run, judge, tmp_path):
    judge.faults.extend([Fault("drip", seconds=DRIP_S)] * 40)
    out = tmp_path / "drip.json"
    start = time.monotonic()
    result = run("--editeval-subsets=color_alter", "--editeval-judge-timeout=2", "--editeval-row-deadline=20",
                 "--editeval-judge-retries=0", "--editeval-threshold=error_rate<=0", f"--editeval-json={out}",
                 subprocess=True, timeout=300)
    elapsed = time.monotonic() - start
    text = output_of(result)
    assert result.ret == 1, text
    assert elapsed < 120, elapsed  # each request cut at 2 s; one dripped answer alone takes over an hour
    result.stdout.fnmatch_lines(["rows: 0 scored, 4 errors, 0 missing*", "FAIL error_rate<=0:*"])
    assert "judge request failed after 1 attempts: no complete answer within 2 s (ReadTimeout)" in text
    assert json.loads(out.read_text())["complete"] is True


@pytest.mark.slow  # several seconds: waits out the row deadline, in a subprocess
@pytest.mark.parametrize("concurrency", ["adaptive", "fixed"])
def test_a_retry_after_pause_never_outlasts_the_row_deadline(run, judge, tmp_path, concurrency):
    # Every first request of the rows is told to come back in a day (capped at 60 s before the row deadline
    # bounded it); the row deadline is 3 s.
    judge.faults.extend([Fault("status", 429, headers={"Retry-After": "100000"})] * 8)
    start = time.monotonic()
    result = run("--editeval-subsets=color_alter", "--editeval-row-deadline=3", "--editeval-judge-retries=3",
                 f"--editeval-judge-concurrency={concurrency}", "--editeval-judge-workers=8", subprocess=True,
                 timeout=300)
    elapsed = time.monotonic() - start
    text = output_of(result)
    assert elapsed < 55, elapsed  # under the 60 s pause a Retry-After got before (then the rows were scored)
    result.stdout.fnmatch_lines(["rows: 0 scored, 4 errors, 0 missing*"])
    assert judge.count <= 8  # nothing was asked again after the pause: the rows ended at their deadline
    assert "judge gave no usable answer within the row deadline (HTTP 429" in text


NUMERIC = [o for o in all_options() if getattr(o.type, "__name__", "") in ("number", "integer")]


def test_the_numeric_options_are_found():
    assert {"row-deadline", "judge-timeout", "judge-temperature", "judge-backoff", "judge-startup-timeout",
            "ray-gpus-per-actor", "limit", "judge-workers"} <= {o.name for o in NUMERIC}


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN", "1e999"])
@pytest.mark.parametrize("option", NUMERIC, ids=[o.name for o in NUMERIC])
def test_nan_and_inf_are_refused_for_every_numeric_option(pytester, option, value):
    result = pytester.runpytest("--editeval-benchmark=gedit", f"--editeval-{option.name}={value}",
                                "-p", "no:cacheprovider")
    text = output_of(result)
    assert result.ret == 4, text
    assert "Traceback" not in text
    errors = [line for line in text.splitlines() if f"--editeval-{option.name}" in line and "error" in line.lower()]
    assert len(errors) == 1, text
    assert ("is not a finite number" if option.type.__name__ == "number" else "is not an integer") in errors[0]


@pytest.mark.parametrize("value", ['{"guidance_scale": NaN}', '{"num_inference_steps": Infinity}'])
def test_a_generation_config_with_nan_is_refused(pytester, value):
    result = pytester.runpytest("--editeval-benchmark=gedit", f"--editeval-generation-config={value}",
                                "-p", "no:cacheprovider")
    text = output_of(result)
    assert result.ret == 4, text
    assert "is not a finite number" in text and "Traceback" not in text


def test_nan_in_an_ini_file_is_refused_too(pytester):
    pytester.makeini("[pytest]\nediteval_row_deadline = nan\n")
    pytester.makepyfile("def test_plain(): pass")
    result = pytester.runpytest("--editeval-benchmark=gedit", "-p", "no:cacheprovider")
    text = output_of(result)
    assert result.ret == 4, text
    assert "ini option editeval_row_deadline: 'nan' is not a finite number" in text
