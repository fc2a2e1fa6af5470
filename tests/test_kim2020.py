"""Kim et al. 2020 and DynamicSeg: the continuity loss, the dynamic weights, the two forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lib.losses import continuity_loss
from lib.methods import ContinuityClustering, DynamicSeg, Kim2020
from lib.methods.kim2020 import AUTHORS_FILE_SCHEMES, ContinuityConfig, continuity_weight


def test_continuity_loss_by_hand():
    """One image, q = 1, 2x3 response [[0, 1, 3], [2, 2, 2]]:
    vertical |d| = 2, 1, 1 over 3 elements -> 4/3; horizontal |d| = 1, 2, 0, 0 over 4 -> 3/4."""
    r = torch.tensor([[[[0.0, 1.0, 3.0], [2.0, 2.0, 2.0]]]])
    assert continuity_loss(r).item() == pytest.approx(4 / 3 + 3 / 4)
    # Huber (beta = 1): vertical 1.5, 0.5, 0.5 -> 2.5/3; horizontal 0.5, 1.5, 0, 0 -> 2/4
    assert continuity_loss(r, "smooth_l1").item() == pytest.approx(2.5 / 3 + 2 / 4)
    with pytest.raises(ValueError, match="kind"):
        continuity_loss(r, "l2")


def test_continuity_loss_is_per_image_and_zero_on_constant_responses():
    r = torch.zeros(2, 4, 5, 6)
    r[1, :, :, 3:] = 1.0  # a vertical edge in image 1 only
    loss = continuity_loss(r)
    assert loss[0].item() == 0.0
    assert loss[1].item() == pytest.approx(5 / (5 * 5))  # 5 rows x 1 step of 1, over 5*5 horizontal pairs


def test_dynamic_weights_follow_the_paper_equations():
    q = torch.tensor([100, 30, 4])
    np.testing.assert_allclose(continuity_weight("fixed", 5, q), [5, 5, 5])
    np.testing.assert_allclose(continuity_weight("fsf", 15, q), [100 / 15, 2, 4 / 15])  # Eq. (2): q'/mu
    np.testing.assert_allclose(continuity_weight("scf", 100, q), [1, 100 / 30, 25])  # Eq. (3): mu/q'


def test_the_authors_file_named_scf_runs_the_fsf_formula():
    """DynamicSeg_SCF.py adds nLabels/15 * (lhpy + lhpz): that is q'/mu, the paper's FSF."""
    scheme, mu = AUTHORS_FILE_SCHEMES["DynamicSeg_SCF.py"]
    assert scheme == "fsf" and mu == 15
    q = torch.tensor([30])
    assert continuity_weight(scheme, mu, q).item() == pytest.approx(30 / 15)
    assert continuity_weight("scf", mu, q).item() != pytest.approx(30 / 15)


def test_typed_columns_join_the_reported_table_rows():
    from lib.methods.base import columns
    from lib.reported import paper_number

    expected = {(Kim2020(5), 0.305), (DynamicSeg("scf", 100), 0.329), (DynamicSeg("fsf", 15), 0.349)}
    for m, value in expected:  # DynamicSeg Table I, BSDS500 "All"
        assert paper_number("dynamicseg", columns(m), "bsds500/test", "miou_all") == value, m.label()
    # the reported Kim row is mu = 5 only; an FSF row is not an SCF row of the same mu
    assert np.isnan(paper_number("dynamicseg", columns(Kim2020(1)), "bsds500/test", "miou_all"))
    assert np.isnan(paper_number("dynamicseg", columns(DynamicSeg("fsf", 100)), "bsds500/test", "miou_all"))
    assert np.isnan(paper_number("dynamicseg", columns(Kim2020(5)), "bsds500/train", "miou_all"))
    assert DynamicSeg("fsf", 15).label() == "dynamicseg FSF code q'/15 M=3"


def test_forms_differ_only_in_the_stop_rule():
    code, paper = ContinuityConfig.for_form("code"), ContinuityConfig.for_form("paper")
    assert (code.min_labels, code.iterations) == (3, 1000)
    assert paper.min_labels is None
    assert {k for k in vars(code) if getattr(code, k) != getattr(paper, k)} == {"form", "min_labels"}
    with pytest.raises(ValueError, match="scheme"):
        DynamicSeg("fixed", 5)
    with pytest.raises(ValueError, match="mu"):
        Kim2020(0)


def test_runs_and_records_weights_batch_invariant():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (16, 20, 3), dtype=np.uint8) for _ in range(2)]
    m = DynamicSeg("scf", 50, iterations=3, n_layers=2, form="paper")
    both = m.run(images, [(0, "a"), (0, "b")], torch.device("cpu"))
    one = m.run(images[1:], [(0, "b")], torch.device("cpu"))
    assert [o.iterations for o in both] == [3, 3]
    np.testing.assert_allclose(both[1].extras["loss_history"], one[0].extras["loss_history"], rtol=1e-4)
    q = both[0].extras["label_history"]
    np.testing.assert_allclose(m.weights(q), 50 / q)


def test_first_loss_is_cross_entropy_plus_weighted_continuity():
    """Iteration 0's recorded loss, recomputed independently from a network with the same seed."""
    import torch.nn.functional as F

    from lib.methods.kanezaki2018 import build_networks, input_tensor

    image = np.random.default_rng(1).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    for scheme, mu in (("fixed", 5.0), ("fsf", 15.0), ("scf", 100.0)):
        m = ContinuityClustering(scheme=scheme, mu=mu, iterations=1, n_layers=2)
        out = m.run([image], [(0, "x")], torch.device("cpu"))[0]
        net = build_networks(m.config, [(0, "x")], torch.device("cpu"))
        r = net(input_tensor([image], m.config.bgr, torch.device("cpu")))
        q = len(torch.unique(r.argmax(1)))
        w = {"fixed": mu, "fsf": q / mu, "scf": mu / q}[scheme]
        dy = (r[:, :, 1:] - r[:, :, :-1]).abs().mean()
        dx = (r[:, :, :, 1:] - r[:, :, :, :-1]).abs().mean()
        expected = F.cross_entropy(r, r.argmax(1)) + w * (dy + dx)
        assert out.extras["loss_history"][0] == pytest.approx(expected.item(), rel=1e-5)
        assert out.extras["label_history"][0] == q


def test_code_form_stops_early_with_the_labels_rule():
    image = np.random.default_rng(2).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    out = Kim2020(5, min_labels=1000, iterations=50, n_layers=1).run([image], [(0, "y")], torch.device("cpu"))[0]
    assert out.iterations == 1  # q' <= 1000 after the first update: stop, well before the cap
    paper = Kim2020(5, form="paper", iterations=4, n_layers=1).run([image], [(0, "y")], torch.device("cpu"))[0]
    assert paper.iterations == 4
