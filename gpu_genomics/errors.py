"""Exceptions for user mistakes, and the checks of parameter values that raise them.

Library messages name Python parameters as ``name=value`` (``min_maf=0.7 must lie between 0
and 0.5``); the command line rewrites each ``name=value`` of one of its options into the option's
flag (``--min-maf 0.7 ...``, see :func:`gpu_genomics.cli.common.cli_message`), so a value is
checked once, in the library, whoever calls it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np


class GpuGenomicsError(Exception):
    """Base class of every error caused by input or configuration, not by a bug."""


class InputError(GpuGenomicsError, ValueError):
    """Bad input: a malformed file, a non-DNA letter, an invalid parameter value."""


class DeviceError(GpuGenomicsError, RuntimeError):
    """The requested device cannot be used (``device="gpu"`` without a usable GPU)."""


def invalid(parameter: str, value: object, problem: str) -> InputError:
    """The error ``"<parameter>=<value!r> <problem>"`` (raise it)."""
    return InputError(f"{parameter}={value!r} {problem}")


def positive_int(parameter: str, value: object) -> int:
    """Return ``value`` as an int.

    Raises:
        InputError: ``value`` is not an integer >= 1.
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise invalid(parameter, value, "must be a positive integer")
    return int(value)


def check_choice(parameter: str, value: str, choices: Iterable[str]) -> str:
    """Return ``value``.

    Raises:
        InputError: ``value`` is not one of ``choices``.
    """
    options = tuple(choices)
    if value not in options:
        raise invalid(parameter, value, f"is not one of {', '.join(options)}")
    return value


def check_range(parameter: str, value: object, low: float, high: float) -> float:
    """Return ``value`` as a float.

    Raises:
        InputError: ``value`` is not a number in ``[low, high]``.
    """
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise invalid(parameter, value, "must be a number") from None
    if isinstance(value, bool) or math.isnan(number) or not low <= number <= high:
        raise invalid(parameter, value, f"must lie between {low:g} and {high:g}")
    return number
