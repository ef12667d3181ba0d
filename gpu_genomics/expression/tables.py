"""Reading labelled numeric tables (CSV/TSV, plain or gzip) into a :class:`LabeledMatrix`.

A table has one header line of column names and one line per row: the row's name, then one
number per column. The first header field names the row-name column (``gene_id``, empty, ...);
a header with one field fewer than the data lines (R's ``write.table`` default) is read as
column names only. Blank lines are skipped. Fields may be quoted (``"``).

The delimiter comes from the suffix (``.csv`` comma; ``.tsv``/``.tab`` tab; a trailing ``.gz``
is ignored) unless the header line has none of it but the other one; other suffixes (``.txt``)
take it from the header line (tab if it has one, else comma). Gzip input is detected
from its magic bytes. Values are parsed by pandas' C engine with its default float parser (as
the specification's ``pd.read_csv``: within a few ulp of correct rounding). Missing values
(empty, ``NA``, ``N/A``, ``NaN``, ``nan``, ``null``, ``NULL``) and infinities are errors, as are
non-numbers, ragged lines, duplicate or empty names and empty tables: each raises
:class:`~gpu_genomics.errors.InputError` with one line naming the file, the line and the column.

The reader is generic: bulk RNA-seq (genes x samples) and single-cell count tables (cells x
genes) both go through :func:`read_table`, which only knows *rows* and *columns*; ``orientation``
says which of them are the observations (samples, cells) and which the features (genes).
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import os
import re
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import InputError, check_choice
from ..io.files import is_gzip

Orientation = Literal["rows-are-features", "rows-are-observations"]
ORIENTATIONS = ("rows-are-features", "rows-are-observations")
#: Cell texts read as missing values (and so rejected).
MISSING_TOKENS = ("", "NA", "N/A", "NaN", "nan", "null", "NULL")
_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*(e[+-]?\d+)?|\.\d+(e[+-]?\d+)?|inf|infinity|nan)\s*", re.I)
_SHOWN = 40  # characters of an offending cell quoted in an error message


@dataclass(frozen=True)
class LabeledMatrix:
    """A dense numeric matrix with names along both axes.

    Attributes:
        values: ``(n_observations, n_features)`` float32 or float64, finite, C-contiguous.
        observation_names: ``(n_observations,)`` object array of str (samples, cells).
        feature_names: ``(n_features,)`` object array of str (genes).
        source: the file it was read from (for error messages), or None.
        orientation: how the file was laid out; with ``source``, lets :meth:`locate` name the
            line and column of any cell.
        delimiter: the file's field delimiter.
    """

    values: np.ndarray
    observation_names: np.ndarray
    feature_names: np.ndarray
    source: str | None = None
    orientation: Orientation = "rows-are-observations"
    delimiter: str = "\t"
    _lines: list[int] = field(default_factory=list, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        n_obs, n_features = self.values.shape
        if len(self.observation_names) != n_obs or len(self.feature_names) != n_features:
            raise ValueError(
                f"values {self.values.shape} do not match {len(self.observation_names)} "
                f"observation names and {len(self.feature_names)} feature names"
            )

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_observations, n_features)``."""
        return self.values.shape  # type: ignore[return-value]

    def locate(self, observation: int, feature: int) -> str:
        """Say where the cell ``values[observation, feature]`` is.

        The text is ``"<file>, line N, column 'C'"`` when the matrix was read from a file, else
        ``"observation 'O', feature 'F'"``.
        """
        obs_name, feature_name = self.observation_names[observation], self.feature_names[feature]
        if self.source is None:
            return f"observation {obs_name!r}, feature {feature_name!r}"
        if self.orientation == "rows-are-features":
            row, column = feature, obs_name
        else:
            row, column = observation, feature_name
        return f"{self.source}, line {self.row_line(row)}, column {column!r}"

    def row_line(self, row: int) -> int:
        """Return the 1-based line number of data row ``row`` in the source file.

        ``row`` is 0-based, blank lines not counted. The line numbers are computed on first use
        by a pass over the file.

        Raises:
            ValueError: the matrix was not read from a file.
        """
        if self.source is None:
            raise ValueError("the matrix was not read from a file")
        if not self._lines:
            self._lines.extend(_data_row_lines(self.source, self.delimiter))
        return self._lines[row]


