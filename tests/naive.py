"""Plain per-base pure-Python reference definitions for the operation tests.

Everything here is written from the documentation (the package docstrings and
``docs/sequence.md``, which states the tokenizer vocabularies and the encodings), one base at a
time, without calling any code of ``gpu_genomics``. The tests compare the
package's vectorised CPU/GPU paths against these definitions.

The bottom of the module holds the Hypothesis strategies and settings shared by the tests.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# --- alphabet -------------------------------------------------------------------------------
ACGT = "ACGT"
IUPAC_AMBIGUOUS = "NRYSWKMBDHV"  # valid letters that are not A/C/G/T
IUPAC = ACGT + IUPAC_AMBIGUOUS

COMPLEMENT = {
    "A": "T", "T": "A", "C": "G", "G": "C",
    "N": "N", "S": "S", "W": "W",
    "R": "Y", "Y": "R",
    "K": "M", "M": "K",
    "B": "V", "V": "B",
    "D": "H", "H": "D",
}  # fmt: skip


def complement_base(base: str) -> str:
    """IUPAC complement of one letter, case kept."""
    comp = COMPLEMENT[base.upper()]
    return comp.lower() if base.islower() else comp


def reverse_complement(seq: str) -> str:
    """Reverse complement of one sequence (IUPAC complements, case kept)."""
    out = ""
    for base in reversed(seq):
        out += complement_base(base)
    return out


def reverse_complement_codes(codes: np.ndarray) -> np.ndarray:
    """Spec codes (A0 C1 G2 T3): reversed along the last axis, 0-3 -> 3 - code, others kept."""
    codes = np.asarray(codes)
    out = np.empty_like(codes)
    for index in np.ndindex(codes.shape[:-1]):
        row = list(codes[index])
        row.reverse()
        out[index] = [3 - c if 0 <= c <= 3 else c for c in row]
    return out


# --- placement of a record in a fixed-width row ----------------------------------------------
def place(seq: str, width: int, pad: str) -> list[str | None]:
    """The ``width`` slots of one row: a base letter, or None for padding.

    ``right``: first ``width`` bases, padding at the end. ``left``: first ``width`` bases,
    padding at the start. ``center``: pad both sides with the odd slot on the right, or crop
    both sides with the odd base cut from the right.
    """
    n = len(seq)
    if pad == "right":
        kept = list(seq[:width])
        return kept + [None] * (width - len(kept))
    if pad == "left":
        kept = list(seq[:width])
        return [None] * (width - len(kept)) + kept
    if pad == "center":
        if n <= width:
            left = (width - n) // 2
            right = width - n - left
            return [None] * left + list(seq) + [None] * right
        cut = n - width
        cut_left = cut // 2
        return list(seq[cut_left : cut_left + width])
    raise ValueError(pad)


# --- one-hot ---------------------------------------------------------------------------------
def one_hot(
    seqs: list[str],
    length: int | None = None,
    *,
    alphabet: str = "ACGT",
    dtype: str = "uint8",
    n_value: float = 0.0,
    layout: str = "NLC",
    pad: str = "right",
) -> np.ndarray:
    """``(n, length, 4)`` (or ``(n, 4, length)``) one-hot of ``dtype``.

    A/C/G/T in either case set the column of their position in ``alphabet``; other IUPAC
    letters give ``n_value`` in every column; padding slots are all zero.
    """
    width = max((len(s) for s in seqs), default=0) if length is None else length
    rows = []
    for seq in seqs:
        row = []
        for slot in place(seq, width, pad):
            if slot is None:
                row.append([0.0, 0.0, 0.0, 0.0])
            elif slot.upper() in ACGT:
                row.append([1.0 if slot.upper() == a else 0.0 for a in alphabet.upper()])
            else:
                row.append([n_value] * 4)
        rows.append(row)
    out = np.array(rows, dtype=np.float64).reshape(len(seqs), width, 4).astype(dtype)
    if layout == "NCL":
        out = np.ascontiguousarray(out.transpose(0, 2, 1))
    return out


# --- GC content ------------------------------------------------------------------------------
def gc_counts(seqs: list[str]) -> np.ndarray:
    """``(n, 2)``: G+C bases and A+C+G+T bases of each sequence."""
    out = []
    for seq in seqs:
        gc = acgt = 0
        for base in seq.upper():
            if base in "GC":
                gc += 1
            if base in "ACGT":
                acgt += 1
        out.append([gc, acgt])
    return np.array(out, dtype=np.int64).reshape(len(seqs), 2)


def gc_content(seqs: list[str]) -> np.ndarray:
    """``(n,)``: (G + C) / (A + C + G + T), NaN without any A/C/G/T."""
    values = []
    for gc, acgt in gc_counts(seqs).tolist():
        values.append(gc / acgt if acgt else float("nan"))
    return np.array(values, dtype=np.float64)


# --- k-mer names and counts (the specification's generate_kmers + Counter) -------------------
def all_kmers(k: int, alphabet: str = ACGT) -> list[str]:
    """Every k-mer over ``alphabet``, in lexicographic order of that alphabet."""
    kmers = [""]
    for _ in range(k):
        kmers = [prefix + base for prefix in kmers for base in alphabet]
    return kmers


def canonical_kmer(kmer: str) -> str:
    """The lexicographically smaller of a k-mer and its reverse complement."""
    return min(kmer, reverse_complement(kmer))


def kmer_names(k: int, *, canonical: bool = False) -> list[str]:
    """Column names of the k-mer count matrix."""
    names = all_kmers(k)
    if canonical:
        names = [kmer for kmer in names if canonical_kmer(kmer) == kmer]
    return names


def generate_kmers(sequence, k=3):
    """Generate k-mer features from DNA sequence (verbatim from the specification)."""
    kmers = []
    for i in range(len(sequence) - k + 1):
        kmers.append(sequence[i : i + k])
    return kmers


def kmer_counts(seqs: list[str], k: int, *, canonical: bool = False) -> np.ndarray:
    """``(n, n_columns)`` counts; windows with a non-ACGT base are skipped; case-insensitive."""
    names = kmer_names(k, canonical=canonical)
    column = {name: i for i, name in enumerate(names)}
    out = np.zeros((len(seqs), len(names)), dtype=np.int64)
    for row, seq in enumerate(seqs):
        kmers = [km for km in generate_kmers(seq.upper(), k) if set(km) <= set(ACGT)]
        if canonical:
            kmers = [canonical_kmer(km) for km in kmers]
        for kmer, count in Counter(kmers).items():
            out[row, column[kmer]] = count
    return out


# --- per-base tokenizers ---------------------------------------------------------------------
SPEC_VOCAB = {"A": 0, "C": 1, "G": 2, "T": 3, "N": 4, "<PAD>": 5}


def tokenize_sequence(seq, vocab, max_len=512):
    """Convert DNA sequence to token IDs (verbatim from the specification)."""
    tokens = [vocab.get(base, vocab["N"]) for base in seq.upper()]

    # Pad or truncate
    if len(tokens) < max_len:
        tokens += [vocab["<PAD>"]] * (max_len - len(tokens))
    else:
        tokens = tokens[:max_len]

    return np.array(tokens)


def tokenize_spec(seqs: list[str], max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """The specification's tokenizer plus a mask (1 for the first ``min(len, max_len)``)."""
    ids = [tokenize_sequence(seq, SPEC_VOCAB, max_len) for seq in seqs]
    mask = [[1 if j < len(seq) else 0 for j in range(max_len)] for seq in seqs]
    return _as_token_arrays(ids, mask, len(seqs), max_len)


