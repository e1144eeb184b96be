"""The JSON results file (`--editeval-json`), as pydantic models: one schema for writing and for reading back
(baselines, `pytest-editeval compare`). Never holds the API key: the judge is named by model and endpoint.

Schema 2 is generic over benchmarks: a sample carries `scores` {metric: value} and the judge's `answers` per
question; aggregates keep {mean, n, stderr, judge_stderr} per metric, per subset, group and scope. Files of
schema 1 (GEdit's three named metrics as fields) are upgraded when read, so saved runs of 0.1 still serve as
baselines. Fields added later (the judge's noise, usage and cost, a panel's judges) have defaults, so files
written before them read as runs judged once by one judge.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from pytest_editeval.scoring.aggregate import Aggregates, ScopeAggregate, SubsetAggregate
from pytest_editeval.scoring.gate import GateResult
from pytest_editeval.scoring.verdict import Verdict

SCHEMA_VERSION = 2
V1_METRICS = ("semantic_consistency", "perceptual_quality", "overall")


class MetricResult(BaseModel):
    mean: float | None
    n: int
    stderr: float | None  # over rows
    judge_stderr: float | None = None  # the judge's share (repeated judging): sqrt(sum s_i^2 / K_i) / n


class SubsetResult(BaseModel):
    num: int
    errors: int
    missing: int
    metrics: dict[str, MetricResult]
    judge_sd: float | None = None  # RMS of the rows' judge spread of the headline metric
    unreadable: dict[str, int] = {}  # metric -> scored rows missing it (the judge never answered it readably)


class ScopeResult(BaseModel):
    subsets: dict[str, SubsetResult]
    groups: dict[str, SubsetResult] = {}
    macro: dict[str, MetricResult]
    micro: dict[str, MetricResult]
    num: int
    errors: int
    missing: int
    error_rate: float
    missing_rate: float = 0.0
    judge_sd: float | None = None
    unreadable: dict[str, int] = {}  # metric -> scored rows missing it (the judge never answered it readably)


class SampleResult(BaseModel):
    id: str
    key: str
    subset: str
    language: str
    tags: list[str] = []
    status: str
    error: str | None = None
    scores: dict[str, float | None] = {}
    answers: dict[str, dict[str, Any]] = {}
    edited_image: str | None = None
    instruction: str | None = None
    judge_sd: dict[str, float | None] = {}  # metric -> SD over the row's samples (K > 1)
    sample_scores: list[dict[str, float | None]] = []  # the row formula on each sample (K > 1)
    judge_scores: dict[str, dict[str, float | None]] = {}  # a panel: each judge's own scores of the row


class JudgeInfo(BaseModel):
    backend: str = "openai"  # openai | transformers | vllm (files written before backends existed: openai)
    model: str
    digest: str | None = None  # SHA-256 of the judge model's files (transformers, vllm)
    adapter_digest: str | None = None  # ... and of its LoRA adapter's
    recipe: str | None = None  # the judging recipe (viescore, editscore, or the benchmark's own)
    host: str = ""
    endpoint: str | None = None  # scheme, host, port and path; never credentials or query values
    parameters: dict[str, Any] = {}  # generation parameters (and, in-process, device, precision, batch size)
    samples_per_question: int = 1  # --editeval-judge-samples
    sample_average: str = "first"  # first: the row formula on the samples' mean; last: the mean of its results
    usage: dict[str, int] | None = None  # {prompt_tokens, completion_tokens, requests} of this run
    cache_saved: dict[str, int] | None = None  # {prompt_tokens, completion_tokens, answers} read from the cache
    cost: dict[str, float] | None = None  # {usd, cache_saved_usd, usd_per_million_*} with a price
    panel: list[dict[str, Any]] = []  # a panel's judges: name, weight, backend, model, ..., usage, cost


class ThresholdResult(BaseModel):
    expression: str
    actual: float | None
    n: int
    passed: bool


class GateInfo(BaseModel):
    evaluated: bool
    passed: bool | None  # null when the gate was not evaluated
    reason: str | None
    failures: list[str] = []  # what failed the gate besides thresholds (rows without an edited image)
    thresholds: list[ThresholdResult]


class Comparison(BaseModel):
    baseline: dict  # the baseline's meta (name, model, ...)
    deltas: list[dict]  # paired deltas: metric, subset, n, current, baseline, delta, ci_low, ci_high
    gates: list[dict]  # expression, delta, ci_low, ci_high, n, passed
    warnings: list[str] = []


class ShardRow(BaseModel):
    id: str
    key: str
    subset: str
    tags: list[str] = []
    position: int = Field(ge=0)  # in the whole selection (all shards together)


class ShardInfo(BaseModel):
    """A shard run's share (`--editeval-shard K/N`): what `pytest-editeval merge` checks and puts back together."""
    index: int = Field(ge=1)
    count: int = Field(ge=1)
    selected_rows: int = Field(ge=0)  # rows of the whole selection, all shards together
    selection_sha256: str  # fingerprint of the whole selection's row ids, in order
    subsets: list[str]  # the benchmark's subset order for the language (aggregation and thresholds)
    dataset: str  # --editeval-dataset as given (a hub id or a path): the merge's HTML reads source images from it
    hub: str  # the hub of a dataset id, or "local" for a path
    rows: list[ShardRow]  # every row this shard owns


class BenchmarkInfo(BaseModel):
    """What the numbers mean: the benchmark's metrics, how a row is scored, the options that changed it."""
    title: str = ""
    metrics: list[dict] = []
    headline: str = ""
    row_formula: str = ""
    options: dict[str, Any] = {}


