"""Dataset loaders: real Flickr8k / COCO files, tiny fake trees for errors, precomp round trip."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest

from bench.data import known_datasets, load_dataset
from bench.data.coco import load_coco, read_coco_captions
from bench.data.flickr8k import load_flickr8k
from bench.data.precomp import export_precomp, load_precomp
from bench.data.synthetic import generate
from bench.errors import BenchError

# ------------------------------------------------------------------ real data


@pytest.fixture(scope="module")
def flickr8k(shared_data):
    start = time.perf_counter()
    dataset = load_flickr8k(shared_data / "flickr8k")
    return dataset, time.perf_counter() - start


@pytest.mark.shared_data
def test_flickr8k_real_counts_and_layout(flickr8k):
    dataset, seconds = flickr8k
    assert [s.n_images for s in dataset.splits()] == [6000, 1000, 1000]
    for split in dataset.splits():
        assert split.n_captions == 5 * split.n_images
        assert split.is_vse_layout(5)
        assert split.features.dtype == np.float32
        assert split.features.shape == (split.n_images, 1280)
        assert split.features.min() >= 0 and np.isfinite(split.features).all()
    assert seconds < 5, f"loading Flickr8k took {seconds:.1f}s"  # ~0.4 s here; generous for slow CI


@pytest.mark.shared_data
def test_flickr8k_real_drops_are_counted(flickr8k):
    dataset, _ = flickr8k
    text = "\n".join(dataset.messages)
    # 104 caption keys (505 lines) that are not Flickr8k images: one "….jpg.1" key and
    # the "e…" names, most of which do have captions in this copy of the token file.
    assert "dropped 505 caption lines of 104 names" in text
    assert "2258277193_586949ec62.jpg.1" in text
    assert "dropped 74/13/13 names from the train/dev/test lists" in text
    assert "91 of the 8091 images are in no split list" in text


@pytest.mark.shared_data
def test_flickr8k_real_ids_order_and_features(flickr8k, shared_data):
    dataset, _ = flickr8k
    all_images = [i for s in dataset.splits() for i in s.image_ids]
    assert len(set(all_images)) == len(all_images) == 8000  # unique and disjoint across splits
    all_captions = [c for s in dataset.splits() for c in s.caption_ids]
    assert len(set(all_captions)) == len(all_captions) == 40000
    assert all(re.fullmatch(r"\d+_[0-9a-f]+\.jpg", i) for i in all_images)

    root = shared_data / "flickr8k"
    test_list = [n.strip() for n in (root / "captions/Flickr_8k.testImages.txt").read_text().split("\n")]
    assert dataset.test.image_ids == [n for n in test_list if n and not n.startswith("e")]
    first = dataset.train.image_ids[0]
    assert dataset.train.caption_ids[:5] == [f"{first}#{n}" for n in range(5)]
    assert dataset.train.captions[0] == "A black dog is running after a white dog in the snow ."

    # float16 on disk -> the same values as float32, row matched by name.
    names = (root / "features/images.txt").read_text().split()
    raw = np.load(root / "features/efficientnet_lite0.npy")
    row = names.index(dataset.dev.image_ids[7])
    np.testing.assert_array_equal(dataset.dev.features[7], raw[row].astype(np.float32))

    assert dataset.source["features"] == "efficientnet_lite0.npy"
    assert re.fullmatch(r"[0-9a-f]{64}", dataset.source["features_sha256"])
    assert re.fullmatch(r"[0-9a-f]{64}", dataset.source["token_sha256"])


@pytest.mark.shared_data
def test_flickr8k_through_registry(shared_data):
    assert {"flickr8k", "coco", "precomp", "synthetic"} <= set(known_datasets())
    dataset = load_dataset("flickr8k", shared_data / "flickr8k")
    assert dataset.name == "flickr8k" and dataset.test.n_images == 1000


@pytest.mark.shared_data
def test_read_coco_captions_real_karpathy_test(shared_data, capsys):
    captions = read_coco_captions(shared_data / "coco/captions_karpathy_test5k.json")
    assert capsys.readouterr().out == ""  # pycocotools' progress prints are kept off stdout
    assert len(captions) == 5000
    assert sum(len(c) for c in captions.values()) == 25000
    for image_id, entries in captions.items():
        assert isinstance(image_id, int) and len(entries) == 5
        ann_ids = [ann_id for ann_id, _ in entries]
        assert ann_ids == sorted(ann_ids) and all(isinstance(a, int) for a in ann_ids)
        assert all(isinstance(t, str) and t and "\n" not in t and t == t.strip() for _, t in entries)
    assert captions[391895][0] == (770337, "A man with a red helmet on a small moped on a dirt road .")


# ------------------------------------------------------- fake Flickr8k trees

FAKE_SPLITS = {
    "train": ["1000_aa.jpg", "1001_ab.jpg", "1002_ac.jpg"],
    "dev": ["2000_ba.jpg"],
    "test": ["3000_ca.jpg", "3001_cb.jpg"],
}


def make_flickr_tree(root: Path, *, flat: bool = False, features: bool = True, dim: int = 4) -> Path:
    """A tiny Flickr8k copy with the junk real copies have: a ``.jpg.1`` key and ``e`` names."""
    text_dir = root if flat else root / "captions"
    text_dir.mkdir(parents=True, exist_ok=True)
    images = sorted(n for names in FAKE_SPLITS.values() for n in names) + ["9999_ff.jpg"]  # one unused
    lines = []
    for name in images:
        for n in (4, 0, 3, 1, 2):  # out of order: the loader sorts by #N
            lines.append(f"{name}#{n}\tcaption {n} of {name} .")
    lines += [f"1000_aa.jpg.1#{n}\tjunk {n}" for n in range(5)]
    lines += [f"e12_34.png#{n}\textra {n}" for n in range(5)]
    (text_dir / "Flickr8k.token.txt").write_text("\n".join(lines) + "\n")
    for split, names in FAKE_SPLITS.items():
        extra = ["e12_34.png "] if split == "train" else []  # trailing space, as in real copies
        (text_dir / f"Flickr_8k.{split}Images.txt").write_text("\n".join(names[:1] + extra + names[1:]) + "\n")
    if features:
        (root / "features").mkdir()
        (root / "features/images.txt").write_text("\n".join(images) + "\n")
        values = np.arange(len(images) * dim, dtype=np.float16).reshape(len(images), dim)
        np.save(root / "features/efficientnet_lite0.npy", values)
    return root


@pytest.mark.parametrize("flat", [False, True])
def test_flickr8k_fake_tree(tmp_path, flat):
    dataset = load_flickr8k(make_flickr_tree(tmp_path, flat=flat))
    assert dataset.train.image_ids == FAKE_SPLITS["train"]
    assert dataset.test.image_ids == FAKE_SPLITS["test"]
    assert dataset.train.caption_ids[:5] == [f"1000_aa.jpg#{n}" for n in range(5)]
    assert dataset.train.captions[2] == "caption 2 of 1000_aa.jpg ."
    assert all(s.is_vse_layout(5) for s in dataset.splits())
    # images.txt is sorted, so 1000_aa.jpg is row 0 and 2000_ba.jpg row 3.
    np.testing.assert_array_equal(dataset.dev.features, [[12, 13, 14, 15]])
    assert dataset.dev.features.dtype == np.float32
    assert dataset.messages[0].startswith("dropped 10 caption lines of 2 names")
    assert "dropped 1/0/0 names" in dataset.messages[1]
    assert "1 of the 7 images are in no split list" in dataset.messages[2]


def test_flickr8k_missing_files_name_the_path(tmp_path):
    root = make_flickr_tree(tmp_path)
    (root / "captions/Flickr_8k.devImages.txt").unlink()
    with pytest.raises(BenchError, match=r"Flickr_8k\.devImages\.txt"):
        load_flickr8k(root)
    (root / "captions/Flickr8k.token.txt").unlink()
    with pytest.raises(BenchError, match=re.escape(str(root / "captions/Flickr8k.token.txt"))):
        load_flickr8k(root)


def test_flickr8k_feature_errors(tmp_path):
    root = make_flickr_tree(tmp_path)
    names = (root / "features/images.txt").read_text().split()
    (root / "features/images.txt").write_text("\n".join(names[:-1]) + "\n")
    with pytest.raises(BenchError, match=r"has 7 rows but .*images\.txt names 6 images"):
        load_flickr8k(root)

    # A real-looking split image without a feature row is an error, not a silent drop.
    np.save(root / "features/efficientnet_lite0.npy", np.zeros((6, 4), np.float16))
    (root / "features/images.txt").write_text("\n".join(n for n in names if n != "2000_ba.jpg") + "\n")
    with pytest.raises(BenchError, match=r"dev image 2000_ba\.jpg .*has no row"):
        load_flickr8k(root)

    (root / "features/images.txt").unlink()
    with pytest.raises(BenchError, match=r"images\.txt not found"):
        load_flickr8k(root)


def test_flickr8k_feature_file_choice(tmp_path):
    root = make_flickr_tree(tmp_path)
    np.save(root / "features/other.npy", np.ones((7, 3), np.float32))
    assert load_flickr8k(root).feature_dim == 4  # efficientnet_lite0.npy is the default
    dataset = load_flickr8k(root, features="other")
    assert dataset.feature_dim == 3 and dataset.source["features"] == "other.npy"
    with pytest.raises(BenchError, match=r"not found \(available: efficientnet_lite0\.npy, other\.npy\)"):
        load_flickr8k(root, features="resnet152")
    (root / "features/efficientnet_lite0.npy").unlink()
    np.save(root / "features/third.npy", np.ones((7, 3), np.float32))
    with pytest.raises(BenchError, match=r"several feature files .*features=NAME"):
        load_flickr8k(root)


def test_flickr8k_images_without_features_say_how_to_extract(tmp_path):
    root = make_flickr_tree(tmp_path, features=False)
    (root / "images").mkdir()
    (root / "images/1000_aa.jpg").write_bytes(b"")
    with pytest.raises(BenchError, match=r"bench features extract --images .*images --out .*efficientnet_lite0\.npy"):
        load_flickr8k(root)
    (root / "images/1000_aa.jpg").unlink()
    with pytest.raises(BenchError, match=r"no features in"):
        load_flickr8k(root)


def test_flickr8k_bad_caption_lines(tmp_path):
    root = make_flickr_tree(tmp_path)
    token = root / "captions/Flickr8k.token.txt"
    good = token.read_text()
    token.write_text(good + "3000_ca.jpg#0\trepeated caption\n")
    with pytest.raises(BenchError, match=r"caption 3000_ca\.jpg#0 twice"):
        load_flickr8k(root)
    token.write_text(good + "no tab here\n")
    with pytest.raises(BenchError, match=r"line 46 is not 'IMAGE\.jpg#N<TAB>caption'"):
        load_flickr8k(root)


# ------------------------------------------------------------ fake COCO tree

# COCO id -> (file, number of captions). 103 has 6 captions, trimmed to 5.
COCO_IMAGES = {
    101: ("train2014", 5), 102: ("train2014", 5), 103: ("train2014", 6),
    201: ("val2014", 5), 202: ("val2014", 5), 203: ("val2014", 5), 204: ("val2014", 7),
}
KARPATHY = {"train": [102, 101, 103], "val": [201], "test": [202, 203], "restval": [204]}


def coco_file_name(image_id: int) -> str:
    return f"COCO_{COCO_IMAGES[image_id][0]}_{image_id:012d}.jpg"


def make_coco_tree(root: Path, *, karpathy_json: bool = True) -> Path:
    (root / "annotations").mkdir(parents=True)
    for folder in ("train2014", "val2014"):
        ids = [i for i, (f, _) in COCO_IMAGES.items() if f == folder]
        annotations = []
        for image_id in ids:
            for k in range(COCO_IMAGES[image_id][1]):
                # Annotation ids decrease with k, so "first 5 by id" differs from file order.
                annotations.append({"id": image_id * 100 - k, "image_id": image_id, "caption": f"img {image_id} cap {k}\n"})
        content = {"images": [{"id": i, "file_name": coco_file_name(i)} for i in ids], "annotations": annotations}
        (root / f"annotations/captions_{folder}.json").write_text(json.dumps(content))
    if karpathy_json:
        entries = [{"split": split, "cocoid": i, "filename": coco_file_name(i)} for split, ids in KARPATHY.items() for i in ids]
        (root / "dataset_coco.json").write_text(json.dumps({"images": entries, "dataset": "coco"}))
        names = [coco_file_name(i) for i in sorted(COCO_IMAGES)]  # file names in images.txt
    else:
        for split, ids in KARPATHY.items():
            (root / f"karpathy_{split}_ids.txt").write_text("".join(f"{i}\n" for i in ids))
        names = [str(i) for i in sorted(COCO_IMAGES)]  # bare ids in images.txt
    (root / "features").mkdir()
    (root / "features/images.txt").write_text("\n".join(names) + "\n")
    features = np.array([[i, i % 7, 1.0] for i in sorted(COCO_IMAGES)], dtype=np.float16)
    np.save(root / "features/resnet.npy", features)
    return root


@pytest.mark.parametrize("karpathy_json", [True, False])
def test_coco_fake_tree(tmp_path, karpathy_json, capsys):
    root = make_coco_tree(tmp_path, karpathy_json=karpathy_json)
    dataset = load_coco(root)
    assert capsys.readouterr().out == ""
    assert dataset.train.image_ids == ["102", "101", "103"]
    assert dataset.dev.image_ids == ["201"] and dataset.test.image_ids == ["202", "203"]
    assert all(s.is_vse_layout(5) for s in dataset.splits())
    # First 5 by annotation id: 10295..10299 for image 103 (10300, first in the file, is left out).
    assert dataset.train.caption_ids[10:15] == [str(a) for a in range(10295, 10300)]
    assert dataset.train.captions[10] == "img 103 cap 5"  # trailing newline stripped
    np.testing.assert_array_equal(dataset.train.features[:, 0], [102, 101, 103])
    assert dataset.source["features"] == "resnet.npy"
    text = "\n".join(dataset.messages)
    assert "left out the 1 Karpathy restval images" in text
    assert "left out 1 captions of 1 images" in text

    with_restval = load_coco(root, restval=True)
    assert with_restval.train.image_ids == ["102", "101", "103", "204"]
    assert with_restval.train.captions_per_image().tolist() == [5, 5, 5, 5]
    assert "left out 3 captions of 2 images" in "\n".join(with_restval.messages)


def test_coco_split_sources_agree(tmp_path):
    from_json = load_coco(make_coco_tree(tmp_path / "a", karpathy_json=True), restval=True)
    from_lists = load_coco(make_coco_tree(tmp_path / "b", karpathy_json=False), restval=True)
    assert from_json.content_sha256 == from_lists.content_sha256


def test_coco_errors(tmp_path):
    root = make_coco_tree(tmp_path, karpathy_json=False)
    (root / "karpathy_restval_ids.txt").unlink()
    assert load_coco(root).train.n_images == 3  # restval list needed only with restval=True
    with pytest.raises(BenchError, match=r"karpathy_restval_ids\.txt not found"):
        load_coco(root, restval=True)
    for split in ("train", "val", "test"):
        (root / f"karpathy_{split}_ids.txt").unlink()
    with pytest.raises(BenchError, match=r"no Karpathy split .*dataset_coco\.json"):
        load_coco(root)
    (root / "annotations/captions_val2014.json").unlink()
    with pytest.raises(BenchError, match=re.escape(str(root / "annotations/captions_val2014.json"))):
        load_coco(root)
    with pytest.raises(BenchError, match=r"not found"):
        read_coco_captions(root / "annotations/nothing.json")
    (root / "broken.json").write_text("{not json")
    with pytest.raises(BenchError, match=r"not valid JSON"):
        read_coco_captions(root / "broken.json")


def test_coco_feature_errors(tmp_path):
    root = make_coco_tree(tmp_path)
    names = (root / "features/images.txt").read_text().split()
    (root / "features/images.txt").write_text("\n".join(names[:-1] + ["COCO_val2014_000000999999.jpg"]) + "\n")
    with pytest.raises(BenchError, match=r"line 7: 'COCO_val2014_000000999999\.jpg' is neither"):
        load_coco(root)
    (root / "features/images.txt").write_text("\n".join(n for n in names if "000000000201" not in n) + "\n")
    with pytest.raises(BenchError, match=r"has 7 rows"):
        load_coco(root)
    np.save(root / "features/resnet.npy", np.zeros((6, 3), np.float32))
    with pytest.raises(BenchError, match=r"dev image 201 has no row"):
        load_coco(root)


# ------------------------------------------------------------------- precomp


def small_synthetic(seed: int = 1):
    return generate(seed=seed, n_train=20, n_dev=6, n_test=6, feature_dim=16)


def assert_same_splits(a, b):
    for x, y in zip(a.splits(), b.splits()):
        assert x.image_ids == y.image_ids
        assert x.caption_ids == y.caption_ids
        assert x.captions == y.captions
        np.testing.assert_array_equal(x.caption_to_image, y.caption_to_image)
        assert x.features.dtype == y.features.dtype == np.float32
        assert x.features.tobytes() == y.features.tobytes()


def test_precomp_round_trip(tmp_path):
    dataset = small_synthetic()
    written = export_precomp(dataset, tmp_path)
    assert sorted(p.name for p in written) == sorted(
        f"{s}_{part}" for s in ("train", "dev", "test") for part in ("ims.npy", "caps.txt", "ids.txt")
    )
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind
    loaded = load_dataset("precomp", tmp_path)
    assert_same_splits(dataset, loaded)
    assert loaded.content_sha256 == dataset.content_sha256
    assert loaded.messages == ()


def test_precomp_export_subset_for_partial_pairing(tmp_path):
    dataset = small_synthetic()
    keep = [dataset.train.image_ids[i] for i in (7, 2, 11)]
    export_precomp(dataset, tmp_path, image_ids={"train": keep})
    loaded = load_precomp(tmp_path)
    assert loaded.train.image_ids == keep
    rows = [dataset.train.image_index[i] for i in keep]
    np.testing.assert_array_equal(loaded.train.features, dataset.train.features[rows])
    assert loaded.train.captions == [dataset.train.captions[5 * r + k] for r in rows for k in range(5)]
    assert loaded.test.image_ids == dataset.test.image_ids

    with pytest.raises(BenchError, match=r"not in that split"):
        export_precomp(dataset, tmp_path, image_ids={"train": ["nope"]})
    with pytest.raises(BenchError, match=r"not exported"):
        export_precomp(dataset, tmp_path, splits=("dev",), image_ids={"train": keep})


def test_precomp_export_replaces_newlines_and_needs_vse_layout(tmp_path):
    dataset = small_synthetic()
    captions = list(dataset.dev.captions)
    captions[3] = "a dog\non the\r\nbeach"
    dev = dataclasses.replace(dataset.dev, captions=captions)
    export_precomp(dataclasses.replace(dataset, dev=dev), tmp_path)
    loaded = load_precomp(tmp_path)
    assert loaded.dev.captions[3] == "a dog on the beach"
    assert loaded.dev.n_captions == dataset.dev.n_captions

    three = generate(seed=1, n_train=5, n_dev=2, n_test=2, captions_per_image=3)
    with pytest.raises(BenchError, match=r"VSE layout"):
        export_precomp(three, tmp_path / "three")
    export_precomp(three, tmp_path / "three", captions_per_image=3)
    assert_same_splits(three, load_precomp(tmp_path / "three", captions_per_image=3))


def test_precomp_vse_files_without_ids(tmp_path):
    """Files as VSE++/SCAN ship them: no ids, dev as val, test as testall, repeated rows."""
    dataset = small_synthetic()
    export_precomp(dataset, tmp_path)
    for path in tmp_path.glob("*_ids.txt"):
        path.unlink()
    for part in ("ims.npy", "caps.txt"):
        (tmp_path / f"dev_{part}").rename(tmp_path / f"val_{part}")
        (tmp_path / f"test_{part}").rename(tmp_path / f"testall_{part}")
    # One row per caption in train.
    np.save(tmp_path / "train_ims.npy", np.repeat(dataset.train.features, 5, axis=0))

    loaded = load_precomp(tmp_path)
    assert loaded.dev.image_ids[:2] == ["dev-000000", "dev-000001"]
    assert loaded.test.caption_ids[:2] == ["test-000000#0", "test-000000#1"]
    np.testing.assert_array_equal(loaded.train.features, dataset.train.features)
    assert loaded.train.captions == dataset.train.captions
    text = "\n".join(loaded.messages)
    assert "repeated 5 times" in text and "from val_ims.npy" in text and "from testall_ims.npy" in text

    # testall is used only when there is no test.
    export_precomp(dataset, tmp_path, splits=("test",))
    assert load_precomp(tmp_path).test.image_ids == dataset.test.image_ids


def test_precomp_region_features_are_averaged(tmp_path):
    dataset = small_synthetic()
    export_precomp(dataset, tmp_path)
    regions = np.stack([dataset.dev.features, 3 * dataset.dev.features], axis=1)  # (n, 2 regions, d)
    np.save(tmp_path / "dev_ims.npy", regions)
    loaded = load_precomp(tmp_path)
    np.testing.assert_allclose(loaded.dev.features, 2 * dataset.dev.features, rtol=1e-6)
    assert "averaged the 2 region vectors" in "\n".join(loaded.messages)


def test_precomp_errors(tmp_path):
    dataset = small_synthetic()
    export_precomp(dataset, tmp_path)
    np.save(tmp_path / "dev_ims.npy", dataset.dev.features[:-1])
    with pytest.raises(BenchError, match=r"dev_ims\.npy has 5 rows but dev_caps\.txt has 30 captions"):
        load_precomp(tmp_path)
    for part in ("ims.npy", "caps.txt", "ids.txt"):
        (tmp_path / f"dev_{part}").unlink()
    with pytest.raises(BenchError, match=r"dev split not found .*dev_ims\.npy or val_ims\.npy"):
        load_precomp(tmp_path)


# ---------------------------------------------------------------- synthetic


def test_synthetic_is_deterministic():
    a = generate(seed=3, n_train=50, n_dev=10, n_test=10)
    b = generate(seed=3, n_train=50, n_dev=10, n_test=10)
    c = generate(seed=4, n_train=50, n_dev=10, n_test=10)
    for x, y, z in zip(a.splits(), b.splits(), c.splits()):
        assert x.features.tobytes() == y.features.tobytes()
        assert x.captions == y.captions and x.image_ids == y.image_ids
        assert x.features.tobytes() != z.features.tobytes()
        assert x.captions != z.captions
    assert a.content_sha256 == b.content_sha256 != c.content_sha256


def _synthetic_digest(dataset) -> str:
    """SHA-256 of every split's ids, caption texts, caption->image map and feature bytes."""
    import hashlib

    digest = hashlib.sha256()
    for split in dataset.splits():
        digest.update(split.name.encode())
        digest.update(split.features.tobytes())
        digest.update(str(split.features.shape).encode())
        for part in (split.image_ids, split.caption_ids, split.captions):
            digest.update("\n".join(part).encode())
        digest.update(split.caption_to_image.tobytes())
    return digest.hexdigest()


