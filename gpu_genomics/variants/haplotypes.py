"""Personal haplotypes: each sample's two haplotype sequences over BED regions, variants applied.

For every region, sample and haplotype (``docs/variants.md#haplotypes``):

* **Window.** The region's window starts at ``a``: the BED start, or, with ``length``, the
  region's centre minus ``length // 2``; near a contig end it is shifted inside the contig
  (``edge="shift"``) or kept, bases outside the contig being ``N`` (``edge="pad"``), as for the
  variant windows of :mod:`.windows`.
* **Variants considered.** The records whose REF overlaps the reference span the window draws
  from (from ``a`` on, through as many bases as the window needs after the deletions in it),
  in file order. A record is applied on a haplotype when the haplotype's allele is an ALT of
  letters and its REF starts at or after the end of the REF last applied on that haplotype (an
  overlapping record is skipped and counted, as ``bcftools consensus`` does).
* **Anchor rule (left-anchored, as the variant windows).** The haplotype is the reference with
  each applied ALT in place of its REF; the window is its first ``length`` bases from
  reference position ``a`` on. ALT base ``t`` of a record at ``p`` counts at reference
  position ``min(p + t, p + len(REF) - 1)``, so a record whose REF starts before ``a`` gives
  the ALT bases from index ``a - p`` on, and an insertion just before ``a`` is left out.
  Past the contig end the window is ``N``.
* **Genotypes.** A call with a missing allele: ``missing="error"`` (default) names the record
  and sample; ``"reference"`` reads the missing allele as REF. An unphased heterozygous call:
  ``unphased="error"`` (default) or ``"reference"`` (both haplotypes REF at that record); an
  unphased homozygous call has no phase to lose and is applied. A haploid call gives both
  haplotypes its allele. Ploidy above 2 is an error.
* **Strand.** A region on the ``-`` strand (BED column 6) is reverse-complemented.

The VCF must be bgzip-compressed with a ``.tbi``/``.csi`` index (or an indexed BCF): each task
queries the records of its regions. A task is a group of regions by a block of samples; it
builds the haplotypes on the host (numba, string work) and encodes them on the device; this
process writes each block in place (the shapes are known from the BED and the samples).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np

from ..device import resolve_device
from ..errors import InputError, check_choice, positive_int, with_options
from ..execution import map_in_order, worker_count
from ..intervals.bed import read_bed
from ..intervals.reference import Reference
from ..io.provenance import provenance
from ..io.spec import STRING, ArraySpec, OutputSpec
from ..io.store import ArrayWriter, check_output_folder, format_from_path, resolve_compression
from ..sequence.revcomp import reverse_complement_rows
from .reader import RecordParser, VcfReader
from .windows import (
    EDGE_MODES,
    REF_MISMATCH_MODES,
    TASK_BYTES,
    Encoding,
    check_allele,
    encode_windows,
    encoded_names,
    in_groups,
    open_reference,
    padded_windows,
    row_bytes,
    split_parameters,
    window_starts,
)

log = logging.getLogger("gpu_genomics")

GENOTYPE_MODES = ("error", "reference")
CHUNK_REGIONS = 16
CHUNK_SAMPLES = 100
_H = ("regions", "samples", "haplotypes")

HAPLOTYPE_ARRAYS = OutputSpec(
    "variant-windows --haplotypes: phased VCF + reference + BED -> personal haplotypes",
    (
        ArraySpec(
            "hap_seqs",
            "uint8|int8|float16|float32",
            (*_H, "positions", "channels"),
            "one-hot window of each haplotype, channels in `alphabet` order",
            "encoding onehot",
        ),
        ArraySpec(
            "hap_input_ids",
            "int32",
            (*_H, "tokens"),
            "token ids under `scheme`",
            "encoding tokens, kmer-tokens",
        ),
        ArraySpec(
            "hap_attention_mask",
            "uint8",
            (*_H, "tokens"),
            "1 real token, 0 padding",
            "encoding tokens, kmer-tokens",
        ),
        ArraySpec(
            "hap_variants",
            "int32",
            _H,
            "records applied on the haplotype before its window was full",
        ),
        ArraySpec("region_contig", "int32", ("regions",), "index into contig_id"),
        ArraySpec(
            "region_start",
            "int64",
            ("regions",),
            "0-based reference position the window starts at (negative with edge=pad)",
        ),
        ArraySpec("region_minus", "bool", ("regions",), "BED strand '-': reverse-complemented"),
        ArraySpec("region_name", STRING, ("regions",), "chrom:start-end(strand) of the BED row"),
        ArraySpec("sample_id", STRING, ("samples",), "the samples, in the order asked for"),
        ArraySpec("contig_id", STRING, ("contigs",), "the reference's sequence names"),
    ),
)


@dataclass
class HaplotypeOptions:
    """The parameters of :func:`haplotype_windows` (``variant-windows --haplotypes``).

    Attributes:
        length: window length in bases; default: the regions' own length (all equal).
        encoding: an :class:`~gpu_genomics.variants.windows.Encoding`.
        samples: the samples to write, in order; default: all of the VCF's.
        unphased: an unphased heterozygous call: ``"error"`` or ``"reference"``.
        missing: a call with a missing allele: ``"error"`` or ``"reference"``.
        edge: ``"shift"`` or ``"pad"`` at contig ends (module docstring).
        ref_mismatch: a REF that differs from the reference: ``"error"`` or ``"skip"`` (the
            record is never applied, and counted).
        output_format: ``"hdf5"`` or ``"zarr"``.
        compression: ``none``, ``gzip``, ``lzf`` or ``zstd``.
        chunk_regions: regions per output chunk.
        chunk_samples: samples per output chunk (and at most per task).
    """

    length: int | None = None
    encoding: Encoding = field(default_factory=Encoding)
    samples: Sequence[str] | None = None
    unphased: str = "error"
    missing: str = "error"
    edge: str = "shift"
    ref_mismatch: str = "error"
    output_format: str | None = None
    compression: str | None = None
    chunk_regions: int = CHUNK_REGIONS
    chunk_samples: int = CHUNK_SAMPLES

    def __post_init__(self) -> None:
        if isinstance(self.samples, str):  # comma-separated, as on the command line
            self.samples = tuple(s.strip() for s in self.samples.split(",") if s.strip())

    def check(self) -> None:
        """Raise :class:`~gpu_genomics.errors.InputError` on the first invalid parameter."""
        if self.length is not None:
            positive_int("length", self.length)
        positive_int("chunk_regions", self.chunk_regions)
        positive_int("chunk_samples", self.chunk_samples)
        check_choice("unphased", self.unphased, GENOTYPE_MODES)
        check_choice("missing", self.missing, GENOTYPE_MODES)
        check_choice("edge", self.edge, EDGE_MODES)
        check_choice("ref_mismatch", self.ref_mismatch, REF_MISMATCH_MODES)


# --- the kernel ------------------------------------------------------------------------------
@numba.njit(parallel=True, cache=True, nogil=True)
def _haplotypes(  # noqa: PLR0917 (one numba kernel per haplotype)
    segment,
    seg_start,
    window_start,
    positions,
    ref_lengths,
    alt_data,
    alt_starts,
    alt_ok,
    alleles,
    out,
    applied,
):  # pragma: no cover
    """Build the windows of every haplotype of one region (module docstring).

    ``segment``: reference bases from ``seg_start`` on (N past the contig); ``positions``,
    ``ref_lengths``: the records' 0-based starts and REF lengths; allele ``j`` of record ``v``
    is ``alt_data[alt_starts[v, j]:alt_starts[v, j + 1]]`` (``alt_ok[v, j]``: letters);
    ``alleles`` ``(records, haplotypes)`` the allele of each haplotype (<= 0: REF). Fills
    ``out`` ``(haplotypes, length)`` and ``applied`` ``(haplotypes,)``.
    """
    n_haps, length = out.shape
    n_records = len(positions)
    for h in numba.prange(n_haps):
        j = 0
        cursor = window_start
        end_last = -(1 << 62)
        count = 0
        for v in range(n_records):
            allele = alleles[v, h]
            if allele <= 0 or not alt_ok[v, allele]:
                continue
            p = positions[v]
            if p < end_last:
                continue
            if j >= length:
                break
            q = cursor
            while q < p and j < length:
                out[h, j] = segment[q - seg_start]
                j += 1
                q += 1
            if j >= length:
                break
            m = ref_lengths[v]
            for t in range(alt_starts[v, allele + 1] - alt_starts[v, allele]):
                if min(p + t, p + m - 1) >= window_start and j < length:
                    out[h, j] = alt_data[alt_starts[v, allele] + t]
                    j += 1
            cursor = max(cursor, p + m)
            end_last = p + m
            count += 1
        q = cursor
        while j < length:
            offset = q - seg_start
            out[h, j] = segment[offset] if offset < len(segment) else 78
            j += 1
            q += 1
        applied[h] = count


# --- tasks -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Regions:
    """The windows of the regions: contig index (reference order), start, strand, name."""

    contig: np.ndarray
    start: np.ndarray
    minus: np.ndarray
    name: list[str]


@dataclass(frozen=True)
class HaplotypeTask:
    """One task: regions ``[r0, r1)`` by the samples ``sample_columns`` (VCF columns)."""

    vcf: str
    reference: str
    regions: Regions
    r0: int
    r1: int
    s0: int
    sample_columns: np.ndarray
    sample_names: list[str]
    options: HaplotypeOptions
    length: int
    parameters: dict[str, Any]
    device: str


@dataclass
class HaplotypeRows:
    """A task's block of rows (host arrays) and its counts."""

    r0: int
    s0: int
    arrays: dict[str, np.ndarray]
    counts: dict[str, int]


