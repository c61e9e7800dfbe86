"""Results integrity at the command line: no finished record replaced silently, no duplicate cell, no
seed, label or run folder that passes the checks and fails later, no NaN in an extra source, and the
line numbers of text files counted as the file has them.

Each test calls the CLI in process (``bench.cli.main``) on the embedded synthetic data with the
``cca`` model (about a second per run), or the function under test directly.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest

from bench.cli import main
from bench.errors import BenchError

RUN = ["run", "--models", "cca", "--fractions", "100", "--threads", "1", "--quiet"]  # a grid of one cell


def refused(capsys, argv: list, *needles: str) -> str:
    """Run the CLI; assert exit status 2, exactly one stderr line, no traceback; return that line."""
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert status == 2, f"exit status {status}\nstdout: {out}\nstderr: {err}"
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert lines[0].startswith("bench: error: ") and "Traceback" not in out + err, lines[0]
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


def only_record(out: Path) -> Path:
    """The one record of a run folder of RUN's grid (its name is the cell's)."""
    (record,) = (out / "records").glob("*.json")
    return record


def ran(capsys, argv: list) -> str:
    """Run the CLI; assert exit status 0; return its stdout."""
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert status == 0, f"exit status {status}\nstdout: {out}\nstderr: {err}"
    return out


# ---------------------------------------------------------------- 1. a record of another config


def test_a_finished_record_of_another_config_is_kept_and_force_moves_it_aside(tmp_path, capsys):
    out = tmp_path / "run"
    ran(capsys, [*RUN, "--out", out])
    record = only_record(out)
    cell = record.stem
    first = record.read_bytes()
    first_hash, first_dim = json.loads(first)["config_hash"], json.loads(first)["config"]["dim"]

    # Another config of the same cell name: refused before any training, the record untouched.
    line = refused(capsys, [*RUN, "--out", out, "--set", "cca.dim=16"], cell, f"cca.dim {first_dim} -> 16",
                   "--label NAME", "--force")
    assert "superseded" in line
    assert record.read_bytes() == first
    assert not (out / "superseded").exists()
    assert len(list((out / "work").iterdir())) == 1  # only the first run's cell folder: nothing else began

    # --force trains it, and the earlier record is kept byte for byte under superseded/.
    said = ran(capsys, [*RUN, "--out", out, "--set", "cca.dim=16", "--force"])
    kept = out / "superseded" / f"{cell}.{first_hash[:12]}.json"
    assert kept.read_bytes() == first
    assert str(kept) in said
    assert json.loads(record.read_text())["config"]["dim"] == 16

    # Forcing back to the first config keeps the dim=16 record too, and never replaces a kept one.
    second = record.read_bytes()
    ran(capsys, [*RUN, "--out", out, "--force"])
    assert kept.read_bytes() == first
    assert (out / "superseded" / f"{cell}.{json.loads(second)['config_hash'][:12]}.json").read_bytes() == second
    ran(capsys, [*RUN, "--out", out, "--set", "cca.dim=16", "--force"])
    assert kept.read_bytes() == first
    assert (out / "superseded" / f"{cell}.{first_hash[:12]}.2.json").exists()


def test_a_rerun_of_the_same_config_still_skips_and_a_failed_record_is_still_replaced(tmp_path, capsys):
    out = tmp_path / "run"
    ran(capsys, [*RUN, "--out", out])
    record = only_record(out)
    first = record.read_bytes()
    assert "0 cells trained, 1 already done" in ran(capsys, [*RUN, "--out", out])
    assert record.read_bytes() == first

    failed = json.loads(first)
    failed.update(status="failed", error={"type": "RuntimeError", "message": "boom", "traceback": ""})
    record.write_text(json.dumps(failed))
    assert "1 cells trained" in ran(capsys, [*RUN, "--out", out, "--set", "cca.dim=16"])
    assert json.loads(record.read_text())["status"] == "ok"
    assert not (out / "superseded").exists()  # a failed record holds no result to keep


def test_a_raised_model_revision_is_refused_with_a_hint_to_force(small_synthetic, small_splits, tmp_path):
    import dataclasses

    import torch

    from bench.models.registry import get_model_spec
    from bench.run import build_cells, run_grid

    def grid(spec, force=False):
        cells = build_cells("synthetic", [spec], [25], [0], "overlap", "cpu", None, {})
        return run_grid(cells, {spec.name: spec}, small_synthetic, tmp_path, torch.device("cpu"), force=force,
                        quiet=True, splits_dir=small_splits)

    cca = get_model_spec("cca")
    grid(cca)
    with pytest.raises(BenchError, match=r"model revision 0 -> 1, a fix .*: pass --force to retrain"):
        grid(dataclasses.replace(cca, revision=1))
    assert len(grid(dataclasses.replace(cca, revision=1), force=True).done) == 1
    assert len(list((tmp_path / "superseded").glob("*.json"))) == 1


# ---------------------------------------------------------------- 2. a value given twice


@pytest.mark.parametrize("option, value, message", [
    ("--fractions", "50,50", "fraction 50 is given twice"),
    ("--fractions", "100.0,100", "fraction 100 is given twice"),
    ("--seeds", "0,1,0", "seed 0 is given twice"),
    ("--models", "cca,cca", "model cca is given twice"),
    ("--text-encoders", "gru,gru", "text encoder gru is given twice"),
    ("--unpaired-fractions", "50,50.0", "unpaired fraction 50 is given twice"),
])
def test_a_value_given_twice_is_refused(tmp_path, capsys, option, value, message):
    refused(capsys, [*RUN, "--out", tmp_path / "run", option, value], message)
    assert not list(tmp_path.glob("run/records/*.json"))


@pytest.mark.parametrize("option, value, message", [
    ("--fractions", "50,50", "fraction 50 is given twice"),
    ("--seeds", "0,0", "seed 0 is given twice"),
])
def test_splits_make_refuses_a_value_given_twice(tmp_path, capsys, option, value, message):
    refused(capsys, ["splits", "make", "--fractions", "50", option, value, "--dir", tmp_path / "splits"], message)
    assert not (tmp_path / "splits").exists()


def test_the_grid_refuses_a_cell_twice(small_synthetic, small_splits, tmp_path):
    import torch

    from bench.models.registry import get_model_spec
    from bench.run import build_cells, run_grid

    cca = get_model_spec("cca")
    cells = build_cells("synthetic", [cca], [50, 50.0], [0], "overlap", "cpu", None, {})
    with pytest.raises(BenchError, match=r"cell synthetic_cca\S*_p50_seed0 is in the grid twice"):
        run_grid(cells, {"cca": cca}, small_synthetic, tmp_path, torch.device("cpu"), quiet=True,
                 splits_dir=small_splits)


# ---------------------------------------------------------------- 3. seeds outside 32 bits


@pytest.mark.parametrize("seed", [str(2**70), str(2**32), "-1"])
def test_seeds_outside_32_bits_are_refused_when_parsed(tmp_path, capsys, seed):
    refused(capsys, [*RUN, "--out", tmp_path / "run", "--seeds", seed], f"seed {seed} is outside [0, 4294967295]")
    refused(capsys, ["splits", "make", "--fractions", "100", "--seeds", seed, "--dir", tmp_path / "splits"],
            f"seed {seed} is outside [0, 4294967295]")
    assert not (tmp_path / "run").exists() and not (tmp_path / "splits").exists()


def test_the_largest_seed_is_accepted(tmp_path, capsys):
    ran(capsys, ["splits", "make", "--fractions", "100", "--seeds", str(2**32 - 1), "--dir", tmp_path / "splits"])
    assert (tmp_path / "splits" / "synthetic" / f"synthetic_overlap_p100_seed{2**32 - 1}.json").is_file()


# ---------------------------------------------------------------- 4. labels too long for a file name


@pytest.mark.parametrize("length", [101, 201, 300])
def test_a_label_too_long_for_a_file_name_is_refused(tmp_path, capsys, length):
    refused(capsys, [*RUN, "--out", tmp_path / "run", "--label", "a" * length], f"--label of {length} characters",
            "at most 100")
    assert not list(tmp_path.glob("run/records/*"))


def test_the_longest_label_writes_its_record(tmp_path, capsys):
    out = tmp_path / "run"
    ran(capsys, [*RUN, "--out", out, "--label", "a" * 100])
    assert json.loads(only_record(out).read_text())["cell"]["label"] == "a" * 100


# ---------------------------------------------------------------- 5. an empty --out


@pytest.mark.parametrize("value", ["", " "])
def test_an_empty_out_is_refused(tmp_path, capsys, monkeypatch, value):
    monkeypatch.chdir(tmp_path)
    refused(capsys, [*RUN, "--out", value], "--out is empty")
    assert not list(tmp_path.iterdir())  # no records/, work/ or locks/ in the current folder


# ---------------------------------------------------------------- 6. a read-only locks/ or work/


@pytest.mark.parametrize("folder", ["locks", "work"])
def test_a_read_only_locks_or_work_folder_is_one_clear_line(tmp_path, capsys, monkeypatch, folder):
    """A folder that can't be written (simulated: the tests run as root, whom permissions don't stop):
    creating anything in it fails with EACCES, as it would for another user."""
    read_only = tmp_path / "run" / folder
    read_only.mkdir(parents=True)

    def guard(real):
        def call(path, *args, **kwargs):
            if Path(os.fsdecode(path)).parent == read_only:
                raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(path))
            return real(path, *args, **kwargs)
        return call

    monkeypatch.setattr(os, "open", guard(os.open))
    monkeypatch.setattr(os, "mkdir", guard(os.mkdir))
    refused(capsys, [*RUN, "--out", tmp_path / "run"], f"run folder {tmp_path / 'run'} can't be written",
            "Permission denied", f"made in {read_only};")
    assert not list((tmp_path / "run").glob("records/*.json"))


@pytest.mark.skipif(os.geteuid() == 0, reason="permissions don't stop root")
@pytest.mark.parametrize("folder", ["locks", "work"])
def test_a_read_only_locks_or_work_folder_is_one_clear_line_for_real(tmp_path, capsys, folder):
    (tmp_path / "run" / folder).mkdir(parents=True)
    (tmp_path / "run" / folder).chmod(0o555)
    try:
        refused(capsys, [*RUN, "--out", tmp_path / "run"], "can't be written", f"made in {tmp_path / 'run' / folder};")
    finally:
        (tmp_path / "run" / folder).chmod(0o755)


# ---------------------------------------------------------------- 7. NaN or inf in an extra npy source


@pytest.mark.parametrize("value, kind", [(np.nan, "NaN"), (np.inf, "inf"), (1e300, "inf")])
def test_an_extra_npy_source_with_nan_or_inf_is_refused(tmp_path, capsys, value, kind):
    from bench.data import load_dataset

    features = np.random.default_rng(0).standard_normal((20, load_dataset("synthetic").feature_dim))
    features[7, 3] = value  # 1e300 is finite as float64 but inf as the float32 the models read
    np.save(tmp_path / "extra.npy", features)
    refused(capsys, ["splits", "make", "--fractions", "10", "--seeds", "0", "--dir", tmp_path / "splits",
                     "--extra-unpaired-images", f"npy:{tmp_path / 'extra.npy'}"],
            f"extra unpaired images file {tmp_path / 'extra.npy'}", f"npy:7 contain {kind}")
    assert not (tmp_path / "splits").exists()


# ---------------------------------------------------------------- 8. only "\n" ends a line


def test_text_lines_end_only_at_a_newline(tmp_path):
    from bench.data.flickr8k import read_text_lines

    path = tmp_path / "lines.txt"
    path.write_bytes("one\rstill one\ntwo\r\n\nfour\u2028same line\n".encode())
    assert read_text_lines(path) == ["one\rstill one", "two", "", "four\u2028same line"]


def test_a_lone_carriage_return_in_a_caption_keeps_the_line_numbers(tmp_path):
    from bench.data.flickr8k import _read_token_file

    path = tmp_path / "Flickr8k.token.txt"
    path.write_bytes(b"1000_aa.jpg#0\ta dog\rruns .\n"
                     b"1000_aa.jpg#1\ta dog .\n"
                     b"not a caption line\n")
    with pytest.raises(BenchError, match=r"line 3 is not 'IMAGE\.jpg#N<TAB>caption': 'not a caption line'"):
        _read_token_file(path)
    path.write_bytes(path.read_bytes().replace(b"not a caption line\n", b""))
    assert _read_token_file(path) == {"1000_aa.jpg": [(0, "a dog\rruns .", 1), (1, "a dog .", 2)]}
