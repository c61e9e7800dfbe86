"""JWAE: its losses, decoders, critic schedule, semi-supervised batching, fit, resume and variants."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from baselines.jwae import CyclingSampler, JWAEConfig, JWAEModel
from bench.data.synthetic import generate
from bench.errors import BenchError
from bench.metrics import evaluate
from bench.models import FitContext, PairedData, UnpairedData
from bench.models.registry import get_model_spec
from bench.nn.decoders import (
    GRUTextDecoder,
    LatentCritic,
    critic_loss,
    fooling_loss,
    l1_reconstruction,
    sample_prior,
    sequence_nll,
    squared_reconstruction,
    word_dropout,
)
from bench.data.vocabulary import Vocabulary

TINY = JWAEConfig(
    embed_size=64, word_dim=32, image_decoder_hidden=(64,), decoder_word_dim=32, decoder_hidden=64,
    sentence_decoder_hidden=64, disc_hidden=32, epochs=3, lr_decay_epoch=10, batch_size=32,
    unpaired_batch_size=32, lr=2e-3,
)


# --------------------------------------------------------------------------- data


@pytest.fixture(scope="module")
def synthetic():
    return generate(seed=0, n_train=300, n_dev=60, n_test=60, preset="easy")


def make_subsets(dataset, paired_fraction: float = 0.3, unpaired: str = "all"):
    train = dataset.train
    paired_split = train.subset(np.arange(int(paired_fraction * train.n_images)))
    paired = PairedData(paired_split.image_ids, paired_split.features, paired_split.caption_ids,
                        paired_split.captions, paired_split.caption_to_image)
    if unpaired == "all":
        pool = UnpairedData(train.image_ids, train.features, train.caption_ids, train.captions)
    else:  # empty pools (the disjoint policy at 100 %)
        pool = UnpairedData([], np.zeros((0, train.feature_dim), dtype=np.float32), [], [])
    return paired, pool


def fit(config, dataset, workdir: Path, **subset_options):
    paired, unpaired = make_subsets(dataset, **subset_options)
    model = JWAEModel(config)
    result = model.fit(paired, unpaired, FitContext(validation=dataset.dev, workdir=workdir, seed=0))
    return model, result


@pytest.fixture(scope="module")
def trained(synthetic, tmp_path_factory):
    """One uninterrupted 3-epoch run, shared by the quality and resume tests."""
    return fit(TINY, synthetic, tmp_path_factory.mktemp("jwae-full"))


# --------------------------------------------------------------------------- losses


def test_reconstruction_losses_are_per_sample_sums_averaged_over_the_batch():
    prediction = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    target = torch.tensor([[1.0, 0.0, 0.0], [1.0, -1.0, 2.0]])
    assert l1_reconstruction(prediction, target).item() == pytest.approx(((0 + 2 + 3) + (1 + 1 + 2)) / 2)
    assert squared_reconstruction(prediction, target).item() == pytest.approx(((0 + 4 + 9) + (1 + 1 + 4)) / 2)
    empty = torch.zeros(0, 3, requires_grad=True)
    assert l1_reconstruction(empty, empty.detach()).item() == 0.0


def _decoder(rate: float = 0.0, vocab: int = 11) -> GRUTextDecoder:
    torch.manual_seed(0)
    return GRUTextDecoder(vocab, code_dim=6, word_dim=5, hidden_size=7, num_layers=2, word_dropout=rate,
                          pad_id=0, start_id=1, unk_id=3)


# <start>=1, <end>=2, <pad>=0
TOKENS = torch.tensor([[1, 5, 6, 7, 2], [1, 8, 2, 0, 0]])


def test_teacher_forcing_shapes_and_shift():
    decoder = _decoder().eval()
    inputs, targets = decoder.split(TOKENS)
    assert inputs.tolist() == [[1, 5, 6, 7], [1, 8, 2, 0]]
    assert targets.tolist() == [[5, 6, 7, 2], [8, 2, 0, 0]]
    code = torch.randn(2, 6)
    log_probs = decoder(code, TOKENS)
    assert log_probs.shape == (2, 4, 11)
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(2, 4), atol=1e-5)
    # The GRU is causal: what follows a sentence's end can't change its earlier predictions.
    longer = torch.cat([TOKENS, torch.zeros(2, 3, dtype=torch.long)], dim=1)
    assert torch.allclose(decoder(code, longer)[:, :4], log_probs, atol=1e-6)


def test_text_nll_sums_real_target_tokens():
    decoder = _decoder().eval()
    code = torch.randn(2, 6)
    log_probs = decoder(code, TOKENS)
    expected = [-(log_probs[0, 0, 5] + log_probs[0, 1, 6] + log_probs[0, 2, 7] + log_probs[0, 3, 2]),
                -(log_probs[1, 0, 8] + log_probs[1, 1, 2])]
    nll = decoder.nll(code, TOKENS)
    assert nll.shape == (2,)
    assert torch.allclose(nll, torch.stack(expected), atol=1e-5)  # packed run == padded run
    assert torch.allclose(decoder.nll(code, TOKENS, torch.tensor([5, 3])), nll)
    assert torch.allclose(sequence_nll(log_probs, decoder.split(TOKENS)[1]), nll)
    # A uniform model pays log(V) per real target token: 4 and 2 tokens here.
    uniform = torch.full((2, 4, 11), -math.log(11))
    assert sequence_nll(uniform, decoder.split(TOKENS)[1]).tolist() == pytest.approx([4 * math.log(11),
                                                                                       2 * math.log(11)])


def test_word_dropout_off_and_on():
    code = torch.randn(2, 6)
    # Off (rate 0, or eval mode): training-mode outputs are deterministic and equal eval's.
    off = _decoder(rate=0.0)
    assert torch.equal(off.train()(code, TOKENS), off.eval()(code, TOKENS))
    assert word_dropout(TOKENS, 0.0, unk_id=3) is TOKENS
    # Rate 1: every input word becomes <unk>, <start> and padding stay.
    on = _decoder(rate=1.0)
    unk_inputs = torch.tensor([[1, 3, 3, 3, 2], [1, 3, 3, 0, 0]])  # the last column is never an input
    assert torch.allclose(on.train()(code, TOKENS), on.eval()(code, unk_inputs), atol=1e-6)
    # Rate 0.5: about half of the droppable entries, never a protected one.
    tokens = torch.randint(4, 50, (200, 20))
    tokens[:, 0], tokens[:, -5:] = 1, 0
    dropped = word_dropout(tokens, 0.5, unk_id=3, keep_ids=(0, 1), generator=torch.Generator().manual_seed(0))
    assert torch.equal(dropped[:, 0], tokens[:, 0]) and torch.equal(dropped[:, -5:], tokens[:, -5:])
    changed = dropped[:, 1:-5] != tokens[:, 1:-5]
    assert set(dropped[:, 1:-5][changed].tolist()) == {3}
    assert 0.45 < changed.float().mean().item() < 0.55


def test_adversarial_losses():
    critic = LatentCritic(4, hidden=8)
    prior, codes = torch.randn(6, 4), torch.randn(5, 4, requires_grad=True)
    real, fake = critic(prior), critic(codes)
    expected = F.softplus(-real).mean() + F.softplus(fake).mean()  # -log D(prior) - log(1 - D(code))
    assert critic_loss(critic, prior, codes).item() == pytest.approx(expected.item(), rel=1e-6)
    assert fooling_loss(critic, codes).item() == pytest.approx(F.softplus(-fake).mean().item(), rel=1e-6)
    # A critic with no opinion (logit 0) costs 2 log 2 and fools at log 2.
    torch.nn.init.zeros_(critic.net[-1].weight)
    torch.nn.init.zeros_(critic.net[-1].bias)
    assert critic_loss(critic, prior, codes).item() == pytest.approx(2 * math.log(2))
    assert fooling_loss(critic, codes).item() == pytest.approx(math.log(2))
    # The encoder loss pushes codes; the critic loss on detached codes doesn't reach them.
    critic = LatentCritic(4, hidden=8)
    fooling_loss(critic, codes).backward()
    assert codes.grad is not None and codes.grad.abs().sum() > 0
    codes.grad = None
    critic_loss(critic, prior, codes.detach()).backward()
    assert codes.grad is None


def test_prior_samples():
    gaussian = sample_prior(4000, 16, generator=torch.Generator().manual_seed(0))
    assert abs(gaussian.mean().item()) < 0.02 and abs(gaussian.std().item() - 1) < 0.02
    sphere = sample_prior(10, 64, on_sphere=True)
    assert torch.allclose(sphere.norm(dim=1), torch.full((10,), 8.0))


# --------------------------------------------------------------------------- batching and schedule


def test_cycling_sampler_is_a_function_of_the_step():
    sampler = CyclingSampler(10, 4, seed=0, salt="x")
    batches = [sampler.batch(g) for g in range(5)]  # 20 draws = two full passes
    flat = torch.cat(batches).tolist()
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:]) == list(range(10))
    assert flat[:10] != flat[10:]  # a fresh order each pass
    again = CyclingSampler(10, 4, seed=0, salt="x")
    assert torch.equal(again.batch(3), batches[3])  # no hidden state: resumable
    assert not torch.equal(CyclingSampler(10, 4, seed=1, salt="x").batch(0), batches[0])
    assert len(CyclingSampler(3, 8, 0, "y").batch(5)) == 3
    assert len(CyclingSampler(0, 8, 0, "z").batch(5)) == 0
    assert len(CyclingSampler(10, 0, 0, "z").batch(5)) == 0


def _setup(dataset, tmp_path, **changes):
    model = JWAEModel(dataclasses.replace(TINY, **changes))
    paired, unpaired = make_subsets(dataset)
    model.setup(paired, unpaired, FitContext(validation=dataset.dev, workdir=tmp_path, seed=0))
    for module in model.modules.values():
        module.train()
    return model


def _snapshot(module):
    return [p.detach().clone() for p in module.parameters()]


def _changed(before, module) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))


def test_critic_updates_exactly_on_every_third_step(synthetic, tmp_path):
    model = _setup(synthetic, tmp_path)
    critic, encoder = model.modules["critic"], model.modules["image_encoder"]
    updated = []
    for g in range(8):
        critic_before, encoder_before = _snapshot(critic), _snapshot(encoder)
        rows = torch.arange(g * 4, g * 4 + 4)
        values = model.train_step(g, rows, model.image_sampler.batch(g), model.caption_sampler.batch(g))
        updated.append(_changed(critic_before, critic))
        assert ("critic" in values) == updated[-1]
        assert _changed(encoder_before, encoder)  # the encoders move on every step
    assert updated == [g % 3 == 0 for g in range(8)]


def test_critic_never_moves_when_the_prior_term_is_off(synthetic, tmp_path):
    model = _setup(synthetic, tmp_path, adversarial_weight=0.0)
    before = _snapshot(model.modules["critic"])
    for g in range(4):
        values = model.train_step(g, torch.arange(4), model.image_sampler.batch(g), model.caption_sampler.batch(g))
        assert "adversarial" not in values and "critic" not in values
    assert not _changed(before, model.modules["critic"])


def test_unpaired_rows_never_reach_the_ranking_loss(synthetic, tmp_path, monkeypatch):
    import bench.nn.losses as losses

    seen: list[tuple[int, int]] = []
    real = losses.hinge_ranking_loss

    def spy(scores, *args, **kwargs):
        seen.append(tuple(scores.shape))
        return real(scores, *args, **kwargs)

    monkeypatch.setattr(losses, "hinge_ranking_loss", spy)
    config = dataclasses.replace(TINY, epochs=1, batch_size=16, unpaired_batch_size=23)
    model, _ = fit(config, synthetic, tmp_path)
    n_paired_captions = model.n_paired_captions
    assert model.n_unpaired_images == 300 and model.n_unpaired_captions == 1500
    assert seen and all(rows == cols <= 16 for rows, cols in seen)
    # One epoch = one pass over the paired captions, each exactly once, and nothing else.
    assert sum(rows for rows, _ in seen) == n_paired_captions == 450


def test_unpaired_pools_are_not_read_when_their_terms_are_off(synthetic, tmp_path):
    model = _setup(synthetic, tmp_path, image_rec_weight=0.0, text_rec_weight=0.0, adversarial_weight=0.0)
    assert len(model.image_sampler.batch(0)) == 0 and len(model.caption_sampler.batch(0)) == 0
    values = model.train_step(0, torch.arange(8), model.image_sampler.batch(0), model.caption_sampler.batch(0))
    assert set(values) == {"ranking", "total"}


def test_an_epoch_is_a_pass_over_the_paired_captions_or_the_largest_pool(synthetic, tmp_path):
    assert _setup(synthetic, tmp_path).steps_per_epoch == math.ceil(450 / 32)
    assert _setup(synthetic, tmp_path, epoch_over="longest").steps_per_epoch == math.ceil(1500 / 32)


def test_unpaired_rows_do_feed_the_reconstruction_and_prior_terms(synthetic, tmp_path, monkeypatch):
    import baselines.jwae as jwae

    sizes: list[int] = []
    real = jwae.l1_reconstruction

    def spy(prediction, target):
        sizes.append(prediction.shape[0])
        return real(prediction, target)

    monkeypatch.setattr(jwae, "l1_reconstruction", spy)
    model = _setup(synthetic, tmp_path, unpaired_batch_size=7)
    model.train_step(0, torch.arange(5), model.image_sampler.batch(0), model.caption_sampler.batch(0))
    assert sizes == [5 + 7]


# --------------------------------------------------------------------------- fitting


def test_tiny_fit_beats_chance(synthetic, trained):
    model, result = trained
    assert result.epochs_run == 3 and len(result.validation_curve) == 3
    assert {"loss_ranking", "loss_image_rec", "loss_text_rec", "loss_adversarial", "loss_critic"} <= set(
        result.validation_curve[0])
    images, captions = model.embed_images(synthetic.test.features), model.embed_captions(synthetic.test.captions)
    assert images.dtype == torch.float32 and images.shape == (60, 64) and captions.shape == (300, 64)
    assert torch.allclose(images.norm(dim=1), torch.ones(60), atol=1e-5)
    rsum = evaluate(images, captions, synthetic.test.caption_to_image).rsum
    assert rsum > 85  # chance is about 53 (60 images, 300 captions)
    facts = model.describe()
    assert facts["text_encoder"] == "gru" and facts["weights"]["image_rec"] == 0.05


def test_resume_equals_an_uninterrupted_run(synthetic, trained, tmp_path):
    full_model, full_result = trained
    fit(dataclasses.replace(TINY, epochs=1), synthetic, tmp_path)  # "interrupted" after one epoch
    resumed_model, resumed_result = fit(TINY, synthetic, tmp_path)
    assert resumed_result.resumed_from_epoch == 0
    assert resumed_result.validation_curve == full_result.validation_curve
    assert resumed_result.best_epoch == full_result.best_epoch
    features, captions = synthetic.test.features, synthetic.test.captions
    assert torch.equal(resumed_model.embed_images(features), full_model.embed_images(features))
    assert torch.equal(resumed_model.embed_captions(captions), full_model.embed_captions(captions))


def test_vocabulary_comes_from_paired_and_unpaired_training_captions(synthetic, tmp_path):
    model = _setup(synthetic, tmp_path)
    saved = Vocabulary.load(tmp_path / "vocabulary.json")
    paired, unpaired = make_subsets(synthetic)
    assert saved.words == Vocabulary.build(unpaired.captions).words  # overlap: each caption counted once
    assert saved.words == model.text.vocabulary.words


def test_empty_unpaired_pools(synthetic, tmp_path):
    model, result = fit(dataclasses.replace(TINY, epochs=1), synthetic, tmp_path, paired_fraction=1.0,
                        unpaired="none")
    assert model.n_unpaired_images == 0 and model.n_unpaired_captions == 0
    assert math.isfinite(result.validation_curve[0]["loss_total"])
    assert any("empty pool" in note for note in result.notes)


def test_minilm_variant_runs(synthetic, tmp_path, fake_minilm):
    config = dataclasses.replace(TINY, text_encoder="minilm", epochs=2)
    model, result = fit(config, synthetic, tmp_path)
    assert "loss_sentence_rec" in result.validation_curve[0] and "loss_text_rec" not in result.validation_curve[0]
    assert not (tmp_path / "vocabulary.json").exists()
    captions = model.embed_captions(synthetic.test.captions)
    assert captions.shape == (300, 64) and torch.allclose(captions.norm(dim=1), torch.ones(300), atol=1e-5)
    images = model.embed_images(synthetic.test.features)
    assert evaluate(images, captions, synthetic.test.caption_to_image).rsum > 60
    assert model.describe()["text_encoder"] == "minilm"


def test_raw_prior_space_runs(synthetic, tmp_path):
    model = _setup(synthetic, tmp_path, prior_space="raw")
    values = model.train_step(0, torch.arange(8), model.image_sampler.batch(0), model.caption_sampler.batch(0))
    assert math.isfinite(values["total"]) and "critic" in values


# --------------------------------------------------------------------------- registry and config


def test_registry_and_profiles():
    spec = get_model_spec("wae")
    assert spec.name == "jwae" and spec.uses_unpaired and spec.config_class is JWAEConfig
    assert JWAEModel.uses_unpaired
    paper = JWAEConfig.for_profile("paper")
    assert (paper.embed_size, paper.epochs, paper.lr_decay_epoch, paper.batch_size) == (1024, 30, 15, 128)
    assert (paper.image_rec_weight, paper.text_rec_weight, paper.adversarial_weight) == (0.05, 0.005, 0.01)
    assert (paper.disc_every, paper.disc_lr, paper.disc_beta1, paper.grad_clip) == (3, 5e-5, 0.5, 2.0)
    cpu = JWAEConfig.for_profile("cpu", {"image_decoder_hidden": "64,32", "text_encoder": "minilm"})
    assert cpu.embed_size < paper.embed_size and cpu.image_decoder_hidden == (64, 32)
    assert cpu.text_encoder == "minilm"


def test_bad_settings_are_refused(synthetic, tmp_path):
    with pytest.raises(BenchError):
        _setup(synthetic, tmp_path, prior_space="ball")
    with pytest.raises(BenchError):
        _setup(synthetic, tmp_path, epoch_over="forever")
