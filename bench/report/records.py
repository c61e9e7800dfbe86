"""Run records into a frame: reading and checking record files, one row per run, and naming rows.

A record file that is not a valid run record is refused or, for a report, left out and named; a
record that did not finish ok is left out of the tables and counted. Each run's row group gets a
short name (:func:`row_names`) by which ``--compare``, ``--against`` and ``--only`` pick rows.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from bench.errors import BenchError
from bench.io import is_number
from bench.run.record import METRICS, read_record
from bench.metrics.stats import RunRanks

RECALLS = METRICS[:-1]
GROUP = ["dataset", "model", "label", "text_encoder", "profile", "policy", "extras", "unpaired_fraction", "fraction"]


def model_order() -> dict[str, int]:
    """The order of model rows in every table: models that read only the pairs first (the floors),
    then those that read the unpaired pools, each group by name. Read from the registry, so a new
    model needs no edit here; a model that is not registered (a plugin's old records) goes last."""
    from bench.models.registry import known_models

    specs = sorted(known_models(), key=lambda spec: (spec.uses_unpaired, spec.name))
    return {spec.name: rank for rank, spec in enumerate(specs)}


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


def _finite(value: object) -> float | None:
    """``value`` as a float when it is a finite number (numpy's included), else None: a frame column
    holds NaN where an older record lacks the field."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
