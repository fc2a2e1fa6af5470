"""The papers' own numbers, kept as data with their source table (the only numbers typed by hand).

One CSV per paper: ``paper, source, method, [scheme, mu, losses,] reported_as, dataset, metric,
value``. ``paper`` is the publication the number comes from (a CSV may hold a second paper's
numbers that the first one quotes, e.g. Kim et al.'s sanity values beside DynamicSeg's Table I).
``method``, the key columns (:data:`KEYS`, blank where a method has no such setting),
``dataset`` and ``metric`` use this study's names and values, so that a row of ours and the
paper's number are joined on typed columns; ``reported_as`` is the paper's own label.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

_HERE = Path(__file__).parent

#: the settings, beyond the method's name, that tell a paper's rows apart
KEYS = ("scheme", "mu", "losses", "tiles", "trunk", "generator_input", "lambda_content", "lambda_adversarial")


@lru_cache(maxsize=None)
def _all() -> pd.DataFrame:
    return pd.concat([pd.read_csv(p) for p in sorted(_HERE.glob("*.csv"))], ignore_index=True)


def reported(paper: str, method: str | None = None) -> pd.DataFrame:
    """The numbers published by ``paper`` (optionally one method's), one row per metric."""
    rows = _all()
    if paper not in set(rows.paper):
        raise ValueError(f"no reported numbers for {paper!r}; known: {', '.join(sorted(set(rows.paper)))}")
    rows = rows[rows.paper == paper]
    return (rows if method is None else rows[rows.method == method]).reset_index(drop=True)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value) or value == ""


def _same(ours: Any, theirs: Any) -> bool:
    if _missing(ours) or _missing(theirs):
        return _missing(ours) and _missing(theirs)
    if isinstance(theirs, (int, float)) or isinstance(ours, (int, float)):
        return float(ours) == float(theirs)
    return str(ours) == str(theirs)


def paper_number(papers: str | Sequence[str], row: Mapping[str, Any], dataset: str, metric: str) -> float:
    """The published ``metric`` on ``dataset`` for the method of ``row`` (a row of ours: its
    ``method`` and :data:`KEYS` values, missing ones blank), from the first of ``papers`` that
    reports it; nan when none does."""
    for paper in [papers] if isinstance(papers, str) else papers:
        rep = reported(paper)
        hit = rep[(rep.method == row["method"]) & (rep.dataset == dataset) & (rep.metric == metric)]
        for key in KEYS:
            if key in rep.columns:
                hit = hit.loc[[_same(row.get(key), v) for v in hit[key]]] if len(hit) else hit
            elif not _missing(row.get(key)):
                hit = hit.iloc[:0]  # the paper does not tell rows apart by this setting
        if len(hit) > 1:
            raise ValueError(f"{paper}: {len(hit)} reported numbers match {dict(row)} on {dataset}, {metric}")
        if len(hit):
            return float(hit.value.iloc[0])
    return float("nan")
