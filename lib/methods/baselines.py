"""The baselines of Kanezaki 2018 (Sec. 3).

- k-means on "the concatenation of RGB values in an a x a window for each pixel"
  (a = 1, 3, 5, 7; the best k in 2..20). Here: RGB in [0, 1], reflect padding at the border,
  one k-means++ seeding per seed (no restarts; the seeds' spread is reported instead) and Lloyd
  iterations until no label changes (at most ``max_iter``), in torch so that it runs on the same
  device as the CNN methods.
- Felzenszwalb & Huttenlocher's graph-based segmentation ("GS"), threshold beta in
  {100, 500, 1000, 1500, 2000}: scikit-image's ``felzenszwalb`` with ``scale = beta`` (it rescales
  ``scale`` to the reference implementation's 0..255 intensities), its default Gaussian
  smoothing sigma = 0.8 and minimum component size 20 (the paper gives neither). scikit-image
  segments colour images with one graph on the joint RGB distance, where FH's reference code
  segments each channel separately and intersects the results.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from skimage.segmentation import felzenszwalb

from ..runtime import generator
from .base import Output


def window_features(image: np.ndarray, window: int, device: torch.device) -> torch.Tensor:
    """``(H, W, 3)`` uint8 -> ``(H*W, 3*a*a)`` RGB values of each pixel's a x a window."""
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window={window}: use an odd size (1, 3, 5, 7)")
    x = torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1)[None].float() / 255
    r = window // 2
    if r:
        x = F.pad(x, (r, r, r, r), mode="reflect")
    return F.unfold(x, window)[0].T.contiguous()


def kmeans(features: torch.Tensor, k: int, gen: torch.Generator, max_iter: int = 300) -> torch.Tensor:
    """Lloyd's k-means with k-means++ seeding (Arthur & Vassilvitskii 2007); returns (N,) labels."""
    n = features.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k={k} clusters for {n} points")
    sq = (features * features).sum(1)
    first = torch.randint(n, (1,), generator=gen, device=gen.device).to(features.device)
    centres = features[first]
    d2 = (sq - 2 * features @ centres[0] + sq[first]).clamp_min(0)
    for _ in range(1, k):  # k-means++: next centre drawn with probability ~ squared distance
        weights = d2 if float(d2.sum()) > 0 else torch.ones_like(d2)
        nxt = torch.multinomial(weights.to(gen.device), 1, generator=gen).to(features.device)
        centres = torch.cat([centres, features[nxt]])
        d2 = torch.minimum(d2, (sq - 2 * features @ features[nxt][0] + sq[nxt]).clamp_min(0))
    labels = None
    for _ in range(max_iter):
        dist = sq[:, None] - 2 * features @ centres.T + (centres * centres).sum(1)[None]
        new = dist.argmin(1)
        if labels is not None and torch.equal(new, labels):
            break
        labels = new
        sums = torch.zeros_like(centres).index_add_(0, labels, features)
        counts = torch.bincount(labels, minlength=k).unsqueeze(1)
        centres = torch.where(counts > 0, sums / counts.clamp_min(1), centres)  # empty: keep
    return labels


class KMeansWindows:
    name = "k-means"
    form = ""
    batchable = False
    stochastic = True  # k-means++ seeding

    def __init__(self, window: int = 1, k: int = 2, max_iter: int = 300):
        self.window, self.k, self.max_iter = window, k, max_iter

    def params(self) -> dict[str, Any]:
        return {"window": self.window, "k": self.k, "max_iter": self.max_iter, "seeding": "k-means++"}

    def label(self) -> str:
        return f"k-means ({self.window},{self.k})"

    def run(self, images: Sequence[np.ndarray], seeds: Sequence[Any], device: torch.device, progress: bool = False) -> list[Output]:
        out = []
        for image, seed in zip(images, seeds):
            gen = generator("kmeans", *(seed if isinstance(seed, tuple) else (seed,)))
            feats = window_features(image, self.window, device)
            labels = kmeans(feats, self.k, gen, self.max_iter)
            out.append(Output(labels.view(image.shape[:2]).cpu().numpy()))
        return out


class Felzenszwalb:
    name = "GS"
    form = ""
    batchable = False
    stochastic = False  # the same segmentation for every seed

    def __init__(self, scale: float = 500, sigma: float = 0.8, min_size: int = 20):
        self.scale, self.sigma, self.min_size = scale, sigma, min_size

    def params(self) -> dict[str, Any]:
        return {"scale": self.scale, "sigma": self.sigma, "min_size": self.min_size}

    def label(self) -> str:
        return f"GS ({self.scale:g})"

    def run(self, images: Sequence[np.ndarray], seeds: Sequence[Any], device: torch.device, progress: bool = False) -> list[Output]:
        # deterministic: the seed is ignored
        return [Output(felzenszwalb(im, scale=self.scale, sigma=self.sigma, min_size=self.min_size)) for im in images]


class Blank:
    """One segment per image: the sanity row of the Kim protocol (All .0458 / Fine .0249 /
    Coarse .1001 on the 200 BSDS500 test images, as published with Kim et al.'s script)."""

    name = "blank"
    form = ""
    batchable = False
    stochastic = False

    def params(self) -> dict[str, Any]:
        return {}

    def label(self) -> str:
        return "blank (one segment)"

    def run(self, images: Sequence[np.ndarray], seeds: Sequence[Any], device: torch.device, progress: bool = False) -> list[Output]:
        return [Output(np.zeros(im.shape[:2], np.int64)) for im in images]
