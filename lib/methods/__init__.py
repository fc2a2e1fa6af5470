"""Segmentation methods: a model, its losses and its loop tied into ``run(images, seeds)``.

Every method follows the :class:`~lib.methods.base.Method` protocol, so the runner in
``lib/runs.py`` can batch, cache, resume and evaluate any of them the same way.

- ``kanezaki2018``: CNN clustering by backpropagation with superpixel refinement.
- ``kim2020``: the continuity loss with a fixed weight (Kim et al. 2020) or a dynamic one (DynamicSeg).
- ``s3net``: I-LKA / deformable network with transformation and edge consistency (S3-Net).
- ``baselines``: k-means on a x a RGB windows, Felzenszwalb–Huttenlocher graph segmentation,
  and the blank (one-segment) prediction.
"""

import importlib

from .base import Method, Output

#: class -> module; a module is imported on first use (``segment --method kanezaki2018`` does
#: not pay for scikit-image's graph segmentation or S3-Net's network)
_WHERE = {"Blank": "baselines", "Felzenszwalb": "baselines", "KMeansWindows": "baselines",
          "Kanezaki2018": "kanezaki2018", "ContinuityClustering": "kim2020", "DynamicSeg": "kim2020",
          "Kim2020": "kim2020", "S3Net": "s3net"}


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)


__all__ = [*_WHERE, "Method", "Output"]
