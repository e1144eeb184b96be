"""pytest-editeval: gate image-editing models on GEdit-Bench with a VIEScore judge, from pytest.

This package's import path stays light on purpose: the pytest entry point (``plugin``) is imported in every
pytest run of an environment where the package is installed, evaluation or not.
"""

__version__ = "0.2.0"
