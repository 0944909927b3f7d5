"""The files a logged model is made of, none of them a pickle.

A model that unpickles runs whatever code its author put in it on every machine that loads it
(a serving host, the promotion gate), so mltune writes only data a loader reads without
executing anything: the settings that rebuild the network as JSON (``settings.json``: params,
the task's metadata, an ensemble's weights), the weights as safetensors (one file per network),
and a task's fitted objects (the tabular preprocessor) as skops files whose every type must be
on a list fixed in mltune's code (``BASIC_TYPES`` and the task's ``artifact_types``): the list
is checked before the object is built, never taken from the file. They lie in one folder, one
MLflow artifact (``FILES``): MLflow copies each artifact of a model in several steps, and a
folder is copied once.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import weakref
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_model, save_model

from mltune.core.errors import MltuneError

FILES = "mltune"  # the one artifact (a folder) that holds the files below
SETTINGS = "settings"  # settings.json
WEIGHTS = "weights"  # a network's weights: weights.safetensors (an ensemble's weights.<i>.*)
TASK_ARTIFACT = "task."  # prefix of a task's own objects' names (<name>.skops in the folder)
PICKLE_START = 0x80  # the first byte of a pickle stream (protocol 2 and later)

# Data types any skops file of mltune's may hold besides a task's own: containers, scalars,
# numpy arrays and dtypes. Nothing here runs code when it is built.
BASIC_TYPES = frozenset({
    *(f"builtins.{name}" for name in ("dict", "list", "tuple", "str", "int", "float", "bool",
                                      "NoneType", "slice", "bytes")),
    *(f"numpy.{name}" for name in ("ndarray", "dtype", "float16", "float32", "float64",
                                   "int8", "int16", "int32", "int64", "uint8", "bool_",
                                   "object_", "str_")),
})


class ModelFileError(MltuneError):
    """A file of a logged model cannot be used: a type off the trusted list, a value that is
    not plain data."""


# -- settings: plain JSON ------------------------------------------------------------------------

def _plain(value: Any) -> Any:
    """JSON for the few non-JSON values a task's metadata may hold (numpy scalars, dates)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    raise ModelFileError(f"model settings: a {type(value).__name__} value ({value!r:.60}) is "
                         "not plain data (JSON); a task's metadata holds only JSON values")


def write_settings(settings: Mapping[str, Any], folder: str) -> str:
    """``settings`` as ``folder/settings.json``; returns its path."""
    path = os.path.join(folder, f"{SETTINGS}.json")
    text = json.dumps(settings, default=_plain, ensure_ascii=False)  # json.dump: 10x slower
    with open(path, "w", encoding="utf-8") as file:
        file.write(text)
    return path


def read_settings(folder: str) -> dict[str, Any]:
    with open(os.path.join(folder, f"{SETTINGS}.json"), encoding="utf-8") as file:
        return json.load(file)


def task_files(folder: str) -> dict[str, str]:
    """The task's object files of a model's folder, by name (``task.<name>``) -> path."""
    return {f"{TASK_ARTIFACT}{path.stem}": str(path)
            for path in sorted(Path(folder).glob("*.skops"))}


# -- weights: safetensors ------------------------------------------------------------------------

def write_weights(network: torch.nn.Module, path: str) -> str:
    """The network's state (weights and buffers, on whatever device) as a safetensors file.

    Its first eight bytes are the header's length: when that length would start the file with
    the byte a pickle starts with, a metadata entry pads the header, so that no file of a
    model looks like a pickle to a scanner (or to the tests)."""
    metadata = {"format": "pt"}
    save_model(network, path, metadata=dict(metadata))
    pad = 1
    while _first_byte(path) == PICKLE_START:
        save_model(network, path, metadata={**metadata, "pad": " " * pad})
        pad += 1
    return path


def _first_byte(path: str) -> int:
    with open(path, "rb") as file:
        return file.read(1)[0]


