"""The spec reference: every key, its type, its default, what it allows, what it means.

Read from the code, never written by hand:

- the keys: the fields of ``SearchSpec`` and of its sections (``mltune/spec/model.py``), and the
  ``data:`` options each task declares (``Task.data_options``);
- the types: the fields' annotations; the meanings: the comments on the fields (a key without
  one gets a line from ``MEANINGS`` below);
- the defaults: a spec built from nothing (``build_spec({})``), and for the keys whose default
  depends on the task, one spec per task built from its example's ``data:``;
- what a key allows: the validator call that reads it (``integer(raw, "epochs", 10,
  minimum=1)`` in ``spec/build.py`` and the tasks), worded by the same ``Rule.describe`` that
  words the error; a key read without one is probed with a bad value and the error's
  "expected ..." is quoted.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import re
from pathlib import Path
from typing import Any

import yaml

from docs.gen.common import ROOT, code, field_comments, first_line, table, write

VALIDATORS = ("integer", "number", "non_negative", "fraction", "string", "one_of", "boolean",
              "optional_integer", "optional_positive", "column_list", "frequency")
# the examples whose ``data:`` a task's defaults are read with (text and timeseries have no
# built-in data set)
EXAMPLES = {"image": "digits", "text": "text", "timeseries": "timeseries", "tabular": "tabular"}
# for keys whose field carries no comment in spec/model.py
MEANINGS = {
    "name": "The search's name: the parent run's name.",
    "task": "What kind of problem: the task's data loading, default space, network and served "
            "model.",
    "data": "Where the data is and how it is split (the `data.*` keys below).",
    "metric": "What the search optimises: a metric every trial logs (the task's list).",
    "mode": "Whether a larger or a smaller `metric` is better (default: the direction the "
            "task declares for the metric).",
    "max_evals": "Trials in all; with `stop.time_budget_s` it may be null (time alone).",
    "algo": "The sampler that proposes each trial's hyperparameters.",
    "seed": "Seeds the splits (unless `data.split_seed`), the sampler and every trial.",
    "epochs": "Epochs per trial.",
    "device": "Where trials train: `auto` is CUDA when PyTorch sees a GPU, else the CPU.",
    "backend": "Where trials run: this process, or Ray workers.",
    "parallelism": "ray: Ray workers, each training one pack at a time (as many as the "
                   "cluster's CPUs and GPUs hold). Not read by the local backend: it runs a "
                   "pack loop per device (`device`).",
    "registered_model": "The registered model the best trial becomes a version of.",
    "space": "The hyperparameters: a literal or a distribution each, over the task's "
             "default space (keys given replace the default's).",
    "min_delta": "The least holdout improvement that moves the `champion` alias.",
    "data.source": "A built-in data set (`sklearn:digits`...) or a path: a CSV/parquet file, "
                   "a folder of images.",
    "data.target": "The column to predict (tabular, text) or to forecast (timeseries).",
    "data.text": "The text column (text).",
    "data.time": "The time column (timeseries, optional).",
    "data.horizon": "Steps forecast at once (timeseries).",
    "data.val_size": "The validation split: what trials are scored on.",
    "data.test_size": "The holdout split: never used to pick a trial; the promotion gate's.",
    "data.split_seed": "Seeds the splits and cv's folds instead of `seed`: searches of other "
                       "seeds then share their validation and holdout rows (not timeseries: "
                       "cut by time).",
}
PROBES = ("?", -1, "", [1], 10**9)
PROBE_FIRST = {"device", "pack"}  # read by a check of their own: the error words them best


def _modules() -> list[Path]:
    """Where spec keys are read with a validator: the spec's build, every task, every
    scheduler (each validates its own ``pruning:`` options)."""
    return [ROOT / "mltune" / "spec" / "build.py",
            *sorted((ROOT / "mltune" / "tasks").rglob("*.py")),
            *sorted((ROOT / "mltune" / "search" / "schedulers").glob("*.py"))]


def pruning_options() -> dict[str, dict[str, Any]]:
    """Every pruning rule's options (its scheduler's ``Options``), by name: the rules that
    take it, its default, type and comment."""
    import inspect

    from mltune.spec.catalogs import SCHEDULERS

    found: dict[str, dict[str, Any]] = {}
    for rule in SCHEDULERS.names():
        options = SCHEDULERS.get(rule).Options
        comments = field_comments(Path(inspect.getsourcefile(options) or ""), options.__name__)
        for f in dataclasses.fields(options):
            entry = found.setdefault(f.name, {"rules": [], "default": f.default,
                                              "type": f.type,
                                              "comment": comments.get(f.name, "")})
            entry["rules"].append(rule)
    return found


def _module_of(path: Path) -> Any:
    dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return importlib.import_module(dotted)


def _evaluate(node: ast.AST, namespace: dict[str, Any]) -> tuple[bool, Any]:
    try:
        return True, eval(compile(ast.Expression(node), "<spec>", "eval"), dict(namespace))
    except Exception:  # a local of the function (task.name, epochs): not a constant
        return False, None


def validated_keys() -> dict[str, dict[str, Any]]:
    """key -> {"allowed": wording, "default": (known, value, source)} for every validator
    call whose key is a string literal."""
    from mltune.spec.rules import Flag, Number, OneOf, Text, WholeNumber

    found: dict[str, dict[str, Any]] = {}
    for path in _modules():
        namespace = vars(_module_of(path))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in VALIDATORS and len(node.args) >= 2
                    and isinstance(node.args[1], ast.Constant)
                    and isinstance(node.args[1].value, str)):
                continue
            kind, key = node.func.id, node.args[1].value
            args = node.args[2:]
            kwargs, unknown = {}, []
            for kw in node.keywords:
                ok, value = _evaluate(kw.value, namespace)
                if ok:
                    kwargs[kw.arg] = value
                else:
                    unknown.append(f"{kw.arg} {ast.unparse(kw.value)}")
            default_node = args[0] if args and kind not in (
                "optional_integer", "optional_positive") else None
            if kind == "optional_integer" and args:
                kwargs["minimum"] = _evaluate(args[0], namespace)[1]
            if kind in ("string", "one_of") and len(args) >= 2:
                kwargs["allowed"] = _evaluate(args[1], namespace)[1]
            if kind == "integer":
                allowed = WholeNumber(kwargs.get("minimum"), kwargs.get("maximum"),
                                      unit=kwargs.get("unit", "")).describe()
            elif kind == "number":
                allowed = Number(kwargs.get("minimum"), kwargs.get("maximum"),
                                 kwargs.get("above"), kwargs.get("below"),
                                 unit=kwargs.get("unit", "")).describe()
            elif kind == "non_negative":
                allowed = Number(minimum=0).describe()
            elif kind == "fraction":
                allowed = Number(above=0, below=1).describe()
            elif kind in ("string", "one_of"):
                allowed = (OneOf.among(kwargs["allowed"]).describe() if kwargs.get("allowed")
                           else Text().describe())
            elif kind == "boolean":
                allowed = Flag().describe()
            elif kind == "optional_integer":
                allowed = WholeNumber(kwargs.get("minimum")).describe() + ", or null"
            elif kind == "optional_positive":
                allowed = Number(above=0, unit=kwargs.get("unit", "seconds")).describe() + \
                    ", or null"
            elif kind == "column_list":
                allowed = "a list of column names, or one"
            else:  # frequency
                allowed = ("a pandas offset alias (D, h, 15min, W-MON, MS...) or a "
                           "whole-number step, or null")
            if unknown:
                allowed += " (" + "; ".join(unknown) + ")"
            default = None
            if default_node is not None:
                simple = isinstance(default_node, (ast.Constant, ast.Name, ast.Attribute,
                                                   ast.UnaryOp))
                ok, value = _evaluate(default_node, namespace) if simple else (False, None)
                shown = ast.unparse(default_node)
                if isinstance(default_node, ast.Call):  # computed: say how, from its docstring
                    ok_f, func = _evaluate(default_node.func, namespace)
                    shown += ": " + first_line(func) if ok_f else ""
                default = (ok, value, shown)
            elif kind == "column_list":
                default = (True, [], "[]")
            found.setdefault(key, {"allowed": allowed, "default": default})
    return found


def probed(raw_key: str) -> str:
    """What a key allows, as the error for a bad value words it."""
    from mltune.core.errors import SpecError
    from mltune.spec.build import apply_overrides, build_spec

    for bad in PROBES:
        try:
            build_spec(apply_overrides({}, {raw_key: bad}))
        except SpecError as error:
            text = str(error)
            for word in ("expected ", "available: "):
                if word in text:
                    rest = re.sub(r",? got .*$", "", text.split(word, 1)[1])
                    return ("one of: " + rest) if word == "available: " else rest
        except Exception:  # noqa: S112  (a probe that breaks something else says nothing)
            continue
    return ""


def _default_of(spec: Any, key: str) -> Any:
    node = spec
    for part in key.split("."):
        node = getattr(node, part, None) if not isinstance(node, dict) else node.get(part)
    return node


def task_defaults() -> dict[str, Any]:
    """task -> the spec built from its example's ``task`` and ``data`` alone."""
    from mltune.core.errors import SpecError
    from mltune.spec.build import build_spec

    built = {}
    for task, example in EXAMPLES.items():
        raw = yaml.safe_load((ROOT / "examples" / f"{example}.yaml").read_text())
        try:  # the data set alone: every other key at its default
            built[task] = build_spec({"task": task, "data": {"source": raw["data"]["source"]}})
        except SpecError:  # a task that needs its columns named
            built[task] = build_spec({"task": task, "data": raw["data"]})
    return built


