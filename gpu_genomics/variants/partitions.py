"""The ``vcf`` job in two passes over a VCF's blocks: a scan of partitions, then chunk writers.

**Pass 1** cuts the file into partitions of about equal compressed size (at block starts:
:mod:`.blocks`) and scans each one, in parallel: it parses every record (or, without filters,
when pass 2 parses them all, scans it for its alleles, ploidy and contig), applies
the filters (they need per-variant figures only) and counts, for each block, the lines,
records, kept variants, kept dosage columns and standardized columns that the block owns; it
also finds the largest ploidy, the widest kept allele list and the contigs not in the header.

From those counts the client knows where every output row comes from. **Pass 2** gives each
task a range of output rows that starts on a chunk boundary (whole chunks of
``chunk_variants`` rows of every array it writes): the task reads only the blocks that own
those rows, parses them again, and writes its chunks to the Zarr store itself (or hands them to
the client, the one HDF5 writer). The rows are counted in one of three *spaces*: kept variants
(``call_genotype`` and the ``variant_*`` arrays), kept dosage columns (``dosage`` and
``dosage_*``; the same as the variants with ``multiallelic="nonref"``) and standardized columns
(``dosage_standardized``). A space whose counts equal another's is written by the same tasks.

Because rows are counted per block, the output does not depend on how the file was
partitioned, how many workers ran the tasks, or in what order.

Without filters, a Zarr job in the client process skips both: :func:`read_all_rows` parses
the file once, in order, and the job appends the rows (:func:`~.convert._one_pass`).

Memory per task, whatever the number of samples: one batch of :data:`BATCH_BYTES` of text
and its parsed genotypes (read one batch ahead by a thread, so decompression overlaps
parsing), the task's per-variant rows (the job plans tasks of about 128 MiB of output, whole
chunks), and its rows along samples up to :data:`SPILL_BYTES` an array; past that they go to a
file a chunk of samples apart (:class:`SpooledRows`) and are written back one
``chunk_variants x chunk_samples`` block at a time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..device import array_module, array_module_of, to_numpy
from ..errors import InputError
from ..execution import prefetched, whole_chunks
from . import genotypes as G
from .blocks import OwnedLines, TextFile
from .reader import RecordParser, VcfChunk, allele_table, newlines, pad_ploidy

#: Text parsed at once by a task.
BATCH_BYTES = 16 << 20
#: Counted per block: the columns of :attr:`Scan.counts`.
LINES, RECORDS, VARIANTS, COLUMNS, STANDARDIZED = range(5)
#: The spaces rows are counted in (module docstring).
SPACES = (VARIANTS, COLUMNS, STANDARDIZED)
#: Arrays laid out ``(samples, rows)``.
TRANSPOSED = ("dosage", "dosage_standardized")
#: Arrays with a samples axis: a task keeps them on disk, a chunk of samples apart, when they
#: would hold more than :data:`SPILL_BYTES` of its rows.
ALONG_SAMPLES = ("call_genotype", "call_genotype_phased", *TRANSPOSED)
SPILL_BYTES = 32 << 20
#: Bins of pass 1's histograms of every record's call rate and every column's MAF (the QC
#: report's figures before the filters; :attr:`Scan.call_rate_counts`, :attr:`Scan.maf_counts`).
CALL_RATE_EDGES = np.linspace(0.0, 1.0, 201)
MAF_EDGES = np.linspace(0.0, 0.5, 101)


@dataclass(frozen=True)
class Reading:
    """What every task needs to read and parse records (small and picklable).

    Attributes:
        file: the text's blocks.
        name: the input as the user named it (error messages).
        samples, contigs: the header's samples; the contigs known (header, then, in pass 2,
            every contig the records name, in the order pass 1 found them).
        line_numbers: records have lines (False: BCF or region text from htslib; errors
            name records).
        header_lines: lines before the first record.
    """

    file: TextFile
    name: str
    samples: list[str]
    contigs: list[str]
    line_numbers: bool
    header_lines: int

    def parser(self) -> RecordParser:
        """A parser of this file's records."""
        return RecordParser(self.name, self.samples, self.contigs)

    def first_line(self, lines_before: int) -> int:
        """The file line after ``lines_before`` record lines (0: lines are not known)."""
        return self.header_lines + 1 + lines_before if self.line_numbers else 0


@dataclass(frozen=True)
class Filters:
    """The job's filter and dosage options (see :class:`~.convert.VcfOptions`)."""

    min_maf: float
    max_missing: float
    biallelic_only: bool
    multiallelic: str
    standardize: bool

    @property
    def need_figures(self) -> bool:
        """Keeping a row depends on allele frequencies or call rates."""
        return self.min_maf > 0 or self.max_missing < 1 or self.standardize

    @property
    def any(self) -> bool:
        """Some records may be left out (or standardized columns counted)."""
        return self.need_figures or self.biallelic_only


