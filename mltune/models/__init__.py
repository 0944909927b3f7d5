"""Network families behind a registry (``FAMILIES``: name -> builder and rules), the building
blocks they share (activations, weight init, the recurrent encoder), what every network is told
about the data (``description``: one dataclass per task) and the user's own networks
(``network``: ``model: nets.py:build`` loaded, and carried with every logged model).

Importing the package registers the built-in families, each from its own module.
"""

from mltune.models import cnn, forecaster, mlp, tabm, text_rnn  # noqa: F401  (register the families)
from mltune.models.description import (
    DataDescription,
    ImageData,
    TabularData,
    TextData,
    TimeseriesData,
)
from mltune.models.families import FAMILIES, Family
from mltune.models.network import Network

__all__ = ["FAMILIES", "DataDescription", "Family", "ImageData", "Network", "TabularData",
           "TextData", "TimeseriesData"]
