"""Tokenisers for DNA language models: per-base ids and k-mer ids, with attention masks.

Schemes (``docs/sequence.md#tokenizers``):

* ``tokenize(scheme="spec")``: the genomics specification's vocabulary A0 C1 G2 T3 N4 <PAD>5,
  case-insensitive, any other character N (any string is accepted, as there), right padding,
  truncation to ``max_len``.
* ``tokenize(scheme="hyenadna")``: HyenaDNA/Caduceus character ids [CLS]0 [SEP]1 [BOS]2
  [MASK]3 [PAD]4 [RESERVED]5 [UNK]6 A7 C8 G9 T10 N11, left padding; lowercase letters are
  [UNK] unless ``uppercase=True``, other IUPAC letters always.
* ``kmer_tokenize(scheme="plain")``: k-mers every ``stride`` bases with ids in lexicographic
  A,C,G,T order (the columns of :func:`~gpu_genomics.kmer_counts`), ``4**k`` for a k-mer with a
  non-ACGT base, ``4**k + 1`` for padding; no special tokens.
* ``kmer_tokenize(scheme="dnabert")``: DNABERT ids [PAD]0 [UNK]1 [CLS]2 [SEP]3 [MASK]4, k-mers
  from 5 in lexicographic A,T,C,G order; ``[CLS] k-mers [SEP]``, right padding; case-sensitive
  as DNABERT's tokenizer (a k-mer with a lower-case letter is [UNK]) unless ``uppercase=True``.
* ``kmer_tokenize(scheme="nucleotide-transformer")``: Nucleotide Transformer v2 (k = 6), as
  Hugging Face's ``EsmTokenizer`` over its vocabulary: <cls>, each A/C/G/T run cut into
  non-overlapping 6-mers (ids 6..4101, A,T,C,G order) with the leftover bases as single tokens
  (A4102 T4103 C4104 G4105), N4106, one <unk>0 per run of other bytes (lower case included),
  <pad>1 on the right; ``strict=True`` refuses those bytes instead.

The plain k-mer scheme reads bases case-insensitively. Every function
returns ``(ids, mask)``: ``(n, max_len) int32`` token ids and ``(n, max_len) uint8`` attention
mask (1 = real token).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import re
from dataclasses import dataclass
from typing import Any, Literal

import numba
import numpy as np

from .. import _kernels
from ..device import Device, array_module, resolve_device, to_numpy
from ..errors import InputError, check_choice, invalid, positive_int
from .alphabet import base_digits
from .batch import SequenceBatch, SequencesLike, as_batch, letter_at
from .gather import gather_rows, placement_mask
from .kmers import check_k

TokenScheme = Literal["spec", "hyenadna"]
KmerScheme = Literal["plain", "dnabert", "nucleotide-transformer"]
TOKEN_SCHEMES = ("spec", "hyenadna")
KMER_SCHEMES = ("plain", "dnabert", "nucleotide-transformer")

SPEC_VOCAB = {"A": 0, "C": 1, "G": 2, "T": 3, "N": 4, "<PAD>": 5}
HYENADNA_VOCAB = {
    "[CLS]": 0,
    "[SEP]": 1,
    "[BOS]": 2,
    "[MASK]": 3,
    "[PAD]": 4,
    "[RESERVED]": 5,
    "[UNK]": 6,
    "A": 7,
    "C": 8,
    "G": 9,
    "T": 10,
    "N": 11,
}
DNABERT_SPECIALS = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4}
NT_SPECIALS = {"<unk>": 0, "<pad>": 1, "<mask>": 2, "<cls>": 3, "<eos>": 4, "<bos>": 5}
NT_K = 6
#: DNABERT's ``build_inputs_with_special_tokens`` wraps every 510 k-mers in [CLS] ... [SEP].
DNABERT_PIECE = 510


@functools.cache
def _base_token_table(scheme: str, *, uppercase: bool) -> tuple[np.ndarray, int]:
    """Return the ``(256, 1) uint32`` table of a per-base scheme and its pad id."""
    if check_choice("scheme", scheme, TOKEN_SCHEMES) == "spec":
        table = np.full(256, SPEC_VOCAB["N"], dtype=np.uint32)
        for letter in "ACGT":
            table[ord(letter)] = table[ord(letter.lower())] = SPEC_VOCAB[letter]
        return table.reshape(256, 1), SPEC_VOCAB["<PAD>"]
    table = np.full(256, HYENADNA_VOCAB["[UNK]"], dtype=np.uint32)
    for letter in "ACGTN":
        table[ord(letter)] = HYENADNA_VOCAB[letter]
        if uppercase:
            table[ord(letter.lower())] = HYENADNA_VOCAB[letter]
    return table.reshape(256, 1), HYENADNA_VOCAB["[PAD]"]


def tokenize(
    seqs: SequencesLike,
    max_len: int,
    *,
    scheme: TokenScheme = "spec",
    uppercase: bool = False,
    device: str | None = None,
) -> tuple[Any, Any]:
    """Give one token per base, padded or truncated to ``max_len``.

    Args:
        seqs: sequences (see :func:`~gpu_genomics.sequence.batch.as_batch`).
        max_len: tokens per row; longer records keep their first ``max_len`` bases.
        scheme: ``"spec"`` (right padding) or ``"hyenadna"`` (left padding).
        uppercase: hyenadna only: read lowercase letters as upper case instead of [UNK].
        device: ``"auto" | "gpu" | "cpu"``.

    Returns:
        ``(ids, mask)``: ``(n, max_len) int32`` and ``(n, max_len) uint8`` on the device
        (``5 * n * max_len`` bytes).

    Raises:
        InputError: a bad ``max_len``, ``scheme`` or ``device``, or a record with a non-IUPAC
            letter.
    """
    max_len = positive_int("max_len", max_len)
    table, pad_id = _base_token_table(scheme, uppercase=bool(uppercase))
    batch = _spec_batch(seqs) if scheme == "spec" else as_batch(seqs)
    device_name = resolve_device(device)
    pad = "left" if scheme == "hyenadna" else "right"
    pad_words = np.array([pad_id], dtype=np.uint32)
    words, (dst, _, count) = gather_rows(
        batch, width=max_len, pad=pad, lut_words=table, pad_words=pad_words, device=device_name
    )
    xp = array_module(device_name)
    ids = words.view(np.int32).reshape(len(batch), max_len)
    mask = placement_mask(xp, xp.asarray(dst), xp.asarray(count), max_len)
    return ids, mask


_NOT_ACGT = re.compile("[^ACGT]")


def _spec_batch(seqs: SequencesLike) -> SequenceBatch:
    """The batch ``tokenize(scheme="spec")`` reads: strings as the specification reads them.

    The specification's ``tokenize_sequence`` maps every character of ``seq.upper()`` outside
    ACGT to N, so any string is accepted: one whose letters are all IUPAC is read as it is (the
    token table maps the others to N); any other string (``*``, digits, ``é``) becomes
    ``seq.upper()`` with every non-ACGT character replaced by ``N``, one token per character
    as there (``"ß".upper()`` is ``"SS"``: two). Files, arrays and batches are checked as
    everywhere (a non-IUPAC byte is an error).
    """
    try:
        return as_batch(seqs)
    except InputError:
        if isinstance(seqs, str):
            seqs = [seqs]
        if isinstance(seqs, np.ndarray) and seqs.ndim == 1 and seqs.dtype.kind in "UO":
            seqs = seqs.tolist()
        if not isinstance(seqs, list | tuple) or not all(isinstance(s, str) for s in seqs):
            raise
        return as_batch([_NOT_ACGT.sub("N", s.upper()) for s in seqs])


# --- k-mer tokenisation --------------------------------------------------------------------
@dataclass(frozen=True)
class KmerIds:
    """The token ids of a k-mer scheme, as the tokeniser kernels take them.

    Attributes:
        order: base order of k-mer codes (the digit of each base; ``"ACGT"`` or ``"ATCG"``).
        first_id: id of the k-mer of code 0; the k-mer of code ``c`` has id ``first_id + c``.
        unk_id: id of a k-mer with a base other than A/C/G/T (or of such a base).
        pad_id: id of padding.
        cls_id: id of the token opening each row, -1 for none.
        sep_id: id of the token closing each row, -1 for none.
    """

    order: str
    first_id: int
    unk_id: int
    pad_id: int
    cls_id: int = -1
    sep_id: int = -1


@functools.cache
def kmer_ids(k: int, scheme: KmerScheme) -> KmerIds:
    """Return the token ids of a k-mer scheme (``k`` and ``scheme`` already checked)."""
    if scheme == "plain":
        return KmerIds("ACGT", first_id=0, unk_id=4**k, pad_id=4**k + 1)
    if scheme == "dnabert":
        specials = DNABERT_SPECIALS
        return KmerIds(
            "ATCG",
            first_id=max(specials.values()) + 1,
            unk_id=specials["[UNK]"],
            pad_id=specials["[PAD]"],
            cls_id=specials["[CLS]"],
            sep_id=specials["[SEP]"],
        )
    specials = NT_SPECIALS
    return KmerIds(
        "ATCG",
        first_id=max(specials.values()) + 1,
        unk_id=specials["<unk>"],
        pad_id=specials["<pad>"],
        cls_id=specials["<cls>"],
    )


def kmer_vocabulary(k: int, *, scheme: KmerScheme = "plain") -> dict[str, int]:
    """Return token string -> id for a k-mer scheme, special tokens included.

    A new dict each call (built once, copied): the caller may change it.

    Args:
        k: k-mer size (``4**k`` k-mer tokens: keep k small).
        scheme: one of :data:`KMER_SCHEMES`.

    Raises:
        InputError: a bad ``k`` or ``scheme``.
    """
    return dict(_kmer_vocabulary(k, scheme))


@functools.cache
def _kmer_vocabulary(k: int, scheme: KmerScheme) -> dict[str, int]:
    k, _ = _check_kmer_args(k, 1, scheme)
    ids = kmer_ids(k, scheme)
    kmers = itertools.product(ids.order, repeat=k)
    vocab = {"".join(kmer): ids.first_id + code for code, kmer in enumerate(kmers)}
    if scheme == "plain":
        return {**vocab, "[UNK]": ids.unk_id, "[PAD]": ids.pad_id}
    if scheme == "dnabert":
        return {**DNABERT_SPECIALS, **vocab}
    first_base = ids.first_id + len(vocab)
    bases = {base: first_base + i for i, base in enumerate(ids.order + "N")}
    return {**NT_SPECIALS, **vocab, **bases}


@functools.cache
def _nt_base_ids() -> np.ndarray:
    """Return the ``(256,) int32`` Nucleotide Transformer id of each byte as a lone token.

    A, C, G, T give their single-base tokens, N the N token, any other byte (lower case too:
    the vocabulary is upper case) ``<unk>``.
    """
    vocab = _kmer_vocabulary(NT_K, "nucleotide-transformer")
    table = np.full(256, vocab["<unk>"], dtype=np.int32)
    for letter in "ACGTN":
        table[ord(letter)] = vocab[letter]
    table.setflags(write=False)
    return table


_NT_VOCAB_BYTES = np.frombuffer(b"ACGTN", dtype=np.uint8)


def _nt_batch(batch: SequenceBatch, *, strict: bool) -> SequenceBatch:
    """The batch as the Nucleotide Transformer tokenizer reads it: unknown runs as one byte.

    Hugging Face's ``EsmTokenizer`` over the NT vocabulary matches vocabulary tokens (6-mers,
    ``A C G T N``) in the text and gives one ``<unk>`` for each stretch between them that
    matches none; so a run of bytes other than upper-case ``ACGTN`` (lower case, IUPAC letters)
    is kept as its first byte (one ``<unk>``). ``strict``: any such byte is an error instead,
    as InstaDeep's own tokenizer refuses letters outside its vocabulary.
    """
    unknown = ~np.isin(batch.data, _NT_VOCAB_BYTES)
    if not unknown.any():
        return batch
    if strict:
        position = int(np.argmax(unknown))
        record = int(np.searchsorted(batch.offsets, position, side="right")) - 1
        raise InputError(
            f"{batch.record_label(record, first_record=0)}: "
            f"{letter_at(batch.data, position)} at position "
            f"{position - int(batch.offsets[record])} is not in the Nucleotide Transformer "
            "vocabulary (A C G T N, upper case); strict=True refuses it (as InstaDeep's "
            "tokenizer does); without strict it is one <unk> per run"
        )
    starts = np.zeros(len(batch.data), dtype=bool)
    starts[batch.offsets[:-1][batch.offsets[:-1] < len(batch.data)]] = True
    repeat = unknown.copy()
    repeat[1:] &= unknown[:-1]
    repeat &= ~starts  # a record's first byte is never a repeat of the previous record's
    keep = ~repeat
    kept_before = np.concatenate([[0], np.cumsum(keep)])
    return SequenceBatch(
        data=batch.data[keep], offsets=kept_before[batch.offsets], names=batch.names
    )


@numba.njit(parallel=True, cache=True, nogil=True)
def _kmer_token_ids_cpu(  # noqa: PLR0917 (numba: positional arguments)
    data, offsets, digits, k, stride, first_id, unk_id, cls_id, sep_id, pad_id, ids, mask
):  # pragma: no cover
    n_rows, max_len = ids.shape
    n_pre = 1 if cls_id >= 0 else 0
    n_suf = 1 if sep_id >= 0 else 0
    for row in numba.prange(n_rows):
        start = offsets[row]
        length = offsets[row + 1] - start
        n_kmers = (length - k) // stride + 1 if length >= k else 0
        body = min(n_kmers, max(max_len - n_pre - n_suf, 0))
        for j in range(max_len):
            t = j - n_pre
            if n_pre == 1 and j == 0:
                token = cls_id
            elif t < body:
                code = 0
                token = -1
                for i in range(k):
                    d = digits[data[start + t * stride + i]]
                    if d > 3:
                        token = unk_id
                        break
                    code = (code << 2) | d
                if token < 0:
                    token = first_id + code
            elif n_suf == 1 and t == body:
                token = sep_id
            else:
                token = pad_id
            ids[row, j] = token
            mask[row, j] = 1 if token != pad_id else 0


KMER_TOKEN_IDS = _kernels.Kernel(
    module="tokenize",
    function="kmer_token_ids",
    params=(
        ("data", "const unsigned char*"),
        ("offsets", "const long long*"),
        ("digits", "const unsigned char*"),
        ("k", "int"),
        ("stride", "int"),
        ("first_id", "int"),
        ("unk_id", "int"),
        ("cls_id", "int"),
        ("sep_id", "int"),
        ("pad_id", "int"),
        ("n_rows", "long long"),
        ("max_len", "int"),
        ("ids", "int*"),
        ("mask", "unsigned char*"),
    ),
    twin=_kmer_token_ids_cpu,
)


@numba.njit(parallel=True, cache=True, nogil=True)
def _nt_tokenize_cpu(  # noqa: PLR0912, PLR0917 (numba twin of nt_tokenize)
    data, offsets, digits, base_ids, k, cls_id, first_id, pad_id, count_only, n_tokens, ids, mask
):  # pragma: no cover
    n_rows = len(offsets) - 1
    max_len = ids.shape[1]
    for row in numba.prange(n_rows):
        end = offsets[row + 1]
        slot = 0
        if not count_only and slot < max_len:
            ids[row, slot] = cls_id
        slot += 1
        i = offsets[row]
        while i < end:
            if digits[data[i]] > 3:
                if not count_only and slot < max_len:
                    ids[row, slot] = base_ids[data[i]]
                slot += 1
                i += 1
                continue
            run_end = i
            while run_end < end and digits[data[run_end]] <= 3:
                run_end += 1
            full = (run_end - i) // k
            for t in range(full):
                if not count_only and slot < max_len:
                    code = 0
                    for b in range(k):
                        code = (code << 2) | digits[data[i + k * t + b]]
                    ids[row, slot] = first_id + code
                slot += 1
            for b in range(i + k * full, run_end):
                if not count_only and slot < max_len:
                    ids[row, slot] = base_ids[data[b]]
                slot += 1
            i = run_end
        n_tokens[row] = slot
        if not count_only:
            for j in range(max_len):
                if j >= slot:
                    ids[row, j] = pad_id
                mask[row, j] = 1 if j < slot else 0


NT_TOKENIZE = _kernels.Kernel(
    module="tokenize",
    function="nt_tokenize",
    params=(
        ("data", "const unsigned char*"),
        ("offsets", "const long long*"),
        ("digits", "const unsigned char*"),
        ("base_ids", "const int*"),
        ("k", "int"),
        ("cls_id", "int"),
        ("first_id", "int"),
        ("pad_id", "int"),
        ("n_rows", "long long"),
        ("max_len", "int"),
        ("count_only", "int"),
        ("n_tokens", "long long*"),
        ("ids", "int*"),
        ("mask", "unsigned char*"),
    ),
    twin=_nt_tokenize_cpu,
)


def kmer_token_counts(
    seqs: SequencesLike,
    k: int,
    *,
    stride: int = 1,
    scheme: KmerScheme = "plain",
    strict: bool = False,
    device: str | None = None,
) -> np.ndarray:
    """Count the tokens each record gives, special tokens included, before padding.

    This is the ``max_len`` of :func:`kmer_tokenize` that keeps every token of a record.

    Args:
        seqs: sequences (see :func:`~gpu_genomics.sequence.batch.as_batch`).
        k: k-mer size (see :func:`kmer_tokenize`).
        stride: bases between k-mer starts.
        scheme: one of :data:`KMER_SCHEMES`.
        strict: nucleotide-transformer only (see :func:`kmer_tokenize`).
        device: ``"auto" | "gpu" | "cpu"``.

    Returns:
        ``(n,) int64`` host array.

    Raises:
        InputError: a bad ``k``, ``stride``, ``scheme`` or ``device``, or a record with a
            non-IUPAC letter.
    """
    batch = as_batch(seqs)
    k, stride = _check_kmer_args(k, stride, scheme)
    if scheme == "nucleotide-transformer":
        batch = _nt_batch(batch, strict=strict)
        return _nt_run(batch, 0, count_only=True, device=resolve_device(device))[0]
    ids = kmer_ids(k, scheme)
    lengths = batch.lengths
    n_kmers = np.where(lengths >= k, (lengths - k) // stride + 1, 0)
    if scheme == "dnabert":  # [CLS] and [SEP] around every piece of 510 k-mers
        return n_kmers + 2 * (n_kmers // DNABERT_PIECE + 1)
    return n_kmers + (int(ids.cls_id >= 0) + int(ids.sep_id >= 0))


def kmer_tokenize(
    seqs: SequencesLike,
    k: int,
    *,
    stride: int = 1,
    scheme: KmerScheme = "plain",
    max_len: int | None = None,
    uppercase: bool = False,
    strict: bool = False,
    device: str | None = None,
) -> tuple[Any, Any]:
    """Give k-mer tokens for DNABERT-style and Nucleotide Transformer models.

    Args:
        seqs: sequences (see :func:`~gpu_genomics.sequence.batch.as_batch`).
        k: k-mer size, 1..15 (``nucleotide-transformer`` requires 6).
        stride: bases between k-mer starts (1 = overlapping); ``nucleotide-transformer``
            always steps 6.
        scheme: ``"plain"``, ``"dnabert"`` or ``"nucleotide-transformer"`` (module docstring).
        max_len: tokens per row including special tokens; ``None`` means the longest row.
            Longer rows are truncated; DNABERT rows keep [CLS] and [SEP] when
            ``max_len >= 2`` (``max_len=1`` leaves [CLS] alone).
        uppercase: dnabert only: read lower-case letters as upper case. Without it a k-mer
            with a lower-case letter is [UNK], as DNABERT's own (case-sensitive) tokenizer
            gives it (its vocabulary holds upper-case k-mers only).
        strict: nucleotide-transformer only: a byte other than upper-case A, C, G, T, N is
            an error (InstaDeep's tokenizer refuses it) instead of one ``<unk>`` per run of
            such bytes (Hugging Face's ``EsmTokenizer``, the default).
        device: ``"auto" | "gpu" | "cpu"``.

    Returns:
        ``(ids, mask)``: ``(n, max_len) int32`` and ``(n, max_len) uint8`` on the device
        (``5 * n * max_len`` bytes).

    Raises:
        InputError: a bad ``k``, ``stride``, ``scheme``, ``max_len`` or ``device``, or a
            record with a non-IUPAC letter.
    """
    batch = as_batch(seqs)
    k, stride = _check_kmer_args(k, stride, scheme)
    device_name = resolve_device(device)
    if scheme == "nucleotide-transformer":
        batch = _nt_batch(batch, strict=strict)  # once, for the counts and the tokens
    if max_len is None:
        counts = kmer_token_counts(batch, k, stride=stride, scheme=scheme, device=device_name)
        max_len = max(int(counts.max()) if len(counts) else 0, 1)
    max_len = positive_int("max_len", max_len)
    if scheme == "nucleotide-transformer":
        _, ids, mask = _nt_run(batch, max_len, count_only=False, device=device_name)
        return ids, mask
    scheme_ids = kmer_ids(k, scheme)
    digits = base_digits(scheme_ids.order, lower=scheme != "dnabert" or bool(uppercase))
    if scheme == "dnabert" and max_len > DNABERT_PIECE + 1:
        n_kmers = kmer_token_counts(batch, k, stride=stride, scheme="plain", device=device_name)
        if len(n_kmers) and int(n_kmers.max()) >= DNABERT_PIECE:
            return _dnabert_pieces(
                batch, k, stride=stride, digits=digits, n_kmers=n_kmers, max_len=max_len,
                device=device_name,
            )  # fmt: skip
    return _kmer_token_ids(
        batch, k, stride=stride, digits=digits, scheme_ids=scheme_ids, width=max_len,
        device=device_name,
    )  # fmt: skip


def _kmer_token_ids(
    batch: SequenceBatch,
    k: int,
    *,
    stride: int,
    digits: np.ndarray,
    scheme_ids: KmerIds,
    width: int,
    device: Device,
) -> tuple[Any, Any]:
    """Launch the k-mer token kernel: ``(ids, mask)`` of ``(n, width)`` on ``device``."""
    xp = array_module(device)
    ids = xp.empty((len(batch), width), dtype=np.int32)
    mask = xp.empty((len(batch), width), dtype=np.uint8)
    data, offsets = batch.arrays(device)
    KMER_TOKEN_IDS(
        device,
        grid=_kernels.rows_grid(len(batch), width),
        data=data,
        offsets=offsets,
        digits=digits,
        k=k,
        stride=stride,
        first_id=scheme_ids.first_id,
        unk_id=scheme_ids.unk_id,
        cls_id=scheme_ids.cls_id,
        sep_id=scheme_ids.sep_id,
        pad_id=scheme_ids.pad_id,
        n_rows=len(batch),
        max_len=width,
        ids=ids,
        mask=mask,
    )
    return ids, mask


def _dnabert_pieces(
    batch: SequenceBatch,
    k: int,
    *,
    stride: int,
    digits: np.ndarray,
    n_kmers: np.ndarray,
    max_len: int,
    device: Device,
) -> tuple[Any, Any]:
    """DNABERT rows for records of 510 k-mers or more, as its tokenizer builds them.

    ``[CLS] k-mers 0..509 [SEP] [CLS] k-mers 510..1019 [SEP] ...``: every piece of 510 k-mers in
    ``[CLS] ... [SEP]``, the last piece holding the rest (none when the count is a multiple of
    510: ``[CLS] [SEP]``, as there); rows longer than ``max_len`` are cut to it and end with
    ``[SEP]``. ``(ids, mask)`` as :func:`kmer_tokenize`.
    """
    ids_of = kmer_ids(k, "dnabert")
    xp = array_module(device)
    n, widest = len(batch), max(int(n_kmers.max()), 1)
    bare = dataclasses.replace(ids_of, cls_id=-1, sep_id=-1)  # the k-mers alone
    kmers, kmer_mask = _kmer_token_ids(
        batch, k, stride=stride, digits=digits, scheme_ids=bare, width=widest, device=device
    )
    m = xp.asarray(n_kmers.astype(np.int64))
    pieces = m // DNABERT_PIECE + 1
    full = m + 2 * pieces  # each row's length before truncation
    width = DNABERT_PIECE + 2  # [CLS], 510 k-mers, [SEP]
    out = xp.full((n, max(int(full.max()), max_len)), ids_of.pad_id, dtype=np.int32)
    row, kmer = xp.nonzero(kmer_mask)
    out[row, kmer + 1 + 2 * (kmer // DNABERT_PIECE)] = kmers[row, kmer]
    piece_row = xp.repeat(xp.arange(n), pieces)
    piece = xp.arange(int(pieces.sum())) - xp.repeat(xp.cumsum(pieces) - pieces, pieces)
    out[piece_row, piece * width] = ids_of.cls_id
    in_piece = xp.minimum(m[piece_row] - piece * DNABERT_PIECE, DNABERT_PIECE)
    out[piece_row, piece * width + 1 + in_piece] = ids_of.sep_id
    out = out[:, :max_len]
    cut = xp.nonzero(full > max_len)[0]
    out[cut, max_len - 1] = ids_of.sep_id
    length = xp.minimum(full, max_len)
    mask = (xp.arange(max_len)[None, :] < length[:, None]).astype(np.uint8)
    out[mask == 0] = ids_of.pad_id
    return xp.ascontiguousarray(out), mask


def _check_kmer_args(k: int, stride: int, scheme: str) -> tuple[int, int]:
    k = check_k(k)
    stride = positive_int("stride", stride)
    check_choice("scheme", scheme, KMER_SCHEMES)
    if stride > 2**31 - 1:
        raise invalid("stride", stride, "is too large; use stride < 2**31")
    if scheme == "nucleotide-transformer" and k != NT_K:
        raise invalid("k", k, f"must be {NT_K} with scheme='nucleotide-transformer'")
    return k, stride


def _nt_run(
    batch: SequenceBatch, max_len: int, *, count_only: bool, device: Device
) -> tuple[np.ndarray, Any, Any]:
    """Run the Nucleotide Transformer tokeniser; return ``(n_tokens, ids, mask)``.

    ``n_tokens`` is a ``(n,) int64`` host array; ``ids`` ``(n, max_len) int32`` and ``mask``
    ``(n, max_len) uint8`` are on ``device`` (left unwritten with ``count_only``).
    """
    scheme_ids = kmer_ids(NT_K, "nucleotide-transformer")
    n = len(batch)
    xp = array_module(device)
    ids = xp.empty((n, max_len), dtype=np.int32)
    mask = xp.empty((n, max_len), dtype=np.uint8)
    n_tokens = xp.empty(n, dtype=np.int64)
    data, offsets = batch.arrays(device)
    NT_TOKENIZE(
        device,
        grid=_kernels.thread_per_row_grid(n),
        data=data,
        offsets=offsets,
        digits=base_digits(scheme_ids.order, lower=False),
        base_ids=_nt_base_ids(),
        k=NT_K,
        cls_id=scheme_ids.cls_id,
        first_id=scheme_ids.first_id,
        pad_id=scheme_ids.pad_id,
        n_rows=n,
        max_len=max_len,
        count_only=count_only,
        n_tokens=n_tokens,
        ids=ids,
        mask=mask,
    )
    return to_numpy(n_tokens), ids, mask
