"""Setting up a run: everything decided from the settings and the host's context before any test runs (usage
errors here are one line): the benchmark, its dataset and the selected rows (or a shard's share of them), the
edited images (image mode) or the generation settings (model mode), thresholds, the baseline and its gates."""

from __future__ import annotations

import time
from pathlib import Path

from pytest_editeval import benchmarks
from pytest_editeval.benchmarks import BenchmarkOptions
from pytest_editeval.data.dataset import Row, flag_repeated_rows, select_rows
from pytest_editeval.data.edited_images import load_edited_images
from pytest_editeval.errors import InputError
from pytest_editeval.options.settings import RunSettings
from pytest_editeval.run.context import RunContext
from pytest_editeval.scoring.gate import resolve_threshold


class Plan:
    def __init__(self, settings: RunSettings, ctx: RunContext) -> None:
        self.settings = settings
        self.benchmark = benchmarks.get(settings.benchmark, ctx.rootpath).with_judge_recipe(settings.judge_recipe)
        self.warnings: list[str] = []
        if ctx.worker is not None:  # the controller already resolved (downloaded) the dataset
            self.dataset_dir = ctx.worker.dataset_dir
            self.fresh_after, self.started_at = ctx.worker.fresh_after, ctx.worker.started_at
        else:
            self.dataset_dir = self.benchmark.resolve_dataset(settings.dataset, settings.hub, settings.offline)
            self.started_at = time.time()
            self.fresh_after = self.started_at if settings.refresh else None
        # An archive the user passed is unpacked under .editeval/; one from a hub, beside it in the hub's cache.
        self.local_dataset = Path(settings.dataset).expanduser().exists()
        self.options = BenchmarkOptions(
            language=settings.language,
            extract_to=ctx.rootpath / ".editeval" / "datasets" if self.local_dataset else None,
            judge_prompts=settings.judge_prompts, kris_fix_anomaly=settings.kris_fix_anomaly,
            warn=self.warnings.append)
        self.dataset = self.benchmark.load(self.dataset_dir, self.options)
        self.dataset.rows, repeated = flag_repeated_rows(self.dataset.rows)
        self.warnings[:0] = [*self.dataset.warnings, *repeated]
        rows = self.dataset.rows
        self.subset_order = self.benchmark.subset_order(r.subset for r in rows if r.language == settings.language)
        self.selection = select_rows(rows, settings.language, settings.subsets, settings.limit, self.subset_order,
                                     self.benchmark.subset_hints)
        self.selected = self.selection  # what this process evaluates: the selection, or a shard's share of it
        self.owned: list[tuple[int, Row]] = []
        if settings.shard is not None:
            self._take_share(settings.shard)
        self.thresholds = self._resolved(settings.thresholds)
        self.warnings.extend(ctx.notes)
        self.generation = settings.generation  # model mode when set
        self.edited = None
        if self.generation is None:
            # --collect-only needs no images (a CI job may list the items before they exist)
            if not ctx.collect_only:
                self.edited = load_edited_images(settings.images, self.benchmark, rows, self.selected,
                                                 settings.language)
            self.model_name = settings.model_name or (self.edited.default_model_name if self.edited else "model")
        else:
            self.model_name = settings.model_name or model_display_name(self.generation.model)
            if self.generation.model and not ctx.collect_only and settings.ray is None:
                self.generation.check_devices()  # before collection, before any file is written (Ray: on the actors)
        self.baseline, self.compare_skipped = self._baseline(ctx.rootpath)
        self.compare_gates = self._resolved_compare_gates(settings.compare_gates)
        if settings.compare_gates and self.baseline is None and self.compare_skipped is None:
            raise InputError("--editeval-compare-fail needs a baseline: add --editeval-compare NAME_OR_PATH")
        self.position = {r.id: i for i, r in enumerate(self.selected)}

    def _take_share(self, shard) -> None:
        from pytest_editeval.run.shards import share

        if shard.count > len(self.selection):
            raise InputError(f"--editeval-shard {shard}: the selection has {len(self.selection)} rows, so some of "
                             f"{shard.count} shards would be empty; use at most {len(self.selection)} shards")
        self.owned = share(self.selection, shard)
        self.selected = [row for _, row in self.owned]

    def _resolved(self, thresholds):
        try:
            return [resolve_threshold(t, self.benchmark, self.subset_order, "threshold") for t in thresholds]
        except ValueError as exc:
            raise InputError(str(exc)) from None

    def _resolved_compare_gates(self, gates):
        from pytest_editeval.scoring.compare import resolve_compare_gate

        try:
            return [resolve_compare_gate(g, self.benchmark, [*self.subset_order, *self.benchmark.group_names()])
                    for g in gates]
        except ValueError as exc:
            raise InputError(str(exc)) from None

    def _baseline(self, rootpath: Path):
        """(the baseline run, why the comparison is skipped)."""
        s = self.settings
        if not s.compare:
            return None, None
        from pytest_editeval.report.runs import RunNotFound, load_run

        try:
            return load_run(s.compare, rootpath), None
        except RunNotFound as exc:
            if s.compare_missing != "skip":
                raise
            return None, f"{exc}; comparison skipped (--editeval-compare-missing=skip)"

    @property
    def shard_withheld(self) -> str | None:
        """Why a shard is not gated on its own (one line in the summary)."""
        shard = self.settings.shard
        if shard is None:
            return None
        return (f"shard {shard} ({len(self.selected)} of {len(self.selection)} selected rows) is not gated on its "
                "own: gate the merged shards with `pytest-editeval merge` (or pass --editeval-gate=always)")

    def shard_section(self) -> dict | None:
        """What a shard's results JSON says about its share (None for a whole run)."""
        s = self.settings
        if s.shard is None:
            return None
        from pytest_editeval.run.shards import shard_section

        return shard_section(s.shard, self.selection, self.owned, self.subset_order, s.dataset,
                             "local" if self.local_dataset else s.hub)

    @property
    def dataset_label(self) -> str:
        return f"{self.benchmark.name}-{self.settings.language}"

    @property
    def missing_origin(self) -> str:
        """Where a missing edited image was looked for."""
        return str(self.edited.origin) if self.edited else str(self.generation.output_dir) if self.generation else ""

    def prices(self) -> dict:
        """judge name ("" for a single judge) -> its price (None where none was given)."""
        s = self.settings
        if s.panel is not None:
            return {m.name: m.price for m in s.panel.members}
        return {"": s.judge_price}

    def judge_from_settings(self) -> dict | None:
        """The judge as results name it, before any judge started (None without a judge: --collect-only)."""
        s = self.settings
        if s.judge is None:
            return None
        if s.panel is not None:
            return {"backend": "panel", "model": " + ".join(m.name for m in s.panel.members), "recipe": s.judge.recipe,
                    "parameters": {"reduce": s.panel.reduce},
                    "panel": [{"name": m.name, "weight": m.weight, "backend": m.spec.backend, "model": m.spec.model}
                              for m in s.panel.members]}
        if s.judge.http is not None:
            spec, http = s.judge, s.judge.http
            return {"backend": spec.backend, "model": http.model, "host": http.host,
                    "endpoint": http.public_endpoint.split("?")[0], "recipe": spec.recipe}
        return {"backend": s.judge.backend, "model": s.judge.model, "recipe": s.judge.recipe}


def model_display_name(model: str | None) -> str:
    """The model's name in the table: its hub id, or its folder's name."""
    if not model:
        return "custom-editor"
    local = Path(model).expanduser()
    return local.resolve().name if local.exists() else model
