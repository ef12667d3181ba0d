"""kmer_counts / kmer_names against the specification's generate_kmers + Counter (naive.py)."""

from __future__ import annotations

import naive
import numpy as np
import pytest
import scipy.sparse
from hypothesis import given
from hypothesis import strategies as st

import gpu_genomics as gg
from gpu_genomics import InputError


def dense(matrix) -> np.ndarray:
    """A host count matrix (dense or CSR) as a dense array; asserts the int32 dtype."""
    assert matrix.dtype == np.int32
    return matrix.toarray() if scipy.sparse.issparse(matrix) else np.asarray(matrix)


@naive.SETTINGS
@given(
    seqs=naive.batches(naive.acgt_heavy()),
    k=st.integers(1, 6),
    canonical=st.booleans(),
)
def test_kmer_counts_dense_matches_naive(device, host, seqs, k, canonical):
    got = host(gg.kmer_counts(seqs, k, canonical=canonical, device=device))
    assert not scipy.sparse.issparse(got)
    assert isinstance(got, np.ndarray)
    np.testing.assert_array_equal(dense(got), naive.kmer_counts(seqs, k, canonical=canonical))


@naive.SETTINGS
@given(seqs=naive.batches(naive.dna()), k=st.integers(1, 4), canonical=st.booleans())
def test_kmer_counts_all_iupac_letters(device, host, seqs, k, canonical):
    got = host(gg.kmer_counts(seqs, k, canonical=canonical, device=device))
    np.testing.assert_array_equal(dense(got), naive.kmer_counts(seqs, k, canonical=canonical))


@naive.SETTINGS
@given(
    seqs=naive.batches(naive.acgt_heavy(), min_size=0), k=st.integers(1, 6), canonical=st.booleans()
)
def test_kmer_counts_sparse_equals_dense(device, host, seqs, k, canonical):
    sparse = host(gg.kmer_counts(seqs, k, canonical=canonical, sparse=True, device=device))
    dense_counts = host(gg.kmer_counts(seqs, k, canonical=canonical, sparse=False, device=device))
    assert scipy.sparse.issparse(sparse)
    assert sparse.format == "csr"
    assert sparse.shape == dense_counts.shape
    np.testing.assert_array_equal(dense(sparse), dense(dense_counts))


@naive.SETTINGS
@given(seqs=naive.batches(naive.acgt_heavy(max_size=60), min_size=0), canonical=st.booleans())
def test_kmer_counts_k7_default_sparse_matches_naive(device, host, seqs, canonical):
    result = gg.kmer_counts(seqs, 7, canonical=canonical, device=device)
    # documented: a sparse result is always a host SciPy CSR matrix, on every device
    assert isinstance(result, scipy.sparse.csr_matrix)
    got = host(result)
    want = naive.kmer_counts(seqs, 7, canonical=canonical)
    assert got.shape == want.shape
    np.testing.assert_array_equal(dense(got), want)


@naive.SETTINGS
@given(seqs=naive.batches(naive.acgt_heavy(max_size=60), max_size=3))
def test_kmer_counts_k7_forced_dense_matches_naive(device, host, seqs):
    got = host(gg.kmer_counts(seqs, 7, sparse=False, device=device))
    assert isinstance(got, np.ndarray)
    np.testing.assert_array_equal(dense(got), naive.kmer_counts(seqs, 7))


def test_kmer_counts_literal(device, host):
    # "ACGTN acgt": windows AC CG GT (TN skipped) + AC CG GT (lower case counts too)
    got = dense(host(gg.kmer_counts(["ACGTNacgt", "AAA", ""], 2, device=device)))
    names = gg.kmer_names(2)
    row0 = dict(zip(names, got[0].tolist(), strict=True))
    assert {n: c for n, c in row0.items() if c} == {"AC": 2, "CG": 2, "GT": 2}
    assert got[1].tolist() == [2] + [0] * 15  # AA twice
    assert got[2].tolist() == [0] * 16


def test_kmer_counts_canonical_literal(device, host):
    # k=2 canonical columns; "AATT": AA, AT, TT -> AA (with TT) twice, AT once
    names = gg.kmer_names(2, canonical=True)
    assert names == ["AA", "AC", "AG", "AT", "CA", "CC", "CG", "GA", "GC", "TA"]
    got = dense(host(gg.kmer_counts(["AATT", "GGCC"], 2, canonical=True, device=device)))
    assert dict(zip(names, got[0].tolist(), strict=True)) == {
        "AA": 2, "AC": 0, "AG": 0, "AT": 1, "CA": 0, "CC": 0, "CG": 0, "GA": 0, "GC": 0, "TA": 0,
    }  # fmt: skip
    # GG -> CC, GC, CC
    assert got[1].tolist() == [0, 0, 0, 0, 0, 2, 0, 0, 1, 0]


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("canonical", [False, True])
def test_kmer_names_match_naive(k, canonical):
    assert gg.kmer_names(k, canonical=canonical) == naive.kmer_names(k, canonical=canonical)


def test_kmer_names_sizes():
    assert len(gg.kmer_names(6)) == 4096
    assert len(gg.kmer_names(6, canonical=True)) == 2080
    assert len(gg.kmer_names(7, canonical=True)) == 8192
    assert gg.kmer_names(1) == ["A", "C", "G", "T"]
    assert gg.kmer_names(1, canonical=True) == ["A", "C"]


def test_kmer_counts_column_count(device, host):
    assert host(gg.kmer_counts(["ACGT"], 6, device=device)).shape == (1, 4096)
    assert host(gg.kmer_counts(["ACGT"], 6, canonical=True, device=device)).shape == (1, 2080)
    assert host(gg.kmer_counts(["ACGT"], 8, canonical=True, device=device)).shape == (1, 32896)
    assert host(gg.kmer_counts([], 3, device=device)).shape == (0, 64)


# --- bad input ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("k", "canonical"), [(0, False), (-1, False), (16, False), (13, True), (2.0, False)]
)
def test_kmer_counts_bad_k(device, k, canonical):
    with pytest.raises(InputError):
        gg.kmer_counts(["ACGT"], k, canonical=canonical, device=device)


@pytest.mark.parametrize("k", [0, -3])
def test_kmer_names_bad_k(k):
    with pytest.raises(InputError):
        gg.kmer_names(k)


@pytest.mark.parametrize(
    ("seqs", "record"), [(["ACGT", "HELLO"], 1), (["AC GT"], 0), (["A", "C", "Gé"], 2)]
)
def test_kmer_counts_reject_non_dna(device, seqs, record):
    with pytest.raises(InputError, match=rf"\b(record|sequence) {record}\b"):
        gg.kmer_counts(seqs, 3, device=device)


@pytest.mark.parametrize(("k", "canonical"), [(16, False), (13, True)])
def test_kmer_names_refuses_what_kmer_counts_refuses(k, canonical):
    with pytest.raises(InputError, match="k"):
        gg.kmer_names(k, canonical=canonical)
