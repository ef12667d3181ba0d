"""The CUDA sources: every kernel the Python launchers name exists, and the wheel ships them."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from gpu_genomics import _kernels

PACKAGE = Path(_kernels.__file__).resolve().parent
REPO = PACKAGE.parent


def _launcher_references() -> set[tuple[str, str]]:
    refs = set()
    for source in PACKAGE.rglob("*.py"):
        text = source.read_text()
        refs |= set(re.findall(r'_kernels\.kernel\(\s*"(\w+)",\s*"(\w+)"\s*\)', text))
        # gather picks its kernel by word size from a table of names
        if "_GPU_KERNEL_FOR_WORDS" in text:
            refs |= {("gather", name) for name in re.findall(r'"(gather_words\d+)"', text)}
    return refs


def _defined_kernels(module: str) -> set[str]:
    text = _kernels.kernel_source(module)
    direct = re.findall(r'extern "C" __global__ void (\w+)\(', text)
    via_macro = re.findall(r"^GG_DEFINE_GATHER\((\w+),", text, flags=re.M)
    return set(direct) | set(via_macro)


def test_every_launched_kernel_is_defined():
    refs = _launcher_references()
    assert len(refs) >= 8, refs
    for module, function in refs:
        assert function in _defined_kernels(module), f"{function} missing from {module}.cu"


def test_kernel_dir_holds_every_source():
    names = {p.name for p in _kernels.kernel_dir().glob("*.cu")}
    assert {"gather.cu", "kmers.cu", "tokenize.cu", "reverse_complement.cu"} <= names
    assert "gc_content.cu" in names


@pytest.mark.skipif(not (REPO / "pyproject.toml").exists(), reason="needs a source checkout")
def test_wheel_ships_the_kernels(tmp_path):
    pytest.importorskip("hatchling")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
    )
    (wheel,) = tmp_path.glob("gpu_genomics-*.whl")
    shipped = {n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".cu")}
    expected = {f"gpu_genomics/kernels/{p.name}" for p in (REPO / "kernels").glob("*.cu")}
    assert expected and shipped == expected
