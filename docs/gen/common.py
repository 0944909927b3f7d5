"""What the generators share: where pages go, tables, and writing only what changed."""

from __future__ import annotations

import ast
import inspect
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "gen" / "out"  # git-ignored: derived from the code, never edited


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A markdown table; ``|`` inside a cell is escaped."""
    def cell(value: Any) -> str:  # a pipe in a code span does not end a cell; elsewhere it does
        parts = str(value).replace("\n", " ").split("`")
        return "`".join(p if i % 2 else p.replace("|", "\\|") for i, p in enumerate(parts))

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def code(value: Any) -> str:
    """``value`` as inline code, YAML-ish: ``true``, ``null``, ``[a, b]``."""
    return f"`{yaml_text(value)}`"


def yaml_text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(yaml_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {yaml_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, float):
        return f"{value:g}" if abs(value) < 1e-3 or value != round(value, 6) else repr(value)
    return str(value)


def first_line(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return " ".join(doc.split("\n\n")[0].split())


def field_comments(path: Path, class_name: str) -> dict[str, str]:
    """The comments on a dataclass's fields in its source: the one on the field's line, and
    the lines of comment right above it."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    tree = ast.parse(source)
    comments: dict[str, str] = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.ClassDef) and node.name == class_name):
            continue
        for item in node.body:
            if not (isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)):
                continue
            parts = []
            row = item.lineno - 2
            above = []
            while row >= 0 and lines[row].strip().startswith("#"):
                above.insert(0, lines[row].strip().lstrip("#").strip())
                row -= 1
            parts += above
            line = lines[item.end_lineno - 1]
            if "  # " in line:
                parts.append(line.split("  # ", 1)[1].strip())
            comments[item.target.id] = " ".join(parts)
    return comments


def write(name: str, text: str) -> Path:
    """Write ``docs/gen/out/<name>`` if its text changed (``mkdocs serve`` watches the folder:
    an unchanged file must not trigger another build)."""
    path = OUT / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
    return path
