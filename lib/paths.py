"""Where things are: the repository, the data root and the results folder.

The data root is resolved in this order: an explicit argument (a notebook's ``data_root``
parameter or a ``--data-root`` option), the environment variable ``SEGSTUDY_DATA_ROOT``, and
finally ``data/`` in the repository.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ROOT_ENV = "SEGSTUDY_DATA_ROOT"

#: The repository root (the folder that holds ``lib/``, ``notebooks/`` and ``results/``).
REPO_ROOT = Path(__file__).resolve().parent.parent


def data_root(explicit: str | os.PathLike | None = None) -> Path:
    """Return the folder under which datasets live (``<root>/bsds500/...``)."""
    if explicit not in (None, ""):
        return Path(explicit).expanduser().resolve()
    env = os.environ.get(DATA_ROOT_ENV)
    if env:
        return Path(env).expanduser().resolve()
    return REPO_ROOT / "data"


def results_dir(profile: str, notebook: str, explicit: str | os.PathLike | None = None) -> Path:
    """Return (and create) ``results/<profile>/<notebook>/``, or ``explicit`` when given."""
    path = Path(explicit) if explicit not in (None, "") else REPO_ROOT / "results" / profile / notebook
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()
