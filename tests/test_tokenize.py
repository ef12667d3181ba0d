"""tokenize / kmer_tokenize / kmer_token_counts / kmer_vocabulary against naive.py."""

from __future__ import annotations

import naive
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import gpu_genomics as gg
from gpu_genomics import InputError


def check_tokens(got, want):
    """Compare an ``(ids, mask)`` pair with the reference, including dtypes."""
    ids, mask = got
    want_ids, want_mask = want
    assert ids.dtype == np.int32
    assert mask.dtype == np.uint8
    assert ids.shape == want_ids.shape
    assert mask.shape == want_mask.shape
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_array_equal(mask, want_mask)


# --- per-base schemes ---------------------------------------------------------------------
@naive.SETTINGS
@given(seqs=naive.batches(), max_len=st.integers(1, 40))
def test_tokenize_spec_matches_specification(device, host, seqs, max_len):
    got = host(gg.tokenize(seqs, max_len, scheme="spec", device=device))
    check_tokens(got, naive.tokenize_spec(seqs, max_len))


@naive.SETTINGS
@given(seqs=naive.batches(), max_len=st.integers(1, 40), uppercase=st.booleans())
def test_tokenize_hyenadna_matches_naive(device, host, seqs, max_len, uppercase):
    got = host(gg.tokenize(seqs, max_len, scheme="hyenadna", uppercase=uppercase, device=device))
    check_tokens(got, naive.tokenize_hyenadna(seqs, max_len, uppercase=uppercase))


def test_tokenize_spec_literal(device, host):
    ids, mask = host(gg.tokenize(["ACGTNR", "acgtn", "ACGTACGTAC"], 8, device=device))
    np.testing.assert_array_equal(
        ids, [[0, 1, 2, 3, 4, 4, 5, 5], [0, 1, 2, 3, 4, 5, 5, 5], [0, 1, 2, 3, 0, 1, 2, 3]]
    )
    np.testing.assert_array_equal(
        mask, [[1, 1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 0, 0, 0], [1] * 8]
    )


@naive.SETTINGS
@given(
    seqs=st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=6),
    max_len=st.integers(1, 40),
)
def test_tokenize_spec_equals_the_specification_for_every_string(device, host, seqs, max_len):
    ids, _ = host(gg.tokenize(seqs, max_len, scheme="spec", device=device))
    want = np.stack([naive.tokenize_sequence(seq, naive.SPEC_VOCAB, max_len) for seq in seqs])
    np.testing.assert_array_equal(ids, want)


def test_tokenize_spec_reads_any_character_as_the_specification(device, host):
    ids, _ = host(gg.tokenize(["AC*7gt", "\u00e9A", "\u00dfC"], 4, device=device))
    np.testing.assert_array_equal(ids, [[0, 1, 4, 4], [4, 0, 5, 5], [4, 4, 1, 5]])
    with pytest.raises(InputError, match="not a DNA letter"):  # other schemes still check
        gg.tokenize(["AC*7"], 4, scheme="hyenadna", device=device)


def test_tokenize_spec_default_scheme_is_spec(device, host):
    ids, _ = host(gg.tokenize(["GT"], 3, device=device))
    np.testing.assert_array_equal(ids, [[2, 3, 5]])


def test_tokenize_hyenadna_literal(device, host):
    # left padding; lowercase and R are [UNK] (6) unless uppercase=True, which leaves R [UNK]
    ids, mask = host(gg.tokenize(["ACgtNR"], 8, scheme="hyenadna", device=device))
    np.testing.assert_array_equal(ids, [[4, 4, 7, 8, 6, 6, 11, 6]])
    np.testing.assert_array_equal(mask, [[0, 0, 1, 1, 1, 1, 1, 1]])
    ids, _ = host(gg.tokenize(["ACgtnr"], 8, scheme="hyenadna", uppercase=True, device=device))
    np.testing.assert_array_equal(ids, [[4, 4, 7, 8, 9, 10, 11, 6]])
    # truncation keeps the first max_len bases
    ids, mask = host(gg.tokenize(["ACGTN"], 3, scheme="hyenadna", device=device))
    np.testing.assert_array_equal(ids, [[7, 8, 9]])
    np.testing.assert_array_equal(mask, [[1, 1, 1]])


