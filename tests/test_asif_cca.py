"""``asif`` (relative representations over the paired anchors) and ``cca`` on frozen sentence vectors.

Every case runs on small synthetic data with MiniLM replaced by a fake sentence encoder, so no
model is loaded. The cca cases of issue 40 (an empty vocabulary, an absurd power, a dim the pairs
cannot carry) are here too.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from baselines.asif import ASIFConfig, ASIFModel
from baselines.cca import CCAConfig, CCAModel
from bench.errors import BenchError
from bench.metrics import evaluate
from bench.models import FitContext, PairedData, UnpairedData

REPO = Path(__file__).resolve().parents[1]
NO_UNPAIRED = UnpairedData(image_ids=[], features=np.zeros((0, 64), np.float32), caption_ids=[], captions=[])


def _fit(model, paired, dataset, tmp_path, unpaired=NO_UNPAIRED):
    return model.fit(paired, unpaired, FitContext(validation=dataset.dev, workdir=tmp_path))


def _paired(dataset, n_images: int):
    """The first ``n_images`` training images with their captions, as a paired set."""
    return dataset.train.subset(np.arange(n_images), name="paired")


def _rsum(model, split) -> float:
    return evaluate(model.embed_images(split.features), model.embed_captions(split.captions), split.caption_to_image).rsum


def _chance_rsum(split) -> float:
    """About what random embeddings score: R@K of a random ranking is K / images, both directions."""
    return 2 * 100 * sum(min(1.0, k / split.n_images) for k in (1, 5, 10))


# -- asif -----------------------------------------------------------------------------------------------
def test_asif_is_deterministic_and_beats_chance(small_synthetic, fake_minilm, tmp_path):
    data = small_synthetic
    paired = _paired(data, 120)
    embeddings = []
    for run in range(2):
        model = ASIFModel(ASIFConfig.for_profile("quick", {"k": "20"}))
        _fit(model, paired, data, tmp_path / str(run))
        embeddings.append((model.embed_images(data.test.features), model.embed_captions(data.test.captions)))
    assert torch.equal(embeddings[0][0], embeddings[1][0]) and torch.equal(embeddings[0][1], embeddings[1][1])
    images, captions = embeddings[0]
    assert images.dtype == torch.float32 and images.shape == (data.test.n_images, 120)
    assert torch.allclose(captions.norm(dim=1), torch.ones(len(captions)), atol=1e-5)
    assert evaluate(images, captions, data.test.caption_to_image).rsum > 2 * _chance_rsum(data.test)


def _numpy_relative(queries: np.ndarray, anchors: np.ndarray, k: int, p: float) -> np.ndarray:
    """ASIF's relative representation written out with plain numpy, row by row."""
    out = np.zeros((len(queries), len(anchors)))
    for row, query in enumerate(queries):
        cosines = anchors @ query
        for column in np.argsort(-cosines, kind="stable")[:k]:
            out[row, column] = cosines[column] ** p if cosines[column] > 0 else 0.0  # dissimilar: 0
        out[row] /= max(np.linalg.norm(out[row]), 1e-8)
    return out


