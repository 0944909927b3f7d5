"""mltune.data.io: one reader for every task's file, one line for whatever is wrong with it."""

from __future__ import annotations

import bz2
import gzip
import lzma
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from mltune.core.errors import DataError, SpecError
from mltune.data.io import column_names, read_table

TABLE = pd.DataFrame({"city": ["Paris", "Köln", "Zürich"], "rain": [1.5, 2.0, 0.5]})
CSV = TABLE.to_csv(index=False).encode("utf-8")


def write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def zipped(path: Path, data: bytes) -> str:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("table.csv", data)
    return str(path)


@pytest.mark.parametrize("name", ["t.csv", "t.txt", "t.csv.gz", "t.csv.bz2", "t.csv.xz",
                                  "t.csv.zip", "t.tsv", "t.parquet", "t.pq", "T.CSV"])
def test_every_kind_of_file_reads_as_the_same_table(tmp_path, name):
    path = tmp_path / name
    if name.endswith((".parquet", ".pq")):
        TABLE.to_parquet(path)
    elif name.endswith(".zip"):
        zipped(path, CSV)
    elif name.endswith(".tsv"):
        path.write_bytes(TABLE.to_csv(index=False, sep="\t").encode())
    else:
        compress = {".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress}.get(
            path.suffix, lambda b: b)
        path.write_bytes(compress(CSV))
    pd.testing.assert_frame_equal(read_table(str(path)), TABLE)
    assert column_names(str(path)) == ["city", "rain"]
    assert list(read_table(str(path), columns=["rain"]).columns) == ["rain"]


def test_an_encoding_reads_what_utf8_cannot(tmp_path):
    source = write(tmp_path / "latin.csv", TABLE.to_csv(index=False).encode("latin-1"))
    assert read_table(source, encoding="latin-1")["city"].tolist() == ["Paris", "Köln", "Zürich"]


@pytest.mark.parametrize(("compress", "suffix"), [(lambda b: b, ".csv"), (gzip.compress,
                                                                          ".csv.gz")])
def test_an_undecodable_byte_is_named_with_its_line(tmp_path, compress, suffix):
    source = write(tmp_path / f"latin{suffix}",
                   compress(TABLE.to_csv(index=False).encode("latin-1")))
    with pytest.raises(DataError) as caught:
        read_table(source)
    assert str(caught.value) == (
        f"data.source: {source!r} is not utf-8 text (byte 0xf6 on line 3); re-save it as "
        "UTF-8 or set data.encoding (e.g. latin-1)")


def test_an_unknown_encoding_is_the_spec_s_fault(tmp_path):
    source = write(tmp_path / "t.csv", CSV)
    with pytest.raises(SpecError, match="^data.encoding: unknown encoding 'klingon'$"):
        read_table(source, encoding="klingon")


def cases(tmp: Path) -> dict[str, tuple[str, str]]:
    (tmp / "folder.csv").mkdir()
    return {
        "missing": (str(tmp / "nowhere.csv"), "file '{}' does not exist; expected a CSV or "
                                             "parquet file"),
        "folder": (str(tmp / "folder.csv"), "'{}' is a folder; expected a CSV or parquet file"),
        "unknown suffix": (write(tmp / "t.xlsx", b"x"),
                           "'{}' is not a .csv / .parquet file; expected .csv, .tsv or .txt "
                           "(optionally .gz, .bz2, .zip, .xz, .zst), .parquet or .pq"),
        "empty": (write(tmp / "e.csv", b""), "'{}' is empty (0 bytes)"),
        "blank lines": (write(tmp / "b.csv", b"\n\n"), "'{}' holds no columns and no rows"),
        "empty inside gzip": (write(tmp / "e.csv.gz", gzip.compress(b"")),
                              "'{}' holds no columns and no rows"),
        "ragged rows": (write(tmp / "r.csv", b"a,b\n1,2\n1,2,3,4\n"),
                        "'{}' is not a readable CSV file: Expected 2 fields in line 3, saw 4"),
        "broken parquet": (write(tmp / "p.parquet", b"PAR1 not really"),
                           "cannot read '{}' as parquet: "),
        "broken gzip": (write(tmp / "g.csv.gz", b"not gzip at all"),
                        "cannot read '{}' as CSV: "),
    }


@pytest.mark.parametrize("case", ["missing", "folder", "unknown suffix", "empty", "blank lines",
                                  "empty inside gzip", "ragged rows", "broken parquet",
                                  "broken gzip"])
def test_whatever_is_wrong_is_one_line_naming_data_source(tmp_path, case):
    source, message = cases(tmp_path)[case]
    with pytest.raises(DataError) as caught:
        read_table(source)
    text = str(caught.value)
    assert text.startswith("data.source: " + message.format(source)), text
    assert "\n" not in text


def test_a_task_with_built_ins_names_them_for_an_unknown_suffix(tmp_path):
    with pytest.raises(DataError, match=r"is neither a built-in nor a \.csv / \.parquet file; "
                                        r"expected .*; built-ins: sklearn:a, sklearn:b$"):
        read_table(str(tmp_path / "t.xlsx"), builtins=["sklearn:a", "sklearn:b"])
