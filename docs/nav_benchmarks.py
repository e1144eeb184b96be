"""MkDocs hook: every page under docs/how-to/benchmarks/ is in the nav's Benchmarks section, so a new benchmark's
page needs no line in mkdocs.yml. Pages the nav already lists keep their place and title; the others follow in
file-name order, titled by their first heading up to its first parenthesis ("# RISEBench (`...`)": RISEBench)."""

from __future__ import annotations

from pathlib import Path

FOLDER = "how-to/benchmarks"
SECTION = "Benchmarks"


def _section(nav, name: str):
    for entry in nav or []:
        if isinstance(entry, dict):
            for title, value in entry.items():
                if title == name and isinstance(value, list):
                    return value
                found = _section(value, name) if isinstance(value, list) else None
                if found is not None:
                    return found
    return None


def _title(page: Path) -> str:
    first = next((line for line in page.read_text(encoding="utf-8").splitlines() if line.startswith("# ")), "")
    return first[2:].split(" (", 1)[0].strip() or page.stem


def on_config(config):
    section = _section(config["nav"], SECTION)
    if section is None:
        return config
    listed = {value for entry in section if isinstance(entry, dict) for value in entry.values()}
    for page in sorted((Path(config["docs_dir"]) / FOLDER).glob("*.md")):
        path = f"{FOLDER}/{page.name}"
        if path not in listed:
            section.append({_title(page): path})
    return config
