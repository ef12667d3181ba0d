"""reverse_complement of sequences, codes and one-hot arrays against naive.py."""

from __future__ import annotations

import naive
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import gpu_genomics as gg
from gpu_genomics import InputError, SequenceBatch


def test_reverse_complement_literal_iupac(device):
    got = gg.reverse_complement("ACGTRYKMBDHVNSWacgtnrykmbdhvsw", device=device)
    assert got == "wsbdhvkmrynacgtWSNBDHVKMRYACGT"


def test_reverse_complement_literal_forms(device):
    assert gg.reverse_complement("AACG", device=device) == "CGTT"
    assert gg.reverse_complement(b"AACGn", device=device) == b"nCGTT"
    assert gg.reverse_complement(["AAC", "", "gR"], device=device) == ["GTT", "", "Yc"]
    assert gg.reverse_complement([b"AAC", b"T"], device=device) == [b"GTT", b"A"]


@naive.SETTINGS
@given(seqs=naive.batches(min_size=0))
def test_reverse_complement_list_of_str(device, seqs):
    got = gg.reverse_complement(seqs, device=device)
    assert got == [naive.reverse_complement(s) for s in seqs]


@naive.SETTINGS
@given(seqs=naive.batches())
def test_reverse_complement_list_of_bytes(device, seqs):
    got = gg.reverse_complement([s.encode() for s in seqs], device=device)
    assert got == [naive.reverse_complement(s).encode() for s in seqs]


@naive.SETTINGS
@given(seq=naive.dna())
def test_reverse_complement_single_str_and_bytes(device, seq):
    assert gg.reverse_complement(seq, device=device) == naive.reverse_complement(seq)
    got = gg.reverse_complement(seq.encode(), kind="sequences", device=device)
    assert got == naive.reverse_complement(seq).encode()


@naive.SETTINGS
@given(seqs=naive.equal_length_batches(), dtype=st.sampled_from(["uint8", "S1"]))
def test_reverse_complement_array_keeps_shape_and_dtype(device, seqs, dtype):
    array = np.array([list(s.encode()) for s in seqs], dtype=np.uint8).reshape(len(seqs), -1)
    array = array.view(dtype)
    got = gg.reverse_complement(array, device=device)
    assert isinstance(got, np.ndarray)
    assert got.dtype == np.dtype(dtype)
    assert got.shape == array.shape
    want = [naive.reverse_complement(s) for s in seqs]
    assert [bytes(row.view(np.uint8)).decode() for row in got] == want
    # the input is left untouched
    assert [bytes(row.view(np.uint8)).decode() for row in array] == seqs


@naive.SETTINGS
@given(seqs=naive.batches())
def test_reverse_complement_sequence_batch(device, seqs):
    got = gg.reverse_complement(SequenceBatch.from_strings(seqs), device=device)
    assert isinstance(got, SequenceBatch)
    assert got.to_strings() == [naive.reverse_complement(s) for s in seqs]


