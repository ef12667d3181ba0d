"""Compile ``kernels/*.cu`` into a shared library that runs the kernels on the CPU.

Each ``<module>.cu`` is preprocessed on its own (``g++ -E``: its macros expanded, no
``#include`` allowed), then rewritten into C++ that includes ``emu.h``:

* ``extern "C"`` is dropped and the module goes into ``namespace emu_mod_<module>``, so two
  modules may define the same names, as two CuPy ``RawModule`` objects may;
* ``__shared__ T name[N];`` becomes a function-``static`` array (blocks run one at a time, so
  one copy serves every block) followed by ``emu::shared_declared(...)``, which fills it with a
  poison byte the first time a thread of a block reaches it;
* ``extern __shared__ T name[];`` becomes a pointer to the launch's dynamic shared memory.

For every ``__global__ void name(...)`` the module gets two exported C functions,
``emu_kernel__<module>__<name>`` (launch) and ``emu_params__<module>__<name>`` (parameter types,
from the C++ types themselves), and ``kernels.json`` records the module's SHA-256, its
kernels and their parameter declarations. The runtime (``emu_runtime.cpp``) and every module are
compiled in parallel with ``g++ -std=c++20`` and linked into ``libemu.so``.

Builds are cached under a directory named after a hash of the ``.cu`` files, the emulator's
own sources, the compiler's version and the flags, so a second run costs nothing.

Usage: ``python tests/gpu_emulator/build.py [KERNEL_DIR] [CACHE_DIR]`` prints the build folder.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNTIME_SOURCES = ("emu.h", "emu_runtime.cpp")
KEEP_BUILDS = 8  # older builds in the cache folder are removed
FORMAT = 1  # bump when the layout of the build folder or of kernels.json changes
CXX_FLAGS = (
    "-std=c++20",
    "-O1",
    "-g",
    "-fPIC",
    "-fvisibility=hidden",
    "-fno-strict-aliasing",
    "-U_FORTIFY_SOURCE",  # siglongjmp out of a fiber's signal handler must not be "checked"
    "-pthread",
    "-Wall",
    "-Wno-unused-function",
    "-Wno-unused-variable",
    "-Wno-unknown-pragmas",
)
if platform.machine() in ("x86_64", "AMD64"):
    # The fibers' context switch keeps no shadow stack: do not mark the library CET-compatible.
    CXX_FLAGS += ("-fcf-protection=none",)
PREPROCESS_FLAGS = (
    "-E",
    "-x",
    "c++",
    "-std=c++20",
    "-nostdinc",
    "-D__CUDACC__",
    "-D__CUDACC_RTC__",
)


class BuildError(RuntimeError):
    """A kernel source the emulator cannot translate, or a compiler failure."""


def default_cache_dir() -> Path:
    """``$GPU_GENOMICS_EMULATOR_CACHE``, else a per-user folder in the temp directory."""
    configured = os.environ.get("GPU_GENOMICS_EMULATOR_CACHE")
    if configured:
        return Path(configured)
    return Path(tempfile.gettempdir()) / f"gpu-genomics-emulator-{os.getuid()}"


def _compiler() -> str:
    return os.environ.get("CXX") or "g++"


def _compiler_version(cxx: str) -> str:
    try:
        done = subprocess.run([cxx, "--version"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise BuildError(
            f"the GPU emulator needs a C++20 compiler; {cxx!r} failed: {exc}. "
            "Install g++ (>= 10) or point $CXX at one."
        ) from exc
    return done.stdout.splitlines()[0] if done.stdout else cxx


def build_key(sources: list[Path], cxx: str, flags: tuple[str, ...] = CXX_FLAGS) -> str:
    """Hash of everything that determines the build's output."""
    digest = hashlib.sha256()
    digest.update(f"format {FORMAT}\n{_compiler_version(cxx)}\n{flags}\n".encode())
    for name in (*RUNTIME_SOURCES, "build.py"):
        digest.update(name.encode() + b"\0" + (HERE / name).read_bytes() + b"\0")
    for source in sources:
        digest.update(source.name.encode() + b"\0" + source.read_bytes() + b"\0")
    return digest.hexdigest()[:24]


