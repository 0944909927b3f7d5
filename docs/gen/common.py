"""What the generators share: the sections they make, tables, docstrings."""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
# name -> Markdown: what each generator made, placed into the pages by ``pages.update``
SECTIONS: dict[str, str] = {}


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A markdown table; ``|`` inside a cell is escaped, and in a code span it is said as
    ``or`` (``str or None``): GitHub would end the cell there, MkDocs would show the escape."""
    def cell(value: Any) -> str:
        parts = str(value).replace("\n", " ").split("`")
        return "`".join(p.replace(" | ", " or ") if i % 2 else p.replace("|", "\\|")
                        for i, p in enumerate(parts))

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


def write(name: str, text: str) -> None:
    """Keep ``text`` as the section ``name`` (``spec-keys.md`` -> ``spec-keys``): the pages
    that mark a place for it get it (``docs/gen/pages.py``)."""
    SECTIONS[name.removesuffix(".md")] = text.strip() + "\n"


def rst(text: str) -> str:
    """A docstring's reStructuredText as Markdown: ````x```` -> ```x```, roles dropped."""
    text = re.sub(r":math:`([^`]*)`", lambda m: "`" + re.sub(
        r"\\text\{([^}]*)\}", r"\1", m.group(1)).replace("\\", "") + "`", text)
    text = re.sub(r":(?:class|func|meth|attr|mod|obj):`([^`]*)`", r"`\1`", text)
    return text.replace("``", "`")


def first_sentence(text: str, limit: int = 200) -> str:
    """The first sentence of a paragraph (a docstring's), at most ``limit`` characters."""
    text = " ".join(text.split())
    found = re.search(r"(?<=[A-Za-z0-9)`'\"])(?<! al)(?<!e\.g)(?<!i\.e)\.(\s|$)", text)
    if found and found.end() > 20:
        text = text[:found.start() + 1]
    return text if len(text) <= limit else text[:limit - 3].rstrip() + "..."