# --- k-mer schemes ------------------------------------------------------------------------
@st.composite
def kmer_case(draw):
    scheme = draw(st.sampled_from(["plain", "dnabert", "nucleotide-transformer"]))
    k = 6 if scheme == "nucleotide-transformer" else draw(st.integers(1, 7))
    stride = draw(st.integers(1, 4))
    # DNABERT's truncation keeps [CLS] and [SEP]; it needs max_len >= 2 to be defined
    min_len = 2 if scheme == "dnabert" else 1
    max_len = draw(st.one_of(st.none(), st.integers(min_len, 30)))
    return scheme, k, stride, max_len


@naive.SETTINGS
@given(seqs=naive.batches(naive.acgt_heavy()), case=kmer_case())
def test_kmer_tokenize_matches_naive(device, host, seqs, case):
    scheme, k, stride, max_len = case
    got = host(
        gg.kmer_tokenize(seqs, k, stride=stride, scheme=scheme, max_len=max_len, device=device)
    )
    check_tokens(got, naive.kmer_tokenize(seqs, k, stride, scheme, max_len))


@naive.SETTINGS
@given(seqs=naive.batches(naive.dna()), case=kmer_case())
def test_kmer_tokenize_all_iupac_letters(device, host, seqs, case):
    scheme, k, stride, max_len = case
    got = host(
        gg.kmer_tokenize(seqs, k, stride=stride, scheme=scheme, max_len=max_len, device=device)
    )
    check_tokens(got, naive.kmer_tokenize(seqs, k, stride, scheme, max_len))


@naive.SETTINGS
@given(seqs=naive.batches(naive.acgt_heavy()), case=kmer_case())
def test_kmer_token_counts_match_naive(device, host, seqs, case):
    scheme, k, stride, _ = case
    got = np.asarray(
        host(gg.kmer_token_counts(seqs, k, stride=stride, scheme=scheme, device=device))
    )
    want = naive.kmer_token_counts(seqs, k, stride, scheme)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, want)


@naive.SETTINGS
@given(seqs=naive.batches(naive.acgt_heavy()), case=kmer_case())
def test_kmer_token_counts_is_the_untruncated_max_len(device, host, seqs, case):
    # two package paths that must agree: max_len=None gives every row its full token count
    scheme, k, stride, _ = case
    counts = np.asarray(
        host(gg.kmer_token_counts(seqs, k, stride=stride, scheme=scheme, device=device))
    )
    _, mask = host(gg.kmer_tokenize(seqs, k, stride=stride, scheme=scheme, device=device))
    np.testing.assert_array_equal(mask.sum(axis=1), counts)
    assert mask.shape[1] == max(int(counts.max()), 1)


@pytest.mark.parametrize("k", [1, 2, 3, 5, 6])
@pytest.mark.parametrize("scheme", ["plain", "dnabert", "nucleotide-transformer"])
def test_kmer_vocabulary_matches_naive(scheme, k):
    if scheme == "nucleotide-transformer" and k != 6:
        pytest.skip("Nucleotide Transformer uses 6-mers only")
    assert gg.kmer_vocabulary(k, scheme=scheme) == naive.kmer_vocabulary(k, scheme)


@naive.SETTINGS
@given(seqs=naive.batches(naive.acgt_heavy()), case=kmer_case())
def test_kmer_vocabulary_decodes_token_ids(device, host, seqs, case):
    # ids from kmer_tokenize, decoded with kmer_vocabulary, give the reference token strings
    scheme, k, stride, _ = case
    ids, mask = host(gg.kmer_tokenize(seqs, k, stride=stride, scheme=scheme, device=device))
    id_to_token = {i: token for token, i in gg.kmer_vocabulary(k, scheme=scheme).items()}
    for row, seq in enumerate(seqs):
        decoded = [id_to_token[int(i)] for i in ids[row][mask[row] == 1]]
        assert decoded == naive.kmer_token_strings(seq, k, stride, scheme)


