"""Reading FASTA (multi-line) and FASTQ (4-line records) files, plain or gzip/bgzip compressed.

The records come back as one flat byte buffer plus offsets, the layout of
:class:`~gpu_genomics.sequence.batch.SequenceBatch`.

Vectorised: a few NumPy passes over the file's bytes, no per-base Python.
"""

from __future__ import annotations

import functools
import os
import shlex
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io.files import GZIP_MAGIC, read_bytes


def read_fastx(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Parse a FASTA (multi-line) or FASTQ (4-line records) file, plain or gzip.

    Returns ``(data, offsets, names)``: ``uint8`` bases back to back, ``(n + 1,) int64``
    offsets and the header's first word of each record. Vectorised: a few passes over the
    bytes, no per-base Python.
    """
    raw = read_bytes(path)
    buf = np.frombuffer(raw, dtype=np.uint8)
    stripped = raw.lstrip()
    if not stripped:
        raise InputError(f"{path}: the file is empty; expected FASTA ('>') or FASTQ ('@') records")
    starts, content_ends = _lines(buf)
    first = stripped[:1]
    if first == b">":
        return _parse_fasta(path, raw, buf, starts, content_ends)
    if first == b"@":
        return _parse_fastq(path, raw, buf, starts, content_ends)
    line = _first_content_line(raw)
    raise InputError(
        f"{path}: line {line}: expected a FASTA header ('>') or FASTQ record ('@'), "
        f"found {stripped[:20]!r}; is this a sequence file?"
    )


def _first_content_line(raw: bytes) -> int:
    """The 1-based line of ``raw``'s first byte that is not whitespace."""
    return raw[: len(raw) - len(raw.lstrip())].count(b"\n") + 1


def _lines(buf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(starts, ends)`` of every line of ``buf``, without its newline and carriage return."""
    newlines = np.flatnonzero(buf == ord("\n"))
    starts = np.concatenate(([0], newlines + 1))
    ends = np.concatenate((newlines, [len(buf)]))
    if starts[-1] == len(buf):  # the buffer ends with a newline
        starts, ends = starts[:-1], ends[:-1]
    # strip a trailing '\r' from every line (Windows line ends)
    has_cr = (ends > starts) & (buf[np.maximum(ends - 1, 0)] == ord("\r"))
    return starts, ends - has_cr


#: Bytes read at a time when scanning a FASTA file for its records.
SCAN_BLOCK_BYTES = 16 * 2**20


def _header_offsets(data: np.ndarray, previous: int) -> np.ndarray:
    """Offsets in ``data`` of every ``>`` that begins a line (``previous``: the byte before)."""
    before = np.concatenate((np.array([previous], dtype=np.uint8), data[:-1]))
    return np.flatnonzero((data == ord(">")) & (before == ord("\n")))


def fasta_record_starts(path: str | os.PathLike) -> np.ndarray | None:
    """Return the byte offset of every record of a plain (uncompressed) FASTA file.

    A record starts at a ``>`` that begins a line, as :func:`read_fastx` reads them; the file
    is read once in blocks of :data:`SCAN_BLOCK_BYTES`, holding only the offsets.

    Returns:
        ``(n_records,) int64`` offsets, or None when the file is compressed or is not FASTA
        (its first non-blank byte is not ``>``): then read it whole with :func:`read_fastx`.
    """
    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
        if head.startswith(GZIP_MAGIC) or not head.lstrip()[:1] == b">":
            return None
        handle.seek(0)
        found: list[np.ndarray] = []
        position, previous = 0, ord("\n")  # the file's first byte begins a line
        while block := handle.read(SCAN_BLOCK_BYTES):
            data = np.frombuffer(block, dtype=np.uint8)
            found.append(_header_offsets(data, previous) + position)
            position += len(block)
            previous = int(data[-1])
    return np.concatenate(found).astype(np.int64) if found else np.zeros(0, np.int64)


@dataclass(frozen=True)
class IndexedRecords:
    """The records of a FASTA file that workers read a block at a time.

    This process holds where the records start, never their bases: a block of records is a
    range of the file's (uncompressed) bytes that a worker parses as :func:`read_fastx` parses
    the whole file.

    Attributes:
        path: the file.
        kind: ``"plain"`` (an uncompressed FASTA) or ``"bgzf"`` (a bgzip FASTA with its
            ``.fai`` and ``.gzi``, read through the ``.gzi``).
        bounds: ``(n + 1,) int64`` uncompressed byte offsets: record ``i`` is
            ``bounds[i]:bounds[i + 1]``; the last bound is the end of the file (``-1`` for
            ``"bgzf"``: read to the end).
    """

    path: str
    kind: str
    bounds: np.ndarray

    def __len__(self) -> int:
        return len(self.bounds) - 1

    def block(self, first: int, stop: int) -> tuple:
        """Describe records ``first .. stop - 1`` for :func:`read_block` (small, picklable)."""
        stop = min(stop, len(self))
        return (self.kind, self.path, int(self.bounds[first]), int(self.bounds[stop]), first, stop)


def plain_records(path: str | os.PathLike) -> IndexedRecords | None:
    """The records of a plain FASTA file (:func:`fasta_record_starts`), or None (not one)."""
    starts = fasta_record_starts(path)
    if starts is None:
        return None
    return IndexedRecords(str(path), "plain", np.append(starts, Path(path).stat().st_size))


def bgzf_split_points(path: str | os.PathLike) -> np.ndarray | None:
    """Offsets where a bgzip FASTA can be cut between records, from its ``.fai``, or None.

    ``0`` and the end of every record the ``.fai`` lists but the last, just after its last
    sequence line (from the columns length, offset, bases per line and bytes per line). The
    ``.fai`` does not list every record (samtools faidx skips empty records and repeated
    names), so a range between two points holds one or more records: :func:`locate_records`
    finds them. None, to read the file in one process, when the file is not bgzip, the
    ``.fai`` or ``.gzi`` is missing or older than the file, or the index is not a FASTA one.
    """
    from ..io.files import is_bgzf

    fai, gzi = Path(f"{path}.fai"), Path(f"{path}.gzi")
    if not (is_bgzf(path) and fai.is_file() and gzi.is_file()):
        return None
    if min(fai.stat().st_mtime, gzi.stat().st_mtime) < Path(path).stat().st_mtime:
        return None
    rows = [line.split("\t") for line in fai.read_text().splitlines() if line]
    if not rows or any(len(row) != 5 for row in rows):  # six columns: samtools fqidx
        return None
    try:
        length, offset, line_bases, line_bytes = (
            np.array([int(row[i]) for row in rows], dtype=np.int64) for i in (1, 2, 3, 4)
        )
    except ValueError:
        return None
    if (line_bases <= 0).any() or (line_bytes < line_bases).any():
        return None
    full, rest = np.divmod(length, line_bases)
    ends = offset + full * line_bytes + np.where(rest > 0, rest + line_bytes - line_bases, 0)
    return np.concatenate(([0], ends[:-1]))


def locate_records(path: str, start: int, stop: int) -> np.ndarray:
    """Uncompressed offsets of the records of a bgzip FASTA between two split points.

    ``start:stop`` as :func:`bgzf_split_points` gives them (``stop`` -1: the end).

    Returns:
        ``(n,) int64`` absolute offsets of the ``>`` of every record in the range.

    Raises:
        InputError: the range does not begin with a record (the ``.fai`` does not match).
    """
    raw = _bgzf_range(path, start, stop)
    data = np.frombuffer(raw, dtype=np.uint8)
    heads = _header_offsets(data, ord("\n"))
    if not len(heads) or raw[: heads[0]].strip():
        raise InputError(
            f"{path}: no record starts at byte {start} where {path}.fai places one; the index "
            f"is out of date: rerun samtools faidx {shlex.quote(str(path))}"
        )
    return (heads + start).astype(np.int64)


@functools.lru_cache(maxsize=8)
def _gzi_blocks(path: str, modified_ns: int) -> np.ndarray:
    """``(n, 2)`` (compressed, uncompressed) start of each BGZF block from ``path.gzi``.

    Read once per worker process and file version (``modified_ns``: the .gzi's mtime).
    """
    index = Path(f"{path}.gzi").read_bytes()
    n = int.from_bytes(index[:8], "little")
    return np.frombuffer(index, dtype="<u8", count=2 * n, offset=8).reshape(n, 2)


def _bgzf_range(path: str, start: int, stop: int) -> bytes:
    """Uncompressed bytes ``start:stop`` of a bgzip file (``stop`` -1: to the end), via its .gzi."""
    from pysam import libcbgzf

    blocks = _gzi_blocks(path, Path(f"{path}.gzi").stat().st_mtime_ns)
    i = int(np.searchsorted(blocks[:, 1], start, side="right")) - 1
    compressed, uncompressed = (0, 0) if i < 0 else (int(blocks[i, 0]), int(blocks[i, 1]))
    with libcbgzf.BGZFile(path, "rb") as handle:
        handle.seek((compressed << 16) | (start - uncompressed))  # a BGZF virtual offset
        return handle.read(-1 if stop < 0 else stop - start)


def read_block(block: tuple) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read the records an :meth:`IndexedRecords.block` describes: ``(data, offsets, names)``.

    Parsed as :func:`read_fastx` parses a whole FASTA file.

    Raises:
        InputError: the range no longer holds those records.
    """
    kind, path, start, stop, first, last = block
    if kind == "bgzf":
        raw = _bgzf_range(path, start, stop)
    else:
        with open(path, "rb") as handle:
            handle.seek(start)
            raw = handle.read(stop - start)
    buf = np.frombuffer(raw, dtype=np.uint8)
    starts, ends = _lines(buf)
    heads = np.flatnonzero(buf[starts] == ord(">"))
    if len(heads) != last - first or (ends[: heads[0]] > starts[: heads[0]]).any():
        raise InputError(f"{path}: the file changed while it was read; rerun the job")
    return _parse_fasta(path, raw, buf, starts, ends)


def _gather_lines(
    buf: np.ndarray, starts: np.ndarray, ends: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate ``buf[starts[i]:ends[i]]`` for all lines; return the bytes and line lengths."""
    lengths = ends - starts
    keep = np.zeros(len(buf) + 1, dtype=np.int8)
    np.add.at(keep, starts, 1)
    np.add.at(keep, ends, -1)
    mask = np.cumsum(keep[:-1], dtype=np.int8).astype(bool)
    return buf[mask], lengths


def _names(raw: bytes, starts: np.ndarray, ends: np.ndarray, path: object) -> list[str]:
    """The first word of each header line.

    Raises:
        InputError: a name holds a NUL byte (no output format can store it).
    """
    names = []
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        header = raw[s + 1 : e].split(maxsplit=1)
        name = header[0] if header else b""
        if b"\x00" in name:
            shown = name.decode("utf-8", "replace").replace("\x00", "\\0")
            raise InputError(
                f"{path}: the record name {shown!r} holds a NUL byte, which no output can "
                "store; fix its header line"
            )
        names.append(name.decode("utf-8", "replace"))
    return names


def _parse_fasta(path, raw, buf, starts, ends):
    is_header = buf[starts] == ord(">")
    header_lines = np.flatnonzero(is_header)
    if not len(header_lines):  # the first '>' comes after spaces or other blanks on its line
        raise InputError(
            f"{path}: line {_first_content_line(raw)}: a FASTA header must start its line with "
            "'>'; remove what comes before the '>'"
        )
    first_header = int(header_lines[0])
    nonblank_before = np.flatnonzero(ends[:first_header] > starts[:first_header])
    if len(nonblank_before):
        line = int(nonblank_before[0]) + 1
        raise InputError(f"{path}: line {line}: sequence before the first '>' header")
    seq_lines = ~is_header
    seq_lines[:first_header] = False
    data, line_lengths = _gather_lines(buf, starts[seq_lines], ends[seq_lines])
    # bases per record: sum of its sequence lines' lengths
    record_of_line = np.cumsum(is_header) - 1
    per_record = np.bincount(
        record_of_line[seq_lines], weights=line_lengths, minlength=len(header_lines)
    ).astype(np.int64)
    offsets = np.zeros(len(header_lines) + 1, dtype=np.int64)
    np.cumsum(per_record, out=offsets[1:])
    names = _names(raw, starts[header_lines], ends[header_lines], path)
    return data, offsets, names


def _parse_fastq(path, raw, buf, starts, ends):
    # drop blank lines at the end of the file, but keep the empty quality line of an empty
    # last read ("@r\n\n+\n\n")
    nonblank = np.flatnonzero(ends > starts)
    n_lines = int(nonblank[-1]) + 1
    if n_lines % 4 == 3 and n_lines < len(starts) and buf[starts[n_lines - 1]] == ord("+"):
        n_lines += 1
    starts, ends = starts[:n_lines], ends[:n_lines]
    if n_lines % 4:
        raise InputError(
            f"{path}: line {n_lines}: FASTQ records must have 4 lines "
            f"(@name, sequence, +, quality); the file has {n_lines} lines"
        )
    heads, seqs, plus, quals = (np.arange(i, n_lines, 4) for i in range(4))
    bad_head = np.flatnonzero(buf[starts[heads]] != ord("@"))
    bad_plus = np.flatnonzero(buf[np.minimum(starts[plus], len(buf) - 1)] != ord("+"))
    bad_qual = np.flatnonzero((ends[quals] - starts[quals]) != (ends[seqs] - starts[seqs]))
    for bad, line_of, what in (
        (bad_head, heads, "expected '@' header"),
        (bad_plus, plus, "expected '+' separator"),
        (bad_qual, quals, "quality length differs from sequence length"),
    ):
        if len(bad):
            line = int(line_of[bad[0]]) + 1
            raise InputError(f"{path}: line {line}: {what}; is the FASTQ file truncated?")
    data, lengths = _gather_lines(buf, starts[seqs], ends[seqs])
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return data, offsets, _names(raw, starts[heads], ends[heads], path)
