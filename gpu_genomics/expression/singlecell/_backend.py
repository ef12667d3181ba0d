"""Which single-cell backend runs: scanpy on the CPU, rapids-singlecell on the GPU.

The GPU backend needs a usable GPU (:func:`gpu_genomics.device.gpu_status`) *and* an importable
rapids-singlecell, which itself imports cuML, cuDF and cuVS: any failure of that import makes
the backend unavailable with the reason. ``device="auto"`` then falls back to scanpy with one
log line; ``device="gpu"`` raises :class:`~gpu_genomics.errors.DeviceError`.

:func:`on_device` moves ``adata.X`` to the GPU once (``rapids_singlecell.get.anndata_to_GPU``)
and back once when the block ends, so a whole recipe runs there without round trips.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ...device import Device, choose_backend, gpu_status, is_gpu_array, resolve_device
from ...errors import InputError

if TYPE_CHECKING:
    from anndata import AnnData

log = logging.getLogger("gpu_genomics")


@functools.cache
def rapids_status() -> tuple[bool, str]:
    """Return ``(usable, reason)`` for the GPU single-cell backend, computed once per process."""
    usable, reason = gpu_status()
    if not usable:
        return False, reason
    try:
        import rapids_singlecell
    except Exception as exc:  # ImportError, or cuML/cuDF/cuVS failing inside it
        return False, f"rapids-singlecell is not importable ({type(exc).__name__}: {exc})"
    return True, f"rapids-singlecell {getattr(rapids_singlecell, '__version__', '?')}"


def resolve_backend(device: str | None = None) -> Device:
    """``"gpu"`` when rapids-singlecell can run, else ``"cpu"`` (see the module docstring).

    Raises:
        InputError: ``device`` is not auto/gpu/cpu.
        DeviceError: ``"gpu"`` was asked for and the GPU backend is unavailable.
    """
    if resolve_device(device) == "cpu":
        return "cpu"
    return choose_backend(
        device,
        rapids_status,
        unavailable="the GPU single-cell backend is unavailable",
        install="install gpu-genomics[rapids12] or [rapids13]",
        fallback="single-cell steps run on the CPU (scanpy)",
    )


def require_scanpy() -> None:
    """Raise one clear line when the CPU backend (scanpy, anndata) is not installed."""
    try:
        import anndata  # noqa: F401
        import scanpy  # noqa: F401
    except ImportError as exc:
        raise InputError(
            f"single-cell steps need scanpy and anndata ({exc}); "
            "pip install 'gpu-genomics[singlecell]'"
        ) from None


def rapids() -> Any:
    """The ``rapids_singlecell`` module (only called once :func:`resolve_backend` said "gpu")."""
    import rapids_singlecell

    return rapids_singlecell


@contextlib.contextmanager
def on_device(adata: AnnData, backend: Device) -> Iterator[None]:
    """Run the block with ``adata.X`` on ``backend``'s device, restoring its place afterwards.

    On ``"gpu"`` a host ``X`` is copied to the GPU on entry and back on exit (also when the block
    fails, so the caller's object keeps host arrays); an ``X`` already on the GPU stays there.
    """
    if backend == "cpu" or is_gpu_array(adata.X):
        yield
        return
    rsc = rapids()
    rsc.get.anndata_to_GPU(adata)
    try:
        yield
    finally:
        rsc.get.anndata_to_CPU(adata)
