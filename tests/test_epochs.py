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


def test_an_unreadable_checkpoint_is_named_set_aside_and_trained_again(tmp_path):
    (tmp_path / CHECKPOINT).write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match=r"checkpoint\.pt: not readable.*set aside as checkpoint\.pt\.damaged"):
        again, _ = _toy(tmp_path, 3)
    whole, _ = _toy(tmp_path / "whole", 3)
    assert [r["loss"] for r in again.log] == [r["loss"] for r in whole.log]
    assert (tmp_path / "checkpoint.pt.damaged").read_bytes() == b"not a checkpoint"  # kept for inspection


def _zero_entry(path, which):
    """Overwrite the bytes of the zip entry ``which`` (a name fragment) with zeros, in place: its
    CRC-32 no longer matches, yet ``torch.load`` reads the zeros silently."""
    import struct
    import zipfile

    with zipfile.ZipFile(path) as z:
        info = next(i for i in z.infolist() if which in i.filename and i.file_size > 0)
    with open(path, "r+b") as f:
        f.seek(info.header_offset)
        header = f.read(30)
        name_len, extra_len = struct.unpack("<HH", header[26:30])
        f.seek(info.header_offset + 30 + name_len + extra_len)
        f.write(bytes(info.compress_size))
    return info.filename


def test_a_checkpoint_with_a_zeroed_tensor_is_named_set_aside_and_trained_again(tmp_path):
    whole, model_whole = _toy(tmp_path / "whole", 4)
    with pytest.raises(Stop):
        _toy(tmp_path / "b", 4, stop_after=2)
    entry = _zero_entry(tmp_path / "b" / CHECKPOINT, "data/")
    loaded = torch.load(tmp_path / "b" / CHECKPOINT, weights_only=False)  # what torch alone does: no error
    assert loaded["log"] and entry
    with pytest.warns(UserWarning, match=r"checkpoint\.pt: its entry .* fails its CRC-32 check"):
        resumed, model_resumed = _toy(tmp_path / "b", 4)
    assert [r["loss"] for r in resumed.log] == [r["loss"] for r in whole.log]  # trained again from epoch 1
    assert (tmp_path / "b" / "checkpoint.pt.damaged").is_file()


def test_a_checkpoint_holding_nan_is_named_set_aside_and_trained_again(tmp_path):
    from lib.files import save_torch

    with pytest.raises(Stop):
        _toy(tmp_path, 3, stop_after=1)
    state = torch.load(tmp_path / CHECKPOINT, weights_only=False)
    state["modules"]["m"]["weight"][0, 0] = float("nan")
    save_torch(tmp_path / CHECKPOINT, state)  # a valid file, with a NaN weight
    with pytest.warns(UserWarning, match=r"checkpoint\.pt: modules/m/weight holds NaN"):
        resumed, _ = _toy(tmp_path, 3)
    assert [r["epoch"] for r in resumed.log] == [1, 2, 3]


def test_a_training_that_diverges_stops_naming_the_epoch(tmp_path):
    from lib.loops.epochs import TrainingDiverged

    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    training = Training({"net": model}, {"net": opt}, torch.Generator())

    def epoch(e):
        if e == 2:
            with torch.no_grad():
                model.weight.fill_(float("inf"))
        return {"loss": float(e)}

    with pytest.raises(TrainingDiverged, match=r"after epoch 2, net's parameter weight holds NaN or infinite"):
        train_epochs(tmp_path / "run", training, 3, epoch, {"toy": 1})
    kept = torch.load(tmp_path / "run" / CHECKPOINT, weights_only=False)
    assert len(kept["log"]) == 1  # the diverged epoch was not written


