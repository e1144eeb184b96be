"""How a row becomes judge requests, per protocol (the two GEdit-Bench judging recipes).

official  (stepfun-ai/Step1X-Edit GEdit-Bench scorer, GPT path): text part first, then the images; the edited
          image converted to RGB and resized with bicubic filtering to exactly the source's size; both images
          sent as JPEG (Pillow's default quality 75) data URLs. Headline = macro mean.
evalscope (EvalScope 1.14): images first, then text; images sent as stored, no resize. Headline = micro mean.

Building the request payload (decoding, resizing, encoding) costs real time, so it happens only when the
judge must actually be asked. The cache key is computed without it, from the hashes of the input image bytes
and the name of the preparation recipe, which together fix the exact bytes sent.
"""

from __future__ import annotations

import base64
import hashlib
import io
from dataclasses import dataclass
from typing import Literal

from .prompts import load_prompts, sha256_text

Aspect = Literal["semantic_consistency", "perceptual_quality"]
PROTOCOLS = ("official", "evalscope")
HEADLINE_AVERAGING = {"official": "macro", "evalscope": "micro"}
# Bump a recipe's version whenever the bytes it sends change, so that cached verdicts are not reused.
IMAGE_RECIPES = {"official": "rgb-bicubic-to-source-jpeg75-v1", "evalscope": "as-stored-v1"}


@dataclass(frozen=True)
class RowImages:
    """The raw bytes of a row's two images, as read from the dataset and the user's edited file."""

    source: bytes
    edited: bytes


@dataclass(frozen=True)
class JudgeRequest:
    aspect: Aspect
    protocol: str
    prompt: str
    images: RowImages

    def image_roles(self) -> tuple[str, ...]:
        return ("source", "edited") if self.aspect == "semantic_consistency" else ("edited",)

    def identity(self) -> dict:
        """What determines the request's content, without building it (input of the cache key)."""
        return {
            "aspect": self.aspect,
            "protocol": self.protocol,
            "prompt_sha256": sha256_text(self.prompt),
            "image_recipe": IMAGE_RECIPES[self.protocol],
            "images_sha256": [hashlib.sha256(getattr(self.images, r)).hexdigest() for r in self.image_roles()],
        }

    def content(self) -> list[dict]:
        """The OpenAI chat `content` list, in the protocol's order."""
        urls = _data_urls(self.protocol, self.images, self.image_roles())
        text_part = {"type": "text", "text": self.prompt}
        image_parts = [{"type": "image_url", "image_url": {"url": u}} for u in urls]
        return [text_part, *image_parts] if self.protocol == "official" else [*image_parts, text_part]


def requests_for_row(protocol: str, instruction: str, images: RowImages) -> list[JudgeRequest]:
    prompts = load_prompts()
    return [
        JudgeRequest("semantic_consistency", protocol, prompts.semantic_consistency(instruction), images),
        JudgeRequest("perceptual_quality", protocol, prompts.perceptual_quality, images),
    ]


def _data_urls(protocol: str, images: RowImages, roles: tuple[str, ...]) -> list[str]:
    from PIL import Image  # Pillow is a core dependency, but keep it off the plugin's import path.

    if protocol == "evalscope":
        return [_data_url(getattr(images, role), _mime(getattr(images, role))) for role in roles]
    with Image.open(io.BytesIO(images.source)) as src:
        source = src.convert("RGB")
    prepared = {"source": source}
    if "edited" in roles:
        with Image.open(io.BytesIO(images.edited)) as edited:
            edited_rgb = edited.convert("RGB")
        if edited_rgb.size != source.size:
            edited_rgb = edited_rgb.resize(source.size, Image.Resampling.BICUBIC)
        prepared["edited"] = edited_rgb
    return [_data_url(_jpeg(prepared[role]), "image/jpeg") for role in roles]


def _jpeg(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG")  # Pillow's default quality (75), as the official scorer does.
    return buf.getvalue()


def _mime(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


def _data_url(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
