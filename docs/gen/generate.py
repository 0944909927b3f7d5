"""Write every generated part of the manual into docs/gen/out/ (git-ignored).

Run by ``mkdocs build`` and ``mkdocs serve`` (``docs/gen/hooks.py``) before each build, and by
hand: ``python -m docs.gen.generate`` from the repository root.
"""

from __future__ import annotations

import sys

from docs.gen.common import ROOT


def main() -> None:
    if str(ROOT) not in sys.path:  # the worktree's mltune, not another installed copy
        sys.path.insert(0, str(ROOT))
    import mltune  # noqa: F401  (fills every catalog)
    from docs.gen import api, catalogs, cli, layers, records, spec, tasks

    for job in (spec, tasks, catalogs, cli, layers, records, api):
        job.main()


if __name__ == "__main__":
    main()
