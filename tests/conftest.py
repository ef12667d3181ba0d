"""Shared fixtures: every operation test runs once per device; GPU runs skip without a GPU."""

from __future__ import annotations

import gpu_emulator
import pytest

from gpu_genomics.device import gpu_status, to_numpy


def pytest_configure(config):
    # Opt-in (GPU_GENOMICS_EMULATE_GPU=1, `make emulate`): run the `gpu` tests on the CPU against
    # the real kernels/*.cu through tests/gpu_emulator. Must precede any gpu_status() call.
    if gpu_emulator.requested():
        gpu_emulator.configure(config)


def pytest_collection_modifyitems(config, items):
    usable, reason = gpu_status()
    if usable:
        return
    skip = pytest.mark.skip(reason=f"no usable GPU: {reason}")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(params=["cpu", pytest.param("gpu", marks=pytest.mark.gpu)])
def device(request) -> str:
    """The device an operation test runs on: "cpu", then "gpu" (skipped without one)."""
    return request.param


@pytest.fixture
def host():
    """Bring a result (array, sparse matrix, tuple) to the host as NumPy."""
    return to_numpy
