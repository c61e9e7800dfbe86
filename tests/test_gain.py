"""The unpaired gain (issue 37): paired-only twins in the grid, and model minus twin in the report."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bench.cli import main
from bench.errors import BenchError
from bench.report.gain import gain_table
from bench.run.cell import TWIN_LABEL, base_label, is_twin_label, twin_label
from bench.models.registry import get_model_spec
from bench.run import build_cells
from bench.metrics.stats import RunRanks

TINY_JWAE = {"embed_size": "32", "epochs": "2", "batch_size": "32", "unpaired_batch_size": "32",
             "sentence_decoder_hidden": "32", "lr": "2e-3"}


def test_twin_labels_round_trip():
    assert twin_label(None) == TWIN_LABEL and twin_label("x") == f"x+{TWIN_LABEL}"
    assert is_twin_label(twin_label("x")) and is_twin_label(TWIN_LABEL) and not is_twin_label("x")
    assert base_label(twin_label("abl")) == "abl" and base_label(TWIN_LABEL) == ""


def test_with_controls_adds_a_twin_only_for_models_that_read_the_pools():
    specs = [get_model_spec(name) for name in ("vse", "jwae", "mine", "cca")]
    plain = build_cells("synthetic", specs, [25, 10], [0], "overlap", "quick", ["minilm"], {})
    cells = build_cells("synthetic", specs, [25, 10], [0], "overlap", "quick", ["minilm"], {}, with_controls=True)
    twins = [c for c in cells if c.twin_of]
    assert len(cells) == len(plain) + len(twins) and {c.model for c in twins} == {"jwae", "mine"}
    by_name = {c.name: c for c in cells}
    for twin in twins:
        model = by_name[twin.twin_of]
        assert twin.label == TWIN_LABEL and (twin.fraction, twin.seed) == (model.fraction, model.seed)
        assert twin.config_hash != model.config_hash and twin.describe()["twin_of"] == model.name
        assert "twin_of" not in model.describe()  # model records are written as before
    mine_twin = next(c for c in twins if c.model == "mine").config
    assert mine_twin.w_cyclic == mine_twin.w_auto == mine_twin.stage1_epochs == 0
    assert mine_twin.w_paired_retrieval == 1.0  # what reads the pairs stays
    jwae_twin = next(c for c in twins if c.model == "jwae").config
    assert jwae_twin.adversarial_weight == jwae_twin.sentence_rec_weight == 0 and jwae_twin.ranking_weight == 1.0


def test_a_model_that_reads_none_of_the_asked_text_encoders_is_one_error():
    with pytest.raises(BenchError, match="asif reads the text encoders minilm"):
        build_cells("synthetic", [get_model_spec("asif")], [25], [0], "overlap", "quick", ["gru"], {})


def _ranks(hits: np.ndarray) -> RunRanks:
    """Ranks of a run over 20 test images with one caption each: rank 0 where ``hits``, else 50."""
    ranks = np.where(hits, 0, 50)
    return RunRanks(ranks, [np.array([r]) for r in ranks], split="s")


def _frame(rows: list[dict]) -> pd.DataFrame:
    base = {"dataset": "d", "text_encoder": "minilm", "profile": "cpu", "policy": "overlap", "extras": "",
            "unpaired_fraction": 100.0, "seed": 0, "uses_unpaired": True}
    return pd.DataFrame([{**base, **row} for row in rows])


def test_gain_is_model_minus_twin_with_an_interval_and_a_dash_for_pool_blind_models():
    from bench.report import summary_table

    rng = np.random.default_rng(0)
    strong, weak = rng.random(20) < 0.9, rng.random(20) < 0.2
    rows = []
    for model, label, hits, uses in (("sue", "", strong, True), ("sue", TWIN_LABEL, weak, True),
                                     ("vse", "", weak, False), ("jwae", "", weak, True)):
        ranks = _ranks(hits)
        rsum = ranks.rsum()
        rows.append({"model": model, "label": label, "fraction": 10.0, "uses_unpaired": uses, "_ranks": ranks,
                     **{m: rsum / 6 for m in ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10")},
                     "rsum": rsum})
    frame = _frame(rows)
    gains = gain_table(summary_table(frame), frame).set_index("Row")
    sue = gains.loc["sue (minilm)"]
    expected = _ranks(strong).rsum() - _ranks(weak).rsum()
    assert float(sue["unpaired gain"]) == pytest.approx(expected, abs=0.05) and sue["CI excludes 0"] == "yes"
    assert gains.loc["vse (minilm)", "unpaired gain"] == "—"
    assert gains.loc["jwae (minilm)", "twin rsum"].startswith("not run")
    assert f"sue (minilm) [{TWIN_LABEL}]" not in gains.index  # twins are not rows of their own here


def test_run_with_controls_then_report_unpaired_gain(small_synthetic, small_splits, tmp_path, fake_minilm,
                                                      monkeypatch, capsys):
    import bench.commands.common as common

    monkeypatch.setattr(common, "load_dataset", lambda name, root=None: small_synthetic)
    sets = [item for key, value in TINY_JWAE.items() for item in ("--set", f"jwae.{key}={value}")]
    out = tmp_path / "run"
    assert main(["run", "--models", "jwae", "--text-encoders", "minilm", "--fractions", "25", "--with-controls",
                 "--splits-dir", str(small_splits), "--out", str(out), "--quiet", "--jobs", "1", *sets]) == 0
    names = sorted(p.name for p in (out / "records").glob("*.json"))
    assert len(names) == 2 and any(f"-{TWIN_LABEL}_" in n for n in names)
    twin = json.loads(next((out / "records").glob(f"*{TWIN_LABEL}*.json")).read_text())
    model = json.loads(next(p for p in (out / "records").glob("*.json") if TWIN_LABEL not in p.name).read_text())
    assert twin["cell"]["twin_of"] == model["name"] and twin["training"]["updates"] == model["training"]["updates"]
    capsys.readouterr()
    assert main(["report", str(out), "--unpaired-gain", "--no-save", "--plot", str(tmp_path / "p.png")]) == 0
    text = capsys.readouterr().out
    assert "unpaired gain" in text and "jwae (minilm)" in text
    assert (tmp_path / "p-gain.png").stat().st_size > 0


def test_a_label_that_names_a_twin_is_refused(capsys):
    assert main(["run", "--models", "cca", "--fractions", "25", "--label", f"x+{TWIN_LABEL}"]) == 2
    assert "paired-only twins" in capsys.readouterr().err
