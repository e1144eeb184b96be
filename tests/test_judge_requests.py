"""Prompts byte-exact, and what each protocol sends."""

import base64
import hashlib
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from pytest_editeval.benchmarks.viescore import load_prompts

from .rows import requests_for_row

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "gedit" / "viescore_prompts.json"
SC_SHA = "8f529562c2f89f8db51a3f7cc4d487686f676909c21010b67b0e65ec78150de5"
PQ_SHA = "2473ff2c7406e06545c5c039ceb039ff2604ebacf150868a48f0bf07c9e733b0"


def test_shipped_prompts_are_byte_exact():
    prompts = load_prompts()
    assert hashlib.sha256(prompts.semantic_consistency_template.encode()).hexdigest() == SC_SHA
    assert hashlib.sha256(prompts.perceptual_quality.encode()).hexdigest() == PQ_SHA
    assert "MIT License" in prompts.license and "Max W.F. Ku" in prompts.license
    assert prompts.perceptual_quality.endswith("[naturalness, artifacts]\n")
    assert "From scale 0 to 10: \n" in prompts.perceptual_quality  # the trailing space that copies lose


@pytest.mark.skipif(not REFERENCE.exists(), reason="shared reference not beside the checkout")
def test_shipped_prompts_match_the_reference_file():
    reference = json.loads(REFERENCE.read_text("utf-8"))
    prompts = load_prompts()
    assert prompts.semantic_consistency_template == reference["semantic_consistency_template"]
    assert prompts.perceptual_quality == reference["perceptual_quality_prompt"]


def test_instruction_goes_in_verbatim_chinese_included():
    prompt = load_prompts().semantic_consistency("把汽车的颜色改成红色 ")
    assert prompt.endswith("Editing instruction: 把汽车的颜色改成红色 \n")
    assert "<instruction>" not in prompt


def _png(size, color=(200, 10, 10), mode="RGB"):
    buf = io.BytesIO()
    Image.new(mode, size, color if mode == "RGB" else (*color, 128)).save(buf, format="PNG")
    return buf.getvalue()


def _decode(url):
    header, data = url.split(",", 1)
    return header, Image.open(io.BytesIO(base64.b64decode(data)))


def test_official_protocol_text_first_jpeg_resized_to_source():
    images = (_png((64, 32)), _png((100, 77), mode="RGBA"))
    sc, pq = requests_for_row("official", "make it red", images)
    content = sc.content()
    assert [p["type"] for p in content] == ["text", "image_url", "image_url"]
    assert content[0]["text"].endswith("Editing instruction: make it red\n")
    for part in content[1:]:
        header, image = _decode(part["image_url"]["url"])
        assert header == "data:image/jpeg;base64" and image.format == "JPEG"
        assert image.size == (64, 32) and image.mode == "RGB"
    pq_content = pq.content()
    assert [p["type"] for p in pq_content] == ["text", "image_url"]
    assert pq_content[0]["text"] == load_prompts().perceptual_quality
    assert _decode(pq_content[1]["image_url"]["url"])[1].size == (64, 32)


def test_official_jpeg_is_pillow_default_quality():
    source = _png((48, 48))
    images = (source, source)
    url = requests_for_row("official", "x", images)[1].content()[1]["image_url"]["url"]
    expected = io.BytesIO()
    Image.open(io.BytesIO(source)).convert("RGB").save(expected, format="JPEG", quality=75)
    assert base64.b64decode(url.split(",", 1)[1]) == expected.getvalue()


def test_evalscope_protocol_images_first_as_stored():
    images = (_png((64, 32)), _png((100, 77)))
    sc, pq = requests_for_row("evalscope", "make it red", images)
    content = sc.content()
    assert [p["type"] for p in content] == ["image_url", "image_url", "text"]
    assert content[0]["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(images[0]).decode()
    assert content[1]["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(images[1]).decode()
    assert [p["type"] for p in pq.content()] == ["image_url", "text"]


def test_request_identity_changes_with_what_is_sent_only():
    a = (_png((8, 8)), _png((8, 8), (1, 2, 3)))
    b = (_png((8, 8)), _png((8, 8), (1, 2, 4)))
    sc_a, pq_a = requests_for_row("official", "x", a)
    sc_b, _ = requests_for_row("official", "x", b)
    assert sc_a.identity() != sc_b.identity()
    assert sc_a.identity() == requests_for_row("official", "x", a)[0].identity()
    assert sc_a.identity() != requests_for_row("official", "y", a)[0].identity()
    assert sc_a.identity() != requests_for_row("evalscope", "x", a)[0].identity()
    # PQ sends only the edited image, but resized to the source's size: the source is part of its identity
    assert "input_sha256" in pq_a.identity()["parts"][1]
    other_source = (_png((16, 8)), _png((8, 8), (1, 2, 3)))
    assert requests_for_row("official", "x", other_source)[1].identity() != pq_a.identity()
    assert "input_sha256" not in requests_for_row("evalscope", "x", a)[1].identity()["parts"][0]
