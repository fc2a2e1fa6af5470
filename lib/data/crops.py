"""Labelled images as training crops and evaluation tensors, for the dataset-level methods that
train on images of any size (SegGAN).

Training draws, per batch element, an image index and a random crop (position and horizontal
flip) from the training loop's own seeded generator (:func:`draw_crops`), then reads the crops
through a ``torch.utils.data.DataLoader`` (:class:`Crops`): every random choice lives in the
loop's checkpointed generator, so a run resumed after an interruption sees the same batches, with
any number of loader workers. An image smaller than the crop is padded: its pixels with ImageNet's
mean colour (zero after the network's normalisation, as DeepLab pads), its labels with
:data:`IGNORE`, which no loss or metric counts.

Label maps in tensors are uint8 / int64 with :data:`IGNORE` (255) for the pixels that do not
count; the datasets' own convention (-1, see ``Sample``) is mapped on reading.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from PIL import Image

from .base import Sample, resize_image

#: label of the pixels that no loss or metric counts (unknown, void, padding)
IGNORE = 255
#: ImageNet's mean colour in 0..255: the padding of images smaller than a crop
PAD_COLOUR = (124, 116, 104)


def label_map(sample: Sample) -> np.ndarray:
    """The sample's first segmentation as uint8 with :data:`IGNORE` for its negative labels; a
    label of 255 or more (which would be mistaken for IGNORE) is an error naming the sample."""
    if not sample.segmentations:
        raise ValueError(f"{sample.key} has no segmentation: training and scoring need labelled images")
    labels = np.asarray(sample.segmentations[0])
    if labels.max() >= IGNORE:
        raise ValueError(f"{sample.key}: label {labels.max()} does not fit below the ignore label {IGNORE}")
    return np.where(labels < 0, IGNORE, labels).astype(np.uint8)


def shrunk(sample: Sample, max_side: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Image (H, W, 3) uint8 and label map (H, W) uint8, the longer side at most ``max_side``
    (image anti-aliased, labels nearest; never enlarged). ``None``: as stored."""
    labels = label_map(sample)
    image = resize_image(sample.image, max_side)
    if image.shape[:2] != labels.shape:
        labels = np.asarray(Image.fromarray(labels).resize(image.shape[1::-1], Image.NEAREST))
    return image, labels


def draw_crops(n_images: int, batch: int, generator: torch.Generator) -> list[tuple[int, float, float, bool]]:
    """One batch of crop keys ``(image index, top, left, flip)``: ``batch`` distinct images when
    there are enough (else with repeats), the crop's position as fractions in [0, 1) of the room
    the image leaves, and a coin for the horizontal flip; all drawn from ``generator``."""
    if n_images < 1:
        raise ValueError("no training images")
    if n_images >= batch:
        index = torch.randperm(n_images, generator=generator)[:batch]
    else:
        index = torch.randint(n_images, (batch,), generator=generator)
    where = torch.rand(batch, 2, generator=generator)
    flip = torch.rand(batch, generator=generator) < 0.5
    return [(int(i), float(t), float(l), bool(f)) for i, (t, l), f in zip(index, where, flip)]


def _pad(image: np.ndarray, labels: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    h, w = labels.shape
    if h >= size and w >= size:
        return image, labels
    hh, ww = max(h, size), max(w, size)
    out_image = np.empty((hh, ww, 3), np.uint8)
    out_image[:] = PAD_COLOUR
    out_labels = np.full((hh, ww), IGNORE, np.uint8)
    out_image[:h, :w], out_labels[:h, :w] = image, labels
    return out_image, out_labels


def crop(image: np.ndarray, labels: np.ndarray, size: int, top: float, left: float,
         flip: bool) -> tuple[np.ndarray, np.ndarray]:
    """The ``size`` x ``size`` crop at fractions ``top``, ``left`` of the room, padded first when
    the image is smaller, mirrored left-right when ``flip``."""
    image, labels = _pad(image, labels, size)
    h, w = labels.shape
    y, x = int(top * (h - size + 1)), int(left * (w - size + 1))
    image, labels = image[y: y + size, x: x + size], labels[y: y + size, x: x + size]
    if flip:
        image, labels = image[:, ::-1], labels[:, ::-1]
    return image, labels


def center_crop(image: np.ndarray, labels: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The central ``size`` x ``size`` crop (padded first when the image is smaller)."""
    return crop(image, labels, size, 0.5, 0.5, False)


class Crops(torch.utils.data.Dataset):
    """Crops of ``samples`` for a DataLoader whose batch sampler yields :func:`draw_crops` keys.

    ``samples``: a list of samples in memory (shrunk once here) or a lazily read ``SampleList``
    (read and shrunk per crop, in the loader's workers). Items: uint8 image (3, size, size) and
    int64 labels (size, size) with :data:`IGNORE`.
    """

    def __init__(self, samples: Sequence[Sample], size: int, max_side: int | None = None):
        self.size, self.max_side = size, max_side
        self.samples = samples
        self.cached = [shrunk(s, max_side) for s in samples] if isinstance(samples, list) else None

    def __len__(self) -> int:
        return len(self.samples)

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.cached[index] if self.cached is not None else shrunk(self.samples[index], self.max_side)

    def __getitem__(self, key: tuple[int, float, float, bool]) -> tuple[torch.Tensor, torch.Tensor]:
        index, top, left, flip = key
        image, labels = crop(*self.read(index), self.size, top, left, flip)
        return (torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1),
                torch.from_numpy(np.ascontiguousarray(labels)).long())


def loader(crops: Crops, batches: list[list[tuple]], workers: int = 0) -> torch.utils.data.DataLoader:
    """A DataLoader reading ``batches`` (lists of crop keys) in order."""
    return torch.utils.data.DataLoader(crops, batch_sampler=batches, num_workers=workers,
                                       persistent_workers=False)
