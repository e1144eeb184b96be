"""Model mode on the CPU: tiny random diffusers pipelines saved with save_pretrained and loaded back through
the real from_pretrained path, end to end with the loopback judge."""

import json
import re
import shutil

import pytest

pytest.importorskip("diffusers", reason="model mode needs the [model] extra (installed by the test extra)")

from pytest_editeval.testing.tiny_pipelines import BUILDERS, FAST_CONFIGS

from .conftest import output_of
from .tiny import PIXEL_TOLERANCE, max_pixel_difference, shared_tiny

pytestmark = pytest.mark.torch  # model mode: diffusers pipelines, or their set-up errors, in subprocesses
SLICE = ["--editeval-subsets=color_alter,text_change", "--editeval-limit=2", "--editeval-device=cpu"]


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    return {name: shared_tiny(name, tmp_path_factory) for name in BUILDERS}


@pytest.fixture
def model_run(run, tiny, tmp_path):
    # Runs that load diffusers go through a subprocess, as users run pytest: pytester's in-process runs drop
    # the modules first imported during a run, and diffusers' lazy submodules do not survive a re-import.
    def _run(name, *args, output=None, model=None, **kwargs):
        config = json.dumps(FAST_CONFIGS[name])
        kwargs.setdefault("subprocess", True)
        return run(f"--editeval-model={model or tiny[name]}", f"--editeval-generation-config={config}",
                   f"--editeval-output-dir={output or tmp_path / 'out'}", *SLICE, *args, images=None, **kwargs)
    return _run


def _pngs(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


def test_end_to_end_layout_and_re_judging_in_image_mode(model_run, run, judge, tmp_path):
    out, results = tmp_path / "out", tmp_path / "model.json"
    result = model_run("StableDiffusionInstructPix2PixPipeline", f"--editeval-json={results}")
    assert result.ret == 0, output_of(result)
    result.assert_outcomes(passed=4)
    assert judge.count == 8
    result.stdout.fnmatch_lines(["generated 4 images (0 from the cache), saved under*"])
    images = [p for p in _pngs(out) if not p.endswith("_SRCIMG.png")]
    assert len(images) == 4 and all(p.startswith("fullset/") and "/en/" in p for p in images)
    assert len([p for p in _pngs(out) if p.endswith("_SRCIMG.png")]) == 4
    lines = [json.loads(line) for line in (out / "edits.jsonl").read_text().splitlines()]
    assert sorted(e["image_path"] for e in lines) == sorted(images)
    # the saved run is re-judged later without the GPU: same scores
    again = tmp_path / "image-mode.json"
    rejudged = run(f"--editeval-json={again}", *SLICE, images=out / "edits.jsonl", cache_dir=tmp_path / "c2")
    assert rejudged.ret == 0
    scores = lambda path: {s["id"]: (s["scores"]["semantic_consistency"], s["scores"]["perceptual_quality"])  # noqa: E731
                           for s in json.loads(path.read_text())["samples"]}
    assert scores(results) == scores(again)


def test_generation_is_deterministic_and_resumes_from_the_cache(model_run, tmp_path, judge):
    first = model_run("StableDiffusionInstructPix2PixPipeline", output=tmp_path / "a", cache_dir=tmp_path / "ca")
    second = model_run("StableDiffusionInstructPix2PixPipeline", output=tmp_path / "b", cache_dir=tmp_path / "cb")
    assert first.ret == second.ret == 0
    assert _pngs(tmp_path / "a") == _pngs(tmp_path / "b")  # same seeds, fresh caches: identical bytes
    other_seed = model_run("StableDiffusionInstructPix2PixPipeline", "--editeval-seed=7", output=tmp_path / "s",
                           cache_dir=tmp_path / "cs")
    assert other_seed.ret == 0 and _pngs(tmp_path / "s") != _pngs(tmp_path / "a")
    judge.calls.clear()
    resumed = model_run("StableDiffusionInstructPix2PixPipeline", output=tmp_path / "a", cache_dir=tmp_path / "ca")
    resumed.stdout.fnmatch_lines(["judge requests: 0*", "generated 0 images (4 from the cache)*"])
    assert judge.count == 0


def test_fully_cached_model_run_never_imports_torch(model_run, pytester, tmp_path):
    assert model_run("StableDiffusionInstructPix2PixPipeline", cache_dir=tmp_path / "cc").ret == 0
    pytester.makeconftest("""
        import sys
        def pytest_sessionfinish(session):
            print("HEAVY-MODULES:", sorted(m for m in ("torch", "diffusers") if m in sys.modules))
    """)
    result = model_run("StableDiffusionInstructPix2PixPipeline", cache_dir=tmp_path / "cc", subprocess=True)
    assert result.ret == 0, output_of(result)
    result.stdout.fnmatch_lines(["*HEAVY-MODULES: []"])
    result.stdout.fnmatch_lines(["generated 0 images (4 from the cache)*"])


def test_model_from_hugging_face_and_from_the_modelscope_cache(model_run, tiny, tmp_path, monkeypatch, hub):
    """Hub ids go through the real snapshot_download (a loopback Hub; ModelScope's cache offline) and give
    the same images as the local folder they were published from."""
    name = "StableDiffusionInstructPix2PixPipeline"
    hub.add_repo("model", "tiny-org/tiny-pix2pix", tiny[name])
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    shutil.copytree(tiny[name], tmp_path / "modelscope" / "models" / "tiny-org" / "tiny-pix2pix")
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path / "modelscope"))
    runs = {
        "local": [],
        "huggingface": ["--editeval-model-hub=huggingface", "--editeval-model-revision=main"],
        "modelscope": ["--editeval-offline"],
    }
    images = {}
    for source, args in runs.items():
        result = model_run(name, *args, f"--editeval-json={tmp_path / source}.json",
                           model=None if source == "local" else "tiny-org/tiny-pix2pix",
                           output=tmp_path / source, cache_dir=tmp_path / f"cache-{source}")
        assert result.ret == 0, output_of(result)
        result.assert_outcomes(passed=4)
        images[source] = _pngs(tmp_path / source)
    assert len(images["local"]) == 8 and images["huggingface"] == images["local"] == images["modelscope"]
    metas = {source: json.loads((tmp_path / f"{source}.json").read_text())["meta"] for source in runs}
    assert metas["huggingface"]["revision"] == "main"
    digests = {meta["model_digest"] for meta in metas.values()}  # the same weights, wherever they came from
    assert len(digests) == 1 and re.fullmatch(r"[0-9a-f]{64}", digests.pop())
    assert sorted(hub.downloads) == sorted(p.relative_to(tiny[name]).as_posix()
                                           for p in tiny[name].rglob("*") if p.is_file())