class _Records:
    """The records of one contig span, queried through the VCF's index."""

    def __init__(self, vcf: str) -> None:
        import pysam

        self.vcf = vcf
        reader = VcfReader(vcf, chunk_variants=1)
        self.samples = reader.samples
        self.parser = RecordParser(vcf, reader.samples, reader.contigs)
        self.tabix = None
        self.bcf = None
        try:
            if reader.through_htslib:  # BCF
                self.bcf = pysam.VariantFile(vcf)
            else:
                self.tabix = pysam.TabixFile(vcf)
        except (OSError, ValueError) as exc:
            raise InputError(
                f"{vcf}: cannot query it by region ({exc}); the haplotypes need a bgzip VCF "
                "with its .tbi/.csi index (bgzip it, then tabix -p vcf) or an indexed BCF"
            ) from None

    def fetch(self, chrom: str, start: int, end: int) -> Any:
        """Parsed records whose REF overlaps ``[start, end)`` (0-based), or None."""
        try:
            if self.tabix is not None:
                if chrom not in self.tabix.contigs:
                    return None
                lines = list(self.tabix.fetch(chrom, max(start, 0), end))
            else:
                if chrom not in self.bcf.header.contigs:
                    return None
                lines = [str(r).rstrip("\n") for r in self.bcf.fetch(chrom, max(start, 0), end)]
        except (OSError, ValueError) as exc:
            raise InputError(
                f"{self.vcf}: cannot query {chrom}:{start + 1}-{end} ({exc})"
            ) from None
        if not lines:
            return None
        return self.parser.parse(("\n".join(lines) + "\n").encode(), 0, 0)