class RunResults(BaseModel):
    schema_version: int = SCHEMA_VERSION
    meta: dict = {}
    benchmark: str
    benchmark_info: BenchmarkInfo = BenchmarkInfo()
    language: str
    protocol: str
    model: str
    judge: JudgeInfo
    complete: bool  # every selected row ran, none is missing its edited image, and the run was not stopped
    expected_rows: int
    rows_ran: int | None = None
    allow_missing: bool = False  # rows without an edited image were passed over (--editeval-allow-missing)
    stopped: str | None = None  # why the run stopped early (a fatal judge or set-up error)
    shard: ShardInfo | None = None  # a shard run's share; null for a whole (or merged) run
    samples: list[SampleResult]
    missing: list[str]
    aggregates: dict[str, ScopeResult]
    gate: GateInfo
    comparison: Comparison | None = None
    judge_aggregates: dict[str, dict[str, ScopeResult]] = {}  # a panel: each judge's own aggregates
    extra: dict[str, Any] = {}  # fields a conftest.py added (the pytest_editeval_results_json hook)

    def sample_records(self) -> list[dict]:
        return [s.model_dump() for s in self.samples]


def _part(part: SubsetAggregate) -> SubsetResult:
    return SubsetResult(num=part.num, errors=part.errors, missing=part.missing,
                        metrics={m: MetricResult(**s.to_dict()) for m, s in part.metrics.items()},
                        judge_sd=part.judge_sd, unreadable=dict(part.unreadable))


def _scope(scope: ScopeAggregate) -> ScopeResult:
    return ScopeResult(
        subsets={name: _part(s) for name, s in scope.subsets.items()},
        groups={name: _part(g) for name, g in scope.groups.items()},
        macro={m: MetricResult(**s.to_dict()) for m, s in scope.macro.items()},
        micro={m: MetricResult(**s.to_dict()) for m, s in scope.micro.items()},
        num=scope.num, errors=scope.errors, missing=scope.missing, error_rate=scope.error_rate,
        missing_rate=scope.missing_rate, judge_sd=scope.judge_sd, unreadable=dict(scope.unreadable),
    )


def build_results(*, benchmark: str, language: str, protocol: str, model: str, judge: dict,
                  verdicts: list[Verdict], aggregates: Aggregates, gate: GateResult,
                  complete: bool, meta: dict | None = None, comparison: dict | None = None, allow_missing: bool = False,
                  stopped: str | None = None, benchmark_info: dict | None = None,
                  shard: dict | None = None, judge_aggregates: dict[str, Aggregates] | None = None) -> RunResults:
    return RunResults(
        meta=meta or {}, comparison=Comparison(**comparison) if comparison else None,
        benchmark=benchmark, benchmark_info=BenchmarkInfo(**(benchmark_info or {})), language=language,
        protocol=protocol, model=model,
        judge=JudgeInfo(**{k: v for k, v in judge.items() if v is not None}),
        complete=complete, expected_rows=aggregates.expected_rows, rows_ran=aggregates.seen_rows,
        allow_missing=allow_missing, stopped=stopped, shard=ShardInfo(**shard) if shard else None,
        samples=[SampleResult(**v.to_record()) for v in verdicts if v.status != "missing"],
        missing=[v.id for v in verdicts if v.status == "missing"],
        aggregates={name: _scope(scope) for name, scope in aggregates.scopes.items()},
        gate=GateInfo(**gate.to_dict()),
        judge_aggregates={name: {scope_name: _scope(scope) for scope_name, scope in agg.scopes.items()}
                          for name, agg in (judge_aggregates or {}).items()},
    )


def read_results(data: bytes | str) -> RunResults:
    """A results file of any schema version, as the current model (schema 1 is upgraded)."""
    import json

    raw = json.loads(data)
    if isinstance(raw, dict) and raw.get("schema_version", 1) == 1 and "samples" in raw:
        raw = upgrade_v1(raw)
    return RunResults.model_validate(raw)


def upgrade_v1(raw: dict) -> dict:
    """Schema 1 (GEdit only: metrics as named fields, reasoning per aspect) to schema 2."""
    raw = dict(raw, schema_version=SCHEMA_VERSION)
    samples = []
    for sample in raw.get("samples", []):
        sample = dict(sample)
        sample["scores"] = {m: sample.pop(m, None) for m in V1_METRICS}
        answers = {}
        for aspect, short in (("semantic_consistency", "sc"), ("perceptual_quality", "pq")):
            values, reasoning = sample.pop(f"{short}_scores", None), sample.pop(f"{short}_reasoning", None)
            if values is not None:
                answers[aspect] = {"values": values, "reasoning": reasoning}
        sample["answers"] = answers
        sample["tags"] = ["intersection"] if sample.pop("intersection", False) else []
        samples.append(sample)
    raw["samples"] = samples
    scopes = {}
    for name, scope in (raw.get("aggregates") or {}).items():
        scope = dict(scope)
        scope["subsets"] = {s: {"num": v.get("num", 0), "errors": v.get("errors", 0), "missing": v.get("missing", 0),
                                "metrics": {m: v[m] for m in V1_METRICS if m in v}}
                            for s, v in (scope.get("subsets") or {}).items()}
        scopes[name] = scope
    raw["aggregates"] = scopes
    gate = dict(raw.get("gate") or {})
    if gate and not gate.get("evaluated"):
        gate["passed"] = None
    raw["gate"] = gate
    return raw
