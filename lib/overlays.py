"""Label maps drawn as images (NumPy arrays, no matplotlib): segments in colour, boundaries on
the image. ``segment`` writes them without importing the plotting stack; ``lib/plots.py``
builds its figures from them.
"""

from __future__ import annotations

import numpy as np

from .metrics import relabel_connected


def colourise(labels: np.ndarray, image: np.ndarray | None = None, segments: bool = True) -> np.ndarray:
    """A label map in colour: each 4-connected segment gets its mean image colour when ``image``
    is given (as Fig. 2 of Kanezaki 2018 shows segments), else a fixed random colour per label."""
    labels = relabel_connected(labels) if segments else np.asarray(labels)
    if image is not None and image.shape[:2] == labels.shape:
        n = int(labels.max()) + 1
        sums = np.stack([np.bincount(labels.ravel(), image[..., c].ravel(), n) for c in range(3)], 1)
        mean = sums / np.bincount(labels.ravel(), minlength=n)[:, None]
        return mean[labels].astype(np.uint8)
    palette = np.random.default_rng(0).integers(0, 256, size=(int(labels.max()) + 1, 3), dtype=np.uint8)
    return palette[labels]


def boundaries_overlay(image: np.ndarray, labels: np.ndarray, colour=(255, 0, 0)) -> np.ndarray:
    """The image with the segment boundaries drawn on it."""
    from skimage.segmentation import find_boundaries

    out = image.copy()
    out[find_boundaries(relabel_connected(labels), mode="inner")] = colour
    return out
