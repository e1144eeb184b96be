"""The VIEScore judging recipe: GEdit-Bench's (and a user-defined set's) two questions, their reply reading and
the per-row formula.

Prompt texts are shipped byte-exact (trailing spaces matter) with their MIT licence notice. Source:
TIGER-AI-Lab/VIEScore viescore/vie_prompts.py; MIT License, Copyright (c) 2024 Max W.F. Ku. The texts are data
(``benchmarks/prompts/viescore_prompts.json``), checked against their SHA-256 when loaded.

Per row, two questions. Semantic consistency (SC): the SC prompt with the instruction put in verbatim, the source
and the edited image. Perceptual quality (PQ): the PQ prompt and the edited image. SC = min(SC scores),
PQ = min(PQ scores), O = sqrt(SC x PQ); scores are 0..10.

Two protocols:
official  (stepfun-ai/Step1X-Edit GEdit-Bench scorer, GPT path): text first, then the images; the edited image
          converted to RGB and resized with bicubic filtering to exactly the source's size; both images sent as
          JPEG (Pillow's default quality 75) data URLs. Headline = macro mean.
evalscope (EvalScope 1.14): images first, then text; images sent as stored, no resize. Headline = micro mean.

Two judge recipes (--editeval-judge-recipe):
viescore  (default) the texts above, replies 0..10.
editscore EditScore's variant (VectorSpaceLab/EditScore, editscore/__init__.py `EditScore`): VIEScore's rule
          pieces joined after EditScore's reasoning-first context, every "10" of the scale texts replaced by "25";
          images first (source, then the edited image resized bicubic to the source's size, both RGB, sent
          losslessly), then the text; sampled at temperature 0.7, top_p 0.9, top_k 20, seed 42, 512 new tokens;
          replies 0..25, divided by 2.5 back to 0..10 before SC = min, PQ = min, O = sqrt(SC x PQ). A reply that
          cannot be read is an error row, never EditScore's random guess. The protocol still picks the headline
          averaging.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from pytest_editeval.benchmarks import JudgeRecipe, Metric, Parsed, Protocol
from pytest_editeval.judges.replies import parse_reply
from pytest_editeval.judges.requests import EDITED, ImageRef, Question, input_image

INSTRUCTION_PLACEHOLDER = "<instruction>"
EDITSCORE_RANGE = 25  # EditScore's score_range: the scale its texts ask for and its replies use


@dataclass(frozen=True)
class VieScorePrompts:
    semantic_consistency_template: str
    perceptual_quality: str
    license: str
    parts: dict

    def semantic_consistency(self, instruction: str) -> str:
        # The official code uses str.replace on the single placeholder; the instruction goes in verbatim.
        return self.semantic_consistency_template.replace(INSTRUCTION_PLACEHOLDER, instruction)


@dataclass(frozen=True)
class EditScorePrompts:
    """EditScore's texts, built as its `EditScore.__init__` builds them from VIEScore's pieces."""

    semantic_consistency_template: str
    perceptual_quality: str

    def semantic_consistency(self, instruction: str) -> str:
        return self.semantic_consistency_template.replace(INSTRUCTION_PLACEHOLDER, instruction)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@lru_cache(maxsize=1)
def load_prompts() -> VieScorePrompts:
    raw = resources.files("pytest_editeval").joinpath("benchmarks/prompts/viescore_prompts.json").read_text("utf-8")
    data = json.loads(raw)
    for name in ("semantic_consistency_template", "perceptual_quality_prompt"):
        if sha256_text(data[name]) != data["sha256"][name]:
            raise RuntimeError(f"packaged prompt {name} does not match its SHA-256: the installation is damaged")
    parts = data["parts"]
    # The pieces are checked through the templates they compose (whose hashes were checked above).
    if ("\n".join([parts["context_no_delimit"], parts["two_image_edit_rule"], parts["tie_rule_SC"]])
            != data["semantic_consistency_template"]
            or "\n".join([parts["context_no_delimit"], parts["rule_PQ"]]) != data["perceptual_quality_prompt"]):
        raise RuntimeError("packaged VIEScore prompt pieces do not compose the templates: the installation is damaged")
    return VieScorePrompts(
        semantic_consistency_template=data["semantic_consistency_template"],
        perceptual_quality=data["perceptual_quality_prompt"],
        license=data["license"],
        parts=parts,
    )


@lru_cache(maxsize=1)
def load_editscore_prompts() -> EditScorePrompts:
    raw = resources.files("pytest_editeval").joinpath("benchmarks/prompts/editscore_prompts.json").read_text("utf-8")
    data = json.loads(raw)
    context = data["context_reasoning_first"]
    if sha256_text(context) != data["sha256"]["context_reasoning_first"]:
        raise RuntimeError("packaged EditScore context does not match its SHA-256: the installation is damaged")
    parts = load_prompts().parts
    scale = str(EDITSCORE_RANGE)
    # As EditScore.__init__: "\n".join of the pieces, every "10" of the scale texts replaced by the range.
    return EditScorePrompts(
        semantic_consistency_template="\n".join(
            [context, parts["two_image_edit_rule"], parts["tie_rule_SC"].replace("10", scale)]),
        perceptual_quality="\n".join([context, parts["rule_PQ"].replace("10", scale)]),
    )


METRICS = (
    Metric("semantic_consistency", "Semantic Consistency", "SC", aliases=("sc",)),
    Metric("perceptual_quality", "Perceptual Quality", "PQ", aliases=("pq",)),
    Metric("overall", "Overall", "O", aliases=("o",)),
)
PROTOCOLS = (
    Protocol("official", "the official GEdit-Bench scorer: text first, JPEG q75, edited resized to the source",
             headline_averaging="macro", max_tokens=1400, temperature=None),
    Protocol("evalscope", "EvalScope 1.14: images first, as stored", headline_averaging="micro", max_tokens=4096,
             temperature=0.0),
)
ROW_FORMULA = "SC = min(SC scores), PQ = min(PQ scores), O = sqrt(SC x PQ); scores 0..10"
EDITSCORE_ROW_FORMULA = ("SC = min(SC scores) / 2.5, PQ = min(PQ scores) / 2.5, O = sqrt(SC x PQ); replies on "
                         "EditScore's 0..25 scale, scores 0..10")
SC, PQ = "semantic_consistency", "perceptual_quality"
VIESCORE = JudgeRecipe("viescore", "VIEScore's prompts, as the benchmark's official scorer asks them")
EDITSCORE = JudgeRecipe("editscore", "EditScore's prompts (0..25, reasoning first), sampled as EditScore samples",
                        max_tokens=512, temperature=0.7, top_p=0.9, top_k=20, seed=42)


class VieScoreRecipe:
    """The recipe's part of a Benchmark (GEdit-Bench, and a declared set with recipe = "viescore")."""

    metrics = METRICS
    headline_metric = "overall"
    protocols = PROTOCOLS
    judge_recipes = (VIESCORE, EDITSCORE)

    @property
    def row_formula(self) -> str:
        return EDITSCORE_ROW_FORMULA if self.judge_recipe == EDITSCORE.name else ROW_FORMULA

    def questions(self, row, protocol: str, context: Mapping) -> list[Question]:
        if self.judge_recipe == EDITSCORE.name:
            return editscore_questions(row.instruction)
        return questions(row.instruction, protocol)

    def parse(self, question, text: str) -> Parsed:
        return parse(text, EDITSCORE_RANGE if self.judge_recipe == EDITSCORE.name else 10)

    def score_row(self, row, answers: Mapping[str, Parsed]) -> dict[str, float | None]:
        return score_row(answers, EDITSCORE_RANGE / 10 if self.judge_recipe == EDITSCORE.name else 1.0)

    def combine_answers(self, question: str, answers: list[Parsed], reduce) -> Parsed:
        """The row formula reads each answer's min(scores): those are combined (EditScore averages SC_k and PQ_k
        over its passes the same way), kept as a one-value score list whose min is that number."""
        return Parsed(values=[reduce([float(min(a.values)) for a in answers])], reasoning=answers[0].reasoning)


