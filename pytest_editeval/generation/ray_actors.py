"""Model mode on a Ray cluster (`--editeval-ray ADDRESS`): the pipeline calls move to Ray actors; everything
else stays on the driver, as on one machine.

- One actor per GPU (`--editeval-ray-gpus-per-actor`, default 1; 0 with `--editeval-ray-actors N` runs them on
  CPUs), each loading the pipeline once from the same model reference (hub id and revision, or a path every node
  can read) and precision; or each unpickling the conftest's `editeval_pipeline` override, when it pickles.
- The driver's producer (generation.ImageProducer) decodes sources, forms batches and computes each row's seed
  exactly as on one machine, then hands batches to the actors, at most PER_ACTOR_IN_FLIGHT per actor: the
  backpressure that bounds the decoded images held and the work a lost actor takes with it. Edited images come
  back as PNG bytes through the object store and are saved, cached and judged on the driver as they arrive.
- A dead actor (node lost, OOM kill) costs only its batch in flight: it goes to the next idle live actor (never
  queued behind another batch, so that each death is charged to the one batch that was running); a batch of
  several rows runs again row by row (which row killed the actor is unknown); a row lost ATTEMPTS times (a row
  that kills every process that edits it) becomes an error row with the reason, and the run goes on with the
  other actors.
- Stopping (Ctrl-C, -x, a fatal judge answer) kills the actors; the connection to Ray is closed (and a `local`
  instance shut down) when the run's threads are joined.

Ray is imported only when generation actually starts (not for --collect-only or a fully cached run).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any

from pytest_editeval.generation.pipeline import GenerationInterrupted, GenerationSetupError, generation_failure, png_bytes

# One batch per actor, retries included: a dead actor's lost work is then exactly the batch it was running. With
# two, a killed actor may have finished the first without its reply reaching the driver (under load the reply is
# still on its way when the next call kills the process), the wrong batch would be blamed, and the batch that
# killed it would go on to kill another actor. The driver's prefetch has the next batch decoded, so an actor
# waits only for the round trip (milliseconds, against seconds to minutes of generation).
PER_ACTOR_IN_FLIGHT = 1
ATTEMPTS = 2  # a batch that was running when its actor died runs once more, on another actor
INSTALL_HINT = "pip install 'pytest-editeval[ray]'"
MINIMUM_RAY = (2, 52)  # the first release with token authentication (on by default since 2.60)
LOOPBACK = "127.0.0.1"
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": Ray's single-machine mode, its servers on loopback
ADDRESS_SHAPE = re.compile(r"(?:ray://)?[A-Za-z0-9._-]+:\d{1,5}")
CONNECT_TIMEOUT_S = 10
# Connecting to a cluster, Ray retries its head 20 times, up to about 36 s each: 12 minutes for an address that
# answers TCP but is no Ray head, or a head that went away after the check. One try of at most about 25 s instead
# (unless the user set these).
CONNECT_BOUNDS = {"RAY_gcs_server_port_wait_time_s": "1", "RAY_py_gcs_connect_timeout_s": "15"}


@dataclass(frozen=True)
class RaySettings:
    address: str  # auto | local | ray://HOST:PORT | HOST:PORT
    gpus_per_actor: float = 1.0
    actors: int | None = None  # None: the cluster's GPUs / gpus_per_actor


class RemotePipeline:
    """What the default `editeval_pipeline` fixture gives under --editeval-ray: nothing is loaded on the driver;
    each actor loads the diffusers pipeline of these generation settings itself."""

    def __init__(self, generation) -> None:
        self.generation = generation

    def release(self) -> None:
        pass


# ---- inside each actor ---------------------------------------------------------------------------------------
class EditorActor:
    """The editor of one Ray actor. Errors come back as values (one line each), never as Ray's tracebacks."""

    def __init__(self) -> None:
        self.editor = None

    def load(self, kind: str, recipe: Any) -> dict:
        """kind "pipeline": recipe is the run's GenerationSettings; "callable": a cloudpickled editor."""
        try:
            if kind == "pipeline":
                from pytest_editeval.generation.pipeline import load_diffusers_editor, resolve_model

                folder = resolve_model(recipe)
                self.editor = load_diffusers_editor(recipe, folder, recipe.resolve_device())
            else:
                import ray.cloudpickle as cloudpickle

                self.editor = cloudpickle.loads(recipe)
        except GenerationSetupError as exc:
            return {"error": str(exc)}
        except Exception as exc:
            return {"error": f"{type(exc).__name__}: {_first_line(exc)}"}
        import ray

        return {"pid": os.getpid(), "node": ray.util.get_node_ip_address(),
                "max_batch": getattr(self.editor, "max_batch", None),
                "multi_image": bool(getattr(self.editor, "editeval_multi_image", False))}

    def edit(self, images: list, instructions: list[str], seeds: list[int]) -> tuple[str, Any]:
        """("ok", [PNG bytes, or the reason a row has no image]) or ("error", the reason the batch failed)."""
        editor = self.editor
        try:
            if hasattr(editor, "edit_batch"):
                outputs = editor.edit_batch(images, instructions, seeds)
            else:
                outputs = [editor(image, instruction, seed) for image, instruction, seed in
                           zip(images, instructions, seeds)]
        except GenerationInterrupted:
            return "error", "generation stopped before this row"
        except Exception as exc:
            return "error", generation_failure(exc)
        pngs: list = []
        for index in range(len(images)):
            output = outputs[index] if index < len(outputs) else None
            if not hasattr(output, "save"):
                pngs.append(f"the pipeline returned no image for this row (got {type(output).__name__})")
                continue
            try:
                pngs.append(png_bytes(output))
            except Exception as exc:
                pngs.append(f"cannot encode the edited image: {type(exc).__name__}: {_first_line(exc)}")
        return "ok", pngs


