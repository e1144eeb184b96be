"""What the judge cost (openai backend): every reply's usage kept with its answer and in the cache, summed per run
in the summary and the results, priced with --editeval-judge-price, what the cache saved on a re-run, summed over
xdist workers and over merged shards. The expected numbers are the sums of what the judge server itself reported."""

import json
import subprocess
import sys

import pytest

from pytest_editeval.testing.judge_server import usage_of

from .conftest import output_of
from .expected import reported_usage as reported

PRICE = (2.0, 8.0)


def usd(tokens):
    return (tokens["prompt_tokens"] * PRICE[0] + tokens["completion_tokens"] * PRICE[1]) / 1e6


def test_usage_and_cost_per_run_and_what_the_cache_saved(run, judge, en_rows, tmp_path):
    out = tmp_path / "r.json"
    result = run(f"--editeval-judge-price={PRICE[0]},{PRICE[1]}", f"--editeval-json={out}")
    assert result.ret == 0, output_of(result)
    tokens = reported(judge)
    requests = 2 * len(en_rows)
    result.stdout.fnmatch_lines([
        f"judge tokens: {tokens['prompt_tokens']:,} prompt + {tokens['completion_tokens']:,} completion in "
        f"{requests} requests, ${usd(tokens):,.4f} at $2/$8 per million prompt/completion tokens"])
    data = json.loads(out.read_text())
    assert data["judge"]["usage"] == {**tokens, "requests": requests}
    assert data["judge"]["cost"]["usd"] == pytest.approx(usd(tokens), abs=1e-6)
    assert data["judge"]["cost"]["usd_per_million_prompt_tokens"] == PRICE[0]
    # Every answer keeps its own usage, and they add up to the run's.
    answers = [a["usage"] for s in data["samples"] for a in s["answers"].values()]
    assert len(answers) == requests
    assert sum(a["prompt_tokens"] for a in answers) == tokens["prompt_tokens"]
    # A re-run is answered from the cache, which says what those answers would have cost.
    again = tmp_path / "again.json"
    result = run(f"--editeval-judge-price={PRICE[0]},{PRICE[1]}", f"--editeval-json={again}")
    assert result.ret == 0 and judge.count == requests
    result.stdout.fnmatch_lines([
        f"judge tokens: 0 prompt + 0 completion in 0 requests, $0.0000 at $2/$8 per million prompt/completion tokens; "
        f"the cache saved {requests} answers: {tokens['prompt_tokens']:,} prompt + {tokens['completion_tokens']:,} "
        f"completion tokens, ${usd(tokens):,.4f}"])
    saved = json.loads(again.read_text())["judge"]
    assert saved["cache_saved"] == {**tokens, "answers": requests}
    assert saved["cost"]["cache_saved_usd"] == pytest.approx(usd(tokens), abs=1e-6) and saved["cost"]["usd"] == 0


