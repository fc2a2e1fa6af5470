"""The command line's errors (issue 23): a bad input is named, with what to do about it, before any
long work starts; a broken dataset copy is never scored or reported "ready"."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import write_fake_bsds, write_fake_stanford
from test_oxford_pet_verify import broken_pets, write_pets
from lib.cli import main
from lib.files import save_label_map


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _image(folder: Path, name: str = "two_halves.png", shape=(24, 32)) -> Path:
    """A small image, black on the left and red on the right."""
    image = np.zeros((*shape, 3), np.uint8)
    image[:, shape[1] // 2:] = (200, 40, 40)
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(folder / name)
    return folder / name


def _never(*args, **kwargs):
    raise AssertionError("the optimisation started before the input was checked")


# --------------------------------------------------------------------------------------------
# 1. evaluate bsds500: a benchmark over a named split covers all of it or fails naming what is missing


def _predictions(root: Path, pred: Path, split: str = "test", shape=(12, 16)) -> None:
    for jpg in (root / "bsds500" / "images" / split).glob("*.jpg"):
        save_label_map(pred / f"{jpg.stem}.png", np.zeros(shape, int))


def test_evaluate_refuses_a_split_whose_image_is_gone(tmp_path, capsys):
    """One image's .jpg deleted, its .mat still there: the image is named, not silently dropped."""
    write_fake_bsds(tmp_path, ids=("2", "10", "30"))
    pred = tmp_path / "pred"
    _predictions(tmp_path, pred)
    (tmp_path / "bsds500" / "images" / "test" / "10.jpg").unlink()
    code, out, err = _run(capsys, "evaluate", "bsds500", "--pred", pred, "--data-root", tmp_path)
    assert code == 2 and not out, out
    assert str(tmp_path / "bsds500" / "images" / "test" / "10.jpg") in err
    assert f"python -m lib download bsds500 --data-root {tmp_path}" in err


def _official_copy(root: Path, split: str = "test", drop=()) -> list[str]:
    """Tiny files under the official ids of ``split`` (the manifest's), except ``drop``."""
    from lib.data import bsds500

    ids = sorted({Path(r).stem for r in bsds500.manifest() if r.startswith(f"images/{split}/")} - set(drop), key=int)
    write_fake_bsds(root, ids=ids, shape=(12, 16), split=split, annotators=1)
    return ids


def test_evaluate_refuses_a_copy_missing_official_images(tmp_path, capsys):
    """Both files of two test images gone: the manifest knows the split's 200 ids."""
    present = _official_copy(tmp_path, drop=("100007", "100039"))
    pred = tmp_path / "pred"
    _predictions(tmp_path, pred)
    assert len(present) == 198
    code, out, err = _run(capsys, "evaluate", "bsds500", "--pred", pred, "--data-root", tmp_path, "--json")
    assert code == 2 and not out, out
    assert "2 of its 200 images" in err and "100007" in err and "100039" in err
    assert str(Path("images") / "test" / "100007.jpg") in err and str(Path("groundTruth") / "test" / "100039.mat") in err
    assert f"python -m lib download bsds500 --data-root {tmp_path}" in err and "python -m lib verify bsds500" in err


# --------------------------------------------------------------------------------------------
# 2. download / verify oxford_pet: a broken copy is not "ready"


def test_download_oxford_pet_checks_the_copy_torchvision_skipped(tmp_path, capsys, monkeypatch):
    """torchvision does not download when the folders exist; the copy is checked all the same."""
    import torchvision

    base = broken_pets(tmp_path)
    monkeypatch.setattr(torchvision.datasets, "OxfordIIITPet", lambda *args, **kwargs: None)
    code, out, err = _run(capsys, "download", "oxford_pet", "--data-root", tmp_path)
    assert code != 0 and "ready" not in out
    text = out + err
    assert str(base / "images" / "Abyssinian_2.jpg") in text
    assert str(base / "annotations" / "trimaps" / "beagle_3.png") in text
    assert "2 problem(s)" in text and f"python -m lib download oxford_pet --data-root {tmp_path}" in text


def test_verify_oxford_pet(tmp_path, capsys):
    base = broken_pets(tmp_path)
    code, out, err = _run(capsys, "verify", "oxford_pet", "--data-root", tmp_path)
    assert code == 1
    assert str(base / "images" / "Abyssinian_2.jpg") in out and "2 problem(s)" in out
    assert f"python -m lib download oxford_pet --data-root {tmp_path}" in out
    good = tmp_path / "good"
    write_pets(good, ["Abyssinian_1"], test=["pug_4"])
    code, out, _ = _run(capsys, "verify", "oxford_pet", "--data-root", good)
    assert code == 0 and "1 trainval and 1 test" in out