# ---- on the driver -------------------------------------------------------------------------------------------
@dataclass(eq=False)
class _Actor:
    number: int
    handle: Any
    pid: int | None = None
    node: str | None = None
    queue: list = field(default_factory=list)  # its batches in flight, in the order sent (the first one runs)
    alive: bool = True

    @property
    def name(self) -> str:
        return f"Ray actor {self.number}" + (f" (pid {self.pid} on {self.node})" if self.pid else "")


class _Stopped(Exception):
    """The run stopped while the actors were loading."""


@dataclass(eq=False)
class _Job:
    token: Any
    args: tuple
    rows: int
    ref: Any = None
    actor: _Actor | None = None
    lost_on: list[str] = field(default_factory=list)  # the actors that died while running it
    # A batch of several rows that was lost runs again as one job per row (`parts`, its rows' values as they come
    # back, `open` of them still out); each such row job names its batch and its place in it.
    batch: _Job | None = None
    place: int = 0
    parts: list | None = None
    open: int = 0


class RayEditorPool:
    """The producer's editor under --editeval-ray: batches go to the actors, results are collected as they come.
    Used from the producer thread (submit, collect) and, to stop, from the main thread (interrupt, shutdown)."""

    editeval_parallel = True  # the producer keeps several batches in flight instead of calling one at a time

    def __init__(self, settings: RaySettings, started_ray: bool, ray) -> None:
        self.settings = settings
        self.started_ray = started_ray  # this run connected to Ray (and closes the connection at the end)
        self.ray = ray
        self.actors: list[_Actor] = []
        self.max_batch: int | None = None
        self.editeval_multi_image = False
        self.notes: list[str] = []  # said in the summary: where generation ran, the actors lost
        self.retried_rows = 0
        self._in_flight: dict[Any, _Job] = {}
        self._waiting: list[_Job] = []  # batches of a lost actor, waiting for an idle actor (ahead of new batches)
        self._finished: list[tuple[Any, Any]] = []
        self._stopping = False
        self._closed = False

    # set-up
    @classmethod
    def start(cls, settings: RaySettings, editor, generation, stop) -> "RayEditorPool | None":
        """Connect, start the actors and have each load the editor (waits for them; raises GenerationSetupError
        with one line on any failure, after stopping whatever was started). None when the run stopped meanwhile
        (a fatal judge answer): that stop, not this, is what the run reports."""
        kind, recipe = _recipe(editor, generation)
        ray = _import_ray()
        pool = cls(settings, _connect(ray, settings.address), ray)
        try:
            pool._start_actors(ray, kind, recipe, stop)
        except _Stopped:
            pool.shutdown()
            return None
        except BaseException:
            pool.shutdown()
            raise
        return pool

    def _start_actors(self, ray, kind: str, recipe: Any, stop) -> None:
        s = self.settings
        count = _actor_count(ray, s)
        actor_class = ray.remote(EditorActor).options(num_gpus=s.gpus_per_actor, num_cpus=0, max_restarts=0,
                                                      max_concurrency=1)
        self.actors = [_Actor(i + 1, actor_class.remote()) for i in range(count)]
        shared = ray.put(recipe)  # the pickled editor or the settings travel to the object store once
        loading = {actor.handle.load.remote(kind, shared): actor for actor in self.actors}
        infos = {}
        while loading:
            if stop.is_set():
                raise _Stopped()
            ready, _ = ray.wait(list(loading), num_returns=1, timeout=0.5)
            for ref in ready:
                actor = loading.pop(ref)
                try:
                    info = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    raise GenerationSetupError(f"{actor.name} died while loading the editor: "
                                               f"{_first_line(exc)}") from None
                if "error" in info:
                    raise GenerationSetupError(f"{actor.name} cannot load the editor: {info['error']}")
                actor.pid, actor.node = info["pid"], info["node"]
                infos[actor.number] = info
        first = infos[1]
        self.max_batch, self.editeval_multi_image = first["max_batch"], first["multi_image"]
        gpus = f"{s.gpus_per_actor:g} GPU(s) each" if s.gpus_per_actor else "on CPUs"
        nodes = len({a.node for a in self.actors})
        self.notes.append(f"generating on {count} Ray actor(s) at {s.address} ({gpus}, {nodes} node(s))")

    # the producer's side
    def has_room(self) -> bool:
        live = [a for a in self.actors if a.alive]
        return not live or (not self._waiting and any(len(a.queue) < PER_ACTOR_IN_FLIGHT for a in live))

    @property
    def busy(self) -> bool:
        return bool(self._in_flight or self._waiting or self._finished)

    def submit(self, token: Any, images: list, instructions: list[str], seeds: list[int]) -> None:
        self._waiting.append(_Job(token, (images, instructions, seeds), len(images)))
        self._dispatch_waiting()

    def _dispatch_waiting(self) -> None:
        """Send the waiting batches, in order, each to an idle live actor; those no actor is left for fail."""
        while self._waiting:
            live = [a for a in self.actors if a.alive]
            if self._stopping or not live:
                job = self._waiting.pop(0)
                if self._stopping:
                    self._finish(job, "generation stopped before this row")
                else:
                    lost = f" (it was running on {', '.join(job.lost_on)})" if job.lost_on else ""
                    self._finish(job, f"no Ray actor is left to generate this row: every actor died{lost}")
                continue
            idle = [a for a in live if len(a.queue) < PER_ACTOR_IN_FLIGHT]
            if not idle:
                return
            job = self._waiting.pop(0)
            actor = min(idle, key=lambda a: (len(a.queue), a.number))
            job.actor = actor
            job.ref = actor.handle.edit.remote(*job.args)
            actor.queue.append(job)
            self._in_flight[job.ref] = job

    def _finish(self, job: _Job, value: Any) -> None:
        """A job's value: the PNGs and row errors of its batch, or the batch's error. A row job of a split batch
        fills its place; the batch is finished when its last row is."""
        batch = job.batch
        if batch is None:
            self._finished.append((job.token, value))
            return
        batch.parts[job.place] = value if isinstance(value, str) else (value[0] if value else
                                                                          "the Ray actor returned no image")
        batch.open -= 1
        if batch.open == 0:
            self._finish(batch, batch.parts)

    def collect(self, timeout: float) -> list[tuple[Any, Any]]:
        """Finished batches: (token, [PNG bytes or a row's error]) or (token, the batch's error)."""
        ray = self.ray
        if self._in_flight:
            refs = list(self._in_flight)
            # Wake at the first result (an idle actor gets its next batch at once), then take all that are in.
            ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
            if ready and len(refs) > 1:
                ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
            for ref in ready:
                job = self._in_flight.get(ref)
                if job is not None:  # None: settled already with the rest of its dead actor's queue
                    self._settle(ray, job)
        self._dispatch_waiting()  # the actors just freed take the lost actors' batches first
        done, self._finished = self._finished, []
        return done

    def _settle(self, ray, job: _Job) -> None:
        try:
            status, value = ray.get(job.ref)
        except ray.exceptions.RayActorError as exc:
            self._lost(ray, job.actor, exc)
            return
        except ray.exceptions.ObjectLostError as exc:  # done, but its result went with its node: run it again
            self._forget(job)
            job.lost_on.append(f"{job.actor.name}, whose result was lost")
            self._retry_or_fail(job, exc)
            return
        except ray.exceptions.RayError as exc:  # cancelled, or another failure of this batch only
            value = f"generation failed on Ray: {type(exc).__name__}: {_first_line(exc)}"
        self._forget(job)
        self._finish(job, value)

    def _forget(self, job: _Job) -> None:
        self._in_flight.pop(job.ref, None)
        if job in job.actor.queue:
            job.actor.queue.remove(job)

    def _lost(self, ray, actor: _Actor, exc: BaseException) -> None:
        """An actor died. Of the batches it held, those it finished keep their results; the first unfinished one
        (actors run their calls in order) was running and counts a loss; every unfinished one goes to another
        actor, or fails past the bound."""
        if actor.alive and not self._stopping:
            self.notes.append(f"{actor.name} was lost: {_first_line(exc)}")
            try:  # an actor Ray says is unavailable may come back: it is given up for good, so nothing runs twice
                ray.kill(actor.handle, no_restart=True)
            except Exception:
                pass
        actor.alive = False
        held, actor.queue = actor.queue, []
        # A dead actor's calls all resolve soon: to their results, or to its death.
        ray.wait([job.ref for job in held], num_returns=len(held), timeout=10)
        running_found = False
        for job in held:
            self._in_flight.pop(job.ref, None)
            try:
                status, value = ray.get(job.ref, timeout=0)
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError, ray.exceptions.ObjectLostError):
                pass  # not finished, or its result gone with the actor's node: lost with the actor
            except ray.exceptions.RayError as other:
                self._finish(job, f"generation failed on Ray: {type(other).__name__}: {_first_line(other)}")
                continue
            else:
                self._finish(job, value)
                continue
            if not running_found:
                running_found = True
                job.lost_on.append(actor.name)
            self._retry_or_fail(job, exc)

    def _retry_or_fail(self, job: _Job, exc: BaseException) -> None:
        """Queue a lost job again (the caller sends it once an actor is idle), or fail it past the bound."""
        if self._stopping:
            self._finish(job, "generation stopped before this row")
        elif len(job.lost_on) >= ATTEMPTS:
            self._finish(job, f"generation lost with its Ray actor {len(job.lost_on)} times "
                              f"({', '.join(job.lost_on)}): {_first_line(exc)}")
        elif job.rows > 1:
            # Which row killed the actor is unknown: each runs again alone, so that a row no process survives
            # fails alone and the other rows of its batch are not lost again with it.
            self.retried_rows += job.rows
            images, instructions, seeds = job.args
            job.parts, job.open = [None] * job.rows, job.rows
            self._waiting.extend(_Job(None, ([images[i]], [instructions[i]], [seeds[i]]), 1, lost_on=list(job.lost_on),
                                      batch=job, place=i) for i in range(job.rows))
        else:
            self.retried_rows += job.rows
            self._waiting.append(job)

    def summary(self) -> list[str]:
        """Lines for the run's summary: where generation ran, which actors were lost, what was retried."""
        retried = [f"{self.retried_rows} row(s) in flight on a lost actor were retried on another actor"] \
            if self.retried_rows else []
        return [*self.notes, *retried]

    # stopping
    def interrupt(self) -> None:
        """Stop at once: kill every actor (their calls in flight end); rows not finished fail with the stop."""
        self._stopping = True
        self._kill_actors()

    def _kill_actors(self) -> None:
        for actor in self.actors:
            if actor.alive:
                actor.alive = False
                try:
                    self.ray.kill(actor.handle, no_restart=True)
                except Exception:
                    pass

    def shutdown(self) -> None:
        """Kill the actors and close the connection this run opened (a `local` instance stops with it)."""
        if self._closed:
            return
        self._closed = True
        self._stopping = True
        self._kill_actors()
        if self.started_ray:
            self.ray.shutdown()

    def release(self) -> None:
        self.shutdown()


