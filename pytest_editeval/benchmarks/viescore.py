"""The VIEScore judging recipe: GEdit-Bench's (and a user-defined set's) two questions, their reply reading and
the per-row formula.

Prompt texts are shipped byte-exact (trailing spaces matter) with their MIT licence notice. Source:
TIGER-AI-Lab/VIEScore viescore/vie_prompts.py; MIT License, Copyright (c) 2024 Max W.F. Ku. The texts are data
(``data/viescore_prompts.json``), checked against their SHA-256 when loaded.

Per row, two questions. Semantic consistency (SC): the SC prompt with the instruction put in verbatim, the source
and the edited image. Perceptual quality (PQ): the PQ prompt and the edited image. SC = min(SC scores),
PQ = min(PQ scores), O = sqrt(SC x PQ); scores are 0..10.

Two protocols:
official  (stepfun-ai/Step1X-Edit GEdit-Bench scorer, GPT path): text first, then the images; the edited image
          converted to RGB and resized with bicubic filtering to exactly the source's size; both images sent as
          JPEG (Pillow's default quality 75) data URLs. Headline = macro mean.
evalscope (EvalScope 1.14): images first, then text; images sent as stored, no resize. Headline = micro mean.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Mapping

from ..judges.replies import parse_reply
from ..judges.requests import EDITED, ImageRef, Question, input_image
from . import Metric, Parsed, Protocol

INSTRUCTION_PLACEHOLDER = "<instruction>"


@dataclass(frozen=True)
class VieScorePrompts:
    semantic_consistency_template: str
    perceptual_quality: str
    license: str

    def semantic_consistency(self, instruction: str) -> str:
        # The official code uses str.replace on the single placeholder; the instruction goes in verbatim.
        return self.semantic_consistency_template.replace(INSTRUCTION_PLACEHOLDER, instruction)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@lru_cache(maxsize=1)
def load_prompts() -> VieScorePrompts:
    raw = resources.files("pytest_editeval").joinpath("data/viescore_prompts.json").read_text("utf-8")
    data = json.loads(raw)
    for name in ("semantic_consistency_template", "perceptual_quality_prompt"):
        if sha256_text(data[name]) != data["sha256"][name]:
            raise RuntimeError(f"packaged prompt {name} does not match its SHA-256: the installation is damaged")
    return VieScorePrompts(
        semantic_consistency_template=data["semantic_consistency_template"],
        perceptual_quality=data["perceptual_quality_prompt"],
        license=data["license"],
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
SC, PQ = "semantic_consistency", "perceptual_quality"


class VieScoreRecipe:
    """The recipe's part of a Benchmark (GEdit-Bench, and a declared set with recipe = "viescore")."""

    metrics = METRICS
    headline_metric = "overall"
    protocols = PROTOCOLS
    row_formula = ROW_FORMULA

    def questions(self, row, protocol: str, context: Mapping) -> list[Question]:
        return questions(row.instruction, protocol)

    def parse(self, question, text: str) -> Parsed:
        return parse(text)

    def score_row(self, row, answers: Mapping[str, Parsed]) -> dict[str, float | None]:
        return score_row(answers)


def questions(instruction: str, protocol: str) -> list[Question]:
    prompts = load_prompts()
    sc_text, pq_text = prompts.semantic_consistency(instruction), prompts.perceptual_quality
    if protocol == "evalscope":  # images as stored, MIME from their bytes, before the text
        source, edited = ImageRef(input_image(0)), ImageRef(EDITED)
        return [Question(SC, (source, edited, sc_text)), Question(PQ, (edited, pq_text))]
    source = ImageRef(input_image(0), recipe="rgb-jpeg75", mime="image/jpeg")
    edited = ImageRef(EDITED, recipe="rgb-jpeg75-at-input-size", mime="image/jpeg")
    return [Question(SC, (sc_text, source, edited)), Question(PQ, (pq_text, edited))]


def parse(text: str) -> Parsed:
    reply = parse_reply(text)  # raises UnreadableReply: re-asked, then an error row
    return Parsed(values=[float(s) for s in reply.scores], reasoning=reply.reasoning)


def score_row(answers: Mapping[str, Parsed]) -> dict[str, float]:
    sc = float(min(answers[SC].values))
    pq = float(min(answers[PQ].values))
    return {"semantic_consistency": sc, "perceptual_quality": pq, "overall": math.sqrt(sc * pq)}
