"""The unpaired pools as an axis: shares of the pools (``--unpaired-fractions``) and items from other
sources (``--extra-unpaired-captions`` / ``--extra-unpaired-images``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench.cli import main
from bench.data.extra import load_source
from bench.errors import BenchError
from bench.models import FitContext, UnpairedData
from bench.models.registry import get_model_spec
from bench.splits import subsets
from bench.splits import PairingSplit, PoolSpec, load_split, make_split, verify_file, write_split


@pytest.fixture()
def extra_text(tmp_path):
    path = tmp_path / "extra.txt"
    path.write_text("\n".join(f"an extra caption number {i} about a dog" for i in range(40)) + "\n\n")
    return path


def test_shares_of_the_pools_are_nested_and_zero_is_empty(small_synthetic):
    pools = {share: make_split(small_synthetic, 25, 0, "overlap", PoolSpec(share)) for share in (0, 25, 50, 100)}
    assert pools[100].to_json() == make_split(small_synthetic, 25, 0, "overlap").to_json()  # the plain file
    assert not pools[0].unpaired_image_ids and not pools[0].unpaired_caption_image_ids
    for low, high in ((25, 50), (50, 100)):
        assert set(pools[low].unpaired_image_ids) < set(pools[high].unpaired_image_ids)
        assert set(pools[low].unpaired_caption_image_ids) < set(pools[high].unpaired_caption_image_ids)
    assert len(pools[25].unpaired_image_ids) == 60  # a quarter of 240 training images
    # the paired set never depends on the pools
    assert {tuple(s.paired_image_ids) for s in pools.values()} == {tuple(pools[100].paired_image_ids)}
    assert pools[25].filename == "synthetic_overlap_p25_u25_seed0.json"


def test_disjoint_pools_shrink_too_and_stay_disjoint(small_synthetic):
    split = make_split(small_synthetic, 10, 0, "disjoint", PoolSpec(50))
    full = make_split(small_synthetic, 10, 0, "disjoint")
    assert set(split.unpaired_image_ids) < set(full.unpaired_image_ids)
    assert not set(split.unpaired_image_ids) & set(split.unpaired_caption_image_ids)


def test_extra_captions_join_only_the_unpaired_caption_pool(small_synthetic, extra_text):
    source = load_source(f"lines:{extra_text}", "captions")
    assert len(source) == 40 and source.tag == "lines-text" and source.ids[0] == "lines:1"
    split = make_split(small_synthetic, 25, 0, "overlap", PoolSpec(100, (source,)))
    (extra,) = split.extra_unpaired
    assert extra["kept"] == 40 and extra["file_sha256"] == source.file_sha256 and extra["path"] == str(extra_text)
    assert split.filename == "synthetic_overlap+lines-text_p25_seed0.json"
    paired, unpaired = subsets(small_synthetic, split, PoolSpec(100, (source,)))
    plain_paired, plain_unpaired = subsets(small_synthetic, make_split(small_synthetic, 25, 0))
    assert paired.caption_ids == plain_paired.caption_ids  # nothing extra is ever paired
    assert unpaired.captions == plain_unpaired.captions + source.captions
    assert unpaired.image_ids == plain_unpaired.image_ids
    # a share of the pools cuts the extra source too, nested
    half = make_split(small_synthetic, 25, 0, "overlap", PoolSpec(50, (source,)))
    _, half_unpaired = subsets(small_synthetic, half, PoolSpec(50, (source,)))
    extra_half = [c for c in half_unpaired.caption_ids if c.startswith("lines:")]
    assert len(extra_half) == 20 and set(extra_half) < set(source.ids)
    assert half.extra_unpaired[0]["kept"] == 20


def test_extra_image_features_join_the_unpaired_image_pool(small_synthetic, tmp_path):
    features = np.random.default_rng(0).random((30, small_synthetic.feature_dim)).astype(np.float32)
    np.save(tmp_path / "more.npy", features)
    source = load_source(f"npy:{tmp_path / 'more.npy'}", "images")
    split = make_split(small_synthetic, 25, 0, "overlap", PoolSpec(100, (source,)))
    _, unpaired = subsets(small_synthetic, split, PoolSpec(100, (source,)))
    assert unpaired.n_images == 240 + 30 and unpaired.image_ids[-1] == "npy:29"
    np.testing.assert_array_equal(unpaired.features[-30:], features)


def test_an_extra_source_holding_held_out_items_is_refused(small_synthetic, tmp_path):
    (tmp_path / "leak.txt").write_text("\n".join(small_synthetic.test.captions[:3]))
    with pytest.raises(BenchError, match="3 of its captions are dev or test captions"):
        make_split(small_synthetic, 25, 0, "overlap", PoolSpec(100, (load_source(f"lines:{tmp_path / 'leak.txt'}",
                                                                              "captions"),)))
    np.save(tmp_path / "leak.npy", small_synthetic.dev.features[:2])
    with pytest.raises(BenchError, match="2 rows equal dev or test images"):
        make_split(small_synthetic, 25, 0, "overlap", PoolSpec(100, (load_source(f"npy:{tmp_path / 'leak.npy'}",
                                                                              "images"),)))
    np.save(tmp_path / "narrow.npy", np.zeros((3, 5), dtype=np.float32))
    with pytest.raises(BenchError, match="5-d features"):
        make_split(small_synthetic, 25, 0, "overlap", PoolSpec(100, (load_source(f"npy:{tmp_path / 'narrow.npy'}",
                                                                              "images"),)))


@pytest.mark.parametrize("spec, message", [
    ("nope:x.json", "KIND one of coco, lines"),
    ("coco", "KIND one of coco, lines"),
    ("lines:/no/such/file.txt", "is not found"),
    ("lines:EMPTY", "holds no captions"),
    ("coco:NOTCOCO", "is not valid JSON"),
])
def test_a_bad_extra_source_is_one_clear_error(tmp_path, spec, message):
    (tmp_path / "empty.txt").write_text("\n \n")
    (tmp_path / "notcoco.json").write_text("{")
    spec = spec.replace("EMPTY", str(tmp_path / "empty.txt")).replace("NOTCOCO", str(tmp_path / "notcoco.json"))
    with pytest.raises(BenchError, match=message):
        load_source(spec, "captions")


def test_loading_checks_the_extra_source_and_the_share(small_synthetic, extra_text, tmp_path):
    source = load_source(f"lines:{extra_text}", "captions")
    folder = tmp_path / "splits"
    write_split(make_split(small_synthetic, 25, 0, "overlap", PoolSpec(100, (source,))), folder)
    split, path = load_split(small_synthetic, 25, 0, "overlap", folder, PoolSpec(100, (source,)))
    assert verify_file(path, small_synthetic) == []
    extra_text.write_text(extra_text.read_text() + "one more caption\n")  # the source changed since
    with pytest.raises(BenchError, match="differ from the file"):
        load_split(small_synthetic, 25, 0, "overlap", folder, PoolSpec(100, (load_source(f"lines:{extra_text}",
                                                                                       "captions"),)))
    assert "differs" in " ".join(verify_file(path, small_synthetic))
    with pytest.raises(BenchError, match="--extra-unpaired-captions lines:"):  # no such split file: say how to make it
        load_split(small_synthetic, 10, 0, "overlap", folder, PoolSpec(100, (source,)))
    write_split(make_split(small_synthetic, 25, 0, "overlap", PoolSpec(50)), folder)
    renamed = folder / "synthetic" / "synthetic_overlap_p25_u25_seed0.json"
    (folder / "synthetic" / "synthetic_overlap_p25_u50_seed0.json").rename(renamed)
    with pytest.raises(BenchError, match="keeps 50 % of the unpaired pools, but it is loaded for 25 %"):
        load_split(small_synthetic, 25, 0, "overlap", folder, PoolSpec(25))


@pytest.mark.parametrize("model", ["mine", "jwae"])
def test_at_zero_percent_a_model_trains_exactly_as_on_its_pairs_alone(small_synthetic, fake_minilm, tmp_path, model):
    """The 0 % point of the axis is the paired-only control: no unpaired item reaches the model."""
    spec = get_model_spec(model)
    tiny = {"epochs": "2", "lr_decay_epoch": "5", "text_encoder": "minilm"}
    if model == "mine":
        tiny.update(image_embed_dim="32", image_hidden="32", latent_dim="16", step2_hidden="32", critic_hidden="16",
                    stage1_epochs="1", batch_size="32")
    else:
        tiny.update(embed_size="32", batch_size="32", unpaired_batch_size="32")
    config = spec.config_class.for_profile("quick", tiny)
    split = make_split(small_synthetic, 25, 0, "overlap", PoolSpec(0))
    paired, unpaired = subsets(small_synthetic, split)
    assert unpaired.n_images == unpaired.n_captions == 0
    nothing = UnpairedData([], np.zeros((0, small_synthetic.feature_dim), np.float32), [], [])

    def test_rsum(unpaired_data, workdir):
        from bench.run import test_metrics
        from bench.models.training import seed_everything

        seed_everything(0)
        fitted = spec.factory(config)
        fitted.fit(paired, unpaired_data, FitContext(validation=small_synthetic.dev, workdir=workdir, seed=0))
        return test_metrics(fitted, small_synthetic.test, ["full"])["full"]["rsum"]

    assert test_rsum(unpaired, tmp_path / "a") == test_rsum(nothing, tmp_path / "b")
    # and the pools do reach it at 100 %: otherwise the equality above would say nothing
    _, full_pools = subsets(small_synthetic, make_split(small_synthetic, 25, 0))
    assert test_rsum(full_pools, tmp_path / "c") != test_rsum(nothing, tmp_path / "d")


def test_run_and_report_an_extra_source_and_shares(tmp_path, extra_text, fake_minilm, capsys):
    splits = tmp_path / "splits"
    extra = ["--extra-unpaired-captions", f"lines:{extra_text}"]
    common = ["--fractions", "25", "--splits-dir", str(splits), "--quiet", "--jobs", "1"]
    assert main(["splits", "make", "--fractions", "25", "--unpaired-fractions", "0,100", "--dir", str(splits)]) == 0
    assert main(["splits", "make", "--fractions", "25", *extra, "--dir", str(splits)]) == 0
    out = tmp_path / "run"
    set_short = ["--set", "epochs=1", "--set", "lr_decay_epoch=1", "--set", "mine.stage1_epochs=1"]
    assert main(["run", "--models", "vse,mine", "--unpaired-fractions", "0,100", *common, *set_short,
                 "--out", str(out)]) == 0
    assert main(["run", "--models", "vse,mine", *extra, *common, *set_short, "--out", str(out)]) == 0
    names = sorted(p.stem for p in (out / "records").glob("*.json"))
    assert names == ["synthetic_mine-minilm_quick_overlap+lines-text_p25_seed0", "synthetic_mine-minilm_quick_overlap_p25_seed0",
                     "synthetic_mine-minilm_quick_overlap_p25_u0_seed0", "synthetic_vse-minilm_quick_overlap_p25_seed0"]
    record = json.loads((out / "records" / f"{names[0]}.json").read_text())
    assert record["cell"]["extra_sources"] == ["lines-text"]
    plain = json.loads((out / "records" / f"{names[1]}.json").read_text())
    assert record["data"]["extra_unpaired"][0]["kept"] == 40
    assert record["data"]["unpaired_captions"] == plain["data"]["unpaired_captions"] + 40
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| mine +lines-text " in text and "Unpaired %" in text
    assert (out / "plot.png").stat().st_size > 10_000
    # the run refuses a split whose extra source is missing from the command line
    assert main(["run", "--models", "mine", "--fractions", "25", "--splits-dir", str(splits), "--out", str(out),
                 "--unpaired-fractions", "50"]) == 2
    assert "no split file" in capsys.readouterr().err


@pytest.mark.shared_data
def test_real_coco_captions_as_an_extra_source_for_flickr8k(shared_data):
    from bench.data import load_dataset

    source = load_source(f"coco:{shared_data / 'coco' / 'captions_karpathy_test5k.json'}", "captions")
    assert len(source) == 25_000 and source.tag == "coco-text" and all(i.startswith("coco:") for i in source.ids)
    flickr = load_dataset("flickr8k", shared_data / "flickr8k")
    committed = PairingSplit.from_file(
        __import__("bench.splits", fromlist=["default_splits_dir"]).default_splits_dir()
        / "flickr8k" / "flickr8k_overlap+coco-text_p10_seed0.json")
    committed.check_extras((source,))
    _, unpaired = subsets(flickr, committed, PoolSpec(100, (source,)))
    assert unpaired.n_captions == 30_000 + 25_000 and unpaired.n_images == 6_000
