"""Every bad input: one line on stderr, exit status 2, no traceback, and the line names the problem.

Each test here feeds the CLI (``bench.cli.main``, in process) one kind of bad input that used to
end in a traceback, a wrong exit status, or a silent wrong result.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from bench.cli import main
from bench.errors import BenchError
from bench.splits import PairingSplit, load_split, split_path

REPO = Path(__file__).resolve().parent.parent
RECORDS = REPO / "reports" / "flickr8k-cpu" / "records"
BINARY = bytes(range(256)) * 4  # not UTF-8, not JSON


def put(path: Path, content: str | bytes | None) -> None:
    """Write ``content`` at ``path``: text, raw bytes, or (None) a folder in the file's place."""
    if content is None:
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)


def refused(capsys, argv: list[str], *needles: str) -> str:
    """Run the CLI; assert exit status 2, exactly one stderr line, no traceback; return that line."""
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert status == 2, f"exit status {status}\nstdout: {out}\nstderr: {err}"
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert lines[0].startswith("bench: error: "), lines[0]
    assert "Traceback" not in out + err
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


def left_out(capsys, argv: list[str], *needles: str) -> str:
    """Run ``bench report``; assert exit status 0, a table, exactly one stderr line (a warning that
    names the file left out and why), no traceback; return that line."""
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert status == 0, f"exit status {status}\nstdout: {out}\nstderr: {err}"
    assert "| Model" in out and "Traceback" not in out + err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("bench: warning: "), err
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


# ---------------------------------------------------------------- 1. split files of the wrong shape


def _valid_split_data(small_synthetic) -> dict:
    from bench.splits import make_split

    return json.loads(make_split(small_synthetic, 50, seed=0).to_json())


def _bad_split_contents(small_synthetic) -> dict[str, object]:
    null_list = _valid_split_data(small_synthetic)
    null_list["paired_image_ids"] = None
    return {
        "empty-list": "[]",
        "null-list-field": json.dumps(null_list),
        "folder": None,
        "binary": BINARY,
    }


BAD_SPLITS = ["empty-list", "null-list-field", "folder", "binary"]
SPLIT_PROBLEM = {"empty-list": "holds a list", "null-list-field": "paired_image_ids null", "folder": "is a folder",
                 "binary": "not UTF-8"}


def _write_bad_split(small_synthetic, splits_dir: Path, kind: str, fraction: float = 50) -> Path:
    path = split_path(splits_dir, "synthetic", "overlap", fraction, 0)
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    content = _bad_split_contents(small_synthetic)[kind]
    put(path, content)
    return path


@pytest.mark.parametrize("kind", BAD_SPLITS)
def test_split_file_of_the_wrong_shape_is_refused_by_from_file_and_load_split(small_synthetic, tmp_path, kind):
    path = _write_bad_split(small_synthetic, tmp_path / "splits", kind)
    for call in (lambda: PairingSplit.from_file(path),
                 lambda: load_split(small_synthetic, 50, 0, "overlap", tmp_path / "splits")):
        with pytest.raises(BenchError) as error:
            call()
        assert str(path) in str(error.value) and SPLIT_PROBLEM[kind] in str(error.value)


@pytest.mark.parametrize("kind", BAD_SPLITS)
def test_splits_verify_refuses_a_split_file_of_the_wrong_shape(small_synthetic, tmp_path, capsys, kind):
    path = _write_bad_split(small_synthetic, tmp_path / "splits", kind)
    refused(capsys, ["splits", "verify", "--dir", tmp_path / "splits"], str(path), SPLIT_PROBLEM[kind])


@pytest.mark.parametrize("kind", BAD_SPLITS)
def test_run_refuses_a_split_file_of_the_wrong_shape(small_synthetic, small_splits, tmp_path, capsys, kind):
    path = _write_bad_split(small_synthetic, small_splits, kind)
    refused(capsys, ["run", "--models", "cca", "--fractions", "50", "--splits-dir", small_splits,
                     "--out", tmp_path / "run", "--threads", "1", "--quiet"], str(path), SPLIT_PROBLEM[kind])
    assert not list((tmp_path / "run").glob("records/*.json"))


