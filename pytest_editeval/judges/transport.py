"""Judge connections that can be interrupted from another thread.

A request in flight blocks its thread in a socket read for as long as the judge takes (tens of seconds for a
large model). When a run stops (Ctrl-C, -x, a fatal answer) every plugin thread must be joined before pytest
returns: a daemon thread still inside native code at interpreter exit can abort the process ("terminate called
without an active exception"). Closing a socket does not wake a thread blocked on it; `shutdown()` does. So the
client's connections are made through a network backend that remembers its live streams and can shut them all
down, after which each blocked read fails at once and its thread sees the stop flag.

The same backend gives a request a total deadline. httpx's timeouts bound each read, connect and write, not the
exchange: a judge that sends its headers and then one byte a second never times out. Within
`InterruptibleBackend.deadline(seconds)` every operation of the calling thread's connections (httpx's sync client
does its I/O in the calling thread) waits at most until then, and fails with httpcore's timeout once it passed.
"""

from __future__ import annotations

import socket
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager


def interruptible_transport(**kwargs):
    """An httpx.HTTPTransport whose connections `InterruptibleBackend.interrupt()` can break. httpx exposes no
    backend option, so the backend is set on its httpcore pool (an attribute stable since httpcore 0.17); if it
    is ever missing, connections are simply not interruptible and stopping waits for in-flight requests."""
    import httpcore
    import httpx

    transport = httpx.HTTPTransport(**kwargs)
    backend = InterruptibleBackend(httpcore.SyncBackend())
    pool = getattr(transport, "_pool", None)
    if pool is not None and hasattr(pool, "_network_backend"):
        pool._network_backend = backend
    return transport, backend


class InterruptibleBackend:
    def __init__(self, inner) -> None:
        self._inner = inner
        self._streams: weakref.WeakSet = weakref.WeakSet()
        self._lock = threading.Lock()
        self._until = threading.local()  # this thread's request deadline (time.monotonic()), if any
        self.interrupted = False

    @contextmanager
    def deadline(self, seconds: float) -> Iterator[None]:
        """Every network operation of this thread ends within `seconds` from now, however slowly data trickles."""
        self._until.value = time.monotonic() + seconds
        try:
            yield
        finally:
            self._until.value = None

    def bounded(self, timeout: float | None, error: type[Exception]) -> float | None:
        """`timeout` shortened to what is left of this thread's deadline; `error` once nothing is left."""
        until = getattr(self._until, "value", None)
        if until is None:
            return timeout
        left = until - time.monotonic()
        if left <= 0:
            raise error("the request's total deadline (the judge timeout) passed")
        return left if timeout is None else min(timeout, left)

    def _track(self, stream):
        tracked = _TrackedStream(stream, self)
        with self._lock:
            self._streams.add(tracked)
            interrupted = self.interrupted
        if interrupted:  # connected after the stop: do not let it start a request
            tracked.shutdown()
        return tracked

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        import httpcore

        timeout = self.bounded(timeout, httpcore.ConnectTimeout)
        return self._track(self._inner.connect_tcp(host, port, timeout=timeout, local_address=local_address,
                                                   socket_options=socket_options))

    def connect_unix_socket(self, path, timeout=None, socket_options=None):
        import httpcore

        timeout = self.bounded(timeout, httpcore.ConnectTimeout)
        return self._track(self._inner.connect_unix_socket(path, timeout=timeout, socket_options=socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)

    def interrupt(self) -> None:
        """Shut down every live connection: blocked reads and writes fail at once."""
        with self._lock:
            self.interrupted = True
            streams = list(self._streams)
        for stream in streams:
            stream.shutdown()


class _TrackedStream:
    """A network stream whose TLS upgrade stays tracked (the TLS stream owns the socket after the upgrade)."""

    def __init__(self, inner, backend: InterruptibleBackend) -> None:
        self._inner = inner
        self._backend = backend

    def read(self, max_bytes, timeout=None):
        import httpcore

        return self._inner.read(max_bytes, self._backend.bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer, timeout=None):
        import httpcore

        return self._inner.write(buffer, self._backend.bounded(timeout, httpcore.WriteTimeout))

    def close(self):
        return self._inner.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None):
        import httpcore

        timeout = self._backend.bounded(timeout, httpcore.ConnectTimeout)
        return self._backend._track(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info):
        return self._inner.get_extra_info(info)

    def shutdown(self) -> None:
        sock = self._inner.get_extra_info("socket")
        if sock is None:
            return
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except (OSError, ValueError):  # already closed, or detached by a TLS upgrade
            pass
