"""The network a search tunes: a built-in family, or the user's own callable.

``model:`` in the spec names it: a family of ``FAMILIES`` (``cnn``), a file and a callable in it
(``nets/small_resnet.py:build``) or a module path (``mypkg.nets:SmallResNet``); from Python,
``mltune.tune(spec, model=build)`` gives the callable itself. Whatever the form, the callable
has a family builder's signature: ``build(params, data) -> nn.Module`` (``data``: the task's
description, ``mltune.models.description``).

A reference is only checked for its form when the spec is built (so the promotion gate can
re-read a spec whose file is gone); ``load`` imports it, before any run opens. A logged model
keeps the network by reference (``Network.reference``: ``nets.py:build`` or ``pkg.mod:build``)
and carries the user's source files among its ``code_paths`` (``code``); ``load_served``
resolves the reference by name in that folder when the model loads, so nothing of the user's
is pickled into a model. A callable that cannot be found by name again (one of ``__main__``, a
lambda, a function defined inside another) is refused when the search starts, not when its
model is loaded a week later. Ray workers still receive the callable pickled by value
(cloudpickle): that is a transfer between processes of one search, never a file.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import cloudpickle
from torch import nn

from mltune.core.errors import SpecError
from mltune.models.families import FAMILIES, NetworkBuilder
from mltune.models.user_code import MLTUNE_DIR, installed, one_line, where_line
from mltune.spec.model import model_name
from mltune.spec.rules import Rule

FORMS = "file.py:callable or package.module:callable"
MAIN_REFUSED = ("a callable of __main__ (a script or a notebook) cannot be found by name when "
                "its model loads; put it in a .py file and give model: file.py:callable (from "
                "Python: import it from that file)")
USER_MODULES = "mltune_user_network"  # prefix of the private name a user's file is imported as


@dataclass(frozen=True)
class Network:
    """A network of a task: a family's (``family``) or the user's (``family`` is None).

    ``build`` is None for a user's reference not loaded yet. ``code``: source files (path
    relative to the model's code folder -> bytes) that travel with every logged model.
    ``reference``: how a logged model finds ``build`` in that folder (``nets.py:build``,
    ``pkg.mod:build``); set once the callable is loaded.
    """

    name: str
    build: NetworkBuilder | None = None
    family: str | None = None
    rules: Mapping[str, Rule] = field(default_factory=dict)
    code: Mapping[str, bytes] = field(default_factory=dict)
    reference: str | None = None

    @property
    def user(self) -> bool:
        return self.family is None

    @property
    def declared(self) -> tuple[str, ...] | None:
        """A user's network: the hyperparameters its callable declares as an attribute,
        ``build.hyperparameters = ("width", "depth")``, beside the training ones; None when it
        declares none (every key of the space is passed to it) or is not imported yet."""
        names = getattr(self.build, "hyperparameters", None) if self.user else None
        return None if names is None else tuple(names)

    @property
    def builder(self) -> str | None:
        """What a logged model keeps to rebuild its network, as text: the family's name, or
        the reference to the user's callable (resolved by name when the model loads)."""
        return self.family if self.family is not None else self.reference

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled with the callable by value, whatever pickler runs (Ray ships its own
        cloudpickle, which knows nothing of the modules registered here)."""
        build = cloudpickle.dumps(self.build) if self.user and self.build is not None else None
        return (_restore, (self.name, self.family, build, dict(self.code), self.reference))


def _restore(name: str, family: str | None, build: bytes | None,
             code: Mapping[str, bytes], reference: str | None = None) -> Network:
    if family is not None:
        return family_network(family)
    return Network(name, cloudpickle.loads(build) if build is not None else None, code=code,
                   reference=reference)


def family_network(name: str) -> Network:
    family = FAMILIES.get(name, field="model")
    return Network(name, family.build, name, family.rules)


def is_reference(text: str) -> bool:
    """``nets.py:build`` or ``pkg.mod:build`` (a family name has no colon)."""
    return ":" in text


def reference(text: str) -> Network:
    """A user's network as the spec names it, checked for its form only (not imported)."""
    where, _, name = text.rpartition(":")
    if not where or not name.strip() or any(c.isspace() for c in name):
        raise SpecError(f"model: {text!r} is not a network reference; expected {FORMS} "
                        "(the callable's name after the colon)")
    if not _is_file(where) and not all(part.isidentifier() for part in where.split(".")):
        raise SpecError(f"model: {text!r}: {where!r} is neither a .py file nor a module path; "
                        f"expected {FORMS}")
    if where == "__main__":
        raise SpecError(f"model: {text!r}: {MAIN_REFUSED}")
    return Network(text)


def _is_file(where: str) -> bool:
    return where.endswith(".py") or "/" in where or os.sep in where


