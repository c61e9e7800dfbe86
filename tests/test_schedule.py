"""Schedules in updates: a config's ``updates`` becomes epochs on the data at hand, so the cpu
profiles train every paired fraction for the same number of optimizer updates."""

from __future__ import annotations

import dataclasses

import pytest

from bench.models import FitContext
from bench.models.registry import get_model_spec
from bench.splits import subsets
from bench.splits import make_split


@pytest.mark.parametrize("model", ["vse", "jwae", "mine"])
def test_cpu_profiles_count_updates_paper_and_quick_count_epochs(model):
    config_class = get_model_spec(model).config_class
    assert config_class.for_profile("cpu").updates > 0
    assert config_class.for_profile("paper").updates == 0  # the reference's epochs, for fidelity
    assert config_class.for_profile("quick").updates == 0  # the demo data is small and counted in epochs


def test_the_cpu_profiles_keep_their_100_percent_schedule_on_flickr8k_sizes():
    """2,820 and 2,021 updates are exactly the epochs the profiles counted before on Flickr8k's
    6,000 training images and 30,000 captions, so the 100 % cells did not change."""
    import numpy as np

    from bench.models import PairedData, UnpairedData

    images = [f"i{k}" for k in range(6000)]
    captions = [f"c{k}" for k in range(30000)]
    paired = PairedData(images, np.zeros((6000, 4), np.float32), captions, ["a caption"] * 30000,
                        np.arange(30000) // 5)
    empty = UnpairedData([], np.zeros((0, 4), np.float32), [], [])
    for model, epochs, decay in (("vse", 12, 8), ("jwae", 12, 8), ("mine", 8, 5)):
        spec = get_model_spec(model)
        settled = spec.factory(spec.config_class.for_profile("cpu")).settle_schedule(paired, empty)
        assert (settled.epochs, settled.lr_decay_epoch, settled.updates) == (epochs, decay, 0), model


@pytest.mark.parametrize("model", ["vse", "jwae", "mine"])
def test_every_fraction_trains_for_about_the_same_updates(model, small_synthetic, fake_minilm, tmp_path):
    spec = get_model_spec(model)
    config = dataclasses.replace(spec.config_class.for_profile("quick"), text_encoder="minilm", updates=40,
                                 batch_size=16)
    spent = {}
    for fraction in (100, 25):
        paired, unpaired = subsets(small_synthetic, make_split(small_synthetic, fraction, 0))
        fitted = spec.factory(config)
        context = FitContext(validation=small_synthetic.dev, workdir=tmp_path / f"{model}{fraction}", seed=0)
        result = fitted.fit(paired, unpaired, context)
        fixed, per_epoch = fitted.schedule(paired, unpaired)
        assert result.updates <= 40 or result.epochs_run == 1  # at most the budget (at least one epoch)
        assert result.updates > 40 - per_epoch  # the most whole epochs that fit
        assert result.epochs_run == fitted.config.epochs and fitted.config.updates == 0
        spent[fraction] = (result.updates, result.epochs_run, per_epoch)
    if model != "mine":  # mine's epoch passes over its pools, which every fraction shares
        assert spent[25][1] > spent[100][1]  # fewer pairs, more epochs for the same updates


def test_settling_keeps_the_lr_drop_share_is_idempotent_and_shortens_pretraining(small_synthetic, fake_minilm):
    paired, unpaired = subsets(small_synthetic, make_split(small_synthetic, 50, 0))
    spec = get_model_spec("mine")
    base = dataclasses.replace(spec.config_class.for_profile("quick"), text_encoder="minilm", batch_size=16,
                               stage1_epochs=4, epochs=8, lr_decay_epoch=6)
    fixed, per_epoch = spec.factory(base).schedule(paired, unpaired)
    assert fixed > 0 and per_epoch > 0

    model = spec.factory(dataclasses.replace(base, updates=fixed + 10 * per_epoch))
    settled = model.settle_schedule(paired, unpaired)
    assert (settled.epochs, settled.lr_decay_epoch, settled.stage1_epochs) == (10, round(10 * 6 / 8), 4)
    assert model.settle_schedule(paired, unpaired) == settled  # settled once: updates is now 0

    # a budget smaller than the pre-training stage plus one epoch cuts the stage to what fits
    model = spec.factory(dataclasses.replace(base, updates=per_epoch + fixed // 4))
    settled = model.settle_schedule(paired, unpaired)
    assert (settled.stage1_epochs, settled.epochs) == (1, 1)
    # ... unless the room it may fill is larger (bench tune passes its update cap)
    model = spec.factory(dataclasses.replace(base, updates=per_epoch + fixed // 4))
    assert model.settle_schedule(paired, unpaired, room=10**6).stage1_epochs == 4

    unchanged = spec.factory(base)
    assert unchanged.settle_schedule(paired, unpaired) is unchanged.config  # updates 0: epochs count


def test_epochs_set_by_hand_count_even_on_a_profile_that_counts_updates():
    config_class = get_model_spec("vse").config_class
    assert config_class.for_profile("cpu", {"epochs": "2"}).updates == 0  # the user asked for 2 epochs
    assert config_class.for_profile("cpu", {"epochs": "2", "updates": "500"}).updates == 500
    assert config_class.for_profile("cpu", {"lr": "1e-3"}).updates == 2820
