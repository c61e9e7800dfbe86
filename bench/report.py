"""Read run records into a table: the paper's Recall@K table, retention, plots, baselines.

Rows are grouped over seeds (mean, and std where there are several). Retention is the
rsum at a fraction divided by the same model's rsum at 100 % paired. Published numbers
come from a CSV and are labelled as such, so they are never mistaken for our runs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype

from bench.errors import BenchError
from bench.io import read_json_file
from bench.schema import is_number, record_problem
from bench.stats import RunRanks, bootstrap_delta

METRICS = ["i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "rsum"]
RECALLS = METRICS[:-1]
GROUP = ["dataset", "model", "label", "text_encoder", "profile", "policy", "extras", "unpaired_fraction", "fraction"]
MODEL_ORDER = {"cca": 0, "vse": 1, "jwae": 2, "mine": 3}
HEADERS = {
    "i2t_r1": "caption R@1", "i2t_r5": "caption R@5", "i2t_r10": "caption R@10",
    "t2i_r1": "image R@1", "t2i_r5": "image R@5", "t2i_r10": "image R@10", "rsum": "rsum",
}
FORMATS = ("markdown", "github", "latex", "csv", "json", "html")


def record_files(runs: list[Path]) -> list[Path]:
    files: list[Path] = []
    for run in runs:
        if run.is_file():
            files.append(run)
        elif (run / "records").is_dir():
            files.extend(sorted((run / "records").glob("*.json")))
        elif run.is_dir():
            files.extend(sorted(run.glob("*.json")))
        else:
            raise BenchError(f"run folder not found: {run}")
    return files


def read_record(path: Path) -> dict:
    """The record in ``path``, checked against the record schema (bench/schema.py). A file that is not
    a run record is a :class:`BenchError` naming the path and the first problem: records come from
    run folders that other people may have written."""
    record = read_json_file(path, "record")
    problem = record_problem(record)
    if problem:
        raise BenchError(f"record {path} is not a valid run record: {problem} (see reports/SCHEMA.md)")
    return record  # type: ignore[return-value]


def load_records(runs: list[Path], include_failed: bool = False, left_out: list[dict] | None = None,
                 invalid: list[str] | None = None) -> list[dict]:
    """The records of ``runs`` that finished ok (every record with ``include_failed``); the
    others are appended to ``left_out`` when it is given.

    A file that is not a valid record stops the reading with a :class:`BenchError`, or, when
    ``invalid`` is given, is left out and its one-line reason (path and problem) appended to it: a
    report shows the good records and says which files it could not use."""
    records = []
    for path in record_files(runs):
        try:
            record = read_record(path)
        except BenchError as error:
            if invalid is None:
                raise
            invalid.append(str(error))
            continue
        record["_path"] = str(path)
        if record.get("status") == "ok" or include_failed:
            records.append(record)
        elif left_out is not None:
            left_out.append(record)
    return records


def left_out_note(left_out: list[dict]) -> str:
    """One line: how many records the table leaves out, and which cells (with their status)."""
    names = ", ".join(f"{r['name']} ({r['status']})" for r in sorted(left_out, key=lambda r: r["name"]))
    return f"left out {len(left_out)} record(s) that did not finish ok: {names}"


def records_frame(records: list[dict]) -> pd.DataFrame:
    rows = []
    for r in records:
        row = {**r["cell"], "name": r["name"]}
        row["text_encoder"] = row.get("text_encoder") or (r.get("model") or {}).get("text_encoder") or "-"
        row["label"] = row.get("label") or ""
        # Records from before the pool options have neither field: all of the pools, no extra source.
        row["unpaired_fraction"] = float(row.get("unpaired_fraction", 100.0))
        row["extras"] = "".join(f" +{tag}" for tag in row.pop("extra_sources", None) or [])
        data = r.get("data") or {}
        row["unpaired_images"], row["unpaired_captions"] = data.get("unpaired_images"), data.get("unpaired_captions")
        row["uses_unpaired"] = bool(r.get("uses_unpaired", True))
        row["_ranks"] = RunRanks.from_record(r)
        training, tuned = r.get("training") or {}, (r.get("provenance") or {}).get("tuned_profile") or {}
        row["updates"] = training.get("updates")
        row["epochs_run"], row["best_epoch"] = training.get("epochs_run"), training.get("best_epoch")
        row["_curve"] = [(point["epoch"], point["val_rsum"]) for point in training.get("validation_curve") or []
                         if is_number(point.get("epoch")) and is_number(point.get("val_rsum"))]
        # training time over every leg of a resumed run where the record has it; else the fit's
        # wall time, which is the last leg's only (`_partial_s` marks such a resumed run)
        row["fit_s"] = training.get("train_seconds")
        row["_partial_s"] = row["fit_s"] is None and training.get("resumed_from_epoch") is not None
        if row["fit_s"] is None:
            row["fit_s"] = (r.get("timing") or {}).get("fit_s")
        git = ((r.get("provenance") or {}).get("git") or {})
        row["commit"], row["dirty"] = git.get("commit"), git.get("dirty")
        row["tuning_trials"] = tuned.get("trials_spent")
        row["tuning_s"] = tuned.get("tuning_wall_s")
        row["tuning_file"] = tuned.get("file")
        row.update({m: r["metrics"][m] for m in METRICS})
        row["protocol"] = r.get("protocol", "full")
        rows.append(row)
    if not rows:
        raise BenchError("no finished records found; run `bench run` first (or check the folder)")
    return pd.DataFrame(rows)


def with_pool_defaults(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the pool columns a frame built by hand (or from old records) may lack: all of the
    unpaired pools, no extra source."""
    defaults = {"extras": "", "unpaired_fraction": 100.0}
    return frame.assign(**{column: value for column, value in defaults.items() if column not in frame})


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
    table["_order"] = table["model"].map(MODEL_ORDER).fillna(99)
    table = table.sort_values(["dataset", "profile", "_order", "model", "text_encoder", "label", "policy", "extras",
                               "unpaired_fraction", "fraction"],
                              ascending=[True, True, True, True, True, True, False, True, False, False])
    return table.drop(columns="_order").reset_index(drop=True)


