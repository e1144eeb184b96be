"""Exception types that carry a one-line, user-facing message."""

from __future__ import annotations


class EditEvalError(Exception):
    """Base class: the message is meant for the user, one line, saying what is wrong and how to fix it."""


class InputError(EditEvalError):
    """Bad input found before any test runs (options, dataset, images): becomes a pytest usage error."""


class JudgeFatalError(EditEvalError):
    """The judge cannot serve this run at all (wrong key, wrong URL or model, unreachable): stop at once."""

    def __init__(self, message: str, *, usage: bool) -> None:
        super().__init__(message)
        # usage=True: the user's configuration is wrong (exit code 4); False: the service is down (exit 2).
        self.usage = usage


class SampleError(EditEvalError):
    """One row could not be scored (unreadable reply, transport failure after retries, bad edited image)."""


class CacheWriteError(EditEvalError):
    """The cache could not be written (full disk, permissions); the computed value itself is still good."""
