"""read_table: CSV/TSV (plain, gzip) to a LabeledMatrix; every malformed input is one line
naming the file, the line and the column."""

from __future__ import annotations

import gzip
import re

import numpy as np
import pandas as pd
import pytest

from gpu_genomics.errors import InputError
from gpu_genomics.expression.tables import LabeledMatrix, read_table


def write(path, text: str):
    """Write ``text`` to ``path`` (gzip-compressed when the name ends in .gz)."""
    if str(path).endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def table_text(values, rows, columns, sep="\t", corner="gene_id") -> str:
    """A table written the plain way: a header, then ``name<sep>v1<sep>v2...`` per row, with
    every float in repr (round-trip exact) form."""
    lines = [sep.join([corner, *columns])]
    for name, row in zip(rows, values, strict=True):
        lines.append(sep.join([name, *(repr(float(v)) for v in row)]))
    return "\n".join(lines) + "\n"


@pytest.fixture
def random_table():
    rng = np.random.default_rng(3)
    values = rng.lognormal(1.0, 2.0, size=(7, 5)) * (rng.random((7, 5)) > 0.2)  # some zeros
    rows = [f"ENSG{i:011d}" for i in range(7)]
    columns = ["s1", "sample two", "S-3", "4", "s_5"]
    return values, rows, columns


@pytest.mark.parametrize(
    "name,sep",
    [
        ("t.tsv", "\t"),
        ("t.csv", ","),
        ("t.tsv.gz", "\t"),
        ("t.csv.gz", ","),
        ("t.txt", "\t"),
        ("t.txt", ","),
        ("t", "\t"),
        ("t.csv", "\t"),  # suffix says comma, header clearly uses tabs
    ],
)
def test_reads_genes_by_samples_transposed(tmp_path, random_table, name, sep):
    values, rows, columns = random_table
    path = write(tmp_path / name, table_text(values, rows, columns, sep))
    matrix = read_table(path)
    assert isinstance(matrix, LabeledMatrix)
    assert matrix.values.dtype == np.float64 and matrix.values.flags.c_contiguous
    # rows are genes by default; numbers parse as pandas' default parser does (not always the
    # correctly rounded double: within a few ulp)
    np.testing.assert_allclose(matrix.values, values.T, rtol=1e-14, atol=0)
    assert list(matrix.observation_names) == columns
    assert list(matrix.feature_names) == rows
    assert matrix.shape == (5, 7)
    # the specification's own reading of the same file
    reference = pd.read_csv(path, sep=sep, index_col=0)
    np.testing.assert_array_equal(matrix.values, reference.T.to_numpy())


def test_rows_are_observations_and_float32(tmp_path, random_table):
    values, rows, columns = random_table
    path = write(tmp_path / "cells.csv", table_text(values, rows, columns, ","))
    matrix = read_table(path, orientation="rows-are-observations", dtype="float32")
    assert matrix.values.dtype == np.float32
    np.testing.assert_allclose(matrix.values, values.astype(np.float32), rtol=1e-7, atol=0)
    assert list(matrix.observation_names) == rows
    assert list(matrix.feature_names) == columns


def test_r_style_header_quotes_bom_blank_lines(tmp_path):
    # R's write.table: no header field over the row names; quoted names; a BOM; blank lines
    text = '\ufeff"a","b, with comma"\n"g1",1,2\n\n"g2",3,4.5e2\n\n'
    matrix = read_table(write(tmp_path / "r.csv", text))
    assert list(matrix.observation_names) == ["a", "b, with comma"]
    assert list(matrix.feature_names) == ["g1", "g2"]
    np.testing.assert_array_equal(matrix.values, [[1, 3], [2, 450]])


def test_locate_names_line_and_column(tmp_path):
    text = "gene\ta\tb\n\ng1\t1\t2\n# not special\t3\t4\ng3\t5\t6\n"
    path = write(tmp_path / "x.tsv", text)
    by_gene = read_table(path)
    # sample 'b' (observation 1), gene 'g3' (feature 2): line 5, column 'b'
    assert by_gene.locate(1, 2) == f"{path}, line 5, column 'b'"
    by_row = read_table(path, orientation="rows-are-observations")
    assert by_row.locate(0, 1) == f"{path}, line 3, column 'b'"
    in_memory = LabeledMatrix(np.zeros((1, 1)), np.array(["o"], object), np.array(["f"], object))
    assert in_memory.locate(0, 0) == "observation 'o', feature 'f'"


