"""Every parameter of every notebook changes what the notebook computes or is refused, never
accepted and ignored; numeric parameters have ranges (no NaN, no infinity, no impossible
sign), checked the same way by a notebook, a cluster job and the command line."""

from __future__ import annotations

import math

import pytest

from conftest import REPO
from lib import parameters, plans, shards, study
from lib.cli import main
from lib.parameters import ParameterError

NOTEBOOKS = sorted(p.stem for p in (REPO / "notebooks").glob("*.ipynb"))
COUNTS = ("bsds_images", "voc_images", "ph2_images", "lung_images", "pet_images", "animal_images",
          "stanford_images")


def _alternatives(value, rule):
    """Other values of the same type as ``value``: each is either refused by the parameter's
    range or must change what the notebook computes."""
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + 1, value - 1, 2 * value + 1, 2 * value]
    if isinstance(value, float):
        return [2 * value + 0.5, value / 2]
    if isinstance(value, str):
        return [v for v in (rule.values if rule else ()) if v != value] or [value + "x"]
    if value is None:
        return [64, ["antelope"], "elsewhere"]
    if isinstance(value, dict):
        if not value:
            return [{"synthetic_pets": "weights.pt"}]
        first = next(iter(value))
        return [{**value, first: alt} for alt in _alternatives(value[first], None)]
    if isinstance(value, list):
        out = []
        if rule and rule.values:
            out += [[v] for v in rule.values] + [list(rule.values)]
        if value:
            out += [[alt, *value[1:]] for alt in _alternatives(value[0], None)]
        if len(value) > 1:
            out += [value[:1], value[1:]]
        return [v for v in out if v != value]
    raise AssertionError(f"no alternatives for {value!r}")


def _everything_requested(notebook):
    """The smoke profile with every dataset asked for, so that a parameter that chooses images
    of a dataset takes effect (plans.work reads no image)."""
    p = shards.parameters(notebook, "smoke")
    p.update({k: 1 for k in COUNTS if k in p})
    return p


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_every_parameter_changes_the_work_or_is_refused(notebook):
    p = _everything_requested(notebook)
    parameters.check(notebook, p)
    before = plans.work(notebook, p)
    rules = parameters.rules(notebook)
    for name in study.declared_parameters(notebook):
        if name in parameters.NOT_IN_RESULTS:
            continue
        accepted = 0
        for value in _alternatives(p[name], rules.get(name)):
            changed = {**p, name: value}
            try:
                parameters.check(notebook, changed)
            except ParameterError as exc:
                assert name in str(exc)  # refused, naming it
                continue
            accepted += 1
            assert plans.work(notebook, changed) != before, f"{notebook}: {name}={value!r} is accepted and ignored"
        assert accepted, f"{notebook}: no other value of {name} was accepted, so none was tested"


def test_the_parameters_that_change_no_number_are_few_and_named():
    declared = {name for nb in NOTEBOOKS for name in study.declared_parameters(nb)}
    assert set(parameters.NOT_IN_RESULTS) <= declared
    assert len(parameters.NOT_IN_RESULTS) <= 9


def test_the_dataset_level_notebooks_build_their_settings_with_the_plans():
    for notebook in plans.TRAININGS:
        assert f"plans.{notebook}(" in (REPO / "notebooks" / f"{notebook}.ipynb").read_text(), notebook


def test_seggan_runs_the_lambdas_it_names():
    """The lambdas given are the lambdas run: a caption can never name weights that did not
    make its numbers (they once fell back to 0.1 / 0.1 whatever was given)."""
    p = shards.parameters("seggan", "smoke", lambda_content=5.0, lambda_adversarial=0.7)
    names = ("seeds", "generator_inputs", "lambda_content", "lambda_adversarial", "adversarial", "iterations",
             "gan_iterations", "batch", "backbone", "max_side", "batchnorm")
    runs = [s for s in plans.seggan(**{k: p[k] for k in names}) if s.method == "seggan"]
    assert runs and {(s.lambda_content, s.lambda_adversarial) for s in runs} == {(5.0, 0.7)}


FLOATS = [(nb, name) for nb in NOTEBOOKS for name, d in study.declared_parameters(nb).items()
          if d.types == (float,) or (float in d.types and int not in d.types and name not in ("max_side",))]


@pytest.mark.parametrize("notebook, name", FLOATS)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, -1.0])
def test_no_float_parameter_takes_nan_infinity_or_a_negative_value(notebook, name, bad):
    p = shards.parameters(notebook, "smoke")
    with pytest.raises(ParameterError, match=rf"parameter {name}="):
        parameters.check(notebook, {**p, name: bad})