def network_of(model: Any) -> Network:
    """``model:`` as the spec or the Python API gives it -> a Network (not imported yet)."""
    if callable(model):
        return from_callable(model)
    if not isinstance(model, str) or not model:
        raise SpecError(f"model: {model!r} is not allowed; expected a model family "
                        f"({', '.join(FAMILIES.names())}) or your network as {FORMS}")
    if is_reference(model):
        return reference(model)
    if model not in FAMILIES:
        hint = (f"; to name a callable in a file, add it after a colon: {model}:build"
                if _is_file(model) else f"; or your network as {FORMS}")
        raise SpecError(f"model: unknown model family {model!r}; available: "
                        f"{', '.join(FAMILIES.names())}{hint}")
    return family_network(model)


# -- loading a reference -----------------------------------------------------------------------

def load(network: Network) -> Network:
    """The network with its callable: a reference imported now. Each problem is one
    SpecError naming the reference: a missing file or module, an import error inside the
    user's code (its message and line), a missing or non-callable name."""
    if network.build is not None:
        return network
    where, _, name = network.name.rpartition(":")
    module = (_import_file if _is_file(where) else _import_module)(network.name, where)
    build = _attribute(network.name, module, name, where)
    return from_callable(build, name=network.name, found=(module, name))


def load_served(reference: str, code: str | Path) -> Network:
    """The user's network of a logged model: ``reference`` (``Network.reference``) resolved
    by name in the model's ``code`` folder (a file there, or a module MLflow's loader put on
    the path). Nothing is unpickled."""
    where, _, name = reference.rpartition(":")
    if _is_file(where):
        module = _import_file(reference, str(Path(code) / where))
    else:
        module = _import_module(reference, where)
    return Network(reference, _attribute(reference, module, name, where), reference=reference)


def _import_file(text: str, where: str) -> ModuleType:
    path = Path(where).expanduser()
    if not path.is_file():
        problem = "is not a file" if path.exists() else "does not exist"
        raise SpecError(f"model: {text!r}: {where} {problem} (a relative path is read from "
                        f"the current directory, {os.getcwd()})")
    path = path.resolve()
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:8]
    module_name = f"{USER_MODULES}_{_identifier(path.stem)}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise SpecError(f"model: {text!r}: {where} cannot be imported as Python source")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look their module up
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise SpecError(f"model: {text!r}: importing {where} failed{where_line(exc, path)}: "
                        f"{one_line(exc)}") from None
    module.__mltune_file__ = str(path)  # type: ignore[attr-defined]
    return module


def _identifier(stem: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in stem)


def _import_module(text: str, where: str) -> ModuleType:
    """``pkg.mod`` imported as Python would from the current directory."""
    cwd = os.getcwd()
    added = cwd not in sys.path and "" not in sys.path
    if added:  # the `mltune` script's own folder is first on the path, not the current one
        sys.path.append(cwd)
    try:
        return importlib.import_module(where)
    except Exception as exc:
        if added:
            sys.path.remove(cwd)
        missing = exc.name if isinstance(exc, ModuleNotFoundError) else None
        if missing and (where == missing or where.startswith(f"{missing}.")):
            raise SpecError(f"model: {text!r}: no module named {missing!r} (run mltune from "
                            "the folder that holds it, or install it)") from None
        raise SpecError(f"model: {text!r}: importing {where} failed{where_line(exc)}: "
                        f"{one_line(exc)}") from None


def _attribute(text: str, module: ModuleType, name: str, where: str) -> Callable[..., Any]:
    target: Any = module
    for part in name.split("."):
        if not hasattr(target, part):
            found = sorted(k for k, v in vars(module).items() if callable(v)
                           and not k.startswith("_")
                           and getattr(v, "__module__", None) == module.__name__)
            listed = f"; callables defined there: {', '.join(found)}" if found else ""
            raise SpecError(f"model: {text!r}: {where} has no {name!r}{listed}")
        target = getattr(target, part)
    if not callable(target):
        kind = type(target).__name__
        raise SpecError(f"model: {text!r}: {name!r} in {where} is {_article(kind)} {kind}, "
                        "not a callable; expected a function or class called as "
                        "build(params, data) that returns a torch.nn.Module")
    return target


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


# -- a callable and the code that travels with it --------------------------------------------