def test_unknown_model_revision_on_hugging_face(run, tiny, tmp_path, monkeypatch, hub):
    hub.add_repo("model", "tiny-org/tiny-pix2pix", tiny["StableDiffusionInstructPix2PixPipeline"])
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    result = run("--editeval-model=tiny-org/tiny-pix2pix", "--editeval-model-hub=huggingface",
                 "--editeval-model-revision=v9", *SLICE, images=None, subprocess=True)
    assert result.ret == 4, output_of(result)
    assert ("model tiny-org/tiny-pix2pix at revision v9: no such revision on Hugging Face: check the revision, "
            "or pass --editeval-model a local folder") in output_of(result)
    assert not hub.downloads


def test_flux_kontext_batches_like_single_rows_with_config_from_pyproject(run, tiny, pytester, tmp_path, judge):
    pytester.makepyprojecttoml("""
        [tool.editeval.generation]
        num_inference_steps = 2
        height = 16
        width = 16
        max_area = 256
        max_sequence_length = 16
        _auto_resize = false
    """)
    outputs = {}
    for batch in (1, 2):
        result = run(f"--editeval-model={tiny['FluxKontextPipeline']}", f"--editeval-batch-size={batch}",
                     f"--editeval-output-dir={tmp_path / str(batch)}", "--editeval-subsets=ps_human,style_change",
                     "--editeval-device=cpu", images=None, cache_dir=tmp_path / f"cache{batch}", subprocess=True)
        assert result.ret == 0, output_of(result)
        result.assert_outcomes(passed=8)
        outputs[batch] = _pngs(tmp_path / str(batch))
    assert len(outputs[1]) == 16 and outputs[1].keys() == outputs[2].keys()
    # Per-row seeds make batch 2 the same computation as batch 1, but batched float32 kernels may round
    # differently (AVX-512 machines do): equal within a small tolerance is what every machine gives.
    differences = [max_pixel_difference(outputs[1][name], outputs[2][name]) for name in outputs[1]]
    print("largest pixel difference between batch 1 and batch 2:", max(differences))
    assert max(differences) <= PIXEL_TOLERANCE
    assert all(_size(png) == (16, 16) for name, png in outputs[2].items() if not name.endswith("_SRCIMG.png"))


def _size(png):
    import io

    from PIL import Image

    return Image.open(io.BytesIO(png)).size


