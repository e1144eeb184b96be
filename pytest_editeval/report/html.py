"""The HTML report (`--editeval-html`): one self-contained file that opens from disk or a CI artifact, with no
server and nothing fetched (no CDN script, font or image). Pure rendering apart from thumbnail encoding.

Generic over the benchmark's metrics. Sections: the gate; the result table; score distributions per subset
(SVG histograms of every metric over its range); a gallery of rows (source and edited thumbnails, instruction,
scores, the judge's reasoning per question), filterable by subset and sortable by any metric, also from the
URL (`report.html#subset=color_alter&sort=overall-asc`); how the scores are computed; missing rows; errors
with their reason; and, with a baseline, both runs side by side per row with the headline's difference. With
repeated judging each mean carries the judge's standard error and each row its judge spread (sortable); the
judge's usage and cost, and a panel's judges (weight, own headline, usage), have their own section.
A run header names what produced the numbers (time, model and its digest, judge backend/model/host/recipe,
package versions). Histograms have axes and counts, and a metric with no values draws no chart. A thumbnail opens
its image at full size (the file beside the report, by a relative link; the thumbnail again, with a note, where
that file is not there). With a baseline, each table row shows the paired difference with its 95% interval and
the verdict of a compare gate on that row.
Everything that comes from the dataset, the judge or the user is escaped: judge text is untrusted input.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from pathlib import Path

THUMBNAIL = 160  # px, longest side: a 606-row report stays a few MB
STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222}h1{font-size:22px}h2{font-size:18px;margin-top:28px}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}.fail{color:#b00020;font-weight:bold}.pass{color:#137333}
.hist{display:inline-block;margin:4px 10px 4px 0;vertical-align:top;font-size:11px}
.gallery td{vertical-align:top}.gallery img{max-width:160px;max-height:160px}.why{max-width:340px;text-align:left}
.controls{margin:8px 0}.delta-neg{color:#b00020}.delta-pos{color:#137333}
.subset-hists{display:inline-block;margin:0 18px 10px 0;vertical-align:top}
.hist svg text{font-size:9px;fill:#555}.hist .count{fill:#222}
#run-header th{text-align:left}#run-header td{text-align:left}
a.full{cursor:zoom-in}
#lightbox{position:fixed;inset:0;background:rgba(0,0,0,.85);display:flex;flex-direction:column;align-items:center;
justify-content:center;cursor:zoom-out;z-index:10}#lightbox[hidden]{display:none}
#lightbox img{max-width:96vw;max-height:90vh;background:#fff}#lightbox-note{color:#eee;font-size:13px;margin-top:6px}
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
function showFull(link){
  var box=document.getElementById('lightbox'), img=document.getElementById('lightbox-img'),
      note=document.getElementById('lightbox-note'), thumb=link.querySelector('img');
  note.textContent=link.dataset.note||'';
  img.onerror=function(){ img.onerror=null; img.src=thumb.src;
    note.textContent='full-size file not found beside this report ('+link.getAttribute('href')+'): thumbnail shown'; };
  img.src=link.getAttribute('href'); box.hidden=false;
}
document.addEventListener('click', function(e){
  var link=e.target.closest && e.target.closest('a.full');
  if(link){ e.preventDefault(); showFull(link); }
});
document.addEventListener('DOMContentLoaded', function(){
  document.getElementById('lightbox').addEventListener('click', function(){ this.hidden=true; });
  document.getElementById('subset').addEventListener('change', apply);
  document.getElementById('sort').addEventListener('change', apply);
  fromHash();
});
"""


def thumbnails(samples, read_source: Callable[[str], bytes], max_pixels: int,
               edited_path: Callable | None = None) -> dict[str, tuple[str, str]]:
    """id -> (source, edited) thumbnails as JPEG data URLs ('' where an image cannot be read or is too large).
    `edited_path(sample)`: where the edited image is (default: the path the sample records)."""
    from pytest_editeval.data.images import ImageError, decode_rgb, read_image_file

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

    def recorded(sample) -> Path | None:
        return Path(sample.edited_image) if sample.edited_image else None

    out = {}
    for sample in samples:
        path = (edited_path or recorded)(sample)
        try:  # capped, regular files only: the path may come from a file (a shard's results)
            edited = read_image_file(path, "edited image") if path is not None else None
        except (ImageError, OSError):
            edited = None
        try:
            source = read_source(sample.id)
        except Exception:  # a report must not fail because one source cannot be read
            source = None
        out[sample.id] = (thumb(source), thumb(edited))
    return out