def test_kmer_vocabulary_sizes_and_specials():
    assert len(gg.kmer_vocabulary(3, scheme="plain")) == 4**3 + 2
    assert len(gg.kmer_vocabulary(6, scheme="dnabert")) == 5 + 4**6
    nt = gg.kmer_vocabulary(6, scheme="nucleotide-transformer")
    assert len(nt) == 4107
    assert [nt[t] for t in ["<unk>", "<pad>", "<mask>", "<cls>", "<eos>", "<bos>"]] == list(
        range(6)
    )
    assert [nt[b] for b in "ATCGN"] == [4102, 4103, 4104, 4105, 4106]
    assert nt["AAAAAA"] == 6 and nt["GGGGGG"] == 4101


def test_dnabert_3mer_literal(device, host):
    # DNABERT vocab: [PAD]0 [UNK]1 [CLS]2 [SEP]3 [MASK]4, AAA5 AAT6 AAC7 AAG8 ATA9 ATT10 ATC11 ...
    ids, mask = host(gg.kmer_tokenize(["ATCG", "aatn"], 3, scheme="dnabert", device=device))
    # case-sensitive as DNABERT's tokenizer: lower-case k-mers are [UNK] (1)
    np.testing.assert_array_equal(ids, [[2, 11, 32, 3], [2, 1, 1, 3]])
    np.testing.assert_array_equal(mask, [[1, 1, 1, 1], [1, 1, 1, 1]])
    ids, _ = host(
        gg.kmer_tokenize(["aatn", "AaT"], 3, scheme="dnabert", uppercase=True, device=device)
    )
    np.testing.assert_array_equal(ids, [[2, 6, 1, 3], [2, 6, 3, 0]])
    # shorter than k: [CLS] [SEP]; padding [PAD]0 on the right
    ids, mask = host(gg.kmer_tokenize(["AT", "AAAG"], 3, scheme="dnabert", device=device))
    np.testing.assert_array_equal(ids, [[2, 3, 0, 0], [2, 5, 8, 3]])
    np.testing.assert_array_equal(mask, [[1, 1, 0, 0], [1, 1, 1, 1]])


def test_dnabert_truncation_keeps_sep(device, host):
    ids, mask = host(gg.kmer_tokenize(["AAAAAA"], 3, scheme="dnabert", max_len=3, device=device))
    np.testing.assert_array_equal(ids, [[2, 5, 3]])
    np.testing.assert_array_equal(mask, [[1, 1, 1]])


def test_nucleotide_transformer_literal_with_n(device, host):
    # <cls>3, ATCGAT = 6 + (0,1,2,3,0,1 in base 4 over A,T,C,G) = 6 + 433 = 439, N4106,
    # leftover single bases A4102 C4104; then <pad>1
    ids, mask = host(
        gg.kmer_tokenize(
            ["ATCGATNAC", "AAAAAAR", "aaaaaaRA"], 6, scheme="nucleotide-transformer", max_len=7,
            device=device,
        )
    )  # fmt: skip
    # as EsmTokenizer: lower case is not in the vocabulary, and a run of bytes that are not
    # (aaaaaaR) is one <unk>0
    np.testing.assert_array_equal(
        ids, [[3, 439, 4106, 4102, 4104, 1, 1], [3, 6, 0, 1, 1, 1, 1], [3, 0, 4102, 1, 1, 1, 1]]
    )
    np.testing.assert_array_equal(
        mask, [[1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0, 0]]
    )
    with pytest.raises(InputError, match=r"record 1.*'a' at position 0 is not in the Nucleot"):
        gg.kmer_tokenize(["ACGTN", "aC"], 6, scheme="nucleotide-transformer", strict=True)


