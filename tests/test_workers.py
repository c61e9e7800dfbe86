"""Running a grid on several workers: local processes, Ray tasks, concurrent `bench run`s on one
folder (a lock per cell), and a cell identity that includes the data and the split file."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.cli import main
from bench.errors import BenchError
from bench.models.registry import get_model_spec
from bench.run import build_cells, run_grid


def _grid(dataset, splits_dir, out, models=("cca",), fractions=(100, 25), overrides=None, **kwargs):
    specs = [get_model_spec(m) for m in models]
    cells = build_cells(dataset.name, specs, list(fractions), [0], "overlap", "cpu", None, overrides or {})
    return run_grid(cells, {s.name: s for s in specs}, dataset, out, torch.device("cpu"), quiet=True,
                    splits_dir=splits_dir, **kwargs)


def _metrics(out: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text())["metrics"] for p in sorted((out / "records").glob("*.json"))}


TINY_VSE = {"vse": {"embed_size": "32", "word_dim": "16", "epochs": "2", "batch_size": "32", "text_encoder": "gru",
                    "min_count": "1"}}


def test_two_local_workers_give_the_records_of_one(small_synthetic, small_splits, tmp_path):
    one = _grid(small_synthetic, small_splits, tmp_path / "one", models=("cca", "vse"), overrides=TINY_VSE)
    two = _grid(small_synthetic, small_splits, tmp_path / "two", models=("cca", "vse"), overrides=TINY_VSE,
                jobs=2, threads=1)
    assert len(one.done) == len(two.done) == 4 and not two.failed
    assert _metrics(tmp_path / "one") == _metrics(tmp_path / "two")


def _edited(dataset, caption_row: int = 0):
    """The same dataset with one training caption edited."""
    train = dataset.train
    captions = list(train.captions)
    captions[caption_row] += " edited"
    return dataclasses.replace(dataset, train=dataclasses.replace(train, captions=captions))


def test_changed_data_means_recompute_and_unchanged_data_resumes(small_synthetic, small_splits, tmp_path):
    assert len(_grid(small_synthetic, small_splits, tmp_path).done) == 2
    assert len(_grid(small_synthetic, small_splits, tmp_path).skipped) == 2  # unchanged: reused
    edited = _edited(small_synthetic)
    assert edited.ids_sha256 == small_synthetic.ids_sha256  # the split files still fit...
    # ...but the cells are not reused: the records of the old data are not replaced silently either,
    with pytest.raises(BenchError, match=r"made differently \(the dataset's content changed\).*--force"):
        _grid(edited, small_splits, tmp_path)
    again = _grid(edited, small_splits, tmp_path, force=True)  # and --force recomputes them (keeping the old ones)
    assert len(again.done) == 2 and not again.skipped
    features = small_synthetic.train.features.copy()
    features[3, 0] += 1.0
    moved = dataclasses.replace(small_synthetic, train=dataclasses.replace(small_synthetic.train, features=features))
    assert len(_grid(moved, small_splits, tmp_path, force=True).done) == 2
    assert len(list((tmp_path / "superseded").glob("*.json"))) == 4


def test_a_cell_locked_by_another_process_is_put_off_then_skipped_when_it_finished(small_synthetic, small_splits,
                                                                                   tmp_path):
    """Simulate another `bench run` holding the p100 cell: this run trains p25 first, then waits for
    p100; when the other run finishes it meanwhile, p100 is skipped and reported as waited for."""
    from filelock import FileLock

    out = tmp_path / "run"
    _grid(small_synthetic, small_splits, tmp_path / "other")  # the other run's finished records
    (out / "locks").mkdir(parents=True)
    name = "synthetic_cca_cpu_overlap_p100_seed0"
    lock = FileLock(str(out / "locks" / f"{name}.lock"))
    lock.acquire()
    order = []

    import bench.run.executors as executors

    real_run_job = executors.run_job

    def run_job(job, dataset, quiet, wait):
        if wait and job.cell.name == name:  # the other run finishes its cell and lets go
            (out / "records").mkdir(exist_ok=True)
            (out / "records" / f"{name}.json").write_text((tmp_path / "other" / "records" / f"{name}.json").read_text())
            lock.release()
        outcome = real_run_job(job, dataset, quiet, wait)
        order.append((outcome.name, outcome.status))
        return outcome

    executors.run_job = run_job
    try:
        summary = _grid(small_synthetic, small_splits, out)
    finally:
        executors.run_job = real_run_job
    assert order == [(name, "deferred"), ("synthetic_cca_cpu_overlap_p25_seed0", "ok"), (name, "waited")]
    assert summary.done == ["synthetic_cca_cpu_overlap_p25_seed0"] and summary.waited == [name]
    assert summary.skipped == [name]  # counted once, when it was found finished, not when it was put off


@pytest.mark.slow
def test_two_concurrent_bench_runs_never_train_the_same_cell(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "bench.cli", "run", "--models", "vse", "--fractions", "100,50,25,10", "--out",
           str(out), "--quiet", "--threads", "1", "--text-encoders", "gru", "--set", "vse.epochs=2",
           "--set", "vse.embed_size=32", "--set", "vse.word_dim=16"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    runs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for _ in range(2)]
    outputs = [run.communicate(timeout=900)[0] for run in runs]
    assert all(run.returncode == 0 for run in runs), outputs
    trained = [int(text.split(" cells trained")[0].rsplit("\n", 1)[-1]) for text in outputs]
    assert sum(trained) == 4, outputs  # each cell fitted exactly once across the two processes
    assert len(list((out / "records").glob("*.json"))) == 4


def _ray():
    try:
        import ray
    except ImportError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("ray is not installed; CI installs the '.[ray]' extra")
        pytest.skip("ray is not installed (pip install -e '.[ray]')")
    return ray


def test_ray_executor_on_a_local_cluster(small_synthetic, small_splits, tmp_path):
    ray = _ray()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        summary = _grid(small_synthetic, small_splits, tmp_path / "ray", fractions=(100, 50, 25), executor="ray")
    finally:
        ray.shutdown()
    assert len(summary.done) == 3 and not summary.failed
    _grid(small_synthetic, small_splits, tmp_path / "local", fractions=(100, 50, 25))
    assert _metrics(tmp_path / "ray") == _metrics(tmp_path / "local")


def test_ray_missing_names_the_extra(small_synthetic, small_splits, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(BenchError, match=r"pip install -e '\.\[ray\]'"):
        _grid(small_synthetic, small_splits, tmp_path, executor="ray")


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_text("x"), "is a file"),
    (lambda p: (p / "records").parent.mkdir() or (p / "records").write_text("x"), "is a file"),
])
def test_bad_run_folder_is_one_clear_line(tmp_path, capsys, make, message):
    out = tmp_path / "out"
    make(out)
    assert main(["run", "--models", "cca", "--fractions", "100", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]


def test_read_only_run_folder_is_one_clear_line(tmp_path, capsys, monkeypatch):
    """A read-only filesystem (simulated: the tests run as root, whom permissions don't stop)."""
    import errno

    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "mkdir", read_only)
    assert main(["run", "--models", "cca", "--fractions", "100", "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "can't be written (Read-only file system)" in err[0]
