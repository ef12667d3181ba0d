"""Byte-level lookup tables shared by the CPU twins and the CUDA kernels.

Every table is a NumPy array indexed by an ASCII byte (shape ``(256,)`` unless stated), built
once here and handed unchanged to both backends, so that both map bytes identically.
"""

from __future__ import annotations

import functools

import numpy as np

from ..errors import InputError

#: IUPAC nucleotide letters accepted in input sequences (either case).
IUPAC_DNA = "ACGTNRYSWKMBDHV"

#: IUPAC complements (upper case; lower case maps to lower case).
_COMPLEMENT_PAIRS = {
    "A": "T",
    "C": "G",
    "G": "C",
    "T": "A",
    "N": "N",
    "R": "Y",
    "Y": "R",
    "S": "S",
    "W": "W",
    "K": "M",
    "M": "K",
    "B": "V",
    "V": "B",
    "D": "H",
    "H": "D",
}

#: Byte used for padding inside the kernels; no valid input byte equals it.
PAD_BYTE = 0

#: Value of a base that is not A/C/G/T in :func:`base_digits`.
INVALID_DIGIT = 4


@functools.cache
def valid_bytes() -> np.ndarray:
    """``(256,) bool``: True for IUPAC DNA letters, upper or lower case."""
    table = np.zeros(256, dtype=bool)
    for letter in IUPAC_DNA:
        table[ord(letter)] = True
        table[ord(letter.lower())] = True
    return table


@functools.cache
def complement_bytes() -> np.ndarray:
    """``(256,) uint8``: the IUPAC complement of each letter, case kept; other bytes unchanged."""
    table = np.arange(256, dtype=np.uint8)
    for letter, comp in _COMPLEMENT_PAIRS.items():
        table[ord(letter)] = ord(comp)
        table[ord(letter.lower())] = ord(comp.lower())
    return table


def check_order(order: str) -> str:
    """Validate a base order such as ``"ACGT"`` (a permutation of A, C, G, T); return it upper."""
    upper = str(order).upper()
    if sorted(upper) != ["A", "C", "G", "T"]:
        raise InputError(f"alphabet {order!r} must be a permutation of 'ACGT' (e.g. ACGT or ACTG)")
    return upper


@functools.cache
def base_digits(order: str = "ACGT") -> np.ndarray:
    """``(256,) uint8``: position of each base in ``order`` (either case); 4 for anything else."""
    order = check_order(order)
    table = np.full(256, INVALID_DIGIT, dtype=np.uint8)
    for digit, letter in enumerate(order):
        table[ord(letter)] = digit
        table[ord(letter.lower())] = digit
    return table


def complement_permutation(order: str = "ACGT") -> np.ndarray:
    """``(4,) int64``: channel ``i`` of a one-hot base's complement is channel ``perm[i]``."""
    order = check_order(order)
    comp = {"A": "T", "C": "G", "G": "C", "T": "A"}
    return np.array([order.index(comp[letter]) for letter in order], dtype=np.int64)
