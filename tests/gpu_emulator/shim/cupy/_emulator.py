"""The emulated kernels behind ``cupy.RawModule``: ``libemu.so`` built by
``tests/gpu_emulator/build.py`` (folder in ``$GPU_GENOMICS_EMULATOR_LIB``).

A launch checks what the CUDA driver would not (and what would corrupt memory on a GPU):

* the number of arguments; a pointer parameter takes a C-contiguous ``cupy.ndarray`` whose dtype
  is the pointee's (a vector type such as ``uint2`` takes arrays of its component type); a value
  parameter takes a NumPy scalar of exactly its type (a Python ``int`` only for 64-bit integer
  parameters: CuPy passes Python ints as 64 bits), never a bool for an integer;
* grid (x < 2**31, y and z < 65536) and block (x, y <= 1024, z <= 64, at most 1024 threads)
  sizes, and static + dynamic shared memory <= 48 KiB (more needs
  ``max_dynamic_shared_size_bytes``, as on the GPU);
* no written argument overlaps another argument (the kernels' pointers are ``__restrict__``).

Each argument is copied into its own mapping between two inaccessible pages, and const
arguments are made read-only, so any out-of-bounds access or write through a const pointer
faults; the fault is reported with the thread, the block and the argument it hit. The kernel
runs twice: blocks and threads in forward order with the buffers against their upper guard page,
then in reverse order against their lower guard page, with a different poison byte in shared
memory; the written arguments must come out identical (otherwise the result depends on thread
scheduling, i.e. a race, or on uninitialised shared memory).

Every failure raises :class:`EmulatorError` and is appended to :data:`problems`, which the pytest
plugin checks after each test in case the code under test swallowed the exception.
"""

from __future__ import annotations

import ctypes
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

LIB_ENV = "GPU_GENOMICS_EMULATOR_LIB"
SHARED_LIMIT = 48 * 1024
PAGE = os.sysconf("SC_PAGESIZE")
STATUS = {1: "memory fault", 2: "arithmetic fault", 3: "synchronisation error", 4: "trap"}


class EmulatorError(RuntimeError):
    """A kernel launch the GPU would not run correctly, found by the emulator."""


#: Every error raised by the emulator in this process, oldest first.
problems: list[str] = []
#: Launch counters (both runs of a launch count once): kernels launched, blocks run.
stats = {"launches": 0, "blocks": 0}


def fail(message: str) -> None:
    problems.append(message)
    raise EmulatorError(message)


class _Launch(ctypes.Structure):
    _fields_ = (
        ("grid", ctypes.c_uint * 3),
        ("block", ctypes.c_uint * 3),
        ("dynamic_shared", ctypes.c_ulonglong),
        ("reverse", ctypes.c_int),
        ("poison", ctypes.c_int),
    )


class _Result(ctypes.Structure):
    _fields_ = (
        ("status", ctypes.c_int),
        ("fault_write", ctypes.c_int),
        ("fault_address", ctypes.c_ulonglong),
        ("block", ctypes.c_uint * 3),
        ("thread", ctypes.c_uint * 3),
        ("static_shared", ctypes.c_ulonglong),
        ("message", ctypes.c_char * 1024),
    )


class _Param(ctypes.Structure):
    _fields_ = (
        ("pointer", ctypes.c_int),
        ("constant", ctypes.c_int),
        ("kind", ctypes.c_int),
        ("size", ctypes.c_int),
        ("lanes", ctypes.c_int),
    )


def _load() -> tuple[Path, ctypes.CDLL, dict]:
    folder = os.environ.get(LIB_ENV)
    if not folder:
        raise ImportError(
            f"this is the GPU emulator's stand-in for CuPy; ${LIB_ENV} must name a build of "
            "tests/gpu_emulator/build.py (run the tests with GPU_GENOMICS_EMULATE_GPU=1)"
        )
    path = Path(folder)
    lib = ctypes.CDLL(str(path / "libemu.so"))
    lib.emu_guarded_alloc.restype = ctypes.c_void_p
    lib.emu_guarded_alloc.argtypes = (
        ctypes.c_ulonglong,
        ctypes.c_int,
        ctypes.POINTER(ctypes.c_ulonglong),
        ctypes.POINTER(ctypes.c_ulonglong),
    )
    lib.emu_guarded_protect.argtypes = (ctypes.c_ulonglong, ctypes.c_ulonglong, ctypes.c_int)
    lib.emu_guarded_free.argtypes = (ctypes.c_ulonglong, ctypes.c_ulonglong)
    lib.emu_runtime_info.restype = ctypes.c_char_p
    return path, lib, json.loads((path / "kernels.json").read_text())


