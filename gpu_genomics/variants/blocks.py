"""The blocks of a VCF's text, and the lines each range of blocks owns.

A bgzip file is a chain of BGZF blocks (at most 64 KiB of text each, SAM/BAM specification
section 4.1); a plain text file is cut here into spans of :data:`SPAN_BYTES`. Either way a
*block* has a start offset in the file, and the records of the file are shared out between
blocks so that any range of blocks can be read on its own:

    a line belongs to the block that holds the newline before it

(the first record: the block holding the header's last newline). A reader starting at a block
therefore skips the text up to and including the first newline at or after the block's start
(it ends a line of an earlier block), and a reader of blocks ``b0 .. b1 - 1`` stops at the first
newline at or after the start of block ``b1`` (it ends the last line of block ``b1 - 1``). The
ranges ``[b0, b1)`` and ``[b1, b2)`` then read every line once between them, whatever ``b1``,
so the way the file is partitioned never changes what is read.

Block starts come from the ``.tbi``/``.csi`` index when there is one (every offset it holds is
a block start), otherwise from the BGZF block headers near the wanted offset.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io.files import _is_bgzf_head

try:
    from isal.isal_zlib import decompress as _inflate
except ImportError:  # pragma: no cover (isal is a dependency)
    from zlib import decompress as _inflate

#: Bytes of a plain text file per block.
SPAN_BYTES = 1 << 20
#: Bytes read from the file at once.
READ_BYTES = 4 << 20
#: BGZF blocks inflated per thread-pool task (a 64 KiB block inflates in about 50 us).
BLOCKS_PER_TASK = 16
_MAGIC = b"\x1f\x8b\x08\x04"


@dataclass(frozen=True)
class TextFile:
    """A VCF's text as blocks (small and picklable: tasks get it).

    Attributes:
        path: the file.
        kind: ``"bgzf"`` or ``"plain"``.
        data_block: offset of the block holding the header's last newline (it owns the
            first record).
        header_skip: bytes of that block's text before the first record.
        size: the file's size in bytes.
    """

    path: str
    kind: str
    data_block: int
    header_skip: int
    size: int

    def blocks(self, offset: int) -> Iterator[tuple[int, bytes]]:
        """``(offset, text)`` of each block from the one at ``offset`` to the end."""
        if self.kind == "plain":
            yield from _plain_spans(self.path, offset)
        else:
            yield from _bgzf_blocks(self.path, offset)

    def block_start_at_or_after(self, target: int) -> int | None:
        """The first block start at or after ``target`` (None: no block starts there)."""
        if self.kind == "plain":
            start = self.data_block + -(-(target - self.data_block) // SPAN_BYTES) * SPAN_BYTES
            return start if start < self.size else None
        return _next_bgzf_block(self.path, target, self.size)


def text_file(path: str | os.PathLike, header_bytes: int) -> TextFile:
    """Describe ``path`` (bgzip or plain text) whose header is its first ``header_bytes``.

    Raises:
        InputError: the file is gzip but not bgzip (not cut into blocks), or corrupt.
    """
    path = str(path)
    size = Path(path).stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(18)
    if head[:2] != b"\x1f\x8b":
        return TextFile(path, "plain", header_bytes, 0, size)
    if not _is_bgzf_head(head):
        raise InputError(f"{path}: gzip, not bgzip: it cannot be read in parts")
    text_before = 0
    for offset, text in _bgzf_blocks(path, 0):
        if text_before + len(text) >= header_bytes:
            return TextFile(path, "bgzf", offset, header_bytes - text_before, size)
        text_before += len(text)
    return TextFile(path, "bgzf", size, 0, size)  # header only


def _plain_spans(path: str, offset: int) -> Iterator[tuple[int, bytes]]:
    with open(path, "rb") as handle:
        handle.seek(offset)
        while True:
            text = handle.read(SPAN_BYTES)
            if not text:
                return
            yield offset, text
            offset += len(text)


def _bgzf_block_size(data: bytes | memoryview, at: int) -> int:
    """Total size of the BGZF block starting at ``data[at]`` (0: not a block header)."""
    if bytes(data[at : at + 4]) != _MAGIC or at + 12 > len(data):
        return 0
    xlen = int.from_bytes(data[at + 10 : at + 12], "little")
    p, end = at + 12, at + 12 + xlen
    while p + 4 <= end <= len(data):
        slen = int.from_bytes(data[p + 2 : p + 4], "little")
        if data[p] == 66 and data[p + 1] == 67 and slen == 2:
            return int.from_bytes(data[p + 4 : p + 6], "little") + 1
        p += 4 + slen
    return 0


def _bgzf_blocks(path: str, offset: int) -> Iterator[tuple[int, bytes]]:
    """``(offset, text)`` of each BGZF block from ``offset`` on, inflated by a thread pool.

    Blocks are cut out of :data:`READ_BYTES` reads here and inflated (ISA-L, which lets
    other threads run) :data:`BLOCKS_PER_TASK` at a time by :func:`inflate_threads` threads,
    at most two tasks per thread ahead of the block yielded: memory is that window (about
    ``2 * threads`` MiB of text) plus one read.
    """
    threads = inflate_threads()
    window = 2 * threads
    pending: deque[Future] = deque()
    groups = _block_groups(path, offset)
    with ThreadPoolExecutor(threads, thread_name_prefix="bgzf-inflate") as pool:
        try:
            while True:
                try:
                    group = next(groups)
                except StopIteration:
                    break
                except InputError:  # a bad header: the blocks before it first, in order
                    while pending:
                        yield from pending.popleft().result()
                    raise
                pending.append(pool.submit(_inflate_group, path, group))
                while len(pending) > window or (pending and pending[0].done()):
                    yield from pending.popleft().result()
            while pending:
                yield from pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
            groups.close()


def inflate_threads() -> int:
    """Threads inflating BGZF blocks: numba's thread count (the CPUs the job may use)."""
    import numba

    return max(1, numba.get_num_threads())


