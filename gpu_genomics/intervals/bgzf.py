"""Random access to a bgzip file through its ``.gzi`` index: the blocks needed, inflated once.

Only the blocks that hold the wanted bytes are read, each inflated once, in parallel.

A BGZF file is a series of gzip members, *blocks*, of at most 64 KiB uncompressed each; a
block's header gives its compressed size (the ``BC`` extra subfield) and its footer the CRC32
and length (ISIZE) of its bytes. The ``.gzi`` index (``bgzip -i``, ``samtools faidx``, htslib's
``fai_build``) lists ``(compressed offset, uncompressed offset)`` for every block but the first.
Here each index entry starts a *segment* that runs to the next entry: normally one block; the
last segment also holds the empty end-of-file block, and a segment of a sparser index several
blocks. Segments are walked block by block, so both are read correctly.

Every block read is checked: its header must be a BGZF header where the index puts it, its
blocks must fill its segment exactly, and its inflated bytes must match the footer's ISIZE and
CRC32. A mismatch is an :class:`~gpu_genomics.errors.InputError` naming the file: a corrupt
block, or an index that is not this file's (stale).

Inflate is ISA-L's (``isal``; the standard library's ``zlib`` when it is absent), which releases
the GIL, so a pool of threads (numba's thread count) inflates blocks side by side.
"""

from __future__ import annotations

import itertools
import os
import shlex
import struct
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..errors import InputError

try:
    from isal.isal_zlib import crc32 as _crc32
    from isal.isal_zlib import decompress as _decompress
except ImportError:  # pragma: no cover (isal is a dependency)
    from zlib import crc32 as _crc32
    from zlib import decompress as _decompress

#: uncompressed bytes of blocks held at once by :meth:`BgzfIndex.read` (one group's buffer,
#: plus at most the blocks of one piece that straddles the group's end)
GROUP_BYTES = 64 << 20
_MAGIC = b"\x1f\x8b\x08\x04"
_HEADER = 12  # fixed gzip header bytes before the extra field
_FOOTER = 8  # CRC32, ISIZE
#: segments inflated per thread-pool task at most (a 64 KiB block inflates in about 50 us)
_SEGMENTS_PER_TASK = 16
#: inflated segments kept for :meth:`BgzfIndex.read_one` (small reads one after another, as
#: htslib keeps its current block)
CACHED_SEGMENTS = 8


