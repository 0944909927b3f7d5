"""The catalogs a spec's names are checked against: samplers (``algo``), schedulers
(``pruning.rule``) and backends (``backend``).

They live here, where a spec is validated, and each implementation module adds itself
(``mltune.search.samplers``, ``mltune.search.schedulers``, ``mltune.backends``, imported by the
package root): the spec layer never imports an implementation, the error for an unknown name
lists what is registered, and a new sampler, scheduler or backend is one module.
"""

from __future__ import annotations

from typing import Any

from mltune.core.catalog import Catalog

SAMPLERS: Catalog[Any] = Catalog("algo")  # name -> SamplerFactory (search.samplers.base)
SCHEDULERS: Catalog[Any] = Catalog("pruning rule")  # name -> scheduler class
BACKENDS: Catalog[Any] = Catalog("backend")  # name -> Backend (search.backend)
