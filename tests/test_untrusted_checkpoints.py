"""Run folders from elsewhere (issues 39 and 40): a checkpoint, a record or a split file in them is
data, never code, and a bad one is reported in one line, never a traceback.

- ``bench run`` on a cell whose checkpoint is crafted (a pickle that would run code), truncated, a
  list, another fraction's, or missing a key: the checkpoint is discarded with a one-line notice,
  the cell trains from epoch 0 to the same numbers as a fresh run, and no code runs;
- ``bench status`` reads the same files without running code, and lists a bad record by its path;
- ``bench splits make`` into a file, ``bench splits verify`` with several bad files, and ``bench
  run`` on a doctored split file;
- a property test: records with fields of the wrong type never make ``bench status`` fail.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.cli import main
from bench.errors import BenchError
from bench.io import load_checkpoint
from bench.splits import default_splits_dir, split_path

CELL = "synthetic_vse-gru_quick_overlap_p100_seed0"
OTHER_FRACTION = "synthetic_vse-gru_quick_overlap_p10_seed0"
# The fastest neural cell on the default synthetic data: a tiny GRU VSE++ for two epochs.
RUN_ARGS = ["--models", "vse", "--profile", "quick", "--text-encoders", "gru", "--jobs", "1", "--threads", "1",
            "--quiet", "--set", "vse.epochs=2", "--set", "vse.embed_size=16", "--set", "vse.word_dim=8"]


class _WritesAFile:
    """Unpickling this calls ``open(marker, "w")``: the file appears if the loader runs pickled code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def _crafted_checkpoint(path: Path, marker: Path) -> None:
    torch.save({"epoch": 0, "curve": [{"epoch": 0, "val_rsum": 1.0}], "payload": _WritesAFile(marker)}, path)


def _bench(capfd, argv) -> tuple[int, str, str]:
    status = main([str(a) for a in argv])
    out, err = capfd.readouterr()
    return status, out, err


def _work(out: Path, cell: str) -> Path:
    (folder,) = (out / "work").glob(f"{cell}-*")
    return folder


@pytest.fixture(scope="module")
def fresh_run(tmp_path_factory):
    """The 100 % and 10 % cells trained once without interruption: their records and checkpoints."""
    out = tmp_path_factory.mktemp("fresh") / "run"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["run", *RUN_ARGS, "--fractions", "100,10", "--out", str(out)]) == 0
    return out


@pytest.fixture()
def rerun_folder(fresh_run, tmp_path):
    """A copy of the fresh run whose 100 % cell lost its record: a rerun resumes it from its checkpoint."""
    out = tmp_path / "run"
    shutil.copytree(fresh_run, out)
    (out / "records" / f"{CELL}.json").unlink()
    return out


def _record(out: Path, cell: str = CELL) -> dict:
    return json.loads((out / "records" / f"{cell}.json").read_text())


# ---------------------------------------------------------------- checkpoints under `bench run`


def test_the_crafted_checkpoint_does_run_code_when_unpickled(tmp_path):
    """The payload the tests below use is live: torch.load(weights_only=False) creates the marker."""
    marker = tmp_path / "marker"
    _crafted_checkpoint(tmp_path / "checkpoint.pt", marker)
    torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert marker.exists()


def _doctor(kind: str, checkpoint: Path, fresh_run: Path, marker: Path) -> None:
    if kind == "crafted":
        _crafted_checkpoint(checkpoint, marker)
    elif kind == "truncated":
        checkpoint.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    elif kind == "list":
        torch.save([1, 2, 3], checkpoint)
    elif kind == "other-fraction":  # the 10 % cell's vocabulary is smaller: its embedding has other shapes
        shutil.copyfile(_work(fresh_run, OTHER_FRACTION) / "checkpoint.pt", checkpoint)
    elif kind == "missing-key":
        saved = torch.load(checkpoint, weights_only=True)
        del saved["rng"]
        torch.save(saved, checkpoint)
    elif kind == "bad-rng":  # fits every module and optimizer, then fails at the RNG: nothing may stay applied
        saved = torch.load(checkpoint, weights_only=True)
        saved["rng"]["numpy"]["keys"] = torch.zeros(3, dtype=torch.int64)
        torch.save(saved, checkpoint)
    else:
        raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["crafted", "truncated", "list", "other-fraction", "missing-key", "bad-rng"])
def test_a_bad_checkpoint_is_discarded_and_the_cell_retrains_from_epoch_0(fresh_run, rerun_folder, capfd, kind):
    marker = rerun_folder.parent / "marker"
    checkpoint = _work(rerun_folder, CELL) / "checkpoint.pt"
    _doctor(kind, checkpoint, fresh_run, marker)
    status, out, err = _bench(capfd, ["run", *RUN_ARGS, "--fractions", "100", "--out", rerun_folder])
    assert status == 0, out + err
    assert not marker.exists()
    assert "Traceback" not in out + err
    notices = [line for line in err.splitlines() if "discarded, the cell trains from epoch 0" in line]
    assert len(notices) == 1 and str(checkpoint) in notices[0], err
    again, fresh = _record(rerun_folder), _record(fresh_run)
    assert again["training"]["resumed_from_epoch"] is None
    assert again["metrics"] == fresh["metrics"]  # retrained from the model's own start, not from the file's weights
    assert again["training"]["validation_curve"] == fresh["training"]["validation_curve"]
    load_checkpoint(checkpoint)  # the cell's next checkpoint replaced the bad one


