"""The search spec: one YAML file, overridable key by key, validated into frozen dataclasses.

Everything a search needs is decided here, at the edge; the rest of mltune receives a
``SearchSpec`` and never a raw dict or argparse namespace. Every rejection names the field, the
value received and what is allowed.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from mltune.core.errors import SpecError
from mltune.spec.catalogs import BACKENDS, SAMPLERS, SCHEDULERS
from mltune.spec.model import (
    COMMON_DATA_KEYS,
    NOT_A_KEY,
    DataSpec,
    SearchSpec,
    SpecOrigin,
    StopSpec,
)
from mltune.spec.options import (
    boolean,
    fraction,
    integer,
    non_negative,
    number,
    optional_integer,
    optional_positive,
    prefixed,
    section,
    string,
)
from mltune.spec.pruning import option_names, pruning_spec
from mltune.spec.rules import check_space
from mltune.spec.space import build_space
from mltune.spec.start import check_start, check_warm_start
from mltune.spec.tasks import TASKS

log = logging.getLogger(__name__)
MODES = ("max", "min")
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")
_LISTED_DEVICE = re.compile(r"^(cpu|cuda:\d+|mps)$")  # an entry of a list: one device each
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


TOP_LEVEL_KEYS = tuple(f.name for f in SearchSpec.__dataclass_fields__.values()
                       if f.metadata != NOT_A_KEY)
RENAMED = {"gpus_per_trial": "gpus_per_worker"}  # old key -> new: still read, with a notice


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a spec file; a missing file or malformed YAML is a SpecError."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"config: file {str(path)!r} does not exist")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"config: {str(path)!r} is not valid YAML{where}: {problem}") from None
    except UnicodeDecodeError:
        raise SpecError(f"config: {str(path)!r} is not UTF-8 text") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SpecError(f"config: {str(path)!r} must hold a mapping of keys, got {raw!r}")
    return raw


def apply_overrides(raw: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Set dotted keys (``space.dropout``) in a copy of the raw spec."""
    merged = copy.deepcopy(raw)
    for dotted, value in overrides.items():
        node = merged
        *parents, leaf = dotted.split(".")
        for i, part in enumerate(parents):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                where = ".".join(parents[: i + 1])
                raise SpecError(f"{dotted}: {where} is {child!r}, not a mapping",
                                field="overrides")
            node = child
        node[leaf] = value
    return merged


