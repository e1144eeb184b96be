"""The JSON results file (`--editeval-json`), as pydantic models: one schema for writing and for reading
back (baselines, `pytest-editeval compare`). Never holds the API key: the judge is named by model and host."""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel

from ..aggregate import Aggregates, ScopeAggregate
from ..gate import GateResult
from ..verdict import METRICS, Verdict

SCHEMA_VERSION = 1


class MetricResult(BaseModel):
    mean: Optional[float]
    n: int
    stderr: Optional[float]


class SubsetResult(BaseModel):
    num: int
    errors: int
    missing: int
    semantic_consistency: MetricResult
    perceptual_quality: MetricResult
    overall: MetricResult


class ScopeResult(BaseModel):
    subsets: dict[str, SubsetResult]
    macro: dict[str, MetricResult]
    micro: dict[str, MetricResult]
    num: int
    errors: int
    missing: int
    error_rate: float
    missing_rate: float = 0.0


class SampleResult(BaseModel):
    id: str
    key: str
    subset: str
    language: str
    intersection: bool
    status: str
    error: Optional[str] = None
    semantic_consistency: Optional[float] = None
    perceptual_quality: Optional[float] = None
    overall: Optional[float] = None
    sc_scores: Optional[list[float]] = None
    pq_scores: Optional[list[float]] = None
    sc_reasoning: Optional[str] = None
    pq_reasoning: Optional[str] = None
    edited_image: Optional[str] = None
    instruction: Optional[str] = None


class JudgeInfo(BaseModel):
    model: str
    host: str
    endpoint: Optional[str] = None  # scheme, host, port and path; never credentials or query values


class ThresholdResult(BaseModel):
    expression: str
    actual: Optional[float]
    n: int
    passed: bool


class GateInfo(BaseModel):
    evaluated: bool
    passed: Optional[bool]  # null when the gate was not evaluated
    reason: Optional[str]
    failures: list[str] = []  # what failed the gate besides thresholds (rows without an edited image)
    thresholds: list[ThresholdResult]


class Comparison(BaseModel):
    baseline: dict  # the baseline's meta (name, model, ...)
    deltas: list[dict]  # paired deltas: metric, subset, n, current, baseline, delta, ci_low, ci_high
    gates: list[dict]  # expression, delta, ci_low, ci_high, n, passed


class RunResults(BaseModel):
    schema_version: int = SCHEMA_VERSION
    meta: dict = {}
    benchmark: str
    language: str
    protocol: str
    model: str
    judge: JudgeInfo
    complete: bool  # every selected row ran, none is missing its edited image, and the run was not stopped
    expected_rows: int
    rows_ran: Optional[int] = None
    allow_missing: bool = False  # rows without an edited image were passed over (--editeval-allow-missing)
    stopped: Optional[str] = None  # why the run stopped early (a fatal judge or set-up error)
    samples: list[SampleResult]
    missing: list[str]
    aggregates: dict[str, ScopeResult]
    gate: GateInfo
    comparison: Optional[Comparison] = None


def _scope(scope: ScopeAggregate) -> ScopeResult:
    return ScopeResult(
        subsets={name: SubsetResult(num=s.num, errors=s.errors, missing=s.missing,
                                    **{m: MetricResult(**s.metrics[m].to_dict()) for m in METRICS})
                 for name, s in scope.subsets.items()},
        macro={m: MetricResult(**scope.macro[m].to_dict()) for m in METRICS},
        micro={m: MetricResult(**scope.micro[m].to_dict()) for m in METRICS},
        num=scope.num, errors=scope.errors, missing=scope.missing, error_rate=scope.error_rate,
        missing_rate=scope.missing_rate,
    )


def build_results(*, benchmark: str, language: str, protocol: str, model: str, judge_model: str,
                  judge_host: str, verdicts: list[Verdict], aggregates: Aggregates, gate: GateResult,
                  complete: bool, meta: dict | None = None, comparison: dict | None = None,
                  judge_endpoint: str | None = None, allow_missing: bool = False,
                  stopped: str | None = None) -> RunResults:
    return RunResults(
        meta=meta or {}, comparison=Comparison(**comparison) if comparison else None,
        benchmark=benchmark, language=language, protocol=protocol, model=model,
        judge=JudgeInfo(model=judge_model, host=judge_host, endpoint=judge_endpoint),
        complete=complete, expected_rows=aggregates.expected_rows, rows_ran=aggregates.seen_rows,
        allow_missing=allow_missing, stopped=stopped,
        samples=[SampleResult(**v.to_record()) for v in verdicts if v.status != "missing"],
        missing=[v.id for v in verdicts if v.status == "missing"],
        aggregates={"full": _scope(aggregates.full), "intersection": _scope(aggregates.intersection)},
        gate=GateInfo(**gate.to_dict()),
    )
