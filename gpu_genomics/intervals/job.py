"""The ``intervals`` job: BED peak files + a reference genome -> an ML-ready HDF5/Zarr dataset.

A drop-in for genomic_interval_pipeline (and Basset's preprocessing): peaks are merged into
fixed-length labelled regions (:mod:`gpu_genomics.intervals.regions`), split by chromosome or
at random, and one-hot encoded one chromosome at a time: each chromosome is read once, its
windows are gathered in bulk (CUDA kernel on the GPU, numba twin on the CPU) and streamed to
the output in batches, so memory stays bounded by the largest chromosome plus a batch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..device import array_module, resolve_device, to_numpy
from ..errors import (
    InputError,
    check_choice,
    check_range,
    check_seed,
    invalid,
    positive_int,
    with_options,
)
from ..execution import worker_count
from ..io.provenance import provenance, version
from ..io.store import ArrayWriter, check_output_folder, format_from_path
from ..report.html import check_report_path, written_reports
from ..sequence.onehot import ONE_HOT_DTYPES, one_hot_windows
from ..sequence.revcomp import reverse_complement, reverse_complement_rows
from .bed import BedSource, read_bed, read_metadata
from .bigwig import TrackSet, read_track_list
from .layouts import SPLITS, BassetLayout, StandardLayout
from .reference import Reference
from .regions import MERGE_MODES, Regions, make_regions
from .selection import (
    Selection,
    add_negatives,
    filter_regions,
    peak_table,
    sample_negatives,
    universe_regions,
    universe_source,
)

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("gpu_genomics")

#: Largest one-hot batch encoded and written at once, in bytes.
OUTPUT_FORMATS = ("hdf5", "zarr", "basset")
CENTERS = ("midpoint", "summit")


@dataclass
class IntervalOptions:
    """The parameters of :func:`build_interval_dataset` (the flags of ``intervals``).

    Attributes:
        length: window length in bases.
        min_overlap: overlap in bases that merges windows (basset) or peaks (hull).
        exclusive: keep only regions with exactly one label.
        test_chroms: test chromosomes (``split="chrom"``).
        valid_chroms: validation chromosomes (``split="chrom"``).
        merge: ``"basset"``, ``"hull"`` or ``"none"`` (``docs/intervals.md``).
        split: ``"chrom"`` or ``"random"``.
        valid_frac: ``split="random"``: fraction of regions for validation.
        test_frac: ``split="random"``: fraction of regions for test.
        seed: ``split="random"``: seed of the permutation.
        dtype: one-hot dtype, one of ``uint8``, ``int8``, ``float16``, ``float32``.
        alphabet: one-hot column order, ``"ACGT"`` or ``"ACTG"`` (the Rust tool's).
        skip_unknown_chroms: drop BED rows on chromosomes the reference lacks (else an error).
        output_format: ``"hdf5"``, ``"zarr"`` or ``"basset"`` (Basset's HDF5 layout); default
            from the output's suffix.
        compression: ``none``, ``gzip``, ``lzf`` or ``zstd``.
        batch_rows: most regions encoded and written at once (and at most 64 MiB of one-hot).
        center: ``"midpoint"`` or ``"summit"``: a peak's position (``basset``/``none`` merge)
            is its midpoint or its narrowPeak summit (column 10).
        universe: a BED file of regions to label instead of merging peaks (``--regions``).
        label_overlap: ``universe``: the fraction of overlap that gives a region a label.
        label_overlap_of: ``"region"`` (``bedtools intersect -f``) or ``"peak"`` (``-F``).
        flank: bases stored on each side of every window (``{split}_seqs`` rows hold
            ``length + 2 * flank`` bases), for shift augmentation.
        blacklist: a BED file; windows it overlaps are dropped.
        blacklist_overlap: bases (1 or more) or fraction of the window (below 1) of overlap
            with one blacklist interval that drops a window.
        max_n_frac: drop windows with a larger fraction of N (non-ACGT letters); None: keep.
        min_distance_to_end: drop windows closer than this to a chromosome end, in bases.
        negatives: background windows to add: an int is a total, a float a ratio to each
            split's positives; 0: none.
        negatives_gc_bins: GC bins the negatives are matched in.
        bigwig: a list of bigWig tracks (one per line, ``PATH [NAME]``): one target per track.
        target: ``mean``, ``max``, ``sum`` or ``coverage`` of each track over the window (or
            each bin).
        bin_size: targets per bin of this many bases, ``(length / bin_size, K)`` per window;
            None: one value per window.
        bigwig_missing: ``"zero"`` (bases without data count as 0) or ``"ignore"`` (statistics
            over the covered bases, as pyBigWig's ``stats``).
    """

    length: int = 600
    min_overlap: int = 200
    exclusive: bool = False
    test_chroms: Sequence[str] = ("chr19", "chr20")
    valid_chroms: Sequence[str] = ("chr21", "chr22")
    merge: str = "basset"
    split: str = "chrom"
    valid_frac: float = 0.1
    test_frac: float = 0.1
    seed: int = 1
    dtype: str = "uint8"
    alphabet: str = "ACGT"
    skip_unknown_chroms: bool = False
    output_format: str | None = None
    compression: str | None = None
    batch_rows: int = 4096
    center: str = "midpoint"
    universe: str | None = None
    label_overlap: float = 0.5
    label_overlap_of: str = "region"
    flank: int = 0
    blacklist: str | None = None
    blacklist_overlap: float = 1
    max_n_frac: float | None = None
    min_distance_to_end: int = 0
    negatives: int | float = 0
    negatives_gc_bins: int = 20
    bigwig: str | None = None
    target: str = "mean"
    bin_size: int | None = None
    bigwig_missing: str = "zero"

    def __post_init__(self) -> None:
        # a chromosome list given as one string is comma-separated names, as on the CLI
        for name in ("test_chroms", "valid_chroms"):
            value = getattr(self, name)
            if isinstance(value, str):
                setattr(self, name, tuple(c.strip() for c in value.split(",") if c.strip()))

    def check(self) -> None:
        """Raise :class:`~gpu_genomics.errors.InputError` on the first invalid parameter."""
        positive_int("length", self.length)
        positive_int("batch_rows", self.batch_rows)
        check_seed(self.seed)
        if self.min_overlap < 0:
            raise invalid("min_overlap", self.min_overlap, "must be 0 or more")
        check_choice("merge", self.merge, MERGE_MODES)
        check_choice("split", self.split, ("chrom", "random"))
        check_choice("dtype", self.dtype, ONE_HOT_DTYPES)
        check_choice("alphabet", self.alphabet, ("ACGT", "ACTG"))
        if self.output_format is not None:
            check_choice("output_format", self.output_format, OUTPUT_FORMATS)
        check_range("valid_frac", self.valid_frac, 0, 1)
        check_range("test_frac", self.test_frac, 0, 1)
        if self.valid_frac + self.test_frac > 1:
            raise InputError(
                f"valid_frac={self.valid_frac} plus test_frac={self.test_frac} must not exceed 1"
            )
        both = set(self.test_chroms) & set(self.valid_chroms)
        if both:
            raise InputError(
                f"chromosomes in both `test_chroms` and `valid_chroms`: {', '.join(sorted(both))}"
            )
        self._check_selection()

    def _check_selection(self) -> None:
        """The options of ``docs/intervals.md#selecting-windows``."""
        from .bigwig import MISSING_MODES, TARGET_MODES

        check_choice("center", self.center, CENTERS)
        if self.center == "summit" and (self.merge == "hull" or self.universe is not None):
            raise InputError(
                "center='summit' places each peak at its summit, which the hull merge and a "
                "region universe do not use; use merge='basset' or 'none' without regions"
            )
        check_choice("label_overlap_of", self.label_overlap_of, ("region", "peak"))
        if not 0 < self.label_overlap <= 1:
            raise invalid("label_overlap", self.label_overlap, "must be above 0 and at most 1")
        for name in ("flank", "min_distance_to_end", "negatives_gc_bins"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
                raise invalid(name, value, "must be a whole number, 0 or more")
        positive_int("negatives_gc_bins", self.negatives_gc_bins)
        overlap = self.blacklist_overlap
        if not overlap > 0 or (overlap >= 1 and overlap != int(overlap)):
            raise invalid(
                "blacklist_overlap",
                overlap,
                "must be bases (1 or more, whole) or a fraction below 1",
            )
        if self.max_n_frac is not None:
            check_range("max_n_frac", self.max_n_frac, 0, 1)
        negatives = self.negatives
        if isinstance(negatives, bool) or not isinstance(negatives, int | float | np.number):
            raise invalid("negatives", negatives, "must be a count (int) or a ratio (float)")
        if negatives < 0 or (isinstance(negatives, float) and not np.isfinite(negatives)):
            raise invalid("negatives", negatives, "must be 0 or more")
        check_choice("target", self.target, TARGET_MODES)
        check_choice("bigwig_missing", self.bigwig_missing, MISSING_MODES)
        if self.bin_size is not None:
            positive_int("bin_size", self.bin_size)
            if self.length % self.bin_size:
                raise invalid(
                    "bin_size", self.bin_size, f"must divide length={self.length} into whole bins"
                )
            if self.bigwig is None:
                raise InputError("bin_size bins bigWig targets; give bigwig=TRACKS.txt too")
        if self.output_format == "basset" and (self.flank or self.bigwig is not None):
            raise InputError(
                "Basset's layout holds only the windows and labels; write flanks and bigWig "
                "targets to the standard layout (.h5 or .zarr without format='basset')"
            )

    @property
    def span(self) -> int:
        """Bases stored per window: ``length + 2 * flank``."""
        return self.length + 2 * self.flank


def load_peaks(
    sources: Sequence[Any],
    reference: Reference,
    *,
    skip_unknown_chroms: bool = False,
    progress: bool = False,
    summit: bool = False,
) -> pd.DataFrame:
    """All BED rows: ``chrom`` (reference index), ``start``, ``end``, ``minus``, ``label``.

    With ``summit``, also ``summit``: the narrowPeak summit's position.
    """
    import pandas as pd
    from tqdm import tqdm

    frames = []
    for source in tqdm(sources, unit="file", desc="read BED", disable=not progress or None):
        frame, warning = file_peaks(
            source,
            names=reference.names,
            lengths=reference.lengths,
            reference_path=str(reference.path),
            skip_unknown_chroms=skip_unknown_chroms,
            summit=summit,
        )
        if warning:
            log.warning("%s", warning)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def file_peaks(
    source: BedSource,
    *,
    names: Sequence[str],
    lengths: np.ndarray,
    reference_path: str,
    skip_unknown_chroms: bool,
    summit: bool = False,
) -> tuple[pd.DataFrame, str | None]:
    """Read one BED file's peaks against the reference's chromosomes.

    Args:
        source: the BED file and its label column.
        names: the reference's chromosome names, in order.
        lengths: ``(n_chroms,) int64`` their lengths.
        reference_path: the reference, for messages.
        skip_unknown_chroms: drop rows on chromosomes the reference lacks (else an error).
        summit: also read narrowPeak column 10 into a ``summit`` column (its position).

    Returns:
        ``(peaks, warning)``: ``chrom`` (index into ``names``), ``start``, ``end``, ``minus``,
        ``label`` (and ``summit``) columns, and the warning to log about dropped rows or a
        file left without peaks (its label column all zero), or None.

    Raises:
        InputError: a malformed file, an unknown chromosome (without ``skip_unknown_chroms``),
            or a peak that starts past its chromosome's end.
    """
    import pandas as pd

    peaks = read_bed(source.path, summit=summit)
    categories = peaks["chrom"].astype("category")
    position = {name: i for i, name in enumerate(names)}
    index_of = {str(c): position.get(str(c)) for c in categories.cat.categories}
    lookup = np.array([-1 if i is None else i for i in index_of.values()], dtype=np.int32)
    chrom = lookup[categories.cat.codes.to_numpy()]
    unknown = chrom < 0
    unknown_names = sorted(name for name, i in index_of.items() if i is None)
    warning = None
    if unknown_names:
        listed = ", ".join(unknown_names[:10]) + (
            f" and {len(unknown_names) - 10} more" if len(unknown_names) > 10 else ""
        )
        if not skip_unknown_chroms:
            raise InputError(
                f"{source.path}: chromosomes not in the reference {reference_path}: "
                f"{listed}; fix the names or pass skip_unknown_chroms=True to drop them"
            )
        warning = (
            f"{source.path}: dropped {int(unknown.sum())} rows on chromosomes not in the "
            f"reference: {listed}"
        )
    keep = ~unknown
    starts = peaks["start"].to_numpy(np.int64)
    past_end = keep & (starts >= lengths[np.maximum(chrom, 0)])
    if past_end.any():
        first = int(np.flatnonzero(past_end)[0])
        name = names[chrom[first]]
        raise InputError(
            f"{source.path}: {int(past_end.sum())} peaks start past the end of their "
            f"chromosome in {reference_path} (first: {name}:{starts[first]}, {name} has "
            f"{lengths[chrom[first]]} bases); is this the right reference build?"
        )
    if not keep.any():  # its label column would be all zero: say so, never silently
        empty = "holds no peaks" if len(peaks) == 0 else "has no peak left on the reference"
        notice = f"{source.path}: {empty}; its label column is all zero"
        warning = notice if warning is None else f"{warning}; {notice}"
    frame = pd.DataFrame(
        {
            "chrom": chrom[keep],
            "start": starts[keep],
            "end": peaks["end"].to_numpy(np.int64)[keep],
            "minus": peaks["minus"].to_numpy(bool)[keep],
            "label": np.full(int(keep.sum()), source.column, dtype=np.int32),
        }
    )
    if summit:
        frame["summit"] = peaks["summit"].to_numpy(np.int64)[keep]
    return frame, warning


def assign_splits(
    regions: Regions, chrom_names: Sequence[str], options: IntervalOptions
) -> np.ndarray:
    """``(n,) int8`` split of each region: 0 training, 1 validation, 2 test."""
    return split_codes(regions.chrom, chrom_names, options)


def split_codes(
    chrom: np.ndarray, chrom_names: Sequence[str], options: IntervalOptions
) -> np.ndarray:
    """``(n,) int8`` split of the regions on chromosomes ``chrom``, in output order.

    By chromosome name, or the seeded random permutation of all ``n`` regions.
    """
    n = len(chrom)
    split = np.zeros(n, dtype=np.int8)
    if options.split == "chrom":
        names = np.asarray(chrom_names, dtype=object)[chrom]
        split[np.isin(names, list(options.valid_chroms))] = 1
        split[np.isin(names, list(options.test_chroms))] = 2
        return split
    order = np.random.default_rng(options.seed).permutation(n)
    n_test = int(0.5 + options.test_frac * n)
    n_valid = int(0.5 + options.valid_frac * n)
    split[order[:n_test]] = 2
    split[order[n_test : n_test + n_valid]] = 1
    return split


def region_names(regions: Regions, chrom_names: Sequence[str], length: int) -> list[str]:
    """``chrom:start-end(strand)`` of each region."""
    names = np.asarray(chrom_names, dtype=object)[regions.chrom]
    strands = np.where(regions.minus, "-", "+")
    return [
        f"{c}:{s}-{s + length}({t})"
        for c, s, t in zip(names, regions.start.tolist(), strands, strict=True)
    ]


def build_interval_dataset(
    metadata: str | os.PathLike,
    reference: str | os.PathLike,
    output: str | os.PathLike,
    options: IntervalOptions | None = None,
    *,
    device: str | None = None,
    client: Any = None,
    progress: bool = False,
    command: str | None = None,
    report: str | os.PathLike | None = None,
    **parameters: Any,
) -> dict[str, Any]:
    """Build a labelled training set from BED peak files and a reference genome.

    Peaks are merged into fixed-length regions (``merge``), labelled by the BED files they come
    from, split by chromosome (or at random), one-hot encoded chromosome by chromosome and
    written with the layout of :mod:`~gpu_genomics.intervals.layouts`.

    Args:
        metadata: the metadata file listing the BED files (``docs/intervals.md#metadata``).
        reference: the reference FASTA (bgzip or plain; indexed when the index is missing).
        output: ``.h5``/``.hdf5`` or ``.zarr``; without a suffix ``.h5`` (``.zarr`` with
            ``output_format="zarr"``) is appended.
        options: an :class:`IntervalOptions`; ``parameters`` override its fields.
        device: ``"auto" | "gpu" | "cpu"``.
        client: a :class:`distributed.Client`: run on its cluster
            (:mod:`~gpu_genomics.intervals.cluster`; the same output); default: this process.
        progress: show progress bars.
        command: the command line stored in the provenance (default: this process's).
        report: also write a QC report here (``.html``,
            :func:`~gpu_genomics.report.intervals_report`): regions per split and label,
            labels per region, GC per split, windows at chromosome ends. In-process only.
        **parameters: any field of :class:`IntervalOptions` (``length=1000``, ``merge="hull"``).

    Returns:
        A summary: ``output`` (the path written), ``regions`` (count per split), ``n_peaks``,
        ``timings`` (seconds per stage).

    Raises:
        InputError: a bad parameter or input; nothing is written.

    Memory: in-process, the peaks and regions (a few dozen bytes each, plus one byte per label
    and region), one chromosome's windows (plain FASTA: one batch's) and one batch of one-hot
    rows (at most 64 MiB); on a cluster, per worker one BED file, one chromosome or one such
    batch, and on the client the counts and one byte per region.
    """
    options = with_options(options, IntervalOptions, parameters, caller="build_interval_dataset")
    options.check()
    output = _output_path(output, options.output_format)
    _check_report(report, client=client, output=output)
    basset = options.output_format == "basset"
    output_format = "hdf5" if basset else format_from_path(output, options.output_format)
    device_name = resolve_device(device)
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    sources, label_names = read_metadata(metadata)
    tracks = read_track_list(options.bigwig) if options.bigwig is not None else []
    ref = Reference(reference)
    with ref:
        if client is None:
            peaks = load_peaks(
                sources,
                ref,
                skip_unknown_chroms=options.skip_unknown_chroms,
                progress=progress,
                summit=options.center == "summit",
            )
            peaks = _drop_short_chromosomes(peaks, ref, options.span)
            n_peaks = len(peaks)
        else:
            from . import cluster

            plan = cluster.plan_regions(
                client,
                sources=sources,
                ref=ref,
                n_labels=len(label_names),
                options=options,
                device=device,
                progress=progress,
            )
            n_peaks = plan.n_peaks
        _warn_about_setup(options, ref, label_names)
        timings["read"] = time.perf_counter() - clock
        log.info("%d BED files, %d peaks, %d labels", len(sources), n_peaks, len(label_names))

        clock = time.perf_counter()
        if client is None:
            regions, split, gc, n_before = select_regions(
                peaks,
                options,
                ref=ref,
                n_labels=len(label_names),
                device=device_name,
                composition=report is not None,
            )
            counts = {name: int((split == i).sum()) for i, name in enumerate(SPLITS)}
        else:
            n_before = plan.n_before
            log_selection(plan.dropped, plan.n_shifted, options)
            counts = dict(zip(SPLITS, plan.counts(), strict=True))
        timings["merge"] = time.perf_counter() - clock
        _log_regions(counts, n_before=n_before, options=options)

        clock = time.perf_counter()
        layout = BassetLayout if basset else StandardLayout
        with (
            written_reports() as reports,  # removed if the output fails
            ArrayWriter(output, output_format, options.compression, spec=layout.spec) as out,
            contextlib.ExitStack() as stack,
        ):
            writer = layout(out, options, [track.name for track in tracks])
            if client is None:
                writer.create(
                    regions,
                    split,
                    region_names(regions, ref.names, options.length),
                    label_names,
                    ref.names,
                )
                _write_sequences(
                    writer,
                    ref,
                    regions,
                    split,
                    options=options,
                    device=device_name,
                    progress=progress,
                    tracks=stack.enter_context(TrackSet(tracks)) if tracks else None,
                )
            else:
                cluster.write_planned(
                    client,
                    plan,
                    writer=writer,
                    ref=ref,
                    counts=list(counts.values()),
                    label_names=label_names,
                    options=options,
                    device=device,
                    progress=progress,
                )
            attributes = _attributes(
                metadata=metadata,
                reference=reference,
                ref=ref,
                sources=sources,
                label_names=label_names,
                output=output,
                counts=counts,
                options=options,
                resolved={
                    "output_format": options.output_format or output_format,
                    "compression": out.compression,
                    "workers": None if client is None else worker_count(client),
                },
                device=device_name,
                command=command,
            )
            out.attrs(attributes)
            if report is not None:
                reports.append(
                    _write_report(
                        report, regions, split, gc, ref=ref, label_names=label_names,
                        options=options, counts=counts, provenance=attributes,
                    )
                )  # fmt: skip
    timings["sequences_and_write"] = time.perf_counter() - clock
    log.info(
        "wrote %s: %s regions (%s)",
        output,
        ", ".join(f"{k} {v}" for k, v in counts.items()),
        ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()),
    )
    return {"output": str(output), "regions": counts, "timings": timings, "n_peaks": n_peaks}


def _check_report(report: str | os.PathLike | None, *, client: Any, output: Path) -> None:
    """Check the report's path before any work (in-process only, for now)."""
    if report is None:
        return
    if client is not None:
        raise invalid(
            "report",
            str(report),
            "is written in this process only (for now); run without --workers/--scheduler",
        )
    check_report_path(report, outputs=(output,))


def _write_report(
    report: str | os.PathLike,
    regions: Regions,
    split: np.ndarray,
    gc: np.ndarray | None,
    *,
    ref: Reference,
    label_names: list[str],
    options: IntervalOptions,
    counts: dict[str, int],
    provenance: dict[str, Any],
) -> Path:
    """:func:`~gpu_genomics.report.intervals_report` of the regions written; returns it.

    A window "at a chromosome end" is one whose stored span (with its flanks) starts at 0 or
    ends at the chromosome's end: shifted inward to fit, or moved for its flanks.
    """
    from ..report import intervals_report

    lengths = ref.lengths[regions.chrom.astype(np.int64)]
    stored_start = regions.start - options.flank
    at_end = (stored_start == 0) | (stored_start + options.span == lengths)
    in_split = {name: split == i for i, name in enumerate(SPLITS)}
    summary = {
        "labels": len(label_names),
        "length": options.length,
        "flank": options.flank,
        "merge": "regions of " + str(options.universe) if options.universe else options.merge,
    }
    if regions.negative is not None:
        summary["negatives"] = int(regions.negative.sum())
    return intervals_report(
        report,
        split_counts=counts,
        label_names=label_names,
        labels_per_split={n: regions.labels[rows].sum(axis=0) for n, rows in in_split.items()},
        labels_per_region=regions.labels.sum(axis=1),
        gc_per_split={name: gc[rows][~np.isnan(gc[rows])] for name, rows in in_split.items()}
        if gc is not None
        else {},
        n_shifted=int(at_end.sum()),
        summary=summary,
        provenance=provenance,
    )


def _log_regions(counts: dict[str, int], *, n_before: int, options: IntervalOptions) -> None:
    """Log the regions per split (and how many ``exclusive`` kept of ``n_before``)."""
    n_regions = sum(counts.values())
    if options.exclusive:
        log.info("exclusive: kept %d of %d regions with exactly one label", n_regions, n_before)
    if not n_regions:
        log.warning("no regions left to write (see the counts above); the dataset is empty")
    log.info(
        "%d regions (%s merge): %s",
        n_regions,
        options.merge,
        ", ".join(f"{k} {v}" for k, v in counts.items()),
    )


def select_regions(
    peaks: pd.DataFrame,
    options: IntervalOptions,
    *,
    ref: Reference,
    n_labels: int,
    device: str,
    composition: bool = False,
) -> tuple[Regions, np.ndarray, np.ndarray | None, int]:
    """All the regions of the job in this process, with their splits (and negatives).

    Args:
        peaks: every file's peaks.
        options: the job's options.
        ref: the open reference.
        n_labels: label columns K.
        device: ``"cpu"`` or ``"gpu"``.
        composition: count every window's GC even when no option needs it (a report).

    Returns:
        The regions in output order, their ``(n,) int8`` splits, their GC fractions (or None
        when not counted), and the count of regions before ``exclusive``.
    """
    selection, n_before = chromosome_regions(
        peaks,
        options,
        ref=ref,
        n_labels=n_labels,
        device=device,
        universe=load_universe(options, ref),
        composition=composition,
    )
    log_selection(selection.dropped, selection.n_shifted, options)
    regions = selection.regions
    split = assign_splits(regions, ref.names, options)
    if options.negatives:
        negatives = sample_negatives(
            regions,
            split,
            selection.gc,
            peaks=peak_table(peaks, len(ref.names)),
            ref=ref,
            options=options,
            device=device,
        )
        log.info(
            "negatives: %d GC-matched background windows (%s)",
            len(negatives.regions),
            ", ".join(
                f"{name} {int((negatives.split == i).sum())}" for i, name in enumerate(SPLITS)
            ),
        )
        regions, split, gc = add_negatives(regions, split, selection.gc, negatives)
        return regions, split, gc, n_before
    return regions, split, selection.gc, n_before


def chromosome_regions(
    peaks: pd.DataFrame,
    options: IntervalOptions,
    *,
    ref: Reference,
    n_labels: int,
    device: str | None,
    universe: pd.DataFrame | None = None,
    composition: bool = False,
) -> tuple[Selection, int]:
    """The regions of ``peaks`` (all of them, or one chromosome's), filtered.

    :func:`merged_regions`, then :func:`~.selection.filter_regions` (flank shift,
    ``min_distance_to_end``, ``blacklist``, ``max_n_frac``); ``composition``: count every
    window's GC even when no option needs it.

    Returns:
        The selection, and the regions' count before ``exclusive``.
    """
    regions, n_before = merged_regions(
        peaks,
        options,
        chrom_sizes=ref.lengths,
        n_labels=n_labels,
        device=device,
        universe=universe,
    )
    selection = filter_regions(
        regions, options, ref=ref, device=resolve_device(device), composition=composition
    )
    return selection, n_before


def load_universe(options: IntervalOptions, ref: Reference) -> pd.DataFrame | None:
    """The ``universe`` regions on the reference's chromosomes (None without one).

    Read as a BED file of peaks is (:func:`file_peaks`: unknown chromosomes are an error
    unless ``skip_unknown_chroms``); regions on chromosomes shorter than a stored window are
    dropped (logged).
    """
    if options.universe is None:
        return None
    frame, warning = file_peaks(
        universe_source(options.universe),
        names=ref.names,
        lengths=ref.lengths,
        reference_path=str(ref.path),
        skip_unknown_chroms=options.skip_unknown_chroms,
    )
    if warning:
        log.warning("%s", warning.replace("its label column is all zero", "no regions"))
    log.info("regions: %d from %s", len(frame), options.universe)
    return _drop_short_chromosomes(frame, ref, options.span)


def log_selection(dropped: dict[str, int], n_shifted: int, options: IntervalOptions) -> None:
    """Log the windows each filter dropped and those shifted to make room for flanks."""
    if n_shifted:
        log.info(
            "flank=%d: %d windows moved inward so that their flanks fit", options.flank, n_shifted
        )
    for reason, n in dropped.items():
        log.info("%s: dropped %d windows", reason, n)


def merged_regions(
    peaks: pd.DataFrame,
    options: IntervalOptions,
    *,
    chrom_sizes: np.ndarray,
    n_labels: int,
    device: str | None,
    universe: pd.DataFrame | None = None,
) -> tuple[Regions, int]:
    """Merge ``peaks`` (all of them, or one chromosome's) into regions.

    With a ``universe`` (its rows on the same chromosomes), its regions are labelled by
    overlap instead (:func:`~.selection.universe_regions`).

    Returns:
        The regions, and their count before ``exclusive`` kept only the single-label ones.
    """
    if universe is not None:
        regions = universe_regions(
            universe,
            peaks,
            length=options.length,
            chrom_sizes=chrom_sizes,
            n_labels=n_labels,
            overlap=options.label_overlap,
            overlap_of=options.label_overlap_of,
        )
    else:
        regions = make_regions(
            peaks,
            options.merge,
            length=options.length,
            min_overlap=options.min_overlap,
            chrom_sizes=chrom_sizes,
            n_labels=n_labels,
            device=device,
        )
    n_before = len(regions)
    if options.exclusive:
        regions = regions.subset(regions.labels.sum(axis=1) == 1)
    return regions, n_before


def log_dropped_peaks(n_peaks: int, n_chroms: int, length: int) -> None:
    """Log the peaks dropped for lying on chromosomes shorter than a stored window."""
    log.info(
        "dropped %d peaks on %d chromosomes shorter than a window (%d bases with its flanks)",
        n_peaks,
        n_chroms,
        length,
    )


def _drop_short_chromosomes(peaks: pd.DataFrame, ref: Reference, length: int) -> pd.DataFrame:
    """``peaks`` without those on chromosomes shorter than ``length`` (logged)."""
    on_short = (ref.lengths < length)[peaks["chrom"].to_numpy()]
    if not on_short.any():
        return peaks
    log_dropped_peaks(
        int(on_short.sum()), len(np.unique(peaks["chrom"].to_numpy()[on_short])), length
    )
    return peaks[~on_short].reset_index(drop=True)


def _attributes(
    *,
    metadata: str | os.PathLike,
    reference: str | os.PathLike,
    ref: Reference,
    sources: Sequence[BedSource],
    label_names: list[str],
    output: Path,
    counts: dict[str, int],
    options: IntervalOptions,
    resolved: dict[str, Any],
    device: str,
    command: str | None,
) -> dict[str, Any]:
    """The output's attributes: the provenance, the base order and the dataset card."""
    basset = options.output_format == "basset"
    card = {
        "dataset_id": Path(output).name.split(".")[0],
        "name": f"{Path(output).name} from {Path(metadata).name}",
        "modality": "DNA sequence (genomic regions)",
        "n_regions": counts,
        "length": options.length,
        "n_labels": len(label_names),
        "labels": label_names,
        "reference": str(reference),
        "encoding": "one-hot "
        + ("A,C,G,T channel-major float16" if basset else f"{options.alphabet} {options.dtype}"),
        "preprocessing": (
            f"gpu-genomics {version()} intervals: {options.merge} merge, "
            f"min_overlap {options.min_overlap}, length {options.length}, "
            f"{options.split} split" + (", exclusive" if options.exclusive else "")
        ),
    }
    inputs = {"metadata": metadata, "reference": reference, "reference index": ref.index_path}
    if ref.gzi_path is not None:
        inputs["reference bgzip index"] = ref.gzi_path
    inputs.update({f"bed {source.column + 1}:{source.line}": source.path for source in sources})
    record = provenance(
        "gpu-genomics intervals",
        parameters={**dataclasses.asdict(options), **resolved},
        inputs=inputs,
        device=device,
        command=command,
    )
    layout = {"length": options.length, "flank": options.flank}
    if options.bigwig is not None:
        layout["target_bin_size"] = options.bin_size or 0
    return {
        **record,
        "base_order": "ACGT" if basset else options.alphabet,
        **layout,
        "dataset_card": card,
    }


def _output_path(output: str | os.PathLike, output_format: str | None) -> Path:
    """The path written: ``output``, with ``.h5`` (``.zarr``) appended when it has no suffix.

    Raises:
        InputError: ``output`` names a folder, its folder does not exist, or its suffix does
            not fit ``output_format``.
    """
    text = str(output)
    if text.endswith(("/", os.sep)):
        raise InputError(f"{text}: is a folder; give the output a file name such as out.h5")
    path = Path(text)
    if not path.suffix:
        path = path.with_name(f"{path.name}.zarr" if output_format == "zarr" else f"{path.name}.h5")
    if output_format == "basset":
        if path.suffix.lower() == ".zarr":
            raise InputError(f"{path}: output_format='basset' writes HDF5; name the output .h5")
    else:
        format_from_path(path, output_format)
    check_output_folder(path)
    return path


def _aligned_batches(rows: np.ndarray, position: np.ndarray, batch_rows: int) -> Any:
    """Split consecutive output rows into batches of at most ``batch_rows``.

    The batch bounds fall on multiples of ``batch_rows`` in the output, so that batches fill
    whole chunks.
    """
    if not len(rows):
        return
    first_position = int(position[rows[0]])
    cuts = (
        np.arange(
            -(-first_position // batch_rows) * batch_rows, first_position + len(rows), batch_rows
        )
        - first_position
    )
    bounds = np.unique(np.concatenate(([0], cuts[cuts > 0], [len(rows)])))
    for lo, hi in itertools.pairwise(bounds):
        yield rows[lo:hi]


def _warn_about_setup(options: IntervalOptions, ref: Reference, label_names: list[str]) -> None:
    """Warnings for setups that run but are probably not what the user meant."""
    if options.split == "chrom":
        missing = [
            c for c in (*options.test_chroms, *options.valid_chroms) if ref.index_of(c) is None
        ]
        if missing:
            log.warning(
                "split chromosomes not in the reference (no regions): %s", ", ".join(missing)
            )
    repeated = sorted({name for name in label_names if label_names.count(name) > 1})
    if repeated:
        log.warning("label names used by more than one column: %s", ", ".join(repeated))


def encode_windows(
    ref: Reference,
    name: str,
    starts: np.ndarray,
    minus: np.ndarray,
    *,
    length: int,
    encode_kwargs: dict[str, Any],
    device: str,
    buffers: tuple[np.ndarray, Any] | None = None,
    spans: tuple[Any, np.ndarray] | None = None,
) -> Any:
    """One-hot encode the windows ``[starts, starts + length)`` of chromosome ``name``.

    Rows with ``minus`` are reverse-complemented: as bytes before encoding when the windows are
    gathered for this call (plain FASTA), as one-hot rows after it when they come from shared
    spans (bgzip). Both give the same rows.

    Args:
        ref: the open reference.
        name: the chromosome.
        starts: ``(n,) int64`` window starts.
        minus: ``(n,) bool``, the ``-`` strand rows.
        length: window length in bases.
        encode_kwargs: the layout's keywords of
            :func:`~gpu_genomics.sequence.onehot.one_hot_windows`.
        device: ``"cpu"`` or ``"gpu"``.
        buffers: optional reused ``(window bytes, one-hot)`` buffers of at least ``n`` rows.
        spans: bgzip: the chromosome's spans already read, ``(data on device, window starts in
            it)``; default: read from ``ref``.

    Returns:
        ``(n, length, 4)`` array of the layout's dtype on ``device`` (a view of the one-hot
        buffer when given).
    """
    xp = array_module(device)
    window_buffer, onehot_buffer = buffers if buffers is not None else (None, None)
    if ref.gathers_windows:  # plain FASTA: read just these windows, which this call owns
        data, data_starts = ref.windows(name, starts, length, window_buffer)
        reverse_complement_rows(data.reshape(len(starts), length), np.flatnonzero(minus))
        minus = np.zeros_like(minus)
        data = xp.asarray(data)
    elif spans is None:
        data, data_starts = ref.windows(name, starts, length)
        data = xp.asarray(data)
    else:
        data, data_starts = spans
    onehot = one_hot_windows(
        data, data_starts, length, device=device, out=onehot_buffer, **encode_kwargs
    )
    if minus.any():  # windows shared in spans: flip the one-hot rows
        flip = xp.asarray(np.flatnonzero(minus))
        onehot[flip] = reverse_complement(
            onehot[flip], kind="onehot", alphabet=encode_kwargs["alphabet"], device=device
        )
    return onehot


def _write_sequences(
    writer: StandardLayout | BassetLayout,
    ref: Reference,
    regions: Regions,
    split: np.ndarray,
    *,
    options: IntervalOptions,
    device: str,
    progress: bool,
    tracks: TrackSet | None = None,
) -> None:
    """Read, encode and write the windows (and bigWig targets) of each chromosome.

    Each chromosome's windows, with their flanks, are read in bulk (once), encoded in batches,
    and written in place; its targets are read from every track at once.
    """
    from tqdm import tqdm

    xp = array_module(device)
    kwargs = writer.encode_kwargs()
    # position of each region inside its split's arrays (regions are in output order)
    position = np.zeros(len(regions), dtype=np.int64)
    for index in range(len(SPLITS)):
        rows = np.flatnonzero(split == index)
        position[rows] = np.arange(len(rows))
    chrom_bounds = np.searchsorted(regions.chrom, np.arange(len(ref.names) + 1))
    # buffers reused across chromosomes and batches (fresh memory costs a page fault per page);
    # a batch is at most BATCH_BYTES of one-hot output, so memory does not grow with --length
    most_regions = int(np.diff(chrom_bounds).max()) if len(regions) else 0
    batch_rows = writer.batch_rows()
    chunk_rows = writer.out.chunk_rows
    if batch_rows >= chunk_rows:  # whole chunks: HDF5 then never rewrites a chunk
        batch_rows -= batch_rows % chunk_rows
    batch_rows = min(batch_rows, max(most_regions, 1))
    span = options.span
    window_buffer = np.empty(batch_rows * span, dtype=np.uint8)
    onehot_buffer = xp.empty(batch_rows * span * 4, dtype=kwargs["dtype"])
    with tqdm(
        total=len(regions), unit="region", desc="sequences", disable=not progress or None
    ) as bar:
        for chrom in range(len(ref.names)):
            lo, hi = chrom_bounds[chrom], chrom_bounds[chrom + 1]
            if lo == hi:
                continue
            name = ref.names[chrom]
            starts = regions.start[lo:hi] - options.flank
            if not ref.gathers_windows:  # bgzip: decompress the spans holding windows once
                chrom_data, chrom_starts = ref.windows(name, starts, span)
                chrom_data = xp.asarray(chrom_data)
            targets = (
                None
                if tracks is None
                else track_targets(tracks, ref, name, regions.subset(slice(lo, hi)), options)
            )
            for index in range(len(SPLITS)):
                rows = lo + np.flatnonzero(split[lo:hi] == index)
                for batch in _aligned_batches(rows, position, batch_rows):
                    onehot = encode_windows(
                        ref,
                        name,
                        starts[batch - lo],
                        regions.minus[batch],
                        length=span,
                        encode_kwargs=kwargs,
                        device=device,
                        buffers=(window_buffer, onehot_buffer),
                        spans=None
                        if ref.gathers_windows
                        else (chrom_data, chrom_starts[batch - lo]),
                    )
                    start = position[batch[0]]
                    writer.seqs[index][start : start + len(batch)] = to_numpy(
                        writer.to_layout(onehot)
                    )
                    if targets is not None:
                        writer.track_targets[index][start : start + len(batch)] = targets[
                            batch - lo
                        ]
                    bar.update(len(batch))
            chrom_data = None
            ref.release_pages()


def track_targets(
    tracks: TrackSet, ref: Reference, chrom_name: str, regions: Regions, options: IntervalOptions
) -> np.ndarray:
    """The bigWig targets of one chromosome's ``regions`` (their ``length``-base windows).

    The chromosome's length in the reference is checked against each track's (a bigWig of
    another genome build is refused, naming the track).

    Returns:
        ``(n, K) float32``, or ``(n, length / bin_size, K)`` with ``bin_size``.
    """
    return tracks.targets(
        chrom_name,
        regions.start,
        options.length,
        target=options.target,
        bin_size=options.bin_size,
        minus=regions.minus,
        missing=options.bigwig_missing,
        chrom_length=int(ref.lengths[ref.names.index(chrom_name)]),
    )
