"""Synthetic scenes whose ground truth is exact, for runs with no download.

Each scene is painted from a seed: a sky and a textured ground split by a wavy horizon, then a
few objects (ellipses, rectangles, triangles), some made of two parts of different colours,
all under Gaussian noise. Two "annotators" describe each scene, as BSDS500's humans do at
different granularities:

- *fine*: every painted part is its own segment;
- *coarse*: an object's parts are merged into one segment.

Because the label maps are the painting masks themselves, every metric on these images has an
exact reference, and the Kim protocol's Fine/Coarse split is meaningful on them.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..runtime import stable_seed
from .base import Sample, SampleList, require_ids


class SyntheticScenes(SampleList):
    """``n`` generated scenes of ``size`` pixels (height, width); ``seed`` fixes them all."""

    def __init__(
        self,
        n: int = 6,
        size: Sequence[int] = (120, 180),
        seed: int = 0,
        noise: float = 6.0,
        ids: Sequence[str] | None = None,
        limit: int | None = None,
        root=None,  # accepted for a uniform registry signature; built-in data needs no root
    ):
        if n < 1:
            raise ValueError(f"n={n}: ask for at least one synthetic scene")
        if len(size) != 2 or min(size) < 16:
            raise ValueError(f"size={size}: give (height, width), each at least 16 pixels")
        self.size = (int(size[0]), int(size[1]))
        self.seed, self.noise = seed, noise
        self.name = "synthetic"
        self.ids = require_ids(ids, [f"scene{i:02d}" for i in range(n)], "synthetic scenes")
        if limit is not None and limit >= 0:
            self.ids = self.ids[:limit]

    def _read(self, image_id: str) -> Sample:
        image, fine, coarse = paint_scene(self.size, stable_seed("synthetic", self.seed, image_id), self.noise)
        return Sample(self.name, image_id, image, (fine, coarse))


def _random_colour(rng: np.random.Generator, used: list[np.ndarray], min_distance: float = 70.0) -> np.ndarray:
    """A colour at least ``min_distance`` (RGB Euclidean) from every colour used so far, when possible."""
    best, best_d = None, -1.0
    for _ in range(64):
        c = rng.uniform(20, 235, size=3)
        d = min((np.linalg.norm(c - u) for u in used), default=np.inf)
        if d >= min_distance:
            return c
        if d > best_d:
            best, best_d = c, d
    return best


def _shape_mask(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, h: int, w: int) -> np.ndarray:
    cy, cx = rng.uniform(0.25, 0.8) * h, rng.uniform(0.15, 0.85) * w
    ry, rx = rng.uniform(0.1, 0.22) * h, rng.uniform(0.08, 0.2) * w
    kind = rng.integers(3)
    if kind == 0:  # ellipse
        return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    if kind == 1:  # axis-aligned rectangle
        return (np.abs(yy - cy) <= ry) & (np.abs(xx - cx) <= rx)
    # triangle pointing up: inside three half-planes
    top, base = cy - ry, cy + ry
    half_width = rx * (yy - top) / max(2 * ry, 1e-6)
    return (yy >= top) & (yy <= base) & (np.abs(xx - cx) <= half_width)


def paint_scene(size: tuple[int, int], seed: int, noise: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(image uint8 RGB, fine labels, coarse labels)`` for one scene."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    fine = np.zeros((h, w), np.int32)
    coarse = np.zeros((h, w), np.int32)
    image = np.zeros((h, w, 3))
    colours: list[np.ndarray] = []

    # sky (label 0) above a wavy horizon, ground (label 1) below, with a stripe texture
    horizon = h * rng.uniform(0.35, 0.55) + h * 0.05 * np.sin(xx[0] / w * 2 * np.pi * rng.uniform(0.5, 2) + rng.uniform(0, 6))
    ground = yy >= horizon[None, :]
    sky_c, ground_c = _random_colour(rng, colours), None
    colours.append(sky_c)
    ground_c = _random_colour(rng, colours)
    colours.append(ground_c)
    image[:] = sky_c + (yy / h * 30.0)[..., None]  # a gentle vertical gradient in the sky
    stripes = 18.0 * np.sign(np.sin(2 * np.pi * (xx + yy * rng.uniform(-0.5, 0.5)) / rng.uniform(6, 12)))
    image[ground] = ground_c + stripes[ground][:, None]
    fine[ground], coarse[ground] = 1, 1

    next_fine, next_coarse = 2, 2
    for _ in range(rng.integers(2, 5)):
        mask = _shape_mask(rng, yy, xx, h, w)
        if mask.sum() < 30:
            continue
        c = _random_colour(rng, colours)
        colours.append(c)
        image[mask] = c
        fine[mask], coarse[mask] = next_fine, next_coarse
        next_fine += 1
        if rng.random() < 0.6:  # a second part: the lower or the left half, in another colour
            ys, xs = np.nonzero(mask)
            if rng.random() < 0.5:
                part = mask & (yy > np.median(ys))
            else:
                part = mask & (xx < np.median(xs))
            if part.sum() >= 15:
                c2 = _random_colour(rng, colours)
                colours.append(c2)
                image[part] = c2
                fine[part] = next_fine
                next_fine += 1
        next_coarse += 1

    image += rng.normal(0.0, noise, size=image.shape)
    image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return image, _compact(fine), _compact(coarse)


def _compact(labels: np.ndarray) -> np.ndarray:
    """Renumber labels 0..n-1 (objects may have hidden earlier ones)."""
    _, inverse = np.unique(labels, return_inverse=True)
    return inverse.reshape(labels.shape).astype(np.int32)


class SyntheticLesions(SampleList):
    """Dermoscopy-like scenes with an exact lesion mask (1 = lesion), for the S3-Net notebooks.

    Each image: skin with a gentle colour gradient and fine texture, the dark circular vignette
    of a dermoscope in the corners, a few hairs, and one irregular (star-shaped) brown lesion that
    is darker towards its centre, under Gaussian noise. Like PH2, one annotator.
    """

    def __init__(self, n: int = 6, size: Sequence[int] = (96, 128), seed: int = 0, noise: float = 6.0,
                 ids: Sequence[str] | None = None, limit: int | None = None, root=None):
        if n < 1:
            raise ValueError(f"n={n}: ask for at least one synthetic lesion")
        if len(size) != 2 or min(size) < 16:
            raise ValueError(f"size={size}: give (height, width), each at least 16 pixels")
        self.size = (int(size[0]), int(size[1]))
        self.seed, self.noise = seed, noise
        self.name = "synthetic_lesions"
        self.ids = require_ids(ids, [f"lesion{i:02d}" for i in range(n)], "synthetic lesions")
        if limit is not None and limit >= 0:
            self.ids = self.ids[:limit]

    def _read(self, image_id: str) -> Sample:
        image, mask = paint_lesion(self.size, stable_seed("lesion", self.seed, image_id), self.noise)
        return Sample(self.name, image_id, image, (mask,))


def paint_lesion(size: tuple[int, int], seed: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(image uint8 RGB, mask uint8 0/1)`` for one dermoscopy-like scene."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    skin = np.array([rng.uniform(190, 230), rng.uniform(140, 175), rng.uniform(115, 150)])
    image = skin + (yy / h - 0.5)[..., None] * rng.uniform(-25, 25, size=3)
    image += rng.normal(0, 4, size=(h, w, 1))  # skin texture, shared by the channels
    # the lesion: a star-shaped blob whose radius varies smoothly with the angle
    cy, cx = h * rng.uniform(0.4, 0.6), w * rng.uniform(0.4, 0.6)
    base = min(h, w) * rng.uniform(0.18, 0.3)
    angle = np.arctan2(yy - cy, xx - cx)
    radius = base * (1 + sum(rng.uniform(0, 0.15) * np.cos(k * angle + rng.uniform(0, 2 * np.pi)) for k in range(2, 6)))
    dist = np.hypot(yy - cy, xx - cx)
    mask = (dist <= radius).astype(np.uint8)
    brown = np.array([rng.uniform(90, 130), rng.uniform(55, 80), rng.uniform(35, 60)])
    depth = np.clip(1 - dist / np.maximum(radius, 1e-6), 0, 1)[..., None]  # darker towards the centre
    lesion = brown * (1 - 0.5 * depth)
    image = np.where(mask[..., None] == 1, lesion, image)
    for _ in range(rng.integers(1, 4)):  # hairs: thin dark curves across the image
        t = np.linspace(0, 1, 4 * max(h, w))
        y0, x0, y1, x1 = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0, w)
        bend = rng.uniform(-0.2, 0.2) * max(h, w)
        py = np.clip(y0 + (y1 - y0) * t + bend * np.sin(np.pi * t), 0, h - 1).astype(int)
        px = np.clip(x0 + (x1 - x0) * t, 0, w - 1).astype(int)
        image[py, px] = rng.uniform(20, 50)
    vignette = np.hypot((yy - h / 2) / (h / 2), (xx - w / 2) / (w / 2)) > rng.uniform(1.05, 1.2)
    image[vignette] = rng.uniform(5, 25)
    image += rng.normal(0.0, noise, size=image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), mask
