"""The typed run record (bench.run.record.RunRecord): it reads and writes records exactly as they are.

``bench run`` builds a :class:`RunRecord` and writes ``to_json()``; records already on disk (the
committed ones, made before the class existed) must come back through ``from_json`` unchanged, byte
for byte as written, or the class would not describe what a record holds."""

from __future__ import annotations

import json
from pathlib import Path

from bench.io import to_json
from bench.run.record import METRICS, SCHEMA_VERSION, RunRecord, record_identity, write_record

REPO = Path(__file__).resolve().parents[1]
RECORDS = sorted(REPO.glob("reports/**/records/*.json"))[:40]


def test_committed_records_round_trip_key_for_key():
    assert RECORDS
    for path in RECORDS:
        data = json.loads(path.read_text())
        record = RunRecord.from_json(data)
        assert record.extra == {}, f"{path}: keys the record class does not know: {sorted(record.extra)}"
        assert to_json(record.to_json()) == path.read_text(), path  # the very bytes bench run wrote
        assert record.validate() == [], path
        if record.status == "ok":
            assert set(METRICS) <= set(record.metrics), path


def test_unknown_keys_are_kept_and_a_broken_record_is_written_as_a_failure(tmp_path):
    data = json.loads(RECORDS[0].read_text())
    record = RunRecord.from_json({**data, "_path": "x"})
    assert record.extra == {"_path": "x"} and record.to_json()["_path"] == "x"
    assert record.schema_version == SCHEMA_VERSION and record_identity(record.to_json()) == record_identity(data)

    broken = RunRecord.from_json(data)
    broken.status, broken.metrics = "ok", {**broken.metrics, "rsum": float("nan")}
    assert any("rsum" in problem for problem in broken.validate())
    write_record(tmp_path / "r.json", broken)
    written = json.loads((tmp_path / "r.json").read_text())
    assert written["status"] == "failed" and written["error"]["type"] == "SchemaError" and "metrics" not in written
