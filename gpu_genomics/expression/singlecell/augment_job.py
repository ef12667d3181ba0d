"""Count augmentation of a matrix on disk, block by block: downsampling and simulated doublets.

The file-to-file twins of :func:`~.augment.downsample_counts` and
:func:`~.augment.simulate_doublets`, for matrices larger than memory. They read ``.h5ad``,
AnnData ``.zarr`` and Cell Ranger ``.h5`` by blocks of cells (:mod:`.blocks`; the other formats
are converted once to a temporary Zarr, as the out-of-core ``scrna`` does), run each block as a
task on the execution layer (this process, or a Dask cluster given as ``client``), and append
the output rows in order to an ``.h5ad`` or AnnData ``.zarr`` written to a temporary path and
renamed into place when complete. The results equal the in-memory functions' on the same input:

* downsampling draws each block of ``block_cells`` cells from its own generator, seeded by
  ``(seed, block)``, in memory too, and its tasks are whole blocks;
* the doublets' parents are drawn on the client exactly as in memory; the parents' rows are then
  gathered in two passes over files in a scratch folder beside the output (an external shuffle:
  every input row is read once, every parent row written and read once), so no task holds more
  than a block of input cells or of doublets.

See ``docs/singlecell.md#augmentation-out-of-core``.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ...device import array_module, resolve_device
from ...errors import InputError, check_choice, check_seed, positive_int
from ...execution import map_in_order, worker_count
from ...io.provenance import flat, provenance
from ...io.store import check_output_folder, spool_prefix
from ._matrix import check_counts
from .augment import (
    DOUBLET_MODES,
    DOWNSAMPLE_BLOCK_CELLS,
    DOWNSAMPLE_METHODS,
    _depth_target,
    doublet_obs,
    doublet_parents,
    doublet_rows,
    downsampled_counts,
)
from .blocks import CountBlocks, block_starts
from .chunked import DEFAULT_CHUNK_CELLS, _append_csr, appended_to
from .job import blocks_source

__all__ = ["downsample_file", "simulate_doublets_file"]

log = logging.getLogger("gpu_genomics")


# --- the input and the output ---------------------------------------------------------------


def _check_output(output_path: str | os.PathLike) -> Path:
    output_path = Path(output_path)
    if not output_path.name.lower().endswith((".h5ad", ".zarr")):
        raise InputError(f"{output_path}: the output must end in .h5ad or .zarr")
    check_output_folder(output_path)
    return output_path


def _write_rows(
    output_path: Path, skeleton: Any, blocks: Any, *, n_rows: int, n_genes: int, dtype: Any
) -> None:
    """Write ``skeleton`` (obs, var, uns) and the CSR ``blocks`` (in order) as its ``X``.

    ``blocks`` yields SciPy CSR blocks of rows; the file is written to a temporary path and
    renamed into place once complete. Memory: one block.
    """
    import scipy.sparse as sp

    with appended_to(output_path, skeleton) as (root, _):
        appended: set[str] = set()
        for block in blocks:
            _append_csr(root, "X", block, appended)
        if not appended:  # no rows
            _append_csr(root, "X", sp.csr_matrix((n_rows, n_genes), dtype=dtype), appended)


def _skeleton(obs: Any, var: Any, uns: dict) -> Any:
    import anndata

    return anndata.AnnData(obs=obs, var=var, uns=uns)


def _record(tool: str, parameters: dict, input_path: Any, *, device: str, command: Any) -> dict:
    return flat(
        provenance(
            f"gpu-genomics {tool}",
            parameters=parameters,
            inputs={"counts": input_path},
            device=device,
            command=command,
        )
    )


def _block_counts(
    blocks: CountBlocks,
    names: np.ndarray,
    start: int,
    stop: int,
    *,
    integer: bool = True,
    what: str = "downsample_counts",
) -> Any:
    """Rows ``[start, stop)`` as canonical CSR, checked (errors name the file's row and gene)."""
    import anndata

    x = blocks.read(start, stop)
    if not x.has_canonical_format:
        x.sum_duplicates()
    block = anndata.AnnData(X=x)
    block.obs_names = [str(name) for name in names[start:stop]]
    check_counts(block, integer=integer, what=what, rows=range(start, stop))
    return x


# --- downsampling ---------------------------------------------------------------------------


def _downsample_task(
    blocks: CountBlocks,
    names: np.ndarray,
    start: int,
    stop: int,
    options: dict[str, Any],
) -> Any:
    """Downsample input rows ``[start, stop)`` (whole random blocks): SciPy CSR, input dtype."""
    import scipy.sparse as sp

    from ...device import to_numpy

    x = _block_counts(blocks, names, start, stop)
    device = resolve_device(options["device"])
    xp = array_module(device)
    new_counts = downsampled_counts(
        xp, device, xp.asarray(x.data), xp.asarray(x.indptr, dtype=np.int64),
        fraction=options["fraction"], target_total=options["target_total"],
        method=options["method"], seed=options["seed"], block_cells=options["block_cells"],
        first_block=start // options["block_cells"],
    )  # fmt: skip
    out = sp.csr_matrix((to_numpy(new_counts).astype(x.dtype), x.indices, x.indptr), shape=x.shape)
    out.eliminate_zeros()
    return out


def downsample_file(
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    *,
    fraction: float | None = None,
    target_total: int | None = None,
    method: str = "binomial",
    seed: int = 0,
    block_cells: int = DOWNSAMPLE_BLOCK_CELLS,
    chunk_cells: int | None = None,
    transpose: bool = False,
    client: Any = None,
    device: str | None = None,
    progress: bool = False,
    command: str | None = None,
) -> dict[str, Any]:
    """Downsample every cell of a count matrix on disk into a new AnnData file.

    The counts equal :func:`~.augment.downsample_counts` of the whole matrix with the same
    ``fraction``/``target_total``, ``method``, ``seed`` and ``block_cells`` on the same device
    (each random block of ``block_cells`` cells has its own generator; a task is a whole number
    of blocks, ``chunk_cells`` rounded up to one).

    Args:
        input_path: raw counts: ``.h5ad``, AnnData ``.zarr``, Cell Ranger ``.h5`` (read by
            blocks), or another format :func:`~.readers.read` takes (converted once to a
            temporary Zarr beside the output).
        output_path: ``.h5ad`` or ``.zarr``: ``X`` CSR with the input's dtype (explicit zeros
            removed), the input's ``obs``, ``var`` and ``uns`` (with ``uns["provenance"]``);
            the input's other elements (layers, ``obsm``, ``obsp``, ``raw``) are not copied.
        fraction: keep this fraction of reads (exactly one of it and ``target_total``).
        target_total: the reads per cell to keep.
        method: ``"binomial"``, ``"hypergeometric"`` or ``"multinomial"`` (as in memory).
        seed: the seed of every block's generator.
        block_cells: cells per random block (the counts for a seed depend on it).
        chunk_cells: input cells per task (default 20,000), rounded up to whole blocks.
        transpose: CSV/TSV input is genes x cells.
        client: a :class:`distributed.Client` to run the tasks on; default: this process.
        device: ``"auto" | "gpu" | "cpu"``: where the tasks draw (the devices draw different
            streams).
        progress: unused; accepted like every job's.
        command: the command line stored in the provenance.

    Returns:
        ``output``, ``n_cells``, ``n_genes``, ``seconds``.

    Raises:
        InputError: a bad option, an unreadable input, or a negative, non-finite or
            non-integer count (naming its row and gene); nothing is written.

    Memory: per task, one block of ``chunk_cells`` cells as CSR and about eight 8-byte arrays
    of one random block's entries; the client, the cells' names and one task's output rows.
    """
    started = time.perf_counter()
    fraction, target_total = _depth_target(fraction, target_total)
    check_choice("method", method, DOWNSAMPLE_METHODS)
    seed = check_seed(seed)
    block_cells = positive_int("block_cells", block_cells)
    chunk_cells = (
        DEFAULT_CHUNK_CELLS if chunk_cells is None else positive_int("chunk_cells", chunk_cells)
    )
    task_cells = -(-chunk_cells // block_cells) * block_cells
    device_name = resolve_device(device)
    output_path = _check_output(output_path)
    source = blocks_source(input_path, output_path, transpose=transpose)
    try:
        blocks = source.blocks
        names = np.asarray(source.obs.index, dtype=object)
        options = {
            "fraction": fraction, "target_total": target_total, "method": method, "seed": seed,
            "block_cells": block_cells, "device": device_name,
        }  # fmt: skip
        uns = dict(source.uns)
        uns["provenance"] = _record(
            "downsample",
            {**options, "chunk_cells": task_cells, "transpose": transpose,
             "workers": None if client is None else worker_count(client)},
            input_path, device=device_name, command=command,
        )  # fmt: skip
        tasks = [
            (blocks, names, a, b, options) for a, b in block_starts(blocks.n_cells, task_cells)
        ]
        try:
            _write_rows(
                output_path,
                _skeleton(source.obs, source.var, uns),
                map_in_order(client, _downsample_task, tasks, name="downsample"),
                n_rows=blocks.n_cells, n_genes=blocks.n_genes, dtype=blocks.dtype,
            )  # fmt: skip
        except InputError as exc:
            raise InputError(f"{input_path}: {exc}") from None
    finally:
        source.remove()
    seconds = time.perf_counter() - started
    log.info(
        "wrote %s: %d cells x %d genes, downsampled (%s) in %.2f s",
        output_path, blocks.n_cells, blocks.n_genes, method, seconds,
    )  # fmt: skip
    return {
        "output": str(output_path),
        "n_cells": blocks.n_cells,
        "n_genes": blocks.n_genes,
        "seconds": seconds,
    }


# --- doublets -------------------------------------------------------------------------------


class _Parents:
    """Where each doublet's two parents are, for the two passes of the shuffle.

    A reference ``r`` in ``[0, 2n)`` is parent slot ``r // n`` (0: first, 1: second) of doublet
    ``r % n``. Pass 1 takes the parents of one input block, ordered by (output chunk,
    reference), and spools them; pass 2 reads each output chunk's parents back from every
    input block's spool (a contiguous range of rows each) and adds the pairs.

    Memory (the client): four ``(2n,) int64`` arrays, 64 bytes per doublet.
    """

    def __init__(self, first: np.ndarray, second: np.ndarray, *, chunk: int) -> None:
        self.n = len(first)
        self.chunk = chunk
        self.parent = np.concatenate([first, second])  # (2n,) int64, by reference
        self.out_chunk = np.tile(np.arange(self.n, dtype=np.int64), 2) // chunk
        # every reference, by (parent's row, output chunk, reference): block b's are a range
        self.by_parent = np.lexsort((np.arange(2 * self.n), self.out_chunk, self.parent))
        self.sorted_parent = self.parent[self.by_parent]

    def of_block(self, start: int, stop: int) -> np.ndarray:
        """The input rows of the references whose parent is in ``[start, stop)``.

        ``(m,) int64``, in the order of those references by (output chunk, reference).
        """
        lo, hi = np.searchsorted(self.sorted_parent, [start, stop])
        refs = self.by_parent[lo:hi]
        return self.parent[refs[np.lexsort((refs, self.out_chunk[refs]))]]


def _parents_task(
    blocks: CountBlocks,
    names: np.ndarray,
    span: tuple[int, int],
    parent_rows: np.ndarray,
    spool: str,
) -> None:
    """Pass 1: spool the ``parent_rows`` (input rows) of input block ``span`` (``[start, stop)``).

    Three ``.npy`` files (``data``, ``indices`` int64, ``indptr`` int64) named by ``start``.
    """
    start, stop = span
    x = _block_counts(blocks, names, start, stop, integer=False, what="simulate_doublets")
    rows = x[parent_rows - start] if len(parent_rows) else x[:0]
    for part in ("data", "indices", "indptr"):
        values = getattr(rows, part)
        np.save(
            Path(spool) / f"{start}.{part}.npy",
            values if part == "data" else values.astype(np.int64),
            allow_pickle=False,
        )


def _doublets_task(
    spool: str,
    pieces: list[tuple[int, int, int]],
    positions: tuple[np.ndarray, np.ndarray],
    shape: tuple[int, int],
    options: dict[str, Any],
) -> Any:
    """Pass 2: one chunk of doublets from its parents' rows in the spool.

    ``pieces``: ``(block start, first row, stop row)`` of the spooled rows, in order;
    ``positions``: each doublet's two parents' rows among those rows, concatenated.
    Returns the doublets' SciPy CSR rows (:func:`~.augment.doublet_rows`).
    """
    import scipy.sparse as sp

    parts = []
    for start, lo, hi in pieces:
        indptr = np.load(Path(spool) / f"{start}.indptr.npy", mmap_mode="r")
        first, last = int(indptr[lo]), int(indptr[hi])
        data = np.load(Path(spool) / f"{start}.data.npy", mmap_mode="r")[first:last]
        indices = np.load(Path(spool) / f"{start}.indices.npy", mmap_mode="r")[first:last]
        parts.append(
            sp.csr_matrix(
                (np.array(data), np.array(indices), np.array(indptr[lo : hi + 1]) - first),
                shape=(hi - lo, shape[1]),
            )
        )
    rows = sp.vstack(parts, format="csr") if parts else sp.csr_matrix((0, shape[1]))
    device = resolve_device(options["device"])
    xp = array_module(device)
    first_rows, second_rows = positions
    return doublet_rows(
        xp, device,
        (xp.asarray(rows.data), xp.asarray(rows.indices, dtype=np.int64),
         xp.asarray(rows.indptr, dtype=np.int64)),
        shape=rows.shape, first=first_rows, second=second_rows, how=options["how"],
    )  # fmt: skip


def _pass_two_tasks(
    parents: _Parents, spans: list[tuple[int, int]], spool: str, shape: tuple[int, int],
    options: dict[str, Any],
) -> list[tuple]:  # fmt: skip
    """The arguments of pass 2's tasks, one per chunk of ``parents.chunk`` doublets."""
    n, chunk = parents.n, parents.chunk
    starts = np.array([a for a, _ in spans], dtype=np.int64)
    block_of = np.searchsorted(starts, parents.parent, side="right") - 1  # by reference
    # each block's spooled rows are its references by (chunk, reference): a chunk's run of
    # them starts where the block's references of earlier chunks end
    counts = np.zeros((len(spans), -(-n // chunk) if n else 0), dtype=np.int64)
    np.add.at(counts, (block_of, parents.out_chunk), 1)
    offsets = np.cumsum(counts, axis=1) - counts
    tasks = []
    for k in range(counts.shape[1]):
        first, last = k * chunk, min(n, (k + 1) * chunk)
        refs = np.concatenate([np.arange(first, last), np.arange(first, last) + n])
        order = np.lexsort((refs, block_of[refs]))  # the rows come by (block, reference)
        position = np.empty(len(refs), dtype=np.int64)
        position[order] = np.arange(len(refs))
        pieces = [
            (int(starts[b]), int(offsets[b, k]), int(offsets[b, k] + counts[b, k]))
            for b in np.flatnonzero(counts[:, k])
        ]
        m = last - first
        tasks.append((spool, pieces, (position[:m], position[m:]), shape, options))
    return tasks


def simulate_doublets_file(
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    *,
    n: int,
    how: str = "sum",
    seed: int = 0,
    chunk_cells: int | None = None,
    transpose: bool = False,
    client: Any = None,
    device: str | None = None,
    progress: bool = False,
    command: str | None = None,
) -> dict[str, Any]:
    """Simulate ``n`` doublets of a count matrix on disk into a new AnnData file.

    The doublets equal :func:`~.augment.simulate_doublets` of the whole matrix with the same
    ``n``, ``how`` and ``seed`` (parents drawn the same way, on the client; the same exact
    sums), on either device.

    Args:
        input_path: counts (non-negative, finite): ``.h5ad``, AnnData ``.zarr``, Cell Ranger
            ``.h5`` (read by blocks), or another format :func:`~.readers.read` takes
            (converted once to a temporary Zarr beside the output); at least 2 cells.
        output_path: ``.h5ad`` or ``.zarr``: ``X`` ``(n, n_genes)`` CSR (``how="sum"``: the
            input dtype; ``"mean"``: float32 for float32 input, else float64); ``obs``
            ``doublet-0``... with ``parent_1``, ``parent_2``, ``parent_1_name``,
            ``parent_2_name``; the input's ``var``; ``uns["provenance"]``.
        n: the number of doublets.
        how: ``"sum"`` or ``"mean"``.
        seed: seeds the parents' draw.
        chunk_cells: input cells per pass-1 task and doublets per pass-2 task (default 20,000).
        transpose: CSV/TSV input is genes x cells.
        client: a :class:`distributed.Client` to run the tasks on (its workers must see the
            scratch folder beside the output: one machine, or a shared file system).
        device: ``"auto" | "gpu" | "cpu"``: where the pairs are added (the same sums).
        progress: unused; accepted like every job's.
        command: the command line stored in the provenance.

    Returns:
        ``output``, ``n_cells`` (the doublets), ``n_genes``, ``seconds``.

    Raises:
        InputError: a bad option, fewer than 2 cells, an unreadable input, or a negative or
            non-finite value (naming its row and gene); nothing is written.

    Memory: a pass-1 task holds one block of ``chunk_cells`` input cells and their rows that
    are parents; a pass-2 task the ``2 * chunk_cells`` parents' rows of its doublets. The
    client: about 100 bytes per doublet (the parents and their order), the cells' names and
    one task's output. Disk: the parents' rows (two per doublet) in the scratch folder,
    removed at the end.
    """
    started = time.perf_counter()
    n = positive_int("n", n)
    check_choice("how", how, DOUBLET_MODES)
    seed = check_seed(seed)
    chunk_cells = (
        DEFAULT_CHUNK_CELLS if chunk_cells is None else positive_int("chunk_cells", chunk_cells)
    )
    device_name = resolve_device(device)
    output_path = _check_output(output_path)
    source = blocks_source(input_path, output_path, transpose=transpose)
    try:
        blocks = source.blocks
        if blocks.n_cells < 2:
            raise InputError(
                f"{input_path}: simulate_doublets needs at least 2 cells, it has {blocks.n_cells}"
            )
        names = np.asarray(source.obs.index, dtype=object)
        first, second = doublet_parents(blocks.n_cells, n, seed)
        parents = _Parents(first, second, chunk=chunk_cells)
        options = {"how": how, "device": device_name}
        uns = {
            "provenance": _record(
                "doublets",
                {
                    "n": n,
                    "how": how,
                    "seed": seed,
                    "chunk_cells": chunk_cells,
                    "transpose": transpose,
                    "workers": None if client is None else worker_count(client),
                },
                input_path,
                device=device_name,
                command=command,
            )
        }
        obs = doublet_obs(names.astype(str), first, second, start=0)
        spans = block_starts(blocks.n_cells, chunk_cells)
        spool = tempfile.mkdtemp(prefix=spool_prefix(output_path), dir=output_path.parent)
        try:
            pass_one = [(blocks, names, (a, b), parents.of_block(a, b), spool) for a, b in spans]
            for _ in map_in_order(client, _parents_task, pass_one, name="doublet-parents"):
                pass
            dtype = np.float64 if how == "mean" and blocks.dtype != "float32" else blocks.dtype
            _write_rows(
                output_path,
                _skeleton(obs, source.var, uns),
                map_in_order(
                    client, _doublets_task,
                    _pass_two_tasks(parents, spans, spool, (0, blocks.n_genes), options),
                    name="doublets",
                ),
                n_rows=n, n_genes=blocks.n_genes, dtype=dtype,
            )  # fmt: skip
        except InputError as exc:
            raise InputError(f"{input_path}: {exc}") from None
        finally:
            shutil.rmtree(spool, ignore_errors=True)
    finally:
        source.remove()
    seconds = time.perf_counter() - started
    log.info(
        "wrote %s: %d doublets x %d genes (%s) in %.2f s",
        output_path, n, blocks.n_genes, how, seconds,
    )  # fmt: skip
    return {"output": str(output_path), "n_cells": n, "n_genes": blocks.n_genes, "seconds": seconds}
