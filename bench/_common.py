"""Helpers shared by the benchmark scripts: machine facts, number formats, the result table."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from gpu_genomics.info import cpu_model

REPO = Path(__file__).resolve().parent.parent

__all__ = ["cpu_model", "fmt_rate", "git_revision", "gpu_text", "print_table", "ram_gib", "verdict"]


def verdict(*, ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def fmt_rate(value: float) -> str:
    """``1.23 G``, ``45.6 M``, ``7.89 k``: three significant digits and an SI prefix."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.3g}"


def ram_gib() -> str:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def git_revision() -> str:
    """Short HEAD of the repository, marked when tracked files have uncommitted changes."""
    try:
        rev = _git("rev-parse", "--short", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
        return rev + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def print_table(header: Sequence[str], body: Sequence[Sequence[object]], left: set[int]) -> None:
    """Print a plain-text table; columns in ``left`` are left-aligned, the others right."""
    widths = [max(len(str(c)) for c in column) for column in zip(header, *body, strict=True)]

    def line(values: Sequence[object]) -> str:
        return "  ".join(
            str(v).ljust(w) if i in left else str(v).rjust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        ).rstrip()

    print(line(header))
    print(line(["-" * w for w in widths]))
    for row in body:
        print(line(row))


def gpu_text(*, gpu_ok: bool, gpu_reason: str) -> str:
    """``NAME, MEM GiB; cupy VERSION`` of the current GPU, or why none is usable."""
    if not gpu_ok:
        return f"none usable ({gpu_reason})"
    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    name = props["name"]
    name = name.decode() if isinstance(name, bytes) else str(name)
    return f"{name}, {props['totalGlobalMem'] / 2**30:.1f} GiB; cupy {cupy.__version__}"
