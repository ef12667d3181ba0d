"""Writing named arrays to HDF5 or Zarr, atomically.

:class:`ArrayWriter` (and :func:`atomic_output`, for files written by other libraries) writes
into a temporary path beside the output (``.NAME.tmp-PID``) and renames it into place only when
the ``with`` block ends without error and no signal came (:mod:`.interrupts`); a failed or
interrupted run removes the temporary path and leaves any earlier output untouched. While it
writes, it holds an advisory lock on the output (``.NAME.lock``, holding its PID, removed at the
end): a second run writing the same output at the same time fails at once, naming the first.
Temporary paths left by a process that no longer runs (killed with SIGKILL) are removed, with one
log line, by the next run writing the same output. Both formats hold the
same arrays, chunked along the first axis, with the same attributes (nested values are stored as
JSON strings in HDF5 and as JSON in Zarr).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np

from ..errors import InputError, check_choice
from . import interrupts
from .spec import LINK, STRING, OutputSpec

log = logging.getLogger("gpu_genomics")

Format = Literal["hdf5", "zarr"]
FORMATS = ("hdf5", "zarr")
COMPRESSIONS = ("none", "gzip", "lzf", "zstd")
SUFFIX_FORMATS = {".h5": "hdf5", ".hdf5": "hdf5", ".zarr": "zarr"}
MAX_CHUNK_BYTES = 64 * 2**20  # a chunk holds at most this many bytes (or one row)
#: Root attribute of an output while it is written (a temporary store left by a killed run).
INCOMPLETE_ATTR = "gpu_genomics_incomplete"


def format_from_path(path: str | os.PathLike, format: str | None = None) -> Format:
    """The output format: ``format`` if given, else from the suffix (.h5/.hdf5 or .zarr)."""
    if format:
        return check_choice("output_format", format, FORMATS)  # type: ignore[return-value]
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIX_FORMATS:
        raise InputError(
            f"{path}: cannot tell the output format from the suffix {suffix or '(none)'!r}; "
            "name it .h5/.hdf5 or .zarr, or pass output_format='hdf5'|'zarr'"
        )
    return SUFFIX_FORMATS[suffix]  # type: ignore[return-value]


def resolve_compression(format: Format, compression: str | None) -> str:
    """``compression``, checked, or the default of ``format``: none for HDF5, zstd for Zarr."""
    if compression is None:
        return "zstd" if format == "zarr" else "none"
    return check_choice("compression", compression, COMPRESSIONS)


def _hdf5_compression(compression: str) -> dict[str, Any]:
    if compression == "none":
        return {}
    if compression in ("gzip", "lzf"):
        return {"compression": compression}
    try:
        import hdf5plugin
    except ImportError:
        raise InputError(
            "compression='zstd' in HDF5 needs the hdf5plugin package (pip install hdf5plugin); "
            "or use gzip, lzf or a .zarr output"
        ) from None
    return dict(hdf5plugin.Zstd())


def _capped_rows(rows: int, row_bytes: int) -> int:
    """``rows`` of ``row_bytes`` each, fewer if a chunk would pass :data:`MAX_CHUNK_BYTES`.

    At least one row: the codecs cap a chunk at 2 GiB.
    """
    return min(rows, max(1, MAX_CHUNK_BYTES // max(row_bytes, 1)))


def _zarr_compressors(compression: str) -> Any:
    from zarr.codecs import GzipCodec, ZstdCodec

    if compression == "none":
        return None
    if compression == "gzip":
        return GzipCodec(level=5)
    if compression == "zstd":
        return ZstdCodec(level=3)
    raise InputError(f"compression={compression!r} is not available for Zarr; use zstd or gzip")


def _growable(shape: tuple[int, ...], axis: int) -> tuple[int | None, ...]:
    """HDF5 ``maxshape`` of a dataset of ``shape`` that grows along ``axis``."""
    return tuple(None if k == axis else size for k, size in enumerate(shape))


class ArrayWriter:
    """Create and fill arrays in ``path`` (HDF5 file or Zarr directory), committed on success.

    With ``spec`` (an :class:`~gpu_genomics.io.spec.OutputSpec`) every array written must be
    declared there: its dimension names come from the declaration and values are cast to the
    declared dtype.

    Usage::

        with ArrayWriter("out.h5") as out:
            seqs = out.create("seqs", (n, 600, 4), "uint8")
            seqs[0:1000] = block
            out.write("names", np.array(names, dtype=object))
            out.attrs({"length": 600})
    """

    def __init__(
        self,
        path: str | os.PathLike,
        format: str | None = None,
        compression: str | None = None,
        chunk_rows: int = 1000,
        spec: OutputSpec | None = None,
    ) -> None:
        self.path = Path(path)
        self.format = format_from_path(self.path, format)
        self.compression = resolve_compression(self.format, compression)
        self.spec = spec
        self.chunk_rows = chunk_rows
        self.tmp_path = _temporary_path(self.path)
        self._check_existing()
        self._root: Any = None
        self._options = self._dataset_options()  # fail now when the compression is unavailable

    def _check_existing(self) -> None:
        """Refuse to replace anything but an earlier output of the same format."""
        path = self.path
        if not path.exists():
            return
        is_store = path.is_dir() and ((path / "zarr.json").exists() or (path / ".zgroup").exists())
        if self.format == "zarr" and not is_store:
            raise InputError(
                f"{path}: exists and is not a Zarr store; remove it or choose another name"
            )
        if self.format == "hdf5" and path.is_dir():
            raise InputError(f"{path}: is a folder; give the output a file name such as out.h5")

    # --- context management --------------------------------------------------------------
    def __enter__(self) -> ArrayWriter:
        # the temporary path, the lock, the commit and the interrupt check: atomic_output's
        self._output = atomic_output(self.path, directory=self.format == "zarr")
        self.tmp_path = self._output.__enter__()
        try:
            if self.format == "hdf5":
                import h5py

                self._root = h5py.File(self.tmp_path, "w")
            else:
                import zarr

                self._root = zarr.open_group(str(self.tmp_path), mode="w")
            # a store left by a killed run says what it is (removed when the writing completes)
            self._root.attrs[INCOMPLETE_ATTR] = f"being written by PID {os.getpid()}; incomplete"
        except BaseException as error:
            self._output.__exit__(type(error), error, error.__traceback__)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._close(complete=exc_type is None)
        except BaseException as error:  # not completed: nothing is committed
            if not self._output.__exit__(type(error), error, error.__traceback__):
                raise
            return
        self._output.__exit__(exc_type, exc, tb)

    def _close(self, *, complete: bool) -> None:
        """Close the store; when ``complete``, mark it so and consolidate a Zarr's metadata."""
        root, self._root = self._root, None
        if complete:
            del root.attrs[INCOMPLETE_ATTR]
        if self.format == "hdf5":
            root.close()
        elif complete:  # one metadata read for xarray/sgkit (xr.open_zarr)
            import warnings

            import zarr

            with warnings.catch_warnings():  # "not part of the Zarr format 3 specification"
                warnings.simplefilter("ignore")
                zarr.consolidate_metadata(str(self.tmp_path))

    # --- writing ---------------------------------------------------------------------------
    def _dataset_options(self) -> dict[str, Any]:
        if self.format == "hdf5":
            return _hdf5_compression(self.compression)
        return {"compressors": _zarr_compressors(self.compression)}

    def create(
        self,
        name: str,
        shape: tuple[int, ...],
        dtype: Any,
        chunk_rows: int | None = None,
        dims: tuple[str, ...] | None = None,
        *,
        resizable: bool = False,
        grow_axis: int = 0,
        chunks: tuple[int, ...] | None = None,
    ) -> Any:
        """Create an empty array chunked by ``chunk_rows`` rows; fill it with slice assignment.

        ``chunk_rows`` defaults to the writer's; a chunk holds at most :data:`MAX_CHUNK_BYTES`
        (or one row). ``dims`` names the axes (Zarr ``dimension_names``, read by xarray and
        sgkit; ``_ARRAY_DIMENSIONS`` attribute in HDF5); default: the spec's. ``dtype`` ``str``:
        variable-length strings, filled with a list or object array of str. ``resizable``: the
        first axis can grow (``target.resize((rows, ...))``; an appended array whose length is
        known only at the end); its chunks have ``chunk_rows`` rows whatever ``shape`` is.
        ``grow_axis``: the axis a resizable array grows along instead (``resize`` of that
        axis; HDF5 ``maxshape``; a Zarr array can grow along any). ``chunks``: the chunk
        shape along every axis instead (each capped by the shape, at least 1), for arrays
        chunked along more than their first axis.
        """
        if chunks is not None:
            chunks = tuple(max(1, min(c, s)) for c, s in zip(chunks, shape, strict=True))
        if dtype is str:
            return self._create_strings(
                name, shape, chunk_rows, chunks, resizable=resizable, grow_axis=grow_axis
            )
        dtype = np.dtype(dtype)
        if self.spec is not None:
            declared = self.spec.lookup(name)
            dtype = declared.cast(np.empty(0, dtype)).dtype
            dims = dims or declared.dims
        row_bytes = dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64)) if shape else 0
        rows = _capped_rows(chunk_rows or self.chunk_rows, row_bytes)
        if chunks is None and shape:
            chunks = (max(1, rows if resizable else min(rows, shape[0])), *shape[1:])
        _check_dims(name, shape, dims)
        if self.format == "hdf5":
            if resizable:
                target = self._root.create_dataset(
                    name,
                    shape=shape,
                    dtype=dtype,
                    chunks=chunks,
                    maxshape=_growable(shape, grow_axis),
                    **self._options,
                )
            elif shape and 0 in shape:  # h5py refuses chunks with a zero dimension
                target = self._root.create_dataset(name, shape=shape, dtype=dtype)
            else:
                target = self._root.create_dataset(
                    name, shape=shape, dtype=dtype, chunks=chunks, **self._options
                )
            if dims:
                target.attrs["_ARRAY_DIMENSIONS"] = list(dims)
            return target
        return self._root.create_array(
            name,
            shape=shape,
            dtype=dtype,
            chunks=chunks or (1,),
            dimension_names=dims,
            **self._options,
        )

    def common_chunk_rows(self, row_bytes: list[int]) -> int:
        """Return the chunk rows that every array of the given row sizes gets when created.

        The writer's ``chunk_rows``, capped as :meth:`create` caps it for the widest row, so
        that tasks writing whole chunks of one array write whole chunks of all.
        """
        return _capped_rows(self.chunk_rows, max(row_bytes))

    def _create_strings(
        self,
        name: str,
        shape: tuple[int, ...],
        chunk_rows: int | None,
        chunks: tuple[int, ...] | None = None,
        *,
        resizable: bool = False,
        grow_axis: int = 0,
    ) -> Any:
        """:meth:`create` of a variable-length string array (``dtype`` ``str``)."""
        dims = self.spec.lookup(name).dims if self.spec is not None else None
        if self.spec is not None and self.spec.lookup(name).dtype != STRING:
            raise TypeError(f"{name}: declared as {self.spec.lookup(name).dtype}, not strings")
        _check_dims(name, shape, dims)
        rows = chunk_rows or self.chunk_rows
        rows = max(1, rows if resizable else min(rows, shape[0])) if shape else 1
        chunks = chunks or (rows, *shape[1:])
        if self.format == "hdf5":
            import h5py

            if resizable:
                target = self._root.create_dataset(
                    name,
                    shape=shape,
                    dtype=h5py.string_dtype(),
                    chunks=chunks,
                    maxshape=_growable(shape, grow_axis),
                )
            elif 0 in shape:
                target = self._root.create_dataset(name, shape=shape, dtype=h5py.string_dtype())
            else:
                target = self._root.create_dataset(
                    name, shape=shape, dtype=h5py.string_dtype(), chunks=chunks
                )
            if dims:
                target.attrs["_ARRAY_DIMENSIONS"] = list(dims)
            return target
        return self._root.create_array(
            name, shape=shape, dtype=str, chunks=chunks, dimension_names=dims
        )

    def write(self, name: str, values: Any, dims: tuple[str, ...] | None = None) -> None:
        """Write a whole array, its axes named by ``dims`` (as :meth:`create`).

        str values become a variable-length string array of the same shape (a list of str:
        1-D).
        """
        array = np.asarray(values)
        declared = self.spec.lookup(name) if self.spec is not None else None
        if declared is not None:
            dims = dims or declared.dims
            if declared.dtype == STRING and array.dtype.kind not in "UO" and array.size:
                raise TypeError(f"{name}: declared as strings, got {array.dtype}")
            if declared.dtype != STRING:
                array = declared.cast(array)
            is_strings = declared.dtype == STRING
        else:
            is_strings = array.dtype.kind in "UO" or (array.size == 0 and isinstance(values, list))
        if is_strings:
            shape = array.shape if array.ndim else (1,)
            _check_dims(name, shape, dims)
            strings = np.array([str(v) for v in np.ravel(array)], dtype=object).reshape(shape)
            if self.format == "hdf5":
                import h5py

                target = self._root.create_dataset(name, data=strings, dtype=h5py.string_dtype())
                if dims:
                    target.attrs["_ARRAY_DIMENSIONS"] = list(dims)
            else:
                target = self._root.create_array(name, shape=shape, dtype=str, dimension_names=dims)
                if strings.size:
                    target[...] = strings.astype(str)
            return
        target = self.create(name, array.shape, array.dtype, dims=dims)
        if array.size:
            target[...] = array

    def link(self, alias: str, target: str) -> None:
        """HDF5: a soft link ``alias`` -> ``target``; Zarr has no links, so nothing is made."""
        if self.spec is not None and self.spec.lookup(alias).dtype != LINK:
            raise TypeError(f"{alias}: declared as an array, not a link")
        if self.format == "hdf5":
            import h5py

            self._root[alias] = h5py.SoftLink(f"/{target}")

    def attrs(self, values: dict[str, Any], array: str | None = None) -> None:
        """Set attributes on the root (or on ``array``); dicts and lists are stored as JSON."""
        node = self._root if array is None else self._root[array]
        for key, value in values.items():
            stored = value
            if self.format == "hdf5" and isinstance(value, dict | list | tuple):
                stored = json.dumps(value, sort_keys=True)
            elif value is None and self.format == "hdf5":
                stored = ""  # HDF5 attributes cannot hold None
            node.attrs[key] = stored


