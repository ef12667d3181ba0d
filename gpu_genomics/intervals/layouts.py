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
            "reverse-complemented",
        ),
        ArraySpec("{split}_labels", "uint8", (_ROWS, "labels"), "multi-hot labels"),
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
    """What both layouts share: the writer, the options, and the one-hot arrays per split.

    Attributes:
        spec: the declared arrays of the layout.
        seqs: split index (0 training, 1 validation, 2 test) -> its one-hot array, created by
            ``create`` and filled batch by batch by the job.
    """

    spec: OutputSpec

    def __init__(self, out: ArrayWriter, options: IntervalOptions) -> None:
        self.out, self.options = out, options
        self.seqs: dict[int, Any] = {}


class StandardLayout(_Layout):
    """``{split}_{seqs,labels,coords,names}`` + ``label_names`` + ``chrom_names``."""

    spec = INTERVAL_ARRAYS

    def create(
        self,
        regions: Regions,
        split: np.ndarray,
        names: Sequence[str],
        label_names: Sequence[str],
        chrom_names: Sequence[str],
    ) -> None:
        """Create the ``{split}_seqs`` arrays and write everything else."""
        options = self.options
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

    def create(
        self,
        regions: Regions,
        split: np.ndarray,
        names: Sequence[str],
        label_names: Sequence[str],
        chrom_names: Sequence[str],
    ) -> None:
        """Create the ``{split}_in`` arrays and write everything else."""
        options = self.options
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
        """Keywords of :func:`~gpu_genomics.sequence.onehot.one_hot_windows`: Basset's."""
        return {"alphabet": "ACGT", "dtype": "float16", "n_value": 0.25}

    def to_layout(self, onehot: Any) -> Any:
        """An encoded ``(n, L, 4)`` batch as rows of ``{split}_in``: ``(n, 4, 1, L)``."""
        n, length, _ = onehot.shape
        return onehot.transpose(0, 2, 1).reshape(n, 4, 1, length)
