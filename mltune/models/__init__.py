"""Network families behind a registry (``FAMILIES``: name -> builder and rules), and the
building blocks they share (activations, weight init, the recurrent encoder).

Importing the package registers the built-in families, each from its own module.
"""

from mltune.models import cnn, forecaster, mlp, text_rnn  # noqa: F401  (register the families)
from mltune.models.families import FAMILIES, Family

__all__ = ["FAMILIES", "Family"]
