"""What the judge cost: tokens per answer and per run, in money at the user's price, and what the cache saved
(pure functions and plain dicts, so that the numbers travel through xdist and shard files unchanged).

A usage is {prompt_tokens, completion_tokens, requests} summed over the replies a judge sent (every HTTP
request, re-asks of an unreadable reply included). Each answer also keeps its own usage in the cache, so a re-run
that reads it from the cache knows what it would have cost: `saved` is {prompt_tokens, completion_tokens,
answers} summed over the answers read from earlier runs' cache entries. A price is USD per million prompt
(input) and completion (output) tokens, as providers list them (--editeval-judge-price IN,OUT).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "requests")
SAVED_FIELDS = ("prompt_tokens", "completion_tokens", "answers")


@dataclass(frozen=True)
class Price:
    prompt: float  # USD per million prompt tokens
    completion: float  # USD per million completion tokens

    def __str__(self) -> str:
        return f"${self.prompt:g}/${self.completion:g} per million prompt/completion tokens"

    def to_dict(self) -> dict:
        return {"usd_per_million_prompt_tokens": self.prompt, "usd_per_million_completion_tokens": self.completion}


def parse_price(text: str) -> Price:
    """`IN,OUT`: USD per million prompt and completion tokens, e.g. `2,8` for GPT-4.1 (ValueError: one line)."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        if len(parts) != 2:
            raise ValueError
        prompt, completion = float(parts[0]), float(parts[1])
    except ValueError:
        raise ValueError(f"malformed price {text!r}: expected IN,OUT in USD per million prompt and completion "
                         "tokens, e.g. '2,8'") from None
    if not all(math.isfinite(v) and v >= 0 for v in (prompt, completion)):
        raise ValueError(f"price {text!r}: both numbers must be finite and >= 0")
    return Price(prompt, completion)


def empty_usage() -> dict:
    return {name: 0 for name in USAGE_FIELDS}


def empty_saved() -> dict:
    return {name: 0 for name in SAVED_FIELDS}


def add(totals: Iterable[Mapping | None], fields: tuple[str, ...] = USAGE_FIELDS) -> dict:
    """Field by field sum of usages (None and missing fields count 0)."""
    out = {name: 0 for name in fields}
    for total in totals:
        for name in fields:
            out[name] += int((total or {}).get(name) or 0)
    return out


def usd(tokens: Mapping, price: Price) -> float:
    """The money `tokens` ({prompt_tokens, completion_tokens}) cost at `price`."""
    return (tokens.get("prompt_tokens", 0) * price.prompt + tokens.get("completion_tokens", 0) * price.completion) / 1e6


def cost_section(usage: Mapping, saved: Mapping, price: Price | None) -> dict | None:
    """The results' `judge.cost`: this run's cost and what its cached answers would have cost (None: no price)."""
    if price is None:
        return None
    return {"usd": round(usd(usage, price), 6), "cache_saved_usd": round(usd(saved, price), 6), **price.to_dict()}


def summary_line(usage: Mapping, saved: Mapping, price: Price | None, label: str = "") -> str | None:
    """One line for the summary: tokens used, their cost, and what the cache saved (None when nothing is known:
    a backend that reports no usage, no price)."""
    used = usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0)
    kept = saved.get("prompt_tokens", 0) + saved.get("completion_tokens", 0)
    if not used and not kept and price is None:
        return None
    line = (f"judge tokens{label}: {usage.get('prompt_tokens', 0):,} prompt + {usage.get('completion_tokens', 0):,} "
            f"completion in {usage.get('requests', 0):,} requests")
    if price is not None:
        line += f", ${usd(usage, price):,.4f} at {price}"
    if saved.get("answers"):
        line += (f"; the cache saved {saved['answers']:,} answers: {saved.get('prompt_tokens', 0):,} prompt + "
                 f"{saved.get('completion_tokens', 0):,} completion tokens")
        if price is not None:
            line += f", ${usd(saved, price):,.4f}"
    return line


def _price_of(cost: Mapping | None) -> Price | None:
    if not cost or "usd_per_million_prompt_tokens" not in cost:
        return None
    return Price(cost["usd_per_million_prompt_tokens"], cost["usd_per_million_completion_tokens"])


def usage_lines(judge: Mapping) -> list[str]:
    """The summary's usage and cost lines, from the results' `judge` section (a run's, or merged shards'): one for
    a judge, one per judge of a panel and the panel's total cost."""
    members = judge.get("panel") or []
    if members and any(m.get("usage") is not None for m in members):
        lines = [summary_line(m.get("usage") or {}, m.get("cache_saved") or {}, _price_of(m.get("cost")),
                              f" ({m.get('name')})") for m in members]
        lines = [line for line in lines if line]
        cost = judge.get("cost")
        if cost:
            lines.append(f"judge panel cost: ${cost['usd']:,.4f}; the cache saved ${cost['cache_saved_usd']:,.4f}")
        return lines
    line = summary_line(judge.get("usage") or {}, judge.get("cache_saved") or {}, _price_of(judge.get("cost")))
    return [line] if line else []


def merged(sections: list[Mapping]) -> dict:
    """Several runs' `judge` usage, cache savings and cost (the shards of one run) summed, field by field."""
    out: dict = {}
    if any(s.get("usage") is not None for s in sections):
        out["usage"] = add(s.get("usage") for s in sections)
        out["cache_saved"] = add((s.get("cache_saved") for s in sections), SAVED_FIELDS)
    costs = [s.get("cost") for s in sections]
    out["cost"] = None
    if costs and all(costs):
        first = dict(costs[0])
        first["usd"] = round(sum(c["usd"] for c in costs), 6)
        first["cache_saved_usd"] = round(sum(c["cache_saved_usd"] for c in costs), 6)
        out["cost"] = first
    members = [s.get("panel") or [] for s in sections]
    if members and members[0]:
        out["panel"] = [{**entry, **merged([m[i] for m in members if i < len(m)])} for i, entry in
                        enumerate(members[0])]
    return out
