"""One-hot encoding of DNA sequences: ``(n, length, 4)`` arrays for CNNs (Basset, DeepSEA)."""

from __future__ import annotations

import functools
from typing import Any, Literal

import numpy as np

from ..device import Device, resolve_device
from ..errors import check_choice, invalid, positive_int
from .alphabet import IUPAC_DNA, check_order
from .batch import SequencesLike, as_batch
from .gather import PadMode, gather_rows, gather_windows

ONE_HOT_DTYPES = ("uint8", "int8", "float16", "float32")
Layout = Literal["NLC", "NCL"]
LAYOUTS = ("NLC", "NCL")


@functools.cache
def one_hot_table(alphabet: str = "ACGT", dtype: str = "uint8", n_value: float = 0.0) -> np.ndarray:
    """Return the one-hot row written for each byte, a read-only ``(256, 4)`` array.

    A/C/G/T (either case) set the column of their position in ``alphabet``; the other IUPAC
    letters (N, R, Y, ...) give ``n_value`` in all four columns; every other byte (padding)
    gives zeros.

    Args:
        alphabet: column order, a permutation of ``"ACGT"``.
        dtype: one of :data:`ONE_HOT_DTYPES`, the table's dtype.
        n_value: value of N and the other IUPAC letters (0 or 1 for integer dtypes).

    Raises:
        InputError: a bad ``alphabet``, ``dtype`` or ``n_value``.
    """
    order = check_order(alphabet)
    check_choice("dtype", dtype, ONE_HOT_DTYPES)
    if n_value != 0 and dtype in ("uint8", "int8") and n_value != 1:
        raise invalid("n_value", n_value, "needs a float dtype (float16 or float32)")
    table = np.zeros((256, 4), dtype=dtype)
    for letter in IUPAC_DNA:
        for byte in (ord(letter), ord(letter.lower())):
            table[byte] = n_value
            if letter in order:
                table[byte] = 0
                table[byte, order.index(letter)] = 1
    table.setflags(write=False)
    return table


def one_hot(
    seqs: SequencesLike,
    length: int | None = None,
    *,
    alphabet: str = "ACGT",
    dtype: str = "uint8",
    n_value: float = 0.0,
    layout: Layout = "NLC",
    pad: PadMode = "right",
    device: str | None = None,
) -> Any:
    """One-hot encode a batch of DNA sequences.

    Args:
        seqs: sequences (see :func:`~gpu_genomics.sequence.batch.as_batch`).
        length: output length in bases; ``None`` means the longest record. Shorter records are
            padded with all-zero rows, longer ones truncated.
        alphabet: column order, a permutation of ``"ACGT"`` (``"ACTG"`` matches
            genomic_interval_pipeline).
        dtype: ``uint8``, ``int8``, ``float16`` or ``float32``.
        n_value: value of all four columns for N and the other IUPAC letters (0, or 0.25 with a
            float dtype as Basset did). Padding is always 0.
        layout: ``"NLC"`` gives ``(n, length, 4)``; ``"NCL"`` gives channel-major
            ``(n, 4, length)``.
        pad: ``"right"`` (keep the first bases, pad at the end) or ``"center"`` (pad or crop
            both sides equally).
        device: ``"auto" | "gpu" | "cpu"``; default ``$GPU_GENOMICS_DEVICE`` or auto.

    Returns:
        ``(n, length, 4)`` (or ``(n, 4, length)``) array of ``dtype``: NumPy on the CPU, CuPy on
        the GPU.
    """
    batch = as_batch(seqs)
    device_name = resolve_device(device)
    check_choice("layout", layout, LAYOUTS)
    check_choice("pad", pad, ("right", "center"))
    width = batch.max_length if length is None else positive_int("length", length)
    table = _table(alphabet, dtype, n_value)
    lut_words, pad_words = _table_words(table)
    words, _ = gather_rows(
        batch, width=width, pad=pad, lut_words=lut_words, pad_words=pad_words, device=device_name
    )
    encoded = words.view(table.dtype).reshape(len(batch), width, 4)
    if layout == "NCL":
        encoded = encoded.transpose(0, 2, 1).copy()
    return encoded


def one_hot_windows(
    data: Any,
    starts: np.ndarray,
    length: int,
    *,
    alphabet: str = "ACGT",
    dtype: str = "uint8",
    n_value: float = 0.0,
    device: Device = "cpu",
    out: Any = None,
) -> Any:
    """One-hot encode windows of one long sequence (a chromosome), gathered in bulk.

    Args:
        data: ``(chrom_length,) uint8`` ASCII letters on ``device`` (NumPy or CuPy).
        starts: ``(n,) int64`` host array of window starts; every window lies inside ``data``.
        length: window length in bases.
        alphabet: column order, a permutation of ``"ACGT"``.
        dtype: one of :data:`ONE_HOT_DTYPES`.
        n_value: value of all four columns for N and the other IUPAC letters.
        device: ``"cpu"`` or ``"gpu"`` (already resolved), where ``data`` is.
        out: optional C-contiguous array on ``device`` of at least ``n * length * 4`` elements
            of ``dtype`` to encode into (reused across calls, it saves fresh-memory faults).

    Returns:
        ``(n, length, 4)`` array of ``dtype`` on ``device`` (a view of ``out`` when given).
    """
    table = _table(alphabet, dtype, n_value)
    lut_words, pad_words = _table_words(table)
    n = len(starts)
    if out is not None:
        out = out.reshape(-1)[: n * length * 4].view(np.uint32).reshape(n, length, -1)
    lengths = np.full(n, length, dtype=np.int64)
    words, _ = gather_windows(
        data,
        starts,
        lengths,
        width=length,
        pad="right",
        lut_words=lut_words,
        pad_words=pad_words,
        device=device,
        out=out,
    )
    return words.view(table.dtype).reshape(n, length, 4)


def _table(alphabet: str, dtype: str, n_value: float) -> np.ndarray:
    try:
        dtype_name = np.dtype(dtype).name
    except TypeError:
        raise invalid("dtype", dtype, f"is not one of {', '.join(ONE_HOT_DTYPES)}") from None
    return one_hot_table(check_order(alphabet), dtype_name, float(n_value))


def _table_words(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The table as ``(256, W) uint32`` words and the all-zero padding word."""
    lut_words = table.view(np.uint32).reshape(256, -1)
    return lut_words, np.zeros(lut_words.shape[1], dtype=np.uint32)