def read_table(
    path: str | os.PathLike,
    *,
    orientation: Orientation = "rows-are-features",
    dtype: Any = np.float64,
) -> LabeledMatrix:
    """Read a CSV/TSV table (plain or gzip) of numbers with row and column names.

    Args:
        path: the table; see the module docstring for the layout.
        orientation: ``"rows-are-features"`` (the default: one row per gene, one column per
            sample, as the specification's bulk RNA-seq example) or ``"rows-are-observations"``
            (one row per sample or cell).
        dtype: float64 (default) or float32, the dtype of ``values``.

    Returns:
        A :class:`LabeledMatrix` with ``values`` of shape ``(n_observations, n_features)``,
        i.e. the file's rows x columns transposed when rows are features.

    Raises:
        InputError: the file is missing, empty or malformed (non-number, missing or infinite
            value, ragged line, duplicate or empty name): one line naming file, line, column.
    """
    check_choice("orientation", orientation, ORIENTATIONS)
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise InputError(f"dtype={dtype} must be float32 or float64")
    source = str(path)
    _check_readable(source)
    header, first_row, delimiter = _read_head(source)
    # R's write.table writes no header field over the row names: the data lines have one more
    row_name_in_header = first_row is None or len(first_row) != len(header) + 1
    column_names = header[1:] if row_name_in_header else header
    if not column_names:
        raise InputError(
            f"{source}, line 1: the header has no column after the row names "
            f"(delimiter {delimiter!r}); give one column per {_column_kind(orientation)}"
        )
    _check_column_names(source, column_names, first_index=2 if row_name_in_header else 1)
    if first_row is None:
        raise InputError(
            f"{source}: has a header but no data rows; give one line per {_row_kind(orientation)}"
        )
    values, row_names, parse_error = _parse_fast(source, delimiter, len(column_names), dtype)
    if values is None:
        _raise_first_problem(source, delimiter, column_names, dtype, parse_error)
    columns = np.array(column_names, dtype=object)
    matrix = LabeledMatrix(
        values=np.ascontiguousarray(values.T if orientation == "rows-are-features" else values),
        observation_names=columns if orientation == "rows-are-features" else row_names,
        feature_names=row_names if orientation == "rows-are-features" else columns,
        source=source,
        orientation=orientation,
        delimiter=delimiter,
    )
    _check_row_names(matrix, row_names)
    return matrix


def _parse_fast(
    source: str, delimiter: str, n_columns: int, dtype: np.dtype
) -> tuple[np.ndarray | None, np.ndarray, Exception | None]:
    """Parse the table's data rows with pandas' C parser.

    Returns ``(values (rows, columns), row names, None)``, or ``(None, _, error)`` when the
    table is not well formed (the Python scan then finds where).
    """
    import pandas as pd

    columns = range(1, n_columns + 1)
    try:
        with warnings.catch_warnings():  # a float32 overflow is reported by the scan below
            warnings.simplefilter("ignore", RuntimeWarning)
            frame = pd.read_csv(
                source,
                sep=delimiter,
                header=None,
                skiprows=1,
                names=list(range(n_columns + 1)),
                index_col=0,
                dtype={0: str, **dict.fromkeys(columns, dtype)},
                na_values={column: list(MISSING_TOKENS) for column in columns},
                keep_default_na=False,
                engine="c",
                compression="gzip" if is_gzip(source) else None,
                encoding="utf-8-sig",
                skip_blank_lines=True,
            )
        values = frame.to_numpy(dtype=dtype)
    except UnicodeDecodeError as exc:
        raise InputError(f"{source}: is not UTF-8 text ({exc.reason}); save it as UTF-8") from None
    except (ValueError, TypeError, pd.errors.ParserError) as exc:  # non-number, too many fields
        return None, np.empty(0, dtype=object), exc
    except (OSError, EOFError, zlib.error):  # a truncated gzip: the Python scan names the line
        return None, np.empty(0, dtype=object), None
    if (
        values.shape[1] != n_columns
        or not frame.index.notna().all()
        or not bool(np.isfinite(values).all())
    ):
        return None, np.empty(0, dtype=object), None
    return values, np.array([str(name) for name in frame.index], dtype=object), None


# --- helpers -------------------------------------------------------------------------------------
def _row_kind(orientation: str) -> str:
    return "gene (feature)" if orientation == "rows-are-features" else "sample (observation)"


def _column_kind(orientation: str) -> str:
    return "sample (observation)" if orientation == "rows-are-features" else "gene (feature)"


def _check_readable(source: str) -> None:
    path = Path(source)
    if not path.exists():
        raise InputError(f"{source}: no such file")
    if path.is_dir():
        raise InputError(f"{source}: is a folder, not a CSV/TSV table")


def _open_text(source: str) -> io.TextIOBase:
    if is_gzip(source):
        return io.TextIOWrapper(gzip.open(source, "rb"), encoding="utf-8-sig", newline="")
    return open(source, encoding="utf-8-sig", newline="")