@dataclass
class _Filtered:
    """One parsed batch after the filters (host arrays)."""

    keep_variant: np.ndarray  # (n,) bool
    column_variant: np.ndarray  # (m,) int64, the batch row of each column
    column_allele: np.ndarray  # (m,) int8
    keep_column: np.ndarray  # (m,) bool
    keep_standardized: np.ndarray  # (kept columns,) bool: 0 < AF < 1
    call_rate: Any  # (n,) on the device
    af: Any  # (m,) on the device
    maf: Any  # (m,) on the device
    figures: G.ChunkFigures | None = None  # the batch's fused pass (None: not computed)


def _filter(
    chunk: VcfChunk | _Alleles,
    gt: Any,
    filters: Filters,
    device: str,
    *,
    figures: bool = True,
    dosage: bool = False,
    sample_rows: np.ndarray | None = None,
) -> _Filtered:
    """Call rates, allele frequencies and the filters of one batch (docs/variants.md#qc).

    The figures come from one fused pass over the calls (:func:`~.genotypes.chunk_figures`),
    which also gives the non-REF ``dosage`` of every row when asked and the per-sample missing
    counts of ``sample_rows`` (``(n,) bool``) when given. ``figures=False`` (pass 1, when no
    filter needs them): rates and frequencies are left at 1 and 0, and the masks are the same.
    """
    xp = array_module(device)
    figures = figures or filters.need_figures
    n_alleles = chunk.n_alleles
    if filters.multiallelic == "nonref":
        column_variant = np.arange(len(chunk), dtype=np.int64)
        column_allele = np.full(len(chunk), -1, dtype=np.int8)
    else:
        column_variant, column_allele = G.split_columns(n_alleles)
    stats = None
    if not figures:
        call_rate, af = xp.ones(len(chunk)), xp.zeros(len(column_variant))
    else:
        # the parser checked every allele index against its record's alleles
        width = max(int(n_alleles.max(initial=1)), 1)
        stats = G.chunk_figures(
            gt, dosage=dosage, sample_rows=sample_rows, width=width, device=device
        )
        call_rate = stats.call_rate()
        if filters.multiallelic == "nonref":
            af = stats.frequency()
        else:
            af = stats.frequency(xp.asarray(column_variant), xp.asarray(column_allele))
    maf = G.minor_allele_frequency(af)
    options = {
        "min_maf": filters.min_maf,
        "max_missing": filters.max_missing,
        "biallelic_only": filters.biallelic_only,
    }
    keep_column = to_numpy(
        G.variant_filter(
            maf,
            call_rate[xp.asarray(column_variant)],
            xp.asarray(n_alleles[column_variant]),
            **options,
        )
    ).astype(bool)
    keep_variant = np.zeros(len(chunk), dtype=bool)
    keep_variant[column_variant[keep_column]] = True
    # split mode gives an ALT-less site (ALT '.') no column: filter it as nonref mode would
    no_columns = np.flatnonzero(np.bincount(column_variant, minlength=len(chunk)) == 0)
    if len(no_columns):
        rows = xp.asarray(no_columns)
        site_af = stats.frequency(rows) if stats is not None else af[:0]
        passes = G.variant_filter(
            G.minor_allele_frequency(site_af) if figures else xp.zeros(len(no_columns)),
            call_rate[rows],
            xp.asarray(n_alleles[no_columns]),
            **options,
        )
        keep_variant[no_columns[to_numpy(passes).astype(bool)]] = True
    af_kept = to_numpy(af)[keep_column]
    return _Filtered(
        keep_variant=keep_variant,
        column_variant=column_variant,
        column_allele=column_allele,
        keep_column=keep_column,
        keep_standardized=(af_kept > 0) & (af_kept < 1),
        call_rate=call_rate,
        af=af,
        maf=maf,
        figures=stats,
    )


def _counts_per_record(f: _Filtered, n: int) -> np.ndarray:
    """``(n, 3)``: kept variants, kept columns, standardized columns of each record."""
    kept_columns = f.column_variant[f.keep_column]
    return np.stack(
        [
            f.keep_variant.astype(np.int64),
            np.bincount(kept_columns, minlength=n),
            np.bincount(kept_columns[f.keep_standardized], minlength=n),
        ],
        axis=1,
    )


# --- pass 1 ------------------------------------------------------------------------------
@dataclass
class _Alleles:
    """The records of a batch as the filters see them without frequencies: their alleles."""

    n_alleles: np.ndarray

    def __len__(self) -> int:
        return len(self.n_alleles)


