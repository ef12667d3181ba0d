"""Shuffled, augmented batches of a dataset written by ``gpu-genomics intervals`` (HDF5 or Zarr).

:class:`BatchLoader` reads one split of the layout of :mod:`gpu_genomics.intervals.layouts`
(``{split}_seqs`` one-hot windows with an optional flank, ``{split}_labels`` and, when present,
``{split}_targets`` and ``{split}_is_negative``) and yields one epoch of batches per iteration:
dicts of arrays on the device (NumPy on the CPU, CuPy on the GPU), ready for
``torch.from_dlpack`` / ``jax.dlpack.from_dlpack`` without a copy (:mod:`.frameworks`).

Per batch, on a background thread (``prefetch`` batches ahead), the loader reads the batch's rows
from the store, in ascending order, in as few reads as the store's layout allows (below); on the
device, one kernel (``kernels/augment.cu``, its numba twin on the CPU) puts the rows in the
batch's shuffled order, crops each one-hot row to the central ``L`` positions shifted by its
draw, and reverse-complements the rows drawn for it, profile targets with them. The draws are
made on the host from ``numpy.random.default_rng``, seeded by ``(seed, epoch, batch)``, so both
devices give bit-identical batches, and the same seed gives the same batches whatever
``prefetch`` and ``device`` are.

Reading (``block_rows``; ``docs/loader.md#bytes-moved``):

* **rows** (``block_rows=0``, the default for uncompressed HDF5): each batch is a uniform random
  sample of the split; its rows are sorted and read as runs of consecutive rows, only the
  positions ``[F - max_shift, F + max_shift + L)`` of each. Bytes read per epoch: the split's
  rows once (minus the unused flank).
* **blocks** (``block_rows=k``, the default for Zarr and compressed HDF5, ``k`` = the stored chunk
  rows): a compressed chunk is decompressed whole whichever of its rows are wanted, so a random
  sample of rows would decompress ~``batch_size`` chunks per batch. Instead the blocks of ``k``
  rows are shuffled, the rows shuffled within groups of ``buffer_blocks`` blocks, and each
  block is read once per epoch and kept until its last row has been served.
"""

from __future__ import annotations

import json
import os
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..device import array_module, resolve_device
from ..errors import InputError, check_choice, check_seed, invalid, positive_int
from ..execution import prefetched
from ..io.store import INCOMPLETE_ATTR
from ..sequence.alphabet import complement_permutation
from .augment import augment_rows, draw_augmentation

#: Arrays other than the one-hot windows of at most this many bytes are read whole when the
#: loader opens (one sequential read) and gathered in memory; larger ones are read per batch.
RESIDENT_BYTES = 64 * 2**20
#: Names that ``targets`` may list beside the file's arrays: made by the loader, not read.
GENERATED = ("index", "shift", "rc")
FRAMEWORKS = ("torch", "jax")
SEQ_DTYPES = ("uint8", "int8", "float16", "float32")


# --- the file ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class DatasetInfo:
    """What one split of a dataset holds.

    Attributes:
        path: the file (``.h5``) or folder (``.zarr``).
        format: ``"hdf5"`` or ``"zarr"``.
        split: the split read (``"training"``, ``"validation"``, ``"test"``).
        n_rows: rows of the split.
        width: stored positions per row, ``W = length + 2 * flank``.
        flank: root attribute ``flank`` (0 when absent).
        length: positions per yielded row, ``L = W - 2F`` (checked against the root attribute
            ``length`` when there is one).
        base_order: root attribute ``base_order``, the one-hot channel order (``"ACGT"`` when
            absent).
        target_bin_size: root attribute ``target_bin_size`` (0 when absent: scalar targets).
        arrays: every per-row array of the split, name without the ``{split}_`` prefix ->
            ``(shape, dtype)``.
        seqs_chunk_rows: rows per stored chunk of ``{split}_seqs`` (0: not chunked).
        seqs_compressed: whether ``{split}_seqs`` is compressed (Zarr: any codec; HDF5: any
            filter).
    """

    path: Path
    format: str
    split: str
    n_rows: int
    width: int
    flank: int
    length: int
    base_order: str
    target_bin_size: int
    arrays: dict[str, tuple[tuple[int, ...], np.dtype]] = field(repr=False)
    seqs_chunk_rows: int = 0
    seqs_compressed: bool = False


