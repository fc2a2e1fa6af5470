"""The Kanezaki 2018 network, the self-training loop and the method built from them."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from lib.data.synthetic import SyntheticScenes
from lib.losses import pseudo_label_cross_entropy
from lib.loops import count_labels, per_image, self_train, stop_at_labels
from lib.methods import Kanezaki2018
from lib.methods.kanezaki2018 import Kanezaki2018Config
from lib.models import Kanezaki2018Net
from lib.runtime import generator
from lib.superpixels import SuperpixelVote


def CE(response, labels, n_labels):
    """The loop's plain loss: cross-entropy to the argmax."""
    return pseudo_label_cross_entropy(response, labels)


SMALL = dict(n_layers=2, channels=10, classes=12)


def _close(actual: torch.Tensor, expected: torch.Tensor, atol: float = 0.0, rtol: float = 0.0) -> None:
    """numpy's assert_allclose on tensors (torch.testing's first call imports for seconds)."""
    np.testing.assert_allclose(actual.detach().numpy(), expected.detach().numpy(), atol=atol, rtol=rtol)


def _images(b: int, h: int = 6, w: int = 8, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, h, w, generator=g)


def _net(keys, **kw) -> Kanezaki2018Net:
    args = {**SMALL, **kw}
    return Kanezaki2018Net(n_models=len(keys), generators=[generator(0, k) for k in keys], **args)


# --------------------------------------------------------------------------------------------
# the network


def test_output_shape():
    net = _net("ab")
    assert net(_images(2)).shape == (2, SMALL["classes"], 6, 8)
    net3 = Kanezaki2018Net(n_models=3, n_layers=1, channels=4, classes=5)
    assert net3(_images(3, 5, 7)).shape == (3, 5, 5, 7)


def test_wrong_batch_or_channels_refused():
    net = _net("ab")
    with pytest.raises(ValueError):
        net(_images(3))
    with pytest.raises(ValueError):
        net(torch.rand(2, 1, 6, 8))
    with pytest.raises(ValueError):
        Kanezaki2018Net(n_models=2, generators=[generator(0)])
    with pytest.raises(ValueError):
        Kanezaki2018Net(n_layers=0)
    with pytest.raises(ValueError):
        Kanezaki2018Net(init="he")


def test_images_of_a_batch_do_not_interact():
    net = _net("ab")
    x = _images(2)
    out = net(x)
    x2 = x.clone()
    x2[1] = _images(1, seed=5)[0]
    out2 = net(x2)
    # BatchNorm statistics are per image: image 0's output is unchanged
    _close(out2[0], out[0], atol=1e-5, rtol=0)
    assert not torch.allclose(out2[1], out[1], atol=1e-3)


def test_batched_models_equal_single_models_built_from_the_same_generators():
    x = _images(2)
    both = _net(["a", "b"])
    single_a, single_b = _net(["a"]), _net(["b"])
    # identical initial weights, slice by slice
    p = SMALL["channels"]
    _close(both.convs[0].weight[:p], single_a.convs[0].weight, atol=0, rtol=0)
    _close(both.convs[0].weight[p:], single_b.convs[0].weight, atol=0, rtol=0)
    with torch.no_grad():
        out = both(x)
        _close(out[:1], single_a(x[:1]), atol=1e-5, rtol=0)
        _close(out[1:], single_b(x[1:]), atol=1e-5, rtol=0)
    # different generators give different models
    assert not torch.equal(single_a.convs[0].weight, single_b.convs[0].weight)


def test_same_generator_seed_same_model():
    a1, a2 = _net(["a"]), _net(["a"])
    for p1, p2 in zip(a1.parameters(), a2.parameters()):
        assert torch.equal(p1, p2)


