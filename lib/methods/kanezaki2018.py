"""Kanezaki, "Unsupervised image segmentation by backpropagation", ICASSP 2018.

Two forms, chosen by ``form``:

========================  ==================================  ==========================================
                          ``paper`` (the text)                ``code`` (authors' demo.py, @478e67e)
========================  ==================================  ==========================================
input                     RGB in [0, 1] (Sec. 2.1)            BGR in [0, 1] (OpenCV's imread order)
initialisation            Xavier uniform, zero bias (2.4)     PyTorch default (Kaiming-uniform, a=sqrt 5)
response normalisation    Eq. (2), pure whitening             BatchNorm with learnable affine
iterations                T = 500, fixed (Sec. 3)             at most 1000, stop once <= 3 labels
SLIC                      K = 10,000 on RGB, compactness 10   K = 10,000 on the BGR array, compactness 100
                          (the paper gives none: SLIC's
                          own default m = 10, Achanta et
                          al. 2012, as in scikit-image)
========================  ==================================  ==========================================

Shared: M components of p = 100 3x3 filters, q = 100, SGD lr 0.1, momentum 0.9, CE between y'
and the superpixel-refined labels c' (Algorithm 1). Between April 2018 and June 2019 the
authors' code kept the middle layers in a plain Python list, so they were never trained (fixed
by the repository's PR #7); this study runs the fixed code.

The result is the argmax after the last update (what demo.py saves); Algorithm 1 read literally
returns the labels computed before the T-th update, one step earlier. ``min_labels=0`` turns the
code form's early stop off (an argmax always has at least one label).

``n_superpixels`` is K for a full BSDS500 image (481 x 321 pixels); for other sizes (e.g. the
demo profile's shrunken images) K scales with the pixel count, keeping ~15 pixels per superpixel.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
import torch

from ..losses import pseudo_label_cross_entropy
from ..loops import LoopResult, self_train, stop_at_labels
from ..models import Kanezaki2018Net
from ..runtime import generator
from ..superpixels import SuperpixelVote, slic_superpixels
from .base import Output, loop_outputs, form_config

#: pixels of a BSDS500 image, for which the paper's K = 10,000 is given
BSDS_PIXELS = 481 * 321


@dataclass(frozen=True)
class Kanezaki2018Config:
    form: str = "paper"
    n_layers: int = 2  # M
    channels: int = 100  # p
    classes: int = 100  # q
    lr: float = 0.1
    momentum: float = 0.9
    iterations: int = 500  # T (paper) or the maximum (code)
    min_labels: int | None = None  # code: stop at <= 3 labels
    n_superpixels: int = 10_000  # K for a 481 x 321 image
    compactness: float = 10.0
    bgr: bool = False
    init: str = "xavier"
    response_affine: bool = False

    @classmethod
    def for_form(cls, form: str = "paper", **overrides: Any) -> "Kanezaki2018Config":
        """The paper's or the authors' code's settings, with ``overrides`` applied (None = keep)."""
        code = lambda: cls(form="code", iterations=1000, min_labels=3, compactness=100.0, bgr=True,  # noqa: E731
                           init="default", response_affine=True)
        return form_config(form, {"paper": cls, "code": code}, overrides)

    def superpixels_for(self, height: int, width: int) -> int:
        return max(1, round(self.n_superpixels * height * width / BSDS_PIXELS))


def input_tensor(images: Sequence[np.ndarray], bgr: bool, device: torch.device) -> torch.Tensor:
    """``(B, 3, H, W)`` float input in [0, 1], in BGR order for the authors' code forms."""
    arrays = [np.ascontiguousarray(im[..., ::-1]) if bgr else im for im in images]
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div(255)
    return x.to(device).contiguous()  # the network picks its own layout (lib/layout.py)


def build_networks(cfg: Any, seeds: Sequence[Any], device: torch.device) -> Kanezaki2018Net:
    """One independent network per seed (``(seed, image key)`` tuples), from a config with the
    fields n_layers, channels, classes, init and response_affine."""
    model = Kanezaki2018Net(
        n_models=len(seeds), n_layers=cfg.n_layers, channels=cfg.channels, classes=cfg.classes,
        init=cfg.init, response_affine=cfg.response_affine,
        generators=[generator(*s) if isinstance(s, tuple) else generator(s) for s in seeds],
    )
    return model.to(device)


class Kanezaki2018:
    """The method, runnable on a batch of same-sized images (one independent model each)."""

    name = "kanezaki2018"
    batchable = True
    stochastic = True  # random initial weights

    def __init__(self, config: Kanezaki2018Config | None = None, **overrides: Any):
        self.config = config or Kanezaki2018Config.for_form(**overrides)

    @property
    def form(self) -> str:
        return self.config.form

    def params(self) -> dict[str, Any]:
        return asdict(self.config)

    def label(self) -> str:
        return f"kanezaki2018 {self.config.form} M={self.config.n_layers}"

    def prepare(self, images: Sequence[np.ndarray], device: torch.device) -> tuple[torch.Tensor, SuperpixelVote]:
        """Input tensor (channel order and scale of the chosen form) and the superpixel vote."""
        cfg = self.config
        x = input_tensor(images, cfg.bgr, device)
        h, w = images[0].shape[:2]
        arrays = [np.ascontiguousarray(im[..., ::-1]) if cfg.bgr else im for im in images]
        sp = [slic_superpixels(a, cfg.superpixels_for(h, w), cfg.compactness) for a in arrays]
        return x, SuperpixelVote(sp, cfg.classes, device)

    def build_model(self, seeds: Sequence[Any], device: torch.device) -> Kanezaki2018Net:
        return build_networks(self.config, seeds, device)

    def optimise(self, images: Sequence[np.ndarray], seeds: Sequence[Any], device: torch.device,
                 progress: bool = False, snapshots: Sequence[int] = ()) -> LoopResult:
        """Algorithm 1 on a batch of same-sized images, one fresh model per image."""
        if len({im.shape for im in images}) != 1:
            raise ValueError("a batch must hold images of one size; the runner groups them by shape")
        cfg = self.config
        x, vote = self.prepare(images, device)
        model = self.build_model(seeds, device)
        def loss(response: torch.Tensor, labels: torch.Tensor, n_labels: torch.Tensor) -> torch.Tensor:
            return pseudo_label_cross_entropy(response, vote(labels))  # CE(y', c'), Algorithm 1

        stop = stop_at_labels(cfg.min_labels) if cfg.min_labels is not None else None
        return self_train(model, x, iterations=cfg.iterations, lr=cfg.lr, momentum=cfg.momentum,
                          loss=loss, stop=stop, progress=progress, desc=self.label(), snapshots=snapshots)

    def run(self, images: Sequence[np.ndarray], seeds: Sequence[Any], device: torch.device, progress: bool = False) -> list[Output]:
        return loop_outputs(self.optimise(images, seeds, device, progress))
