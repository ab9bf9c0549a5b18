"""zoorepro: model-zoo inference recipes as rerunnable reproducibility reports.

The library is in packages by concern (docs/architecture.md): ``recipe``, ``ascend``,
``backends``, ``run``, ``report`` and ``scale`` above the base modules (``errors``, ``files``,
``config``, ...).  ``from zoorepro import runner, stages, tables`` (the notebooks' imports
before the packages) still works: those names are looked up here, lazily.
"""
from __future__ import annotations

import importlib
import logging

__version__ = "0.1.0"
__all__ = ["load_run", "__version__"]

# the library logs to "zoorepro" (and its children); only the CLI gives it a handler
logging.getLogger(__name__).addHandler(logging.NullHandler())

# names the notebooks import from the package itself -> the module that holds them now
_FACADE = {"stages": "zoorepro.run.stages",
           "tables": "zoorepro.report.tables"}


def load_run(path):
    """A run folder's tables as pandas DataFrames (see :mod:`zoorepro.report.tables`)."""
    from zoorepro.report.tables import load_run as _load_run
    return _load_run(path)


def __getattr__(name: str):
    if name in _FACADE:
        return importlib.import_module(_FACADE[name])
    raise AttributeError(f"module 'zoorepro' has no attribute {name!r}")
