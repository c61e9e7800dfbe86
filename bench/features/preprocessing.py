"""How an image file becomes a backbone's input tensor, and the two recipes the backbones use."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


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
