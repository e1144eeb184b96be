"""EditScore as a judge recipe for GEdit's metrics: its prompt bytes, scale, request order and sampling, and the
judge named in results and comparisons."""

import hashlib
import io
import json
import math

import pytest

from pytest_editeval.benchmarks import Parsed
from pytest_editeval.benchmarks.gedit import GEDIT
from pytest_editeval.benchmarks.viescore import load_editscore_prompts
from pytest_editeval.judges.replies import UnreadableReply

from .conftest import output_of

# SHA-256 of the texts EditScore's own code builds (VectorSpaceLab/EditScore at 6e0f1b9a, editscore/__init__.py,
# EditScore.__init__ with score_range=25: "\n".join of vie_prompts' pieces, str.replace('10', '25')), computed by
# running that code; the SC text still holds its "<instruction>" placeholder.
EDITSCORE_SC_SHA256 = "2fbb018b0e448b2d6066266556ad88019129b7842073fdae7e48c1ffd54abbf5"
EDITSCORE_PQ_SHA256 = "8249deba103d112dddd4c2e7fe1d5a1c40fe3143dc640a422a19aced0d260c78"
# ... and of its SC text after `.replace("<instruction>", "make the car red")`, as EditScore.evaluate does.
EDITSCORE_SC_CAR_SHA256 = "dd3d73ceb05b742ecf747508f6d5154392dfc699474deebf99af0fc834019402"