def test_response_normalisation_paper_form_is_whitening():
    net = _net("ab", response_affine=False)
    assert list(net.response_norm.parameters()) == []  # pure Eq. (2), nothing learnable
    with torch.no_grad():
        y = net(_images(2, 12, 16))
    flat = y.flatten(2)  # (B, q, N)
    _close(flat.mean(2), torch.zeros(2, SMALL["classes"]), atol=1e-5, rtol=0)
    _close(flat.var(2, unbiased=False), torch.ones(2, SMALL["classes"]), atol=1e-3, rtol=0)


def test_response_affine_code_form_has_learnable_scale_and_shift():
    net = _net("ab", response_affine=True)
    weight, bias = net.response_norm.weight, net.response_norm.bias
    assert weight.shape == bias.shape == (2 * SMALL["classes"],)
    assert weight.requires_grad and bias.requires_grad


def _per_model_slices(net: Kanezaki2018Net):
    """(layer name, model index, weight slice, bias slice, fan_in, fan_out) for every conv."""
    for name, conv in [*((f"conv{i}", c) for i, c in enumerate(net.convs)), ("classifier", net.classifier)]:
        per_model = conv.out_channels // net.n_models
        k = conv.kernel_size[0] * conv.kernel_size[1]
        fan_in, fan_out = conv.weight.shape[1] * k, per_model * k
        for b in range(net.n_models):
            sl = slice(b * per_model, (b + 1) * per_model)
            yield name, b, conv.weight[sl], conv.bias[sl], fan_in, fan_out


def test_xavier_init_bounds_and_zero_bias():
    net = _net("ab", init="xavier")
    for name, b, w, bias, fan_in, fan_out in _per_model_slices(net):
        bound = math.sqrt(6 / (fan_in + fan_out))  # Glorot & Bengio, uniform
        assert w.abs().max() <= bound, (name, b)
        assert w.abs().max() > 0.9 * bound, (name, b)  # really spread over the whole range
        assert torch.count_nonzero(bias) == 0, (name, b)


def test_default_init_is_pytorchs_and_differs_from_xavier():
    default, xavier = _net("ab", init="default"), _net("ab", init="xavier")
    for (name, b, w, bias, fan_in, _), (_, _, wx, _, _, _) in zip(_per_model_slices(default), _per_model_slices(xavier)):
        bound = 1 / math.sqrt(fan_in)  # kaiming_uniform(a=sqrt 5) and the bias rule of nn.Conv2d
        assert w.abs().max() <= bound + 1e-7, (name, b)
        assert bias.abs().max() <= bound + 1e-7, (name, b)
        assert torch.count_nonzero(bias) == bias.numel(), (name, b)
        assert not torch.equal(w, wx), (name, b)


# --------------------------------------------------------------------------------------------
# the loop


def test_count_labels_hand_case():
    labels = torch.tensor([
        [[0, 0, 4], [4, 4, 0]],  # {0, 4}
        [[1, 2, 3], [4, 0, 1]],  # {0, 1, 2, 3, 4}
        [[3, 3, 3], [3, 3, 3]],  # {3}
    ])
    _close(count_labels(labels, classes=5), torch.tensor([2, 5, 1]))


def test_fixed_iterations_without_stop_rule():
    net = _net("ab")
    result = self_train(net, _images(2), iterations=4, lr=0.1, momentum=0.9, loss=CE)
    np.testing.assert_array_equal(result.iterations, [4, 4])
    assert result.loss_history.shape == (2, 4) and np.isfinite(result.loss_history).all()
    assert result.label_history.shape == (2, 4)
    assert result.labels.shape == (2, 6, 8)
    for b in range(2):
        assert result.n_labels[b] == len(np.unique(result.labels[b]))
    # label counts recorded before refinement: between 1 and the number of classes
    assert result.label_history.min() >= 1 and result.label_history.max() <= SMALL["classes"]


