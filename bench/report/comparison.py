"""Tables that set rows side by side: one row against the best other or named ones (with a bootstrap
interval), the training budget behind each row, and one line per run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.errors import BenchError
from bench.report.records import GROUP, _finite, model_order, _pick_row, row_names, with_pool_defaults
from bench.metrics.stats import RunRanks, bootstrap_delta


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


def comparison_table(table: pd.DataFrame, focus: str, frame: pd.DataFrame | None = None,
                     against: list[str] | None = None) -> pd.DataFrame:
    """``focus`` against the best other row at each (dataset, policy, fraction), in rsum and in retention;
    or, with ``against``, against each of those rows in turn (one line per row and fraction).

    ``focus`` and each ``against`` are row names as :func:`row_names` writes them, or their leading part
    (``mine`` or ``mine (minilm)``) when that picks out one row group. Positive differences favour
    ``focus``. With the per-run records (``frame``) whose test ranks are kept, Δ rsum gets a 95 %
    interval from :func:`bench.metrics.stats.bootstrap_delta` and a column saying whether it excludes 0.
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
        rows.append({"_order": (model_order().get(group["model"].iloc[0], 99), name, -fraction),
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
        rows.append({"_order": (model_order().get(run["model"], 99), run["_name"], -run["fraction"], run["seed"]),
                     "Row": run["_name"], "Paired %": f"{run['fraction']:g}", "seed": f"{run['seed']}",
                     "updates": "" if updates is None else f"{updates:.0f}",
                     "epoch kept": "" if best is None else f"{best:.0f}",
                     "dev rsum": "" if dev is None else f"{dev:.1f}",
                     "test rsum": f"{run['rsum']:.1f}",
                     "commit": (commit[:7] + ("+dirty" if dirty else "")) if isinstance(commit, str) else "?"})
    return pd.DataFrame(sorted(rows, key=lambda row: row["_order"])).drop(columns="_order")
