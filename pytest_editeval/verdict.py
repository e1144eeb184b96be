"""The per-sample verdict: what one benchmark row scored, as a plain JSON-able record.

Pure functions only. The record travels on pytest's TestReport (and through pytest-xdist), lands in the JSON
results and feeds the aggregation, so it holds only str, float, bool, list and None.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

METRICS = ("semantic_consistency", "perceptual_quality", "overall")
Status = Literal["scored", "error", "missing"]


def row_scores(sc_scores: list[float], pq_scores: list[float]) -> tuple[float, float, float]:
    """GEdit-Bench's per-row formula: SC = min(SC list), PQ = min(PQ list), O = sqrt(SC * PQ)."""
    sc = float(min(sc_scores))
    pq = float(min(pq_scores))
    return sc, pq, math.sqrt(sc * pq)


@dataclass(frozen=True)
class Verdict:
    id: str
    key: str
    subset: str
    language: str
    intersection: bool
    status: Status
    error: str | None = None
    semantic_consistency: float | None = None
    perceptual_quality: float | None = None
    overall: float | None = None
    sc_scores: list[float] | None = None
    pq_scores: list[float] | None = None
    sc_reasoning: str | None = None
    pq_reasoning: str | None = None
    # Where the edited image came from (a path); lets reports show it without re-reading the run.
    edited_image: str | None = field(default=None, compare=False)
    instruction: str | None = None

    @classmethod
    def scored(cls, sample: Any, sc: "JudgedAspect", pq: "JudgedAspect", edited_image: str | None) -> Verdict:
        s, p, o = row_scores(sc.scores, pq.scores)
        return cls(
            **_identity(sample), status="scored", semantic_consistency=s, perceptual_quality=p, overall=o,
            sc_scores=list(sc.scores), pq_scores=list(pq.scores),
            sc_reasoning=sc.reasoning, pq_reasoning=pq.reasoning, edited_image=edited_image,
        )

    @classmethod
    def failed(cls, sample: Any, error: str, edited_image: str | None = None) -> Verdict:
        return cls(**_identity(sample), status="error", error=error, edited_image=edited_image)

    @classmethod
    def missing(cls, sample: Any, reason: str) -> Verdict:
        return cls(**_identity(sample), status="missing", error=reason)

    def to_record(self) -> dict[str, Any]:
        # A shallow copy is enough (lists are copied on creation) and far cheaper than dataclasses.asdict.
        return dict(self.__dict__)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Verdict:
        return cls(**record)

    def metric(self, name: str) -> float | None:
        return getattr(self, name)


@dataclass(frozen=True)
class JudgedAspect:
    """One judge question answered: the score list it returned and its reasoning."""

    scores: list[float]
    reasoning: str | None


def _identity(sample: Any) -> dict[str, Any]:
    return {
        "id": sample.id, "key": sample.key, "subset": sample.subset,
        "language": sample.language, "intersection": sample.intersection, "instruction": sample.instruction,
    }