def full_size_links(samples, report_folder: Path, edited_path: Callable | None = None,
                    source_path: Callable[[str], Path | None] | None = None) -> dict[str, tuple[str, str]]:
    """id -> (source, edited) links to the full-size files, relative to the report's folder so that a report
    copied with its images keeps them ('' where there is no file). Nothing is read: the report stays small."""
    import os
    from urllib.parse import quote

    def href(path: Path | None) -> str:
        if path is None or not path.is_file():
            return ""
        try:
            return quote(Path(os.path.relpath(path.resolve(), report_folder.resolve())).as_posix())
        except ValueError:  # another drive (Windows): an absolute file URL
            return path.resolve().as_uri()

    def recorded(sample) -> Path | None:
        return Path(sample.edited_image) if sample.edited_image else None

    out = {}
    for sample in samples:
        try:
            source = source_path(sample.id) if source_path is not None else None
        except Exception:  # a report must not fail because one source cannot be located
            source = None
        out[sample.id] = (href(source), href((edited_path or recorded)(sample)))
    return out


def describe_report(path) -> tuple[bool, int]:
    """(whether the report at `path` shows a complete run, how many scored rows it shows), from the marker that
    render_report writes in its head; (False, 0) when the file is absent, unreadable or not ours."""
    import re

    try:
        with open(path, "rb") as fh:
            head = fh.read(4096).decode("utf-8", "replace")
    except OSError:
        return False, 0
    found = re.search(r"<meta name='editeval-run' content='complete=(true|false); scored=(\d{1,9})'>", head)
    return (found[1] == "true", int(found[2])) if found else (False, 0)


def _fmt(value, decimals: int = 3) -> str:
    return "-" if value is None else f"{value:.{decimals}f}"


def _histogram(values: list[float], title: str, low: float, high: float) -> str:
    """An inline SVG histogram of scores over the metric's range: one bin per point up to 10 points wide
    (0..10, 1..5), else 10 equal bins (0..100). The x axis labels each point or each second bin edge, the y axis runs from 0 to the
    largest count, and each bar carries its count. No values, no chart (an empty chart reads as a zero)."""
    if not values:
        return ""
    span = high - low
    count = int(span) + 1 if span <= 10 else 10
    width_of_bin = span / (count - 1) if span <= 10 else span / count
    bins = [0] * count
    for v in values:
        index = round((v - low) / width_of_bin) if span <= 10 else int((v - low) / width_of_bin)
        bins[min(count - 1, max(0, index))] += 1
    top = max(bins)
    bar, plot, left, above, below = 16, 60, 24, 12, 24
    base = above + plot
    parts = []
    for i, n in enumerate(bins):
        x, h = left + i * bar, round(plot * n / top)
        start = low + i * width_of_bin
        # A point per bin (0..10) is labelled under its bar; a range bin (0..100) by its edges, so that a 25
        # is seen to fall in 20..30 and the top bin to hold the maximum.
        what = f"{start:g}" if span <= 10 else f"{start:g} to {start + width_of_bin:g}"
        parts.append(f'<rect x="{x + 1}" y="{base - h}" width="{bar - 2}" height="{h}" fill="#4a74c9">'
                     f"<title>{what}: {n} rows</title></rect>")
        if n:
            parts.append(f'<text class="count" x="{x + bar / 2:g}" y="{base - h - 2}" text-anchor="middle">{n}</text>')
        if span <= 10:
            parts.append(f'<text x="{x + bar / 2:g}" y="{base + 10}" text-anchor="middle">{start:g}</text>')
        elif i % 2 == 0:
            parts.append(f'<text x="{x}" y="{base + 10}" text-anchor="middle">{start:g}</text>')
    right = left + count * bar
    if span > 10:
        parts.append(f'<text x="{right}" y="{base + 10}" text-anchor="middle">{high:g}</text>')
    parts.append(f'<line x1="{left}" y1="{base}" x2="{right}" y2="{base}" stroke="#888"/>'
                 f'<line x1="{left}" y1="{above}" x2="{left}" y2="{base}" stroke="#888"/>'
                 f'<text x="{left - 3}" y="{base}" text-anchor="end">0</text>'
                 f'<text x="{left - 3}" y="{above + 7}" text-anchor="end">{top}</text>'
                 f'<text x="{(left + right) / 2:g}" y="{base + 21}" text-anchor="middle">score</text>'
                 f'<text x="2" y="{above - 3}">rows</text>')
    return (f'<div class="hist"><div>{escape(title)} (n={len(values)})</div>'
            f'<svg width="{right + (12 if span > 10 else 6)}" height="{base + below}" role="img" '
            f'aria-label="{escape(title)}: {len(values)} rows">{"".join(parts)}</svg></div>')


