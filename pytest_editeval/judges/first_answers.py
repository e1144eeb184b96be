"""A judge that fails every one of a run's first requests the same way is misconfigured, not busy.

A wrong model name (`400 Server is pinned to ...`, LiteLLM's `400 Invalid model name passed ...`) or a server
that answers 500 to everything would otherwise cost every row its retries and end as one error row per row.
`FirstAnswers` watches the answers until one succeeds: once the first FIRST_ANSWERS_FATAL answers, to at least
MIN_REQUESTS different requests, were all the same failure (status and redacted body), it names that failure
and the run stops with it. 429s, 503s and answers with a Retry-After say "later", not "never", and are not counted;
one success, or one different failure, ends the watch for the run. Thread-safe.
"""

from __future__ import annotations

import threading

FIRST_ANSWERS_FATAL = 6
MIN_REQUESTS = 2


class FirstAnswers:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watching = True
        self._reason: str | None = None
        self._answers = 0
        self._requests: set[int] = set()

    def succeeded(self) -> None:
        self._watching = False

    def failed(self, request: int, reason: str) -> str | None:
        """Request `request` (any id, the same for its retries) got the failure `reason`: the line that stops the
        run once the first answers all said it, else None."""
        with self._lock:
            if not self._watching:
                return None
            if self._reason is not None and reason != self._reason:
                self._watching = False  # two different failures: each row's own, not one cause
                return None
            self._reason = reason
            self._answers += 1
            self._requests.add(request)
            if self._answers >= FIRST_ANSWERS_FATAL and len(self._requests) >= MIN_REQUESTS:
                self._watching = False
                return (f"the judge's first {self._answers} answers ({len(self._requests)} requests) were all the same "
                        f"failure and none succeeded: {reason}")
            return None
