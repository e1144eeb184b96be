"""How two judges agree, for people (terminal table, HTML section) and for programs (JSON). Pure rendering."""

from __future__ import annotations

import json
from html import escape


def _f(value, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def table_rows(results, labels: dict[str, str]) -> list[list[object]]:
    return [[labels.get(r.metric, r.metric), r.subset or "ALL", r.n, _f(r.pearson), _f(r.spearman), _f(r.kendall),
             _f(r.mean_difference, "+.3f"),
             "-" if r.ci_low is None else f"{r.ci_low:+.3f} to {r.ci_high:+.3f}", _f(r.ranking_agreement, ".1%")]
            for r in sorted(results, key=lambda r: (list(labels).index(r.metric), r.subset is not None))]


HEADERS = ["Metric", "Subset", "n", "Pearson", "Spearman", "Kendall", "A - B", "95% CI", "Same order"]


def render_agreement_table(results, labels: dict[str, str]) -> str:
    from tabulate import tabulate

    from pytest_editeval.data.paths import printable

    text = tabulate(table_rows(results, labels), headers=HEADERS, tablefmt="pretty")
    worst = [r for r in results if r.subset is None]
    lines = [text]
    for r in worst:
        shown = ", ".join(f"{printable(w['key'], 80)} ({w['a']:.2f} vs {w['b']:.2f})" for w in r.worst[:5])
        if shown:
            lines.append(f"largest disagreements, {labels.get(r.metric, r.metric)}: {shown}")
    return "\n".join(lines)


def agreement_json(results, name_a: str, name_b: str, a, b) -> str:
    return json.dumps({
        "a": {"run": name_a, "judge": a.judge.model_dump(), "model": a.model},
        "b": {"run": name_b, "judge": b.judge.model_dump(), "model": b.model},
        "benchmark": a.benchmark, "language": a.language,
        "agreements": [r.to_dict() for r in results],
    }, indent=2)


def render_agreement_html(results, labels: dict[str, str], name_a: str, name_b: str, a, b) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in HEADERS)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(cell))}</td>" for cell in row) + "</tr>"
                   for row in table_rows(results, labels))
    worst = "".join(
        f"<h3>{escape(labels.get(r.metric, r.metric))}: largest disagreements</h3><table><tr><th>Row</th>"
        "<th>Subset</th><th>A</th><th>B</th><th>A - B</th></tr>"
        + "".join(f"<tr><td>{escape(w['key'])}</td><td>{escape(w['subset'])}</td><td>{w['a']:.3f}</td>"
                  f"<td>{w['b']:.3f}</td><td>{w['difference']:+.3f}</td></tr>" for w in r.worst) + "</table>"
        for r in results if r.subset is None and r.worst)
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>judge agreement</title><style>"
            "body{font-family:system-ui,sans-serif;margin:24px}table{border-collapse:collapse;font-size:13px}"
            "td,th{border:1px solid #ccc;padding:3px 7px}</style></head><body>"
            f"<h1>Judge agreement: {escape(a.judge.model)} ({escape(name_a)}) vs {escape(b.judge.model)} "
            f"({escape(name_b)})</h1><p>{escape(a.benchmark)} ({escape(a.language)}), rows paired by key over the "
            "rows both runs scored. Same order: the share of row pairs both judges order the same way.</p>"
            f"<h2 id='agreement'>Agreement</h2><table><tr>{head}</tr>{body}</table>{worst}</body></html>")