def _store_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        return "hdf5"
    if suffix == ".zarr" or path.is_dir():
        return "zarr"
    return "hdf5"


def open_store(path: str | os.PathLike) -> tuple[Any, str]:
    """Open a dataset read-only: ``(root, format)``, an ``h5py.File`` or a ``zarr.Group``.

    Raises:
        InputError: the path does not exist, cannot be opened, or is an incomplete output.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    format = _store_format(path)
    try:
        if format == "hdf5":
            import h5py

            root = h5py.File(path, "r")
        else:
            import warnings

            import zarr

            with warnings.catch_warnings():  # consolidated metadata "not part of Zarr format 3"
                warnings.simplefilter("ignore")
                root = zarr.open_group(str(path), mode="r")
    except (OSError, ValueError, KeyError) as exc:
        kind = "an HDF5 file" if format == "hdf5" else "a Zarr store"
        raise InputError(f"{path}: cannot open it as {kind} ({exc})") from None
    if INCOMPLETE_ATTR in root.attrs:
        if format == "hdf5":
            root.close()
        raise InputError(
            f"{path}: is an incomplete output ({root_attribute(root, INCOMPLETE_ATTR)}); "
            "rerun the job that writes it"
        )
    return root, format


def root_attribute(root: Any, key: str, default: Any = None) -> Any:
    """A root attribute as the writers store it, decoded.

    HDF5 holds nested values as JSON strings and numbers as NumPy scalars
    (:meth:`~gpu_genomics.io.store.ArrayWriter.attrs`); Zarr holds JSON. Returns plain Python
    values (JSON strings of objects/lists decoded), or ``default`` when the key is absent.
    """
    if key not in root.attrs:
        return default
    value = root.attrs[key]
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            value = json.loads(value)
        except ValueError:
            pass
    return value


def _int_attribute(root: Any, key: str, path: Path) -> int:
    value = root_attribute(root, key, 0)
    if value in ("", None):
        return 0
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InputError(f"{path}: root attribute {key}={value!r} is not an integer") from None
    if number < 0 or number != float(value):
        raise InputError(f"{path}: root attribute {key}={value!r} must be an integer >= 0")
    return number


def _array_names(root: Any, format: str) -> list[str]:
    if format == "hdf5":
        import h5py

        return [k for k in root if isinstance(root.get(k, getlink=False), h5py.Dataset)]
    return list(root.array_keys())


def _chunk_rows(array: Any) -> int:
    chunks = getattr(array, "chunks", None)
    return int(chunks[0]) if chunks else 0


def _compressed(array: Any, format: str) -> bool:
    if format == "zarr":
        return bool(getattr(array, "compressors", ())) or bool(getattr(array, "filters", ()))
    if array.chunks is None:
        return False
    return array.id.get_create_plist().get_nfilters() > 0


def describe(root: Any, format: str, path: str | os.PathLike, split: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of ``split`` in an open store.

    Raises:
        InputError: the split has no ``{split}_seqs``, the one-hot array is not ``(n, W, 4)`` of
            a one-hot dtype, the flank leaves no positions, or the base order is not a
            permutation of ACGT.
    """
    path = Path(path)
    names = _array_names(root, format)
    seqs_name = f"{split}_seqs"
    if seqs_name not in names:
        splits = sorted(n.removesuffix("_seqs") for n in names if n.endswith("_seqs"))
        raise InputError(
            f"{path}: no array {seqs_name} (split={split!r}); the file holds the splits "
            f"{', '.join(splits) or '(none: is it an intervals output?)'}"
        )
    seqs = root[seqs_name]
    if len(seqs.shape) != 3 or seqs.shape[2] != 4 or np.dtype(seqs.dtype).name not in SEQ_DTYPES:
        raise InputError(
            f"{path}: {seqs_name} is {seqs.shape} {seqs.dtype}; the loader reads one-hot "
            f"(n, W, 4) arrays of {', '.join(SEQ_DTYPES)}"
        )
    n, width = int(seqs.shape[0]), int(seqs.shape[1])
    flank = _int_attribute(root, "flank", path)
    if width - 2 * flank < 1:
        raise InputError(f"{path}: flank={flank} leaves no positions of the {width} stored per row")
    length = root_attribute(root, "length")
    if isinstance(length, int) and length != width - 2 * flank:
        raise InputError(
            f"{path}: {seqs_name} holds {width} positions per row, but the root attributes say "
            f"length={length} and flank={flank} ({length + 2 * flank}); the file is inconsistent"
        )
    base_order = str(root_attribute(root, "base_order", "ACGT") or "ACGT")
    try:
        complement_permutation(base_order)
    except InputError:
        raise InputError(
            f"{path}: root attribute base_order={base_order!r} is not a permutation of ACGT"
        ) from None
    prefix = f"{split}_"
    arrays = {}
    for name in names:
        if name.startswith(prefix) and name != f"{split}_sequences":
            array = root[name]
            if array.shape and int(array.shape[0]) == n:
                arrays[name[len(prefix) :]] = (tuple(map(int, array.shape)), np.dtype(array.dtype))
    return DatasetInfo(
        path=path,
        format=format,
        split=split,
        n_rows=n,
        width=width,
        flank=flank,
        length=width - 2 * flank,
        base_order=base_order,
        target_bin_size=_int_attribute(root, "target_bin_size", path),
        arrays=arrays,
        seqs_chunk_rows=_chunk_rows(seqs),
        seqs_compressed=_compressed(seqs, format),
    )


