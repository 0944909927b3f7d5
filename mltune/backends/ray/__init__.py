"""The ray backend: a pack per Ray worker, searched by the spec's sampler (any ``algo``).

The driver (this process) holds the parent run, the search's bookkeeping and the sampler; each
worker (a Ray actor, ``parallelism`` of them, ``cpus_per_trial`` CPUs and ``gpus_per_worker``
GPUs each) trains packs as a local device does, opening a child run per member with
``parent_run_id`` and logging it exactly like a local trial
(``mltune.search.trial.TrialRunner``). The data is prepared once, here, and shipped through
Ray's object store. Why actors rather than Ray Tune: ``runner``'s docstring.

This module imports without Ray; everything that needs it lives in ``runner``.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any

from mltune.core.errors import SpecError
from mltune.search.backend import BACKENDS
from mltune.spec.model import SearchSpec

INSTALL = "pip install 'mltune[ray]'"


def preflight(spec: SearchSpec) -> None:
    """Refuse what cannot run, before any data is read or any run is opened."""
    try:
        import ray  # noqa: F401
    except ImportError as exc:
        missing = exc.name or "ray"
        raise SpecError(f"backend: 'ray' needs Ray, which is not installed (no module "
                        f"{missing!r}); install it with: {INSTALL}") from None
    if spec.ray_address is not None:
        check_reachable(spec.ray_address)


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """A cluster to join must answer: Ray itself would retry for minutes, printing warnings."""
    if address.startswith("ray://"):
        return  # Ray Client: it reports an unreachable server itself
    from ray._private.services import canonicalize_bootstrap_address

    try:
        target = canonicalize_bootstrap_address(address)
    except Exception as exc:  # "auto" and no cluster recorded on this machine, a bad form
        raise SpecError(f"ray_address: {address!r}: {str(exc).splitlines()[0]}") from None
    if target is None:
        raise SpecError(f"ray_address: {address!r}: no running Ray cluster found on this "
                        "machine; start one with `ray start --head` or give host:port")
    host, _, port = target.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise SpecError(f"ray_address: {address!r}: nothing answers at {target} "
                        f"({exc.strerror or exc}); start the head with `ray start --head` "
                        "or check the address") from None


class RayBackend:
    """Packs in parallel in Ray workers (``runner``), each member logged like a local trial."""

    def preflight(self, spec: SearchSpec) -> None:
        preflight(spec)

    def run(self, session: Any, space: Mapping[str, Any]) -> None:
        from mltune.backends.ray.runner import run_search

        run_search(session, space)


BACKENDS.add("ray", RayBackend())
