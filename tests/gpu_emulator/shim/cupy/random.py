"""``cupy.random`` for the emulator: CuPy's legacy ``RandomState`` API over NumPy's generator.

Only what ``gpu_genomics`` draws with: ``RandomState(seed)`` with ``binomial``,
``hypergeometric``, ``random_sample``/``rand``, ``randint``, ``uniform`` and ``standard_normal``
(array parameters broadcast as in CuPy), module-level ``seed``/``get_random_state``. Draws come
back as device arrays. The stream is NumPy's ``default_rng(seed)``, not CuPy's (cuRAND) stream:
code must not expect the GPU's draws to equal the CPU's.
"""

from __future__ import annotations

from typing import Any

import numpy as _np

from ._array import ndarray, unwrap

__all__ = ["RandomState", "get_random_state", "seed"]


def _host(value: Any) -> Any:
    return unwrap(value) if isinstance(value, ndarray | tuple | list) else value


def _device(value: Any, dtype: Any) -> ndarray:
    return ndarray._from_host(_np.asarray(value, dtype=dtype))


class RandomState:
    """A seeded generator whose draws are emulated device arrays."""

    def __init__(self, seed: int | None = None):
        self._rng = _np.random.default_rng(seed)

    def seed(self, seed: int | None = None) -> None:
        self._rng = _np.random.default_rng(seed)

    def binomial(self, n: Any, p: Any, size: Any = None, dtype: Any = int) -> ndarray:
        return _device(self._rng.binomial(_host(n), _host(p), size=size), dtype)

    def hypergeometric(
        self, ngood: Any, nbad: Any, nsample: Any, size: Any = None, dtype: Any = int
    ) -> ndarray:
        draws = self._rng.hypergeometric(_host(ngood), _host(nbad), _host(nsample), size=size)
        return _device(draws, dtype)

    def random_sample(self, size: Any = None, dtype: Any = float) -> ndarray:
        return _device(self._rng.random(size=size), dtype)

    def rand(self, *size: int, dtype: Any = float) -> ndarray:
        return self.random_sample(size=size or None, dtype=dtype)

    def randint(self, low: int, high: int | None = None, size: Any = None, dtype: Any = int):
        return _device(self._rng.integers(low, high, size=size), dtype)

    def uniform(self, low: Any = 0.0, high: Any = 1.0, size: Any = None, dtype: Any = float):
        return _device(self._rng.uniform(_host(low), _host(high), size=size), dtype)

    def standard_normal(self, size: Any = None, dtype: Any = float) -> ndarray:
        return _device(self._rng.standard_normal(size=size), dtype)


_state = RandomState()


def seed(seed: int | None = None) -> None:
    _state.seed(seed)


def get_random_state() -> RandomState:
    return _state
