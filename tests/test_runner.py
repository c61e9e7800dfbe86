"""The grid runner: records, provenance, resume, failures, determinism, the kill-and-rerun case."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.cli import main
from bench.errors import BenchError
from bench.io import to_json
from bench.models.config import ModelConfig
from bench.models import RetrievalModel
from bench.models.registry import ModelSpec, get_model_spec
from bench.run import Cell, build_cells, run_grid
from bench.run.record import validation_errors


def _grid(dataset, models, splits_dir, out, fractions=(100, 25), seeds=(0,), overrides=None, **kwargs):
    specs = [get_model_spec(m) if isinstance(m, str) else m for m in models]
    cells = build_cells(dataset.name, specs, list(fractions), list(seeds), "overlap", "cpu", None, overrides or {})
    import torch

    return run_grid(cells, {s.name: s for s in specs}, dataset, out, torch.device("cpu"), quiet=True,
                    splits_dir=splits_dir, **kwargs)


def _records(out: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((out / "records").glob("*.json"))}


def test_cca_grid_writes_valid_records_with_provenance(small_synthetic, small_splits, tmp_path):
    summary = _grid(small_synthetic, ["cca"], small_splits, tmp_path, fractions=(100, 50, 25, 10))
    assert len(summary.done) == 4 and not summary.failed
    records = _records(tmp_path)
    assert len(records) == 4
    for record in records.values():
        assert validation_errors(record) == []
        assert record["status"] == "ok"
        assert record["provenance"]["git"].keys() >= {"commit", "dirty"}
        assert record["data"]["split_sha256"] and record["data"]["ids_sha256"] == small_synthetic.ids_sha256
        assert 0 <= record["metrics"]["i2t_r1"] <= 100
    p10 = records["synthetic_cca_cpu_overlap_p10_seed0"]
    assert p10["data"]["paired_images"] == 24 and p10["data"]["unpaired_images"] == 240


def test_rerun_skips_finished_cells_and_force_recomputes(small_synthetic, small_splits, tmp_path):
    _grid(small_synthetic, ["cca"], small_splits, tmp_path)
    again = _grid(small_synthetic, ["cca"], small_splits, tmp_path)
    assert len(again.skipped) == 2 and not again.done
    # Another config hash is another result: it never replaces the finished records silently...
    with pytest.raises(BenchError, match=r"already has a finished record .*cca\.dim 256 -> 16.*--label NAME.*--force"):
        _grid(small_synthetic, ["cca"], small_splits, tmp_path, overrides={"cca": {"dim": "16"}})
    assert {r["config"]["dim"] for r in _records(tmp_path).values()} == {256}
    # ... and --force trains it, keeping the earlier records under superseded/.
    changed = _grid(small_synthetic, ["cca"], small_splits, tmp_path, overrides={"cca": {"dim": "16"}}, force=True)
    assert len(changed.done) == 2
    assert len(list((tmp_path / "superseded").glob("*.json"))) == 2
    forced = _grid(small_synthetic, ["cca"], small_splits, tmp_path, overrides={"cca": {"dim": "16"}}, force=True)
    assert len(forced.done) == 2  # the same config recomputed: nothing else to keep
    assert len(list((tmp_path / "superseded").glob("*.json"))) == 2


def test_a_raised_model_revision_retrains_instead_of_reusing_old_results(small_synthetic, small_splits, tmp_path):
    cca = get_model_spec("cca")
    _grid(small_synthetic, [cca], small_splits, tmp_path, fractions=(25,))
    name = "synthetic_cca_cpu_overlap_p25_seed0"
    old = _records(tmp_path)[name]
    # Revision 0 adds nothing to the hash, so records from before revisions existed stay current.
    # the hash covers the config as hashed_config gives it (fields added later drop out at their default)
    hashed = {k: v for k, v in old["config"].items() if k != "text_encoder" or v != "tfidf"}
    payload = {"model": "cca", "profile": "cpu", "config": hashed}
    assert old["config_hash"] == hashlib.sha256(to_json(payload).encode()).hexdigest()
    assert old["model_revision"] == 0

    fixed = dataclasses.replace(cca, revision=1)  # a behaviour fix that added no config field
    # The old record is never reused, nor replaced silently: the run asks for --force ...
    with pytest.raises(BenchError, match=r"model revision 0 -> 1, .*pass --force to retrain"):
        _grid(small_synthetic, [fixed], small_splits, tmp_path, fractions=(25,))
    # ... which retrains the cell and keeps the old record under superseded/.
    again = _grid(small_synthetic, [fixed], small_splits, tmp_path, fractions=(25,), force=True)
    assert len(again.done) == 1 and not again.skipped
    assert json.loads((tmp_path / "superseded" / f"{name}.{old['config_hash'][:12]}.json").read_text()) == old
    new = _records(tmp_path)[name]
    assert new["model_revision"] == 1 and new["config_hash"] != old["config_hash"]
    assert new["config"] == old["config"]
    assert len(_grid(small_synthetic, [fixed], small_splits, tmp_path, fractions=(25,)).skipped) == 1

    class Plain(_BrokenModel):
        name, summary, config_class = "plain", "a model never fixed", _BrokenConfig

    class Revised(Plain):
        revision = 2

    assert ModelSpec.of(Plain).revision == 0 and ModelSpec.of(Revised).revision == 2


def test_a_field_added_later_keeps_recorded_cells_at_its_default():
    from unimodel.config import UnimodelConfig

    # A mine record made before standardize_features existed: its config has no such key.
    records = Path(__file__).parents[1] / "reports/flickr8k-gru/records"
    path = records / "flickr8k_mine-gru-no-stage1-2820u_cpu_overlap_p25_seed2.json"
    record = json.loads(path.read_text())
    assert "standardize_features" not in record["config"]
    config = UnimodelConfig(**record["config"])
    cell = Cell(dataset="flickr8k", model="mine", fraction=25, seed=2, policy="overlap", profile="cpu",
                text_encoder="gru", config=config, label="no-stage1-2820u")
    assert cell.config_hash == record["config_hash"]  # the same cell: a rerun resumes or skips it

    changed = dataclasses.replace(cell, config=dataclasses.replace(config, standardize_features=False))
    assert changed.config_hash != record["config_hash"]  # off is another config, hashed as any field is


def test_status_reads_finished_failed_running_and_superseded_cells(small_synthetic, small_splits, tmp_path, capsys):
    from bench.run.status import run_status

    overrides = {"vse": {"embed_size": "16", "word_dim": "8", "epochs": "2", "batch_size": "32", "text_encoder": "gru"}}
    _grid(small_synthetic, ["vse"], small_splits, tmp_path, fractions=(50,), overrides=overrides)
    broken = ModelSpec(name="broken", factory=_BrokenModel, config_class=_BrokenConfig, summary="always fails")
    _grid(small_synthetic, [broken], small_splits, tmp_path, fractions=(50,))
    name = "synthetic_vse-gru_cpu_overlap_p50_seed0"
    record_path = tmp_path / "records" / f"{name}.json"
    record = json.loads(record_path.read_text())
    states = {r.name: r for r in run_status(tmp_path)}
    assert states[name].state == "finished" and states[name].test_rsum == record["metrics"]["rsum"]
    assert states["synthetic_broken_cpu_overlap_p50_seed0"].state == "failed"

    # Without its record the cell reads as killed after its last epoch, with the checkpoint's dev curve.
    record_path.rename(tmp_path / "kept.json")
    running = {r.name: r for r in run_status(tmp_path)}[name]
    curve = record["training"]["validation_curve"]
    assert running.state == "in progress" and running.epochs_done == 2
    assert running.epochs_planned == 2 and running.time_left_s == 0  # the checkpoint knows the plan
    assert running.best_dev_rsum == max(p["val_rsum"] for p in curve) and running.last_dev_rsum == curve[-1]["val_rsum"]
    assert main(["status", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "in progress" in out and "1 failed, 1 in progress" in out and "synthetic_broken" not in out.split("\n")[2]

    # A work folder of another identity: superseded when the record is newer, a rerun under way when older.
    (tmp_path / "kept.json").rename(record_path)
    old = tmp_path / "work" / f"{name}-0123456789ab"
    old.mkdir()
    os.utime(old, (record_path.stat().st_mtime - 60,) * 2)
    states = {r.name: r.state for r in run_status(tmp_path)}
    assert states[name] == "finished" and states[f"{name} (0123456789ab)"] == "superseded"
    os.utime(old, (record_path.stat().st_mtime + 60,) * 2)
    assert {r.name: r.state for r in run_status(tmp_path)}[f"{name} (0123456789ab)"] == "in progress"
    (old / "checkpoint.pt").write_bytes(b"cut short")
    assert {r.name: r.state for r in run_status(tmp_path)}[f"{name} (0123456789ab)"] == "in progress (checkpoint unreadable)"


def test_status_estimates_the_time_left_from_the_latest_epochs(tmp_path, capsys):
    """The time left is the epochs still to run at the mean pace of the last three; a checkpoint
    written before the plan was saved shows the epochs done and no estimate."""
    import torch

    from bench.run.status import run_status

    work = tmp_path / "work" / "synthetic_vse-gru_cpu_overlap_p50_seed0-0123456789ab"
    work.mkdir(parents=True)
    curve = [{"epoch": e, "val_rsum": 10.0 + e} for e in range(4)]
    torch.save({"curve": curve, "epochs": 10, "epoch_seconds": [500.0, 60.0, 120.0, 180.0]}, work / "checkpoint.pt")
    (row,) = run_status(tmp_path)
    assert (row.epochs_done, row.epochs_planned, row.time_left_s) == (4, 10, 6 * 120.0)
    assert main(["status", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| 4 of 10 " in out and "| about 12 min " in out

    torch.save({"curve": curve}, work / "checkpoint.pt")  # an older checkpoint
    (row,) = run_status(tmp_path)
    assert (row.epochs_done, row.epochs_planned, row.time_left_s) == (4, None, None)


def test_same_cell_twice_gives_the_same_metrics(small_synthetic, small_splits, tmp_path):
    overrides = {"vse": {"embed_size": "32", "word_dim": "16", "epochs": "2", "batch_size": "32", "text_encoder": "gru"}}
    first, second = tmp_path / "a", tmp_path / "b"
    _grid(small_synthetic, ["vse"], small_splits, first, fractions=(50,), overrides=overrides)
    _grid(small_synthetic, ["vse"], small_splits, second, fractions=(50,), overrides=overrides)
    (a,), (b,) = _records(first).values(), _records(second).values()
    assert a["status"] == "ok", a.get("error")
    assert a["metrics"] == b["metrics"]


@dataclass(frozen=True)
class _BrokenConfig(ModelConfig):
    when: str = "fit"


class _BrokenModel(RetrievalModel):
    def fit(self, paired, unpaired, context):
        raise FloatingPointError("loss became NaN at step 3")

    def embed_images(self, features):  # pragma: no cover - never reached
        raise AssertionError

    def embed_captions(self, captions):  # pragma: no cover - never reached
        raise AssertionError


def test_a_failed_cell_is_recorded_and_the_grid_goes_on(small_synthetic, small_splits, tmp_path):
    broken = ModelSpec(name="broken", factory=_BrokenModel, config_class=_BrokenConfig, summary="always fails")
    summary = _grid(small_synthetic, [broken, "cca"], small_splits, tmp_path)
    assert len(summary.failed) == 2 and len(summary.done) == 2
    record = _records(tmp_path)["synthetic_broken_cpu_overlap_p100_seed0"]
    assert record["status"] == "failed" and "NaN" in record["error"]["message"]
    assert validation_errors(record) == []


def test_missing_split_file_stops_before_training(small_synthetic, tmp_path):
    with pytest.raises(BenchError, match="no split file"):
        _grid(small_synthetic, ["cca"], tmp_path / "empty", tmp_path / "out")


def test_cli_run_and_report_on_default_data(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--models", "cca", "--fractions", "100,10", "--out", str(out), "--quiet"]) == 0
    assert main(["report", str(out), "--format", "markdown"]) == 0
    text = capsys.readouterr().out
    assert "| cca" in text and "retention" in text


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--models", "nope"], "unknown model 'nope'"),
        (["run", "--fractions", "0"], "outside (0, 100]"),
        (["run", "--dataset", "imagenet"], "unknown dataset 'imagenet'"),
        (["run", "--dataset", "flickr8k", "--root", "/no/such/folder"], "dataset folder not found: /no/such/folder"),
        (["run", "--models", "cca", "--set", "cca.nope=1"], "has no setting 'nope'"),
        (["run", "--models", "cca", "--set", "cca.dim=abc"], "is not a int"),
        (["report", "/no/such/run"], "run folder not found"),
        (["status", "/no/such/run"], "is not a run folder"),
    ],
)
def test_bad_input_is_one_clear_line(argv, message, capsys, tmp_path):
    assert main([*argv, *(["--out", str(tmp_path)] if argv[0] == "run" else [])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bench: error:") and message in err[0]


@pytest.mark.slow
def test_killed_run_resumes_without_redoing_or_corrupting(tmp_path):
    """Kill `bench run` with SIGKILL during the second cell, rerun, and check the grid."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "bench.cli", "run", "--models", "vse", "--fractions", "100,50", "--out", str(out),
           "--quiet", "--text-encoders", "gru", "--jobs", "1", "--profile", "cpu",
           "--set", "vse.epochs=6", "--set", "vse.embed_size=64", "--set", "vse.word_dim=32"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    second_cell = out / "work"
    checkpoint = lambda: list(second_cell.glob("synthetic_vse-gru_cpu_overlap_p50_seed0-*/checkpoint.pt"))  # noqa: E731
    deadline = time.time() + 600
    while not checkpoint() and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    assert checkpoint(), process.stdout.read().decode() if process.poll() is not None else "timed out"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    first_record = out / "records" / "synthetic_vse-gru_cpu_overlap_p100_seed0.json"
    finished_before = first_record.stat().st_mtime_ns
    assert not (out / "records" / "synthetic_vse-gru_cpu_overlap_p50_seed0.json").exists()

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "1 cells trained, 1 already done" in rerun.stdout
    assert first_record.stat().st_mtime_ns == finished_before  # not redone
    records = _records(out)
    assert len(records) == 2
    resumed = records["synthetic_vse-gru_cpu_overlap_p50_seed0"]
    assert validation_errors(resumed) == [] and resumed["status"] == "ok"
    assert resumed["training"]["resumed_from_epoch"] is not None
    assert not list(out.rglob("*.tmp"))  # no half-written file left behind