def _suffix_delimiter(source: str) -> str | None:
    suffixes = [s.lower() for s in Path(source).suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    if not suffixes:
        return None
    return {".csv": ",", ".tsv": "\t", ".tab": "\t"}.get(suffixes[-1])


def _choose_delimiter(source: str, header_line: str) -> str:
    """The suffix's delimiter unless the header line clearly uses the other one."""
    by_suffix = _suffix_delimiter(source)
    counts = {"\t": header_line.count("\t"), ",": header_line.count(",")}
    if by_suffix is not None and (counts[by_suffix] or not any(counts.values())):
        return by_suffix
    if counts["\t"]:
        return "\t"
    if counts[","]:
        return ","
    raise InputError(
        f"{source}, line 1: cannot tell the delimiter (the header has neither tabs nor "
        "commas); write a tab- or comma-separated table (.tsv or .csv)"
    )


def _read_head(source: str) -> tuple[list[str], list[str] | None, str]:
    """The header fields, the first non-blank data row's fields (None if none), the delimiter."""
    try:
        with _open_text(source) as handle:
            header_line = handle.readline()
            if not header_line.strip():
                if any(line.strip() for line in handle):
                    raise InputError(
                        f"{source}, line 1: is blank; the first line must be the header of "
                        "column names"
                    )
                raise InputError(
                    f"{source}: is empty; expected a header line of column names, then one line "
                    "per row"
                )
            delimiter = _choose_delimiter(source, header_line)
            rows = csv.reader(itertools.chain([header_line], handle), delimiter=delimiter)
            header = next(rows)
            first_row = next((row for row in rows if row), None)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InputError(f"{source}: cannot be read ({exc})") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{source}: is not UTF-8 text ({exc.reason}); save it as UTF-8") from None
    except csv.Error as exc:
        raise InputError(f"{source}: is not a valid CSV/TSV table ({exc})") from None
    return header, first_row, delimiter


def _iter_rows(source: str, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """``(line number, fields)`` of every non-blank data line (after the header).

    Raises:
        InputError: the file ends early or is corrupt (a truncated gzip), naming the line.
    """
    line = 1
    try:
        with _open_text(source) as handle:
            rows = csv.reader(handle, delimiter=delimiter)
            next(rows, None)
            for row in rows:
                line = rows.line_num
                if row:
                    yield line, row
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(
            f"{source}: cannot be read after line {line} ({exc}); the file is truncated or "
            "corrupt: copy or download it again"
        ) from None


def _data_row_lines(source: str, delimiter: str) -> list[int]:
    return [line for line, _ in _iter_rows(source, delimiter)]


def _shown(text: str) -> str:
    return repr(text if len(text) <= _SHOWN else text[:_SHOWN] + "...")


def _check_column_names(source: str, names: list[str], first_index: int) -> None:
    """Reject empty and duplicate column names.

    ``first_index`` is the 1-based header field of the first column name.
    """
    seen: dict[str, int] = {}
    for i, name in enumerate(names, start=first_index):
        if name.strip() == "":
            raise InputError(f"{source}, line 1: field {i} has an empty name; name every column")
        if name in seen:
            raise InputError(
                f"{source}, line 1: duplicate column name {_shown(name)} (fields {seen[name]} "
                f"and {i}); column names must be unique"
            )
        seen[name] = i


def _check_row_names(matrix: LabeledMatrix, row_names: np.ndarray) -> None:
    """Reject empty and duplicate row names, naming their lines."""
    import pandas as pd

    empty = np.flatnonzero(row_names == "")
    if len(empty):
        raise InputError(
            f"{matrix.source}, line {matrix.row_line(int(empty[0]))}: the row name is empty; "
            "give every row a name in the first field"
        )
    duplicated = pd.Index(row_names).duplicated()
    if duplicated.any():
        second = int(np.argmax(duplicated))
        first = int(np.flatnonzero(row_names == row_names[second])[0])
        raise InputError(
            f"{matrix.source}: duplicate row name {_shown(row_names[second])} (lines "
            f"{matrix.row_line(first)} and {matrix.row_line(second)}); row names must be unique"
        )


def _raise_first_problem(
    source: str,
    delimiter: str,
    column_names: list[str],
    dtype: np.dtype,
    parse_error: Exception | None,
) -> None:
    """Scan the file in Python for the first bad line or cell and raise an InputError on it."""
    missing = set(MISSING_TOKENS)
    limit = float(np.finfo(dtype).max)
    for line, row in _iter_rows(source, delimiter):
        if len(row) != len(column_names) + 1:
            raise InputError(
                f"{source}, line {line}: has {len(row)} fields, expected {len(column_names) + 1} "
                f"(a row name and one value per column of the header)"
            )
        for column, text in zip(column_names, row[1:], strict=True):
            where = f"{source}, line {line}, column {column!r}"
            if text in missing:
                raise InputError(
                    f"{where}: missing value {text!r}; every cell needs a number "
                    "(missing values are not allowed)"
                )
            if not _NUMBER.fullmatch(text):
                raise InputError(
                    f"{where}: {_shown(text)} is not a number; every field after the row name "
                    "must be a number"
                )
            number = float(text)
            if not np.isfinite(number):
                raise InputError(f"{where}: {text.strip()!r} is not a finite number")
            if abs(number) > limit:
                raise InputError(f"{where}: {text.strip()!r} is too large for {dtype}")
    reason = f" ({type(parse_error).__name__}: {parse_error})" if parse_error else ""
    raise InputError(f"{source}: could not be read as a numeric table{reason}")
