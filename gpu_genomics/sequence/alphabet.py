"""Byte-level lookup tables shared by the CPU twins and the CUDA kernels.

Every table is a NumPy array indexed by an ASCII byte (shape ``(256,)`` unless stated), built
once here and handed unchanged to both backends, so that both map bytes identically.
"""

from __future__ import annotations

import functools

import numpy as np

from ..errors import invalid

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

#: Value of a base that is not A/C/G/T in :func:`base_digits`.
INVALID_DIGIT = 4


@functools.cache
def valid_bytes() -> np.ndarray:
    """Return a ``(256,) bool`` table: True for IUPAC DNA letters, upper or lower case."""
    table = np.zeros(256, dtype=bool)
    for letter in IUPAC_DNA:
        table[ord(letter)] = True
        table[ord(letter.lower())] = True
    table.setflags(write=False)
    return table


@functools.cache
def complement_bytes() -> np.ndarray:
    """Return a ``(256,) uint8`` table: each letter's IUPAC complement, case kept.

    Bytes that are not IUPAC letters map to themselves.
    """
    table = np.arange(256, dtype=np.uint8)
    for letter, comp in _COMPLEMENT_PAIRS.items():
        table[ord(letter)] = ord(comp)
        table[ord(letter.lower())] = ord(comp.lower())
    table.setflags(write=False)
    return table


def check_order(order: str) -> str:
    """Return a base order such as ``"ACGT"`` in upper case.

    Args:
        order: the ``alphabet`` parameter of an operation.

    Raises:
        InputError: ``order`` is not a permutation of A, C, G, T.
    """
    upper = str(order).upper()
    if sorted(upper) != ["A", "C", "G", "T"]:
        raise invalid("alphabet", order, "must be a permutation of 'ACGT' (e.g. ACGT or ACTG)")
    return upper


@functools.cache
def base_digits(order: str = "ACGT", *, lower: bool = True) -> np.ndarray:
    """Return a ``(256,) uint8`` table: each base's position in ``order``.

    Args:
        order: a permutation of ``"ACGT"``, either case.
        lower: lower-case letters are bases too (else only A, C, G, T are).

    Returns:
        The table; :data:`INVALID_DIGIT` (4) for every byte but A, C, G, T (and a, c, g, t with
        ``lower``).
    """
    order = check_order(order)
    table = np.full(256, INVALID_DIGIT, dtype=np.uint8)
    for digit, letter in enumerate(order):
        table[ord(letter)] = digit
        if lower:
            table[ord(letter.lower())] = digit
    table.setflags(write=False)
    return table


def complement_permutation(order: str = "ACGT") -> np.ndarray:
    """Return ``(4,) int64`` ``perm``: channel ``i`` of a complement is channel ``perm[i]``.

    Args:
        order: the one-hot column order, a permutation of ``"ACGT"``.
    """
    order = check_order(order)
    return np.array([order.index(_COMPLEMENT_PAIRS[letter]) for letter in order], dtype=np.int64)


#: Values of :func:`gc_classes`: a base adds to the A+C+G+T count from class ``ACGT_CLASS`` up,
#: and to the G+C count from class ``GC_CLASS`` up.
OTHER_CLASS, ACGT_CLASS, GC_CLASS = 0, 1, 2


@functools.cache
def gc_classes() -> np.ndarray:
    """Return the ``(256,) uint8`` base classes of GC content, either case.

    ``GC_CLASS`` (2) for G and C, ``ACGT_CLASS`` (1) for A and T, ``OTHER_CLASS`` (0) for
    every other byte (N and the other IUPAC letters included). The CUDA kernel ``gc_counts``
    and its twin count ``class >= 1`` as A/C/G/T and ``class >= 2`` as G/C.
    """
    table = np.full(256, OTHER_CLASS, dtype=np.uint8)
    for letters, value in (("AT", ACGT_CLASS), ("GC", GC_CLASS)):
        for letter in letters:
            table[ord(letter)] = table[ord(letter.lower())] = value
    table.setflags(write=False)
    return table