class BgzfIndex:
    """A bgzip file's ``.gzi`` block index, for reading uncompressed byte ranges.

    Attributes:
        path: the bgzip file.
        gzi_path: its ``.gzi`` index.
        size: the file's uncompressed size in bytes.
    """

    def __init__(
        self,
        path: Path,
        gzi_path: Path,
        data: np.ndarray,
        coffsets: np.ndarray,
        uoffsets: np.ndarray,
    ) -> None:
        self.path = path
        self.gzi_path = gzi_path
        self._data = data
        self._coffsets = coffsets
        self._uoffsets = uoffsets
        self._cends = np.append(coffsets[1:], len(data))
        self.size = int(uoffsets[-1]) + self._walk_size(len(coffsets) - 1)
        self._usizes = np.diff(np.append(uoffsets, self.size))
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = -1
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()

    @classmethod
    def load(cls, path: Path, gzi_path: Path, data: np.ndarray) -> BgzfIndex:
        """The index ``gzi_path`` of the bgzip file ``path``, whose bytes are ``data``.

        Raises:
            InputError: the index cannot be read, is not ``8 + 16 n`` bytes, has offsets out
                of order or past the file, or its last segment is not BGZF blocks.
        """
        try:
            raw = np.fromfile(gzi_path, dtype="<u8")
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: cannot read its block index {gzi_path} ({exc})") from None
        stale = cls.__new__(cls)  # for the messages
        stale.path, stale.gzi_path = path, gzi_path
        if len(raw) < 1 or len(raw) != 1 + 2 * int(raw[0]):
            raise stale._stale(f"{len(raw) * 8} bytes, not 8 + 16 per entry")
        pairs = raw[1:].astype(np.int64).reshape(-1, 2)
        if len(pairs) and pairs[0, 0] == 0 and pairs[0, 1] == 0:  # the first block listed too
            pairs = pairs[1:]
        coffsets = np.concatenate(([0], pairs[:, 0]))
        uoffsets = np.concatenate(([0], pairs[:, 1]))
        if (
            (pairs < 0).any()
            or (np.diff(coffsets) <= 0).any()
            or (np.diff(uoffsets) < 0).any()
            or coffsets[-1] >= len(data)
        ):
            raise stale._stale(f"offsets out of order or past the file's {len(data)} bytes")
        return cls(path, gzi_path, data, coffsets, uoffsets)

    # --- reading ----------------------------------------------------------------------------
    def read(
        self, first: np.ndarray, last: np.ndarray, group_bytes: int | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """The blocks holding the byte ranges ``[first[k], last[k]]`` (inclusive), in groups.

        Each block needed is inflated once per group (a block shared by two groups twice);
        a group's blocks, at most ``group_bytes`` (default :data:`GROUP_BYTES`; plus those of
        one range), are laid back to back in one buffer, which is reused by the next group:
        copy out of it before asking for the next.

        Yields:
            ``(ranges, buffer, shift)``: the indexes of the ranges the group covers, and for
            each of them the shift that puts its bytes in the buffer: uncompressed byte ``x``
            of range ``ranges[j]`` is ``buffer[x + shift[j]]``.
        """
        first = np.asarray(first, dtype=np.int64)
        last = np.asarray(last, dtype=np.int64)
        if not len(first):
            return
        if first.min() < 0 or (last < first).any() or last.max() >= self.size:
            raise InputError(
                f"{self.path}: bytes {int(first.min())}..{int(last.max())} asked for, the file "
                f"holds {self.size} uncompressed; {self._stale_fix()}"
            )
        n_segments = len(self._uoffsets)
        seg_first = np.searchsorted(self._uoffsets, first, side="right") - 1
        seg_last = np.searchsorted(self._uoffsets, last, side="right") - 1
        cover = np.bincount(seg_first, minlength=n_segments + 1)
        cover -= np.bincount(seg_last + 1, minlength=n_segments + 1)
        needed = np.cumsum(cover[:n_segments]) > 0
        before = np.concatenate(([0], np.cumsum(np.where(needed, self._usizes, 0))))
        order = np.argsort(seg_first, kind="stable")
        group_bytes = GROUP_BYTES if group_bytes is None else group_bytes
        group = before[seg_first[order]] // max(int(group_bytes), 1)
        bounds = np.concatenate(([0], np.flatnonzero(np.diff(group)) + 1, [len(order)]))
        groups = []
        for lo, hi in itertools.pairwise(bounds):
            lo_segment = int(seg_first[order[lo]])
            hi_segment = int(seg_last[order[lo:hi]].max())
            groups.append((lo, hi, lo_segment, hi_segment))
        biggest = max(int(before[h + 1] - before[s]) for _, _, s, h in groups)
        buffer = np.empty(biggest, dtype=np.uint8)
        for lo, hi, lo_segment, hi_segment in groups:
            segments = lo_segment + np.flatnonzero(needed[lo_segment : hi_segment + 1])
            positions = before[segments] - before[lo_segment]
            self._inflate(segments, positions, buffer)
            ranges = order[lo:hi]
            start = seg_first[ranges]
            shift = before[start] - before[lo_segment] - self._uoffsets[start]
            yield ranges, buffer[: int(before[hi_segment + 1] - before[lo_segment])], shift

    def read_one(self, first: int, last: int) -> tuple[np.ndarray, int]:
        """The blocks holding bytes ``first..last`` (inclusive), for a small read.

        Through a cache of the last :data:`CACHED_SEGMENTS` segments inflated here, so that
        small reads one after another inflate each block once.

        Returns:
            ``(buffer, shift)``: uncompressed byte ``x`` is ``buffer[x + shift]``.
        """
        if first < 0 or last < first or last >= self.size:
            raise InputError(
                f"{self.path}: bytes {first}..{last} asked for, the file holds {self.size} "
                f"uncompressed; {self._stale_fix()}"
            )
        lo = int(np.searchsorted(self._uoffsets, first, side="right")) - 1
        hi = int(np.searchsorted(self._uoffsets, last, side="right")) - 1
        parts = []
        for segment in range(lo, hi + 1):
            part = self._cache.get(segment)
            if part is None:
                part = np.empty(int(self._usizes[segment]), dtype=np.uint8)
                self._inflate_segment(segment, part)
                self._cache[segment] = part
                if len(self._cache) > CACHED_SEGMENTS:
                    self._cache.popitem(last=False)
            else:
                self._cache.move_to_end(segment)
            parts.append(part)
        buffer = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return buffer, -int(self._uoffsets[lo])

    def _inflate(self, segments: np.ndarray, positions: np.ndarray, buffer: np.ndarray) -> None:
        """Inflate ``segments`` into ``buffer`` at ``positions``, in parallel when many."""
        pool = self._thread_pool() if len(segments) > 1 else None
        threads = pool._max_workers if pool is not None else 1
        step = max(1, min(_SEGMENTS_PER_TASK, -(-len(segments) // (4 * threads))))
        tasks = [
            (segments[i : i + step], positions[i : i + step]) for i in range(0, len(segments), step)
        ]
        if pool is None:
            for task in tasks:
                self._inflate_task(task, buffer)
            return
        for future in [pool.submit(self._inflate_task, task, buffer) for task in tasks]:
            future.result()  # re-raises a task's InputError

    def _inflate_task(self, task: tuple[np.ndarray, np.ndarray], buffer: np.ndarray) -> None:
        for segment, position in zip(*task, strict=True):
            size = int(self._usizes[segment])
            self._inflate_segment(int(segment), buffer[int(position) : int(position) + size])

    def _inflate_segment(self, segment: int, out: np.ndarray) -> None:
        """Inflate every block of ``segment`` into ``out`` (its uncompressed bytes)."""
        data = self._data
        position, end = int(self._coffsets[segment]), int(self._cends[segment])
        written = 0
        while position < end:
            payload, block_end = self._block(position, end)
            crc, isize = struct.unpack_from("<II", data, block_end - _FOOTER)
            if written + isize > len(out):
                break
            try:
                raw = _decompress(
                    data[payload : block_end - _FOOTER], wbits=-15, bufsize=isize or 1
                )
            except Exception as exc:  # isal's IsalError, zlib.error: a corrupt payload
                raise self._corrupt(position, str(exc)) from None
            if len(raw) != isize:
                raise self._corrupt(position, f"{len(raw)} bytes inflated, its footer says {isize}")
            if _crc32(raw) != crc:
                raise self._corrupt(position, "CRC32 mismatch")
            out[written : written + isize] = np.frombuffer(raw, dtype=np.uint8)
            written += isize
            position = block_end
        if written != len(out) or position != end:
            raise self._stale(
                f"the blocks from byte {int(self._coffsets[segment])} hold {written} bytes or "
                f"more up to byte {position}, the index says {len(out)} up to byte {end}"
            )

    def _block(self, position: int, end: int) -> tuple[int, int]:
        """``(payload start, block end)`` of the BGZF block at ``position`` (before ``end``)."""
        data = self._data
        if position + _HEADER + _FOOTER > end or bytes(data[position : position + 4]) != _MAGIC:
            raise self._stale(f"no BGZF block at byte {position}")
        (xlen,) = struct.unpack_from("<H", data, position + 10)
        extra, extra_end = position + _HEADER, position + _HEADER + xlen
        block_size = None
        while extra + 4 <= extra_end:  # subfields: SI1 SI2 SLEN(2) data
            (length,) = struct.unpack_from("<H", data, extra + 2)
            if data[extra] == 66 and data[extra + 1] == 67 and length == 2:  # 'BC'
                (block_size,) = struct.unpack_from("<H", data, extra + 4)
            extra += 4 + length
        block_end = position + block_size + 1 if block_size is not None else -1
        if block_size is None or not extra_end + _FOOTER <= block_end <= end:
            raise self._stale(f"no BGZF block of a fitting size at byte {position}")
        return extra_end, block_end

    def _walk_size(self, segment: int) -> int:
        """Uncompressed bytes of ``segment`` from its blocks' footers (nothing inflated)."""
        position, end = int(self._coffsets[segment]), int(self._cends[segment])
        size = 0
        while position < end:
            _, block_end = self._block(position, end)
            size += struct.unpack_from("<I", self._data, block_end - 4)[0]
            position = block_end
        return size

    # --- errors -----------------------------------------------------------------------------
    def _stale_fix(self) -> str:
        indexes = " ".join(shlex.quote(str(p)) for p in (f"{self.path}.fai", self.gzi_path))
        return (
            "if the file was recompressed after indexing, remove its index "
            f"({indexes}: it is rebuilt); else the file is cut short or damaged: re-download or "
            "recompress it"
        )

    def _stale(self, problem: str) -> InputError:
        return InputError(
            f"{self.path}: its block index {self.gzi_path.name} does not match the file "
            f"({problem}); {self._stale_fix()}"
        )

    def _corrupt(self, position: int, problem: str) -> InputError:
        return InputError(
            f"{self.path}: the BGZF block at byte {position} is corrupt ({problem}); "
            "re-download or recompress the file"
        )

    # --- threads ----------------------------------------------------------------------------
    def _thread_pool(self) -> ThreadPoolExecutor | None:
        """The inflate threads (numba's thread count; None: one); made again after a fork."""
        import numba

        threads = numba.get_num_threads()
        if threads <= 1:
            return None
        if self._pool is None or self._pool_pid != os.getpid():
            self._pool = ThreadPoolExecutor(threads, thread_name_prefix="bgzf-inflate")
            self._pool_pid = os.getpid()
        return self._pool

    def close(self) -> None:
        """Stop the inflate threads."""
        if self._pool is not None and self._pool_pid == os.getpid():
            self._pool.shutdown()
        self._pool = None
        self._cache.clear()
