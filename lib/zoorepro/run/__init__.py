"""A run: its folder (``folder.Run``), its typed records (``records``, ``recordcheck``,
``recordcsv``), the run lock (``runlock``), where it ran (``provenance``) and the recipe's
stages (``stages``).  The notebooks that execute the stages are run by :mod:`zoorepro.runner`."""
from zoorepro.run.folder import Run

__all__ = ["Run"]
