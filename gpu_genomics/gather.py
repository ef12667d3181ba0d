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

from . import _kernels
from .device import Device, array_module
from .errors import InputError
from .sequences import SequenceBatch

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


@numba.njit(parallel=True, cache=True, nogil=True)
def _gather_words_cpu(data, offsets, dst, src, count, lut, pad, out):  # pragma: no cover
    n_rows, width, n_words = out.shape
    for row in numba.prange(n_rows):
        first = dst[row]
        n_bases = count[row]
        base = offsets[row] + src[row]
        for j in range(width):
            rel = j - first
            if rel >= 0 and rel < n_bases:
                byte = data[base + rel]
                for w in range(n_words):
                    out[row, j, w] = lut[byte, w]
            else:
                for w in range(n_words):
                    out[row, j, w] = pad[w]


def gather_rows(
    batch: SequenceBatch,
    width: int,
    pad: PadMode,
    lut_words: np.ndarray,
    pad_words: np.ndarray,
    device: Device,
) -> tuple[Any, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Map every base of ``batch`` through ``lut_words`` into rows of ``width`` slots.

    Args:
        lut_words: ``(256, W) uint32`` table, W in {1, 2, 4}: the words written for each byte.
        pad_words: ``(W,) uint32`` words written in padding slots.

    Returns:
        ``(out, (dst, src, count))``: ``out`` is ``(n, width, W) uint32`` on ``device``; the
        placement is returned (host arrays) for building masks.
    """
    n_words = lut_words.shape[1]
    dst, src, count = placement(batch.lengths, width, pad)
    n = len(batch)
    xp = array_module(device)
    out = xp.empty((n, width, n_words), dtype=np.uint32)
    if device == "cpu":
        _gather_words_cpu(batch.data, batch.offsets, dst, src, count, lut_words, pad_words, out)
        return out, (dst, src, count)
    data, offsets = batch.arrays("gpu")
    fn = _kernels.kernel("gather", _GPU_KERNEL_FOR_WORDS[n_words])
    args = (
        data, offsets, xp.asarray(dst), xp.asarray(src), xp.asarray(count),
        xp.asarray(np.ascontiguousarray(lut_words)), xp.asarray(pad_words),
        _kernels.i64(n), _kernels.i32(width), out,
    )  # fmt: skip
    _kernels.launch_rows(fn, n, width, args)
    return out, (dst, src, count)
