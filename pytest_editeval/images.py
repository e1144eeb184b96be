"""Decoding untrusted images with a pixel cap: every image the plugin opens comes from a dataset, a model or a
user's folder, so a broken file or a decompression bomb (a 400 KB PNG of 20000 x 20000 pixels) must cost one
error row with a one-line reason, never a traceback or a gigabyte of memory.

The cap is checked on the header, before any pixel is decoded. Pillow is imported inside the functions: the
plugin's import path stays light.
"""

from __future__ import annotations

import io

from .errors import SampleError


class ImageError(SampleError):
    """An image that cannot be used for this row (undecodable, or over the pixel cap): the row is an error."""


def open_checked(data: bytes, what: str, max_pixels: int):
    """The image opened lazily (header read, no pixel decoded), its size checked against `max_pixels`."""
    from PIL import Image

    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:  # Pillow's own, looser limit: the header alone says it all
        raise ImageError(f"{what} is larger than {max_pixels:,} pixels ({_first_line(exc)}); raise "
                         "--editeval-max-pixels if such images are genuine") from None
    except Exception as exc:  # UnidentifiedImageError, truncated headers, SyntaxError from some plugins...
        raise ImageError(f"{what} cannot be decoded: {type(exc).__name__}: {_first_line(exc)}") from None
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise ImageError(f"{what} is {width} x {height} = {width * height:,} pixels, over the limit of "
                         f"{max_pixels:,}; raise --editeval-max-pixels if such images are genuine")
    return image


def decode_rgb(data: bytes, what: str, max_pixels: int):
    """The image decoded as RGB (several pipelines and the official judge recipe need exactly that)."""
    image = open_checked(data, what, max_pixels)
    try:
        with image:
            return image.convert("RGB")
    except Exception as exc:  # truncated data, bad checksums, and anything else a decoder raises mid-way
        raise ImageError(f"{what} cannot be decoded: {type(exc).__name__}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
