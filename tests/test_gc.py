"""gc_content / gc_counts against naive.py."""

from __future__ import annotations

import naive
import numpy as np
import pytest
from hypothesis import given

import gpu_genomics as gg
from gpu_genomics import InputError


@naive.SETTINGS
@given(seqs=naive.batches(min_size=0))
def test_gc_content_matches_naive(device, host, seqs):
    got = host(gg.gc_content(seqs, device=device))
    assert got.dtype == np.float64
    assert got.shape == (len(seqs),)
    np.testing.assert_array_equal(got, naive.gc_content(seqs))  # NaN equals NaN here


@naive.SETTINGS
@given(seqs=naive.batches(min_size=0))
def test_gc_counts_matches_naive(device, host, seqs):
    got = host(gg.gc_counts(seqs, device=device))
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, naive.gc_counts(seqs))


def test_gc_content_literal(device, host):
    got = host(gg.gc_content(["GGCC", "ACGT", "atgc", "AAAN", "NNRYS", "", "GCSN"], device=device))
    np.testing.assert_array_equal(got[:4], [1.0, 0.5, 0.5, 0.0])
    # no A/C/G/T at all (S counts as neither): NaN
    assert np.isnan(got[4]) and np.isnan(got[5])
    assert got[6] == 1.0


def test_gc_counts_literal(device, host):
    got = host(gg.gc_counts(["GGCCAT", "ngcS", ""], device=device))
    np.testing.assert_array_equal(got, [[4, 6], [2, 2], [0, 0]])


def test_gc_content_rejects_non_dna(device):
    with pytest.raises(InputError, match=r"\b(record|sequence) 1\b"):
        gg.gc_content(["ACGT", "HELLO"], device=device)