# --- the epoch's order -------------------------------------------------------------------------
def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def epoch_order(
    n: int, *, shuffle: bool, seed: int, epoch: int, block_rows: int = 0, buffer_blocks: int = 8
) -> np.ndarray:
    """The order in which an epoch visits the rows: ``(n,) int64``, a permutation of ``0..n-1``.

    A function of ``(n, shuffle, seed, epoch, block_rows, buffer_blocks)`` only.

    Args:
        n: rows.
        shuffle: ``False``: ``0..n-1`` in order.
        seed: the loader's seed.
        epoch: the epoch number.
        block_rows: 0: a uniform permutation. ``k > 0``: the blocks of ``k`` consecutive rows
            (``[0, k)``, ``[k, 2k)``...) in a random order, cut into groups of
            ``buffer_blocks`` blocks, the rows permuted within each group.
        buffer_blocks: blocks per group (``block_rows > 0``).
    """
    if not shuffle:
        return np.arange(n, dtype=np.int64)
    rng = _rng(seed, epoch)
    if block_rows <= 0:
        return rng.permutation(n).astype(np.int64)
    n_blocks = -(-n // block_rows)
    blocks = rng.permutation(n_blocks)
    parts = []
    for first in range(0, n_blocks, buffer_blocks):
        group = blocks[first : first + buffer_blocks]
        rows = (group[:, None] * block_rows + np.arange(block_rows)).ravel()
        parts.append(rng.permutation(rows[rows < n]))
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)