def render_report(results, benchmark, baseline=None, thumbs: dict | None = None, links: dict | None = None) -> str:
    """`thumbs`: id -> (source, edited) thumbnail data URLs; `links`: id -> (source, edited) hrefs of the
    full-size files, relative to the report ('' where there is none)."""
    thumbs, links = thumbs or {}, links or {}
    metrics = benchmark.metrics
    full = benchmark.scopes[0].name
    scored = [s for s in results.samples if s.status == "scored"]
    errors = [s for s in results.samples if s.status == "error"]
    subsets = list(results.aggregates[full].subsets)
    base_rows = {s.key: s for s in baseline.samples} if baseline is not None else {}
    # Read back by describe_report: a later run that is not complete must not replace a complete run's report.
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'>"
             f"<meta name='editeval-run' content='complete={str(results.complete).lower()}; scored={len(scored)}'>"
             f"<title>editeval: {escape(results.model)}</title>"
             f"<style>{STYLE}</style><script>{SCRIPT}</script></head><body>",
             f"<h1>{escape(benchmark.title or results.benchmark)} ({escape(results.language)}): "
             f"{escape(results.model)}</h1>",
             f"<p>protocol {escape(results.protocol)}, judge {escape(results.judge.model)}"
             + (f" at {escape(results.judge.host)}" if results.judge.host else "")
             + f"{_sampling(results.judge)}; {len(scored)} scored, {len(errors)} errors, "
             f"{len(results.missing)} missing; {_completeness(results)}</p>",
             _run_header(results)]
    parts.append(_gate_section(results))
    parts.append(_table_section(results, benchmark, baseline))
    parts.append(_judges_section(results, benchmark))
    parts.append("<h2>Score distributions</h2>")
    for name in ["all", *subsets]:
        rows = scored if name == "all" else [s for s in scored if s.subset == name]
        charts = "".join(
            _histogram([s.scores[m.name] for s in rows if s.scores.get(m.name) is not None], m.short, m.low, m.high)
            for m in metrics if not m.pooled)
        if charts:  # a subset without any scored value draws nothing (its rows are in the table and errors)
            parts.append(f"<div class='subset-hists'><b>{escape(name)}</b><br>{charts}</div>")
    parts.append(_gallery(results, benchmark, subsets, thumbs, base_rows, links))
    parts.append(_how_scored(results, benchmark))
    if results.missing:
        parts.append(f"<h2>Missing edited images ({len(results.missing)})</h2><ul id='missing'>"
                     + "".join(f"<li>{escape(row_id)}</li>" for row_id in results.missing) + "</ul>")
    if errors:
        parts.append("<h2>Errors</h2><ul id='errors'>" + "".join(
            f"<li><b>{escape(s.id)}</b>: {escape(s.error or '')}</li>" for s in errors) + "</ul>")
    parts.append("<div id='lightbox' hidden><img id='lightbox-img' alt=''><div id='lightbox-note'></div></div>"
                 "</body></html>")
    return "".join(parts)