def test_a_labelled_variant_gets_its_own_records_and_rows(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--models", "cca", "--fractions", "100", "--out", str(out), "--quiet"]) == 0
    assert main(["run", "--models", "cca", "--fractions", "100", "--out", str(out), "--quiet",
                 "--label", "dim16", "--set", "cca.dim=16"]) == 0
    assert sorted(_records(out)) == ["synthetic_cca-dim16_quick_overlap_p100_seed0", "synthetic_cca_quick_overlap_p100_seed0"]
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| cca [dim16]" in table and "| cca  " in table
    assert main(["run", "--models", "cca", "--label", "bad label", "--out", str(out)]) == 2


def test_git_state_counts_untracked_code_as_dirty(tmp_path):
    import git

    from bench.run.provenance import git_state

    repo = git.Repo.init(tmp_path)
    (tmp_path / ".gitignore").write_text("runs/\n")
    (tmp_path / "a.py").write_text("x = 1\n")
    repo.index.add([".gitignore", "a.py"])
    repo.index.commit("first")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "record.json").write_text("{}")  # ignored: still clean
    assert git_state(tmp_path)["dirty"] is False
    (tmp_path / "new_module.py").write_text("y = 2\n")  # new, uncommitted code
    assert git_state(tmp_path)["dirty"] is True
