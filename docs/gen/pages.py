"""The generated sections in the pages themselves, so that the repository's web view shows
them too: a page marks a place with ``<!-- gen:NAME ... -->`` and ``<!-- /gen:NAME -->``, and
``update`` writes the section ``NAME`` between the two (``make docs`` does, before every build).
``--check`` (``make test``, CI) refuses a committed page whose section is not what the code
makes now, so the Markdown in the repository is never stale."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from docs.gen.common import ROOT

DOCS = ROOT / "docs"
MARKED = re.compile(r"(<!-- gen:(?P<name>[\w-]+)\b[^>]*-->\n)(?P<body>.*?)"
                    r"(<!-- /gen:(?P=name) -->)", re.S)


def pages() -> list[Path]:
    """Every page of the manual (not the generators' own folder)."""
    return sorted(p for p in DOCS.rglob("*.md") if DOCS / "gen" not in p.parents)


def filled(text: str, sections: Mapping[str, str], used: set[str], page: str) -> str:
    """``text`` with each marked place holding its section now."""
    def fill(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in sections:
            raise KeyError(f"{page}: no generated section {name!r}; known: "
                           f"{', '.join(sorted(sections))}")
        used.add(name)
        return f"{match.group(1)}\n{sections[name].strip()}\n\n{match.group(4)}"

    return MARKED.sub(fill, text)


def update(sections: Mapping[str, str], check: bool = False) -> list[str]:
    """Write each page whose sections changed (``check``: write nothing); return those pages,
    relative to the repository. Every section must have a place in some page."""
    stale, used = [], set()
    for path in pages():
        text = path.read_text(encoding="utf-8")
        name = str(path.relative_to(ROOT))
        new = filled(text, sections, used, name)
        if new != text:
            stale.append(name)
            if not check:
                path.write_text(new, encoding="utf-8")
    unused = sorted(set(sections) - used)
    if unused:
        raise KeyError(f"generated sections no page marks a place for: {', '.join(unused)}")
    return stale
