"""Kim, Kanezaki & Tanaka, "Unsupervised learning of image segmentation based on differentiable
feature clustering" (IEEE TIP 2020), and its dynamic weighting by Guermazi, Ksantini & Khan
("DynamicSeg").

Same network as Kanezaki 2018 (``lib/models/kanezaki2018.py``), no superpixels; the loss of
DynamicSeg Eq. (1) - (3):

    L = CE(r', c) + w(q') * L_con(r'),    c = argmax r',  q' = number of distinct labels in c

with the continuity weight
    ``fixed``  w = mu                      (Kim et al.; mu = 5 for BSDS500 and VOC)
    ``fsf``    w = q'/mu   Eq. (2), Feature Similarity Focus (paper: mu = 10, 15)
    ``scf``    w = mu/q'   Eq. (3), Spatial Continuity Focus (paper: mu = 50, 100)
recomputed at every iteration from the current q' (before the update, as the authors' files do).

The labels FSF / SCF follow the paper. The authors' file named ``DynamicSeg_SCF.py``
(bijou-bijou/DynamicSeg) runs ``nLabels/15`` — the FSF formula — with the SCF formula
commented out under the name "FSF": see :data:`AUTHORS_FILE_SCHEMES`.

Forms: ``paper`` runs a fixed number of iterations; ``code`` stops once the argmax has <= 3
labels, after at most 1000 iterations (Kim's and DynamicSeg's files). The texts say nothing
else about the network's set-up, so both forms take it from the authors' files: BGR input,
PyTorch's default initialisation and a final BatchNorm with a learnable affine transform. M = 3
components (DynamicSeg Sec. IV-A: "we fixed the number of components M to 3").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
import torch

from ..losses import continuity_loss, pseudo_label_cross_entropy
from ..loops import LoopResult, self_train, stop_at_labels
from .base import Output, loop_outputs, form_config
from .kanezaki2018 import build_networks, input_tensor

SCHEMES = ("fixed", "fsf", "scf")

#: What the authors' DynamicSeg file of that name computes (read at bijou-bijou/DynamicSeg
#: @059a26a): the file named SCF adds ``nLabels/15 * (lhpy + lhpz)``, i.e. q'/mu = FSF.
AUTHORS_FILE_SCHEMES = {"DynamicSeg_SCF.py": ("fsf", 15.0)}


def continuity_weight(scheme: str, mu: float, n_labels: torch.Tensor) -> torch.Tensor:
    """The continuity weight w(q') for a ``(B,)`` tensor of current label counts q' (DynamicSeg
    Sec. III-B): ``"fixed"`` mu (Kim et al.), ``"fsf"`` q'/mu (Eq. 2), ``"scf"`` mu/q' (Eq. 3),
    as ``(B,)`` floats; a ``ValueError`` for any other scheme."""
    q = n_labels.to(torch.float32)
    if scheme == "fixed":
        return torch.full_like(q, float(mu))
    if scheme == "fsf":
        return q / mu
    if scheme == "scf":
        return mu / q
    raise ValueError(f"scheme={scheme!r}: use one of {', '.join(SCHEMES)}")


@dataclass(frozen=True)
class ContinuityConfig:
    form: str = "code"
    scheme: str = "fixed"
    mu: float = 5.0
    n_layers: int = 3  # M
    channels: int = 100  # p
    classes: int = 100  # q
    lr: float = 0.1
    momentum: float = 0.9
    iterations: int = 1000  # the cap (code form), or T (paper form: neither paper gives T; 1000 is the study's choice)
    min_labels: int | None = 3  # code form's early stop; None in the paper form
    continuity: str = "l1"  # "smooth_l1": DynamicSeg's public file
    bgr: bool = True
    init: str = "default"
    response_affine: bool = True

    @classmethod
    def for_form(cls, form: str = "code", **overrides: Any) -> "ContinuityConfig":
        cfg = form_config(form, {"paper": lambda: cls(form="paper", min_labels=None), "code": cls}, overrides)
        if cfg.scheme not in SCHEMES:
            raise ValueError(f"scheme={cfg.scheme!r}: use one of {', '.join(SCHEMES)}")
        if cfg.mu <= 0:
            raise ValueError(f"mu={cfg.mu}: the weight parameter must be positive")
        return cfg


def weight_formula(scheme: str, mu: float) -> str:
    return {"fixed": f"mu={mu:g}", "fsf": f"q'/{mu:g}", "scf": f"{mu:g}/q'"}[scheme]


class ContinuityClustering:
    """Kim 2020 (``scheme="fixed"``) or DynamicSeg (``"fsf"``, ``"scf"``) on a batch of images."""

    batchable = True
    stochastic = True

    def __init__(self, config: ContinuityConfig | None = None, **overrides: Any):
        self.config = config or ContinuityConfig.for_form(**overrides)

    @property
    def name(self) -> str:
        """"kim2020" for the fixed weight, "dynamicseg" for FSF and SCF (``scheme`` and ``mu``
        are columns of their own)."""
        return "kim2020" if self.config.scheme == "fixed" else "dynamicseg"

    @property
    def form(self) -> str:
        return self.config.form

    def params(self) -> dict[str, Any]:
        return asdict(self.config)

    def label(self) -> str:
        cfg = self.config
        method = "kim2020" if cfg.scheme == "fixed" else f"dynamicseg {cfg.scheme.upper()}"
        extra = "" if cfg.continuity == "l1" else f" {cfg.continuity}"
        return f"{method} {cfg.form} {weight_formula(cfg.scheme, cfg.mu)} M={cfg.n_layers}{extra}"

    def weights(self, label_history: np.ndarray) -> np.ndarray:
        """The continuity weight used at each iteration, from the recorded label counts q'."""
        cfg = self.config
        q = torch.as_tensor(np.asarray(label_history)).clamp_min(1)
        return continuity_weight(cfg.scheme, cfg.mu, q).numpy()

    def optimise(self, images: Sequence[np.ndarray], seeds: Sequence[Any], device: torch.device,
                 progress: bool = False, snapshots: Sequence[int] = ()) -> LoopResult:
        if len({im.shape for im in images}) != 1:
            raise ValueError("a batch must hold images of one size; the runner groups them by shape")
        cfg = self.config

        def loss(response: torch.Tensor, labels: torch.Tensor, n_labels: torch.Tensor) -> torch.Tensor:
            weight = continuity_weight(cfg.scheme, cfg.mu, n_labels)  # w(q'), Eqs. (2)-(3)
            return pseudo_label_cross_entropy(response, labels) + weight * continuity_loss(response, cfg.continuity)

        stop = stop_at_labels(cfg.min_labels) if cfg.min_labels is not None else None
        return self_train(
            build_networks(cfg, seeds, device), input_tensor(images, cfg.bgr, device),
            iterations=cfg.iterations, lr=cfg.lr, momentum=cfg.momentum, loss=loss, stop=stop,
            progress=progress, desc=self.label(), snapshots=snapshots,
        )

    def run(self, images: Sequence[np.ndarray], seeds: Sequence[Any], device: torch.device, progress: bool = False) -> list[Output]:
        return loop_outputs(self.optimise(images, seeds, device, progress))


def Kim2020(mu: float = 5.0, **overrides: Any) -> ContinuityClustering:
    """Kim et al. 2020 with a fixed weight mu."""
    return ContinuityClustering(scheme="fixed", mu=mu, **overrides)


def DynamicSeg(scheme: str, mu: float, **overrides: Any) -> ContinuityClustering:
    """DynamicSeg with ``scheme`` "fsf" (w = q'/mu) or "scf" (w = mu/q')."""
    if scheme not in ("fsf", "scf"):
        raise ValueError(f"scheme={scheme!r}: DynamicSeg's schemes are 'fsf' and 'scf'")
    return ContinuityClustering(scheme=scheme, mu=mu, **overrides)
