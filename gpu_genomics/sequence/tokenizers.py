"""Tokenisers for DNA language models: per-base ids and k-mer ids, with attention masks.

Schemes (``../shared/reference/NOTES.md`` section 3):

* ``tokenize(scheme="spec")``: the genomics specification's vocabulary A0 C1 G2 T3 N4 <PAD>5,
  case-insensitive, any other letter N, right padding, truncation to ``max_len``.
* ``tokenize(scheme="hyenadna")``: HyenaDNA/Caduceus character ids [CLS]0 [SEP]1 [BOS]2
  [MASK]3 [PAD]4 [RESERVED]5 [UNK]6 A7 C8 G9 T10 N11, left padding; lowercase letters and other
  IUPAC letters are [UNK] unless ``uppercase=True``.
* ``kmer_tokenize(scheme="plain")``: k-mers every ``stride`` bases with ids in lexicographic
  A,C,G,T order (the columns of :func:`~gpu_genomics.kmer_counts`), ``4**k`` for a k-mer with a
  non-ACGT base, ``4**k + 1`` for padding; no special tokens.
* ``kmer_tokenize(scheme="dnabert")``: DNABERT ids [PAD]0 [UNK]1 [CLS]2 [SEP]3 [MASK]4, k-mers
  from 5 in lexicographic A,T,C,G order; ``[CLS] k-mers [SEP]``, right padding.
* ``kmer_tokenize(scheme="nucleotide-transformer")``: Nucleotide Transformer v2 (k = 6):
  <cls>, each A/C/G/T run cut into non-overlapping 6-mers (ids 6..4101, A,T,C,G order) with the
  leftover bases as single tokens (A4102 T4103 C4104 G4105), N4106, other letters <unk>0,
  <pad>1 on the right.

The k-mer schemes read bases case-insensitively. Every function returns ``(ids, mask)``:
``(n, max_len) int32`` token ids and ``(n, max_len) uint8`` attention mask (1 = real token).
"""

from __future__ import annotations

import functools
import itertools
from typing import Any, Literal

import numba
import numpy as np

from .. import _kernels
from ..device import Device, array_module, resolve_device
from ..errors import InputError, positive_int
from .alphabet import base_digits
from .batch import SequenceBatch, SequencesLike, as_batch
from .gather import gather_rows, placement_mask

TokenScheme = Literal["spec", "hyenadna"]
KmerScheme = Literal["plain", "dnabert", "nucleotide-transformer"]

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
MAX_K = 15


@functools.cache
def _base_token_table(scheme: str, uppercase: bool) -> tuple[np.ndarray, int]:
    """``((256, 1) uint32 table, pad id)`` for a per-base scheme."""
    if scheme == "spec":
        table = np.full(256, SPEC_VOCAB["N"], dtype=np.uint32)
        for letter in "ACGT":
            table[ord(letter)] = table[ord(letter.lower())] = SPEC_VOCAB[letter]
        return table.reshape(256, 1), SPEC_VOCAB["<PAD>"]
    if scheme == "hyenadna":
        table = np.full(256, HYENADNA_VOCAB["[UNK]"], dtype=np.uint32)
        for letter in "ACGTN":
            table[ord(letter)] = HYENADNA_VOCAB[letter]
            if uppercase:
                table[ord(letter.lower())] = HYENADNA_VOCAB[letter]
        return table.reshape(256, 1), HYENADNA_VOCAB["[PAD]"]
    raise InputError(f"scheme={scheme!r} is not one of spec, hyenadna")


def tokenize(
    seqs: SequencesLike,
    max_len: int,
    scheme: TokenScheme = "spec",
    *,
    uppercase: bool = False,
    device: str | None = None,
) -> tuple[Any, Any]:
    """One token per base, padded or truncated to ``max_len``.

    Args:
        seqs: sequences (see :func:`~gpu_genomics.sequences.as_batch`).
        max_len: tokens per row; longer records keep their first ``max_len`` bases.
        scheme: ``"spec"`` (right padding) or ``"hyenadna"`` (left padding).
        uppercase: hyenadna only: read lowercase letters as upper case instead of [UNK].
        device: ``"auto" | "gpu" | "cpu"``.

    Returns:
        ``(ids, mask)``: ``(n, max_len) int32`` and ``(n, max_len) uint8`` on the device.
    """
    batch = as_batch(seqs)
    max_len = positive_int("max_len", max_len)
    table, pad_id = _base_token_table(scheme, bool(uppercase))
    device_name = resolve_device(device)
    pad = "left" if scheme == "hyenadna" else "right"
    pad_words = np.array([pad_id], dtype=np.uint32)
    words, (dst, _, count) = gather_rows(batch, max_len, pad, table, pad_words, device_name)
    xp = array_module(device_name)
    ids = words.view(np.int32).reshape(len(batch), max_len)
    mask = placement_mask(xp, xp.asarray(dst), xp.asarray(count), max_len)
    return ids, mask


