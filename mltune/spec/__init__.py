"""The search spec: frozen dataclasses (``model``), built and validated from YAML and overrides
(``build``) with shared validators (``options``) and rules of what a value may be (``rules``:
also every value a space can produce, checked against the task's rules); the YAML space as
mltune's own distributions (``space``, ``distributions``) and the catalogs names are checked
against (``catalogs``)."""

from mltune.spec.build import build_spec, load_spec
from mltune.spec.model import DataSpec, PruningSpec, SearchSpec, StopSpec

__all__ = ["DataSpec", "PruningSpec", "SearchSpec", "StopSpec", "build_spec", "load_spec"]
