"""What building a spec asks of a task, and the catalog of tasks by name.

The catalog lives here, where a spec is validated, and each task module adds itself to it
(``mltune.tasks``, imported by the package root): so the spec layer never imports a task, and a
new task is one module that registers itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from mltune.core.catalog import Catalog
from mltune.core.terms import Direction
from mltune.spec.model import DataSpec
from mltune.spec.rules import Rule


class TaskRules(Protocol):
    """The part of a task that validating a spec needs (``mltune.tasks.base.Task`` has it)."""

    name: str
    default_source: str | None
    default_metric: str
    data_options: tuple[str, ...]

    def for_data(self, data: DataSpec) -> TaskRules: ...

    def for_model(self, model: Any) -> TaskRules: ...

    def resolve_data(self, data: DataSpec, space: Mapping[str, Any]) -> DataSpec: ...

    def default_space(self) -> dict[str, Any]: ...

    def metrics(self, data: DataSpec) -> Mapping[str, Direction]: ...

    def param_rules(self) -> Mapping[str, Rule]: ...


TASKS: Catalog[Any] = Catalog("task")
