"""Loading the CUDA sources in ``kernels/*.cu`` and launching them through CuPy.

The ``.cu`` files ship inside the wheel as ``gpu_genomics/kernels/``; in a source checkout they
are read from the repository's top-level ``kernels/``. Each file is compiled once per process
by CuPy (NVRTC) on first use, and CuPy caches the binary on disk.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

THREADS = 256
MAX_GRID_X = 4096
MAX_GRID_Y = 65535


def kernel_dir() -> Path:
    """The folder holding the ``.cu`` sources (installed package first, then the checkout)."""
    packaged = Path(__file__).resolve().parent / "kernels"
    if packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parent.parent / "kernels"
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(
        f"CUDA sources not found in {packaged} or {checkout}; reinstall gpu-genomics"
    )


def kernel_source(name: str) -> str:
    """Source text of ``kernels/<name>.cu``."""
    return (kernel_dir() / f"{name}.cu").read_text()


@functools.cache
def _module(name: str) -> Any:
    import cupy

    return cupy.RawModule(code=kernel_source(name), options=("--std=c++17",))


def kernel(module: str, function: str) -> Any:
    """The compiled CUDA function ``function`` of ``kernels/<module>.cu``."""
    return _module(module).get_function(function)


def launch_rows(fn: Any, n_rows: int, width: int, args: tuple, shared_mem: int = 0) -> None:
    """Launch a kernel whose grid's x covers ``width`` items of a row and whose y strides
    over ``n_rows`` rows (the layout of gather, reverse_complement, kmer_codes, tokenize)."""
    if n_rows == 0 or width == 0:
        return
    grid_x = min(max(1, -(-width // THREADS)), MAX_GRID_X)
    grid_y = min(n_rows, MAX_GRID_Y)
    fn((grid_x, grid_y), (THREADS,), args, shared_mem=shared_mem)


def launch_blocks_per_row(fn: Any, n_rows: int, args: tuple, shared_mem: int = 0) -> None:
    """Launch a kernel with one block per row (grid-stride when rows outnumber the grid)."""
    if n_rows == 0:
        return
    fn((min(n_rows, 2**31 - 1),), (THREADS,), args, shared_mem=shared_mem)


def i32(value: int) -> np.int32:
    """A kernel argument of C type ``int``."""
    return np.int32(value)


def i64(value: int) -> np.int64:
    """A kernel argument of C type ``long long``."""
    return np.int64(value)
