"""Exceptions for user mistakes; the CLI prints them as one line and exits non-zero."""

from __future__ import annotations

import numpy as np


class GpuGenomicsError(Exception):
    """Base class of every error caused by input or configuration, not by a bug."""


class InputError(GpuGenomicsError, ValueError):
    """Bad input: a malformed file, a non-DNA letter, an invalid parameter value."""


class DeviceError(GpuGenomicsError, RuntimeError):
    """The requested device cannot be used (``device="gpu"`` without a usable GPU)."""


def positive_int(name: str, value: object) -> int:
    """Return ``value`` as an int, or raise :class:`InputError` unless it is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise InputError(f"{name}={value!r} must be a positive integer")
    return int(value)
