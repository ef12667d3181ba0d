"""DNA sequences into model inputs.

What lives here: :mod:`.batch` (:class:`SequenceBatch`, the flat bytes + offsets every operation
takes, and :func:`as_batch`), :mod:`.fastx` (FASTA/FASTQ reading), :mod:`.alphabet` (byte
tables shared by kernels and twins), :mod:`.gather` (the fixed-width row engine), :mod:`.onehot`,
:mod:`.tokenizers` (per-base and k-mer tokenizers of DNA language models), :mod:`.kmers` (k-mer
counts), :mod:`.revcomp`, :mod:`.gc_content`, and :mod:`.encode` (the ``encode`` job). Each
operation's CUDA launcher and numba CPU twin sit side by side in its module; semantics in
``docs/sequence.md``.
"""

from __future__ import annotations

from .batch import SequenceBatch, as_batch
from .encode import ENCODE_ARRAYS, encode_file
from .fastx import read_fastx
from .gc_content import gc_content, gc_counts
from .kmers import kmer_counts, kmer_names
from .onehot import one_hot
from .revcomp import reverse_complement
from .tokenizers import kmer_token_counts, kmer_tokenize, kmer_vocabulary, tokenize

__all__ = [
    "ENCODE_ARRAYS",
    "SequenceBatch",
    "as_batch",
    "encode_file",
    "gc_content",
    "gc_counts",
    "kmer_counts",
    "kmer_names",
    "kmer_token_counts",
    "kmer_tokenize",
    "kmer_vocabulary",
    "one_hot",
    "read_fastx",
    "reverse_complement",
    "tokenize",
]