@dataclass
class Scan:
    """What pass 1 found in one partition.

    Attributes:
        block_offsets: ``(b,) int64`` start of each block of the partition.
        counts: ``(b, 5) int64``: lines, records, kept variants, kept dosage columns and
            standardized columns owned by each block.
        max_ploidy: most alleles in one call.
        max_alleles: most alleles (REF + ALT) of a kept variant.
        new_contigs: contigs named by records but not by the header, in order of appearance.
        failed: ``(text, lines before, records before)`` of the batch with a bad record
            (the client parses it again with the file's line numbers, for the message).
        call_rate_counts: ``(200,) int64``: the records' call rates over
            :data:`CALL_RATE_EDGES`, before the filters; None when no filter needs figures
            (pass 1 then does not compute them).
        maf_counts: ``(100,) int64``: the dosage columns' MAF (NaN left out) over
            :data:`MAF_EDGES`, before the filters; None as ``call_rate_counts``.
    """

    block_offsets: np.ndarray
    counts: np.ndarray
    max_ploidy: int = 0
    max_alleles: int = 1
    new_contigs: list[str] = field(default_factory=list)
    failed: tuple[bytes, int, int] | None = None
    call_rate_counts: np.ndarray | None = None
    maf_counts: np.ndarray | None = None


def batches_with_newlines(lines: OwnedLines) -> Iterator[tuple[bytes, int, np.ndarray]]:
    """``lines``' batches as ``(text, position, newlines(text))``, made by a reading thread.

    The thread inflates the next batch and finds its newlines (NumPy, which lets the consumer
    run) while the consumer parses this one; at most one batch ahead.
    """
    return prefetched((text, position, newlines(text)) for text, position in lines)


def scan_partition(reading: Reading, start: int, stop: int, filters: Filters, device: str) -> Scan:
    """Pass 1 over the blocks from ``start`` to ``stop`` (see the module docstring).

    Without filters the records are scanned for their alleles, ploidy and contig
    (:meth:`~.reader.RecordParser.scan`) rather than parsed: every record is kept, so pass 2
    parses (and checks) them all. With filters they are parsed and checked here, since pass 2
    reads only the blocks that own kept rows. Memory: one batch of :data:`BATCH_BYTES` of text
    and its genotypes.
    """
    xp = array_module(device)
    parser = reading.parser()
    lines = OwnedLines(reading.file, start, stop, BATCH_BYTES)
    counts = np.zeros((0, 5), dtype=np.int64)
    lines_before = records_before = 0
    max_alleles = 1
    # the call rates and MAF the filters compute anyway, binned for the QC report
    figures = _Figures() if filters.need_figures else None
    for text, position, newline in batches_with_newlines(lines):  # for the owners, scan, parse
        owner, records = lines.owners(text, position, newline=newline)
        counts = _padded(counts, int(owner.max(initial=-1)) + 1)
        # without filters pass 2 parses every record (all are kept): the scan needs only
        # each record's alleles, ploidy and contig; with filters every record is parsed here
        n_alleles = None if filters.any else parser.scan(text, newline=newline)
        chunk: VcfChunk | _Alleles = _Alleles(n_alleles) if n_alleles is not None else None
        gt = None
        if n_alleles is None:
            try:
                chunk = parser.parse(text, 1 + lines_before, records_before, newline=newline)
            except InputError:
                return Scan(np.asarray(lines.block_offsets, np.int64), counts,
                            failed=(text, lines_before, records_before))  # fmt: skip
            gt = xp.asarray(chunk.call_genotype)
        counts[:, LINES] += np.bincount(owner, minlength=len(counts))
        record_owner = owner[records]
        counts[:, RECORDS] += np.bincount(record_owner, minlength=len(counts))
        if len(chunk):
            f = _filter(chunk, gt, filters, device, figures=False)
            if figures is not None:
                figures.add(f)
            per_record = _counts_per_record(f, len(chunk))
            for column, space in enumerate(SPACES):
                counts[:, space] += np.bincount(
                    record_owner, weights=per_record[:, column], minlength=len(counts)
                ).astype(np.int64)
            if f.keep_variant.any():
                max_alleles = max(max_alleles, int(chunk.n_alleles[f.keep_variant].max()))
        lines_before += len(owner)
        records_before += len(chunk)
    return Scan(
        block_offsets=np.asarray(lines.block_offsets, np.int64),
        counts=_padded(counts, len(lines.block_offsets)),  # blocks that own no line: zeros
        max_ploidy=parser.max_ploidy,
        max_alleles=max_alleles,
        new_contigs=parser.contigs[len(reading.contigs) :],
        call_rate_counts=None if figures is None else figures.call_rate,
        maf_counts=None if figures is None else figures.maf,
    )


