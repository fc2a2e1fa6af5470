"""File input/output, reports and the run cache."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lib import files
from lib.data.synthetic import SyntheticScenes
from lib.files import LabelMapError, atomic_write, read_label_map, save_label_map
from lib.methods import Blank, Felzenszwalb
from lib.methods.base import params_key
from lib.report import Report, build_index, caption
from lib.evaluation import RegionEvaluator
from lib.paths import REPO_ROOT as REPO
from lib.runs import record_code, run_method

REGION = RegionEvaluator()

# --------------------------------------------------------------------------------------------
# label maps


def test_label_map_png_roundtrip_16_bit(tmp_path):
    labels = (np.arange(48).reshape(6, 8) * 1361) % 65536  # values up to 63967, well above 255
    assert labels.max() > 255
    path = tmp_path / "pred.png"
    save_label_map(path, labels)
    with Image.open(path) as im:
        assert im.mode.startswith("I")  # a 16-bit grey PNG, not RGB
    back = read_label_map(path)
    assert back.dtype == np.int64
    np.testing.assert_array_equal(back, labels)


def test_label_map_8_bit_png_and_npy(tmp_path):
    grey = np.array([[0, 3, 255], [7, 7, 1]], np.uint8)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    np.testing.assert_array_equal(read_label_map(tmp_path / "grey.png"), grey)
    labels = np.array([[5, 100000], [-1, 0]], np.int32)  # .npy keeps any integer
    np.save(tmp_path / "pred.npy", labels)
    np.testing.assert_array_equal(read_label_map(tmp_path / "pred.npy"), labels)


def test_label_map_save_refuses_what_a_png_cannot_hold(tmp_path):
    with pytest.raises(ValueError):
        save_label_map(tmp_path / "a.png", np.array([[-1, 0]]))
    with pytest.raises(ValueError):
        save_label_map(tmp_path / "b.png", np.array([[65536, 0]]))
    with pytest.raises(ValueError):
        save_label_map(tmp_path / "c.png", np.zeros((2, 2, 3), int))
    assert not list(tmp_path.iterdir())  # nothing written


def test_rgb_png_refused_with_file_name(tmp_path):
    path = tmp_path / "colour.png"
    Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(path)
    with pytest.raises(LabelMapError) as err:
        read_label_map(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("kind", ["garbage", "truncated", "float_npy", "3d_npy"])
def test_unreadable_label_map_names_the_file(tmp_path, kind):
    if kind == "garbage":
        path = tmp_path / "pred.png"
        path.write_bytes(b"\x00\x01 definitely not a png")
    elif kind == "truncated":
        path = tmp_path / "pred.png"
        save_label_map(path, np.arange(400).reshape(20, 20))
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "float_npy":
        path = tmp_path / "pred.npy"
        np.save(path, np.zeros((2, 2), np.float32))
    else:
        path = tmp_path / "pred.npy"
        np.save(path, np.zeros((2, 2, 2), np.int64))
    with pytest.raises(LabelMapError) as err:
        read_label_map(path)
    assert str(path) in str(err.value)


# --------------------------------------------------------------------------------------------
# atomic writes


def test_atomic_write_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "sub" / "out.txt"
    with atomic_write(path, "w") as f:
        f.write("hello")
    assert path.read_text() == "hello"
    assert [p.name for p in path.parent.iterdir()] == ["out.txt"]


def test_atomic_write_keeps_the_old_file_when_the_block_fails(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(path, "w") as f:
            f.write("half of the new")
            raise RuntimeError("interrupted")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_write_respects_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "out.txt", "w") as f:
            f.write("x")
        with open(tmp_path / "plain.txt", "w") as f:
            f.write("x")
    finally:
        os.umask(old)
    plain = (tmp_path / "plain.txt").stat().st_mode & 0o777
    assert plain == 0o644
    assert (tmp_path / "out.txt").stat().st_mode & 0o777 == plain


# --------------------------------------------------------------------------------------------
# reports


def _df() -> pd.DataFrame:
    return pd.DataFrame({"method": ["k-means", "GS"], "miou_all": [0.5, 0.123456], "segments": [12, 3]})


def _table(report: Report, name: str = "best", comparison: bool = False) -> pd.DataFrame:
    return report.table(
        _df(), name, "Best configurations", dataset="synthetic (6 scenes)", protocol="Kim mIoU",
        seeds=[0, 1, 2], comparison=comparison,
    )


def test_caption_states_profile_dataset_protocol_seeds():
    text = caption("T", profile="smoke", dataset="bsds500/test", protocol="Kim mIoU", seeds=[0, 1], notes="Note.")
    assert text == "T. Profile: smoke. Dataset: bsds500/test. Protocol: Kim mIoU. Seeds: 0, 1. Note."
    assert caption("T", profile="p", dataset="d", protocol="q", seeds="none").endswith("Seeds: none.")


def test_report_table_writes_csv_md_tex_and_caption(tmp_path):
    folder = tmp_path / "smoke" / "nb"
    report = Report(folder, "nb", "smoke", parameters={"seeds": [0, 1, 2]})
    returned = _table(report)
    pd.testing.assert_frame_equal(returned, _df())
    pd.testing.assert_frame_equal(pd.read_csv(folder / "best.csv"), _df())

    cap = "Best configurations. Profile: smoke. Dataset: synthetic (6 scenes). Protocol: Kim mIoU. Seeds: 0, 1, 2."
    md = (folder / "best.md").read_text()
    assert md.startswith("**Best configurations**")
    assert cap in md
    assert "k-means" in md and "0.1235" in md  # 4 decimals
    tex = (folder / "best.tex").read_text()
    assert r"\caption{" + cap + "}" in tex
    assert r"\label{tab:nb:best}" in tex
    assert "0.1235" in tex

    meta = json.loads((folder / "metrics.json").read_text())
    assert meta["notebook"] == "nb" and meta["profile"] == "smoke"
    assert meta["parameters"] == {"seeds": [0, 1, 2]}
    entry = meta["tables"]["best"]
    assert entry["caption"] == cap
    assert entry["title"] == "Best configurations"
    assert entry["comparison"] is False
    assert entry["files"] == ["best.csv", "best.md", "best.tex"]
    assert all((folder / f).is_file() for f in entry["files"])

    report.metrics(miou=np.float64(0.25), n=np.int64(3))
    meta = json.loads((folder / "metrics.json").read_text())
    assert meta["metrics"] == {"miou": 0.25, "n": 3}
    assert "best" in meta["tables"]  # earlier entries are kept


def test_report_markdown_keeps_float_format(tmp_path):
    report = Report(tmp_path / "smoke" / "nb", "nb", "smoke")
    _table(report)
    md = (tmp_path / "smoke" / "nb" / "best.md").read_text()
    assert "0.5000" in md


def test_report_latex_table_body_is_escaped(tmp_path):
    report = Report(tmp_path / "smoke" / "nb", "nb", "smoke")
    _table(report)
    tex = (tmp_path / "smoke" / "nb" / "best.tex").read_text()
    body = tex[tex.index(r"\begin{tabular}") : tex.index(r"\end{tabular}")]
    assert r"miou\_all" in body
    # '&' separates the columns; within cells, every special character must be escaped
    cells = [c for line in body.splitlines()[1:] for c in line.rstrip(" \\").split(" & ")]
    assert not any(re.search(r"(?<!\\)[_%&#]", c) for c in cells)


def test_build_index_includes_comparison_tables_in_full(tmp_path):
    results = tmp_path / "results"
    report = Report(results / "smoke" / "nb1", "nb1", "smoke")
    _table(report, "versus_paper", comparison=True)
    _table(report, "all_runs", comparison=False)
    report.figure(_figure(), "curve", "PR curve")
    report.complete()
    Report(results / "paper" / "nb2", "nb2", "paper").complete()

    index = build_index(results)
    assert "## Profile `smoke`" in index and "## Profile `paper`" in index
    # the comparison table's whole markdown file is in the index ...
    md = (results / "smoke" / "nb1" / "versus_paper.md").read_text()
    assert md in index
    assert "| GS" in index
    # ... the other table only as a link with its caption
    assert "- [Best configurations](smoke/nb1/all_runs.md) — Best configurations. Profile: smoke." in index
    assert index.count("| k-means") == 1
    assert "[PR curve](smoke/nb1/curve.png)" in index
    assert (results / "smoke" / "nb1" / "curve.png").is_file()
    assert (results / "smoke" / "nb1" / "curve.pdf").is_file()


def test_build_index_without_results(tmp_path):
    assert "No results yet" in build_index(tmp_path)


def test_index_marks_a_run_that_stopped_before_its_last_cell(tmp_path):
    folder = tmp_path / "smoke" / "nb1"
    report = Report(folder, "nb1", "smoke")
    _table(report, "versus_paper", comparison=True)  # then the kernel died
    (folder / "papermill.log").write_text("Traceback ...")
    index = build_index(tmp_path)
    assert "**Incomplete run**" in index and "[its log](smoke/nb1/papermill.log)" in index
    assert "| GS" not in index  # a partial comparison is listed, not shown
    assert "- [Best configurations](smoke/nb1/versus_paper.md)" in index
    assert "executed notebook" not in index  # papermill wrote none

    report.complete()
    index = build_index(tmp_path)
    assert "Incomplete" not in index and "| GS" in index


def test_index_links_only_the_executed_notebook_of_this_run(tmp_path):
    folder = tmp_path / "smoke" / "nb1"
    report = Report(folder, "nb1", "smoke")
    report.complete()
    executed = folder / "nb1.ipynb"
    executed.write_text("{}")  # papermill writes it after the last cell
    assert "[executed notebook](smoke/nb1/nb1.ipynb)" in build_index(tmp_path)
    os.utime(executed, (1, 1))  # an executed notebook older than the run's metrics.json: an earlier run's
    report = Report(folder, "nb1", "smoke")
    report.complete()
    assert "executed notebook" not in build_index(tmp_path)


def test_an_absent_dataset_is_named_in_every_caption_and_the_index(tmp_path):
    report = Report(tmp_path / "demo" / "nb1", "nb1", "demo")
    report.datasets({"synthetic": 2}, {"bsds500": "BSDS500 test (asked for by bsds_images=4): not found: /x"})
    _table(report, "a", comparison=True)
    _table(report, "b")
    meta = json.loads((tmp_path / "demo" / "nb1" / "metrics.json").read_text())
    assert meta["datasets"] == {"synthetic": 2} and list(meta["absent"]) == ["bsds500"]
    for table in meta["tables"].values():
        assert table["caption"].endswith("Absent from this run (missing_data = 'skip'): "
                                         "BSDS500 test (asked for by bsds_images=4): not found: /x.")
    report.complete()
    index = build_index(tmp_path)
    assert index.count("asked for by bsds_images=4") == 3  # the run's line, and both tables' captions


def _outputs(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_a_rerun_leaves_the_folder_as_a_clean_run_would(tmp_path):
    earlier = Report(tmp_path / "rerun", "nb", "demo")
    _table(earlier, "bsds500_table")  # a table the new run will not write (its dataset is gone)
    _table(earlier, "kept")
    earlier.figure(_figure(), "fig", "Figure")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = tmp_path / "rerun" / f".kept.csv.{files._owner().rsplit('-', 1)[0]}-{dead.stdout.strip()}.abc123.tmp"
    orphan.write_text("half")
    live = tmp_path / "rerun" / f".kept.md.{files._owner()}.xyz789.tmp"  # this process: still writing it
    live.write_text("half")
    mine = tmp_path / "rerun" / "notes.txt"  # not written by the study: not ours to delete
    mine.write_text("mine")

    for folder in (tmp_path / "rerun", tmp_path / "clean"):
        report = Report(folder, "nb", "demo")
        _table(report, "kept")
        report.complete()
    live.unlink()
    mine.unlink()
    assert _outputs(tmp_path / "rerun") == _outputs(tmp_path / "clean")
    for name in _outputs(tmp_path / "clean"):
        assert (tmp_path / "rerun" / name).read_bytes() == (tmp_path / "clean" / name).read_bytes(), name


def test_a_killed_write_leaves_a_temporary_file_the_next_run_removes(tmp_path):
    target = tmp_path / "table.csv"
    code = ("import os, sys; from lib.files import atomic_write\n"
            "with atomic_write(sys.argv[1], 'w') as f:\n    f.write('half'); f.flush(); os._exit(9)\n")
    assert subprocess.run([sys.executable, "-c", code, str(target)], cwd=REPO).returncode == 9
    left = [p for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].name.startswith(".table.csv.") and not target.exists()
    assert files.remove_orphans(tmp_path) == left
    assert not list(tmp_path.iterdir())


def test_run_method_removes_a_killed_runs_half_written_record(tmp_path, samples):
    run_method(Blank(), samples, [0], tmp_path, evaluator=RegionEvaluator(), progress=False)
    record = next(tmp_path.rglob("*.npz"))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = record.with_name(f".{record.name}.{files._owner().rsplit('-', 1)[0]}-{dead.stdout.strip()}.q1.tmp")
    orphan.write_bytes(b"half")
    run_method(Blank(), samples, [0], tmp_path, evaluator=RegionEvaluator(), progress=False)
    assert not orphan.exists() and record.is_file()


def _figure():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    return fig


# --------------------------------------------------------------------------------------------
# run cache


@pytest.fixture
def samples():
    return list(SyntheticScenes(n=2, size=(32, 48), seed=0))


def _records_equal(a, b, same_run: bool = True) -> None:
    """Equal results; ``same_run``: also the same measured time (a record read back from cache)."""
    assert (a.dataset, a.id, a.seed, a.iterations, a.n_labels) == (b.dataset, b.id, b.seed, b.iterations, b.n_labels)
    if same_run:
        assert a.seconds == b.seconds
    arrays_a, arrays_b = a.evaluation.to_arrays(), b.evaluation.to_arrays()
    assert arrays_a.keys() == arrays_b.keys()
    for k in arrays_a:
        np.testing.assert_array_equal(arrays_a[k], arrays_b[k])


class CountingRun:
    """Wraps a method's ``run`` and records which image keys it was asked for."""

    def __init__(self, method):
        self.inner = method.run
        self.keys: list[str] = []

    def __call__(self, images, seeds, device, progress=False):
        self.keys += [key for _, key in seeds]
        return self.inner(images, seeds, device, progress)


