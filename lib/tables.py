"""From the runs table (``lib/runs.py``) to the tables the notebooks print: means and spreads
over seeds, the best configuration of a grid, and our numbers beside the papers'.

Vocabulary: a *method* is named as in its paper ("kanezaki2018", "k-means", "GS"); its *form*
is "paper" or "code"; a *configuration* is one setting of its parameters (one ``label``); a
*run* is one configuration with one seed on one dataset. Seeds vary the random initialisation
only; deterministic methods run once.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from .reported import KEYS, paper_number

#: run statistics of :func:`lib.runs.runs_table`, averaged over seeds beside the metrics
STATISTICS = ("iterations_mean", "final_labels", "one_label_share", "seconds_per_image")
_PER_RUN = ("seed", "images", "iterations_min", "iterations_max")


def seed_summary(runs: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """One row per configuration and dataset: the mean of each metric over seeds, its standard
    deviation (``<metric>_std``; blank for a single run), the mean run statistics and ``seeds``.

    The configuration is every column that is neither a metric nor a statistic (the method's
    name, form, label and parameters, and the dataset), so parameters stay typed columns.
    """
    metrics = list(metrics)
    extra = [c for c in STATISTICS if c in runs.columns]
    measured = set(metrics) | set(extra) | set(_PER_RUN)
    others = [c for c in runs.columns if c not in measured]
    by = [c for c in others if runs[c].map(lambda v: isinstance(v, (str, int, float, bool)) or v is None).all()]
    g = runs.groupby(by, sort=False, dropna=False)
    mean = g[metrics + extra].mean()
    std = g[metrics].std(ddof=1).add_suffix("_std")  # nan (a blank cell) for a single run
    out = pd.concat([mean, std], axis=1)
    out["seeds"] = g["seed"].nunique()
    out = out.reset_index()
    if "label" in out and out.duplicated(["label", "dataset"]).any():
        per_config = out.groupby(["label", "dataset"])
        split = [c for c in by if c not in ("label", "dataset") and per_config[c].nunique().max() > 1]
        raise ValueError(f"columns {split} vary between the seeds of one configuration: pass them in metrics")
    return out[by + [c for m in metrics for c in (m, f"{m}_std")] + extra + ["seeds"]]


def best_of(group: pd.DataFrame, metric: str) -> pd.Series:
    """The row of ``group`` with the best mean ``metric`` (lowest for VOI, else highest)."""
    return group.loc[group[metric].idxmin() if metric == "voi" else group[metric].idxmax()]


def best_configs(summary: pd.DataFrame, metric: str, by: Sequence[str] = ("method", "form", "dataset")) -> pd.DataFrame:
    """For each method (form and dataset), the configuration with the best mean ``metric``.

    This is the papers' own selection ("we chose the best results from k = 2..20 ..."): made on
    the evaluation images themselves, so it flatters every method that has a parameter grid.
    """
    groups = summary.groupby(list(by), sort=False, dropna=False)
    return pd.DataFrame([best_of(g, metric) for _, g in groups]).reset_index(drop=True)


def best_versus_paper(
    summary: pd.DataFrame, paper: str | Sequence[str], metrics: Sequence[str], dataset: str, *,
    rows: Sequence[str] = ("method", "form"), select_by: str | None = None,
    comparable: bool | Sequence[str] = False, order: Sequence[str] | None = None,
    order_by: str = "method", reported_only: Sequence[str] = (), extra: Sequence[str] = (),
) -> pd.DataFrame:
    """The best configuration per row (``rows``: columns of ``summary``) on ``dataset``, beside
    the paper's numbers.

    ``select_by=None`` picks the best configuration separately for each metric (the paper's
    "best average precision scores for each method"); otherwise one configuration per row,
    chosen by ``select_by`` (for VOI, lower is better). Columns per metric: ours (mean over
    seeds) and ``±`` (standard deviation over seeds); ``paper`` where ``paper`` (one key or
    several, the first that has a number wins) reports that metric on ``dataset``, joined on the
    row's method and :data:`lib.reported.KEYS`; and ``diff`` (ours - paper) only when the run is
    ``comparable`` — ``True`` for every row, or the methods whose setting is known to match the
    paper's (the paper's images, resolution and iterations); otherwise the paper's number is
    context, not a target. ``order`` sorts the rows by their ``order_by`` value (stable);
    ``reported_only``
    methods are appended with the paper's numbers alone; ``extra`` columns (e.g. iterations) are
    copied from the selected configuration (requires ``select_by``).
    """
    if extra and select_by is None:
        raise ValueError("extra columns need one configuration per row: give select_by")
    on = summary[summary.dataset == dataset]
    out_rows = []
    for _, group in on.groupby(list(rows), sort=False, dropna=False):
        best = best_of(group, select_by) if select_by is not None else group.iloc[0]
        row: dict = {c: best[c] for c in rows}
        if select_by is not None:
            row["label"] = best["label"]
        diff = comparable is True or (not isinstance(comparable, bool) and best["method"] in comparable)
        for m in metrics:
            if select_by is None:
                best = best_of(group, m)
                row[f"{m} label"] = best["label"]
            row[m] = best[m]
            row[f"{m} ±"] = best[f"{m}_std"]
            key = {"method": best["method"], **{k: best[k] for k in KEYS if k in best.index}}
            row[f"{m} paper"] = paper_number(paper, key, dataset, m)
            if comparable is not False:
                row[f"{m} diff"] = row[m] - row[f"{m} paper"] if diff else np.nan
        for c in extra:
            row[c] = best[c]
        row["seeds"] = int(best["seeds"])
        out_rows.append(row)
    for method in reported_only:
        row = {"method": f"{method} (as reported only)"}
        for m in metrics:
            row[m] = np.nan
            row[f"{m} paper"] = paper_number(paper, {"method": method}, dataset, m)
        out_rows.append(row)
    out = pd.DataFrame(out_rows)
    # a paper column only for the metrics the paper reports on this dataset
    unreported = [c for m in metrics for c in (f"{m} paper", f"{m} diff") if c in out and out[f"{m} paper"].isna().all()]
    out = out.drop(columns=unreported)
    out["seeds"] = out["seeds"].astype("Int64")  # blank for reported-only rows
    if order is not None:
        rank = {f: i for i, f in reversed(list(enumerate(order)))}
        key = out[order_by].map(lambda v: v.replace(" (as reported only)", "") if isinstance(v, str) else v)
        out = out.iloc[np.argsort(key.map(lambda v: rank.get(v, len(order))).to_numpy(), kind="stable")]
    return out.reset_index(drop=True)


def with_paper_columns(summary: pd.DataFrame, metrics: Sequence[str], paper_value, comparable: bool = False
                       ) -> pd.DataFrame:
    """``summary`` with ``paper_<metric>`` after each ``<metric>_std`` column, ``paper_value(row,
    metric)`` for each row (nan where the paper has no number), and ``diff_<metric>`` (ours -
    paper) after it only when the run is ``comparable`` (the paper's data and iterations)."""
    summary = summary.copy()
    for m in metrics:
        summary.insert(summary.columns.get_loc(f"{m}_std") + 1, f"paper_{m}",
                       [paper_value(r, m) for _, r in summary.iterrows()])
        if comparable:
            summary.insert(summary.columns.get_loc(f"paper_{m}") + 1, f"diff_{m}", summary[m] - summary[f"paper_{m}"])
    return summary
