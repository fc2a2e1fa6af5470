"""Turning run records into the tables the notebooks print.

Vocabulary: a *family* is a method as the paper names it ("kanezaki2018", "k-means", "GS"); a
*config* is one setting of it ("k-means (3,8)"); a *run* is one config with one seed on one
dataset. Seeds vary the random initialisation only; deterministic methods run once.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from .evaluation import summarize
from .reported import reported
from .runs import Record

#: metrics reported by :func:`lib.evaluation.summarize`, in table order
METRICS = ("miou_all", "miou_fine", "miou_coarse", "miou_mean", "f_0.5", "ap_0.5", "ap_0.7", "covering", "pri", "voi", "segments")


def runs_table(family: str, config: str, records: Iterable[Record], form: str = "", summarize=summarize, **columns) -> pd.DataFrame:
    """One row per (seed, dataset): the metrics of ``summarize`` (the evaluator's; by default the
    BSDS-style :func:`lib.evaluation.summarize`) plus run statistics.

    ``form`` is the method's form ("paper", "code", ...) where it has several, else "".
    """
    by_run: dict[tuple[int, str], list[Record]] = {}
    for r in records:
        by_run.setdefault((r.seed, r.dataset), []).append(r)
    rows = []
    for (seed, dataset), recs in sorted(by_run.items()):
        evals = [r.evaluation for r in recs if r.evaluation is not None]
        if not evals:
            continue
        iters = np.array([r.iterations for r in recs])
        rows.append({
            "family": family, "form": form, "config": config, **columns, "dataset": dataset, "seed": seed, "images": len(evals),
            **summarize(evals),
            "iterations_mean": float(iters.mean()), "iterations_min": int(iters.min()), "iterations_max": int(iters.max()),
            "final_labels": float(np.mean([r.n_labels for r in recs])),
            "one_label_share": float(np.mean([r.n_labels == 1 for r in recs])),  # collapsed to a single cluster
            "seconds_per_image": float(np.mean([r.seconds for r in recs])),
        })
    return pd.DataFrame(rows)


def seed_summary(runs: pd.DataFrame, metrics: Sequence[str] = METRICS, by: Sequence[str] = ("family", "form", "config", "dataset")) -> pd.DataFrame:
    """Mean and standard deviation over seeds (``<metric>`` and ``<metric>_std``), and ``seeds``."""
    by = [c for c in by if c in runs.columns]
    extra = [c for c in ("iterations_mean", "final_labels", "one_label_share", "seconds_per_image") if c in runs.columns]
    g = runs.groupby(list(by), sort=False)
    mean = g[list(metrics) + extra].mean()
    std = g[list(metrics)].std(ddof=1).add_suffix("_std")  # nan (a blank cell) for a single run
    out = pd.concat([mean, std], axis=1)
    out["seeds"] = g["seed"].nunique()
    out = out.reset_index()
    ordered = list(by) + [c for m in metrics for c in (m, f"{m}_std")] + extra + ["seeds"]
    return out[ordered]


def best_configs(summary: pd.DataFrame, metric: str, by: Sequence[str] = ("family", "form", "dataset")) -> pd.DataFrame:
    """For each family (and dataset), the config with the highest mean ``metric``.

    This is the paper's own selection ("we chose the best results from k = 2..20 ..."): made on
    the evaluation images themselves, so it flatters every method that has a parameter grid.
    """
    idx = summary.groupby(list(by), sort=False)[metric].idxmax()
    return summary.loc[idx].reset_index(drop=True)


def paper_value(papers: str | Sequence[str], family: str, metric: str) -> float:
    """The published number for ``family`` and ``metric``: the first of ``papers`` that reports
    one (nan when none does)."""
    for paper in [papers] if isinstance(papers, str) else papers:
        rep = reported(paper, family)
        hit = rep[rep.metric == metric]
        if len(hit):
            return float(hit.value.iloc[0])
    return float("nan")


def best_versus_paper(
    summary: pd.DataFrame, paper: str | Sequence[str], metrics: Sequence[str], dataset: str, *,
    select_by: str | None = None, comparable: bool | Sequence[str] = False, with_paper: bool | None = None,
    paper_metrics: dict[str, str] | None = None, order: Sequence[str] | None = None,
    reported_only: Sequence[str] = (), extra: Sequence[str] = (),
) -> pd.DataFrame:
    """Best config per (family, form) on ``dataset``, beside the paper's numbers.

    ``select_by=None`` picks the best config separately for each metric (the paper's "best
    average precision scores for each method"); otherwise one config per row, chosen by
    ``select_by`` (for VOI, lower is better). Columns per metric: ours (mean over seeds), ``±``
    (standard deviation over seeds), and — when ``with_paper`` (default: on BSDS500, the papers'
    dataset) — ``paper``, taking each number from the first of ``paper`` (one key or several)
    that reports it under the name ``paper_metrics.get(metric, metric)``. ``diff`` (ours - paper)
    is added only when the run is ``comparable`` (the paper's images, resolution and iterations) —
    ``True`` for every row, or the families whose setting is known to match; otherwise the paper's
    number is context, not a target. ``order`` sorts the rows by family; ``reported_only``
    families are appended with the paper's numbers alone; ``extra`` columns (e.g. iterations) are
    copied from the selected configuration (requires ``select_by``).
    """
    on = summary[summary.dataset == dataset]
    with_paper = dataset.startswith("bsds500") if with_paper is None else with_paper
    paper_metrics = paper_metrics or {}

    def best_of(group: pd.DataFrame, metric: str) -> pd.Series:
        return group.loc[group[metric].idxmin() if metric == "voi" else group[metric].idxmax()]

    rows = []
    for (family, form), group in on.groupby(["family", "form"], sort=False):
        row: dict = {"method": family, "form": form}
        diff = comparable is True or (not isinstance(comparable, bool) and family in comparable)
        if select_by is not None:
            best = best_of(group, select_by)
            row["config"] = best.config
        for m in metrics:
            if select_by is None:
                best = best_of(group, m)
                row[f"{m} config"] = best.config
            row[m] = best[m]
            row[f"{m} ±"] = best[f"{m}_std"]
            if with_paper:
                p = paper_value(paper, family, paper_metrics.get(m, m))
                row[f"{m} paper"] = p
                if comparable is not False:
                    row[f"{m} diff"] = best[m] - p if diff else np.nan
        for c in extra:
            row[c] = best[c]
        row["seeds"] = int(best.seeds)
        rows.append(row)
    for family in reported_only:
        row = {"method": f"{family} (as reported only)", "form": ""}
        for m in metrics:
            row[m] = np.nan
            if with_paper:
                row[f"{m} paper"] = paper_value(paper, family, paper_metrics.get(m, m))
        rows.append(row)
    out = pd.DataFrame(rows)
    out["seeds"] = out["seeds"].astype("Int64")  # blank for reported-only rows
    if order is not None:
        rank = {}
        for i, f in enumerate(order):
            rank.setdefault(f, i)
        out = out.sort_values("method", key=lambda col: col.map(lambda f: rank.get(f, len(order))), kind="stable")
    return out.reset_index(drop=True)
