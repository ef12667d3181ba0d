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
from ..errors import InputError
from .batch import SequenceBatch

PadMode = Literal["right", "center", "left"]

_GPU_KERNEL_FOR_WORDS = {1: "gather_words32", 2: "gather_words64", 4: "gather_words128"}


def placement(
    lengths: np.ndarray, width: int, pad: PadMode
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each record lands in a row of ``width`` slots.

    Returns ``(dst, src, count)``, each ``(n,) int64``: slots ``dst .. dst + count - 1`` of row
    ``i`` take bases ``src .. src + count - 1`` of record ``i``; other slots are padding.
    ``right`` keeps the first ``width`` bases and pads at the end; ``left`` keeps the first
    ``width`` bases and pads at the start; ``center`` pads both sides (the odd slot goes to the
    right) or crops both sides (the odd base is cut from the right).
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
    raise InputError(f"pad={pad!r} is not one of right, center, left")


def placement_mask(xp: Any, dst: Any, count: Any, width: int) -> Any:
    """``(n, width) uint8``: 1 where a slot holds a base, 0 where it is padding."""
    slots = xp.arange(width, dtype=np.int64)[None, :]
    return ((slots >= dst[:, None]) & (slots < (dst + count)[:, None])).astype(np.uint8)


# On the CPU a table entry is copied as one machine word: 4 bytes as uint32, 8 as uint64,
# 16 as complex128 (a bit-exact copy; no arithmetic touches the values).
_CPU_WORD_DTYPES = {1: np.uint32, 2: np.uint64, 4: np.complex128}


@numba.njit(parallel=True, cache=True, nogil=True)
def _gather_words_cpu(data, first, dst, count, lut, pad, out):  # pragma: no cover
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


def gather_windows(
    data: Any,
    starts: np.ndarray,
    lengths: np.ndarray,
    width: int,
    pad: PadMode,
    lut_words: np.ndarray,
    pad_words: np.ndarray,
    device: Device,
    out: Any = None,
) -> tuple[Any, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Map the windows ``data[starts[i] : starts[i] + lengths[i]]`` through ``lut_words`` into
    rows of ``width`` slots.

    Args:
        data: ``(total,) uint8`` bytes on ``device`` (NumPy or CuPy): a batch's buffer or a
            whole chromosome; windows may overlap.
        starts, lengths: ``(n,) int64`` host arrays, the windows in ``data``.
        lut_words: ``(256, W) uint32`` table, W in {1, 2, 4}: the words written for each byte.
        pad_words: ``(W,) uint32`` words written in padding slots.
        out: optional ``(n, width, W) uint32`` C-contiguous array on ``device`` to write into
            (a reused buffer saves the first-touch cost of fresh memory).

    Returns:
        ``(out, (dst, src, count))``: ``out`` is ``(n, width, W) uint32`` on ``device``; the
        placement (host arrays) is returned for building masks.
    """
    n_words = lut_words.shape[1]
    dst, src, count = placement(lengths, width, pad)
    first = np.asarray(starts, dtype=np.int64) + src
    n = len(dst)
    xp = array_module(device)
    if out is None:
        out = xp.empty((n, width, n_words), dtype=np.uint32)
    if device == "cpu":
        word = _CPU_WORD_DTYPES[n_words]
        lut = np.ascontiguousarray(lut_words).view(word).reshape(256)
        rows = out.view(word).reshape(n, width)
        _gather_words_cpu(data, first, dst, count, lut, pad_words.view(word)[0], rows)
        return out, (dst, src, count)
    fn = _kernels.kernel("gather", _GPU_KERNEL_FOR_WORDS[n_words])
    args = (
        data,
        xp.asarray(first),
        xp.asarray(dst),
        xp.asarray(count),
        xp.asarray(np.ascontiguousarray(lut_words)),
        xp.asarray(pad_words),
        _kernels.i64(n),
        _kernels.i32(width),
        out,
    )
    _kernels.launch_rows(fn, n, width, args)
    return out, (dst, src, count)


def gather_rows(
    batch: SequenceBatch,
    width: int,
    pad: PadMode,
    lut_words: np.ndarray,
    pad_words: np.ndarray,
    device: Device,
) -> tuple[Any, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """:func:`gather_windows` over the records of ``batch`` (one row per record)."""
    data, _ = batch.arrays(device)
    return gather_windows(
        data, batch.offsets[:-1], batch.lengths, width, pad, lut_words, pad_words, device
    )
