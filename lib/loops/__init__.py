"""Optimisation loops, one module per kind of method.

- ``per_image``: a fresh network optimised on each image (Kanezaki 2018, Kim 2020 / DynamicSeg,
  S3-Net); a batch of images is a batch of independent networks.
- dataset-level training (JigsawGAN, SegGAN: networks trained over a training split for epochs,
  with checkpoints) will live in ``epochs.py`` beside it.
"""

from .per_image import LoopResult, count_labels, self_train, stop_at_labels

__all__ = ["LoopResult", "count_labels", "self_train", "stop_at_labels"]
