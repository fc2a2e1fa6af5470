"""The study's library: datasets, models, losses, loops, metrics, baselines, reports.

Notebooks in ``notebooks/`` import this package; ``python -m lib`` is its command line.
Each sub-module holds one idea (see README.md, "Where things live").
"""

__version__ = "0.1.0"
