"""A model that is not a diffusers pipeline: override `editeval_pipeline` in the conftest.py of the folder you
run pytest in. Return any callable `(image, instruction, seed) -> PIL.Image`; no --editeval-model is needed.

Run:  pytest --editeval-benchmark=gedit --editeval-judge-url=... (in this folder)
"""

import pytest
from PIL import ImageEnhance, ImageOps


class MyEditor:
    # Give the editor an identity: its images are then cached, and a re-run costs no model time.
    editeval_identity = {"model": "my-editor", "version": 1}

    def __call__(self, image, instruction, seed):
        # Stand-in for your model's inference call.
        edited = ImageOps.autocontrast(image)
        if "color" in instruction or "颜色" in instruction:
            edited = ImageEnhance.Color(edited).enhance(1.8)
        return edited


@pytest.fixture(scope="session")
def editeval_pipeline():
    editor = MyEditor()
    yield editor
    # release GPU memory or close a server connection here
