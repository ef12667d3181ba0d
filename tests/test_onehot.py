"""one_hot against the per-base reference in naive.py."""

from __future__ import annotations

import naive
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import gpu_genomics as gg
from gpu_genomics import InputError

ALPHABETS = ["ACGT", "ACTG", "TGCA", "GATC"]
DTYPES = ["uint8", "int8", "float16", "float32"]


@st.composite
def one_hot_options(draw):
    dtype = draw(st.sampled_from(DTYPES))
    n_value = draw(st.sampled_from([0.0, 0.25])) if dtype.startswith("float") else 0.0
    return {
        "length": draw(st.one_of(st.none(), st.integers(1, 40))),
        "alphabet": draw(st.sampled_from(ALPHABETS)),
        "dtype": dtype,
        "n_value": n_value,
        "layout": draw(st.sampled_from(["NLC", "NCL"])),
        "pad": draw(st.sampled_from(["right", "center"])),
    }


@naive.SETTINGS
@given(seqs=naive.batches(), options=one_hot_options())
def test_one_hot_matches_naive(device, host, seqs, options):
    got = host(gg.one_hot(seqs, **options, device=device))
    want = naive.one_hot(seqs, **options)
    assert got.dtype == np.dtype(options["dtype"])
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


@naive.SETTINGS
@given(seqs=naive.batches(), length=st.integers(1, 30), pad=st.sampled_from(["right", "center"]))
def test_one_hot_bytes_input_matches_naive(device, host, seqs, length, pad):
    got = host(gg.one_hot([s.encode() for s in seqs], length, pad=pad, device=device))
    np.testing.assert_array_equal(got, naive.one_hot(seqs, length, pad=pad))


def test_one_hot_literal_acgt_order(device, host):
    got = host(gg.one_hot(["ACGTN", "acgtr"], device=device))
    want = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]]
    np.testing.assert_array_equal(got, np.array([want, want], dtype=np.uint8))


def test_one_hot_literal_actg_order_like_genomic_interval_pipeline(device, host):
    got = host(gg.one_hot(["ACGTN"], alphabet="ACTG", device=device))
    want = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0], [0, 0, 0, 0]]
    np.testing.assert_array_equal(got[0], np.array(want, dtype=np.uint8))


def test_one_hot_literal_basset_layout(device, host):
    # Basset: float16, channel-major A,C,G,T, 0.25 in all channels for N/IUPAC, padding 0
    got = host(gg.one_hot(["AN"], 3, dtype="float16", n_value=0.25, layout="NCL", device=device))
    assert got.shape == (1, 4, 3)
    assert got.dtype == np.float16
    want = [[1, 0.25, 0], [0, 0.25, 0], [0, 0.25, 0], [0, 0.25, 0]]
    np.testing.assert_array_equal(got[0], np.array(want, dtype=np.float16))


def test_one_hot_literal_center_pad_and_crop(device, host):
    # "ACG" in 6 slots: one pad slot left, two right (the odd slot goes right)
    padded = host(gg.one_hot(["ACG"], 6, pad="center", device=device))[0]
    np.testing.assert_array_equal(padded.argmax(axis=1)[1:4], [0, 1, 2])
    np.testing.assert_array_equal(padded.sum(axis=1), [0, 1, 1, 1, 0, 0])
    # "ACGTA" in 2 slots: one base cut on the left, two on the right -> "CG"
    cropped = host(gg.one_hot(["ACGTA"], 2, pad="center", device=device))[0]
    np.testing.assert_array_equal(cropped, [[0, 1, 0, 0], [0, 0, 1, 0]])


def test_one_hot_right_pad_and_truncate(device, host):
    got = host(gg.one_hot(["ACGTAC", "G"], 3, device=device))
    np.testing.assert_array_equal(got[0].argmax(axis=1), [0, 1, 2])
    np.testing.assert_array_equal(got[1].sum(axis=1), [1, 0, 0])


def test_one_hot_dtype_as_numpy_type(device, host):
    got = host(gg.one_hot(["ACN"], dtype=np.float32, n_value=0.25, device=device))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, naive.one_hot(["ACN"], dtype="float32", n_value=0.25))


def test_one_hot_empty_sequences_and_empty_batch(device, host):
    got = host(gg.one_hot(["", "AC", ""], device=device))
    np.testing.assert_array_equal(got, naive.one_hot(["", "AC", ""]))
    assert host(gg.one_hot([""], device=device)).shape == (1, 0, 4)
    assert host(gg.one_hot([], 5, device=device)).shape == (0, 5, 4)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"length": 0},
        {"length": -3},
        {"length": 2.5},
        {"pad": "left"},
        {"pad": "middle"},
        {"layout": "LNC"},
        {"layout": "nlc"},
        {"dtype": "float64"},
        {"dtype": "bool"},
        {"dtype": "not-a-dtype"},
        {"dtype": "uint8", "n_value": 0.25},
        {"alphabet": "ACGU"},
        {"alphabet": "ACG"},
    ],
    ids=repr,
)
def test_one_hot_bad_parameters_raise_input_error(device, kwargs):
    with pytest.raises(InputError):
        gg.one_hot(["ACGT"], **kwargs, device=device)


@pytest.mark.parametrize(
    ("seqs", "record"),
    [
        (["ACGT", "AC", "HELLO"], 2),
        (["ACGT", "AC GT"], 1),
        (["ACGT", "ACGTé"], 1),
        ([b"ACGT", b"AC\xffGT"], 1),
        (["AC-GT"], 0),
    ],
)
def test_one_hot_non_dna_raises_input_error_naming_record(device, seqs, record):
    with pytest.raises(InputError, match=rf"\b(record|sequence) {record}\b"):
        gg.one_hot(seqs, device=device)
