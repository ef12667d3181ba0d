"""Reading BED peak files and the metadata file that lists them.

Metadata (one entry per line; blank lines and ``#`` comments skipped; relative paths resolve
against the metadata file's folder), in one of three forms:

* ``path``: labels 1..K in line order, label names from the file names;
* ``path label``: a numeric custom label (files sharing a label share a column; columns in
  label order; the label is the column's name);
* ``name<TAB>path``: Basset's targets file; the name is the label's name, columns in line order.

BED: plain, gzip or bgzip; ``track``, ``browser``, ``#`` and blank lines skipped; tab- (or
whitespace-) separated, three columns or more; strand from column 6 when it is ``+`` or ``-``.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

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


def read_bed(path: str | os.PathLike) -> pd.DataFrame:
    """Read a BED file into a frame of peaks.

    The columns are ``chrom`` (categorical str), ``start``, ``end`` (int64) and ``minus``
    (bool). See ``docs/intervals.md#bed``.

    Raises:
        InputError: naming the file and line of a malformed row, a negative coordinate or a
            start after its end.
    """
    original = raw = read_bytes(path)
    if any(raw.startswith(p) or b"\n" + p in raw for p in _HEADER_PREFIXES):
        raw = b"\n".join(
            line for line in raw.split(b"\n") if not line.lstrip().startswith(_HEADER_PREFIXES)
        )
    if not raw.strip():
        return _empty_peaks()
    frame = _read_bed_fast(raw)
    if frame is None:  # something is off: the line-by-line parser names the line
        return _read_bed_checked(path, original)
    return frame


def _empty_peaks() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(
        {
            "chrom": pd.Series([], dtype="category"),
            "start": np.zeros(0, np.int64),
            "end": np.zeros(0, np.int64),
            "minus": np.zeros(0, bool),
        }
    )


def _read_bed_fast(raw: bytes) -> pd.DataFrame | None:
    """Pandas' C parser for the common clean file; None when anything looks off."""
    import pandas as pd

    first = raw.lstrip().split(b"\n", 1)[0]
    n_fields = first.count(b"\t") + 1
    if n_fields < 3:
        return None
    columns = [0, 1, 2, 5] if n_fields >= 6 else [0, 1, 2]
    try:
        frame = pd.read_csv(
            io.BytesIO(raw),
            sep="\t",
            header=None,
            usecols=columns,
            dtype={0: "category", 5: "category"},
            skip_blank_lines=True,
            engine="c",
            na_filter=False,
            names=range(n_fields),
        )
    except (ValueError, pd.errors.ParserError):
        return None
    if frame[1].dtype.kind != "i" or frame[2].dtype.kind != "i":
        return None
    start, end = frame[1].to_numpy(np.int64), frame[2].to_numpy(np.int64)
    if (start < 0).any() or (start > end).any() or "" in frame[0].cat.categories:
        return None
    minus = (frame[5] == "-").to_numpy() if 5 in frame else np.zeros(len(frame), bool)
    return pd.DataFrame({"chrom": frame[0], "start": start, "end": end, "minus": minus})


def _read_bed_checked(path: str | os.PathLike, raw: bytes) -> pd.DataFrame:
    """Line-by-line parser that names the first bad line."""
    import pandas as pd

    chroms, starts, ends, minus = [], [], [], []
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
        chroms.append(chrom)
        starts.append(start)
        ends.append(end)
        minus.append(len(fields) > 5 and fields[5].strip() == "-")
    if not chroms:
        return _empty_peaks()
    return pd.DataFrame(
        {
            "chrom": pd.Categorical(chroms),
            "start": np.array(starts, np.int64),
            "end": np.array(ends, np.int64),
            "minus": np.array(minus, bool),
        }
    )