HYENADNA_VOCAB = {
    "[CLS]": 0, "[SEP]": 1, "[BOS]": 2, "[MASK]": 3, "[PAD]": 4, "[RESERVED]": 5,
    "[UNK]": 6, "A": 7, "C": 8, "G": 9, "T": 10, "N": 11,
}  # fmt: skip


def tokenize_hyenadna(
    seqs: list[str], max_len: int, *, uppercase: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Character tokens, [UNK] for anything outside A C G T N (lower case included unless
    ``uppercase``), truncated to the first ``max_len``, padded on the left."""
    all_ids, all_mask = [], []
    for seq in seqs:
        tokens = []
        for char in seq:
            key = char.upper() if uppercase else char
            tokens.append(HYENADNA_VOCAB.get(key, HYENADNA_VOCAB["[UNK]"]))
        tokens = tokens[:max_len]
        n_pad = max_len - len(tokens)
        all_ids.append([HYENADNA_VOCAB["[PAD]"]] * n_pad + tokens)
        all_mask.append([0] * n_pad + [1] * len(tokens))
    return _as_token_arrays(all_ids, all_mask, len(seqs), max_len)


# --- k-mer tokenizers ------------------------------------------------------------------------
DNABERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
NT_SPECIALS = ["<unk>", "<pad>", "<mask>", "<cls>", "<eos>", "<bos>"]


def kmer_vocabulary(k: int, scheme: str) -> dict[str, int]:
    """Token string -> id, written from the docs (docs/sequence.md#tokenizers, tokenizers.py)."""
    if scheme == "plain":
        vocab = {kmer: i for i, kmer in enumerate(all_kmers(k, "ACGT"))}
        vocab["[UNK]"] = 4**k
        vocab["[PAD]"] = 4**k + 1
        return vocab
    if scheme == "dnabert":
        tokens = DNABERT_SPECIALS + all_kmers(k, "ATCG")
        return {token: i for i, token in enumerate(tokens)}
    if scheme == "nucleotide-transformer":
        tokens = NT_SPECIALS + all_kmers(6, "ATCG") + ["A", "T", "C", "G", "N"]
        return {token: i for i, token in enumerate(tokens)}
    raise ValueError(scheme)


def kmer_token_strings(
    seq: str, k: int, stride: int, scheme: str, *, uppercase: bool = False
) -> list[str]:
    """Every token of one record, special tokens included, before padding or truncation.

    DNABERT's tokenizer is case-sensitive (its vocabulary is upper-case k-mers): a k-mer with
    a lower-case letter is [UNK] unless ``uppercase``."""
    upper = seq.upper()
    if scheme in ("plain", "dnabert"):
        text = seq if scheme == "dnabert" and not uppercase else upper
        unk = "[UNK]"
        kmers = []
        for i in range(0, len(text) - k + 1, stride):
            kmer = text[i : i + k]
            kmers.append(kmer if set(kmer) <= set(ACGT) else unk)
        return ["[CLS]", *kmers, "[SEP]"] if scheme == "dnabert" else kmers
    if scheme == "nucleotide-transformer":  # as EsmTokenizer: case-sensitive, <unk> per run
        tokens = ["<cls>"]
        i = 0
        while i < len(seq):
            base = seq[i]
            if base in ACGT:
                j = i
                while j < len(seq) and seq[j] in ACGT:
                    j += 1
                run = seq[i:j]
                full = len(run) // 6 * 6
                tokens += [run[p : p + 6] for p in range(0, full, 6)]
                tokens += list(run[full:])
                i = j
            elif base == "N":
                tokens.append("N")
                i += 1
            else:
                tokens.append("<unk>")
                while i < len(seq) and seq[i] not in ACGT + "N":
                    i += 1
        return tokens
    raise ValueError(scheme)


def kmer_token_counts(seqs: list[str], k: int, stride: int, scheme: str) -> np.ndarray:
    """``(n,)`` number of tokens of each record, special tokens included."""
    return np.array([len(kmer_token_strings(s, k, stride, scheme)) for s in seqs], dtype=np.int64)


def kmer_tokenize(
    seqs: list[str],
    k: int,
    stride: int = 1,
    scheme: str = "plain",
    max_len: int | None = None,
    *,
    uppercase: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, mask)`` of the k-mer schemes: right padding; truncation keeps the first tokens
    (DNABERT keeps its final [SEP]); ``max_len=None`` means the longest row (at least 1)."""
    vocab = kmer_vocabulary(k, scheme)
    pad_token = {"plain": "[PAD]", "dnabert": "[PAD]", "nucleotide-transformer": "<pad>"}[scheme]
    rows = [kmer_token_strings(s, k, stride, scheme, uppercase=uppercase) for s in seqs]
    if max_len is None:
        max_len = max(max((len(r) for r in rows), default=0), 1)
    all_ids, all_mask = [], []
    for tokens in rows:
        kept = tokens
        if len(tokens) > max_len:
            if scheme == "dnabert":
                kept = [*tokens[: max_len - 1], "[SEP]"]
            else:
                kept = tokens[:max_len]
        n_pad = max_len - len(kept)
        all_ids.append([vocab[t] for t in kept] + [vocab[pad_token]] * n_pad)
        all_mask.append([1] * len(kept) + [0] * n_pad)
    return _as_token_arrays(all_ids, all_mask, len(seqs), max_len)


def _as_token_arrays(ids, mask, n: int, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    ids_array = np.array([list(row) for row in ids], dtype=np.int64).reshape(n, max_len)
    mask_array = np.array(mask, dtype=np.int64).reshape(n, max_len)
    return ids_array, mask_array


# --- FASTA / FASTQ writers (test inputs) -----------------------------------------------------
def fasta_text(names: list[str], seqs: list[str], line_width: int, newline: str = "\n") -> str:
    """A FASTA file with sequences wrapped at ``line_width`` (0: one line per record)."""
    lines = []
    for name, seq in zip(names, seqs, strict=True):
        lines.append(f">{name} some description")
        if line_width:
            lines += [seq[i : i + line_width] for i in range(0, len(seq), line_width)]
        elif seq:
            lines.append(seq)
    return newline.join(lines) + newline


def fastq_text(names: list[str], seqs: list[str], newline: str = "\n") -> str:
    """A FASTQ file, four lines per record; quality letters include '@' and '+'."""
    quality = "@+!#IJ5"
    lines = []
    for name, seq in zip(names, seqs, strict=True):
        qual = "".join(quality[i % len(quality)] for i in range(len(seq)))
        lines += [f"@{name} extra words", seq, "+", qual]
    return newline.join(lines) + newline


# --- Hypothesis strategies and settings ------------------------------------------------------
#: Modest example counts and no deadline: CI is a 2-core machine. Fixtures (``device``,
#: ``host``, ``tmp_path``) hold no per-example state, so reusing them across examples is safe.
SETTINGS = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

#: Letters drawn for random sequences: mostly A/C/G/T (so k-mers occur), some lower case, N and
#: the other IUPAC letters in both cases.
_LETTERS = list("ACGT" * 6 + "acgt" * 2 + "Nn" + IUPAC_AMBIGUOUS[1:] + IUPAC_AMBIGUOUS[1:].lower())


def dna(min_size: int = 0, max_size: int = 30) -> st.SearchStrategy[str]:
    """One random sequence: upper/lower case, N, other IUPAC letters, possibly empty."""
    return st.text(alphabet=st.sampled_from(_LETTERS), min_size=min_size, max_size=max_size)


def acgt_heavy(min_size: int = 0, max_size: int = 40) -> st.SearchStrategy[str]:
    """A sequence with long A/C/G/T runs broken by occasional N and other letters."""
    chunk = st.one_of(
        st.text(alphabet=st.sampled_from("ACGTacgt"), min_size=1, max_size=15),
        st.sampled_from(["N", "n", "R", "y", "NN", "K"]),
    )
    return (
        st.lists(chunk, max_size=6)
        .map("".join)
        .map(lambda s: s[:max_size])
        .filter(lambda s: len(s) >= min_size)
    )


def batches(
    seq: st.SearchStrategy[str] | None = None, min_size: int = 1, max_size: int = 6
) -> st.SearchStrategy[list[str]]:
    """A list of sequences of uneven lengths (empty ones included)."""
    return st.lists(seq if seq is not None else dna(), min_size=min_size, max_size=max_size)


@st.composite
def equal_length_batches(draw, max_n: int = 6, max_len: int = 25) -> list[str]:
    """At least one sequence, all of the same length (for ``(n, L)`` arrays)."""
    n = draw(st.integers(1, max_n))
    length = draw(st.integers(0, max_len))
    return [draw(dna(length, length)) for _ in range(n)]