class _Figures:
    """Pass 1's histograms of call rates and MAF (see :class:`Scan`)."""

    def __init__(self) -> None:
        self.call_rate = np.zeros(len(CALL_RATE_EDGES) - 1, dtype=np.int64)
        self.maf = np.zeros(len(MAF_EDGES) - 1, dtype=np.int64)

    def add(self, f: _Filtered) -> None:
        """Count the call rates and MAF of one filtered batch."""
        maf = np.asarray(to_numpy(f.maf), dtype=np.float64)
        self.call_rate += np.histogram(to_numpy(f.call_rate), bins=CALL_RATE_EDGES)[0]
        self.maf += np.histogram(maf[~np.isnan(maf)], bins=MAF_EDGES)[0]


def _padded(counts: np.ndarray, n_blocks: int) -> np.ndarray:
    """``counts`` with zero rows added up to ``n_blocks`` rows."""
    if len(counts) >= n_blocks:
        return counts
    return np.concatenate([counts, np.zeros((n_blocks - len(counts), counts.shape[1]), np.int64)])


# --- pass 2 ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """The output's shape: what every pass-2 task writes into."""

    ploidy: int
    allele_width: int
    chunk_variants: int
    store: str | None  # the Zarr store the tasks write; None: the rows go back to the client
    chunk_samples: int = 10_000
    spool: str | None = None  # a folder for rows along samples larger than SPILL_BYTES
    name: str = ""  # the input, for messages


@dataclass(frozen=True)
class RowTask:
    """Rows ``first .. stop - 1`` of ``spaces`` (equal counts), and the blocks that own them.

    ``before``: the lines, records, variants, columns and standardized columns owned by the
    blocks before ``start`` (so the task knows the global index of every row it reads).
    """

    spaces: tuple[int, ...]
    first: int
    stop: int
    start: int
    end: int
    before: tuple[int, int, int, int, int]


@dataclass
class RowResult:
    """What a pass-2 task sends back: figures to sum, and its rows when there is no store."""

    spaces: tuple[int, ...]
    first: int
    stop: int
    missing_counts: np.ndarray | None = None  # (samples,) over the kept variants written
    maf_spectrum: list[tuple[str, int]] | None = None
    rows: dict[str, Any] | None = None


def plan_row_tasks(
    block_offsets: np.ndarray,
    counts: np.ndarray,
    *,
    file_size: int,
    spaces: tuple[int, ...],
    chunk_rows: int,
    rows_per_task: int,
) -> list[RowTask]:
    """The pass-2 tasks of ``spaces``: ranges of ``rows_per_task`` rows (whole chunks).

    ``spaces``: spaces whose rows are the same for every record (their first is counted).
    """
    before_all = np.cumsum(counts, axis=0) - counts
    owned = np.cumsum(counts[:, spaces[0]])
    total = int(owned[-1]) if len(owned) else 0
    tasks = []
    step = whole_chunks(rows_per_task, chunk_rows)
    for first in range(0, total, step):
        stop = min(total, first + step)
        b0 = int(np.searchsorted(owned, first, side="right"))
        b1 = int(np.searchsorted(owned, stop - 1, side="right"))
        end = int(block_offsets[b1 + 1]) if b1 + 1 < len(block_offsets) else file_size
        before = tuple(int(v) for v in before_all[b0])
        tasks.append(RowTask(spaces, first, stop, int(block_offsets[b0]), end, before))  # type: ignore[arg-type]
    return tasks


@dataclass(frozen=True)
class SpooledRows:
    """A task's rows of an array along samples, on disk one chunk of samples after another.

    The file holds, for each chunk of ``chunk_samples`` samples in turn, that chunk's
    ``(rows, samples in the chunk, *inner)`` values, so each chunk is one contiguous read.
    Small and picklable: a task hands it to the client (HDF5), which reads and removes it.
    """

    path: str
    rows: int
    n_samples: int
    inner: tuple[int, ...]
    dtype: str
    chunk_samples: int

    def bounds(self) -> list[tuple[int, int]]:
        """``(first, stop)`` sample of each chunk."""
        step = self.chunk_samples
        return [(s0, min(self.n_samples, s0 + step)) for s0 in range(0, self.n_samples, step)]

    def _offset(self, s0: int) -> int:
        return (
            self.rows
            * s0
            * int(np.prod(self.inner, dtype=np.int64))
            * np.dtype(self.dtype).itemsize
        )

    def write(self, fd: int, first_row: int, values: np.ndarray) -> None:
        """Write rows ``first_row ..`` (``(n, n_samples, *inner)`` values)."""
        for s0, s1 in self.bounds():
            block = np.ascontiguousarray(values[:, s0:s1])
            row_bytes = block[0].nbytes if len(block) else 0
            data, at = memoryview(block).cast("B"), self._offset(s0) + first_row * row_bytes
            while len(data):  # a short write (a full disk) goes on or raises
                written = os.pwrite(fd, data, at)
                data, at = data[written:], at + written

    def blocks(self, chunk_rows: int) -> Iterator[tuple[int, int, int, np.ndarray]]:
        """``(first row, first sample, stop sample, values)`` of each block of the rows.

        A block is ``chunk_rows`` rows by one chunk of samples (``(rows, samples, *inner)``
        values), read at once.
        """
        with open(self.path, "rb") as handle:
            for s0, s1 in self.bounds():
                for r0 in range(0, self.rows, chunk_rows):
                    r1 = min(self.rows, r0 + chunk_rows)
                    block = np.empty((r1 - r0, s1 - s0, *self.inner), dtype=self.dtype)
                    handle.seek(self._offset(s0) + r0 * block[0:1].nbytes)
                    if handle.readinto(memoryview(block).cast("B")) != block.nbytes:
                        raise InputError(f"{self.path}: the spooled rows are cut short")
                    yield r0, s0, s1, block

    def remove(self) -> None:
        """Delete the file."""
        Path(self.path).unlink(missing_ok=True)


