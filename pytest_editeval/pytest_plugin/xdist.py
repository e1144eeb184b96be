"""The pytest-xdist hand-off between the controller and its workers (registered only when xdist is installed,
whose hooks are unknown otherwise).

Per-row records travel on the test reports. What only a worker knows (its judge and cache counters, a fatal
stop) travels back in `workeroutput`, because `config.stash` is not copied back. The controller resolves the
dataset once and gives workers its folder, so that they never hit the hub themselves.
"""

from __future__ import annotations


class XdistHooks:
    def __init__(self, run) -> None:
        self.run = run

    def pytest_xdist_auto_num_workers(self, config):
        """`-n auto` in model mode: one worker per visible GPU (each worker takes its own)."""
        generation = self.run.plan.generation
        if generation is None or self.run.execution.custom_editor:
            return None
        if generation.device is not None and not generation.device.startswith("cuda"):
            return None
        import torch

        return torch.cuda.device_count() or None

    def pytest_configure_node(self, node) -> None:
        from pytest_editeval.run import WorkerShare

        plan = self.run.plan
        node.workerinput.update(WorkerShare(plan.dataset_dir, plan.fresh_after, plan.started_at).to_input())

    def pytest_testnodedown(self, node, error) -> None:
        """The controller's side of report_to_controller."""
        from pytest_editeval.scoring.outcome import Stop

        output = getattr(node, "workeroutput", None) or {}
        stopped = output.get("editeval_stopped")
        self.run.execution.worker_finished(output.get("editeval_counts"), output.get("editeval_judge"),
                                           Stop(*stopped) if stopped else None)


def report_to_controller(config, run) -> None:
    """A worker's side: what the controller must know, in workeroutput."""
    output, execution = config.workeroutput, run.execution
    output["editeval_counts"] = execution.counts()
    if execution.judge is not None:  # the controller never starts a judge: it names the judge from this
        output["editeval_judge"] = execution.judge.describe()
    if execution.stopped is not None:
        output["editeval_stopped"] = [execution.stopped.message, execution.stopped.exit_code]