def _run_header(results) -> str:
    """What produced these numbers: when, which model (and the digest of its weights), which judge, which
    benchmark settings and package versions. Fields a run did not record (an old file, a merge) are left out."""
    meta, judge = results.meta or {}, results.judge
    model = escape(results.model) + "".join(
        f", {label} <code>{escape(str(meta[key]))}</code>"
        for key, label in (("revision", "revision"), ("model_digest", "sha256"), ("seed", "seed"))
        if meta.get(key) is not None)
    who = [f"{escape(judge.model)} ({escape(judge.backend)})"]
    if judge.host:
        who.append(f"at {escape(judge.host)}")
    if judge.recipe:
        who.append(f"recipe {escape(judge.recipe)}")
    if judge.digest:
        who.append(f"sha256 <code>{escape(judge.digest)}</code>")
    params = ", ".join(f"{escape(str(k))}={escape(str(v))}" for k, v in judge.parameters.items())
    if params:
        who.append(f"({params})")
    versions = ", ".join(f"{escape(str(k))} {escape(str(v))}" for k, v in (meta.get("versions") or {}).items())
    lines = [("Time", escape(str(meta.get("timestamp") or ""))), ("Model", model), ("Judge", " ".join(who)),
             ("Benchmark", f"{escape(results.benchmark)} ({escape(results.language)}), protocol "
                           f"{escape(results.protocol)}" + (f", saved as {escape(str(meta['name']))}"
                                                            if meta.get("name") else "")),
             ("Versions", versions)]
    body = "".join(f"<tr><th>{label}</th><td>{value}</td></tr>" for label, value in lines if value)
    return f"<table id='run-header'>{body}</table>"


def _how_scored(results, benchmark) -> str:
    items = [f"<li><b>{escape(m.label)} ({escape(m.short)})</b>: {m.low:g} to {m.high:g}"
             + (", pooled over every metric value of the rows" if m.pooled else "") + "</li>" for m in benchmark.metrics]
    items.append(f"<li>Per row: {escape(benchmark.row_formula)}.</li>")
    items.append("<li>A subset's score is the mean over its scored rows, with its standard error over rows "
                 "(<small>&plusmn;</small>). <b>macro</b> is the unweighted mean of the "
                 "subset means; <b>micro</b> is the mean over all scored rows"
                 + (f"; groups ({escape(', '.join(benchmark.group_names()))}) pool their subsets' rows"
                    if benchmark.groups else "")
                 + f". The headline is {escape(benchmark.info()['headline'])}.</li>")
    if len(benchmark.scopes) > 1:
        items.append("<li>" + "; ".join(f"<b>{escape(s.label)}</b>: rows tagged {escape(s.tag)}" for s in
                                         benchmark.scopes[1:]) + " (GEdit: the rows every compared model of the "
                     "benchmark's paper edited).</li>")
    if results.judge.samples_per_question > 1:
        items.append(f"<li>Each question was asked {results.judge.samples_per_question} times. "
                     "<small>(judge &plusmn; ...)</small> beside a mean is the judge's share of its standard "
                     "error (from the rows' spread over their samples); under a row's score, <small>judge sd</small> "
                     "is its judge spread (the SD over its samples).</li>")
    items.append("<li>Rows whose judging failed are errors: counted, shown, and left out of every mean (never "
                 "scored 0). <code>error_rate</code> = errors / rows judged; <code>missing_rate</code> = rows "
                 "without an edited image / rows selected.</li>")
    return f"<h2>How the scores are computed</h2><ul>{''.join(items)}</ul>"


def _sampling(judge) -> str:
    """How often each question was asked, and how the samples were averaged (nothing for one sample)."""
    if judge.samples_per_question <= 1:
        return ""
    order = "the row formula on each question's mean" if judge.sample_average == "first" else \
        "the mean of the row formula's results"
    return f", {judge.samples_per_question} samples a question ({escape(order)})"


def _tokens(usage, cost, saved=None) -> str:
    """Requests, prompt + completion tokens and their cost; what the cache saved, if it saved anything."""
    if not usage:
        return "-"
    text = f"{usage.get('requests', 0):,} requests, {usage.get('prompt_tokens', 0):,} + " \
           f"{usage.get('completion_tokens', 0):,} tokens"
    text += f", ${cost['usd']:,.4f}" if cost and cost.get("usd") is not None else ""
    if saved and saved.get("answers"):
        text += f"; the cache saved {saved['answers']:,} answers"
        text += f" (${cost['cache_saved_usd']:,.4f})" if cost and cost.get("cache_saved_usd") is not None else ""
    return text