def rows() -> tuple[list[list[str]], dict[str, Any]]:
    """The reference's rows, and the specs per task."""
    from mltune.spec.build import TOP_LEVEL_KEYS, build_spec
    from mltune.spec.model import COMMON_DATA_KEYS, SearchSpec

    model_py = ROOT / "mltune" / "spec" / "model.py"
    comments = {**field_comments(model_py, "SearchSpec")}
    for section, cls in (("pruning", "PruningSpec"), ("stop", "StopSpec"), ("data", "DataSpec")):
        comments.update({f"{section}.{k}": v
                         for k, v in field_comments(model_py, cls).items()})
    types = {f.name: f.type for f in dataclasses.fields(SearchSpec)}
    nested = {"pruning": "PruningSpec", "stop": "StopSpec", "data": "DataSpec"}
    import mltune.spec.model as model

    for section, cls in nested.items():
        types.update({f"{section}.{f.name}": f.type
                      for f in dataclasses.fields(getattr(model, cls))})
    options = pruning_options()  # each rule's own
    for name, entry in options.items():
        types[f"pruning.{name}"] = entry["type"]
        comments[f"pruning.{name}"] = f"{', '.join(entry['rules'])}: {entry['comment']}"
    validated = validated_keys()
    plain = build_spec({})
    per_task = task_defaults()
    keys: list[str] = []
    for key in TOP_LEVEL_KEYS:
        if key in nested:
            fields = (COMMON_DATA_KEYS if key == "data" else ["rule", *options]
                      if key == "pruning" else
                      [f.name for f in dataclasses.fields(getattr(model, nested[key]))])
            keys += [f"{key}.{name}" for name in fields]
        else:
            keys.append(key)
    table_rows = []
    for key in keys:
        values = {t: _default_of(s, key) for t, s in per_task.items()}
        if key.startswith("data.") and key != "data.source" and len(
                {repr(v) for v in values.values()}) > 1:
            default = "`null`: the task's own (see its page)"
        elif key == "task":
            default = code(_default_of(plain, key))
        elif len({repr(v) for v in values.values()}) > 1 and key != "space":
            templates = {str(v).replace(t, "<task>") for t, v in values.items()}
            default = (code(templates.pop()) if len(templates) == 1 else "per task: " + ", ".join(
                f"{t} {code(v)}" for t, v in values.items()))
        elif key == "space":
            default = "the task's (see its page)"
        elif key == "pruning.max_epochs":
            default = "`epochs`"
        elif key.startswith("pruning.") and key[8:] in options:
            default = code(options[key[8:]]["default"])
        else:
            default = code(_default_of(plain, key))
        entry = validated.get(key)
        allowed = probed(key) if entry is None or key in PROBE_FIRST else entry["allowed"]
        meaning = MEANINGS.get(key) or comments.get(key, "")
        kind = str(types.get(key, "")).replace("Mapping[str, Any]", "mapping")
        table_rows.append([f"`{key}`", f"`{kind}`", default, allowed, meaning])
    return table_rows, per_task