def test_a_valid_checkpoint_still_resumes(rerun_folder, capfd):
    status, out, err = _bench(capfd, ["run", *RUN_ARGS, "--fractions", "100", "--out", rerun_folder])
    assert status == 0 and "discarded" not in err
    assert _record(rerun_folder)["training"]["resumed_from_epoch"] == 1


def test_rng_state_round_trips_through_the_safe_loader(tmp_path):
    """The RNG states are stored as plain values and tensors, and restore every generator exactly."""
    from bench.io import atomic_torch_save
    from bench.models.training import _rng_state, _set_rng_state, seed_everything

    def draws():
        return random.random(), float(np.random.standard_normal()), float(torch.rand(1))

    seed_everything(3)
    draws()  # move every stream along, and numpy's into a state with a cached gaussian
    atomic_torch_save(tmp_path / "rng.pt", {"rng": _rng_state()})
    expected = draws()
    draws()
    _set_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"])
    assert draws() == expected


@pytest.mark.parametrize("content, reason", [
    (None, "could run code"),
    (b"PK\x03\x04 not really a zip", "truncated or not a torch file"),
    ([1, 2], "holds a list"),
])
def test_the_safe_loader_names_the_file_and_the_reason_in_one_line(tmp_path, content, reason):
    path, marker = tmp_path / "checkpoint.pt", tmp_path / "marker"
    if content is None:
        _crafted_checkpoint(path, marker)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(BenchError) as error:
        load_checkpoint(path)
    message = str(error.value)
    assert str(path) in message and reason in message and "\n" not in message
    assert not marker.exists()


# ---------------------------------------------------------------- `bench status`


def test_status_reads_a_crafted_checkpoint_without_running_it(rerun_folder, capfd):
    marker = rerun_folder.parent / "marker"
    _crafted_checkpoint(_work(rerun_folder, CELL) / "checkpoint.pt", marker)
    status, out, err = _bench(capfd, ["status", rerun_folder, "--all"])
    assert status == 0 and not marker.exists() and "Traceback" not in out + err
    assert "in progress (checkpoint unreadable)" in out


@pytest.mark.parametrize("content, reason", [
    (lambda record: {**record, "metrics": [1, 2]}, "'metrics' a list"),
    (lambda record: {**record, "metrics": {**record["metrics"], "rsum": "high"}}, "'metrics.rsum' a string"),
    (lambda record: json.dumps(record)[:100], "is not valid JSON"),
])
def test_status_lists_a_bad_record_as_unreadable_with_its_path(fresh_run, tmp_path, capfd, content, reason):
    out_dir = tmp_path / "run"
    shutil.copytree(fresh_run, out_dir)
    path = out_dir / "records" / f"{CELL}.json"
    changed = content(_record(out_dir))
    path.write_text(changed if isinstance(changed, str) else json.dumps(changed))
    status, out, err = _bench(capfd, ["status", out_dir, "--all"])
    assert status == 0 and "Traceback" not in out + err
    (row,) = [line for line in out.splitlines() if line.startswith(f"| {CELL} ")]
    assert "record unreadable" in row and str(path) in row and reason in row
    assert "in progress" not in row


def test_run_trains_again_a_cell_whose_record_breaks_the_schema_and_says_so(fresh_run, tmp_path, capfd):
    """The run cache reads records through the same checked reader as the report: a finished-looking
    record that breaks the schema is no result, so the cell is trained again (from its checkpoint, to
    the same numbers) and the file replaced, with one notice naming it; the other cell is reused."""
    out_dir = tmp_path / "run"
    shutil.copytree(fresh_run, out_dir)
    path = out_dir / "records" / f"{CELL}.json"
    fresh = _record(out_dir)
    path.write_text(json.dumps({**fresh, "metrics": {**fresh["metrics"], "rsum": "high"}}))
    status, out, err = _bench(capfd, ["run", *RUN_ARGS, "--fractions", "100,10", "--out", out_dir])
    assert status == 0 and "Traceback" not in out + err
    notices = [line for line in err.splitlines() if line.startswith("notice:")]
    assert len(notices) == 1 and str(path) in notices[0] and "trained again" in notices[0], err
    assert _record(out_dir)["metrics"] == fresh["metrics"]
    assert _record(out_dir, OTHER_FRACTION) == _record(fresh_run, OTHER_FRACTION)


# ---------------------------------------------------------------- split files


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bench: error: "), err
    return lines[0]


def test_splits_make_into_a_file_is_one_line(tmp_path, capfd):
    (tmp_path / "afile").write_text("")
    status, out, err = _bench(capfd, ["splits", "make", "--dataset", "synthetic", "--fractions", "25", "--seeds", "0",
                                      "--dir", tmp_path / "afile"])
    assert status == 2 and "Traceback" not in out + err
    assert "is a file, not a folder" in _one_error_line(err)