def questions(instruction: str, protocol: str) -> list[Question]:
    prompts = load_prompts()
    sc_text, pq_text = prompts.semantic_consistency(instruction), prompts.perceptual_quality
    if protocol == "evalscope":  # images as stored, MIME from their bytes, before the text
        source, edited = ImageRef(input_image(0)), ImageRef(EDITED)
        return [Question(SC, (source, edited, sc_text)), Question(PQ, (edited, pq_text))]
    source = ImageRef(input_image(0), recipe="rgb-jpeg75", mime="image/jpeg")
    edited = ImageRef(EDITED, recipe="rgb-jpeg75-at-input-size", mime="image/jpeg")
    return [Question(SC, (sc_text, source, edited)), Question(PQ, (pq_text, edited))]


def editscore_questions(instruction: str) -> list[Question]:
    """EditScore's requests: the images first (the edited one resized to the source's size, as its evaluation
    does), then the text; the PQ question shows the edited image only."""
    prompts = load_editscore_prompts()
    source = ImageRef(input_image(0), recipe="rgb-png", mime="image/png")
    edited = ImageRef(EDITED, recipe="rgb-png-at-input-size", mime="image/png")
    return [Question(SC, (source, edited, prompts.semantic_consistency(instruction))),
            Question(PQ, (edited, prompts.perceptual_quality))]


def parse(text: str, high: float = 10) -> Parsed:
    reply = parse_reply(text, high)  # raises UnreadableReply: re-asked, then an error row
    return Parsed(values=[float(s) for s in reply.scores], reasoning=reply.reasoning)


def score_row(answers: Mapping[str, Parsed], divisor: float = 1.0) -> dict[str, float]:
    """`divisor`: 2.5 for EditScore's 0..25 replies, which it divides back to 0..10 before the formula."""
    sc = float(min(answers[SC].values)) / divisor
    pq = float(min(answers[PQ].values)) / divisor
    return {"semantic_consistency": sc, "perceptual_quality": pq, "overall": math.sqrt(sc * pq)}
