"""Testing with pytest-editeval without a network, a key or a GPU.

- `JudgeServer`: a real OpenAI-compatible judge on 127.0.0.1 whose answers you script: `scores(call)` gives the
  numbers for a `JudgeCall` (what was asked: texts, images, parameters), `reply(scores, call)` the reply text
  (`json_reply` by default), `faults` queues failures (`Fault`: a status, a hang, a dropped connection...).
  `rule_scores` is GEdit's fixed rule.
- `make_dataset(benchmark, folder)`: a small dataset shaped like the benchmark's and edited images for it, by the
  dataset writer the benchmark declares (`Benchmark.dataset_writer`, a `DatasetWriter`), with the judge rule that
  scores them; `MadeDataset` is what it returns.
- The fixture plugin `pytest_editeval.testing.fixtures` (`pytest_plugins = ["pytest_editeval.testing.fixtures"]` or
  `-p pytest_editeval.testing.fixtures`): the `editeval_judge`, `editeval_judge_for` and `editeval_dataset` fixtures.
- `python -m pytest_editeval.testing.tiny_pipelines FOLDER`: a tiny random diffusers pipeline to try model mode on
  a CPU.

The benchmark-shaped writers (`gedit_factory`, `imgedit_factory`, ...) are reached through `make_dataset`; this
project's own test scaffolding lives in `_scaffold` and is not part of this API.
"""

from pytest_editeval.testing.datasets import DatasetWriter, MadeDataset, WrittenDataset, make_dataset
from pytest_editeval.testing.judge_server import Fault, JudgeCall, JudgeServer, json_reply, rule_scores

__all__ = ["DatasetWriter", "Fault", "JudgeCall", "JudgeServer", "MadeDataset", "WrittenDataset", "json_reply",
           "make_dataset", "rule_scores"]