def test_run_method_records_and_cache_layout(tmp_path, samples):
    method = Felzenszwalb(scale=100)
    records = run_method(method, samples, [0, 1], tmp_path, evaluator=REGION, device="cpu", progress=False)
    assert [(r.seed, r.id) for r in records] == [(0, "scene00"), (0, "scene01"), (1, "scene00"), (1, "scene01")]
    for r, s in zip(records, samples * 2):
        assert r.key == s.key and r.iterations == 0 and r.labels is None
        assert r.n_labels > 1
        assert len(r.evaluation.miou.scores) == 2  # fine and coarse annotators
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.npz"))
    key = f"{params_key(method)}/region/sidefull/code-{record_code(method, REGION)}"
    assert files == [f"{key}/seed{seed}/synthetic/scene0{i}.npz" for seed in (0, 1) for i in (0, 1)]
    assert {r.code for r in records} == {record_code(method, REGION)}
    assert params_key(Felzenszwalb(scale=500)) != key  # a changed parameter gets its own folder


def test_run_method_loads_from_cache(tmp_path, samples, monkeypatch):
    method = Felzenszwalb(scale=100)
    first = run_method(method, samples, [0], tmp_path, evaluator=REGION, device="cpu", progress=False)

    def fail(*args, **kwargs):
        raise AssertionError("the method ran although every result is cached")

    monkeypatch.setattr(method, "run", fail)
    second = run_method(method, samples, [0], tmp_path, evaluator=REGION, device="cpu", progress=False)
    assert len(second) == len(first) == 2
    for a, b in zip(first, second):
        _records_equal(a, b)


