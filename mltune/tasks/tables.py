"""Kept where it was: tabular models logged by mltune 0.1.0 pickled their fitted preprocessing
with ``mltune.tasks.tables.as_text`` inside; it lives in ``mltune.tasks.tabular.tables``."""

from mltune.tasks.tabular.tables import as_text

__all__ = ["as_text"]
