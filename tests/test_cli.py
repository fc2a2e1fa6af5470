"""The command line: `python -m lib evaluate / segment / verify` with known answers and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import write_fake_bsds
from lib.cli import main
from lib.io import read_label_map, save_label_map
from lib.metrics import image_miou, pooled_miou


def _run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_evaluate_matches_the_library(tmp_path, capsys):
    segs = write_fake_bsds(tmp_path, ids=("2", "10"), shape=(12, 16))
    pred_dir = tmp_path / "pred"
    rng = np.random.default_rng(1)
    preds = [rng.integers(0, 3, size=(12, 16)) for _ in segs]
    save_label_map(pred_dir / "2.png", preds[0])
    pred_dir.mkdir(exist_ok=True)
    np.save(pred_dir / "10.npy", preds[1])  # .npy is accepted too
    code, out, _ = _run(capsys, "evaluate", "bsds500", "--pred", str(pred_dir), "--data-root", str(tmp_path), "--json")
    assert code == 0
    got = json.loads(out)
    expected = pooled_miou([image_miou(p, s) for p, s in zip(preds, segs)])
    for key in ("all", "fine", "coarse", "mean"):
        assert got[key] == pytest.approx(expected[key], abs=1e-12)
    assert got["images"] == 2


def test_evaluate_names_the_missing_image(tmp_path, capsys):
    write_fake_bsds(tmp_path, ids=("2", "10"), shape=(12, 16))
    pred_dir = tmp_path / "pred"
    save_label_map(pred_dir / "2.png", np.zeros((12, 16), int))
    code, _, err = _run(capsys, "evaluate", "bsds500", "--pred", str(pred_dir), "--data-root", str(tmp_path))
    assert code == 2 and "image 10" in err and "10.png" in err


def test_evaluate_names_the_mis_sized_image(tmp_path, capsys):
    write_fake_bsds(tmp_path, ids=("2",), shape=(12, 16))
    pred_dir = tmp_path / "pred"
    save_label_map(pred_dir / "2.png", np.zeros((16, 12), int))
    code, _, err = _run(capsys, "evaluate", "bsds500", "--pred", str(pred_dir), "--data-root", str(tmp_path))
    assert code == 2 and "image 2" in err and "16x12" in err and "12x16" in err


def test_evaluate_without_dataset_says_how_to_get_it(tmp_path, capsys):
    (tmp_path / "pred").mkdir()
    code, _, err = _run(capsys, "evaluate", "bsds500", "--pred", str(tmp_path / "pred"), "--data-root", str(tmp_path / "nowhere"))
    assert code == 2 and "python -m lib download bsds500" in err and "nowhere" in err


@pytest.mark.realdata
def test_blank_predictions_give_the_published_sanity_numbers(bsds_root, tmp_path, capsys):
    """Kim et al.'s published check: one segment per image -> All .0458, Fine .0249, Coarse .1001."""
    from lib import data

    pred_dir = tmp_path / "blank"
    for s in data.load("bsds500", root=bsds_root, split="test"):
        save_label_map(pred_dir / f"{s.id}.png", np.zeros(s.shape, np.uint16))
    code, out, _ = _run(capsys, "evaluate", "bsds500", "--pred", str(pred_dir), "--data-root", str(bsds_root), "--json", "--quiet")
    assert code == 0
    got = json.loads(out)
    assert got["images"] == 200
    assert (round(got["all"], 4), round(got["fine"], 4), round(got["coarse"], 4)) == (0.0458, 0.0249, 0.1001)


def test_segment_writes_16_bit_label_maps_and_overlays(tmp_path, capsys):
    rng = np.random.default_rng(0)
    image = np.zeros((24, 32, 3), np.uint8)
    image[:, 16:] = (200, 40, 40)
    image = np.clip(image + rng.normal(0, 5, image.shape), 0, 255).astype(np.uint8)
    src = tmp_path / "two_halves.png"
    Image.fromarray(image).save(src)
    out = tmp_path / "out"
    code, stdout, _ = _run(capsys, "segment", "--iterations", "2", "--device", "cpu", "--quiet", "--out", str(out), str(src))
    assert code == 0 and "two_halves" in stdout
    with Image.open(out / "two_halves.png") as im:
        assert im.mode.startswith("I;16") and im.size == (32, 24)
    labels = read_label_map(out / "two_halves.png")
    assert labels.shape == (24, 32) and labels.max() < 100
    assert (out / "two_halves_overlay.png").is_file()


def test_segment_refuses_a_missing_image(tmp_path, capsys):
    code, _, err = _run(capsys, "segment", "--out", str(tmp_path), str(tmp_path / "nope.jpg"))
    assert code == 2 and "nope.jpg" in err


def test_benchmark_loops_run_on_a_small_image():
    """The benchmark's two loops (the numbers themselves are measured, never asserted)."""
    import torch

    from lib.benchmark import time_reference_loop, time_study_loop

    image = np.random.default_rng(0).integers(0, 256, size=(24, 32, 3), dtype=np.uint8)
    assert time_study_loop([image, image], layers=1, iterations=1, device=torch.device("cpu")) > 0
    assert time_study_loop([image], layers=1, iterations=1, device=torch.device("cpu"), method="kim2020") > 0
    for method in ("s3net", "s3net-code"):  # the code form resizes to its 256 x 256
        assert time_study_loop([image, image], layers=1, iterations=1, device=torch.device("cpu"), method=method) > 0
    assert time_reference_loop(image, layers=1, iterations=1, device=torch.device("cpu")) > 0


def test_evaluate_lists_every_problem_at_once(tmp_path, capsys):
    write_fake_bsds(tmp_path, ids=("2", "10", "30"), shape=(12, 16))
    pred_dir = tmp_path / "pred"
    save_label_map(pred_dir / "2.png", np.zeros((12, 16), int))
    np.save(pred_dir / "2.npy", np.zeros((12, 16), int))  # two predictions for one image
    code, _, err = _run(capsys, "evaluate", "bsds500", "--pred", str(pred_dir), "--data-root", str(tmp_path))
    assert code == 2 and "3 of 3 images" in err
    assert "image 2: both 2.png and 2.npy" in err and "image 10: no prediction" in err and "image 30: no prediction" in err
