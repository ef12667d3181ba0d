"""The ``vcf`` job: VCF/BCF -> genotypes, dosage matrix and QC figures in HDF5/Zarr.

The input is read one chunk of variants at a time
(:class:`~gpu_genomics.variants.reader.VcfReader`); each chunk's QC figures, filters and
dosages are computed on the chosen device (:mod:`gpu_genomics.variants.genotypes`) and its kept
rows are spooled to ``.npy`` files in a
temporary folder beside the output. When the whole input has been read (and so the number of
kept variants is known), the arrays are written through :class:`~gpu_genomics.io.store.ArrayWriter`
(atomic: nothing is left behind on error). Memory is bounded by a chunk of variants plus one
block of output rows (about 256 MiB).

Only the variants that pass the filters are written; ``variant_index`` maps them back to the
input's records. The arrays are declared in :data:`VCF_ARRAYS` (``docs/outputs.md``; their
semantics in ``docs/variants.md``). Every array names its axes (Zarr ``dimension_names``, HDF5
``_ARRAY_DIMENSIONS``) and Zarr metadata is consolidated, so ``xarray.open_zarr`` (how sgkit
loads VCF Zarr) opens the output.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..device import array_module, resolve_device, to_numpy
from ..errors import InputError, check_choice, positive_int, with_options
from ..io.provenance import provenance
from ..io.spec import STRING, ArraySpec, OutputSpec
from ..io.store import (
    ArrayWriter,
    check_output_folder,
    format_from_path,
    resolve_compression,
    spool_prefix,
)
from . import genotypes as G
from .reader import DEFAULT_CHUNK_VARIANTS, VcfReader, allele_table, pad_ploidy

log = logging.getLogger("gpu_genomics")

#: Largest block of output rows assembled in memory when writing ``(samples, columns)`` arrays.
BLOCK_BYTES = 256 * 2**20
#: Written only with ``standardize=True``.
STANDARDIZED = "standardize=True"
_V, _S, _C, _Z = ("variants",), ("samples",), ("dosage_columns",), ("standardized_columns",)

VCF_ARRAYS = OutputSpec(
    "vcf: VCF/BCF -> genotypes, dosage and QC (HDF5/Zarr, VCF Zarr names)",
    (
        ArraySpec(
            "call_genotype",
            "int8",
            (*_V, *_S, "ploidy"),
            "allele index of each allele of each call; -1 missing allele, -2 fill for a "
            "call of lower ploidy",
        ),
        ArraySpec("call_genotype_phased", "bool", (*_V, *_S), "every separator of the call is '|'"),
        ArraySpec("variant_contig", "int32", _V, "index into contig_id"),
        ArraySpec("variant_position", "int32", _V, "POS, 1-based"),
        ArraySpec("variant_id", STRING, _V, "ID ('.' kept)"),
        ArraySpec("variant_allele", STRING, (*_V, "alleles"), "REF, then every ALT; '' padding"),
        ArraySpec("variant_quality", "float32", _V, "QUAL; NaN for '.'"),
        ArraySpec("variant_filter_pass", "bool", _V, "FILTER is PASS"),
        ArraySpec(
            "variant_index",
            "int64",
            _V,
            "0-based index of the record among the records read (file or region order)",
        ),
        ArraySpec("sample_id", STRING, _S, "sample names, in header order"),
        ArraySpec(
            "contig_id", STRING, ("contigs",), "##contig IDs, then contigs seen only in records"
        ),
        ArraySpec("variant_call_rate", "float64", _V, "fully called calls / samples"),
        ArraySpec(
            "sample_missing_rate", "float64", _S, "calls with a missing allele / written variants"
        ),
        ArraySpec(
            "dosage",
            "int8",
            (*_S, *_C),
            "counted alleles per call (non-REF, or one ALT with multiallelic=split); "
            "-1 for a call with a missing allele",
        ),
        ArraySpec("dosage_variant", "int64", _C, "row of each column in the variant arrays"),
        ArraySpec(
            "dosage_allele",
            "int8",
            _C,
            "ALT allele counted (1..) with multiallelic=split; -1: any non-REF",
        ),
        ArraySpec(
            "dosage_allele_frequency",
            "float64",
            _C,
            "counted alleles / called alleles; NaN when none is called",
        ),
        ArraySpec("dosage_maf", "float64", _C, "min(AF, 1 - AF)"),
        ArraySpec(
            "dosage_standardized",
            "float32",
            (*_S, *_Z),
            "(x - k p) / sqrt(k p (1 - p)) for a call of ploidy k; missing calls 0",
            STANDARDIZED,
        ),
        ArraySpec(
            "dosage_standardized_column",
            "int64",
            _Z,
            "dosage column of each standardized column (monomorphic ones dropped)",
            STANDARDIZED,
        ),
    ),
)
#: Arrays written ``(samples, columns)`` from ``(columns, samples)`` blocks.
_TRANSPOSED = ("dosage", "dosage_standardized")
#: Arrays written a chunk of variants at a time from the spooled ``.npy`` parts.
_PER_VARIANT_CHUNK = ("call_genotype", "call_genotype_phased")


@dataclass
class VcfOptions:
    """The parameters of :func:`convert_vcf` (the flags of ``vcf``).

    Attributes:
        region: ``chrom`` or ``chrom:start-end`` (1-based, inclusive); needs a ``.tbi``/``.csi``.
        min_maf: keep columns with MAF at least this (0 keeps all, NaN MAF included).
        max_missing: keep variants with at most this fraction of missing calls.
        biallelic_only: keep only variants with exactly one ALT.
        multiallelic: ``"nonref"`` (a column per variant counting non-REF alleles) or
            ``"split"`` (a column per ALT allele).
        standardize: also write ``dosage_standardized``.
        output_format: ``"hdf5"`` or ``"zarr"``; default from the suffix.
        compression: ``none``, ``gzip``, ``lzf`` or ``zstd``.
        chunk_variants: variants read, filtered and written per chunk.
    """

    region: str | None = None
    min_maf: float = 0.0
    max_missing: float = 1.0
    biallelic_only: bool = False
    multiallelic: str = "nonref"
    standardize: bool = False
    output_format: str | None = None
    compression: str | None = None
    chunk_variants: int = DEFAULT_CHUNK_VARIANTS

    def check(self) -> None:
        """Raise :class:`~gpu_genomics.errors.InputError` on the first invalid parameter."""
        positive_int("chunk_variants", self.chunk_variants)
        check_choice("multiallelic", self.multiallelic, G.MULTIALLELIC_MODES)
        G.check_filter_thresholds(min_maf=self.min_maf, max_missing=self.max_missing)


class _Spool:
    """Per-chunk kept rows: big arrays as ``.npy`` files, small ones in memory."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)
        self.files: dict[str, list[Path]] = {}
        self.small: dict[str, list[Any]] = {}

    def save(self, name: str, array: np.ndarray) -> None:
        paths = self.files.setdefault(name, [])
        path = self.folder / f"{name}-{len(paths)}.npy"
        np.save(path, array)
        paths.append(path)

    def add(self, name: str, values: Any) -> None:
        self.small.setdefault(name, []).append(values)

    def cat(self, name: str, dtype: Any) -> np.ndarray:
        parts = self.small.get(name, [])
        if not parts:
            return np.empty(0, dtype=dtype)
        return np.concatenate(parts).astype(dtype, copy=False)

    def load(self, name: str) -> list[np.ndarray]:
        return [np.load(path, mmap_mode="r") for path in self.files.get(name, [])]