def test_run_method_recomputes_only_what_is_missing(tmp_path, samples, monkeypatch):
    method = Felzenszwalb(scale=100)
    first = run_method(method, samples, [0], tmp_path, evaluator=REGION, device="cpu", progress=False)
    counting = CountingRun(method)
    monkeypatch.setattr(method, "run", counting)

    (cached,) = tmp_path.rglob("scene01.npz")
    cached.unlink()
    again = run_method(method, samples, [0], tmp_path, evaluator=REGION, device="cpu", progress=False)
    assert counting.keys == ["synthetic/scene01"]
    assert cached.is_file()
    _records_equal(first[0], again[0])  # read back from cache
    _records_equal(first[1], again[1], same_run=False)  # recomputed: same result, new timing

    # a damaged cache file is reported and recomputed, not trusted
    counting.keys.clear()
    cached.write_bytes(b"not an npz")
    with pytest.warns(UserWarning, match=r"scene01\.npz is unreadable"):
        run_method(method, samples, [0], tmp_path, evaluator=REGION, device="cpu", progress=False)
    assert counting.keys == ["synthetic/scene01"]

    # a bug while reading a record (here: in the evaluator) is raised, never taken for a damaged file
    def broken(arrays, sample):
        raise TypeError("a bug")

    buggy = RegionEvaluator()
    monkeypatch.setattr(buggy, "from_arrays", broken)  # on the instance: the code's fingerprint stays
    with pytest.raises(TypeError, match="a bug"):
        run_method(method, samples, [0], tmp_path, evaluator=buggy, device="cpu", progress=False)

    # a new seed runs every image for that seed only
    counting.keys.clear()
    run_method(method, samples, [0, 5], tmp_path, evaluator=REGION, device="cpu", progress=False)
    assert counting.keys == ["synthetic/scene00", "synthetic/scene01"]