def from_callable(build: Callable[..., Any], name: str | None = None,
                  found: tuple[ModuleType, str] | None = None) -> Network:
    """A user's callable as a Network: the module's source (its file, or its top-level
    package's folder) as the code that travels, and the reference a logged model finds the
    callable by. ``found``: the module and attribute a spec's reference named (else the
    callable's own ``__module__`` and ``__qualname__``, which must lead back to it).

    A callable that cannot be found by name (of ``__main__``, a lambda, defined inside a
    function) is refused with a SpecError. One of an installed package ships no code (that
    package must be installed where the model is served). The module is also pickled by value
    from now on, for Ray's workers.
    """
    module, attribute = found or _home(build)
    code: dict[str, bytes] = {}
    reference = f"{module.__name__}:{attribute}"
    for owner in dict.fromkeys([module, sys.modules.get(getattr(build, "__module__", ""))]):
        top = sys.modules.get(owner.__name__.split(".")[0], owner) if owner else None
        root = _source_root(top) if top is not None else None
        if root is None:
            continue
        cloudpickle.register_pickle_by_value(top)
        code.update(_sources(root))
        if owner is module and root.is_file():  # a file: found there by its name
            reference = f"{root.name}:{attribute}"
    network = Network(name or model_name(build), build, code=code, reference=reference)
    _check_declared(network)
    return network


def _check_declared(network: Network) -> None:
    """``build.hyperparameters``: a list of names, nothing else (a string would read as its
    letters)."""
    names = getattr(network.build, "hyperparameters", None)
    if names is None:
        return
    if isinstance(names, str) or not isinstance(names, (list, tuple, set, frozenset)) or not all(
            isinstance(n, str) and n and "." not in n for n in names):
        raise SpecError(f"model: {network.name}: hyperparameters = {names!r} is not allowed; "
                        "expected a list of the names the network reads from params "
                        "(\"width\", \"depth\"), or no such attribute to accept any")


def _home(build: Callable[..., Any]) -> tuple[ModuleType, str]:
    """(module, attribute path) where ``build`` is found by name; SpecError if nowhere."""
    module_name = getattr(build, "__module__", None)
    qualname = getattr(build, "__qualname__", None)
    shown = model_name(build)
    if module_name == "__main__":
        raise SpecError(f"model: {shown}: {MAIN_REFUSED}")
    if not qualname or "<" in qualname:
        what = ("a lambda" if "<lambda>" in (qualname or "") else
                "a callable defined inside a function" if qualname else
                f"{_article(type(build).__name__)} {type(build).__name__} object")
        raise SpecError(f"model: {shown} is {what}, which its model cannot find by name when "
                        "it loads; define it with def at the top level of a .py file and give "
                        "model: file.py:callable (from Python: import it from that file)")
    module = sys.modules.get(module_name or "")
    target: Any = module
    for part in qualname.split("."):
        target = getattr(target, part, None)
    if module is None or (target is not build and target != build):
        raise SpecError(f"model: {shown} is not found again as {qualname} in module "
                        f"{module_name!r}, which its model needs when it loads; give model: "
                        "file.py:callable naming where it is defined")
    return module, qualname


def _source_root(module: ModuleType) -> Path | None:
    """The user's file or package folder behind ``module``; None for mltune's own modules
    and installed ones."""
    file = getattr(module, "__mltune_file__", None) or getattr(module, "__file__", None)
    if not file:
        return None
    path = Path(file).resolve()
    if hasattr(module, "__path__"):  # a package: its folder
        path = path.parent
    if path == MLTUNE_DIR or MLTUNE_DIR in path.parents or installed(path):
        return None
    return path


MAX_CODE_BYTES = 20 * 2**20  # a package folder larger than this is not copied into each model


def _sources(root: Path) -> dict[str, bytes]:
    """Python sources under ``root`` (a file, or a package folder), by path relative to the
    folder that holds it."""
    if root.is_file():
        return {root.name: root.read_bytes()}
    files: dict[str, bytes] = {}
    total = 0
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root.parent)
        if any(part.startswith(".") or part == "__pycache__" for part in relative.parts):
            continue
        files[relative.as_posix()] = content = path.read_bytes()
        total += len(content)
        if total > MAX_CODE_BYTES:
            raise SpecError(f"model: the package {root.name} holds more than "
                            f"{MAX_CODE_BYTES // 2**20} MB of Python sources, too much to copy "
                            "into every logged model; put the network in a smaller package")
    return files


def write_code(code: Mapping[str, bytes], folder: str | Path) -> list[str]:
    """Write ``code`` under ``folder``; return the paths to give MLflow as ``code_paths``
    (each top-level file or package folder once)."""
    folder = Path(folder)
    tops: list[str] = []
    for relative, content in code.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        top = str(folder / Path(relative).parts[0])
        if top not in tops:
            tops.append(top)
    return tops


def checked_module(network: nn.Module | Any, name: str) -> nn.Module:
    """What a builder returned, refused unless it is a torch module."""
    if not isinstance(network, nn.Module):
        kind = type(network).__name__
        raise SpecError(f"model: {name} returned {_article(kind)} {kind}, not a "
                        "torch.nn.Module; expected build(params, data) to return the network")
    return network