BAD_TABLES = [
    # (file text, what the message must say: line number and a fragment)
    ("gene\ta\tb\ng1\t1\t2\n\ng2\t3\tabc\n", r"line 4, column 'b': 'abc' is not a number"),
    ("gene\ta\tb\ng1\t1\t2\ng2\t1,5\t3\n", r"line 3, column 'a': '1,5' is not a number"),
    ("gene\ta\tb\ng1\t1\t2\ng2\t3\n", r"line 3: has 2 fields, expected 3"),
    ("gene\ta\tb\ng1\t1\t2\ng2\t3\t4\t5\n", r"line 3: has 4 fields, expected 3"),
    ("gene\ta\tb\ng1\t1\tNA\n", r"line 2, column 'b': missing value 'NA'"),
    ("gene\ta\tb\ng1\t\t2\n", r"line 2, column 'a': missing value ''"),
    ("gene\ta\tb\ng1\t1\t2\ng2\t-inf\t2\n", r"line 3, column 'a': '-inf' is not a finite number"),
    ("gene\ta\tb\ng1\t1\t2\n\ng2\t3\t4\ng1\t5\t6\n", r"duplicate row name 'g1' \(lines 2 and 5\)"),
    ("gene\ta\tb\ta\ng1\t1\t2\t3\n", r"line 1: duplicate column name 'a' \(fields 2 and 4\)"),
    ("gene\ta\t\ng1\t1\t2\n", r"line 1: field 3 has an empty name"),
    ("gene\ta\tb\n\t1\t2\n", r"line 2: the row name is empty"),
    ("", r": is empty"),
    ("\n\n", r": is empty"),
    ("\ngene\ta\ng1\t1\n", r"line 1: is blank"),
    ("gene\ta\tb\n", r": has a header but no data rows"),
    ("gene\ng1\ng2\n", r"line 1: the header has no column after the row names"),
    ("gene a b\ng1 1 2\n", r"line 1: cannot tell the delimiter"),
]


@pytest.mark.parametrize("text,expected", BAD_TABLES)
def test_bad_tables_name_file_and_line(tmp_path, text, expected):
    suffix = ".txt" if "delimiter" in expected else ".tsv"  # .txt: the delimiter is sniffed
    path = write(tmp_path / f"bad{suffix}", text)
    with pytest.raises(InputError) as info:
        read_table(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    assert re.search(expected, message), message


def test_bad_value_in_gzip_and_after_many_lines(tmp_path):
    rows = [f"g{i}\t{i}\t{i + 1}" for i in range(2000)]
    rows[1500] = "g1500\t7\t7..1"
    path = write(tmp_path / "big.tsv.gz", "gene\ta\tb\n" + "\n".join(rows) + "\n")
    with pytest.raises(InputError, match=r"big\.tsv\.gz, line 1502, column 'b': '7\.\.1'"):
        read_table(path)


def test_too_large_for_float32(tmp_path):
    path = write(tmp_path / "x.tsv", "g\ta\ng1\t1e300\n")
    assert read_table(path).values[0, 0] == 1e300
    with pytest.raises(InputError, match=r"line 2, column 'a': '1e300' is too large for float32"):
        read_table(path, dtype="float32")


def test_missing_file_folder_and_bad_arguments(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_table(tmp_path / "nope.tsv")
    with pytest.raises(InputError, match="is a folder"):
        read_table(tmp_path)
    path = write(tmp_path / "ok.tsv", "g\ta\ng1\t1\n")
    with pytest.raises(InputError, match="orientation"):
        read_table(path, orientation="columns")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="dtype"):
        read_table(path, dtype="int32")


def test_not_utf8(tmp_path):
    path = tmp_path / "latin1.tsv"
    path.write_bytes("g\tcaf\xe9\ng1\t1\n".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8"):
        read_table(path)
