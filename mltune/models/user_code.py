"""Where a user's code raised: the one line mltune shows of an exception, and the file and
line of the user's code it came from (not mltune's, torch's or an installed package's)."""

from __future__ import annotations

import sysconfig
import traceback
from pathlib import Path

MLTUNE_DIR = Path(__file__).resolve().parents[1]


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (a SyntaxError's own message, without its
    position)."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, SyntaxError):
        message = exc.msg
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def user_line(exc: BaseException, path: str | Path | None = None) -> tuple[str, int] | None:
    """(file, line) of the last frame of ``exc`` in the user's code (``path`` if given, else
    any file outside mltune, torch and the installed packages)."""
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno and (
            path is None or Path(exc.filename).resolve() == Path(path)):
        return exc.filename, exc.lineno
    found = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if (Path(frame.filename).resolve() == Path(path)) if path is not None else (
                _is_user_file(frame.filename)):
            found = _shown(frame.filename), frame.lineno or 0
    return found


def _shown(filename: str) -> str:
    """A file as the user would write it: relative to the current directory when inside."""
    try:
        return str(Path(filename).resolve().relative_to(Path.cwd()))
    except ValueError:
        return filename


def where_line(exc: BaseException, path: str | Path | None = None) -> str:
    """`` at line N`` (in ``path``) or `` at FILE line N`` where the user's code raised; "" if
    nowhere."""
    found = user_line(exc, path)
    if found is None:
        return ""
    return f" at line {found[1]}" if path is not None else f" at {found[0]} line {found[1]}"


def _is_user_file(filename: str) -> bool:
    if filename.startswith("<"):
        return filename.startswith("<ipython-input") or filename.startswith("<stdin>")
    path = Path(filename).resolve()
    return not (MLTUNE_DIR in path.parents or installed(path))


def installed(path: Path) -> bool:
    """Whether ``path`` belongs to the standard library or an installed distribution."""
    roots = {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib",
                                                    "platlib")}
    return any(Path(root).resolve() in path.parents for root in roots) or any(
        part in ("site-packages", "dist-packages") for part in path.parts)
