"""The pytest-xdist hand-off between the controller and its workers (registered only when xdist is installed,
whose hooks are unknown otherwise).

Per-row records travel on the test reports. What only a worker knows (its judge and cache counters, a fatal
stop) travels back in `workeroutput`, because `config.stash` is not copied back. The controller resolves the
dataset once and gives workers its folder, so that they never hit the hub themselves.
"""

from __future__ import annotations


class XdistHooks:
    def __init__(self, plugin) -> None:
        self.plugin = plugin

    def pytest_xdist_auto_num_workers(self, config):
        """`-n auto` in model mode: one worker per visible GPU (each worker takes its own)."""
        run = self.plugin.run
        generation = run.generation
        if generation is None or run.custom_editor:
            return None
        if generation.device is not None and not generation.device.startswith("cuda"):
            return None
        import torch

        return torch.cuda.device_count() or None

    def pytest_configure_node(self, node) -> None:
        run = self.plugin.run
        node.workerinput["editeval_dataset_dir"] = str(run.dataset_dir)
        node.workerinput["editeval_fresh_after"] = run.fresh_after
        node.workerinput["editeval_started_at"] = run.started_at

    def pytest_testnodedown(self, node, error) -> None:
        self.plugin.worker_done(getattr(node, "workeroutput", None) or {})


def report_to_controller(config, run) -> None:
    """A worker's side: what the controller must know, in workeroutput."""
    output = config.workeroutput
    output["editeval_counts"] = run.counts()
    if run.judge is not None:  # the controller never starts a judge: it names the judge from this
        output["editeval_judge"] = run.judge.describe()
    if run.stopped is not None:
        output["editeval_stopped"] = [run.stopped.message, run.stopped.exit_code]
