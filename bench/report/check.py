"""Regression checks: compare a run's records with a stored baseline.

A baseline file holds, for each cell name, the metrics of a reference run, and one
tolerance per metric (in Recall points). A metric that falls below its baseline by more
than its tolerance is a regression; a cell missing from the run is a failure too.
Tolerances come from the seed-to-seed spread: ``max(floor, k × std over seeds)``, the
std taken per (model, text encoder, fraction) group and the largest kept.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from bench.errors import BenchError
from bench.io import atomic_write_json, is_number, json_type, read_json_file
from bench.report.records import GROUP, METRICS, load_records, records_frame

SCHEMA_VERSION = 1


def tolerances_from_seeds(frame: pd.DataFrame, k: float, floor: float) -> tuple[dict[str, float], dict[str, float]]:
    spread = frame.groupby(GROUP, dropna=False)[METRICS].std(ddof=1).max()
    observed = {m: (None if pd.isna(spread[m]) else round(float(spread[m]), 3)) for m in METRICS}
    tolerances = {}
    for m in METRICS:
        base = floor * (3 if m == "rsum" else 1)  # rsum adds six recalls: a wider floor
        tolerances[m] = round(max(base, k * (observed[m] or 0.0)), 3)
    return tolerances, observed


def make_baseline(runs: list[Path], k: float = 3.0, floor: float = 1.0, description: str = "") -> dict:
    records = load_records(runs)
    frame = records_frame(records)
    tolerances, observed = tolerances_from_seeds(frame, k, floor)
    return {
        "schema_version": SCHEMA_VERSION,
        "description": description,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source_runs": [str(r) for r in runs],
        "tolerance_rule": f"max(floor, {k:g} x largest seed-to-seed std); floor {floor:g} points (x3 for rsum)",
        "observed_seed_std": observed,
        "tolerances": tolerances,
        "cells": {
            r["name"]: {
                "config_hash": r.get("config_hash"),
                "git_commit": ((r.get("provenance") or {}).get("git") or {}).get("commit"),
                "metrics": {m: r["metrics"][m] for m in METRICS},
            }
            for r in sorted(records, key=lambda r: r["name"])
        },
    }


def load_baseline(path: Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise BenchError(f"baseline file not found: {path}; create one with `bench check RUN --against {path} --update`")
    baseline = read_json_file(path, "baseline file")
    problem = baseline_problem(baseline)
    if problem:
        raise BenchError(f"baseline file {path} {problem}; rewrite it with `bench check RUN --against {path} --update`")
    return baseline  # type: ignore[return-value]


def baseline_problem(baseline: object) -> str | None:
    """What keeps ``baseline`` from being used by :func:`compare`, or None."""
    if not isinstance(baseline, dict):
        return f"holds {json_type(baseline)}, not a baseline object"
    if "cells" not in baseline or "tolerances" not in baseline:
        return "lacks 'cells' or 'tolerances'"
    tolerances, cells = baseline["tolerances"], baseline["cells"]
    if not isinstance(tolerances, dict):
        return f"has 'tolerances' {json_type(tolerances)}; expected an object metric -> points"
    if not tolerances:
        return "has no tolerances, so no metric would be checked"
    unknown = [m for m in tolerances if m not in METRICS]
    if unknown:
        return f"has tolerances for unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)}"
    # NaN or Infinity would pass every run (no difference is larger), a negative one fail every run
    bad = [m for m, t in tolerances.items() if not is_number(t) or t < 0]
    if bad:
        return f"has tolerance(s) for {', '.join(bad)} that are not numbers >= 0 (NaN and Infinity are not)"
    if not isinstance(cells, dict):
        return f"has 'cells' {json_type(cells)}; expected an object cell name -> metrics"
    for name, cell in cells.items():
        if not isinstance(cell, dict) or not isinstance(cell.get("metrics"), dict):
            return f"has cell {name} without a 'metrics' object"
        missing = [m for m in tolerances if not is_number(cell["metrics"].get(m))]
        if missing:  # a NaN baseline would pass any run: NaN compares false with everything
            return (f"has cell {name} without the metric(s) {', '.join(missing)} (or they are not finite numbers: "
                    "NaN and Infinity are not)")
    return None


def compare(runs: list[Path], baseline: dict) -> tuple[pd.DataFrame, list[str]]:
    """A row per (cell, metric) with baseline, run value, delta, tolerance, status; and the failures.

    Every record is read through the record schema, so a run metric is a finite number (a NaN one is
    an error, never "within tolerance"), as :func:`baseline_problem` makes the baseline's."""
    records = {r["name"]: r for r in load_records(runs, include_failed=True)}
    rows, failures = [], []
    for name, expected in sorted(baseline["cells"].items()):
        record = records.get(name)
        if record is None or record.get("status") != "ok":
            why = "missing" if record is None else f"failed: {(record.get('error') or {}).get('message', '?')}"
            failures.append(f"{name}: {why}")
            rows.append({"cell": name, "metric": "-", "baseline": np.nan, "run": np.nan, "delta": np.nan,
                         "tolerance": np.nan, "status": why.split(":")[0].upper()})
            continue
        if record.get("config_hash") != expected.get("config_hash"):
            failures.append(f"{name}: config differs from the baseline's (update the baseline if intended)")
        for metric, tolerance in baseline["tolerances"].items():
            base, value = expected["metrics"][metric], record["metrics"][metric]
            delta = value - base
            status = "REGRESSION" if delta < -tolerance else ("improved" if delta > tolerance else "ok")
            if status == "REGRESSION":
                failures.append(f"{name}: {metric} {value:.2f} < baseline {base:.2f} - tolerance {tolerance:.2f}")
            rows.append({"cell": name, "metric": metric, "baseline": base, "run": value, "delta": delta,
                         "tolerance": tolerance, "status": status})
    return pd.DataFrame(rows), failures


def write_baseline(path: Path, baseline: dict) -> Path:
    return atomic_write_json(path, baseline)
