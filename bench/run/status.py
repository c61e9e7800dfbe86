"""``bench status``: where each cell of a run folder stands, read from its records and checkpoints.

A long grid writes a record only when a cell finishes; until then the only trace of a cell is its
work folder (``<out>/work/<cell>-<identity>/``), whose checkpoint holds the validation curve of every
finished epoch. This module reads both, without taking any lock, so it can watch a grid that is
running, and tells apart a cell that finished, one that failed, one under way (or stopped: the
checkpoint's age says which), and a work folder that a newer record of the same cell name, made with
another config or data, superseded. Both kinds of file may come from elsewhere: records are read
through the schema check ``bench report`` uses and checkpoints through :func:`bench.io.load_checkpoint`
(no pickled code runs); a bad one is a row that says so ("record unreadable" with its path and why,
"(checkpoint unreadable)"), never a traceback.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

from bench.errors import BenchError
from bench.io import is_int_or_float, json_type, load_checkpoint
from bench.run.folder import parse_work_dir
from bench.run.record import read_record, record_identity
from bench.models.training import CHECKPOINT_NAME


@dataclass(frozen=True)
class CellStatus:
    name: str
    state: str  # finished | failed | in progress | superseded | record unreadable (...) | ... (checkpoint unreadable)
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


def _is_count(value: object) -> bool:
    """A whole number of epochs (bounded, so that the time left stays a float)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 10**9


def _read_checkpoint(path: Path) -> dict:
    """What a row shows of a checkpoint: its dev curve (the points with ``val_rsum``), and, when it
    has them, the planned epochs and each epoch's seconds. The file is read with the harness's one
    safe loader (no pickled object is built, so a crafted file runs no code); a file it refuses, or
    whose values have the wrong types, is a :class:`BenchError`."""
    saved = load_checkpoint(path, "cpu")
    curve, planned, seconds = saved.get("curve", []), saved.get("epochs"), saved.get("epoch_seconds") or []
    if not isinstance(curve, list) or not all(isinstance(point, dict) for point in curve):
        raise BenchError(f"checkpoint {path} has a curve that is not a list of points")
    points = [point for point in curve if "val_rsum" in point]
    if not all(is_int_or_float(point["val_rsum"]) and _is_count(point.get("epoch")) for point in points):
        raise BenchError(f"checkpoint {path} has curve points without a numeric val_rsum and epoch")
    if planned is not None and not _is_count(planned):
        raise BenchError(f"checkpoint {path} has planned epochs {json_type(planned)}, not a count")
    if not isinstance(seconds, list) or not all(is_int_or_float(v) and 0 <= v < math.inf for v in seconds):
        raise BenchError(f"checkpoint {path} has epoch times that are not a list of seconds")
    return {"curve": points, "epochs": planned, "epoch_seconds": seconds}


def _from_checkpoint(name: str, state: str, folder: Path, now: float) -> CellStatus:
    path = folder / CHECKPOINT_NAME
    if not path.exists():  # killed (or still) within its first epoch, or in a stage before the main one
        return CellStatus(name, state, epochs_done=0)
    try:
        saved = _read_checkpoint(path)
    except BenchError:  # a truncated, foreign or crafted file: say so in the row instead of stopping the listing
        return CellStatus(name, f"{state} (checkpoint unreadable)", checkpoint_age_s=now - path.stat().st_mtime)
    curve, planned, seconds = saved["curve"], saved["epochs"], saved["epoch_seconds"]
    best = max(curve, key=lambda point: point["val_rsum"], default=None)
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
    return max([folder.stat().st_mtime] + [path.lstat().st_mtime for path in folder.iterdir()])


def run_status(out: Path) -> list[CellStatus]:
    """One row per cell that has a record or a work folder in ``out``, sorted by name. A record that
    can't be read (truncated, not JSON, fields of the wrong type) is a row of its own, "record
    unreadable" with the path and the reason; it never stops the listing."""
    now = time.time()
    records: dict[str, dict] = {}
    rows: dict[str, CellStatus] = {}
    for path in sorted((out / "records").glob("*.json")):
        try:
            record = read_record(path)  # checked as for a report: a row shows only valid fields
        except BenchError as error:
            rows[path.stem] = CellStatus(path.stem, f"record unreadable ({error})")
            continue
        records[path.stem] = record
        if record.get("status") == "ok":
            metrics = record.get("metrics")
            rsum = metrics.get("rsum") if isinstance(metrics, dict) else None
            rows[path.stem] = CellStatus(path.stem, "finished", test_rsum=rsum if is_int_or_float(rsum) else None)
        else:
            rows[path.stem] = CellStatus(path.stem, "failed")
    for folder in sorted(path for path in (out / "work").glob("*") if path.is_dir()):
        name, identity = parse_work_dir(folder)
        record = records.get(name)
        if record is not None and (record_identity(record) or "").startswith(identity):
            continue  # the record already says how this cell ended
        has_record = name in rows  # readable or not
        # A record of another identity is either older (this folder is a rerun with a changed config or
        # data, under way) or newer (this folder is what an earlier config left behind).
        newer = not has_record or _last_write(folder) > (out / "records" / f"{name}.json").stat().st_mtime
        if record is None and has_record and not newer:
            continue  # most likely the unreadable record's own work: its row already says all that is known
        state = "in progress" if newer else "superseded"
        key = name if not has_record else f"{name} ({identity})"  # beside the record's row, not over it
        rows[key] = _from_checkpoint(key, state, folder, now)
    return [rows[key] for key in sorted(rows)]
