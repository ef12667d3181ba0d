"""The two output layouts of the ``intervals`` job, each with its declared arrays.

* :class:`StandardLayout` (:data:`INTERVAL_ARRAYS`): the layout of genomic_interval_pipeline
  (the Rust tool), in HDF5 or Zarr: ``{split}_seqs``, ``{split}_labels``, ``{split}_coords``,
  ``{split}_names``, ``label_names``, ``chrom_names``, and in HDF5 the ``{split}_sequences``
  soft links its readers look for (``docs/intervals.md#rust-tool-format``);
* :class:`BassetLayout` (:data:`BASSET_ARRAYS`): Basset's ``seq_hdf5.py`` layout, HDF5 only
  (``docs/intervals.md#basset-format``).

A layout creates its arrays from the regions and their splits, says how the windows are
one-hot encoded for it, and turns an encoded ``(n, L, 4)`` batch into its own row shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..io.spec import LINK, STRING, ArraySpec, OutputSpec
from ..io.store import ArrayWriter
from .regions import Regions

if TYPE_CHECKING:
    from .job import IntervalOptions

SPLITS = ("training", "validation", "test")
#: One batch (in-process) or task (cluster) of the job encodes at most this many one-hot bytes.
BATCH_BYTES = 64 * 2**20
BASSET_SPLITS = {"training": "train", "validation": "valid", "test": "test"}
_ROWS = "{split}_regions"

INTERVAL_ARRAYS = OutputSpec(
    "intervals: BED files + reference -> training set (HDF5/Zarr)",
    (
        ArraySpec(
            "{split}_seqs",
            "uint8|int8|float16|float32",
            (_ROWS, "positions", "channels"),
            "one-hot windows (`dtype`), channels in `alphabet` order; `-` strand regions "
            "reverse-complemented; `length + 2 * flank` positions (root attribute `flank`)",
        ),
        ArraySpec("{split}_labels", "uint8", (_ROWS, "labels"), "multi-hot labels"),
        ArraySpec(
            "{split}_targets",
            "float32",
            (_ROWS, "tracks"),
            "bigWig targets, one per track (`target` over the window), or `(rows, bins, "
            "tracks)` with `bin_size` (root attribute `target_bin_size`); `-` strand rows "
            "have their bins reversed",
            "bigwig given",
        ),
        ArraySpec(
            "{split}_is_negative",
            "uint8",
            (_ROWS,),
            "1 for a GC-matched background window (labels all 0), 0 for a positive",
            "negatives > 0",
        ),
        ArraySpec(
            "{split}_coords",
            "int64",
            (_ROWS, "coordinates"),
            "[chrom_index, start, end], 0-based half-open; chrom_index into chrom_names",
        ),
        ArraySpec("{split}_names", STRING, (_ROWS,), "chrom:start-end(strand)"),
        ArraySpec(
            "{split}_sequences",
            LINK,
            (_ROWS, "positions", "channels"),
            "soft link to {split}_seqs, for readers of the Rust tool's files",
            "HDF5",
        ),
        ArraySpec("label_names", STRING, ("labels",), "name of each label column"),
        ArraySpec("chrom_names", STRING, ("chromosomes",), "the reference's chromosomes, in order"),
        ArraySpec("target_names", STRING, ("tracks",), "name of each bigWig track", "bigwig given"),
    ),
    placeholders={"split": SPLITS},
)

BASSET_ARRAYS = OutputSpec(
    "intervals --format basset: Basset's seq_hdf5.py layout (HDF5)",
    (
        ArraySpec(
            "{split}_in",
            "float16",
            (_ROWS, "channels", "height", "positions"),
            "one-hot windows, A,C,G,T channels, 0.25 for N and other IUPAC letters",
        ),
        ArraySpec("{split}_out", "int8", (_ROWS, "labels"), "multi-hot labels"),
        ArraySpec(
            "test_headers", STRING, ("test_regions",), "chrom:start-end(strand) of the test regions"
        ),
        ArraySpec("target_labels", STRING, ("labels",), "name of each label column"),
    ),
    placeholders={"split": tuple(BASSET_SPLITS.values())},
)


class _Layout:
    """What both layouts share: the writer, the options, and the arrays of each split.

    A layout's arrays are the one-hot rows of each split (``seqs``), other arrays with one row
    per region of a split (:meth:`row_values`), and a few whole arrays (:meth:`whole_values`).
    :meth:`create` writes all but the one-hot rows from the regions at once (in-process);
    :meth:`create_empty` creates every array empty, for tasks to fill row ranges (cluster).

    Attributes:
        spec: the declared arrays of the layout.
        seqs: split index (0 training, 1 validation, 2 test) -> its one-hot array, created by
            ``create`` and filled batch by batch by the job.
        track_targets: split index -> its bigWig targets array (with ``target_names``),
            filled batch by batch like ``seqs``.
        targets: name -> the per-region arrays :meth:`create_empty` made, to fill by rows.
        target_names: the bigWig tracks' names (none without ``bigwig``).
    """

    spec: OutputSpec

    def __init__(
        self, out: ArrayWriter, options: IntervalOptions, target_names: Sequence[str] = ()
    ) -> None:
        self.out, self.options = out, options
        self.target_names = list(target_names)
        self.seqs: dict[int, Any] = {}
        self.track_targets: dict[int, Any] = {}
        self.targets: dict[str, Any] = {}

    def target_row_shape(self) -> tuple[int, ...] | None:
        """The shape of one region's targets: ``(K,)``, ``(length / bin_size, K)``, or None."""
        if not self.target_names:
            return None
        n_tracks = len(self.target_names)
        if self.options.bin_size:
            return (self.options.length // self.options.bin_size, n_tracks)
        return (n_tracks,)

    def _create_targets(self, index: int, n: int, chunk_rows: int | None = None) -> None:
        shape = self.target_row_shape()
        if shape is None:
            return
        name = f"{SPLITS[index]}_targets"
        dims = self.spec.lookup(name).dims
        if len(shape) == 2:  # binned profiles
            dims = (dims[0], "bins", dims[1])
        array = self.out.create(name, (n, *shape), np.float32, chunk_rows=chunk_rows, dims=dims)
        self.track_targets[index] = self.targets[name] = array

    def seqs_name(self, index: int) -> str:
        """The one-hot array of split ``index``."""
        raise NotImplementedError

    def seqs_row_shape(self) -> tuple[int, ...]:
        """The shape of one region's one-hot row."""
        raise NotImplementedError

    def encode_kwargs(self) -> dict[str, Any]:
        """Keywords of :func:`~gpu_genomics.sequence.onehot.one_hot_windows` for this layout."""
        raise NotImplementedError

    def seqs_row_bytes(self) -> int:
        """Bytes of one region's one-hot row."""
        return int(np.prod(self.seqs_row_shape())) * np.dtype(self.seqs_dtype).itemsize

    def row_bytes(self, n_labels: int) -> list[int]:
        """Bytes of one row of each fixed-width per-region array, the one-hot row first."""
        widths = [
            int(np.prod(shape)) * np.dtype(dtype).itemsize
            for shape, dtype in self.row_arrays(0, n_labels).values()
            if dtype is not str
        ]
        shape = self.target_row_shape()
        if shape is not None:
            widths.append(int(np.prod(shape)) * 4)
        return [self.seqs_row_bytes(), *widths]

    def batch_rows(self) -> int:
        """Regions encoded at a time: ``batch_rows``, at most :data:`BATCH_BYTES` of one-hot."""
        return max(1, min(self.options.batch_rows, BATCH_BYTES // self.seqs_row_bytes()))

    def to_layout(self, onehot: Any) -> Any:
        """An encoded ``(n, L, 4)`` batch as rows of the one-hot array."""
        raise NotImplementedError

    def row_values(self, index: int, regions: Regions, names: Sequence[str]) -> dict[str, Any]:
        """The rows of split ``index``'s per-region arrays (not the one-hot) for ``regions``."""
        raise NotImplementedError

    def row_arrays(self, index: int, n_labels: int) -> dict[str, tuple[tuple[int, ...], Any]]:
        """Name -> (row shape, dtype) of split ``index``'s per-region arrays (``str``: strings)."""
        raise NotImplementedError

    def whole_values(self, label_names: Sequence[str], chrom_names: Sequence[str]) -> dict:
        """The arrays that are not per region (label and chromosome names)."""
        raise NotImplementedError

    def links(self, index: int) -> list[tuple[str, str]]:
        """``(alias, target)`` HDF5 soft links of split ``index``."""
        return []

    def create(
        self,
        regions: Regions,
        split: np.ndarray,
        names: Sequence[str],
        label_names: Sequence[str],
        chrom_names: Sequence[str],
    ) -> None:
        """Create the one-hot arrays and write everything else, from all the regions."""
        names = np.asarray(names, dtype=object)
        for index in range(len(SPLITS)):
            rows = split == index
            shape = (int(rows.sum()), *self.seqs_row_shape())
            self.seqs[index] = self.out.create(self.seqs_name(index), shape, self.seqs_dtype)
            self._create_targets(index, shape[0])
            for name, values in self.row_values(index, regions.subset(rows), names[rows]).items():
                self.out.write(name, values)
            for alias, target in self.links(index):
                self.out.link(alias, target)
        for name, values in self.whole_values(label_names, chrom_names).items():
            self.out.write(name, values)

    def create_empty(
        self,
        counts: Sequence[int],
        *,
        n_labels: int,
        label_names: Sequence[str],
        chrom_names: Sequence[str],
        chunk_rows: int,
    ) -> None:
        """Create every array of ``counts[index]`` rows per split, chunked by ``chunk_rows``."""
        for index, n in enumerate(counts):
            shape = (n, *self.seqs_row_shape())
            self.seqs[index] = self.out.create(
                self.seqs_name(index), shape, self.seqs_dtype, chunk_rows=chunk_rows
            )
            self._create_targets(index, n, chunk_rows)
            for name, (row_shape, dtype) in self.row_arrays(index, n_labels).items():
                self.targets[name] = self.out.create(
                    name, (n, *row_shape), dtype, chunk_rows=chunk_rows
                )
            for alias, target in self.links(index):
                self.out.link(alias, target)
        for name, values in self.whole_values(label_names, chrom_names).items():
            self.out.write(name, values)

    @property
    def seqs_dtype(self) -> Any:
        """The dtype of the one-hot arrays."""
        return self.encode_kwargs()["dtype"]


def coordinates(regions: Regions, length: int) -> np.ndarray:
    """``(n, 3) int64`` ``[chrom_index, start, end]`` of each region."""
    stacked = [regions.chrom.astype(np.int64), regions.start, regions.start + length]
    return np.stack(stacked, axis=1).reshape(len(regions), 3)


class StandardLayout(_Layout):
    """``{split}_{seqs,labels,coords,names}`` + ``label_names`` + ``chrom_names``."""

    spec = INTERVAL_ARRAYS

    def seqs_name(self, index: int) -> str:
        """``{split}_seqs``."""
        return f"{SPLITS[index]}_seqs"

    def seqs_row_shape(self) -> tuple[int, ...]:
        """``(length + 2 * flank, 4)``."""
        return (self.options.span, 4)

    def row_values(self, index: int, regions: Regions, names: Sequence[str]) -> dict[str, Any]:
        """The labels, coordinates, names (and negative flags) of ``regions``."""
        split = SPLITS[index]
        values = {
            f"{split}_labels": regions.labels,
            f"{split}_coords": coordinates(regions, self.options.length),
            f"{split}_names": list(names),
        }
        if self.options.negatives:
            negative = regions.negative
            values[f"{split}_is_negative"] = (
                np.zeros(len(regions), np.uint8) if negative is None else negative.astype(np.uint8)
            )
        return values

    def row_arrays(self, index: int, n_labels: int) -> dict[str, tuple[tuple[int, ...], Any]]:
        """Labels, coordinates, names (strings) and, with ``negatives``, negative flags."""
        split = SPLITS[index]
        arrays: dict[str, tuple[tuple[int, ...], Any]] = {
            f"{split}_labels": ((n_labels,), np.uint8),
            f"{split}_coords": ((3,), np.int64),
            f"{split}_names": ((), str),
        }
        if self.options.negatives:
            arrays[f"{split}_is_negative"] = ((), np.uint8)
        return arrays

    def whole_values(self, label_names: Sequence[str], chrom_names: Sequence[str]) -> dict:
        """``label_names`` and ``chrom_names`` (and ``target_names``)."""
        values = {"label_names": list(label_names), "chrom_names": list(chrom_names)}
        if self.target_names:
            values["target_names"] = list(self.target_names)
        return values

    def links(self, index: int) -> list[tuple[str, str]]:
        """``{split}_sequences`` -> ``{split}_seqs`` (HDF5 only)."""
        return [(f"{SPLITS[index]}_sequences", f"{SPLITS[index]}_seqs")]

    def encode_kwargs(self) -> dict[str, Any]:
        """Keywords of :func:`~gpu_genomics.sequence.onehot.one_hot_windows` for this layout."""
        return {"alphabet": self.options.alphabet, "dtype": self.options.dtype}

    def to_layout(self, onehot: Any) -> Any:
        """An encoded ``(n, L, 4)`` batch as rows of ``{split}_seqs`` (unchanged)."""
        return onehot


class BassetLayout(_Layout):
    """Basset's seq_hdf5.py layout, HDF5 only (``docs/intervals.md#basset-format``).

    Arrays ``{train,valid,test}_{in,out}``, ``test_headers``, ``target_labels``; ``*_in`` is
    float16 ``(n, 4, 1, L)``, 0.25 for N.
    """

    spec = BASSET_ARRAYS

    def seqs_name(self, index: int) -> str:
        """``{train,valid,test}_in``."""
        return f"{BASSET_SPLITS[SPLITS[index]]}_in"

    def seqs_row_shape(self) -> tuple[int, ...]:
        """``(4, 1, length)``."""
        return (4, 1, self.options.length)

    def row_values(self, index: int, regions: Regions, names: Sequence[str]) -> dict[str, Any]:
        """``{split}_out`` (int8 labels) and, for the test split, ``test_headers``."""
        values: dict[str, Any] = {
            f"{BASSET_SPLITS[SPLITS[index]]}_out": regions.labels.astype(np.int8)
        }
        if SPLITS[index] == "test":
            values["test_headers"] = list(names)
        return values

    def row_arrays(self, index: int, n_labels: int) -> dict[str, tuple[tuple[int, ...], Any]]:
        """Labels ``(n_labels,)`` int8 and, for the test split, the headers (strings)."""
        arrays: dict[str, tuple[tuple[int, ...], Any]] = {
            f"{BASSET_SPLITS[SPLITS[index]]}_out": ((n_labels,), np.int8)
        }
        if SPLITS[index] == "test":
            arrays["test_headers"] = ((), str)
        return arrays

    def whole_values(self, label_names: Sequence[str], chrom_names: Sequence[str]) -> dict:
        """``target_labels``."""
        return {"target_labels": list(label_names)}

    def encode_kwargs(self) -> dict[str, Any]:
        """Keywords of :func:`~gpu_genomics.sequence.onehot.one_hot_windows`: Basset's."""
        return {"alphabet": "ACGT", "dtype": "float16", "n_value": 0.25}

    def to_layout(self, onehot: Any) -> Any:
        """An encoded ``(n, L, 4)`` batch as rows of ``{split}_in``: ``(n, 4, 1, L)``."""
        n, length, _ = onehot.shape
        return onehot.transpose(0, 2, 1).reshape(n, 4, 1, length)