def read_weights(network: torch.nn.Module, path: str) -> torch.nn.Module:
    """``network`` with the weights of ``path`` (kept on the CPU)."""
    missing, unexpected = load_model(network, path, strict=False, device="cpu")
    if missing or unexpected:
        raise ModelFileError(f"{os.path.basename(path)}: the weights do not fit the network "
                             f"rebuilt from the model's settings (missing: "
                             f"{', '.join(sorted(missing)) or 'none'}; unexpected: "
                             f"{', '.join(sorted(unexpected)) or 'none'})")
    return network


# -- a task's fitted objects: skops, with a fixed trusted list ------------------------------------

def type_names(types: Iterable[Any]) -> frozenset[str]:
    """Classes and functions as skops names them: ``module.name``."""
    return frozenset(f"{t.__module__}.{t.__qualname__}" for t in types)


def types_in(file: str | io.BytesIO) -> set[str]:
    """Every type a skops file names (each node of its schema), without building anything."""
    with zipfile.ZipFile(file) as archive:
        schema = json.loads(archive.read("schema.json"))
    found: set[str] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "__class__" in node:
                found.add(f"{node.get('__module__')}.{node['__class__']}")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _untrusted(file: str | io.BytesIO, trusted: frozenset[str]) -> list[str]:
    return sorted(types_in(file) - BASIC_TYPES - trusted)


# A search logs the same fitted objects with every trial: each is serialised and checked once
# (by identity, while it lives), then written as bytes. At most a few searches' worth.
_SERIALISED: dict[int, tuple[weakref.ref, bytes]] = {}
_KEPT = 8


def _skops_bytes(name: str, value: Any, trusted: frozenset[str]) -> bytes:
    import skops.io

    cached = _SERIALISED.get(id(value))
    if cached is not None and cached[0]() is value:
        return cached[1]
    data = skops.io.dumps(value, compression=zipfile.ZIP_DEFLATED)  # a tenth of the size
    untrusted = _untrusted(io.BytesIO(data), trusted)
    if untrusted:
        raise ModelFileError(f"{name}: holds {', '.join(untrusted)}, which the served "
                             "model would refuse to load (off its task's trusted list)")
    while len(_SERIALISED) >= _KEPT:
        _SERIALISED.pop(next(iter(_SERIALISED)), None)
    try:
        _SERIALISED[id(value)] = (weakref.ref(value), data)
    except TypeError:  # an object without weak references: serialised each time
        pass
    return data


def save_task_artifacts(objects: Mapping[str, Any], folder: str,
                        trusted: frozenset[str]) -> dict[str, str]:
    """Write a task's extra objects as skops files; return MLflow artifact names -> paths.

    A type the loader would refuse is refused here already, when the model is logged."""
    paths = {}
    for name, value in objects.items():
        path = os.path.join(folder, f"{name}.skops")
        with open(path, "wb") as file:
            file.write(_skops_bytes(name, value, trusted))
        paths[f"{TASK_ARTIFACT}{name}"] = path
    return paths


def load_task_artifacts(artifacts: Mapping[str, str], trusted: frozenset[str]) -> dict[str, Any]:
    """The task's objects back from the model's skops files, under their own names; a file
    that names any type off the trusted list is refused before anything is built."""
    import skops.io

    objects = {}
    for key, path in artifacts.items():
        if not key.startswith(TASK_ARTIFACT):
            continue
        untrusted = _untrusted(path, trusted)
        if untrusted:
            raise ModelFileError(f"{os.path.basename(path)}: refused to load: it holds "
                                 f"{', '.join(untrusted)}, off mltune's trusted list for this "
                                 "task; the file was not written by mltune (re-log the model "
                                 "from a trusted run)")
        objects[key[len(TASK_ARTIFACT):]] = skops.io.load(
            path, trusted=sorted(BASIC_TYPES | trusted))
    return objects
