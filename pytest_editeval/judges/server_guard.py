"""`python -m pytest_editeval.judges.server_guard PARENT_PID -- COMMAND...`: runs a judge server so that it cannot
outlive the pytest process that started it.

The plugin starts this guard as the leader of a new process group; the server (and every process it forks: vLLM's
engine core, its tensor-parallel workers) inherits that group. The guard watches its parent: when pytest is gone
(kill -9 included, which no cleanup code of pytest's can catch) it ends the whole group, first with SIGTERM, then
with SIGKILL after a grace period. A SIGTERM sent to the group by the plugin (a normal stop) ends the same way.
The guard's exit status is the server's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

POLL_S = 0.2
GRACE_S = 10.0


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m pytest_editeval.judges.server_guard PARENT_PID -- COMMAND...", file=sys.stderr)
        return 2
    parent = int(argv[0])
    stopping = False

    def stop_requested(signum, frame) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop_requested)
    signal.signal(signal.SIGINT, stop_requested)
    try:
        server = subprocess.Popen(argv[2:])
    except OSError as exc:
        print(f"cannot start {argv[2]}: {exc.strerror or exc}", flush=True)
        return 127
    while True:
        try:
            code = server.wait(timeout=POLL_S)
        except subprocess.TimeoutExpired:
            code = None
        orphaned = os.getppid() != parent
        if code is not None:
            if orphaned:  # nobody is left to sweep what the server forked
                os.killpg(os.getpgrp(), signal.SIGKILL)
            return code
        if stopping or orphaned:
            return _end_group(server, parent)


def _end_group(server: subprocess.Popen, parent: int) -> int:
    """SIGTERM to the group (the server and its children); SIGKILL to whatever is left after the grace, or at
    once when the plugin is gone (it sweeps the group itself otherwise)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    group = os.getpgrp()
    try:
        os.killpg(group, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + GRACE_S
    while server.poll() is None and time.monotonic() < deadline:
        time.sleep(POLL_S)
    if server.poll() is None or os.getppid() != parent:
        os.killpg(group, signal.SIGKILL)  # ends this guard too
    return server.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
