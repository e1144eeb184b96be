"""Backend-neutral judge requests: what one question of one benchmark row sends, as prompt texts and images in
the order the benchmark's official scorer sends them.

A benchmark declares its questions with these types (pure data, no I/O); the evaluation turns image references
into prepared bytes (``images.py`` holds the recipes), giving a `Request` of texts and `PreparedImage`s in the
question's order; a judge backend renders that in its own wire format (OpenAI chat content parts, a chat template
of an in-process model), and the cache keys it by content.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass

# Names of the images a question can refer to:
EDITED = "edited"  # the image the model under test produced for this row


def input_image(index: int) -> str:
    """The row's index-th input image (what the editing model receives), in the row's own order."""
    return f"input:{index}"


def reference_image(name: str) -> str:
    """Another image of the dataset row that only the judge sees (e.g. KRIS viewpoint_change's ground truth)."""
    return f"reference:{name}"


@dataclass(frozen=True)
class ImageRef:
    """One image of a request: which image, how its bytes are prepared, and the MIME label it is sent with."""

    image: str  # EDITED, input_image(i) or reference_image(name)
    recipe: str = "raw"  # a preparation recipe of images.py: "raw" sends the file's bytes as they are
    mime: str | None = None  # the data URL's label; None: taken from the bytes' signature
    detail: str | None = None  # OpenAI's image detail ("high", "low"); None: not sent (the API's default)


Part = str | ImageRef


@dataclass(frozen=True)
class Question:
    """One judge call of a row: its name (unique within the row) and its content parts, texts and images, in
    the order they are sent. One user message holds all the parts."""

    name: str
    parts: tuple[Part, ...]

    @property
    def texts(self) -> list[str]:
        return [p for p in self.parts if isinstance(p, str)]

    @property
    def images(self) -> list[ImageRef]:
        return [p for p in self.parts if isinstance(p, ImageRef)]


@dataclass(frozen=True)
class PreparedImage:
    """An image as a judge receives it: the exact bytes a recipe prepared and their MIME label."""

    data: bytes
    mime: str
    detail: str | None = None  # sent as the image part's detail when set (ImageRef.detail)

    @property
    def data_url(self) -> str:
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"


# What every backend is asked: one user message of texts and prepared images, in the order the benchmark gives.
Request = Sequence[str | PreparedImage]
