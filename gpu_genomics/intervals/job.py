"""The ``intervals`` job: BED peak files + a reference genome -> an ML-ready HDF5/Zarr dataset.

A drop-in for genomic_interval_pipeline (and Basset's preprocessing): peaks are merged into
fixed-length labelled regions (:mod:`gpu_genomics.regions`), split by chromosome or at random,
and one-hot encoded one chromosome at a time: each chromosome is read once, its windows are
gathered in bulk (CUDA kernel on the GPU, numba twin on the CPU) and streamed to the output in
batches, so memory stays bounded by the largest chromosome plus a batch.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import __version__
from ..device import array_module, resolve_device, to_numpy
from ..errors import InputError, positive_int
from ..io.store import ArrayWriter, format_from_path
from ..sequence.onehot import one_hot_windows
from ..sequence.revcomp import reverse_complement, reverse_complement_rows
from .bed import read_bed, read_metadata
from .reference import Reference
from .regions import MERGE_MODES, Regions, make_regions

log = logging.getLogger("gpu_genomics")

SPLITS = ("training", "validation", "test")
#: Largest one-hot batch encoded and written at once, in bytes.
BATCH_BYTES = 64 * 2**20
BASSET_SPLITS = {"training": "train", "validation": "valid", "test": "test"}


@dataclass
class IntervalOptions:
    """Parameters of :func:`build_interval_dataset` (the CLI flags of ``intervals``)."""

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

    def check(self) -> None:
        positive_int("--length", self.length)
        positive_int("batch_rows", self.batch_rows)
        if self.min_overlap < 0:
            raise InputError(f"--min_overlap {self.min_overlap} must be 0 or more")
        if self.merge not in MERGE_MODES:
            raise InputError(f"--merge {self.merge!r} is not one of {', '.join(MERGE_MODES)}")
        if self.split not in ("chrom", "random"):
            raise InputError(f"--split {self.split!r} is not one of chrom, random")
        for name, value in (("--valid-frac", self.valid_frac), ("--test-frac", self.test_frac)):
            if not 0 <= value <= 1:
                raise InputError(f"{name} {value} must lie between 0 and 1")
        if self.valid_frac + self.test_frac > 1:
            raise InputError("--valid-frac plus --test-frac must not exceed 1")
        both = set(self.test_chroms) & set(self.valid_chroms)
        if both:
            raise InputError(f"chromosomes in both --test_chr and --valid_chr: {sorted(both)}")


def load_peaks(
    sources: Sequence[Any], reference: Reference, skip_unknown_chroms: bool, progress: bool = False
) -> pd.DataFrame:
    """All BED rows with ``chrom`` (reference index), ``start``, ``end``, ``minus``, ``label``."""
    from tqdm import tqdm

    frames = []
    for source in tqdm(sources, unit="file", desc="read BED", disable=not progress or None):
        peaks = read_bed(source.path)
        names = peaks["chrom"].astype("category")
        index_of = {str(c): reference.index_of(str(c)) for c in names.cat.categories}
        lookup = np.array([-1 if i is None else i for i in index_of.values()], dtype=np.int32)
        chrom = lookup[names.cat.codes.to_numpy()]
        unknown = chrom < 0
        unknown_names = sorted(name for name, i in index_of.items() if i is None)
        if unknown_names:
            listed = ", ".join(unknown_names[:10]) + (
                f" and {len(unknown_names) - 10} more" if len(unknown_names) > 10 else ""
            )
            if not skip_unknown_chroms:
                raise InputError(
                    f"{source.path}: chromosomes not in the reference {reference.path}: "
                    f"{listed}; fix the names or pass --skip-unknown-chroms to drop them"
                )
            log.warning(
                "%s: dropped %d rows on chromosomes not in the reference: %s",
                source.path,
                int(unknown.sum()),
                listed,
            )
        keep = ~unknown
        starts = peaks["start"].to_numpy(np.int64)
        past_end = keep & (starts >= reference.lengths[np.maximum(chrom, 0)])
        if past_end.any():
            first = int(np.flatnonzero(past_end)[0])
            name = reference.names[chrom[first]]
            raise InputError(
                f"{source.path}: {int(past_end.sum())} peaks start past the end of their "
                f"chromosome in {reference.path} (first: {name}:{starts[first]}, {name} has "
                f"{reference.lengths[chrom[first]]} bases); is this the right reference build?"
            )
        frames.append(
            pd.DataFrame(
                {
                    "chrom": chrom[keep],
                    "start": peaks["start"].to_numpy(np.int64)[keep],
                    "end": peaks["end"].to_numpy(np.int64)[keep],
                    "minus": peaks["minus"].to_numpy(bool)[keep],
                    "label": np.full(int(keep.sum()), source.column, dtype=np.int32),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def assign_splits(
    regions: Regions, chrom_names: Sequence[str], options: IntervalOptions
) -> np.ndarray:
    """``(n,) int8`` split of each region: 0 training, 1 validation, 2 test."""
    n = len(regions)
    split = np.zeros(n, dtype=np.int8)
    if options.split == "chrom":
        names = np.asarray(chrom_names, dtype=object)[regions.chrom]
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
    options: IntervalOptions,
    *,
    device: str | None = None,
    command: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the whole job; return a summary (regions per split, timings)."""
    options.check()
    basset = options.output_format == "basset"
    output_format = "hdf5" if basset else format_from_path(output, options.output_format)
    if basset and Path(output).suffix.lower() == ".zarr":
        raise InputError(f"{output}: --format basset writes HDF5; name the output .h5")
    device_name = resolve_device(device)
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    sources, label_names = read_metadata(metadata)
    ref = Reference(reference)
    peaks = load_peaks(sources, ref, options.skip_unknown_chroms, progress)
    short = ref.lengths < options.length
    on_short = short[peaks["chrom"].to_numpy()]
    if on_short.any():
        log.info(
            "dropped %d peaks on %d chromosomes shorter than --length %d",
            int(on_short.sum()),
            len(np.unique(peaks["chrom"].to_numpy()[on_short])),
            options.length,
        )
        peaks = peaks[~on_short].reset_index(drop=True)
    _warn_about_setup(options, ref, label_names)
    timings["read"] = time.perf_counter() - clock
    log.info("%d BED files, %d peaks, %d labels", len(sources), len(peaks), len(label_names))

    clock = time.perf_counter()
    regions = make_regions(
        peaks,
        options.merge,
        options.length,
        options.min_overlap,
        ref.lengths,
        len(label_names),
        device=device_name,
    )
    if options.exclusive:
        single = regions.labels.sum(axis=1) == 1
        log.info(
            "--exclusive: kept %d of %d regions with exactly one label",
            int(single.sum()),
            len(regions),
        )
        regions = regions.subset(single)
    split = assign_splits(regions, ref.names, options)
    timings["merge"] = time.perf_counter() - clock
    counts = {name: int((split == i).sum()) for i, name in enumerate(SPLITS)}
    if not len(regions):
        log.warning("no regions left to write (see the counts above); the dataset is empty")
    log.info(
        "%d regions (%s merge): %s",
        len(regions),
        options.merge,
        ", ".join(f"{k} {v}" for k, v in counts.items()),
    )

    clock = time.perf_counter()
    names = region_names(regions, ref.names, options.length)
    parameters = {**asdict(options), "device": device_name, "metadata": str(metadata)}
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
            f"gpu-genomics {__version__} intervals: {options.merge} merge, "
            f"min_overlap {options.min_overlap}, length {options.length}, "
            f"{options.split} split" + (", exclusive" if options.exclusive else "")
        ),
    }
    with ref, ArrayWriter(output, output_format, options.compression) as out:
        writer = _BassetLayout(out) if basset else _StandardLayout(out, options)
        writer.create(regions, split, names, label_names, ref.names, options)
        _write_sequences(writer, ref, regions, split, options, device_name, progress)
        out.attrs(
            {
                "gpu_genomics_version": __version__,
                "command": command or "",
                "parameters": parameters,
                "reference": str(reference),
                "reference_index_checksum": ref.index_checksum(),
                "base_order": "ACGT" if basset else options.alphabet,
                "dataset_card": card,
            }
        )
    timings["sequences_and_write"] = time.perf_counter() - clock
    return {"regions": counts, "timings": timings, "n_peaks": len(peaks)}