# --------------------------------------------------------------------------------------------
# 3 - 5, 14. segment


def test_segment_names_a_folder_given_as_an_image(tmp_path, capsys):
    folder = tmp_path / "photos"
    _image(folder)
    code, _, err = _run(capsys, "segment", "--out", tmp_path / "out", folder)
    assert code == 2 and f"{folder} is a folder" in err and f"{folder}/*.jpg" in err
    assert "image not found" not in err and not (tmp_path / "out").exists()


def test_segment_interrupted_says_what_was_written(tmp_path, capsys, monkeypatch):
    from lib.methods import Kanezaki2018

    first, second = _image(tmp_path, "a.png"), _image(tmp_path, "b.png")
    real, calls = Kanezaki2018.run, []

    def interrupted_at_the_second(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Kanezaki2018, "run", interrupted_at_the_second)
    out = tmp_path / "out"
    try:
        code, stdout, err = _run(capsys, "segment", "--iterations", "2", "--device", "cpu", "--quiet", "--out", out,
                                 first, second)
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C ended segment with a raw KeyboardInterrupt")
    assert code == 130
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "interrupted" in lines[0] and "Traceback" not in err
    assert "1 of 2 images" in lines[0] and str(out / "a.png") in lines[0] and "b.png" in lines[0]
    assert (out / "a.png").is_file() and not (out / "b.png").exists()


@pytest.mark.parametrize("taken", ["two_halves.png", "two_halves_overlay.png"])
def test_segment_refuses_an_output_name_taken_by_a_folder(tmp_path, capsys, monkeypatch, taken):
    from lib.methods import Kanezaki2018

    monkeypatch.setattr(Kanezaki2018, "run", _never)
    out = tmp_path / "out"
    (out / taken).mkdir(parents=True)
    code, _, err = _run(capsys, "segment", "--device", "cpu", "--quiet", "--out", out, _image(tmp_path))
    assert code == 2 and f"{out / taken} is a folder" in err and "another --out" in err


@pytest.fixture(scope="module")
def huge_png(tmp_path_factory) -> Path:
    """A 9000 x 9000 constant PNG: 243 MB decoded, a few hundred kB on disk."""
    path = tmp_path_factory.mktemp("huge") / "huge.png"
    Image.new("RGB", (9000, 9000), (90, 120, 150)).save(path, optimize=False, compress_level=1)
    return path


def test_segment_refuses_an_image_too_large_for_memory_before_reading_it(tmp_path, capsys, monkeypatch, huge_png):
    import lib.files
    from lib.methods import Kanezaki2018

    def no_decoding(path):
        raise AssertionError(f"{path} was decoded before its memory was estimated")

    monkeypatch.setattr(lib.files, "read_image", no_decoding)
    monkeypatch.setattr(Kanezaki2018, "run", _never)
    import lib.memory

    monkeypatch.setattr(lib.memory, "host_available", lambda: 16 << 30)  # enough to shrink it, not to run it
    out = tmp_path / "out"
    code, stdout, err = _run(capsys, "segment", "--device", "cpu", "--quiet", "--out", out, huge_png)
    assert code == 2 and not stdout and not out.exists()
    assert "huge.png" in err and "9000x9000" in err and "16.0 GiB available" in err
    needed = re.search(r"needs about ([\d.,]+) GiB", err)
    assert needed and float(needed.group(1).replace(",", "")) > 16
    side = re.search(r"--max-side (\d+)", err)
    assert side, err
    # the suggested --max-side fits, one more pixel does not
    from lib.cli import MIN_MAX_SIDE
    from lib.methods import Kanezaki2018 as K

    method, shapes = K(), {huge_png: (9000, 9000)}
    assert lib.memory.shortage(method, shapes, int(side.group(1)), 1, "cpu", MIN_MAX_SIDE) is None
    assert lib.memory.shortage(method, shapes, int(side.group(1)) + 1, 1, "cpu", MIN_MAX_SIDE) is not None


def test_segment_runs_an_image_that_fits(tmp_path, capsys, monkeypatch):
    import lib.memory

    monkeypatch.setattr(lib.memory, "host_available", lambda: 4 << 30)
    out = tmp_path / "out"
    code, stdout, err = _run(capsys, "segment", "--iterations", "2", "--device", "cpu", "--quiet", "--out", out,
                             _image(tmp_path))
    assert code == 0, err
    assert (out / "two_halves.png").is_file()


