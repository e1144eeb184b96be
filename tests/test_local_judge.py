"""The transformers judge backend on the CPU: tiny random Qwen2.5-VL, Qwen3-VL and LLaVA judges built and saved
here, loaded through the real hub code from a folder. A scripted LogitsProcessor makes a judge spell the loopback
judge's reply to the request it was given (the model still runs on the real inputs; only the choice of tokens is
forced), so scores are checked exactly against the HTTP backend's, end to end through the plugin."""

import io
import json
import re
import shutil
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("transformers", reason="the transformers backend needs the [local-judge] extra")
pytest.importorskip("torch", reason="the transformers backend needs the [local-judge] extra")

from pytest_editeval import judges
from pytest_editeval.data.cache import Cache, folder_identity
from pytest_editeval.errors import InputError, JudgeFatalError, SampleError
from pytest_editeval.judges import transformers_local
from pytest_editeval.judges.requests import PreparedImage
from pytest_editeval.judges.settings import JudgeSpec

from .conftest import output_of
from .tiny import shared_folder

pytestmark = pytest.mark.torch  # every test here runs or loads a tiny judge, or imports torch
UNSCRIPTED = transformers_local.TransformersJudge.extra_logits_processors
SLICE = ["--editeval-subsets=color_alter,text_change,subject-add", "--editeval-limit=1"]
MODELS = ("qwen2.5-vl", "qwen3-vl", "llava")
# conftest.py of the pytester runs: the judge spells the loopback judge's reply to each request; the row whose
# instruction ends with $SCRIPT_UNREADABLE gets a reply with no score in it.
SCRIPTED = """
import os, sys, time
from pytest_editeval.judges.transformers_local import TransformersJudge
from pytest_editeval.testing.judge_server import reply_for_request
from pytest_editeval.testing._scaffold.tiny_judges import ScriptedReplies

UNREADABLE = os.environ.get("SCRIPT_UNREADABLE")


def reply(request):
    text = next(part for part in request if isinstance(part, str))
    if UNREADABLE and text.endswith(UNREADABLE + "\\n"):
        return "I cannot judge this edit."
    return reply_for_request(request)


def scripted(self, requests, prompt_length):
    return [ScriptedReplies(self.processor.tokenizer, [reply(r) for r in requests], prompt_length)]


TransformersJudge.extra_logits_processors = scripted


def pytest_sessionfinish(session):
    print("HEAVY-MODULES:", sorted(m for m in ("torch", "transformers") if m in sys.modules))
"""


@pytest.fixture(scope="session")
def tiny_judges(tmp_path_factory):
    """The three tiny judges and a LoRA adapter for the Qwen2.5-VL one, built once per test run and shared by the
    xdist workers, in a clean interpreter (this test process has been through many in-process pytester runs)."""
    code = ("import sys; from pathlib import Path\n"
            "from pytest_editeval.testing._scaffold.tiny_judges import BUILDERS, build_lora_adapter\n"
            "root = Path(sys.argv[1])\n"
            "for name, build in BUILDERS.items(): build(root / name)\n"
            "build_lora_adapter(root / 'qwen2.5-vl', root / 'qwen2.5-vl-lora')\n"
            "(root / 'complete').touch()\n")

    def build(root):
        root.mkdir()
        subprocess.run([sys.executable, "-c", code, str(root)], check=True, capture_output=True)

    return shared_folder("tiny-judges", tmp_path_factory, build, complete="complete")


@pytest.fixture
def local_run(pytester, gedit, edits, tiny_judges, tmp_path):
    """Run pytest with the transformers backend (in a subprocess: torch is imported there, as users run it). The
    scripting conftest exists only during these runs: an in-process run would patch this process's class."""

    def _run(*args, model="qwen2.5-vl", cache_dir=None, subprocess=True, images=True, conftest=SCRIPTED):
        model = model if "/" in model else tiny_judges / model  # a hub id, or one of the tiny judges
        base = ["--editeval-benchmark=gedit", f"--editeval-dataset={gedit[0]}",
                *([f"--editeval-images={edits}"] if images else []),
                f"--editeval-cache-dir={cache_dir or tmp_path / 'cache'}", "-p", "no:cacheprovider",
                "--editeval-judge-backend=transformers", f"--editeval-judge-model={model}",
                "--editeval-judge-device=cpu", *SLICE]
        runner = pytester.runpytest_subprocess if subprocess else pytester.runpytest
        written = pytester.makeconftest(conftest)
        try:
            return runner(*base, *args)
        finally:
            written.unlink()

    return _run


