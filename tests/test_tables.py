"""The rules that decide what stands beside a paper's number: which configuration is "best", which
rows get a paper number and a difference, how a dataset subset is named, and the seed summary."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lib import study, tables
from lib.methods import Blank, DynamicSeg, KMeansWindows, Kim2020
from lib.methods.base import columns

BSDS = "bsds500/test"


def _row(method, dataset=BSDS, miou=0.0, voi=1.0, std=0.01, **extra):
    return {**columns(method), "dataset": dataset, "miou_all": miou, "miou_all_std": std,
            "voi": voi, "voi_std": std, "iterations_mean": 7.0, "seeds": 2, **extra}


@pytest.fixture
def summary() -> pd.DataFrame:
    return pd.DataFrame([
        _row(KMeansWindows(1, 2), miou=0.20, voi=2.0),
        _row(KMeansWindows(1, 3), miou=0.30, voi=3.0),  # best mIoU, worst VOI
        _row(Kim2020(5), miou=0.31, voi=2.5),
        _row(Kim2020(50), miou=0.40, voi=2.2),
        _row(DynamicSeg("fsf", 15), miou=0.35, voi=2.1),
        _row(Blank(), miou=0.0458, voi=4.0, std=np.nan, seeds=1),
        _row(KMeansWindows(1, 3), dataset="synthetic", miou=0.9),
    ])


def test_best_configuration_is_the_highest_mean_and_lowest_voi(summary):
    t = tables.best_versus_paper(summary, "dynamicseg", ["miou_all"], BSDS, select_by="miou_all")
    labels = dict(zip(t.method, t.label))
    assert labels["k-means"] == "k-means (1,3)" and labels["kim2020"] == Kim2020(50).label()
    by_voi = tables.best_versus_paper(summary, "dynamicseg", ["voi"], BSDS, select_by="voi")
    assert dict(zip(by_voi.method, by_voi.label))["k-means"] == "k-means (1,2)"  # VOI: lower is better
    # select_by=None: each metric picks its own best, and says which
    per_metric = tables.best_versus_paper(summary, "dynamicseg", ["miou_all", "voi"], BSDS)
    km = per_metric[per_metric.method == "k-means"].iloc[0]
    assert (km["miou_all label"], km["voi label"]) == ("k-means (1,3)", "k-means (1,2)")
    assert (km.miou_all, km.voi) == (0.30, 2.0)


def test_paper_numbers_join_on_typed_keys(summary):
    rows = ("method", "form", "scheme", "mu")
    t = tables.best_versus_paper(summary, ["dynamicseg", "kim2020"], ["miou_all"], BSDS, rows=rows,
                                 select_by="miou_all")
    paper = {(r.method, r.mu if r.mu == r.mu else None): r["miou_all paper"] for _, r in t.iterrows()}
    # DynamicSeg Table I: k-means .240, Kim et al. mu = 5 .305, FSF q'/15 .349; blank from Kim et al.
    assert paper[("k-means", None)] == 0.24 and paper[("kim2020", 5.0)] == 0.305
    assert paper[("dynamicseg", 15.0)] == 0.349 and paper[("blank", None)] == 0.0458
    assert np.isnan(paper[("kim2020", 50.0)])  # the paper reports mu = 5 only


def test_differences_only_for_comparable_rows(summary):
    kw = dict(select_by="miou_all", rows=("method", "form", "scheme", "mu"))
    none = tables.best_versus_paper(summary, "dynamicseg", ["miou_all"], BSDS, **kw)
    assert "miou_all paper" in none and "miou_all diff" not in none
    every = tables.best_versus_paper(summary, "dynamicseg", ["miou_all"], BSDS, comparable=True, **kw)
    km = every[every.method == "k-means"].iloc[0]
    assert km["miou_all diff"] == pytest.approx(0.30 - 0.24)
    some = tables.best_versus_paper(summary, "dynamicseg", ["miou_all"], BSDS, comparable=["dynamicseg"], **kw)
    diff = dict(zip(some.method, some["miou_all diff"]))
    assert diff["dynamicseg"] == pytest.approx(0.35 - 0.349) and np.isnan(diff["k-means"])


def test_no_paper_column_where_the_paper_reports_nothing(summary):
    t = tables.best_versus_paper(summary, "dynamicseg", ["miou_all", "voi"], "synthetic", select_by="miou_all")
    assert not [c for c in t.columns if c.endswith((" paper", " diff"))]
    bsds = tables.best_versus_paper(summary, "dynamicseg", ["miou_all", "voi"], BSDS, select_by="miou_all",
                                    comparable=True)
    assert "miou_all paper" in bsds and "voi paper" not in bsds and "voi diff" not in bsds


def test_reported_only_rows_and_order(summary):
    t = tables.best_versus_paper(summary, "dynamicseg", ["miou_all"], BSDS, select_by="miou_all",
                                 order=["IIC", "blank", "k-means", "kim2020", "dynamicseg"],
                                 reported_only=["IIC"], extra=["iterations_mean"])
    assert list(t.method) == ["IIC (as reported only)", "blank", "k-means", "kim2020", "dynamicseg"]
    iic = t.iloc[0]
    assert np.isnan(iic.miou_all) and iic["miou_all paper"] == 0.172 and pd.isna(iic.seeds)
    assert t.iterations_mean.iloc[1] == 7.0 and t.seeds.iloc[1] == 1
    with pytest.raises(ValueError, match="select_by"):
        tables.best_versus_paper(summary, "dynamicseg", ["miou_all"], BSDS, extra=["iterations_mean"])


def test_seed_summary_keeps_typed_columns_and_spreads():
    runs = pd.DataFrame([
        {**columns(Kim2020(5)), "dataset": BSDS, "seed": 0, "images": 2, "miou_all": 0.2, "iterations_mean": 4.0},
        {**columns(Kim2020(5)), "dataset": BSDS, "seed": 1, "images": 2, "miou_all": 0.4, "iterations_mean": 6.0},
        {**columns(Blank()), "dataset": BSDS, "seed": 0, "images": 2, "miou_all": 0.05, "iterations_mean": 0.0},
    ])
    s = tables.seed_summary(runs, ["miou_all"])
    assert len(s) == 2  # the blank row has no scheme / mu: kept, not dropped by groupby
    kim = s[s.method == "kim2020"].iloc[0]
    assert (kim.scheme, kim.mu, kim.seeds) == ("fixed", 5.0, 2)
    assert kim.miou_all == pytest.approx(0.3) and kim.miou_all_std == pytest.approx(np.std([0.2, 0.4], ddof=1))
    assert kim.iterations_mean == 5.0
    assert np.isnan(s[s.method == "blank"].miou_all_std.iloc[0])  # a single run has no spread


def test_best_configs_per_method_and_form(summary):
    best = tables.best_configs(summary[summary.dataset == BSDS], "miou_all")
    assert dict(zip(best.method, best.label))["kim2020"] == Kim2020(50).label()
    assert len(best) == 4  # k-means, kim2020, dynamicseg, blank


@pytest.mark.parametrize("taken, present, official, expected", [
    (200, 200, None, "BSDS500 test: all 200 images present"),
    (4, 200, None, "BSDS500 test: the first 4 (by id) of the 200 images present"),
    (2, 60, 200, "BSDS500 test: the first 2 (by id) of the 60 images present (a subset: the full dataset has 200)"),
    (60, 60, 200, "BSDS500 test: all 60 images present (a subset: the full dataset has 200)"),
    (200, 200, 200, "BSDS500 test: all 200 images present"),
])
def test_subset_names(taken, present, official, expected):
    assert study.subset_note("BSDS500 test", taken, present, official) == expected


def test_a_measured_column_left_out_of_metrics_is_an_error():
    runs = pd.DataFrame([
        {**columns(Kim2020(5)), "dataset": BSDS, "seed": s, "images": 2, "miou_all": 0.2 + s, "f_0.9": 0.1 * s}
        for s in (0, 1)])
    with pytest.raises(ValueError, match="f_0.9"):
        tables.seed_summary(runs, ["miou_all"])
    assert len(tables.seed_summary(runs, ["miou_all", "f_0.9"])) == 1


def test_evaluators_name_every_number_they_summarize():
    from lib.data import load
    from lib.evaluation import LesionEvaluator, RegionEvaluator

    scene = load("synthetic", n=1, size=(24, 32))[0]
    region = RegionEvaluator()
    assert set(region.summarize([region.evaluate(scene.segmentations[0], scene)])) == set(region.metrics)
    lesion_sample = load("synthetic_lesions", n=1, size=(32, 32))[0]
    lesion = LesionEvaluator()
    scores = lesion.evaluate(lesion_sample.segmentations[0].astype(int), lesion_sample)
    assert set(lesion.summarize([scores])) == set(lesion.metrics)
