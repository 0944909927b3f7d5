"""Write every generated section of the manual into the pages that mark a place for it.

Run by ``mkdocs build`` and ``mkdocs serve`` (``docs/gen/hooks.py``) before each build, and by
hand from the repository root: ``python -m docs.gen.generate`` writes the pages,
``python -m docs.gen.generate --check`` only says which committed page is stale (exit 1), as
``make test`` does before anything else.
"""

from __future__ import annotations

import sys

from docs.gen.common import ROOT, SECTIONS


def main(check: bool = False) -> list[str]:
    """The pages whose generated sections changed (written, unless ``check``)."""
    if str(ROOT) not in sys.path:  # the worktree's mltune, not another installed copy
        sys.path.insert(0, str(ROOT))
    import mltune  # noqa: F401  (fills every catalog)
    from docs.gen import api, catalogs, cli, layers, mlproject, pages, records, spec, tasks

    SECTIONS.clear()
    for job in (spec, tasks, catalogs, cli, mlproject, layers, records, api):
        job.main()
    return pages.update(SECTIONS, check=check)


if __name__ == "__main__":
    checking = "--check" in sys.argv[1:]
    changed = main(check=checking)
    if checking and changed:
        sys.exit(f"stale generated sections in: {', '.join(changed)}; run `make docs` and "
                 "commit the pages")
    print(f"{'stale' if checking else 'rewritten'}: {', '.join(changed) or 'none'}")
