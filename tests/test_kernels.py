"""The CUDA sources and their declarations.

Every :class:`~gpu_genomics._kernels.Kernel` declared in the package matches the signature of
its ``extern "C" __global__`` function in ``kernels/*.cu`` (names, order and C types), every
``.cu`` kernel is declared, each CPU twin takes a subsequence of its kernel's parameters, and the
wheel ships the sources.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from gpu_genomics import _kernels
from gpu_genomics._kernels import Kernel

PACKAGE = Path(_kernels.__file__).resolve().parent
REPO = PACKAGE.parent

# --- parsing the .cu signatures --------------------------------------------------------------
_MACRO = re.compile(r"^[ \t]*#define[ \t]+(\w+)\(([^)]*)\)((?:[^\n]*\\\n)*[^\n]*)", re.M)
_SIGNATURE = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(([^)]*)\)\s*\{')
_C_SIZES = {
    "signed char": 1,
    "unsigned char": 1,
    "int": 4,
    "unsigned int": 4,
    "long long": 8,
    "uint2": 8,
    "uint4": 16,
}


def _without_comments(text: str) -> str:
    return re.sub(r"//[^\n]*|/\*.*?\*/", " ", text, flags=re.S)


def _expand_kernel_macros(text: str) -> str:
    """``text`` with every invocation of a function-like macro that defines a kernel (such as
    ``GG_DEFINE_GATHER(gather_words32, unsigned int)``) replaced by its expansion."""
    for match in list(_MACRO.finditer(text)):
        name, params, body = match.group(1), match.group(2), match.group(3)
        body = body.replace("\\\n", "\n")
        if "__global__" not in body:
            continue
        text = text.replace(match.group(0), "")
        params = [p.strip() for p in params.split(",")]

        def expand(call: re.Match, params=params, body=body) -> str:
            args = dict(zip(params, (a.strip() for a in call.group(1).split(",")), strict=True))
            return re.sub(r"\b\w+\b", lambda word: args.get(word.group(), word.group()), body)

        text = re.sub(rf"^{name}\(([^)]*)\)", expand, text, flags=re.M)
    return text


def _c_param(decl: str) -> tuple[str, str]:
    """``(name, C type)`` of one parameter declaration, in the form ``Kernel.params`` uses:
    no ``__restrict__``, no top-level ``const`` of a value, ``*`` attached to the type."""
    decl = " ".join(decl.replace("__restrict__", " ").split())
    name = re.findall(r"\w+", decl)[-1]
    ctype = re.sub(r"\s*\*", "*", decl[: -len(name)].strip())
    if not ctype.endswith("*"):
        ctype = ctype.removeprefix("const ")
    return name, ctype


def cu_kernels(module: str) -> dict[str, tuple[tuple[tuple[str, str], ...], str]]:
    """Every kernel of ``kernels/<module>.cu``: name -> (parameters, body)."""
    text = _expand_kernel_macros(_without_comments(_kernels.kernel_source(module)))
    kernels = {}
    for match in _SIGNATURE.finditer(text):
        depth, end = 0, match.end() - 1
        for end in range(match.end() - 1, len(text)):
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            if depth == 0:
                break
        params = tuple(_c_param(p) for p in match.group(2).split(",") if p.strip())
        kernels[match.group(1)] = (params, text[match.end() : end])
    return kernels


def all_cu_kernels() -> dict[tuple[str, str], tuple[tuple[str, str], ...]]:
    """``(module, function)`` -> parameters, for every ``kernels/*.cu``."""
    return {
        (source.stem, name): params
        for source in sorted(_kernels.kernel_dir().glob("*.cu"))
        for name, (params, _) in cu_kernels(source.stem).items()
    }


def declared_kernels() -> list[Kernel]:
    """Every ``Kernel`` declared at module level in the package (alone or in a dict)."""
    found: dict[int, Kernel] = {}
    for source in sorted(PACKAGE.rglob("*.py")):
        if "Kernel(" not in source.read_text():
            continue
        dotted = ".".join(source.relative_to(PACKAGE.parent).with_suffix("").parts)
        for value in vars(importlib.import_module(dotted)).values():
            for candidate in value.values() if isinstance(value, dict) else [value]:
                if isinstance(candidate, Kernel):
                    found[id(candidate)] = candidate
    return sorted(found.values(), key=str)


DECLARED = declared_kernels()


# --- declarations against the sources ---------------------------------------------------------
def test_the_parser_expands_the_gather_macro():
    kernels = cu_kernels("gather")
    assert sorted(kernels) == ["gather_words128", "gather_words32", "gather_words64"]
    params = dict(kernels["gather_words64"][0])
    assert params["lut"] == "const uint2*" and params["out"] == "uint2*"
    assert params["n_rows"] == "long long" and params["width"] == "int"


@pytest.mark.parametrize("kernel", DECLARED, ids=str)
def test_declared_kernel_matches_its_cu_signature(kernel):
    signatures = all_cu_kernels()
    assert (kernel.module, kernel.function) in signatures, f"{kernel} is not in kernels/*.cu"
    assert kernel.params == signatures[kernel.module, kernel.function]


def test_every_cu_kernel_is_declared():
    declared = {(k.module, k.function) for k in DECLARED}
    assert len(declared) == len(DECLARED), "a kernel is declared twice"
    assert set(all_cu_kernels()) == declared


@pytest.mark.parametrize("kernel", DECLARED, ids=str)
def test_twin_takes_a_subsequence_of_the_kernel_parameters(kernel):
    twin = _kernels.parameter_names(kernel.twin)
    names = [name for name, _ in kernel.params]
    assert set(twin) <= set(names), f"{kernel}: the twin takes {set(twin) - set(names)}"
    assert [n for n in names if n in twin] == list(twin), f"{kernel}: twin order differs"


def test_kmer_counts_dense_static_shared_memory_is_declared():
    from gpu_genomics.sequence import kmers

    _, body = cu_kernels("kmers")["kmer_counts_dense"]
    arrays = re.findall(r"(?<!extern )__shared__\s+([\w ]+?)\s+\w+\[(\d+)\];", body)
    assert arrays, "no static shared memory found"
    assert sum(_C_SIZES[t] * int(n) for t, n in arrays) == kmers.KERNEL_STATIC_SHARED_BYTES


# --- the calling convention ------------------------------------------------------------------
def _twin(x, k, out):
    out[:] = x * k


TOY = Kernel(
    module="toy",
    function="scale",
    params=(("x", "const int*"), ("k", "int"), ("n", "long long"), ("out", "int*")),
    twin=_twin,
)


def test_cpu_call_passes_the_twin_its_parameters_by_name():
    out = np.zeros(3, dtype=np.int32)
    TOY("cpu", grid=_kernels.rows_grid(1, 3), out=out, n=3, k=2, x=np.arange(3, dtype=np.int32))
    np.testing.assert_array_equal(out, [0, 2, 4])


@pytest.mark.parametrize("where", ["cpu", "gpu"], ids=["on-cpu", "on-gpu"])
def test_call_checks_the_arguments(where):
    x, out = np.arange(3, dtype=np.int32), np.zeros(3, dtype=np.int32)
    grid = _kernels.rows_grid(1, 3)
    with pytest.raises(TypeError, match=r"missing arguments \['n'\]"):
        TOY(where, grid=grid, x=x, k=2, out=out)
    with pytest.raises(TypeError, match=r"unknown arguments \['m'\]"):
        TOY(where, grid=grid, x=x, k=2, n=3, m=1, out=out)
    with pytest.raises(TypeError, match="needs a int32 array, got int64"):
        TOY(where, grid=grid, x=x.astype(np.int64), k=2, n=3, out=out)
    with pytest.raises(TypeError, match="needs an integer"):
        TOY(where, grid=grid, x=x, k=2.0, n=3, out=out)


def test_gpu_call_converts_scalars_to_their_c_types(monkeypatch):
    launches = []
    monkeypatch.setattr(_kernels, "compiled", lambda module, function: (module, function))
    monkeypatch.setattr(_kernels, "launch", lambda *args: launches.append(args))
    scalars = Kernel("toy", "flags", (("a", "int"), ("b", "long long"), ("c", "int")), twin=_twin2)
    scalars("gpu", grid=_kernels.block_per_row_grid(5), shared_mem=64, a=7, b=2**40, c=True)
    ((function, grid, args, shared_mem),) = launches
    assert function == ("toy", "flags") and grid.blocks == (5,) and shared_mem == 64
    assert [type(v) for v in args] == [np.int32, np.int64, np.int32]
    assert [int(v) for v in args] == [7, 2**40, 1]
    scalars("gpu", grid=_kernels.block_per_row_grid(0), a=7, b=1, c=False)
    assert len(launches) == 1, "an empty grid must not launch"
    out = np.zeros(3, dtype=np.int32)
    with pytest.raises(TypeError, match="is written; pass a device array"):
        TOY("gpu", grid=_kernels.rows_grid(1, 3), x=out, k=1, n=3, out=out)


def _twin2(a, c):
    pass


def test_declarations_are_checked():
    with pytest.raises(TypeError, match="not a subsequence"):
        Kernel("toy", "f", (("x", "const int*"), ("out", "int*")), twin=lambda out, x: None)
    with pytest.raises(TypeError, match="has C type 'float'"):
        Kernel("toy", "f", (("x", "float"),), twin=lambda x: None)
    with pytest.raises(TypeError, match="appears twice"):
        Kernel("toy", "f", (("x", "int"), ("x", "int")), twin=lambda x: None)
    with pytest.raises(TypeError, match="not parameter names"):
        Kernel("toy", "f", (("grid", "int"),), twin=lambda grid: None)


def test_grids():
    assert _kernels.rows_grid(0, 10).empty and _kernels.rows_grid(10, 0).empty
    assert _kernels.rows_grid(10**7, 10**7).blocks == (_kernels.MAX_GRID_X, _kernels.MAX_GRID_Y)
    assert _kernels.rows_grid(3, 257).blocks == (2, 3)
    assert _kernels.block_per_row_grid(2**40).blocks == (_kernels.MAX_GRID_1D,)
    assert _kernels.thread_per_row_grid(257).blocks == (2,)
    assert _kernels.thread_per_row_grid(0).empty


def test_kernel_dir_holds_every_source():
    names = {p.name for p in _kernels.kernel_dir().glob("*.cu")}
    assert {"gather.cu", "kmers.cu", "tokenize.cu", "reverse_complement.cu"} <= names
    assert {"gc_content.cu", "genotypes.cu"} <= names


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