def _judges_section(results, benchmark) -> str:
    """The judge's usage and cost; with a panel, each judge's weight, headline and cost."""
    judge = results.judge
    if not judge.panel:
        if not judge.usage:
            return ""
        return f"<h2>Judge</h2><p id='judge-usage'>{escape(_tokens(judge.usage, judge.cost, judge.cache_saved))}</p>"
    headline = benchmark.metric(benchmark.headline_metric)
    averaging = benchmark.table_averagings[0]
    scope = benchmark.scopes[0].name
    head = (f"<tr><th class='l'>Judge</th><th class='l'>Model</th><th>Weight</th>"
            f"<th>{escape(headline.label)} ({escape(benchmark.averaging_labels[averaging])})</th>"
            "<th class='l'>Usage</th></tr>")
    rows = []
    for member in judge.panel:
        name = member.get("name", "")
        own = results.judge_aggregates.get(name, {}).get(scope)
        stats = getattr(own, averaging).get(headline.name) if own is not None else None
        rows.append(f"<tr><td class='l'>{escape(name)}</td><td class='l'>{escape(str(member.get('model', '')))} "
                    f"({escape(str(member.get('backend', '')))})</td><td>{member.get('weight', 1):g}</td>"
                    f"<td>{_fmt(stats.mean if stats else None, headline.decimals)}</td>"
                    f"<td class='l'>{escape(_tokens(member.get('usage'), member.get('cost'), member.get('cache_saved')))}"
                    "</td></tr>")
    reduce = judge.parameters.get("reduce", "mean")
    return (f"<h2>Judges (a panel: weighted {escape(str(reduce))} per question)</h2>"
            f"<table id='judges'>{head}{''.join(rows)}</table>")


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
        lines += [f"<li class='fail'>{escape(w)}</li>" for w in results.comparison.warnings]
    verdict = ("not applied: " + escape(results.gate.reason or "")) if not results.gate.evaluated else (
        "PASSED" if results.gate.passed and all(g["passed"] for g in (results.comparison.gates if results.comparison else []))
        else "FAILED")
    return f"<h2>Gate: {verdict}</h2><ul>{''.join(lines)}</ul>"


def _table_section(results, benchmark, baseline) -> str:
    """The result table; with a baseline, each metric's baseline mean, its difference, and (from the results'
    comparison) the paired difference over the rows both runs scored with its 95% bootstrap interval, and the
    verdict of any compare gate on that metric and row. A group shows only the metrics it declares (KRIS's
    knowledge types: AVG), as the terminal table does."""
    base = baseline.aggregates if baseline is not None else None
    comparison = results.comparison
    gated: dict = {}
    for g in (comparison.gates if comparison else []):
        gated.setdefault((g["metric"], g.get("subset")), []).append(g)
    columns = _TableColumns(
        metrics=benchmark.metrics, with_base=bool(base), gated=gated,
        paired={(d["metric"], d.get("subset")): d for d in (comparison.deltas if comparison else [])})
    rows = _part_rows(results, benchmark, base, columns) + _scope_rows(results, benchmark, base, columns)
    return f"<h2>Results</h2><table id='results'>{columns.head()}</tr>{''.join(rows)}</table>"


