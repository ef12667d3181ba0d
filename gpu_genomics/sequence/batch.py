"""One representation of a batch of DNA sequences: a flat ``uint8`` buffer plus offsets.

A :class:`SequenceBatch` holds ``data`` (all sequences' ASCII bytes back to back, ``uint8``) and
``offsets`` (``int64``, ``n + 1`` entries; record ``i`` is ``data[offsets[i]:offsets[i + 1]]``).
Built from an ``(n, L)`` array it keeps ``width = L`` and ``data`` is a view of that array (no
copy). It is copied to the GPU once, on first use there, and the device copy is reused.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np

from ..device import Device
from ..errors import InputError
from .alphabet import valid_bytes
from .fastx import read_fastx

SequencesLike = Any  # SequenceBatch | str | bytes | Sequence[str | bytes] | np.ndarray | PathLike


@dataclass
class SequenceBatch:
    """A batch of ``n`` sequences as one flat byte buffer.

    Attributes:
        data: ``(total_bases,) uint8`` ASCII letters of every record, back to back.
        offsets: ``(n + 1,) int64``; record ``i`` spans ``data[offsets[i]:offsets[i + 1]]``.
        names: record names (FASTA/FASTQ identifiers), or ``None``.
        width: the common length when every record has the same length (the ``(n, L)`` fast
            path), else ``None``.
    """

    data: np.ndarray
    offsets: np.ndarray
    names: list[str] | None = None
    width: int | None = None
    _gpu: tuple[int, Any, Any] | None = field(default=None, repr=False, compare=False)

    # --- construction -------------------------------------------------------------------
    @classmethod
    def from_strings(
        cls, sequences: Iterable[str | bytes], names: Sequence[str] | None = None
    ) -> SequenceBatch:
        """Build from str or bytes sequences (ASCII letters)."""
        chunks: list[bytes] = []
        for index, seq in enumerate(sequences):
            if isinstance(seq, bytes | bytearray | memoryview):
                chunks.append(bytes(seq))
            elif isinstance(seq, str):
                try:
                    chunks.append(seq.encode("ascii"))
                except UnicodeEncodeError as exc:
                    raise InputError(
                        f"sequence {index}: character {seq[exc.start]!r} at position "
                        f"{exc.start} is not a DNA letter; use IUPAC letters only"
                    ) from None
            else:
                raise InputError(f"sequence {index} is a {type(seq).__name__}, not str or bytes")
        lengths = np.fromiter((len(c) for c in chunks), dtype=np.int64, count=len(chunks))
        offsets = np.zeros(len(chunks) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        data = np.frombuffer(b"".join(chunks), dtype=np.uint8)
        width = int(lengths[0]) if chunks and np.all(lengths == lengths[0]) else None
        batch = cls(data, offsets, list(names) if names is not None else None, width)
        batch.validate()
        return batch

    @classmethod
    def from_array(cls, array: np.ndarray, names: Sequence[str] | None = None) -> SequenceBatch:
        """Build from an ``(n, L)`` array of ASCII letters, ``uint8`` or ``S1``.

        A C-contiguous array is used without a copy.

        Raises:
            InputError: the array is not 2-D ASCII letters, or holds a non-IUPAC byte.
        """
        if array.ndim != 2:
            raise InputError(f"a sequence array must be 2-D (n, L), got shape {array.shape}")
        if array.dtype == np.dtype("S1") or array.dtype == np.int8:
            array = array.view(np.uint8)
        if array.dtype != np.uint8:
            raise InputError(
                f"a sequence array must hold ASCII letters as uint8 or S1, got {array.dtype}"
            )
        array = np.ascontiguousarray(array)
        n, width = array.shape
        offsets = np.arange(n + 1, dtype=np.int64) * width
        batch = cls(array.reshape(-1), offsets, list(names) if names is not None else None, width)
        batch.validate()
        return batch

    @classmethod
    def from_fasta(cls, path: str | os.PathLike) -> SequenceBatch:
        """Read a FASTA or FASTQ file, plain or gzip/bgzip compressed.

        Record names are the header's first word.

        Raises:
            InputError: a malformed file, or a record with a non-IUPAC byte.
        """
        data, offsets, names = read_fastx(path)
        lengths = np.diff(offsets)
        width = int(lengths[0]) if len(lengths) and np.all(lengths == lengths[0]) else None
        batch = cls(data, offsets, names, width)
        batch.validate(source=str(path))
        return batch

    # --- properties ---------------------------------------------------------------------
    def __len__(self) -> int:
        """Return the number of records."""
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        """``(n,) int64`` length of each record in bases."""
        return np.diff(self.offsets)

    @property
    def max_length(self) -> int:
        """Length of the longest record (0 for an empty batch)."""
        if self.width is not None:
            return self.width
        return int(self.lengths.max()) if len(self) else 0

    def record_label(self, index: int, *, first_record: int = 0) -> str:
        """``"record 3 ('chr1:5-10')"`` for error messages (``first_record`` added)."""
        if self.names is not None and index < len(self.names):
            return f"record {first_record + index} ({self.names[index]!r})"
        return f"record {first_record + index}"

    def validate(self, source: str | None = None, *, first_record: int = 0) -> None:
        """Raise :class:`InputError` naming the first record with a non-IUPAC byte.

        ``first_record``: the file's index of this batch's first record, for the message.
        """
        bad_per_block = _count_invalid(self.data, valid_bytes(), _VALIDATE_BLOCK)
        if not bad_per_block.any():
            return
        block = int(np.flatnonzero(bad_per_block)[0])
        block_start = block * _VALIDATE_BLOCK
        block_data = self.data[block_start : block_start + _VALIDATE_BLOCK]
        position = block_start + int(np.argmax(~valid_bytes()[block_data]))
        record = int(np.searchsorted(self.offsets, position, side="right")) - 1
        where = f"{source}: " if source else ""
        letter = letter_at(self.data, position)
        raise InputError(
            f"{where}{self.record_label(record, first_record=first_record)}: {letter} at "
            f"position {position - int(self.offsets[record])} is not a DNA letter "
            "(IUPAC A C G T N R Y S W K M B D H V, either case); remove or replace it"
        )

    # --- access -------------------------------------------------------------------------
    def sequence(self, index: int) -> str:
        """Record ``index`` as a str."""
        return self.data[self.offsets[index] : self.offsets[index + 1]].tobytes().decode()

    def to_strings(self) -> list[str]:
        """Every record as a str."""
        return [self.sequence(i) for i in range(len(self))]

    def slice(self, start: int, stop: int) -> SequenceBatch:
        """Records ``start:stop`` as a batch sharing this batch's buffer (no copy)."""
        stop = min(stop, len(self))
        offsets = self.offsets[start : stop + 1]
        data = self.data[offsets[0] : offsets[-1]]
        names = self.names[start:stop] if self.names is not None else None
        return SequenceBatch(data, offsets - offsets[0], names, self.width)

    def arrays(self, device: Device) -> tuple[Any, Any]:
        """Return ``(data, offsets)`` (uint8, int64) on ``device``.

        The copy to the current GPU is made once and cached (``data.nbytes + 8 * (n + 1)``
        bytes of GPU memory).
        """
        if device == "cpu":
            return self.data, self.offsets
        import cupy

        device_id = cupy.cuda.Device().id
        if self._gpu is None or self._gpu[0] != device_id:
            data = cupy.asarray(self.data, dtype=cupy.uint8)
            offsets = cupy.asarray(self.offsets, dtype=cupy.int64)
            self._gpu = (device_id, data, offsets)
        return self._gpu[1], self._gpu[2]


