"""Helpers to exercise the plugin without a network: dataset writers shaped like each benchmark (gedit_factory,
imgedit_factory, kris_factory) with edited-image writers and the loopback judge rules that score them, and a real
OpenAI-compatible judge server on 127.0.0.1 whose answers the caller controls. Used by this project's tests and
perf scripts; also handy to check a CI setup before paying for a real judge."""

from .gedit_factory import GeditRow, edited_red, make_gedit_dataset, write_edited_images
from .judge_server import Fault, JudgeCall, JudgeServer, json_reply, rule_scores

__all__ = ["Fault", "GeditRow", "JudgeCall", "JudgeServer", "edited_red", "json_reply", "make_gedit_dataset",
           "rule_scores", "write_edited_images"]
