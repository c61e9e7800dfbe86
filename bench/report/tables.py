"""The Recall@K table: rows grouped over seeds (mean, and std where there are several), retention,
and the table printed in one of :data:`FORMATS` with its notes and the optional extra tables.

Retention is the rsum at a fraction divided by the same model's rsum at 100 % paired.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from bench.errors import BenchError
from bench.report.comparison import budget_table, comparison_table, per_run_table
from bench.report.inputs import LATENCY_COLUMNS
from bench.report.records import GROUP, METRICS, model_order, with_pool_defaults
from bench.io import is_number

HEADERS = {
    "i2t_r1": "caption R@1", "i2t_r5": "caption R@5", "i2t_r10": "caption R@10",
    "t2i_r1": "image R@1", "t2i_r5": "image R@5", "t2i_r10": "image R@10", "rsum": "rsum",
}
FORMATS = ("markdown", "github", "latex", "csv", "json", "html")


def summary_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, model, text encoder, profile, policy, fraction): mean, std, seeds, retention."""
    frame = with_pool_defaults(frame)
    grouped = frame.groupby(GROUP, dropna=False)
    table = grouped[METRICS].mean()
    std = grouped[METRICS].std(ddof=1).add_suffix("_std")
    table = table.join(std)
    table["seeds"] = grouped["seed"].nunique()
    for count in ("unpaired_images", "unpaired_captions"):
        if count in frame:
            table[count] = grouped[count].mean()
    if "uses_unpaired" in frame:
        table["uses_unpaired"] = grouped["uses_unpaired"].all()
    table = table.reset_index()
    full = table[table["fraction"] == 100].set_index(GROUP[:-1])["rsum"]
    keys = table.set_index(GROUP[:-1]).index
    table["retention"] = [
        row_rsum / full[key] if key in full.index and full[key] > 0 else np.nan
        for key, row_rsum in zip(keys, table["rsum"])
    ]
    table["_order"] = table["model"].map(model_order()).fillna(99)
    table = table.sort_values(["dataset", "profile", "_order", "model", "text_encoder", "label", "policy", "extras",
                               "unpaired_fraction", "fraction"],
                              ascending=[True, True, True, True, True, True, False, True, False, False])
    return table.drop(columns="_order").reset_index(drop=True)


def _cell(mean: float, std: float, seeds: int, digits: int = 1) -> str:
    if seeds > 1 and not np.isnan(std):
        return f"{mean:.{digits}f} ± {std:.{digits}f}"
    return f"{mean:.{digits}f}"


def display_table(table: pd.DataFrame, reference: pd.DataFrame | None = None,
                  latency: dict | None = None) -> pd.DataFrame:
    """The printed table: Model | Text | Paired % | six R@K | rsum | retention | seeds (| latency)."""
    rows = []
    several_datasets = table["dataset"].nunique() > 1
    for _, r in table.iterrows():
        row = {}
        if several_datasets:
            row["Dataset"] = r["dataset"]
        row["Model"] = (f"{r['model']} [{r['label']}]" if r["label"] else r["model"]) + r["extras"]
        row["Text"] = r["text_encoder"]
        # Profile and policy get a column only when the table mixes them.
        for column in ("profile", "policy"):
            if table[column].nunique() > 1:
                row[column.capitalize()] = r[column]
        row["Paired %"] = f"{r['fraction']:g}"
        if table["unpaired_fraction"].nunique() > 1:
            row["Unpaired %"] = f"{r['unpaired_fraction']:g}"
        for m in METRICS:
            row[HEADERS[m]] = _cell(r[m], r[f"{m}_std"], int(r["seeds"]))
        row["retention"] = "" if np.isnan(r["retention"]) else f"{r['retention']:.2f}"
        row["seeds"] = int(r["seeds"])
        if latency is not None:
            measured = latency["rows"].get((r["model"], r["text_encoder"]), {})
            for key, header in LATENCY_COLUMNS.items():
                row[header] = f"{measured[key]:.2f}" if is_number(measured.get(key)) else ""
        rows.append(row)
    for _, r in (reference if reference is not None else pd.DataFrame()).iterrows():
        row = {"Dataset": r["dataset"]} if several_datasets else {}
        row.update({"Model": f"{r['model']} ({r['label']})", "Text": "-", "Paired %": f"{r['fraction']:g}"})
        for m in METRICS:
            row[HEADERS[m]] = "–" if pd.isna(r.get(m)) else f"{r[m]:.1f}"
        row.update({"retention": "", "seeds": ""})
        rows.append(row)
    return pd.DataFrame(rows)


