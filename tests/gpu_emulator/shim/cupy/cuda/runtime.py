"""``cupy.cuda.runtime`` for the GPU emulator: one device, described by fixed properties."""

from __future__ import annotations

import os
from typing import Any


class CUDARuntimeError(RuntimeError):
    """Raised where the CUDA runtime would fail (an invalid device id)."""


def _host_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 2**34


def getDeviceCount() -> int:
    return 1


def getDeviceProperties(device: int) -> dict[str, Any]:
    if device != 0:
        raise CUDARuntimeError("cudaErrorInvalidDevice: invalid device ordinal")
    return {
        "name": b"CPU emulator of CUDA (gpu-genomics tests)",
        "totalGlobalMem": _host_memory(),
        "sharedMemPerBlock": 48 * 1024,
        "warpSize": 32,
        "maxThreadsPerBlock": 1024,
        "maxThreadsDim": (1024, 1024, 64),
        "maxGridSize": (2**31 - 1, 65535, 65535),
        "multiProcessorCount": 1,
        "major": 9,
        "minor": 0,
    }


def memGetInfo() -> tuple[int, int]:
    total = _host_memory()
    return total // 2, total


def runtimeGetVersion() -> int:
    return 12000


def driverGetVersion() -> int:
    return 12000


def deviceSynchronize() -> None:
    return None
