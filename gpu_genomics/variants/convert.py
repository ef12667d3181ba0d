"""The ``vcf`` job: VCF/BCF -> genotypes, dosage matrix and QC figures in HDF5/Zarr.

The input is read in two passes over its blocks (:mod:`.partitions`): pass 1 scans partitions
of the file in parallel (parse, filter, count what each block owns); pass 2 gives each task
whole chunks of output rows, which it reads from the blocks that own them and writes itself
(Zarr) or hands to this process, the one HDF5 writer. Without filters, in this process, it is
read once instead (:func:`_one_pass`: the arrays grow as rows come, written behind the parse
by one thread, and get the two passes' shapes, chunks and values; Zarr: the same bytes).
Tasks run in this process, or on a Dask cluster with ``client``
(:mod:`gpu_genomics.execution`); the output is the same array for array whatever the
partitions, workers or order. A bgzip or plain VCF is read in place; BCF,
region queries and gzip (not bgzip) text are first copied once as plain VCF text beside the
output. Output is written through :class:`~gpu_genomics.io.store.ArrayWriter` (atomic: nothing
is left behind on error).

Only the variants that pass the filters are written; ``variant_index`` maps them back to the
input's records. The arrays are declared in :data:`VCF_ARRAYS` (``docs/outputs.md``; their
semantics in ``docs/variants.md``). Every array names its axes (Zarr ``dimension_names``, HDF5
``_ARRAY_DIMENSIONS``) and Zarr metadata is consolidated, so ``sgkit.load_dataset`` and
``xarray.open_zarr`` open the output. Arrays are chunked ``chunk_variants`` x ``chunk_samples``
(bio2zarr's defaults: 1,000 x 10,000).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..device import resolve_device
from ..errors import InputError, check_choice, positive_int, with_options
from ..execution import WriteBehind, map_in_order, worker_count
from ..io.files import is_bgzf, is_gzip
from ..io.provenance import provenance
from ..io.spec import STRING, ArraySpec, OutputSpec
from ..io.store import (
    ArrayWriter,
    check_output_folder,
    format_from_path,
    resolve_compression,
    spool_prefix,
)
from ..report.html import check_report_path, written_reports
from . import genotypes as G
from . import partitions as P
from .blocks import TextFile, index_block_starts, text_file
from .reader import RecordParser, VcfReader, allele_table, pad_ploidy

log = logging.getLogger("gpu_genomics")

#: Compressed bytes per pass-1 partition (more partitions with a cluster: two per worker).
PARTITION_BYTES = 64 << 20
#: Output bytes (all samples) per pass-2 task, rounded to whole chunks of variants.
TASK_BYTES = 128 << 20
#: The VCF Zarr specification version whose names and attributes the output follows.
VCF_ZARR_VERSION = "0.4"
#: Variants and samples per chunk (bio2zarr's defaults).
CHUNK_VARIANTS = 1_000
CHUNK_SAMPLES = 10_000
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
        ArraySpec(
            "variant_quality", "float32", _V, "QUAL; '.' is the VCF Zarr missing NaN (0x7F800001)"
        ),
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
        chunk_variants: rows per chunk along the variants (and dosage columns) axis.
        chunk_samples: samples per chunk.
        partitions: pass-1 partitions (default: one per 64 MiB of the file, at least two per
            worker); the output does not depend on it.
    """

    region: str | None = None
    min_maf: float = 0.0
    max_missing: float = 1.0
    biallelic_only: bool = False
    multiallelic: str = "nonref"
    standardize: bool = False
    output_format: str | None = None
    compression: str | None = None
    chunk_variants: int = CHUNK_VARIANTS
    chunk_samples: int = CHUNK_SAMPLES
    partitions: int | None = None

    def check(self) -> None:
        """Raise :class:`~gpu_genomics.errors.InputError` on the first invalid parameter."""
        positive_int("chunk_variants", self.chunk_variants)
        positive_int("chunk_samples", self.chunk_samples)
        if self.partitions is not None:
            positive_int("partitions", self.partitions)
        check_choice("multiallelic", self.multiallelic, G.MULTIALLELIC_MODES)
        G.check_filter_thresholds(min_maf=self.min_maf, max_missing=self.max_missing)


