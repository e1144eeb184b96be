"""The per-row verdict: what one benchmark row scored, as a plain JSON-able record.

Generic over benchmarks: `scores` maps each of the benchmark's metrics to its value (None where the judge never
gave one readably), and `answers` keeps what the judge said to each question (the values read, its reasoning,
the reply itself, capped, and its tokens; with repeated judging every sample, with a panel every judge's). With
several samples a row also keeps the row formula's result on each (`sample_scores`) and their standard deviation
per metric (`judge_sd`, the judge spread); with a panel, each judge's own scores (`judge_scores`). The record
travels on pytest's TestReport (and through pytest-xdist), lands in the JSON results and feeds the aggregation,
so it holds only str, float, bool, list, dict and None.
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
    judge_sd: dict[str, float | None] = field(default_factory=dict)  # metric -> SD over the samples (K > 1)
    sample_scores: list[dict[str, float | None]] = field(default_factory=list)  # the row formula on each sample
    judge_scores: dict[str, dict[str, float | None]] = field(default_factory=dict)  # a panel's judges, each alone

    @classmethod
    def scored(cls, row: Any, scores: dict[str, float | None], answers: dict[str, dict],
               edited_image: str | None, *, judge_sd: dict | None = None, sample_scores: list | None = None,
               judge_scores: dict | None = None) -> Verdict:
        return cls(**_identity(row), status="scored", scores=dict(scores), answers=answers, edited_image=edited_image,
                   judge_sd=dict(judge_sd or {}), sample_scores=list(sample_scores or []),
                   judge_scores=dict(judge_scores or {}))

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
        return cls(**{k: v for k, v in record.items() if k in _FIELDS})

    def as_judge(self, name: str) -> Verdict:
        """This row as one judge of a panel scored it alone (for the per-judge table and aggregates)."""
        import dataclasses

        return dataclasses.replace(self, scores=dict(self.judge_scores.get(name, {})), judge_sd={}, sample_scores=[],
                                   judge_scores={})

    def metric(self, name: str) -> float | None:
        return self.scores.get(name)

    def unreadable_metrics(self) -> list[str]:
        """The metrics of a scored row that the judge never answered readably (each missing for this row only),
        in the order of its answers; read from the answers, so results files written before this still say it."""
        names: list[str] = []
        for answer in self.answers.values():
            for metric in answer.get("unreadable", ()) if isinstance(answer, dict) else ():
                if metric not in names:
                    names.append(metric)
        return names

    def unreadable_reasons(self) -> list[str]:
        """Why: the error of each question whose replies all stayed unreadable."""
        return [a["error"] for a in self.answers.values() if isinstance(a, dict) and a.get("error")]

    def has(self, tag: str | None) -> bool:
        return tag is None or tag in self.tags


def _identity(row: Any) -> dict[str, Any]:
    return {"id": row.id, "key": row.key, "subset": row.subset, "language": row.language,
            "tags": sorted(row.tags), "instruction": row.instruction}


_FIELDS = {f.name for f in Verdict.__dataclass_fields__.values()}