def _block_groups(path: str, offset: int) -> Iterator[list[tuple[int, bytes]]]:
    """``(offset, compressed block)`` of each block from ``offset``, in lists.

    Lists of up to :data:`BLOCKS_PER_TASK` blocks; a header that is not BGZF raises its
    one-line error (after the blocks before it).
    """
    with open(path, "rb") as handle:
        handle.seek(offset)
        data = handle.read(READ_BYTES)
        at = 0
        group: list[tuple[int, bytes]] = []
        while True:
            if len(data) - at < 18 + 65536:  # less than a whole block left: read on
                more = handle.read(READ_BYTES)
                data = data[at:] + more
                at = 0
            if at >= len(data):
                break
            size = _bgzf_block_size(data, at)
            if size == 0 or at + size > len(data):
                if group:
                    yield group
                raise InputError(
                    f"{path}: byte {offset}: not a BGZF block (the bgzip file is corrupt or "
                    "cut short); re-download or recompress it"
                )
            group.append((offset, data[at : at + size]))
            if len(group) == BLOCKS_PER_TASK:
                yield group
                group = []
            offset += size
            at += size
        if group:
            yield group


def _inflate_group(path: str, group: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    """``(offset, text)`` of each ``(offset, block)``; a corrupt one raises its error."""
    texts = []
    for offset, block in group:
        xlen = int.from_bytes(block[10:12], "little")
        try:
            text = _inflate(block[12 + xlen : len(block) - 8], -15)
        except Exception as exc:  # isal's IsalError, zlib.error: a corrupt payload
            raise InputError(
                f"{path}: byte {offset}: corrupt compressed block ({exc}); re-download "
                "or recompress the file"
            ) from None
        if len(text) != int.from_bytes(block[-4:], "little"):
            raise InputError(f"{path}: byte {offset}: BGZF block size does not match")
        texts.append((offset, text))
    return texts


def _next_bgzf_block(path: str, target: int, size: int) -> int | None:
    """The first BGZF block start at or after ``target``: a header whose chain continues."""
    with open(path, "rb") as handle:
        position = target
        while position < size:
            handle.seek(position)
            window = handle.read(4 * 65536 + 18)
            at = window.find(_MAGIC)
            while at >= 0:
                first = _bgzf_block_size(window, at)
                if first and _chain_continues(handle, position + at, first, size):
                    return position + at
                at = window.find(_MAGIC, at + 1)
            position += max(1, len(window) - 18)
    return None


def _chain_continues(handle: object, start: int, first: int, size: int) -> bool:
    """A block of size ``first`` at ``start`` is followed by the end or two more blocks."""
    at = start + first
    for _ in range(2):
        if at == size:
            return True
        handle.seek(at)  # type: ignore[attr-defined]
        block = _bgzf_block_size(handle.read(64), 0)  # type: ignore[attr-defined]
        if not block:
            return False
        at += block
    return at <= size


def index_block_starts(path: str | os.PathLike) -> np.ndarray | None:
    """Sorted block starts named by the ``.tbi`` or ``.csi`` beside ``path`` (None: no index).

    Every chunk of every bin (and the ``.tbi`` linear index) begins at a virtual offset whose
    upper 48 bits are a block start. An index older than the file is not used.
    """
    for suffix in (".csi", ".tbi"):
        index = Path(f"{path}{suffix}")
        if index.is_file() and index.stat().st_mtime >= Path(path).stat().st_mtime:
            try:
                data = b"".join(text for _, text in _bgzf_blocks(str(index), 0))
                starts = _index_offsets(data) >> 16
            except (InputError, ValueError, IndexError):
                continue
            return np.unique(starts[starts < Path(path).stat().st_size])
    return None


def _index_offsets(data: bytes) -> np.ndarray:
    """Virtual offsets in a decompressed ``.tbi`` or ``.csi`` (the htslib index formats)."""

    def i32(at: int) -> int:
        return int.from_bytes(data[at : at + 4], "little", signed=True)

    offsets: list[np.ndarray] = []
    if data[:4] == b"TBI\x01":
        n_ref, names = i32(4), i32(32)
        at, pseudo, csi = 36 + names, 37450, False
    elif data[:4] == b"CSI\x01":
        depth, aux = i32(8), i32(12)
        n_ref = i32(16 + aux)
        at, pseudo, csi = 20 + aux, ((1 << ((depth + 1) * 3)) - 1) // 7 + 1, True
    else:
        raise ValueError("not a tabix or CSI index")
    for _ in range(n_ref):
        n_bin = i32(at)
        at += 4
        for _ in range(n_bin):
            bin_id = int.from_bytes(data[at : at + 4], "little")
            at += 12 if csi else 4  # bin (and the CSI loffset)
            n_chunk = i32(at)
            at += 4
            chunks = np.frombuffer(data, dtype="<u8", count=2 * n_chunk, offset=at)
            at += 16 * n_chunk
            if bin_id != pseudo:  # the pseudo-bin holds counts, not offsets
                offsets.append(chunks.astype(np.int64))
        if not csi:
            n_intv = i32(at)
            offsets.append(
                np.frombuffer(data, dtype="<u8", count=n_intv, offset=at + 4).astype(np.int64)
            )
            at += 4 + 8 * n_intv
    return np.concatenate(offsets) if offsets else np.zeros(0, np.int64)


def _whole_lines(pieces: list[bytes], clean: int) -> tuple[bytes | None, list[bytes], int]:
    """``(batch, rest, clean)``: ``pieces`` joined up to their last newline, and the rest.

    ``pieces[:clean]`` are known to hold no newline; the batch is None (and ``clean`` all the
    pieces) when none holds one.
    """
    k = len(pieces) - 1  # the last piece holding a newline (usually the last one)
    while k >= clean and pieces[k].rfind(b"\n") < 0:
        k -= 1
    if k < clean:
        return None, pieces, len(pieces)
    cut = pieces[k].rfind(b"\n") + 1
    batch = b"".join([*pieces[:k], pieces[k][:cut]])
    rest = pieces[k][cut:]
    return batch, ([rest] if rest else []) + pieces[k + 1 :], 0


@dataclass
class OwnedLines:
    """The lines owned by the blocks from ``start`` up to (not including) the one at ``stop``.

    Iterating yields ``(text, position)``: whole lines (each ending in a newline; one is added
    to a last line without) of at least ``batch_bytes`` bytes (fewer at the end), ``position``
    the offset of ``text[0]`` in the text read from block ``start`` on. After the iteration,
    ``block_offsets`` and ``block_text_starts`` hold the offset and text start (same origin) of
    every block read from ``start`` to ``stop``.

    Args:
        file: the :class:`TextFile`.
        start: a block start (``file.data_block``: the header's text is skipped).
        stop: a block start after ``start``, or ``file.size``.
        batch_bytes: text per batch.
    """

    file: TextFile
    start: int
    stop: int
    batch_bytes: int
    block_offsets: list[int] = field(default_factory=list)
    block_text_starts: list[int] = field(default_factory=list)

    def __iter__(self) -> Iterator[tuple[bytes, int]]:
        # the text read and not yet yielded, as the blocks' own bytes: a batch is joined from
        # them once (one copy of the text), cut after the last newline
        pieces: list[bytes] = []
        size = 0  # bytes in pieces
        clean = 0  # pieces[:clean] hold no newline (searched already)
        position = 0  # text offset of pieces[0][0]
        read = 0  # text read so far
        skipping = self.start != self.file.data_block
        skip = 0 if skipping else self.file.header_skip
        for offset, block in self.file.blocks(self.start):
            text = block
            owned = offset < self.stop
            if owned:
                self.block_offsets.append(offset)
                self.block_text_starts.append(read)
            read += len(text)
            if skip:
                cut = min(skip, len(text))
                text, skip, position = text[cut:], skip - cut, position + cut
            if skipping:
                newline = text.find(b"\n")
                if newline < 0 or not owned:
                    position += len(text)
                    if not owned:  # no newline in the range: it owns no line
                        return
                    continue
                text, skipping, position = text[newline + 1 :], False, position + newline + 1
            if not owned:  # past the range: up to the newline ending its last line
                newline = text.find(b"\n")
                pieces.append(text if newline < 0 else text[: newline + 1])
                if newline >= 0:
                    break
                continue
            pieces.append(text)
            size += len(text)
            if size < self.batch_bytes:
                continue
            batch, pieces, clean = _whole_lines(pieces, clean)
            if batch is None:  # a line longer than a batch so far: read on
                continue
            size -= len(batch)
            yield batch, position
            position += len(batch)
        if pieces:
            text = b"".join(pieces)
            if text:
                yield (text if text.endswith(b"\n") else text + b"\n"), position

    def file_offset(self, text_offset: int) -> int:
        """The file offset of the block whose text holds ``text_offset``.

        ``text_offset`` has ``position``'s origin: how far into the file a batch ending there
        has read, to a block.
        """
        starts = self.block_text_starts[:]  # a copy: a thread may append
        if not starts:
            return self.start
        k = max(int(np.searchsorted(np.asarray(starts), text_offset, side="right")) - 1, 0)
        return int(self.block_offsets[k])

    def owners(
        self, text: bytes, position: int, *, newline: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(owner, records)`` of a batch.

        ``owner``: for each line, the index (among the blocks read) of the block that owns it;
        ``records``: the index among the lines of each line that holds a record (the parser's
        rule: not blank). ``newline``: the batch's newline offsets, when the caller has them.
        """
        from .reader import record_lines

        buf = np.frombuffer(text, dtype=np.uint8)
        ends = np.flatnonzero(buf == 10) if newline is None else newline
        starts = np.concatenate(([0], ends[:-1] + 1)).astype(np.int64)
        block_starts = np.asarray(self.block_text_starts[:])  # a copy: a thread may append
        owner = np.searchsorted(block_starts, starts + position - 1, side="right") - 1
        # a plain file's first record: the header's newline is before the first block
        records = record_lines(buf, numbered=True, newline=ends)[2]
        return np.maximum(owner, 0).astype(np.int64), records
