"""What ``gpu-genomics info`` reports: versions, CPU, GPU and which backends are usable."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import platform

from .device import gpu_status
from .io.provenance import version

PACKAGES = ("numpy", "numba", "scipy", "h5py", "zarr", "pysam", "pandas", "click", "tqdm")
SINGLECELL_PACKAGES = ("anndata", "scanpy")
GPU_PACKAGES = (("cupy", "CuPy"), ("cudf", "cuDF"), ("rapids_singlecell", "rapids-singlecell"))


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return None


def available_memory() -> int | None:
    """Bytes of memory this process can still take: ``MemAvailable``, within a cgroup's limit.

    None where neither is known (not Linux).
    """
    limits: list[int] = []
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    limits.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        try:
            with open(limit_file) as limit, open(usage_file) as usage:
                text = limit.read().strip()
                if text != "max" and int(text) < 1 << 60:
                    limits.append(int(text) - int(usage.read().strip()))
        except (OSError, ValueError):
            continue
    return min(limits) if limits else None


def _module_status(module: str) -> str:
    if importlib.util.find_spec(module) is None:
        return "not installed"
    try:
        imported = importlib.import_module(module)
    except Exception as exc:
        return f"unusable ({type(exc).__name__}: {exc})"
    return f"usable ({getattr(imported, '__version__', '?')})"


def system_report() -> list[tuple[str, str]]:
    """``(field, value)`` rows describing this machine and the backends."""
    rows = [
        ("gpu-genomics", version()),
        ("python", platform.python_version()),
        *((name, _version(name)) for name in PACKAGES),
        *((name, _version(name)) for name in SINGLECELL_PACKAGES),
        ("cpu", f"{cpu_model()} ({os.cpu_count()} logical cores)"),
    ]
    memory = _memory_gib()
    rows.append(("memory", f"{memory:.1f} GiB" if memory else "unknown"))
    usable, reason = gpu_status()
    if usable:
        import cupy

        for index in range(cupy.cuda.runtime.getDeviceCount()):
            props = cupy.cuda.runtime.getDeviceProperties(index)
            name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
            rows.append((f"gpu {index}", f"{name}, {props['totalGlobalMem'] / 2**30:.1f} GiB"))
    rows.append(("backend cpu", "usable (NumPy + numba)"))
    rows.append(("backend gpu", f"usable: {reason}" if usable else f"unavailable: {reason}"))
    for module, label in GPU_PACKAGES[1:]:
        status = _module_status(module) if usable else "not checked (no usable GPU)"
        rows.append((f"backend {label}", status))
    scanpy = _version("scanpy")
    rows.append(
        (
            "backend single-cell cpu",
            f"usable (scanpy {scanpy})"
            if scanpy != "not installed"
            else "unavailable: pip install 'gpu-genomics[singlecell]'",
        )
    )
    rows.append(("default device", os.environ.get("GPU_GENOMICS_DEVICE") or "auto"))
    return rows
