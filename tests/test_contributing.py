"""CONTRIBUTING.md's "adding a model in one file": the example shown there is the file tested here,
and registered like any plugin it trains, evaluates and reports through the ordinary grid."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bench.models.registry import ModelSpec, get_model_spec

REPO = Path(__file__).resolve().parent.parent


def test_contributing_shows_the_example_model_verbatim():
    text = (REPO / "CONTRIBUTING.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert (REPO / "tests" / "example_model.py").read_text() in blocks


@pytest.fixture()
def linear_registered(monkeypatch):
    import bench.models.registry as registry
    from example_model import LinearModel  # tests/ is on sys.path (rootdir conftest)

    get_model_spec("vse")  # load the built-in registry first
    monkeypatch.setitem(registry.MODELS, "linear", ModelSpec.of(LinearModel))
    return LinearModel


@pytest.mark.parametrize("text_encoder", ["gru", "minilm"])
def test_the_example_model_runs_through_the_grid(linear_registered, small_synthetic, small_splits, tmp_path,
                                                 fake_minilm, text_encoder):
    import torch

    from bench.run import build_cells, run_grid

    spec = get_model_spec("linear")
    assert spec.config_class.__name__ == "LinearConfig" and not spec.uses_unpaired
    overrides = {"linear": {"embed_size": "32", "word_dim": "16", "epochs": "5", "lr": "2e-3", "batch_size": "32",
                            "text_encoder": text_encoder, "min_count": "1"}}
    cells = build_cells(small_synthetic.name, [spec], [100, 25], [0], "overlap", "paper", None, overrides)
    summary = run_grid(cells, {"linear": spec}, small_synthetic, tmp_path, torch.device("cpu"), quiet=True,
                       splits_dir=small_splits)
    assert len(summary.done) == 2 and not summary.failed, summary.failed
    for path in (tmp_path / "records").glob("*.json"):
        record = json.loads(path.read_text())
        assert record["status"] == "ok" and record["cell"]["model"] == "linear"
        assert record["model"]["text_encoder"] == text_encoder
        assert record["metrics"]["rsum"] > 55  # twice chance (about 26 with 60 test images)


def test_a_model_without_a_quick_profile_runs_its_cpu_profile_on_the_default_data(capsys, monkeypatch):
    """`bench run --models linear` on the synthetic data asks for `quick`, the example defines only
    `paper` and `cpu`: it gets `cpu`, with a notice, instead of an error."""
    import bench.models.config
    from example_model import LinearConfig

    monkeypatch.setattr(bench.models.config, "_NOTICES_GIVEN", set())  # the notice is printed once per process
    config = LinearConfig.for_profile("quick")
    assert config == LinearConfig.for_profile("cpu")
    assert "no 'quick' profile; using its 'cpu' profile" in capsys.readouterr().err