BUILD_DIR, _lib, MANIFEST = _load()
RUNTIME_INFO = _lib.emu_runtime_info().decode()
_MODULE_OF_SHA = {entry["sha256"]: name for name, entry in MANIFEST["modules"].items()}


def module_for_source(code: str) -> str | None:
    """The module whose ``.cu`` text is exactly ``code`` (None if the emulator has not built it)."""
    import hashlib

    return _MODULE_OF_SHA.get(hashlib.sha256(code.encode()).hexdigest())


@dataclass(frozen=True)
class Param:
    index: int
    name: str
    decl: str
    pointer: bool
    const: bool
    dtype: np.dtype | None  # of the (pointed-to) component; None: unsupported type
    lanes: int

    def describe(self) -> str:
        return f"argument {self.index} ({self.decl!r})"


def _params(module: str, name: str) -> list[Param]:
    decls = MANIFEST["modules"][module]["kernels"][name]["params"]
    raw = (_Param * max(len(decls), 1))()
    n = getattr(_lib, f"emu_params__{module}__{name}")(raw, len(decls))
    if n != len(decls):
        raise EmulatorError(f"{module}.{name}: {n} parameters in C++, {len(decls)} parsed")
    params = []
    for index, (p, decl) in enumerate(zip(raw, decls, strict=False)):
        kind = chr(p.kind)
        dtype = np.dtype(np.bool_) if kind == "b" else None
        if kind in "iuf":
            dtype = np.dtype(f"{kind}{p.size}")
        pointer, const = bool(p.pointer), bool(p.constant)
        params.append(Param(index, decl["name"], decl["decl"], pointer, const, dtype, p.lanes))
    return params


@dataclass
class _Buffer:
    param: Param
    array: Any  # the cupy.ndarray
    host: np.ndarray  # its memory
    address: int = 0
    region: int = 0
    region_bytes: int = 0


