"""Encode a folder of images with a backbone into a feature file, ``images.txt`` and the manifest.

Images are the ``.jpg``, ``.jpeg`` and ``.png`` files directly in the folder, sorted by name, hidden
files skipped; row ``i`` of the features belongs to line ``i`` of ``images.txt``. Every file is
written atomically, the manifest last (see :mod:`bench.features.manifest`).
"""

from __future__ import annotations

import io
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from bench import __version__
from bench.errors import BenchError
from bench.features.backbones import Backbone, get_backbone
from bench.features.manifest import IMAGES_FILE, Manifest, _check_images_file_free, _up_to_date, manifest_path
from bench.features.preprocessing import Preprocessing
from bench.io import atomic_write_bytes, atomic_write_json, atomic_write_text, sha256_bytes, sha256_lines

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
DTYPES = ("float16", "float32")


def list_images(image_dir: str | os.PathLike) -> list[str]:
    """File names of the images directly in ``image_dir``, sorted; hidden files skipped."""
    image_dir = Path(image_dir)
    if not image_dir.exists():
        raise BenchError(f"image folder not found: {image_dir}")
    if not image_dir.is_dir():
        raise BenchError(f"{image_dir} is not a folder; --images takes a folder of .jpg/.jpeg/.png files")
    names = sorted(
        entry.name
        for entry in image_dir.iterdir()
        if entry.suffix.lower() in IMAGE_SUFFIXES and not entry.name.startswith(".") and entry.is_file()
    )
    if not names:
        raise BenchError(f"no images (.jpg, .jpeg, .png) in {image_dir}")
    return names


def load_image(path: Path, preprocessing: Preprocessing):
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            return preprocessing(image)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise BenchError(f"cannot read image {path} ({type(error).__name__}: {error}); fix or remove it") from None


def _say(message: str, verbose: bool) -> None:
    if verbose:
        print(message, file=sys.stderr)


def extract_features(
    image_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    backbone: str = "efficientnet_lite0",
    batch_size: int = 32,
    device: str = "cpu",
    progress: bool = True,
    *,
    dtype: str = "float16",
    force: bool = False,
) -> Manifest:
    """Encode every image in ``image_dir`` with ``backbone``; write the features, ``images.txt`` and the manifest.

    Skips the work (and says so, when ``progress``) if the manifest beside ``out_path``
    already matches; ``force=True`` recomputes. ``progress`` also shows a tqdm bar.
    """
    spec = get_backbone(backbone)
    out_path = Path(out_path)
    _check_arguments(out_path, dtype, batch_size)
    image_dir = Path(image_dir)
    names = list_images(image_dir)

    if not force:
        existing = _up_to_date(out_path, spec, dtype, names)
        if existing is not None:
            _say(
                f"{out_path} is up to date ({existing.n_images} images, {existing.backbone}, {existing.dtype}); "
                "skipping (--force recomputes)",
                progress,
            )
            return existing

    images_text = "".join(f"{name}\n" for name in names)
    _check_images_file_free(out_path, images_text)
    from bench.run.provenance import resolve_device

    device = resolve_device(device)
    model, weights_info = spec.load(progress)
    model = model.to(device).eval()
    features = _encode_images(model, spec, image_dir, names, batch_size, device, progress)
    array = _as_dtype(features, spec, names, image_dir, dtype)

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    npy_bytes = buffer.getvalue()
    atomic_write_bytes(out_path, npy_bytes)
    atomic_write_text(out_path.parent / IMAGES_FILE, images_text)
    manifest = _new_manifest(spec, weights_info, dtype, names, out_path, npy_bytes, image_dir, device)
    atomic_write_json(manifest_path(out_path), manifest.to_dict())  # last: marks the run finished
    _say(
        f"wrote {out_path} ({len(names)} x {spec.feature_dim} {dtype}), {out_path.parent / IMAGES_FILE} "
        f"and {manifest_path(out_path)}",
        progress,
    )
    return manifest


def _check_arguments(out_path: Path, dtype: str, batch_size: int) -> None:
    """Refuse, before any image is read, an output that is not a ``.npy`` file, an unknown dtype or an
    empty batch."""
    if out_path.suffix != ".npy":
        raise BenchError(f"the output {out_path} must be a .npy file")
    if dtype not in DTYPES:
        raise BenchError(f"unknown dtype '{dtype}'; use float16 or float32")
    if batch_size < 1:
        raise BenchError(f"batch size must be at least 1, not {batch_size}")


def _encode_images(model: Any, spec: Backbone, image_dir: Path, names: list[str], batch_size: int, device: Any,
                   progress: bool) -> np.ndarray:
    """The float32 features of ``names`` (files in ``image_dir``), ``batch_size`` images per forward pass,
    one row per image in the order of ``names``."""
    import torch
    from tqdm import tqdm

    features = np.empty((len(names), spec.feature_dim), dtype=np.float32)
    with torch.inference_mode(), tqdm(
        total=len(names), unit="img", desc=f"{spec.name}", disable=not progress, file=sys.stderr
    ) as bar:
        for start in range(0, len(names), batch_size):
            batch_names = names[start : start + batch_size]
            batch = torch.stack([load_image(image_dir / name, spec.preprocessing) for name in batch_names])
            output = model(batch.to(device))
            if output.shape != (len(batch_names), spec.feature_dim):
                raise BenchError(
                    f"backbone {spec.name} returned features of shape {tuple(output.shape)}, "
                    f"expected ({len(batch_names)}, {spec.feature_dim})"
                )
            features[start : start + len(batch_names)] = output.float().cpu().numpy()
            bar.update(len(batch_names))
    return features


def _as_dtype(features: np.ndarray, spec: Backbone, names: list[str], image_dir: Path, dtype: str) -> np.ndarray:
    """``features`` in ``dtype``; a NaN or infinite feature (naming its image), or one beyond float16's
    range when storing float16, is an error rather than a silently broken file."""
    if not np.isfinite(features).all():
        bad = np.flatnonzero(~np.isfinite(features).all(axis=1))
        more = f" and {len(bad) - 1} more image(s)" if len(bad) > 1 else ""
        raise BenchError(f"backbone {spec.name} produced NaN or inf features for image {names[int(bad[0])]}{more} "
                         f"in {image_dir}; check that file")
    array = features.astype(dtype)
    if dtype == "float16" and not np.isfinite(array).all():
        raise BenchError("features overflow float16; rerun with --float32")
    return array


def _new_manifest(spec: Backbone, weights_info: dict[str, Any], dtype: str, names: list[str], out_path: Path,
                  npy_bytes: bytes, image_dir: Path, device: Any) -> Manifest:
    """The manifest of features just computed: what made them (backbone, weights, preprocessing, versions)
    and the SHA-256 of the feature file's bytes and of the image list."""
    import torch
    import torchvision

    return Manifest(
        backbone=spec.name,
        weights=weights_info,
        preprocessing=spec.preprocessing.to_dict(),
        feature_dim=spec.feature_dim,
        dtype=dtype,
        n_images=len(names),
        features_file=out_path.name,
        features_sha256=sha256_bytes(npy_bytes),
        images_file=IMAGES_FILE,
        images_sha256=sha256_lines(names),
        image_dir=str(image_dir.resolve()),
        device=str(device),
        torch_version=torch.__version__,
        torchvision_version=torchvision.__version__,
        numpy_version=np.__version__,
        bench_version=__version__,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
