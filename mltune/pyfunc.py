"""Kept where it was: every registered mltune model is a cloudpickle of
``mltune.pyfunc.ServedModel``, so this path must import. The flavor lives in
``mltune.tracking.model``."""

from mltune.tracking.model import BadInput, ServedModel

__all__ = ["BadInput", "ServedModel"]
