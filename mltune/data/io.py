"""Reading the user's table: one reader for every task that takes a file.

CSV files (``.csv``; ``.tsv`` is tab-separated, ``.txt`` comma-separated), optionally
compressed (``.gz``, ``.bz2``, ``.zip``, ``.xz``, ``.zst``), and parquet files (``.parquet``,
``.pq``). Text is decoded with ``encoding`` (``data.encoding``). Whatever goes wrong is one
DataError line naming ``data.source``: a folder, a missing file, an unknown suffix, an empty
file, a byte the encoding cannot decode (with its line), a file the parser cannot read. An
unknown encoding is the spec's fault: a SpecError naming ``data.encoding``. Built-in data sets
(``sklearn:...``) belong to their task, which names them in ``builtins`` for the messages.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from mltune.core.errors import DataError, SpecError

CSV_SUFFIXES = (".csv", ".tsv", ".txt")
COMPRESSIONS = ("", ".gz", ".bz2", ".zip", ".xz", ".zst")
PARQUET_SUFFIXES = (".parquet", ".pq")
FILE_TYPES = ".csv, .tsv or .txt (optionally .gz, .bz2, .zip, .xz, .zst), .parquet or .pq"
T = TypeVar("T")


def file_kind(source: str, builtins: Sequence[str] = ()) -> str:
    """``CSV``, ``TSV`` or ``parquet`` for an existing, non-empty file; a DataError otherwise."""
    path = Path(source)
    if path.is_dir():
        raise DataError(f"data.source: {source!r} is a folder; expected a CSV or parquet file")
    name = path.name.lower()
    if name.endswith(PARQUET_SUFFIXES):
        kind = "parquet"
    else:
        csv = next((s for s in CSV_SUFFIXES for c in COMPRESSIONS if name.endswith(s + c)), None)
        if csv is None:
            what = "is neither a built-in nor" if builtins else "is not"
            known = f"; built-ins: {', '.join(builtins)}" if builtins else ""
            raise DataError(f"data.source: {source!r} {what} a .csv / .parquet file; expected "
                            f"{FILE_TYPES}{known}")
        kind = "TSV" if csv == ".tsv" else "CSV"
    if not path.is_file():
        raise DataError(f"data.source: file {source!r} does not exist; expected a CSV or "
                        "parquet file")
    if path.stat().st_size == 0:
        raise DataError(f"data.source: {source!r} is empty (0 bytes)")
    return kind


def read_table(source: str, *, encoding: str = "utf-8", columns: list[str] | None = None,
               builtins: Sequence[str] = ()) -> pd.DataFrame:
    """The table in ``source`` (all columns, or only ``columns``)."""
    kind = file_kind(source, builtins)
    if kind == "parquet":
        return _reading(source, kind, encoding, lambda: pd.read_parquet(source, columns=columns))
    sep = "\t" if kind == "TSV" else ","
    return _reading(source, kind, encoding, lambda: pd.read_csv(
        source, sep=sep, encoding=encoding, usecols=columns))


def column_names(source: str, *, encoding: str = "utf-8",
                 builtins: Sequence[str] = ()) -> list[str]:
    """The table's column names, without reading its rows."""
    kind = file_kind(source, builtins)
    if kind == "parquet":
        import pyarrow.parquet

        schema = _reading(source, kind, encoding, lambda: pyarrow.parquet.read_schema(source))
        return list(schema.names)
    sep = "\t" if kind == "TSV" else ","
    frame = _reading(source, kind, encoding, lambda: pd.read_csv(
        source, sep=sep, encoding=encoding, nrows=0))
    return list(frame.columns)


def _reading(source: str, kind: str, encoding: str, read: Callable[[], T]) -> T:
    """``read()``, with whatever the reader raises turned into one line."""
    try:
        return read()
    except UnicodeDecodeError as exc:
        raise DataError(
            f"data.source: {source!r} is not {encoding} text "
            f"({_bad_byte(Path(source), encoding, exc)}); re-save it as UTF-8 or set "
            "data.encoding (e.g. latin-1)") from None
    except LookupError:
        raise SpecError(f"data.encoding: unknown encoding {encoding!r}") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"data.source: {source!r} holds no columns and no rows") from None
    except pd.errors.ParserError as exc:
        raise DataError(f"data.source: {source!r} is not a readable {kind} file: "
                        f"{_last_line(exc)}") from None
    except Exception as exc:  # arrow, zip, lzma... errors: all mean "not readable"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"data.source: cannot read {source!r} as {kind}: {first}") from None


def _last_line(error: Exception) -> str:
    """The parser's own words, without pandas' preamble."""
    return str(error).strip().splitlines()[-1].removeprefix("Error tokenizing data. C error: ")


def _text_bytes(path: Path) -> bytes | None:
    """The file's bytes as the reader decodes them (decompressed); None where stdlib cannot."""
    name = path.name.lower()
    if name.endswith(".zst"):
        return None
    data = path.read_bytes()
    openers: dict[str, Any] = {".gz": gzip.decompress, ".bz2": bz2.decompress,
                               ".xz": lzma.decompress}
    for suffix, decompress in openers.items():
        if name.endswith(suffix):
            return decompress(data)
    if name.endswith(".zip"):
        with zipfile.ZipFile(path) as archive:
            members = archive.namelist()
            return archive.read(members[0]) if len(members) == 1 else None
    return data


def _bad_byte(path: Path, encoding: str, error: UnicodeDecodeError) -> str:
    """Where the first undecodable byte is. pandas decodes in chunks, so its error's offset
    is relative to a chunk: decode the file's text again to name the line."""
    try:
        data = _text_bytes(path)
        if data is not None:
            data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = exc.object.count(b"\n", 0, exc.start) + 1
        return f"byte 0x{exc.object[exc.start]:02x} on line {line}"
    except (OSError, MemoryError, EOFError, ValueError, lzma.LZMAError, zipfile.BadZipFile):
        pass
    return f"byte 0x{error.object[error.start]:02x}"