def data_options() -> str:
    """Each task's own ``data:`` keys, with the defaults and rules of their validators."""
    from mltune.spec.tasks import TASKS

    validated = validated_keys()
    out = []
    for name in TASKS.names():
        task = TASKS.get(name)
        lines = []
        for option in task.data_options:
            entry = validated.get(f"data.{option}")
            if entry is None:
                lines.append([f"`data.{option}`", "", "read when the data loads: see the "
                              f"[{name} page](tasks/{name}.md)"])
                continue
            default = entry["default"]
            shown = ("`null`" if default is None else code(default[1]) if default[0]
                     else f"`{default[2]}`")
            lines.append([f"`data.{option}`", shown, entry["allowed"]])
        out.append(f"### {name}\n\n" + table(["key", "default", "allowed"], lines))
    return "\n".join(out)


def main() -> None:
    table_rows, per_task = rows()
    write("spec-keys.md", table(["key", "type", "default", "allowed", "meaning"], table_rows))
    write("spec-data-options.md", data_options())
    defaults = table(["task", "name", "metric", "mode", "registered_model", "data.source"],
                     [[f"`{t}`", code(s.name), code(s.metric), code(s.mode),
                       code(s.registered_model), code(s.data.source)]
                      for t, s in per_task.items()])
    write("spec-task-defaults.md", defaults)


