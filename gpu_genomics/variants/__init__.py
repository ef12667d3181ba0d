"""VCF/BCF genotypes into arrays for genotype models.

What lives here: :mod:`.reader` (:class:`VcfReader`, a numba parser of VCF text plus htslib for
BCF and regions, with VCF Zarr names), :mod:`.genotypes` (dosage, frequencies, call rates,
filters, standardization: one NumPy/CuPy implementation) and :mod:`.convert` (the ``vcf`` job,
:func:`convert_vcf`). Semantics in ``docs/variants.md``.
"""

from __future__ import annotations

from . import genotypes
from .convert import VCF_ARRAYS, VcfOptions, convert_vcf
from .reader import VcfReader, read_vcf

__all__ = ["VCF_ARRAYS", "VcfOptions", "VcfReader", "convert_vcf", "genotypes", "read_vcf"]