# --- reading -----------------------------------------------------------------------------------
@dataclass
class _Array:
    """One array yielded per batch and how it is read and augmented."""

    name: str
    data: Any  # h5py.Dataset / zarr.Array
    row_shape: tuple[int, ...]  # shape of one row as read
    dtype: np.dtype
    columns: slice | None = None  # seqs: the positions read
    resident: np.ndarray | None = None
    profile: bool = False  # flipped with the reverse-complemented rows

    def read_runs(self, runs: list[tuple[int, int, int]], out: np.ndarray) -> int:
        """Read each run ``(position, first row, count)`` into ``out[position:]``; the calls.

        HDF5 through h5py's low-level API (one hyperslab per run: ~10 µs a call, against ~40
        for ``read_direct`` and far more for h5py's fancy indexing); Zarr run by run.
        """
        if not out.size:
            return 0
        if not hasattr(self.data, "id"):  # zarr
            for position, first, count in runs:
                out[position : position + count] = self.data[self._selection(first, count)]
            return len(runs)
        import h5py

        dataset = self.data.id
        space = dataset.get_space()
        offset = (0,) * len(self.row_shape)
        if self.columns is not None:
            offset = (self.columns.start, *offset[1:])
        memory: dict[int, Any] = {}
        for position, first, count in runs:
            space.select_hyperslab((first, *offset), (count, *self.row_shape))
            if count not in memory:
                memory[count] = h5py.h5s.create_simple((count, *self.row_shape))
            dataset.read(memory[count], space, out[position : position + count])
        return len(runs)

    def read_sorted(self, rows: np.ndarray, out: np.ndarray) -> int:
        """Read the ascending ``rows`` into ``out``; returns the read calls made.

        HDF5: run by run (:meth:`read_runs`); Zarr: one orthogonal selection (each chunk
        touched is decompressed once).
        """
        if hasattr(self.data, "id"):
            return self.read_runs(_runs(rows), out)
        if out.size:
            selection = (rows,) if self.columns is None else (rows, self.columns)
            out[...] = self.data.get_orthogonal_selection(selection)
        return 1

    def _selection(self, first: int, count: int) -> tuple[slice, ...]:
        rows = slice(first, first + count)
        return (rows,) if self.columns is None else (rows, self.columns)


def _runs(sorted_rows: np.ndarray) -> list[tuple[int, int, int]]:
    """``(position, first row, row count)`` of each run of consecutive rows."""
    if not len(sorted_rows):
        return []
    cuts = np.flatnonzero(np.diff(sorted_rows) != 1) + 1
    starts = np.concatenate(([0], cuts))
    ends = np.concatenate((cuts, [len(sorted_rows)]))
    return [(int(s), int(sorted_rows[s]), int(e - s)) for s, e in zip(starts, ends, strict=True)]


@dataclass
class _HostBatch:
    """A batch read on the host: per array its source rows and the output's row indices."""

    number: int
    index: np.ndarray  # (b,) int64 rows of the split, in the batch's order
    shifts: np.ndarray  # (b,) int32
    flips: np.ndarray  # (b,) uint8
    sources: dict[str, tuple[np.ndarray, np.ndarray]]  # name -> (src rows, rows into src)


@dataclass
class ReadStats:
    """What the loader read from the store (counted in the reading thread).

    Attributes:
        bytes_read: bytes of the selections read, uncompressed (a compressed chunk costs its
            decompression whole whatever part of it is selected; block reads select whole
            chunks).
        reads: read calls made to h5py/zarr.
        batches: batches read.
    """

    bytes_read: int = 0
    reads: int = 0
    batches: int = 0