# --- translation -------------------------------------------------------------------------------
_DYNAMIC_SHARED = re.compile(
    r"extern\s+__shared__\s+(?:__align__\s*\([^)]*\)\s*)?([A-Za-z_][\w\s]*?)\s*"
    r"\b([A-Za-z_]\w*)\s*\[\s*\]\s*;"
)
_STATIC_SHARED = re.compile(r"(?:\bstatic\s+)?__shared__\s+([^;{}]+?)\s*;")
_KERNEL = re.compile(
    r"(extern\s+\"C\"\s+)?__global__\s+(?:__launch_bounds__\s*\([^)]*\)\s*)?void\s+"
    r"([A-Za-z_]\w*)\s*\("
)


def _matching_paren(text: str, open_index: int) -> int:
    depth = 0
    for index in range(open_index, len(text)):
        if text[index] == "(":
            depth += 1
        elif text[index] == ")":
            depth -= 1
            if depth == 0:
                return index
    raise BuildError("unbalanced parentheses in a kernel's parameter list")


def _split_params(params: str) -> list[str]:
    out, depth, current = [], 0, []
    for char in params:
        if char in "(<[":
            depth += 1
        elif char in ")>]":
            depth -= 1
        if char == "," and depth == 0:
            out.append("".join(current))
            current = []
        else:
            current.append(char)
    out.append("".join(current))
    return [" ".join(p.split()) for p in out if p.strip() and p.strip() != "void"]


def _param_name(decl: str) -> str:
    names = re.findall(r"[A-Za-z_]\w*", decl)
    return names[-1] if names else "?"


def _static_shared(match: re.Match, where: str) -> str:
    decl = " ".join(match.group(1).split())
    if "," in decl or "=" in decl:
        raise BuildError(f"{where}: declare one __shared__ variable per statement: {decl!r}")
    align = ""
    aligned = re.match(r"__align__\s*\(\s*(\d+)\s*\)\s*", decl)
    if aligned:
        align = f"__attribute__((aligned({aligned.group(1)}))) "
        decl = decl[aligned.end() :]
    name = re.search(r"([A-Za-z_]\w*)\s*(\[[^;]*\])?$", decl)
    if not name:
        raise BuildError(f"{where}: cannot parse the __shared__ declaration {decl!r}")
    var = name.group(1)
    return f"static {align}{decl}; ::emu::shared_declared(&{var}, sizeof({var}));"


