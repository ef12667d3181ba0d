"""The ``vcf`` command: VCF/BCF -> genotypes, dosage matrix and QC figures in HDF5/Zarr.

The input is read one chunk of variants at a time (:class:`~gpu_genomics.vcf.VcfReader`); each
chunk's QC figures, filters and dosages are computed on the chosen device
(:mod:`gpu_genomics.genotypes`) and its kept rows are spooled to ``.npy`` files in a temporary
folder beside the output. When the whole input has been read (and so the number of kept
variants is known), the arrays are written through :class:`~gpu_genomics.store.ArrayWriter`
(atomic: nothing is left behind on error). Memory is bounded by a chunk of variants plus one
block of output rows (about 256 MiB).

Output arrays (only the variants that pass the filters are written; ``variant_index`` maps
them back to the input's records, 0-based, in file or region order):

* VCF Zarr names: ``call_genotype`` ``(variants, samples, ploidy) int8``,
  ``call_genotype_phased``, ``variant_contig`` ``int32``, ``variant_position`` ``int32``,
  ``variant_id``, ``variant_allele`` ``(variants, max_alleles)`` str (``""`` padding),
  ``variant_quality`` ``float32``, ``variant_filter_pass`` ``bool``, ``sample_id``,
  ``contig_id``;
* ``dosage`` ``(samples, columns) int8`` (-1 for a missing call); a column per kept variant
  (``--multiallelic nonref``: non-REF allele count) or per kept ALT allele (``split``);
  ``dosage_variant`` ``(columns,) int64`` (row of the written variant arrays) and
  ``dosage_allele`` ``(columns,) int8`` (1.. for ``split``; -1 meaning "any non-REF");
* QC: ``variant_call_rate`` ``(variants,) float64``, ``dosage_allele_frequency`` and
  ``dosage_maf`` ``(columns,) float64``, ``sample_missing_rate`` ``(samples,) float64`` (over
  the written variants);
* with ``--standardize``: ``dosage_standardized`` ``(samples, columns_std) float32`` and
  ``dosage_standardized_column`` ``(columns_std,) int64`` (index into the dosage columns;
  monomorphic columns are dropped); a call of ploidy ``k`` becomes ``(x - k p) /
  sqrt(k p (1 - p))``, missing calls 0.

Every array names its axes (``variants``, ``samples``, ``ploidy``, ``alleles``, ``contigs``,
``dosage_columns``, ``standardized_columns``; Zarr ``dimension_names``), and Zarr metadata is
consolidated, so ``xarray.open_zarr`` (how sgkit loads VCF Zarr) opens the output.
"""

from __future__ import annotations

import logging
import os
import shlex
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np

from ..cli.common import (
    array_output_options,
    compression_option,
    device_option,
    logging_options,
    setup_logging,
)
from ..device import array_module, resolve_device, to_numpy
from ..errors import InputError, positive_int
from ..io.store import ArrayWriter, format_from_path
from . import genotypes as G
from .reader import DEFAULT_CHUNK_VARIANTS, VcfReader, allele_table, pad_ploidy

log = logging.getLogger("gpu_genomics")

#: Largest block of output rows assembled in memory when writing ``(samples, columns)`` arrays.
BLOCK_BYTES = 256 * 2**20
# VCF Zarr dimension names (sgkit / bio2zarr), and ours for the dosage columns
VARIANTS = ("variants",)
SAMPLES = ("samples",)
COLUMNS = ("dosage_columns",)
VARIANTS_SAMPLES = ("variants", "samples")
VARIANTS_SAMPLES_PLOIDY = ("variants", "samples", "ploidy")


