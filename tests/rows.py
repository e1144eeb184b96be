"""Rows and verdicts for unit tests of the generic parts, built as the GEdit benchmark builds them."""

from pytest_editeval.benchmarks import Parsed
from pytest_editeval.benchmarks.gedit import GEDIT, SUBSETS
from pytest_editeval.benchmarks.viescore import score_row
from pytest_editeval.data.dataset import Row
from pytest_editeval.scoring.verdict import Verdict


def gedit_row(i, subset, intersection=True):
    return Row(id=f"en-{subset}-k{i}", key=f"k{i}", subset=subset, instruction="x", language="en", inputs=((0, i),),
               tags=frozenset({"intersection"}) if intersection else frozenset())


def scored(i, subset, sc, pq, intersection=True):
    answers = {"semantic_consistency": Parsed([sc]), "perceptual_quality": Parsed([pq])}
    return Verdict.scored(gedit_row(i, subset, intersection), score_row(answers), {}, None)


def aggregate_gedit(verdicts, expected_rows):
    from pytest_editeval.scoring.aggregate import aggregate

    return aggregate(verdicts, GEDIT, SUBSETS, expected_rows=expected_rows)


class MemoryImages:
    """An image store over bytes held in memory (locator: a name)."""

    def __init__(self, images):
        self.images = images

    def read(self, locator):
        return self.images[locator]

    def identity(self, locator):
        import hashlib

        return {"kind": "memory", "sha256": hashlib.sha256(self.images[locator]).hexdigest()}


class Request:
    """One question of a GEdit row as the openai backend sends it: its content parts and its cache identity."""

    def __init__(self, question, row_images, protocol):
        self.question, self.images, self.protocol = question, row_images, protocol

    def content(self):
        from pytest_editeval.judges.openai_http import render

        return render(list(self.question.parts), self.images.data_url)

    def identity(self):
        return self.images.identity(self.question)


def requests_for_row(protocol, instruction, images):
    """The row's requests for a (source bytes, edited bytes) pair."""
    import tempfile
    from pathlib import Path

    from pytest_editeval.data.cache import Cache
    from pytest_editeval.options.table import DEFAULT_MAX_PIXELS
    from pytest_editeval.scoring.evaluation import RowImages

    source, edited = images
    edited_path = Path(tempfile.mkdtemp()) / "edited.png"
    edited_path.write_bytes(edited)
    row = Row(id="en-x-k", key="k", subset="x", instruction=instruction, inputs=("source",))
    row_images = RowImages(row, MemoryImages({"source": source}), edited_path, Cache(None), DEFAULT_MAX_PIXELS)
    return [Request(q, row_images, protocol) for q in GEDIT.questions(row, protocol, {})]


def ask(client, request):
    """(parsed reply, reply text) of one request, with the run's bounded re-asks."""
    import time

    from pytest_editeval.data.cache import Cache
    from pytest_editeval.options.table import DEFAULT_MAX_PIXELS
    from pytest_editeval.scoring.evaluation import RowEvaluator

    evaluator = RowEvaluator(benchmark=GEDIT, protocol=request.protocol, images=None, context={}, edited_image=None,
                             edited_origin="", judge=client, cache=Cache(None), max_pixels=DEFAULT_MAX_PIXELS)
    reply = evaluator._ask(request.question, request.images, time.monotonic() + client.settings.row_deadline_s)
    return GEDIT.parse(request.question, reply["reply"]), reply["reply"]