def test_row_seeds_do_not_depend_on_batch_or_order(run, pytester, tmp_path, en_rows):
    """What the README promises exactly: each row's seed comes from --editeval-seed and its key alone."""
    pytester.makeconftest("""
        import json, os
        import pytest
        from PIL import Image

        class Recorder:
            editeval_identity = None  # never cached: every run generates

            def edit_batch(self, images, instructions, seeds):
                with open(os.environ["SEEDS_FILE"], "a") as fh:
                    for instruction, seed in zip(instructions, seeds):
                        fh.write(json.dumps([instruction, seed, len(images)]) + "\\n")
                return [Image.new("RGB", image.size, (seed % 256, 0, 0)) for image in images]

        @pytest.fixture(scope="session")
        def editeval_pipeline():
            return Recorder()
    """)
    import hashlib
    import os

    seen = {}
    for name, args in {"batch1": [], "batch3": ["--editeval-batch-size=3"],
                       "subset": ["--editeval-batch-size=2", "-k", "text_change or color_alter"]}.items():
        os.environ["SEEDS_FILE"] = str(tmp_path / f"{name}.jsonl")
        try:
            result = run("--editeval-seed=11", f"--editeval-output-dir={tmp_path / name}", *args, images=None)
        finally:
            del os.environ["SEEDS_FILE"]
        assert result.ret in (0, 1), output_of(result)
        lines = [json.loads(line) for line in (tmp_path / f"{name}.jsonl").read_text().splitlines()]
        seen[name] = {instruction: seed for instruction, seed, _ in lines}
        if name != "batch1":
            assert max(size for *_, size in lines) > 1  # batches really formed
    assert len(seen["batch1"]) == 44 and seen["batch3"] == seen["batch1"]
    assert all(seen["batch1"][instruction] == seed for instruction, seed in seen["subset"].items())
    keys = {row.instruction: row.key for row in en_rows}
    for instruction, seed in seen["batch1"].items():
        expected = int(hashlib.sha256(f"11:{keys[instruction]}".encode()).hexdigest()[:8], 16)
        assert seed == expected


@pytest.mark.parametrize("args, message", [
    (["--editeval-pipeline-cls=NopeEditPipeline"], "unknown pipeline class 'NopeEditPipeline'"),
    (["--editeval-pipeline-cls=FluxKontextPipeline"], "FluxKontextPipeline does not fit"),
    (['--editeval-generation-config={"num_inference_steps": 2, "bogus_strength": 3}'],
     "does not accept generation argument(s) bogus_strength"),
    (['--editeval-generation-config={"prompt": "x"}'], "must not set prompt"),
])
def test_pipeline_setup_errors_are_one_line(run, tiny, tmp_path, args, message):
    result = run(f"--editeval-model={tiny['StableDiffusionInstructPix2PixPipeline']}", *SLICE, *args,
                 f"--editeval-output-dir={tmp_path / 'o'}", images=None, subprocess=True)
    assert result.ret == 4 and message in output_of(result), output_of(result)
    assert "Traceback" not in output_of(result)


def test_incomplete_model_folder(run, tiny, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny["StableDiffusionInstructPix2PixPipeline"], broken)
    for f in (broken / "tokenizer").iterdir():
        f.unlink()
    result = run(f"--editeval-model={broken}", *SLICE, images=None)
    assert result.ret == 4
    assert "component 'tokenizer' (CLIPTokenizer) named in model_index.json is missing or empty" in output_of(result)


def test_model_path_that_does_not_exist(run):
    result = run("--editeval-model=./checkpoints/step-1200", *SLICE, images=None)
    assert result.ret == 4
    assert ("model './checkpoints/step-1200' is neither an existing folder nor a hub id like "
            "'Qwen/Qwen-Image-Edit'") in output_of(result)


def test_folder_that_is_not_a_pipeline(run, tmp_path):
    (tmp_path / "weights").mkdir()
    result = run(f"--editeval-model={tmp_path / 'weights'}", *SLICE, images=None)
    assert result.ret == 4 and "no model_index.json" in output_of(result)


def test_custom_editor_from_conftest_with_failing_rows(run, pytester, judge, tmp_path):
    pytester.makeconftest("""
        import pytest
        from PIL import Image

        @pytest.fixture(scope="session")
        def editeval_pipeline():
            def edit(image, instruction, seed):
                if "#text_change" in instruction:
                    raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
                if "#color_alter-1" in instruction:
                    return None
                return Image.new("RGB", image.size, (seed % 256, 90, 160))
            return edit
    """)
    out = tmp_path / "custom.json"
    result = run(f"--editeval-json={out}", f"--editeval-output-dir={tmp_path / 'o'}", *SLICE, images=None)
    assert result.ret == 1  # errors fail their items; the others are judged
    result.assert_outcomes(passed=1, failed=3)
    text = output_of(result)
    assert "out of GPU memory while generating (CUDA out of memory. Tried to allocate 2.00 GiB); lower" in text
    assert "the pipeline returned no image for this row (got NoneType)" in text
    assert judge.count == 2
    data = json.loads(out.read_text())
    assert [s["status"] for s in data["samples"]].count("error") == 3


def test_model_mode_without_a_model_says_the_three_ways(run):
    result = run(*SLICE, images=None)
    assert result.ret == 4
    text = output_of(result)
    assert "--editeval-images PATH" in text and "--editeval-model ID_OR_DIR" in text
    assert "override the editeval_pipeline fixture in conftest.py" in text