def _sha(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_editscore_prompt_bytes_are_what_editscore_builds():
    prompts = load_editscore_prompts()
    assert _sha(prompts.semantic_consistency_template) == EDITSCORE_SC_SHA256
    assert _sha(prompts.perceptual_quality) == EDITSCORE_PQ_SHA256
    assert _sha(prompts.semantic_consistency("make the car red")) == EDITSCORE_SC_CAR_SHA256
    # the scale is EditScore's, and an instruction holding "10" is not touched by the scale replacement
    assert "From scale 0 to 25" in prompts.perceptual_quality and " 10 " not in prompts.perceptual_quality
    assert "rotate it by 10 degrees" in prompts.semantic_consistency("rotate it by 10 degrees")


def _editscore():
    return GEDIT.with_judge_recipe("editscore")


def test_editscore_reads_0_to_25_and_divides_by_2_5():
    gedit = _editscore()
    assert GEDIT.judge_recipe == "" and gedit.judge_recipe == "editscore"  # the shared object is not changed
    assert gedit.parse(None, '{"reasoning": "fine", "score": [25, 20]}').values == [25.0, 20.0]
    with pytest.raises(UnreadableReply, match=r"out of range 0\.\.25"):
        gedit.parse(None, '{"score": [26, 3]}')
    with pytest.raises(UnreadableReply, match=r"out of range 0\.\.10"):
        GEDIT.parse(None, '{"score": [11, 3]}')
    scores = gedit.score_row(None, {"semantic_consistency": Parsed([20.0, 15.0]), "perceptual_quality": Parsed([25.0, 10.0])})
    assert scores == {"semantic_consistency": 6.0, "perceptual_quality": 4.0, "overall": math.sqrt(24.0)}
    assert "2.5" in gedit.row_formula and "2.5" not in GEDIT.row_formula


def test_recipe_for_a_benchmark_without_it_is_one_line(run):
    result = run("--editeval-benchmark=imgedit", "--editeval-judge-recipe=editscore")
    assert result.ret == 4
    assert "unknown judge recipe 'editscore' for imgedit: it has imgedit" in output_of(result)
    result = run("--editeval-judge-recipe=editscor")
    assert result.ret == 4 and "unknown judge recipe 'editscor' for gedit: it has viescore, editscore" in output_of(result)


def test_editscore_end_to_end_over_http(run, judge, tmp_path, en_rows):
    """The requests are EditScore's (images first; lossless; the edited image at the source's size; its
    sampling), the scores the loopback judge's replies divided by 2.5, and the results say which recipe ran."""
    from PIL import Image

    from pytest_editeval.testing.judge_server import rule_scores

    out = tmp_path / "r.json"
    result = run("--editeval-judge-recipe=editscore", "--editeval-subsets=color_alter", f"--editeval-json={out}")
    assert result.ret == 0, output_of(result)
    result.stdout.fnmatch_lines(["*editeval: gedit (en), protocol official, recipe editscore, judge gpt-4.1 (openai)*"])
    call = judge.calls[0]
    assert not call.text_first and call.body["messages"][0]["content"][-1]["type"] == "text"
    assert {k: call.body.get(k) for k in ("max_tokens", "temperature", "top_p", "seed", "top_k")} == {
        "max_tokens": 512, "temperature": 0.7, "top_p": 0.9, "seed": 42, "top_k": None}
    for c in judge.calls:
        assert all(url.startswith("data:image/png;base64,") for url in c.image_urls)
    sc = next(c for c in judge.calls if c.aspect == "semantic_consistency")
    source, edited = (Image.open(io.BytesIO(b)) for b in sc.images)
    assert source.size == edited.size  # the edits are 1.5x their source: resized as EditScore's evaluation does
    data = json.loads(out.read_text())
    assert data["judge"]["recipe"] == "editscore" and "2.5" in data["benchmark_info"]["row_formula"]
    assert data["judge"]["parameters"] == {"max_tokens": 512, "temperature": 0.7, "top_p": 0.9, "seed": 42}
    by_instruction = {c.instruction: rule_scores(c) for c in judge.calls if c.aspect == "semantic_consistency"}
    for sample in data["samples"]:
        assert sample["scores"]["semantic_consistency"] == min(by_instruction[sample["instruction"]]) / 2.5


def test_judge_seed_and_temperature_options_override_the_recipe(run, judge):
    result = run("--editeval-judge-recipe=editscore", "--editeval-judge-seed=7", "--editeval-judge-temperature=0",
                 "--editeval-subsets=color_alter", "--editeval-limit=1")
    assert result.ret == 0, output_of(result)
    assert judge.calls[0].body["seed"] == 7 and judge.calls[0].body["temperature"] == 0.0


@pytest.mark.slow  # several seconds: three runs of the plugin
def test_a_different_recipe_or_judge_is_one_comparison_warning(run, tmp_path):
    assert run("--editeval-save=vie", "--editeval-subsets=color_alter").ret == 0
    result = run("--editeval-judge-recipe=editscore", "--editeval-subsets=color_alter", "--editeval-compare=vie")
    assert result.ret == 0, output_of(result)
    warnings = [line for line in result.outlines if line.startswith("WARNING:")]
    assert warnings == ["WARNING: the baseline was judged by gpt-4.1 (openai, recipe viescore), this run by gpt-4.1 "
                        "(openai, recipe editscore): judges score on different scales"]
    same = run("--editeval-subsets=color_alter", "--editeval-compare=vie")
    assert not [line for line in same.outlines if line.startswith("WARNING:")]


@pytest.mark.slow  # pytest runs of its own, in subprocesses
def test_the_compare_command_says_so_too(run, pytester):
    import subprocess
    import sys

    assert run("--editeval-save=vie", "--editeval-subsets=color_alter").ret == 0
    assert run("--editeval-save=es", "--editeval-judge-recipe=editscore", "--editeval-subsets=color_alter").ret == 0
    cli = [sys.executable, "-m", "pytest_editeval.cli", "compare", "vie", "es", f"--rootdir={pytester.path}"]
    done = subprocess.run(cli, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == ["WARNING: vie was judged by gpt-4.1 (openai, recipe viescore) and es by gpt-4.1 "
                                        "(openai, recipe editscore): judges score on different scales"]


def test_judge_options_have_ini_twins(run, pytester, judge):
    pytester.makeini("[pytest]\nediteval_judge_backend = nosuch\n")
    result = run()
    assert result.ret == 4
    assert ("ini option editeval_judge_backend: unknown judge backend 'nosuch': known judge backends are openai, "
            "transformers, vllm") in output_of(result)
    pytester.makeini("[pytest]\nediteval_judge_recipe = editscore\nediteval_judge_seed = 3\n")
    result = run("--editeval-subsets=color_alter", "--editeval-limit=1")
    assert result.ret == 0, output_of(result)
    result.stdout.fnmatch_lines(["*protocol official, recipe editscore, judge gpt-4.1 (openai)*"])
    assert {c.body["seed"] for c in judge.calls} == {3}
