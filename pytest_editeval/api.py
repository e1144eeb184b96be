"""The Python API for test suites: what `editeval_result` returns.

    @pytest.mark.editeval(benchmark="gedit", subsets=["color_alter"], limit=5)
    def test_checkpoint(editeval_result):
        assert editeval_result.score("overall") >= 7.0
        assert editeval_result.score("semantic_consistency", subset="color_alter") >= 6.5
        assert not editeval_result.errors

A score is a float that prints its n and spread, so a failed assertion reads
`assert 6.412 [overall, macro: n=20, stderr 0.231] >= 7.0`. Metric names (and their aliases) are the chosen
benchmark's; `subset=` also takes a group (KRIS's dimensions and knowledge types).
"""

from __future__ import annotations

import math

from pytest_editeval.scoring.gate import COUNT_METRICS
from pytest_editeval.scoring.verdict import Verdict


class Score(float):
    """A mean, usable as a float, that shows where it comes from."""

    def __new__(cls, value: float | None, *, label: str, n: int, stderr: float | None) -> Score:
        score = super().__new__(cls, math.nan if value is None else value)
        score.label, score.n, score.stderr = label, n, stderr
        return score

    def __repr__(self) -> str:
        if math.isnan(self):
            return f"nan [{self.label}: no scored rows]"
        spread = "stderr n/a" if self.stderr is None else f"stderr {self.stderr:.3f}"
        return f"{float(self):.3f} [{self.label}: n={self.n}, {spread}]"

    __str__ = __repr__


class EditEvalResult:
    """The outcome of one benchmark slice: scores, errors and per-row verdicts."""

    def __init__(self, outcome, benchmark, scope: str | None = None) -> None:
        self._outcome = outcome
        self._benchmark = benchmark
        self._scope = scope or benchmark.scopes[0].name

    def score(self, metric: str | None = None, subset: str | None = None, averaging: str | None = None) -> Score:
        benchmark = self._benchmark
        metric = metric or benchmark.headline_metric
        name = benchmark.metric_aliases().get(metric)
        if name is None or name in COUNT_METRICS:
            raise ValueError(f"unknown metric {metric!r}: {benchmark.name} has "
                             f"{', '.join(m.name for m in benchmark.metrics)} (error_rate is a property; missing "
                             "rows are .missing)")
        scope = self._outcome.aggregates.scope(self._scope)
        prefix = "" if self._scope == benchmark.scopes[0].name else f"{self._scope} "
        if subset is not None:
            part = scope.subsets.get(subset) or scope.groups.get(subset)
            if part is None:
                raise ValueError(f"subset {subset!r} is not in this result: it has "
                                 + ", ".join([*scope.subsets, *scope.groups]))
            stats = part.metrics[name]
            return Score(stats.mean, label=f"{prefix}{name}[{subset}]", n=stats.n, stderr=stats.stderr)
        averaging = averaging or benchmark.default_averaging
        if averaging not in ("macro", "micro"):
            raise ValueError("averaging is 'macro' (mean of subset means) or 'micro' (mean over rows)")
        stats = getattr(scope, averaging)[name]
        return Score(stats.mean, label=f"{prefix}{name}, {averaging}", n=stats.n, stderr=stats.stderr)

    def scoped(self, scope: str) -> EditEvalResult:
        """The same result restricted to another scope of the benchmark (GEdit: "intersection")."""
        if scope not in self._outcome.aggregates.scopes:
            raise ValueError(f"scope {scope!r} is not in this result: it has {', '.join(self._outcome.aggregates.scopes)}")
        return EditEvalResult(self._outcome, self._benchmark, scope)

    @property
    def intersection(self) -> EditEvalResult:
        return self.scoped("intersection")

    @property
    def samples(self) -> list[Verdict]:
        tag = self._benchmark.scope(self._scope).tag
        return [v for v in self._outcome.verdicts if v.has(tag)]

    @property
    def errors(self) -> list[Verdict]:
        return [v for v in self.samples if v.status == "error"]

    @property
    def missing(self) -> list[Verdict]:
        """Rows without an edited image (only with allow_missing=True: otherwise the slice fails first)."""
        return [v for v in self.samples if v.status == "missing"]

    @property
    def error_rate(self) -> float:
        return self._outcome.aggregates.scope(self._scope).error_rate

    def __repr__(self) -> str:
        return f"<EditEvalResult {self.score()!r}, {len(self.errors)} errors>"