def convert_vcf(
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    options: VcfOptions | None = None,
    *,
    device: str | None = None,
    progress: bool = False,
    command: str | None = None,
    **parameters: Any,
) -> dict[str, Any]:
    """Convert a VCF/BCF file into genotype, dosage and QC arrays (:data:`VCF_ARRAYS`).

    Args:
        input_path: ``.vcf``, ``.vcf.gz`` (gzip or bgzip) or ``.bcf``.
        output_path: ``.h5``/``.hdf5`` or ``.zarr`` (or any name with ``output_format``).
        options: a :class:`VcfOptions`; ``parameters`` override its fields.
        device: ``"auto" | "gpu" | "cpu"`` for the genotype math.
        progress: show a progress bar of the variants read.
        command: the command line stored in the provenance (default: this process's).
        **parameters: any field of :class:`VcfOptions` (``min_maf=0.01``, ``region="chr20"``).

    Returns:
        The QC summary (what :func:`format_summary` prints): variants read and kept, dosage
        columns, samples, ploidy, missing rate, MAF spectrum, seconds.

    Raises:
        InputError: bad input or parameters; nothing is written then.

    Memory: one chunk of ``chunk_variants`` variants (their text, genotypes and dosages) plus
    one block of at most 256 MiB of ``(samples, columns)`` output rows.
    """
    options = with_options(options, VcfOptions, parameters, caller="convert_vcf")
    options.check()
    output_format = format_from_path(output_path, options.output_format)  # fail early
    device_name = resolve_device(device)
    xp = array_module(device_name)
    started = time.perf_counter()
    reader = VcfReader(input_path, region=options.region, chunk_variants=options.chunk_variants)
    n_samples = len(reader.samples)
    if n_samples == 0:
        raise InputError(
            f"{input_path}: the VCF has no sample columns, so there are no genotypes to convert"
        )
    check_output_folder(output_path)
    parent = Path(output_path).resolve().parent
    n_read = 0
    n_kept = 0
    n_columns = 0
    missing_counts = np.zeros(n_samples, dtype=np.int64)
    from tqdm import tqdm

    with (
        tempfile.TemporaryDirectory(prefix=spool_prefix(output_path), dir=parent) as tmp,
        tqdm(unit="variant", desc="vcf", disable=not progress or None) as bar,
    ):
        spool = _Spool(tmp)
        for chunk in reader:
            bar.update(len(chunk))
            n_read += len(chunk)
            n_kept_chunk, n_col_chunk = _process_chunk(
                chunk,
                options,
                xp=xp,
                device_name=device_name,
                spool=spool,
                kept_before=n_kept,
                columns_before=n_columns,
                missing_counts=missing_counts,
            )
            n_kept += n_kept_chunk
            n_columns += n_col_chunk
            log.debug("read %d variants, kept %d", n_read, n_kept)
        if n_read == 0:
            where = f" in region {options.region}" if options.region else ""
            raise InputError(f"{input_path}: no variant records{where}; nothing to convert")
        if n_kept == 0:
            log.warning("no variant passed the filters; the output holds empty arrays")
        summary = _summary(
            spool,
            reader,
            n_read=n_read,
            n_kept=n_kept,
            missing_counts=missing_counts,
            options=options,
        )
        summary["seconds"] = round(time.perf_counter() - started, 3)
        resolved = {
            "output_format": output_format,
            "compression": resolve_compression(output_format, options.compression),
        }
        record = provenance(
            "gpu-genomics vcf",
            parameters={**dataclasses.asdict(options), **resolved},
            inputs={"vcf": input_path},
            device=device_name,
            command=command,
        )
        attrs = {
            **record,
            "summary": summary,
            "dosage_layout": "samples x columns; -1 = missing call",
            "vcf_zarr_names": True,
        }
        _write(
            output_path,
            spool,
            reader,
            options=options,
            n_kept=n_kept,
            missing_counts=missing_counts,
            attrs=attrs,
        )
    log.info("wrote %s in %.2f s", output_path, summary["seconds"])
    return summary