_OPEN: dict[str, _Records] = {}


def _records_of(vcf: str) -> _Records:
    if vcf not in _OPEN:
        _OPEN.clear()
        _OPEN[vcf] = _Records(vcf)
    return _OPEN[vcf]


def _effective_alleles(
    chunk: Any, columns: np.ndarray, names: list[str], options: HaplotypeOptions, where: Any
) -> np.ndarray:
    """``(records, samples * 2) int16`` allele of each haplotype after the genotype rules."""
    gt = chunk.call_genotype[:, columns, :].astype(np.int16)
    phased = chunk.call_genotype_phased[:, columns]
    if gt.shape[2] > 2:
        v, s = (int(x[0]) for x in np.nonzero((gt[:, :, 2:] != -2).any(axis=2)))
        raise InputError(f"{where(v)}: sample {names[s]}: ploidy above 2; not supported")
    if gt.shape[2] == 1:
        gt = np.concatenate([gt, np.full_like(gt, -2)], axis=2)
    haploid = gt[:, :, 1] == -2
    gt[:, :, 1] = np.where(haploid, gt[:, :, 0], gt[:, :, 1])
    missing = (gt == -1).any(axis=2)
    if missing.any():
        if options.missing == "error":
            v, s = (int(x[0]) for x in np.nonzero(missing))
            raise InputError(
                f"{where(v)}: sample {names[s]}: the call has a missing allele; pass "
                "missing=reference to read it as REF"
            )
        gt[gt == -1] = 0
    unphased = ~phased & ~haploid & (gt[:, :, 0] != gt[:, :, 1])
    if unphased.any():
        if options.unphased == "error":
            v, s = (int(x[0]) for x in np.nonzero(unphased))
            raise InputError(
                f"{where(v)}: sample {names[s]}: unphased heterozygous call; phase the VCF, or "
                "pass unphased=reference to read such calls as REF on both haplotypes"
            )
        gt[unphased] = 0
    return gt.reshape(len(gt), -1)