def _aligned_batches(rows: np.ndarray, position: np.ndarray, batch_rows: int) -> Any:
    """Split consecutive output rows into batches of at most ``batch_rows`` whose bounds fall
    on multiples of ``batch_rows`` in the output, so that batches fill whole chunks."""
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


class _StandardLayout:
    """``{split}_{seqs,labels,coords,names}`` + ``label_names`` + ``chrom_names``."""

    def __init__(self, out: ArrayWriter, options: IntervalOptions) -> None:
        self.out, self.options = out, options
        self.seqs: dict[int, Any] = {}

    def create(self, regions, split, names, label_names, chrom_names, options) -> None:
        names = np.asarray(names, dtype=object)
        for index, name in enumerate(SPLITS):
            rows = split == index
            n = int(rows.sum())
            self.seqs[index] = self.out.create(
                f"{name}_seqs", (n, options.length, 4), options.dtype
            )
            self.out.write(f"{name}_labels", regions.labels[rows])
            coords = np.stack(
                [
                    regions.chrom[rows].astype(np.int64),
                    regions.start[rows],
                    regions.start[rows] + options.length,
                ],
                axis=1,
            )
            self.out.write(f"{name}_coords", coords.reshape(n, 3))
            self.out.write(f"{name}_names", names[rows].tolist())
            self.out.link(f"{name}_sequences", f"{name}_seqs")
        self.out.write("label_names", list(label_names))
        self.out.write("chrom_names", list(chrom_names))

    def encode_kwargs(self) -> dict[str, Any]:
        return {"alphabet": self.options.alphabet, "dtype": self.options.dtype}

    def to_layout(self, onehot: Any) -> Any:
        return onehot


