"""Segmentation methods: a model, its losses and its loop tied into ``run(images, seeds)``.

Every method follows the :class:`~lib.methods.base.Method` protocol, so the runner in
``lib/runs.py`` can batch, cache, resume and evaluate any of them the same way.

- ``kanezaki2018``: CNN clustering by backpropagation with superpixel refinement.
- ``kim2020``: the continuity loss with a fixed weight (Kim et al. 2020) or a dynamic one (DynamicSeg).
- ``s3net``: I-LKA / deformable network with transformation and edge consistency (S3-Net).
- ``baselines``: k-means on a x a RGB windows, Felzenszwalb–Huttenlocher graph segmentation,
  and the blank (one-segment) prediction.
"""

from .base import Method, Output
from .baselines import Blank, Felzenszwalb, KMeansWindows
from .kanezaki2018 import Kanezaki2018
from .kim2020 import ContinuityClustering, DynamicSeg, Kim2020
from .s3net import S3Net

__all__ = ["Blank", "ContinuityClustering", "DynamicSeg", "Felzenszwalb", "Kim2020", "S3Net", "KMeansWindows", "Kanezaki2018", "Method", "Output"]
