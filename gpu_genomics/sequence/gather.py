"""Placing the records of a batch into fixed-width rows through a byte lookup table.

This is the shared engine of :func:`~gpu_genomics.one_hot` (a table of packed one-hot rows)
and :func:`~gpu_genomics.tokenize` (a table of token ids): every output slot is either a table
entry for one input byte or the pad word. The CPU twin (numba, parallel over rows) and the CUDA
kernel (``kernels/gather.cu``) take the same table and placement, so they agree bit for bit.
"""

from __future__ import annotations

from typing import Any, Literal

import numba
import numpy as np

from .. import _kernels
from ..device import Device, array_module
from ..errors import invalid
from .batch import SequenceBatch

PadMode = Literal["right", "center", "left"]

PAD_MODES = ("right", "center", "left")


def placement(
    lengths: np.ndarray, width: int, pad: PadMode
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each record lands in a row of ``width`` slots.

    Args:
        lengths: ``(n,)`` record lengths.
        width: slots per row.
        pad: ``"right"`` keeps the first ``width`` bases and pads at the end; ``"left"`` keeps
            the first ``width`` bases and pads at the start; ``"center"`` pads both sides (the
            odd slot goes to the right) or crops both sides (the odd base is cut from the
            right).

    Returns:
        ``(dst, src, count)``, each ``(n,) int64``: slots ``dst .. dst + count - 1`` of row
        ``i`` take bases ``src .. src + count - 1`` of record ``i``; other slots are padding.

    Raises:
        InputError: ``pad`` is not one of :data:`PAD_MODES`.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    count = np.minimum(lengths, width)
    zeros = np.zeros_like(lengths)
    if pad == "right":
        return zeros, zeros, count
    if pad == "left":
        return width - count, zeros, count
    if pad == "center":
        return np.maximum(width - lengths, 0) // 2, np.maximum(lengths - width, 0) // 2, count
    raise invalid("pad", pad, f"is not one of {', '.join(PAD_MODES)}")


def placement_mask(xp: Any, dst: Any, count: Any, width: int) -> Any:
    """Return the ``(n, width) uint8`` mask of a placement: 1 for a base, 0 for padding.

    Args:
        xp: NumPy or CuPy, the module of ``dst`` and ``count``.
        dst: ``(n,) int64`` first slot of each row's bases (from :func:`placement`).
        count: ``(n,) int64`` bases in each row.
        width: slots per row.
    """
    slots = xp.arange(width, dtype=np.int64)[None, :]
    return ((slots >= dst[:, None]) & (slots < (dst + count)[:, None])).astype(np.uint8)


# On the CPU a table entry is copied as one machine word: 4 bytes as uint32, 8 as uint64,
# 16 as complex128 (a bit-exact copy; no arithmetic touches the values).
_CPU_WORD_DTYPES = {1: np.uint32, 2: np.uint64, 4: np.complex128}


@numba.njit(parallel=True, cache=True, nogil=True)
def _gather_words_cpu(data, first, dst, count, lut, pad, out):  # pragma: no cover  # noqa: PLR0917 (numba: positional arguments)
    n_rows, width = out.shape
    for row in numba.prange(n_rows):
        slot0 = dst[row]
        n_bases = count[row]
        base = first[row] - slot0
        out_row = out[row]
        for j in range(slot0):
            out_row[j] = pad
        for j in range(slot0, slot0 + n_bases):
            out_row[j] = lut[data[base + j]]
        for j in range(slot0 + n_bases, width):
            out_row[j] = pad


def _gather_words_twin(data, first, dst, count, lut, pad, out):  # noqa: PLR0917 (kernel's order)
    """CPU twin of the ``gather_words*`` kernels: the same arrays, seen as machine words."""
    n_rows, width, n_words = out.shape
    word = _CPU_WORD_DTYPES[n_words]
    rows = out.view(word).reshape(n_rows, width)
    _gather_words_cpu(data, first, dst, count, lut.view(word).reshape(256), pad.view(word)[0], rows)


def _gather_kernel(n_words: int, word: str) -> _kernels.Kernel:
    """The ``GG_DEFINE_GATHER`` kernel of ``gather.cu`` for ``n_words`` 32-bit words a slot."""
    return _kernels.Kernel(
        module="gather",
        function=f"gather_words{32 * n_words}",
        params=(
            ("data", "const unsigned char*"),
            ("first", "const long long*"),
            ("dst", "const long long*"),
            ("count", "const long long*"),
            ("lut", f"const {word}*"),
            ("pad", f"const {word}*"),
            ("n_rows", "long long"),
            ("width", "int"),
            ("out", f"{word}*"),
        ),
        twin=_gather_words_twin,
    )


#: The gather kernel for each number of 32-bit words per slot (the C word type of the kernel).
GATHER_WORDS = {
    1: _gather_kernel(1, "unsigned int"),
    2: _gather_kernel(2, "uint2"),
    4: _gather_kernel(4, "uint4"),
}


def gather_windows(
    data: Any,
    starts: np.ndarray,
    lengths: np.ndarray,
    *,
    width: int,
    pad: PadMode,
    lut_words: np.ndarray,
    pad_words: np.ndarray,
    device: Device,
    out: Any = None,
) -> tuple[Any, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Map the windows ``data[starts[i] : starts[i] + lengths[i]]`` through a table into rows.

    Args:
        data: ``(total,) uint8`` bytes on ``device`` (NumPy or CuPy): a batch's buffer or a
            whole chromosome; windows may overlap.
        starts: ``(n,) int64`` host array, where each window starts in ``data``.
        lengths: ``(n,) int64`` host array, the windows' lengths.
        width: slots per output row.
        pad: where the padding goes (see :func:`placement`).
        lut_words: ``(256, W) uint32`` table, W in {1, 2, 4}: the words written for each byte.
        pad_words: ``(W,) uint32`` words written in padding slots.
        device: ``"cpu"`` or ``"gpu"``.
        out: optional ``(n, width, W) uint32`` C-contiguous array on ``device`` to write into
            (a reused buffer saves the first-touch cost of fresh memory).

    Returns:
        ``(out, (dst, src, count))``: ``out`` is ``(n, width, W) uint32`` on ``device``
        (``n * width * 4 * W`` bytes); the placement (host arrays) is returned for building
        masks.
    """
    n_words = lut_words.shape[1]
    dst, src, count = placement(lengths, width, pad)
    first = np.asarray(starts, dtype=np.int64) + src
    n = len(dst)
    if out is None:
        out = array_module(device).empty((n, width, n_words), dtype=np.uint32)
    GATHER_WORDS[n_words](
        device,
        grid=_kernels.rows_grid(n, width),
        data=data,
        first=first,
        dst=dst,
        count=count,
        lut=np.ascontiguousarray(lut_words),
        pad=pad_words,
        n_rows=n,
        width=width,
        out=out,
    )
    return out, (dst, src, count)


def gather_rows(
    batch: SequenceBatch,
    *,
    width: int,
    pad: PadMode,
    lut_words: np.ndarray,
    pad_words: np.ndarray,
    device: Device,
) -> tuple[Any, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Run :func:`gather_windows` over the records of ``batch`` (one row per record).

    Args:
        batch: the records.
        width: slots per row.
        pad: where the padding goes (see :func:`placement`).
        lut_words: ``(256, W) uint32`` table of the words written for each byte.
        pad_words: ``(W,) uint32`` words written in padding slots.
        device: ``"cpu"`` or ``"gpu"``.

    Returns:
        ``(out, (dst, src, count))`` as :func:`gather_windows` returns them.
    """
    data, _ = batch.arrays(device)
    return gather_windows(
        data,
        batch.offsets[:-1],
        batch.lengths,
        width=width,
        pad=pad,
        lut_words=lut_words,
        pad_words=pad_words,
        device=device,
    )