def nt_vocabulary_file(folder) -> str:
    tokens = sorted(
        (vocab := gg.kmer_vocabulary(6, scheme="nucleotide-transformer")), key=vocab.get
    )
    path = folder / "vocab.txt"
    path.write_text("\n".join(tokens) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def esm_tokenizer(tmp_path_factory):
    """transformers.EsmTokenizer over the Nucleotide Transformer v2 vocabulary, as its
    Hugging Face checkpoints build it (<cls> first, no <eos>)."""
    transformers = pytest.importorskip("transformers")
    path = nt_vocabulary_file(tmp_path_factory.mktemp("nt"))
    return transformers.EsmTokenizer(
        vocab_file=path, unk_token="<unk>", pad_token="<pad>", mask_token="<mask>",
        cls_token="<cls>", eos_token=None,
    )  # fmt: skip


@naive.SETTINGS
@given(seqs=st.lists(st.text(alphabet="ACGTNacgtnRYKMS", max_size=40), min_size=1, max_size=6))
def test_nucleotide_transformer_equals_esm_tokenizer(device, host, esm_tokenizer, seqs):
    ids, mask = host(gg.kmer_tokenize(seqs, 6, scheme="nucleotide-transformer", device=device))
    for seq, row, row_mask in zip(seqs, ids, mask, strict=True):
        assert list(row[row_mask.astype(bool)]) == esm_tokenizer(seq)["input_ids"], seq


def test_plain_kmer_literal(device, host):
    # lexicographic A,C,G,T ids; [UNK] = 4**k, [PAD] = 4**k + 1
    ids, mask = host(gg.kmer_tokenize(["ACGTN", "TT"], 2, device=device))
    np.testing.assert_array_equal(ids, [[1, 6, 11, 16], [15, 17, 17, 17]])
    np.testing.assert_array_equal(mask, [[1, 1, 1, 1], [1, 0, 0, 0]])
    ids, _ = host(gg.kmer_tokenize(["ACGTACG"], 3, stride=2, device=device))
    # ACG, GTA, ACG
    np.testing.assert_array_equal(ids, [[6, 44, 6]])


def test_kmer_tokenize_empty_rows(device, host):
    ids, mask = host(gg.kmer_tokenize(["", "A"], 3, device=device))
    np.testing.assert_array_equal(ids, [[65], [65]])  # [PAD] only; max_len at least 1
    np.testing.assert_array_equal(mask, [[0], [0]])


# --- bad input ----------------------------------------------------------------------------
@pytest.mark.parametrize("max_len", [0, -1, None, 1.5])
@pytest.mark.parametrize("scheme", ["spec", "hyenadna"])
def test_tokenize_bad_max_len(device, scheme, max_len):
    with pytest.raises(InputError):
        gg.tokenize(["ACGT"], max_len, scheme=scheme, device=device)


@pytest.mark.parametrize("scheme", ["bpe", "dnabert", "SPEC", ""])
def test_tokenize_bad_scheme(device, scheme):
    with pytest.raises(InputError):
        gg.tokenize(["ACGT"], 4, scheme=scheme, device=device)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"k": 0},
        {"k": -2},
        {"k": 16},
        {"k": 3, "stride": 0},
        {"k": 3, "max_len": 0},
        {"k": 3, "max_len": -5},
        {"k": 3, "scheme": "bpe"},
        {"k": 5, "scheme": "nucleotide-transformer"},
    ],
    ids=repr,
)
def test_kmer_tokenize_bad_parameters(device, kwargs):
    with pytest.raises(InputError):
        gg.kmer_tokenize(["ACGTACGT"], **kwargs, device=device)


@pytest.mark.parametrize(
    "kwargs",
    [{"k": 0}, {"k": 16}, {"k": 3, "stride": 0}, {"k": 3, "scheme": "bpe"}],
    ids=repr,
)
def test_kmer_token_counts_bad_parameters(device, kwargs):
    with pytest.raises(InputError):
        gg.kmer_token_counts(["ACGTACGT"], **kwargs, device=device)


@pytest.mark.parametrize("k", [0, -1])
def test_kmer_vocabulary_bad_k(k):
    with pytest.raises(InputError):
        gg.kmer_vocabulary(k)