def test_run_method_keep_labels(tmp_path, samples, monkeypatch):
    method = Blank()
    run_method(method, samples, [0], tmp_path, evaluator=REGION, device="cpu", progress=False)
    counting = CountingRun(method)
    monkeypatch.setattr(method, "run", counting)
    # the cache lacks label maps: asking for them recomputes
    recs = run_method(method, samples, [0], tmp_path, evaluator=REGION, device="cpu", progress=False, keep_labels=True)
    assert counting.keys == ["synthetic/scene00", "synthetic/scene01"]
    for r in recs:
        np.testing.assert_array_equal(r.labels, np.zeros((32, 48)))
    counting.keys.clear()
    recs = run_method(method, samples, [0], tmp_path, evaluator=REGION, device="cpu", progress=False, keep_labels=True)
    assert counting.keys == []
    for r, s in zip(recs, samples):
        np.testing.assert_array_equal(r.labels, np.zeros((32, 48)))
        assert r.n_labels == 1 and r.evaluation.n_segments == 1
        # the blank prediction: each GT segment scores its area fraction
        fine = s.segmentations[0]
        np.testing.assert_allclose(r.evaluation.miou.scores[0], np.bincount(fine.ravel()) / fine.size)


def test_run_method_max_side_scores_at_full_resolution(tmp_path, samples):
    seen = []

    class Recorder(Blank):
        def run(self, images, seeds, device, progress=False):
            seen.extend(im.shape for im in images)
            return super().run(images, seeds, device, progress)

    recs = run_method(Recorder(), samples, [0], tmp_path, evaluator=REGION, device="cpu", progress=False, max_side=24)
    assert seen == [(16, 24, 3), (16, 24, 3)]  # shrunk before the method sees them
    for r, s in zip(recs, samples):
        # predictions are brought back to 32x48: the areas are fractions of the full image
        assert r.evaluation.matches.area.tolist() == [1.0]
        np.testing.assert_allclose(r.evaluation.miou.scores[1], np.bincount(s.segmentations[1].ravel()) / (32 * 48))
    assert list(tmp_path.rglob("side24"))


