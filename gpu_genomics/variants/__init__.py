"""VCF/BCF genotypes into arrays for genotype models.

What lives here: :mod:`.reader` (:class:`VcfReader`, a numba parser of VCF text plus htslib for
BCF and regions, with VCF Zarr names), :mod:`.genotypes` (dosage, frequencies, call rates,
filters, standardization: one NumPy/CuPy implementation), :mod:`.convert` (the ``vcf`` job,
:func:`convert_vcf`), :mod:`.windows` (reference and alternate windows around variants,
:func:`variant_windows`) and :mod:`.haplotypes` (personal haplotypes over regions,
:func:`haplotype_windows`). Semantics in ``docs/variants.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes

if TYPE_CHECKING:
    from . import genotypes
    from .convert import VCF_ARRAYS, VcfOptions, convert_vcf
    from .haplotypes import HAPLOTYPE_ARRAYS, HaplotypeOptions, haplotype_windows
    from .reader import VcfReader, read_vcf
    from .windows import VARIANT_WINDOW_ARRAYS, Encoding, WindowOptions, variant_windows

# imported on first use: the ``vcf`` job does not import the windows' reference and sequence
# code (nor ``gpu_genomics.intervals``)
__getattr__, __dir__ = lazy_attributes(
    __name__,
    {
        "genotypes": ("genotypes", None),
        **{name: ("convert", name) for name in ("VCF_ARRAYS", "VcfOptions", "convert_vcf")},
        **{
            name: ("haplotypes", name)
            for name in ("HAPLOTYPE_ARRAYS", "HaplotypeOptions", "haplotype_windows")
        },
        **{name: ("reader", name) for name in ("VcfReader", "read_vcf")},
        **{
            name: ("windows", name)
            for name in ("VARIANT_WINDOW_ARRAYS", "Encoding", "WindowOptions", "variant_windows")
        },
    },
)

__all__ = [
    "HAPLOTYPE_ARRAYS",
    "VARIANT_WINDOW_ARRAYS",
    "VCF_ARRAYS",
    "Encoding",
    "HaplotypeOptions",
    "VcfOptions",
    "VcfReader",
    "WindowOptions",
    "convert_vcf",
    "genotypes",
    "haplotype_windows",
    "read_vcf",
    "variant_windows",
]
