"""gpu-genomics: GPU-accelerated preprocessing of genomics files into ML-ready arrays.

Every operation takes ``device="auto" | "gpu" | "cpu"`` (default: ``$GPU_GENOMICS_DEVICE``,
else ``auto``) and returns arrays on the device that computed them; :func:`to_numpy` brings
any result to the host. The jobs (:func:`build_interval_dataset`, :func:`encode_file`,
:func:`convert_vcf`, :func:`preprocess_bulk_file`, ``gpu_genomics.sc.preprocess_file``) turn
input files into output files and return a summary; the commands of ``gpu-genomics`` call them.

Subpackages, one per modality: :mod:`.sequence`, :mod:`.intervals`, :mod:`.variants`,
:mod:`.expression` (bulk tables and :mod:`.sc`, single-cell); :mod:`.io` (writing, provenance,
declared outputs) and :mod:`.cli`.

Importing the package imports no modality (nor NumPy): each name below is imported from its
module on first use (PEP 562), so ``gpu-genomics vcf`` pays only for what ``vcf`` needs.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ._lazy import lazy_attributes

#: The package version: the one source, read by the build backend (pyproject's dynamic
#: version) and by :func:`gpu_genomics.io.provenance.version`.
__version__ = "0.1.0"

logging.getLogger("gpu_genomics").addHandler(logging.NullHandler())

if TYPE_CHECKING:  # what the lazy names below resolve to, for type checkers and IDEs
    from . import sc as sc
    from . import singlecell as singlecell
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

#: Each public name -> (the module that defines it, relative to this package; its name there,
#: or None for the module itself).
_LAZY: dict[str, tuple[str, str | None]] = {
    **{name: ("device", name) for name in ("gpu_status", "resolve_device", "to_numpy")},
    **{name: ("errors", name) for name in ("DeviceError", "GpuGenomicsError", "InputError")},
    **{
        name: ("expression.bulk", name)
        for name in (
            "Scaler",
            "apply_scaler",
            "filter_low_expression",
            "fit_scaler",
            "log_transform",
            "preprocess_bulk",
        )
    },
    "preprocess_bulk_file": ("expression.bulk_job", "preprocess_bulk_file"),
    "load_scaler": ("expression.scaler_files", "load_scaler"),
    "save_scaler": ("expression.scaler_files", "save_scaler"),
    "LabeledMatrix": ("expression.tables", "LabeledMatrix"),
    "read_table": ("expression.tables", "read_table"),
    "IntervalOptions": ("intervals.job", "IntervalOptions"),
    "build_interval_dataset": ("intervals.job", "build_interval_dataset"),
    "SequenceBatch": ("sequence.batch", "SequenceBatch"),
    "as_batch": ("sequence.batch", "as_batch"),
    "encode_file": ("sequence.encode", "encode_file"),
    "read_fastx": ("sequence.fastx", "read_fastx"),
    "gc_content": ("sequence.gc_content", "gc_content"),
    "gc_counts": ("sequence.gc_content", "gc_counts"),
    "kmer_counts": ("sequence.kmers", "kmer_counts"),
    "kmer_names": ("sequence.kmers", "kmer_names"),
    "one_hot": ("sequence.onehot", "one_hot"),
    "reverse_complement": ("sequence.revcomp", "reverse_complement"),
    **{
        name: ("sequence.tokenizers", name)
        for name in ("kmer_token_counts", "kmer_tokenize", "kmer_vocabulary", "tokenize")
    },
    "genotypes": ("variants.genotypes", None),
    "VcfOptions": ("variants.convert", "VcfOptions"),
    "convert_vcf": ("variants.convert", "convert_vcf"),
    "HaplotypeOptions": ("variants.haplotypes", "HaplotypeOptions"),
    "haplotype_windows": ("variants.haplotypes", "haplotype_windows"),
    "VcfReader": ("variants.reader", "VcfReader"),
    "read_vcf": ("variants.reader", "read_vcf"),
    "WindowOptions": ("variants.windows", "WindowOptions"),
    "variant_windows": ("variants.windows", "variant_windows"),
}

#: The submodules reachable as attributes (``gg.intervals.read_bed``, ``gg.sc``), imported on
#: first use like the names above.
_SUBMODULES = frozenset(
    {
        "_kernels",
        "cli",
        "data",
        "device",
        "errors",
        "execution",
        "expression",
        "info",
        "intervals",
        "io",
        "report",
        "sc",
        "sequence",
        "singlecell",
        "variants",
    }
)


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, _SUBMODULES)


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