#: Bytes of rows :func:`write_to` hands the store in one call at most (whole chunks; one
#: chunk when a chunk is larger).
WRITE_BYTES = 8 << 20


def write_to(
    target: Any, name: str, first: int, rows: np.ndarray | SpooledRows, *, chunk_rows: int
) -> None:
    """Write a task's rows of array ``name`` into ``target`` (a Zarr or HDF5 array).

    Rows are written whole chunks at a time (``chunk_rows`` rows, as many chunks as fit in
    :data:`WRITE_BYTES`: one store call for several small chunks, whose per-call cost is
    Zarr's; spooled rows: by a chunk of samples).
    """
    if isinstance(rows, SpooledRows):
        for r0, s0, s1, block in rows.blocks(chunk_rows):
            at = first + r0
            if name in TRANSPOSED:
                target[s0:s1, at : at + len(block)] = block.T
            else:
                target[at : at + len(block), s0:s1] = block
        rows.remove()
        return
    row_bytes = rows[:1].nbytes
    step = chunk_rows * max(1, WRITE_BYTES // max(1, chunk_rows * row_bytes))
    for r0 in range(0, len(rows), step):  # the codecs' (and the transpose's) buffers stay
        block = rows[r0 : r0 + step]  # within WRITE_BYTES (or one chunk)
        if name in TRANSPOSED:
            target[:, first + r0 : first + r0 + len(block)] = block.T
        else:
            target[first + r0 : first + r0 + len(block)] = block


class _TaskRows:
    """The task's rows, gathered into arrays of its length, then written (or returned) once.

    Rows along samples that would pass :data:`SPILL_BYTES` go to a file in the layout's spool
    folder, one chunk of samples apart (:class:`SpooledRows`): memory stays one batch.
    """

    def __init__(self, task: RowTask, layout: Layout, n_samples: int) -> None:
        self.task = task
        self.layout = layout
        self.n_samples = n_samples
        self.n = 0
        self.arrays: dict[str, np.ndarray | SpooledRows] = {}
        self._files: dict[str, int] = {}

    def add(self, values: dict[str, Any], n: int) -> None:
        rows = self.task.stop - self.task.first
        for name, value in values.items():
            if name not in self.arrays:
                self.arrays[name] = self._new(name, value, rows)
            target = self.arrays[name]
            if isinstance(target, SpooledRows):
                target.write(self._files[name], self.n, value)
            else:
                target[self.n : self.n + n] = value
        self.n += n

    def _new(self, name: str, value: np.ndarray, rows: int) -> np.ndarray | SpooledRows:
        if (
            name in ALONG_SAMPLES
            and self.layout.spool is not None
            and rows * value[0:1].nbytes > SPILL_BYTES
        ):
            path = Path(self.layout.spool) / f"{name}-{self.task.spaces[0]}-{self.task.first}"
            spooled = SpooledRows(str(path), rows, self.n_samples, value.shape[2:],
                                  value.dtype.str, self.layout.chunk_samples)  # fmt: skip
            self._files[name] = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
            return spooled
        dtype = object if value.dtype.kind in "UO" else value.dtype
        return np.empty((rows, *value.shape[1:]), dtype=dtype)

    def __enter__(self) -> _TaskRows:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        """On an error: close and remove the spool files (their disk is freed now)."""
        if exc_type is not None:
            self._close_files()
            for rows in self.arrays.values():
                if isinstance(rows, SpooledRows):
                    rows.remove()

    def _close_files(self) -> None:
        files, self._files = self._files, {}
        for fd in files.values():
            os.close(fd)

    def close(self) -> dict[str, Any] | None:
        """Write the rows to the store; or return them (no store)."""
        self._close_files()
        if self.n != self.task.stop - self.task.first:
            raise InputError(
                f"{self.layout.name}: the file changed while it was read (rows "
                f"{self.task.first}:{self.task.stop} are now {self.n}); rerun the job"
            )
        if self.layout.store is None:
            return self.arrays
        import zarr

        group = zarr.open_group(self.layout.store, mode="r+", use_consolidated=False)
        for name, rows in self.arrays.items():
            write_to(group[name], name, self.task.first, rows,
                     chunk_rows=self.layout.chunk_variants)  # fmt: skip
        return None


def write_rows(
    reading: Reading, task: RowTask, filters: Filters, layout: Layout, device: str
) -> RowResult:
    """Pass 2: parse the blocks that own the task's rows; write (or return) those rows.

    Memory: one batch of :data:`BATCH_BYTES` of text and its genotypes, plus the task's rows.
    """
    xp = array_module(device)
    parser = reading.parser()
    lines_before, records_before, *rows_before = task.before
    seen = dict(zip(SPACES, rows_before, strict=True))
    primary = task.spaces[0]
    with _TaskRows(task, layout, len(reading.samples)) as pending:
        result = RowResult(task.spaces, task.first, task.stop)
        if VARIANTS in task.spaces:
            result.missing_counts = np.zeros(len(reading.samples), dtype=np.int64)
        spectrum: dict[str, int] = {}
        lines = OwnedLines(reading.file, task.start, task.end, BATCH_BYTES)
        for text, _, newline in batches_with_newlines(lines):
            chunk = parser.parse(
                text, reading.first_line(lines_before), records_before, newline=newline
            )
            lines_before += len(newline)
            records_before += len(chunk)
            if not len(chunk):
                continue
            gt = xp.asarray(chunk.call_genotype)
            sample_rows, want_dosage = _fused_outputs(task, filters, seen[VARIANTS], len(chunk))
            f = _filter(chunk, gt, filters, device, dosage=want_dosage, sample_rows=sample_rows)
            kept = {
                VARIANTS: np.flatnonzero(f.keep_variant),
                COLUMNS: np.flatnonzero(f.keep_column),
                STANDARDIZED: np.flatnonzero(f.keep_standardized),  # among the kept columns
            }
            # the batch's rows of the primary space that fall in the task's range
            lo = max(0, task.first - seen[primary])
            hi = min(len(kept[primary]), task.stop - seen[primary])
            if hi > lo:
                values: dict[str, Any] = {}
                if VARIANTS in task.spaces:
                    rows = kept[VARIANTS][lo:hi]
                    values.update(_variant_values(chunk, rows, f, layout))
                    result.missing_counts += _sample_missing(f.figures, rows)
                if COLUMNS in task.spaces:
                    new_row = np.cumsum(f.keep_variant) - 1 + seen[VARIANTS]
                    columns = kept[COLUMNS][lo:hi]
                    values.update(_column_values(gt, columns, f, new_row=new_row, device=device))
                    for label, count in G.maf_spectrum(values["dosage_maf"]):
                        spectrum[label] = spectrum.get(label, 0) + count
                if STANDARDIZED in task.spaces:
                    std = _standardized_values(
                        gt, kept[COLUMNS], kept[STANDARDIZED][lo:hi], f,
                        columns_before=seen[COLUMNS], device=device,
                    )  # fmt: skip
                    values.update(std)
                pending.add(values, hi - lo)
            for space in seen:
                seen[space] += len(kept[space])
            if seen[primary] >= task.stop:
                break
        if COLUMNS in task.spaces:
            result.maf_spectrum = list(spectrum.items())
        result.rows = pending.close()
    return result


# --- one pass (no filters) -------------------------------------------------------------
#: Without filters, a Zarr job in this process reads the file once (:func:`read_all_rows`);
#: False: always two passes (tests compare the two).
ONE_PASS = True


@dataclass
class BatchRows:
    """One parsed batch's rows when every record is kept (:func:`read_all_rows`).

    Attributes:
        variants: the variant arrays' rows, ``(n, ...)`` each as written, except
            ``call_genotype`` (``(n, samples, p) int8`` at the batch's own ploidy ``p``, not
            yet padded) and ``variant_allele`` (a list of ``n`` allele lists, not a table).
        columns: the dosage arrays' rows (``dosage``: ``(m, samples) int8``; ``dosage_variant``
            global variant rows).
        missing_counts: ``(samples,) int64`` missing calls of the batch's records.
        spectrum: the batch's columns by MAF class (:func:`~.genotypes.maf_spectrum`).
        ploidy: ``p``; max_alleles: the longest allele list of the batch.
        read_to: the file offset read up to (a block's start; for progress).
    """

    variants: dict[str, Any]
    columns: dict[str, Any]
    missing_counts: np.ndarray
    spectrum: list[tuple[str, int]]
    ploidy: int
    max_alleles: int
    read_to: int = 0

    @property
    def n_variants(self) -> int:
        """The batch's records (all kept)."""
        return len(self.variants["variant_position"])

    @property
    def n_columns(self) -> int:
        """The batch's dosage columns."""
        return len(self.columns["dosage_variant"])


def read_all_rows(
    reading: Reading, filters: Filters, device: str, *, parser: RecordParser | None = None
) -> Iterator[BatchRows]:
    """Parse every record of the file once, in file order, a batch at a time (no filters).

    Every record is parsed and checked (a bad one raises its one-line error naming the file
    and line, as pass 2 would); the rows are those :func:`write_rows` writes, computed by the
    same code. ``variant_contig`` indexes the header's contigs, then the records' new ones in
    order of first appearance (``parser.contigs`` afterwards, as :func:`merged_contigs` builds
    it; ``parser``: default a new one).

    Memory: one batch of :data:`BATCH_BYTES` of text (and the next, read ahead by a thread)
    and its parsed rows: ``records x samples x (ploidy + 2)`` bytes of calls, phasing and
    dosage, plus a split dosage's columns.
    """
    if filters.any:
        raise ValueError("read_all_rows: every record must be kept (no filters)")
    xp = array_module(device)
    parser = parser or reading.parser()
    lines_before = records_before = 0
    want_dosage = filters.multiallelic == "nonref"
    file = reading.file
    lines = OwnedLines(file, file.data_block, file.size, BATCH_BYTES)
    for text, position, newline in batches_with_newlines(lines):
        chunk = parser.parse(
            text, reading.first_line(lines_before), records_before, newline=newline
        )
        lines_before += len(newline)
        variants_before, records_before = records_before, records_before + len(chunk)
        if not len(chunk):
            continue
        gt = xp.asarray(chunk.call_genotype)
        rows_mask = np.ones(len(chunk), dtype=bool)
        f = _filter(chunk, gt, filters, device, dosage=want_dosage, sample_rows=rows_mask)
        rows = np.flatnonzero(f.keep_variant)
        columns = np.flatnonzero(f.keep_column)
        if len(rows) != len(chunk):  # pragma: no cover (no filter: every record is kept)
            raise AssertionError("read_all_rows: a record was dropped without filters")
        variants = {
            "call_genotype": chunk.call_genotype,
            "call_genotype_phased": chunk.call_genotype_phased,
            "variant_contig": chunk.variant_contig,
            "variant_position": chunk.variant_position,
            "variant_id": np.array(list(chunk.variant_id), dtype=object),
            "variant_allele": list(chunk.variant_allele),
            "variant_quality": chunk.variant_quality,
            "variant_filter_pass": chunk.variant_filter_pass,
            "variant_index": chunk.variant_index,
            "variant_call_rate": to_numpy(f.call_rate),
        }
        new_row = np.cumsum(f.keep_variant) - 1 + variants_before
        column_values = _column_values(gt, columns, f, new_row=new_row, device=device)
        yield BatchRows(
            variants=variants,
            columns=column_values,
            missing_counts=_sample_missing(f.figures, rows),
            spectrum=list(G.maf_spectrum(column_values["dosage_maf"])),
            ploidy=int(chunk.call_genotype.shape[2]),
            max_alleles=int(chunk.n_alleles.max(initial=1)),
            read_to=lines.file_offset(position + len(text)),
        )


def _fused_outputs(
    task: RowTask, filters: Filters, variants_before: int, n: int
) -> tuple[np.ndarray | None, bool]:
    """``(sample_rows, dosage)``: what the batch's fused pass computes besides the figures.

    Without filters every record is a kept variant, so the task's rows of the batch are known
    before the pass, which counts their missing calls per sample (``sample_rows``, ``(n,)
    bool``); with filters (None) the kept rows are counted afterwards from their dosages. The
    non-REF dosage is asked for when non-REF columns are written, or for that count.
    """
    sample_rows = None
    if VARIANTS in task.spaces and not filters.any:
        sample_rows = np.zeros(n, dtype=bool)
        sample_rows[max(0, task.first - variants_before) : max(0, task.stop - variants_before)] = (
            True
        )
    nonref_columns = filters.multiallelic == "nonref" and (
        COLUMNS in task.spaces or STANDARDIZED in task.spaces
    )
    return sample_rows, nonref_columns or (VARIANTS in task.spaces and sample_rows is None)


def _sample_missing(figures: G.ChunkFigures | None, rows: np.ndarray) -> np.ndarray:
    """``(samples,) int64`` missing calls of the batch's kept ``rows`` (host)."""
    if figures is None:  # pragma: no cover (pass 2 always computes the figures)
        raise AssertionError("pass 2 computes the batch's figures")
    if figures.sample_missing is not None:  # the fused pass counted them
        return to_numpy(figures.sample_missing)
    return to_numpy(G.missing_in_rows(figures.dosage, rows))  # from their dosages (-1)


def _take(array: Any, rows: np.ndarray) -> Any:
    """``array[rows]`` (``rows``: host indices) on the array's device.

    A view when the rows are consecutive (no copy), otherwise a gather.
    """
    if len(rows) and int(rows[-1]) - int(rows[0]) == len(rows) - 1 and (np.diff(rows) == 1).all():
        return array[int(rows[0]) : int(rows[-1]) + 1]
    return array[array_module_of(array).asarray(rows)]


def _variant_values(
    chunk: VcfChunk, rows: np.ndarray, f: _Filtered, layout: Layout
) -> dict[str, Any]:
    """The variant arrays' values of the batch's kept ``rows`` (views where they can be)."""
    return {
        "call_genotype": pad_ploidy(_take(chunk.call_genotype, rows), layout.ploidy),
        "call_genotype_phased": _take(chunk.call_genotype_phased, rows),
        "variant_contig": chunk.variant_contig[rows],
        "variant_position": chunk.variant_position[rows],
        "variant_id": np.array([chunk.variant_id[i] for i in rows], dtype=object),
        "variant_allele": allele_table(
            [chunk.variant_allele[i] for i in rows], layout.allele_width
        ),
        "variant_quality": chunk.variant_quality[rows],
        "variant_filter_pass": chunk.variant_filter_pass[rows],
        "variant_index": chunk.variant_index[rows],
        "variant_call_rate": to_numpy(f.call_rate)[rows],
    }


def _column_dosage(gt: Any, columns: np.ndarray, f: _Filtered, device: str) -> Any:
    """``(columns, samples) int8`` dosages of the batch's ``columns`` (on the device).

    Non-REF columns are rows of the fused pass's dosage (a view when they are consecutive
    rows); split columns are counted from the calls.
    """
    xp = array_module(device)
    variants = f.column_variant[columns]
    if (f.column_allele[columns] < 0).all():  # nonref
        dosage = f.figures.dosage if f.figures is not None else None
        if dosage is None:
            return G.dosage(gt[xp.asarray(variants)], device=device)
        return _take(dosage, variants)
    alleles = xp.asarray(f.column_allele[columns])[:, None]
    return G.dosage(gt[xp.asarray(variants)], allele=alleles, device=device)


def _column_values(
    gt: Any, columns: np.ndarray, f: _Filtered, *, new_row: np.ndarray, device: str
) -> dict[str, Any]:
    return {
        "dosage": to_numpy(_column_dosage(gt, columns, f, device)),
        "dosage_variant": new_row[f.column_variant[columns]],
        "dosage_allele": f.column_allele[columns],
        "dosage_allele_frequency": to_numpy(f.af)[columns],
        "dosage_maf": to_numpy(f.maf)[columns],
    }


def _standardized_values(
    gt: Any,
    kept_columns: np.ndarray,
    std_columns: np.ndarray,
    f: _Filtered,
    *,
    columns_before: int,
    device: str,
) -> dict[str, Any]:
    """``dosage_standardized`` rows of ``std_columns`` (indices among the kept columns)."""
    xp = array_module(device)
    columns = kept_columns[std_columns]
    dos = _column_dosage(gt, columns, f, device)
    ploidy = (gt != -2).sum(axis=2)[xp.asarray(f.column_variant[columns])]
    values, _ = G.standardize(dos, f.af[xp.asarray(columns)], ploidy=ploidy)
    return {
        "dosage_standardized": to_numpy(values),
        "dosage_standardized_column": std_columns + columns_before,
    }


def task_spaces(counts: np.ndarray, filters: Filters) -> list[tuple[int, ...]]:
    """The spaces written, grouped where every record has as many rows in each.

    With ``multiallelic="nonref"`` a kept variant is one kept column; the standardized
    columns are the kept columns when none is monomorphic (fewer per record otherwise, so
    equal totals mean equal rows everywhere).
    """
    groups = [[VARIANTS, COLUMNS]] if filters.multiallelic == "nonref" else [[VARIANTS], [COLUMNS]]
    if filters.standardize:
        if counts[:, STANDARDIZED].sum() == counts[:, COLUMNS].sum():
            groups[-1].append(STANDARDIZED)
        else:
            groups.append([STANDARDIZED])
    return [tuple(group) for group in groups]


def merged_contigs(header_contigs: list[str], scans: list[Scan]) -> list[str]:
    """The header's contigs, then those the records name, in order of first appearance."""
    contigs = list(header_contigs)
    seen = set(contigs)
    for scan in scans:
        for name in scan.new_contigs:
            if name not in seen:
                seen.add(name)
                contigs.append(name)
    return contigs
