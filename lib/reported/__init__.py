"""The papers' own numbers, kept as data with their source table (the only numbers typed by hand).

One CSV per paper: ``paper, source, method, reported_as, metric, value``. ``method`` is this
study's name for the row (so that ours and theirs can be joined); ``reported_as`` is the
paper's own label.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pandas as pd

_HERE = Path(__file__).parent


@lru_cache(maxsize=None)
def _read(paper: str) -> pd.DataFrame:
    path = _HERE / f"{paper}.csv"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in _HERE.glob("*.csv")))
        raise ValueError(f"no reported numbers for {paper!r}; known: {known}")
    return pd.read_csv(path)


def reported(paper: str, method: str | None = None) -> pd.DataFrame:
    """The paper's numbers (optionally one method's), one row per metric."""
    df = _read(paper).copy()
    return df if method is None else df[df.method == method].reset_index(drop=True)


def reported_value(paper: str, method: str, metric: str) -> float:
    rows = _read(paper)
    hit = rows[(rows.method == method) & (rows.metric == metric)]
    if hit.empty:
        raise KeyError(f"{paper}: no reported {metric} for {method}")
    return float(hit.value.iloc[0])