def test_a_killed_runs_temporary_checkpoint_goes_with_the_next_run(tmp_path):
    import subprocess
    import sys

    from lib import files

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = files._owner().rsplit("-", 1)[0]
    orphan = tmp_path / f".{CHECKPOINT}.{host}-{dead.stdout.strip()}.k2j4x9.tmp"
    orphan.write_bytes(bytes(1000))
    _toy(tmp_path, 2)
    assert not orphan.exists()


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
    scores = first["scores"]["best"]["val"]
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
    train = J.Split("train", torch.zeros(50, 3, 4, 4, dtype=torch.uint8), torch.zeros(50, 4, 4, dtype=torch.long))
    small, large = J.training_subset(train, 0.2, 3, "seeded"), J.training_subset(train, 0.6, 3, "seeded")
    assert len(small) == 10 and len(large) == 30 and set(small.tolist()) <= set(large.tolist())
    assert not torch.equal(small, J.training_subset(train, 0.2, 4, "seeded"))  # drawn per seed
    # the authors' rule: one draw for every seed (their finetune.py reseeds 42), nested
    a, b = J.training_subset(train, 0.2, 3, "authors"), J.training_subset(train, 0.6, 9, "authors")
    assert torch.equal(a, J.training_subset(train, 0.2, 4, "authors")) and set(a.tolist()) <= set(b.tolist())
    # with the split file's places: the images whose place is below int(full * fraction)
    placed = J.Split("train", train.images[:4], train.masks[:4], torch.tensor([5, 0, 900, 294]), 2944)
    assert J.training_subset(placed, 0.1, 0, "authors").tolist() == [0, 1]  # 5 and 0 < int(294.4)
    assert J.training_subset(placed, 1.0, 0, "authors").tolist() == [0, 1, 2, 3]


def test_the_authors_test_batches():
    """test(): torch.manual_seed(42), FlexibleGANForSegmentation(output_size=64) built with
    PyTorch's default initialisation, then a DataLoader(batch_size=21, shuffle=True)."""
    from torch import nn
    from torch.utils.data import DataLoader

    before = torch.random.get_rng_state()
    batches = J.authors_test_batches(100)
    assert torch.equal(torch.random.get_rng_state(), before)  # the caller's random state untouched
    assert [len(b) for b in batches] == [21, 21, 21, 21, 16]
    assert sorted(torch.cat(batches).tolist()) == list(range(100))
    torch.manual_seed(42)  # the authors' network, built as their models.py builds it at 64 pixels
    trunk = [nn.Conv2d(3, 64, 4, 2, 1), nn.Conv2d(64, 128, 4, 2, 1), nn.BatchNorm2d(128), nn.Conv2d(128, 256, 4, 2, 1),
             nn.BatchNorm2d(256), nn.Conv2d(256, 512, 4, 2, 1), nn.BatchNorm2d(512)]
    heads = [nn.Conv2d(512, 1, 4, 1, 0), nn.Conv2d(512, 30, 4, 1, 0)]
    decoder = [nn.ConvTranspose2d(512, 256, 4, 2, 1), nn.BatchNorm2d(256), nn.ConvTranspose2d(256, 128, 4, 2, 1),
               nn.BatchNorm2d(128), nn.ConvTranspose2d(128, 64, 4, 2, 1), nn.BatchNorm2d(64),
               nn.ConvTranspose2d(64, 3, 4, 2, 1)]
    assert trunk and heads and decoder
    theirs = list(DataLoader(list(range(100)), batch_size=21, shuffle=True))
    assert [b.tolist() for b in batches] == [b.tolist() for b in theirs]
    torch.random.set_rng_state(before)


