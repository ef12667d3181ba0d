"""Exceptions for user mistakes, and the checks of parameter values that raise them.

Library messages name Python parameters as ``name=value`` (``min_maf=0.7 must lie between 0
and 0.5``), or as ```name``` when there is no value to show; the command line rewrites each of
its options so named into the option's flag (``--min-maf 0.7 ...``, see
:func:`gpu_genomics.cli.common.cli_message`), so a value is checked once, in the library,
whoever calls it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import numpy as np

Options = TypeVar("Options")


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


def check_seed(seed: object, *, name: str = "seed") -> int:
    """Return ``seed`` as an int (``name``: the parameter, as the error names it).

    Raises:
        InputError: ``seed`` is not a non-negative integer.
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise invalid(name, seed, "must be a non-negative integer")
    return int(seed)


def check_choice(parameter: str, value: str, choices: Iterable[str]) -> str:
    """Return ``value``.

    Raises:
        InputError: ``value`` is not one of ``choices``.
    """
    options = tuple(choices)
    if value not in options:
        raise invalid(parameter, value, f"is not one of {', '.join(options)}")
    return value


def finite_float(parameter: str, value: object) -> float:
    """Return ``value`` as a float.

    Raises:
        InputError: ``value`` is not a finite number.
    """
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise invalid(parameter, value, "must be a number") from None
    if not math.isfinite(number):
        raise invalid(parameter, value, "must be a finite number")
    return number


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


def with_options(
    options: Options | None, kind: type[Options], parameters: Mapping[str, Any], *, caller: str
) -> Options:
    """``options`` (default: ``kind()``) with the fields in ``parameters`` replaced.

    Raises:
        TypeError: a key of ``parameters`` is not a field of ``kind``, named as Python names an
            unknown keyword of ``caller``.
    """
    fields = {field.name for field in dataclasses.fields(kind)}  # type: ignore[arg-type]
    unknown = [name for name in parameters if name not in fields]
    if unknown:
        raise TypeError(f"{caller}() got an unexpected keyword argument {unknown[0]!r}")
    return dataclasses.replace(options or kind(), **parameters)  # type: ignore[type-var]
