"""A few real BSDS500 images through the methods (skipped when the dataset is absent).

Not a reproduction (that is the paper profile): checks that real images flow through every
method and metric and that the results are sane against the blank prediction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lib import data
from lib.evaluation import RegionEvaluator, summarize
from lib.methods import Blank, Felzenszwalb, KMeansWindows, Kanezaki2018
from lib.runs import run_method

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def two_images(bsds_root):
    return data.load("bsds500", root=bsds_root, split="test", limit=2)[:]


@pytest.mark.parametrize("method", [Kanezaki2018(form="code", iterations=15), KMeansWindows(3, 6), Felzenszwalb(500)],
                         ids=lambda m: m.name)
def test_methods_beat_the_blank_prediction_on_real_images(method, two_images, tmp_path):
    kw = dict(evaluator=RegionEvaluator(), max_side=96, device=torch.device("cpu"), progress=False)
    recs = run_method(method, two_images, [0], tmp_path, keep_labels=True, **kw)
    blank = summarize(r.evaluation for r in run_method(Blank(), two_images, [0], tmp_path, **kw))
    got = summarize(r.evaluation for r in recs)
    assert all(r.labels.shape == (64, 96) or r.labels.shape == (96, 64) for r in recs)
    assert got["segments"] > 1
    # any reasonable segmentation matches human segments better than one segment does
    assert got["miou_all"] > blank["miou_all"] + 0.05
    assert 0 <= got["ap_0.5"] <= 1 and 0 <= got["f_0.5"] <= 1


def test_full_resolution_kanezaki_iteration_on_a_real_image(two_images):
    """The paper profile's path: one full-size 481 x 321 image, K = 10,000 superpixels."""
    method = Kanezaki2018(form="paper", iterations=1)
    x, vote = method.prepare([two_images[0].image], torch.device("cpu"))
    assert tuple(x.shape[2:]) == two_images[0].shape
    assert 8_000 <= vote.n_superpixels <= 11_000  # SLIC gives about K (here 8,538 at compactness 10)
    out = method.run([two_images[0].image], [(0, "full")], torch.device("cpu"))[0]
    assert out.labels.shape == two_images[0].shape and out.iterations == 1
    assert len(np.unique(out.labels)) > 3
