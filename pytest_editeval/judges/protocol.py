"""How a row becomes judge requests, per protocol (the two GEdit-Bench judging recipes).

official  (stepfun-ai/Step1X-Edit GEdit-Bench scorer, GPT path): text part first, then the images; the edited
          image converted to RGB and resized with bicubic filtering to exactly the source's size; both images
          sent as JPEG (Pillow's default quality 75) data URLs. Headline = macro mean.
evalscope (EvalScope 1.14): images first, then text; images sent as stored, no resize. Headline = micro mean.

Building the request payload (decoding, resizing, encoding) costs real time, so it happens only when the
judge must actually be asked. The cache key is computed without it, from the hashes of the input image bytes
and the name of the preparation recipe, which together fix the exact bytes sent; and the hashes themselves
are memoised (evaluation.py), so a fully cached re-run reads no image at all.
"""

from __future__ import annotations

import base64
import hashlib
import io
import threading
from dataclasses import dataclass
from typing import Callable, Literal

from ..images import decode_rgb, open_checked
from ..options import DEFAULT_MAX_PIXELS
from .prompts import load_prompts, sha256_text

Aspect = Literal["semantic_consistency", "perceptual_quality"]
PROTOCOLS = ("official", "evalscope")
HEADLINE_AVERAGING = {"official": "macro", "evalscope": "micro"}
# Bump a recipe's version whenever the bytes it sends change, so that cached verdicts are not reused.
IMAGE_RECIPES = {"official": "rgb-bicubic-to-source-jpeg75-v1", "evalscope": "as-stored-v1"}


class RowImages:
    """A row's two images: their SHA-256 digests (all a cache lookup needs) and their raw bytes, loaded only
    when a request must really be built."""

    def __init__(self, source_sha256: str, edited_sha256: str, load_source: Callable[[], bytes],
                 load_edited: Callable[[], bytes]) -> None:
        self.source_sha256 = source_sha256
        self.edited_sha256 = edited_sha256
        self._loaders = {"source": load_source, "edited": load_edited}
        self._loaded: dict[str, bytes] = {}

    @classmethod
    def from_bytes(cls, source: bytes, edited: bytes) -> RowImages:
        return cls(_sha256(source), _sha256(edited), lambda: source, lambda: edited)

    def _get(self, role: str) -> bytes:
        if role not in self._loaded:
            self._loaded[role] = self._loaders[role]()
        return self._loaded[role]

    @property
    def source(self) -> bytes:
        return self._get("source")

    @property
    def edited(self) -> bytes:
        return self._get("edited")

    def sha256(self, role: str) -> str:
        return self.source_sha256 if role == "source" else self.edited_sha256


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ImagePayloads:
    """A row's images as data URLs, prepared once on first use and shared by the row's two requests
    (decoding, resizing and encoding a 512x512 photo costs tens of milliseconds)."""

    def __init__(self, protocol: str, images: RowImages, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.protocol = protocol
        self.images = images
        self.max_pixels = max_pixels
        self._urls: dict[str, str] | None = None
        self._lock = threading.Lock()

    def urls(self, roles: tuple[str, ...]) -> list[str]:
        with self._lock:
            if self._urls is None:
                self._urls = _data_urls(self.protocol, self.images, self.max_pixels)
        return [self._urls[role] for role in roles]


@dataclass(frozen=True)
class JudgeRequest:
    aspect: Aspect
    protocol: str
    prompt: str
    images: RowImages
    payloads: ImagePayloads

    def image_roles(self) -> tuple[str, ...]:
        return ("source", "edited") if self.aspect == "semantic_consistency" else ("edited",)

    def identity(self) -> dict:
        """What determines the request's content, without building it (input of the cache key). Under the
        official protocol the edited image is resized to the source's size, so the source counts even where
        only the edited image is sent."""
        roles = ("source", "edited") if self.protocol == "official" else self.image_roles()
        return {
            "aspect": self.aspect,
            "protocol": self.protocol,
            "prompt_sha256": sha256_text(self.prompt),
            "image_recipe": IMAGE_RECIPES[self.protocol],
            "images_sha256": [self.images.sha256(r) for r in roles],
        }

    def content(self) -> list[dict]:
        """The OpenAI chat `content` list, in the protocol's order."""
        urls = self.payloads.urls(self.image_roles())
        text_part = {"type": "text", "text": self.prompt}
        image_parts = [{"type": "image_url", "image_url": {"url": u}} for u in urls]
        return [text_part, *image_parts] if self.protocol == "official" else [*image_parts, text_part]


def requests_for_row(protocol: str, instruction: str, images: RowImages,
                     max_pixels: int = DEFAULT_MAX_PIXELS) -> list[JudgeRequest]:
    prompts = load_prompts()
    payloads = ImagePayloads(protocol, images, max_pixels)
    return [
        JudgeRequest("semantic_consistency", protocol, prompts.semantic_consistency(instruction), images, payloads),
        JudgeRequest("perceptual_quality", protocol, prompts.perceptual_quality, images, payloads),
    ]


def _data_urls(protocol: str, images: RowImages, max_pixels: int) -> dict[str, str]:
    from PIL import Image  # Pillow is a core dependency, but keep it off the plugin's import path.

    if protocol == "evalscope":  # sent as stored, but still no bigger than the cap (checked on the header)
        for role in ("source", "edited"):
            open_checked(getattr(images, role), f"{role} image", max_pixels).close()
        return {role: _data_url(getattr(images, role), _mime(getattr(images, role))) for role in ("source", "edited")}
    source = decode_rgb(images.source, "source image", max_pixels)
    edited_rgb = decode_rgb(images.edited, "edited image", max_pixels)
    if edited_rgb.size != source.size:
        edited_rgb = edited_rgb.resize(source.size, Image.Resampling.BICUBIC)
    return {"source": _data_url(_jpeg(source), "image/jpeg"), "edited": _data_url(_jpeg(edited_rgb), "image/jpeg")}


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
