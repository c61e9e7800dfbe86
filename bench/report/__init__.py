"""Read run records into a table: the paper's Recall@K table, retention, comparisons, plots.

Rows are grouped over seeds (mean, and std where there are several). Retention is the rsum at a
fraction divided by the same model's rsum at 100 % paired. Published numbers come from a CSV and
are labelled as such, so they are never mistaken for our runs.

The package is split by concern; the names of the first five are importable from ``bench.report`` itself:

* :mod:`bench.report.records` — record files into a frame of runs, row names, ``--only``;
* :mod:`bench.report.tables` — the summary table and its rendering in each format;
* :mod:`bench.report.comparison` — ``--compare``/``--against``, the budget and per-run tables;
* :mod:`bench.report.plots` — the figures (``--plot``, ``--curves``, the unpaired-pool plot);
* :mod:`bench.report.inputs` — reference numbers (``--reference``) and latency (``--latency``);
* :mod:`bench.report.gain` — the unpaired gain of a model over its paired-only twin (``--unpaired-gain``);
* :mod:`bench.report.check` — regression checks of a run against a stored baseline (``bench check``).

``gain`` and ``check`` are imported from their modules (they read the others).
"""

from __future__ import annotations

from bench.report.comparison import _runs_of, budget_table, comparison_table, per_run_table
from bench.report.inputs import LATENCY_COLUMNS, load_latency, load_reference, reference_problem
from bench.report.plots import (
    check_plot_path,
    curve_points,
    plot,
    plot_curves,
    plot_formats,
    plot_pools,
    save_figure,
    varies_pools,
)
from bench.report.records import (
    GROUP,
    METRICS,
    model_order,
    RECALLS,
    left_out_note,
    load_records,
    record_files,
    records_frame,
    row_names,
    select_rows,
    with_pool_defaults,
)
from bench.report.tables import FORMATS, HEADERS, display_table, render, summary_table

__all__ = [
    "FORMATS", "GROUP", "HEADERS", "LATENCY_COLUMNS", "METRICS", "model_order", "RECALLS", "_runs_of",
    "budget_table", "check_plot_path", "comparison_table", "curve_points", "display_table", "left_out_note",
    "load_latency", "load_records", "load_reference", "per_run_table", "plot", "plot_curves", "plot_formats",
    "plot_pools", "record_files", "records_frame", "reference_problem", "render", "row_names",
    "save_figure", "select_rows", "summary_table", "varies_pools", "with_pool_defaults",
]