def _scores(path):
    return {s["id"]: (s["status"], s["scores"].get("semantic_consistency"), s["scores"].get("perceptual_quality"),
                      s["scores"].get("overall")) for s in json.loads(path.read_text())["samples"]}


@pytest.mark.parametrize("model", MODELS)
def test_scores_equal_the_http_judges_end_to_end(model, local_run, run, tiny_judges, tmp_path):
    """Same prompt texts, same image bytes in the same order: the scripted local judge, which answers from what it
    was given, scores every row exactly as the loopback HTTP judge does."""
    http, local = tmp_path / "http.json", tmp_path / "local.json"
    assert run(f"--editeval-json={http}", *SLICE).ret == 0
    result = local_run(f"--editeval-json={local}", "--editeval-judge-batch-size=4", "--editeval-save=local-judge",
                       model=model)
    assert result.ret == 0, output_of(result)
    assert _scores(local) == _scores(http) and {s[0] for s in _scores(local).values()} == {"scored"}
    folder = tiny_judges / model
    digest = folder_identity(folder, Cache(None))
    data = json.loads(local.read_text())
    assert data["judge"]["backend"] == "transformers" and data["judge"]["digest"] == digest
    assert data["judge"]["model"] == str(folder) and data["judge"]["recipe"] == "viescore"
    assert data["judge"]["parameters"] == {"max_new_tokens": 1400, "do_sample": False, "device": "cpu",
                                           "precision": "float32", "batch_size": 4}
    assert data["meta"]["judge_backend"] == "transformers" and data["meta"]["judge_digest"] == digest
    result.stdout.fnmatch_lines([
        f"*editeval: loading the judge model {folder} on cpu in float32",
        f"*editeval: gedit (en), protocol official, judge {folder} (transformers, sha256 {digest[:12]})*",
        "judge requests: 6; cache: 0 hits, 6 computed",
        f"judge: {folder} on cpu in float32, batch size 4, loaded in * s",
    ])
    # a saved run of this judge, compared with a run of another: one warning line
    compared = run("--editeval-compare=local-judge", *SLICE)
    assert compared.ret == 0, output_of(compared)
    assert [line for line in compared.outlines if line.startswith("WARNING")] == [
        f"WARNING: the baseline was judged by {folder} (transformers, sha256 {digest[:12]}), this run by gpt-4.1 "
        "(openai): judges score on different scales"]
    narrowed = "judge: processor narrowed to its image processor and tokenizer: torchvision cannot be imported here*"
    if model == "llava":  # its processor needs no torchvision
        assert not any(re.match(narrowed.replace("*", ".*"), line) for line in result.outlines)
    else:
        result.stdout.fnmatch_lines([narrowed])


def test_judge_model_and_adapter_from_hugging_face(local_run, hub, tiny_judges, monkeypatch, tmp_path):
    """Hub ids go through the real snapshot_download (a loopback Hub) and name the same weights as the folders."""
    hub.add_repo("model", "tiny-org/tiny-judge", tiny_judges / "qwen2.5-vl")
    hub.add_repo("model", "tiny-org/tiny-lora", tiny_judges / "qwen2.5-vl-lora")
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    out = tmp_path / "r.json"
    result = local_run("--editeval-judge-model-hub=huggingface", "--editeval-judge-adapter=tiny-org/tiny-lora",
                       f"--editeval-json={out}", model="tiny-org/tiny-judge")
    assert result.ret == 0, output_of(result)
    judge = json.loads(out.read_text())["judge"]
    assert judge["model"] == "tiny-org/tiny-judge"
    assert judge["digest"] == folder_identity(tiny_judges / "qwen2.5-vl", Cache(None))
    assert judge["adapter_digest"] == folder_identity(tiny_judges / "qwen2.5-vl-lora", Cache(None))
    offline = local_run("--editeval-judge-model-hub=huggingface", "--editeval-offline", model="tiny-org/not-cached",
                        subprocess=False, conftest="")  # in process: no scripting of this process's class
    assert offline.ret == 4
    assert ("judge model tiny-org/not-cached is not in the Hugging Face cache (--editeval-offline): run once with "
            "network access, or pass --editeval-judge-model a local folder") in output_of(offline)


