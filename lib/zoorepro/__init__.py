"""zoorepro: model-zoo inference recipes as rerunnable reproducibility reports."""
from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["load_run", "__version__"]


def load_run(path):
    """A run folder's tables as pandas DataFrames (see :mod:`zoorepro.tables`)."""
    from .tables import load_run as _load_run
    return _load_run(path)
