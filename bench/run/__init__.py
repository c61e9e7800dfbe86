"""Running a grid: cells, the run folder, training one cell, the executors, and the run record.

The package is split by concern; its public names are importable from ``bench.run`` itself:

* :mod:`bench.run.cell` — the :class:`Cell`, its name and identity, and :func:`build_cells`;
* :mod:`bench.run.grid` — :func:`run_grid` (splits, refusing to replace records, the executors) and
  the cache warming before it;
* :mod:`bench.run.train` — :func:`run_cell`: one cell's fit, selection and test metrics;
* :mod:`bench.run.executors` — where cells run: in process, in worker processes, as Ray tasks;
* :mod:`bench.run.folder` — the run folder's layout and which cells are finished;
* :mod:`bench.run.record` — the typed :class:`RunRecord`, the metric names, the schema check and the
  one reader every command reads records through;
* :mod:`bench.run.provenance` — where a result came from: code version, packages, machine, device;
* :mod:`bench.run.status` — ``bench status`` (imported from its module by the command).
"""

from __future__ import annotations

from bench.run.cell import (
    Cell,
    ConfigSource,
    build_cells,
    cell_identity,
    cell_text_encoder,
    encoders_for,
    profile_configs,
)
from bench.run.executors import EXECUTORS, make_executor
from bench.run.folder import DEFAULT_RUN, is_finished, prepare_run_folder, record_path, work_dir
from bench.run.grid import GridSummary, run_grid, warm_text_sides
from bench.run.record import METRICS, SCHEMA_VERSION, RunRecord, read_record, record_identity, write_record
from bench.run.train import run_cell, test_metrics

__all__ = [
    "DEFAULT_RUN", "EXECUTORS", "METRICS", "SCHEMA_VERSION", "Cell", "ConfigSource", "GridSummary", "RunRecord",
    "build_cells", "cell_identity", "cell_text_encoder", "encoders_for", "is_finished", "make_executor",
    "prepare_run_folder", "profile_configs", "read_record", "record_identity", "record_path", "run_cell", "run_grid",
    "test_metrics", "warm_text_sides", "work_dir", "write_record",
]
