"""The search spec as frozen dataclasses: what a search is, built once at the edge.

Everything a search needs is decided when the spec is built (``mltune.spec.build``); the rest of
mltune receives a ``SearchSpec`` and never a raw dict or argparse namespace.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import yaml

from mltune.core.terms import Direction

COMMON_DATA_KEYS = ("source", "target", "text", "time", "horizon", "val_size", "test_size",
                    "split_seed")
NOT_A_KEY = {"spec_key": False}  # metadata of a SearchSpec field that no spec file can set
# The trials a search bounded by time alone (no max_evals) plans for: its samplers' random
# start-up (a quarter: 10, Optuna's default) and an ``auto`` pack's size are sized from it.
TIME_ONLY_TRIALS = 40


def model_name(model: Any) -> str | None:
    """``model:`` as text: a family or a reference as written; a callable given from Python
    as ``module:qualname`` (``__main__:build``)."""
    if model is None or isinstance(model, str):
        return model
    module = getattr(model, "__module__", None) or "__main__"
    name = getattr(model, "__qualname__", None) or getattr(model, "__name__", None)
    return f"{module}:{name or type(model).__name__}"


@dataclass(frozen=True)
class DataSpec:
    """Where the data is and how it is split; task-specific keys live in ``options``."""

    source: str
    target: str | None = None
    text: str | None = None
    time: str | None = None
    horizon: int | None = None
    val_size: float = 0.15
    test_size: float = 0.15
    # seeds the drawn splits (and cv's folds); None: the search's ``seed``. Fixed, searches of
    # other seeds share their validation and holdout rows (the gate compares on rows neither
    # model trained on; a warm start's told scores were earned on the same rows)
    split_seed: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    references: Mapping[str, str] = field(default_factory=dict)  # key -> "${VAR}..." as written

    def shown(self, value: Any) -> Any:
        """``value`` as it may be logged: an expanded ``${VAR}`` goes back to its reference."""
        for key, template in self.references.items():
            expanded = getattr(self, key) if key in COMMON_DATA_KEYS else self.options.get(key)
            if isinstance(value, str) and value == expanded:
                return template
        return value


@dataclass(frozen=True)
class PruningSpec:
    """Stopping losing trials early (or copying winners: pbt), judged across trials on the
    search's metric. Each rule owns its options (``mltune.search.schedulers``: its
    ``Options``), validated when the spec is built; here as plain values, so a spec is JSON."""

    rule: str = "asha"  # none | median | asha | hyperband | pbt (asha: benchmarks/anytime.py)
    options: Mapping[str, Any] = field(default_factory=dict)  # the rule's own, defaults filled

    def option(self, name: str) -> Any:
        """One of the rule's options (None when the rule has no such option)."""
        return self.options.get(name)


@dataclass(frozen=True)
class StopSpec:
    """When the whole search stops before ``max_evals``."""

    no_improvement: int | None = None  # trials in a row without a new best
    time_budget_s: float | None = None  # wall-clock seconds for the search
    target: float | None = None  # a metric value good enough to stop at


@dataclass(frozen=True)
class SpecOrigin:
    """How a spec was made: its file and the overrides applied over it (``load_spec``). A
    parent run keeps it (tag ``mltune.started_with``), so the command printed to resume a
    search repeats every override it was started with: copied, it resumes the same search."""

    config: str | None = None  # the spec file as given; None: every key at its default
    overrides: Mapping[str, Any] = field(default_factory=dict)  # dotted key -> value

    def to_json(self) -> str:
        return json.dumps({"config": self.config, "overrides": dict(self.overrides)},
                          default=str)

    @classmethod
    def from_json(cls, text: str | None) -> SpecOrigin | None:
        """The origin a run's tag holds; None for none, or one no mltune wrote."""
        try:
            found = json.loads(text) if text else None
            return cls(found.get("config"), dict(found.get("overrides") or {}))
        except (ValueError, TypeError, AttributeError):
            return None

    def arguments(self, flags: Mapping[str, str]) -> list[str]:
        """Command-line arguments that make the spec again: ``--config FILE``, then each
        override as its flag where ``flags`` (key -> flag) has one, else ``--set key=value``
        (values as YAML, which ``--set`` reads back to the same value)."""
        args = ["--config", self.config] if self.config else []
        for key, value in self.overrides.items():
            flag = flags.get(key)
            if flag is not None and isinstance(value, (str, int, float)) and str(value):
                args += [flag, yaml_value(value) if isinstance(value, bool) else str(value)]
            else:
                args += ["--set", f"{key}={yaml_value(value)}"]
        return args


def yaml_value(value: Any) -> str:
    """``value`` as one line of YAML flow text: ``30``, ``true``, ``{uniform: [0, 0.3]}``."""
    text = yaml.safe_dump(value, default_flow_style=True, width=2**20, sort_keys=False).strip()
    return text[:-4] if text.endswith("\n...") else text  # a scalar's end-of-document mark


