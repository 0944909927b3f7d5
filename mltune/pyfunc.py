"""Kept where it was: models registered by mltune 0.1 are cloudpickles of
``mltune.pyfunc.ServedModel``, so this path must import (they load where MLflow allows pickle:
``mltune.tracking.legacy``). Today's models are models from code, served by
``mltune.tracking.model``."""

from mltune.tracking.model import BadInput, ServedModel

__all__ = ["BadInput", "ServedModel"]
