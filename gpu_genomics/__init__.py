"""gpu-genomics: GPU-accelerated preprocessing of genomics files into ML-ready arrays.

Every operation takes ``device="auto" | "gpu" | "cpu"`` (default: ``$GPU_GENOMICS_DEVICE``,
else ``auto``) and returns arrays on the device that computed them; :func:`to_numpy` brings
any result to the host. The jobs (:func:`build_interval_dataset`, :func:`encode_file`,
:func:`convert_vcf`, :func:`preprocess_bulk_file`, ``gpu_genomics.sc.preprocess_file``) turn
input files into output files and return a summary; the commands of ``gpu-genomics`` call them.

Subpackages, one per modality: :mod:`.sequence`, :mod:`.intervals`, :mod:`.variants`,
:mod:`.expression` (bulk tables and :mod:`.sc`, single-cell); :mod:`.io` (writing, provenance,
declared outputs) and :mod:`.cli`.
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
    log_transform,
    preprocess_bulk,
)
from .expression.bulk_job import preprocess_bulk_file
from .expression.scaler_files import load_scaler, save_scaler
from .expression.tables import LabeledMatrix, read_table
from .intervals.job import IntervalOptions, build_interval_dataset
from .sequence.batch import SequenceBatch, as_batch
from .sequence.encode import encode_file
from .sequence.fastx import read_fastx
from .sequence.gc_content import gc_content, gc_counts
from .sequence.kmers import kmer_counts, kmer_names
from .sequence.onehot import one_hot
from .sequence.revcomp import reverse_complement
from .sequence.tokenizers import (
    kmer_token_counts,
    kmer_tokenize,
    kmer_vocabulary,
    tokenize,
)
from .variants import genotypes
from .variants.convert import VcfOptions, convert_vcf
from .variants.haplotypes import HaplotypeOptions, haplotype_windows
from .variants.reader import VcfReader, read_vcf
from .variants.windows import WindowOptions, variant_windows

#: The package version: the one source, read by the build backend (pyproject's dynamic
#: version) and by :func:`gpu_genomics.io.provenance.version`.
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
    "HaplotypeOptions",
    "InputError",
    "IntervalOptions",
    "LabeledMatrix",
    "Scaler",
    "SequenceBatch",
    "VcfOptions",
    "VcfReader",
    "WindowOptions",
    "__version__",
    "apply_scaler",
    "as_batch",
    "build_interval_dataset",
    "convert_vcf",
    "encode_file",
    "filter_low_expression",
    "fit_scaler",
    "gc_content",
    "gc_counts",
    "genotypes",
    "gpu_status",
    "haplotype_windows",
    "kmer_counts",
    "kmer_names",
    "kmer_token_counts",
    "kmer_tokenize",
    "kmer_vocabulary",
    "load_scaler",
    "log_transform",
    "one_hot",
    "preprocess_bulk",
    "preprocess_bulk_file",
    "read_fastx",
    "read_table",
    "read_vcf",
    "resolve_device",
    "reverse_complement",
    "save_scaler",
    "to_numpy",
    "tokenize",
    "variant_windows",
]