def _doctored_splits(tmp_path: Path) -> dict[str, Path]:
    """The committed synthetic p25/p10 seed-0 files, copied and doctored three ways (one per file)."""
    folder = tmp_path / "sp"
    shutil.copytree(default_splits_dir() / "synthetic", folder / "synthetic")
    p50 = json.loads(split_path(folder, "synthetic", "overlap", 50, 0).read_text())
    doctored = {}
    for (fraction, seed), how in {(25, 0): "p50-ids", (25, 1): "trimmed", (25, 2): "empty"}.items():
        path = split_path(folder, "synthetic", "overlap", fraction, seed)
        data = json.loads(path.read_text())
        data["paired_image_ids"] = {"p50-ids": p50["paired_image_ids"], "trimmed": data["paired_image_ids"][:5],
                                    "empty": []}[how]
        path.write_text(json.dumps(data))
        doctored[how] = path
    return doctored


def test_splits_verify_lists_every_bad_file(tmp_path, capfd):
    """An unreadable file (sorted before the others) does not stop the check of the rest."""
    doctored = _doctored_splits(tmp_path)
    doctored["cut short"] = split_path(tmp_path / "sp", "synthetic", "overlap", 10, 0)
    doctored["cut short"].write_text(doctored["cut short"].read_text()[:50])
    status, out, err = _bench(capfd, ["splits", "verify", "--dir", tmp_path / "sp"])
    assert status == 2 and "Traceback" not in out + err
    assert "4 split file problem(s) in 4 of 12 files" in _one_error_line(err)
    fails = [line for line in out.splitlines() if line.startswith("FAIL ")]
    assert len(fails) == 4 and all(any(str(path) in line for line in fails) for path in doctored.values())
    assert any("is not valid JSON" in line for line in fails)
    assert sum(line.startswith("ok ") for line in out.splitlines()) == 8


@pytest.mark.parametrize("how, held", [("p50-ids", 1000), ("trimmed", 5), ("empty", 0)])
def test_run_refuses_a_doctored_split_file_before_training(tmp_path, capfd, how, held):
    path = _doctored_splits(tmp_path)[how]
    seed = {"p50-ids": 0, "trimmed": 1, "empty": 2}[how]
    status, out, err = _bench(capfd, ["run", "--models", "cca", "--fractions", "25", "--seeds", seed, "--splits-dir",
                                      tmp_path / "sp", "--out", tmp_path / "run", "--quiet", "--jobs", "1"])
    assert status == 2 and "Traceback" not in out + err
    line = _one_error_line(err)
    assert str(path) in line and f"paired_image_ids holds {held} images" in line
    assert not list((tmp_path / "run").glob("records/*.json"))


# ---------------------------------------------------------------- records of the wrong shape


def _key_paths(record: dict) -> list[tuple[str, ...]]:
    """Every key of the record and of its objects one level down."""
    paths = []
    for key, value in record.items():
        paths.append((key,))
        if isinstance(value, dict):
            paths.extend((key, inner) for inner in value)
    return paths


WRONG_VALUES = ["text", [], [1, "a"], 7, -1.5, {}, None, math.nan, math.inf, True]
# The fields `bench status` reads (sampled as often as all the others together, so 25 examples reach them).
READ_BY_STATUS = [("status",), ("metrics",), ("metrics", "rsum"), ("data",), ("config_hash",),
                  ("data", "content_sha256"), ("data", "split_sha256")]


def test_status_survives_records_with_fields_of_the_wrong_type(fresh_run, tmp_path, monkeypatch):
    from hypothesis import given, settings, strategies as st

    record = _record(fresh_run)
    paths = _key_paths(record)
    monkeypatch.chdir(tmp_path)  # an empty current folder, to see that nothing is written there either

    keys = st.one_of(st.sampled_from(READ_BY_STATUS), st.sampled_from(paths))

    @settings(max_examples=25, deadline=None, derandomize=True, database=None)
    @given(st.lists(st.tuples(keys, st.sampled_from(WRONG_VALUES)), min_size=1, max_size=4))
    def check(mutations):
        changed = json.loads(json.dumps(record))
        for path, value in mutations:
            target = changed
            for key in path[:-1]:
                target = target.get(key) if isinstance(target, dict) else None
            if isinstance(target, dict):
                target[path[-1]] = value
        with tempfile.TemporaryDirectory() as root:
            out = Path(root) / "run"
            shutil.copytree(fresh_run, out)
            (out / "records" / f"{CELL}.json").write_text(json.dumps(changed))
            before = sorted(Path(root).iterdir()), sorted(Path.cwd().iterdir())
            stdout, stderr = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                status = main(["status", str(out), "--all"])
            assert status in (0, 2), stdout.getvalue() + stderr.getvalue()
            assert "Traceback" not in stdout.getvalue() + stderr.getvalue()
            assert (sorted(Path(root).iterdir()), sorted(Path.cwd().iterdir())) == before  # nothing written beside

    check()
