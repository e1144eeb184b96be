"""Executing a run: the judges, the image producer (model mode) and the scheduler that judges every selected row
ahead of the items; the records of the rows (this process's, and what xdist workers report); every thread
stopped and joined at the end; and the counters and judge account that the report needs."""

from __future__ import annotations

import threading
from pathlib import Path

from pytest_editeval.data.cache import Cache, write_atomic
from pytest_editeval.data.dataset import Row
from pytest_editeval.errors import InputError
from pytest_editeval.run.context import RunContext
from pytest_editeval.run.plan import Plan
from pytest_editeval.scoring.outcome import Stop
from pytest_editeval.scoring.verdict import Verdict

PREPARE_AHEAD_THREADS = 4


class Execution:
    def __init__(self, plan: Plan, ctx: RunContext) -> None:
        self.plan = plan
        self.settings = plan.settings
        self.ctx = ctx
        self.stop = threading.Event()
        self.records: dict[str, dict] = {}  # row id -> record: one per row, however many tests look at it
        self.stopped: Stop | None = None
        self.custom_editor = False  # model mode: the user's conftest overrides editeval_pipeline
        self.model_name: str | None = None  # the name a custom editor gives itself (beats the plan's default)
        self.scheduler = None
        self.judge = None  # the judge (judges.Judge), created when the run starts
        self.voices: list = []  # the judges as the evaluation asks them (judges.panel.Voice), once started
        self.cache: Cache | None = None
        self.evaluator = None
        self._evaluator_parts: dict = {}
        self.producer = None  # model mode: generates the edited images ahead of the judge
        self.model_folder: Path | None = None  # model mode: the resolved diffusers pipeline folder
        self.ray_pool = None  # the Ray actors of --editeval-ray, once generation has started
        self._threads: list[threading.Thread] = []  # helper threads to join at the end
        self.still_running: list[str] = []  # threads that did not stop when asked (said in the summary)
        self.worker_judge: dict | None = None  # the judge as an xdist worker described it (the controller's own
        # execution never starts one)
        self.worker_counts: list[dict] = []  # judge and cache counters reported by xdist workers

    # ---- starting -----------------------------------------------------------------------------------------
    def start(self, rows: list[Row]) -> None:
        from pytest_editeval.run.scheduler import Scheduler
        from pytest_editeval.scoring.evaluation import RowEvaluator

        s, plan = self.settings, self.plan
        specs = [m.spec for m in s.panel.members] if s.panel is not None else [s.judge]
        workers = s.workers
        for spec in specs:
            if spec.backend == "transformers":  # enough rows in flight to fill a batch, also at one question a row
                workers = max(workers, 2 * spec.batch_size)
        usable = [r for r in rows if r.problem is None]
        if usable and usable[0].inputs:  # read the first row's image while the judge is set up
            self._spawn(plan.dataset.images.read, usable[0].inputs[0], name="editeval-prefetch-first")
        root = s.cache_dir
        self.cache = Cache(root if root is None else root.resolve(), fresh_after=plan.fresh_after,
                           shared_after=plan.started_at if self.ctx.in_worker else None)
        self.judge, self.voices = self._create_judges(workers)
        if plan.generation is None:
            paths = plan.edited.paths
            edited_image = lambda row: paths.get(row.key)  # noqa: E731
            where = str(plan.edited.origin)
        else:
            self.producer = self._producer(usable)
            edited_image = self.producer.result
            where = str(plan.generation.output_dir)
        self._evaluator_parts = dict(benchmark=plan.benchmark, protocol=s.protocol, images=plan.dataset.images,
                                     context=plan.dataset.context, edited_origin=where, voices=self.voices,
                                     samples=s.judge_samples, order=s.judge_average,
                                     reduce=s.panel.reduce if s.panel else "mean", cache=self.cache,
                                     max_pixels=s.max_pixels)
        evaluator = self.evaluator = RowEvaluator(edited_image=edited_image, **self._evaluator_parts)
        # Each row asks its questions (times its samples and judges) at once, so workers/2 rows fill the request
        # slots (at two questions a row); a few more rows prepare their images (CPU) meanwhile. More would only
        # hold more decoded images in memory.
        per_row = s.judge_samples * len(self.voices)
        self.scheduler = Scheduler(evaluator.evaluate, -(-workers // (2 * per_row)) + PREPARE_AHEAD_THREADS,
                                   self.stop, claim=evaluator.claim)
        # Without a shared cache, xdist workers cannot tell who judges what: judge only one's own items.
        if not (self.ctx.in_worker and not self.cache.enabled):
            self.scheduler.submit(rows)

    def _create_judges(self, workers: int):
        """(the run's judge, its voices): one judge, or a panel's judges with their names and weights."""
        from pytest_editeval import judges
        from pytest_editeval.judges.panel import Panel, Voice

        s = self.settings
        workdir = self.ctx.rootpath / ".editeval"
        members = [("", 1.0, s.judge, s.judge_price)] if s.panel is None else \
            [(m.name, m.weight, m.spec, m.price) for m in s.panel.members]
        voices = []
        try:
            for name, weight, spec, price in members:
                judge = judges.create(spec, stop=self.stop, max_in_flight=workers, cache=self.cache, say=self.ctx.say,
                                      workdir=workdir)
                voices.append(Voice(name, weight, judge, price))
                self.ctx.judge_created(name, judge.describe())  # a conftest may log or refuse it (InputError)
        except BaseException:
            for voice in voices:
                voice.judge.close()
            raise
        if s.panel is None:
            return voices[0].judge, voices
        return Panel(voices, s.panel.reduce, s.judge.recipe), voices

    def _spawn(self, target, *args, name: str) -> None:
        thread = threading.Thread(target=_quietly(target), args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    # ---- model mode ---------------------------------------------------------------------------------------
    def _producer(self, rows: list[Row]):
        from pytest_editeval.data.cache import folder_identity
        from pytest_editeval.generation.pipeline import ImageProducer, check_model_folder, resolve_model

        gen, plan = self.plan.generation, self.plan
        identity = None
        if not self.custom_editor:
            self.model_folder = resolve_model(gen)
            class_name = gen.pipeline_cls or check_model_folder(self.model_folder).get("_class_name", "")
            identity = gen.identity(folder_identity(self.model_folder, self.cache), class_name)
        producer = ImageProducer(rows, plan.dataset.images, plan.benchmark, self.cache, gen.output_dir, gen.seed,
                                 gen.batch_size, identity, self.stop, self.settings.max_pixels)
        producer.resolve_cached()
        return producer

    def load_editor(self):
        """The default editor: the diffusers pipeline of --editeval-model (called by the fixture)."""
        from pytest_editeval.generation.pipeline import load_diffusers_editor, resolve_model

        gen = self.plan.generation
        if self.settings.ray is not None:  # each Ray actor loads it; nothing heavy on the driver
            from pytest_editeval.generation.ray_actors import RemotePipeline

            return RemotePipeline(gen)
        folder = self.model_folder or resolve_model(gen)
        self.ctx.quiet_diffusers()
        return load_diffusers_editor(gen, folder, gen.resolve_device())

    def adopt_editor(self, editor) -> None:
        """The editor exists (its fixture was set up): a custom one that names itself gets its images cached
        and names the model in the table; then generation starts."""
        identity = getattr(editor, "editeval_identity", None)
        if self.custom_editor and identity is not None:
            self.producer.adopt_identity(identity)
            if not self.settings.model_name:
                self.model_name = _identity_name(identity) or self.model_name
        if self.settings.ray is not None and self.producer.pending and not self.stop.is_set():
            from pytest_editeval.generation.ray_actors import RayEditorPool

            # The editor's calls move to the actors (raises GenerationSetupError: one line, the run stops).
            self.ray_pool = editor = RayEditorPool.start(self.settings.ray, editor, self.plan.generation, self.stop)
            if editor is None:  # the run stopped meanwhile: no row waits for an image
                self.producer.fail_pending("generation stopped before this row")
                return
        self.producer.start(editor)

    @property
    def needs_editor(self) -> bool:
        return self.producer is not None and bool(self.producer.pending) and not self.producer.started

    def write_edits_jsonl(self) -> None:
        if self.producer is not None:
            language = self.settings.language
            self.producer.write_jsonl([r for r in self.plan.dataset.rows if r.language == language])

    # ---- verdicts -----------------------------------------------------------------------------------------
    def result(self, row: Row) -> Verdict:
        """This row's verdict (raises JudgeFatalError when the judge cannot serve the run)."""
        if self.scheduler is None:
            self.start([])
        return self.scheduler.result(row)

    def judge_image(self, row: Row, image) -> Verdict:
        """Judge any image (PIL or a file) as the edit of `row`: the `editeval_judge` fixture."""
        from pytest_editeval.scoring.evaluation import RowEvaluator

        if self.scheduler is None:
            self.start([])
        path = Path(image) if isinstance(image, (str, Path)) else self._keep_for_judging(row, image)
        return RowEvaluator(edited_image=lambda _: path, **self._evaluator_parts).evaluate(row)

    def _keep_for_judging(self, row: Row, image) -> Path:
        import hashlib
        import io

        buf = io.BytesIO()
        image.save(buf, format="PNG")
        data = buf.getvalue()
        folder = (self.settings.cache_dir or self.ctx.rootpath / ".editeval") / "judged-images"
        # Named by hashes only: the row key is a dataset string, not a file name.
        name = hashlib.sha256(row.id.encode()).hexdigest()[:16]
        path = folder / f"{name}-{hashlib.sha256(data).hexdigest()[:16]}.png"
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data)
        return path

    def source_image(self, row: Row):
        """The row's first input image as an RGB PIL image (what the editing model receives)."""
        from pytest_editeval.data.images import decode_rgb

        if not row.inputs:
            raise InputError(f"row {row.id} has no input image")
        return decode_rgb(self.plan.dataset.images.read(row.inputs[0]), f"input image of {row.id}",
                          self.settings.max_pixels)

    def record(self, record: dict) -> None:
        self.records[record["id"]] = record

    def verdicts(self) -> list[Verdict]:
        """The recorded verdicts, in selection order."""
        position = self.plan.position
        return sorted((Verdict.from_record(r) for r in self.records.values()),
                      key=lambda v: position.get(v.id, len(position)))

    def evaluate_all(self, verdict_for) -> None:
        """Judge every selected row now (no items of our own): the marker API."""
        self.start(self.plan.selected)
        try:
            for row in self.plan.selected:
                self.record(verdict_for(row).to_record())
        finally:
            self.stop_threads()
            self.write_edits_jsonl()

    # ---- what the workers report --------------------------------------------------------------------------
    def worker_finished(self, counts: dict | None, judge: dict | None, stopped: Stop | None) -> None:
        """An xdist worker's counters, judge and fatal stop (the controller starts no judge of its own)."""
        if counts is not None:
            self.worker_counts.append(counts)
        if judge and self.worker_judge is None:
            self.worker_judge = judge
        if stopped is not None and self.stopped is None:
            self.stopped = stopped

    # ---- stopping -----------------------------------------------------------------------------------------
    def stop_threads(self, drain: bool = False) -> None:
        """Stop and join every thread this run started, and close the judge (its connections, its model thread,
        its server). Called when the run loop ends (normally or not) and again at unconfigure; does nothing the
        second time. `drain`: the run ended normally, so judge requests in flight finish before the stop."""
        from pytest_editeval.run.scheduler import JOIN_TIMEOUT_S, join_all

        if self.producer is not None:
            self.producer.request_stop()  # releases judge threads waiting for images that will not come
        still_alive = []
        if self.scheduler is not None:
            still_alive += self.scheduler.shutdown(interrupt=self.judge.interrupt if self.judge else None,
                                                   drain=drain and not self.stop.is_set())
        if self.producer is not None and not self.producer.join(JOIN_TIMEOUT_S):
            still_alive.append("editeval-generate")
        still_alive += join_all(self._threads, JOIN_TIMEOUT_S)
        if self.ray_pool is not None:  # after the producer: nothing uses Ray any more
            self.ray_pool.shutdown()
            self.plan.warnings.extend(self.ray_pool.summary())
            self.ray_pool = None
        if self.judge is not None:
            self.judge.close()
            still_alive += getattr(self.judge, "still_running", [])
        if still_alive:  # said in the summary; nothing legitimate takes this long once interrupted
            self.still_running = sorted(set(still_alive))

    # ---- counters and the judge's account -----------------------------------------------------------------
    def counts(self) -> dict:
        """Judge and cache counters of this process (summed with the xdist workers' for the summary)."""
        cache = self.cache
        return {"requests": self.judge.requests_sent if self.judge else 0,
                "hits": cache.hits if cache else 0, "misses": cache.misses if cache else 0,
                "shared": cache.shared if cache else 0, "corrupt": cache.corrupt if cache else 0,
                "write_errors": sorted(set(cache.write_errors)) if cache else [],
                "generated": self.producer.generated if self.producer else 0,
                "from_cache": (len(self.producer.rows) - len(self.producer.pending)) if self.producer else 0,
                "started": self.judge is not None,
                "judge_notes": self.judge_notes(),
                "usage": {v.name: v.judge.usage() for v in self.voices},
                "saved": dict(self.evaluator.saved) if self.evaluator is not None else {}}

    def all_counts(self) -> list[dict]:
        """This process's counters and every xdist worker's."""
        return [self.counts(), *self.worker_counts]

    def judge_notes(self) -> list[str]:
        if self.judge is None:
            return []
        notes = list(self.judge.notes())
        samples = self.settings.judge_samples
        for voice in self.voices:
            if samples > 1 and voice.judge.deterministic:
                who = f"{voice.name}: " if voice.name else ""
                notes.append(f"{who}a greedy (deterministic) judge: its {samples} samples of each question are one "
                             "answer, asked once, so its spread is 0 by construction; give it a sampling temperature "
                             "(--editeval-judge-temperature) to measure its noise")
        return notes

    def judge_info(self, counts: list[dict] | None = None) -> dict | None:
        """The judge as results name it: the started judge's own account, an xdist worker's, or the settings'
        (None without a judge); with `counts` (this process's and the workers'), what it used and cost."""
        s = self.settings
        if self.judge is not None:
            info = self.judge.describe()
        elif self.worker_judge is not None:
            info = dict(self.worker_judge)
        else:
            info = self.plan.judge_from_settings()
            if info is None:
                return None
        info.update(samples_per_question=s.judge_samples, sample_average=s.judge_average)
        if counts is not None:
            info.update(self._usage_and_cost(counts, info))
        return info

    def _usage_and_cost(self, counts: list[dict], info: dict) -> dict:
        from pytest_editeval.scoring.judge_cost import SAVED_FIELDS, add, cost_section

        prices = self.plan.prices()
        names = list(prices)
        usage = {n: add(c.get("usage", {}).get(n) for c in counts) for n in names}
        saved = {n: add((c.get("saved", {}).get(n) for c in counts), SAVED_FIELDS) for n in names}
        total_usage, total_saved = add(usage.values()), add(saved.values(), SAVED_FIELDS)
        out: dict = {"usage": total_usage, "cache_saved": total_saved}
        if self.settings.panel is None:
            out["cost"] = cost_section(total_usage, total_saved, prices[""])
            return out
        members = []
        for member in info.get("panel", []):
            name = member.get("name")
            members.append({**member, "usage": usage.get(name), "cache_saved": saved.get(name),
                            "cost": cost_section(usage.get(name, {}), saved.get(name, {}), prices.get(name))})
        out["panel"] = members
        if members and all(m["cost"] is not None for m in members):
            out["cost"] = {"usd": round(sum(m["cost"]["usd"] for m in members), 6),
                           "cache_saved_usd": round(sum(m["cost"]["cache_saved_usd"] for m in members), 6)}
        return out


def _quietly(target):
    """A helper thread's target whose failure is left to the code that needs its result."""
    def run(*args):
        try:
            target(*args)
        except Exception:
            pass
    return run


def _identity_name(identity) -> str | None:
    if isinstance(identity, dict):
        for key in ("name", "model"):
            if isinstance(identity.get(key), str) and identity[key]:
                return identity[key]
    return None