@pytest.mark.parametrize("notebook, name, bad", [
    ("jigsawgan", "beta", math.nan), ("jigsawgan", "alpha", -1.0), ("dynamicseg", "kim_mu", math.inf),
    ("dynamicseg", "dynamic", [["fsf", math.nan]]), ("dynamicseg_mu", "fsf_mu", [10, -1]),
    ("jigsawgan_datasize", "fractions", [0.0, 0.5]), ("kanezaki2018", "gs_scales", [100, math.inf]),
    ("seggan_lambda", "lambdas", [0.1, math.nan]), ("seggan", "crop", 40), ("seggan", "crop", {"voc2012": 40}),
    ("s3net", "min_interior", 1.5),
    ("kanezaki2018", "iterations", {"paper": 0, "code": 1}), ("kanezaki2018", "iterations", {"paper": 3}),
    ("kanezaki2018", "max_side", -4), ("kanezaki2018", "seeds", [1, 1]), ("seggan", "backbone", "vgg"),
])
def test_out_of_range_values_are_refused_by_name(notebook, name, bad):
    p = shards.parameters(notebook, "smoke")
    with pytest.raises(ParameterError, match=name):
        parameters.check(notebook, {**p, name: bad})


def test_a_text_where_a_list_is_expected_says_how_to_pass_yaml():
    """papermill's -p passes its value as text: -p tiles "[5]" is the string '[5]'."""
    p = shards.parameters("jigsawgan", "smoke")
    with pytest.raises(ParameterError, match=r"tiles='\[5\]'.*-p passes its value as text.*-y"):
        parameters.check("jigsawgan", {**p, "tiles": "[5]"})


@pytest.mark.parametrize("argv, expected", [
    (["-p", "n_layer", "[3]"], "unknown parameter(s) n_layer"),
    (["-p", "bogus_param", "3"], "unknown parameter(s) bogus_param"),
    (["-p", "seeds", "notalist"], "parameter seeds='notalist'"),
    (["-p", "max_side", "-4"], "parameter max_side=-4"),
])
def test_a_shard_refuses_what_the_notebook_refuses(tmp_path, capsys, argv, expected):
    code = main(["shard", "kanezaki2018", "--profile", "smoke", "--job", "x-0-seed0-synthetic-1of1",
                 "--results-dir", str(tmp_path), *argv])
    assert code == 2 and expected in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # refused before any work


@pytest.mark.parametrize("parameters, expected", [
    ({"seed": [0]}, "seed is no notebook's parameter"),
    ({"beta": float("nan")}, "parameter beta=nan"),
])
def test_a_configfile_is_checked_before_any_job(tmp_path, parameters, expected):
    """The Snakefile checks every notebook's parameters as its jobs would run them: an override no
    notebook has (it used to be dropped silently) or one out of range stops the workflow."""
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"parameters": parameters}))
    snakemake = str(Path(sys.executable).parent / "snakemake")
    done = subprocess.run([snakemake, "-s", str(REPO / "Snakefile"), "--directory", str(REPO), "--dry-run",
                           "--cores", "1", "--configfile", str(config), "--config", "profile=smoke"],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode != 0 and expected in done.stdout + done.stderr


@pytest.mark.parametrize("argv, expected", [
    (["-p", "beta", ".nan"], "parameter beta=nan"),
    (["-p", "alpha", "-1.0"], "parameter alpha=-1.0"),
    (["-p", "tiles", "[5]"], "parameter tiles=[5]"),
    (["-p", "epochs", "3"], "unknown parameter(s) epochs"),
])
def test_python_m_lib_notebook_checks_before_a_kernel_starts(tmp_path, capsys, argv, expected):
    out = tmp_path / "out.ipynb"
    code = main(["notebook", str(REPO / "notebooks" / "jigsawgan.ipynb"), str(out), "-f",
                 str(REPO / "notebooks" / "params" / "jigsawgan" / "smoke.yaml"), *argv])
    assert code == 2 and expected in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("mu", ["inf", "nan", "-1", "0"])
def test_segment_refuses_a_weight_that_is_not_a_finite_positive_number(tmp_path, capsys, mu):
    from PIL import Image
    import numpy as np

    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(image)
    code = main(["segment", "--method", "kim2020", "--mu", mu, "--out", str(tmp_path / "out"), str(image)])
    assert code == 2 and "--mu" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_the_forms_a_notebook_accepts_are_its_papers():
    from lib.methods import jigsawgan
    from lib.methods.kanezaki2018 import Kanezaki2018Config

    assert parameters.FORMS["jigsawgan"] == parameters.FORMS["jigsawgan_datasize"] == tuple(jigsawgan.FORMS)
    for form in parameters.FORMS["kanezaki2018"]:
        assert Kanezaki2018Config.for_form(form).form == form
    with pytest.raises(ValueError):
        Kanezaki2018Config.for_form("corrected")