def test_finetuning_keeps_the_lowest_validation_loss_and_scores_both_checkpoints(tmp_path):
    images, masks = _pets(14)
    train = J.Split("train", images[:8], masks[:8])
    val, test = J.Split("val", images[8:11], masks[8:11]), J.Split("test", images[11:], masks[11:])
    setting = J.FinetuneSetting(form="corrected", init="scratch", trunk="trainable", seed=0, epochs=4)
    result = J.finetune(train, {"val": val, "test": test}, setting, None, tmp_path, torch.device("cpu"))
    losses = [r["val_loss"] for r in result["log"]]
    assert result["best_epoch"] == 1 + losses.index(min(losses))
    assert {"val_report_pixel_accuracy", "val_mean_iou", "val_iou_pet"} <= set(result["log"][0])
    best, last = result["scores"]["best"], result["scores"]["last"]
    assert best["val"]["loss"] == pytest.approx(min(losses), rel=1e-6)  # the kept weights are that epoch's
    assert last["val"]["loss"] == pytest.approx(losses[-1], rel=1e-6)
    assert set(best) == set(last) == {"val", "test"}
    runs, _, _ = J.run([setting], J.PretrainSetting(), (images[:4], images[4:6]), train, {"val": val, "test": test},
                       tmp_path, torch.device("cpu"))
    assert set(zip(runs.checkpoint, runs.split)) == {(c, s) for c in J.CHECKPOINTS.values() for s in ("val", "test")}
    assert set(runs[runs.checkpoint == "lowest val loss"].epoch) == {result["best_epoch"]}


def test_a_frozen_trunk_keeps_its_statistics_in_the_corrected_form():
    from lib.models import Discriminator

    images, masks = _pets(10)
    d = Discriminator(24, sigmoid_heads=False, generator=torch.Generator().manual_seed(0))
    stats = {k: v.clone() for k, v in d.trunk.state_dict().items() if "running" in k}
    for form, fixed in (("corrected", True), ("code", False)):
        net = J.SegmentationNet(d.trunk, 3, frozen=True, fixed_statistics=J.FORMS[form].trunk_statistics == "fixed")
        net.train()
        net(J.to_input(images, "symmetric"))
        after = {k: v for k, v in net.trunk.state_dict().items() if "running" in k}
        assert all(torch.equal(after[k], stats[k]) for k in stats) == fixed, form


def test_a_damaged_cached_stage_is_named_set_aside_and_recomputed(tmp_path):
    """JigsawGAN's finished stages (pre-training: final.pt; fine-tuning: result.json and
    predictions.npz) are verified when read back; so are the temporary files of killed runs
    swept from their folders."""
    import subprocess
    import sys

    from lib import files

    images, masks = _pets(12)
    train, held_out = J.unlabelled_split(images)
    setting = J.PretrainSetting(form="code", tiles=4, seed=0, epochs=1)
    first = J.pretrain(train, held_out, setting, tmp_path, torch.device("cpu"))
    (final,) = tmp_path.rglob("final.pt")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = final.parent / f".{CHECKPOINT}.{files._owner().rsplit('-', 1)[0]}-{dead.stdout.strip()}.a1b2c3.tmp"
    orphan.write_bytes(bytes(100))
    _zero_entry(final, "data/")
    with pytest.warns(UserWarning, match=r"final\.pt: its entry .* fails its CRC-32 check.*computing it again"):
        again = J.pretrain(train, held_out, setting, tmp_path, torch.device("cpu"))
    assert not orphan.exists()
    assert [r["loss_d"] for r in again.log] == [r["loss_d"] for r in first.log]

    split = J.Split("train", images[:8], masks[:8])
    val = J.Split("val", images[8:], masks[8:])
    fine = J.FinetuneSetting(form="code", init="gan", tiles=0, trunk="trainable", seed=0, epochs=1)
    setting0 = J.PretrainSetting(form="code", tiles=0, seed=0, epochs=1)
    gan = J.pretrain(train, held_out, setting0, tmp_path, torch.device("cpu"))
    result = J.finetune(split, {"val": val}, fine, gan, tmp_path, torch.device("cpu"))
    (done,) = tmp_path.rglob("result.json")
    done.write_text(done.read_text().replace('"loss"', '"loss" ', 1).replace("0.", "0.9", 1))  # a changed number
    with pytest.warns(UserWarning, match=r"result\.json: its content does not match its checksum"):
        again = J.finetune(split, {"val": val}, fine, gan, tmp_path, torch.device("cpu"))
    assert again["scores"] == result["scores"]
