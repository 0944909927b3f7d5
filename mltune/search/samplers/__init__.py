"""Samplers behind one protocol (``base.Sampler``); each module registers itself in
``spec.catalogs.SAMPLERS``, and importing this package registers the built-in ones: hyperopt's
tpe, rand and anneal; Optuna's optuna-tpe, optuna-gp and auto (the ``optuna`` extra, imported
only when one is made)."""

from mltune.search.samplers import hyperopt, optuna  # noqa: F401
