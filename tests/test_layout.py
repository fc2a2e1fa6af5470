"""The memory layout of the per-image networks: measured, cached, recorded, and without effect
on the arithmetic."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from lib import layout as layouts
from lib.evaluation import RegionEvaluator
from lib.layout import Layout
from lib.methods import Kanezaki2018, S3Net
from lib.models.kanezaki2018 import Kanezaki2018Net
from lib.models.s3net import DepthwiseConv2d
from lib.paths import REPO_ROOT
from lib.runs import run_method
from lib.runtime import generator

CPU = torch.device("cpu")


def _image(shape=(20, 28), seed=0):
    rng = np.random.default_rng(seed)
    image = np.zeros((*shape, 3), np.uint8)
    image[:, shape[1] // 2:] = (200, 60, 30)
    return np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)


def test_names_round_trip():
    for candidate in layouts.CANDIDATES:
        assert layouts.parse(str(candidate)) == candidate
    assert str(Layout("channels_last", "channels_last")) == "channels_last"
    with pytest.raises(ValueError, match="nhwc"):
        layouts.parse("nhwc")


@pytest.mark.parametrize("forced", ["nchw", "channels_last", "conv=channels_last,norm=nchw"])
def test_every_layout_gives_the_same_labels_on_a_small_image(monkeypatch, forced):
    def labels(name):
        monkeypatch.setenv("SEGSTUDY_LAYOUT", name)
        out = Kanezaki2018(form="code", iterations=5, min_labels=None).run([_image()], [(0, "x")], CPU)[0]
        assert out.layout == name
        return out.labels

    assert np.array_equal(labels("nchw"), labels(forced))


def test_the_layout_changes_no_value_or_gradient():
    model = Kanezaki2018Net(1, 2, channels=8, classes=6, generators=[generator(0)])
    x = torch.rand(1, 3, 12, 16)

    def forward_backward(candidate):
        model.layout = candidate
        model.zero_grad()
        y = model(x)
        (y * torch.arange(y.numel()).reshape(y.shape).float().sin()).sum().backward()
        return y.detach().contiguous(), [p.grad.clone() for p in model.parameters()]

    y0, g0 = forward_backward(Layout())
    for candidate in layouts.CANDIDATES:
        y, g = forward_backward(candidate)
        torch.testing.assert_close(y, y0, atol=1e-5, rtol=1e-5)
        for a, b in zip(g, g0):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_the_probe_is_measured_once_cached_and_recorded(monkeypatch, tmp_path):
    monkeypatch.delenv("SEGSTUDY_LAYOUT", raising=False)
    monkeypatch.setenv("SEGSTUDY_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(layouts, "_CHOSEN", {})
    from lib.data import load

    scenes = list(load("synthetic", n=1, size=(20, 28)))
    records = run_method(Kanezaki2018(iterations=2), scenes, [0], tmp_path / "cache", evaluator=RegionEvaluator(),
                         progress=False)
    cache = json.loads((tmp_path / "layouts.json").read_text())
    (entry,) = cache.values()
    assert set(entry["seconds"]) == {str(c) for c in layouts.CANDIDATES}
    assert entry["layout"] == min(entry["seconds"], key=entry["seconds"].get) == records[0].layout
    with np.load(next((tmp_path / "cache").rglob("*.npz"))) as z:
        assert str(z["layout"]) == records[0].layout  # in the run record on disk

    # the next process reads the choice back instead of measuring again
    monkeypatch.setattr(layouts, "_CHOSEN", {})
    monkeypatch.setattr(layouts, "measure", lambda *a, **k: pytest.fail("measured twice"))
    model = Kanezaki2018Net(1, 2, generators=[generator(0)])
    assert str(layouts.choose(model, torch.rand(1, 3, 20, 28))) == entry["layout"]


def test_probing_changes_no_result(monkeypatch, tmp_path):
    """The probe times a copy of the network: the run that measures and a run that is told the
    same layout give identical labels (S3-Net: its random transformations are untouched too)."""
    monkeypatch.delenv("SEGSTUDY_LAYOUT", raising=False)
    monkeypatch.setenv("SEGSTUDY_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(layouts, "_CHOSEN", {})
    method = S3Net(iterations=3, min_labels=0, channels=6, classes=5, n_blocks=1)
    measured = method.run([_image()], [(0, "x")], CPU)[0]
    monkeypatch.setenv("SEGSTUDY_LAYOUT", measured.layout)
    told = method.run([_image()], [(0, "x")], CPU)[0]
    assert np.array_equal(measured.labels, told.labels)


@pytest.mark.parametrize("k, dilation", [(3, 1), (5, 1), (5, 2), (7, 3)])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("polyphase", [False, True])
def test_depthwise_backward_equals_pytorchs(k, dilation, memory_format, polyphase):
    """S3-Net's I-LKA kernels: the backward written as convolutions, and the dilated kernels
    computed on interleaved sub-grids, give PyTorch's values and gradients (input, weight,
    bias), in double precision to rounding (17 x 23: sizes no dilation divides)."""
    torch.manual_seed(0)
    pad = dilation * (k // 2)
    ref = torch.nn.Conv2d(12, 12, k, padding=pad, dilation=dilation, groups=12).double()
    new = DepthwiseConv2d(12, 12, k, padding=pad, dilation=dilation, groups=12).double()
    new.load_state_dict(ref.state_dict())
    new.polyphase = polyphase
    x = torch.randn(2, 12, 17, 23, dtype=torch.double).contiguous(memory_format=memory_format).requires_grad_()
    g = torch.randn(2, 12, 17, 23, dtype=torch.double)
    torch.testing.assert_close(new(x), ref(x))
    for a, b in zip(torch.autograd.grad(new(x), (x, new.weight, new.bias), g),
                    torch.autograd.grad(ref(x), (x, ref.weight, ref.bias), g)):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)
    with torch.no_grad():
        torch.testing.assert_close(new(x), ref(x))


def test_a_dilated_depthwise_convolution_measures_its_form_once(monkeypatch, tmp_path):
    monkeypatch.setenv("SEGSTUDY_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(layouts, "_CHOSEN", {})
    conv = DepthwiseConv2d(4, 4, 7, padding=9, dilation=3, groups=4)
    conv(torch.rand(1, 4, 30, 32))
    (entry,) = json.loads((tmp_path / "layouts.json").read_text()).values()
    assert set(entry["seconds"]) == {"dilated", "polyphase"}
    assert entry["layout"] == min(entry["seconds"], key=entry["seconds"].get)
    monkeypatch.setattr(layouts, "measure", lambda *a, **k: pytest.fail("measured twice"))
    conv(torch.rand(1, 4, 30, 32))


def _modules_after(code: str) -> set[str]:
    done = subprocess.run([sys.executable, "-c", code + "\nimport sys; print(' '.join(sys.modules))"],
                          capture_output=True, text=True, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_the_command_line_pays_only_for_what_it_uses(tmp_path):
    helped = _modules_after("from lib.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass")
    assert not {"torch", "skimage", "scipy", "matplotlib", "pandas"} & helped
    from PIL import Image

    Image.fromarray(_image()).save(tmp_path / "a.png")
    segmented = _modules_after(f"from lib.cli import main\nassert main(['segment', '--iterations', '1', '--quiet', "
                               f"'--device', 'cpu', '--out', {str(tmp_path / 'out')!r}, {str(tmp_path / 'a.png')!r}]) == 0")
    assert "torch" in segmented
    assert not {"torchvision", "matplotlib", "seaborn", "pandas"} & segmented