@pytest.mark.parametrize("centre,k,p", [(False, 3, 8.0), (True, 4, 2.5), (True, 7, 0.0)])
def test_asif_scores_match_a_direct_numpy_computation(monkeypatch, tmp_path, centre, k, p):
    rng = np.random.default_rng(5)
    n_anchor_images, per_image, dim_image, dim_text = 7, 3, 10, 6
    captions = [f"caption {i}" for i in range(n_anchor_images * per_image + 8)]
    vectors = {c: rng.standard_normal(dim_text).astype(np.float32) for c in captions}
    # a stand-in sentence encoder: one fixed random vector per caption, unit length like MiniLM's
    vectors = {c: v / np.linalg.norm(v) for c, v in vectors.items()}
    import bench.nn.sentences as sentences

    monkeypatch.setattr(sentences, "encode_sentences", lambda texts, **_: np.stack([vectors[t] for t in texts]))
    links = np.repeat(np.arange(n_anchor_images), per_image)
    anchor_features = rng.random((n_anchor_images, dim_image)).astype(np.float32)
    paired = PairedData(image_ids=[f"i{i}" for i in range(n_anchor_images)], features=anchor_features,
                        caption_ids=[f"c{j}" for j in range(len(links))], captions=captions[:len(links)],
                        caption_to_image=links)
    model = ASIFModel(ASIFConfig(k=k, p=p, centre=centre))
    model.fit(paired, NO_UNPAIRED, FitContext(validation=None, workdir=tmp_path))
    query_features = rng.random((5, dim_image)).astype(np.float32)
    query_captions = captions[len(links):]
    scores = (model.embed_images(query_features) @ model.embed_captions(query_captions).T).numpy()

    def unit(x):
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    image_side, text_side = anchor_features.astype(np.float64), np.stack([vectors[c] for c in paired.captions])
    queries_image, queries_text = query_features.astype(np.float64), np.stack([vectors[c] for c in query_captions])
    if centre:  # standardised over the anchor images, centred on the anchor captions
        mean, std = image_side.mean(0), image_side.std(0) + 1e-6
        image_side, queries_image = (image_side - mean) / std, (queries_image - mean) / std
        text_mean = text_side.mean(0)
        text_side, queries_text = text_side - text_mean, queries_text - text_mean
    caption_anchors = unit(np.stack([unit(text_side)[links == i].mean(0) for i in range(n_anchor_images)]))
    expected = (_numpy_relative(unit(queries_image), unit(image_side), k, p)
                @ _numpy_relative(unit(queries_text), caption_anchors, k, p).T)
    np.testing.assert_allclose(scores, expected, atol=2e-5)


def test_asif_clamps_k_to_the_anchors_with_a_notice(small_synthetic, fake_minilm, tmp_path, capsys):
    data = small_synthetic
    model = ASIFModel(ASIFConfig.for_profile("paper"))  # k = 800
    result = _fit(model, _paired(data, 3), data, tmp_path)
    assert "notice: asif: k 800 clamped to the 3 anchors" in capsys.readouterr().err
    assert any("k 800 clamped to the 3 anchors" in note for note in result.notes)
    images, captions = model.embed_images(data.test.features), model.embed_captions(data.test.captions)
    assert images.shape == (data.test.n_images, 3) and torch.isfinite(images).all() and torch.isfinite(captions).all()
    assert model.describe()["k"] == 3


def test_asif_ignores_the_pools_and_declares_its_text_encoders(small_synthetic, fake_minilm, tmp_path):
    from bench.models.registry import register_model

    spec = register_model(ASIFModel)
    assert spec.text_encoders == ("minilm",) and not spec.uses_unpaired
    assert spec.paired_only_twin(ASIFConfig()) is None and spec.default_text_encoder("cpu") == "minilm"
    with pytest.raises(BenchError, match="has not been fitted yet"):
        ASIFModel(ASIFConfig()).embed_images(small_synthetic.test.features)
    # the unpaired pools change nothing
    data, paired = small_synthetic, _paired(small_synthetic, 40)
    pools = data.train.subset(np.arange(40, 80), name="unpaired")
    plain, with_pools = ASIFModel(ASIFConfig(k=10)), ASIFModel(ASIFConfig(k=10))
    _fit(plain, paired, data, tmp_path / "a")
    _fit(with_pools, paired, data, tmp_path / "b", UnpairedData(pools.image_ids, pools.features, pools.caption_ids,
                                                                 pools.captions))
    assert torch.equal(plain.embed_captions(data.test.captions), with_pools.embed_captions(data.test.captions))


# -- text encoders both models refuse ---------------------------------------------------------------------
@pytest.mark.parametrize("config_class,model", [(CCAConfig, "cca"), (ASIFConfig, "asif")])
def test_a_text_encoder_learnt_in_training_is_refused_in_one_line(config_class, model):
    with pytest.raises(BenchError) as refused:
        config_class.for_profile("paper", {"text_encoder": "gru"})
    message = str(refused.value)
    assert "\n" not in message and message.startswith(f"{model} needs a fixed text representation")
    with pytest.raises(BenchError, match="unknown text_encoder 'bert'"):
        config_class.for_profile("paper", {"text_encoder": "bert"})