def _process_chunk(
    chunk: Any,
    options: VcfOptions,
    *,
    xp: Any,
    device_name: str,
    spool: _Spool,
    kept_before: int,
    columns_before: int,
    missing_counts: np.ndarray,
) -> tuple[int, int]:
    """QC, filters and dosages of one chunk; spools the kept rows. Returns (variants, columns)."""
    gt = xp.asarray(chunk.call_genotype)
    n_alleles = chunk.n_alleles
    call_rate = G.variant_call_rate(gt, device=device_name)
    if options.multiallelic == "nonref":
        dos = G.dosage(gt, device=device_name)
        af = G.allele_frequency(gt, device=device_name)
        column_variant = np.arange(len(chunk), dtype=np.int64)
        column_allele = np.full(len(chunk), -1, dtype=np.int8)
        column_index = xp.asarray(column_variant)
    else:
        dos, column_variant, column_allele = G.split_dosage(gt, n_alleles, device=device_name)
        column_index = xp.asarray(column_variant)
        af = G.allele_frequency(
            gt[column_index], allele=xp.asarray(column_allele), device=device_name
        )
    maf = G.minor_allele_frequency(af)
    keep_column = G.variant_filter(
        maf,
        call_rate[column_index],
        xp.asarray(n_alleles[column_variant]),
        min_maf=options.min_maf,
        max_missing=options.max_missing,
        biallelic_only=options.biallelic_only,
    )
    keep_column_host = to_numpy(keep_column).astype(bool)
    keep_variant = np.zeros(len(chunk), dtype=bool)
    keep_variant[column_variant[keep_column_host]] = True
    # split mode gives an ALT-less site (ALT '.') no column: filter it as nonref mode would
    no_columns = np.flatnonzero(np.bincount(column_variant, minlength=len(chunk)) == 0)
    if len(no_columns):
        rows = xp.asarray(no_columns)
        passes = G.variant_filter(
            G.minor_allele_frequency(G.allele_frequency(gt[rows], device=device_name)),
            call_rate[rows],
            xp.asarray(n_alleles[no_columns]),
            min_maf=options.min_maf,
            max_missing=options.max_missing,
            biallelic_only=options.biallelic_only,
        )
        keep_variant[no_columns[to_numpy(passes).astype(bool)]] = True
    n_kept = int(keep_variant.sum())
    new_row = np.cumsum(keep_variant) - 1 + kept_before
    gt_kept = chunk.call_genotype[keep_variant]
    missing_counts += to_numpy(G.sample_missing_counts(gt[xp.asarray(keep_variant)]))
    spool.save("call_genotype", gt_kept)
    spool.save("call_genotype_phased", chunk.call_genotype_phased[keep_variant])
    dos_kept = dos[keep_column]
    spool.save("dosage", to_numpy(dos_kept))
    af_kept = af[keep_column]
    if options.standardize:
        call_ploidy = (gt != -2).sum(axis=2)[column_index][keep_column]
        std, std_kept = G.standardize(dos_kept, af_kept, ploidy=call_ploidy)
        spool.save("dosage_standardized", to_numpy(std))
        std_columns = np.flatnonzero(to_numpy(std_kept)) + columns_before
        spool.add("dosage_standardized_column", std_columns)
    for name in (
        "variant_contig",
        "variant_position",
        "variant_quality",
        "variant_filter_pass",
        "variant_index",
    ):
        spool.add(name, getattr(chunk, name)[keep_variant])
    spool.add("variant_id", [v for v, k in zip(chunk.variant_id, keep_variant, strict=True) if k])
    spool.add(
        "variant_allele", [a for a, k in zip(chunk.variant_allele, keep_variant, strict=True) if k]
    )
    spool.add("variant_call_rate", to_numpy(call_rate)[keep_variant])
    spool.add("dosage_variant", new_row[column_variant[keep_column_host]])
    spool.add("dosage_allele", column_allele[keep_column_host])
    spool.add("dosage_allele_frequency", to_numpy(af_kept))
    spool.add("dosage_maf", to_numpy(maf[keep_column]))
    return n_kept, int(keep_column_host.sum())