# --- k-mer tokenisation --------------------------------------------------------------------
@functools.cache
def kmer_vocabulary(k: int, scheme: KmerScheme = "plain") -> dict[str, int]:
    """Token string -> id for a k-mer scheme (special tokens included)."""
    k, _ = _check_kmer_args(k, 1, scheme)
    if scheme == "plain":
        vocab = {"".join(p): i for i, p in enumerate(itertools.product("ACGT", repeat=k))}
        return {**vocab, "[UNK]": 4**k, "[PAD]": 4**k + 1}
    if scheme == "dnabert":
        kmers = ("".join(p) for p in itertools.product("ATCG", repeat=k))
        return {**DNABERT_SPECIALS, **{kmer: 5 + i for i, kmer in enumerate(kmers)}}
    if scheme == "nucleotide-transformer":
        kmers = ("".join(p) for p in itertools.product("ATCG", repeat=NT_K))
        vocab = {**NT_SPECIALS, **{kmer: 6 + i for i, kmer in enumerate(kmers)}}
        first_base = len(vocab)
        return {**vocab, **{b: first_base + i for i, b in enumerate("ATCGN")}}
    raise InputError(f"scheme={scheme!r} is not one of plain, dnabert, nucleotide-transformer")


@numba.njit(parallel=True, cache=True, nogil=True)
def _kmer_token_ids_cpu(
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


@numba.njit(parallel=True, cache=True, nogil=True)
def _nt_tokenize_cpu(data, offsets, digits, count_only, n_tokens, ids, mask):  # pragma: no cover
    n_rows = len(offsets) - 1
    max_len = ids.shape[1]
    for row in numba.prange(n_rows):
        end = offsets[row + 1]
        slot = 0
        if not count_only and slot < max_len:
            ids[row, slot] = 3  # <cls>
        slot += 1
        i = offsets[row]
        while i < end:
            d = digits[data[i]]
            if d > 3:
                token = 4106 if data[i] == 78 or data[i] == 110 else 0  # N / n, else <unk>
                if not count_only and slot < max_len:
                    ids[row, slot] = token
                slot += 1
                i += 1
                continue
            run_end = i
            while run_end < end and digits[data[run_end]] <= 3:
                run_end += 1
            full = (run_end - i) // 6
            for t in range(full):
                code = 0
                for b in range(6):
                    code = (code << 2) | digits[data[i + 6 * t + b]]
                if not count_only and slot < max_len:
                    ids[row, slot] = 6 + code
                slot += 1
            for b in range(i + 6 * full, run_end):
                if not count_only and slot < max_len:
                    ids[row, slot] = 4102 + digits[data[b]]
                slot += 1
            i = run_end
        n_tokens[row] = slot
        if not count_only:
            for j in range(max_len):
                if j >= slot:
                    ids[row, j] = 1  # <pad>
                mask[row, j] = 1 if j < slot else 0


def kmer_token_counts(
    seqs: SequencesLike,
    k: int,
    stride: int = 1,
    scheme: KmerScheme = "plain",
    *,
    device: str | None = None,
) -> np.ndarray:
    """``(n,) int64`` number of tokens each record gives, special tokens included, before
    padding or truncation (the ``max_len`` that keeps every token)."""
    batch = as_batch(seqs)
    k, stride = _check_kmer_args(k, stride, scheme)
    if scheme == "nucleotide-transformer":
        return _nt_run(batch, 0, True, resolve_device(device))[0]
    lengths = batch.lengths
    n_kmers = np.where(lengths >= k, (lengths - k) // stride + 1, 0)
    return n_kmers + (2 if scheme == "dnabert" else 0)


def kmer_tokenize(
    seqs: SequencesLike,
    k: int,
    stride: int = 1,
    scheme: KmerScheme = "plain",
    max_len: int | None = None,
    *,
    device: str | None = None,
) -> tuple[Any, Any]:
    """k-mer tokens for DNABERT-style and Nucleotide Transformer models.

    Args:
        seqs: sequences (see :func:`~gpu_genomics.sequences.as_batch`).
        k: k-mer size, 1..15 (``nucleotide-transformer`` requires 6).
        stride: bases between k-mer starts (1 = overlapping); ``nucleotide-transformer``
            always steps 6.
        scheme: ``"plain"``, ``"dnabert"`` or ``"nucleotide-transformer"`` (module docstring).
        max_len: tokens per row including special tokens; ``None`` means the longest row.
            Longer rows are truncated; DNABERT rows keep [CLS] and [SEP] when
            ``max_len >= 2`` (``max_len=1`` leaves [CLS] alone).
        device: ``"auto" | "gpu" | "cpu"``.

    Returns:
        ``(ids, mask)``: ``(n, max_len) int32`` and ``(n, max_len) uint8`` on the device.
    """
    batch = as_batch(seqs)
    k, stride = _check_kmer_args(k, stride, scheme)
    device_name = resolve_device(device)
    if max_len is None:
        counts = kmer_token_counts(batch, k, stride, scheme, device=device_name)
        max_len = max(int(counts.max()) if len(counts) else 0, 1)
    max_len = positive_int("max_len", max_len)
    if scheme == "nucleotide-transformer":
        _, ids, mask = _nt_run(batch, max_len, False, device_name)
        return ids, mask
    if scheme == "plain":
        order, first_id, unk_id, cls_id, sep_id, pad_id = "ACGT", 0, 4**k, -1, -1, 4**k + 1
    else:
        order, first_id, unk_id, cls_id, sep_id, pad_id = "ATCG", 5, 1, 2, 3, 0
    digits = base_digits(order)
    xp = array_module(device_name)
    ids = xp.empty((len(batch), max_len), dtype=np.int32)
    mask = xp.empty((len(batch), max_len), dtype=np.uint8)
    scalars = (k, stride, first_id, unk_id, cls_id, sep_id, pad_id)
    if device_name == "cpu":
        _kmer_token_ids_cpu(batch.data, batch.offsets, digits, *scalars, ids, mask)
    else:
        data, offsets = batch.arrays("gpu")
        fn = _kernels.kernel("tokenize", "kmer_token_ids")
        args = (
            data,
            offsets,
            xp.asarray(digits),
            *map(_kernels.i32, scalars),
            _kernels.i64(len(batch)),
            _kernels.i32(max_len),
            ids,
            mask,
        )
        _kernels.launch_rows(fn, len(batch), max_len, args)
    return ids, mask


def _check_kmer_args(k: int, stride: int, scheme: str) -> tuple[int, int]:
    k = positive_int("k", k)
    stride = positive_int("stride", stride)
    if scheme not in ("plain", "dnabert", "nucleotide-transformer"):
        raise InputError(f"scheme={scheme!r} is not one of plain, dnabert, nucleotide-transformer")
    if stride > 2**31 - 1:
        raise InputError(f"stride={stride} is too large; use stride < 2**31")
    if k > MAX_K:
        raise InputError(f"k={k} is too large; k-mer ids are 32-bit, use k <= {MAX_K}")
    if scheme == "nucleotide-transformer" and k != NT_K:
        raise InputError(f"scheme='nucleotide-transformer' uses 6-mers; got k={k}")
    return k, stride


def _nt_run(
    batch: SequenceBatch, max_len: int, count_only: bool, device: Device
) -> tuple[np.ndarray, Any, Any]:
    """Run the Nucleotide Transformer tokeniser; returns ``(n_tokens, ids, mask)``."""
    digits = base_digits("ATCG")
    n = len(batch)
    xp = array_module(device)
    ids = xp.empty((n, max_len), dtype=np.int32)
    mask = xp.empty((n, max_len), dtype=np.uint8)
    n_tokens = xp.empty(n, dtype=np.int64)
    if device == "cpu":
        _nt_tokenize_cpu(batch.data, batch.offsets, digits, count_only, n_tokens, ids, mask)
        return n_tokens, ids, mask
    data, offsets = batch.arrays("gpu")
    fn = _kernels.kernel("tokenize", "nt_tokenize")
    args = (
        data,
        offsets,
        xp.asarray(digits),
        _kernels.i64(n),
        _kernels.i32(max_len),
        _kernels.i32(int(count_only)),
        n_tokens,
        ids,
        mask,
    )
    if n:
        fn((-(-n // _kernels.THREADS),), (_kernels.THREADS,), args)
    return n_tokens.get(), ids, mask
