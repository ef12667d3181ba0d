"""``cupy.ndarray`` for the emulator: a NumPy array standing in for device memory.

It is not a ``numpy.ndarray`` subclass, so that it keeps CuPy's rules on host/device mixing:

* no implicit device-to-host conversion: ``numpy.asarray(a)``, ``numpy.array(a)`` and writing
  ``a`` into a host array raise ``TypeError`` (use ``a.get()``, ``cupy.asnumpy`` or
  ``gpu_genomics.to_numpy``);
* ufuncs and operators take device arrays and scalars only: a ``numpy.ndarray`` operand
  (other than 0-d) raises ``TypeError``, whichever side it is on;
* ``a[basic_slice] = host_array`` raises ``ValueError`` (CuPy fills basic slices with scalars
  only), while host index arrays and, with advanced indexing, host values are copied over;
* indexing, reductions and NumPy functions return ``cupy.ndarray`` (0-d for scalars), and
  ``int()``, ``float()``, ``bool()``, ``.item()`` and ``.tolist()`` copy to the host.

NumPy functions applied to device arrays (``__array_function__``) and array methods run on
NumPy and come back as device arrays; CuPy functions given host arrays convert them (CuPy is
stricter for some functions: the emulator is lenient there).
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

#: Byte written into every array that ``cupy.empty`` returns (uninitialised device memory).
EMPTY_POISON = 0xAB
_HIDDEN = frozenset({"ctypes", "tofile", "dump", "dumps"})


def wrap(value: Any) -> Any:
    """NumPy results as device arrays (NumPy scalars as 0-d arrays), recursively in tuples and
    lists."""
    if isinstance(value, np.ndarray):
        return ndarray._from_host(value)
    if isinstance(value, np.generic):
        return ndarray._from_host(np.asarray(value))
    if isinstance(value, tuple):
        return tuple(wrap(v) for v in value)
    if isinstance(value, list):
        return [wrap(v) for v in value]
    return value


def unwrap(value: Any) -> Any:
    """Device arrays as their NumPy memory, recursively in tuples, lists and dicts."""
    if isinstance(value, ndarray):
        return value._a
    if isinstance(value, tuple):
        return tuple(unwrap(v) for v in value)
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    return value


def reject_host_arrays(operands: Any, what: str) -> None:
    """CuPy's ufuncs take device arrays and scalars, never host arrays or sequences."""
    for x in operands:
        if isinstance(x, ndarray | np.generic | int | float | complex | bool) or x is None:
            continue
        if isinstance(x, np.ndarray) and x.ndim == 0:
            continue
        raise TypeError(
            f"Unsupported type {type(x)} in {what}: CuPy does not mix host data with device "
            "arrays (copy it with cupy.asarray first)"
        )


def poisoned_empty(shape: Any, dtype: Any = float, order: str = "C") -> np.ndarray:
    """``numpy.empty`` whose bytes are all :data:`EMPTY_POISON`."""
    dtype = np.dtype(dtype)
    if dtype.hasobject:
        raise TypeError("object arrays do not exist on the GPU")
    shape = (int(shape),) if isinstance(shape, int | np.integer) else tuple(map(int, shape))
    raw = np.full(int(np.prod(shape, dtype=np.int64)) * dtype.itemsize, EMPTY_POISON, np.uint8)
    return raw.view(dtype).reshape(shape, order=order)


def _is_advanced(key: Any) -> bool:
    items = key if isinstance(key, tuple) else (key,)
    return any(
        isinstance(k, ndarray | np.ndarray | list) or isinstance(k, bool | np.bool_) for k in items
    )


class _MemoryPointer:
    """``ndarray.data``: only ``ptr`` (the host address standing in for the device one)."""

    def __init__(self, ptr: int):
        self.ptr = ptr

    def __repr__(self) -> str:
        return f"<emulated MemoryPointer 0x{self.ptr:x}>"


