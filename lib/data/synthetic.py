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


class SyntheticPets(SampleList):
    """``n`` generated pet-like images with exact trimaps, for JigsawGAN runs with no download.

    Each image holds one object: an ellipse or a smooth random star-shaped blob, at a random
    position, size, elongation and orientation. The object has a fine "fur" texture, spots and a
    shading towards its middle; the background has a coarse colour-noise texture and stripes; both
    take random colours (never closer than 60 RGB units), and the whole image gets a random
    illumination gradient and Gaussian noise, so no single colour threshold separates them. The
    mask uses Oxford-IIIT Pet's classes as :mod:`lib.data.oxford_pet` returns them: 0 = object,
    1 = background, 2 = a band ``border`` pixels wide straddling the outline (``(border + 1) // 2``
    pixels inside it, ``border // 2`` outside), like the trimaps' "not classified" band.
    Image ``i`` depends on ``(seed, id)`` only.
    """

    def __init__(self, n: int = 16, size: Sequence[int] = (64, 64), seed: int = 0, border: int = 2,
                 limit: int | None = None, root=None):  # root: a uniform registry signature; no files needed
        if n < 1:
            raise ValueError(f"n={n}: ask for at least one synthetic pet image")
        if len(size) != 2 or min(size) < 16:
            raise ValueError(f"size={size}: give (height, width), each at least 16 pixels")
        if border < 0:
            raise ValueError(f"border={border}: give the border band's width in pixels, 0 or more")
        self.size, self.seed, self.border = (int(size[0]), int(size[1])), seed, int(border)
        self.name = "synthetic_pets"
        self.ids = [f"{i:03d}" for i in range(n)]
        if limit is not None and limit >= 0:
            self.ids = self.ids[:limit]

    def _read(self, image_id: str) -> Sample:
        rng = np.random.default_rng(stable_seed("synthetic_pets", self.seed, image_id))
        image, mask = paint_pet(self.size, rng, self.border)
        return Sample(self.name, image_id, image, (mask,))


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cell: float) -> np.ndarray:
    """Colour noise smooth over about ``cell`` pixels, (H, W, 3), unit spread."""
    from scipy.ndimage import zoom

    h, w = shape
    coarse = rng.normal(size=(max(2, round(h / cell)), max(2, round(w / cell)), 3))
    return zoom(coarse, (h / coarse.shape[0], w / coarse.shape[1], 1), order=1)[:h, :w]


def _stripes(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, period: tuple[float, float]) -> np.ndarray:
    """Sine stripes of a random direction and period, (H, W, 1) in [-1, 1]."""
    angle = rng.uniform(0, np.pi)
    return np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / rng.uniform(*period))[..., None]


def pet_outline(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A bool mask of one object: an ellipse (a third of the time) or a smooth star-shaped blob."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    cy, cx = rng.uniform(0.35, 0.65) * h, rng.uniform(0.35, 0.65) * w
    radius = rng.uniform(0.2, 0.32) * min(h, w)
    stretch, turn = rng.uniform(0.65, 1.0), rng.uniform(0, np.pi)
    dy, dx = yy - cy, xx - cx
    u = (dx * np.cos(turn) + dy * np.sin(turn)) / stretch  # along the object's long axis
    v = (-dx * np.sin(turn) + dy * np.cos(turn)) * stretch
    theta = np.arctan2(v, u)
    outline = np.full((h, w), radius)
    if rng.random() >= 1 / 3:
        for k in (2, 3, 4, 5):
            outline = outline + radius * rng.uniform(0, 0.12) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    return np.hypot(u, v) <= outline


def trimap_band(inside: np.ndarray, border: int) -> np.ndarray:
    """Classes 0 (inside), 1 (outside), 2 (within ``border`` pixels across the outline: ``(border + 1) // 2``
    pixel rows inside it and ``border // 2`` outside, by Euclidean distance)."""
    from scipy.ndimage import distance_transform_edt

    mask = np.where(inside, 0, 1).astype(np.uint8)
    if border > 0 and inside.any() and not inside.all():
        d_in = distance_transform_edt(inside)  # inside: distance to the nearest outside pixel (>= 1)
        d_out = distance_transform_edt(~inside)
        mask[(inside & (d_in <= (border + 1) // 2)) | (~inside & (d_out <= border // 2))] = 2
    return mask


def paint_pet(size: tuple[int, int], rng: np.random.Generator, border: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """One image (H, W, 3) uint8 and its three-class mask (0 object, 1 background, 2 border band)."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    inside = pet_outline(rng, size)
    colours = rng.uniform(40, 215, size=(2, 3))
    while np.linalg.norm(colours[0] - colours[1]) < 60:  # told apart by more than the textures
        colours[1] = rng.uniform(40, 215, size=3)
    # the object: fine fur noise, spots, lighter towards its middle
    ys, xs = np.nonzero(inside)
    middle = np.hypot(yy - ys.mean(), xx - xs.mean()) / max(h, w) if len(ys) else np.zeros((h, w))
    spots = (_stripes(rng, yy, xx, (5, 9)) * _stripes(rng, yy, xx, (5, 9)) > 0.4) * rng.uniform(-40, 40, size=3)
    pet = colours[0] + 22 * _smooth_noise(rng, size, 2.0) + spots - rng.uniform(40, 90) * middle[..., None]
    # the background: coarse colour noise and stripes
    ground = colours[1] + 28 * _smooth_noise(rng, size, 10.0) + rng.uniform(8, 25) * _stripes(rng, yy, xx, (4, 12))
    picture = np.where(inside[..., None], pet, ground)
    light = rng.uniform(-30, 30) * ((yy / h - 0.5) * np.cos(rng.uniform(0, 2 * np.pi)) + (xx / w - 0.5))
    picture = picture + light[..., None] + rng.normal(0, 5, size=picture.shape)
    return np.clip(np.rint(picture), 0, 255).astype(np.uint8), trimap_band(inside, border)
