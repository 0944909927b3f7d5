"""The ray backend: a driver per Ray worker, searched by the spec's sampler (any ``algo``).

The search's process holds the parent run and the coordinator (the sampler, the numbering, the
scheduler, the outcomes); each worker (a Ray actor, ``parallelism`` of them, ``cpus_per_trial``
CPUs and ``gpus_per_worker`` GPUs each) runs the very driver a local lane runs
(``mltune.search.packs.driver``), opening a child run per trial with ``parent_run_id``. The
data is prepared once, here, and shipped through Ray's object store. Why actors rather than
Ray Tune: ``runner``'s docstring.

This module imports without Ray; everything that needs it lives in ``runner``.
"""

from __future__ import annotations

import socket
from typing import Any

from mltune.core.errors import SpecError
from mltune.search.packs.lanes import BACKENDS
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
    """Lanes in Ray workers (``runner``), each trial logged like a local one."""

    def preflight(self, spec: SearchSpec) -> None:
        preflight(spec)

    def run(self, setup: Any, coordinator: Any, stop: Any) -> None:
        from mltune.backends.ray.runner import run_search

        run_search(setup, coordinator, stop)


BACKENDS.add("ray", RayBackend())
