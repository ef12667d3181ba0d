"""Stand-in for ``cupyx.scipy.sparse``: the class names libraries import for ``isinstance``
checks; constructing one raises, because GPU sparse matrices are not emulated."""

from __future__ import annotations

from typing import Any


class spmatrix:
    format = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError(f"cupyx.scipy.sparse.{type(self).__name__} is not emulated")


class csr_matrix(spmatrix):
    format = "csr"


class csc_matrix(spmatrix):
    format = "csc"


class coo_matrix(spmatrix):
    format = "coo"


def issparse(x: Any) -> bool:
    return isinstance(x, spmatrix)


isspmatrix = issparse


def isspmatrix_csr(x: Any) -> bool:
    return isinstance(x, csr_matrix)


def isspmatrix_csc(x: Any) -> bool:
    return isinstance(x, csc_matrix)