@dataclass(frozen=True)
class _TableColumns:
    """The result table's columns per metric: its mean; with a baseline, the baseline's mean and the difference;
    with paired differences (`paired`, by (metric, row key)), the paired difference and its compare gates."""

    metrics: list
    with_base: bool
    paired: dict
    gated: dict

    def head(self) -> str:
        return "<tr><th class='l'>Subset</th><th>Num</th>" + "".join(
            f"<th>{escape(m.label)} ({escape(m.short)})</th>"
            + (f"<th>{escape(m.short)} baseline</th><th>&Delta;</th>" if self.with_base else "")
            + (f"<th>{escape(m.short)} paired &Delta; (95% CI)</th>" if self.paired else "") for m in self.metrics)

    def cells(self, current, previous, subset=None, only=None) -> str:
        """One row's cells: `subset` keys its paired difference; `only`, a group's metrics (the others blank)."""
        out = ""
        for m in self.metrics:
            if only is not None and m.name not in only:
                out += "<td></td>" + ("<td></td><td></td>" if self.with_base else "") + ("<td></td>" if self.paired else "")
                continue
            stats = current.get(m.name)
            value = stats.mean if stats is not None else None
            out += _mean_cell(m, stats, value)
            if self.with_base:
                out += _baseline_cells(m, value, previous)
            if self.paired:
                out += self._paired_cell(m, subset)
        return out

    def _paired_cell(self, metric, subset) -> str:
        d = self.paired.get((metric.name, subset))
        text = "-"
        if d is not None and d.get("delta") is not None:
            text = (f"{d['delta']:+.{metric.decimals}f} <small>[{_fmt(d['ci_low'], metric.decimals)}, "
                    f"{_fmt(d['ci_high'], metric.decimals)}] n={d['n']}</small>")
        for g in self.gated.get((metric.name, subset), []):
            verdict = "PASS" if g["passed"] else "FAIL"
            text += f" <b class='{verdict.lower()}'>{verdict} {escape(g['expression'])}</b>"
        return f"<td>{text}</td>"


def _mean_cell(metric, stats, value) -> str:
    """The mean, with its standard error and (repeated judging) the judge's share of it where known."""
    stderr, noise = (getattr(stats, "stderr", None), getattr(stats, "judge_stderr", None))
    return (f"<td>{_fmt(value, metric.decimals)}"
            + (f" <small>&plusmn; {_fmt(stderr, metric.decimals)}</small>" if stderr is not None else "")
            + (f" <small class='judge'>(judge &plusmn; {_fmt(noise, metric.decimals)})</small>"
               if noise is not None else "") + "</td>")


def _baseline_cells(metric, value, previous) -> str:
    """The baseline's mean and this run's difference to it (coloured by its sign)."""
    b = previous.get(metric.name) if previous else None
    b = b.mean if b is not None else None
    delta = None if value is None or b is None else value - b
    css = "" if delta is None else ("delta-neg" if delta < 0 else "delta-pos")
    return (f"<td>{_fmt(b, metric.decimals)}</td><td class='{css}'>"
            f"{'-' if delta is None else f'{delta:+.{metric.decimals}f}'}</td>")


def _part_rows(results, benchmark, base, columns: _TableColumns) -> list[str]:
    """A row per subset, then per group, of the full scope."""
    full = benchmark.scopes[0].name
    shown_for = {g.name: g.metrics for g in benchmark.groups}
    rows = []
    for kind in ("subsets", "groups"):
        for name, part in getattr(results.aggregates[full], kind).items():
            other = getattr(base[full], kind).get(name) if base and full in base else None
            subset, only = (name, None) if kind == "subsets" else (None, shown_for.get(name))
            rows.append(f"<tr><td class='l'>{escape(name)}</td><td>{part.num}</td>"
                        + columns.cells(part.metrics, other.metrics if other else None, subset if kind == "subsets" else
                                        ("group", name), only) + "</tr>")
    return rows


def _scope_rows(results, benchmark, base, columns: _TableColumns) -> list[str]:
    """A row per scope and averaging the table shows (the headline rows)."""
    full = benchmark.scopes[0].name
    rows = []
    for scope in benchmark.scopes:
        agg = results.aggregates.get(scope.name)
        if agg is None:
            continue
        for averaging in benchmark.table_averagings:
            other = getattr(base[scope.name], averaging) if base and scope.name in base else None
            # the paired headline difference is computed for the full scope's default averaging only
            headline = scope.name == full and averaging == benchmark.default_averaging
            rows.append(f"<tr><th class='l'>{escape(scope.label)} ({escape(benchmark.averaging_labels[averaging])})"
                        f"</th><td>{agg.num}</td>"
                        + columns.cells(getattr(agg, averaging), other, None if headline else ("scope", scope.name, averaging))
                        + "</tr>")
    return rows