def _cell(mean: float, std: float, seeds: int, digits: int = 1) -> str:
    if seeds > 1 and not np.isnan(std):
        return f"{mean:.{digits}f} ± {std:.{digits}f}"
    return f"{mean:.{digits}f}"


# Latency columns shown beside Recall@K (`bench report --latency`): one query, and one search.
LATENCY_COLUMNS = {"caption_ms_b1": "caption ms", "image_ms_b1": "image ms", "search_ms_25k": "top-10 of 25k ms"}


def load_latency(path: Path) -> dict:
    """A `bench benchmark latency --out` file: ``{"rows": {(model, text encoder): row}, "notes": [...]}``."""
    from bench.latency import read_latency_file

    data = read_latency_file(path)
    rows = data["rows"]
    environment = data.get("environment") or {}
    notes = [f"latency: median ms per call on {environment.get('device', '?')} with "
             f"{environment.get('torch_threads', '?')} torch thread(s), from {path} (`bench benchmark latency`)."]
    notes += [f"caption ms starts at the sentence vector; MiniLM itself adds {r['caption_ms_b1']:.1f} ms per caption."
              for r in rows if r["model"] == "minilm sentence encoder" and is_number(r.get("caption_ms_b1"))]
    return {"rows": {(r["model"], r.get("text_encoder")): r for r in rows}, "notes": notes}


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


def row_names(table: pd.DataFrame) -> list[str]:
    """A short name per row group, for the comparison table and the plot legend: ``model (text)
    [label] +extra-source`` (no text for a model without a text encoder), plus ``{profile}`` when
    the table mixes profiles and ``u25%`` when it mixes shares of the unpaired pools."""
    mixed_profiles = table["profile"].nunique() > 1
    mixed_shares = "unpaired_fraction" in table and table["unpaired_fraction"].nunique() > 1
    names = []
    for _, r in table.iterrows():
        name = r["model"] if r["text_encoder"] == "-" else f"{r['model']} ({r['text_encoder']})"
        if r["label"]:
            name += f" [{r['label']}]"
        name += r.get("extras", "")
        if mixed_profiles:
            name += f" {{{r['profile']}}}"
        if mixed_shares:
            name += f" u{r['unpaired_fraction']:g}%"
        names.append(name)
    return names