def _fetch_span(records: _Records, name: str, a: int, length: int) -> tuple[Any, int]:
    """The records a window from ``a`` draws from, and the end of that reference span.

    The span grows by the bases the deletions in it remove, until it holds them all.
    """
    hi = a + length
    while True:
        chunk = records.fetch(name, a, hi)
        if chunk is None:
            return None, hi
        m = np.array([len(x[0]) for x in chunk.variant_allele], dtype=np.int64)
        p = chunk.variant_position.astype(np.int64) - 1
        need = a + length + int(np.maximum(m - 1, 0)[p + m > a].sum())
        if need <= hi:
            return chunk, hi
        hi = need


@dataclass
class _Span:
    """One region's records and reference bases, as the kernel takes them."""

    chunk: Any
    name: str
    positions: np.ndarray
    ref_lengths: np.ndarray
    segment: np.ndarray
    seg_start: int

    def where(self, vcf: str, v: int) -> str:
        return f"{vcf}: record {self.name}:{self.chunk.variant_position[v]}"


def _allele_table(
    task: HaplotypeTask, span: _Span, contig_length: int, counts: dict[str, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(alt_data, alt_starts, alt_ok)`` of the span's records, REF checked.

    Raises:
        InputError: a bad REF or ALT, a REF past the contig end, or (``ref_mismatch="error"``)
            a REF that differs from the reference.
    """
    alleles = span.chunk.variant_allele
    width = max(len(x) for x in alleles)
    alt_ok = np.zeros((len(alleles), width), dtype=np.bool_)
    starts = np.zeros((len(alleles), width + 1), dtype=np.int64)
    texts: list[str] = []
    offset = 0
    for v, row in enumerate(alleles):
        where = span.where(task.vcf, v)
        check_allele(row[0], "REF", where)
        p, m = int(span.positions[v]), int(span.ref_lengths[v])
        if p + m > contig_length:
            raise InputError(
                f"{where}: REF {row[0]!r} runs past the end of {span.name} ({contig_length} "
                f"bases) in {task.reference}; is the reference the genome build of the VCF?"
            )
        genome = span.segment[p - span.seg_start : p - span.seg_start + m].tobytes().decode()
        matches = genome.upper() == row[0].upper()
        if not matches and task.options.ref_mismatch == "error":
            raise InputError(
                f"{where}: REF {row[0]!r} does not match the reference {task.reference} "
                f"({genome!r} at {span.name}:{p + 1}); use the reference the VCF was called "
                "against, or pass ref_mismatch=skip to count and skip such records"
            )
        counts["ref_mismatch"] += not matches
        for j, allele in enumerate(row):
            starts[v, j] = offset
            if j and matches:
                alt_ok[v, j] = check_allele(allele, "ALT", where)
                counts["symbolic_alt"] += not alt_ok[v, j]
            texts.append(allele if alt_ok[v, j] else "")
            offset += len(texts[-1])
        starts[v, len(row) :] = offset
    alt_data = np.frombuffer(("".join(texts) or "N").encode(), dtype=np.uint8)
    return alt_data, starts, alt_ok


def haplotype_task(task: HaplotypeTask) -> HaplotypeRows:
    """Build and encode the haplotypes of one block of regions by samples.

    Memory: each region's records (all samples' genotypes), the block's haplotypes
    ``(regions, samples, 2, length)`` bytes and their encoding.
    """
    ref = open_reference(task.reference)
    records = _records_of(task.vcf)
    length = task.length
    n_regions, n_haps = task.r1 - task.r0, 2 * len(task.sample_columns)
    windows = np.empty((n_regions, n_haps, length), dtype=np.uint8)
    applied = np.zeros((n_regions, n_haps), dtype=np.int32)
    counts = {"ref_mismatch": 0, "symbolic_alt": 0}
    for r in range(n_regions):
        contig = int(task.regions.contig[task.r0 + r])
        name, a = ref.names[contig], int(task.regions.start[task.r0 + r])
        chunk, hi = _fetch_span(records, name, a, length)
        if chunk is None:
            windows[r] = padded_windows(ref, name, np.array([a]), length)
            continue
        p = chunk.variant_position.astype(np.int64) - 1
        m = np.array([len(x[0]) for x in chunk.variant_allele], dtype=np.int64)
        seg_start = min(a, int(p.min()))
        seg_end = max(hi, int((p + m).max()))
        segment = padded_windows(ref, name, np.array([seg_start]), seg_end - seg_start)[0]
        span = _Span(chunk, name, p, m, segment, seg_start)
        alt_data, alt_starts, alt_ok = _allele_table(task, span, int(ref.lengths[contig]), counts)
        gt = _effective_alleles(
            chunk, task.sample_columns, task.sample_names, task.options,
            lambda v, span=span: span.where(task.vcf, v),
        )  # fmt: skip
        _haplotypes(
            segment, seg_start, a, p, m, alt_data, alt_starts, alt_ok, gt, windows[r], applied[r]
        )
    minus = np.flatnonzero(task.regions.minus[task.r0 : task.r1])
    flat = windows.reshape(-1, length)
    if len(minus):
        reverse_complement_rows(flat, (minus[:, None] * n_haps + np.arange(n_haps)).ravel())
    arrays: dict[str, np.ndarray] = {}
    encoded = encode_windows(flat, task.parameters, task.device)
    for array_name, values in zip(encoded_names("hap", task.parameters), encoded, strict=True):
        arrays[array_name] = values.reshape(n_regions, n_haps // 2, 2, *values.shape[1:])
    arrays["hap_variants"] = applied.reshape(n_regions, n_haps // 2, 2)
    if task.s0:  # the records are counted once per region, by its first block of samples
        counts = dict.fromkeys(counts, 0)
    return HaplotypeRows(task.r0, task.s0, arrays, counts)


# --- the job -------------------------------------------------------------------------------
def _regions(
    bed: str | os.PathLike, ref: Reference, options: HaplotypeOptions
) -> tuple[Regions, int]:
    """The regions' windows and their length."""
    frame = read_bed(bed)
    chrom = frame["chrom"].astype(str).to_numpy()
    start = frame["start"].to_numpy(np.int64)
    end = frame["end"].to_numpy(np.int64)
    minus = frame["minus"].to_numpy(bool)
    if not len(frame):
        raise InputError(f"{bed}: holds no regions")
    index = np.array([-1 if ref.index_of(c) is None else ref.index_of(c) for c in chrom])
    if (index < 0).any():
        i = int(np.flatnonzero(index < 0)[0])
        raise InputError(
            f"{bed}: row {i + 1}: chromosome {chrom[i]} is not in the reference {ref.path}; fix "
            "the name or remove the row"
        )
    if options.length is None:
        sizes = end - start
        if (sizes != sizes[0]).any() or sizes[0] < 1:
            i = int(np.flatnonzero(sizes != sizes[0])[0]) if (sizes != sizes[0]).any() else 0
            raise InputError(
                f"{bed}: row {i + 1}: the regions have different lengths ({sizes[0]} and "
                f"{sizes[i]} bases); pass `length` to centre a window of that length on each"
            )
        length = int(sizes[0])
        anchor = start
    else:
        length = options.length
        anchor = start + (end - start) // 2 - length // 2
    window = np.empty(len(frame), dtype=np.int64)
    for c in np.unique(index).tolist():
        rows = index == c
        contig_length = int(ref.lengths[c])
        window[rows] = window_starts(
            anchor[rows] + length // 2, contig_length, length, options.edge
        )
    names = [
        f"{c}:{s}-{e}({'-' if mi else '+'})"
        for c, s, e, mi in zip(chrom, start.tolist(), end.tolist(), minus.tolist(), strict=True)
    ]
    return Regions(index.astype(np.int32), window, minus, names), length


def _samples(vcf: str, options: HaplotypeOptions) -> tuple[list[str], np.ndarray]:
    """The samples asked for and their VCF columns.

    Raises:
        InputError: a sample the VCF lacks, or a VCF without samples.
    """
    records = _Records(vcf)
    samples = list(options.samples) if options.samples is not None else list(records.samples)
    unknown = [s for s in samples if s not in records.samples]
    if unknown:
        raise InputError(
            f"{vcf}: samples not in the VCF: {', '.join(unknown[:5])}; check `samples`"
        )
    if not samples:
        raise InputError(f"{vcf}: the VCF has no samples, so there are no haplotypes")
    return samples, np.array([records.samples.index(s) for s in samples], dtype=np.int64)


def _write_blocks(
    out: ArrayWriter, tasks: list[HaplotypeTask], client: Any, options: HaplotypeOptions, *,
    shape: tuple[int, int], bar: Any,
) -> dict[str, int]:  # fmt: skip
    """Run the tasks (a group at a time) and write each block in place; the summed counts."""
    totals = {"ref_mismatch": 0, "symbolic_alt": 0, "variants_applied": 0}
    targets: dict[str, Any] = {}
    group = 2 * worker_count(client) if client is not None else 1
    for batch in in_groups(tasks, group):
        arguments = [(task,) for task in batch]
        for result in map_in_order(client, haplotype_task, arguments, name="haplotypes"):
            for name, values in result.arrays.items():
                if name not in targets:
                    full = (*shape, *values.shape[2:])
                    chunks = (options.chunk_regions, options.chunk_samples, *full[2:])
                    targets[name] = out.create(name, full, values.dtype, chunks=chunks)
                rows = slice(result.r0, result.r0 + len(values))
                targets[name][rows, result.s0 : result.s0 + values.shape[1]] = values
            applied = result.arrays["hap_variants"]
            totals["variants_applied"] += int(applied.sum())
            bar.update(applied.shape[0] * applied.shape[1])
            for key in ("ref_mismatch", "symbolic_alt"):
                totals[key] += result.counts[key]
    return totals


def haplotype_windows(
    vcf: str | os.PathLike,
    reference: str | os.PathLike,
    regions: str | os.PathLike,
    output: str | os.PathLike,
    options: HaplotypeOptions | None = None,
    *,
    device: str | None = None,
    client: Any = None,
    progress: bool = False,
    command: str | None = None,
    **parameters: Any,
) -> dict[str, Any]:
    """Write every sample's two haplotype windows over every region (module docstring).

    Args:
        vcf: a bgzip VCF with its ``.tbi``/``.csi`` index, or an indexed BCF, with GT.
        reference: the reference FASTA (plain or bgzip).
        regions: a BED file (3+ columns; strand from column 6).
        output: ``.h5``/``.hdf5`` or ``.zarr``.
        options: a :class:`HaplotypeOptions`; ``parameters`` override its fields and those
            of its :class:`~gpu_genomics.variants.windows.Encoding`.
        device: ``"auto" | "gpu" | "cpu"`` for the encoding.
        client: a :class:`distributed.Client` to run the tasks on; None: in this process.
        progress: show a progress bar of the regions.
        command: the command line stored in the provenance.
        **parameters: any field of :class:`HaplotypeOptions` or of its ``Encoding``.

    Returns:
        A summary: ``regions``, ``samples``, ``length``, ``variants_applied`` (over all
        haplotypes), ``ref_mismatch`` and ``symbolic_alt`` (skipped; counted once per region
        they fall in), ``seconds``.

    Arrays (:data:`HAPLOTYPE_ARRAYS`): ``hap_seqs`` ``(regions, samples, 2, length, 4)``
    one-hot (or ``hap_input_ids``/``hap_attention_mask`` ``(regions, samples, 2, tokens)``),
    ``hap_variants`` and the regions' coordinates. Memory per task: a group of regions by a
    block of samples of at most ``chunk_samples`` (about :data:`TASK_BYTES` of rows) plus each
    region's records; this process holds the regions (about 40 bytes each) and one task's
    rows.
    """
    encoding_fields, parameters = split_parameters(HaplotypeOptions, parameters)
    options = with_options(options, HaplotypeOptions, parameters, caller="haplotype_windows")
    if encoding_fields:
        options = dataclasses.replace(
            options, encoding=dataclasses.replace(options.encoding, **encoding_fields)
        )
    options.check()
    output_format = format_from_path(output, options.output_format)
    device_name = resolve_device(device)
    started = time.perf_counter()
    check_output_folder(output)
    with Reference(reference) as ref:
        region_table, length = _regions(regions, ref, options)
        contig_names = list(ref.names)
    encoder = options.encoding.resolved(length)
    samples, columns = _samples(str(vcf), options)
    n_regions, n_samples = len(region_table.start), len(samples)
    block = min(options.chunk_samples, n_samples)
    per_task = max(1, TASK_BYTES // max(1, 2 * row_bytes(encoder) * block))
    per_task = max(options.chunk_regions, per_task - per_task % options.chunk_regions)
    tasks = [
        HaplotypeTask(
            str(vcf), str(reference), region_table, r0, min(r0 + per_task, n_regions), s0,
            columns[s0 : s0 + block], samples[s0 : s0 + block], options, length, encoder,
            device_name,
        )
        for r0 in range(0, n_regions, per_task)
        for s0 in range(0, n_samples, block)
    ]  # fmt: skip
    record = provenance(
        "gpu-genomics variant-windows --haplotypes",
        parameters={
            **dataclasses.asdict(options),
            "encoder": encoder,
            "length": length,
            "output_format": output_format,
            "compression": resolve_compression(output_format, options.compression),
        },
        inputs={"vcf": vcf, "reference": reference, "regions": regions},
        device=device_name,
        command=command,
    )
    from tqdm import tqdm

    with (
        ArrayWriter(
            output,
            options.output_format,
            options.compression,
            chunk_rows=options.chunk_regions,
            spec=HAPLOTYPE_ARRAYS,
        ) as out,
        tqdm(
            total=n_regions * n_samples,
            unit="region-sample",
            desc="haplotypes",
            disable=not progress or None,
        ) as bar,
    ):
        totals = _write_blocks(out, tasks, client, options, shape=(n_regions, n_samples), bar=bar)
        out.write("region_contig", region_table.contig)
        out.write("region_start", region_table.start)
        out.write("region_minus", region_table.minus)
        out.write("region_name", np.array(region_table.name, dtype=object))
        out.write("sample_id", np.array(samples, dtype=object))
        out.write("contig_id", np.array(contig_names, dtype=object))
        if totals["ref_mismatch"]:
            log.warning(
                "skipped %d records whose REF does not match the reference", totals["ref_mismatch"]
            )
        if totals["symbolic_alt"]:
            log.warning("skipped %d symbolic ALT alleles", totals["symbolic_alt"])
        summary = {
            "regions": n_regions,
            "samples": n_samples,
            "length": length,
            **totals,
            "seconds": round(time.perf_counter() - started, 3),
        }
        out.attrs({**record, "summary": summary})
    log.info("wrote %s: %d regions x %d samples x 2 haplotypes", output, n_regions, n_samples)
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as printed by the CLI."""
    return (
        f"haplotypes: {summary['regions']} regions x {summary['samples']} samples x 2 "
        f"({summary['length']} bases), {summary['variants_applied']} variants applied"
    )


__all__ = ["HAPLOTYPE_ARRAYS", "HaplotypeOptions", "haplotype_windows"]
