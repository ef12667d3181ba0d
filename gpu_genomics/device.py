"""Choosing where an operation runs: ``device="auto" | "gpu" | "cpu"``.

Every public operation takes ``device=None``; ``None`` means the ``GPU_GENOMICS_DEVICE``
environment variable, else ``"auto"``. ``"auto"`` uses the GPU when CuPy is importable and can
allocate on a device, else the CPU (logging the reason once per process). ``"gpu"`` without a
usable GPU raises :class:`~gpu_genomics.errors.DeviceError`.

CuPy is imported here lazily and only here; nothing GPU-related is imported on the CPU path.
Arrays come back on the device that computed them: NumPy on the CPU, CuPy on the GPU. Use
:func:`to_numpy` to get host arrays whatever the device.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from types import ModuleType
from typing import Any, Literal

from .errors import DeviceError, InputError

log = logging.getLogger("gpu_genomics")

Device = Literal["cpu", "gpu"]
DEVICE_CHOICES = ("auto", "gpu", "cpu")
DEVICE_ENV = "GPU_GENOMICS_DEVICE"


@functools.cache
def gpu_status() -> tuple[bool, str]:
    """Return ``(usable, reason)``: whether CuPy can allocate on a GPU, and why not if it can't.

    The answer is computed once per process.
    """
    try:
        import cupy
    except Exception as exc:  # ImportError, or a broken CUDA install raising anything
        return False, f"CuPy is not importable ({type(exc).__name__}: {exc})"
    try:
        n_devices = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return False, f"CUDA runtime reports no device ({type(exc).__name__}: {exc})"
    if n_devices < 1:
        return False, "CUDA runtime reports 0 devices"
    try:
        cupy.zeros(1, dtype=cupy.uint8).sum().item()
    except Exception as exc:
        return False, f"CuPy could not allocate on GPU 0 ({type(exc).__name__}: {exc})"
    return True, f"{n_devices} CUDA device(s)"


@functools.cache
def _log_fallback(fallback: str, reason: str) -> None:
    log.info("device='auto': %s because %s", fallback, reason)


def requested_device(device: str | None = None) -> str:
    """Return the device asked for, checked and lower-cased.

    That is ``device``, else ``$GPU_GENOMICS_DEVICE``, else ``"auto"``; the result is one of
    :data:`DEVICE_CHOICES`.

    Raises:
        InputError: the device asked for is not auto/gpu/cpu.
    """
    source = "device"
    if device is None:
        device = os.environ.get(DEVICE_ENV) or "auto"
        source = DEVICE_ENV
    choice = str(device).strip().lower()
    if choice not in DEVICE_CHOICES:
        raise InputError(f"{source}={device!r} is not one of auto, gpu, cpu")
    return choice


def resolve_device(device: str | None = None) -> Device:
    """Turn a user's ``device`` argument into ``"cpu"`` or ``"gpu"``.

    Raises:
        InputError: ``device`` (or ``$GPU_GENOMICS_DEVICE``) is not auto/gpu/cpu.
        DeviceError: ``"gpu"`` was asked for and no GPU is usable.
    """
    return choose_backend(
        device,
        gpu_status,
        unavailable="no GPU is usable",
        install="install gpu-genomics[cuda12] or [cuda13] on a machine with an NVIDIA GPU",
        fallback="using the CPU",
    )


def choose_backend(
    device: str | None,
    status: Callable[[], tuple[bool, str]],
    *,
    unavailable: str,
    install: str,
    fallback: str,
) -> Device:
    """``"gpu"`` when ``status()`` says the GPU backend is usable and ``device`` allows it.

    The one rule of every backend (CuPy kernels here, rapids-singlecell in
    :mod:`gpu_genomics.expression.singlecell`): ``"cpu"`` is the CPU; ``"gpu"`` is the GPU or a
    :class:`~gpu_genomics.errors.DeviceError` naming the reason (``unavailable``, ``status``'s
    reason and the ``install`` hint); ``"auto"`` is the GPU when usable, else the CPU with one
    log line (``fallback``, the reason) per reason and process.

    Args:
        device: ``"auto" | "gpu" | "cpu"`` or ``None`` (see :func:`requested_device`).
        status: returns ``(usable, reason)``, e.g. :func:`gpu_status`.
        unavailable: what is missing, for the error (``"no GPU is usable"``).
        install: how to get it, for the error.
        fallback: what runs instead, for the log line (``"using the CPU"``).

    Raises:
        InputError: ``device`` is not auto/gpu/cpu.
        DeviceError: ``"gpu"`` was asked for and the backend is not usable.
    """
    choice = requested_device(device)
    if choice == "cpu":
        return "cpu"
    usable, reason = status()
    if usable:
        return "gpu"
    if choice == "gpu":
        raise DeviceError(
            f"device='gpu' was requested but {unavailable}: {reason}; {install}, "
            "or use device='cpu'"
        )
    _log_fallback(fallback, reason)
    return "cpu"


def array_module(device: Device) -> ModuleType:
    """NumPy for ``"cpu"``, CuPy for ``"gpu"``."""
    if device == "gpu":
        import cupy

        return cupy
    import numpy

    return numpy


def is_gpu_array(array: Any) -> bool:
    """True for CuPy arrays and cupyx sparse matrices, without importing CuPy."""
    return type(array).__module__.split(".")[0] in ("cupy", "cupyx")


def array_module_of(array: Any) -> ModuleType:
    """CuPy for a CuPy array or cupyx sparse matrix, else NumPy (the module to compute it with)."""
    return array_module("gpu" if is_gpu_array(array) else "cpu")


def to_numpy(array: Any) -> Any:
    """Return ``array`` on the host.

    NumPy arrays and SciPy sparse matrices pass through; CuPy arrays and cupyx sparse matrices
    are copied to the host. Tuples, lists and dicts are converted element by element.
    """
    if isinstance(array, tuple | list):
        return type(array)(to_numpy(a) for a in array)
    if isinstance(array, dict):
        return {key: to_numpy(value) for key, value in array.items()}
    if is_gpu_array(array):
        return array.get()
    return array