def test_zero_iterations_returns_initial_labels():
    net = _net("ab")
    x = _images(2)
    with torch.no_grad():
        initial = net(x).argmax(1).numpy()
    result = self_train(net, x, iterations=0, lr=0.1, momentum=0.9, loss=CE)
    np.testing.assert_array_equal(result.labels, initial)
    np.testing.assert_array_equal(result.iterations, [0, 0])
    assert result.loss_history.shape == (2, 0)
    with pytest.raises(ValueError):
        self_train(net, x, iterations=-1, lr=0.1, momentum=0.9, loss=CE)


def test_stop_rule_after_one_update_keeps_labels_of_that_update():
    x = _images(2)
    net = _net("ab")
    twin = copy.deepcopy(net)
    # every image has <= 10**6 labels: each stops after its first update
    result = self_train(net, x, iterations=5, lr=0.1, momentum=0.9, loss=CE,
                        stop=stop_at_labels(10**6))
    np.testing.assert_array_equal(result.iterations, [1, 1])
    assert result.loss_history.shape == (2, 1)

    # one update by hand on the twin: SGD on the summed per-image cross-entropy to its argmax
    opt = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9)
    response = twin(x)
    loss = pseudo_label_cross_entropy(response, response.argmax(1))
    opt.zero_grad()
    loss.sum().backward()
    opt.step()
    np.testing.assert_allclose(result.loss_history[:, 0], loss.detach().numpy(), rtol=1e-5)
    for p_loop, p_hand in zip(net.parameters(), twin.parameters()):
        _close(p_loop, p_hand, atol=1e-6, rtol=1e-5)
    with torch.no_grad():
        after = twin(x).argmax(1).numpy()
    np.testing.assert_array_equal(result.labels, after)


class LateAnswer:
    """all_stopped as a GPU gives it: the answer of ``lag`` iterations ago."""

    def __init__(self, lag):
        self.lag, self.seen = lag, []

    def __call__(self, done):
        self.seen.append(bool(done.all()))
        return len(self.seen) > self.lag and self.seen[-1 - self.lag]


def test_learning_late_that_every_image_stopped_changes_no_result(monkeypatch):
    """On a GPU the host learns that every image stopped a few iterations late; the iterations
    run meanwhile change no label, count, history or snapshot."""
    x = _images(3)
    runs = {}
    for lag in (0, 3, 20):
        monkeypatch.setattr(per_image, "all_stopped", lambda device, lag=lag: LateAnswer(lag))
        torch.manual_seed(0)
        runs[lag] = self_train(_net("abc"), x, iterations=12, lr=0.5, momentum=0.9, loss=CE,
                               stop=lambda n_labels, updates: updates >= torch.tensor([2, 5, 3]),
                               snapshots=(0, 2, 5, 6, 11))
    ref = runs[0]
    np.testing.assert_array_equal(ref.iterations, [2, 5, 3])  # each image stopped on its own
    for lag, r in runs.items():
        np.testing.assert_array_equal(r.labels, ref.labels, err_msg=str(lag))
        np.testing.assert_array_equal(r.iterations, ref.iterations)
        np.testing.assert_array_equal(r.label_history, ref.label_history)
        np.testing.assert_array_equal(r.loss_history, ref.loss_history)
        assert sorted(r.snapshots) == sorted(ref.snapshots) == [0, 2, 5]