@pytest.mark.parametrize("field, value, problem", [
    ("fraction", "fifty", "fraction 'fifty'"),
    ("fraction", 0, "fraction 0"),
    ("seed", 1.5, "seed 1.5"),
    ("policy", "mixed", "policy 'mixed'"),
    ("unpaired_image_ids", [1, 2], "a number 1 in unpaired_image_ids"),
    ("format_version", 99, "format_version 99"),
])
def test_split_file_with_a_field_of_the_wrong_type_is_refused(small_synthetic, tmp_path, field, value, problem):
    data = _valid_split_data(small_synthetic)
    data[field] = value
    path = tmp_path / "synthetic_overlap_p50_seed0.json"
    path.write_text(json.dumps(data))
    with pytest.raises(BenchError, match=problem):
        PairingSplit.from_file(path)


# ---------------------------------------------------------------- 2. a split file loaded for another cell


def test_a_p50_file_copied_under_the_p25_name_is_refused(small_synthetic, small_splits):
    p50 = split_path(small_splits, "synthetic", "overlap", 50, 0)
    p25 = split_path(small_splits, "synthetic", "overlap", 25, 0)
    shutil.copyfile(p50, p25)
    with pytest.raises(BenchError, match=r"says fraction 50 %, but it is loaded for fraction 25 %") as error:
        load_split(small_synthetic, 25, 0, "overlap", small_splits)
    assert str(p25) in str(error.value)


@pytest.mark.parametrize("field, value, says", [
    ("seed", 1, "says seed 1, but it is loaded for seed 0"),
    ("policy", "disjoint", "says policy disjoint, but it is loaded for policy overlap"),
    ("dataset", "flickr8k", "says dataset flickr8k, but it is loaded for dataset synthetic"),
])
def test_split_file_whose_own_parameters_are_not_the_cells_is_refused(small_synthetic, small_splits, field, value,
                                                                      says):
    path = split_path(small_splits, "synthetic", "overlap", 25, 0)
    data = json.loads(path.read_text())
    data[field] = value
    path.write_text(json.dumps(data))
    with pytest.raises(BenchError, match=says):
        load_split(small_synthetic, 25, 0, "overlap", small_splits)


def test_run_refuses_a_copied_split_file_before_training(small_synthetic, small_splits, tmp_path, capsys):
    shutil.copyfile(split_path(small_splits, "synthetic", "overlap", 50, 0),
                    split_path(small_splits, "synthetic", "overlap", 25, 0))
    refused(capsys, ["run", "--models", "cca", "--fractions", "25", "--splits-dir", small_splits,
                     "--out", tmp_path / "run", "--threads", "1", "--quiet"], "fraction 50 %", "fraction 25 %")
    assert not list((tmp_path / "run").glob("records/*.json"))