def translate(source: Path, cxx: str) -> tuple[str, dict]:
    """C++ for one ``.cu`` file, and its kernels' entry for ``kernels.json``."""
    text = source.read_text()
    if re.search(r"^\s*#\s*include\b", text, flags=re.M):
        raise BuildError(f"{source}: #include is not supported by the GPU emulator")
    done = subprocess.run(
        [cxx, *PREPROCESS_FLAGS, str(source)], capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise BuildError(f"preprocessing {source} failed:\n{done.stderr}")
    code = done.stdout
    if re.search(r'extern\s+"C"\s*\{', code):
        raise BuildError(f'{source}: extern "C" {{ }} blocks are not supported; mark each kernel')
    if re.search(r"template\s*<[^;{]*>\s*(extern\s+\"C\"\s+)?__global__", code):
        raise BuildError(f"{source}: template kernels are not supported by the GPU emulator")

    def dynamic(match: re.Match) -> str:  # the runtime's buffer is 16-byte aligned, as on a GPU
        ctype, name = " ".join(match.group(1).split()), match.group(2)
        return f"{ctype}* const {name} = static_cast<{ctype}*>(::emu::dynamic_shared());"

    code = _DYNAMIC_SHARED.sub(dynamic, code)
    code = _STATIC_SHARED.sub(lambda m: _static_shared(m, str(source)), code)

    kernels = {}
    pieces, last = [], 0
    for match in _KERNEL.finditer(code):
        name = match.group(2)
        close = _matching_paren(code, match.end() - 1)
        params = _split_params(code[match.end() : close])
        kernels[name] = {
            "extern_c": bool(match.group(1)),
            "params": [{"decl": p, "name": _param_name(p)} for p in params],
        }
        pieces.append(code[last : match.start()])
        pieces.append(code[match.start() : match.end()].replace(match.group(1) or "", "", 1))
        last = match.end()
    pieces.append(code[last:])
    if not kernels:
        raise BuildError(f"{source}: no __global__ kernels found")

    module = source.stem
    namespace = f"emu_mod_{module}"
    wrappers = []
    for name in kernels:
        kernel = f"&{namespace}::{name}"
        wrappers.append(
            f"EMU_EXPORT int emu_kernel__{module}__{name}(const EmuLaunch* c, void** a, "
            f"EmuResult* r) {{ return ::emu::launch(c, a, r, &::emu::thunk<{kernel}>); }}\n"
            f"EMU_EXPORT int emu_params__{module}__{name}(EmuParam* p, int n) "
            f"{{ return ::emu::describe({kernel}, p, n); }}\n"
        )
    cpp = (
        f'#include "emu.h"\nnamespace {namespace} {{\n'
        + "".join(pieces)
        + f'\n}}  // namespace {namespace}\n#line 1 "<emulator wrappers for {module}>"\n'
        + "".join(wrappers)
    )
    entry = {
        "source": str(source),
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
        "kernels": kernels,
    }
    return cpp, entry


# --- compilation -------------------------------------------------------------------------------
def _compile(cxx: str, flags: tuple[str, ...], source: Path, obj: Path) -> None:
    done = subprocess.run(
        [cxx, *flags, "-I", str(HERE), "-c", str(source), "-o", str(obj)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise BuildError(f"compiling {source} failed:\n{done.stderr}")


def build(kernel_dir: Path, cache_dir: Path | None = None, defines: tuple[str, ...] = ()) -> Path:
    """Build (or reuse) the emulator for ``kernel_dir/*.cu``; returns the build folder, which
    holds ``libemu.so`` and ``kernels.json``. ``defines`` (e.g. ``("EMU_UCONTEXT",)``, the
    portable fiber switch the emulator uses off x86-64) are passed to the compiler as ``-D``."""
    kernel_dir = Path(kernel_dir).resolve()
    sources = sorted(kernel_dir.glob("*.cu"))
    if not sources:
        raise BuildError(f"no .cu files in {kernel_dir}")
    cxx = _compiler()
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    flags = (*CXX_FLAGS, *(f"-D{d}" for d in defines))
    out = cache_dir / build_key(sources, cxx, flags)
    if (out / "kernels.json").is_file():
        os.utime(out)  # recently used: kept by _prune
        return out
    cache_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{out.name}.", dir=cache_dir))
    try:
        manifest = {"format": FORMAT, "kernel_dir": str(kernel_dir), "modules": {}}
        units = [HERE / "emu_runtime.cpp"]
        for source in sources:
            cpp, entry = translate(source, cxx)
            (work / f"{source.stem}.cpp").write_text(cpp)
            manifest["modules"][source.stem] = entry
            units.append(work / f"{source.stem}.cpp")
        objects = [work / f"{unit.stem}.o" for unit in units]
        with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            for future in [
                pool.submit(_compile, cxx, flags, u, o) for u, o in zip(units, objects, strict=True)
            ]:
                future.result()
        link = [cxx, "-shared", "-pthread", *map(str, objects), "-o", str(work / "libemu.so")]
        done = subprocess.run(link, capture_output=True, text=True, check=False)
        if done.returncode:
            raise BuildError(f"linking the emulator failed:\n{done.stderr}")
        (work / "kernels.json").write_text(json.dumps(manifest, indent=1))
        try:
            work.rename(out)  # atomic: concurrent builders race, one wins
        except OSError:
            if not (out / "kernels.json").is_file():
                raise
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    _prune(cache_dir, keep=KEEP_BUILDS)
    return out


def _prune(cache_dir: Path, keep: int) -> None:
    """Remove all but the ``keep`` newest builds (a loaded library survives its removal)."""
    builds = [p for p in cache_dir.iterdir() if p.is_dir() and (p / "kernels.json").is_file()]
    builds.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    for old in builds[keep:]:
        shutil.rmtree(old, ignore_errors=True)


def main(argv: list[str]) -> int:
    repo = HERE.parent.parent
    kernel_dir = Path(argv[1]) if len(argv) > 1 else repo / "kernels"
    cache_dir = Path(argv[2]) if len(argv) > 2 else None
    print(build(kernel_dir, cache_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
