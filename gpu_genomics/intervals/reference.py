"""The reference genome: chromosome names and sizes, and whole chromosomes as byte arrays.

Accepted: bgzip FASTA (``.fai``/``.gzi`` used, or built next to it when missing and the
folder is writable) and plain FASTA (``.fai`` likewise), both read through pysam/htslib. A FASTA
compressed with plain gzip cannot be read at random: it is refused with the command that turns
it into bgzip. Sequence comes back as ``uint8`` ASCII codes: plain FASTA is read straight from
the file through the index's line layout (memory-mapped, no intermediate str); bgzip through its
``.gzi`` block index (:mod:`.bgzf`): the BGZF blocks that hold the bases asked for are inflated
once each, in parallel, into one buffer, and the bases gathered from it through the same line
layout, in groups of at most :data:`.bgzf.GROUP_BYTES` of blocks (a ``.gzi`` that is missing
is built by htslib when the reference is opened, as the ``.fai``). A bgzip reference whose
``.fai`` line layout the gather cannot follow (or ``Reference(path, blocks=False)``) is read
through htslib instead, one span at a time.

Nothing wrong is read silently:

* a plain FASTA's ``.fai`` is checked against the file when it is opened (a bgzip one, read
  through the blocks, when each record is first read): every record's bases must end inside
  the file, and a few bytes per record (the line end before its first base, the end of its
  first full line, the byte after its last base) must be where the layout puts them. A FASTA
  re-wrapped or edited after indexing, or an index of another file, is refused with the fix
  (remove the ``.fai``, and the ``.gzi``: they are rebuilt);
* every window is checked to lie inside its chromosome before any byte is gathered, so no read
  ever leaves the file;
* every base read must be an IUPAC letter (either case): a byte such as ``*``, a digit, ``@`` or
  a line end (a layout the checks above missed) is an error naming the chromosome and the
  position, never an all-zero row;
* a bgzip block is read only where the ``.gzi`` puts one, must fill the index's share of the
  file exactly, and must inflate to its footer's length and CRC32: a corrupt block or a stale
  index is a one-line error naming the file, as are htslib's errors on the fallback path.
"""

from __future__ import annotations

import mmap
import os
import shlex
from pathlib import Path
from typing import Any

import numba
import numpy as np

from ..errors import InputError
from ..io.files import is_bgzf, is_gzip
from ..sequence.alphabet import valid_bytes
from ..sequence.batch import letter_at
from .bgzf import BgzfIndex

#: bases gathered per parallel task from inflated bgzip blocks (longer spans are split)
PIECE_BASES = 1 << 20
#: one bgzip span of at most this many bases is read through the block cache, serially
SMALL_READ_BASES = 1 << 16
#: 1 for the bytes that are IUPAC letters (either case), checked as the bases are gathered
_VALID = valid_bytes().astype(np.uint8)


