"""The proposed model (`mine`, package `unimodel`): losses, chains, link-freeness of unpaired
batches, a tiny fit, resume, ablation configs."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from bench.data.synthetic import generate
from bench.metrics import evaluate
from bench.models import FitContext
from bench.models.registry import get_model_spec
from bench.nn.losses import hinge_ranking_loss
from bench.splits import subsets
from bench.splits import make_split
from bench.nn.text import text_side
from bench.data.vocabulary import Vocabulary
from unimodel import losses as L
from unimodel.model import UnimodelConfig, UnimodelModel, epoch_batches, hinge_warmup_for, training_pools
from unimodel.objective import CRITIC_WEIGHTS, MODEL_LOSS_WEIGHTS, Batch, Forward
from unimodel.parts import Critic, Parts, ResidualMLP

TINY = dict(
    image_embed_dim="32", image_hidden="32", text_embed_dim="32", word_dim="16", decoder_hidden="32",
    decoder_layers="1", latent_dim="16", step2_hidden="32", step2_blocks="1", critic_hidden="16",
    batch_size="32", stage1_epochs="1", epochs="3", lr="2e-3", stage1_lr="2e-3", lr_decay_epoch="10",
    min_count="1",
)
SCENARIO_WEIGHTS = sorted(set(MODEL_LOSS_WEIGHTS.values()))


def tiny_config(**overrides) -> UnimodelConfig:
    return UnimodelConfig.for_profile("paper", {**TINY, **{k: str(v) for k, v in overrides.items()}})


@pytest.fixture(scope="module")
def tiny_data():
    dataset = generate(seed=0, n_train=300, n_dev=60, n_test=60, preset="easy")
    paired, unpaired = subsets(dataset, make_split(dataset, 30, 0, "overlap"))
    return dataset, paired, unpaired


def fit(config, data, workdir, progress=None, seed=0):
    dataset, paired, unpaired = data
    model = UnimodelModel(config)
    context = FitContext(validation=dataset.dev, workdir=workdir, seed=seed,
                         **({"progress": progress} if progress else {}))
    return model, model.fit(paired, unpaired, context)


# -- losses on tiny tensors ---------------------------------------------------------------------
def test_squared_error_is_the_per_sample_squared_norm_averaged():
    target = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    recon = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    assert L.squared_error(target, recon).item() == pytest.approx((1 + 4) / 2)
    assert L.squared_error(target, target).item() == 0


def test_feature_reconstruction_is_elementwise_mse():
    x = torch.zeros(2, 4)
    assert L.feature_reconstruction(x, torch.ones(2, 4)).item() == pytest.approx(1.0)


def test_text_reconstruction_is_nll_per_real_token_ignoring_padding():
    vocab = 5
    tokens = torch.tensor([[1, 4, 2, 0], [1, 4, 4, 2]])  # <start> w <end> <pad>; <start> w w <end>
    uniform = torch.full((2, 3, vocab), -math.log(vocab))
    assert L.text_reconstruction(uniform, tokens).item() == pytest.approx(math.log(vocab))
    perfect = torch.full((2, 3, vocab), -1e4)
    targets = tokens[:, 1:]
    perfect.scatter_(2, targets[..., None], 0.0)
    assert L.text_reconstruction(perfect, tokens).item() == pytest.approx(0.0, abs=1e-6)


def test_retrieval_loss_is_the_shared_hinge_on_cosine_scores_per_sample():
    image = torch.tensor([[2.0, 0.0], [0.0, 3.0]])
    text = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert L.retrieval_loss(image, text).item() == 0  # aligned and orthogonal: no violation
    swapped = text.flip(0)
    # positives score 0, negatives 1: every hardest violation is 1.2, 2 per row/column
    assert L.retrieval_loss(image, swapped, margin=0.2).item() == pytest.approx(2 * 2 * 1.2 / 2)
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    scores = (a / a.norm(dim=1, keepdim=True)) @ (b / b.norm(dim=1, keepdim=True)).T
    assert L.retrieval_loss(a, b).item() == pytest.approx(hinge_ranking_loss(scores).item() / 6, rel=1e-5)


def test_pseudo_pair_loss_orients_the_score_matrix_image_by_caption():
    g = torch.Generator().manual_seed(1)
    codes, pseudo = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    assert L.pseudo_pair_loss(codes, pseudo, True).item() == pytest.approx(L.retrieval_loss(codes, pseudo).item())
    assert L.pseudo_pair_loss(codes, pseudo, False).item() == pytest.approx(L.retrieval_loss(pseudo, codes).item())


class LinearCritic(nn.Module):
    def __init__(self, weight):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(weight))
        self.register_buffer("direction", torch.tensor([1.0] + [0.0] * (len(weight) - 1)))

    def forward(self, x):
        return x @ self.w


def test_critic_and_generator_losses_follow_wgan_gp():
    critic = LinearCritic([0.6, 0.8])  # gradient norm 1 everywhere: no penalty
    real, fake = torch.tensor([[1.0, 1.0], [3.0, 1.0]]), torch.zeros(2, 2)
    loss, distance = L.critic_loss(critic, real, fake, gp_weight=10.0)
    assert distance.item() == pytest.approx((1.4 + 2.6) / 2)
    assert loss.item() == pytest.approx(-2.0, abs=1e-5)
    steep = LinearCritic([3.0, 4.0])  # gradient norm 5: penalty (5 - 1)^2 = 16
    assert L.gradient_penalty(steep, real, fake).item() == pytest.approx(16.0)
    assert L.generator_loss(critic, real).item() == pytest.approx(-2.0)
    # latent critic, model side: E[D(text)] - E[D(image)]
    assert L.alignment_loss(critic, image_codes=fake, text_codes=real).item() == pytest.approx(2.0)


def test_gradient_penalty_does_not_depend_on_sample_order():
    critic = Critic(4, 8)
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(7, 4, generator=g), torch.randn(7, 4, generator=g) + 1
    perm = torch.randperm(7, generator=g)
    torch.manual_seed(3)
    a = L.gradient_penalty(critic, real, fake)
    torch.manual_seed(3)
    b = L.gradient_penalty(critic, real[perm], fake.flip(0))
    assert torch.allclose(a, b)


def test_prior_samples_have_the_configured_scale():
    torch.manual_seed(0)
    x = L.prior_samples(4000, 8, sigma=0.5)
    assert x.shape == (4000, 8) and x.std().item() == pytest.approx(0.5, rel=0.05)


# -- chains compose the right parts ---------------------------------------------------------------
class Recorder(nn.Module):
    """Adds a distinctive offset and logs its name, so both the order and the composition show."""

    def __init__(self, name: str, offset: float, log: list) -> None:
        super().__init__()
        self.name, self.offset, self.log = name, offset, log

    def forward(self, x):
        self.log.append(self.name)
        return x * 2 + self.offset


def recording_parts(log):
    return Parts(image_emb_encoder=Recorder("Ev", 1.0, log), image_emb_decoder=Recorder("Gv", 10.0, log),
                 text_emb_encoder=Recorder("Et", 100.0, log), text_emb_decoder=Recorder("Gt", 1000.0, log))


def test_each_chain_composes_the_right_parts_in_order():
    log: list[str] = []
    parts = recording_parts(log)
    Ev, Gv, Et, Gt = (lambda x: x * 2 + 1), (lambda x: x * 2 + 10), (lambda x: x * 2 + 100), (lambda x: x * 2 + 1000)
    p = torch.tensor([[0.5]])
    cases = [
        (parts.image_to_text, ["Ev", "Gt"], Gt(Ev(p))),
        (parts.text_to_image, ["Et", "Gv"], Gv(Et(p))),
        (parts.image_auto, ["Ev", "Gv"], Gv(Ev(p))),
        (parts.text_auto, ["Et", "Gt"], Gt(Et(p))),
        (parts.image_cycle, ["Ev", "Gt", "Et", "Gv"], Gv(Et(Gt(Ev(p))))),
        (parts.text_cycle, ["Et", "Gv", "Ev", "Gt"], Gt(Ev(Gv(Et(p))))),
    ]
    for chain, order, expected in cases:
        log.clear()
        assert torch.equal(chain(p), expected) and log == order, chain.__name__

    log.clear()
    c = parts.image_chains(p, detach_pseudo=True)
    assert log == ["Ev", "Gv", "Gt", "Et", "Gv", "Et"]
    assert torch.equal(c.code, Ev(p)) and torch.equal(c.auto, Gv(Ev(p))) and torch.equal(c.translated, Gt(Ev(p)))
    assert torch.equal(c.cycle, Gv(Et(Gt(Ev(p))))) and torch.equal(c.pseudo_code, Et(Gt(Ev(p))))
    log.clear()
    c = parts.text_chains(p, detach_pseudo=False)
    assert log == ["Et", "Gt", "Gv", "Ev", "Gt"]  # the pseudo code is the cycle's back code
    assert torch.equal(c.cycle, Gt(Ev(Gv(Et(p))))) and c.pseudo_code is c.back_code


def test_linear_start_mlp_begins_as_its_shortcut_and_dropout_acts_only_in_training():
    torch.manual_seed(0)
    x = torch.randn(8, 6)
    mlp = ResidualMLP(6, 4, hidden=10, blocks=1, linear_start=True, dropout=0.5)
    mlp.eval()
    assert torch.allclose(mlp(x), mlp.shortcut(x))
    assert torch.equal(mlp(x), mlp(x))  # no dropout at evaluation
    default = ResidualMLP(6, 4, hidden=10, blocks=1)
    assert not torch.allclose(default(x), default.shortcut(x))
    with torch.no_grad():
        mlp.out.weight.normal_()  # once the non-linear path is non-zero, dropout changes training outputs
    mlp.train()
    assert not torch.equal(mlp(x), mlp(x))


def test_the_pseudo_target_translation_gets_no_gradient_when_detached():
    parts = Parts(image_emb_encoder=nn.Linear(3, 2), image_emb_decoder=nn.Linear(2, 3),
                  text_emb_encoder=nn.Linear(3, 2), text_emb_decoder=nn.Linear(2, 3))
    p = torch.randn(4, 3)
    c = parts.image_chains(p, auto=False, cycle=False, translation=False, pseudo=True, detach_pseudo=True)
    c.pseudo_code.sum().backward()
    assert parts.text_emb_decoder.weight.grad is None and parts.image_emb_encoder.weight.grad is None
    assert parts.text_emb_encoder.weight.grad is not None


# -- unpaired batches carry no link information ---------------------------------------------------
def small_parts(text: str, feature_dim=6, vocab_size=12):
    cfg = tiny_config(text_encoder=text, image_embed_dim=8, text_embed_dim=8, latent_dim=4, step2_hidden=8,
                      image_hidden=8, critic_hidden=8, word_dim=4, decoder_hidden=8)
    model = UnimodelModel(cfg)
    model.text = text_side(text)
    if text == "gru":
        model.text.vocabulary = Vocabulary(words=("<pad>", "<start>", "<end>", "<unk>")
                                           + tuple(f"w{i}" for i in range(vocab_size - 4)))
    torch.manual_seed(0)
    return cfg, model.build_parts(feature_dim)


def text_rows(text: str, n: int, g: torch.Generator):
    if text == "gru":
        lengths = torch.randint(3, 7, (n,), generator=g)
        tokens = torch.zeros(n, 6, dtype=torch.long)
        for i, length in enumerate(lengths):
            tokens[i, :length] = torch.cat([torch.tensor([1]), torch.randint(4, 12, (int(length) - 2,), generator=g),
                                            torch.tensor([2])])
        return tokens, lengths
    from bench.nn.sentences import DIMENSION

    return (nn.functional.normalize(torch.randn(n, DIMENSION, generator=g), dim=1),)


def all_losses(parts, cfg, batch, seed=0):
    torch.manual_seed(seed)
    forward = Forward(parts, cfg, batch, train_step1=True)
    critic = {k: v[0].item() for k, v in forward.critic_losses(forward.critic_inputs()).items()}
    model = {k: v.item() for k, v in forward.model_losses().items()}
    return model, critic


@pytest.mark.parametrize("text", ["gru", "minilm"])
def test_reordering_unpaired_captions_against_unpaired_images_changes_no_loss(text):
    cfg, parts = small_parts(text)
    if parts.text_decoder is not None:
        # Word dropout draws a random mask per (row, position): random, not link information, but it
        # would follow the rows around; switch it off so the comparison can be exact.
        parts.text_decoder.word_dropout = 0.0
    g = torch.Generator().manual_seed(0)
    n = 9
    batch = Batch(paired_features=torch.rand(n, 6, generator=g), paired_text=text_rows(text, n, g),
                  images=torch.rand(n, 6, generator=g), texts=text_rows(text, n, g))
    model, critic = all_losses(parts, cfg, batch)
    assert set(model) == set(MODEL_LOSS_WEIGHTS) - ({"step1_text"} if text == "minilm" else set())
    assert set(critic) == {"latent_critic", "prior_critic", "text_emb_critic", "image_emb_critic"}
    perm = torch.randperm(n, generator=g)
    shuffled = Batch(batch.paired_features, batch.paired_text, batch.images, tuple(t[perm] for t in batch.texts))
    model2, critic2 = all_losses(parts, cfg, shuffled)
    assert model2 == pytest.approx(model, rel=1e-5, abs=1e-6)
    assert critic2 == pytest.approx(critic, rel=1e-5, abs=1e-6)
    # Sanity: the paired batch does carry links, and breaking them changes the paired losses.
    broken = Batch(batch.paired_features, tuple(t[perm] for t in batch.paired_text), batch.images, batch.texts)
    model3, _ = all_losses(parts, cfg, broken)
    assert model3["paired_retrieval"] != pytest.approx(model["paired_retrieval"])



def step1_gradients(parts, cfg, batch) -> dict[str, bool]:
    """Loss name -> whether that loss alone puts any gradient on the step-1 parts."""
    from unimodel.parts import STEP1_NAMES

    if parts.text_decoder is not None:
        parts.text_decoder.word_dropout = 0.0
    torch.manual_seed(0)
    losses = Forward(parts, cfg, batch, train_step1=True).model_losses()
    step1 = parts.parameters(STEP1_NAMES)
    out = {}
    for name, loss in losses.items():
        grads = torch.autograd.grad(loss, step1, retain_graph=True, allow_unused=True)
        out[name] = any(g is not None and bool(g.abs().sum() > 0) for g in grads)
    return out


def test_retrieval_mode_lets_only_step1_reconstruction_and_the_paired_hinge_reach_step1():
    # With a learnt text encoder the step-2 squared errors can be met by collapsing the embeddings,
    # so step1_mode="retrieval" keeps them (and the critics) off step 1; "finetune" does not.
    g = torch.Generator().manual_seed(0)
    n = 9
    batch = Batch(paired_features=torch.rand(n, 6, generator=g), paired_text=text_rows("gru", n, g),
                  images=torch.rand(n, 6, generator=g), texts=text_rows("gru", n, g))
    cfg, parts = small_parts("gru")
    cfg = dataclasses.replace(cfg, step1_mode="finetune")  # (GRU text defaults to "retrieval")
    finetune = step1_gradients(parts, cfg, batch)
    assert all(finetune.values()), finetune
    shielded_cfg = dataclasses.replace(cfg, step1_mode="retrieval")
    shielded = step1_gradients(parts, shielded_cfg, batch)
    reaching = {name for name, reaches in shielded.items() if reaches}
    assert reaching == {"step1_image", "step1_text", "paired_retrieval"}
    assert set(shielded) == set(finetune)
    # the losses themselves are the same values: only where their gradients go changes
    model, _ = all_losses(parts, cfg, batch)
    model_shielded, _ = all_losses(parts, shielded_cfg, batch)
    assert model_shielded == pytest.approx(model, rel=1e-6, abs=1e-7)

# -- pools, registry, config ------------------------------------------------------------------------
def test_paired_items_join_the_unpaired_pools_under_disjoint_and_nothing_doubles_under_overlap(tiny_data):
    dataset = tiny_data[0]
    paired, unpaired = subsets(dataset, make_split(dataset, 30, 0, "disjoint"))
    pools = training_pools(paired, unpaired, True)
    assert set(paired.image_ids) <= set(pools.image_ids) and set(paired.caption_ids) <= set(pools.caption_ids)
    assert pools.added_images == paired.n_images and pools.features.shape[0] == len(pools.image_ids)
    assert len(set(pools.caption_ids)) == len(pools.caption_ids)
    off = training_pools(paired, unpaired, False)
    assert off.image_ids == unpaired.image_ids and off.added_images == 0
    overlap = training_pools(*tiny_data[1:], True)
    assert overlap.added_images == 0 and overlap.added_captions == 0
    assert len(overlap.image_ids) == dataset.train.n_images


def test_epoch_batches_cycle_small_pools_without_repeats_inside_a_batch():
    torch.manual_seed(0)
    idx = epoch_batches(10, 7, 4)
    assert idx.shape == (7, 4) and all(len(set(row.tolist())) == 4 for row in idx)
    assert epoch_batches(3, 2, 8).shape == (2, 3)


def test_registered_with_alias_and_profiles():
    spec = get_model_spec("unimodel")
    assert spec.name == "mine" and spec.uses_unpaired and spec.config_class is UnimodelConfig
    assert UnimodelModel.uses_unpaired
    paper, cpu = UnimodelConfig.for_profile("paper"), UnimodelConfig.for_profile("cpu")
    assert paper.latent_dim == 1024 and cpu.latent_dim < paper.latent_dim and cpu.epochs < paper.epochs
    assert UnimodelConfig.for_profile("cpu", {"text_encoder": "minilm"}).text_encoder == "minilm"


def test_a_learnt_text_encoder_gets_its_own_step1_settings_in_every_profile_unless_set():
    cpu = UnimodelConfig.for_profile("cpu")  # minilm: w is frozen, the image autoencoder pre-trains
    assert cpu.step1_mode == "finetune" and cpu.stage1_epochs == 3
    assert UnimodelConfig.for_profile("paper").step1_mode == "retrieval"  # the paper profile reads words
    for profile in ("cpu", "quick", "paper"):
        gru = UnimodelConfig.for_profile(profile, {"text_encoder": "gru"})
        assert gru.step1_mode == "retrieval" and gru.stage1_epochs == 0
    chosen = UnimodelConfig.for_profile("cpu", {"text_encoder": "gru", "step1_mode": "finetune", "stage1_epochs": "2"})
    assert chosen.step1_mode == "finetune" and chosen.stage1_epochs == 2


def test_gru_text_gets_the_update_cap_of_vse_and_jwae_in_the_cpu_profile_only():
    from baselines.vse import CPU_PROFILE

    gru = {"text_encoder": "gru"}
    assert UnimodelConfig.for_profile("cpu", gru).updates == CPU_PROFILE["updates"]
    assert UnimodelConfig.for_profile("cpu").updates == 2021  # minilm keeps the cpu profile's own schedule
    assert UnimodelConfig.for_profile("quick", gru).updates == 0  # quick and paper count epochs
    assert UnimodelConfig.for_profile("paper", gru).updates == 0
    assert UnimodelConfig.for_profile("cpu", {**gru, "updates": "500"}).updates == 500  # --set still wins


def test_gru_text_reads_raw_image_features_in_the_cpu_profile_only():
    gru = {"text_encoder": "gru"}
    assert not UnimodelConfig.for_profile("cpu", gru).standardize_features
    assert UnimodelConfig.for_profile("cpu").standardize_features  # minilm keeps its standardised features
    assert UnimodelConfig.for_profile("paper", gru).standardize_features
    assert UnimodelConfig.for_profile("cpu", {**gru, "standardize_features": "true"}).standardize_features


def test_a_warmup_in_passes_grows_with_the_paired_set_and_keeps_one_epoch_at_low_fractions():
    cfg = UnimodelConfig.for_profile("cpu", {"text_encoder": "gru"})
    assert cfg.hinge_warmup_passes == 3
    steps = math.ceil(30_000 / cfg.batch_size)  # a Flickr8k stage-2 epoch: the 30,000 training captions
    # 3 passes over the pairs of 100, 50, 25 and 10 % of its 6,000 training images (5 captions each)
    assert [hinge_warmup_for(cfg, 300 * f, steps) for f in (100, 50, 25, 10)] == [3, 2, 1, 1]
    assert hinge_warmup_for(dataclasses.replace(cfg, hinge_warmup_epochs=2), 3_000, steps) == 2  # never shorter
    off = dataclasses.replace(cfg, hinge_warmup_passes=0.0, hinge_warmup_epochs=5)
    assert hinge_warmup_for(off, 30_000, steps) == 5  # 0: the warm-up is counted in epochs
    exact = dataclasses.replace(cfg, hinge_warmup_passes=4.0, batch_size=100)
    assert hinge_warmup_for(exact, 2_500, 100) == 1  # exactly 4 passes in one epoch: not rounded up to 2


def test_the_warmup_in_passes_is_cpu_gru_only_and_leaves_other_hashes_alone():
    from bench.models.config import hashed_config

    assert UnimodelConfig.for_profile("cpu").hinge_warmup_passes == 0  # minilm
    assert UnimodelConfig.for_profile("paper", {"text_encoder": "gru"}).hinge_warmup_passes == 0
    assert "hinge_warmup_passes" not in hashed_config(UnimodelConfig.for_profile("cpu"))
    assert hashed_config(UnimodelConfig.for_profile("cpu", {"text_encoder": "gru"}))["hinge_warmup_passes"] == 3


def test_hardest_negatives_start_after_the_warmup_that_the_passes_ask_for(tiny_data, tmp_path, monkeypatch):
    import unimodel.model as unimodel_model

    hardest = []
    original = unimodel_model.Forward

    def recording(parts, cfg, batch, train_step1, max_violation=None):
        hardest.append(max_violation)
        return original(parts, cfg, batch, train_step1, max_violation)

    monkeypatch.setattr(unimodel_model, "Forward", recording)
    # 90 paired images (450 captions); an epoch is 47 batches of 32 (the 1,500 pooled captions),
    # 3.3 passes over the pairs, so 4 passes take 2 epochs
    _, result = fit(tiny_config(stage1_epochs=0, hinge_warmup_passes=4), tiny_data, tmp_path)
    assert hardest == [False] * 94 + [True] * 47
    assert "VSE0 warm-up: 2 stage-2 epochs (at least 4 passes over the 450 paired captions)" in result.notes


def test_no_warmup_note_without_hardest_negatives(tiny_data, tmp_path):
    # with max_violation off every epoch is VSE0, so a note about a warm-up would mislead
    _, result = fit(tiny_config(stage1_epochs=0, hinge_warmup_passes=4, max_violation=False), tiny_data, tmp_path)
    assert not any(note.startswith("VSE0 warm-up") for note in result.notes)


# -- training ---------------------------------------------------------------------------------------
def chance_rsum(n_images: int, per_image: int = 5) -> float:
    n_captions = n_images * per_image
    i2t = sum(100 * (1 - math.comb(n_captions - per_image, k) / math.comb(n_captions, k)) for k in (1, 5, 10))
    return i2t + sum(100 * k / n_images for k in (1, 5, 10))


def test_tiny_fit_retrieves_well_above_chance_and_saves_its_vocabulary(tiny_data, tmp_path):
    dataset = tiny_data[0]
    model, result = fit(tiny_config(epochs=4), tiny_data, tmp_path)
    assert (tmp_path / "vocabulary.json").exists() and (tmp_path / "stage1.pt").exists()
    vocabulary = Vocabulary.load(tmp_path / "vocabulary.json")
    assert len(vocabulary) == len(model.text.vocabulary)
    images, captions = model.embed_images(dataset.test.features), model.embed_captions(dataset.test.captions)
    assert images.dtype == torch.float32 and torch.allclose(images.norm(dim=1), torch.ones(len(images)))
    rsum = evaluate(images, captions, dataset.test.caption_to_image).rsum
    assert rsum > 2.5 * chance_rsum(dataset.test.n_images), (rsum, result.validation_curve)
    assert result.best_epoch is not None and len(result.validation_curve) == 4
    assert any("stage 1" in note for note in result.notes)


class Interrupt(Exception):
    pass


def test_resume_in_either_stage_ends_where_an_uninterrupted_run_does(tiny_data, tmp_path):
    cfg = tiny_config(stage1_epochs=2, epochs=3)
    dataset = tiny_data[0]
    full, _ = fit(cfg, tiny_data, tmp_path / "full")

    def stop_after(stage, epoch):
        def progress(**fields):  # end-of-epoch reports carry "epochs"; stage 2's come straight from run_training
            if "epochs" in fields and fields.get("stage", 2) == stage and fields["epoch"] == epoch:
                raise Interrupt
        return progress

    work = tmp_path / "resumed"
    with pytest.raises(Interrupt):
        fit(cfg, tiny_data, work, progress=stop_after(1, 1))  # killed after stage-1 epoch 1
    with pytest.raises(Interrupt):
        fit(cfg, tiny_data, work, progress=stop_after(2, 2))  # killed after stage-2 epoch 2
    resumed, result = fit(cfg, tiny_data, work)
    assert result.resumed_from_epoch == 1
    # the training time is both stages' epochs over every leg
    seconds = [sum(torch.load(work / name, weights_only=False)["epoch_seconds"])
               for name in ("stage1.pt", "checkpoint.pt")]
    assert result.train_seconds > 0 and result.train_seconds == pytest.approx(sum(seconds), abs=0.01)
    assert torch.equal(full.embed_images(dataset.dev.features), resumed.embed_images(dataset.dev.features))
    assert torch.equal(full.embed_captions(dataset.dev.captions), resumed.embed_captions(dataset.dev.captions))


@pytest.mark.parametrize("weight", SCENARIO_WEIGHTS)
def test_each_scenario_switched_off_still_trains(tiny_data, tmp_path, weight):
    model, result = fit(tiny_config(**{weight: 0}, stage1_epochs=0, epochs=1), tiny_data, tmp_path)
    assert len(result.validation_curve) == 1
    point = result.validation_curve[0]
    assert math.isfinite(point["val_rsum"]) and "loss_paired_retrieval" in point or weight == "w_paired_retrieval"
    switched_off = [name for name, w in MODEL_LOSS_WEIGHTS.items() if w == weight]
    assert not any(f"loss_{name}" in point for name in switched_off)
    assert not any(f"loss_wdist_{name}" in point for name, w in CRITIC_WEIGHTS.items() if w == weight)


@pytest.mark.parametrize("step1_mode", ["finetune", "freeze", "retrieval"])
def test_minilm_text_embedding_and_frozen_step1_train(tiny_data, tmp_path, fake_minilm, step1_mode):
    model, result = fit(tiny_config(text_encoder="minilm", step1_mode=step1_mode), tiny_data, tmp_path)
    assert model.parts.text_encoder is None and model.parts.text_decoder is None
    assert model.describe()["text_encoder"] == "minilm"
    dataset = tiny_data[0]
    rsum = evaluate(model.embed_images(dataset.dev.features), model.embed_captions(dataset.dev.captions),
                    dataset.dev.caption_to_image).rsum
    assert rsum > 2 * chance_rsum(dataset.dev.n_images)


def test_a_config_that_only_uses_pairs_ignores_the_unpaired_pools(tiny_data, tmp_path):
    off = {w: 0 for w in SCENARIO_WEIGHTS if w != "w_paired_retrieval"}
    model, result = fit(tiny_config(**off, stage1_epochs=0, epochs=1), tiny_data, tmp_path)
    losses = {k for k in result.validation_curve[0] if k.startswith("loss_")}
    assert losses == {"loss_total", "loss_paired_retrieval"}
    # its vocabulary is the paired captions', as vse's: a word only unpaired captions hold would keep
    # an embedding that never trains
    paired, unpaired = tiny_data[1], tiny_data[2]
    assert model.text.vocabulary.words == Vocabulary.build(paired.captions, min_count=1).words
    everything = Vocabulary.build(list(paired.captions) + list(unpaired.captions), min_count=1)
    assert len(everything) > len(model.text.vocabulary)


def test_unstandardized_features_reach_the_image_encoder_as_they_are(tiny_data, tmp_path):
    dataset = tiny_data[0]
    raw, _ = fit(tiny_config(standardize_features=False, stage1_epochs=0, epochs=1), tiny_data, tmp_path / "raw")
    encoder = raw.parts.image_encoder
    features = torch.as_tensor(dataset.dev.features[:4], dtype=torch.float32)
    assert torch.equal(encoder.standardize(features), features)
    standardized, _ = fit(tiny_config(stage1_epochs=0, epochs=1), tiny_data, tmp_path / "standardized")
    assert not torch.allclose(standardized.parts.image_encoder.standardize(features), features)


def test_unfitted_model_refuses_to_embed():
    from bench.errors import BenchError

    with pytest.raises(BenchError):
        UnimodelModel(tiny_config()).embed_images(np.zeros((1, 4), dtype=np.float32))
