"""A list of samples as one batch of tensors, for the dataset-level methods (JigsawGAN): read and
resized once, kept in memory, never re-read per epoch.

The resizing follows the JigsawGAN authors' code (kawaiiblitz/GAN_SelfSupervised @5a8e92f):
torchvision's ``Resize((64, 64))`` on PIL images, i.e. to a square whatever the aspect ratio, with
PIL's antialiased bilinear filter in the pre-training, and nearest-neighbour resizing of both the
images and the trimaps in the fine-tuning.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from PIL import Image

from .base import Sample

#: PIL's filters; PIL's bilinear filter widens its support when it shrinks (antialiasing), as it
#: does under torchvision's Resize of a PIL image
RESIZE = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR}


def resize_square(array: np.ndarray, size: int, resample: int) -> np.ndarray:
    """``array`` (H, W) or (H, W, 3) uint8 resized by PIL to ``size`` x ``size``."""
    return np.asarray(Image.fromarray(array).resize((size, size), resample))


def to_tensors(samples: Sequence[Sample], size: int = 64, image_resize: str = "nearest"
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """uint8 images ``(N, 3, size, size)`` and int64 masks ``(N, size, size)`` of each sample's first
    segmentation, or ``None`` for the masks when no sample has one.

    ``image_resize``: "nearest" (PIL NEAREST: the authors' fine-tuning, images and trimaps alike) or
    "bilinear" (PIL BILINEAR, antialiased: torchvision's default Resize, the authors' pre-training).
    Masks are always resized nearest, so they keep their class values. Mixing samples with and
    without ground truth is an error.
    """
    if image_resize not in RESIZE:
        raise ValueError(f"image_resize={image_resize!r}: use 'nearest' or 'bilinear'")
    if size < 1:
        raise ValueError(f"size={size}: give the side of the square images in pixels")
    with_gt = [bool(s.segmentations) for s in samples]
    if any(with_gt) and not all(with_gt):
        missing = next(s.key for s, g in zip(samples, with_gt) if not g)
        raise ValueError(f"{missing} has no segmentation while other samples have one: pass labelled samples only")
    images, masks = [], []
    for s in samples:
        images.append(resize_square(s.image, size, RESIZE[image_resize]))
        if s.segmentations:
            labels = s.segmentations[0]
            if labels.min() < 0 or labels.max() > 255:
                raise ValueError(f"{s.key}: mask values {labels.min()}..{labels.max()} do not fit in uint8")
            masks.append(resize_square(labels.astype(np.uint8), size, Image.NEAREST))
    if not images:
        return torch.zeros(0, 3, size, size, dtype=torch.uint8), None
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    y = torch.from_numpy(np.stack(masks).astype(np.int64)) if masks else None
    return x, y