def _check_dims(name: str, shape: tuple[int, ...], dims: tuple[str, ...] | None) -> None:
    if dims is not None and len(dims) != len(shape):
        raise ValueError(f"{name}: {len(dims)} dimension names for {len(shape)} axes")


#: Temporary outputs of this process not yet committed or removed.
_UNFINISHED: set[Path] = set()
#: Every temporary output path this process made (a Zarr thread still writing after its
#: removal can make the folder again; an interrupted run removes them all).
_TEMPORARIES: set[Path] = set()


def _temporary_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def remove_unfinished() -> None:
    """Remove every temporary output of this process (the end of an interrupted run).

    Also those already removed once: a thread still writing a Zarr chunk may have made the
    folder again. Temporary names hold this process's PID, so none is a finished output.
    """
    for tmp_path in list(_UNFINISHED | _TEMPORARIES):
        _remove(tmp_path)
        _UNFINISHED.discard(tmp_path)


def _commit(tmp_path: Path, path: Path) -> None:
    """Move ``tmp_path`` over ``path`` (a file or a folder); on failure keep the old ``path``."""
    backup = path.with_name(f".{path.name}.old-{os.getpid()}")
    if path.is_dir() and not path.is_symlink():
        os.replace(path, backup)
    try:
        os.replace(tmp_path, path)
    except OSError:
        if backup.exists():
            os.replace(backup, path)
        _remove(tmp_path)
        raise
    _remove(backup)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` that replaces ``path`` only if the block succeeds.

    The caller writes a file into it (or, with ``directory=True``, a folder such as a Zarr
    store). Refuses (InputError) when ``path`` exists as the other kind (a folder where a file is
    written or the reverse), so that nothing but an earlier output is ever replaced.
    """
    path = Path(path)
    check_output_folder(path)
    if path.exists() and path.is_dir() != directory:
        kind = "a folder" if path.is_dir() else "a file"
        raise InputError(f"{path}: exists and is {kind}; remove it or choose another name")
    tmp_path = _temporary_path(path)
    with output_lock(path):
        _remove(tmp_path)
        _UNFINISHED.add(tmp_path)
        _TEMPORARIES.add(tmp_path)
        try:
            yield tmp_path
            interrupts.raise_if_received()
        except BaseException:
            _remove(tmp_path)
            raise
        finally:
            _UNFINISHED.discard(tmp_path)
        _commit(tmp_path, path)


@contextlib.contextmanager
def output_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an advisory lock on writing ``path`` for the block (see the module docstring).

    Also removes the temporary paths of ``path`` left by processes that no longer run.

    Raises:
        InputError: another running process holds the lock (named by its PID).
    """
    import fcntl

    path = Path(path)
    lock_path = path.with_name(f".{path.name}.lock")
    handle = open(lock_path, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            other = handle.read().strip() or "another process"
            raise InputError(
                f"{path}: is being written by another run (PID {other}); wait for it to end "
                "or choose another output"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        _remove_stale_temporaries(path)
        try:
            yield
        finally:
            lock_path.unlink(missing_ok=True)
    finally:
        handle.close()


def spool_prefix(path: str | os.PathLike) -> str:
    """The name prefix of a job's scratch folder beside ``path`` (``tempfile`` adds the rest).

    It carries the PID, so that :func:`output_lock` removes it once its process is gone.
    """
    return f".{Path(path).name}.spool-{os.getpid()}-"


def _remove_stale_temporaries(path: Path) -> None:
    """Remove ``.NAME.tmp-PID``, ``.old-PID`` and ``.spool-PID-*`` whose process is gone."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(tmp|old|spool)-(\d+)(-.*)?")
    for leftover in path.parent.iterdir():
        match = pattern.fullmatch(leftover.name)
        if match is None or _running(int(match.group(2))):
            continue
        log.info("removed %s, left by an earlier run that was killed", leftover)
        _remove(leftover)


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def check_output_folder(path: str | os.PathLike) -> None:
    """Raise :class:`InputError` now, before any work, when ``path`` cannot be written.

    Its folder must exist and be writable (the temporary output is made there), and ``path``
    itself, when it exists, must be replaceable.
    """
    folder = Path(path).resolve().parent
    if not folder.is_dir():
        raise InputError(f"{path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"{path}: the folder {folder} is not writable; choose another output")


@contextlib.contextmanager
def removed_on_failure(*paths: str | os.PathLike | None) -> Iterator[None]:
    """Remove ``paths`` (outputs written earlier in the same run) if the block fails.

    A command writing several files then leaves none of them behind when a later one fails.
    """
    try:
        yield
    except BaseException:
        for path in paths:
            if path is not None:
                _remove(Path(path))
        raise


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def write_zarr_rows(store: str, first_row: int, rows_of: dict[str, Any]) -> int:
    """Write rows ``first_row ..`` of the arrays of an open Zarr ``store`` (a task's chunks).

    ``rows_of``: array name -> its rows (an array, or a list of str). Returns the row count.
    """
    import zarr

    group = zarr.open_group(store, mode="r+")
    n = 0
    for name, values in rows_of.items():
        n = len(values)
        group[name][first_row : first_row + n] = (
            np.asarray(values, dtype=str) if isinstance(values, list) else values
        )
    return n
