"""This project's own test scaffolding, not a public API (it may change without notice): a fake-clock rate-limit
simulation (rate_simulation), a stand-in for `vllm serve` (stand_in_vllm) and tiny random local judges
(tiny_judges). The public testing API is `pytest_editeval.testing`."""
