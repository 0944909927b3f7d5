"""MkDocs hook: rewrite the sections of the pages made from the code before every build (and
every rebuild of ``mkdocs serve``), so ``mkdocs build --strict`` never reads a stale one.

With ``MLTUNE_DOCS_CHECK=1`` in the environment it writes nothing and fails the build on a
stale page instead (the tests build the manual so: a build must not edit the repository)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def on_pre_build(config, **kwargs) -> None:  # noqa: ARG001  (MkDocs' signature)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from mkdocs.exceptions import PluginError

    from docs.gen.generate import main

    checking = os.environ.get("MLTUNE_DOCS_CHECK") == "1"
    stale = main(check=checking)
    if checking and stale:
        raise PluginError(f"stale generated sections in: {', '.join(stale)}; run `make docs` "
                          "and commit the pages")
