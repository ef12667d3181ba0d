"""Reverse complement of sequences, token codes and one-hot arrays (IUPAC complements kept)."""

from __future__ import annotations

from typing import Any, Literal

import numba
import numpy as np

from .. import _kernels
from ..device import array_module, is_gpu_array, resolve_device, to_numpy
from ..errors import InputError, check_choice
from .alphabet import complement_bytes, complement_permutation
from .batch import SequenceBatch, as_batch
from .onehot import LAYOUTS, Layout

Kind = Literal["auto", "sequences", "codes", "onehot"]
KINDS = ("auto", "sequences", "codes", "onehot")


@numba.njit(parallel=True, cache=True, nogil=True)
def _reverse_complement_cpu(data, offsets, complement, out):  # pragma: no cover
    for row in numba.prange(len(offsets) - 1):
        start = offsets[row]
        end = offsets[row + 1]
        for j in range(end - start):
            out[end - 1 - j] = complement[data[start + j]]


REVERSE_COMPLEMENT_BYTES = _kernels.Kernel(
    module="reverse_complement",
    function="reverse_complement_bytes",
    params=(
        ("data", "const unsigned char*"),
        ("offsets", "const long long*"),
        ("complement", "const unsigned char*"),
        ("n_rows", "long long"),
        ("out", "unsigned char*"),
    ),
    twin=_reverse_complement_cpu,
)


@numba.njit(parallel=True, cache=True, nogil=True)
def _reverse_complement_rows_cpu(windows, rows, complement):  # pragma: no cover
    length = windows.shape[1]
    for i in numba.prange(len(rows)):
        row = windows[rows[i]]
        for j in range(length // 2):
            left = row[j]
            row[j] = complement[row[length - 1 - j]]
            row[length - 1 - j] = complement[left]
        if length % 2:
            row[length // 2] = complement[row[length // 2]]


def reverse_complement_rows(windows: np.ndarray, rows: np.ndarray) -> None:
    """Reverse-complement, in place, some rows of an array of ASCII letters (host).

    One-hot encoding the result equals reverse-complementing the one-hot rows, at a quarter of
    the bytes moved.

    Args:
        windows: ``(n, L) uint8`` ASCII letters, modified in place.
        rows: indices of the rows to reverse-complement.
    """
    _reverse_complement_rows_cpu(windows, np.asarray(rows, dtype=np.int64), complement_bytes())


def reverse_complement_batch(batch: SequenceBatch, *, device: str | None = None) -> SequenceBatch:
    """Reverse-complement every record of ``batch`` (IUPAC complements, case kept).

    Args:
        batch: the records.
        device: ``"auto" | "gpu" | "cpu"``.

    Returns:
        A new host batch with the same offsets, names and width.
    """
    device_name = resolve_device(device)
    data, offsets = batch.arrays(device_name)
    out = array_module(device_name).empty_like(data)
    REVERSE_COMPLEMENT_BYTES(
        device_name,
        grid=_kernels.rows_grid(len(batch), batch.max_length),
        data=data,
        offsets=offsets,
        complement=complement_bytes(),
        n_rows=len(batch),
        out=out,
    )
    return SequenceBatch(to_numpy(out), batch.offsets, batch.names, batch.width)


def reverse_complement(
    x: Any,
    *,
    kind: Kind = "auto",
    alphabet: str = "ACGT",
    layout: Layout = "NLC",
    device: str | None = None,
) -> Any:
    """Reverse-complement sequences, token codes or one-hot arrays.

    Args:
        x: what to reverse-complement, by ``kind``:

            * ``"sequences"``: a str, bytes, list of them, an ``(n, L)`` uint8/S1 array of
              ASCII letters or a :class:`SequenceBatch`; returned as the same type. IUPAC
              complements (R<->Y, K<->M, B<->V, D<->H; N, S, W unchanged), case kept.
            * ``"codes"``: an integer array of spec codes (A0 C1 G2 T3, N4, anything else kept),
              reversed along its last axis; codes 0-3 become ``3 - code``.
            * ``"onehot"``: an ``(n, L, 4)`` (``layout="NLC"``) or ``(n, 4, L)`` (``"NCL"``)
              array with columns in ``alphabet`` order; reversed along the length axis with the
              channels permuted to their complements.
            * ``"auto"``: 3-D arrays are one-hot, integer arrays whose values are all below
              ``"A"`` (65) are codes, anything else is sequences.
        kind: one of :data:`KINDS` (above).
        alphabet: one-hot column order, a permutation of ``"ACGT"``.
        layout: one-hot layout, ``"NLC"`` or ``"NCL"``.
        device: ``"auto" | "gpu" | "cpu"``. Codes and one-hot arrays already on the GPU are
            computed there whatever ``device`` says.

    Returns:
        The reverse complement. Sequences come back in the input's form (str, bytes, list,
        host array or batch); codes and one-hot arrays come back on the device that computed
        them (NumPy on the CPU, CuPy on the GPU), like every operation's result.

    Raises:
        InputError: a bad ``kind``, ``alphabet`` or ``layout``; a one-hot array that is not
            3-D; sequences given as a GPU array.
    """
    if check_choice("kind", kind, KINDS) == "auto":
        kind = _guess_kind(x)
    if kind == "sequences":
        return _reverse_complement_sequences(x, device)
    xp = array_module("gpu" if is_gpu_array(x) else resolve_device(device))
    array = xp.asarray(x)
    if kind == "codes":
        flipped = array[..., ::-1]
        return xp.where((flipped >= 0) & (flipped <= 3), 3 - flipped, flipped).astype(array.dtype)
    if array.ndim != 3:
        raise InputError(f"a one-hot array must be 3-D, got shape {array.shape}")
    perm = xp.asarray(complement_permutation(alphabet))
    if check_choice("layout", layout, LAYOUTS) == "NLC":
        return xp.ascontiguousarray(array[:, ::-1, :][:, :, perm])
    return xp.ascontiguousarray(array[:, :, ::-1][:, perm, :])


def _guess_kind(x: Any) -> Kind:
    if isinstance(x, SequenceBatch | str | bytes | list | tuple):
        return "sequences"
    ndim = getattr(x, "ndim", None)
    if ndim == 3:
        return "onehot"
    dtype = getattr(x, "dtype", None)
    if dtype is not None and dtype.kind in "iu" and x.size and int(x.max()) < ord("A"):
        return "codes"
    return "sequences"


def _reverse_complement_sequences(x: Any, device: str | None) -> Any:
    if is_gpu_array(x):
        raise InputError("pass ASCII sequences as host data; GPU arrays are for codes or one-hot")
    batch = as_batch(x)
    result = reverse_complement_batch(batch, device=device)
    if isinstance(x, SequenceBatch):
        return result
    if isinstance(x, np.ndarray) and x.ndim == 2:
        return result.data.reshape(x.shape).view(x.dtype)
    if isinstance(x, str):
        return result.sequence(0)
    if isinstance(x, bytes):
        return result.sequence(0).encode()
    strings = result.to_strings()
    if all(isinstance(s, bytes) for s in x):
        return [s.encode() for s in strings]
    return strings
