"""Samplers behind one protocol (``base.Sampler``); each module registers itself in
``spec.catalogs.SAMPLERS``, and importing this package registers the built-in ones."""

from mltune.search.samplers import hyperopt  # noqa: F401  (registers tpe, rand, anneal)
