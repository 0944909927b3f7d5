"""MkDocs hook: regenerate the pages made from the code before every build (and every
rebuild of ``mkdocs serve``), so ``mkdocs build --strict`` never reads a stale one."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def on_pre_build(config, **kwargs) -> None:  # noqa: ARG001  (MkDocs' signature)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from docs.gen.generate import main

    main()
