"""Declaring the CUDA kernels of ``kernels/*.cu`` once, and launching them or their CPU twins.

Each kernel is declared once, beside its launcher in its operation module, as a
:class:`Kernel`: its ``.cu`` module and function, its parameters by name and C type in the
order of the ``.cu`` signature, and its CPU twin (a numba function, or a thin Python wrapper
around one). Launchers call the declaration with keyword arguments, the same on both devices::

    KMER_CODES(device, grid=rows_grid(n, width), data=data, offsets=offsets, digits=digits,
               k=k, canonical=canonical, n_rows=n, codes=codes)

On ``"gpu"`` the call converts each scalar to its declared C type, copies host arrays given for
``const`` pointers to the device, and launches the compiled function through :func:`launch`.
On ``"cpu"`` it calls the twin with the arguments the twin's parameters name; a twin may leave
out kernel parameters (sizes it reads from array shapes). On both, every declared parameter
must be given, and arrays must have the dtype of their C type. ``tests/test_kernels.py`` checks
each declaration against its ``.cu`` signature.

The ``.cu`` files ship inside the wheel as ``gpu_genomics/kernels/``; in a source checkout they
are read from the repository's top-level ``kernels/``. Each file is compiled once per process
by CuPy (NVRTC) on first use, and CuPy caches the binary on disk.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

#: Threads per block of every launch.
THREADS = 256
#: The most blocks a grid is given along x (by :func:`rows_grid`), along y, and along x of a
#: one-dimensional grid.
MAX_GRID_X = 4096
MAX_GRID_Y = 65535
MAX_GRID_1D = 2**31 - 1

#: NumPy dtype of each C type a kernel parameter may have (the pointed-to type for pointers;
#: CUDA's vector types ``uint2``/``uint4`` are arrays with a last axis of 2 or 4 ``uint32``).
C_TYPES: dict[str, np.dtype] = {
    "signed char": np.dtype(np.int8),
    "unsigned char": np.dtype(np.uint8),
    "int": np.dtype(np.int32),
    "unsigned int": np.dtype(np.uint32),
    "long long": np.dtype(np.int64),
    "uint2": np.dtype(np.uint32),
    "uint4": np.dtype(np.uint32),
}


def kernel_dir() -> Path:
    """Return the folder holding the ``.cu`` sources (installed package first, then checkout).

    Raises:
        FileNotFoundError: neither folder exists.
    """
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
    """Return the source text of ``kernels/<name>.cu``."""
    return (kernel_dir() / f"{name}.cu").read_text()


@functools.cache
def _module(name: str) -> Any:
    import cupy

    return cupy.RawModule(code=kernel_source(name), options=("--std=c++17",))


@functools.cache
def compiled(module: str, function: str) -> Any:
    """Return the compiled CUDA function ``function`` of ``kernels/<module>.cu``."""
    return _module(module).get_function(function)


# --- grids -------------------------------------------------------------------------------------
class Grid(NamedTuple):
    """A launch configuration: CUDA's grid (``blocks``) and block (``threads``) dimensions.

    A grid with a zero dimension means there is nothing to do: the launch is skipped.
    """

    blocks: tuple[int, ...]
    threads: tuple[int, ...] = (THREADS,)

    @property
    def empty(self) -> bool:
        """Whether the grid has no block at all."""
        return min(self.blocks) == 0


def rows_grid(n_rows: int, width: int) -> Grid:
    """Grid whose x covers ``width`` items of a row and whose y strides over ``n_rows`` rows.

    The layout of gather, reverse_complement_bytes, kmer_codes and kmer_token_ids.
    """
    if n_rows == 0 or width == 0:
        return Grid((0,))
    return Grid((min(max(1, -(-width // THREADS)), MAX_GRID_X), min(n_rows, MAX_GRID_Y)))


def block_per_row_grid(n_rows: int) -> Grid:
    """Grid of one block per row, grid-striding when rows outnumber the grid."""
    return Grid((min(n_rows, MAX_GRID_1D),))


def thread_per_row_grid(n_rows: int) -> Grid:
    """Grid of one thread per row (sequential work per record)."""
    return Grid((-(-n_rows // THREADS),))


def launch(function: Any, grid: Grid, args: tuple, shared_mem: int = 0) -> None:
    """Launch a compiled CUDA function; every :class:`Kernel` launches through here."""
    function(grid.blocks, grid.threads, args, shared_mem=shared_mem)


# --- declarations ------------------------------------------------------------------------------
class _Param(NamedTuple):
    name: str
    ctype: str
    pointer: bool
    const: bool
    dtype: np.dtype


def _parse_param(name: str, ctype: str) -> _Param:
    pointer = ctype.endswith("*")
    const = ctype.startswith("const ")
    base = ctype.removeprefix("const ").removesuffix("*")
    if base not in C_TYPES or (const and not pointer):
        raise TypeError(
            f"parameter {name!r} has C type {ctype!r}; use one of {', '.join(C_TYPES)}, "
            "or a pointer to one ('const T*' when read-only)"
        )
    return _Param(name, ctype, pointer, const, C_TYPES[base])


def parameter_names(function: Callable[..., Any]) -> tuple[str, ...]:
    """Return the parameter names of a Python or numba function, in order."""
    return tuple(inspect.signature(getattr(function, "py_func", function)).parameters)


def is_subsequence(names: tuple[str, ...], of: tuple[str, ...]) -> bool:
    """Whether ``names`` appear in ``of`` in the same order (others may come between)."""
    remaining = iter(of)
    return all(name in remaining for name in names)


@dataclass(frozen=True)
class Kernel:
    """One CUDA kernel with its CPU twin, called with keyword arguments on either device.

    Attributes:
        module: the ``.cu`` file's stem (``"kmers"`` for ``kernels/kmers.cu``).
        function: the ``extern "C" __global__`` function's name.
        params: ``(name, C type)`` of every parameter, in the order of the ``.cu`` signature;
            C types are written without ``__restrict__`` and without the top-level ``const`` of
            a value: ``"const unsigned char*"``, ``"int*"``, ``"int"``, ``"long long"``.
        twin: the CPU version; its parameters are some of ``params``' names, in the same order.
    """

    module: str
    function: str
    params: tuple[tuple[str, str], ...]
    twin: Callable[..., Any]
    _params: tuple[_Param, ...] = field(init=False, repr=False, compare=False)
    twin_params: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        params = tuple(_parse_param(name, ctype) for name, ctype in self.params)
        names = tuple(p.name for p in params)
        if len(set(names)) != len(names):
            raise TypeError(f"{self}: a parameter name appears twice in {names}")
        if {"self", "device", "grid", "shared_mem"} & set(names):
            raise TypeError(f"{self}: self, device, grid and shared_mem are not parameter names")
        twin_params = parameter_names(self.twin)
        if not is_subsequence(twin_params, names):
            raise TypeError(
                f"{self}: the twin's parameters {twin_params} are not a subsequence of the "
                f"kernel's {names}"
            )
        object.__setattr__(self, "_params", params)
        object.__setattr__(self, "twin_params", twin_params)

    def __str__(self) -> str:
        return f"{self.module}.{self.function}"

    @property
    def names(self) -> tuple[str, ...]:
        """The parameter names, in signature order."""
        return tuple(p.name for p in self._params)

    def __call__(self, device: str, *, grid: Grid, shared_mem: int = 0, **args: Any) -> None:
        """Run the kernel on ``"gpu"`` or its twin on ``"cpu"``.

        Args:
            device: ``"cpu"`` or ``"gpu"`` (already resolved).
            grid: the launch configuration (ignored on the CPU); see :func:`rows_grid`,
                :func:`block_per_row_grid`, :func:`thread_per_row_grid`.
            shared_mem: bytes of dynamic shared memory (ignored on the CPU).
            **args: one value per declared parameter: arrays for pointers (on the GPU, outputs
                must be device arrays; read-only inputs may be host arrays), integers or bools
                for values.

        Raises:
            TypeError: a parameter is missing, unknown, or given an array of the wrong dtype.
        """
        if args.keys() != set(self.names):
            missing = [n for n in self.names if n not in args]
            unknown = [n for n in args if n not in self.names]
            raise TypeError(f"{self}: missing arguments {missing}, unknown arguments {unknown}")
        for p in self._params:
            value = args[p.name]
            dtype = getattr(value, "dtype", None)
            if p.pointer and not (isinstance(dtype, np.dtype) and dtype == p.dtype):
                raise TypeError(
                    f"{self}: {p.name} ({p.ctype}) needs a {p.dtype} array, got "
                    f"{type(value).__name__ if dtype is None else dtype}"
                )
            if not p.pointer and not isinstance(value, int | np.integer | np.bool_):
                raise TypeError(
                    f"{self}: {p.name} ({p.ctype}) needs an integer, got {type(value).__name__}"
                )
            if device != "cpu" and p.pointer and not p.const and isinstance(value, np.ndarray):
                raise TypeError(f"{self}: {p.name} ({p.ctype}) is written; pass a device array")
        if device == "cpu":
            self.twin(*(args[name] for name in self.twin_params))
            return
        if grid.empty:
            return
        values = tuple(self._device_value(p, args[p.name]) for p in self._params)
        launch(compiled(self.module, self.function), grid, values, shared_mem)

    def _device_value(self, p: _Param, value: Any) -> Any:
        if not p.pointer:
            return p.dtype.type(value)
        if isinstance(value, np.ndarray):  # a read-only input (outputs were checked)
            import cupy

            value = cupy.asarray(value)
        if not value.flags.c_contiguous:
            raise TypeError(f"{self}: {p.name} ({p.ctype}) must be C-contiguous")
        return value