class ndarray(NDArrayOperatorsMixin):
    """A device array of the emulated GPU (see the module docstring)."""

    __slots__ = ("_a",)
    __array_priority__ = 100

    def __init__(
        self,
        shape: Any,
        dtype: Any = float,
        memptr: Any = None,
        strides: Any = None,
        order: str = "C",
    ):
        if memptr is not None or strides is not None:
            raise NotImplementedError("the GPU emulator's ndarray takes no memptr/strides")
        self._a = poisoned_empty(shape, dtype, order)

    @classmethod
    def _from_host(cls, array: np.ndarray) -> ndarray:
        obj = object.__new__(cls)
        obj._a = array
        return obj

    # --- explicit transfers ------------------------------------------------------------------
    def get(self, stream: Any = None, order: str = "C", out: np.ndarray | None = None) -> Any:
        """Copy to the host (a new NumPy array, or into ``out``)."""
        if out is not None:
            out[...] = self._a
            return out
        return np.array(self._a, order=order, copy=True)

    def set(self, arr: Any, stream: Any = None) -> None:
        """Copy a host array of the same shape into this array."""
        if isinstance(arr, ndarray):
            raise TypeError("set() takes a host array; use copy for device arrays")
        arr = np.asarray(arr)
        if arr.shape != self.shape:
            raise ValueError(f"shape mismatch: {arr.shape} into {self.shape}")
        self._a[...] = arr

    def tolist(self) -> Any:
        return self._a.tolist()

    def item(self, *args: Any) -> Any:
        return self._a.item(*args)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise TypeError(
            "Implicit conversion to a NumPy array is not allowed. "
            "Please use `.get()` to construct a NumPy array explicitly."
        )

    # --- NumPy protocols -------------------------------------------------------------------
    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        reject_host_arrays(inputs, f"cupy.{ufunc.__name__}")
        out = kwargs.get("out")
        if out is not None:
            reject_host_arrays(out, f"cupy.{ufunc.__name__}(out=...)")
        result = getattr(ufunc, method)(*unwrap(inputs), **unwrap(kwargs))
        if out is not None:
            return out[0] if len(out) == 1 else out
        return wrap(result)

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        return wrap(func(*unwrap(args), **unwrap(kwargs)))

    # --- Python protocols ------------------------------------------------------------------
    def __getitem__(self, key: Any) -> Any:
        return wrap(self._a[unwrap(key)])

    def __setitem__(self, key: Any, value: Any) -> None:
        if isinstance(value, np.ndarray) and value.ndim and not _is_advanced(key):
            raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
        self._a[unwrap(key)] = unwrap(value)

    def __len__(self) -> int:
        return len(self._a)

    def __iter__(self) -> Any:
        if self._a.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self._a)))

    def __bool__(self) -> bool:
        return bool(self._a)

    def __int__(self) -> int:
        return int(self._a)

    def __float__(self) -> float:
        return float(self._a)

    def __complex__(self) -> complex:
        return complex(self._a)

    def __index__(self) -> int:
        return operator.index(self._a)

    def __repr__(self) -> str:
        return repr(self._a)

    def __str__(self) -> str:
        return str(self._a)

    def __format__(self, spec: str) -> str:
        return format(self._a, spec)

    def __copy__(self) -> ndarray:
        return ndarray._from_host(self._a.copy())

    def __deepcopy__(self, memo: Any) -> ndarray:
        return ndarray._from_host(self._a.copy())

    def __reduce__(self) -> Any:
        raise TypeError("the GPU emulator's arrays cannot be pickled")

    # --- attributes ------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self._a.shape

    @shape.setter
    def shape(self, value: Any) -> None:
        self._a.shape = value

    @property
    def dtype(self) -> np.dtype:
        return self._a.dtype

    @property
    def ndim(self) -> int:
        return self._a.ndim

    @property
    def size(self) -> int:
        return self._a.size

    @property
    def nbytes(self) -> int:
        return self._a.nbytes

    @property
    def itemsize(self) -> int:
        return self._a.itemsize

    @property
    def strides(self) -> tuple[int, ...]:
        return self._a.strides

    @property
    def flags(self) -> Any:
        return self._a.flags

    @property
    def T(self) -> ndarray:
        return ndarray._from_host(self._a.T)

    @property
    def base(self) -> ndarray | None:
        return None if self._a.base is None else wrap(self._a.base)

    @property
    def data(self) -> _MemoryPointer:
        return _MemoryPointer(self._a.ctypes.data)

    @property
    def device(self) -> Any:
        from .cuda import Device

        return Device(0)

    def __getattr__(self, name: str) -> Any:
        # Array methods and remaining attributes come from NumPy, with device arrays in and
        # out. Dunder names (e.g. __array_interface__, which would let NumPy read the memory
        # implicitly) and host-only methods are not offered.
        if name.startswith("__") or name.startswith("_") or name in _HIDDEN:
            raise AttributeError(f"'cupy.ndarray' object has no attribute {name!r}")
        attr = getattr(self._a, name)
        if not callable(attr):
            return wrap(attr)

        def method(*args: Any, **kwargs: Any) -> Any:
            return wrap(attr(*unwrap(args), **unwrap(kwargs)))

        method.__name__ = name
        return method


ndarray.__module__ = "cupy"
