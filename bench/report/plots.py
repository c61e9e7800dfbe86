"""Figures of a report: R@K and rsum against the paired fraction, rsum against the unpaired pool, and
each run's dev rsum during training. Every figure is written atomically by :func:`save_figure`."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from bench.errors import BenchError
from bench.io import atomic_write_bytes
from bench.report.records import _finite, row_names, with_pool_defaults


def plot_formats() -> set[str]:
    """The file name extensions matplotlib can write."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backend_bases import FigureCanvasBase

    return set(FigureCanvasBase.get_supported_filetypes())


def check_plot_path(path: Path, option: str = "--plot") -> None:
    """Refuse a plot target matplotlib cannot write, before any work is done."""
    fmt = path.suffix.lstrip(".").lower() or "png"
    if fmt not in plot_formats():
        raise BenchError(f"{option} {path}: cannot draw a '.{fmt}' file; use one of "
                         f"{', '.join('.' + f for f in sorted(plot_formats()))}")


def save_figure(fig, path: Path) -> Path:
    """Write a matplotlib figure to ``path`` atomically (in the format its suffix names) and close it."""
    import io

    import matplotlib.pyplot as plt


    buffer = io.BytesIO()
    fig.savefig(buffer, format=path.suffix.lstrip(".") or "png", dpi=110)
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def plot(table: pd.DataFrame, path: Path, reference: pd.DataFrame | None = None) -> Path:
    """R@1/5/10 both ways and rsum against the paired fraction, one line per model (and text encoder)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("i2t_r1", "caption R@1"), ("i2t_r5", "caption R@5"), ("i2t_r10", "caption R@10"),
              ("t2i_r1", "image R@1"), ("t2i_r5", "image R@5"), ("t2i_r10", "image R@10"),
              ("rsum", "rsum"), ("retention", "retention (rsum / rsum at 100 %)")]
    fig, axes = plt.subplots(2, 4, figsize=(17, 7.5))
    named = table.assign(_name=row_names(table))
    for (metric, title), ax in zip(panels, axes.flat):
        for (dataset, _, name), group in named.groupby(["dataset", "policy", "_name"], sort=False):
            label = f"{dataset}: {name}" if table["dataset"].nunique() > 1 else name
            group = group.sort_values("fraction")
            ax.plot(group["fraction"], group[metric], marker="o", label=label)
            std = group.get(f"{metric}_std")
            if std is not None and std.notna().any():
                ax.fill_between(group["fraction"], group[metric] - std.fillna(0), group[metric] + std.fillna(0), alpha=0.15)
        if reference is not None and metric in reference and reference[metric].notna().any():
            for (name, source), group in reference.groupby(["model", "label"], sort=False):
                group = group.dropna(subset=[metric]).sort_values("fraction")
                ax.plot(group["fraction"], group[metric], linestyle="--", marker="x", alpha=0.6,
                        label=f"{name} ({source})")
        ax.set_title(title)
        ax.set_xlabel("paired training images (%)")
        ax.set_xticks(sorted(table["fraction"].unique()))
        ax.grid(alpha=0.3)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, max(1, len(labels))), fontsize=9)
    fig.suptitle("Retrieval under partial pairing (test split)")
    fig.tight_layout(rect=(0, 0.08, 1, 0.96))
    return save_figure(fig, path)


def curve_points(run: pd.Series) -> tuple[list[float], list[float], int | None, bool]:
    """One run's validation curve as (x, dev rsum, index of the epoch kept or None, whether x is in
    updates). Epoch e ends after (e + 1) / epochs_run of the run's updates; a record without an
    update count gives x in epochs."""
    epochs, rsums = (list(values) for values in zip(*run["_curve"]))
    updates, epochs_run = _finite(run["updates"]), _finite(run["epochs_run"])
    per_epoch = updates / epochs_run if updates and epochs_run else None
    x = [(epoch + 1) * per_epoch if per_epoch else float(epoch) for epoch in epochs]
    best = _finite(run["best_epoch"])
    return x, rsums, epochs.index(best) if best in epochs else None, per_epoch is not None


def plot_curves(frame: pd.DataFrame, path: Path) -> Path:
    """Dev rsum after each epoch of every run, one panel per paired fraction, a colour per row and a
    line per seed; a dot marks the epoch whose weights the run kept.

    The x axis is optimizer updates, spread evenly over the run's epochs, so that rows whose epochs
    differ in size (a paired-only model against one that also reads unpaired data, or one fraction
    against another) line up by training done. A run whose record lacks its update count (a model
    with no training loop, or an old record) is drawn against epochs, which the axis label then says.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = with_pool_defaults(frame)
    frame = frame.assign(_name=row_names(frame))
    frame = frame[[bool(curve) for curve in frame["_curve"]]]
    if frame.empty:
        raise BenchError("--curves: none of these records has a validation curve (models without a "
                         "training loop, such as cca, have none)")
    fractions = sorted(frame["fraction"].unique(), reverse=True)
    columns = min(2, len(fractions))
    rows = math.ceil(len(fractions) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(7.5 * columns, 5 * rows), squeeze=False)
    for ax in axes.flat[len(fractions):]:
        ax.set_visible(False)
    names = list(dict.fromkeys(frame["_name"]))
    colours = {name: f"C{i % 10}" for i, name in enumerate(names)}
    styles = ["-", "--", ":", "-."]
    seed_order = {name: sorted(seeds.unique()) for name, seeds in frame.groupby("_name")["seed"]}
    for ax, fraction in zip(axes.flat, fractions):
        by_epochs = False
        for _, run in frame[frame["fraction"] == fraction].sort_values(["_name", "seed"]).iterrows():
            x, rsums, kept, in_updates = curve_points(run)
            by_epochs |= not in_updates
            line = styles[seed_order[run["_name"]].index(run["seed"]) % len(styles)]
            ax.plot(x, rsums, color=colours[run["_name"]], linestyle=line,
                    linewidth=1.2, label=f"{run['_name']}, seed {run['seed']}")
            if kept is not None:
                ax.plot([x[kept]], [rsums[kept]], "o", color=colours[run["_name"]], markersize=5)
        ax.set_title(f"{fraction:g} % paired")
        ax.set_xlabel("optimizer updates" + (" (epochs where a record lacks updates)" if by_epochs else ""))
        ax.set_ylabel("dev rsum")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle("Dev rsum during training (dot: the epoch kept)")
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    return save_figure(fig, path)


