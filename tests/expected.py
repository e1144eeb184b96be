"""Independent expectations for runs against the loopback judge (the test's own arithmetic, not the plugin's)."""

import hashlib
import math
import statistics

from pytest_editeval.testing.gedit_factory import edited_red


def expected_row(row):
    h = int(hashlib.sha256(row.instruction.encode()).hexdigest()[:8], 16)
    sc = min(h % 11, (h // 11) % 11)
    bucket = (edited_red(row) - 12) // 25
    pq = min(bucket + 2, 10 - bucket)
    return float(sc), float(pq), math.sqrt(sc * pq)


def expected_headline(rows):
    """(macro, micro) of (SC, PQ, O) over the rows, the official and EvalScope definitions."""
    by_subset = {}
    for row in rows:
        by_subset.setdefault(row.task_type, []).append(expected_row(row))
    macro = tuple(statistics.fmean(statistics.fmean(r[i] for r in v) for v in by_subset.values()) for i in range(3))
    micro = tuple(statistics.fmean(expected_row(r)[i] for r in rows) for i in range(3))
    return macro, micro


def reported_usage(server) -> dict:
    """The tokens a loopback judge server reported over all its answers (its own arithmetic, request by request)."""
    from pytest_editeval.testing.judge_server import usage_of

    totals = {"prompt_tokens": 0, "completion_tokens": 0}
    for call in server.calls:
        usage = usage_of(call, server.reply(server.scores(call), call))
        totals["prompt_tokens"] += usage["prompt_tokens"]
        totals["completion_tokens"] += usage["completion_tokens"]
    return totals