def test_memory_estimate_grows_with_pixels_and_batch():
    import lib.memory
    from lib.methods import Kanezaki2018, S3Net

    k = Kanezaki2018()
    small, large = lib.memory.network_bytes(k, (100, 100), 1), lib.memory.network_bytes(k, (200, 200), 1)
    assert 3 < large / small < 4.1  # nearly four times the pixels
    assert lib.memory.network_bytes(k, (100, 100), 3) == pytest.approx(3 * small, rel=1e-6)
    # s3net's code form runs at 256 x 256 whatever the image's size
    code = S3Net(form="code")
    assert lib.memory.network_bytes(code, (100, 100), 1) == lib.memory.network_bytes(code, (900, 900), 1)


# --------------------------------------------------------------------------------------------
# 6. evaluate bsds500 refuses voc2012's options


@pytest.mark.parametrize("option", [["--ground-truth", "class"], ["--void", "keep"], ["--ground-truth", "object"]])
def test_evaluate_bsds500_refuses_voc_options(tmp_path, capsys, option):
    write_fake_bsds(tmp_path, ids=("2",))
    pred = tmp_path / "pred"
    _predictions(tmp_path, pred)
    code, out, err = _run(capsys, "evaluate", "bsds500", "--pred", pred, "--data-root", tmp_path, *option)
    assert code == 2 and not out and option[0] in err and "voc2012" in err


def test_evaluate_voc2012_keeps_its_defaults(tmp_path, capsys):
    from conftest import write_fake_voc

    from lib import data

    written = write_fake_voc(tmp_path)
    pred = tmp_path / "pred"
    for image_id, (cls, _) in written.items():
        save_label_map(pred / f"{image_id}.png", np.zeros(cls.shape, int))
    code, out, err = _run(capsys, "evaluate", "voc2012", "--pred", pred, "--data-root", tmp_path, "--split", "val",
                          "--json")
    assert code == 0, err
    ds = data.load("voc2012", root=tmp_path, split="val", subset=None)
    assert json.loads(out)["images"] == len(ds) == 2


# --------------------------------------------------------------------------------------------
# 7, 8. stanford_background: --sha256 checked before the download; verify's total and fix


@pytest.mark.parametrize("digest", ["abc", "g" * 64, "0" * 63])
def test_download_stanford_checks_the_sha256_before_downloading(tmp_path, capsys, monkeypatch, digest):
    from lib.data import base, stanford_background

    monkeypatch.setattr(base, "fetch_url", _never)
    monkeypatch.setattr(stanford_background, "fetch_url", _never)
    code, _, err = _run(capsys, "download", "stanford_background", "--data-root", tmp_path, "--sha256", digest)
    assert code == 2 and f"--sha256 {digest}" in err and "64 hexadecimal digits" in err


def test_download_stanford_compares_the_sha256_ignoring_case(tmp_path, capsys, monkeypatch):
    import hashlib
    import tarfile

    from lib.data import stanford_background as sb

    ids = ["0000047", "0000051"]
    split_file = tmp_path / "split.txt"
    split_file.write_text("0000047 train\n0000051 test\n")
    monkeypatch.setattr(sb, "SPLIT_FILE", split_file)
    src = tmp_path / "src"
    write_fake_stanford(src, ids=ids)
    archive = tmp_path / "iccv09Data.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / "stanford_background" / "iccv09Data", arcname="iccv09Data")
    monkeypatch.setattr(sb, "fetch_url", lambda url, dest, progress, hint: shutil.copyfile(archive, dest))
    digest = hashlib.sha256(archive.read_bytes()).hexdigest().upper()
    code, out, err = _run(capsys, "download", "stanford_background", "--data-root", tmp_path / "data", "--sha256",
                          digest, "--quiet")
    assert code == 0, err
    assert "ready" in out


def test_verify_stanford_prints_the_total_and_the_fix(tmp_path, capsys):
    write_fake_stanford(tmp_path, ids=("0000047",))
    code, out, _ = _run(capsys, "verify", "stanford_background", "--data-root", tmp_path)
    assert code == 1
    assert re.search(r"^\d+ problem\(s\)", out, re.M)
    assert f"python -m lib download stanford_background --data-root {tmp_path}" in out


# --------------------------------------------------------------------------------------------
# 9, 10. plan and shard


@pytest.mark.parametrize("argv, named", [(["--tflops", "-5"], "--tflops -5"), (["--tflops", "0"], "--tflops 0"),
                                         (["--tflops", "nan"], "--tflops nan"), (["--shards", "0"], "--shards 0")])
def test_plan_refuses_a_rate_or_shards_that_make_no_sense(capsys, argv, named):
    code, out, err = _run(capsys, "plan", "kanezaki2018", "--profile", "smoke", *argv)
    assert code == 2 and not out and named in err


