"""Run the ``gpu``-marked tests without a GPU: the real ``kernels/*.cu`` on a CPU emulator.

Opt in with ``GPU_GENOMICS_EMULATE_GPU=1`` (``make emulate``). ``tests/conftest.py`` then calls
:func:`configure` from ``pytest_configure``, before anything asks
``gpu_genomics.device.gpu_status()``; it

1. builds the emulator (:mod:`.build`: every ``.cu`` file that ``gpu_genomics`` loads, plus
   ``emu_runtime.cpp``, compiled by ``g++ -std=c++20`` into ``libemu.so``), cached under
   ``$GPU_GENOMICS_EMULATOR_CACHE`` or ``<tmp>/gpu-genomics-emulator-<uid>/<hash>``, the hash
   covering the ``.cu`` files, the emulator's sources, the compiler version and flags;
2. puts ``shim/`` first on ``sys.path``: its ``cupy`` package (NumPy arrays standing in for
   device memory, ``RawModule`` launching the emulated kernels) is the only CuPy the tests see,
   so ``gpu_status()`` reports a usable GPU and the ``gpu`` tests run instead of skipping;
3. registers a plugin that names the build in the report header, fails a test whose kernel
   launch went wrong even if the code under test caught the error, and counts the launches.

Without the variable nothing changes: no build, no fake ``cupy``, and the ``gpu`` tests skip as
before. The emulator never falls back to the package's NumPy/numba twins: results on
``device="gpu"`` come from the CUDA sources, compiled for the CPU.

What is emulated (details in ``emu.h``, ``emu_runtime.cpp`` and ``shim/cupy/_emulator.py``):
CUDA's thread hierarchy (each block's threads run as fibers, blocks one after another),
``__syncthreads``, warp shuffles/ballots/``__syncwarp`` as barriers over the lanes of their
mask, static and dynamic shared memory, atomics, and the launch checks: argument count and
types against the kernel's C++ signature, grid/block/shared-memory limits, guard pages around
every argument (out-of-bounds accesses become errors naming the argument), read-only const
arguments, and a second run in reverse block/thread order that must give identical results.

What is not: warp-lockstep execution (threads of a warp only meet at the *_sync intrinsics, so
implicit warp-synchronous code is not checked), real NVRTC (``RawModule`` accepts only the
exact text of a ``.cu`` file compiled ahead of time, without ``#include``; its options are not
applied), timing and occupancy, memory fences and other devices' memory models, textures,
cooperative groups, and any CuPy API beyond what ``gpu_genomics`` uses (see
``shim/cupy/__init__.py``). A kernel that loops forever hangs the test. Child processes do not
see the emulated GPU.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SHIM = HERE / "shim"
ENV_VAR = "GPU_GENOMICS_EMULATE_GPU"
LIB_ENV = "GPU_GENOMICS_EMULATOR_LIB"  # read by shim/cupy/_emulator.py


def requested() -> bool:
    """Whether ``$GPU_GENOMICS_EMULATE_GPU`` asks for the emulator."""
    return os.environ.get(ENV_VAR, "").strip().lower() not in ("", "0", "false", "no", "off")


def activate(kernel_dir: Path | None = None) -> Path:
    """Build the emulator (or reuse the cached build), make the fake ``cupy`` the importable
    one, and check that ``gpu_status()`` now reports a usable GPU. Returns the build folder.

    Raises RuntimeError (or build.BuildError) when that cannot be done, e.g. ``gpu_status()``
    has already been evaluated without the emulator, or g++ is missing.
    """
    from gpu_genomics import _kernels, device

    from .build import build

    if device.gpu_status.cache_info().currsize:
        raise RuntimeError(
            "gpu_genomics.device.gpu_status() was evaluated before the GPU emulator was "
            "activated; activate it first (tests/conftest.py does so in pytest_configure)"
        )
    loaded = sys.modules.get("cupy")
    if loaded is not None and not str(getattr(loaded, "__file__", "")).startswith(str(SHIM)):
        raise RuntimeError("a real CuPy is already imported; the emulator cannot replace it")
    build_dir = build(kernel_dir or _kernels.kernel_dir())
    os.environ[LIB_ENV] = str(build_dir)
    if str(SHIM) not in sys.path:
        sys.path.insert(0, str(SHIM))
    importlib.invalidate_caches()
    usable, reason = device.gpu_status()
    if not usable:
        raise RuntimeError(f"the emulated GPU is not usable: {reason}")
    return build_dir


def configure(config: Any) -> None:
    """``pytest_configure`` part: :func:`activate`, then register the reporting plugin.
    Failures become a pytest usage error (the run stops instead of skipping every test)."""
    import pytest

    from .build import BuildError
    from .plugin import EmulatorPlugin

    try:
        build_dir = activate()
    except (BuildError, RuntimeError, OSError) as exc:
        raise pytest.UsageError(f"{ENV_VAR} is set but the GPU emulator failed: {exc}") from exc
    config.pluginmanager.register(EmulatorPlugin(build_dir), "gpu_genomics_emulator")
