"""Reverse-complement and shift augmentation of a batch: the ``augment_rows`` kernel and its twin.

One pass does everything the loader does to a batch on the device: it gathers the batch's rows
from the host buffer they were read into (in any order), crops each to ``out_width`` positions
starting at its own offset (the shift), and reverses and channel-permutes the rows drawn for a
reverse complement. The same kernel serves every array of a batch:

* one-hot ``seqs`` ``(n, W', 4)``: crop ``[start, start + L)``, flip, complement permutation
  of ``base_order``;
* profile targets ``(n, bins, K)``: no crop, flip along the bins, channels unchanged;
* labels, scalar targets and any other per-row array: rows gathered only.

Elements are copied as bytes (``item_bytes`` each), so any dtype works and the GPU result is
bit-identical to the CPU twin's. The random draws (shifts, flips) are made on the host by
:func:`draw_augmentation` from a seeded NumPy generator, so both devices apply the same ones.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from .. import _kernels
from ..device import array_module, array_module_of


# One thread, unlike the package's other twins: a batch (about a megabyte) takes well under a
# millisecond on one core, and the loader runs this on its reading thread beside the training
# loop, which should keep the other cores; numba's parallel version was no faster on a batch and
# paid OpenMP's wake-up (milliseconds on a small VM) when Python work came between calls.
@numba.njit(cache=True, nogil=True)
def _augment_rows_cpu(  # noqa: PLR0917 (a kernel's twin takes its arguments by position)
    src, rows, starts, flips, perm, in_width, out_width, channels, item_bytes, out
):  # pragma: no cover
    position_bytes = channels * item_bytes
    in_row_bytes = in_width * position_bytes
    out_row_bytes = out_width * position_bytes
    for i in range(len(rows)):
        first = rows[i] * in_row_bytes + starts[i] * position_bytes
        dst = i * out_row_bytes
        if flips[i] == 0:  # a plain crop: one contiguous copy
            out[dst : dst + out_row_bytes] = src[first : first + out_row_bytes]
            continue
        for j in range(out_width):
            q = out_width - 1 - j
            for c in range(channels):
                a = first + q * position_bytes + perm[c] * item_bytes
                b = dst + (j * channels + c) * item_bytes
                for k in range(item_bytes):
                    out[b + k] = src[a + k]


AUGMENT_ROWS = _kernels.Kernel(
    module="augment",
    function="augment_rows",
    params=(
        ("src", "const unsigned char*"),
        ("rows", "const long long*"),
        ("starts", "const int*"),
        ("flips", "const unsigned char*"),
        ("perm", "const int*"),
        ("n_rows", "long long"),
        ("in_width", "int"),
        ("out_width", "int"),
        ("channels", "int"),
        ("item_bytes", "int"),
        ("out", "unsigned char*"),
    ),
    twin=_augment_rows_cpu,
)


def augment_rows(
    device: str,
    src: np.ndarray,
    *,
    rows: np.ndarray,
    starts: np.ndarray | None = None,
    flips: np.ndarray | None = None,
    perm: np.ndarray | None = None,
    out_width: int | None = None,
) -> Any:
    """Gather, crop and reverse rows of ``src`` on ``device`` (one kernel launch).

    Args:
        device: ``"cpu"`` or ``"gpu"`` (resolved).
        src: ``(m, W, C)``, ``(m, C)`` or ``(m,)`` array of any fixed-size dtype, on the host
            (copied to the GPU there) or, on the GPU, already on it; a 1-D or 2-D array is
            treated as ``(m, 1, 1)`` / ``(m, 1, C)``, i.e. rows to gather and nothing to crop
            or flip.
        rows: ``(n,)`` indices into ``src`` of the output rows (any order, repeats allowed).
        starts: ``(n,)`` first position of each output row, in ``[0, W - out_width]``
            (default 0).
        flips: ``(n,)`` non-zero where a row is reversed and channel-permuted (default none).
        perm: ``(C,)`` output channel ``c`` of a flipped row is source channel ``perm[c]``
            (default the identity).
        out_width: positions per output row (default ``W``).

    Returns:
        ``(n, out_width, C)`` (or ``(n,)``, ``(n, C)`` for 1-D / 2-D ``src``) of ``src``'s dtype,
        NumPy on the CPU, CuPy on the GPU. Memory: the output, plus on the GPU a device copy
        of a host ``src`` and of the ``n``-long index arrays.

    Raises:
        ValueError: a start would read past the end of its row, or a row index is out of range.
    """
    src = array_module_of(src).ascontiguousarray(src)
    shape3 = src.shape if src.ndim == 3 else (len(src), 1, src.shape[1] if src.ndim == 2 else 1)
    m, in_width, channels = shape3
    out_width = in_width if out_width is None else int(out_width)
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    n = len(rows)
    starts = np.zeros(n, np.int32) if starts is None else np.ascontiguousarray(starts, np.int32)
    flips = np.zeros(n, np.uint8) if flips is None else np.ascontiguousarray(flips, np.uint8)
    perm = np.arange(channels, dtype=np.int32) if perm is None else np.asarray(perm, np.int32)
    if n and (rows.min() < 0 or rows.max() >= m):
        raise ValueError(f"row indices must lie in [0, {m}), got {rows.min()}..{rows.max()}")
    if n and (starts.min() < 0 or starts.max() > in_width - out_width):
        raise ValueError(
            f"starts must lie in [0, {in_width - out_width}] for {out_width} of {in_width}"
        )
    if perm.shape != (channels,) or (channels and (perm.min() < 0 or perm.max() >= channels)):
        raise ValueError(f"perm must be a permutation of {channels} channels, got {perm}")
    out_shape = (n, out_width, channels) if src.ndim == 3 else (n, *src.shape[1:])
    xp = array_module(device)  # type: ignore[arg-type]
    out = xp.empty(n * out_width * channels * src.itemsize, dtype=np.uint8)
    AUGMENT_ROWS(
        device,
        grid=_kernels.rows_grid(n, out_width * channels),
        src=src.reshape(-1).view(np.uint8),
        rows=rows,
        starts=starts,
        flips=flips,
        perm=np.ascontiguousarray(perm),
        n_rows=n,
        in_width=in_width,
        out_width=out_width,
        channels=channels,
        item_bytes=src.itemsize,
        out=out,
    )
    return out.view(src.dtype).reshape(out_shape)


def draw_augmentation(
    rng: np.random.Generator, n: int, *, max_shift: int, rc_probability: float
) -> tuple[np.ndarray, np.ndarray]:
    """Draw the shift and the reverse-complement flag of ``n`` rows, in this order.

    Args:
        rng: the batch's generator (seeded by the loader from seed, epoch and batch).
        n: rows in the batch.
        max_shift: shifts are uniform integers in ``[-max_shift, max_shift]`` (none when 0).
        rc_probability: each row is reverse-complemented with this probability (none when 0).

    Returns:
        ``(shifts, flips)``: ``(n,) int32`` and ``(n,) uint8`` (0/1).
    """
    shifts = (
        rng.integers(-max_shift, max_shift + 1, size=n).astype(np.int32)
        if max_shift > 0
        else np.zeros(n, np.int32)
    )
    flips = (
        (rng.random(n) < rc_probability).astype(np.uint8)
        if rc_probability > 0
        else np.zeros(n, np.uint8)
    )
    return shifts, flips