@pytest.mark.parametrize("command", [["plan"], ["shard", "--profile", "smoke", "--job", "x-all-seed0-y-1of1"]])
@pytest.mark.parametrize("notebook", ["jigsawgan", "seggan_lambda"])
def test_plan_and_shard_explain_dataset_level_notebooks(capsys, command, notebook):
    code, out, err = _run(capsys, command[0], notebook, *command[1:])
    assert code == 2 and "KeyError" not in err
    assert f"{notebook} is a dataset-level notebook" in err
    assert "kanezaki2018, kanezaki2018_depth" in err  # the per-image notebooks they cover
    assert "python -m lib notebook" in err and "make results" in err


@pytest.mark.parametrize("command", [["plan"], ["shard", "--profile", "smoke", "--job", "x-all-seed0-y-1of1"]])
def test_plan_and_shard_name_an_unknown_notebook(capsys, command):
    code, _, err = _run(capsys, command[0], "kanezaki2019", *command[1:])
    assert code == 2 and "unknown notebook 'kanezaki2019'" in err and "kanezaki2018" in err


# --------------------------------------------------------------------------------------------
# 11. notebook: its input, -f file and -p values checked before a kernel starts


@pytest.fixture
def no_kernel(monkeypatch):
    import lib.kernels

    monkeypatch.setattr(lib.kernels, "execute_notebook", _never)


def _notebook(tmp_path: Path) -> Path:
    import nbformat

    path = tmp_path / "in.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), path)
    return path


def test_notebook_names_a_missing_input(tmp_path, capsys, no_kernel):
    code, _, err = _run(capsys, "notebook", tmp_path / "nope.ipynb", tmp_path / "out.ipynb")
    assert code == 2 and f"{tmp_path / 'nope.ipynb'}: no such notebook" in err


def test_notebook_names_a_missing_parameters_file(tmp_path, capsys, no_kernel):
    code, _, err = _run(capsys, "notebook", _notebook(tmp_path), tmp_path / "out.ipynb", "-f", tmp_path / "p.yaml")
    assert code == 2 and f"-f {tmp_path / 'p.yaml'}: no such file" in err


@pytest.mark.parametrize("text, where", [("seeds: [1, 2\nprofile: smoke\n", "line 2"), ("- 1\n- 2\n", "a list")])
def test_notebook_names_a_malformed_parameters_file(tmp_path, capsys, no_kernel, text, where):
    params = tmp_path / "p.yaml"
    params.write_text(text)
    code, _, err = _run(capsys, "notebook", _notebook(tmp_path), tmp_path / "out.ipynb", "-f", params)
    assert code == 2 and f"-f {params}" in err and where in err and "Traceback" not in err


@pytest.mark.parametrize("command", ["notebook", "shard"])
def test_a_malformed_parameter_value_is_named(tmp_path, capsys, no_kernel, monkeypatch, command):
    import lib.shards

    monkeypatch.setattr(lib.shards, "claim_gpu", _never)
    monkeypatch.setattr(lib.shards, "run_job", _never)
    argv = (["notebook", _notebook(tmp_path), tmp_path / "out.ipynb"] if command == "notebook" else
            ["shard", "kanezaki2018", "--profile", "smoke", "--job", "x-all-seed0-y-1of1", "--claim-gpu"])
    code, _, err = _run(capsys, *argv, "-p", "seeds", "[1,")
    assert code == 2 and "-p seeds '[1,'" in err and "YAML" in err and "column" in err


# --------------------------------------------------------------------------------------------
# 12. coursework --course: a file, or a path under a file


@pytest.mark.parametrize("under", [False, True])
def test_coursework_names_a_course_path_that_cannot_be_a_folder(tmp_path, capsys, under):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file")
    course = blocker / "course" if under else blocker
    code, _, err = _run(capsys, "coursework", "--course", course, "--size", "smoke", "--only", "kim_miou")
    assert code == 2 and f"--course {course}" in err and str(blocker) in err and "not a folder" in err
    assert blocker.read_text() == "a file"


def test_segment_says_when_the_image_itself_does_not_fit(tmp_path, capsys, monkeypatch, huge_png):
    """Reading and shrinking a 9000 x 9000 image alone takes more than 1 GiB: no --max-side helps."""
    import lib.memory

    monkeypatch.setattr(lib.memory, "host_available", lambda: 1 << 30)
    out = tmp_path / "out"
    code, _, err = _run(capsys, "segment", "--device", "cpu", "--quiet", "--max-side", "64", "--out", out, huge_png)
    assert code == 2 and not out.exists()
    assert "the image files themselves do not fit" in err and "1.0 GiB available" in err
