"""One cell's run record: the typed :class:`RunRecord`, its schema check, and the one reader.

A record is the JSON file ``bench run`` writes per cell under ``<out>/records/`` (documented in
reports/SCHEMA.md, described by ``bench/schemas/record.schema.json``). :class:`RunRecord` holds its
fields; :meth:`RunRecord.to_json` gives the dict that is written, key for key as the runner always
wrote it, and :meth:`RunRecord.from_json` reads one back.

Records travel between people (a run folder copied from a colleague or a CI job), so the harness
trusts none it reads: every record is read through :func:`read_record`, which checks it against the
schema (:func:`validation_errors`: the JSON Schema with ``number`` meaning a finite number, see
:func:`bench.io.schema_problems`, plus what a schema cannot say about ``test_ranks``: one i2t rank and
one t2i list per test image, each rank below the size of the gallery it ranks in). ``bench report``,
``bench check``, ``bench status`` and the run cache all read that way; ``bench run`` checks each
record it writes with the same rules.

:data:`METRICS` names the headline metrics a record's ``metrics`` holds and the tables show.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from bench import __version__
from bench.errors import BenchError
from bench.io import atomic_write_json, is_number, read_json_file, schema_problems
from bench.run.cell import cell_identity

SCHEMA_VERSION = 1
# The headline metrics a record's ``metrics`` holds and the tables show, in their order: Recall@1/5/10
# in both directions, then rsum (their sum). The one list: the run record, the report and `bench check`
# read it from here (a list, so that pandas takes it as columns).
METRICS = ["i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "rsum"]
SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "record.schema.json"


@lru_cache(maxsize=1)
def record_schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


def ranks_problems(record: object) -> list[str]:
    """What the schema cannot say about ``test_ranks``: one i2t rank and one t2i list per test image,
    every i2t rank below the number of test captions and every t2i rank below the number of images."""
    ranks = record.get("test_ranks") if isinstance(record, dict) else None
    if not isinstance(ranks, dict) or not isinstance(ranks.get("i2t"), list) or not isinstance(ranks.get("t2i"), list):
        return []  # absent, or already a schema error
    i2t, t2i = ranks["i2t"], ranks["t2i"]
    if len(i2t) != len(t2i):
        return [f"has 'test_ranks' with {len(i2t)} i2t ranks but {len(t2i)} t2i lists; expected one of each per "
                "test image"]
    if not all(isinstance(image_ranks, list) for image_ranks in t2i):
        return []  # a schema error
    captions = sum(len(image_ranks) for image_ranks in t2i)
    if any(is_number(rank) and rank >= captions for rank in i2t):
        return [f"has an i2t rank of at least {captions}, the number of test captions in 'test_ranks'"]
    if any(is_number(rank) and rank >= len(i2t) for image_ranks in t2i for rank in image_ranks):
        return [f"has a t2i rank of at least {len(i2t)}, the number of test images in 'test_ranks'"]
    return []


def validation_errors(record: object) -> list[str]:
    """Every way ``record`` breaks the record schema, as readable lines (empty when it is valid)."""
    return schema_problems(record, record_schema()) + ranks_problems(record)


def record_problem(record: object) -> str | None:
    """The first way ``record`` breaks the schema, in one line (with how many more there are), or None."""
    problems = validation_errors(record)
    if not problems:
        return None
    return problems[0] + (f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else "")


@dataclass
class RunRecord:
    """The fields of one record (:attr:`KEYS` gives the order of the written dict). A field left at
    None is absent from the file (a failed cell has no metrics; a record from before ``model_revision`` has none).
    ``extra`` keeps keys this class does not know (from a newer or hand-edited file) as they were."""

    cell: dict | None = None
    name: str | None = None
    config: dict | None = None
    config_hash: str | None = None
    model_revision: int | None = None
    uses_unpaired: bool | None = None
    provenance: dict | None = None
    status: str = "failed"
    schema_version: int = SCHEMA_VERSION
    bench_version: str = __version__
    data: dict | None = None
    training: dict | None = None
    model: dict | None = None
    metrics_by_protocol: dict | None = None
    protocol: str | None = None
    metrics: dict | None = None
    test_ranks: dict | None = None
    error: dict | None = None
    timing: dict | None = None
    extra: dict = field(default_factory=dict)

    # The order of the keys in the written dict (the file itself has them sorted).
    KEYS = ("schema_version", "bench_version", "status", "cell", "name", "config", "config_hash", "model_revision",
            "uses_unpaired", "provenance", "data", "training", "model", "metrics_by_protocol", "protocol", "metrics",
            "test_ranks", "error", "timing")

    def to_json(self) -> dict[str, Any]:
        """The record as the dict written to its file."""
        out = {key: getattr(self, key) for key in self.KEYS if getattr(self, key) is not None}
        return {**out, **self.extra}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RunRecord":
        """A record from its dict (as read from a file); unknown keys go to ``extra``. Not checked:
        call :meth:`validate` for that."""
        if not isinstance(data, dict):
            raise BenchError(f"a run record is a JSON object, not {type(data).__name__}")
        known = {key: data[key] for key in cls.KEYS if key in data}
        return cls(**known, extra={key: value for key, value in data.items() if key not in cls.KEYS})

    def validate(self) -> list[str]:
        """Every way this record breaks the record schema, as readable lines (empty when it is valid)."""
        return validation_errors(self.to_json())

    def record_error(self, error: BaseException, traceback_text: str) -> None:
        """Mark the record failed with ``error`` (the grid records a failed cell and goes on)."""
        self.status = "failed"
        self.error = {"type": type(error).__name__, "message": str(error), "traceback": traceback_text}


def write_record(path: Path, record: RunRecord | dict) -> None:
    """Write a record atomically, after checking it against the schema. A record that breaks the
    schema is written as a failure that says how, never as a result."""
    data = record.to_json() if isinstance(record, RunRecord) else record
    problems = validation_errors(data)
    if problems:
        data = {**data, "status": "failed",
                "error": {"type": "SchemaError", "message": "record breaks the schema: " + "; ".join(problems[:5]),
                          "traceback": ""}}
        for key in ("metrics", "metrics_by_protocol", "protocol"):
            data.pop(key, None)
        if validation_errors(data):
            raise BenchError(f"record {path.name} breaks the schema: {'; '.join(problems[:5])}")
    atomic_write_json(path, data)


def read_record(path: Path) -> dict:
    """The record in ``path``, checked against the record schema. A file that is not a run record
    (unreadable, not JSON, breaking the schema) is a :class:`BenchError` naming the path and the first
    problem: records come from run folders that other people may have written."""
    record = read_json_file(path, "record")
    problem = record_problem(record)
    if problem:
        raise BenchError(f"record {path} is not a valid run record: {problem} (see reports/SCHEMA.md)")
    return record  # type: ignore[return-value]


def record_identity(record: dict) -> str | None:
    """The identity of the cell a finished record was made for (None when it lacks the fields)."""
    try:
        data = record["data"]
        return cell_identity(record["config_hash"], data["content_sha256"], data["split_sha256"])
    except (KeyError, TypeError):
        return None

