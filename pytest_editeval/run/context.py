"""What the run core knows of its host (pytest, or a command): one small object, so that nothing under run/
imports pytest or reads pytest's config. The pytest face (roles.py) fills it in; a command or a test passes
its own."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class WorkerShare:
    """What an xdist controller resolved once for its workers, so that they never hit the hub themselves."""

    dataset_dir: Path
    fresh_after: float | None
    started_at: float | None

    def to_input(self) -> dict:
        return {"editeval_dataset_dir": str(self.dataset_dir), "editeval_fresh_after": self.fresh_after,
                "editeval_started_at": self.started_at}

    @classmethod
    def from_input(cls, workerinput: dict | None) -> WorkerShare | None:
        if not workerinput or not workerinput.get("editeval_dataset_dir"):
            return None
        return cls(Path(workerinput["editeval_dataset_dir"]), workerinput.get("editeval_fresh_after"),
                   workerinput.get("editeval_started_at"))


def _nothing(*_args) -> None:
    pass


@dataclass(frozen=True)
class RunContext:
    """The host's facts: where the run lives, whether it only lists its items, what a worker was given, and the
    host's ways to speak (a progress line now), to tell extensions of a judge and to quiet library warnings."""

    rootpath: Path
    collect_only: bool = False
    worker: WorkerShare | None = None  # in an xdist worker: what the controller resolved
    in_worker: bool = False  # an xdist worker process (it judges only its own items unless the cache is shared)
    say: Callable[[str], None] = _nothing  # one progress line on the terminal now, from any thread
    judge_created: Callable[[str, dict], None] = _nothing  # the extension hook (a refusal raises InputError)
    notes: tuple[str, ...] = ()  # said once in the summary (e.g. ini lines that options replaced)
    quiet_diffusers: Callable[[], None] = _nothing  # ignore diffusers' deprecations (also in the host's filters)