def _runs_of(frame: pd.DataFrame | None, row: pd.Series) -> list[RunRanks] | None:
    """The test ranks of every run in ``row``'s group, or None when a run lacks them."""
    if frame is None or "_ranks" not in frame:
        return None
    frame = with_pool_defaults(frame)
    mask = np.ones(len(frame), dtype=bool)
    for column in GROUP:
        mask &= (frame[column] == row[column]).to_numpy()
    runs = list(frame.loc[mask, "_ranks"])
    return runs if runs and all(r is not None for r in runs) else None


def _pick_row(names: list[str], wanted: str, option: str) -> str:
    """The one row name ``wanted`` picks out: the full name, or its leading part (``mine`` or
    ``mine (minilm)``) among the unlabelled rows. Anything else is one clear error."""
    chosen = [n for n in names if n == wanted] or [
        n for n in names if " [" not in n and wanted in (n.split(" (")[0], n.split(" {")[0])]
    if len(set(chosen)) != 1:
        what = "matches several rows" if chosen else "matches no row"
        raise BenchError(f"{option} '{wanted}' {what}; the rows are: {', '.join(names)}")
    return chosen[0]


def select_rows(frame: pd.DataFrame, wanted: list[str]) -> pd.DataFrame:
    """Only the runs of the rows that ``wanted`` names, picked as ``--compare`` picks its row (the full
    name, or its leading part among unlabelled rows), so that a table, plot or curves figure of a
    crowded report can show a few rows. A name that picks no row, or several, is one clear error."""
    frame = with_pool_defaults(frame)
    names = row_names(frame)  # each run's row name, as the table of this frame writes it
    chosen = {_pick_row(list(dict.fromkeys(names)), name, "--only") for name in wanted}
    return frame[[name in chosen for name in names]].reset_index(drop=True)


def comparison_table(table: pd.DataFrame, focus: str, frame: pd.DataFrame | None = None,
                     against: list[str] | None = None) -> pd.DataFrame:
    """``focus`` against the best other row at each (dataset, policy, fraction), in rsum and in retention;
    or, with ``against``, against each of those rows in turn (one line per row and fraction).

    ``focus`` and each ``against`` are row names as :func:`row_names` writes them, or their leading part
    (``mine`` or ``mine (minilm)``) when that picks out one row group. Positive differences favour
    ``focus``. With the per-run records (``frame``) whose test ranks are kept, Δ rsum gets a 95 %
    interval from :func:`bench.stats.bootstrap_delta` and a column saying whether it excludes 0.
    """
    table = table.assign(_name=row_names(table))
    names = sorted(set(table["_name"]))
    focus_name = _pick_row(names, focus, "--compare")
    against_names = [_pick_row(names, name, "--against") for name in against or []]
    if focus_name in against_names:
        raise BenchError(f"--against '{focus_name}' is the compared row itself")
    rows = []
    for (dataset, policy, fraction), group in table.groupby(["dataset", "policy", "fraction"], sort=False):
        focus_rows = group[group["_name"] == focus_name]
        others = group[group["_name"] != focus_name]
        if focus_rows.empty or others.empty:
            continue
        m = focus_rows.iloc[0]
        where = {"Dataset": dataset, "Policy": policy, "Paired %": f"{fraction:g}", f"{focus_name} rsum": f"{m['rsum']:.1f}"}
        if against_names:
            for name in against_names:
                other = others[others["_name"] == name]
                if not other.empty:
                    rows.append({**where, **_difference(m, other.iloc[0], frame, "against", retention=True)})
            continue
        row = {**where, **_difference(m, others.loc[others["rsum"].idxmax()], frame, "best other (rsum)")}
        kept = others.dropna(subset=["retention"])
        if fraction != 100 and not np.isnan(m["retention"]) and not kept.empty:
            best_kept = kept.loc[kept["retention"].idxmax()]
            row.update({f"{focus_name} retention": f"{m['retention']:.3f}", "best other (retention)": best_kept["_name"],
                        "its retention": f"{best_kept['retention']:.3f}",
                        "Δ retention": f"{m['retention'] - best_kept['retention']:+.3f}"})
        rows.append(row)
    if not rows:
        which = ", ".join(against_names) if against_names else "another row"
        raise BenchError(f"--compare '{focus}': no fraction has both {focus_name} and {which}")
    out = pd.DataFrame(rows).fillna("")
    for column in ("Dataset", "Policy"):
        if out[column].nunique() == 1:
            out = out.drop(columns=column)
    return out