class _BassetLayout:
    """Basset's seq_hdf5.py layout: ``{train,valid,test}_{in,out}``, ``test_headers``,
    ``target_labels``; ``*_in`` float16 ``(n, 4, 1, L)``, 0.25 for N."""

    def __init__(self, out: ArrayWriter) -> None:
        self.out = out
        self.seqs: dict[int, Any] = {}

    def create(self, regions, split, names, label_names, chrom_names, options) -> None:
        for index, name in enumerate(SPLITS):
            rows = split == index
            short = BASSET_SPLITS[name]
            self.seqs[index] = self.out.create(
                f"{short}_in", (int(rows.sum()), 4, 1, options.length), np.float16
            )
            self.out.write(f"{short}_out", regions.labels[rows].astype(np.int8))
        self.out.write("test_headers", np.asarray(names, dtype=object)[split == 2].tolist())
        self.out.write("target_labels", list(label_names))

    def encode_kwargs(self) -> dict[str, Any]:
        return {"alphabet": "ACGT", "dtype": "float16", "n_value": 0.25}

    def to_layout(self, onehot: Any) -> Any:
        n, length, _ = onehot.shape
        return onehot.transpose(0, 2, 1).reshape(n, 4, 1, length)


def _write_sequences(
    writer,
    ref: Reference,
    regions: Regions,
    split: np.ndarray,
    options: IntervalOptions,
    device: str,
    progress: bool,
) -> None:
    """Read the windows of each chromosome in bulk (once), encode them in batches, and write
    them in place."""
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
    row_bytes = options.length * 4 * np.dtype(kwargs["dtype"]).itemsize
    batch_rows = max(1, min(options.batch_rows, BATCH_BYTES // row_bytes))
    chunk_rows = writer.out.chunk_rows
    if batch_rows >= chunk_rows:  # whole chunks: HDF5 then never rewrites a chunk
        batch_rows -= batch_rows % chunk_rows
    batch_rows = min(batch_rows, max(most_regions, 1))
    window_buffer = np.empty(batch_rows * options.length, dtype=np.uint8)
    onehot_buffer = xp.empty(batch_rows * options.length * 4, dtype=kwargs["dtype"])
    with tqdm(
        total=len(regions), unit="region", desc="sequences", disable=not progress or None
    ) as bar:
        for chrom in range(len(ref.names)):
            lo, hi = chrom_bounds[chrom], chrom_bounds[chrom + 1]
            if lo == hi:
                continue
            name = ref.names[chrom]
            if not ref.gathers_windows:  # bgzip: decompress the spans holding windows once
                chrom_data, chrom_starts = ref.windows(name, regions.start[lo:hi], options.length)
                chrom_data = xp.asarray(chrom_data)
            for index in range(len(SPLITS)):
                rows = lo + np.flatnonzero(split[lo:hi] == index)
                for batch in _aligned_batches(rows, position, batch_rows):
                    minus = regions.minus[batch]
                    if ref.gathers_windows:  # plain FASTA: read just this batch's windows
                        data, data_starts = ref.windows(
                            name, regions.start[batch], options.length, window_buffer
                        )
                        # the batch owns these bytes: reverse-complement `-` rows here
                        reverse_complement_rows(
                            data.reshape(len(batch), options.length), np.flatnonzero(minus)
                        )
                        minus = np.zeros_like(minus)
                        data = xp.asarray(data)
                    else:
                        data, data_starts = chrom_data, chrom_starts[batch - lo]
                    onehot = one_hot_windows(
                        data,
                        data_starts,
                        options.length,
                        device=device,
                        out=onehot_buffer,
                        **kwargs,
                    )
                    if minus.any():  # windows shared in spans: flip the one-hot rows
                        flip = xp.asarray(np.flatnonzero(minus))
                        onehot[flip] = reverse_complement(
                            onehot[flip], kind="onehot", alphabet=kwargs["alphabet"], device=device
                        )
                    start = position[batch[0]]
                    writer.seqs[index][start : start + len(batch)] = to_numpy(
                        writer.to_layout(onehot)
                    )
                    bar.update(len(batch))
            chrom_data = None
            ref.release_pages()
