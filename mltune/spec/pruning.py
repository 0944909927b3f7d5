"""``pruning:``: a rule and that rule's own options, which its scheduler validates.

Each scheduler owns its ``Options`` (a dataclass) and their checks; here a spec's
``pruning:`` mapping is read against them: another rule's option is refused naming the rule's
own, except where an older mltune wrote every rule's options at their defaults (left out, with
one warning).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from mltune.core.errors import SpecError
from mltune.spec.catalogs import SCHEDULERS
from mltune.spec.model import PruningSpec
from mltune.spec.options import prefixed, string

log = logging.getLogger(__name__)


def option_names(options: type) -> list[str]:
    """The keys a pruning rule's ``Options`` (a dataclass) takes under ``pruning:``."""
    return [f.name for f in dataclasses.fields(options)]


def pruning_spec(value: Any, epochs: int) -> PruningSpec:
    """``pruning:``: a rule, and that rule's own options (validated by its scheduler); an
    option of another rule is refused, naming the rule's own."""
    if isinstance(value, str):
        value = {"rule": value}
    raw = {} if value is None else value
    if not isinstance(raw, Mapping):
        raise SpecError(f"pruning: expected a mapping with a rule and its options, got "
                        f"{value!r}")
    rule = string(prefixed({"rule": raw.get("rule", "asha")}, "pruning"), "pruning.rule",
                  "asha", tuple(SCHEDULERS.names()))
    scheduler = SCHEDULERS.get(rule, field="pruning.rule")
    own = option_names(scheduler.Options)
    written = {}  # another rule's option at its default: what an older mltune wrote for all
    for key in raw:
        if key == "rule" or key in own:
            continue
        others = [name for name in SCHEDULERS.names()
                  if key in option_names(SCHEDULERS.get(name).Options)]
        if any(raw[key] == _defaults_of(name, epochs)[key] for name in others):
            written[key] = raw[key]
            continue
        whose = f" (an option of {', '.join(others)})" if others else ""
        raise SpecError(f"pruning.{key}: not an option of rule {rule}{whose}; {rule}'s "
                        f"options: {', '.join(own) or 'none'}")
    if written:
        log.warning("pruning: %s left out: options of other rules at their defaults, as an "
                    "older mltune wrote them; rule %s takes %s", ", ".join(
                        f"{k}: {v}" for k, v in written.items()), rule, ", ".join(own) or
                    "no options")
    options = scheduler.options(prefixed({k: v for k, v in raw.items()
                                          if k != "rule" and k not in written}, "pruning"),
                                epochs)
    return PruningSpec(rule, dataclasses.asdict(options))


def _defaults_of(rule: str, epochs: int) -> dict[str, Any]:
    """Rule ``rule``'s options at their defaults for a search of ``epochs`` (hyperband's
    ``max_epochs`` is the epochs), as that rule would build them."""
    scheduler = SCHEDULERS.get(rule)
    try:
        return dataclasses.asdict(scheduler.options({}, epochs))
    except SpecError:  # a rule that cannot run with these epochs: its plain defaults
        return {f.name: f.default for f in dataclasses.fields(scheduler.Options)}
