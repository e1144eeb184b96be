"""VIEScore prompt texts, shipped byte-exact (trailing spaces matter) with their MIT licence notice.

Source: TIGER-AI-Lab/VIEScore viescore/vie_prompts.py; MIT License, Copyright (c) 2024 Max W.F. Ku.
The texts are data (``data/viescore_prompts.json``), checked against their SHA-256 when loaded.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

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