def convert_vcf(
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    options: VcfOptions | None = None,
    *,
    device: str | None = None,
    progress: bool = False,
    command: str | None = None,
    client: Any = None,
    report: str | os.PathLike | None = None,
    **parameters: Any,
) -> dict[str, Any]:
    """Convert a VCF/BCF file into genotype, dosage and QC arrays (:data:`VCF_ARRAYS`).

    Args:
        input_path: ``.vcf``, ``.vcf.gz`` (gzip or bgzip) or ``.bcf``.
        output_path: ``.h5``/``.hdf5`` or ``.zarr`` (or any name with ``output_format``).
        options: a :class:`VcfOptions`; ``parameters`` override its fields.
        device: ``"auto" | "gpu" | "cpu"`` for the genotype math.
        progress: show a progress bar of the variants written.
        command: the command line stored in the provenance (default: this process's).
        client: a :class:`distributed.Client` to run the partitions and chunk writers on
            (:mod:`gpu_genomics.execution`); None: in this process. The output is the same.
        report: also write a QC report here (``.html``, :func:`~gpu_genomics.report.vcf_report`):
            the MAF spectrum, MAF and variant call rate histograms with the ``min_maf`` and
            ``max_missing`` lines (of every variant read too, when a filter needs those
            figures, as pass 1 then computes them), sample missingness.
        **parameters: any field of :class:`VcfOptions` (``min_maf=0.01``, ``region="chr20"``).

    Returns:
        The QC summary (what :func:`format_summary` prints): variants read and kept, dosage
        columns, samples, ploidy, missing rate, MAF spectrum, seconds.

    Raises:
        InputError: bad input or parameters; nothing is written then.

    Memory per process (this one, or each worker), flat in the number of samples: a batch
    of 16 MiB of VCF text and its genotypes, a task's per-variant rows, and its rows along
    samples up to 32 MiB an array (beyond, on disk beside the output, a chunk of samples apart;
    ``docs/variants.md#scale``). The client holds per-block counts (40 bytes per BGZF block)
    and per-sample sums. The one pass (no filters, Zarr, in process: :func:`_one_pass`)
    holds instead a batch and up to a chunk of rows of every array (a chunk of
    ``call_genotype`` at most 32 MiB at ploidy 2, or the two passes run).
    A report adds two histograms (100 and 200 bins) per partition, and
    reads the kept variants' call rates and MAF back from the output :data:`REPORT_ROWS` at a
    time (8 bytes each).
    """
    options = with_options(options, VcfOptions, parameters, caller="convert_vcf")
    options.check()
    output_format = format_from_path(output_path, options.output_format)  # fail early
    device_name = resolve_device(device)
    started = time.perf_counter()
    reader = VcfReader(input_path, region=options.region)
    n_samples = len(reader.samples)
    if n_samples == 0:
        raise InputError(
            f"{input_path}: the VCF has no sample columns, so there are no genotypes to convert"
        )
    check_output_folder(output_path)
    if report is not None:
        check_report_path(report, outputs=(output_path,))
    parent = Path(output_path).resolve().parent
    filters = P.Filters(
        min_maf=options.min_maf,
        max_missing=options.max_missing,
        biallelic_only=options.biallelic_only,
        multiallelic=options.multiallelic,
        standardize=options.standardize,
    )
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
    job = _Job(
        input_path=input_path, output_path=output_path, options=options, filters=filters,
        reader=reader, record=record, report=report, device_name=device_name,
        progress=progress, started=started,
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix=spool_prefix(output_path), dir=parent) as tmp:
        reading = _reading(reader, input_path, Path(tmp))
        summary = None
        if one_pass_applies(filters, options, client, n_samples):
            try:
                summary = _one_pass(job, reading, Path(tmp))
            except _Widened as widened:  # a later call of higher ploidy: read it twice
                log.info("%s; reading the file in two passes", widened)
        if summary is None:
            summary = _two_passes(job, reading, client, Path(tmp))
    log.info("wrote %s in %.2f s", output_path, summary["seconds"])
    return summary