_VALIDATE_BLOCK = 1 << 20


@numba.njit(parallel=True, cache=True, nogil=True)
def _count_invalid(data, valid, block):  # pragma: no cover
    """Number of bytes with ``valid[byte] == False`` in each ``block``-byte slice of data."""
    n_blocks = (len(data) + block - 1) // block
    bad = np.zeros(n_blocks, dtype=np.int64)
    for b in numba.prange(n_blocks):
        total = 0
        for p in range(b * block, min(len(data), (b + 1) * block)):
            total += 1 - np.int64(valid[data[p]])
        bad[b] = total
    return bad


def as_batch(seqs: SequencesLike) -> SequenceBatch:
    """Coerce the inputs that every operation accepts into a :class:`SequenceBatch`.

    Args:
        seqs: a batch, one str/bytes sequence, a list of str/bytes, an ``(n, L)`` uint8/S1
            array, or the path of a FASTA/FASTQ file (``pathlib.Path``).

    Raises:
        InputError: anything else, or a record with a non-IUPAC byte.
    """
    if isinstance(seqs, SequenceBatch):
        return seqs
    if isinstance(seqs, str | bytes):
        return SequenceBatch.from_strings([seqs])
    if isinstance(seqs, os.PathLike):
        return SequenceBatch.from_fasta(seqs)
    if isinstance(seqs, np.ndarray):
        if seqs.ndim == 2 and seqs.dtype in (np.uint8, np.int8, np.dtype("S1")):
            return SequenceBatch.from_array(seqs)
        if seqs.ndim == 1 and seqs.dtype.kind in "SUO":
            return SequenceBatch.from_strings(seqs.tolist())
        raise InputError(
            f"cannot read sequences from an array of shape {seqs.shape} and dtype {seqs.dtype}; "
            "pass (n, L) uint8/S1 ASCII letters or a 1-D array of strings"
        )
    if type(seqs).__module__.split(".")[0] == "cupy":
        raise InputError("pass sequences as host data (NumPy array, list or file), not CuPy")
    if isinstance(seqs, Iterable):
        return SequenceBatch.from_strings(list(seqs))
    raise InputError(f"cannot read sequences from a {type(seqs).__name__}")


def letter_at(data: np.ndarray, position: int) -> str:
    """The character at byte ``position`` of UTF-8 text ``data``, quoted, for messages.

    A multi-byte letter is shown whole (``'é'``, not its first byte ``'Ã'``); a byte that
    starts no UTF-8 character is shown by value (``byte 0xff``).
    """
    head = bytes(data[position : position + 4])
    for size in range(1, len(head) + 1):
        try:
            return repr(head[:size].decode("utf-8"))
        except UnicodeDecodeError:
            continue
    return f"byte 0x{head[0]:02x}"