# Digests of the generator's output before the `standard` preset became the default, computed
# with that code (commit 111948a~1): the `easy` preset must reproduce it byte for byte. The
# features go through a float32 matrix product, whose last bits depend on the CPU's kernels, so
# the digests are per numeric platform (bench.run.provenance.numeric_platform). AVX2: the old code, run from
# git history on an AVX2 machine on 2026-11-29, gave these digests, and so did the easy preset.
EASY_DIGESTS = {
    "AVX512": {"default": "34e09c2b0ad625e6abf5766fa6966c68abe2c8bb2fa8dc165305b3c844630163",
               "small": "bf428a7be32adb4b7b0ea4c6f588df8bf2c50bbe84957a758c9ace62c9839473"},
    "AVX2": {"default": "305b08a2ed333c29c457785a56a1b0485b92846a38aaadec5c1706edd4a4f7b3",
             "small": "ee6ac7aade3496edfe4f3d34b62022870381ff0b8b50c77f8fbed4e483dc6046"},
    # torch's AVX-512 kernels with numpy's OpenBLAS held to Haswell (OPENBLAS_CORETYPE): the old code,
    # run from git history on such a machine on 2026-12-04, gave the AVX2 digests, as the easy preset does
    "AVX512/Haswell": {"default": "305b08a2ed333c29c457785a56a1b0485b92846a38aaadec5c1706edd4a4f7b3",
                       "small": "ee6ac7aade3496edfe4f3d34b62022870381ff0b8b50c77f8fbed4e483dc6046"},
}


