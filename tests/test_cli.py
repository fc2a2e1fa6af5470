"""The command line: `python -m lib evaluate / segment / verify` with known answers and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import write_fake_bsds
from lib.cli import main
from lib.files import read_label_map, save_label_map
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


def _two_halves(tmp_path, shape=(24, 32)) -> Path:
    """A tiny image, black on the left and red on the right, with a little noise."""
    rng = np.random.default_rng(0)
    image = np.zeros((*shape, 3), np.uint8)
    image[:, shape[1] // 2 :] = (200, 40, 40)
    image = np.clip(image + rng.normal(0, 5, image.shape), 0, 255).astype(np.uint8)
    src = tmp_path / "two_halves.png"
    Image.fromarray(image).save(src)
    return src


def test_segment_writes_16_bit_label_maps_and_overlays(tmp_path, capsys):
    src = _two_halves(tmp_path)
    out = tmp_path / "out"
    code, stdout, _ = _run(capsys, "segment", "--iterations", "2", "--device", "cpu", "--quiet", "--out", str(out),
                           str(src))
    assert code == 0 and "two_halves" in stdout
    assert "kanezaki2018 paper" in stdout  # the default method and its default form
    with Image.open(out / "two_halves.png") as im:
        assert im.mode.startswith("I;16") and im.size == (32, 24)
    labels = read_label_map(out / "two_halves.png")
    assert labels.shape == (24, 32) and labels.max() < 100
    assert (out / "two_halves_overlay.png").is_file()


@pytest.mark.parametrize("argv, expected", [
    (["--method", "kanezaki2018", "--form", "code"], "kanezaki2018 code M=2"),
    (["--method", "kim2020"], "kim2020 code mu=5 M=3"),  # kim2020: code form, mu 5 by default
    (["--method", "kim2020", "--form", "paper", "--mu", "2", "--layers", "1"], "kim2020 paper mu=2 M=1"),
    (["--method", "dynamicseg", "--scheme", "fsf"], "dynamicseg FSF code q'/15 M=3"),  # the paper's best mu
    (["--method", "dynamicseg", "--scheme", "scf"], "dynamicseg SCF code 100/q' M=3"),
    (["--method", "s3net"], "s3net paper"),
])
def test_segment_runs_each_method(tmp_path, capsys, argv, expected):
    src = _two_halves(tmp_path)
    out = tmp_path / "out"
    code, stdout, err = _run(capsys, "segment", *argv, "--iterations", "2", "--device", "cpu", "--quiet",
                             "--out", str(out), str(src))
    assert code == 0, err
    lines = stdout.splitlines()
    assert len(lines) == 1 and "two_halves" in lines[0] and expected in lines[0]
    assert "after 2 iterations" in lines[0]
    labels = read_label_map(out / "two_halves.png")
    assert labels.shape == (24, 32) and np.issubdtype(labels.dtype, np.integer)
    assert (out / "two_halves_overlay.png").is_file()


def test_segment_s3net_code_form_labels_come_back_at_the_image_size(tmp_path, capsys):
    """The code form runs at 256 x 256; the label map and the overlay are brought back to 24 x 32."""
    src = _two_halves(tmp_path)
    out = tmp_path / "out"
    code, stdout, err = _run(capsys, "segment", "--method", "s3net", "--form", "code", "--iterations", "2",
                             "--device", "cpu", "--quiet", "--out", str(out), str(src))
    assert code == 0, err
    assert "s3net code" in stdout
    assert read_label_map(out / "two_halves.png").shape == (24, 32)
    with Image.open(out / "two_halves_overlay.png") as im:
        assert im.size == (32, 24)


def test_segment_max_side_still_writes_at_the_image_size(tmp_path, capsys):
    src = _two_halves(tmp_path)
    out = tmp_path / "out"
    code, _, err = _run(capsys, "segment", "--max-side", "16", "--iterations", "2", "--layers", "1", "--device", "cpu",
                        "--quiet", "--out", str(out), str(src))
    assert code == 0, err
    assert read_label_map(out / "two_halves.png").shape == (24, 32)


@pytest.mark.parametrize("argv, option", [
    (["--method", "kanezaki2018", "--scheme", "fsf"], "--scheme"),
    (["--method", "kim2020", "--scheme", "scf"], "--scheme"),
    (["--method", "s3net", "--layers", "2"], "--layers"),
    (["--method", "s3net", "--mu", "5"], "--mu"),
    (["--method", "kanezaki2018", "--mu", "5"], "--mu"),
    (["--method", "dynamicseg"], "--scheme"),  # no scheme: refused, not a silent default
    (["--method", "kim2020", "--mu", "0"], "--mu"),
    (["--iterations", "0"], "--iterations"),
    (["--batch", "0"], "--batch"),
])
def test_segment_refuses_options_that_do_not_apply(tmp_path, capsys, argv, option):
    src = _two_halves(tmp_path)
    out = tmp_path / "out"
    code, stdout, err = _run(capsys, "segment", *argv, "--device", "cpu", "--quiet", "--out", str(out), str(src))
    assert code == 2 and option in err and err.startswith("error: ")
    assert not stdout and not out.exists()  # refused before anything ran or was written


def test_segment_has_no_variant_option(tmp_path, capsys):
    """``--variant`` was renamed ``--form``: argparse refuses it (exit code 2)."""
    src = _two_halves(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["segment", "--variant", "code", "--out", str(tmp_path / "out"), str(src)])
    assert exc.value.code == 2
    assert "--variant" in capsys.readouterr().err


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


# --------------------------------------------------------------------------------------------
# segment: a bad input is named, with what to do, before anything is written or optimised


def _refused(capsys, tmp_path, *argv, image=None):
    out = tmp_path / "out"
    code, stdout, err = _run(capsys, "segment", "--iterations", "2", "--device", "cpu", "--quiet", *argv,
                             *(("--out", str(out)) if "--out" not in argv else ()),
                             str(image or _two_halves(tmp_path)))
    assert code == 2 and err.startswith("error: ") and "Traceback" not in err
    assert not out.exists()  # nothing created
    return err


def test_segment_names_a_file_that_is_not_an_image(tmp_path, capsys):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    err = _refused(capsys, tmp_path, image=bad)
    assert "notes.png is not an image file" in err and "Re-download" not in err and "Pillow opens" in err


def test_segment_refuses_an_image_too_small_to_segment(tmp_path, capsys):
    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(tiny)
    err = _refused(capsys, tmp_path, image=tiny)
    assert "tiny.png: 1x1 pixels" in err and "at least 8" in err and "BatchNorm" not in err


@pytest.mark.parametrize("argv, expected", [
    (["--max-side", "-3"], "--max-side -3: must be at least 16"),
    (["--batch", "0"], "--batch 0: must be at least 1"),
    (["--device", "gpu"], "device='gpu': expected 'auto', 'cpu' or 'cuda'"),
])
def test_segment_names_a_bad_option(tmp_path, capsys, argv, expected):
    assert expected in _refused(capsys, tmp_path, *argv)


@pytest.mark.parametrize("kind", ["file", "under_a_file"])
def test_segment_checks_out_before_it_optimises(tmp_path, capsys, monkeypatch, kind):
    from lib.methods import Kanezaki2018

    def never(*args, **kwargs):
        raise AssertionError("the optimisation started before --out was checked")

    monkeypatch.setattr(Kanezaki2018, "run", never)
    blocker = tmp_path / "taken"
    blocker.write_text("a file")
    out = blocker if kind == "file" else blocker / "labels"
    code, _, err = _run(capsys, "segment", "--device", "cpu", "--quiet", "--out", str(out), str(_two_halves(tmp_path)))
    assert code == 2 and f"--out {out}" in err
    assert ("is not a folder" if kind == "file" else "cannot write there") in err


def test_segment_refuses_two_images_that_would_write_one_file(tmp_path, capsys):
    first = _two_halves(tmp_path)
    (tmp_path / "again").mkdir()
    second = _two_halves(tmp_path / "again")
    code, _, err = _run(capsys, "segment", "--out", str(tmp_path / "out"), str(first), str(second))
    assert code == 2 and "two_halves.png" in err and not (tmp_path / "out").exists()


def test_a_16_bit_image_is_scaled_not_clipped(tmp_path, capsys):
    """Pillow's convert("RGB") clips a 16-bit file at 255 (a 0..4000 image becomes 99.6% white);
    the file's own range is mapped to 0..255 instead, and the run says so."""
    from lib.files import read_image

    ramp = np.tile(np.linspace(1000, 3000, 32).round().astype(np.uint16), (24, 1))
    ramp[:, 16:] += 20000  # two halves far apart in value: the network should find them
    src = tmp_path / "ct.png"
    Image.fromarray(ramp).save(src)
    image, note = read_image(src)
    assert image.dtype == np.uint8 and image.shape == (24, 32, 3)
    low, high = int(ramp.min()), int(ramp.max())
    expected = np.round((ramp.astype(float) - low) / (high - low) * 255).astype(np.uint8)
    assert np.array_equal(image[..., 0], expected) and image.min() == 0 and image.max() == 255
    assert (image == 255).mean() < 0.05  # was 1.0: every pixel clipped
    assert "16-bit grey image; its values 1000..23000 are mapped linearly to 0..255" in note

    code, stdout, _ = _run(capsys, "segment", "--iterations", "20", "--device", "cpu", "--quiet",
                           "--out", str(tmp_path / "out"), str(src))
    assert code == 0 and "mapped linearly to 0..255" in stdout
    labels = read_label_map(tmp_path / "out" / "ct.png")
    assert len(np.unique(labels)) > 1  # a saturated (constant) image gives one label


