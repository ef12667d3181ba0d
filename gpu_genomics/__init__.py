"""gpu-genomics: GPU-accelerated preprocessing of genomics files into ML-ready arrays.

Every operation takes ``device="auto" | "gpu" | "cpu"`` (default: ``$GPU_GENOMICS_DEVICE``,
else ``auto``) and returns arrays on the device that computed them; :func:`to_numpy` brings
any result to the host.
"""

from __future__ import annotations

import logging

from .device import gpu_status, resolve_device, to_numpy
from .errors import DeviceError, GpuGenomicsError, InputError
from .gc import gc_content, gc_counts
from .kmers import kmer_counts, kmer_names
from .onehot import one_hot
from .revcomp import reverse_complement
from .sequences import SequenceBatch, as_batch, read_fastx
from .tokenize import kmer_token_counts, kmer_tokenize, kmer_vocabulary, tokenize

__version__ = "0.1.0"

logging.getLogger("gpu_genomics").addHandler(logging.NullHandler())

__all__ = [
    "DeviceError",
    "GpuGenomicsError",
    "InputError",
    "SequenceBatch",
    "__version__",
    "as_batch",
    "gc_content",
    "gc_counts",
    "gpu_status",
    "kmer_counts",
    "kmer_names",
    "kmer_token_counts",
    "kmer_tokenize",
    "kmer_vocabulary",
    "one_hot",
    "read_fastx",
    "resolve_device",
    "reverse_complement",
    "to_numpy",
    "tokenize",
]