@dataclass
class VcfOptions:
    """Parameters of :func:`convert_vcf` (the CLI flags of ``vcf``)."""

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
        positive_int("--chunk-variants", self.chunk_variants)
        if self.multiallelic not in G.MULTIALLELIC_MODES:
            raise InputError(f"--multiallelic {self.multiallelic!r} is not one of nonref, split")
        if not 0.0 <= self.min_maf <= 0.5:
            raise InputError(f"--min-maf {self.min_maf} must lie between 0 and 0.5")
        if not 0.0 <= self.max_missing <= 1.0:
            raise InputError(f"--max-missing {self.max_missing} must lie between 0 and 1")


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
    command: str = "",
) -> dict[str, Any]:
    """Convert ``input_path`` (VCF/BCF) to ``output_path`` (.h5/.zarr); see the module doc.

    Returns the QC summary (the figures the CLI prints).

    Raises:
        InputError: bad input or parameters; nothing is written then.
    """
    options = options or VcfOptions()
    options.check()
    format_from_path(output_path, options.output_format)  # fail early on a bad suffix
    device_name = resolve_device(device)
    xp = array_module(device_name)
    started = time.perf_counter()
    reader = VcfReader(input_path, region=options.region, chunk_variants=options.chunk_variants)
    n_samples = len(reader.samples)
    if n_samples == 0:
        raise InputError(
            f"{input_path}: the VCF has no sample columns, so there are no genotypes to convert"
        )
    parent = Path(output_path).resolve().parent
    if not parent.exists():
        raise InputError(f"{output_path}: the folder {parent} does not exist")
    n_read = 0
    n_kept = 0
    n_columns = 0
    missing_counts = np.zeros(n_samples, dtype=np.int64)
    with tempfile.TemporaryDirectory(prefix=f".{Path(output_path).name}.spool-", dir=parent) as tmp:
        spool = _Spool(tmp)
        for chunk in reader:
            n_read += len(chunk)
            n_kept_chunk, n_col_chunk = _process_chunk(
                chunk, options, xp, device_name, spool, n_kept, n_columns, missing_counts
            )
            n_kept += n_kept_chunk
            n_columns += n_col_chunk
            log.debug("read %d variants, kept %d", n_read, n_kept)
        if n_read == 0:
            where = f" in region {options.region}" if options.region else ""
            raise InputError(f"{input_path}: no variant records{where}; nothing to convert")
        if n_kept == 0:
            log.warning("no variant passed the filters; the output holds empty arrays")
        summary = _summary(spool, reader, n_read, n_kept, missing_counts, options)
        summary["seconds"] = round(time.perf_counter() - started, 3)
        _write(output_path, spool, reader, options, summary, n_kept, n_columns, device_name,
               command, missing_counts)  # fmt: skip
    return summary