def test_unreadable_replies_are_counted_error_rows(local_run, monkeypatch, en_rows, tmp_path):
    row = next(r for r in en_rows if r.task_type == "text_change")
    monkeypatch.setenv("SCRIPT_UNREADABLE", row.instruction.split(" ")[-1])
    out = tmp_path / "r.json"
    result = local_run(f"--editeval-json={out}", "--editeval-threshold=error_rate<=0")
    assert result.ret == 1, output_of(result)
    # greedy: asking again would give the same reply, so an unreadable one is an error at once (no re-asks)
    result.stdout.fnmatch_lines(["rows: 2 scored, 1 errors, 0 missing*", "judge requests: 6; *",
                                 "FAIL error_rate<=0: actual 0.3333 (n=3)"])
    errors = [s for s in json.loads(out.read_text())["samples"] if s["status"] == "error"]
    assert [s["key"] for s in errors] == [row.key]
    assert errors[0]["error"] == ("semantic_consistency: judge reply unreadable after 1 attempts (no score list in "
                                  "reply: 'I cannot judge this edit.')")


def test_cache_keys_name_the_weights_precision_and_adapter(local_run, tiny_judges, tmp_path):
    cache = tmp_path / "shared-cache"
    first = local_run(cache_dir=cache)
    assert first.ret == 0, output_of(first)
    again = local_run("--editeval-judge-batch-size=3", cache_dir=cache)  # greedy: batching changes no reply
    again.stdout.fnmatch_lines(["*HEAVY-MODULES: []", "judge requests: 0; cache: 6 hits, 0 computed"])
    assert "loading the judge model" not in output_of(again)  # a fully cached run loads no weights, imports no torch
    adapter = local_run(f"--editeval-judge-adapter={tiny_judges / 'qwen2.5-vl-lora'}",
                        f"--editeval-json={tmp_path / 'a.json'}", cache_dir=cache)
    assert adapter.ret == 0, output_of(adapter)
    adapter.stdout.fnmatch_lines(["*adapter*qwen2.5-vl-lora*", "judge requests: 6; cache: 0 hits, 6 computed"])
    judge = json.loads((tmp_path / "a.json").read_text())["judge"]
    assert judge["adapter_digest"] == folder_identity(tiny_judges / "qwen2.5-vl-lora", Cache(None))


def test_identity_covers_precision_device_and_sampling_but_not_a_greedy_batch_size(tiny_judges):
    folder = tiny_judges / "qwen2.5-vl"
    base = _judge(folder).identity()
    assert base == _judge(folder, batch_size=8).identity()
    assert base["model_digest"] == folder_identity(folder, Cache(None)) and base["adapter_digest"] is None
    for change in ({"precision": "bfloat16"}, {"max_tokens": 13}, {"device": "cuda:0"},
                   {"temperature": 0.7, "seed": 42}):
        assert _judge(folder, **change).identity() != base, change
    sampled = dict(temperature=0.7, top_p=0.9, top_k=20, seed=42)
    # a sampled reply depends on its batch-mates: then the batch size is part of the key
    assert _judge(folder, batch_size=1, **sampled).identity() != _judge(folder, batch_size=4, **sampled).identity()
    assert _judge(folder, **sampled).parse_retries == 2 and _judge(folder).parse_retries == 0