class Reference:
    """An indexed FASTA reference.

    Attributes:
        path: the FASTA file.
        names: chromosome names in the index's (the file's) order.
        lengths: ``(n_chroms,) int64`` chromosome lengths in bases.
    """

    def __init__(self, path: str | os.PathLike, *, blocks: bool = True) -> None:
        """Open (and index when needed) the reference at ``path``.

        Args:
            path: a plain or bgzip FASTA.
            blocks: bgzip: read through the ``.gzi`` block index (module docstring); False:
                through htslib, one span at a time (the fallback, kept for comparison).
        """
        import pysam

        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"{self.path}: reference FASTA not found; check the path")
        compressed = is_gzip(self.path)
        if compressed and not is_bgzf(self.path):
            raise InputError(
                f"{self.path}: compressed with plain gzip, which cannot be read by region; "
                f"recompress it with bgzip: gunzip -c {shlex.quote(str(self.path))} | bgzip > "
                f"{shlex.quote(str(self.path.with_suffix('')) + '.bgz')} (bgzip comes with "
                "htslib/samtools)"
            )
        missing = [p for p in self._index_paths(compressed=compressed) if not p.exists()]
        if missing and not os.access(self.path.parent, os.W_OK):
            raise InputError(
                f"{self.path}: no index ({', '.join(p.name for p in missing)}) and the folder "
                "is not writable; run `samtools faidx` on a writable copy"
            )
        try:
            self._fasta = pysam.FastaFile(str(self.path))
        except (OSError, ValueError) as exc:
            raise InputError(
                f"{self.path}: cannot open or index the FASTA ({exc}); is it a FASTA file?"
            ) from None
        self.names: list[str] = list(self._fasta.references)
        self.lengths = np.asarray(self._fasta.lengths, dtype=np.int64)
        self._index_of = {name: i for i, name in enumerate(self.names)}
        #: the ``.fai`` index (names, lengths, line layout) and, for bgzip, the ``.gzi`` block
        #: index: recorded in the provenance
        self.index_path = Path(f"{self.path}.fai")
        self.gzi_path = Path(f"{self.path}.gzi") if compressed else None
        if not self.names:
            raise InputError(f"{self.path}: the reference holds no sequences")
        # plain FASTA: read spans straight from the file through the .fai line layout
        self._map: mmap.mmap | None = None
        self._layout = None if compressed else _read_fai(self.index_path)
        #: True when :meth:`windows` reads just the windows (plain FASTA), so that it can be
        #: called per batch; False when it decompresses spans (bgzip: call once per chromosome).
        self.gathers_windows = self._layout is not None
        if self._layout is not None:
            self._check_layout()
        #: bgzip: the block index and the ``.fai`` line layout read through it (None: htslib)
        self._blocks: BgzfIndex | None = None
        self._block_layout: dict[str, tuple[int, int, int]] = {}
        self._checked: set[str] = set()  # bgzip records whose layout was checked
        if compressed and blocks:
            self._open_blocks()

    def _open_blocks(self) -> None:
        """Use the ``.gzi`` block index unless the ``.fai`` line layout is one to leave to htslib.

        Raises:
            InputError: the ``.gzi`` does not match the file (:meth:`.bgzf.BgzfIndex.load`).
        """
        try:
            layout = _read_fai(self.index_path)
        except (OSError, ValueError, UnicodeDecodeError):
            return  # htslib read it: it reads the records
        for name, length in zip(self.names, self.lengths, strict=True):
            offset, line_bases, line_bytes = layout.get(name, (-1, 0, 0))
            if length > 0 and not (offset > 0 and 0 < line_bases < line_bytes <= line_bases + 2):
                return  # a layout the gather does not follow: htslib reads it
        assert self.gzi_path is not None
        self._blocks = BgzfIndex.load(self.path, self.gzi_path, self._file_bytes())
        self._block_layout = layout

    def _check_layout(self) -> None:
        """Refuse a ``.fai`` whose line layout does not match the plain FASTA (module docstring)."""
        data = self._file_bytes()
        for name in self.names:
            self._check_record(name, self._layout, len(data), lambda i: int(data[i]))

    def _check_record(
        self, name: str, layout: dict[str, tuple[int, int, int]], size: int, byte_at: Any
    ) -> None:
        """Refuse record ``name`` when its ``.fai`` line layout does not match the file.

        ``size``: the (uncompressed) file size; ``byte_at(i)``: its byte ``i``.
        """
        offset, line_bases, line_bytes = layout[name]
        length = int(self.lengths[self._index_of[name]])
        if length == 0:
            return
        problem = None
        last = offset + (length - 1) // max(line_bases, 1) * line_bytes
        last += (length - 1) % max(line_bases, 1)
        if line_bases <= 0 or not line_bases < line_bytes <= line_bases + 2:
            problem = f"lines of {line_bases} bases in {line_bytes} bytes"
        elif offset <= 0 or last >= size:
            problem = f"bases at bytes {offset}..{last}, past the end of the file ({size})"
        elif byte_at(offset - 1) != ord("\n"):
            problem = f"no line end before its first base (byte {offset})"
        elif length > line_bases and byte_at(offset + line_bytes - 1) != ord("\n"):
            problem = f"no line end after its first line of {line_bases} bases"
        elif last + 1 < size and byte_at(last + 1) not in (ord("\n"), ord("\r")):
            problem = f"no line end after its last base (byte {last})"
        if problem is not None:
            indexes = [self.index_path, *([self.gzi_path] if self.gzi_path else [])]
            raise InputError(
                f"{self.path}: its index {self.index_path.name} does not match the file "
                f"(record {name}: {problem}); the FASTA was changed after indexing or the "
                f"index is another file's: remove {' '.join(shlex.quote(str(p)) for p in indexes)} "
                "(it is rebuilt) or run samtools faidx on the FASTA"
            )

    def _index_paths(self, *, compressed: bool) -> list[Path]:
        paths = [Path(f"{self.path}.fai")]
        if compressed:
            paths.append(Path(f"{self.path}.gzi"))
        return paths

    def index_of(self, name: str) -> int | None:
        """Position of chromosome ``name`` in :attr:`names`, or None."""
        return self._index_of.get(name)

    def fetch(self, name: str, start: int = 0, end: int | None = None) -> np.ndarray:
        """Bases ``start:end`` of chromosome ``name`` (default: all) as ``uint8`` ASCII."""
        chrom_length = int(self.lengths[self._index_of[name]])
        end = chrom_length if end is None else end
        if self._layout is not None:  # plain FASTA: one window through the line layout
            data, _ = self.windows(name, np.array([start]), max(end - start, 0))
            return data
        if self._blocks is not None:  # bgzip: as htslib, the end clipped to the chromosome
            if start < 0:
                raise InputError(f"{self.path}: cannot read {name}:{start + 1}-{end} (start < 1)")
            end = min(end, chrom_length)
            return self._block_spans(name, np.array([start]), np.array([max(end, start)]))
        try:
            sequence = self._fasta.fetch(name, start, end)
        except (OSError, ValueError) as exc:  # htslib: a stale .gzi, a truncated file
            raise InputError(
                f"{self.path}: cannot read {name}:{start + 1}-{end} ({exc}); if the file was "
                "recompressed after indexing, remove its .fai and .gzi (they are rebuilt)"
            ) from None
        data = np.frombuffer(sequence.encode("latin-1"), dtype=np.uint8)
        self._check_bases(name, data, lambda k: start + k)
        return data

    def windows(
        self, name: str, starts: np.ndarray, length: int, buffer: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Read the bases of many windows of chromosome ``name`` in bulk.

        Plain FASTA: the windows are gathered straight from the memory-mapped file (only their
        pages are read) into an ``(n, length)`` buffer. bgzip: the spans holding windows
        (:func:`window_spans`) are read, the blocks under them inflated once each, and laid
        back to back.

        Args:
            name: the chromosome.
            starts: ``(n,)`` window starts; window ``i`` is ``[starts[i], starts[i] + length)``.
            length: the window length in bases.
            buffer: an optional ``uint8`` array of at least ``n * length`` bytes to gather into
                (plain FASTA).

        Returns:
            ``(data, data_starts)``: a ``uint8`` buffer and where each window starts in it.
        """
        starts = np.asarray(starts, dtype=np.int64)
        chrom_length = int(self.lengths[self._index_of[name]])
        if len(starts) and (starts.min() < 0 or starts.max() + length > chrom_length):
            bad = int(starts[(starts < 0) | (starts + length > chrom_length)][0])
            raise InputError(
                f"{self.path}: window {name}:{bad}-{bad + length} lies outside {name} "
                f"({chrom_length} bases); is the reference the genome build of the peaks?"
            )
        if self._layout is None:
            # the blocks under a gap are inflated anyway: spans are the windows' union there;
            # htslib reads span by span, so near windows share one (SPAN_GAP)
            gap = 0 if self._blocks is not None else SPAN_GAP
            order = None
            if len(starts) > 1 and (starts[1:] < starts[:-1]).any():  # spans need sorted starts
                order = np.argsort(starts, kind="stable")
            span_starts, span_ends, data_starts = window_spans(
                starts if order is None else starts[order], length, gap
            )
            if order is not None:
                data_starts[order] = data_starts.copy()
            return self.fetch_spans(name, span_starts, span_ends), data_starts
        offset, line_bases, line_bytes = self._layout[name]
        size = len(starts) * length
        if buffer is None or len(buffer) < size:
            buffer = np.empty(size, dtype=np.uint8)
        out = buffer[:size].reshape(len(starts), length)
        bad = np.empty(len(starts), dtype=np.int64)
        _gather_fasta_windows(
            self._file_bytes(), offset, line_bases, line_bytes, starts, out, _VALID, bad
        )
        if (bad >= 0).any():  # the one-line error at the first non-IUPAC byte
            row = int(np.flatnonzero(bad >= 0)[0])
            self._check_bases(name, out[row], lambda k: int(starts[row]) + k)
        return out.reshape(-1), np.arange(len(starts), dtype=np.int64) * length

    def _check_bases(self, name: str, data: np.ndarray, position_of: Any) -> None:
        """Raise the one-line error at the first byte of ``data`` that is not an IUPAC letter."""
        valid = valid_bytes()[data]
        if valid.all():
            return
        k = int(np.argmin(valid))
        indexes = [self.index_path, *([self.gzi_path] if self.gzi_path else [])]
        raise InputError(
            f"{self.path}: {name}:{position_of(k) + 1} (1-based) holds {letter_at(data, k)}, "
            "not an IUPAC letter; fix the reference (or, if its index "
            f"is stale, remove {' '.join(shlex.quote(str(p)) for p in indexes)}: it is rebuilt)"
        )

    def _file_bytes(self) -> np.ndarray:
        if self._map is None:
            with open(self.path, "rb") as handle:
                self._map = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        return np.frombuffer(self._map, dtype=np.uint8)

    def release_pages(self) -> None:
        """Drop the memory-mapped file's pages from this process's memory.

        Plain FASTA only; the bases read were copied out. Call it after each chromosome to
        bound memory.
        """
        if self._map is not None:
            self._map.madvise(mmap.MADV_DONTNEED)

    def fetch_spans(self, name: str, span_starts: np.ndarray, span_ends: np.ndarray) -> np.ndarray:
        """The spans ``[span_starts[i], span_ends[i])`` of chromosome ``name``, back to back."""
        if self._blocks is not None:
            return self._block_spans(
                name, np.asarray(span_starts, np.int64), np.asarray(span_ends, np.int64)
            )
        parts = [
            self.fetch(name, int(s), int(e)) for s, e in zip(span_starts, span_ends, strict=True)
        ]
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint8)

    def _block_spans(self, name: str, span_starts: np.ndarray, span_ends: np.ndarray) -> np.ndarray:
        """Spans of a bgzip chromosome, back to back, through the block index.

        The spans are cut into pieces of at most :data:`PIECE_BASES`; each piece's bases lie in
        one byte range of the decompressed file (the ``.fai`` line layout); the blocks under
        the ranges come in groups (:meth:`.bgzf.BgzfIndex.read`) and each group's pieces are
        gathered from it in parallel.
        """
        assert self._blocks is not None
        counts = span_ends - span_starts
        out_starts = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
        out = np.empty(int(counts.sum()), dtype=np.uint8)
        if not len(out):
            return out
        if name not in self._checked:  # the plain FASTA's layout check, on first read
            self._check_record(name, self._block_layout, self._blocks.size, self._block_byte)
            self._checked.add(name)
        offset, line_bases, line_bytes = self._block_layout[name]
        if len(counts) == 1 and len(out) <= SMALL_READ_BASES:  # one small span: no threads
            start, end = int(span_starts[0]), int(span_ends[0]) - 1
            buffer, shift = self._blocks.read_one(
                offset + start // line_bases * line_bytes + start % line_bases,
                offset + end // line_bases * line_bytes + end % line_bases,
            )
            bad = _copy_bases(buffer, offset + shift, line_bases, line_bytes, start, out, _VALID)
            if bad >= 0:
                self._check_bases(name, out, lambda k: start + k)
            return out
        n_pieces = -(-counts // PIECE_BASES)
        span_of = np.repeat(np.arange(len(counts)), n_pieces)
        within = np.arange(len(span_of)) - np.repeat(np.cumsum(n_pieces) - n_pieces, n_pieces)
        positions = span_starts[span_of] + within * PIECE_BASES
        sizes = np.minimum(span_ends[span_of] - positions, PIECE_BASES)
        piece_out = out_starts[span_of] + within * PIECE_BASES
        ends = positions + sizes - 1
        first = offset + positions // line_bases * line_bytes + positions % line_bases
        last = offset + ends // line_bases * line_bytes + ends % line_bases
        bad = np.empty(len(positions), dtype=np.int64)
        for pieces, buffer, shift in self._blocks.read(first, last):
            piece_bad = np.empty(len(pieces), dtype=np.int64)
            _gather_fasta_runs(
                buffer,
                offset + shift,
                line_bases,
                line_bytes,
                positions[pieces],
                sizes[pieces],
                piece_out[pieces],
                out,
                _VALID,
                piece_bad,
            )
            bad[pieces] = piece_bad
        if (bad >= 0).any():  # the one-line error at the first non-IUPAC byte
            hit = np.flatnonzero(bad >= 0)
            piece = int(hit[np.argmin(piece_out[hit])])
            lo, hi = int(piece_out[piece]), int(piece_out[piece] + sizes[piece])
            self._check_bases(
                name, out[lo:hi], lambda k: _span_position(span_starts, out_starts, lo + k)
            )
        return out

    def _block_byte(self, position: int) -> int:
        """Byte ``position`` of the decompressed bgzip file."""
        assert self._blocks is not None
        buffer, shift = self._blocks.read_one(position, position)
        return int(buffer[position + shift])

    def __enter__(self) -> Reference:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the FASTA and unmap the file (also done by ``with Reference(...)``)."""
        self._fasta.close()
        if self._blocks is not None:  # its view of the file goes before the file is unmapped
            self._blocks.close()
            self._blocks = None
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:  # a view of it is still held (an error's traceback): unmapped
                pass  # when that goes
            self._map = None


SPAN_GAP = 16_384


def window_spans(
    starts: np.ndarray, length: int, max_gap: int = SPAN_GAP
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The stretches of a chromosome to read for windows ``[starts, starts + length)``.

    Windows (sorted by start) closer than ``max_gap`` bases share a span: decompressing a short
    gap costs less than another read. Returns ``(span_starts, span_ends, buffer_starts)``: the
    spans, and where each window starts in the spans' bases laid back to back.
    """
    ends = starts + length
    reach = np.maximum.accumulate(ends)
    new_span = np.ones(len(starts), dtype=bool)
    new_span[1:] = starts[1:] > reach[:-1] + max_gap
    span_of = np.cumsum(new_span) - 1
    span_starts = starts[new_span]
    span_ends = reach[np.flatnonzero(np.append(new_span[1:], True))]
    offsets = np.concatenate(([0], np.cumsum(span_ends - span_starts)[:-1]))
    return span_starts, span_ends, starts - span_starts[span_of] + offsets[span_of]


def _span_position(span_starts: np.ndarray, out_starts: np.ndarray, k: int) -> int:
    """The chromosome position of byte ``k`` of spans laid back to back."""
    j = int(np.searchsorted(out_starts, k, side="right")) - 1
    return int(span_starts[j]) + k - int(out_starts[j])


@numba.njit(cache=True, nogil=True)
def _copy_bases(  # noqa: PLR0917 (numba: positional arguments)
    file_bytes, offset, line_bases, line_bytes, position, out, valid
):  # pragma: no cover
    """``out[:] = bases position .. position + len(out)`` of a FASTA record.

    The record is laid out in lines of ``line_bases`` bases (``line_bytes`` with the line end)
    from position ``offset`` of ``file_bytes``. Returns the index in ``out`` of the first byte
    with ``valid[byte] == 0`` (not an IUPAC letter), or -1.
    """
    length = len(out)
    j = 0
    ok = 1
    while j < length:
        line = position // line_bases
        column = position - line * line_bases
        run = min(line_bases - column, length - j)
        source = offset + line * line_bytes + column
        for b in range(run):
            byte = file_bytes[source + b]
            out[j + b] = byte
            ok &= valid[byte]
        j += run
        position += run
    if ok:
        return -1
    for j in range(length):
        if not valid[out[j]]:
            return j
    return -1  # unreachable


@numba.njit(parallel=True, cache=True, nogil=True)
def _gather_fasta_windows(  # noqa: PLR0917 (numba: positional arguments)
    file_bytes, offset, line_bases, line_bytes, starts, out, valid, bad
):  # pragma: no cover
    """Gather windows of a FASTA record: ``out[i] = bases starts[i] .. starts[i] + L``.

    The record is laid out in lines of ``line_bases`` bases (``line_bytes`` with the line end)
    from file position ``offset``. ``bad[i]``: the first byte of ``out[i]`` that is not an
    IUPAC letter (``valid``), or -1.
    """
    for i in numba.prange(len(starts)):
        bad[i] = _copy_bases(file_bytes, offset, line_bases, line_bytes, starts[i], out[i], valid)


@numba.njit(parallel=True, cache=True, nogil=True)
def _gather_fasta_runs(  # noqa: PLR0917 (numba: positional arguments)
    source, offsets, line_bases, line_bytes, positions, sizes, out_starts, out, valid, bad
):  # pragma: no cover
    """``out[out_starts[i]:][:sizes[i]]`` = bases ``positions[i] ..`` of a FASTA record.

    As :func:`_gather_fasta_windows`, with run ``i``'s record starting at ``offsets[i]`` of
    ``source`` (inflated bgzip blocks laid back to back).
    """
    for i in numba.prange(len(positions)):
        start = out_starts[i]
        bad[i] = _copy_bases(
            source,
            offsets[i],
            line_bases,
            line_bytes,
            positions[i],
            out[start : start + sizes[i]],
            valid,
        )


def _read_fai(path: Path) -> dict[str, tuple[int, int, int]]:
    """``name -> (offset, line_bases, line_bytes)`` from a ``.fai`` index."""
    layout = {}
    for line in path.read_text().splitlines():
        fields = line.split("\t")
        if len(fields) >= 5:
            layout[fields[0]] = (int(fields[2]), int(fields[3]), int(fields[4]))
    return layout
