"""Runs rows ahead of the test items so that the judge always has `workers` requests in flight.

pytest runs items one after another; if each item judged its own row, the run would take N x latency. Instead,
once collection is final (after -k, --lf, deselection), every selected row is queued in item order for a pool
of worker threads, and each item only waits for its own row's future. When the session ends early (-x,
Ctrl-C, a fatal judge error) the queued rows are cancelled and requests in flight are interrupted; finished
rows are already in the cache, and its atomic writes mean nothing half-written is left behind. When it ends
normally, rows still in flight (an xdist worker's rows judged ahead for another worker) finish first.

Every thread is joined before the plugin lets pytest finish: a thread still running native code (image
decoding, Arrow reads) while the interpreter shuts down can abort the process after the tests passed. The
threads are also daemons, but only as a last resort if a join times out.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import CancelledError, Future

from pytest_editeval.data.cache import DEFERRED
from pytest_editeval.data.dataset import Row
from pytest_editeval.errors import JudgeFatalError
from pytest_editeval.scoring.verdict import Verdict

# Long enough for a row that is busy preparing its images to notice the stop; requests in flight are
# interrupted, so nothing legitimate waits this long.
JOIN_TIMEOUT_S = 30.0


class Scheduler:
    def __init__(self, evaluate: Callable[..., object], workers: int, stop: threading.Event,
                 claim: Callable[[Row], None] | None = None) -> None:
        """`evaluate(row, blocking=, speculative=)` judges a row; `claim(row)` is called when an item takes a
        verdict that was judged ahead of it (its cache reads are counted then, see RowEvaluator.claim)."""
        self._evaluate = evaluate
        self._claim = claim
        self._stop = stop
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._futures: dict[str, Future] = {}
        self.fatal: JudgeFatalError | None = None
        self._threads = [threading.Thread(target=self._work, name=f"editeval-judge-{i}", daemon=True)
                         for i in range(workers)]
        for thread in self._threads:
            thread.start()

    def submit(self, rows: Iterable[Row]) -> None:
        for row in rows:
            if row.id not in self._futures:
                future: Future = Future()
                self._futures[row.id] = future
                self._queue.put((row, future))

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            row, future = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(self._run(row))
            except BaseException as exc:  # delivered to the item that waits for this row
                future.set_exception(exc)

    def _run(self, row: Row):
        if self.fatal is not None or self._stop.is_set():
            return None
        try:
            # Speculative work never blocks on another process's lock: it moves on to the next row.
            return self._evaluate(row, blocking=False, speculative=True)
        except JudgeFatalError as exc:
            self.fatal = exc
            self._stop.set()
            raise

    def result(self, row: Row) -> Verdict:
        """This row's verdict; waits for the pool, or judges it here if it was never queued or another
        process held it. Raises JudgeFatalError when the judge cannot serve the run."""
        future = self._futures.get(row.id)
        verdict = None
        if future is not None:
            try:
                verdict = future.result()
            except CancelledError:
                verdict = None
        if self.fatal is not None:
            raise self.fatal
        if verdict is None or verdict is DEFERRED:
            verdict = self._evaluate(row, blocking=True)
        elif self._claim is not None:
            self._claim(row)
        return verdict  # type: ignore[return-value]

    def shutdown(self, interrupt: Callable[[], None] | None = None, timeout: float = JOIN_TIMEOUT_S,
                 drain: bool = False) -> list[str]:
        """Cancel the rows not started, interrupt those in flight (`interrupt`), and join every thread.
        Returns the names of threads still alive after `timeout` seconds (none, unless something hangs).

        `drain` (a run that ended normally): rows in flight finish first, for up to `timeout` seconds, and only
        then is anything interrupted. An xdist worker judges ahead rows that another worker's items then wait
        for (through the cache's lock); cutting those requests off would make the other worker ask them again,
        paying twice for one answer."""
        for future in self._futures.values():
            future.cancel()  # only rows not yet started are cancelled
        for _ in self._threads:
            self._queue.put(None)
        if drain and join_all(self._threads, timeout) == []:
            self._stop.set()
            return []
        self._stop.set()
        if interrupt is not None and any(t.is_alive() for t in self._threads):
            interrupt()
        return join_all(self._threads, timeout)


def join_all(threads: Iterable[threading.Thread], timeout: float) -> list[str]:
    """Join the threads within one overall deadline; the names of those still alive."""
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [t.name for t in threads if t.is_alive()]
