"""A list of samples as one batch of tensors, for the dataset-level methods (JigsawGAN): read and
resized once, kept in memory, never re-read per epoch.

The resizing follows the JigsawGAN authors' code (kawaiiblitz/GAN_SelfSupervised @5a8e92f), to
a square whatever the aspect ratio:

- ``"bilinear"``: torchvision's ``Resize((64, 64))`` on a PIL image, i.e. PIL's bilinear filter,
  which widens its support when it shrinks (antialiasing): the authors' pre-training images (and
  the corrected form's fine-tuning images, whose masks are then resized by PIL's NEAREST, which
  samples pixel centres: source row ``floor((i + 0.5) * H / 64)``, rows 3, 11, 19 ... of a 500-row
  image);
- ``"nearest"``: the authors' fine-tuning, ``Resize((64, 64), NEAREST)`` applied to the *tensor*
  of image and trimap stacked (after ``ToTensor``), i.e. ``torch.nn.functional.interpolate`` in
  mode ``nearest``, which samples ``floor(i * H / 64)``: rows 0, 7, 15 ... of a 500-row image,
  for the image and its mask alike. That is not PIL's NEAREST (a half-pixel shift of the grid).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from PIL import Image

from .base import Sample

#: how images are resized: "nearest" (torch's, the authors' fine-tuning) or "bilinear" (PIL's)
RESIZE = ("nearest", "bilinear")


def resize_square(array: np.ndarray, size: int, resample: int) -> np.ndarray:
    """``array`` (H, W) or (H, W, 3) uint8 resized by PIL to ``size`` x ``size``."""
    return np.asarray(Image.fromarray(array).resize((size, size), resample))


def torch_nearest(array: np.ndarray, size: int) -> np.ndarray:
    """``array`` (H, W) or (H, W, C) resized to ``size`` x ``size`` as torchvision's tensor
    ``Resize(NEAREST)`` does (``interpolate(mode="nearest")``: source index ``floor(i * H / size)``).
    Nearest picks pixels, so the dtype and values are kept exactly."""
    t = torch.from_numpy(np.ascontiguousarray(array))
    t = t[None, None] if t.dim() == 2 else t.permute(2, 0, 1)[None]
    out = torch.nn.functional.interpolate(t.float(), size=(size, size), mode="nearest")[0]
    out = out[0] if array.ndim == 2 else out.permute(1, 2, 0)
    return out.round().numpy().astype(array.dtype)


def to_tensors(samples: Sequence[Sample], size: int = 64, image_resize: str = "nearest"
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """uint8 images ``(N, 3, size, size)`` and int64 masks ``(N, size, size)`` of each sample's first
    segmentation, or ``None`` for the masks when no sample has one.

    ``image_resize`` (see the module docstring): "nearest" resizes images and masks alike as the
    authors' fine-tuning does (torch's nearest); "bilinear" resizes images with PIL's
    antialiased bilinear filter and masks with PIL's NEAREST, so they keep their class values.
    Mixing samples with and without ground truth is an error.
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
        nearest = image_resize == "nearest"
        images.append(torch_nearest(s.image, size) if nearest else resize_square(s.image, size, Image.BILINEAR))
        if s.segmentations:
            labels = s.segmentations[0]
            if labels.min() < 0 or labels.max() > 255:
                raise ValueError(f"{s.key}: mask values {labels.min()}..{labels.max()} do not fit in uint8")
            labels = labels.astype(np.uint8)
            masks.append(torch_nearest(labels, size) if nearest else resize_square(labels, size, Image.NEAREST))
    if not images:
        return torch.zeros(0, 3, size, size, dtype=torch.uint8), None
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    y = torch.from_numpy(np.stack(masks).astype(np.int64)) if masks else None
    return x, y
