"""The layout of a run folder, and which of its cells are finished.

``<out>/records/<cell>.json`` holds a finished (or failed) cell's record; ``<out>/locks/`` the locks
that keep two ``bench run`` processes from training one cell; ``<out>/work/<cell>-<identity[:12]>/``
a cell's checkpoints and vocabulary; ``<out>/superseded/`` the finished records ``--force`` replaced.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench.errors import BenchError, notice
from bench.run.cell import Cell
from bench.run.record import read_record, record_identity

DEFAULT_RUN = Path("runs") / "default"  # what `bench run` writes and `bench report` reads without a folder


def record_path(out: Path, cell: Cell) -> Path:
    return out / "records" / f"{cell.name}.json"


def work_dir(out: Path, cell: Cell, identity: str) -> Path:
    """Checkpoints and vocabulary of one cell; keyed by its identity, so neither a changed config nor
    changed data ever resumes a stale checkpoint."""
    return out / "work" / f"{cell.name}-{identity[:12]}"


def parse_work_dir(folder: Path) -> tuple[str, str]:
    """The cell name and identity prefix a :func:`work_dir` folder was named from."""
    name, _, identity = folder.name.rpartition("-")
    return name, identity


def existing_record(out: Path, cell: Cell, quiet: bool = True) -> dict | None:
    """The cell's record in ``out`` when there is one that is a valid run record, else None. A file
    there that is not one (truncated by a killed copy, hand-edited, breaking the schema) holds no result
    a report could show, so the cell is trained again and the file replaced (said once, unless ``quiet``)."""
    path = record_path(out, cell)
    if not path.exists():
        return None
    try:
        return read_record(path)
    except BenchError as error:
        if not quiet:
            notice(f"{error}; {cell.name} is trained again and that file replaced")
        return None


def is_finished(out: Path, cell: Cell, identity: str) -> bool:
    record = existing_record(out, cell)
    return record is not None and record.get("status") == "ok" and record_identity(record) == identity


def prepare_run_folder(out: Path) -> None:
    """Create ``out/records``, ``out/locks`` and ``out/work`` and check each can be written, with a
    clear error (before any training) for a folder that is a file, a read-only one, or a read-only
    filesystem: the records, the cells' locks and their checkpoints are all written there."""
    folders = (out / "records", out / "locks", out / "work")
    for folder in (out, *folders):
        if folder.exists() and not folder.is_dir():
            raise BenchError(f"run folder {out}: {folder} is a file, not a folder; pass another --out")
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            # A probe of its own (not a fixed name): several runs may start on one folder at once.
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
                pass
        except OSError as error:
            raise BenchError(f"run folder {out} can't be written ({error.strerror or error}): no file can be made in "
                             f"{folder}; pass another --out") from None


def superseded_path(out: Path, path: Path, record: dict) -> Path:
    """Where ``--force`` keeps a replaced record: ``<out>/superseded/<name>.<config hash[:12]>.json``
    (with ``.2``, ``.3``... when that one is already kept, so nothing kept there is ever replaced)."""
    config_hash = record.get("config_hash")
    stem = f"{path.stem}.{config_hash[:12] if isinstance(config_hash, str) else 'unknown'}"
    target, n = out / "superseded" / f"{stem}.json", 2
    while target.exists():
        target, n = out / "superseded" / f"{stem}.{n}.json", n + 1
    return target
