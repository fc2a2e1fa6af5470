"""SegGAN: its losses on known answers, both generator inputs, DeepLab's weights, the two
stages (the GAN untouched by stage 2, the baseline as the lambda = 0 case, resume after an
interruption) and the per-class metrics of the test split."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lib.data import load
from lib.losses import adversarial_loss, content_loss, d_loss, one_hot_masks
from lib.methods import seggan
from lib.metrics.confusion import PET_TRIMAP_CLASSES, ConfusionMatrix
from lib.models import ImageDiscriminator, MaskToImage, segmentation_net
from lib.runtime import generator

CPU = torch.device("cpu")
TINY = seggan.Setting(backbone="mobilenet_v3_large", iterations=3, gan_iterations=3, batch=2, crop=32)


@pytest.fixture(scope="module")
def data() -> seggan.LabelledSet:
    train = list(load("synthetic_pets", n=4, size=(32, 32), seed=1))
    test = list(load("synthetic_pets", n=3, size=(32, 32), seed=2))
    return seggan.LabelledSet("synthetic_pets", PET_TRIMAP_CLASSES, train, test, "4 built-in images")


def _states_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# --------------------------------------------------------------------------------------------
# losses


def test_losses_on_known_values():
    real, fake = torch.tensor([[2.0]]), torch.tensor([[-1.0, 0.5]])
    # D: -log sigmoid(2) - mean(log(1 - sigmoid(fake)))
    expected = -math.log(1 / (1 + math.exp(-2))) - np.mean([math.log(1 - 1 / (1 + math.exp(-v))) for v in (-1, .5)])
    assert d_loss(real, fake).item() == pytest.approx(expected, rel=1e-6)
    minimax = np.mean([math.log(1 - 1 / (1 + math.exp(-v))) for v in (-1, .5)])  # eq. (5)'s log(1 - D(I^R))
    assert adversarial_loss(fake, "minimax").item() == pytest.approx(minimax, rel=1e-6)
    saturating = np.mean([-math.log(1 / (1 + math.exp(-v))) for v in (-1, .5)])
    assert adversarial_loss(fake, "non-saturating").item() == pytest.approx(saturating, rel=1e-6)
    with pytest.raises(ValueError, match="adversarial form 'wgan'"):
        adversarial_loss(fake, "wgan")
    a, b = torch.zeros(1, 3, 2, 2), torch.ones(1, 3, 2, 2) * 0.5
    assert content_loss(a, b).item() == pytest.approx(0.25)  # eq. (4): the mean squared difference


def test_one_hot_masks_leave_ignored_pixels_empty():
    labels = torch.tensor([[[0, 2], [255, 1]]])
    hot = one_hot_masks(labels, 3)
    assert hot.shape == (1, 3, 2, 2)
    np.testing.assert_array_equal(hot[0, :, 1, 0].numpy(), [0, 0, 0])  # unknown: no class
    np.testing.assert_array_equal(hot.argmax(1)[0, 0].numpy(), [0, 2])
    assert hot.sum().item() == 3


# --------------------------------------------------------------------------------------------
# networks


def test_a_mask_only_generator_never_looks_at_the_image():
    masks = one_hot_masks(torch.randint(0, 3, (2, 32, 32)), 3)
    g = MaskToImage(3, with_image=False, generator=generator("G", 0)).eval()
    a, b = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.equal(g(masks, a), g(masks, b)) and torch.equal(g(masks), g(masks, a))
    both = MaskToImage(3, with_image=True, generator=generator("G", 0)).eval()
    assert not torch.allclose(both(masks, a), both(masks, b))  # the paper's G reads the image
    assert both.encoder[0][0].in_channels == 6 and g.encoder[0][0].in_channels == 3
    with pytest.raises(ValueError, match="pass image"):
        both(masks)
    with pytest.raises(ValueError, match="multiples of 16; got 24x32"):
        g(masks[:, :, :24])
    out = ImageDiscriminator()(a)
    assert out.shape == (2, 1, 3, 3)  # one logit per patch


def test_deeplab_weights_from_a_file_and_by_name(tmp_path, monkeypatch):
    a = segmentation_net(3, "mobilenet_v3_large", generator=generator("a"))
    b = segmentation_net(3, "mobilenet_v3_large", generator=generator("b"))
    assert not _states_equal(a, b) and a.weights_note == "random initialisation"
    torch.save(a.state_dict(), tmp_path / "a.pt")
    loaded = segmentation_net(3, "mobilenet_v3_large", str(tmp_path / "a.pt"), generator=generator("b"))
    assert _states_equal(loaded, a) and loaded.weights_note == "a.pt"
    torch.save(a.model.state_dict(), tmp_path / "inner.pt")  # the torchvision model's own keys
    assert _states_equal(segmentation_net(3, "mobilenet_v3_large", str(tmp_path / "inner.pt")), a)
    other = segmentation_net(5, "mobilenet_v3_large", str(tmp_path / "a.pt"))  # 5 classes: last layer stays
    assert torch.equal(other.model.backbone["0"][0].weight, a.model.backbone["0"][0].weight)
    assert "left random" in other.weights_note and other.model.classifier[-1].out_channels == 5
    torch.save({"something": torch.zeros(2)}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="no backbone tensor"):
        segmentation_net(3, "mobilenet_v3_large", str(tmp_path / "bad.pt"))
    with pytest.raises(ValueError, match="neither a file nor a torchvision weights name"):
        segmentation_net(3, "mobilenet_v3_large", "ImageNet please")
    with pytest.raises(ValueError, match="backbone='vgg'"):
        segmentation_net(3, "vgg")

    # a torchvision backbone name: what torchvision would fetch goes into the backbone
    import torchvision
    from torchvision.models import MobileNet_V3_Large_Weights
    from torchvision.models.segmentation import DeepLabV3_MobileNet_V3_Large_Weights

    source = torchvision.models.mobilenet_v3_large().state_dict()
    monkeypatch.setattr(MobileNet_V3_Large_Weights, "get_state_dict", lambda self, *a, **k: source)
    named = segmentation_net(3, "mobilenet_v3_large", "MobileNet_V3_Large_Weights.IMAGENET1K_V1")
    assert torch.equal(named.model.backbone["0"][0].weight, source["features.0.0.weight"])
    assert "backbone" in named.weights_note
    # a whole DeepLabV3's name (COCO with the 21 VOC classes): it comes with an auxiliary head,
    # which is dropped; for 3 classes the last layer is new
    whole = torchvision.models.segmentation.deeplabv3_mobilenet_v3_large(num_classes=21, aux_loss=True).state_dict()
    monkeypatch.setattr(DeepLabV3_MobileNet_V3_Large_Weights, "get_state_dict", lambda self, *a, **k: whole)
    voc = segmentation_net(21, "mobilenet_v3_large", "DeepLabV3_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1")
    assert voc.model.aux_classifier is None and "whole network" in voc.weights_note
    assert torch.equal(voc.model.classifier[-1].weight, whole["classifier.4.weight"])
    three = segmentation_net(3, "mobilenet_v3_large", "DeepLabV3_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1")
    assert three.model.classifier[-1].out_channels == 3 and "re-initialised for 3 classes" in three.weights_note
    assert torch.equal(three.model.classifier[0].convs[0][0].weight, whole["classifier.0.convs.0.0.weight"])


# --------------------------------------------------------------------------------------------
# the two stages


def test_stage_2_leaves_the_gan_as_stage_1_made_it(data, tmp_path):
    s = replace(TINY, generator_input="mask")
    gan = seggan.train_gan(data, s, tmp_path, CPU, checkpoint_every=2)
    before_g = {k: v.clone() for k, v in gan.generator.state_dict().items()}
    before_d = {k: v.clone() for k, v in gan.discriminator.state_dict().items()}
    result = seggan.train_segmentation(data, s, gan, tmp_path, CPU, checkpoint_every=2)
    assert result["log"][-1]["content"] > 0  # the GAN terms were computed ...
    for before, net in ((before_g, gan.generator), (before_d, gan.discriminator)):
        after = net.state_dict()  # ... and no weight or BatchNorm statistic moved
        assert all(torch.equal(before[k], after[k]) for k in before)
    # the cached GAN is read back, equal
    again = seggan.train_gan(data, s, tmp_path, CPU, checkpoint_every=2)
    assert _states_equal(again.generator, gan.generator) and again.log == gan.log


def test_zero_lambdas_give_the_deeplab_baseline_exactly(data, tmp_path):
    base = seggan.train_segmentation(data, replace(TINY, method="deeplab"), None, tmp_path, CPU)
    s = replace(TINY, lambda_content=0.0, lambda_adversarial=0.0)
    gan = seggan.train_gan(data, s, tmp_path, CPU)
    zero = seggan.train_segmentation(data, s, gan, tmp_path, CPU)
    assert zero["scores"] == base["scores"]
    assert [r["segmentation"] for r in zero["log"]] == [r["segmentation"] for r in base["log"]]
    with pytest.raises(ValueError, match="a stage-1 GAN is needed exactly for method 'seggan'"):
        seggan.train_segmentation(data, s, None, tmp_path, CPU)


@pytest.mark.parametrize("stage", ["gan", "segmentation"])
def test_an_interrupted_training_resumes_to_the_same_result(data, tmp_path, monkeypatch, stage):
    s = replace(TINY, iterations=4, gan_iterations=4)
    whole = tmp_path / "whole"
    gan = seggan.train_gan(data, s, whole, CPU, checkpoint_every=1)
    expected = seggan.train_segmentation(data, s, gan, whole, CPU, checkpoint_every=1)

    cut = tmp_path / "cut"
    if stage == "segmentation":
        gan = seggan.train_gan(data, s, cut, CPU, checkpoint_every=1)
    real = seggan.train_epochs

    def stop_after_two(*args, **kwargs):
        def on_epoch(e, row):
            if e == 2:
                raise KeyboardInterrupt
        return real(*args, **kwargs, on_epoch=on_epoch)

    monkeypatch.setattr(seggan, "train_epochs", stop_after_two)
    with pytest.raises(KeyboardInterrupt):
        if stage == "gan":
            seggan.train_gan(data, s, cut, CPU, checkpoint_every=1)
        else:
            seggan.train_segmentation(data, s, gan, cut, CPU, checkpoint_every=1)
    assert list(cut.rglob("checkpoint.pt")), "the interrupted run left its checkpoint"
    monkeypatch.setattr(seggan, "train_epochs", real)
    resumed_gan = seggan.train_gan(data, s, cut, CPU, checkpoint_every=1)
    assert _states_equal(resumed_gan.generator, gan.generator if stage == "segmentation" else
                         seggan.train_gan(data, s, whole, CPU, checkpoint_every=1).generator)
    resumed = seggan.train_segmentation(data, s, resumed_gan, cut, CPU, checkpoint_every=1)
    drop = lambda log: [{k: v for k, v in r.items() if k != "seconds"} for r in log]  # noqa: E731
    assert drop(resumed["log"]) == drop(expected["log"]) and resumed["scores"] == expected["scores"]
    assert not list(cut.rglob("checkpoint.pt")), "a finished run keeps no checkpoint"


def test_the_test_split_is_scored_from_one_confusion_matrix(data, tmp_path):
    """Images of two sizes, unknown labels in some, scored in batches of 2 grouped by size: the
    same counts as one image at a time, unknown pixels left out."""
    from lib.data import Sample

    test = [Sample("t", str(k), s.image, (np.where(np.arange(32)[None, :] < 4 * k, -1, s.segmentations[0].astype(int)),))
            for k, s in enumerate(data.test)]
    test.append(Sample("t", "wide", np.zeros((32, 48, 3), np.uint8), (np.ones((32, 48), int),)))
    split = seggan.LabelledSet("t", PET_TRIMAP_CLASSES, data.train, test)
    net = segmentation_net(3, "mobilenet_v3_large", generator=generator("eval"))
    scores, predictions = seggan.evaluate(net, split, None, keep=4, batch=2)
    matrix = ConfusionMatrix(3, PET_TRIMAP_CLASSES, ignore_index=255)
    net.eval()
    with torch.no_grad():
        for sample in test:
            x = torch.from_numpy(sample.image).permute(2, 0, 1)[None].float() / 255
            target = torch.from_numpy(np.where(sample.segmentations[0] < 0, 255, sample.segmentations[0]))
            matrix.update(net(x).argmax(1), target.long()[None])
    ours = matrix.scores()
    assert int(matrix.counts().sum()) == 3 * 32 * 32 - 32 * (0 + 4 + 8) + 32 * 48  # unknown pixels not counted
    assert scores["mean_iou"] == pytest.approx(ours["mean_iou"])
    assert scores["iou_border"] == pytest.approx(ours["iou"]["border"])
    assert [p.shape for p in predictions] == [(32, 32)] * 3 + [(32, 48)]  # in the split's order


def test_fcn_metrics_by_hand_with_ignored_pixels():
    """Target / prediction over 6 pixels (255: not counted). Class 0: TP 2, FN 0, FP 1 -> IoU 2/3,
    recall 1; class 1: TP 1, FN 1, FP 0 -> IoU 1/2, recall 1/2; class 2 only predicted on an
    ignored pixel: absent -> IoU nan, not in the means. Pixel accuracy 3/4."""
    target = torch.tensor([0, 0, 1, 1, 255, 255])
    pred = torch.tensor([0, 0, 1, 0, 2, 1])
    m = ConfusionMatrix(3, ignore_index=255)
    m.update(pred, target)
    s = m.scores()
    assert s["pixel_accuracy"] == pytest.approx(3 / 4)
    assert s["class_accuracy"] == pytest.approx((1 + 0.5) / 2)
    assert s["iou"]["0"] == pytest.approx(2 / 3) and s["iou"]["1"] == pytest.approx(1 / 2)
    assert math.isnan(s["iou"]["2"]) and s["mean_iou"] == pytest.approx((2 / 3 + 1 / 2) / 2)


@pytest.mark.parametrize("generator_input", ["mask", "mask+image"])
def test_mask_use_is_the_content_loss_under_each_mask(data, tmp_path, generator_input):
    """Known answer, image by image: image k is given its own mask, image k-1's (across batch
    boundaries: batch 2 for 3 images) and none; for G reading the image, the image as well."""
    gan = seggan.train_gan(data, replace(TINY, generator_input=generator_input), tmp_path, CPU)
    use = seggan.mask_use(gan, data, batch=2)
    images, labels = seggan._test_crops(data, gan.setting)
    x = images.float() / 127.5 - 1
    g = gan.generator.eval()
    image = x if generator_input == "mask+image" else None

    def loss(masks):
        with torch.no_grad():
            return np.mean([content_loss(g(one_hot_masks(masks[k:k + 1], 3), None if image is None else
                                           image[k:k + 1]), x[k:k + 1]).item() for k in range(len(x))])

    other = torch.stack([labels[k - 1] for k in range(len(labels))])  # k-1: the last image's for the first
    assert use["content_true_mask"] == pytest.approx(loss(labels), rel=1e-5)
    assert use["content_shuffled_mask"] == pytest.approx(loss(other), rel=1e-5)
    assert use["content_no_mask"] == pytest.approx(loss(torch.full_like(labels, 255)), rel=1e-5)
    assert use["shuffled_over_true"] == pytest.approx(loss(other) / loss(labels), rel=1e-5)


def test_settings_are_checked_by_name():
    with pytest.raises(ValueError, match="generator_input='image'"):
        seggan.Setting(generator_input="image")
    with pytest.raises(ValueError, match="crop=40: a multiple of 16"):
        seggan.Setting(crop=40)
    grid = seggan.settings_grid(TINY, [0, 1], ["mask+image", "mask"], [(0.1, 0.1), (1.0, 0.0)])
    assert [s.method for s in grid[:2]] == ["deeplab", "deeplab"] and len(grid) == 2 + 2 * 2 * 2
    assert "lambda_content" not in grid[0].segmentation_config()  # the baseline's cache ignores the GAN's
    assert grid[2].segmentation_config()["lambda_content"] == 0.1


def test_the_paper_numbers_join_our_rows():
    import pandas as pd

    runs = pd.DataFrame([
        {"model": "DeepLab", "dataset": "stanford_background", "method": "deeplab", "generator_input": None,
         "lambda_content": np.nan, "lambda_adversarial": np.nan, "seed": 0, "class_accuracy": .5,
         "pixel_accuracy": .6, "mean_iou": .4, "seconds": 1.0},
        {"model": "SegGAN (mask, 0.1 / 0.1)", "dataset": "stanford_background", "method": "seggan",
         "generator_input": "mask", "lambda_content": 0.1, "lambda_adversarial": 0.1, "seed": 0,
         "class_accuracy": .5, "pixel_accuracy": .6, "mean_iou": .4, "seconds": 1.0}])
    table = seggan.summary_table(runs)
    assert table.paper_mean_iou.iloc[0] == 63.4  # DeepLab, Table II
    assert math.isnan(table.paper_mean_iou.iloc[1])  # the paper's G reads the image: no number for "mask"
    assert math.isnan(seggan.summary_table(runs.assign(dataset="oxford_pet")).paper_mean_iou.iloc[0])
    voc = seggan.per_class_table(runs.assign(**{f"iou_{c}": .5 for c in ("a", "b")}), ("a", "b"), "voc2012")
    assert list(voc.source) == ["ours", "ours", "paper", "paper"]
    assert voc.mean_iou.iloc[2:].tolist() == [86.9, 87.4]


def test_the_benchmark_times_all_three_loops(data):
    from lib.benchmark_seggan import estimates, time_seggan

    rates = time_seggan(data, replace(TINY, batch=2), iterations=1, device=CPU)
    assert set(rates) == {"gan_iterations_per_second", "seggan_iterations_per_second",
                          "deeplab_iterations_per_second"} and min(rates.values()) > 0
    hours = estimates({"gan_iterations_per_second": 10.0, "seggan_iterations_per_second": 5.0,
                       "deeplab_iterations_per_second": 8.0})
    # Table II: 6 GANs x 2000 s + 6 SegGAN x 4000 s + 3 DeepLab x 2500 s
    assert hours["estimated_hours_table2 (Stanford Background)"] == pytest.approx((12000 + 24000 + 7500) / 3600)


def test_checkpoints_do_not_change_the_draws(data, tmp_path):
    """Every crop and dropout seed is drawn iteration by iteration: checkpointing every iteration
    or once gives the same training."""
    s = replace(TINY, method="deeplab", iterations=3)
    once = seggan.train_segmentation(data, s, None, tmp_path / "a", CPU, checkpoint_every=3)
    often = seggan.train_segmentation(data, s, None, tmp_path / "b", CPU, checkpoint_every=1)
    assert once["scores"] == often["scores"]
    assert once["log"][0]["segmentation"] == pytest.approx(np.mean([r["segmentation"] for r in often["log"]]))


@pytest.mark.parametrize("batchnorm, changes", [("train", True), ("frozen", False)])
def test_deeplabs_batchnorm_mode_is_a_setting(batchnorm, changes):
    """The paper is silent; DrSleep's DeepLab-ResNet keeps the stored statistics while training
    ("frozen"), PyTorch's default updates them ("train")."""
    net = segmentation_net(3, "mobilenet_v3_large", generator=generator("bn"), batchnorm=batchnorm)
    before = {k: v.clone() for k, v in net.state_dict().items() if "running_mean" in k}
    net.train()
    net(torch.rand(2, 3, 32, 32)).sum().backward()
    after = net.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before) == changes
    assert replace(TINY, batchnorm=batchnorm).segmentation_config()["batchnorm"] == batchnorm  # in the cache key
    with pytest.raises(ValueError, match="batchnorm='sync'"):
        replace(TINY, batchnorm="sync")