def _summary(
    spool: _Spool,
    reader: VcfReader,
    *,
    n_read: int,
    n_kept: int,
    missing_counts: np.ndarray,
    options: VcfOptions,
) -> dict[str, Any]:
    maf = spool.cat("dosage_maf", np.float64)
    n_samples = len(reader.samples)
    calls = n_kept * n_samples
    summary = {
        "variants_read": n_read,
        "variants_kept": n_kept,
        "dosage_columns": len(maf),
        "samples": n_samples,
        "ploidy": max(reader.max_ploidy, 1),
        "missing_rate": float(missing_counts.sum() / calls) if calls else float("nan"),
        "maf_spectrum": [[label, count] for label, count in G.maf_spectrum(maf)],
    }
    if options.standardize:
        parts = spool.small.get("dosage_standardized_column", [])
        summary["standardized_columns"] = sum(len(part) for part in parts)
    return summary


def _write_transposed(
    out: ArrayWriter, name: str, blocks: list[np.ndarray], n_rows: int, dtype: Any
) -> None:
    """Write the concatenated ``(columns, n_rows)`` blocks, transposed, as array ``name``.

    The array is ``(n_rows, sum of block rows)``, written a block of output rows at a time
    (chunks aligned to those row blocks).
    """
    n_columns = sum(len(b) for b in blocks)
    itemsize = np.dtype(dtype).itemsize
    rows_per_block = max(1, min(n_rows, BLOCK_BYTES // max(1, n_columns * itemsize)))
    target = out.create(name, (n_rows, n_columns), dtype, chunk_rows=rows_per_block)
    if n_columns == 0 or n_rows == 0:
        return
    for r0 in range(0, n_rows, rows_per_block):
        r1 = min(n_rows, r0 + rows_per_block)
        block = np.empty((r1 - r0, n_columns), dtype=dtype)
        c0 = 0
        for part in blocks:
            block[:, c0 : c0 + len(part)] = part[:, r0:r1].T
            c0 += len(part)
        target[r0:r1] = block


def _write_per_chunk(
    out: ArrayWriter, name: str, parts: list[np.ndarray], shape: tuple, dtype: Any
) -> None:
    """Write the spooled chunks of ``call_genotype`` or ``call_genotype_phased`` in order.

    The chunks of ``call_genotype`` are widened to the final ploidy.
    """
    target = out.create(name, shape, dtype)
    start = 0
    for part in parts:
        if len(part):
            values = np.asarray(part)
            if name == "call_genotype":
                values = pad_ploidy(values, shape[2])
            target[start : start + len(part)] = values
        start += len(part)


def _write(
    output_path: str | os.PathLike,
    spool: _Spool,
    reader: VcfReader,
    *,
    options: VcfOptions,
    n_kept: int,
    missing_counts: np.ndarray,
    attrs: dict[str, Any],
) -> None:
    """Write every array of :data:`VCF_ARRAYS` (the standardized ones with ``standardize``)."""
    n_samples = len(reader.samples)
    ploidy = max(reader.max_ploidy, 1)
    computed = {
        "variant_id": lambda: [i for part in spool.small.get("variant_id", []) for i in part],
        "variant_allele": lambda: allele_table(
            [a for part in spool.small.get("variant_allele", []) for a in part]
        ),
        "sample_id": lambda: list(reader.samples),
        "contig_id": lambda: list(reader.contigs),
        "sample_missing_rate": lambda: (
            missing_counts / n_kept if n_kept else np.full(n_samples, np.nan)
        ),
    }
    with ArrayWriter(
        output_path,
        format=options.output_format,
        compression=options.compression,
        chunk_rows=options.chunk_variants,
        spec=VCF_ARRAYS,
    ) as out:
        for array in VCF_ARRAYS:
            if array.when == STANDARDIZED and not options.standardize:
                continue
            if array.name in _PER_VARIANT_CHUNK:
                shape = (n_kept, n_samples, ploidy)[: len(array.dims)]
                _write_per_chunk(out, array.name, spool.load(array.name), shape, array.dtype)
            elif array.name in _TRANSPOSED:
                _write_transposed(out, array.name, spool.load(array.name), n_samples, array.dtype)
            elif array.name in computed:
                out.write(array.name, computed[array.name]())
            else:
                out.write(array.name, spool.cat(array.name, array.dtype))
        out.attrs(attrs)


def format_summary(summary: dict[str, Any]) -> str:
    """The QC summary as printed by the CLI."""
    lines = [
        f"variants: {summary['variants_kept']} kept of {summary['variants_read']} read "
        f"({summary['dosage_columns']} dosage columns)",
        f"samples: {summary['samples']} (ploidy {summary['ploidy']})",
        f"missing call rate (kept variants): {summary['missing_rate']:.4g}",
        "MAF spectrum: "
        + ", ".join(f"{label} {count}" for label, count in summary["maf_spectrum"]),
    ]
    if "standardized_columns" in summary:
        lines.append(
            f"standardized columns (monomorphic dropped): {summary['standardized_columns']}"
        )
    return "\n".join(lines)