def _difference(row: pd.Series, other: pd.Series, frame: pd.DataFrame | None, title: str,
                retention: bool = False) -> dict[str, str]:
    """The columns of ``row`` minus ``other`` in rsum (``other`` named under ``title``), with the bootstrap
    interval when both rows' runs kept their test ranks, and with Δ retention when asked and both have one."""
    out = {title: other["_name"], "its rsum": f"{other['rsum']:.1f}", "Δ rsum": f"{row['rsum'] - other['rsum']:+.1f}"}
    first, second = _runs_of(frame, row), _runs_of(frame, other)
    if first and second:
        interval = bootstrap_delta(first, second)
        out["Δ rsum 95 % CI"] = f"[{interval['low']:+.1f}, {interval['high']:+.1f}]"
        out["CI excludes 0"] = "yes" if interval["excludes_zero"] else "no"
    elif frame is not None:
        out["Δ rsum 95 % CI"], out["CI excludes 0"] = "n/a (records without test ranks)", ""
    if retention and not np.isnan(row["retention"]) and not np.isnan(other["retention"]):
        out["Δ retention"] = f"{row['retention'] - other['retention']:+.3f}"
    return out


def _named_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with each run's row name in ``_name`` (plus its policy when the runs mix policies), for
    the tables that list rows by name rather than by their columns."""
    frame = with_pool_defaults(frame)
    frame = frame.assign(_name=row_names(frame))
    if frame["policy"].nunique() > 1:
        frame["_name"] = frame["_name"] + " (" + frame["policy"] + ")"
    return frame


def budget_table(frame: pd.DataFrame) -> pd.DataFrame | None:
    """Per row and paired fraction: mean optimizer updates and training seconds per run, and the
    `bench tune` trials and wall time behind a tuned row (summed over the tuned files it used)."""
    if "updates" not in frame or (frame["updates"].isna().all() and frame["tuning_trials"].isna().all()):
        return None
    frame = _named_runs(frame)
    rows = []
    for (name, fraction), group in frame.groupby(["_name", "fraction"], sort=False):
        updates = pd.to_numeric(group["updates"], errors="coerce")
        rows.append({"_order": (MODEL_ORDER.get(group["model"].iloc[0], 99), name, -fraction),
                     "Row": name, "Paired %": f"{fraction:g}",
                     "updates per run": "" if updates.isna().all() else
                     (f"{updates.mean():.0f}" if updates.notna().all() else "n/a (older records)"),
                     "train s per run": ("≥ " if group["_partial_s"].astype(bool).any() else "")
                     + f"{pd.to_numeric(group['fit_s'], errors='coerce').mean():.0f}",
                     "tuning trials": "" if group["tuning_trials"].isna().all() else
                     ", ".join(sorted({f"{int(t)}" for t in group["tuning_trials"].dropna()})),
                     "tuned at %": "" if group["tuning_file"].isna().all() else
                     ", ".join(sorted({Path(f).stem.rsplit("_p", 1)[-1] for f in group["tuning_file"].dropna()})),
                     "tuning s": "" if group["tuning_s"].isna().all() else
                     f"{group.drop_duplicates('tuning_file')['tuning_s'].sum():.0f}"})
    return pd.DataFrame(sorted(rows, key=lambda row: row["_order"])).drop(columns="_order")


def per_run_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One line per run, so that each number in a row traces to its split seed and commit: the row, the
    paired fraction, the seed, the updates, the epoch kept and its dev rsum, the test rsum, and the
    commit the run came from (``+dirty`` when the tree had uncommitted changes)."""
    frame = _named_runs(frame)
    rows = []
    for _, run in frame.iterrows():
        updates, best = _finite(run.get("updates")), _finite(run.get("best_epoch"))
        dev = _finite(dict(run.get("_curve") or []).get(best)) if best is not None else None
        commit, dirty = run.get("commit"), run.get("dirty") is True  # None or NaN: an older record
        rows.append({"_order": (MODEL_ORDER.get(run["model"], 99), run["_name"], -run["fraction"], run["seed"]),
                     "Row": run["_name"], "Paired %": f"{run['fraction']:g}", "seed": f"{run['seed']}",
                     "updates": "" if updates is None else f"{updates:.0f}",
                     "epoch kept": "" if best is None else f"{best:.0f}",
                     "dev rsum": "" if dev is None else f"{dev:.1f}",
                     "test rsum": f"{run['rsum']:.1f}",
                     "commit": (commit[:7] + ("+dirty" if dirty else "")) if isinstance(commit, str) else "?"})
    return pd.DataFrame(sorted(rows, key=lambda row: row["_order"])).drop(columns="_order")