def _recipe(editor, generation) -> tuple[str, Any]:
    """What each actor needs to build the editor: the generation settings (the default pipeline) or the override,
    pickled here so that a callable that cannot travel is one line before any actor starts."""
    if isinstance(editor, RemotePipeline):
        return "pipeline", generation
    try:
        import ray.cloudpickle as cloudpickle
    except ImportError:
        raise GenerationSetupError(f"--editeval-ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    _pickle_conftest_by_value(cloudpickle, editor)
    try:
        return "callable", cloudpickle.dumps(editor)
    except Exception as exc:
        raise GenerationSetupError(
            f"the editeval_pipeline override cannot be sent to the Ray actors ({type(exc).__name__}: "
            f"{_first_line(exc)}): return a picklable callable (e.g. one that loads its model on first use, inside "
            "the actor), or run without --editeval-ray") from None


def _pickle_conftest_by_value(cloudpickle, editor) -> None:
    """A conftest.py is not importable on the actors (it is no package on their path): send its code along."""
    import sys

    for obj in (editor, type(editor)):
        name = getattr(obj, "__module__", None) or ""
        if name.rpartition(".")[2] == "conftest" and name in sys.modules:
            try:
                cloudpickle.register_pickle_by_value(sys.modules[name])
            except (ValueError, TypeError):  # pragma: no cover - not a module cloudpickle can take by value
                pass


def _import_ray():
    try:
        import ray
    except ImportError:
        raise GenerationSetupError(f"--editeval-ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def ray_version_problem() -> str | None:
    """One line when the installed Ray is older than MINIMUM_RAY (None when it is recent enough). Read from the
    package metadata, so that the check at start-up does not import Ray."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("ray")
    except PackageNotFoundError:
        return None  # an importable ray without metadata (a source checkout): nothing to compare
    try:
        numbers = tuple(int(part) for part in found.split(".")[:2])
    except ValueError:
        return None  # a development build (e.g. 3.0.0.dev0 parses; "master" does not): let it run
    if numbers >= MINIMUM_RAY:
        return None
    wanted = ".".join(map(str, MINIMUM_RAY))
    return (f"--editeval-ray needs Ray {wanted} or later (the first with token authentication); this is Ray "
            f"{found}: {INSTALL_HINT}")


def _connect(ray, address: str) -> bool:
    """Connect to (or, for `local`, start) Ray; False when this process was connected already."""
    if ray.is_initialized():
        return False
    if address == "local":
        _start_local(ray)
        return True
    target, source = _resolve_address(address)
    _check_reachable(address, target, source)
    try:
        with _environment(CONNECT_BOUNDS):
            ray.init(address=target, logging_level=logging.WARNING, log_to_driver=False)
    except Exception as exc:
        raise GenerationSetupError(f"cannot connect to the Ray cluster at {address}: {type(exc).__name__}: "
                                   f"{_first_line(exc)}") from None
    return True


def _start_local(ray) -> None:
    """A Ray instance of this run only, on loopback: `address="local"` (not None, which joins RAY_ADDRESS or the
    last `ray start` of the machine), and every Ray process bound to 127.0.0.1 instead of every interface. Ray on
    Linux resolves a loopback node address to the machine's outside one unless its single-machine mode (the one
    it uses on macOS and Windows) is on; the processes it starts inherit that from the environment."""
    import ray._private.ray_constants as ray_constants

    single_machine = getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
    try:
        with _environment({LOOPBACK_ENV: "0"}):
            if single_machine is not None:
                ray_constants.ENABLE_RAY_CLUSTER = False  # read when ray.init resolves this node's address
            ray.init(address="local", num_cpus=os.cpu_count() or 1, include_dashboard=False,
                     logging_level=logging.WARNING, log_to_driver=False, _node_ip_address=LOOPBACK)
    except Exception as exc:
        raise GenerationSetupError(f"cannot start a local Ray instance: {type(exc).__name__}: "
                                   f"{_first_line(exc)}") from None
    finally:
        if single_machine is not None:
            ray_constants.ENABLE_RAY_CLUSTER = single_machine
    bound = ray.get_runtime_context().gcs_address.rpartition(":")[0]
    if bound != LOOPBACK:  # a Ray release that binds otherwise: refuse rather than serve the network
        ray.shutdown()
        raise GenerationSetupError(f"the local Ray instance listens on {bound}, not on {LOOPBACK} only: this Ray "
                                   "release cannot be kept on loopback; start Ray yourself (`ray start --head "
                                   "--node-ip-address=...`) and pass its address")


def _resolve_address(address: str) -> tuple[str, str]:
    """(the HOST:PORT or ray://HOST:PORT to connect to, where it came from). `auto` is what Ray itself reads:
    RAY_ADDRESS, else the address the last `ray start` on this machine wrote in Ray's temp folder. Not Ray's
    last resort, any Ray process it finds on the machine: on a shared machine that is somebody else's."""
    if address != "auto":
        return address, ""
    from_env = os.environ.get("RAY_ADDRESS", "").strip()
    if from_env and from_env != "auto":
        if not ADDRESS_SHAPE.fullmatch(from_env):
            raise GenerationSetupError(f"cannot connect to the Ray cluster at auto: RAY_ADDRESS={from_env[:80]!r} "
                                       "is not HOST:PORT or ray://HOST:PORT")
        return from_env, "RAY_ADDRESS"
    record = _address_file()
    try:
        recorded = record.read_text(encoding="utf-8", errors="replace")[:300].strip() if record.is_file() else ""
    except OSError:
        recorded = ""
    if not recorded:
        raise GenerationSetupError(f"cannot connect to the Ray cluster at auto: no running Ray instance found "
                                   f"(RAY_ADDRESS is not set and no `ray start` address is recorded in {record}): "
                                   "start one with `ray start --head`, or pass --editeval-ray local or HOST:PORT")
    if not ADDRESS_SHAPE.fullmatch(recorded):
        raise GenerationSetupError(f"cannot connect to the Ray cluster at auto: {record} holds {recorded[:80]!r}, "
                                   "not HOST:PORT; start Ray again with `ray start --head`, or pass its address")
    return recorded, f"the last `ray start` address, from {record}"


def _address_file():
    """Ray's record of the last `ray start` on this machine (RAY_TMPDIR, else TMPDIR, else /tmp; then ray/)."""
    from pathlib import Path

    system = os.environ.get("RAY_TMPDIR") or os.environ.get("TMPDIR") or "/tmp"
    return Path(system) / "ray" / "ray_current_cluster"


def _environment(values: dict[str, str]):
    """Set environment variables the user has not set, for the duration of a `with` block."""
    import contextlib

    @contextlib.contextmanager
    def scope():
        added = [name for name in values if name not in os.environ]
        for name in added:
            os.environ[name] = values[name]
        try:
            yield
        finally:
            for name in added:
                os.environ.pop(name, None)

    return scope()


def _check_reachable(address: str, target: str, source: str = "") -> None:
    """Ray retries an unreachable address for minutes; a port nobody listens on is said at once."""
    import socket

    host, _, port = target.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        origin = f", {source}" if source else ""
        raise GenerationSetupError(f"cannot connect to the Ray cluster at {address}: nothing answers at {host}:{port} "
                                   f"({exc.strerror or exc}{origin}); start it with `ray start --head`, or check the "
                                   "address") from None


def _actor_count(ray, settings: RaySettings) -> int:
    gpus = float(ray.cluster_resources().get("GPU", 0))
    per = settings.gpus_per_actor
    if settings.actors is None:
        count = int(gpus // per) if per else 0
        if count == 0:
            raise GenerationSetupError(
                f"the Ray cluster at {settings.address} has {gpus:g} GPU(s), not enough for one actor of {per:g} "
                "GPU(s): to generate on CPUs pass --editeval-ray-gpus-per-actor 0 --editeval-ray-actors N")
        return count
    if settings.actors * per > gpus:
        raise GenerationSetupError(
            f"--editeval-ray-actors {settings.actors} x --editeval-ray-gpus-per-actor {per:g} needs "
            f"{settings.actors * per:g} GPU(s); the Ray cluster at {settings.address} has {gpus:g}")
    return settings.actors


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:240]
