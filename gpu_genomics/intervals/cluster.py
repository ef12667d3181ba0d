"""The ``intervals`` job on a Dask cluster (:func:`~.job.build_interval_dataset` with ``client``).

The work is cut into tasks that each hold a bounded part of the data:

1. **read**: one task per BED file reads and checks it and keeps its peaks on the worker, split
   by chromosome; the client gathers only per-chromosome row counts and warnings.
2. **merge**: one task per chromosome takes that chromosome's pieces of every file and makes its
   regions (:func:`~.regions.make_regions`: every mode merges within a chromosome, and within a
   strand for ``basset``), kept on the worker; the client gathers the region counts, so that
   every region's output row is known, and assigns the splits (the random split is the same
   seeded permutation of all regions as in-process).
3. **rows**: one task per range of output rows of a split, aligned to whole chunks and at most
   one in-process batch (64 MiB of one-hot), takes its regions from the merge tasks, reads their
   windows from the reference, encodes them and builds every per-region array of those rows.
   For Zarr it writes its own chunks into the output's temporary store (no two tasks share a
   chunk); for HDF5 it returns the rows, which the client writes in order, a window of tasks at
   a time.

Memory per worker: one BED file's peaks (read), one chromosome's peaks and regions with their
dense labels (merge), or one row range's windows and arrays (rows). The client holds the counts,
the split of each region (one byte each) and, while it assigns them, each region's chromosome
index and name or place in the permutation (4 + 8 bytes). The output is the in-process output,
array for array; the client renames it into place once, when every task has finished.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..device import resolve_device, to_numpy
from ..errors import InputError
from ..execution import ordered_results, task_window, whole_chunks, windowed
from ..io.store import ArrayWriter, write_zarr_rows
from .bed import BedSource
from .bigwig import Track, TrackSet, read_track_list
from .job import (
    chromosome_regions,
    encode_windows,
    file_peaks,
    load_universe,
    log_dropped_peaks,
    region_names,
    split_codes,
    track_targets,
)
from .layouts import SPLITS, BassetLayout, StandardLayout
from .reference import Reference
from .regions import Regions

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("gpu_genomics")


@dataclass
class RegionPlan:
    """The regions of a job, kept on the workers, and what the client knows of them.

    Attributes:
        merged: chromosome index -> future of its :class:`~.regions.Regions`.
        split_of: chromosome index -> ``(n_regions,) int8`` split of each of its regions.
        n_peaks: BED rows kept (after dropping short chromosomes).
        n_before: regions in all before ``exclusive``.
        dropped: filter -> windows it dropped (``filter_regions``), over all chromosomes.
        n_shifted: windows moved inward to make room for their flanks.
    """

    merged: dict[int, Any] = field(default_factory=dict)
    split_of: dict[int, np.ndarray] = field(default_factory=dict)
    n_peaks: int = 0
    n_before: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    n_shifted: int = 0

    def counts(self) -> list[int]:
        """Regions per split (training, validation, test)."""
        totals = np.zeros(len(SPLITS), dtype=np.int64)
        for split in self.split_of.values():
            totals += np.bincount(split, minlength=len(SPLITS))
        return [int(n) for n in totals]


# --- tasks (run on the workers) -----------------------------------------------------------------
def _read_task(
    source: BedSource,
    *,
    names: list[str],
    lengths: np.ndarray,
    reference_path: str,
    skip_unknown_chroms: bool,
    summit: bool,
) -> tuple[dict[int, pd.DataFrame], str | None]:
    frame, warning = file_peaks(
        source,
        names=names,
        lengths=lengths,
        reference_path=reference_path,
        skip_unknown_chroms=skip_unknown_chroms,
        summit=summit,
    )
    pieces = {int(c): part for c, part in frame.groupby("chrom", sort=True)}
    return pieces, warning


def _read_summary(read: tuple[dict[int, pd.DataFrame], str | None]) -> tuple[dict, str | None]:
    pieces, warning = read
    return {c: len(part) for c, part in pieces.items()}, warning


def _piece(read: tuple[dict[int, pd.DataFrame], str | None], chrom: int) -> pd.DataFrame:
    return read[0][chrom]


def _merge_task(
    pieces: list[pd.DataFrame],
    *,
    options: Any,
    reference_path: str,
    n_labels: int,
    device: str | None,
    universe: pd.DataFrame | None,
) -> tuple[Regions, int, dict[str, int], int]:
    """Make one chromosome's regions and filter them (:func:`~.job.chromosome_regions`).

    The pieces come in file order, as the in-process run reads them; ``universe``: the
    chromosome's regions of the universe. Returns the regions, their count before
    ``exclusive``, the windows each filter dropped and the windows shifted for flanks.
    """
    import pandas as pd

    peaks = pd.concat(pieces, ignore_index=True) if pieces else _no_peaks()
    selection, n_before = chromosome_regions(
        peaks,
        options,
        ref=_reference(reference_path),
        n_labels=n_labels,
        device=device,
        universe=universe,
    )
    return selection.regions, n_before, selection.dropped, selection.n_shifted


def _no_peaks() -> pd.DataFrame:
    """An empty peak frame: a universe chromosome without peaks."""
    import pandas as pd

    return pd.DataFrame(
        {
            "chrom": np.zeros(0, np.int32),
            "start": np.zeros(0, np.int64),
            "end": np.zeros(0, np.int64),
            "minus": np.zeros(0, bool),
            "label": np.zeros(0, np.int32),
        }
    )


def _merge_counts(merged: tuple[Regions, int, dict[str, int], int]) -> tuple:
    return len(merged[0]), merged[1], merged[2], merged[3]


@functools.cache
def _reference(path: str) -> Reference:
    """The reference, opened once per worker process."""
    return Reference(path)


def _rows_task(
    pieces: list[tuple[tuple, int, np.ndarray]],
    *,
    basset: bool,
    options: Any,
    chrom_names: list[str],
    reference_path: str,
    tracks: list[Track],
    index: int,
    device: str | None,
    store: str | None,
    first_row: int,
) -> dict[str, Any] | int:
    """Encode and build the output rows ``first_row ..`` of split ``index``.

    ``pieces``: ``(merge result, chromosome, rows of its regions)`` in output order. Writes them
    into the Zarr ``store`` (returns the row count) or returns ``{array: rows}`` (HDF5).
    """
    layout = (BassetLayout if basset else StandardLayout)(
        None,  # type: ignore[arg-type]
        options,
        [track.name for track in tracks],
    )
    kwargs = layout.encode_kwargs()
    ref = _reference(reference_path)
    device_name = resolve_device(device)
    blocks: dict[str, list[Any]] = {}
    track_set = TrackSet(tracks) if tracks else None
    for (regions, *_), chrom, rows in pieces:
        part = regions.subset(rows)
        onehot = encode_windows(
            ref,
            chrom_names[chrom],
            part.start - options.flank,
            part.minus,
            length=options.span,
            encode_kwargs=kwargs,
            device=device_name,
        )
        blocks.setdefault(layout.seqs_name(index), []).append(to_numpy(layout.to_layout(onehot)))
        if track_set is not None:
            blocks.setdefault(f"{SPLITS[index]}_targets", []).append(
                track_targets(track_set, ref, chrom_names[chrom], part, options)
            )
        names = region_names(part, chrom_names, options.length)
        for name, values in layout.row_values(index, part, names).items():
            blocks.setdefault(name, []).append(values)
    ref.release_pages()
    if track_set is not None:
        track_set.close()
    rows_of = {
        name: (
            [v for part in parts for v in part]
            if isinstance(parts[0], list)
            else np.concatenate(parts)
        )
        for name, parts in blocks.items()
    }
    if store is None:
        return rows_of
    return write_zarr_rows(store, first_row, rows_of)


# --- the client's side --------------------------------------------------------------------------
def plan_regions(
    client: Any,
    *,
    sources: Sequence[BedSource],
    ref: Reference,
    n_labels: int,
    options: Any,
    device: str | None,
    progress: bool,
) -> RegionPlan:
    """Read the BED files and merge each chromosome's peaks on the cluster (steps 1 and 2).

    Raises:
        InputError: the first bad BED file, in metadata order (as in-process); ``negatives``,
            which are sampled in-process only.
    """
    from tqdm import tqdm

    if options.negatives:
        raise InputError(
            "negatives are sampled in this process only (for now); run without "
            "--workers/--scheduler (client=None) to add negatives"
        )
    token = uuid.uuid4().hex[:8]
    names, lengths = list(ref.names), np.asarray(ref.lengths)
    reads = [
        client.submit(
            _read_task,
            source,
            names=names,
            lengths=lengths,
            reference_path=str(ref.path),
            skip_unknown_chroms=options.skip_unknown_chroms,
            summit=options.center == "summit",
            key=f"intervals-read-{i}-{token}",
        )
        for i, source in enumerate(sources)
    ]
    summaries = [
        client.submit(_read_summary, read, key=f"intervals-read-summary-{i}-{token}")
        for i, read in enumerate(reads)
    ]
    rows_per_file: list[dict[int, int]] = []
    with tqdm(
        total=len(sources), unit="file", desc="read BED", disable=not progress or None
    ) as bar:
        for per_chrom, warning in ordered_results(summaries, progress=lambda _: bar.update(1)):
            if warning:
                log.warning("%s", warning)
            rows_per_file.append(per_chrom)
    peaks_per_chrom = np.zeros(len(names), dtype=np.int64)
    for per_chrom in rows_per_file:
        for chrom, n in per_chrom.items():
            peaks_per_chrom[chrom] += n
    short = (lengths < options.span) & (peaks_per_chrom > 0)
    if short.any():
        log_dropped_peaks(int(peaks_per_chrom[short].sum()), int(short.sum()), options.span)
    plan = RegionPlan(n_peaks=int(peaks_per_chrom[~short].sum()))
    universe = load_universe(options, ref)
    if universe is None:
        chroms = [c for c in range(len(names)) if peaks_per_chrom[c] and not short[c]]
        universe_of: dict[int, Any] = {}
    else:  # one merge task per chromosome of the universe, with or without peaks
        universe_of = {int(c): part for c, part in universe.groupby("chrom", sort=True)}
        chroms = sorted(universe_of)
    for chrom in chroms:
        pieces = [
            client.submit(_piece, reads[i], chrom, key=f"intervals-piece-{i}-{chrom}-{token}")
            for i, per_chrom in enumerate(rows_per_file)
            if chrom in per_chrom and not short[chrom]
        ]
        plan.merged[chrom] = client.submit(
            _merge_task,
            pieces,
            options=options,
            reference_path=str(ref.path),
            n_labels=n_labels,
            device=device,
            universe=universe_of.get(chrom),
            key=f"intervals-merge-{chrom}-{token}",
        )
    counts = [
        client.submit(_merge_counts, plan.merged[c], key=f"intervals-count-{c}-{token}")
        for c in chroms
    ]
    n_of: dict[int, int] = {}
    with tqdm(total=len(chroms), unit="chrom", desc="merge", disable=not progress or None) as bar:
        for chrom, (n, before, dropped, n_shifted) in zip(
            chroms, ordered_results(counts, progress=lambda _: bar.update(1)), strict=True
        ):
            n_of[chrom] = n
            plan.n_before += before
            plan.n_shifted += n_shifted
            for reason, count in dropped.items():
                plan.dropped[reason] = plan.dropped.get(reason, 0) + count
    plan.split_of = _splits(n_of, names, options)
    return plan


def _splits(n_of: dict[int, int], names: Sequence[str], options: Any) -> dict[int, np.ndarray]:
    """Split each chromosome's regions: ``(n,) int8`` per chromosome.

    :func:`~.job.split_codes` of all regions in output order (chromosome order), cut back
    into chromosomes.
    """
    chrom = np.repeat(np.asarray(list(n_of), dtype=np.int32), list(n_of.values()))
    split = split_codes(chrom, names, options)
    bounds = np.cumsum([0, *n_of.values()])
    return {chrom: split[bounds[i] : bounds[i + 1]] for i, chrom in enumerate(n_of)}


def row_chunk_rows(writer: StandardLayout | BassetLayout, n_labels: int) -> int:
    """Return the rows of every chunk of every per-region array.

    One value, so that a task's rows are whole chunks of each array: the writer's default,
    capped as :class:`~gpu_genomics.io.store.ArrayWriter` caps it.
    """
    return writer.out.common_chunk_rows(writer.row_bytes(n_labels))


def write_planned(
    client: Any,
    plan: RegionPlan,
    *,
    writer: StandardLayout | BassetLayout,
    ref: Reference,
    counts: list[int],
    label_names: list[str],
    options: Any,
    device: str | None,
    progress: bool,
) -> None:
    """Create every array empty with ``counts`` rows per split, then fill them (step 3)."""
    chunk_rows = row_chunk_rows(writer, len(label_names))
    writer.create_empty(
        counts,
        n_labels=len(label_names),
        label_names=label_names,
        chrom_names=ref.names,
        chunk_rows=chunk_rows,
    )
    write_rows(
        client,
        plan,
        writer=writer,
        out=writer.out,
        ref=ref,
        options=options,
        chunk_rows=chunk_rows,
        device=device,
        progress=progress,
    )


def write_rows(
    client: Any,
    plan: RegionPlan,
    *,
    writer: StandardLayout | BassetLayout,
    out: ArrayWriter,
    ref: Reference,
    options: Any,
    chunk_rows: int,
    device: str | None,
    progress: bool,
) -> None:
    """Encode and write every split's rows on the cluster (step 3)."""
    from tqdm import tqdm

    token = uuid.uuid4().hex[:8]
    task_rows = whole_chunks(writer.batch_rows(), chunk_rows)
    store = str(out.tmp_path.resolve()) if out.format == "zarr" else None
    common = {
        "basset": isinstance(writer, BassetLayout),
        "options": options,
        "chrom_names": list(ref.names),
        "reference_path": str(ref.path),
        "tracks": read_track_list(options.bigwig) if options.bigwig is not None else [],
        "device": device,
        "store": store,
    }
    tasks = []
    for index in range(len(SPLITS)):
        # the split's rows in output order: each chromosome's regions of this split
        members = [(c, np.flatnonzero(split == index)) for c, split in plan.split_of.items()]
        members = [(c, rows) for c, rows in members if len(rows)]
        n_rows = sum(len(rows) for _, rows in members)
        for first in range(0, n_rows, task_rows):
            tasks.append((index, first, _pieces(plan, members, first, first + task_rows)))

    def submit(task: tuple[int, int, list]) -> Any:
        index, first, pieces = task
        return client.submit(
            _rows_task,
            pieces,
            index=index,
            first_row=first,
            **common,
            key=f"intervals-rows-{index}-{first}-{token}",
        )

    total = sum(len(rows) for _, _, pieces in tasks for _, _, rows in pieces)
    with tqdm(total=total, unit="region", desc="sequences", disable=not progress or None) as bar:
        futures = (
            windowed(submit, tasks, window=task_window(client))
            if store is None
            else [submit(task) for task in tasks]
        )
        for (index, first, pieces), result in zip(tasks, ordered_results(futures), strict=True):
            n = sum(len(rows) for _, _, rows in pieces)
            if store is None:
                for name, values in result.items():
                    seqs = name == writer.seqs_name(index)
                    target = writer.seqs[index] if seqs else writer.targets[name]
                    target[first : first + n] = (
                        np.asarray(values, dtype=object) if isinstance(values, list) else values
                    )
            bar.update(n)


def _pieces(
    plan: RegionPlan, members: list[tuple[int, np.ndarray]], lo: int, hi: int
) -> list[tuple[Any, int, np.ndarray]]:
    """``(merge future, chromosome, its rows)`` of the split's output rows ``[lo, hi)``."""
    pieces = []
    offset = 0
    for chrom, rows in members:
        a, b = max(lo - offset, 0), min(hi - offset, len(rows))
        if a < b:
            pieces.append((plan.merged[chrom], chrom, rows[a:b]))
        offset += len(rows)
    return pieces