def test_in_model_mode_the_judge_loads_after_generation_has_started(local_run, tmp_path):
    """One GPU holds the editing pipeline first: the judge's weights load on its first request, which waits for
    the first edited image."""
    marks = tmp_path / "marks.txt"
    conftest = (SCRIPTED + f"""
import pytest
from PIL import Image

MARKS = {str(marks)!r}
_load = TransformersJudge._load


def _marked_load(self):
    with open(MARKS, "a") as out:
        out.write("judge-load\\n")
    _load(self)


TransformersJudge._load = _marked_load


@pytest.fixture(scope="session")
def editeval_pipeline():
    def edit(image, instruction, seed):
        with open(MARKS, "a") as out:
            out.write("edit\\n")
        return Image.new("RGB", image.size, (120, 30, 30))
    return edit
""")
    result = local_run(f"--editeval-output-dir={tmp_path / 'out'}", images=False, conftest=conftest)
    assert result.ret == 0, output_of(result)
    result.assert_outcomes(passed=3)
    lines = marks.read_text().split()
    assert lines[0] == "edit" and lines.count("judge-load") == 1


# ---- usage errors: one line, exit 4 ----------------------------------------------------------------------------
def _usage(pytester, gedit, edits, *args):
    result = pytester.runpytest("--editeval-benchmark=gedit", f"--editeval-dataset={gedit[0]}",
                                f"--editeval-images={edits}", "-p", "no:cacheprovider", *args)
    assert result.ret == 4, output_of(result)
    return output_of(result)


def test_local_backend_needs_a_model(pytester, gedit, edits):
    text = _usage(pytester, gedit, edits, "--editeval-judge-backend=transformers")
    assert ("--editeval-judge-backend transformers needs --editeval-judge-model: a folder saved with save_pretrained "
            "or a ModelScope / Hugging Face id, e.g. Qwen/Qwen2.5-VL-7B-Instruct") in text


def test_an_option_of_another_backend_is_refused(pytester, gedit, edits, monkeypatch):
    monkeypatch.setenv("EDITEVAL_JUDGE_API_KEY", "k")
    text = _usage(pytester, gedit, edits, "--editeval-judge-url=http://127.0.0.1:9/v1", "--editeval-judge-batch-size=4")
    assert "--editeval-judge-batch-size is for --editeval-judge-backend transformers; this run's judge backend is " \
           "openai" in text
    text = _usage(pytester, gedit, edits, "--editeval-judge-backend=transformers", "--editeval-judge-model=x/y",
                  "--editeval-judge-url=http://127.0.0.1:9/v1")
    assert "--editeval-judge-url is for --editeval-judge-backend openai; this run's judge backend is transformers" in text


@pytest.mark.parametrize("model, line", [
    ("no-such-folder", "judge model 'no-such-folder' is neither an existing folder nor a hub id like "
                       "'Qwen/Qwen2.5-VL-7B-Instruct'"),
    ("{tmp}", "judge model {tmp} has no config.json: --editeval-judge-model must be a folder saved with save_pretrained"),
])
def test_a_judge_model_that_is_not_one_is_one_line(pytester, gedit, edits, tmp_path, model, line):
    text = _usage(pytester, gedit, edits, "--editeval-judge-backend=transformers", "--editeval-judge-device=cpu",
                  f"--editeval-judge-model={model.format(tmp=tmp_path)}")
    assert line.format(tmp=tmp_path) in text


def test_a_missing_extra_is_one_line_naming_the_pip_command(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "peft" else real(name, *a))
    judges.check_installed("transformers")  # no adapter: peft is not needed
    with pytest.raises(InputError, match=r"^--editeval-judge-backend transformers needs peft, which is not installed: "
                                         r"pip install 'pytest-editeval\[local-judge\]'$"):
        judges.check_installed("transformers", adapter=True)


def test_backends_are_imported_only_when_chosen(run, pytester):
    # A backend module is read when pytest starts, for the options it declares (its top imports the stdlib
    # only); what must not load or run for a run with the HTTP judge is a local backend's judge, or torch.
    pytester.makeconftest("""
import sys
CREATED = []
def pytest_editeval_judge_created(config, name, description):
    CREATED.append(description["backend"])
def pytest_sessionfinish(session):
    print("LOADED:", sorted(m for m in ("torch", "transformers", "peft") if m in sys.modules))
    print("CREATED:", sorted(set(CREATED)))
""")
    result = run("--editeval-subsets=color_alter", subprocess=True)
    assert result.ret == 0, output_of(result)
    result.stdout.fnmatch_lines(["*LOADED: []", "*CREATED: ?'openai'?"])


