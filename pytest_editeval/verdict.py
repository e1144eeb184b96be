"""The per-row verdict: what one benchmark row scored, as a plain JSON-able record.

Generic over benchmarks: `scores` maps each of the benchmark's metrics to its value (None where the judge never
gave one readably), and `answers` keeps what the judge said to each question (the values read, its reasoning,
the reply itself, capped). The record travels on pytest's TestReport (and through pytest-xdist), lands in the
JSON results and feeds the aggregation, so it holds only str, float, bool, list, dict and None.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["scored", "error", "missing"]


@dataclass(frozen=True)
class Verdict:
    id: str
    key: str
    subset: str
    language: str
    tags: list[str]
    status: Status
    error: str | None = None
    scores: dict[str, float | None] = field(default_factory=dict)
    answers: dict[str, dict] = field(default_factory=dict)  # question -> {"values", "reasoning", "reply"}
    # Where the edited image came from (a path); lets reports show it without re-reading the run.
    edited_image: str | None = field(default=None, compare=False)
    instruction: str | None = None

    @classmethod
    def scored(cls, row: Any, scores: dict[str, float | None], answers: dict[str, dict],
               edited_image: str | None) -> Verdict:
        return cls(**_identity(row), status="scored", scores=dict(scores), answers=answers, edited_image=edited_image)

    @classmethod
    def failed(cls, row: Any, error: str, edited_image: str | None = None) -> Verdict:
        return cls(**_identity(row), status="error", error=error, edited_image=edited_image)

    @classmethod
    def missing(cls, row: Any, reason: str) -> Verdict:
        return cls(**_identity(row), status="missing", error=reason)

    def to_record(self) -> dict[str, Any]:
        # A shallow copy is enough (containers are built fresh for each verdict) and far cheaper than asdict.
        return dict(self.__dict__)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Verdict:
        return cls(**record)

    def metric(self, name: str) -> float | None:
        return self.scores.get(name)

    def has(self, tag: str | None) -> bool:
        return tag is None or tag in self.tags


def _identity(row: Any) -> dict[str, Any]:
    return {"id": row.id, "key": row.key, "subset": row.subset, "language": row.language,
            "tags": sorted(row.tags), "instruction": row.instruction}