def _data_spec(raw: Any, task: Any) -> DataSpec:
    if raw is None:
        raw = {}
    if isinstance(raw, str):
        raw = {"source": raw}
    if not isinstance(raw, Mapping):
        raise SpecError(f"data: expected a mapping with at least 'source', got {raw!r}")
    raw, references = expand_references(raw)
    allowed = COMMON_DATA_KEYS + tuple(task.data_options)
    for key in raw:
        if key not in allowed:
            raise SpecError(
                f"data.{key}: unknown key for task {task.name!r}; allowed: {', '.join(allowed)}"
            )
    source = raw.get("source", task.default_source)
    if not isinstance(source, str) or not source:
        raise SpecError(f"data.source: expected a built-in name or a path, got {source!r}")
    fields = prefixed(raw, "data")
    val_size = fraction(fields, "data.val_size", 0.15)
    test_size = fraction(fields, "data.test_size", 0.15)
    if val_size + test_size >= 0.9:
        raise SpecError(
            f"data.val_size + data.test_size: {val_size + test_size:g} leaves too little to "
            "train on; expected a sum below 0.9"
        )
    horizon = optional_integer(fields, "data.horizon", minimum=1)
    split_seed = optional_integer(fields, "data.split_seed", minimum=0)
    if split_seed is not None and not task.random_split:
        raise SpecError(f"data.split_seed: {split_seed}: task {task.name!r} cuts its splits by "
                        "time, nothing is drawn at random; remove the key")
    for key in ("target", "text", "time"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise SpecError(f"data.{key}: expected a column name, got {raw[key]!r}")
    options = {k: v for k, v in raw.items() if k not in COMMON_DATA_KEYS}
    return DataSpec(
        source=source,
        target=raw.get("target"),
        text=raw.get("text"),
        time=raw.get("time"),
        horizon=horizon,
        val_size=val_size,
        test_size=test_size,
        split_seed=split_seed,
        options=options,
        references=references,
    )


def expand_references(raw: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """``${VAR}`` in the string values of ``data:`` -> the environment's value.

    Returns the expanded mapping and, per key, the text as written: that is what the search
    logs (params, spec.yaml, the model's metadata), so a path or URL can carry a secret from
    the environment without it reaching the tracking server.
    """

    expanded, references = dict(raw), {}
    for key, value in raw.items():
        if not isinstance(value, str) or not _REFERENCE.search(value):
            continue
        for name in _REFERENCE.findall(value):
            if name not in os.environ:
                raise SpecError(f"data.{key}: environment variable {name} is not set "
                                f"(referenced as ${{{name}}} in {value!r})")
        expanded[key] = _REFERENCE.sub(lambda m: os.environ[m.group(1)], value)
        references[key] = value
    return expanded, references


def stored_spec(raw: Mapping[str, Any]) -> SearchSpec:
    """A spec as a parent run keeps it (``spec.yaml``), whichever mltune wrote it: before each
    pruning rule owned its options, every rule's were written; the other rules' are dropped
    here (they never took effect), then the spec is built as any."""
    pruning = raw.get("pruning")
    if isinstance(pruning, Mapping):
        rule = pruning.get("rule", "asha")
        if rule in SCHEDULERS:
            own = option_names(SCHEDULERS.get(rule).Options)
            raw = {**raw, "pruning": {k: v for k, v in pruning.items()
                                      if k == "rule" or k in own}}
    return build_spec(raw)


def _check_keys(raw: Mapping[str, Any]) -> None:
    """Every top-level key known; ``${VAR}`` only where it is expanded (``data:``)."""
    for key in raw:
        if key not in TOP_LEVEL_KEYS and key not in RENAMED:
            near = difflib.get_close_matches(str(key), TOP_LEVEL_KEYS, n=1, cutoff=0.6)
            hint = f"did you mean {near[0]}? Allowed" if near else "allowed"
            raise SpecError(f"{key}: unknown key; {hint}: {', '.join(TOP_LEVEL_KEYS)}")
        if key != "data" and isinstance(raw[key], str) and _REFERENCE.search(raw[key]):
            raise SpecError(f"{key}: {raw[key]!r}: environment references (${{VAR}}) are "
                            "expanded only in data: values; MLflow shows this one as written")


def _metric(raw: Mapping[str, Any], task: Any, data: DataSpec) -> tuple[str, str]:
    """``metric`` (one the task logs) and ``mode`` (by default the metric's declared
    direction)."""
    metric = string(raw, "metric", task.default_metric)
    logged = task.metrics(data)
    if metric not in logged:
        raise SpecError(f"metric: {metric!r} is not logged by task {task.name!r}; available: "
                        f"{', '.join(logged)}")
    return metric, string(raw, "mode", logged[metric].value, MODES)


def _user_space(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SpecError(f"space: expected a mapping of hyperparameters, got {value!r}")
    return value


def build_spec(raw: Mapping[str, Any]) -> SearchSpec:
    """Validate a raw spec (YAML with overrides applied) into a SearchSpec. The space's key
    names are checked once the network is known (``Task.check_space_names``): from Python, a
    spec may be built before the network it is for (``mltune.tune(spec, model=build)``)."""
    _check_keys(raw)
    task = TASKS.get(raw.get("task", "image"), field="task")
    data = _data_spec(raw.get("data"), task)
    task = task.for_data(data)  # defaults that depend on the data (tabular: problem type)
    model = raw.get("model")
    task = task.for_model(model)  # its default space and rules (a user's: training only)
    user_space = _user_space(raw.get("space") or {})
    space = {**task.default_space(), **user_space}
    built = build_space(space)  # validates every distribution now, before anything runs
    check_space(space, task.param_rules())  # and every value it can produce
    data = task.resolve_data(data, space)
    metric, mode = _metric(raw, task, data)
    stop = _stop_spec(raw.get("stop"))
    max_evals = _max_evals(raw, stop)
    start = check_start(raw.get("start"), built, max_evals)
    device = _device("auto" if raw.get("device") in (None, "") else raw["device"],
                     raw.get("backend"))
    return SearchSpec(
        name=string(raw, "name", f"{task.name}-search"),
        task=task.name,
        data=data,
        metric=metric,
        mode=mode,
        max_evals=max_evals,
        algo=string(raw, "algo", "tpe", SAMPLERS.names()),
        seed=integer(raw, "seed", 0, minimum=0),
        epochs=integer(raw, "epochs", 10, minimum=1),
        device=device,
        backend=string(raw, "backend", "local", BACKENDS.names()),
        parallelism=integer(raw, "parallelism", 1, minimum=1),
        registered_model=string(raw, "registered_model", f"mltune-{task.name}"),
        space=space,
        min_delta=non_negative(raw, "min_delta", 0.0),
        patience=optional_integer(raw, "patience", minimum=1),
        trial_timeout_s=optional_positive(raw, "trial_timeout_s"),
        pruning=pruning_spec(raw.get("pruning"), integer(raw, "epochs", 10, minimum=1)),
        stop=stop,
        precision=string(raw, "precision", "auto", PRECISIONS),
        compile=boolean(raw, "compile", False),
        pack=_pack(raw.get("pack", "auto")),
        cv=optional_integer(raw, "cv", minimum=2),
        refit=boolean(raw, "refit", raw.get("cv") is not None),
        ensemble=optional_integer(raw, "ensemble", minimum=1),
        **_ray_keys(raw, device),
        model=model,
        start=start,
        warm_start=check_warm_start(raw.get("warm_start", "auto")),
        space_given=tuple(str(k) for k in user_space),
    )


def with_model(spec: SearchSpec, model: Any) -> SearchSpec:
    """``spec`` for another network (``mltune.tune(spec, model=build)``): the space the spec
    gave over the new network's defaults, checked again by its rules."""
    raw = spec.to_dict()
    raw["space"] = {key: spec.space[key] for key in spec.space_given}
    raw["model"] = model
    return dataclasses.replace(build_spec(raw), origin=spec.origin)


def _device(value: Any, backend: Any) -> str:
    """``device``: one name, or a list of devices (YAML ``[cuda:0, cuda:2]``, or the same
    comma-separated from the CLI), one pack loop each; kept as one comma-separated string."""
    allowed = ("expected auto, cpu, cuda (every GPU), cuda:N, mps, or a list of cpu / cuda:N "
               "entries ([cuda:0, cuda:2]; [cpu, cpu]: two pack loops on the CPU)")
    if isinstance(value, str) and "," not in value:
        if not _DEVICE.match(value.strip()):
            raise SpecError(f"device: {value!r} is not allowed; {allowed}")
        return value.strip()
    entries = value.split(",") if isinstance(value, str) else value
    if not isinstance(entries, (list, tuple)) or not entries:
        raise SpecError(f"device: {value!r} is not allowed; {allowed}")
    for entry in entries:
        if not isinstance(entry, str) or not _LISTED_DEVICE.match(entry.strip()):
            raise SpecError(f"device: entry {entry!r} of {list(entries)!r} is not allowed; "
                            f"{allowed}")
    if len(entries) > 1 and backend not in (None, "local"):
        raise SpecError(f"device: {list(entries)!r} with backend {backend!r} is not allowed; "
                        "a list of devices is for backend local (a Ray worker trains on the "
                        "GPU Ray gives it)")
    return ",".join(entry.strip() for entry in entries)


def _pack(value: Any) -> int | str:
    """``pack``: ``auto`` (sized by the device) or how many trials train at once (1: off)."""
    if value == "auto":
        return value
    if isinstance(value, str) and value.strip().isdigit():  # a CLI flag or MLproject parameter
        value = int(value)
    if isinstance(value, str):
        raise SpecError(f"pack: {value!r} is not allowed; expected auto or a whole number >= 1 "
                        "(1: one trial at a time)")
    return integer({"pack": value}, "pack", 1, minimum=1)


def _ray_keys(raw: Mapping[str, Any], device: str) -> dict[str, Any]:
    """Resources per Ray worker and the cluster to join (used by ``backend: ray``)."""
    cpus = number(raw, "cpus_per_trial", 1, above=0)
    key = "gpus_per_worker"
    if "gpus_per_trial" in raw:  # the key before workers trained packs
        if "gpus_per_worker" in raw:
            raise SpecError("gpus_per_trial: given with gpus_per_worker, which replaces it; "
                            "keep gpus_per_worker alone")
        key = "gpus_per_trial"
        log.warning("gpus_per_trial is now gpus_per_worker (each Ray worker trains packs); "
                    "read as gpus_per_worker: %s", raw[key])
    gpus = raw.get(key, 0)
    if isinstance(gpus, bool) or not isinstance(gpus, (int, float)) or gpus < 0 or (
            gpus > 1 and not float(gpus).is_integer()):
        raise SpecError(f"{key}: {gpus!r} is not allowed; expected a number >= 0, "
                        "a fraction up to 1 (0.5: two workers share a GPU) or a whole number")
    if raw.get("backend") == "ray" and device.startswith("cuda") and not gpus:
        raise SpecError(f"device: {device!r} with backend ray needs gpus_per_worker > 0 "
                        "(Ray gives a worker a GPU only when it reserves one)")
    address = raw.get("ray_address")
    if address is not None and (not isinstance(address, str) or not address.strip()):
        raise SpecError(f"ray_address: {address!r} is not allowed; expected auto, host:port "
                        "or ray://host:port (or leave it out to start a local Ray)")
    return {"cpus_per_trial": float(cpus), "gpus_per_worker": float(gpus),
            "ray_address": address.strip() if address else None}


PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def _max_evals(raw: Mapping[str, Any], stop: StopSpec) -> int | None:
    """``max_evals``: trials in all (20 by default); with a time budget (``stop.time_budget_s``)
    it may be left out or null: the budget is then time alone (None)."""
    if raw.get("max_evals") is None:
        if stop.time_budget_s is not None:
            return None
        if "max_evals" in raw:
            raise SpecError("max_evals: null (no trial limit) needs a time budget "
                            "(stop.time_budget_s, --time-budget); expected a whole number >= 1")
    return integer(raw, "max_evals", 20, minimum=1)


def _stop_spec(value: Any) -> StopSpec:
    raw = section(value, "stop", tuple(StopSpec.__dataclass_fields__))
    target = raw.get("stop.target")
    if target is not None and (isinstance(target, bool) or not isinstance(target, (int, float))):
        raise SpecError(f"stop.target: expected a number, got {target!r}")
    return StopSpec(
        no_improvement=optional_integer(raw, "stop.no_improvement", minimum=1),
        time_budget_s=optional_positive(raw, "stop.time_budget_s"),
        target=None if target is None else float(target),
    )


def load_spec(
    config: str | Path | None = None, overrides: Mapping[str, Any] | None = None
) -> SearchSpec:
    """Read ``config`` (or start from the defaults), apply dotted overrides, validate."""
    raw = read_yaml(config) if config else {}
    spec = build_spec(apply_overrides(raw, overrides or {}))
    origin = SpecOrigin(str(config) if config else None, dict(overrides or {}))
    return dataclasses.replace(spec, origin=origin)
