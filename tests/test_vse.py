"""VSE++ baseline: the loss, the encoders it is built from, and tiny fits through the model API."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from baselines.vse import VSEConfig, VSEModel
from bench.data.synthetic import generate
from bench.models import FitContext, PairedData, UnpairedData
from bench.models.registry import get_model_spec
from bench.nn.encoders import GRUTextEncoder, ImageEncoder
from bench.nn.losses import hinge_ranking_loss

# -- the hinge loss on a hand-computed 3x3 example -------------------------------------
# scores[i, j] = similarity of image i and caption j; positives on the diagonal (0.9, 0.6, 0.4).
SCORES = [
    [0.9, 0.5, 0.8],
    [0.3, 0.6, 0.7],
    [0.1, 0.65, 0.4],
]
# With margin 0.2, the violations (margin + negative - positive, if > 0), worked out by hand:
#   image queries (rows):      row 0: caption 2 -> 0.1;  row 1: caption 2 -> 0.3;  row 2: caption 1 -> 0.45
#   caption queries (columns): col 0: none;  col 1: image 0 -> 0.1, image 2 -> 0.25;
#                              col 2: image 0 -> 0.6, image 1 -> 0.5
# VSE0 (all violations):      0.1 + 0.3 + 0.45 + 0.1 + 0.25 + 0.6 + 0.5 = 2.30
# VSE++ (hardest per row/col): rows 0.1 + 0.3 + 0.45, columns 0 + 0.25 + 0.6 = 1.70
EXPECTED_VSE0 = 2.30
EXPECTED_VSEPP = 1.70


def test_hinge_loss_hand_computed_both_variants():
    scores = torch.tensor(SCORES, dtype=torch.float64)
    assert hinge_ranking_loss(scores, margin=0.2, max_violation=False).item() == pytest.approx(EXPECTED_VSE0)
    assert hinge_ranking_loss(scores, margin=0.2, max_violation=True).item() == pytest.approx(EXPECTED_VSEPP)
    # The diagonal is masked: a perfect separation by more than the margin costs nothing.
    assert hinge_ranking_loss(torch.eye(3, dtype=torch.float64), margin=0.2).item() == 0.0


def test_hardest_negative_gets_the_only_gradient():
    scores = torch.tensor(SCORES, dtype=torch.float64, requires_grad=True)
    hinge_ranking_loss(scores, margin=0.2, max_violation=True).backward()
    # Hardest negatives: rows -> (0,2), (1,2), (2,1); columns -> (2,1) for col 1, (0,2) for col 2,
    # none for col 0. Each active term adds +1 on its negative and -1 on its positive.
    expected = torch.tensor(
        [
            [-1.0, 0.0, 2.0],  # S00: row 0 active (col 0 not);  (0,2): hardest of row 0 and of col 2
            [0.0, -2.0, 1.0],  # S11: row 1 and col 1 active;     (1,2): hardest of row 1 only
            [0.0, 2.0, -2.0],  # S22: row 2 and col 2 active;     (2,1): hardest of row 2 and of col 1
        ],
        dtype=torch.float64,
    )
    assert torch.equal(scores.grad, expected)

    # VSE0 sends gradient to every violating negative, e.g. (0,1) and (1,2) from the columns too.
    scores.grad = None
    hinge_ranking_loss(scores, margin=0.2, max_violation=False).backward()
    assert scores.grad[0, 1] == 1.0 and scores.grad[1, 2] == 2.0


def test_hardest_negative_selection_on_random_scores():
    generator = torch.Generator().manual_seed(3)
    scores = torch.rand(6, 6, generator=generator, dtype=torch.float64).requires_grad_()
    hinge_ranking_loss(scores, margin=2.0, max_violation=True).backward()  # margin 2: every negative violates
    masked = scores.detach().clone().fill_diagonal_(-math.inf)
    hardest = torch.zeros(6, 6, dtype=torch.bool)
    hardest[torch.arange(6), masked.argmax(dim=1)] = True  # per image query
    hardest[masked.argmax(dim=0), torch.arange(6)] = True  # per caption query
    off_diagonal = ~torch.eye(6, dtype=torch.bool)
    assert torch.equal(scores.grad[off_diagonal] != 0, hardest[off_diagonal])


# -- encoders -------------------------------------------------------------------------
def test_packed_gru_equals_unpacked_on_equal_lengths():
    torch.manual_seed(0)
    encoder = GRUTextEncoder(vocab_size=50, word_dim=12, embed_size=16, normalize=False).eval()
    tokens = torch.randint(1, 50, (4, 7))
    lengths = torch.full((4,), 7)
    with torch.no_grad():
        packed = encoder(tokens, lengths)
        outputs, _ = encoder.rnn(encoder.embed(tokens))
    torch.testing.assert_close(packed, outputs[:, -1], rtol=0, atol=1e-6)


@pytest.mark.parametrize("normalize", [False, True])
def test_last_token_state_with_mixed_lengths(normalize):
    torch.manual_seed(1)
    encoder = GRUTextEncoder(vocab_size=50, word_dim=12, embed_size=16, normalize=normalize).eval()
    lengths = torch.tensor([3, 9, 1, 6, 9])
    tokens = torch.zeros(5, 9, dtype=torch.long)
    for b, n in enumerate(lengths.tolist()):
        tokens[b, :n] = torch.randint(1, 50, (n,))
    with torch.no_grad():
        batch = encoder(tokens, lengths)
        alone = torch.cat([encoder(tokens[b : b + 1, :n], torch.tensor([n])) for b, n in enumerate(lengths.tolist())])
    torch.testing.assert_close(batch, alone, rtol=0, atol=1e-6)


def test_encoder_word_dropout_reads_words_as_unk_in_training_only():
    encoder = GRUTextEncoder(vocab_size=50, word_dim=12, embed_size=16, word_dropout=0.5, unk_id=3, first_word_id=4)
    seen = []
    encoder.embed.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].clone()))
    tokens = torch.cat([torch.full((64, 1), 1), torch.randint(4, 50, (64, 20)), torch.full((64, 1), 2)], dim=1)
    lengths = torch.full((64,), 22)
    torch.manual_seed(0)
    encoder.train()(tokens, lengths)
    read = seen[-1]
    dropped = read != tokens
    assert (read[dropped] == 3).all() and not dropped[:, [0, -1]].any()  # <start> and <end> are kept
    assert 0.4 < dropped[:, 1:-1].float().mean().item() < 0.6
    encoder.eval()(tokens, lengths)
    assert torch.equal(seen[-1], tokens)  # evaluation reads every word


def test_image_encoder_and_word_embedding_init():
    torch.manual_seed(2)
    image = ImageEncoder(300, embed_size=200)
    bound = math.sqrt(6.0 / (300 + 200))  # Xavier-uniform: U(-b, b), b = sqrt(6 / (fan_in + fan_out))
    weight = image.fc.weight.detach()
    assert weight.abs().max() <= bound
    assert weight.abs().max() > 0.99 * bound  # uniform over the whole range, not something narrower
    assert weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.02)
    assert torch.count_nonzero(image.fc.bias) == 0

    text = GRUTextEncoder(vocab_size=400, word_dim=300, embed_size=32)
    words = text.embed.weight.detach()
    assert words.abs().max() <= 0.1
    assert words.abs().max() > 0.099
    assert words.std().item() == pytest.approx(0.2 / math.sqrt(12), rel=0.02)


# -- config and registry -----------------------------------------------------------------
def test_config_profiles_and_registry():
    paper = VSEConfig.for_profile("paper")
    assert (paper.embed_size, paper.word_dim, paper.num_layers) == (1024, 300, 1)
    assert (paper.margin, paper.max_violation) == (0.2, True)
    assert (paper.lr, paper.lr_decay_epoch, paper.epochs, paper.batch_size, paper.grad_clip) == (2e-4, 15, 30, 128, 2.0)
    assert (paper.text_encoder, paper.min_count) == ("gru", 4)
    cpu = VSEConfig.for_profile("cpu", {"text_encoder": "minilm"})
    assert cpu.embed_size < paper.embed_size and cpu.epochs < paper.epochs and cpu.lr_decay_epoch < cpu.epochs
    assert (cpu.margin, cpu.max_violation, cpu.lr, cpu.batch_size, cpu.text_encoder) == (0.2, True, 2e-4, 128, "minilm")
    for name in ("vse", "vse++", "VSEPP"):
        spec = get_model_spec(name)
        assert spec.factory is VSEModel and spec.config_class is VSEConfig and not spec.uses_unpaired
    assert VSEModel.uses_unpaired is False


# -- tiny fits through the model API -----------------------------------------------------
TINY = VSEConfig(embed_size=64, epochs=3, batch_size=32, lr_decay_epoch=2)
CHANCE_RSUM = 52.0  # 60 dev images x 5 captions: i2t ~1.7+8.1+15.6, t2i 1.7+8.3+16.7


@pytest.fixture(scope="module")
def data():
    dataset = generate(seed=0, n_train=300, n_dev=60, n_test=60, preset="easy")
    t = dataset.train
    paired = PairedData(t.image_ids, t.features, t.caption_ids, t.captions, t.caption_to_image)
    return dataset, paired


def _empty_unpaired(feature_dim: int) -> UnpairedData:
    return UnpairedData([], np.zeros((0, feature_dim), np.float32), [], [])


def _fit(data, workdir, config=TINY, unpaired=None, progress=None):
    dataset, paired = data
    model = VSEModel(config)
    context = FitContext(validation=dataset.dev, workdir=workdir, seed=0)
    if progress is not None:
        context.progress = progress
    result = model.fit(paired, unpaired or _empty_unpaired(paired.features.shape[1]), context)
    test = dataset.test
    embeddings = (model.embed_images(test.features), model.embed_captions(test.captions))
    return model, result, embeddings


@pytest.fixture(scope="module")
def gru_run(data, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("vse_gru")
    events = []
    model, result, embeddings = _fit(data, workdir, progress=lambda **fields: events.append(fields))
    return workdir, model, result, embeddings, events


def test_fit_learns_and_records(gru_run, data):
    workdir, model, result, (images, captions), events = gru_run
    dataset, paired = data
    assert result.epochs_run == 3 and len(result.validation_curve) == 3
    best = max(result.validation_curve, key=lambda p: p["val_rsum"])
    assert result.best_epoch == best["epoch"]
    assert best["val_rsum"] > 2 * CHANCE_RSUM
    assert "unpaired data ignored (VSE++ trains on pairs only)" in result.notes

    from bench.metrics import evaluate

    test_rsum = evaluate(images, captions, dataset.test.caption_to_image).rsum
    assert test_rsum > 2 * CHANCE_RSUM
    for emb, n in ((images, dataset.test.n_images), (captions, dataset.test.n_captions)):
        assert emb.dtype == torch.float32 and emb.device.type == "cpu" and not emb.requires_grad
        assert emb.shape == (n, 64)
        torch.testing.assert_close(emb.norm(dim=1), torch.ones(n), rtol=0, atol=1e-5)

    vocabulary = json.loads((workdir / "vocabulary.json").read_text())
    assert vocabulary["words"][:4] == ["<pad>", "<start>", "<end>", "<unk>"] and vocabulary["min_count"] == 4
    assert (workdir / "checkpoint.pt").exists()
    assert model.describe() == {"text_encoder": "gru", "vocabulary_size": len(vocabulary["words"]),
                                "loss": "VSE++ max violation"}

    steps = [e for e in events if "step" in e]
    assert steps and all(e["steps"] == math.ceil(paired.n_captions / 32) for e in steps)
    assert all(math.isfinite(e["loss"]) for e in steps)
    assert [e["epoch"] for e in events if "epoch" in e] == [1, 2, 3]


def test_resume_matches_uninterrupted_run(gru_run, data, tmp_path):
    _, _, full, (images, captions), _ = gru_run
    _fit(data, tmp_path, config=dataclasses.replace(TINY, epochs=2))
    _, resumed, (images2, captions2) = _fit(data, tmp_path)
    assert resumed.resumed_from_epoch == 1
    assert resumed.validation_curve == full.validation_curve
    assert resumed.best_epoch == full.best_epoch
    assert torch.equal(images, images2) and torch.equal(captions, captions2)
    # the training time counts the epochs of both legs, not only the one that ran last
    epoch_seconds = torch.load(tmp_path / "checkpoint.pt", weights_only=False)["epoch_seconds"]
    assert len(epoch_seconds) == 3 and resumed.train_seconds == round(sum(epoch_seconds), 3) > 0


def test_a_resumed_run_whose_checkpoint_lacks_epoch_times_reports_no_training_time(data, tmp_path):
    _fit(data, tmp_path, config=dataclasses.replace(TINY, epochs=2))
    path = tmp_path / "checkpoint.pt"
    saved = torch.load(path, weights_only=False)
    del saved["epoch_seconds"]  # as written before checkpoints kept them
    torch.save(saved, path)
    _, resumed, _ = _fit(data, tmp_path)
    assert resumed.resumed_from_epoch == 1 and resumed.train_seconds is None


def test_unpaired_data_is_ignored(gru_run, data, tmp_path):
    _, _, full, (images, captions), _ = gru_run
    dataset, paired = data
    extra = generate(seed=7, n_train=100, n_dev=1, n_test=1).train
    unpaired = UnpairedData(extra.image_ids, extra.features, extra.caption_ids, extra.captions)
    _, result, (images2, captions2) = _fit(data, tmp_path, unpaired=unpaired)
    assert result.validation_curve == full.validation_curve
    assert torch.equal(images, images2) and torch.equal(captions, captions2)


def test_vse0_variant_is_described(data, tmp_path):
    config = dataclasses.replace(TINY, epochs=1, max_violation=False)
    model, result, _ = _fit(data, tmp_path, config=config)
    assert model.describe()["loss"] == "VSE0"
    assert math.isfinite(result.validation_curve[0]["loss_hinge"])


def test_minilm_text_encoder(data, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    config = dataclasses.replace(TINY, text_encoder="minilm")
    model, result, (images, captions) = _fit(data, tmp_path / "run", config=config)
    dataset, _ = data
    assert max(p["val_rsum"] for p in result.validation_curve) > 2 * CHANCE_RSUM
    assert captions.shape == (dataset.test.n_captions, 64)
    assert model.describe()["text_encoder"] == "minilm"
    assert (tmp_path / "cache" / "sentences").is_dir()  # the frozen vectors went to the given cache


def test_resume_refuses_a_checkpoint_for_other_captions(data, tmp_path):
    from bench.errors import BenchError

    dataset, _ = data
    _fit(data, tmp_path, config=dataclasses.replace(TINY, epochs=1))
    other = generate(seed=5, n_train=100, n_dev=1, n_test=1).train
    paired = PairedData(other.image_ids, other.features, other.caption_ids,
                        [c + " zebra zebra zebra zebra" for c in other.captions], other.caption_to_image)
    with pytest.raises(BenchError, match="vocabulary differs"):
        VSEModel(TINY).fit(paired, _empty_unpaired(paired.features.shape[1]),
                           FitContext(validation=dataset.dev, workdir=tmp_path))


def test_embedding_before_fit_is_an_error():
    from bench.errors import BenchError

    with pytest.raises(BenchError, match="not been fitted"):
        VSEModel(TINY).embed_captions(["a dog"])