def test_export_precomp_refuses_a_copied_split_file(small_synthetic, small_splits, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BENCH_SPLITS_DIR", str(small_splits))
    shutil.copyfile(split_path(small_splits, "synthetic", "overlap", 50, 0),
                    split_path(small_splits, "synthetic", "overlap", 10, 0))
    refused(capsys, ["data", "export-precomp", "--fraction", "10", "--seed", "0", "--out", tmp_path / "out"],
            "fraction 50 %", "fraction 10 %")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- 4. records, baselines and outputs


def _run_folder(tmp_path: Path, n: int = 3) -> Path:
    """A run folder holding ``n`` real committed records."""
    records = tmp_path / "run" / "records"
    records.mkdir(parents=True)
    for source in sorted(RECORDS.glob("*.json"))[:n]:
        shutil.copyfile(source, records / source.name)
    return tmp_path / "run"


def _baseline(tmp_path: Path, run: Path, capsys) -> Path:
    path = tmp_path / "baseline.json"
    assert main(["check", str(run), "--against", str(path), "--update"]) == 0
    capsys.readouterr()
    return path


BAD_RECORDS = {
    "empty-list": ("[]", "holds a list"),
    "null": ("null", "holds null"),
    "no-cell": (json.dumps({"name": "x", "status": "ok", "metrics": {}}), "'cell'"),
    "null-metrics": (None, "'metrics' null"),
    "binary": (BINARY, "not UTF-8"),
}


def _write_bad_record(run: Path, kind: str) -> Path:
    content, _ = BAD_RECORDS[kind]
    path = run / "records" / "zz_bad.json"
    if content is None:
        record = json.loads(next((run / "records").glob("*.json")).read_text())
        record["metrics"] = None
        content = json.dumps(record)
    put(path, content)
    return path


@pytest.mark.parametrize("kind", sorted(BAD_RECORDS))
def test_report_and_check_refuse_a_record_of_the_wrong_shape(tmp_path, capsys, kind):
    run = _run_folder(tmp_path)
    baseline = _baseline(tmp_path, run, capsys)
    path = _write_bad_record(run, kind)
    problem = BAD_RECORDS[kind][1]
    left_out(capsys, ["report", run, "--no-save"], str(path), problem)  # the report shows the good records
    refused(capsys, ["check", run, "--against", baseline], str(path), problem)
    refused(capsys, ["check", run, "--against", tmp_path / "new.json", "--update"], str(path), problem)
    assert not (tmp_path / "new.json").exists()


def test_report_leaves_out_a_folder_named_like_a_record(tmp_path, capsys):
    run = _run_folder(tmp_path)
    (run / "records" / "zz.json").mkdir()
    left_out(capsys, ["report", run, "--no-save"], "zz.json", "is a folder")


BAD_BASELINES = {
    "empty-list": ("[]", "holds a list"),
    "null": ("null", "holds null"),
    "cells-list": (json.dumps({"cells": [], "tolerances": {"rsum": 3}}), "'cells' a list"),
    "null-cell": (json.dumps({"cells": {"a": None}, "tolerances": {"rsum": 3}}), "cell a without a 'metrics'"),
    "tolerance-string": (json.dumps({"cells": {}, "tolerances": {"rsum": "3"}}), "not numbers >= 0"),
    "binary": (BINARY, "not UTF-8"),
    "folder": (None, "is a folder"),
}


@pytest.mark.parametrize("kind", sorted(BAD_BASELINES))
def test_check_refuses_a_baseline_of_the_wrong_shape(tmp_path, capsys, kind):
    run = _run_folder(tmp_path)
    content, problem = BAD_BASELINES[kind]
    path = tmp_path / "baseline.json"
    put(path, content)
    refused(capsys, ["check", run, "--against", path], str(path), problem)


def test_check_update_refuses_a_folder_as_the_baseline(tmp_path, capsys):
    run = _run_folder(tmp_path)
    (tmp_path / "baselines").mkdir()
    refused(capsys, ["check", run, "--against", tmp_path / "baselines", "--update"], "--against", "is a folder")
    assert list((tmp_path / "baselines").iterdir()) == []


@pytest.mark.parametrize("option", ["--output", "--plot", "--curves"])
def test_report_refuses_a_folder_as_output_or_plot(tmp_path, capsys, option):
    run = _run_folder(tmp_path)
    (tmp_path / "out").mkdir()
    refused(capsys, ["report", run, option, tmp_path / "out"], option, str(tmp_path / "out"), "is a folder")
    assert list((tmp_path / "out").iterdir()) == []


def test_report_refuses_an_output_under_a_file_and_a_plot_it_cannot_draw(tmp_path, capsys):
    run = _run_folder(tmp_path)
    (tmp_path / "file").write_text("x")
    refused(capsys, ["report", run, "--output", tmp_path / "file" / "report.md"], "is a file, not a folder")
    refused(capsys, ["report", run, "--plot", tmp_path / "plot.docx"], "'.docx'")
    assert not (tmp_path / "plot.docx").exists()
    refused(capsys, ["report", run, "--curves", tmp_path / "curves.docx"], "--curves", "'.docx'")


def test_report_refuses_an_only_row_that_is_not_there(tmp_path, capsys):
    run = _run_folder(tmp_path)
    refused(capsys, ["report", run, "--only", "jwae"], "--only 'jwae' matches no row", "the rows are: cca")
    assert not (run / "report.md").exists()


@pytest.mark.parametrize("content, problem", [(BINARY, "reference file"), (None, "is a folder"), ("", "not a CSV")])
def test_report_refuses_a_reference_that_is_not_a_csv(tmp_path, capsys, content, problem):
    run = _run_folder(tmp_path)
    path = tmp_path / "reference.csv"
    put(path, content)
    refused(capsys, ["report", run, "--reference", path], str(path), problem)


# ---------------------------------------------------------------- 5. config values out of range


@pytest.mark.parametrize("setting, message", [
    ("cca.dim=0", "cca.dim must be >= 1 (got 0)"),
    ("cca.reg=-1", "cca.reg must be >= 0 (got -1.0)"),
    ("vse.epochs=-1", "vse.epochs must be >= 1 (got -1)"),
    ("vse.batch_size=1", "vse.batch_size must be >= 2 (got 1)"),
    ("vse.lr=0", "vse.lr must be > 0 (got 0.0)"),
    ("vse.margin=-0.2", "vse.margin must be >= 0 (got -0.2)"),
    ("jwae.word_dropout=1", "jwae.word_dropout must be in [0, 1) (got 1.0)"),
    ("jwae.image_decoder_hidden=64,0", "every item of jwae.image_decoder_hidden must be >= 1 (got 64,0)"),
    ("jwae.adversarial_weight=-0.01", "jwae.adversarial_weight must be >= 0 (got -0.01)"),
    ("mine.dropout=-0.5", "mine.dropout must be in [0, 1) (got -0.5)"),
    ("mine.w_cyclic=-1", "mine.w_cyclic must be >= 0 (got -1.0)"),
    ("mine.latent_dim=0", "mine.latent_dim must be >= 1 (got 0)"),
    ("mine.stage1_lr=nan", "mine.stage1_lr must be > 0 (got nan)"),
])
def test_config_values_out_of_range_are_refused_when_parsed(setting, message):
    from bench.models.registry import get_model_spec

    key, value = setting.split("=", 1)
    model, name = key.split(".")
    with pytest.raises(BenchError) as error:
        get_model_spec(model).config_class.for_profile("cpu", {name: value})
    assert str(error.value).startswith(message)


@pytest.mark.parametrize("setting, message", [
    ("cca.dim=0", "cca.dim must be >= 1 (got 0)"),  # used to train and record an ok cell with rsum 0
    ("vse.epochs=-1", "vse.epochs must be >= 1 (got -1)"),
])
def test_run_refuses_config_values_out_of_range_before_anything_runs(tmp_path, capsys, setting, message):
    model = setting.split(".")[0]
    refused(capsys, ["run", "--models", model, "--fractions", "100", "--set", setting, "--out", tmp_path / "run",
                     "--threads", "1", "--quiet"], message)
    assert not (tmp_path / "run").exists()  # refused before the run folder was made


def test_every_number_of_every_registered_config_has_a_range_that_keeps_its_meaningful_zeros():
    from bench.models.config import field_bound
    from bench.models.registry import known_models

    for spec in known_models():
        for profile in spec.config_class.PROFILES:
            spec.config_class.for_profile(profile)  # the shipped profiles are in range
        for f in dataclasses.fields(spec.config_class):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            if isinstance(default, (int, float, tuple)) and not isinstance(default, bool):
                assert field_bound(f) is not None, f"{spec.name}.{f.name} has no range"

    # The edges that mean something are inside: 0 switches a term, a clip or a stage off.
    from baselines.vse import VSEConfig
    from unimodel.config import UnimodelConfig

    assert VSEConfig.for_profile("cpu", {"grad_clip": "0", "margin": "0", "batch_size": "2"}).batch_size == 2
    cfg = UnimodelConfig.for_profile("cpu", {"stage1_epochs": "0", "hinge_warmup_epochs": "0", "w_cyclic": "0",
                                             "dropout": "0", "image_blocks": "0"})
    assert cfg.stage1_epochs == 0 and cfg.w_cyclic == 0


# ---------------------------------------------------------------- 6. an empty grid


@pytest.mark.parametrize("option, message", [("--fractions", "no paired fraction"), ("--seeds", "no seed")])
def test_an_empty_grid_is_refused(tmp_path, capsys, option, message):
    refused(capsys, ["run", "--models", "cca", option, "", "--out", tmp_path / "run", "--threads", "1"], message)
    refused(capsys, ["run", "--models", "cca", option, " , ", "--out", tmp_path / "run", "--threads", "1"], message)
    refused(capsys, ["splits", "make", option, "", "--dir", tmp_path / "splits"], message)
    assert not (tmp_path / "run").exists() and not (tmp_path / "splits").exists()


# ---------------------------------------------------------------- 7. failed records are not left out silently


def test_report_says_which_failed_records_it_left_out(tmp_path, capsys):
    run = _run_folder(tmp_path, n=3)
    failed_paths = sorted((run / "records").glob("*.json"))[:2]
    names = []
    for path in failed_paths:
        record = json.loads(path.read_text())
        record.update(status="failed", error={"type": "RuntimeError", "message": "boom", "traceback": ""})
        record.pop("metrics")
        path.write_text(json.dumps(record))
        names.append(record["name"])
    assert main(["report", str(run)]) == 0
    out, err = capsys.readouterr()
    assert "rsum" in out  # the table of the one ok record
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "left out 2 record(s)" in lines[0]
    for name in names:
        assert f"{name} (failed)" in lines[0]
        assert name not in out

    # With only failed records, the error says so (and which).
    last = sorted((run / "records").glob("*.json"))[2]
    record = json.loads(last.read_text())
    record.update(status="failed", error={"type": "RuntimeError", "message": "boom", "traceback": ""})
    last.write_text(json.dumps(record))
    refused(capsys, ["report", run], "no finished records", "left out 3 record(s)", record["name"])


# ---------------------------------------------------------------- 8. NaN in the features names the image


FLICKR_SPLITS = {"train": ["1000_aa.jpg", "1001_ab.jpg"], "dev": ["2000_ba.jpg"], "test": ["3000_ca.jpg"]}


def _flickr_tree(root: Path, bad: str, value: float) -> Path:
    text = root / "captions"
    text.mkdir(parents=True)
    images = sorted(n for names in FLICKR_SPLITS.values() for n in names)
    (text / "Flickr8k.token.txt").write_text(
        "".join(f"{name}#{n}\tcaption {n} of {name} .\n" for name in images for n in range(5)))
    for split, names in FLICKR_SPLITS.items():
        (text / f"Flickr_8k.{split}Images.txt").write_text("\n".join(names) + "\n")
    (root / "features").mkdir()
    (root / "features/images.txt").write_text("\n".join(images) + "\n")
    values = np.ones((len(images), 4), dtype=np.float32)
    values[images.index(bad), 2] = value
    np.save(root / "features/efficientnet_lite0.npy", values)
    return root


@pytest.mark.parametrize("bad, value", [("2000_ba.jpg", np.nan), ("1001_ab.jpg", np.inf)])
def test_non_finite_flickr8k_features_name_the_image(tmp_path, capsys, bad, value):
    root = _flickr_tree(tmp_path / "flickr8k", bad, value)
    kind = "NaN" if np.isnan(value) else "inf"
    row = sorted(n for names in FLICKR_SPLITS.values() for n in names).index(bad)
    refused(capsys, ["data", "info", "flickr8k", "--root", root], f"image {bad} (row {row} of the file) contain {kind}")


def test_non_finite_precomp_features_name_the_image(small_synthetic, tmp_path, capsys):
    from bench.data.precomp import export_precomp

    export_precomp(small_synthetic, tmp_path / "precomp")
    ims = tmp_path / "precomp" / "test_ims.npy"
    features = np.load(ims)
    features[7, 0] = np.nan
    np.save(ims, features)
    image_id = small_synthetic.test.image_ids[7]
    refused(capsys, ["data", "info", "precomp", "--root", tmp_path / "precomp"], f"test image {image_id} ", "NaN")


def test_benchmark_train_refuses_too_few_steps(capsys):
    assert main(["benchmark", "train", "--steps", "1"]) == 2
    assert "--steps 1: give at least 2" in capsys.readouterr().err