def _count_host_reads(monkeypatch):
    """Every way a tensor's value reaches Python (bool, int, float, item, tolist, numpy, cpu)."""
    calls = []
    for name in ("__bool__", "__int__", "__float__", "__index__", "item", "tolist", "numpy", "cpu"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            calls.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return calls


def test_the_loop_reads_nothing_from_the_device_per_iteration(monkeypatch):
    """Apart from all_stopped (asynchronous on a GPU, see below), 32 more iterations add no read
    of a tensor's value by the host, with the stop rule and Kanezaki's superpixel vote in the loop."""
    monkeypatch.setattr(per_image, "all_stopped", lambda device: (lambda done: False))
    x = _images(2)
    vote = SuperpixelVote([np.arange(48).reshape(6, 8) // 8] * 2, SMALL["classes"])

    def refined_ce(response, labels, n_labels):
        return pseudo_label_cross_entropy(response, vote(labels))

    calls = _count_host_reads(monkeypatch)

    def reads(iterations):
        calls.clear()
        self_train(_net("ab"), x, iterations=iterations, lr=0.1, momentum=0.9, loss=refined_ce,
                   stop=stop_at_labels(0))  # never stops: every iteration runs
        return len(calls)

    assert reads(64) == reads(32)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda_the_loop_never_waits_for_the_device():
    """CUDA's own sync check: 32 more iterations add no synchronising call."""
    import warnings

    x = _images(2).cuda()
    vote = SuperpixelVote([np.arange(48).reshape(6, 8) // 8] * 2, SMALL["classes"], device="cuda")

    def synchronising(iterations):
        net = _net("ab").cuda()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                self_train(net, x, iterations=iterations, lr=0.1, momentum=0.9, stop=stop_at_labels(0),
                           loss=lambda r, labels, n: pseudo_label_cross_entropy(r, vote(labels)))
            finally:
                torch.cuda.set_sync_debug_mode("default")
        return len(caught)

    synchronising(2)  # warm-up: the layout probe, cuDNN's choices
    assert synchronising(64) == synchronising(32)


def test_one_step_changes_every_models_parameters():
    net = _net("abc")
    before = [w.detach().clone() for _, _, w, _, _, _ in _per_model_slices(net)]
    self_train(net, _images(3), iterations=1, lr=0.1, momentum=0.9, loss=CE)
    after = list(_per_model_slices(net))
    assert len(after) == len(before) == 3 * 3  # 2 conv components + classifier, 3 models each
    for old, (name, b, w, _, _, _) in zip(before, after):
        assert not torch.equal(w, old), (name, b)


class FreeLogits(torch.nn.Module):
    """B 'models' whose responses are free parameters (the input is ignored): fully controllable."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = torch.nn.Parameter(logits.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits * 1.0


def test_stopped_image_keeps_its_recorded_labels_while_others_go_on():
    # 2x2 images, 3 classes.
    # image 0: class 0 leads by 1 everywhere -> 1 label -> stops after its first update.
    #   Its refined target is class 1, so the update (and the SGD momentum that keeps moving its
    #   parameters after it stopped) pushes it towards class 1: after 1 update class 0 still
    #   leads (gap 1 - 2 * lr * 0.73 / 4 ~ 0.64) but later the drift (~9x the first step) flips it.
    # image 1: two labels and targets equal to its own argmax -> never reaches min_labels=1.
    logits = torch.zeros(2, 3, 2, 2)
    logits[0, 0] = 1.0
    logits[0, 2] = -5.0
    logits[1, 0] = torch.tensor([[2.0, 0.0], [2.0, 0.0]])
    logits[1, 2] = torch.tensor([[0.0, 2.0], [0.0, 2.0]])
    model = FreeLogits(logits)

    def refine(labels: torch.Tensor) -> torch.Tensor:
        target = labels.clone()
        target[0] = 1
        return target

    T = 12
    result = self_train(model, torch.zeros(2, 3, 2, 2), iterations=T, lr=1.0, momentum=0.9,
                        loss=lambda r, labels, q: CE(r, refine(labels), q), stop=stop_at_labels(1))
    np.testing.assert_array_equal(result.iterations, [1, T])
    np.testing.assert_array_equal(result.labels[0], np.zeros((2, 2)))  # labels after its 1 update
    np.testing.assert_array_equal(result.labels[1], [[0, 2], [0, 2]])
    assert np.isfinite(result.loss_history[0, 0]) and np.isnan(result.loss_history[0, 1:]).all()
    assert np.isfinite(result.loss_history[1]).all()
    np.testing.assert_array_equal(result.label_history[0], [1] + [0] * (T - 1))
    np.testing.assert_array_equal(result.label_history[1], [2] * T)
    np.testing.assert_array_equal(result.n_labels, [1, 2])
    # the masking matters: the model of image 0 has since drifted to class 1
    with torch.no_grad():
        assert (model(None)[0].argmax(0) == 1).all()
    # ... by momentum alone: a stopped image leaves the loss (no gradient after its update).
    # Step 1 applies g = (softmax(1, 0, -5) - onehot(1)) / 4 pixels; with no further gradient the
    # momentum buffer decays, so after T steps the logits moved by -lr * g * sum_k 0.9^k.
    g = (torch.softmax(torch.tensor([1.0, 0.0, -5.0]), 0) - torch.tensor([0.0, 1.0, 0.0])) / 4
    moved = -1.0 * g * sum(0.9**k for k in range(T))
    expected = logits[0] + moved[:, None, None]
    np.testing.assert_allclose(model.logits[0].detach().numpy(), expected.numpy(), atol=1e-5)


# --------------------------------------------------------------------------------------------
# the method


def test_method_results_do_not_depend_on_batch_companions():
    scenes = SyntheticScenes(n=2, size=(24, 32), seed=0)
    images = [scenes[0].image, scenes[1].image]
    seeds = [(0, "a"), (0, "b")]
    method = Kanezaki2018(form="paper", iterations=3)
    cpu = torch.device("cpu")
    together = method.run(images, seeds, cpu)
    alone = [method.run([im], [s], cpu)[0] for im, s in zip(images, seeds)]
    for t, a in zip(together, alone):
        assert t.iterations == a.iterations == 3
        assert t.labels.shape == (24, 32)
        assert t.extras["loss_history"].shape == (3,)
        np.testing.assert_allclose(t.extras["loss_history"], a.extras["loss_history"], rtol=1e-4)
    # the two images really are different problems
    assert not np.allclose(together[0].extras["loss_history"], together[1].extras["loss_history"])


def test_method_refuses_mixed_sizes():
    scenes = SyntheticScenes(n=1, size=(24, 32))
    with pytest.raises(ValueError):
        Kanezaki2018(iterations=1).run([scenes[0].image, scenes[0].image[:20]], [0, 1], torch.device("cpu"))


def test_code_and_paper_forms():
    paper = Kanezaki2018Config.for_form("paper")
    code = Kanezaki2018Config.for_form("code")
    assert (paper.bgr, paper.init, paper.response_affine, paper.min_labels, paper.iterations, paper.compactness) == (
        False, "xavier", False, None, 500, 10.0)
    assert (code.bgr, code.init, code.response_affine, code.min_labels, code.iterations, code.compactness) == (
        True, "default", True, 3, 1000, 100.0)
    for cfg in (paper, code):  # shared settings
        assert (cfg.n_layers, cfg.channels, cfg.classes, cfg.lr, cfg.momentum, cfg.n_superpixels) == (
            2, 100, 100, 0.1, 0.9, 10_000)
    # overrides apply; None keeps the form's value
    assert Kanezaki2018Config.for_form("code", iterations=7, min_labels=None).iterations == 7
    assert Kanezaki2018Config.for_form("code", min_labels=None).min_labels == 3
    with pytest.raises(ValueError):
        Kanezaki2018Config.for_form("demo")
    # K scales with the pixel count; a full BSDS500 image gets K = 10,000
    assert paper.superpixels_for(321, 481) == 10_000
    assert paper.superpixels_for(24, 32) == round(10_000 * 24 * 32 / (481 * 321))


def test_code_form_feeds_bgr_to_the_network():
    image = SyntheticScenes(n=1, size=(24, 32))[0].image
    x_paper, _ = Kanezaki2018(form="paper").prepare([image], torch.device("cpu"))
    x_code, _ = Kanezaki2018(form="code").prepare([image], torch.device("cpu"))
    expected = torch.from_numpy(image.astype(np.float32) / 255).permute(2, 0, 1)
    _close(x_paper[0], expected)
    _close(x_code[0], expected.flip(0))
