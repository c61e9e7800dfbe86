"""The Python API (bench.evaluate): the grid of `bench run`, the table of `bench report`."""

from __future__ import annotations

import dataclasses

import pytest

import bench
from bench.cli import main
from bench.errors import BenchError
from bench.models.registry import MODELS


def test_evaluate_a_registered_model_gives_the_records_and_the_report_table(tmp_path, capsys):
    out = tmp_path / "run"
    results = bench.evaluate("cca", fractions=[100, 25], seeds=[0], out=out)

    assert [r["name"] for r in results.records] == ["synthetic_cca_quick_overlap_p100_seed0",
                                                    "synthetic_cca_quick_overlap_p25_seed0"]
    assert all(r["status"] == "ok" for r in results.records) and not results.failed
    frame = results.to_frame()
    assert sorted(frame["fraction"]) == [25.0, 100.0] and set(frame["model"]) == {"cca"}
    # The records are the files the run wrote, and the table is the one `bench report` prints for them.
    import json

    on_disk = {p.stem: json.loads(p.read_text()) for p in (out / "records").glob("*.json")}
    assert {r["name"]: r for r in results.records} == on_disk
    capsys.readouterr()
    assert main(["report", str(out), "--format", "markdown", "--no-save"]) == 0
    assert results.to_markdown() == capsys.readouterr().out


@pytest.fixture()
def linear_model():
    from example_model import LinearConfig, LinearModel  # tests/ is on sys.path (rootdir conftest)

    config = LinearConfig(embed_size=32, word_dim=16, epochs=3, lr=2e-3, batch_size=32, min_count=1)
    return LinearModel(config)


def test_evaluate_an_instance_of_the_contributing_example_model(linear_model, small_synthetic, small_splits):
    """A model that is not registered runs with its own config in every cell, in a temporary run folder,
    and is registered for the call only."""
    results = bench.evaluate(linear_model, dataset=small_synthetic, fractions=[100, 25], seeds=[0],
                             splits_dir=small_splits)

    assert results.out is None and not results.failed
    assert [r["cell"]["fraction"] for r in results.records] == [100.0, 25.0]
    for record in results.records:
        assert record["status"] == "ok" and record["cell"]["model"] == "linear"
        assert record["cell"]["text_encoder"] == "gru"  # the instance's, not the profile's (cpu: minilm)
        assert record["config"] == {**record["config"], "embed_size": 32, "epochs": 3, "min_count": 1}
    rows = [line.split("|")[1:3] for line in results.to_markdown().splitlines() if line.startswith("| linear")]
    assert [[cell.strip() for cell in row] for row in rows] == [["linear", "gru"]] * 2
    assert "linear" not in MODELS


def test_an_instance_config_trains_every_cell_of_its_model(linear_model, small_synthetic):
    """What run_benchmark gives build_cells for a model passed as an instance: its config for every cell,
    which also names the cell's text encoder; other models keep their profile's."""
    from bench.api import _given_configs
    from bench.models.registry import ModelSpec, get_model_spec
    from bench.run import build_cells, profile_configs

    spec, vse = ModelSpec.of(type(linear_model)), get_model_spec("vse")
    source = _given_configs({"linear": linear_model.config}, profile_configs("cpu"))
    cells = build_cells(small_synthetic.name, [spec, vse], [100, 10], [0], "overlap", "cpu", None, {}, configs=source)
    assert [c.config is linear_model.config for c in cells] == [True, True, False, False]
    assert [c.text_encoder for c in cells] == ["gru", "gru", "minilm", "minilm"]  # the cpu profiles choose minilm
    assert cells[2].config == vse.config_class.for_profile("cpu")


def test_a_bad_model_is_one_clear_error(linear_model):
    with pytest.raises(BenchError, match="unknown model 'nope'"):
        bench.evaluate("nope")
    with pytest.raises(BenchError, match="neither a model name nor"):
        bench.evaluate(object())
    with pytest.raises(BenchError, match="no model given"):
        bench.evaluate([])

    class Clash(type(linear_model)):
        name = "cca"

    with pytest.raises(BenchError, match="'cca' .* is already registered"):
        bench.evaluate(Clash)
    with pytest.raises(BenchError, match="fixes its text encoder"):
        bench.evaluate(linear_model, text_encoders=["minilm"], fractions=[100])
    wrong = dataclasses.replace(linear_model.config)
    linear_model.config = object()
    with pytest.raises(BenchError, match="config is a object"):
        bench.evaluate(linear_model)
    linear_model.config = wrong
    with pytest.raises(BenchError, match="fraction 100 is given twice"):
        bench.evaluate("cca", fractions=[100, 100])
    with pytest.raises(BenchError, match="--jobs 0"):
        bench.evaluate("cca", jobs=0)