# --- codes ------------------------------------------------------------------------------------
@naive.SETTINGS
@given(
    shape=st.sampled_from([(7,), (3, 5), (2, 3, 4), (1, 0)]),
    dtype=st.sampled_from(["int8", "int32", "int64", "uint8"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_reverse_complement_codes(device, host, shape, dtype, seed):
    codes = np.random.default_rng(seed).integers(0, 6, size=shape).astype(dtype)
    got = host(gg.reverse_complement(codes, kind="codes", device=device))
    assert got.dtype == codes.dtype
    np.testing.assert_array_equal(got, naive.reverse_complement_codes(codes))


def test_reverse_complement_codes_literal_and_auto_kind(device, host):
    # spec codes A0 C1 G2 T3 N4 <PAD>5: "AACGN" + pad -> reversed and complemented
    codes = np.array([[0, 0, 1, 2, 4, 5]], dtype=np.int32)
    want = np.array([[5, 4, 1, 2, 3, 3]], dtype=np.int32)
    np.testing.assert_array_equal(host(gg.reverse_complement(codes, device=device)), want)
    np.testing.assert_array_equal(
        host(gg.reverse_complement(codes, kind="codes", device=device)), want
    )


# --- one-hot ----------------------------------------------------------------------------------
@naive.SETTINGS
@given(
    seqs=naive.equal_length_batches(),
    alphabet=st.sampled_from(["ACGT", "ACTG"]),
    layout=st.sampled_from(["NLC", "NCL"]),
    dtype_n=st.sampled_from([("uint8", 0.0), ("float32", 0.25), ("float16", 0.25)]),
    kind=st.sampled_from(["auto", "onehot"]),
)
def test_reverse_complement_one_hot_equals_one_hot_of_reverse_complement(  # noqa: PLR0917 (fixtures and hypothesis strategies)
    device, host, seqs, alphabet, layout, dtype_n, kind
):
    dtype, n_value = dtype_n
    options = {"alphabet": alphabet, "dtype": dtype, "n_value": n_value, "layout": layout}
    encoded = gg.one_hot(seqs, **options, device=device)
    got = host(
        gg.reverse_complement(encoded, kind=kind, alphabet=alphabet, layout=layout, device=device)
    )
    want = naive.one_hot([naive.reverse_complement(s) for s in seqs], **options)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def test_reverse_complement_one_hot_literal_actg(device, host):
    # ACTG columns: "AAG" -> reverse complement "CTT"
    encoded = np.array([[[1, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]]], dtype=np.uint8)
    got = host(gg.reverse_complement(encoded, alphabet="ACTG", device=device))
    want = np.array([[[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 0]]], dtype=np.uint8)
    np.testing.assert_array_equal(got, want)


def test_reverse_complement_arrays_come_back_on_the_device(device):
    # the docstring: NumPy arrays are computed on `device` and returned there, like every
    # operation's result; GPU arrays stay on the GPU
    from gpu_genomics.device import is_gpu_array

    codes = np.array([[0, 1, 4]], dtype=np.int8)
    got = gg.reverse_complement(codes, kind="codes", device=device)
    assert is_gpu_array(got) == (device == "gpu")
    np.testing.assert_array_equal(gg.to_numpy(got), [[4, 2, 3]])
    encoded = naive.one_hot(["ACN"])
    got = gg.reverse_complement(encoded, device=device)
    assert is_gpu_array(got) == (device == "gpu")
    np.testing.assert_array_equal(gg.to_numpy(got), naive.one_hot(["NGT"]))


# --- bad input --------------------------------------------------------------------------------
def test_reverse_complement_bad_kind_raises(device):
    with pytest.raises(InputError):
        gg.reverse_complement(["ACGT"], kind="protein", device=device)


def test_reverse_complement_bad_layout_raises(device):
    encoded = np.zeros((1, 3, 4), dtype=np.uint8)
    with pytest.raises(InputError):
        gg.reverse_complement(encoded, layout="LNC", device=device)


def test_reverse_complement_bad_alphabet_raises(device):
    encoded = np.zeros((1, 3, 4), dtype=np.uint8)
    with pytest.raises(InputError):
        gg.reverse_complement(encoded, alphabet="ACGU", device=device)


def test_reverse_complement_one_hot_must_be_3d(device):
    with pytest.raises(InputError):
        gg.reverse_complement(np.zeros((3, 4), dtype=np.uint8), kind="onehot", device=device)


@pytest.mark.parametrize(
    ("seqs", "record"),
    [(["ACGT", "HELLO"], 1), (["AC GT"], 0), (["ACGT", "AC", "ACGTé"], 2)],
)
def test_reverse_complement_non_dna_raises(device, seqs, record):
    with pytest.raises(InputError, match=rf"\b(record|sequence) {record}\b"):
        gg.reverse_complement(seqs, device=device)
