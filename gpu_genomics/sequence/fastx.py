"""Reading FASTA (multi-line) and FASTQ (4-line records) files, plain or gzip/bgzip compressed.

The records come back as one flat byte buffer plus offsets, the layout of
:class:`~gpu_genomics.sequence.batch.SequenceBatch`.

Vectorised: a few NumPy passes over the file's bytes, no per-base Python.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import InputError
from ..io.files import read_bytes


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
    newlines = np.flatnonzero(buf == ord("\n"))
    starts = np.concatenate(([0], newlines + 1))
    ends = np.concatenate((newlines, [len(buf)]))
    if starts[-1] == len(buf):  # file ends with a newline
        starts, ends = starts[:-1], ends[:-1]
    # strip a trailing '\r' from every line (Windows line ends)
    has_cr = (ends > starts) & (buf[np.maximum(ends - 1, 0)] == ord("\r"))
    content_ends = ends - has_cr
    first = stripped[:1]
    if first == b">":
        return _parse_fasta(path, raw, buf, starts, content_ends)
    if first == b"@":
        return _parse_fastq(path, raw, buf, starts, content_ends)
    line = raw[: len(raw) - len(stripped)].count(b"\n") + 1
    raise InputError(
        f"{path}: line {line}: expected a FASTA header ('>') or FASTQ record ('@'), "
        f"found {stripped[:20]!r}; is this a sequence file?"
    )


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


def _names(raw: bytes, starts: np.ndarray, ends: np.ndarray) -> list[str]:
    names = []
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        header = raw[s + 1 : e].split(maxsplit=1)
        names.append(header[0].decode("utf-8", "replace") if header else "")
    return names


def _parse_fasta(path, raw, buf, starts, ends):
    is_header = buf[starts] == ord(">")
    header_lines = np.flatnonzero(is_header)
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
    names = _names(raw, starts[header_lines], ends[header_lines])
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
    return data, offsets, _names(raw, starts[heads], ends[heads])
