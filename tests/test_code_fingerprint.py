"""Cached results are keyed by the code that computes them: a student's edit to a statement
recomputes what depends on it; a comment, a docstring, a table or a figure does not."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from conftest import REPO
from lib import code_fingerprint as cf
from lib.evaluation import RegionEvaluator
from lib.methods import Kanezaki2018, Kim2020
from lib.methods import jigsawgan as J
from lib.methods import seggan as S
from lib.runs import record_code, run_method, runs_table


@pytest.fixture
def lib_copy(tmp_path, monkeypatch):
    """A copy of the package's source, which the fingerprints read instead of lib/ (the code
    that runs is still lib's: these tests are about the keys)."""
    copy = tmp_path / "lib"
    shutil.copytree(REPO / "lib", copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(cf, "_ROOT", copy)
    return copy


def _edit(path, old, new):
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def _continuity_statement(lib_copy):
    text = (lib_copy / "losses.py").read_text()
    body = text[text.index("def continuity_loss"):text.index("def random_affine")]
    return next(line for line in body.splitlines() if line.strip().startswith("return"))


def test_a_statement_counts_a_comment_or_docstring_does_not(lib_copy):
    kim, kanezaki = Kim2020(5.0), Kanezaki2018()
    before = cf.code_fingerprint(kim), cf.code_fingerprint(kanezaki)
    losses = lib_copy / "losses.py"
    _edit(losses, '    """', '    """A student\'s note.\n    ')  # a function's docstring
    _edit(losses, "def continuity_loss(", "# why: a comment\ndef continuity_loss(")
    assert (cf.code_fingerprint(kim), cf.code_fingerprint(kanezaki)) == before
    statement = _continuity_statement(lib_copy)
    _edit(losses, statement, statement.replace("return ", "return 2 * (") + ")")
    assert cf.code_fingerprint(kim) != before[0]  # Kim et al.'s loss changed
    assert cf.code_fingerprint(kanezaki) == before[1]  # Kanezaki 2018 does not use it


def test_tables_and_figures_are_not_the_code_of_a_training(lib_copy):
    stages = (J.pretrain, J.finetune, S.train_gan, S.train_segmentation)
    before = [cf.code_fingerprint(f) for f in stages]
    _edit(lib_copy / "methods" / "jigsawgan.py", "def table1(runs, comparable: bool = False,",
          "def table1(runs, comparable: bool = True,")
    _edit(lib_copy / "methods" / "seggan.py", "def masks_figure(exp: Experiment, seed: int, n: int = 4):",
          "def masks_figure(exp: Experiment, seed: int, n: int = 6):")
    _edit(lib_copy / "tables.py", "def seed_summary(", "def seed_summary(  # a table\n")
    assert [cf.code_fingerprint(f) for f in stages] == before
    _edit(lib_copy / "losses.py", "def segmentation_loss(", "def segmentation_loss(  # edited\n")
    assert [cf.code_fingerprint(f) for f in stages] == before  # a comment only
    text = (lib_copy / "losses.py").read_text()
    body = text[text.index("def segmentation_loss"):text.index("def content_loss")]
    statement = next(line for line in body.splitlines() if line.strip().startswith("return"))
    _edit(lib_copy / "losses.py", statement, statement.replace("return ", "return 0.5 * (") + ")")
    after = [cf.code_fingerprint(f) for f in stages]
    assert after[1] != before[1]  # fine-tuning uses the segmentation loss
    assert after[0] == before[0] and after[2:] == before[2:]  # the others do not


def test_what_a_fingerprint_reaches():
    reached = cf.reached(J.finetune)
    assert "lib.losses:segmentation_loss" in reached and "lib.metrics.confusion:ConfusionMatrix" in reached
    assert not any(name.startswith("lib.tables:") or name.endswith(":table1") for name in reached)
    assert "lib.superpixels:majority_vote" in cf.reached(Kanezaki2018)  # through a re-export and a class


def test_code_outside_the_package_is_hashed_as_its_source():
    class Doubled(RegionEvaluator):  # a test double, or a method written in a notebook
        key = "doubled"

    assert cf.code_fingerprint(Doubled) != cf.code_fingerprint(RegionEvaluator)


def _image():
    rng = np.random.default_rng(0)
    from lib.data import Sample

    image = rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)
    truth = np.zeros((16, 20), int)
    truth[:, 10:] = 1
    return [Sample("toy", "a", image, (truth,))]


def test_an_edited_loss_recomputes_the_runs_that_use_it(lib_copy, tmp_path):
    kim = Kim2020(5.0, iterations=2)
    samples, evaluator = _image(), RegionEvaluator()
    first = run_method(kim, samples, [0], tmp_path / "cache", evaluator=evaluator, device="cpu", progress=False)
    assert first[0].computed and first[0].code == record_code(kim, evaluator)
    _edit(lib_copy / "losses.py", "def continuity_loss(", "def continuity_loss(  # a comment\n")
    again = run_method(kim, samples, [0], tmp_path / "cache", evaluator=evaluator, device="cpu", progress=False)
    assert not again[0].computed  # read back: only a comment changed
    statement = _continuity_statement(lib_copy)
    _edit(lib_copy / "losses.py", statement, statement.replace("return ", "return 1.0 * (") + ")")
    edited = run_method(kim, samples, [0], tmp_path / "cache", evaluator=evaluator, device="cpu", progress=False)
    assert edited[0].computed and edited[0].code != first[0].code
    table = runs_table(kim, edited, evaluator)
    assert table["code"].tolist() == [edited[0].code]  # the runs table says which code made the row