# --- the loader --------------------------------------------------------------------------------
class BatchLoader:
    """Batches of one split of an ``intervals`` dataset, shuffled and augmented on the device.

    Iterating gives one epoch: ``ceil(n / batch_size)`` batches (``floor`` with ``drop_last``),
    each a dict ``name -> array`` on the device:

    * ``"seqs"``: ``(b, L, 4)`` one-hot rows (stored dtype, or ``dtype``), ``L = W - 2F`` the
      central window of the stored ``W = L + 2F`` positions (root attribute ``flank`` ``F``):
      positions ``[F + s, F + s + L)`` of each row, ``s`` its shift in
      ``[-max_shift, max_shift]`` (0 without ``max_shift``); reverse-complemented rows are
      reversed along the positions with the channels swapped to their complements in
      ``base_order``;
    * one entry per name in ``targets``: ``{split}_{name}`` rows (``labels`` ``(b, K) uint8``,
      ``targets`` ``(b, K_t) float32`` or profiles ``(b, L // B, K_t)``, ``is_negative``
      ``(b,) uint8``, any other per-row array). 3-D arrays (profiles) are reversed along their
      bins for the reverse-complemented rows; the others are not changed. The generated names
      ``"index"`` (``(b,) int64`` rows of the split), ``"shift"`` (``(b,) int32``) and ``"rc"``
      (``(b,) uint8``) give each row's origin and augmentation.

    Each epoch's order is a function of ``seed`` and the epoch number only (:func:`epoch_order`),
    and each batch's draws of ``(seed, epoch, batch)``: the same arguments give the same batches
    on both devices, with or without prefetching. ``iter(loader)`` runs epoch
    :attr:`epoch` and then advances it; :meth:`set_epoch` sets it (as
    ``DistributedSampler.set_epoch``); :meth:`iter_epoch` runs any epoch.

    Args:
        path: the ``.h5`` file or ``.zarr`` folder.
        split: ``"training"``, ``"validation"`` or ``"test"`` (any ``{split}_seqs`` in the file).
        batch_size: rows per batch.
        shuffle: a new seeded order every epoch; ``False``: rows in stored order.
        seed: seed of the orders and the augmentation draws (an integer >= 0).
        reverse_complement: ``False``; ``True`` (each row with probability 0.5); or a
            probability in ``[0, 1]``.
        max_shift: largest shift in bases, at most the file's ``flank``.
        targets: names of the arrays yielded besides ``seqs`` (default ``("labels",)``).
        device: ``"auto" | "gpu" | "cpu"``; ``None``: ``$GPU_GENOMICS_DEVICE``, else auto.
        prefetch: batches read ahead by a background thread; 0 reads in the iterating thread.
        drop_last: leave out the last batch when it is smaller than ``batch_size``.
        dtype: ``seqs``' dtype (``"float32"`` for most models); ``None`` keeps the stored one.
        block_rows: rows read and shuffled together (module docstring): 0 samples rows;
            ``None`` (default) is the stored chunk rows for Zarr and compressed HDF5, 0 for
            uncompressed HDF5.
        buffer_blocks: blocks whose rows are shuffled together when ``block_rows > 0``.
        framework: ``None`` (device arrays), ``"torch"`` or ``"jax"``: each batch converted
            with DLPack, without a copy (:mod:`.frameworks`).

    Raises:
        InputError: a bad option, a missing split or array (naming the file), ``max_shift``
            beyond the file's flank.
        DeviceError: ``device="gpu"`` without a usable GPU.

    Memory: per batch ``b * (L + 2 * max_shift) * 4`` one-hot elements read and ``b * L * 4``
    yielded (plus the targets' rows), ``prefetch + 2`` batches at a time; with blocks, the
    blocks in use: about ``buffer_blocks + batch_size / block_rows + 1`` blocks of rows; arrays
    other than ``seqs`` up to :data:`RESIDENT_BYTES` each are held whole (read once).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        split: str = "training",
        *,
        batch_size: int = 128,
        shuffle: bool = True,
        seed: int = 0,
        reverse_complement: bool | float = False,
        max_shift: int = 0,
        targets: Sequence[str] = ("labels",),
        device: str | None = None,
        prefetch: int = 1,
        drop_last: bool = False,
        dtype: Any = None,
        block_rows: int | None = None,
        buffer_blocks: int = 8,
        framework: str | None = None,
    ) -> None:
        self.batch_size = positive_int("batch_size", batch_size)
        self.seed = check_seed(seed)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.rc_probability = _rc_probability(reverse_complement)
        self.max_shift = _non_negative_int("max_shift", max_shift)
        self.prefetch = _non_negative_int("prefetch", prefetch)
        self.buffer_blocks = positive_int("buffer_blocks", buffer_blocks)
        self.dtype = None if dtype is None else _seqs_dtype(dtype)
        self.framework = (
            None if framework is None else check_choice("framework", framework, FRAMEWORKS)
        )
        if isinstance(targets, str):
            targets = (targets,)
        names = list(dict.fromkeys(t for t in targets if t != "seqs"))
        self.device = resolve_device(device)
        self.path = Path(path)
        self.stats = ReadStats()
        self._epoch = 0
        self._active: weakref.WeakSet = weakref.WeakSet()  # epochs being iterated
        self._root, format = open_store(self.path)
        try:
            self.info = describe(self._root, format, self.path, split)
            self._setup(names, block_rows)
        except BaseException:
            self.close()
            raise

    def _setup(self, names: list[str], block_rows: int | None) -> None:
        info = self.info
        if self.max_shift > info.flank:
            raise InputError(
                f"max_shift={self.max_shift} exceeds the flank of {info.path} ({info.flank} "
                f"bases each side of the {info.length}-base window); use max_shift <= "
                f"{info.flank}, or write the dataset with a larger flank"
            )
        if block_rows is None:
            block_rows = (
                info.seqs_chunk_rows if info.format == "zarr" or info.seqs_compressed else 0
            )
        self.block_rows = _non_negative_int("block_rows", block_rows)
        first = info.flank - self.max_shift
        self._seqs = _Array(
            "seqs",
            self._dataset("seqs"),
            (info.length + 2 * self.max_shift, 4),
            np.dtype(self._root[f"{info.split}_seqs"].dtype),
            columns=slice(first, first + info.length + 2 * self.max_shift),
        )
        self._perm = complement_permutation(info.base_order).astype(np.int32)
        self._arrays: list[_Array] = []
        for name in names:
            if name in GENERATED:
                continue
            if name not in info.arrays:
                raise InputError(
                    f"{info.path}: no array {info.split}_{name} with one row per "
                    f"{info.split} row (targets={name!r}); the split has "
                    f"{', '.join(sorted(info.arrays))}, and {', '.join(GENERATED)} are generated"
                )
            shape, dtype = info.arrays[name]
            if dtype.kind not in "biuf":
                raise InputError(
                    f"{info.path}: {info.split}_{name} is {dtype} ({dtype.kind}); only numeric "
                    "arrays can be batched"
                )
            data = self._dataset(name)
            array = _Array(name, data, shape[1:], dtype, profile=len(shape) == 3)
            if int(np.prod(shape, dtype=np.int64)) * dtype.itemsize <= RESIDENT_BYTES:
                array.resident = np.ascontiguousarray(data[...])
                self.stats.bytes_read += array.resident.nbytes
                self.stats.reads += 1
            self._arrays.append(array)
        self.names = ("seqs", *names)

    def _dataset(self, name: str) -> Any:
        """``{split}_{name}``; in HDF5 rows mode, uncompressed, without a chunk cache.

        h5py's default cache (8 MiB) holds whole chunks: reading one row of a 1000-row chunk
        would copy the whole chunk into it. Without a cache HDF5 reads just the selection.
        HDF5 shares one cache between the handles of a dataset, so no other handle may be open
        when it is reopened with its own access list.
        """
        path = f"{self.info.split}_{name}"
        data = self._root[path]
        if self.info.format != "hdf5" or self.block_rows or _compressed(data, "hdf5"):
            return data
        import h5py

        location = data.name.encode()
        del data
        access = h5py.h5p.create(h5py.h5p.DATASET_ACCESS)
        access.set_chunk_cache(521, 0, 0.75)
        return h5py.Dataset(h5py.h5d.open(self._root.id, location, dapl=access))

    # --- sizes, epochs -------------------------------------------------------------------
    def __len__(self) -> int:
        """Batches per epoch."""
        n = self.info.n_rows
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def epoch(self) -> int:
        """The epoch the next ``iter(loader)`` runs."""
        return self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Make the next ``iter(loader)`` run epoch ``epoch`` (then ``epoch + 1``...)."""
        self._epoch = _non_negative_int("epoch", epoch)

    def order(self, epoch: int) -> np.ndarray:
        """The rows of the split in the order epoch ``epoch`` visits them (``(n,) int64``)."""
        epoch = _non_negative_int("epoch", epoch)
        return epoch_order(
            self.info.n_rows,
            shuffle=self.shuffle,
            seed=self.seed,
            epoch=epoch,
            block_rows=self.block_rows,
            buffer_blocks=self.buffer_blocks,
        )

    def __iter__(self) -> Iterator[dict[str, Any]]:
        epoch = self._epoch
        self._epoch += 1
        return self.iter_epoch(epoch)

    def iter_epoch(self, epoch: int) -> Iterator[dict[str, Any]]:
        """The batches of epoch ``epoch`` (the epoch counter is left alone)."""
        if self._root is None:
            raise InputError(f"{self.path}: the loader is closed")
        order = self.order(epoch)
        n_batches = len(self)
        bounds = [
            (k * self.batch_size, min((k + 1) * self.batch_size, len(order)))
            for k in range(n_batches)
        ]
        host: Iterator[Any] = self._host_batches(order, bounds, epoch)
        on_device = self._finish
        if self.device == "cpu":  # the numba pass runs on the reading thread too (nogil)
            host, on_device = map(self._finish, host), _identity
        batches = (
            prefetched(host, self.prefetch, name="gpu-genomics-loader") if self.prefetch else host
        )
        iterator = self._framework_batches(map(on_device, batches))
        self._active.add(iterator)
        return iterator

    def _framework_batches(self, batches: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        if self.framework is None:
            yield from batches
            return
        from .frameworks import to_framework

        for batch in batches:
            yield to_framework(batch, self.framework)

    # --- reading (host) ----------------------------------------------------------------
    def _host_batches(
        self, order: np.ndarray, bounds: list[tuple[int, int]], epoch: int
    ) -> Iterator[_HostBatch]:
        """Read each batch's rows (the reading thread's part)."""
        stored = [self._seqs, *(a for a in self._arrays if a.resident is None)]
        read = _BlockReader(self, order, bounds).read if self.block_rows else self._read_rows
        for number, (lo, hi) in enumerate(bounds):
            index = order[lo:hi].copy()
            shifts, flips = draw_augmentation(
                _rng(self.seed, epoch, number + 1),
                len(index),
                max_shift=self.max_shift,
                rc_probability=self.rc_probability,
            )
            sources = read(stored, index)
            arange = np.arange(len(index), dtype=np.int64)
            for array in self._arrays:
                if array.resident is not None:
                    sources[array.name] = (array.resident[index], arange)
            self.stats.batches += 1
            yield _HostBatch(number, index, shifts, flips, sources)

    def _read_rows(
        self, arrays: list[_Array], index: np.ndarray
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Rows mode: each array's rows read in ascending order; ``rows`` undoes the sort."""
        ascending = np.argsort(index, kind="stable")
        rows = np.empty(len(index), dtype=np.int64)
        rows[ascending] = np.arange(len(index))
        sorted_index = index[ascending]
        sources = {}
        for array in arrays:
            buffer = np.empty((len(index), *array.row_shape), dtype=array.dtype)
            self.stats.reads += array.read_sorted(sorted_index, buffer)
            self.stats.bytes_read += buffer.nbytes
            sources[array.name] = (buffer, rows)
        return sources

    # --- the device part -----------------------------------------------------------------
    def _finish(self, batch: _HostBatch) -> dict[str, Any]:
        """Gather, crop and flip each array on the device; the generated arrays."""
        device = self.device
        src, rows = batch.sources["seqs"]
        seqs = augment_rows(
            device,
            src,
            rows=rows,
            starts=batch.shifts + self.max_shift,
            flips=batch.flips,
            perm=self._perm,
            out_width=self.info.length,
        )
        if self.dtype is not None and self.dtype != seqs.dtype:
            seqs = seqs.astype(self.dtype)
        out: dict[str, Any] = {"seqs": seqs}
        xp = array_module(device)
        generated = {"index": batch.index, "shift": batch.shifts, "rc": batch.flips}
        by_name = {a.name: a for a in self._arrays}
        for name in self.names[1:]:
            if name in generated:
                out[name] = xp.asarray(generated[name])
                continue
            src, rows = batch.sources[name]
            if by_name[name].profile:
                out[name] = augment_rows(device, src, rows=rows, flips=batch.flips)
            else:
                flat = src.reshape(len(src), -1) if src.ndim > 2 else src
                out[name] = augment_rows(device, flat, rows=rows).reshape(
                    (len(rows), *src.shape[1:])
                )
        return out

    # --- frameworks, closing -------------------------------------------------------------
    def torch_dataset(self) -> Any:
        """This loader as a ``torch.utils.data.IterableDataset`` of batches of torch tensors.

        Use it with ``torch.utils.data.DataLoader(dataset, batch_size=None)`` (the batches are
        made here) and ``num_workers=0`` (the loader reads ahead on its own thread). Each
        ``iter()`` runs the next epoch. Needs torch (not a dependency of gpu-genomics).
        """
        from .frameworks import torch_dataset

        return torch_dataset(self)

    def close(self) -> None:
        """Stop the epochs being iterated (their reading threads) and close the file."""
        for iterator in list(getattr(self, "_active", ())):
            iterator.close()
        root, self._root = getattr(self, "_root", None), None
        if root is not None and hasattr(root, "close"):
            root.close()

    def __enter__(self) -> BatchLoader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        info = self.info
        return (
            f"BatchLoader({str(info.path)!r}, {info.split!r}, n_rows={info.n_rows}, "
            f"length={info.length}, batch_size={self.batch_size}, device={self.device!r})"
        )


class _BlockReader:
    """Blocks mode: each block of ``block_rows`` rows read once, kept until its last use."""

    def __init__(
        self,
        loader: BatchLoader,
        order: np.ndarray,
        bounds: list[tuple[int, int]],
    ) -> None:
        self.loader = loader
        self.block_rows = loader.block_rows
        self.n_rows = loader.info.n_rows
        n_blocks = -(-self.n_rows // self.block_rows)
        # the last batch using each block (batches run in order)
        self.last_use = np.full(n_blocks, -1, dtype=np.int64)
        batch_of_row = np.empty(len(order), dtype=np.int64)
        for number, (lo, hi) in enumerate(bounds):
            batch_of_row[lo:hi] = number
        used = order[: bounds[-1][1]] if bounds else order[:0]
        np.maximum.at(self.last_use, used // self.block_rows, batch_of_row[: len(used)])
        self.cache: dict[int, dict[str, np.ndarray]] = {}
        self.number = 0

    def read(
        self, arrays: list[_Array], index: np.ndarray
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        blocks = index // self.block_rows
        needed = np.unique(blocks)
        for block in needed.tolist():
            if block not in self.cache:
                lo = block * self.block_rows
                rows = slice(lo, min(lo + self.block_rows, self.n_rows))
                entry = {}
                stats = self.loader.stats
                for array in arrays:
                    buffer = np.empty((rows.stop - rows.start, *array.row_shape), array.dtype)
                    stats.reads += array.read_runs([(0, rows.start, len(buffer))], buffer)
                    stats.bytes_read += buffer.nbytes
                    entry[array.name] = buffer
                self.cache[block] = entry
        sources = {}
        arange = np.arange(len(index), dtype=np.int64)
        within = index - blocks * self.block_rows
        for array in arrays:
            buffer = np.empty((len(index), *array.row_shape), dtype=array.dtype)
            for block in needed.tolist():
                mine = blocks == block
                buffer[mine] = self.cache[block][array.name][within[mine]]
            sources[array.name] = (buffer, arange)
        for block in needed[self.last_use[needed] <= self.number].tolist():
            del self.cache[block]
        self.number += 1
        return sources


# --- helpers -----------------------------------------------------------------------------------
def _identity(batch: Any) -> Any:
    return batch


def _non_negative_int(parameter: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise invalid(parameter, value, "must be an integer >= 0")
    return int(value)


def _rc_probability(value: object) -> float:
    if isinstance(value, bool | np.bool_):
        return 0.5 if value else 0.0
    try:
        probability = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise invalid("reverse_complement", value, "must be True, False or a probability") from None
    if not 0.0 <= probability <= 1.0:
        raise invalid("reverse_complement", value, "must be True, False or a probability in [0, 1]")
    return probability


def _seqs_dtype(dtype: Any) -> np.dtype:
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        raise invalid("dtype", dtype, "is not a NumPy dtype") from None
    if resolved.kind not in "biuf":
        raise invalid("dtype", dtype, "must be a numeric dtype (float32, float16, uint8...)")
    return resolved
