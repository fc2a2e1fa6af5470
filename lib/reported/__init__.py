"""The papers' own numbers, kept as data with their source table (the only numbers typed by hand).

One CSV per paper's table(s): ``paper, source, method, reported_as, metric, value``, where
``paper`` is the publication the number comes from (a CSV may hold a second paper's numbers
that the first one quotes, e.g. Kim et al.'s sanity values beside DynamicSeg's Table I). ``method`` is this
study's name for the row (so that ours and theirs can be joined); ``reported_as`` is the
paper's own label.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pandas as pd

_HERE = Path(__file__).parent


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