@dataclass
class _Job:
    """What both ways of running the job share: the options, the header, the provenance."""

    input_path: str | os.PathLike
    output_path: str | os.PathLike
    options: VcfOptions
    filters: P.Filters
    reader: VcfReader
    record: dict[str, Any]
    report: str | os.PathLike | None
    device_name: str
    progress: bool
    started: float

    def writer(self) -> ArrayWriter:
        return ArrayWriter(
            self.output_path,
            format=self.options.output_format,
            compression=self.options.compression,
            chunk_rows=self.options.chunk_variants,
            spec=VCF_ARRAYS,
        )

    def no_records(self) -> InputError:
        region = self.options.region
        where = f" in region {region}" if region else ""
        return InputError(f"{self.input_path}: no variant records{where}; nothing to convert")

    def finish(
        self,
        out: ArrayWriter,
        targets: dict[str, Any],
        reports: list[Path],
        *,
        shape: _Shape,
        n_read: int,
        missing_counts: np.ndarray,
        spectrum: list[list[Any]],
        scans: list[P.Scan],
    ) -> dict[str, Any]:
        """Write the per-sample rates, the summary and the attributes (and the report)."""
        n_samples = shape.samples
        n_kept = shape.variants
        targets["sample_missing_rate"][:] = (
            missing_counts / n_kept if n_kept else np.full(n_samples, np.nan)
        )
        calls = n_kept * n_samples
        summary = {
            "variants_read": n_read,
            "variants_kept": n_kept,
            "dosage_columns": shape.columns,
            "samples": n_samples,
            "ploidy": shape.ploidy,
            "missing_rate": float(missing_counts.sum() / calls) if calls else float("nan"),
            "maf_spectrum": spectrum,
        }
        if self.options.standardize:
            summary["standardized_columns"] = shape.standardized
        summary["seconds"] = round(time.perf_counter() - self.started, 3)
        out.attrs(
            {
                **self.record,
                "summary": summary,
                "dosage_layout": "samples x columns; -1 = missing call",
                "vcf_zarr_names": True,
                "vcf_zarr_version": VCF_ZARR_VERSION,
                "vcf_meta_information": [list(kv) for kv in self.reader.header.meta_information],
            }
        )
        if self.report is not None:  # before the output is committed: neither, if it fails
            reports.append(_write_report(
                self.report, targets, scans=scans, summary=summary, options=self.options,
                record=self.record, input_path=self.input_path,
            ))  # fmt: skip
        return summary


def _two_passes(job: _Job, reading: P.Reading, client: Any, tmp: Path) -> dict[str, Any]:
    """Pass 1 over partitions (counts, widths, contigs), then pass 2's row tasks."""
    options, filters = job.options, job.filters
    scans = _scan(reading, filters, options, job.device_name, client)
    offsets = np.concatenate([scan.block_offsets for scan in scans])
    counts = np.concatenate([scan.counts for scan in scans])
    n_read = int(counts[:, P.RECORDS].sum())
    if n_read == 0:
        raise job.no_records()
    totals = {space: int(counts[:, space].sum()) for space in P.SPACES}
    if totals[P.VARIANTS] == 0:
        log.warning("no variant passed the filters; the output holds empty arrays")
    reading = dataclasses.replace(
        reading, contigs=P.merged_contigs(job.reader.header.contigs, scans)
    )
    shape = _Shape(
        variants=totals[P.VARIANTS],
        samples=len(reading.samples),
        ploidy=max([scan.max_ploidy for scan in scans] + [1]),
        alleles=max(scan.max_alleles for scan in scans),
        columns=totals[P.COLUMNS],
        standardized=totals[P.STANDARDIZED],
    )
    with written_reports() as reports, job.writer() as out:  # reports removed if it fails
        targets = _create_arrays(out, shape, options)
        targets["sample_id"][:] = np.array(reading.samples, dtype=object)
        out.write("contig_id", reading.contigs)
        layout = P.Layout(
            ploidy=shape.ploidy,
            allele_width=shape.alleles,
            chunk_variants=options.chunk_variants,
            store=str(out.tmp_path.resolve()) if out.format == "zarr" else None,
            chunk_samples=options.chunk_samples,
            spool=str(tmp.resolve()),
            name=str(job.input_path),
        )
        missing_counts, spectrum = _write_rows(
            reading, offsets, counts, filters, layout, shape=shape, targets=targets,
            device_name=job.device_name, client=client, progress=job.progress,
        )  # fmt: skip
        return job.finish(
            out, targets, reports, shape=shape, n_read=n_read,
            missing_counts=missing_counts, spectrum=spectrum, scans=scans,
        )  # fmt: skip


