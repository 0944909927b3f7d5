"""The record contract: every ``mltune.*`` tag (and MLflow key mltune sets), read from
``mltune/tracking/tags.py`` with its section and comment."""

from __future__ import annotations

import ast
import re

from docs.gen.common import ROOT, table, write


def tags() -> list[tuple[str, list[list[str]]]]:
    """(section, rows of [constant, key, comment]) in the module's order."""
    path = ROOT / "mltune" / "tracking" / "tags.py"
    lines = path.read_text(encoding="utf-8").splitlines()
    tree = ast.parse("\n".join(lines))
    sections: list[tuple[str, list[list[str]]]] = []
    starts = {i + 1: m.group(1) for i, line in enumerate(lines)
              if (m := re.match(r"# -- (.+?) -+$", line))}
    for node in tree.body:
        for lineno in sorted(list(starts)):
            if lineno < node.lineno:
                sections.append((starts.pop(lineno), []))
        if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)) or not sections:
            continue
        line = lines[node.lineno - 1]
        comment = line.split("  # ", 1)[1] if "  # " in line else ""
        sections[-1][1].append([f"`{node.targets[0].id}`", f"`{node.value.value}`", comment])
    return sections


def main() -> None:
    parts = []
    for title, rows in tags():
        if rows:
            parts.append(f"### {title[0].upper()}{title[1:]}\n\n"
                         + table(["constant", "key", "what"], rows))
    write("tags.md", "\n".join(parts))