def _process_chunk(
    chunk: Any,
    options: VcfOptions,
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
    else:
        dos, column_variant, column_allele = G.split_dosage(gt, n_alleles, device=device_name)
        index = xp.asarray(column_variant)
        af = G.allele_frequency(gt[index], allele=xp.asarray(column_allele), device=device_name)
    maf = G.minor_allele_frequency(af)
    keep_column = G.variant_filter(
        maf,
        call_rate[xp.asarray(column_variant)],
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
        call_ploidy = (gt != -2).sum(axis=2)[xp.asarray(column_variant)][keep_column]
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
        "variant_allele",
        [[a for a, k in zip(chunk.variant_allele, keep_variant, strict=True) if k]],
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
        summary["standardized_columns"] = len(spool.cat("dosage_standardized_column", np.int64))
    return summary


def _write_transposed(
    out: ArrayWriter,
    name: str,
    blocks: list[np.ndarray],
    n_rows: int,
    dtype: Any,
    column_dim: str,
) -> None:
    """Write ``(n_rows, sum of block rows)`` = the concatenated ``(columns, n_rows)`` blocks,
    transposed, a block of output rows at a time (chunks aligned to those row blocks)."""
    n_columns = sum(len(b) for b in blocks)
    itemsize = np.dtype(dtype).itemsize
    rows_per_block = max(1, min(n_rows, BLOCK_BYTES // max(1, n_columns * itemsize)))
    target = out.create(
        name, (n_rows, n_columns), dtype, chunk_rows=rows_per_block, dims=("samples", column_dim)
    )
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


def _write(
    output_path: str | os.PathLike,
    spool: _Spool,
    reader: VcfReader,
    options: VcfOptions,
    summary: dict[str, Any],
    n_kept: int,
    n_columns: int,
    device_name: str,
    command: str,
    missing_counts: np.ndarray,
) -> None:
    from .. import __version__

    n_samples = len(reader.samples)
    ploidy = max(reader.max_ploidy, 1)
    with ArrayWriter(
        output_path,
        format=options.output_format,
        compression=options.compression,
        chunk_rows=options.chunk_variants,
    ) as out:
        genotype = out.create(
            "call_genotype", (n_kept, n_samples, ploidy), np.int8, dims=VARIANTS_SAMPLES_PLOIDY
        )
        phased = out.create(
            "call_genotype_phased", (n_kept, n_samples), np.bool_, dims=VARIANTS_SAMPLES
        )
        start = 0
        for gt_part, phased_part in zip(
            spool.load("call_genotype"), spool.load("call_genotype_phased"), strict=True
        ):
            if len(gt_part):
                genotype[start : start + len(gt_part)] = pad_ploidy(np.asarray(gt_part), ploidy)
                phased[start : start + len(gt_part)] = phased_part
            start += len(gt_part)
        out.write("variant_contig", spool.cat("variant_contig", np.int32), VARIANTS)
        out.write("variant_position", spool.cat("variant_position", np.int32), VARIANTS)
        out.write("variant_quality", spool.cat("variant_quality", np.float32), VARIANTS)
        out.write("variant_filter_pass", spool.cat("variant_filter_pass", np.bool_), VARIANTS)
        out.write("variant_index", spool.cat("variant_index", np.int64), VARIANTS)
        variant_ids = [i for part in spool.small.get("variant_id", []) for i in part]
        out.write("variant_id", variant_ids, VARIANTS)
        alleles = [a for part in spool.small.get("variant_allele", []) for a in part[0]]
        out.write("variant_allele", allele_table(alleles), ("variants", "alleles"))
        out.write("sample_id", list(reader.samples), SAMPLES)
        out.write("contig_id", list(reader.contigs), ("contigs",))
        out.write("variant_call_rate", spool.cat("variant_call_rate", np.float64), VARIANTS)
        rate = missing_counts / n_kept if n_kept else np.full(n_samples, np.nan)
        out.write("sample_missing_rate", rate.astype(np.float64), SAMPLES)
        _write_transposed(out, "dosage", spool.load("dosage"), n_samples, np.int8, "dosage_columns")
        out.write("dosage_variant", spool.cat("dosage_variant", np.int64), COLUMNS)
        out.write("dosage_allele", spool.cat("dosage_allele", np.int8), COLUMNS)
        out.write(
            "dosage_allele_frequency", spool.cat("dosage_allele_frequency", np.float64), COLUMNS
        )
        out.write("dosage_maf", spool.cat("dosage_maf", np.float64), COLUMNS)
        if options.standardize:
            _write_transposed(
                out,
                "dosage_standardized",
                spool.load("dosage_standardized"),
                n_samples,
                np.float32,
                "standardized_columns",
            )
            out.write(
                "dosage_standardized_column",
                spool.cat("dosage_standardized_column", np.int64),
                ("standardized_columns",),
            )
        parameters = asdict(options)
        out.attrs(
            {
                "tool": "gpu-genomics vcf",
                "version": __version__,
                "command": command,
                "input": str(Path(reader.path).resolve()),
                "parameters": parameters,
                "device": device_name,
                "summary": summary,
                "dosage_layout": "samples x columns; -1 = missing call",
                "vcf_zarr_names": True,
            }
        )


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
        lines.append(f"standardized columns (monomorphic dropped): "
                     f"{summary['standardized_columns']}")  # fmt: skip
    return "\n".join(lines)


@click.command("vcf")
@click.argument("input_path", metavar="INPUT", type=click.Path(dir_okay=False))
@array_output_options
@click.option("--region", default=None, help="chrom or chrom:start-end (needs a .tbi/.csi).")
@click.option("--min-maf", type=float, default=0.0, show_default=True)
@click.option("--max-missing", type=float, default=1.0, show_default=True,
              help="Largest fraction of missing calls a variant may have.")  # fmt: skip
@click.option("--biallelic-only", is_flag=True, help="Keep only variants with exactly one ALT.")
@click.option("--multiallelic", type=click.Choice(G.MULTIALLELIC_MODES), default="nonref",
              show_default=True,
              help="nonref: one column per variant counting non-REF alleles; "
              "split: one column per ALT allele.")  # fmt: skip
@click.option("--standardize/--no-standardize", default=False, show_default=True,
              help="Also write dosage_standardized (mean-imputed, scaled; "
              "monomorphic dropped).")  # fmt: skip
@compression_option
@click.option("--chunk-variants", type=int, default=DEFAULT_CHUNK_VARIANTS, show_default=True)
@device_option
@logging_options
@click.pass_context
def vcf(
    ctx: click.Context,
    input_path: str,
    output: str,
    region: str | None,
    min_maf: float,
    max_missing: float,
    biallelic_only: bool,
    multiallelic: str,
    standardize: bool,
    output_format: str | None,
    compression: str | None,
    chunk_variants: int,
    device: str | None,
    quiet: bool,
    loglevel: str,
) -> None:
    """VCF/BCF -> call_genotype, dosage (samples x variants) and QC figures in HDF5/Zarr."""
    setup_logging(quiet, loglevel)
    options = VcfOptions(
        region=region,
        min_maf=min_maf,
        max_missing=max_missing,
        biallelic_only=biallelic_only,
        multiallelic=multiallelic,
        standardize=standardize,
        output_format=output_format,
        compression=compression,
        chunk_variants=chunk_variants,
    )
    argv = (ctx.obj or {}).get("argv") if isinstance(ctx.obj, dict) else None
    command = shlex.join(["gpu-genomics", *(argv or ["vcf", input_path, "-o", output])])
    summary = convert_vcf(input_path, output, options, device=device, command=command)
    click.echo(format_summary(summary))
    log.info("wrote %s in %.2f s", output, summary["seconds"])