def test_a_float_image_with_nan_is_refused_by_name(tmp_path):
    from lib.files import ImageFileError, read_image

    values = np.ones((8, 8), np.float32)
    values[0, 0] = np.nan
    path = tmp_path / "nan.tif"
    Image.fromarray(values).save(path)
    with pytest.raises(ImageFileError, match="nan.tif: a float image with NaN"):
        read_image(path)


def test_the_published_demo_runs_unchanged_under_the_harness(tmp_path):
    """--authors-demo runs a script with demo.py's command line (cv2.imread, --input, --visualize,
    --maxIter, --minLabels, one printed line per iteration) and times the gaps between lines."""
    from lib.benchmark import time_published_demo

    script = tmp_path / "demo.py"
    script.write_text(
        "import argparse, time, cv2\n"
        "p = argparse.ArgumentParser()\n"
        "for a in ('--input', '--visualize', '--maxIter', '--minLabels'):\n"
        "    p.add_argument(a)\n"
        "args = p.parse_args()\n"
        "im = cv2.imread(args.input)\n"
        "assert im.shape == (6, 5, 3) and im[0, 0, 0] == 30 and im[0, 0, 2] == 10  # BGR, as OpenCV reads\n"
        "for i in range(int(args.maxIter)):\n"
        "    time.sleep(0.02)\n"
        "    print(i, '/', args.maxIter)\n")
    image = np.zeros((6, 5, 3), np.uint8)
    image[..., 0], image[..., 2] = 10, 30
    seconds = time_published_demo(str(script), image, iterations=3)
    assert seconds >= 0.019  # each gap holds the script's 0.02 s sleep: the harness times the script
    with pytest.raises(ValueError, match="no such file"):
        time_published_demo(str(tmp_path / "missing.py"), image, 1)
