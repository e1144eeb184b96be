"""Decoding untrusted images with a pixel cap: every image the plugin opens comes from a dataset, a model or a
user's folder, so a broken file or a decompression bomb (a 400 KB PNG of 20000 x 20000 pixels) must cost one
error row with a one-line reason, never a traceback or a gigabyte of memory.

The cap is checked on the header, before any pixel is decoded. Pillow is imported inside the functions: the
plugin's import path stays light.
"""

from __future__ import annotations

import io

from pytest_editeval.errors import SampleError


class ImageError(SampleError):
    """An image that cannot be used for this row (undecodable, or over the pixel cap): the row is an error."""


MAX_IMAGE_BYTES = 256 << 20  # no benchmark or edited image is anywhere near this; a bigger file is not one


def read_image_file(path, what: str, max_bytes: int = MAX_IMAGE_BYTES) -> bytes:
    """An image file's bytes, read as untrusted input: a regular file only (a FIFO would block), never more
    than `max_bytes` read (ImageError: the row is an error row). OSError when it cannot be read at all."""
    from pytest_editeval.data.jsonfile import NotRegularFile, read_bytes_capped

    try:
        data = read_bytes_capped(path, max_bytes)
    except NotRegularFile:
        raise ImageError(f"{what} {path} is not a regular file (a FIFO, device or folder): not read") from None
    if data is None:
        raise ImageError(f"{what} {path} is over {max_bytes >> 20} MB: not read")
    return data


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


# ---- preparation recipes: how an image's bytes are turned into what the judge is sent -------------------------
# A recipe's name goes into the cache key of every answer it produced: change the bytes a recipe sends, and
# rename it (a -v2), so that answers to other bytes are never reused.
RAW = "raw"  # the bytes as stored (still checked against the pixel cap, on the header)
RGB_JPEG75 = "rgb-jpeg75"  # RGB, JPEG at Pillow's default quality (75): GEdit's official recipe
RGB_JPEG75_AT_INPUT_SIZE = "rgb-jpeg75-at-input-size"  # ... resized (bicubic) to the row's first input first
RGB_JPEG85 = "rgb-jpeg85"  # RGB, JPEG quality 85: KRIS-Bench's temporal script
RGB_PNG = "rgb-png"  # RGB, lossless: EditScore hands its judge the decoded RGB image itself
RGB_PNG_AT_INPUT_SIZE = "rgb-png-at-input-size"  # ... resized (bicubic) to the row's first input first
# RISEBench's: RGB only for RGBA and P, thumbnail((768, 768)), JPEG at Pillow's defaults; other modes kept, except
# those JPEG cannot hold, made RGB (the official save fails on them: bug B10, fixed)
RISE_THUMB768_JPEG75 = "rise-thumb768-jpeg75"
RECIPES = (RAW, RGB_JPEG75, RGB_JPEG75_AT_INPUT_SIZE, RGB_JPEG85, RGB_PNG, RGB_PNG_AT_INPUT_SIZE, RISE_THUMB768_JPEG75)
_JPEG_MODES = ("1", "L", "RGB", "RGBX", "CMYK", "YCbCr")
NEEDS_INPUT_SIZE = (RGB_JPEG75_AT_INPUT_SIZE, RGB_PNG_AT_INPUT_SIZE)


def prepare(recipe: str, data: bytes, what: str, max_pixels: int, input_size=None) -> bytes:
    """The bytes a judge is sent for one image. `input_size()` gives the row's first input's size (only the
    resizing recipe asks for it)."""
    if recipe == RAW:
        open_checked(data, what, max_pixels).close()
        return data
    if recipe not in RECIPES:
        raise ValueError(f"unknown image recipe {recipe!r}")
    if recipe == RISE_THUMB768_JPEG75:
        return _rise_thumbnail_jpeg(data, what, max_pixels)
    from PIL import Image

    image = decode_rgb(data, what, max_pixels)
    if recipe in NEEDS_INPUT_SIZE:
        size = input_size()
        if image.size != size:
            image = image.resize(size, Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    if recipe in (RGB_PNG, RGB_PNG_AT_INPUT_SIZE):
        image.save(buf, format="PNG")
    elif recipe == RGB_JPEG85:
        image.save(buf, format="JPEG", quality=85)
    else:
        image.save(buf, format="JPEG")  # Pillow's default quality (75), as the official GEdit scorer does
    return buf.getvalue()


def _rise_thumbnail_jpeg(data: bytes, what: str, max_pixels: int) -> bytes:
    image = open_checked(data, what, max_pixels)
    try:
        with image:  # not loaded first: Pillow's thumbnail may then decode a JPEG at reduced scale, as upstream
            if image.mode in ("RGBA", "P") or image.mode not in _JPEG_MODES:
                image = image.convert("RGB")
            image.thumbnail((768, 768))  # in place, keeps the aspect ratio, never enlarges (Pillow's defaults)
            buf = io.BytesIO()
            image.save(buf, format="JPEG")
            return buf.getvalue()
    except ImageError:
        raise
    except Exception as exc:
        raise ImageError(f"{what} cannot be decoded: {type(exc).__name__}: {_first_line(exc)}") from None


def image_size(data: bytes, what: str, max_pixels: int) -> tuple[int, int]:
    with open_checked(data, what, max_pixels) as image:
        return image.size


def sniff_mime(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    return "application/octet-stream"
