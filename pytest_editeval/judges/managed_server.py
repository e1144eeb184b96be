"""A judge server the plugin starts, waits for and stops: its own process group under server_guard (so that it
dies with pytest, even after kill -9), its output in a log file, a health check with a start-up timeout and a
progress line, and a watcher that turns a crash mid-run into one line with the tail of its log.

Every failure is a JudgeFatalError whose message is one line; the stop is always the same: SIGTERM to the group,
SIGKILL to what is left after a grace period, the guard reaped, the watcher thread joined.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from pytest_editeval.errors import JudgeFatalError, SampleError

POLL_S = 0.25
PROGRESS_EVERY_S = 15.0
STOP_GRACE_S = 15.0
TAIL_LINES = 3


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ManagedServer:
    def __init__(self, name: str, command: list[str], *, port: int, log_path: Path, env: dict[str, str],
                 stop: threading.Event, say: Callable[[str], None], startup_timeout_s: float,
                 health_path: str = "/health") -> None:
        self.name = name  # "vllm serve": how lines name it
        self.command = command
        self.port = port
        self.log_path = log_path
        self.env = env
        self.stop = stop
        self.say = say
        self.startup_timeout_s = startup_timeout_s
        self.health_url = f"http://127.0.0.1:{port}{health_path}"
        self.process: subprocess.Popen | None = None
        self.started_in: float | None = None
        self._stopping = threading.Event()
        self._swept = False
        self._watcher: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self) -> None:
        """Start the server and wait until its health check answers 200. Raises JudgeFatalError when it exits
        first or takes longer than the start-up timeout, SampleError when the run is stopped meanwhile; the
        server is stopped in every one of these cases."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            guard = [sys.executable, "-m", "pytest_editeval.judges.server_guard", str(os.getpid()), "--"]
            try:
                self.process = subprocess.Popen(guard + self.command, stdin=subprocess.DEVNULL, stdout=log,
                                                stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
            except OSError as exc:
                raise JudgeFatalError(f"cannot start {self.name}: {exc.strerror or exc}", usage=True) from None
        self.say(f"starting {self.name} on 127.0.0.1:{self.port} (pid {self.pid}; log {self.log_path})")
        began = time.monotonic()
        next_progress = began + PROGRESS_EVERY_S
        try:
            while not self._healthy():
                waited = time.monotonic() - began
                code = self.process.poll()
                if code is not None:
                    raise JudgeFatalError(f"{self.name} exited with code {code} before it was ready; "
                                          f"{self._log_end()}", usage=False)
                if self.stop.is_set():
                    raise SampleError(f"run interrupted while {self.name} was starting")
                if waited > self.startup_timeout_s:
                    raise JudgeFatalError(f"{self.name} did not answer {self.health_url} within "
                                          f"{self.startup_timeout_s:g} s (--editeval-judge-startup-timeout); "
                                          f"{self._log_end()}", usage=False)
                if time.monotonic() >= next_progress:
                    self.say(f"{self.name} (pid {self.pid}) is still starting: {waited:.0f} s of at most "
                             f"{self.startup_timeout_s:g} s; log {self.log_path}")
                    next_progress += PROGRESS_EVERY_S
                self.stop.wait(POLL_S)
        except BaseException:
            self.close()
            raise
        self.started_in = time.monotonic() - began
        self.say(f"{self.name} is ready after {self.started_in:.1f} s")

    def watch(self, on_crash: Callable[[str], None]) -> None:
        """From now on, an exit the plugin did not ask for calls `on_crash(one line)`."""
        def wait() -> None:
            code = self.process.wait()
            if not self._stopping.is_set():
                on_crash(f"{self.name} (pid {self.pid}) exited with code {code} during the run; {self._log_end()}")

        self._watcher = threading.Thread(target=wait, name="editeval-judge-server-watch", daemon=True)
        self._watcher.start()

    def close(self) -> None:
        """Stop the server's whole process group and join the watcher; safe to call twice."""
        with self._lock:
            self._stopping.set()
            process = self.process
            if process is None:
                return
            if not self._swept:
                if process.poll() is None:
                    _signal_group(process.pid, signal.SIGTERM)
                    try:
                        process.wait(STOP_GRACE_S)
                    except subprocess.TimeoutExpired:
                        pass
                _signal_group(process.pid, signal.SIGKILL)  # whatever the server forked and left behind
                self._swept = True  # once: afterwards the group's id may be another's
            process.wait()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join()

    def _healthy(self) -> bool:
        import urllib.error
        import urllib.request

        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
        try:
            with opener.open(self.health_url, timeout=1.0) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def log_tail(self, lines: int = TAIL_LINES) -> str:
        try:
            with open(self.log_path, "rb") as log:
                log.seek(0, os.SEEK_END)
                log.seek(max(0, log.tell() - 16384))
                text = log.read().decode("utf-8", errors="replace")
        except OSError:
            return ""
        kept = [" ".join(line.split()) for line in text.splitlines() if line.strip()][-lines:]
        return " | ".join(kept)[-600:]

    def _log_end(self) -> str:
        tail = self.log_tail()
        return f"its log {self.log_path} ends: {tail}" if tail else f"its log {self.log_path} is empty"


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)  # the guard leads its own group: its pid is the group's id
    except (ProcessLookupError, PermissionError):
        pass