class Kernel:
    """An emulated CUDA function: what ``RawModule.get_function`` returns."""

    def __init__(self, module: str, name: str):
        self.module = module
        self.name = name
        self.qualified = f"{module}.{name}"
        self.params = _params(module, name)
        self._launch = getattr(_lib, f"emu_kernel__{module}__{name}")
        self._launch.restype = ctypes.c_int
        self.max_dynamic_shared_size_bytes = 0

    def __repr__(self) -> str:
        return f"<emulated CUDA kernel {self.qualified}>"

    # --- checks --------------------------------------------------------------------------------
    def _fail(self, message: str) -> None:
        fail(f"{self.qualified}: {message}")

    def _dims(self, value: Any, what: str) -> tuple[int, int, int]:
        dims = (value,) if isinstance(value, int | np.integer) else tuple(value)
        if not 1 <= len(dims) <= 3 or not all(
            isinstance(d, int | np.integer) and not isinstance(d, bool) for d in dims
        ):
            self._fail(f"{what} must be 1 to 3 integers, got {value!r}")
        dims = tuple(int(d) for d in dims) + (1,) * (3 - len(dims))
        if min(dims) < 1:
            self._fail(f"{what} {dims} has a dimension < 1")
        return dims

    def _check_config(self, grid: tuple, block: tuple, shared_mem: Any) -> int:
        if grid[0] > 2**31 - 1 or grid[1] > 65535 or grid[2] > 65535:
            self._fail(f"grid {grid} exceeds the limits (2**31 - 1, 65535, 65535)")
        if block[0] > 1024 or block[1] > 1024 or block[2] > 64:
            self._fail(f"block {block} exceeds the limits (1024, 1024, 64)")
        if block[0] * block[1] * block[2] > 1024:
            self._fail(f"block {block} has more than 1024 threads")
        if not isinstance(shared_mem, int | np.integer) or shared_mem < 0:
            self._fail(f"shared_mem must be a non-negative int, got {shared_mem!r}")
        return int(shared_mem)

    def _check_pointer(self, p: Param, value: Any) -> None:
        from ._array import ndarray

        if not isinstance(value, ndarray):
            kind = f"{type(value).__module__}.{type(value).__qualname__}"
            self._fail(f"{p.describe()} is a {kind}; a pointer parameter takes a cupy.ndarray")
        if not value.flags.c_contiguous:
            self._fail(
                f"{p.describe()} is not C-contiguous (shape {value.shape}, strides "
                f"{value.strides}); the kernel would read its memory as if it were"
            )
        if p.dtype is None:
            self._fail(f"{p.describe()}: the emulator does not support this pointee type")
        if value.dtype != p.dtype:
            self._fail(f"{p.describe()} has dtype {value.dtype}; the parameter points to {p.dtype}")
        element = p.dtype.itemsize * p.lanes
        if value.nbytes % element:
            self._fail(
                f"{p.describe()} holds {value.nbytes} bytes, not a whole number of "
                f"{element}-byte elements"
            )

    def _value(self, p: Param, value: Any) -> ctypes._SimpleCData:
        from ._array import ndarray

        if p.dtype is None or p.lanes != 1:
            self._fail(f"{p.describe()}: the emulator does not support this parameter type")
        if isinstance(value, ndarray):
            self._fail(
                f"{p.describe()} is a cupy.ndarray, which CuPy passes as a pointer; "
                "pass a scalar (numpy.int32(...), numpy.int64(...))"
            )
        is_bool = isinstance(value, bool | np.bool_)
        if is_bool != (p.dtype.kind == "b"):
            self._fail(f"{p.describe()} got {value!r} ({type(value).__name__})")
        if isinstance(value, np.generic):
            if value.dtype != p.dtype:
                self._fail(
                    f"{p.describe()} is passed as numpy.{value.dtype} ({value.dtype.itemsize} "
                    f"bytes) but the parameter is {p.dtype} ({p.dtype.itemsize} bytes)"
                )
        elif isinstance(value, int) and not is_bool:
            if p.dtype not in (np.int64, np.uint64):
                self._fail(
                    f"{p.describe()} is a Python int, which CuPy passes as a 64-bit integer, "
                    f"but the parameter is {p.dtype}; pass numpy.{p.dtype}(...)"
                )
            value = p.dtype.type(value)
        elif isinstance(value, float):
            if p.dtype != np.float64:
                self._fail(
                    f"{p.describe()} is a Python float, which CuPy passes as a double, "
                    f"but the parameter is {p.dtype}"
                )
        elif not is_bool:
            self._fail(f"{p.describe()} got a {type(value).__name__}, not a scalar")
        raw = value.item() if isinstance(value, np.generic) else value
        return np.ctypeslib.as_ctypes_type(p.dtype)(raw)

    def _check_aliasing(self, buffers: list[_Buffer]) -> None:
        for i, a in enumerate(buffers):
            for b in buffers[i + 1 :]:
                if a.host.nbytes == 0 or b.host.nbytes == 0:
                    continue
                if (not a.param.const or not b.param.const) and np.may_share_memory(a.host, b.host):
                    self._fail(
                        f"{a.param.describe()} and {b.param.describe()} overlap in memory and "
                        "one of them is written; the kernel's pointers must not alias"
                    )

    # --- launch ----------------------------------------------------------------------------
    def __call__(
        self,
        grid: Any,
        block: Any,
        args: Any,
        *,
        shared_mem: int = 0,
        stream: Any = None,
        enable_cooperative_groups: bool = False,
    ) -> None:
        if enable_cooperative_groups:
            self._fail("cooperative groups are not emulated")
        grid = self._dims(grid, "grid")
        block = self._dims(block, "block")
        shared_mem = self._check_config(grid, block, shared_mem)
        if not isinstance(args, tuple | list):
            self._fail(f"args must be a tuple, got {type(args).__name__}")
        if len(args) != len(self.params):
            self._fail(f"{len(args)} arguments for {len(self.params)} parameters")
        buffers, values = [], []
        for p, value in zip(self.params, args, strict=True):
            if p.pointer:
                self._check_pointer(p, value)
                buffer = _Buffer(p, value, value._a)
                buffers.append(buffer)
                values.append(buffer)
            else:
                values.append(self._value(p, value))
        self._check_aliasing(buffers)
        written = [b for b in buffers if not b.param.const]
        before = [b.host.copy() for b in written]
        self._run(grid, block, shared_mem, values, buffers, reverse=False)
        after_first = [b.host.copy() for b in written]
        for b, original in zip(written, before, strict=True):
            b.host[...] = original
        self._run(grid, block, shared_mem, values, buffers, reverse=True)
        for b, expected in zip(written, after_first, strict=True):
            got, want = b.host.reshape(-1).view(np.uint8), expected.reshape(-1).view(np.uint8)
            if not np.array_equal(got, want):
                at = int(np.flatnonzero(got != want)[0]) // b.host.itemsize
                index = tuple(int(i) for i in np.unravel_index(at, b.host.shape))
                forward, reverse = (
                    f"{x[index].item()!r} (bytes {x[index].tobytes().hex()})"
                    for x in (expected, b.host)
                )
                self._fail(
                    f"{b.param.describe()} differs between a run in forward and one in reverse "
                    f"block/thread order (first at index {index}: {forward} forward, "
                    f"{reverse} reverse): a race between threads or blocks, or a read of "
                    "uninitialised shared memory"
                )
        stats["launches"] += 1
        stats["blocks"] += grid[0] * grid[1] * grid[2]

    def _run(
        self,
        grid: tuple,
        block: tuple,
        shared_mem: int,
        values: list,
        buffers: list[_Buffer],
        *,
        reverse: bool,
    ) -> None:
        storage = []
        try:
            for b in buffers:
                n = b.host.nbytes
                if n == 0:  # CuPy passes a null pointer for an empty array
                    b.address = b.region = b.region_bytes = 0
                    continue
                region, size = ctypes.c_ulonglong(), ctypes.c_ulonglong()
                address = _lib.emu_guarded_alloc(n, int(not reverse), region, size)
                if not address:
                    raise MemoryError(f"{self.qualified}: cannot map {n} bytes")
                b.address, b.region, b.region_bytes = address, region.value, size.value
                ctypes.memmove(address, b.host.ctypes.data, n)
                if b.param.const:
                    _lib.emu_guarded_protect(b.region, b.region_bytes, 1)
            for v in values:
                storage.append(ctypes.c_void_p(v.address or None) if isinstance(v, _Buffer) else v)
            argv = (ctypes.c_void_p * max(len(storage), 1))(
                *[ctypes.cast(ctypes.pointer(s), ctypes.c_void_p) for s in storage]
            )
            config = _Launch(
                (ctypes.c_uint * 3)(*grid),
                (ctypes.c_uint * 3)(*block),
                shared_mem,
                int(reverse),
                0x5A if reverse else 0xCD,
            )
            result = _Result()
            status = self._launch(ctypes.byref(config), argv, ctypes.byref(result))
            if status:
                self._fail(self._describe_failure(result, grid, block, shared_mem, buffers))
            limit = SHARED_LIMIT + int(self.max_dynamic_shared_size_bytes)
            if result.static_shared + shared_mem > limit:
                self._fail(
                    f"{result.static_shared} bytes of static and {shared_mem} bytes of dynamic "
                    f"shared memory exceed the {limit}-byte limit per block"
                )
            for b in buffers:
                if b.address and not b.param.const:
                    ctypes.memmove(b.host.ctypes.data, b.address, b.host.nbytes)
        finally:
            for b in buffers:
                if b.region:
                    _lib.emu_guarded_free(b.region, b.region_bytes)
                    b.address = b.region = b.region_bytes = 0

    def _describe_failure(
        self, result: _Result, grid: tuple, block: tuple, shared_mem: int, buffers: list[_Buffer]
    ) -> str:
        what = STATUS.get(result.status, f"launch error {result.status}")
        where = (
            f"<<<grid {grid}, block {block}, shared_mem {shared_mem}>>> "
            f"thread {tuple(result.thread)} of block {tuple(result.block)}"
        )
        message = result.message.decode(errors="replace")
        if result.status == 1 and message.startswith("SIG"):  # else the runtime placed it
            message += self._locate(result, buffers)
        return f"{what} in {where}: {message}"

    @staticmethod
    def _locate(result: _Result, buffers: list[_Buffer]) -> str:
        address = result.fault_address
        access = {1: "write", 0: "read"}.get(result.fault_write, "access")
        for b in buffers:
            if not b.region or not b.region <= address < b.region + b.region_bytes:
                continue
            offset = address - b.address
            what = f"{b.param.describe()}, {b.host.nbytes} bytes ({b.host.shape} {b.host.dtype})"
            if 0 <= offset < b.host.nbytes:
                return f": {access} inside {what}, which is const (read-only)"
            side = "past its end" if offset > 0 else "before its start"
            return f": {access} at byte {offset} of {what}: {side}"
        if address < PAGE:
            empty = [b.param.describe() for b in buffers if not b.host.nbytes]
            return f": {access} through a null pointer" + (
                f" (empty arrays are passed as null: {', '.join(empty)})" if empty else ""
            )
        return f": {access} outside every argument buffer"