# ---- the backend in this process ---------------------------------------------------------------------------------
def _png(color, size=(40, 30)):
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return PreparedImage(buf.getvalue(), "image/png")


def _judge(folder, **spec):
    # no pytester run of this process may have scripted the class (their conftest exists only in subprocess runs)
    assert transformers_local.TransformersJudge.extra_logits_processors is UNSCRIPTED
    settings = dict(backend="transformers", model=str(folder), recipe="viescore", max_tokens=12, device="cpu")
    settings.update(spec)
    spec = JudgeSpec(backend="transformers", model="", recipe="").with_values(**settings)
    return judges.create(spec, stop=threading.Event(), max_in_flight=4, cache=Cache(None),
                         say=lambda line: None, workdir=None)


def test_the_models_own_chat_template_gets_texts_and_images_in_request_order(tiny_judges):
    judge = _judge(tiny_judges / "qwen2.5-vl")
    try:
        judge._load()
        request = ["Rules.", _png((200, 0, 0)), _png((0, 0, 200)), "Instruction."]
        conversation = [{"role": "user", "content": transformers_local._content(request)}]
        text = judge.processor.apply_chat_template([conversation], add_generation_prompt=True, tokenize=False)[0]
        image = "<|vision_start|><|image_pad|><|vision_end|>"
        assert text == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
                        f"Rules.{image}{image}Instruction.<|im_end|>\n<|im_start|>assistant\n")
    finally:
        judge.close()


def test_greedy_replies_do_not_depend_on_batching(tiny_judges):
    """Left padding and decoding only the new tokens: a request's greedy reply is the same alone or batched."""
    judge = _judge(tiny_judges / "qwen3-vl", batch_size=3)
    requests = [["Rate this edit", _png((200, 10, 10)), _png((10, 10, 200), (64, 48))],
                ["A much longer prompt " * 12, _png((10, 200, 10))], [_png((1, 2, 3)), "images first"]]
    try:
        alone = [judge.ask(r) for r in requests]
        together = [None] * 3

        def ask(i):
            together[i] = judge.ask(requests[i])

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert together == alone and judge.batches[:3] == [1, 1, 1] and max(judge.batches[3:]) > 1
    finally:
        judge.close()


def test_a_sampling_recipe_is_seeded_before_each_call(tiny_judges):
    """EditScore's sampling (temperature 0.7, top_p 0.9, top_k 20) with its seed: the same request gets the same
    reply each time; another seed samples another one."""
    request = ["Rate this edit", _png((200, 10, 10))]
    sampled = dict(max_tokens=24, temperature=0.7, top_p=0.9, top_k=20)
    judge, other = _judge(tiny_judges / "qwen2.5-vl", seed=42, **sampled), _judge(tiny_judges / "qwen2.5-vl", seed=7, **sampled)
    try:
        first = judge.ask(request)
        assert judge.ask(request) == first and other.ask(request) != first
        assert judge.describe()["parameters"]["seed"] == 42 and judge.parse_retries == 2
    finally:
        judge.close()
        other.close()


def test_a_greedy_judges_samples_are_one_answer_and_said_so(local_run, tmp_path):
    """--editeval-judge-samples with a greedy in-process judge: asking again would give the same reply, so the K
    samples are one answer (asked once, one cache entry), their spread 0, and the summary says why once."""
    out = tmp_path / "r.json"
    result = local_run("--editeval-judge-samples=3", f"--editeval-json={out}")
    assert result.ret == 0, output_of(result)
    result.stdout.fnmatch_lines(["judge requests: 6; cache: 0 hits, 6 computed",
                                 "judge: a greedy (deterministic) judge: its 3 samples of each question are one answer, "
                                 "asked once, so its spread is 0 by construction*"])
    for sample in json.loads(out.read_text())["samples"]:
        replies = [s["reply"] for s in sample["answers"]["semantic_consistency"]["samples"]]
        assert len(replies) == 3 and len(set(replies)) == 1
        assert sample["judge_sd"]["overall"] == 0


