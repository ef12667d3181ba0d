"""The GPU emulator itself: correct kernels give correct results, and every kind of bug it
claims to catch (selftest/checks.cu, selftest/run_checks.py) is reported, not missed.

Runs in the ordinary test run (not ``gpu``-marked; needs g++, skipped without it), in a
subprocess so that the fake ``cupy`` never enters this process. Both fiber implementations are
checked on x86-64: the assembly context switch and the ucontext one used elsewhere.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys

import pytest

from . import HERE, LIB_ENV
from .build import build

SELFTEST = HERE / "selftest"
VARIANTS = ["native"] + (["ucontext"] if platform.machine() in ("x86_64", "AMD64") else [])

pytestmark = pytest.mark.skipif(
    shutil.which(os.environ.get("CXX") or "g++") is None, reason="the GPU emulator needs g++"
)


@pytest.fixture(scope="module", params=VARIANTS)
def outcomes(request) -> dict:
    defines = ("EMU_UCONTEXT",) if request.param == "ucontext" else ()
    build_dir = build(SELFTEST, defines=defines)
    env = {**os.environ, LIB_ENV: str(build_dir)}
    done = subprocess.run(
        [sys.executable, str(SELFTEST / "run_checks.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def value(outcomes: dict, name: str):
    outcome = outcomes[name]
    assert outcome["ok"], outcome.get("traceback") or outcome["error"]
    return outcome["value"]


def error(outcomes: dict, name: str) -> str:
    outcome = outcomes[name]
    assert not outcome["ok"], f"{name} was not reported: {outcome}"
    assert "traceback" not in outcome, outcome["traceback"]
    return outcome["error"]


@pytest.mark.parametrize("name", ["copy", "warp_ops", "histogram", "block_sum"])
def test_correct_kernels_give_correct_results(outcomes, name):
    assert value(outcomes, name) is True


def test_a_fault_leaves_the_emulator_usable(outcomes):
    assert value(outcomes, "still_works_after_faults") is True


KERNEL_BUGS = {
    "read_past_end": r"memory fault .*: read at byte 200 of argument 0 .*: past its end",
    "write_before_start": r"write at byte -4 of argument 0 \('int\*.*: before its start",
    "write_to_const": r"write inside argument 0 .* which is const",
    "missing_syncthreads": r"argument 1 .* differs between a run in forward and one in reverse",
    "blocks_race": r"argument 0 .* differs between a run in forward and one in reverse",
    "uninitialised_shared": r"differs between a run in forward and one in reverse",
    "divergent_barrier": r"barrier that can never complete.*__syncthreads: 0-15;",
    "dynamic_shared_overrun": r"dynamic shared memory accessed at byte 128 of 128",
    "divide_by_zero": r"arithmetic fault .* thread \(0, 0, 0\).*integer division by zero",
    "failed_assert": r"trap .*thread \(0, 0, 0\).*assert\(in\[threadIdx.x\] >= 0\) failed",
    "stack_overflow": r"stack overflow",
}


@pytest.mark.parametrize("name", sorted(KERNEL_BUGS))
def test_kernel_bugs_are_reported(outcomes, name):
    message = error(outcomes, name)
    assert message.startswith("EmulatorError: checks."), message
    assert re.search(KERNEL_BUGS[name], message), message


LAUNCH_BUGS = {
    "wrong_dtype": r"argument 0 .* has dtype int64; the parameter points to int32",
    "python_int_for_int": r"argument 1 .* Python int, which CuPy passes as a 64-bit integer",
    "int64_for_int": r"argument 1 .* passed as numpy.int64 \(8 bytes\) but the parameter is int32",
    "host_array_for_pointer": r"argument 0 .* is a numpy.ndarray; a pointer parameter takes",
    "non_contiguous": r"argument 0 .* is not C-contiguous",
    "argument_count": r"2 arguments for 3 parameters",
    "block_too_large": r"block \(2048, 1, 1\) exceeds the limits",
    "aliasing": r"argument 0 .* and argument 2 .* overlap in memory",
    "too_much_shared": r"65536 bytes of dynamic shared memory exceed the 49152-byte limit",
    "unknown_source": r"RuntimeError: the GPU emulator has no build of this CUDA source",
    "unknown_kernel": r"CUDADriverError: CUDA_ERROR_NOT_FOUND",
    "implicit_device_to_host": r"TypeError: Implicit conversion to a NumPy array is not allowed",
    "host_device_operands": r"TypeError: Unsupported type <class 'numpy.ndarray'>",
    "host_operand_first": r"TypeError: Unsupported type <class 'numpy.ndarray'>",
    "host_array_into_basic_slice": r"ValueError: non-scalar numpy.ndarray cannot be used for fill",
}


@pytest.mark.parametrize("name", sorted(LAUNCH_BUGS))
def test_launch_and_host_device_mistakes_are_reported(outcomes, name):
    message = error(outcomes, name)
    assert re.search(LAUNCH_BUGS[name], message), message


def test_device_operations_return_device_arrays(outcomes):
    assert value(outcomes, "device_results") == ["cupy.ndarray"]
