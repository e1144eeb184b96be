"""The HTML report (`--editeval-html`): one self-contained file that opens from disk or a CI artifact, with no
server and nothing fetched (no CDN script, font or image). Pure rendering apart from thumbnail encoding.

Sections: the result table; score distributions per subset (SVG histograms of SC, PQ and O); a gallery of
rows (source and edited thumbnails, instruction, scores, the judge's reasoning), filterable by subset and
sortable by score, also from the URL (`report.html#subset=color_alter&sort=overall-asc`); errors with their
reason; and, with a baseline, both runs side by side per row with the score difference. Everything that
comes from the dataset, the judge or the user is escaped: judge text is untrusted input.
"""

from __future__ import annotations

import base64
import io
from html import escape
from pathlib import Path
from typing import Callable

from ..verdict import METRICS

THUMBNAIL = 160  # px, longest side: a 606-row report stays a few MB
SHORT = {"semantic_consistency": "SC", "perceptual_quality": "PQ", "overall": "O"}
LABELS = {"semantic_consistency": "Semantic Consistency", "perceptual_quality": "Perceptual Quality",
          "overall": "Overall"}
HOW_SCORED = """<h2>How the scores are computed</h2><ul>
<li><b>Semantic Consistency (SC)</b>: the judge sees the instruction, the source and the edited image and answers two
0-10 scores (editing success, over-editing); SC is the lower of the two.</li>
<li><b>Perceptual Quality (PQ)</b>: the judge sees the edited image only and answers two 0-10 scores (naturalness,
artifacts); PQ is the lower of the two.</li>
<li><b>Overall (O)</b>: the geometric mean sqrt(SC &times; PQ) of the row.</li>
<li>A subset's score is the mean over its scored rows. <b>macro</b> (the official headline under the official
protocol) is the unweighted mean of the subset means; <b>micro</b> is the mean over all scored rows.
<b>Intersection</b> rows are those every compared model of the benchmark's paper edited.</li>
<li>Rows whose judging failed are errors: counted, shown, and left out of every mean (never scored 0).
<code>error_rate</code> = errors / rows judged; <code>missing_rate</code> = rows without an edited image / rows
selected.</li></ul>"""

STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222}h1{font-size:22px}h2{font-size:18px;margin-top:28px}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}.fail{color:#b00020;font-weight:bold}.pass{color:#137333}
.hist{display:inline-block;margin:4px 10px 4px 0;vertical-align:top;font-size:11px}
.gallery td{vertical-align:top}.gallery img{max-width:160px;max-height:160px}.why{max-width:340px;text-align:left}
.controls{margin:8px 0}.delta-neg{color:#b00020}.delta-pos{color:#137333}
.subset-hists{display:inline-block;margin:0 18px 10px 0;vertical-align:top}
"""

SCRIPT = """
function apply(){
  var subset=document.getElementById('subset').value, sort=document.getElementById('sort').value;
  var body=document.querySelector('#gallery tbody'), rows=Array.from(body.rows);
  rows.forEach(function(r){ r.hidden = subset!=='all' && r.dataset.subset!==subset; });
  var parts=sort.split('-'), key=parts[0], dir=parts[1]==='asc'?1:-1;
  rows.sort(function(a,b){ var x=parseFloat(a.dataset[key]), y=parseFloat(b.dataset[key]);
    if(isNaN(x)) x=-1; if(isNaN(y)) y=-1; return dir*(x-y) || a.dataset.order-b.dataset.order; });
  rows.forEach(function(r){ body.appendChild(r); });
  document.getElementById('shown').textContent = rows.filter(function(r){return !r.hidden;}).length;
}
function fromHash(){
  var params=new URLSearchParams(location.hash.slice(1));
  if(params.get('subset')) document.getElementById('subset').value=params.get('subset');
  if(params.get('sort')) document.getElementById('sort').value=params.get('sort');
  apply();
}
window.addEventListener('hashchange', fromHash);
document.addEventListener('DOMContentLoaded', function(){
  document.getElementById('subset').addEventListener('change', apply);
  document.getElementById('sort').addEventListener('change', apply);
  fromHash();
});
"""


def thumbnails(samples, read_source: Callable[[str], bytes], max_pixels: int) -> dict[str, tuple[str, str]]:
    """id -> (source, edited) thumbnails as JPEG data URLs ('' where an image cannot be read or is too large)."""
    from ..images import ImageError, decode_rgb

    def thumb(data: bytes | None) -> str:
        if not data:
            return ""
        try:
            small = decode_rgb(data, "image", max_pixels)
            small.thumbnail((THUMBNAIL, THUMBNAIL))
            buf = io.BytesIO()
            small.save(buf, format="JPEG", quality=80)
            return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
        except (ImageError, OSError):
            return ""

    out = {}
    for sample in samples:
        edited = Path(sample.edited_image).read_bytes() if sample.edited_image and Path(sample.edited_image).is_file() else None
        try:
            source = read_source(sample.id)
        except Exception:  # a report must not fail because one source cannot be read
            source = None
        out[sample.id] = (thumb(source), thumb(edited))
    return out


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def _histogram(values: list[float], title: str) -> str:
    """An inline SVG histogram of 0..10 scores in 11 one-point bins."""
    bins = [0] * 11
    for v in values:
        bins[min(10, max(0, int(round(v))))] += 1
    top = max(bins) or 1
    width, height = 14, 60
    bars = "".join(
        f'<rect x="{i * width}" y="{height - h}" width="{width - 2}" height="{h}" fill="#4a74c9">'
        f"<title>{i}: {count}</title></rect>"
        for i, count in enumerate(bins) for h in [round(height * count / top)])
    labels = f'<text x="0" y="{height + 11}">0</text><text x="{10 * width}" y="{height + 11}">10</text>'
    return (f'<div class="hist"><div>{escape(title)} (n={len(values)})</div>'
            f'<svg width="{11 * width}" height="{height + 14}" role="img">{bars}{labels}</svg></div>')


def render_report(results, baseline=None, thumbs: dict | None = None) -> str:
    thumbs = thumbs or {}
    scored = [s for s in results.samples if s.status == "scored"]
    errors = [s for s in results.samples if s.status == "error"]
    subsets = list(results.aggregates["full"].subsets)
    base_rows = {s.key: s for s in baseline.samples} if baseline is not None else {}
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>editeval: {escape(results.model)}</title>"
             f"<style>{STYLE}</style><script>{SCRIPT}</script></head><body>",
             f"<h1>{escape(results.benchmark)} ({escape(results.language)}): {escape(results.model)}</h1>",
             f"<p>protocol {escape(results.protocol)}, judge {escape(results.judge.model)} at "
             f"{escape(results.judge.host)}; {len(scored)} scored, {len(errors)} errors, "
             f"{len(results.missing)} missing; {_completeness(results)}</p>"]
    parts.append(_gate_section(results))
    parts.append(_table_section(results, baseline))
    parts.append("<h2>Score distributions</h2>")
    for name in ["all", *subsets]:
        rows = scored if name == "all" else [s for s in scored if s.subset == name]
        parts.append(f"<div class='subset-hists'><b>{escape(name)}</b><br>"
                     + "".join(_histogram([getattr(s, m) for s in rows], SHORT[m]) for m in METRICS) + "</div>")
    parts.append(_gallery(results, subsets, thumbs, base_rows))
    parts.append(HOW_SCORED)
    if results.missing:
        parts.append(f"<h2>Missing edited images ({len(results.missing)})</h2><ul id='missing'>"
                     + "".join(f"<li>{escape(row_id)}</li>" for row_id in results.missing) + "</ul>")
    if errors:
        parts.append("<h2>Errors</h2><ul id='errors'>" + "".join(
            f"<li><b>{escape(s.id)}</b>: {escape(s.error or '')}</li>" for s in errors) + "</ul>")
    parts.append("</body></html>")
    return "".join(parts)


def _completeness(results) -> str:
    if results.stopped:
        return f"<b class='fail'>STOPPED: {escape(results.stopped)}</b>"
    if results.complete:
        return "complete run"
    if results.rows_ran is not None and results.rows_ran < results.expected_rows:
        return f"<b>PARTIAL run</b>: {results.rows_ran} of {results.expected_rows} rows ran"
    return "incomplete: rows without an edited image" + (" (allowed: --editeval-allow-missing)"
                                                          if results.allow_missing else "")


def _gate_section(results) -> str:
    lines = [f"<li class='{'pass' if t.passed else 'fail'}'>{'PASS' if t.passed else 'FAIL'} "
             f"{escape(t.expression)}: actual {_fmt(t.actual)} (n={t.n})</li>" for t in results.gate.thresholds]
    lines += [f"<li class='fail'>FAIL {escape(failure)}</li>" for failure in results.gate.failures]
    if results.comparison:
        lines += [f"<li class='{'pass' if g['passed'] else 'fail'}'>{'PASS' if g['passed'] else 'FAIL'} compare "
                  f"{escape(g['expression'])}: {_fmt(g['delta'])} (95% CI {_fmt(g['ci_low'])} to "
                  f"{_fmt(g['ci_high'])}, n={g['n']})</li>" for g in results.comparison.gates]
    verdict = ("not applied: " + escape(results.gate.reason or "")) if not results.gate.evaluated else (
        "PASSED" if results.gate.passed and all(g["passed"] for g in (results.comparison.gates if results.comparison else []))
        else "FAILED")
    return f"<h2>Gate: {verdict}</h2><ul>{''.join(lines)}</ul>"


def _table_section(results, baseline) -> str:
    full = results.aggregates["full"]
    inter = results.aggregates["intersection"]
    base = baseline.aggregates if baseline is not None else None
    head = "<tr><th class='l'>Subset</th><th>Num</th>" + "".join(
        f"<th>{LABELS[m]} ({SHORT[m]})</th>" + (f"<th>{SHORT[m]} baseline</th><th>&Delta;</th>" if base else "")
        for m in METRICS)
    rows = []

    def cells(stats_for, base_for) -> str:
        out = ""
        for m in METRICS:
            value = stats_for(m)
            out += f"<td>{_fmt(value)}</td>"
            if base:
                b = base_for(m)
                delta = None if value is None or b is None else value - b
                css = "" if delta is None else ("delta-neg" if delta < 0 else "delta-pos")
                out += f"<td>{_fmt(b)}</td><td class='{css}'>{'-' if delta is None else f'{delta:+.3f}'}</td>"
        return out

    for name, sub in full.subsets.items():
        b = base["full"].subsets.get(name) if base else None
        rows.append(f"<tr><td class='l'>{escape(name)}</td><td>{sub.num}</td>"
                    + cells(lambda m, sub=sub: getattr(sub, m).mean, lambda m, b=b: getattr(b, m).mean if b else None)
                    + "</tr>")
    for label, scope, key, avg in (("OVERALL (macro)", full, "full", "macro"), ("OVERALL (micro)", full, "full", "micro"),
                                   ("INTERSECTION (macro)", inter, "intersection", "macro"),
                                   ("INTERSECTION (micro)", inter, "intersection", "micro")):
        rows.append(f"<tr><th class='l'>{label}</th><td>{scope.num}</td>"
                    + cells(lambda m, scope=scope, avg=avg: getattr(scope, avg)[m].mean,
                            lambda m, key=key, avg=avg: getattr(base[key], avg)[m].mean if base else None)
                    + "</tr>")
    return f"<h2>Results</h2><table id='results'>{head}</tr>{''.join(rows)}</table>"


def _gallery(results, subsets, thumbs, base_rows) -> str:
    options = "".join(f"<option value='{escape(s)}'>{escape(s)}</option>" for s in subsets)
    sorts = "".join(f"<option value='{k}-{d}'>{label} {'high first' if d == 'desc' else 'low first'}</option>"
                    for k, label in (("overall", "Overall"), ("sc", "SC"), ("pq", "PQ"),
                                     *((("delta", "Delta vs baseline"),) if base_rows else ()))
                    for d in ("desc", "asc"))
    header = ("<tr><th class='l'>Row</th><th>Source</th><th>Edited</th><th class='l'>Instruction</th>"
              "<th>SC</th><th>PQ</th><th>O</th>" + ("<th>O baseline</th><th>&Delta;</th>" if base_rows else "")
              + "<th class='l'>Judge reasoning</th></tr>")
    rows = []
    for order, s in enumerate(results.samples):
        src, edited = thumbs.get(s.id, ("", ""))
        base = base_rows.get(s.key)
        delta = (s.overall - base.overall) if base and s.overall is not None and base.overall is not None else None
        data = (f"data-subset='{escape(s.subset)}' data-order='{order}' data-overall='{_num(s.overall)}' "
                f"data-sc='{_num(s.semantic_consistency)}' data-pq='{_num(s.perceptual_quality)}' "
                f"data-delta='{_num(delta)}' data-status='{escape(s.status)}'")
        why = (f"SC: {escape(s.sc_reasoning or '')}<br>PQ: {escape(s.pq_reasoning or '')}" if s.status == "scored"
               else f"<span class='fail'>error: {escape(s.error or '')}</span>")
        img = lambda url: f"<img src='{url}' alt=''>" if url else "-"  # noqa: E731 - urls are data: URLs we made
        rows.append(
            f"<tr {data}><td class='l'>{escape(s.id)}</td><td>{img(src)}</td><td>{img(edited)}</td>"
            f"<td class='l'>{escape(_instruction(s))}</td><td>{_fmt(s.semantic_consistency)}</td>"
            f"<td>{_fmt(s.perceptual_quality)}</td><td>{_fmt(s.overall)}</td>"
            + (f"<td>{_fmt(base.overall if base else None)}</td><td>{'-' if delta is None else f'{delta:+.3f}'}</td>"
               if base_rows else "")
            + f"<td class='why'>{why}</td></tr>")
    return ("<h2>Gallery</h2><div class='controls'>Subset <select id='subset'><option value='all'>all</option>"
            f"{options}</select> Sort <select id='sort'>{sorts}</select> <span id='shown'></span> rows shown</div>"
            f"<table class='gallery' id='gallery'><thead>{header}</thead><tbody>{''.join(rows)}</tbody></table>")


def _num(value) -> str:
    return "" if value is None else f"{value:.6f}"


def _instruction(sample) -> str:
    return sample.instruction or ""
