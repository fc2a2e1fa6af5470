"""S3-Net (Karimijafarbigloo et al., "Self-supervised semantic segmentation: consistency over
transformation", ICCV workshops 2023): per-image clustering with the I-LKA / deformable network
of ``lib/models/s3net.py`` and three losses,

    L = w_ce CE(y', argmax y') + w_at L_AT + w_s L_S.

Forms (``form``; the loss form can be chosen apart with ``loss_form`` for Table 2):

=================  ====================================  =========================================
                   ``paper``                             ``code`` (mindflow-institue/SSCT @07760c7)
=================  ====================================  =========================================
input              RGB, any size                         BGR / 255, resized to 256 x 256 (cubic)
deformable conv    offsets predicted from features       offsets and mask: free parameters,
                   (zero-initialised)                    drawn with torch.rand as the weights
optimiser          SGD lr 0.36, "a maximum of 50         SGD lr 0.2, the same stop rule (cap: 50)
                   iterations" (the stop rule is the
                   code's: <= 3 labels, >= 6 updates)
loss weights       none given: an unweighted sum         3.5 CE + 0.2 AT + 4 S
L_AT               random affine T on the input,         CE between the main and auxiliary heads
                   f(T(x)) pulled to T(f(x))             (both rotated by 90°: no transformation)
L_S                edge-weighted continuity              edge disagreement of the argmax: no
                   (differentiable)                      gradient (a constant)
=================  ====================================  =========================================

The network (``lib/models/s3net.py``) is the authors' code's in both forms (the paper draws none):
64 channels, q = 64, two I-LKA blocks, a BN with PyTorch's default learnable affine after every
layer; only the deformable offsets and the deformable layer's initialisation differ. Momentum 0.9
(the code's). The paper gives no loss weights ("the overall loss function"): the paper form
reads it as the plain sum; the weights are parameters. ``use_at`` / ``use_s``
switch the terms for the loss ablation (Table 2). The stop rule is the code's: its loop counter
is 0-based (``batch_idx >= 5``) and the label count is that of the forward pass before the
update, so an image stops after at least 6 updates (``min_iterations=6``) once that count is
<= 3; ``min_labels=0`` turns the rule off (an argmax always has a label). The code form's
``size`` cannot be undone: its free offsets need it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
import torch
from skimage.transform import resize

from ..loops import LoopResult, self_train, stop_at_labels
from ..losses import (edge_aware_continuity, edge_disagreement_constant, head_consistency, pseudo_label_cross_entropy,
                      random_affine, transformation_consistency)
from ..models import S3NetNetwork
from ..runtime import generator
from .base import Output, loop_outputs, form_config


@dataclass(frozen=True)
class S3NetConfig:
    form: str = "paper"
    loss_form: str = "paper"  # "paper" or "code" forms of L_AT and L_S
    channels: int = 64
    classes: int = 64
    n_blocks: int = 2
    lr: float = 0.36
    momentum: float = 0.9
    iterations: int = 50
    min_labels: int | None = 3
    min_iterations: int = 6  # updates before the stop rule applies (the code's batch_idx >= 5)
    ce_weight: float = 1.0  # code: 3.5
    at_weight: float = 1.0  # code: 0.2
    s_weight: float = 1.0  # code: 4
    use_at: bool = True
    use_s: bool = True
    offsets: str = "paper"  # "code": free parameters of size x size
    size: int | None = None  # code: 256 (every image resized to size x size)
    bgr: bool = False
    response_affine: bool = True  # the BatchNorm after the heads has a learnable affine
    rotation: float = 15.0  # affine ranges of the paper form's L_AT (the study's choice)
    scale: float = 0.1
    shift: float = 0.05
    edge_sigma: float = 0.1  # grey-level scale of the paper form's L_S weights

    @classmethod
    def for_form(cls, form: str = "paper", **overrides: Any) -> "S3NetConfig":
        code = lambda: cls(form="code", loss_form="code", lr=0.2, ce_weight=3.5, at_weight=0.2, s_weight=4.0,  # noqa: E731
                           offsets="code", size=256, bgr=True)
        cfg = form_config(form, {"paper": cls, "code": code}, overrides)
        if cfg.loss_form not in ("paper", "code"):
            raise ValueError(f"loss_form={cfg.loss_form!r}: use 'paper' or 'code'")
        return cfg


class S3Net:
    batchable = True
    stochastic = True

    def __init__(self, config: S3NetConfig | None = None, **overrides: Any):
        self.config = config or S3NetConfig.for_form(**overrides)

    name = "s3net"

    @property
    def form(self) -> str:
        """The setting (input, offsets, optimiser, weights); the loss form is ``loss_form``."""
        return self.config.form

    def params(self) -> dict[str, Any]:
        """The configuration, and ``losses`` (CE, CE+AT, CE+S or CE+AT+S), Table 2's row key."""
        return {**asdict(self.config), "losses": self.losses()}

    def losses(self) -> str:
        """The loss terms in use, as Table 2 names them: CE, CE+AT, CE+S or CE+AT+S."""
        cfg = self.config
        return "CE" + ("+AT" if cfg.use_at else "") + ("+S" if cfg.use_s else "")

    def label(self) -> str:
        cfg = self.config
        return f"s3net {cfg.form} {self.losses()} ({cfg.loss_form} losses)"

    def input_images(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The images as the network sees them (the code form resizes to size x size, cubic)."""
        cfg = self.config
        if cfg.size is None:
            return list(images)
        return [np.clip(resize(im, (cfg.size, cfg.size), order=3, preserve_range=True, anti_aliasing=False), 0, 255)
                .round().astype(np.uint8) for im in images]

    def optimise(self, images: Sequence[np.ndarray], seeds: Sequence[Any], device: torch.device,
                 progress: bool = False, snapshots: Sequence[int] = ()) -> LoopResult:
        cfg = self.config
        arrays = self.input_images(images)
        if len({a.shape for a in arrays}) != 1:
            raise ValueError("a batch must hold images of one size; the runner groups them by shape")
        seeds = [s if isinstance(s, tuple) else (s,) for s in seeds]
        x = torch.from_numpy(np.stack([a[..., ::-1] if cfg.bgr else a for a in arrays]).copy()).permute(0, 3, 1, 2)
        x = x.float().div(255).to(device).contiguous()  # the network picks its layout (lib/layout.py)
        model = S3NetNetwork(n_models=len(arrays), channels=cfg.channels, classes=cfg.classes, n_blocks=cfg.n_blocks,
                           offsets=cfg.offsets, size=cfg.size or 256, generators=[generator(*s) for s in seeds],
                           response_affine=cfg.response_affine)
        model = model.to(device)
        affine_rng = [generator("affine", *s) for s in seeds]  # the transformations are seeded too

        def loss(response: torch.Tensor, labels: torch.Tensor, n_labels: torch.Tensor) -> torch.Tensor:
            # L = w_ce CE(y', argmax y') + w_at L_AT + w_s L_S
            ce = cfg.ce_weight * pseudo_label_cross_entropy(response, labels)
            return ce + terms(response, labels)

        def terms(response: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            loss = torch.zeros(response.shape[0], device=response.device)
            if cfg.use_at:
                if cfg.loss_form == "paper":
                    theta = random_affine(affine_rng, cfg.rotation, cfg.scale, cfg.shift, device=response.device)
                    loss = loss + cfg.at_weight * transformation_consistency(model, x, response, theta)
                else:
                    loss = loss + cfg.at_weight * head_consistency(response, model.aux)
            if cfg.use_s:
                if cfg.loss_form == "paper":
                    loss = loss + cfg.s_weight * edge_aware_continuity(response, x, cfg.edge_sigma)
                else:
                    loss = loss + cfg.s_weight * edge_disagreement_constant(labels, x)
            return loss

        stop = stop_at_labels(cfg.min_labels, cfg.min_iterations) if cfg.min_labels is not None else None
        return self_train(model, x, iterations=cfg.iterations, lr=cfg.lr, momentum=cfg.momentum,
                          loss=loss, stop=stop, progress=progress, desc=self.label(), snapshots=snapshots)

    def run(self, images: Sequence[np.ndarray], seeds: Sequence[Any], device: torch.device, progress: bool = False) -> list[Output]:
        return loop_outputs(self.optimise(images, seeds, device, progress))
