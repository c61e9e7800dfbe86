"""Split files: nesting, determinism, policies, leakage, hash checks, verify."""

from __future__ import annotations

import re

import json

import pytest

from bench.cli import main
from bench.errors import BenchError
from bench.splits import (
    PairingSplit,
    default_splits_dir,
    load_split,
    make_split,
    parse_fraction,
    verify_file,
    write_split,
)


def test_paired_sets_are_nested_and_sized(small_synthetic):
    sets = {f: set(make_split(small_synthetic, f, seed=0).paired_image_ids) for f in (100, 50, 25, 10)}
    assert sets[10] < sets[25] < sets[50] < sets[100] == set(small_synthetic.train.image_ids)
    assert [len(sets[f]) for f in (100, 50, 25, 10)] == [240, 120, 60, 24]


def test_same_seed_same_file_other_seed_other_set(small_synthetic, tmp_path):
    a = make_split(small_synthetic, 25, seed=0).to_json()
    b = make_split(small_synthetic, 25, seed=0).to_json()
    c = make_split(small_synthetic, 25, seed=1)
    assert a == b
    assert set(json.loads(a)["paired_image_ids"]) != set(c.paired_image_ids)


def test_overlap_policy_hides_links_but_keeps_everything(small_synthetic):
    split = make_split(small_synthetic, 10, seed=0, policy="overlap")
    assert split.unpaired_image_ids == small_synthetic.train.image_ids
    assert split.unpaired_caption_image_ids == small_synthetic.train.image_ids
    assert len(split.unpaired_caption_ids(small_synthetic)) == small_synthetic.train.n_captions


def test_disjoint_policy_has_no_hidden_pair(small_synthetic):
    for fraction in (100, 50, 25, 10):
        split = make_split(small_synthetic, fraction, seed=0, policy="disjoint")
        paired, images, captions = map(set, (split.paired_image_ids, split.unpaired_image_ids,
                                             split.unpaired_caption_image_ids))
        assert not (paired & images) and not (paired & captions) and not (images & captions)
        assert paired | images | captions == set(small_synthetic.train.image_ids)
    # The coin per image is fixed, so the pools shrink as the paired set grows.
    low, high = (make_split(small_synthetic, f, 0, "disjoint") for f in (10, 50))
    assert set(high.unpaired_image_ids) <= set(low.unpaired_image_ids)


def test_leakage_of_held_out_images_is_refused(small_synthetic):
    split = make_split(small_synthetic, 50, seed=0)
    leaky = PairingSplit(**{**split.__dict__, "paired_image_ids": split.paired_image_ids + [small_synthetic.test.image_ids[0]]})
    with pytest.raises(BenchError, match="leaks held-out"):
        leaky.check_matches(small_synthetic)


def test_split_for_other_data_is_refused(small_synthetic, small_splits):
    from bench.data.synthetic import generate

    other = generate(seed=0, n_train=250, n_dev=60, n_test=60, feature_dim=64, preset="easy")
    with pytest.raises(BenchError, match="was made for dataset"):
        load_split(other, 50, 0, "overlap", small_splits)


def test_verify_catches_an_edited_file(small_synthetic, small_splits):
    path = small_splits / "synthetic" / "synthetic_overlap_p25_seed0.json"
    assert verify_file(path, small_synthetic) == []
    data = json.loads(path.read_text())
    data["paired_image_ids"] = sorted(set(data["paired_image_ids"]) ^ {small_synthetic.train.image_ids[0]})
    path.write_text(json.dumps(data))
    assert verify_file(path, small_synthetic)


@pytest.mark.parametrize("bad", ["0", "-5", "150", "abc"])
def test_bad_fraction_is_a_clear_error(bad):
    with pytest.raises(BenchError):
        parse_fraction(bad)


def test_committed_synthetic_splits_verify(capsys):
    assert main(["splits", "verify", "--dataset", "synthetic"]) == 0
    assert "match their recomputed splits" in capsys.readouterr().out
    names = sorted(p.name for p in (default_splits_dir() / "synthetic").glob("*.json"))
    assert len(names) == 12  # fractions 100, 50, 25, 10 x seeds 0, 1, 2


@pytest.mark.shared_data
def test_committed_flickr8k_splits_verify(shared_data, capsys):
    assert main(["splits", "verify", "--dataset", "flickr8k", "--root", str(shared_data / "flickr8k")]) == 0
    for policy in ("overlap", "disjoint"):  # fractions 100, 50, 25, 10, 5, 2, 1 x seeds 0, 1, 2, each
        plain = re.compile(rf"flickr8k_{policy}_p\d+_seed\d\.json")  # not the pool variants (_u25, +coco-text)
        assert sum(bool(plain.fullmatch(p.name)) for p in (default_splits_dir() / "flickr8k").iterdir()) == 21


@pytest.mark.parametrize("policy", ["overlap", "disjoint"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_committed_flickr8k_few_pair_splits_are_nested(policy, seed):
    """The few-pair fractions (issue 37): 1 % of Flickr8k's 6,000 training images is 60 paired images,
    and every smaller paired set sits inside the larger ones down from 10 %."""
    folder = default_splits_dir() / "flickr8k"
    paired = {f: set(PairingSplit.from_file(folder / f"flickr8k_{policy}_p{f}_seed{seed}.json").paired_image_ids)
              for f in (10, 5, 2, 1)}
    assert {f: len(ids) for f, ids in paired.items()} == {10: 600, 5: 300, 2: 120, 1: 60}
    assert paired[1] <= paired[2] <= paired[5] <= paired[10]


def test_cli_make_then_verify(tmp_path, capsys):
    args = ["--fractions", "50,10", "--seeds", "3", "--dir", str(tmp_path), "--policy", "disjoint"]
    assert main(["splits", "make", *args]) == 0
    assert main(["splits", "verify", "--dir", str(tmp_path)]) == 0
    assert main(["splits", "make", "--fractions", "150", "--dir", str(tmp_path)]) == 2
    assert "outside (0, 100]" in capsys.readouterr().err


def test_export_precomp_cuts_train_to_the_paired_images(tmp_path, capsys):
    from bench.data import load_dataset
    from bench.data.precomp import load_precomp

    assert main(["data", "export-precomp", "--fraction", "25", "--seed", "1", "--out", str(tmp_path)]) == 0
    exported = load_precomp(tmp_path)
    synthetic = load_dataset("synthetic")
    split = PairingSplit.from_file(default_splits_dir() / "synthetic" / "synthetic_overlap_p25_seed1.json")
    assert exported.train.image_ids == split.paired_image_ids
    assert exported.test.captions == synthetic.test.captions
