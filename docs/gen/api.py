"""The Python API page: each public name of ``mltune.__all__`` with its signature and its
docstring, as Markdown (readable on the repository's web view too); a dataclass's fields with
their types, defaults and the comments beside them in its source; an enum's members; a class's
public methods and properties with their signatures and first paragraphs."""

from __future__ import annotations

import dataclasses
import enum
import inspect
from pathlib import Path
from typing import Any

from docs.gen.common import code, field_comments, rst, table, write

WIDTH = 92  # a signature longer than this puts one parameter on a line


def signature(name: str, obj: Any, method: bool = False) -> str:
    """``name(a: int, b: str = 'x') -> T`` with annotations as written in the source (a
    class: its constructor's; ``method``: without ``self``)."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return name
    factories = {f.name: f.default_factory for f in dataclasses.fields(obj)} if (
        isinstance(obj, type) and dataclasses.is_dataclass(obj)) else {}
    params, seen_keyword_only = [], False
    for i, p in enumerate(sig.parameters.values()):
        if method and i == 0 and p.name in ("self", "cls"):
            continue
        if p.kind is p.KEYWORD_ONLY and not seen_keyword_only:
            params.append("*")
            seen_keyword_only = True
        text = ("*" if p.kind is p.VAR_POSITIONAL else "**" if p.kind is p.VAR_KEYWORD
                else "") + p.name
        if p.annotation is not p.empty:
            text += f": {_annotation(p.annotation)}"
        if p.default is not p.empty:
            factory = factories.get(p.name, dataclasses.MISSING)
            shown = (_default(p.default) if factory is dataclasses.MISSING  # type: ignore[comparison-overlap]
                     else repr(factory()))
            text += (" = " if p.annotation is not p.empty else "=") + shown
        params.append(text)
    returns = ("" if sig.return_annotation is sig.empty or isinstance(obj, type)
               else f" -> {_annotation(sig.return_annotation)}")
    line = f"{name}({', '.join(params)}){returns}"
    if len(line) <= WIDTH:
        return line
    return f"{name}(\n" + "".join(f"    {p},\n" for p in params) + f"){returns}"


def _annotation(annotation: Any) -> str:
    return annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)


def _default(value: Any) -> str:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return f"{type(value).__name__}()"
    return repr(value)


def _doc(obj: Any, whole: bool = True) -> str:
    """The docstring as Markdown (``whole=False``: its first paragraph); an inherited one is
    not repeated."""
    own = obj.__dict__.get("__doc__") if isinstance(obj, type) else getattr(obj, "__doc__", "")
    text = rst(inspect.cleandoc(own or ""))
    return text if whole else " ".join(text.split("\n\n")[0].split())


def _fields(cls: type) -> str:
    comments = field_comments(Path(inspect.getsourcefile(cls) or ""), cls.__name__)
    rows = []
    for f in dataclasses.fields(cls):
        if f.metadata.get("spec_key") is False:  # internal: no spec file sets it
            continue
        default = (code(f.default) if f.default is not dataclasses.MISSING else "required"
                   if f.default_factory is dataclasses.MISSING  # type: ignore[comparison-overlap]
                   else code(f.default_factory()))
        rows.append([f"`{f.name}`", f"`{_annotation(f.type)}`", default,
                     rst(comments.get(f.name, ""))])
    if not any(row[3] for row in rows):
        return table(["field", "type", "default"], [row[:3] for row in rows])
    return table(["field", "type", "default", "what"], rows)


def _members(cls: type) -> list[str]:
    """Public methods and properties defined on the class itself, each with the first
    paragraph of its docstring."""
    parts = []
    for name, member in cls.__dict__.items():
        if name.startswith("_"):
            continue
        if isinstance(member, property):
            getter = member.fget
            returns = inspect.signature(getter).return_annotation if getter else None
            shown = f"{name}: {_annotation(returns)}" if returns not in (None, inspect._empty) \
                else name
            parts.append(f"**`{shown}`** (property): {_doc(getter, whole=False)}")
        elif isinstance(member, (staticmethod, classmethod)) or inspect.isfunction(member):
            function = member.__func__ if isinstance(member, (staticmethod, classmethod)) \
                else member
            method = not isinstance(member, staticmethod)
            parts.append(f"**`{signature(name, function, method)}`**: "
                         f"{_doc(function, whole=False)}")
    return [p.removesuffix(": ") for p in parts]


def entry(name: str, obj: Any) -> str:
    """One public name's section."""
    if isinstance(obj, type) and issubclass(obj, enum.Enum):
        members = ", ".join(f"`{m.name}` (`{m.value!r}`)" for m in obj)
        parts = [f"```python\nclass {name}({obj.__bases__[0].__name__}, Enum)\n```",
                 _doc(obj), f"Members: {members}."]
    elif isinstance(obj, type):
        bases = ", ".join(b.__name__ for b in obj.__bases__ if b is not object)
        head = f"class {signature(name, obj)}" if not bases else \
            f"class {name}({bases})\n{signature(name, obj)}"
        parts = [f"```python\n{head}\n```", _doc(obj)]
        if dataclasses.is_dataclass(obj):
            parts.append(_fields(obj))
        methods = _members(obj)
        if methods:
            parts.append("\n".join(f"- {m}" for m in methods))
    elif callable(obj):
        parts = [f"```python\n{signature(name, obj)}\n```", _doc(obj)]
    else:
        parts = [f"```python\n{name} = {obj!r}\n```"]
    return f"### `mltune.{name}`\n\n" + "\n\n".join(p for p in parts if p.strip()) + "\n"


def main() -> None:
    import mltune

    names = [n for n in mltune.__all__ if not n.startswith("__")]
    functions = [n for n in names if not isinstance(getattr(mltune, n), type)]
    classes = [n for n in names if isinstance(getattr(mltune, n), type)]
    parts = ["## Functions\n", *(entry(n, getattr(mltune, n)) for n in functions),
             "## Classes\n", *(entry(n, getattr(mltune, n)) for n in classes),
             f"## Version\n\n`mltune.__version__`: the installed version "
             f"(`{mltune.__version__}` when this page was made).\n"]
    write("api.md", "\n".join(parts))
