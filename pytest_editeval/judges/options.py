"""The options every judge shares, declared once (stdlib only: read at pytest's option time).

A backend's own options live in its module (`OPTIONS` of openai_http.py, transformers_local.py, vllm_managed.py);
`LOCAL_MODEL` are the options of a backend that loads the judge model itself (both local backends list them).
A judge setting names the JudgeSpec value it sets (`field`) and, when a panel file may set it per judge, its key
there (`panel_key`); its default is written here once and read by settings, JudgeSpec and JudgeSettings alike.
"""

from __future__ import annotations

from pytest_editeval.data.hub import HUBS
from pytest_editeval.options.types import Option, choice, number, price

# Per-judge settings: the run's value (command line, ini, default) under each panel judge's own key.
SHARED = (
    Option("judge-model", "judge model: its name at the endpoint for openai (or EDITEVAL_JUDGE_MODEL; default: the "
           "benchmark's, e.g. gpt-4.1); a hub id or a folder for transformers and vllm (required)",
           metavar="NAME_ID_OR_DIR", one_judge=True),
    Option("judge-seed", "seed of a sampling judge (default: the recipe's; editscore 42)", number(int, 0),
           metavar="N", field="seed", panel_key="seed"),
    Option("judge-timeout", "seconds a judge request attempt may take in all, however slowly the answer arrives "
           "(default {default})", number(float, 0, False), metavar="S", default=120.0, field="timeout_s",
           panel_key="timeout"),
    Option("judge-max-tokens", "max_tokens sent to the judge (default: the protocol's; GEdit 1400 official, "
           "4096 evalscope)", number(int, 1), metavar="N", field="max_tokens", panel_key="max_tokens"),
    Option("judge-temperature", "temperature sent to the judge (default: the protocol's; GEdit none official, 0.0 "
           "evalscope)", number(float, 0), metavar="T", field="temperature", panel_key="temperature"),
    Option("top-p", "top_p sent to the judge (a panel key; default: the protocol's)", number(float, 0),
           field="top_p", panel_key="top_p", panel_only=True),
    Option("top-k", "top_k sent to the judge (a panel key; default: the protocol's)", number(int, 0),
           field="top_k", panel_key="top_k", panel_only=True),
    Option("judge-retries", "retries of a failed judge request (default {default})", number(int, 0), metavar="N",
           default=5, field="retries", panel_key="retries"),
    Option("judge-parse-retries", "re-asks when a reply has no readable score (default {default})", number(int, 0),
           metavar="N", default=2, field="parse_retries", panel_key="parse_retries"),
    Option("judge-backoff", "first retry delay in seconds, doubled each retry (default {default})",
           number(float, 0), metavar="S", default=1.0, field="backoff_s", panel_key="backoff"),
    Option("row-deadline", "seconds one row may spend on the judge, retries, re-asks and Retry-After pauses "
           "included (default {default})", number(float, 0, False), metavar="S", default=900.0,
           field="row_deadline_s"),
    Option("judge-concurrency", "adaptive (default): requests in flight follow the provider's rate limit, up to "
           "--editeval-judge-workers: a slow start from 8 (doubled per round trip), requests sent evenly, never in "
           "bursts, and slowed by 429s, time-outs, Retry-After and x-ratelimit-* headers (also LiteLLM's "
           "llm_provider-*); fixed: always --editeval-judge-workers",
           choice("judge concurrency", ("adaptive", "fixed")), default="adaptive", field="concurrency",
           panel_key="concurrency"),
)
# The sampling values above (max_tokens ... top_k) come from the benchmark's protocol and recipe when not given
# (Benchmark.judge_parameters).

# How the run uses its judge(s): one value for the run.
RUN = (
    Option("judge-workers", "judge requests kept in flight (default {default}); with adaptive concurrency the most "
           "kept in flight", number(int, 1), metavar="N", default=8),
    Option("judge-samples", "ask each question K times (distinct seeds where the backend takes one), each answer "
           "cached on its own; rows then report the judge's spread and aggregates its standard error (default "
           "{default})", number(int, 1), metavar="K", default=1),
    Option("judge-average", "with several samples: first (default) = the row formula on each question's mean over "
           "the samples; last = the mean of the row formula's results on each sample",
           choice("averaging order", ("first", "last")), default="first"),
    Option("judge-panel", "a TOML file of several judges (backend, model, the environment variables of their URL "
           "and key, weight) whose answers are combined per question", metavar="FILE"),
    Option("judge-panel-reduce", "how a panel combines its judges' answers to a question: mean (weighted, default) "
           "or median (weighted)", choice("panel reduction", ("mean", "median")), default="mean"),
    Option("judge-price", "USD per million prompt and completion tokens, e.g. '2,8': the run's judge cost, and what "
           "the cache saved, in the summary and the results", price, metavar="IN,OUT"),
)

# The options of a backend that loads the judge model on this machine (transformers, vllm).
LOCAL_MODEL = (
    Option("judge-model-hub", "hub of --editeval-judge-model and --editeval-judge-adapter: modelscope (default) or "
           "huggingface", choice("hub", HUBS), default="modelscope", field="hub", panel_key="hub", one_judge=True),
    Option("judge-adapter", "a PEFT LoRA adapter on the judge model (hub id or folder), e.g. EditScore/EditScore-7B",
           metavar="ID_OR_DIR", field="adapter", panel_key="adapter", one_judge=True),
)