def test_a_sampling_judge_asks_each_sample_with_its_own_seed(tiny_judges):
    """Sample k of a sampling judge is seeded seed + k (EditScore's passes): another reply, another cache key;
    sample 0 is the single-sample request itself."""
    request = ["Rate this edit", _png((200, 10, 10))]
    judge = _judge(tiny_judges / "qwen2.5-vl", seed=42, max_tokens=24, temperature=0.7, top_p=0.9, top_k=20)
    other = _judge(tiny_judges / "qwen2.5-vl", seed=43, max_tokens=24, temperature=0.7, top_p=0.9, top_k=20)
    try:
        assert not judge.deterministic and _judge(tiny_judges / "qwen2.5-vl").deterministic
        assert judge.identity(0) == judge.identity() and judge.identity(1) != judge.identity(0)
        assert judge.identity(1)["generation"]["seed"] == 43 == other.identity()["generation"]["seed"]
        first, second = judge.ask(request), judge.ask(request, sample=1)
        assert first != second and second == other.ask(request)  # sample 1 of seed 42 is seed 43's reply
    finally:
        judge.close()
        other.close()


def test_an_adapter_is_merged_and_changes_the_replies(tiny_judges):
    request = ["Rate this edit", _png((200, 10, 10))]
    base, tuned = _judge(tiny_judges / "qwen2.5-vl"), _judge(tiny_judges / "qwen2.5-vl", adapter=str(tiny_judges / "qwen2.5-vl-lora"))
    try:
        assert base.ask(request) != tuned.ask(request)
        assert base.identity()["adapter_digest"] is None and re.fullmatch(r"[0-9a-f]{64}", tuned.identity()["adapter_digest"])
    finally:
        base.close()
        tuned.close()


def test_interrupt_ends_a_generate_call_at_once(tiny_judges):
    judge = _judge(tiny_judges / "llava", max_tokens=100000)
    outcome = {}

    def ask():
        try:
            judge.ask(["Say a lot", _png((5, 5, 5))])
        except SampleError as exc:
            outcome["error"] = str(exc)

    thread = threading.Thread(target=ask)
    thread.start()
    deadline = time.monotonic() + 60
    while judge.model is None and time.monotonic() < deadline:  # loaded; then generating
        time.sleep(0.05)
    time.sleep(0.5)
    began = time.monotonic()
    judge.interrupt()
    thread.join(10)
    assert not thread.is_alive() and time.monotonic() - began < 5
    assert outcome["error"] == "run interrupted while the judge was answering"
    judge.close()
    assert judge._thread is not None and not judge._thread.is_alive() and judge.model is None


def test_weights_that_cannot_load_stop_the_run_with_one_line(tiny_judges, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_judges / "llava", broken)
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    judge = _judge(broken)
    try:
        with pytest.raises(JudgeFatalError, match=rf"^cannot load the judge model {re.escape(str(broken))} \(.*\) on "
                                                  r"cpu: \w+Error: ") as info:
            judge.ask(["x", _png((1, 1, 1))])
        assert info.value.usage and judge.stop.is_set() and "\n" not in str(info.value)
        with pytest.raises(JudgeFatalError):
            judge.ask(["again", _png((1, 1, 1))])
    finally:
        judge.close()


def test_the_processor_is_narrowed_only_when_torchvision_is_the_cause(tiny_judges, monkeypatch):
    processor, narrowed = transformers_local.load_processor(tiny_judges / "qwen2.5-vl")
    assert narrowed and type(processor).__name__ == "Qwen2_5_VLProcessorImageOnly"
    assert not hasattr(processor, "video_processor") or processor.video_processor is None
    _, narrowed = transformers_local.load_processor(tiny_judges / "llava")
    assert not narrowed  # AutoProcessor builds it as saved
    # a working torchvision and a processor that still fails: that failure is the user's to read
    monkeypatch.setattr(transformers_local, "_torchvision_works", lambda: True)
    with pytest.raises(ImportError, match="(?i)torchvision"):
        transformers_local.load_processor(tiny_judges / "qwen2.5-vl")