def test_a_provider_that_reports_no_usage_is_said_not_priced_at_zero(run, judge, en_rows, tmp_path):
    """Replies without `usage` count as requests, but their tokens are unknown: the summary says the count and the
    cost leave them out, instead of letting $0 pass for a price."""
    judge.usage = False
    out = tmp_path / "r.json"
    result = run(f"--editeval-judge-price={PRICE[0]},{PRICE[1]}", f"--editeval-json={out}")
    assert result.ret == 0, output_of(result)
    result.stdout.fnmatch_lines(["*the provider sent replies without token usage; their tokens are not in the token "
                                 "count or the cost*"])
    data = json.loads(out.read_text())
    assert data["judge"]["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "requests": 2 * len(en_rows)}


def test_re_asked_replies_are_paid_for(run, judge, tmp_path):
    """An unreadable reply is asked again: both replies count in the run's usage, and in the answer's."""
    from pytest_editeval.testing import Fault

    out = tmp_path / "r.json"
    judge.faults.append(Fault("reply", text="I'd rather not say."))
    result = run("--editeval-subsets=color_alter", "--editeval-limit=1", f"--editeval-json={out}",
                 "--editeval-judge-workers=1")
    assert result.ret == 0, output_of(result)
    assert judge.count == 3
    data = json.loads(out.read_text())
    assert data["judge"]["usage"]["requests"] == 3
    reported_total = reported(judge)  # the server's rule gives the refused reply's count too
    first = judge.calls[0]
    refused = usage_of(first, "I'd rather not say.")
    answered = usage_of(first, judge.reply(judge.scores(first), first))
    reported_total["completion_tokens"] += refused["completion_tokens"] - answered["completion_tokens"]
    assert data["judge"]["usage"]["completion_tokens"] == reported_total["completion_tokens"]
    per_answer = sum(a["usage"]["prompt_tokens"] for a in data["samples"][0]["answers"].values())
    assert per_answer == data["judge"]["usage"]["prompt_tokens"]  # the re-ask is part of its answer's cost


@pytest.mark.slow  # several seconds: a pytest run with xdist workers, in a subprocess
def test_xdist_workers_usage_reaches_the_controller(run, judge, en_rows, tmp_path):
    """Each worker judges ahead rows that the other's items may need. With a judge slow enough that some are still
    in flight when the first worker is done, they finish (and pass to the other worker through the cache) instead
    of being cut off: every question is asked once, and every answer the judge sent is counted."""
    judge.latency = 0.3
    out = tmp_path / "r.json"
    result = run("-n", "2", f"--editeval-judge-price={PRICE[0]},{PRICE[1]}", f"--editeval-json={out}")
    assert result.ret == 0, output_of(result)
    assert judge.count == 2 * len(en_rows)
    tokens = reported(judge)
    data = json.loads(out.read_text())
    assert data["judge"]["usage"] == {**tokens, "requests": 2 * len(en_rows)}
    result.stdout.fnmatch_lines([f"judge tokens: {tokens['prompt_tokens']:,} prompt + *"])
    # A warm re-run: each worker reads ahead rows the other one reports; every answer is counted (and its cost
    # saved) once, by the worker whose item used it.
    again = tmp_path / "again.json"
    warm = run("-n", "2", f"--editeval-judge-price={PRICE[0]},{PRICE[1]}", f"--editeval-json={again}")
    assert warm.ret == 0, output_of(warm)
    warm.stdout.fnmatch_lines([f"judge requests: 0; cache: {2 * len(en_rows)} hits, 0 computed"])
    assert json.loads(again.read_text())["judge"]["cache_saved"] == {**tokens, "answers": 2 * len(en_rows)}


@pytest.mark.slow  # pytest runs of its own, in subprocesses
def test_a_merge_of_shards_sums_their_usage(run, judge, tmp_path):
    shards = []
    for k in (1, 2):
        path = tmp_path / f"shard{k}.json"
        assert run(f"--editeval-shard={k}/2", f"--editeval-json={path}",
                   f"--editeval-judge-price={PRICE[0]},{PRICE[1]}").ret == 0
        shards.append(json.loads(path.read_text())["judge"])
    merged = tmp_path / "merged.json"
    result = subprocess.run([sys.executable, "-m", "pytest_editeval.cli", "merge", *(tmp_path / f"shard{k}.json"
                             for k in (1, 2)), f"--json={merged}"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    judge_section = json.loads(merged.read_text())["judge"]
    tokens = reported(judge)
    assert judge_section["usage"] == {**tokens, "requests": judge.count}
    assert judge_section["usage"] == {k: shards[0]["usage"][k] + shards[1]["usage"][k] for k in shards[0]["usage"]}
    assert judge_section["cost"]["usd"] == pytest.approx(usd(tokens), abs=1e-5)
    assert f"judge tokens: {tokens['prompt_tokens']:,} prompt" in result.stdout


def test_a_malformed_price_is_a_usage_error(run):
    result = run("--editeval-judge-price=2")
    assert result.ret == 4
    assert "malformed price '2': expected IN,OUT in USD per million prompt and completion tokens" in output_of(result)
