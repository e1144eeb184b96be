"""Reading scores out of a judge reply (pure functions).

Judges answer in many shapes: plain JSON, JSON between ``||V^=^V||`` delimiters, JSON in a markdown fence,
JSON inside prose, a bare list ``[6, 0]``, a bare number, floats. A reply with no readable score list, or
with a score outside 0..high (10; EditScore's recipe asks for 0..25), raises UnreadableReply; the caller
re-asks and finally records an error. There is deliberately no fallback value.

Replies are untrusted: whatever the text (a looping model's ``[[[[...``, numbers out of any range, lone
surrogates), reading it gives a ParsedReply or UnreadableReply, never another exception; `read_reply` holds any
benchmark's reader to the same rule.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

DELIMITER = "||V^=^V||"
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
_SCORE_LIST = re.compile(r"[\"']?score[\"']?\s*[:=]\s*\[([^\[\]]*)\]", re.IGNORECASE)
_BARE_LIST = re.compile(rf"\[\s*({_NUMBER}(?:\s*,\s*{_NUMBER})*)\s*\]")


class UnreadableReply(ValueError):
    """No score list could be read from the reply (the message says why)."""


T = TypeVar("T")
# What json's decoder raises on text it cannot take: malformed, nested deeper than the interpreter's recursion
# limit (a looping model's "[[[[..."), or an integer with more digits than int() accepts.
_JSON_FAILURES = (ValueError, RecursionError)


def read_reply(reader: Callable[[str], T], text: str) -> T:
    """`reader(text)`, with any failure of the reader turned into UnreadableReply with a one-line reason: a reply
    is untrusted input, and a reader (a benchmark's own, possibly a package's) that fails on one must cost that
    question a re-ask and then its row, never the run."""
    try:
        return reader(text)
    except UnreadableReply:
        raise
    except Exception as exc:  # RecursionError, TypeError, ...: anything the reader was not written for
        reason = " ".join(str(exc).split())[:160]
        raise UnreadableReply(f"the reply reader failed: {type(exc).__name__}: {reason} "
                              f"(reply {_excerpt(text or '')})") from None


@dataclass(frozen=True)
class ParsedReply:
    scores: list[float]
    reasoning: str | None


def parse_reply(text: str | None, high: float = 10.0) -> ParsedReply:
    if text is None or not text.strip():
        raise UnreadableReply("empty reply")
    candidates = _candidates(text)
    for candidate in candidates:
        parsed = _from_json(candidate)
        if parsed is not None:
            return _validated(parsed, high)
    for candidate in candidates:
        parsed = _from_regex(candidate)
        if parsed is not None:
            return _validated(parsed, high)
    raise UnreadableReply(f"no score list in reply: {_excerpt(text)}")


def _candidates(text: str) -> list[str]:
    """Places a score may hide, most specific first."""
    out: list[str] = []
    if text.count(DELIMITER) >= 2:
        out.append(text.split(DELIMITER)[1])
    out.extend(m.group(1) for m in _FENCE.finditer(text))
    out.append(text)
    return [c.strip() for c in out if c.strip()]


def _from_json(candidate: str) -> ParsedReply | None:
    try:
        value = json.loads(candidate)
    except _JSON_FAILURES:
        value = _embedded_object(candidate)
        if value is None:
            return None
    return _from_value(value)


def _from_value(value: object) -> ParsedReply | None:
    if isinstance(value, dict):
        score = next((value[k] for k in value if isinstance(k, str) and k.lower() == "score"), None)
        if score is None:
            return None
        scores = _as_scores(score)
        return None if scores is None else ParsedReply(scores, _reasoning(value.get("reasoning")))
    scores = _as_scores(value)
    return None if scores is None else ParsedReply(scores, None)


def _reasoning(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False)
    except _JSON_FAILURES:  # nested too deep to write back: not worth keeping
        return None


def _as_scores(value: object) -> list[float] | None:
    """A number, a numeric string, or a non-empty list of them (each possibly wrapped in one-item lists)."""
    if not isinstance(value, list):
        one = _as_score(value)
        return None if one is None else [one]
    if not value:
        return None
    out = []
    for item in value:
        while isinstance(item, list) and len(item) == 1:  # [[7], [8]] reads as [7, 8]; a loop, never recursion
            item = item[0]
        one = _as_score(item)
        if one is None:
            return None
        out.append(one)
    return out


def _as_score(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            return float(value)
        except OverflowError:  # an integer beyond any float
            return None
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _embedded_object(text: str) -> object | None:
    """The first balanced {...} in prose that parses as JSON and has a score."""
    decoder = json.JSONDecoder()
    for start in (i for i, ch in enumerate(text) if ch == "{"):
        try:
            value, _ = decoder.raw_decode(text, start)
        except RecursionError:  # a nesting bomb: every later start is inside it, and as deep
            return None
        except ValueError:
            continue
        if isinstance(value, dict) and any(isinstance(k, str) and k.lower() == "score" for k in value):
            return value
    return None


def _from_regex(candidate: str) -> ParsedReply | None:
    # `"score": [7, 8]` inside otherwise broken JSON (e.g. an unescaped quote in the reasoning).
    match = _SCORE_LIST.search(candidate)
    if match:
        scores = _numbers(match.group(1))
        if scores:
            return ParsedReply(scores, None)
    # A bare list of numbers, only if it is the only one (prose may mention other lists).
    lists = _BARE_LIST.findall(candidate)
    if len(lists) == 1:
        return ParsedReply(_numbers(lists[0]), None)
    if re.fullmatch(_NUMBER, candidate):
        return ParsedReply([float(candidate)], None)
    return None


def _numbers(text: str) -> list[float]:
    return [float(x) for x in re.findall(_NUMBER, text)]


def _validated(parsed: ParsedReply, high: float) -> ParsedReply:
    bad = [s for s in parsed.scores if not 0.0 <= s <= high]  # nan and inf included
    if bad:
        shown = ", ".join(f"{s:g}" for s in parsed.scores[:8]) + (", ..." if len(parsed.scores) > 8 else "")
        raise UnreadableReply(f"score out of range 0..{high:g}: [{shown}]")
    return parsed


def _excerpt(text: str, limit: int = 120) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= limit else flat[: limit - 3] + "...")
