"""Launch the kernels of ``checks.cu`` through the fake CuPy and print the outcomes as JSON.

Run by ``tests/gpu_emulator/test_emulator.py`` in a subprocess (the fake ``cupy`` must not
leak into the test process) with ``$GPU_GENOMICS_EMULATOR_LIB`` naming a build of this folder.
Each check's outcome is ``{"ok": true, "value": ...}`` or ``{"ok": false, "error": "..."}``.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "shim"))

import cupy  # noqa: E402 (the fake one, from the path above)
import numpy as np  # noqa: E402

CHECKS: dict[str, Callable[[], Any]] = {}
MODULE = cupy.RawModule(code=(HERE / "checks.cu").read_text(), options=("--std=c++17",))


def check(fn: Callable[[], Any]) -> Callable[[], Any]:
    CHECKS[fn.__name__] = fn
    return fn


def kernel(name: str) -> Any:
    return MODULE.get_function(name)


def i32(v: int) -> np.int32:
    return np.int32(v)


def ints(n: int, seed: int = 0, high: int = 1000) -> Any:
    return cupy.asarray(np.random.default_rng(seed).integers(0, high, n, dtype=np.int32))


# --- correct kernels: results ------------------------------------------------------------------
@check
def copy() -> bool:
    src = ints(1000)
    out = cupy.empty(1000, dtype=np.int32)
    kernel("copy")((3,), (64,), (src, i32(1000), out))
    return bool((out == src).all())


@check
def warp_ops() -> bool:
    host = np.random.default_rng(1).integers(-50, 50, 128, dtype=np.int32)
    out = cupy.empty(16, dtype=np.int32)
    kernel("warp_ops")((2,), (64,), (cupy.asarray(host), out))
    warps = host.reshape(4, 32)
    odd = [int(sum(1 << lane for lane in range(32) if w[lane] & 1)) for w in warps]
    expected = np.stack(
        [warps.sum(1), np.array(odd).astype(np.uint32).view(np.int32), warps.max(1), warps[:, 0]],
        axis=1,
    ).reshape(-1)
    return bool(np.array_equal(out.get(), expected.astype(np.int32)))


@check
def histogram() -> bool:
    host = np.random.default_rng(2).integers(0, 16, 5000, dtype=np.int32)
    out = cupy.zeros(16, dtype=np.int32)
    kernel("histogram")((4,), (128,), (cupy.asarray(host), i32(5000), out))
    return bool(np.array_equal(out.get(), np.bincount(host, minlength=16)))


@check
def block_sum() -> bool:
    host = np.arange(300, dtype=np.int32)
    out = cupy.empty(5, dtype=np.int64)
    kernel("block_sum")((5,), (64,), (cupy.asarray(host), i32(300), out), shared_mem=64 * 4)
    padded = np.concatenate([host, np.zeros(20, np.int32)]).reshape(5, 64)
    return bool(np.array_equal(out.get(), padded.sum(1)))


# --- bugs in kernels -------------------------------------------------------------------------
@check
def read_past_end() -> None:
    kernel("read_past_end")((1,), (64,), (ints(50), i32(50), cupy.empty(50, dtype=np.int32)))


@check
def write_before_start() -> None:
    kernel("write_before_start")((1,), (64,), (cupy.empty(64, dtype=np.int32),))


@check
def write_to_const() -> None:
    kernel("write_to_const")((1,), (64,), (ints(64), cupy.empty(64, dtype=np.int32)))


@check
def missing_syncthreads() -> None:
    kernel("missing_syncthreads")((1,), (64,), (ints(64), cupy.empty(64, dtype=np.int32)))


@check
def blocks_race() -> None:
    kernel("blocks_race")((8,), (32,), (cupy.empty(1, dtype=np.int32),))


@check
def uninitialised_shared() -> None:
    kernel("uninitialised_shared")((1,), (64,), (cupy.empty(64, dtype=np.int32),))


@check
def divergent_barrier() -> None:
    kernel("divergent_barrier")((1,), (64,), (cupy.empty(64, dtype=np.int32),))


@check
def dynamic_shared_overrun() -> None:
    out = cupy.empty(64, dtype=np.int32)
    kernel("dynamic_shared_overrun")((1,), (64,), (out,), shared_mem=32 * 4)


@check
def divide_by_zero() -> None:
    divisors = cupy.asarray(np.arange(64, dtype=np.int32))  # divisors[0] == 0
    kernel("divide_by_zero")((1,), (64,), (divisors, cupy.empty(64, dtype=np.int32)))


@check
def failed_assert() -> None:
    values = cupy.asarray(np.arange(64, dtype=np.int32) - 3)
    kernel("failed_assert")((1,), (64,), (values, cupy.empty(64, dtype=np.int32)))


@check
def stack_overflow() -> None:
    kernel("stack_overflow")((1,), (32,), (cupy.empty(32, dtype=np.int32),))


@check
def still_works_after_faults() -> bool:
    return copy()


# --- bugs in launches ------------------------------------------------------------------------
@check
def wrong_dtype() -> None:
    src = cupy.asarray(np.arange(10, dtype=np.int64))
    kernel("copy")((1,), (64,), (src, i32(10), cupy.empty(10, dtype=np.int32)))


@check
def python_int_for_int() -> None:
    kernel("copy")((1,), (64,), (ints(10), 10, cupy.empty(10, dtype=np.int32)))


@check
def int64_for_int() -> None:
    kernel("copy")((1,), (64,), (ints(10), np.int64(10), cupy.empty(10, dtype=np.int32)))


@check
def host_array_for_pointer() -> None:
    host = np.arange(10, dtype=np.int32)
    kernel("copy")((1,), (64,), (host, i32(10), cupy.empty(10, dtype=np.int32)))


@check
def non_contiguous() -> None:
    src = ints(20)[::2]
    kernel("copy")((1,), (64,), (src, i32(10), cupy.empty(10, dtype=np.int32)))


@check
def argument_count() -> None:
    kernel("copy")((1,), (64,), (ints(10), i32(10)))


@check
def block_too_large() -> None:
    kernel("copy")((1,), (2048,), (ints(10), i32(10), cupy.empty(10, dtype=np.int32)))


@check
def aliasing() -> None:
    buffer = ints(10)
    kernel("copy")((1,), (64,), (buffer, i32(10), buffer))


@check
def too_much_shared() -> None:
    args = (ints(64), i32(64), cupy.empty(1, dtype=np.int64))
    kernel("block_sum")((1,), (64,), args, shared_mem=64 * 1024)


@check
def unknown_source() -> None:
    cupy.RawModule(code='extern "C" __global__ void k() {}')


@check
def unknown_kernel() -> None:
    MODULE.get_function("no_such_kernel")


# --- CuPy's host/device rules ----------------------------------------------------------------
@check
def implicit_device_to_host() -> None:
    np.asarray(ints(4))


@check
def host_device_operands() -> None:
    ints(4) + np.arange(4, dtype=np.int32)


@check
def host_operand_first() -> None:
    np.arange(4, dtype=np.int32) + ints(4)


@check
def host_array_into_basic_slice() -> None:
    ints(4)[:] = np.arange(4, dtype=np.int32)


@check
def device_results() -> list[str]:
    a = ints(10)
    results = [a + 1, a[np.array([1, 2])], a.sum(), np.concatenate([a, a]), cupy.maximum(a, 3)]
    return sorted({f"{type(r).__module__}.{type(r).__name__}" for r in results})


def main() -> None:
    outcomes = {}
    for name, fn in CHECKS.items():
        try:
            outcomes[name] = {"ok": True, "value": fn()}
        except Exception as exc:
            outcomes[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            if not isinstance(exc, cupy.EmulatorError | TypeError | ValueError | RuntimeError):
                outcomes[name]["traceback"] = traceback.format_exc()
    json.dump(outcomes, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