def varies_pools(table: pd.DataFrame) -> bool:
    """Whether the table compares unpaired pools (shares, extra sources or policies) rather than only
    paired fractions: then :func:`plot_pools` says more than :func:`plot`."""
    return any(table[column].nunique() > 1 for column in ("unpaired_fraction", "extras", "policy")
               if column in table)


def plot_pools(table: pd.DataFrame, path: Path) -> Path:
    """rsum against the size of the unpaired caption pool, one panel per paired fraction.

    A model that uses unpaired data is a line over its shares of the pool (``--unpaired-fractions``)
    and a marker for each other pool (a diamond for ``disjoint``, a square for an extra source);
    labelled variants are hollow, dotted; a model that reads only the pairs is a dashed horizontal
    line at its rsum.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fractions = sorted(table["fraction"].unique(), reverse=True)
    fig, axes = plt.subplots(1, len(fractions), figsize=(6.5 * len(fractions), 6), squeeze=False)
    named = table.assign(_name=[n.split(" u")[0] if " u" in n and n.endswith("%") else n for n in row_names(table)])
    named["_name"] = [n + ("" if p == "overlap" else f" ({p})") for n, p in zip(named["_name"], named["policy"])]
    colours: dict[str, str] = {}
    for ax, fraction in zip(axes.flat, fractions):
        here = named[named["fraction"] == fraction]
        flat = set(here.loc[~here["uses_unpaired"].astype(bool), "_name"]) if "uses_unpaired" in here else set()
        drawn_flat: set[str] = set()
        for name, group in here.groupby("_name", sort=False):
            colour = colours.setdefault(group["model"].iloc[0], f"C{len(colours)}")
            if name in flat:  # pairs only: the pools change nothing, so one line per model
                base = name.split(" (disjoint)")[0].split(" (overlap)")[0]
                if base not in drawn_flat:
                    drawn_flat.add(base)
                    ax.axhline(group["rsum"].mean(), color=colour, linestyle="--", alpha=0.7,
                               label=f"{base} (pairs only)")
                continue
            x = group["unpaired_captions"].astype(float).to_numpy() / 1000
            order = np.argsort(x)
            y, std = group["rsum"].to_numpy()[order], group["rsum_std"].fillna(0).to_numpy()[order]
            marker = "s" if group["extras"].iloc[0] else ("D" if group["policy"].iloc[0] == "disjoint" else "o")
            labelled = bool(group["label"].iloc[0])
            ax.errorbar(x[order], y, yerr=std, color=colour, marker=marker, markersize=8, capsize=3, label=name,
                        linestyle=(":" if labelled else "-") if len(group) > 1 else "none",
                        markerfacecolor="white" if labelled else colour)
            if len(group) > 1:
                for xi, yi, share in zip(x[order], y, group["unpaired_fraction"].to_numpy()[order]):
                    ax.annotate(f"{share:g}%", (xi, yi), textcoords="offset points", xytext=(4, -10), fontsize=7)
        ax.set_title(f"{fraction:g} % of training images paired")
        ax.set_xlabel("unpaired captions in the pool (thousands)")
        ax.set_ylabel("rsum (test)")
        ax.grid(alpha=0.3)
    legend: dict = {}  # one legend for all panels, below them, so it covers no point
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    fig.legend(legend.values(), legend.keys(), loc="lower center", ncol=min(4, max(1, len(legend))), fontsize=8)
    fig.suptitle("Retrieval against the unpaired pool (shares of the pool: % beside the points)")
    rows = math.ceil(len(legend) / 4)
    fig.tight_layout(rect=(0, 0.05 + 0.035 * rows, 1, 0.94))
    return save_figure(fig, path)
