"""The unpaired gain: what a model gets out of the unpaired pools, as one number with an interval.

A model that reads the unpaired pools declares its paired-only twin
(:meth:`bench.models.RetrievalModel.paired_only_twin`): the same config with every term that reads
the pools switched off and the same number of updates. ``bench run --with-controls`` trains each
twin beside its model, as a cell labelled :data:`bench.run.cell.TWIN_LABEL` (after the model's own label, if any),
on the same split files and seeds. The unpaired gain at a fraction is then

    model rsum − twin rsum

with the paired bootstrap interval that ``bench report --compare`` uses (same test images drawn
for both rows, same split seeds drawn for both). A model that ignores the pools has no twin; its
gain is shown as "—", since it is zero by construction, not by measurement.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.errors import BenchError
from bench.metrics.stats import bootstrap_delta
from bench.report.comparison import _runs_of
from bench.report.plots import save_figure
from bench.report.records import row_names
from bench.run.cell import base_label, is_twin_label

# Columns that must match between a model's row and its twin's (the label differs by TWIN_LABEL).
_MATCH = ["dataset", "model", "text_encoder", "profile", "policy", "extras", "unpaired_fraction", "fraction"]


def gain_table(table: pd.DataFrame, frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """One line per model row (not twin rows) and fraction: its rsum, its twin's, the gain and, when
    both rows kept their test ranks (``frame``: the per-run records), the 95 % bootstrap interval.

    ``table`` is :func:`bench.report.summary_table`'s output. Rows of models that ignore the pools
    show "—"; rows whose twin did not run say so, with the command that runs it.
    """
    if table.empty:
        raise BenchError("no rows to compute an unpaired gain for")
    named = table.assign(_name=row_names(table))
    twins = named[[is_twin_label(label) for label in named["label"]]]
    lines = []
    for _, row in named.iterrows():
        if is_twin_label(row["label"]):
            continue
        line = {"Row": row["_name"], "Policy": row["policy"], "Paired %": f"{row['fraction']:g}",
                "rsum": f"{row['rsum']:.1f}"}
        reads_pools = bool(row.get("uses_unpaired", True))
        if not reads_pools:
            lines.append({**line, "twin rsum": "—", "unpaired gain": "—", "95 % CI": "—", "CI excludes 0": "—"})
            continue
        match = np.ones(len(twins), dtype=bool)
        for column in _MATCH:
            match &= (twins[column] == row[column]).to_numpy()
        match &= np.array([base_label(label) == row["label"] for label in twins["label"]], dtype=bool)
        if not match.any():
            lines.append({**line, "twin rsum": "not run (bench run --with-controls)", "unpaired gain": "",
                          "95 % CI": "", "CI excludes 0": ""})
            continue
        twin = twins[match].iloc[0]
        line.update({"twin rsum": f"{twin['rsum']:.1f}", "unpaired gain": f"{row['rsum'] - twin['rsum']:+.1f}"})
        first, second = _runs_of(frame, row), _runs_of(frame, twin)
        if first and second:
            interval = bootstrap_delta(first, second)
            line["95 % CI"] = f"[{interval['low']:+.1f}, {interval['high']:+.1f}]"
            line["CI excludes 0"] = "yes" if interval["excludes_zero"] else "no"
            line["_low"], line["_high"] = interval["low"], interval["high"]
        else:
            line["95 % CI"], line["CI excludes 0"] = "n/a (records without test ranks)", ""
        line["_gain"], line["_fraction"] = row["rsum"] - twin["rsum"], float(row["fraction"])
        lines.append(line)
    out = pd.DataFrame(lines)
    shown = [c for c in out.columns if not c.startswith("_")]
    out[shown] = out[shown].astype(object).fillna("")
    if out["Policy"].nunique() == 1:
        out = out.drop(columns="Policy")
    return out


def visible(gains: pd.DataFrame) -> pd.DataFrame:
    """The gain table without its private (underscored) columns, for printing."""
    return gains[[c for c in gains.columns if not c.startswith("_")]]


def render_gain(gains: pd.DataFrame, fmt: str) -> str:
    """The gain table in a `bench report` format, with a line that says how to read it."""
    table = visible(gains)
    if fmt == "csv":
        return table.to_csv(index=False)
    if fmt == "json":
        return table.to_json(orient="records", indent=1, force_ascii=False) + "\n"
    if fmt == "html":
        return table.to_html(index=False) + "\n"
    from tabulate import tabulate

    tablefmt = {"markdown": "pipe", "github": "github", "latex": "latex"}.get(fmt, "pipe")
    note = ("Unpaired gain: rsum of the model minus its paired-only twin (the same config with every term "
            "that reads the unpaired pools off, the same splits and seeds); 95 % paired bootstrap interval "
            "over test images and seeds. '—': the model ignores the pools.")
    return "\n\n" + tabulate(table, headers="keys", tablefmt=tablefmt, showindex=False) + "\n\n- " + note + "\n"


def plot_gain(gains: pd.DataFrame, path: Path) -> Path:
    """The unpaired gain (model − twin, rsum) against the paired fraction, one line per model row,
    with its 95 % interval as error bars; a dashed line at 0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # rows without a twin (or that ignore the pools) have no _gain: NaN once the table is a frame
    measured = gains[gains["_gain"].notna()] if "_gain" in gains else gains.iloc[0:0]
    if measured.empty:
        raise BenchError("no model row has its paired-only twin; run the twins with `bench run --with-controls`")
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    keys = ["Row", "Policy"] if "Policy" in measured else ["Row"]
    for key, group in measured.groupby(keys, sort=False):
        group = group.sort_values("_fraction")
        name = " / ".join(key) if isinstance(key, tuple) else key
        x, y = group["_fraction"].to_numpy(float), group["_gain"].to_numpy(float)
        if "_low" in group and group["_low"].notna().all():
            low, high = group["_low"].to_numpy(float), group["_high"].to_numpy(float)
            ax.errorbar(x, y, yerr=[y - low, high - y], marker="o", capsize=3, label=name)
        else:
            ax.plot(x, y, marker="o", label=name)
    ax.axhline(0.0, color="grey", linestyle="--", linewidth=1)
    ax.set_xscale("log")
    ticks = sorted(measured["_fraction"].unique())
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{t:g}" for t in ticks])
    ax.set_xlabel("paired training images (%)")
    ax.set_ylabel("unpaired gain: rsum − paired-only twin")
    ax.set_title("What the unpaired pools are worth (95 % bootstrap intervals)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)
