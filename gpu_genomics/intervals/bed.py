"""Reading BED peak files and the metadata file that lists them.

Metadata (one entry per line; blank lines and ``#`` comments skipped; relative paths resolve
against the metadata file's folder), in one of three forms:

* ``path``: labels 1..K in line order, label names from the file names;
* ``path label``: a numeric custom label (files sharing a label share a column; columns in
  label order; the label is the column's name);
* ``name<TAB>path``: Basset's targets file; the name is the label's name, columns in line order.

BED: plain, gzip or bgzip; ``track``, ``browser``, ``#`` and blank lines skipped; tab- (or
whitespace-) separated, three columns or more; strand from column 6 when it is ``+`` or ``-``;
with ``summit=True``, the summit from narrowPeak column 10 (the 0-based offset of the peak's
summit from its start, ``0 <= offset < end - start``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numba
import numpy as np

from ..errors import InputError
from ..io.files import read_bytes, stem

if TYPE_CHECKING:
    import pandas as pd

_HEADER_PREFIXES = (b"#", b"track", b"browser")
_INTEGER = re.compile(r"^[+-]?\d+$")
MAX_COORDINATE = 2**40


@dataclass(frozen=True)
class BedSource:
    """One BED file of the metadata and the label column its peaks set."""

    path: Path
    column: int
    line: int


def read_metadata(path: str | os.PathLike) -> tuple[list[BedSource], list[str]]:
    """Parse a metadata file; return the BED sources and the label names (one per column)."""
    path = Path(path)
    entries = _metadata_entries(path)
    form = entries[0][3]
    sources, names = [], []
    if form == "custom":
        labels = sorted({int(label) for _, _, label, _ in entries if label is not None})
        column_of = {label: i for i, label in enumerate(labels)}
        names = [str(label) for label in labels]
    for index, (number, bed, label, _) in enumerate(entries):
        bed_path = _resolve(bed, path.parent)
        if not bed_path.is_file():
            what = "is a folder, not a BED file" if bed_path.is_dir() else "does not exist"
            raise InputError(f"{path}: line {number}: BED file {bed_path} {what}")
        if form == "custom":
            column = column_of[int(label)]
        else:
            column = index
            names.append(label if form == "basset" else stem(bed_path.name, BED_SUFFIXES))
        sources.append(BedSource(bed_path, column, number))
    return sources, names


def _metadata_entries(path: Path) -> list[tuple[int, str, str | None, str]]:
    """``(line, BED path, label or None, form)`` of each entry, every line in one form."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the metadata file ({exc}); check the path") from None
    entries: list[tuple[int, str, str | None, str]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split("\t") if "\t" in line else _split_spaces(line, path.parent)
        fields = [f.strip() for f in fields if f.strip()]
        if len(fields) == 1:
            entries.append((number, fields[0], None, "path"))
        elif len(fields) == 2 and _INTEGER.match(fields[1]):
            entries.append((number, fields[0], fields[1], "custom"))
        elif len(fields) == 2:
            entries.append((number, fields[1], fields[0], "basset"))
        else:
            raise InputError(
                f"{path}: line {number}: expected 'BED_PATH', 'BED_PATH LABEL' or "
                f"'NAME<TAB>BED_PATH', found {len(fields)} fields: {line[:80]!r}"
            )
    if not entries:
        raise InputError(f"{path}: the metadata file lists no BED files")
    forms = {form for *_, form in entries}
    if len(forms) > 1:
        number = next(n for n, *_, form in entries if form != entries[0][3])
        raise InputError(
            f"{path}: line {number}: mixes metadata forms ({', '.join(sorted(forms))}); "
            "use one form for every line"
        )
    return entries


def _split_spaces(line: str, folder: Path) -> list[str]:
    """Split a line without tabs into fields, keeping paths that contain spaces.

    The fields are the whole line when it names a file, else ``PATH LABEL`` when all but the
    last word name a file and the last word is an integer, else the line's words.
    """
    if _resolve(line, folder).is_file():
        return [line]
    head, _, last = line.rpartition(" ")
    if head and _INTEGER.match(last) and _resolve(head.strip(), folder).is_file():
        return [head.strip(), last]
    return line.split()


def _resolve(name: str, folder: Path) -> Path:
    return Path(name) if Path(name).is_absolute() else folder / name


BED_SUFFIXES = (".gz", ".bgz", ".bed", ".narrowPeak", ".broadPeak", ".txt")


def read_bed(path: str | os.PathLike, *, summit: bool = False) -> pd.DataFrame:
    """Read a BED file into a frame of peaks.

    The file's bytes (decompressed whole) are parsed in one numba pass; a file that pass does not
    take as clean (a bad line, but also spaces around fields, whitespace-separated lines, signs,
    a lone carriage return, non-ASCII chromosome names) is parsed again line by line, which
    names the first bad line. Memory: the decompressed file, plus at most 42 bytes per
    line (the parsed columns and their trimmed copies).

    Args:
        path: the BED file (plain, gzip or bgzip).
        summit: also read narrowPeak column 10 into a ``summit`` column: the summit's position,
            ``start + offset`` (int64).

    Returns:
        ``chrom`` (categorical str, categories sorted), ``start``, ``end`` (int64) and
        ``minus`` (bool) columns (and ``summit``), one row per data line. See
        ``docs/intervals.md#bed``.

    Raises:
        InputError: naming the file and line of a malformed row, a negative coordinate, a
            start after its end, or (``summit``) a missing summit column, a summit of -1 (none
            called) or outside the peak.
    """
    raw = read_bytes(path)
    frame = _read_bed_fast(raw, summit=summit)
    if frame is None:  # something is off: the line-by-line parser names the line
        return _read_bed_checked(path, raw, summit=summit)
    return frame


def _empty_peaks(*, summit: bool) -> pd.DataFrame:
    import pandas as pd

    columns = {
        "chrom": pd.Series([], dtype="category"),
        "start": np.zeros(0, np.int64),
        "end": np.zeros(0, np.int64),
        "minus": np.zeros(0, bool),
    }
    if summit:
        columns["summit"] = np.zeros(0, np.int64)
    return pd.DataFrame(columns)


def _read_bed_fast(raw: bytes, *, summit: bool = False) -> pd.DataFrame | None:
    """The numba parser's frame of a clean file; None when anything looks off."""
    import pandas as pd

    data = np.frombuffer(raw, dtype=np.uint8)
    status, codes, starts, ends, minus, summits, name_at, name_length = _parse_bed(
        data, MAX_COORDINATE, summit
    )
    if status != 0:
        return None
    if not len(codes):
        return _empty_peaks(summit=summit)
    names = [raw[a : a + n].decode("ascii") for a, n in zip(name_at, name_length, strict=True)]
    order = sorted(range(len(names)), key=names.__getitem__)
    code_of = np.empty(len(names), dtype=np.int32)
    code_of[order] = np.arange(len(names), dtype=np.int32)
    chrom = pd.Categorical.from_codes(code_of[codes], categories=[names[i] for i in order])
    frame = pd.DataFrame({"chrom": chrom, "start": starts, "end": ends, "minus": minus})
    if summit:
        frame["summit"] = starts + summits
    return frame


# Bytes at which ``str.splitlines`` may break a line other than at "\n" (or "\r\n"): "\r",
# "\v", "\f", 0x1c-0x1e, and the lead bytes of U+0085 (C2 85), U+2028 and U+2029 (E2 80 A8/9)
_ODD_BYTES = np.zeros(256, dtype=np.bool_)
_ODD_BYTES[[11, 12, 13, 28, 29, 30, 0xC2, 0xE2]] = True


@numba.njit(cache=True, nogil=True, inline="always")
def _is_blank(byte):  # pragma: no cover
    """Space, tab or unit separator: whitespace inside a line as ``str.strip`` sees it."""
    return byte in (32, 9, 31)


@numba.njit(cache=True, nogil=True, inline="always")
def _starts_with(data, at, end, word):  # pragma: no cover
    if end - at < len(word):
        return False
    for k in range(len(word)):
        if data[at + k] != word[k]:
            return False
    return True


@numba.njit(cache=True, nogil=True, inline="always")
def _breaks_line(data, k):  # pragma: no cover
    """True when ``str.splitlines`` breaks a line at ``data[k]``, one of ``_ODD_BYTES``."""
    n = len(data)
    byte = data[k]
    if byte == 13:
        return k + 1 == n or data[k + 1] != 10
    if byte == 0xC2:
        return k + 1 < n and data[k + 1] == 0x85
    if byte == 0xE2:
        return k + 2 < n and data[k + 1] == 0x80 and data[k + 2] in (0xA8, 0xA9)
    return True


@numba.njit(cache=True, nogil=True, inline="always")
def _digits(data, at, end):  # pragma: no cover
    """Return the value of ``data[at:end]``, 1 to 15 decimal digits, or -1 for anything else."""
    if end <= at or end - at > 15:
        return -1
    value = 0
    for k in range(at, end):
        digit = np.int64(data[k]) - 48
        if digit < 0 or digit > 9:
            return -1
        value = value * 10 + digit
    return value


@numba.njit(cache=True, nogil=True)
def _parse_bed(data, max_coordinate, summit):  # pragma: no cover  # noqa: PLR0911, PLR0912, PLR0915
    """Parse the clean BED lines of ``data`` (``(n_bytes,) uint8``); see :func:`read_bed`.

    A clean data line is tab-separated with at least three fields: a chromosome of printable
    ASCII without spaces, start and end of at most 15 decimal digits with
    ``start <= end <= max_coordinate``, and, when there is a sixth field, a strand field of
    printable ASCII; with ``summit``, a tenth field of decimal digits below ``end - start``; no
    byte of the file may break a line for ``str.splitlines`` where a line feed does not. Blank
    lines and lines starting with ``#``, ``track`` or ``browser`` (after
    spaces and tabs) are skipped. Anything else stops the scan with status 1.

    Returns:
        ``(status, codes, starts, ends, minus, summits, name_at, name_length)``: per data line
        the chromosome's code (``(n,) int32``, in order of first appearance), ``(n,) int64``
        start, end and summit offset (0 without ``summit``) and ``(n,) bool`` strand; per code
        the byte offset and length of its name.
    """
    empty = np.zeros(0, dtype=np.int64)
    nothing = (1, empty.astype(np.int32), empty, empty, empty.astype(np.bool_), empty, empty, empty)
    n = len(data)
    capacity = 1
    for i in range(n):
        capacity += data[i] == 10
    codes = np.empty(capacity, dtype=np.int32)
    starts = np.empty(capacity, dtype=np.int64)
    ends = np.empty(capacity, dtype=np.int64)
    minus = np.empty(capacity, dtype=np.bool_)
    summits = np.zeros(capacity, dtype=np.int64)
    name_at = np.empty(64, dtype=np.int64)
    name_length = np.empty(64, dtype=np.int64)
    by_hash = numba.typed.Dict.empty(key_type=numba.types.int64, value_type=numba.types.int64)
    hash_prime = np.uint64(1099511628211)
    hash_basis = np.uint64(14695981039346656037)
    track = np.array([116, 114, 97, 99, 107], dtype=np.uint8)
    browser = np.array([98, 114, 111, 119, 115, 101, 114], dtype=np.uint8)
    n_rows = 0
    n_names = 0
    previous = -1  # code of the previous data line's chromosome
    i = 0
    tabs = np.empty(10, dtype=np.int64)
    while i < n:
        # one scan to the line feed: the first ten tabs, and no other line break
        k = i
        n_tabs = 0
        while k < n:
            byte = data[k]
            if byte == 10:
                break
            if byte == 9:
                if n_tabs < 10:
                    tabs[n_tabs] = k
                n_tabs += 1
            elif _ODD_BYTES[byte] and _breaks_line(data, k):
                return nothing
            k += 1
        next_line = k + 1
        line_end = k - 1 if k > i and data[k - 1] == 13 else k
        first = i
        while first < line_end and _is_blank(data[first]):
            first += 1
        if (
            first == line_end
            or data[first] == 35  # '#'
            or (data[first] == 116 and _starts_with(data, first, line_end, track))
            or (data[first] == 98 and _starts_with(data, first, line_end, browser))
        ):
            i = next_line
            continue
        if first != i or n_tabs < 2 or tabs[0] == i:
            return nothing
        name_end = tabs[0]
        start = _digits(data, tabs[0] + 1, tabs[1])
        end = _digits(data, tabs[1] + 1, tabs[2] if n_tabs > 2 else line_end)
        if start < 0 or end < 0 or start > end or end > max_coordinate:
            return nothing
        strand_minus = False
        if n_tabs >= 5:
            field_from = tabs[4] + 1
            field_end = tabs[5] if n_tabs > 5 else line_end
            for m in range(field_from, field_end):
                if data[m] < 33 or data[m] > 126:
                    return nothing
            strand_minus = field_end - field_from == 1 and data[field_from] == 45  # '-'
        if summit:
            if n_tabs < 9:
                return nothing
            offset = _digits(data, tabs[8] + 1, tabs[9] if n_tabs > 9 else line_end)
            if offset < 0 or offset >= end - start:
                return nothing
            summits[n_rows] = offset
        # the chromosome's code: the previous line's, else by hash (names compared in full)
        length = name_end - i
        code = -1
        if previous >= 0 and name_length[previous] == length:
            at = name_at[previous]
            same = True
            for m in range(length):
                if data[at + m] != data[i + m]:
                    same = False
                    break
            if same:
                code = previous
        if code < 0:  # a name not on the previous line: checked, then looked up by hash
            h = hash_basis
            for m in range(i, name_end):
                if data[m] < 33 or data[m] > 126:
                    return nothing
                h = (h ^ np.uint64(data[m])) * hash_prime
            key = np.int64(h)
            if key in by_hash:
                code = by_hash[key]
                at = name_at[code]
                if name_length[code] != length:
                    return nothing  # a hash collision: left to the line-by-line parser
                for m in range(length):
                    if data[at + m] != data[i + m]:
                        return nothing
            else:
                if n_names == len(name_at):
                    name_at = np.concatenate((name_at, np.empty(n_names, dtype=np.int64)))
                    name_length = np.concatenate((name_length, np.empty(n_names, np.int64)))
                code = n_names
                name_at[code] = i
                name_length[code] = length
                by_hash[key] = code
                n_names += 1
        previous = code
        codes[n_rows] = code
        starts[n_rows] = start
        ends[n_rows] = end
        minus[n_rows] = strand_minus
        n_rows += 1
        i = next_line
    return (
        0,
        codes[:n_rows].copy(),
        starts[:n_rows].copy(),
        ends[:n_rows].copy(),
        minus[:n_rows].copy(),
        summits[:n_rows].copy(),
        name_at[:n_names].copy(),
        name_length[:n_names].copy(),
    )


def _read_bed_checked(path: str | os.PathLike, raw: bytes, *, summit: bool = False) -> pd.DataFrame:
    """Line-by-line parser that names the first bad line."""
    import pandas as pd

    chroms, starts, ends, minus, summits = [], [], [], [], []
    for number, line in enumerate(raw.decode("utf-8", "replace").splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "track", "browser")):
            continue
        fields = line.rstrip("\r\n").split("\t") if "\t" in line else line.split()
        where = f"{path}: line {number}"
        if len(fields) < 3:
            raise InputError(f"{where}: a BED line needs chrom, start and end; found {line!r}")
        chrom, start_text, end_text = fields[0].strip(), fields[1].strip(), fields[2].strip()
        if not _INTEGER.match(start_text) or not _INTEGER.match(end_text):
            raise InputError(
                f"{where}: start and end must be integers, found {start_text!r} and {end_text!r}"
            )
        start, end = int(start_text), int(end_text)
        if end > MAX_COORDINATE:
            raise InputError(f"{where}: coordinate {end} is beyond any chromosome; fix the line")
        if start < 0 or end < 0:
            raise InputError(f"{where}: negative coordinate ({start}, {end}); BED is 0-based")
        if start > end:
            raise InputError(f"{where}: start {start} is after end {end}; swap or fix them")
        if not chrom:
            raise InputError(f"{where}: empty chromosome name")
        if summit:
            summits.append(start + _summit_offset(fields, start, end, where))
        chroms.append(chrom)
        starts.append(start)
        ends.append(end)
        minus.append(len(fields) > 5 and fields[5].strip() == "-")
    if not chroms:
        return _empty_peaks(summit=summit)
    frame = pd.DataFrame(
        {
            "chrom": pd.Categorical(chroms),
            "start": np.array(starts, np.int64),
            "end": np.array(ends, np.int64),
            "minus": np.array(minus, bool),
        }
    )
    if summit:
        frame["summit"] = np.array(summits, np.int64)
    return frame


def _summit_offset(fields: list[str], start: int, end: int, where: str) -> int:
    """The summit offset of narrowPeak column 10, checked to lie inside the peak."""
    if len(fields) < 10:
        raise InputError(
            f"{where}: center='summit' needs narrowPeak column 10 (the summit's offset from the "
            f"start); the line has {len(fields)} columns; use center='midpoint'"
        )
    text = fields[9].strip()
    if not _INTEGER.match(text):
        raise InputError(f"{where}: the summit (column 10) must be an integer, found {text!r}")
    offset = int(text)
    if offset == -1:
        raise InputError(
            f"{where}: no summit was called for this peak (column 10 is -1); "
            "use center='midpoint' or drop the line"
        )
    if not 0 <= offset < end - start:
        raise InputError(
            f"{where}: the summit offset {offset} (column 10) lies outside the peak "
            f"{start}-{end} ({end - start} bases); it must be 0 to {end - start - 1}"
        )
    return offset
