"""The dataset-level training loop: checkpoints every epoch, resumes exactly, never retrains a
finished run; JigsawGAN's stages cached and shared."""

from __future__ import annotations

import pytest
import torch

from lib.loops.epochs import CHECKPOINT, CheckpointMismatch, Training, train_epochs
from lib.methods import jigsawgan as J


class Stop(Exception):
    pass


def _toy(folder, epochs, stop_after=None):
    """A linear model trained with noisy SGD: every draw from the checkpointed generator."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    rng = torch.Generator().manual_seed(1)
    training = Training({"m": model}, {"m": opt}, rng, {"m": torch.optim.lr_scheduler.StepLR(opt, 2, 0.5)})

    def epoch(e):
        x = torch.randn(8, 3, generator=rng)
        loss = (model(x) - x.sum(1, keepdim=True)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": loss.item()}

    def on_epoch(e, row):
        if stop_after is not None and e == stop_after:
            raise Stop

    train_epochs(folder, training, epochs, epoch, {"toy": 1}, on_epoch=on_epoch)
    return training, model


def test_an_interrupted_run_resumes_to_the_same_result(tmp_path):
    whole, model_whole = _toy(tmp_path / "a", 5)
    with pytest.raises(Stop):
        _toy(tmp_path / "b", 5, stop_after=2)
    assert (tmp_path / "b" / CHECKPOINT).is_file()
    resumed, model_resumed = _toy(tmp_path / "b", 5)
    assert [r["loss"] for r in resumed.log] == [r["loss"] for r in whole.log]
    for a, b in zip(model_whole.parameters(), model_resumed.parameters()):
        assert torch.equal(a, b)
    assert [r["epoch"] for r in resumed.log] == [1, 2, 3, 4, 5]


def test_a_finished_run_is_read_back_not_trained(tmp_path):
    first, _ = _toy(tmp_path, 3)
    again, _ = _toy(tmp_path, 3)
    assert again.log == first.log  # the seconds too: read back, not measured again


def test_a_checkpoint_of_another_configuration_is_refused(tmp_path):
    _toy(tmp_path, 2)
    model = torch.nn.Linear(3, 1)
    training = Training({"m": model}, {"m": torch.optim.SGD(model.parameters(), lr=0.1)}, torch.Generator())
    with pytest.raises(CheckpointMismatch, match="another configuration"):
        train_epochs(tmp_path, training, 2, lambda e: {}, {"toy": 2})


def test_a_broken_checkpoint_is_named(tmp_path):
    (tmp_path / CHECKPOINT).write_bytes(b"not a checkpoint")
    model = torch.nn.Linear(3, 1)
    training = Training({"m": model}, {"m": torch.optim.SGD(model.parameters(), lr=0.1)}, torch.Generator())
    with pytest.raises(CheckpointMismatch, match="Delete it"):
        train_epochs(tmp_path, training, 1, lambda e: {}, {"toy": 1})


def _pets(n=10):
    from lib.data.tensors import to_tensors
    from lib import data

    images, masks = to_tensors(list(data.load("synthetic_pets", n=n, seed=5)), image_resize="bilinear")
    return images, masks


def test_pretraining_resumes_exactly_and_is_shared(tmp_path, monkeypatch):
    images, _ = _pets()
    train, held_out = J.unlabelled_split(images)
    setting = J.PretrainSetting(form="corrected", tiles=4, seed=0, epochs=2)
    whole = J.pretrain(train, held_out, setting, tmp_path / "a", torch.device("cpu"))

    calls = []
    real_train_epochs = J.train_epochs

    def interrupted(folder, training, epochs, epoch, config, **kw):
        def stop(e, row):
            calls.append(e)
            raise Stop
        return real_train_epochs(folder, training, epochs, epoch, config, on_epoch=stop, **kw)

    monkeypatch.setattr(J, "train_epochs", interrupted)
    with pytest.raises(Stop):
        J.pretrain(train, held_out, setting, tmp_path / "b", torch.device("cpu"))
    monkeypatch.setattr(J, "train_epochs", real_train_epochs)
    resumed = J.pretrain(train, held_out, setting, tmp_path / "b", torch.device("cpu"))
    assert calls == [1]
    assert [r["loss_d"] for r in resumed.log] == [r["loss_d"] for r in whole.log]
    for a, b in zip(whole.discriminator.state_dict().values(), resumed.discriminator.state_dict().values()):
        assert torch.equal(a, b)
    # a finished pre-training is read back, never trained again
    monkeypatch.setattr(J, "train_epochs", lambda *a, **k: pytest.fail("trained again"))
    again = J.pretrain(train, held_out, setting, tmp_path / "b", torch.device("cpu"))
    assert again.log == resumed.log


def test_finetuning_is_cached_and_scores_both_protocols(tmp_path, monkeypatch):
    images, masks = _pets(12)
    train = J.Split("train", images[:8], masks[:8])
    val = J.Split("val", images[8:], masks[8:])
    setting = J.FinetuneSetting(form="code", init="scratch", trunk="trainable", seed=0, epochs=1)
    first = J.finetune(train, {"val": val}, setting, None, tmp_path, torch.device("cpu"))
    scores = first["scores"]["val"]
    assert 0 <= scores["report_iou"] <= 1 and 0 <= scores["mean_iou"] <= 1
    assert first["predictions"]["val"].shape == (4, 64, 64)
    monkeypatch.setattr(J, "train_epochs", lambda *a, **k: pytest.fail("trained again"))
    again = J.finetune(train, {"val": val}, setting, None, tmp_path, torch.device("cpu"))
    assert again["scores"] == first["scores"] and again["log"] == first["log"]
    assert not list(tmp_path.rglob(CHECKPOINT))  # a finished fine-tuning keeps its result only


def test_settings_are_table_1():
    fine = J.settings(["code"], [0], (9, 4), ("trainable", "frozen"))
    assert len(fine) == 7  # baseline, GAN x 2 trunks, jigsaw 9 / 4 x 2 trunks
    assert {(s.method, s.tiles if s.init == "jigsaw" else None, s.trunk) for s in fine} == {
        ("baseline", None, "trainable"), ("gan", None, "trainable"), ("gan", None, "frozen"),
        ("jigsawgan", 9, "trainable"), ("jigsawgan", 9, "frozen"), ("jigsawgan", 4, "trainable"),
        ("jigsawgan", 4, "frozen")}
    with pytest.raises(ValueError, match="frozen random trunk"):
        J.FinetuneSetting(init="scratch", trunk="frozen")


def test_fraction_subsets_are_nested():
    small, large = J.training_subset(50, 0.2, 3), J.training_subset(50, 0.6, 3)
    assert len(small) == 10 and len(large) == 30 and set(small.tolist()) <= set(large.tolist())
