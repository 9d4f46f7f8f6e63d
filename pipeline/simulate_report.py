"""The simulation's outputs: the table (printed), simulation.csv, simulation.json, one PNG per metric."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

# metric -> (plot title, y label, the held-out real text's value is a meaningful reference line)
METRICS: dict[str, tuple[str, str, bool]] = {
    "tail_kept_train": ("Real tail vocabulary kept in the training data", "share of T_R", False),
    "tail_kept_out": ("Real tail vocabulary the model still writes (vs generation 0)",
                      "share of generation 0's", False),
    "tail_mass_out": ("Tail mass of the model's output", "share of word tokens", True),
    "tail_mass_train": ("Tail mass of the training data", "share of word tokens", False),
    "vocab_out": ("Vocabulary of the model's output (fixed word budget)", "distinct words", True),
    "vocab_train": ("Vocabulary of the training data", "distinct words", False),
    "distinct1_out": ("distinct-1 of the model's output", "distinct / total", True),
    "distinct2_out": ("distinct-2 of the model's output", "distinct / total", True),
    "perplexity": ("Perplexity on held-out real text", "perplexity", False),
    "synthetic_share": ("Share of generated documents in the training data", "share", False),
    "let_through": ("Generated documents the pipeline let through", "share of the crawl's", False),
    "real_kept": ("Fresh real documents the pipeline kept", "share of the crawl's", False),
}

TABLE_COLUMNS = [
    ("generation", "gen", "{:d}"), ("regime", "regime", "{}"), ("train_docs", "docs", "{:d}"),
    ("synthetic_share", "synth", "{:.2f}"), ("vocab_train", "vocab", "{:d}"),
    ("tail_kept_train", "tail kept", "{:.3f}"), ("tail_kept_out", "tail kept(out)", "{:.3f}"),
    ("tail_mass_out", "tail mass(out)", "{:.3f}"), ("vocab_out", "vocab(out)", "{:d}"),
    ("distinct1_out", "d-1", "{:.3f}"), ("distinct2_out", "d-2", "{:.3f}"),
    ("perplexity", "ppl", "{:.0f}"), ("let_through", "let through", "{:.2f}"),
    ("real_kept", "real kept", "{:.2f}"),
]


def _fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return spec.format(value)


def format_table(result: dict[str, Any]) -> str:
    rows = [r for r in result["rows"] if r["generation"] == 0][:1] + \
        [r for r in result["rows"] if r["generation"] > 0]
    cells = [[h for _, h, _ in TABLE_COLUMNS]]
    for r in rows:
        line = [_fmt(r.get(k), spec) for k, _, spec in TABLE_COLUMNS]
        if r["generation"] == 0:
            line[1] = "(all)"
        cells.append(line)
    ref = result["real_heldout_reference"]
    cells.append(["real", "held-out", "", "", "", "", "", _fmt(ref["tail_mass_out"], "{:.3f}"),
                  _fmt(ref["vocab_out"], "{:d}"), _fmt(ref["distinct1_out"], "{:.3f}"),
                  _fmt(ref["distinct2_out"], "{:.3f}"), "", "", ""])
    widths = [max(len(c[i]) for c in cells) for i in range(len(cells[0]))]
    out = ["| " + " | ".join(c.ljust(w) for c, w in zip(line, widths)) + " |" for line in cells]
    out.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def write_report(result: dict[str, Any], out: Path) -> None:
    (out / "simulation.json").write_text(json.dumps(result, indent=2, default=_json_default))
    keys = list(dict.fromkeys(k for r in result["rows"] for k in r))
    with (out / "simulation.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(result["rows"])
    (out / "table.md").write_text(format_table(result) + "\n")
    plot_curves(result, out)


def plot_curves(result: dict[str, Any], out: Path) -> list[Path]:
    """One PNG per metric, a line per regime over the generations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    regimes = list(dict.fromkeys(r["regime"] for r in result["rows"]))
    ref = result["real_heldout_reference"]
    written = []
    for metric, (title, ylabel, has_ref) in METRICS.items():
        series = {reg: [(r["generation"], r.get(metric)) for r in result["rows"]
                        if r["regime"] == reg and r.get(metric) is not None] for reg in regimes}
        series = {k: v for k, v in series.items() if any(g > 0 for g, _ in v)}
        if not series:
            continue
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        for reg, pts in series.items():
            pts = [(g, y) for g, y in pts if not (isinstance(y, float) and math.isnan(y))]
            ax.plot([g for g, _ in pts], [y for _, y in pts], marker="o", ms=3, label=reg)
        if has_ref and metric in ref:
            ax.axhline(ref[metric], color="grey", ls="--", lw=1, label="held-out real text")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("generation")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out / f"{metric}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