def render(table: pd.DataFrame, fmt: str, reference: pd.DataFrame | None = None, compare: str | None = None,
           latency: dict | None = None, frame: pd.DataFrame | None = None, against: list[str] | None = None,
           per_run: bool = False) -> str:
    from tabulate import tabulate

    if fmt not in FORMATS:
        raise BenchError(f"unknown report format '{fmt}'; choose one of {', '.join(FORMATS)}")
    if against and not compare:
        raise BenchError("--against names the rows to compare with; give the compared row with --compare ROW")
    comparison = comparison_table(table, compare, frame, against) if compare else None
    runs = per_run_table(frame) if per_run and frame is not None else None
    if fmt == "json":
        rows = table.replace({np.nan: None}).to_dict(orient="records")
        if reference is not None:
            rows += reference.replace({np.nan: None}).to_dict("records")
        if comparison is None and runs is None:
            return json.dumps(rows, indent=2) + "\n"
        out = {"rows": rows}
        if comparison is not None:
            out["comparison"] = comparison.to_dict(orient="records")
        if runs is not None:
            out["runs"] = runs.to_dict(orient="records")
        return json.dumps(out, indent=2) + "\n"
    shown = display_table(table, reference, latency)
    if fmt == "csv":
        text = shown.to_csv(index=False)
        for extra in (comparison, runs):
            if extra is not None:
                text += "\n" + extra.to_csv(index=False)
        return text
    tablefmt = {"markdown": "pipe", "github": "github", "latex": "latex_booktabs", "html": "html"}[fmt]
    text = tabulate(shown, headers="keys", tablefmt=tablefmt, showindex=False, disable_numparse=True)
    if fmt in ("markdown", "github"):
        protocols = sorted(set(table.get("protocol", ["full"]))) if "protocol" in table else None
        notes = ["caption R@K: image query -> captions (i2t); image R@K: caption query -> images (t2i).",
                 "retention: rsum at this fraction / rsum at 100 % paired, same model and text encoder."]
        if protocols:
            notes.append(f"protocol: {', '.join(protocols)}")
        notes += latency["notes"] if latency is not None else []
        text += "\n\n" + "\n".join(f"- {n}" for n in notes)
    if comparison is not None:
        text += "\n\n" + tabulate(comparison, headers="keys", tablefmt=tablefmt, showindex=False, disable_numparse=True)
        if fmt in ("markdown", "github"):
            text += ("\n\n- Δ: the compared row minus " + ("each --against row" if against else
                     "the best other row at that fraction (best in rsum, and separately best in retention)") +
                     "; positive favours the compared row.")
            if "Δ rsum 95 % CI" in comparison:
                text += ("\n- 95 % CI: paired percentile bootstrap of Δ rsum, 1,000 resamples (seed 0) of the test "
                         "images, each with its captions, drawn alike for both rows, and of the seeds: drawn alike "
                         "too when both rows ran on the same split files, else each row's independently "
                         "(bench/metrics/stats.py); 'yes' when the interval excludes 0.")
    if runs is not None:
        text += "\n\n" + tabulate(runs, headers="keys", tablefmt=tablefmt, showindex=False,
                                   disable_numparse=True)
        if fmt in ("markdown", "github"):
            text += ("\n\n- per run: the epoch kept is the one with the best dev rsum (epochs from 0); the commit "
                     "is the code the run came from, +dirty when its tree had uncommitted changes.")
    budget = budget_table(frame) if frame is not None and fmt in ("markdown", "github") else None
    if budget is not None:
        text += "\n\n" + tabulate(budget, headers="keys", tablefmt=tablefmt, showindex=False, disable_numparse=True)
        text += ("\n\n- budget: optimizer updates of the model's weights per run (mean over the rows' runs), training "
                 "wall time per run (≥: a resumed run whose record holds its last leg's time only); "
                 "for --profile tuned rows, the `bench tune` trials of the study whose file the "
                 "runs used, the fraction it was tuned at, and that study's wall time.")
    return text + "\n"