def test_synthetic_easy_preset_is_the_original_generator():
    from conftest import pins_for, skip_unpinned

    platform, digests = pins_for(EASY_DIGESTS)
    if digests is None:
        skip_unpinned(platform, "EASY_DIGESTS in tests/test_datasets.py",
                      "git show 111948a~1:bench/data/synthetic.py, whose digests must equal the easy preset's")
    assert _synthetic_digest(generate(seed=3, n_train=50, n_dev=10, n_test=10, feature_dim=16, preset="easy")) \
        == digests["small"]
    assert _synthetic_digest(generate(preset="easy")) == digests["default"]
    assert _synthetic_digest(load_dataset("synthetic", preset="easy")) == digests["default"]


def test_synthetic_presets_share_ids_and_knobs_override_the_preset():
    standard, easy = generate(n_train=40, n_dev=8, n_test=8), generate(n_train=40, n_dev=8, n_test=8, preset="easy")
    assert standard.source["options"]["preset"] == "standard"
    assert standard.ids_sha256 == easy.ids_sha256  # the committed split files fit every preset
    assert standard.content_sha256 != easy.content_sha256
    noisier = generate(n_train=40, n_dev=8, n_test=8, noise=2.0)
    assert noisier.source["options"]["noise"] == 2.0
    assert noisier.train.captions == standard.train.captions  # image knobs leave the captions alone
    assert noisier.train.features.tobytes() != standard.train.features.tobytes()
    with pytest.raises(BenchError, match="unknown synthetic preset"):
        generate(preset="hard")
    with pytest.raises(BenchError, match="unknown synthetic option"):
        generate(nois=1.0)
    with pytest.raises(BenchError, match="probability"):
        generate(attribute_drop=1.5)
