"""A stand-in for CuPy that runs the repository's CUDA kernels on the CPU (test use only).

``tests/conftest.py`` puts this package first on ``sys.path`` when ``GPU_GENOMICS_EMULATE_GPU=1``
(see ``tests/gpu_emulator/__init__.py``). Its API is the part of CuPy that ``gpu_genomics``
uses, no more:

* ``cupy.ndarray`` (:mod:`._array`): NumPy memory with CuPy's host/device rules;
* ``asarray``/``array``/``ascontiguousarray`` (host to device copies), ``asnumpy``,
  ``get_array_module``, ``empty``/``empty_like`` (filled with a poison byte, like
  uninitialised device memory) and, through NumPy, every other NumPy function, ufunc, dtype and
  constant under its NumPy name, with device arrays in and out;
* ``RawModule(code=..., options=...)``: ``code`` must be the exact text of one of the ``.cu``
  files the emulator was built from (there is no NVRTC: the kernels were compiled by g++ ahead
  of time); ``get_function(name)`` returns an emulated kernel (:mod:`._emulator`) launched as
  ``kernel(grid, block, args, shared_mem=...)``;
* ``cupy.cuda``: ``Device``, ``runtime`` (device count and properties of one emulated device),
  ``driver.CUDADriverError``.

Not provided: ``ElementwiseKernel``/``ReductionKernel``/``RawKernel``, streams and events
beyond no-ops, memory pools, ``cupyx``, ``__cuda_array_interface__`` and DLPack. Nothing here
ever falls back to the package's NumPy/numba code: a kernel either runs emulated or fails.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as _np

from . import _emulator, cuda
from . import random as random  # cupy.random: seeded draws as device arrays
from ._array import ndarray, poisoned_empty, reject_host_arrays, unwrap, wrap
from ._emulator import EmulatorError

__version__ = "0.0.0+gpu-genomics-emulator"
__all__ = [
    "EmulatorError",
    "RawModule",
    "array",
    "asarray",
    "ascontiguousarray",
    "asnumpy",
    "cuda",
    "empty",
    "empty_like",
    "get_array_module",
    "ndarray",
]


def _host(obj: Any, dtype: Any = None) -> _np.ndarray:
    if isinstance(obj, ndarray):
        return obj._a if dtype is None else obj._a.astype(dtype, copy=False)
    if hasattr(obj, "__cuda_array_interface__"):
        raise TypeError(f"{type(obj).__name__}: __cuda_array_interface__ is not emulated")
    return _np.asarray(unwrap(obj), dtype=dtype)


def asarray(a: Any, dtype: Any = None, order: str | None = None, *, blocking: bool = False) -> Any:
    """A device array: ``a`` itself when it already is one of ``dtype``, else a copy."""
    if (
        isinstance(a, ndarray)
        and (dtype is None or _np.dtype(dtype) == a.dtype)
        and (order in (None, "K", "A") or (order == "C" and a.flags.c_contiguous))
    ):
        return a
    return ndarray._from_host(_np.array(_host(a), dtype=dtype, order=order or "K", copy=True))


def array(
    obj: Any,
    dtype: Any = None,
    *,
    copy: bool = True,
    order: str = "K",
    ndmin: int = 0,
    **kwargs: Any,
) -> Any:
    """A device array copied from ``obj`` (host or device)."""
    if isinstance(obj, ndarray) and not copy and (dtype is None or obj.dtype == dtype):
        return obj
    return ndarray._from_host(_np.array(_host(obj), dtype=dtype, order=order, ndmin=ndmin))


def ascontiguousarray(a: Any, dtype: Any = None) -> Any:
    """``a`` as a C-contiguous device array (a copy if it is not one already)."""
    if isinstance(a, ndarray) and a.flags.c_contiguous and (dtype is None or a.dtype == dtype):
        return a
    return ndarray._from_host(_np.ascontiguousarray(_host(a), dtype=dtype))


def asnumpy(a: Any, stream: Any = None, order: str = "C", out: Any = None) -> _np.ndarray:
    """A host copy of ``a`` (device or host)."""
    if isinstance(a, ndarray):
        return a.get(order=order, out=out)
    return _np.asarray(a, order=order)


def get_array_module(*args: Any) -> Any:
    import sys

    return sys.modules[__name__] if any(isinstance(a, ndarray) for a in args) else _np


def empty(shape: Any, dtype: Any = float, order: str = "C") -> ndarray:
    """Uninitialised device memory: every byte is ``_array.EMPTY_POISON``."""
    return ndarray._from_host(poisoned_empty(shape, dtype, order))


def empty_like(
    a: Any, dtype: Any = None, order: str = "K", subok: Any = None, shape: Any = None
) -> ndarray:
    shape = a.shape if shape is None else shape
    return empty(shape, a.dtype if dtype is None else dtype, "F" if order == "F" else "C")


class RawModule:
    """A module of ``kernels/*.cu``, compiled ahead of time by the emulator's build."""

    def __init__(
        self,
        code: str | None = None,
        options: Any = (),
        backend: str = "nvrtc",
        *,
        path: str | None = None,
        name_expressions: Any = None,
        jitify: bool = False,
        **kwargs: Any,
    ):
        if path is not None:
            with open(path) as handle:
                code = handle.read()
        if not isinstance(code, str):
            raise TypeError("RawModule needs code=<CUDA source> (or path=)")
        if jitify or name_expressions:
            raise NotImplementedError("jitify and name_expressions are not emulated")
        if not isinstance(options, tuple | list) or not all(isinstance(o, str) for o in options):
            raise TypeError(f"options must be a tuple of str, got {options!r}")
        for option in options:
            if option.startswith(("-D", "--define-macro", "-I", "--include-path", "-include")):
                raise NotImplementedError(
                    f"RawModule option {option!r} is not emulated: the kernels are compiled ahead "
                    "of time without it"
                )
        self.code = code
        self.options = tuple(options)
        self.module = _emulator.module_for_source(code)
        if self.module is None:
            raise RuntimeError(
                "the GPU emulator has no build of this CUDA source: it compiles the files of "
                f"{_emulator.MANIFEST['kernel_dir']} ahead of time, and this code matches none "
                "of them"
            )

    def get_function(self, name: str) -> _emulator.Kernel:
        return _kernel(self.module, name)

    def __repr__(self) -> str:
        return f"<emulated RawModule {self.module}.cu>"


@functools.cache
def _kernel(module: str, name: str) -> _emulator.Kernel:
    entry = _emulator.MANIFEST["modules"][module]["kernels"].get(name)
    if entry is None or not entry["extern_c"]:
        raise cuda.driver.CUDADriverError(
            f'CUDA_ERROR_NOT_FOUND: named symbol not found ({name!r} is not an extern "C" '
            f"__global__ function of {module}.cu)"
        )
    return _emulator.Kernel(module, name)


class _Ufunc:
    """A NumPy ufunc under CuPy's rules: device arrays and scalars in, device arrays out."""

    def __init__(self, ufunc: _np.ufunc):
        self._ufunc = ufunc
        functools.update_wrapper(self, ufunc)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        reject_host_arrays(args, f"cupy.{self._ufunc.__name__}")
        out = kwargs.get("out")
        result = self._ufunc(*unwrap(args), **unwrap(kwargs))
        if out is not None:
            return out
        return wrap(result)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ufunc, name)


def __getattr__(name: str) -> Any:
    # The rest of the API: NumPy's functions with device arrays in and out, its ufuncs under
    # CuPy's host/device rules, and its dtypes and constants as they are.
    if name.startswith("__"):
        raise AttributeError(f"module 'cupy' has no attribute {name!r}")
    try:
        obj = getattr(_np, name)
    except AttributeError:
        raise AttributeError(f"module 'cupy' (GPU emulator) has no attribute {name!r}") from None
    if isinstance(obj, _np.ufunc):
        value: Any = _Ufunc(obj)
    elif callable(obj) and not isinstance(obj, type):

        @functools.wraps(obj)
        def value(*args: Any, **kwargs: Any) -> Any:
            return wrap(obj(*unwrap(args), **unwrap(kwargs)))

    else:
        value = obj
    globals()[name] = value
    return value
