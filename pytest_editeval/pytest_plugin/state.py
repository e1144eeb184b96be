"""Stash keys shared by the plugin's modules (state lives on the plugin object, reached through these)."""

import pytest

PLUGIN_KEY = pytest.StashKey()  # config.stash: the active EditEvalPlugin
VERDICT_KEY = pytest.StashKey()  # item.stash: the item's Verdict, read when its report is made
SLICES_KEY = pytest.StashKey()  # config.stash: results of @pytest.mark.editeval slices, by marker arguments
