"""Every error zoorepro raises on purpose: one base class, a message that names the file, the
problem and the fix.  The CLI catches :class:`ZooreproError` once (exit 2); anything else is a
bug and keeps its traceback.

The classes also derive from ``ValueError`` / ``RuntimeError`` as they did before they shared a
base, so ``except ValueError`` in callers keeps working.  Each is importable from the module
that raises it (``zoorepro.recipe.aipp.AippError`` is ``zoorepro.errors.AippError``).
"""
from __future__ import annotations


class ZooreproError(Exception):
    """Base of every deliberate zoorepro error."""


class ConfigError(ZooreproError, ValueError):
    """Params are invalid; the message lists every problem and the valid keys."""


class RecipeError(ZooreproError, ValueError):
    """A recipe folder is missing, malformed, or names something that cannot be had."""


class DataError(ZooreproError, ValueError):
    """An input file or folder is unusable; the message names it and the fix."""


class AippError(ZooreproError, ValueError):
    """aipp.config cannot be used; the message names the line and the field."""


class WeightsError(ZooreproError, ValueError):
    """The weights file is missing, of another architecture, damaged or unsafe."""


class WriteError(ZooreproError, OSError):
    """A file could not be written (disk full, file too large, read-only, name too long); the
    message names the path, the real cause and the fix.  An ``OSError`` too, so callers that
    catch ``OSError`` around a write keep working."""

    def __str__(self) -> str:     # the message, not OSError's "[Errno N] ..." form
        return str(self.args[0]) if self.args else ""


class ResourceError(ZooreproError, RuntimeError):
    """Not enough memory for what the params ask; the message says what to lower."""


class AtcError(ZooreproError, RuntimeError):
    """ATC failed or cannot be driven; the message names the log and the fix."""


class AisBenchError(ZooreproError, RuntimeError):
    """An ais_bench command failed or its files are unusable; the message names its log."""


class BackendUnavailable(ZooreproError, RuntimeError):
    """A backend cannot run here; the message says what to install or build."""


class NoBackendRan(ZooreproError):
    """No backend of the config could run here; the message says what each needs."""


class EvaluationError(DataError):
    """Predictions and labels do not fit together; the message says how and what to do."""


class IngestError(DataError):
    """NPU results cannot be ingested as given; the message says why and what to do."""


class KitError(DataError):
    """The kit cannot be written; the message says why and what to do."""


class CompareError(DataError):
    """Runs cannot be compared as given."""


class ShellTemplateError(DataError):
    """A value cannot go into a shell script; the message names it and what is allowed."""


class RecordError(DataError):
    """A run folder's record is missing, damaged or of an unknown schema."""


class LabError(ZooreproError, RuntimeError):
    """JupyterLab cannot be started as asked (a busy port, notebooks inside site-packages)."""