# -- cca ----------------------------------------------------------------------------------------------------
def test_cca_on_minilm_vectors_beats_chance_and_says_so(small_synthetic, fake_minilm, tmp_path):
    data = small_synthetic
    model = CCAModel(CCAConfig.for_profile("cpu", {"text_encoder": "minilm", "dim": "32"}))
    result = _fit(model, _paired(data, 120), data, tmp_path)
    assert model.describe()["text_encoder"] == "minilm" and not any("clamped" in n for n in result.notes)
    assert _rsum(model, data.test) > 2 * _chance_rsum(data.test)
    from bench.models.registry import get_model_spec

    spec = get_model_spec("cca")
    assert spec.text_encoders == ("tfidf", "minilm") and spec.default_text_encoder("cpu") == "tfidf"
    assert spec.unnamed_text_encoder == "tfidf"  # cca's own bag of words keeps the cell names it had


def test_cca_config_hash_of_existing_cells_is_unchanged():
    """The text encoder joined the config later: at tfidf it stays out of the hash, so the committed
    cells keep their identity; any other reading is another cell."""
    from bench.run import Cell

    record = json.loads((REPO / "reports/flickr8k-cpu/records/flickr8k_cca_cpu_overlap_p100_seed0.json").read_text())

    def config_hash(config):
        return Cell("flickr8k", "cca", 100, 0, "overlap", "cpu", None, config).config_hash

    assert config_hash(CCAConfig.for_profile("cpu")) == record["config_hash"]
    assert config_hash(CCAConfig.for_profile("cpu", {"text_encoder": "minilm"})) != record["config_hash"]


def test_cca_refuses_an_empty_vocabulary_at_fit(small_synthetic, tmp_path):
    data = small_synthetic
    model = CCAModel(CCAConfig.for_profile("cpu", {"min_count": "10000000"}))
    with pytest.raises(BenchError) as refused:
        _fit(model, _paired(data, 60), data, tmp_path)
    assert "\n" not in str(refused.value) and "bag of words is empty" in str(refused.value)
    assert "lower cca.min_count" in str(refused.value)


def test_cca_power_is_bounded_and_the_search_space_fits_inside():
    with pytest.raises(BenchError, match=r"cca.power must be in \[0, 16\] \(got 1e\+308\)"):
        CCAConfig.for_profile("cpu", {"power": "1e308"})
    space = CCAConfig.SEARCH_SPACE["power"]
    for power in (space.low, space.high):  # both ends of the tuned range are accepted
        assert CCAConfig(power=power).power == power


@pytest.mark.parametrize("text_encoder", ["tfidf", "minilm"])
def test_cca_clamps_a_dim_the_pairs_cannot_carry_with_a_notice(small_synthetic, fake_minilm, tmp_path, capsys,
                                                               text_encoder):
    data = small_synthetic
    model = CCAModel(CCAConfig.for_profile("cpu", {"dim": "100000", "text_encoder": text_encoder}))
    result = _fit(model, _paired(data, 30), data, tmp_path)
    # 30 paired images carry at most 29 canonical directions (fewer than the 64 feature dimensions)
    assert "notice: cca: dim 100000 clamped to 29" in capsys.readouterr().err
    assert any(note.startswith("dim 100000 clamped to 29") for note in result.notes)
    assert model.embed_images(data.test.features).shape == (data.test.n_images, 29)
    assert _rsum(model, data.test) > 0


@pytest.mark.parametrize("text_encoder", ["tfidf", "minilm"])
def test_cca_with_very_few_pairs_is_finite_or_refused(small_synthetic, fake_minilm, tmp_path, text_encoder):
    data = small_synthetic
    settings = {"text_encoder": text_encoder, "min_count": "1"}
    model = CCAModel(CCAConfig.for_profile("cpu", settings))
    _fit(model, _paired(data, 3), data, tmp_path)
    images, captions = model.embed_images(data.test.features), model.embed_captions(data.test.captions)
    assert images.shape[1] == 2 and torch.isfinite(images).all() and torch.isfinite(captions).all()
    with pytest.raises(BenchError, match="cca needs at least 2 paired images"):
        _fit(CCAModel(CCAConfig.for_profile("cpu", settings)), _paired(data, 1), data, tmp_path)
