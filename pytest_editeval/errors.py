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


class UnansweredQuestion(SampleError):
    """A question whose replies all stayed unreadable after the re-asks: its metrics are missing for the row (or,
    for a benchmark that cannot score the row without them, the row is an error). Keeps the last reply."""

    def __init__(self, message: str, *, reply: str = "", usage: dict | None = None) -> None:
        super().__init__(message)
        self.reply = reply
        self.usage = usage


class UnreadableMetricsWarning(UserWarning):
    """A scored row lacks some metrics: the judge never answered them readably (each missing for that row only)."""


class CacheWriteError(EditEvalError):
    """The cache could not be written (full disk, permissions); the computed value itself is still good."""
