"""`OUT/report.html`: what a run did, on one self-contained page.

The funnel, the language, domain, synthetic-score and quality-signal distributions before and after
curation, near-duplicate clusters, strata and diversity, per-shard counts and the run's provenance.
Plots are matplotlib figures inlined as SVG; the page has no script, no external font, image or
style sheet, so it opens offline and can be mailed or archived as one file. Everything comes from
the outputs (`stats.json` and the Parquet parts, see `pipeline/profile.py`), so `ouroboros report
OUT` rebuilds it at any time.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import json
import re
from typing import Any

import numpy as np
from ouroboros.pipeline.outputs import read_stats, write_text
from ouroboros.pipeline.profile import funnel, profile
from ouroboros.transforms.synthetic.config import SyntheticConfig

BEFORE, AFTER, DROPPED, ERROR = "#a0aec0", "#2b6cb0", "#dd6b20", "#c53030"

# Section ids, in page order, with their headings (the test checks every one is rendered).
SECTIONS = (
    ("summary", "Summary"),
    ("funnel", "Funnel: records in, dropped per stage and reason, out"),
    ("languages", "Languages"),
    ("domains", "Domains"),
    ("synthetic", "Synthetic-content scores"),
    ("quality", "Quality signals"),
    ("near-duplicates", "Near and exact duplicates"),
    ("strata", "Strata and diversity"),
    ("shards", "Shards"),
    ("provenance", "Provenance"),
)

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;margin:0;color:#1a202c;background:#f7fafc}
header{background:#1a365d;color:#fff;padding:18px 32px}header h1{margin:0 0 4px;font-size:22px}
header .meta{opacity:.85;font-size:13px}nav{padding:8px 32px;background:#e2e8f0;font-size:13px}
nav a{margin-right:14px;color:#2c5282;text-decoration:none}main{padding:8px 32px 40px;max-width:1200px}
section{background:#fff;border:1px solid #e2e8f0;border-radius:6px;padding:12px 20px;margin:16px 0}
h2{font-size:18px;margin:4px 0 10px;color:#1a365d}h3{font-size:15px;margin:14px 0 6px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}th,td{border-bottom:1px solid #e2e8f0;padding:3px 10px;text-align:left;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{border:1px solid #e2e8f0;border-radius:6px;padding:8px 14px;min-width:120px}.card b{display:block;font-size:20px}
.ok{color:#276749}.bad{color:#c53030}.note{color:#4a5568;font-size:13px}figure{margin:8px 0}
svg{max-width:100%;height:auto}pre{background:#f7fafc;border:1px solid #e2e8f0;padding:8px;overflow:auto;font-size:12px;max-height:480px}
code{font-size:12px}.reason{color:#4a5568}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _n(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return _e(value)


def _table(header: list[str], rows: list[list[Any]], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    head = "".join(f'<th class="n">{_e(h)}</th>' if i in numeric else f"<th>{_e(h)}</th>"
                   for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f'<td class="n">{_n(v)}</td>' if i in numeric else f"<td>{v}</td>"
                                    for i, v in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# ---- figures -------------------------------------------------------------------------------

def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "font.size": 9,
                         "font.family": "sans-serif", "font.sans-serif": ["DejaVu Sans"],
                         "axes.spines.top": False, "axes.spines.right": False})
    return plt


def _svg(fig, name: str) -> str:
    """The figure as inline SVG: no XML prolog, ids salted per figure so several can share a page."""
    plt = _plt()
    plt.rcParams["svg.hashsalt"] = name
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    plt.close(fig)
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]
    return f'<figure role="img" aria-label="{_e(name)}">{svg}</figure>'


def _no_data(what: str) -> str:
    return f'<p class="note">No data: {_e(what)}.</p>'


def _funnel_figure(rows: list[dict[str, Any]], input_records: int, out_key: str, kept: int) -> str:
    plt = _plt()
    labels = ["input"] + [r["stage"] for r in rows] + [out_key]
    fig, ax = plt.subplots(layout="constrained", figsize=(8, 0.42 * len(labels) + 0.8))
    y = np.arange(len(labels))[::-1]
    ax.barh(y[0], input_records, color=BEFORE)
    for yi, r in zip(y[1:-1], rows):
        ax.barh(yi, r["out"], color=AFTER)
        ax.barh(yi, r["dropped"], left=r["out"], color=DROPPED)
        ax.barh(yi, r["errors"], left=r["out"] + r["dropped"], color=ERROR)
        note = f"-{r['dropped']:,}" + (f"  ({r['errors']:,} errors)" if r["errors"] else "")
        ax.text(r["in"], yi, "  " + note, va="center", fontsize=8)
    ax.barh(y[-1], kept, color=AFTER)
    ax.text(input_records, y[0], f"  {input_records:,}", va="center", fontsize=8)
    ax.text(kept, y[-1], f"  {kept:,}", va="center", fontsize=8)
    ax.set_yticks(y, labels)
    ax.set_xlabel("records")
    ax.set_xlim(0, max(input_records, 1) * 1.25)
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color=AFTER, label="kept"), Patch(color=DROPPED, label="dropped"),
                       Patch(color=ERROR, label="errors")], loc="lower right", frameon=False)
    return _svg(fig, "funnel")


def _paired_bars(before: dict[str, int], after: dict[str, int], name: str, top: int,
                 before_label: str = "read", after_label: str = "curated") -> str:
    keys = [k for k, _ in sorted(before.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]
    if not keys:
        return _no_data(name)
    plt = _plt()
    fig, ax = plt.subplots(layout="constrained", figsize=(8, 0.28 * len(keys) + 1.0))
    y = np.arange(len(keys))[::-1]
    ax.barh(y + 0.2, [before.get(k, 0) for k in keys], height=0.4, color=BEFORE, label=before_label)
    ax.barh(y - 0.2, [after.get(k, 0) for k in keys], height=0.4, color=AFTER, label=after_label)
    ax.set_yticks(y, keys)
    values = [v for v in before.values() if v > 0]
    if values and max(values) / min(values) > 50:
        ax.set_xscale("log")
        ax.set_xlabel("records (log scale)")
    else:
        ax.set_xlabel("records")
    ax.legend(frameon=False, loc="lower right")
    return _svg(fig, name)


def _histogram_axes(ax, hist: dict[str, Any], title: str) -> None:
    edges = np.asarray(hist["edges"])
    ax.stairs(hist["before"], edges, color=BEFORE, fill=True, label="read")
    ax.stairs(hist["after"], edges, color=AFTER, fill=True, alpha=0.75, label="curated")
    if hist["log"]:
        ax.set_xscale("log")
    ax.set_title(title, fontsize=9)


def _signal_figure(signals: dict[str, dict[str, Any]]) -> str:
    shown = [(n, h) for n, h in signals.items() if sum(h["before"]) > 0]
    if not shown:
        return _no_data("no record has quality signals (quality stage disabled?)")
    plt = _plt()
    cols = 4
    rows = (len(shown) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(11, 2.3 * rows), squeeze=False, layout="constrained")
    for ax, (name, hist) in zip(axes.flat, shown):
        _histogram_axes(ax, hist, name)
    for ax in list(axes.flat)[len(shown):]:
        ax.axis("off")
    axes.flat[0].legend(frameon=False, fontsize=8)
    return _svg(fig, "quality-signals")


def _score_figure(hist: dict[str, Any]) -> str:
    if sum(hist["before"]) == 0:
        return _no_data("no record has a synthetic score (synthetic stage disabled?)")
    plt = _plt()
    fig, ax = plt.subplots(layout="constrained", figsize=(7, 2.8))
    _histogram_axes(ax, hist, "synthetic_score (calibrated probability of machine-written text)")
    ax.set_xlabel("synthetic_score")
    ax.set_ylabel("records")
    ax.legend(frameon=False)
    return _svg(fig, "synthetic-score")


def _cluster_figure(sizes: dict[Any, int]) -> str:
    if not sizes:
        return _no_data("no near-duplicate cluster of two or more documents")
    plt = _plt()
    xs = sorted(int(k) for k in sizes)
    fig, ax = plt.subplots(layout="constrained", figsize=(7, 2.6))
    ax.bar([str(x) for x in xs], [sizes[x] if x in sizes else sizes[str(x)] for x in xs], color=AFTER)
    ax.set_xlabel("documents in the cluster")
    ax.set_ylabel("clusters")
    return _svg(fig, "cluster-sizes")


# ---- sections ------------------------------------------------------------------------------

def _section(sid: str, body: str) -> str:
    title = dict(SECTIONS)[sid]
    return f'<section id="{sid}"><h2>{_e(title)}</h2>{body}</section>'


def _summary(stats: dict[str, Any], prof: dict[str, Any]) -> str:
    out_key = "tagged" if "tagged" in stats else "curated"
    timing = stats.get("timing", {})
    acc = stats.get("accounting", {})
    holds = acc.get("holds")
    cards = [("input records", _n(stats.get("input_records", 0))),
             (out_key, _n(stats.get(out_key, 0))), ("rejected", _n(stats.get("rejected", 0))),
             ("errors", _n(stats.get("errors", 0))), ("shards", _n(stats.get("shards", 0)))]
    if "duration_seconds" in timing:
        cards.append(("duration", f"{timing['duration_seconds']:,.1f} s"))
    if timing.get("records_per_second"):
        cards.append(("records/s", f"{timing['records_per_second']:,.1f}"))
    html_cards = "".join(f'<div class="card"><b>{v}</b>{_e(k)}</div>' for k, v in cards)
    verdict = (f'<p class="{"ok" if holds else "bad"}">Accounting {"holds" if holds else "does NOT hold"}: '
               f'{_e(acc.get("identity", ""))} ({_n(acc.get("documents_read", 0))} documents read + '
               f'{_n(acc.get("read_errors", 0))} read errors).</p>')
    skipped = stats.get("skipped_non_documents") or {}
    note = ""
    if skipped:
        note = ('<p class="note">Not documents, not counted as input: '
                + ", ".join(f"{_e(k)} {_n(v)}" for k, v in skipped.items()) + ".</p>")
    if prof["mode"] == "tag":
        note += ('<p class="note">Output of <code>ouroboros tag</code>: nothing was dropped; '
                 '"curated" below means the tagged records no stage would drop.</p>')
    return html_cards and f'<div class="cards">{html_cards}</div>{verdict}{note}'


def _funnel(stats: dict[str, Any], prof: dict[str, Any]) -> str:
    if prof["mode"] == "tag":  # nothing was dropped: show what `run` would have dropped
        stats = {**stats, "rejected_by_stage": prof["would_drop"]}
    rows = funnel(stats)
    out_key = "tagged" if "tagged" in stats else "curated"
    kept = stats.get(out_key, 0) if out_key == "curated" else prof["kept"]
    fig = _funnel_figure(rows, stats.get("input_records", 0), out_key, kept)
    table_rows = []
    for r in rows:
        reasons = ", ".join(f"{_e(k)} {_n(v)}" for k, v in sorted(r["reasons"].items(),
                                                                  key=lambda kv: -kv[1]))
        errors = ", ".join(f"{_e(k)} {_n(v)}" for k, v in r["error_types"].items())
        table_rows.append([_e(r["stage"]), r["in"], r["dropped"], f'<span class="reason">{reasons}</span>',
                           r["errors"], f'<span class="reason">{errors}</span>', r["out"]])
    table = _table(["stage", "in", "dropped", "reasons", "errors", "error types", "out"],
                   table_rows, numeric={1, 2, 4, 6})
    note = ('<p class="note">Stages that dropped nothing are not listed. A reason is the rule '
            'that failed (<code>rule:signal=value</code> in <code>reject_reason</code>).'
            + (' Tag mode: the drops <code>ouroboros run</code> would make (the first stage that '
               'would drop each record).' if prof["mode"] == "tag" else "") + '</p>')
    return fig + table + note


def _languages(prof: dict[str, Any]) -> str:
    lang = prof["languages"]
    fig = _paired_bars(lang["before"], lang["after"], "languages", 20)
    rows = [[_e(k), v, lang["after"].get(k, 0)] for k, v in list(lang["before"].items())[:40]]
    note = (f'<p class="note">{_n(len(lang["before"]))} languages read, {_n(len(lang["after"]))} '
            f'curated; {_n(prof["no_language"])} documents were dropped before language ID '
            '(no language).</p>')
    return fig + note + "<details><summary>table</summary>" + _table(
        ["language", "read", "curated"], rows, numeric={1, 2}) + "</details>"


def _domains(prof: dict[str, Any]) -> str:
    dom = prof["domains"]
    fig = _paired_bars(dom["before"], dom["after"], "domains", 25)
    approx = " (counts of rare domains are approximate)" if prof["domains_approximate"] else ""
    note = (f'<p class="note">{_n(prof["distinct_domains"]["before"])} distinct registered domains '
            f'read, {_n(prof["distinct_domains"]["after"])} curated; the 25 largest shown{approx}.</p>')
    return fig + note


def _synthetic(prof: dict[str, Any]) -> str:
    classes = prof["provenance_classes"]
    rows = [[_e(k), v, classes["after"].get(k, 0)] for k, v in classes["before"].items()]
    table = _table(["provenance_class", "scored", "curated"], rows, numeric={1, 2}) if rows else ""
    missing = prof["synthetic_score"]["missing"]
    cfg = SyntheticConfig()
    note = (f'<p class="note">Documents dropped before the synthetic stage have no score '
            f'({_n(missing)}). <code>human</code> &lt; {cfg.ai_assisted_threshold:g} &le; '
            f'<code>ai_assisted</code> &lt; {cfg.synthetic_threshold:g} &le; <code>synthetic</code> '
            'by default; <code>unknown</code> for texts the scorer does not judge (short or not '
            'English).</p>')
    return _score_figure(prof["synthetic_score"]) + table + note


def _quality(prof: dict[str, Any]) -> str:
    note = ('<p class="note">Grey: every document that reached the quality stage; blue: the '
            'curated ones. Values outside a plot\'s range are counted in its first or last bin. '
            'All 31 signals are stored per record in <code>quality_signals</code>.</p>')
    return _signal_figure(prof["signals"]) + note


def _duplicates(prof: dict[str, Any]) -> str:
    nd, ex = prof["near_dup"], prof["exact_dup"]
    facts = (f'<p>{_n(nd["clusters"])} near-duplicate clusters of two or more documents hold '
             f'{_n(nd["documents_in_clusters"])} documents; {_n(nd["dropped"])} were dropped as '
             f'<code>near_duplicate_of:&lt;id&gt;</code>. {_n(ex["dropped"])} exact duplicates of '
             f'{_n(ex["kept_with_copies"])} documents were dropped as '
             '<code>exact_duplicate_of:&lt;id&gt;</code>.</p>')
    table = ""
    if nd["largest"]:
        rows = [[f'<code>{_e(r["id"])}</code>', _e(r["url"] or ""), r["size"]] for r in nd["largest"]]
        table = "<h3>Largest clusters</h3>" + _table(["representative id", "url", "size"], rows,
                                                     numeric={2})
        table += ('<p class="note">Show a cluster\'s members with <code>ouroboros inspect OUT '
                  '--id ID</code>.</p>')
    return facts + _cluster_figure(nd["cluster_sizes"]) + table


def _strata(stats: dict[str, Any], prof: dict[str, Any]) -> str:
    st = prof["strata"]
    keys = " x ".join(st["keys"])
    state = ("Sampling ran: grey is the sampler's input, blue what it kept." if st["sampling_enabled"]
             else "Sampling is off (<code>sampling.enabled</code>): every stratum is kept whole.")
    approx = " Counts of rare strata are approximate." if st["approximate"] else ""
    text = (f'<p>Strata by <code>{_e(keys)}</code>: {_n(st["distinct_before"])} before sampling, '
            f'{_n(st["distinct_after"])} after. {state}{approx}</p>')
    fig = _paired_bars(st["before"], st["after"], "strata", 40, "sampler input", "curated")
    metrics = [("records", "records"), ("strata", "strata"), ("coverage", "coverage of input strata"),
               ("shannon", "Shannon entropy (nats)"), ("shannon_effective", "effective strata (e^H)"),
               ("gini_simpson", "Gini-Simpson"), ("inverse_simpson", "inverse Simpson"),
               ("tail_strata", "tail strata"), ("tail_strata_kept", "tail strata kept"),
               ("tail_mass", "tail mass"), ("distinct_1", "distinct-1 (words)"),
               ("distinct_2", "distinct-2 (word pairs)"), ("vocab_tail_mass", "vocabulary tail mass")]
    din, dout = stats.get("diversity_input") or {}, stats.get("diversity_output") or {}
    rows = [[_e(label), din.get(k, ""), dout.get(k, "")] for k, label in metrics
            if k in din or k in dout]
    table = ("<h3>Diversity before and after sampling</h3>"
             + _table(["metric", "before", "after"], rows, numeric={1, 2})) if rows else ""
    plan = stats.get("sampling")
    plan_html = ""
    if plan:
        plan_html = ("<details><summary>sampling plan</summary><pre>"
                     + _e(json.dumps(plan, indent=2, default=str)) + "</pre></details>")
    return text + fig + table + plan_html


def _shards(stats: dict[str, Any]) -> str:
    shards = stats.get("per_shard") or []
    if not shards:
        return _no_data("stats.json has no per-shard counts (written by an older version)")
    out_key = "tagged" if "tagged" in stats else "curated"
    top = sorted(shards, key=lambda r: -r["input_records"])[:100]
    rows = [[f'<code>{_e(r["source_uri"])}</code>', r["input_records"], r["documents_read"],
             r["read_errors"], r.get(out_key, 0), r["rejected"], r["errors"],
             '<span class="ok">yes</span>' if r["accounting_holds"] else '<span class="bad">NO</span>']
            for r in top]
    more = (f'<p class="note">The 100 largest of {len(shards):,} shards; all are in '
            '<code>stats.json</code> (<code>per_shard</code>).</p>' if len(shards) > 100 else "")
    return _table(["shard", "input records", "documents", "read errors", out_key, "rejected",
                   "errors", "adds up"], rows, numeric={1, 2, 3, 4, 5, 6}) + more


def _provenance(stats: dict[str, Any]) -> str:
    timing = stats.get("timing", {})
    runner = stats.get("runner", {})
    rows = [["run id", f'<code>{_e(stats.get("run_id"))}</code>'],
            ["pipeline", _e(stats.get("pipeline_version", ""))],
            ["config sha256", f'<code>{_e(stats.get("config_sha256", ""))}</code>'],
            ["started", _e(timing.get("started_at", stats.get("started_at", "")))],
            ["finished", _e(timing.get("finished_at", ""))],
            ["duration", _e(f'{timing["duration_seconds"]:,.1f} s') if "duration_seconds" in timing else ""],
            ["runner", _e(runner.get("name", ""))]]
    if runner.get("options"):
        rows.append(["runner options", "<code>" + _e(json.dumps(runner["options"], default=str))
                     + "</code>"])
    inputs = stats.get("inputs") or []
    rows.append(["inputs (as given)", "<br>".join(f"<code>{_e(i)}</code>" for i in inputs)])
    rows.append(["shards", _n(stats.get("shards", 0))])
    if "shards_skipped_already_processed" in stats:
        rows.append(["shards skipped (earlier runs)", _n(stats["shards_skipped_already_processed"])])
    versions = stats.get("versions") or {}
    rows.append(["versions", ", ".join(f"{_e(k)} {_e(v)}" for k, v in versions.items())])
    html_rows = "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows)
    config = stats.get("config")
    config_html = ""
    if config:
        import yaml

        config_html = ("<h3>Effective configuration</h3><pre>"
                       + _e(yaml.safe_dump(config, sort_keys=False)) + "</pre>")
    steps = timing.get("seconds_by_step") or {}
    steps_html = ""
    stages = timing.get("seconds_by_stage") or {}
    if stages:
        steps_html += ("<h3>Time per stage of the streaming pass</h3>" + _table(
            ["stage", "seconds"], [[_e(k), v] for k, v in stages.items()], numeric={1})
            + '<p class="note">The per-document stages run in one step (<code>documents</code>); '
              "<code>STAGE.setup</code> is its model loading, once per worker process.</p>")
    if steps:
        steps_html += ("<h3>Time per step</h3>" + _table(
            ["step", "seconds"], [[_e(k), v] for k, v in list(steps.items())[:25]], numeric={1})
            + '<p class="note">Processing time in each step of the Beam graph, summed over '
              "workers, from the runner's monitoring data: Beam's startup and waiting between "
              "stages are not in it, so the sum is not the run's duration).</p>")
    counters = stats.get("beam_counters")
    counters_html = ""
    if counters:
        counters_html = ("<details><summary>Beam counters</summary>"
                         + _table(["counter", "value"], [[_e(k), v] for k, v in counters.items()],
                                  numeric={1}) + "</details>")
    return f"<table>{html_rows}</table>{steps_html}{config_html}{counters_html}"


def render(stats: dict[str, Any], prof: dict[str, Any], out: str) -> str:
    """The whole page as a string."""
    bodies = {
        "summary": _summary(stats, prof), "funnel": _funnel(stats, prof),
        "languages": _languages(prof), "domains": _domains(prof), "synthetic": _synthetic(prof),
        "quality": _quality(prof), "near-duplicates": _duplicates(prof),
        "strata": _strata(stats, prof), "shards": _shards(stats), "provenance": _provenance(stats),
    }
    nav = "".join(f'<a href="#{sid}">{_e(title.split(":")[0])}</a>' for sid, title in SECTIONS)
    sections = "".join(_section(sid, bodies[sid]) for sid, _ in SECTIONS)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>ouroboros run report: {_e(stats.get("run_id"))}</title><style>{CSS}</style></head>'
        f'<body><header><h1>ouroboros run report</h1><div class="meta">run <code>{_e(stats.get("run_id"))}</code>'
        f' &middot; {_e(out)} &middot; report written {_e(now)}</div></header><nav>{nav}</nav>'
        f"<main>{sections}</main></body></html>\n"
    )


def write_report(out: str, stats: dict[str, Any] | None = None, shown_as: str | None = None) -> str:
    """Writes `OUT/report.html` from the outputs; returns its path. `shown_as`: the directory the
    page names (the final output, when `out` is the run's staging directory)."""
    stats = read_stats(out) if stats is None else stats
    page = render(stats, profile(out, stats), shown_as or out)
    return write_text(out, "report.html", page)


_EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//|@import|url\(\s*["']?(?:https?:)?//""",
                       re.IGNORECASE)


def external_references(page: str) -> list[str]:
    """Anything in the page that a browser would fetch from the network (must be empty)."""
    return [m.group(0) for m in _EXTERNAL.finditer(page)]
