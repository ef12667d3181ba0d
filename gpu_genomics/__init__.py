"""gpu-genomics: GPU-accelerated preprocessing of genomics files into ML-ready arrays.

Every operation takes ``device="auto" | "gpu" | "cpu"`` (default: ``$GPU_GENOMICS_DEVICE``,
else ``auto``) and returns arrays on the device that computed them; :func:`to_numpy` brings
any result to the host.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from .device import gpu_status, resolve_device, to_numpy
from .errors import DeviceError, GpuGenomicsError, InputError
from .expression.bulk import (
    Scaler,
    apply_scaler,
    filter_low_expression,
    fit_scaler,
    load_scaler,
    log_transform,
    preprocess_bulk,
    save_scaler,
)
from .expression.tables import LabeledMatrix, read_table
from .sequence.batch import SequenceBatch, as_batch, read_fastx
from .sequence.gc_content import gc_content, gc_counts
from .sequence.kmers import kmer_counts, kmer_names
from .sequence.onehot import one_hot
from .sequence.revcomp import reverse_complement
from .sequence.tokenizers import kmer_token_counts, kmer_tokenize, kmer_vocabulary, tokenize
from .variants.reader import VcfReader, read_vcf

__version__ = "0.1.0"

logging.getLogger("gpu_genomics").addHandler(logging.NullHandler())


def __getattr__(name: str) -> Any:
    # gpu_genomics.sc / .singlecell on first use, so that importing the package stays light
    if name in ("sc", "singlecell"):
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'gpu_genomics' has no attribute {name!r}")


__all__ = [
    "DeviceError",
    "GpuGenomicsError",
    "InputError",
    "LabeledMatrix",
    "Scaler",
    "SequenceBatch",
    "VcfReader",
    "__version__",
    "apply_scaler",
    "as_batch",
    "filter_low_expression",
    "fit_scaler",
    "gc_content",
    "gc_counts",
    "gpu_status",
    "kmer_counts",
    "kmer_names",
    "kmer_token_counts",
    "kmer_tokenize",
    "kmer_vocabulary",
    "load_scaler",
    "log_transform",
    "one_hot",
    "preprocess_bulk",
    "read_fastx",
    "read_table",
    "read_vcf",
    "resolve_device",
    "reverse_complement",
    "save_scaler",
    "to_numpy",
    "tokenize",
]