# --- one pass ----------------------------------------------------------------------------
#: The arrays written by the one pass as their rows come, by space (``variant_allele`` is
#: written at the end, when the widest allele list is known).
_VARIANT_ROWS = (
    "call_genotype", "call_genotype_phased", "variant_contig", "variant_position", "variant_id",
    "variant_quality", "variant_filter_pass", "variant_index", "variant_call_rate",
)  # fmt: skip
_COLUMN_ROWS = (
    "dosage", "dosage_variant", "dosage_allele", "dosage_allele_frequency", "dosage_maf",
)  # fmt: skip


class _Widened(Exception):
    """A call of higher ploidy than the one pass's ``call_genotype`` was created with."""


def one_pass_applies(filters: P.Filters, options: VcfOptions, client: Any, n_samples: int) -> bool:
    """The job can read its input once (:func:`_one_pass`).

    No filter (every record is kept, so rows are known as records are parsed), in this
    process (rows are written in file order; the arrays grow with ``resize``, HDF5 datasets
    with an unlimited ``maxshape`` along their variants or columns axis), and a chunk of
    ``call_genotype`` rows of at most :data:`~.partitions.SPILL_BYTES` at ploidy 2 (the rows
    waiting for a whole chunk stay in memory; wider files take the two passes, whose rows go
    to the spool).
    """
    return (
        P.ONE_PASS
        and not filters.any
        and client is None
        and options.chunk_variants * n_samples * 2 <= P.SPILL_BYTES
    )