def test_cached_record_is_recomputed_when_the_ground_truth_changes(tmp_path):
    """A record scored against other annotations (e.g. an edited dataset) is not trusted."""
    from dataclasses import replace

    from lib.data import load
    from lib.methods import Blank

    s = load("synthetic", n=1, size=(20, 24))[0]
    kw = dict(evaluator=REGION, device="cpu", progress=False)
    first = run_method(Blank(), [s], [0], tmp_path, **kw)[0]
    assert len(first.evaluation.miou.scores) == 2
    one_annotator = replace(s, segmentations=s.segmentations[:1])
    again = run_method(Blank(), [one_annotator], [0], tmp_path, **kw)[0]
    assert len(again.evaluation.miou.scores) == 1
    assert again.device == "cpu" and again.batch_size == 1


def test_settings_print_as_given_and_metrics_with_four_decimals(tmp_path):
    df = pd.DataFrame({"method": ["kim2020", "k-means"], "mu": [5.0, np.nan], "miou_all": [0.25, 0.5]})
    Report(tmp_path, "nb", "smoke").table(df, "t", "T", dataset="d", protocol="p", seeds=[0])
    md = (tmp_path / "t.md").read_text()
    assert "| kim2020  | 5    | 0.2500     |" in md and "| k-means  |      | 0.5000     |" in md
    assert pd.read_csv(tmp_path / "t.csv").mu.iloc[0] == 5.0  # the csv keeps the value


def test_run_grid_refuses_two_configurations_with_one_label(tmp_path, samples):
    from lib.runs import run_grid

    with pytest.raises(ValueError, match="share a label"):
        run_grid([Blank(), Blank()], samples, [0], tmp_path, evaluator=REGION, device="cpu", progress=False)


def test_a_killed_segments_temporary_file_goes_with_the_next_segment_there(tmp_path, capsys):
    """A killed ``segment`` leaves a 0-byte ``.<name>.png.<host>-<pid>.<random>.tmp`` in ``--out``;
    the next ``segment`` writing there removes it (the first write of a process into a folder
    sweeps it)."""
    from PIL import Image

    from lib.cli import main

    src = tmp_path / "tiny.png"
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(src)
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = out / f".tiny.png.{files._owner().rsplit('-', 1)[0]}-{dead.stdout.strip()}.x8y7z6.tmp"
    orphan.write_bytes(b"")
    files._SWEPT.discard(out)  # as in a new process
    assert main(["segment", "--iterations", "1", "--device", "cpu", "--quiet", "--out", str(out), str(src)]) == 0
    assert not orphan.exists() and (out / "tiny.png").is_file()