def reference_problem(reference: pd.DataFrame) -> str | None:
    """What makes a reference table unusable, or None: a row without a model name, a fraction that is
    not a number in (0, 100], or a metric that is neither empty (not published) nor a finite number
    in range (R@K in percent, rsum up to 600). Rows are counted from 1 after the header."""
    for row, model in enumerate(reference["model"], start=1):
        if pd.isna(model) or not str(model).strip():
            return f"has no model name in row {row}"
    columns = [("fraction", 100, False)] + [(m, 600 if m == "rsum" else 100, True) for m in METRICS
                                            if m in reference.columns]
    for column, high, may_be_empty in columns:
        values = reference[column]
        # pandas reads a column whose cells are all numbers as numbers, one whose cells are all true/false
        # as booleans, and any other as text, whose cells that are no number become NaN here
        numbers = values.map(lambda _: np.nan) if is_bool_dtype(values) else pd.to_numeric(values, errors="coerce")
        for row, (value, number) in enumerate(zip(values, numbers.astype(float)), start=1):
            if pd.isna(value) and may_be_empty:
                continue
            low_ok = number > 0 if column == "fraction" else number >= 0
            if not (is_number(number) and low_ok and number <= high):
                bounds = "in (0, 100]" if column == "fraction" else f"in [0, {high}], or an empty cell"
                return f"has {column} {str(value)!r} in row {row}; expected a number {bounds}"
    return None


def load_reference(path: Path) -> pd.DataFrame:
    if path.is_dir():
        raise BenchError(f"reference file {path} is a folder, not a CSV file")
    try:
        reference = pd.read_csv(path)
    except FileNotFoundError:
        raise BenchError(f"reference file not found: {path}") from None
    except UnicodeDecodeError:
        raise BenchError(f"reference file {path} is not UTF-8 CSV text (binary data?)") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise BenchError(f"reference file {path} is not a CSV table ({str(error).strip()})") from None
    except OSError as error:
        raise BenchError(f"cannot read reference file {path}: {error.strerror or error}") from None
    missing = {"model", "fraction"} - set(reference.columns)
    if missing:
        raise BenchError(f"reference file {path} lacks columns {sorted(missing)}")
    problem = reference_problem(reference)
    if problem:
        raise BenchError(f"reference file {path} {problem}")
    for column in ["fraction"] + [m for m in METRICS if m in reference.columns]:
        # a number pandas left as text (" 25", say) as a number; a column of numbers stays as it is
        reference[column] = pd.to_numeric(reference[column])
    for m in RECALLS:
        if m not in reference.columns:
            reference[m] = np.nan
    if "rsum" not in reference.columns:
        reference["rsum"] = reference[RECALLS].sum(axis=1, min_count=len(RECALLS))
    # how its rows are named in tables and plots, e.g. "published, COCO 1K"; the file says what it holds
    reference["label"] = reference["label"].fillna("reference") if "label" in reference.columns else "reference"
    # and which data its numbers are on (the Dataset column of a table that mixes datasets)
    reference["dataset"] = reference["dataset"].fillna("–") if "dataset" in reference.columns else "–"
    return reference


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
                         "(bench/stats.py); 'yes' when the interval excludes 0.")
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

    from bench.io import atomic_write_bytes

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


def _finite(value: object) -> float | None:
    """``value`` as a float when it is a finite number (numpy's included), else None: a frame column
    holds NaN where an older record lacks the field."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


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