def test_kmer_vocabulary_bad_scheme():
    with pytest.raises(InputError):
        gg.kmer_vocabulary(3, scheme="bpe")


@pytest.mark.parametrize(
    ("seqs", "record"),
    [(["ACGT", "HELLO"], 1), (["AC GT"], 0), (["A", "C", "ACGTé"], 2)],
)
def test_tokenizers_reject_non_dna(device, seqs, record):
    """Every scheme but the specification's (which reads any character as N, above)."""
    pattern = rf"\b(record|sequence) {record}\b"
    with pytest.raises(InputError, match=pattern):
        gg.tokenize(seqs, 8, scheme="hyenadna", device=device)
    with pytest.raises(InputError, match=pattern):
        gg.kmer_tokenize(seqs, 3, device=device)
    with pytest.raises(InputError, match=pattern):
        gg.kmer_token_counts(seqs, 3, device=device)


def test_a_changed_vocabulary_does_not_change_the_next_one():
    vocab = gg.kmer_vocabulary(2, scheme="dnabert")
    vocab["AA"] = 99
    assert gg.kmer_vocabulary(2, scheme="dnabert")["AA"] == 5


def test_the_shared_byte_tables_are_read_only():
    from gpu_genomics.sequence import alphabet

    for table in (
        alphabet.valid_bytes(),
        alphabet.complement_bytes(),
        alphabet.base_digits("ACGT"),
        alphabet.gc_classes(),
    ):
        with pytest.raises(ValueError, match="read-only"):
            table[65] = 9


def dnabert_build_inputs(kmer_ids: list[int], cls: int = 2, sep: int = 3) -> list[int]:
    """DNABERT's ``build_inputs_with_special_tokens`` (one sequence), as its tokenizer does it:
    fewer than 510 k-mers: ``[CLS] k-mers [SEP]``; else every piece of 510 k-mers in
    ``[CLS] ... [SEP]``, the last piece the rest (empty at a multiple of 510)."""
    if len(kmer_ids) < 510:
        return [cls, *kmer_ids, sep]
    out: list[int] = []
    for i in range(len(kmer_ids) // 510 + 1):
        out += [cls, *kmer_ids[510 * i : min(len(kmer_ids), 510 * (i + 1))], sep]
    return out


@pytest.mark.parametrize("n_kmers", [1, 509, 510, 511, 1019, 1020, 1021, 1600])
def test_dnabert_beyond_510_kmers_is_dnabert_s_layout(device, host, n_kmers):
    rng = np.random.default_rng(n_kmers)
    k = 3
    seqs = ["".join(rng.choice(list("ACGTN"), n_kmers + k - 1)), "ACGTA"]
    vocab = gg.kmer_vocabulary(k, scheme="dnabert")
    ids, mask = host(gg.kmer_tokenize(seqs, k, scheme="dnabert", device=device))
    counts = gg.kmer_token_counts(seqs, k, scheme="dnabert")
    for seq, row, row_mask, count in zip(seqs, ids, mask, counts, strict=True):
        kmers = [vocab.get(seq[i : i + k], vocab["[UNK]"]) for i in range(len(seq) - k + 1)]
        want = dnabert_build_inputs(kmers)
        assert list(row[row_mask.astype(bool)]) == want
        assert count == len(want) and row_mask.sum() == len(want)
        assert (row[len(want) :] == vocab["[PAD]"]).all()
    # truncated: to 300 tokens DNABERT's encode_plus(max_length=300) ([CLS], 298 k-mers,
    # [SEP]); to 600 the layout above cut to 600 tokens, ending with [SEP]
    for max_len in (300, 600):
        ids, mask = host(gg.kmer_tokenize(seqs[:1], k, scheme="dnabert", max_len=max_len,
                                          device=device))  # fmt: skip
        kmers = [vocab.get(seqs[0][i : i + k], vocab["[UNK]"]) for i in range(n_kmers)]
        full = dnabert_build_inputs(kmers)
        want = full if len(full) <= max_len else [*full[: max_len - 1], vocab["[SEP]"]]
        assert list(ids[0][mask[0].astype(bool)]) == want
