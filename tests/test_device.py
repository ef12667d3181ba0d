"""Device dispatch: auto / gpu / cpu, the environment default, and lazy GPU imports."""

from __future__ import annotations

import logging
import subprocess
import sys

import numpy as np
import pytest

import gpu_genomics
from gpu_genomics import device as device_module
from gpu_genomics.errors import DeviceError, InputError


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(device_module, "gpu_status", lambda: (False, "no driver in test"))
    device_module._log_fallback.cache_clear()
    yield
    device_module._log_fallback.cache_clear()


def test_cpu_is_always_cpu():
    assert gpu_genomics.resolve_device("cpu") == "cpu"
    assert gpu_genomics.resolve_device(" CPU ") == "cpu"


def test_unknown_device_is_an_input_error():
    with pytest.raises(InputError, match="'tpu' is not one of auto, gpu, cpu"):
        gpu_genomics.resolve_device("tpu")


def test_environment_variable_is_the_default(monkeypatch, no_gpu):
    monkeypatch.setenv("GPU_GENOMICS_DEVICE", "cpu")
    assert gpu_genomics.resolve_device(None) == "cpu"
    monkeypatch.setenv("GPU_GENOMICS_DEVICE", "gpu")
    with pytest.raises(DeviceError):
        gpu_genomics.resolve_device(None)
    monkeypatch.setenv("GPU_GENOMICS_DEVICE", "fast")
    with pytest.raises(InputError, match="GPU_GENOMICS_DEVICE"):
        gpu_genomics.resolve_device(None)
    # an explicit argument wins over the environment
    assert gpu_genomics.resolve_device("cpu") == "cpu"


def test_auto_falls_back_with_one_log_line(no_gpu, caplog):
    with caplog.at_level(logging.INFO, logger="gpu_genomics"):
        assert gpu_genomics.resolve_device("auto") == "cpu"
        assert gpu_genomics.resolve_device("auto") == "cpu"
        gpu_genomics.one_hot(["ACGT"], device="auto")
    lines = [r.getMessage() for r in caplog.records if "using the CPU" in r.getMessage()]
    assert lines == ["device='auto': using the CPU because no driver in test"]


def test_gpu_without_gpu_is_a_clear_error(no_gpu):
    with pytest.raises(DeviceError, match="no GPU is usable: no driver in test"):
        gpu_genomics.one_hot(["ACGT"], device="gpu")


def test_auto_picks_the_gpu_when_usable(monkeypatch):
    monkeypatch.setattr(device_module, "gpu_status", lambda: (True, "1 CUDA device(s)"))
    assert gpu_genomics.resolve_device("auto") == "gpu"
    assert gpu_genomics.resolve_device("gpu") == "gpu"


def test_gpu_status_reports_a_missing_cupy(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` raise ImportError
    usable, reason = device_module.gpu_status.__wrapped__()
    assert not usable
    assert reason.startswith("CuPy is not importable")


def test_to_numpy_passes_host_data_and_walks_containers():
    a = np.arange(3)
    assert gpu_genomics.to_numpy(a) is a
    out = gpu_genomics.to_numpy((a, [a], {"x": a}))
    assert isinstance(out, tuple) and out[1][0] is a and out[2]["x"] is a


def test_cpu_path_imports_no_gpu_library():
    code = (
        "import sys, gpu_genomics as g\n"
        "g.one_hot(['ACGT'], device='cpu'); g.kmer_counts(['ACGT'], 2, device='cpu')\n"
        "g.tokenize(['ACGT'], 4, device='cpu'); g.gc_content(['ACGT'], device='cpu')\n"
        "bad = [m for m in ('cupy', 'cudf', 'rapids_singlecell') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.gpu
def test_gpu_results_are_cupy_arrays():
    import cupy

    assert isinstance(gpu_genomics.one_hot(["ACGT"], device="gpu"), cupy.ndarray)
    assert isinstance(
        gpu_genomics.to_numpy(gpu_genomics.gc_content(["GC"], device="gpu")), np.ndarray
    )
