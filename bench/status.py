"""``bench status``: where each cell of a run folder stands, read from its records and checkpoints.

A long grid writes a record only when a cell finishes; until then the only trace of a cell is its
work folder (``<out>/work/<cell>-<identity>/``), whose checkpoint holds the validation curve of every
finished epoch. This module reads both, without taking any lock, so it can watch a grid that is
running, and tells apart a cell that finished, one that failed, one under way (or stopped: the
checkpoint's age says which), and a work folder that a newer record of the same cell name, made with
another config or data, superseded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from bench.runner import parse_work_dir, read_record, record_identity
from bench.training import CHECKPOINT_NAME


@dataclass(frozen=True)
class CellStatus:
    name: str
    state: str  # finished | failed | in progress | superseded
    epochs_done: int | None = None  # finished epochs of the main training stage (stage 2 for mine)
    best_dev_rsum: float | None = None
    best_epoch: int | None = None
    last_dev_rsum: float | None = None
    checkpoint_age_s: float | None = None  # since the last epoch's checkpoint was written
    test_rsum: float | None = None  # finished cells
    epochs_planned: int | None = None  # of the main stage; checkpoints written before it was saved lack it
    time_left_s: float | None = None  # the epochs left at the pace of the last few, whether or not it runs now


# How many of the latest epochs set the pace for the time left: recent enough to follow a change of
# load on a shared machine, enough of them to smooth one slow epoch.
PACE_EPOCHS = 3


def _read_checkpoint(path: Path) -> dict:
    import torch

    saved = torch.load(path, map_location="cpu", weights_only=False)
    return saved if isinstance(saved, dict) else {}


def _from_checkpoint(name: str, state: str, folder: Path, now: float) -> CellStatus:
    path = folder / CHECKPOINT_NAME
    if not path.exists():  # killed (or still) within its first epoch, or in a stage before the main one
        return CellStatus(name, state, epochs_done=0)
    try:
        saved = _read_checkpoint(path)
    except Exception:  # a truncated or foreign file: say so in the row instead of stopping the listing
        return CellStatus(name, f"{state} (checkpoint unreadable)", checkpoint_age_s=now - path.stat().st_mtime)
    curve = [point for point in saved.get("curve", []) if "val_rsum" in point]
    best = max(curve, key=lambda point: point["val_rsum"], default=None)
    planned = saved.get("epochs") if isinstance(saved.get("epochs"), int) else None
    seconds = saved.get("epoch_seconds") or []
    time_left = None
    if planned is not None and seconds:
        pace = seconds[-PACE_EPOCHS:]
        time_left = max(planned - len(curve), 0) * sum(pace) / len(pace)
    return CellStatus(name, state, epochs_done=len(curve),
                      best_dev_rsum=best["val_rsum"] if best else None, best_epoch=best["epoch"] if best else None,
                      last_dev_rsum=curve[-1]["val_rsum"] if curve else None,
                      checkpoint_age_s=now - path.stat().st_mtime,
                      epochs_planned=planned, time_left_s=time_left)


def _last_write(folder: Path) -> float:
    return max([folder.stat().st_mtime] + [path.stat().st_mtime for path in folder.iterdir()])


def run_status(out: Path) -> list[CellStatus]:
    """One row per cell that has a record or a work folder in ``out``, sorted by name."""
    now = time.time()
    records = {path.stem: read_record(path) for path in sorted((out / "records").glob("*.json"))}
    rows: dict[str, CellStatus] = {}
    for name, record in records.items():
        if record is None:
            continue
        if record.get("status") == "ok":
            rows[name] = CellStatus(name, "finished", test_rsum=(record.get("metrics") or {}).get("rsum"))
        else:
            rows[name] = CellStatus(name, "failed")
    for folder in sorted(path for path in (out / "work").glob("*") if path.is_dir()):
        name, identity = parse_work_dir(folder)
        record = records.get(name)
        if record is not None and (record_identity(record) or "").startswith(identity):
            continue  # the record already says how this cell ended
        # A record of another identity is either older (this folder is a rerun with a changed config or
        # data, under way) or newer (this folder is what an earlier config left behind).
        newer = record is None or _last_write(folder) > (out / "records" / f"{name}.json").stat().st_mtime
        state = "in progress" if newer else "superseded"
        key = name if record is None else f"{name} ({identity})"  # beside the record's row, not over it
        rows[key] = _from_checkpoint(key, state, folder, now)
    return [rows[key] for key in sorted(rows)]