def _gallery(results, benchmark, subsets, thumbs, base_rows, links) -> str:
    metrics = benchmark.metrics
    headline = benchmark.metric(benchmark.headline_metric)
    options = "".join(f"<option value='{escape(s)}'>{escape(s)}</option>" for s in subsets)
    repeated = any(s.judge_sd for s in results.samples)
    keys = [(headline.name, headline.label), *((m.name, m.short) for m in metrics if m is not headline),
            *((("delta", "Delta vs baseline"),) if base_rows else ()),
            *((("judge_sd", "Judge spread"),) if repeated else ())]
    sorts = "".join(f"<option value='{k}-{d}'>{escape(label)} {'high first' if d == 'desc' else 'low first'}</option>"
                    for k, label in keys for d in ("desc", "asc"))
    header = ("<tr><th class='l'>Row</th><th>Source</th><th>Edited</th><th class='l'>Instruction</th>"
              + "".join(f"<th>{escape(m.short)}</th>" for m in metrics)
              + (f"<th>{escape(headline.short)} baseline</th><th>&Delta;</th>" if base_rows else "")
              + "<th class='l'>Judge reasoning</th></tr>")
    rows = []
    for order, s in enumerate(results.samples):
        src, edited = thumbs.get(s.id, ("", ""))
        src_href, edited_href = links.get(s.id, ("", ""))
        base = base_rows.get(s.key)
        value, before = s.scores.get(headline.name), (base.scores.get(headline.name) if base else None)
        delta = value - before if value is not None and before is not None else None
        data = (f"data-subset='{escape(s.subset)}' data-order='{order}' "
                + "".join(f"data-{m.name}='{_num(s.scores.get(m.name))}' " for m in metrics)
                + f"data-delta='{_num(delta)}' data-judge_sd='{_num(s.judge_sd.get(headline.name))}' "
                + f"data-status='{escape(s.status)}'")
        why = ("<br>".join(f"{escape(name)}: {_answer_why(answer)}" for name, answer in s.answers.items())
               if s.status == "scored"
               else f"<span class='fail'>error: {escape(s.error or '')}</span>")
        rows.append(
            f"<tr {data}><td class='l'>{escape(s.id)}</td><td>{_image(src, src_href)}</td>"
            f"<td>{_image(edited, edited_href)}</td>"
            f"<td class='l'>{escape(s.instruction or '')}</td>"
            + "".join(f"<td>{_fmt(s.scores.get(m.name), m.decimals)}{_spread(s, m)}</td>" for m in metrics)
            + (f"<td>{_fmt(before, headline.decimals)}</td><td>{'-' if delta is None else f'{delta:+.3f}'}</td>"
               if base_rows else "")
            + f"<td class='why'>{why}</td></tr>")
    return ("<h2>Gallery</h2><div class='controls'>Subset <select id='subset'><option value='all'>all</option>"
            f"{options}</select> Sort <select id='sort'>{sorts}</select> <span id='shown'></span> rows shown</div>"
            f"<table class='gallery' id='gallery'><thead>{header}</thead><tbody>{''.join(rows)}</tbody></table>")


def _image(thumbnail: str, href: str) -> str:
    """A thumbnail (a data: URL we made) that opens the full-size file on click; without a file to open, the
    thumbnail alone."""
    if not thumbnail:
        return "-"
    img = f"<img src='{thumbnail}' alt=''>"
    return f"<a class='full' href='{escape(href)}'>{img}</a>" if href else img


def _answer_why(answer: dict) -> str:
    """The judge's reasoning; for a question never answered readably, that it is missing for this row, and why."""
    if answer.get("error"):
        return f"<span class='fail'>unreadable, missing for this row only: {escape(str(answer['error']))}</span>"
    return escape(str(answer.get("reasoning") or ""))


def _spread(sample, metric) -> str:
    """A row's judge spread (SD over its samples) under its score, when it was judged more than once."""
    sd = sample.judge_sd.get(metric.name)
    return "" if sd is None else f"<br><small class='judge'>judge sd {_fmt(sd, metric.decimals)}</small>"


def _num(value) -> str:
    return "" if value is None else f"{value:.6f}"