def _split_rows(parts: list[np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` rows of ``parts`` (consecutive row blocks) and the rows after them.

    The first rows are a view when one part holds them, else one concatenation of only those
    rows; the rest is a view of the part they end in (a flush ends in the last batch: the rows
    waiting before it are fewer than a chunk), so each row is copied at most once.
    """
    held = 0
    for k, part in enumerate(parts):
        if held + len(part) >= n:
            cut = n - held
            head = part[:cut] if k == 0 else np.concatenate([*parts[:k], part[:cut]])
            after = [part[cut:], *parts[k + 1 :]]
            rest = after[0] if len(after) == 1 else np.concatenate(after)
            return head, rest
        held += len(part)
    raise ValueError(f"_split_rows: {n} rows asked of {held}")


class _Appender:
    """One space's arrays filled in file order, a whole chunk of rows at a time.

    Rows wait in memory until a chunk of ``chunk_rows`` is complete (fewer than
    ``chunk_rows`` rows plus the last batch's); then every complete chunk is written. The
    arrays are created at the first write: with at least ``chunk_rows`` rows (their chunks are
    then ``chunk_rows`` long, as with the final length) or, when the file has fewer, at the end
    with their final length. They grow with ``resize`` (capacity doubling, cut to the final
    length at the end); only complete chunks are written before the last, so every chunk is
    written once, as the two-pass job writes it. ``call_genotype`` is created with the
    largest ploidy seen by then: a later wider call raises :class:`_Widened`.

    The chunks are written behind (``writes``, one thread, in order) while the next rows are
    parsed; a resize waits for the writes submitted before it.
    """

    def __init__(
        self, names: tuple[str, ...], chunk_rows: int, create: Any, writes: WriteBehind
    ) -> None:
        self.names = names
        self.writes = writes
        self.chunk_rows = chunk_rows
        self.create = create  # (rows, ploidy) -> {name: array}
        self.pending: list[dict[str, Any]] = []
        self.pending_rows = 0
        self.written = 0
        self.capacity = 0
        self.ploidy = 0  # of call_genotype once created
        self.targets: dict[str, Any] | None = None

    def add(self, values: dict[str, Any], n: int) -> None:
        """Append ``n`` rows (``values``: ``{name: (n, ...) rows}``)."""
        gt = values.get("call_genotype")
        if self.targets is not None and gt is not None and gt.shape[2] > self.ploidy:
            raise _Widened(
                f"a call of ploidy {gt.shape[2]} after {self.written + self.pending_rows} "
                f"variants of ploidy at most {self.ploidy}"
            )
        self.pending.append(values)
        self.pending_rows += n
        if self.pending_rows >= self.chunk_rows:
            self._flush(final=False)

    def close(self) -> dict[str, Any]:
        """Write the rows left and wait for the writes; the arrays (created now if not yet)."""
        self._flush(final=True)
        self.writes.drain()
        assert self.targets is not None
        return self.targets

    @property
    def rows(self) -> int:
        return self.written + self.pending_rows

    def _flush(self, *, final: bool) -> None:
        total = self.pending_rows
        n = total if final else total - total % self.chunk_rows
        if self.targets is None:
            if "call_genotype" in self.names:
                self.ploidy = max(p["call_genotype"].shape[2] for p in self.pending) if total else 1
            self.capacity = n
            self.targets = self.create(n, self.ploidy)
        stop = self.written + n
        if stop > self.capacity or (final and stop != self.capacity):
            self.writes.drain()  # no write in flight while the arrays change shape
            self.capacity = stop if final else max(stop, 2 * self.capacity)
            for name, target in self.targets.items():
                shape = list(target.shape)
                shape[1 if name in P.TRANSPOSED else 0] = self.capacity
                target.resize(tuple(shape))
        self.written = stop
        if not self.pending:
            return
        head, rest = {}, {}
        for name in self.names:
            parts = [p[name] for p in self.pending]
            if name == "call_genotype":
                parts = [pad_ploidy(part, self.ploidy) for part in parts]
            head[name], rest[name] = _split_rows(parts, n)
        if n:
            self.writes.submit(self._write, head, stop - n)
        left = total - n
        self.pending = [rest] if left else []
        self.pending_rows = left

    def _write(self, rows: dict[str, np.ndarray], first: int) -> None:
        """Write whole chunks of rows from row ``first`` on (the write-behind thread)."""
        assert self.targets is not None
        for name, values in rows.items():
            P.write_to(self.targets[name], name, first, values, chunk_rows=self.chunk_rows)


class _AlleleSpool:
    """``variant_allele``'s rows kept on disk in file order until their width is known.

    One JSON line per batch of allele lists in ``path`` (a plain data format: nothing read back
    can run code); :meth:`write` reads them back and writes the array a chunk at a time
    (memory: a chunk of rows and one batch's lists).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.write_bytes(b"")
        self.width = 1

    def add(self, alleles: list[list[str]], width: int) -> None:
        """Append a batch's allele lists (``width``: the longest)."""
        with open(self.path, "a", encoding="utf-8") as handle:  # none left open on failure
            handle.write(json.dumps(alleles, ensure_ascii=False) + "\n")
        self.width = max(self.width, width)

    def write(self, target: Any, chunk_rows: int) -> None:
        """Write every row into ``target`` (``(variants, width)`` strings); remove the file."""
        at, waiting = 0, []
        with open(self.path, encoding="utf-8") as handle:
            for line in handle:
                waiting += json.loads(line)
                whole = len(waiting) - len(waiting) % chunk_rows
                if whole:
                    table = allele_table(waiting[:whole], self.width)
                    P.write_to(target, "variant_allele", at, table, chunk_rows=chunk_rows)
                    at, waiting = at + whole, waiting[whole:]
        if waiting:
            P.write_to(target, "variant_allele", at, allele_table(waiting, self.width),
                       chunk_rows=chunk_rows)  # fmt: skip
        self.path.unlink()


def _one_pass(job: _Job, reading: P.Reading, tmp: Path) -> dict[str, Any]:
    """The job in one read of the file (no filters; :func:`one_pass_applies`).

    Every record is parsed once (:func:`~.partitions.read_all_rows`) and its rows appended
    to the arrays as they come (:class:`_Appender`); the lengths, the ploidy, the allele
    width and the new contigs are known at the end, when the arrays get their final shape
    and ``variant_allele`` (kept on disk until then, :class:`_AlleleSpool`) and ``contig_id``
    are written. The arrays, chunks and attributes are those of the two passes.

    Memory: one batch of 16 MiB of text (and the next) and its rows, plus up to a chunk of
    rows of every array waiting to be written and the rows being written (behind the parse,
    one flush at a time): twice ``(chunk_variants + batch records) x samples x (ploidy + 2)``
    bytes (:func:`one_pass_applies` keeps a chunk of calls under 32 MiB).
    Disk: the allele lists (a few bytes a variant), beside the output.

    Raises:
        _Widened: a call of higher ploidy than the first chunk's came later (nothing of the
            output is kept; the caller runs the two passes).
    """
    from tqdm import tqdm

    options = job.options
    n_samples = len(reading.samples)
    parser = reading.parser()

    def shape(variants: int = 0, columns: int = 0, ploidy: int = 1, alleles: int = 1) -> _Shape:
        return _Shape(variants=variants, samples=n_samples, ploidy=ploidy, alleles=alleles,
                      columns=columns, standardized=0)  # fmt: skip

    with (
        written_reports() as reports,  # reports removed if it fails
        job.writer() as out,
        WriteBehind(depth=1) as writes,  # drained (or stopped) before the commit
    ):
        targets = _create_arrays(out, shape(), options, names=("sample_id", "sample_missing_rate"))
        targets["sample_id"][:] = np.array(reading.samples, dtype=object)
        variants = _Appender(
            _VARIANT_ROWS, options.chunk_variants,
            lambda rows, ploidy: _create_arrays(
                out, shape(variants=rows, ploidy=ploidy), options, names=_VARIANT_ROWS,
                growing=True,
            ),
            writes,
        )  # fmt: skip
        columns = _Appender(
            _COLUMN_ROWS, options.chunk_variants,
            lambda rows, _: _create_arrays(
                out, shape(columns=rows), options, names=_COLUMN_ROWS, growing=True
            ),
            writes,
        )  # fmt: skip
        alleles = _AlleleSpool(tmp / "variant_allele.jsonl")
        missing_counts = np.zeros(n_samples, dtype=np.int64)
        spectrum: dict[str, int] = dict(G.maf_spectrum(np.zeros(0)))
        file = reading.file
        with tqdm(
            total=file.size - file.data_block,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc="vcf",
            disable=not job.progress or None,
        ) as bar:  # fmt: skip  (the input's bytes read: the rows are counted only at the end)
            for batch in P.read_all_rows(reading, job.filters, job.device_name, parser=parser):
                values = dict(batch.variants)
                alleles.add(values.pop("variant_allele"), batch.max_alleles)
                variants.add(values, batch.n_variants)
                columns.add(batch.columns, batch.n_columns)
                missing_counts += batch.missing_counts
                for label, count in batch.spectrum:
                    spectrum[label] = spectrum.get(label, 0) + count
                bar.update(max(batch.read_to - file.data_block - bar.n, 0))
                bar.set_postfix_str(f"{variants.rows:,} variants", refresh=False)
            bar.update(bar.total - bar.n)
        n_read = variants.rows
        if n_read == 0:
            raise job.no_records()
        targets.update(variants.close())
        targets.update(columns.close())
        final = shape(variants=n_read, columns=columns.written, ploidy=variants.ploidy,
                      alleles=alleles.width)  # fmt: skip
        targets.update(_create_arrays(out, final, options, names=("variant_allele",)))
        alleles.write(targets["variant_allele"], options.chunk_variants)
        out.write("contig_id", parser.contigs)
        no_figures = P.Scan(np.zeros(0, np.int64), np.zeros((0, 5), np.int64))
        return job.finish(out, targets, reports, shape=final, n_read=n_read,
                          missing_counts=missing_counts,
                          spectrum=[[label, count] for label, count in spectrum.items()],
                          scans=[no_figures])  # fmt: skip


#: Rows of the kept variants' call rates and MAF read back at once for the report.
REPORT_ROWS = 1 << 20


def _write_report(
    report: str | os.PathLike,
    targets: dict[str, Any],
    *,
    scans: list[P.Scan],
    summary: dict[str, Any],
    options: VcfOptions,
    record: dict[str, Any],
    input_path: str | os.PathLike,
) -> Path:
    """:func:`~gpu_genomics.report.vcf_report` of the job's figures; returns the report.

    The kept variants' call rates and columns' MAF are read back from the arrays just
    written, :data:`REPORT_ROWS` at a time, into histograms; those of every variant read
    come from pass 1 (when it computed them).
    """
    from ..report import Histogram, vcf_report

    def histogram(name: str, edges: np.ndarray) -> Histogram:
        array = targets[name]
        total = Histogram.empty(edges)
        for start in range(0, array.shape[0], REPORT_ROWS):
            total += Histogram.of(array[start : start + REPORT_ROWS], edges)
        return total

    def before(field: str, edges: np.ndarray) -> Histogram | None:
        counts = [getattr(scan, field) for scan in scans]
        if any(count is None for count in counts):
            return None
        return Histogram(edges, np.sum(counts, axis=0).astype(np.int64))

    rows = {key: value for key, value in summary.items() if key != "maf_spectrum"}
    rows["MAF spectrum (kept)"] = summary["maf_spectrum"]
    return vcf_report(
        report,
        call_rate=histogram("variant_call_rate", P.CALL_RATE_EDGES),
        maf=histogram("dosage_maf", P.MAF_EDGES),
        sample_missing=np.asarray(targets["sample_missing_rate"][:], dtype=np.float64),
        min_maf=options.min_maf,
        max_missing=options.max_missing,
        call_rate_before=before("call_rate_counts", P.CALL_RATE_EDGES),
        maf_before=before("maf_counts", P.MAF_EDGES),
        maf_spectrum=[tuple(pair) for pair in summary["maf_spectrum"]],
        summary={
            "input": str(input_path),
            **rows,
            "region": options.region,
            "biallelic_only": options.biallelic_only,
            "multiallelic": options.multiallelic,
        },
        provenance=record,
    )


@dataclass(frozen=True)
class _Shape:
    variants: int
    samples: int
    ploidy: int
    alleles: int
    columns: int
    standardized: int


def _reading(reader: VcfReader, input_path: str | os.PathLike, tmp: Path) -> P.Reading:
    """How the tasks read the input: its own blocks, or a plain copy of its text.

    A bgzip or plain VCF is read in place. BCF, a region query (both through htslib) and a
    gzip (not bgzip) VCF cannot be cut into blocks: one reader writes their VCF text into
    ``tmp`` once (as much disk as the text), and the tasks read that.
    """
    header = reader.header
    if not reader.through_htslib and not (is_gzip(input_path) and not is_bgzf(input_path)):
        file = text_file(input_path, header.n_bytes)
    else:
        staged = tmp / "records.vcf"
        header_bytes = 0
        with open(staged, "wb") as handle:
            for k, text in enumerate(reader.text()):
                handle.write(text)
                header_bytes = header_bytes or (len(text) if k == 0 else 0)
        file = text_file(staged, header_bytes)
    return P.Reading(
        file=file,
        name=str(input_path),
        samples=list(reader.samples),
        contigs=list(header.contigs),
        line_numbers=not reader.through_htslib,
        header_lines=header.n_lines,
    )


def _partition_starts(file: TextFile, n: int) -> list[int]:
    """Block starts cutting the records of ``file`` into about ``n`` equal byte ranges."""
    data = file.size - file.data_block
    index = index_block_starts(file.path) if file.kind == "bgzf" else None
    starts = [file.data_block]
    for k in range(1, n):
        target = file.data_block + data * k // n
        if index is not None:
            at = int(np.searchsorted(index, target))
            start = int(index[at]) if at < len(index) else None
        else:
            start = file.block_start_at_or_after(target)
        if start is not None and start > starts[-1]:
            starts.append(start)
    return starts


def _scan(
    reading: P.Reading, filters: P.Filters, options: VcfOptions, device: str, client: Any
) -> list[P.Scan]:
    """Pass 1 over the partitions, in order; a bad record raises its one-line error."""
    n = options.partitions or max(
        2 * worker_count(client) if client is not None else 1,
        -(-(reading.file.size - reading.file.data_block) // PARTITION_BYTES),
    )
    starts = _partition_starts(reading.file, n)
    stops = [*starts[1:], reading.file.size]
    arguments = [(reading, a, b, filters, device) for a, b in zip(starts, stops, strict=True)]
    scans: list[P.Scan] = []
    for scan in map_in_order(client, P.scan_partition, arguments, name="vcf-scan"):
        if scan.failed is not None:
            text, lines_before, records_before = scan.failed
            parser = RecordParser(
                reading.name, reading.samples, P.merged_contigs(reading.contigs, scans)
            )
            parser.parse(
                text,
                reading.first_line(_before(scans, P.LINES) + lines_before),
                _before(scans, P.RECORDS) + records_before,
            )
            raise InputError(f"{reading.name}: a record could not be read")  # not reached
        scans.append(scan)
    return scans


def _before(scans: list[P.Scan], column: int) -> int:
    return int(sum(scan.counts[:, column].sum() for scan in scans))


def _create_arrays(
    out: ArrayWriter,
    shape: _Shape,
    options: VcfOptions,
    names: tuple[str, ...] | None = None,
    *,
    growing: bool = False,
) -> dict[str, Any]:
    """Create the arrays along variants, columns and samples (all but ``contig_id``).

    Chunked ``chunk_variants`` along variants and columns (capped by their length),
    ``chunk_samples`` along samples. ``names``: only those arrays (default: all).
    ``growing``: they grow along their variants or columns axis (``resize``; an HDF5
    dataset's ``maxshape`` is unlimited along it).
    """
    rows_of = {"variants": shape.variants, "dosage_columns": shape.columns,
               "standardized_columns": shape.standardized}  # fmt: skip
    sizes = {**rows_of, "samples": shape.samples, "ploidy": shape.ploidy,
             "alleles": shape.alleles}  # fmt: skip
    chunk_of = {**dict.fromkeys(rows_of, options.chunk_variants), "samples": options.chunk_samples}
    targets = {}
    for array in VCF_ARRAYS:
        if array.when == STANDARDIZED and not options.standardize:
            continue
        if array.name == "contig_id" or (names is not None and array.name not in names):
            continue
        dims = array.dims
        dtype = str if array.dtype == STRING else array.dtype
        grows = [k for k, d in enumerate(dims) if d in rows_of]
        targets[array.name] = out.create(
            array.name,
            tuple(sizes[d] for d in dims),
            dtype,
            chunks=tuple(chunk_of.get(d, sizes[d]) for d in dims),
            resizable=growing and bool(grows),
            grow_axis=grows[0] if grows else 0,
        )
    return targets


def _write_rows(
    reading: P.Reading,
    offsets: np.ndarray,
    counts: np.ndarray,
    filters: P.Filters,
    layout: P.Layout,
    *,
    shape: _Shape,
    targets: dict[str, Any],
    device_name: str,
    client: Any,
    progress: bool,
) -> tuple[np.ndarray, list[list[Any]]]:
    """Pass 2: run the row tasks; write what comes back (HDF5). Returns the summed figures."""
    from tqdm import tqdm

    row_bytes = shape.samples * (shape.ploidy + 3)
    rows_per_task = max(1, TASK_BYTES // max(1, row_bytes))
    # while a chunk of rows fits, a task's call_genotype rows stay in memory (not spooled)
    rows_per_task = min(
        rows_per_task, max(1, P.SPILL_BYTES // max(1, shape.samples * shape.ploidy))
    )
    tasks = []
    for spaces in P.task_spaces(counts, filters):
        total = int(counts[:, spaces[0]].sum())
        per_task = rows_per_task
        if client is not None:  # at least two tasks per worker
            per_task = min(per_task, -(-total // (2 * worker_count(client))))
        tasks += P.plan_row_tasks(
            offsets, counts, file_size=reading.file.size, spaces=spaces,
            chunk_rows=layout.chunk_variants, rows_per_task=per_task,
        )  # fmt: skip
    arguments = [(reading, task, filters, layout, device_name) for task in tasks]
    missing_counts = np.zeros(shape.samples, dtype=np.int64)
    spectrum: dict[str, int] = dict(G.maf_spectrum(np.zeros(0)))
    with tqdm(
        total=shape.variants, unit="variant", desc="vcf", disable=not progress or None
    ) as bar:
        for result in map_in_order(client, P.write_rows, arguments, name="vcf-rows"):
            if result.missing_counts is not None:
                missing_counts += result.missing_counts
                bar.update(result.stop - result.first)
            for label, count in result.maf_spectrum or []:
                spectrum[label] = spectrum.get(label, 0) + count
            for name, rows in (result.rows or {}).items():
                P.write_to(targets[name], name, result.first, rows,
                           chunk_rows=layout.chunk_variants)  # fmt: skip
            # written: freed now, not held while the next task makes its rows (peak memory)
            result.rows = None
    return missing_counts, [[label, count] for label, count in spectrum.items()]


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