@dataclass(frozen=True)
class SearchSpec:
    """A validated search: what to tune, on which data, for how long, where to log it."""

    name: str
    task: str
    data: DataSpec
    metric: str
    mode: str
    max_evals: int | None  # None: no trial limit, the time budget (stop.time_budget_s) alone
    algo: str
    seed: int
    epochs: int
    device: str  # auto | cpu | cuda (every GPU) | cuda:N | mps | cuda:0,cuda:2 (a list)
    backend: str
    parallelism: int
    registered_model: str
    space: Mapping[str, Any]
    min_delta: float = 0.0
    patience: int | None = None  # early stopping: epochs without improvement of the metric
    trial_timeout_s: float | None = None  # a trial running longer fails
    pruning: PruningSpec = field(default_factory=PruningSpec)
    stop: StopSpec = field(default_factory=StopSpec)
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (mixed precision on the device)
    compile: bool = False  # torch.compile each trial's network (costs compile time per trial)
    pack: int | str = "auto"  # trials trained at once as one fused network: auto | N (1: off)
    # cross-validation (``mltune.search.packs.folds``): each trial trains and is scored on k
    # folds of train + validation as k members of one pack, judged on the fold mean; None: off
    cv: int | None = None
    # after the search: the best configuration trained again on train + validation for its
    # trial's epochs, and that model registered and gated instead of the trial's (default:
    # on with cv, off without)
    refit: bool = False
    # after the search: the registered model averages up to N trials chosen by greedy
    # ensemble selection (``mltune.search.selection.ensemble``); None or 1: off (the best
    # trial's model alone)
    ensemble: int | None = None
    cpus_per_trial: float = 1.0  # ray: CPUs each worker reserves (fractions allowed)
    # ray: GPUs each worker reserves (it trains packs on them); 0.5 -> two workers per GPU.
    # Read from the old key ``gpus_per_trial`` too
    gpus_per_worker: float = 0.0
    ray_address: str | None = None  # ray: None starts a local Ray; "auto" / "host:port" joins
    # the network: None (the task's own family), a family's name, a reference to the user's
    # callable (``nets.py:build``, ``pkg.mod:build``) or, from Python, the callable itself
    model: Any = None
    # the points trained first (``mltune.spec.start``): None, the task's defaults; a tuple of
    # partial points as written (completed from the defaults); () none
    start: tuple[Mapping[str, Any], ...] | None = None
    # what the search learns from earlier searches of the same problem in the tracking store
    # (``mltune.search.history.priors``): ``auto`` (the matching searches of its experiment),
    # ``off`` (a cold search), or the parent run ids and search names to learn from
    warm_start: str | tuple[str, ...] = "auto"
    # the space keys the spec gave; the others came from the defaults of the network
    space_given: tuple[str, ...] = field(default=(), compare=False, metadata=NOT_A_KEY)
    # the file and overrides it was made from (``load_spec``): what a resume command repeats
    origin: SpecOrigin | None = field(default=None, compare=False, metadata=NOT_A_KEY)

    @property
    def planned_trials(self) -> int:
        """The trials a search plans for: ``max_evals``, or, bounded by time alone, a nominal
        ``TIME_ONLY_TRIALS`` (what a sampler's random start-up and an ``auto`` pack size are
        sized from; the search itself runs until the time budget is spent)."""
        return self.max_evals if self.max_evals is not None else TIME_ONLY_TRIALS

    @property
    def split_seed(self) -> int:
        """What seeds the drawn splits and folds: ``data.split_seed``, else ``seed``."""
        return self.seed if self.data.split_seed is None else self.data.split_seed

    @property
    def gpus_per_trial(self) -> float:
        """The old name of ``gpus_per_worker``, for code written against it."""
        return self.gpus_per_worker

    @property
    def direction(self) -> Direction:
        """``mode`` as the enum that compares values (``better``, ``as_loss``...)."""
        return Direction(self.mode)

    def to_dict(self) -> dict[str, Any]:
        """The spec in its YAML form: ``load_spec`` of it gives this spec back.

        It is what the parent run keeps as ``spec.yaml``, so a search can be re-read later
        (promotion re-loads the holdout split from it).
        """
        values = json.loads(json.dumps(asdict(replace(self, model=model_name(self.model)))))
        for name, spec_field in self.__dataclass_fields__.items():
            if spec_field.metadata == NOT_A_KEY:
                values.pop(name)
        data = values.pop("data")
        options, references = data.pop("options"), data.pop("references")
        merged = {**data, **options, **references}  # ${VAR} as written, never its value
        values["data"] = {k: v for k, v in merged.items() if v is not None}
        values["stop"] = {k: v for k, v in values["stop"].items() if v is not None}
        pruning = values.pop("pruning")  # a rule and its options, as one section
        values["pruning"] = {"rule": pruning["rule"],
                             **{k: v for k, v in pruning["options"].items() if v is not None}}
        kept = {k: v for k, v in values.items() if v is not None}
        if self.max_evals is None:  # written as null: its absence would read as the default
            kept["max_evals"] = None
        return kept

    def fingerprint(self) -> str:
        """A short hash of the whole spec, for lineage tags."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]
