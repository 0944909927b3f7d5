"""Name -> implementation catalogs (tasks, model families, activations, losses, inits...).

One shape for every pluggable piece, so that adding one is a single ``register`` call and an
unknown name always gets the same kind of message: what was asked for, what exists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from mltune.core.errors import SpecError

T = TypeVar("T")


class Catalog(Generic[T]):
    """A mapping of names to implementations with helpful "not found" errors."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def add(self, name: str, item: T) -> T:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._items[name] = item
        return item

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of :meth:`add`."""

        def decorate(item: T) -> T:
            return self.add(name, item)

        return decorate

    def get(self, name: object, field: str | None = None) -> T:
        """Return the implementation called ``name``; ``field`` names where the value came from."""
        if isinstance(name, str) and name in self._items:
            return self._items[name]
        raise SpecError(f"unknown {self.kind} {name!r}; available: {', '.join(self.names())}",
                        field=field)

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
