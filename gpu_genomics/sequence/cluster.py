"""The ``encode`` job on a Dask cluster (:func:`~.encode.encode_file` with ``client``).

The records are read where they are encoded when the file allows it: a plain FASTA is cut at its
records' ``>`` (the client scans the file for them, keeping only their offsets), a bgzip FASTA
with its ``.fai`` and ``.gzi`` between the records the index lists (the workers find the records
of each range, so records the index leaves out, empty or of a repeated name, are kept). Each task
is a block of whole chunks of records: it parses them as the whole file is parsed in-process,
checks every letter (an error names the record by its index in the file), encodes them and writes
its chunks (Zarr) or returns its rows (HDF5, and a CSR k-mer block), with the records' names and
lengths. When the width of the rows depends on the records (one-hot without ``length``,
``kmer-tokens`` without ``max_len``) a first pass of tasks returns the names, lengths and token
counts. Gzip, unindexed bgzip and FASTQ input is read by the client and handed out in blocks.

Memory per worker: one block of records and its encoded rows. The client holds 8 bytes per
record (its offset), the records' names and lengths, and a window of HDF5 blocks.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import numpy as np

from ..device import resolve_device, to_numpy
from ..execution import map_in_order, ordered_results, task_window, whole_chunks, windowed
from ..io.store import ArrayWriter, write_zarr_rows
from .batch import SequenceBatch
from .encode import _encode_batch, _Encoder, _row_bytes
from .fastx import IndexedRecords, bgzf_split_points, locate_records, plain_records, read_block
from .tokenizers import kmer_token_counts


def records_on_cluster(
    client: Any, path: str | os.PathLike, batch_size: int
) -> IndexedRecords | None:
    """Where the records of ``path`` start, for workers to read them, or None (read it here).

    A plain FASTA is scanned here for its records' ``>`` (:func:`~.fastx.plain_records`); a
    bgzip FASTA with its ``.fai`` and ``.gzi`` is cut between the records the ``.fai`` lists,
    about ``batch_size`` of them a range, and the workers find the records of each range
    (:func:`~.fastx.locate_records`). Gzip, FASTQ and unindexed bgzip return None.
    """
    from ..io.files import is_gzip

    if not is_gzip(path):
        return plain_records(path)
    points = bgzf_split_points(path)
    if points is None:
        return None
    cuts = points[::batch_size].tolist()
    ranges = [(str(path), start, stop) for start, stop in zip(cuts, [*cuts[1:], -1], strict=True)]
    starts = np.concatenate(
        list(map_in_order(client, locate_records, ranges, name="encode-locate"))
    )
    return IndexedRecords(str(path), "bgzf", np.append(starts, -1))


def _read_checked(block: tuple, first_record: int) -> SequenceBatch:
    """Read a block of records (:meth:`~.fastx.IndexedRecords.block`) and check its letters.

    Raises:
        InputError: a record holds a byte that is not an IUPAC letter (named as in-process:
            ``first_record`` is the block's first record's index in the file).
    """
    records = SequenceBatch(*read_block(block))
    records.validate(source=block[1], first_record=first_record)
    return records


def _read_task(
    block: tuple, *, first_record: int, parameters: dict[str, Any]
) -> tuple[list[str], np.ndarray, np.ndarray | None]:
    """Read and check a block of records on a worker.

    Returns:
        Their names, lengths and, for ``kmer-tokens``, their k-mer token counts.
    """
    records = _read_checked(block, first_record)
    tokens = None
    if parameters["encoding"] == "kmer-tokens":
        tokens = kmer_token_counts(
            records,
            parameters["k"],
            stride=parameters["stride"],
            scheme=parameters["scheme"],
            device="cpu",
        )
    return records.names, records.lengths, tokens


def read_on_cluster(
    client: Any,
    records: IndexedRecords,
    parameters: dict[str, Any],
    *,
    batch_size: int,
    progress: bool,
) -> tuple[list[str], np.ndarray, np.ndarray | None]:
    """Read every record's name and length on the cluster (a first pass over the records).

    Also their k-mer token counts for ``kmer-tokens`` (whose longest row sets ``max_len``);
    the workers check the records as they read them.
    """
    token = uuid.uuid4().hex[:8]
    firsts = list(range(0, len(records), batch_size))

    def submit(first: int) -> Any:
        return client.submit(
            _read_task,
            records.block(first, first + batch_size),
            first_record=first,
            parameters=parameters,
            key=f"encode-read-{first}-{token}",
        )

    from tqdm import tqdm

    names: list[str] = []
    lengths, tokens = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    futures = windowed(submit, firsts, window=task_window(client))
    with tqdm(total=len(records), unit="seq", disable=not progress or None, desc="read") as bar:
        for part_names, part_lengths, part_tokens in ordered_results(futures):
            names.extend(part_names)
            lengths.append(part_lengths)
            tokens.append(part_tokens)
            bar.update(len(part_names))
    counted = parameters["encoding"] == "kmer-tokens"
    return names, np.concatenate(lengths), np.concatenate(tokens) if counted else None


def _encode_task(
    source: tuple,
    *,
    parameters: dict[str, Any],
    device: str | None,
    store: str | None,
    array_names: list[str],
    first_row: int,
    check: bool = False,
) -> tuple[list[Any] | int, list[str] | None, np.ndarray | None]:
    """Encode one block of records on a worker.

    ``source``: the records' ``(data, offsets)``, or a block of records the worker reads
    (:meth:`~.fastx.IndexedRecords.block`). Writes their rows into the Zarr ``store`` and
    returns their count, or returns them (HDF5, and a CSR block); with ``check`` (records read
    here and not read before) checks them first and returns their names and lengths too.

    Returns:
        ``(rows or count, names or None, lengths or None)``.
    """
    if not isinstance(source[0], str):
        chunk = SequenceBatch(*source)
    elif check:
        chunk = _read_checked(source, first_row)
    else:
        chunk = SequenceBatch(*read_block(source))
    seen = (chunk.names, chunk.lengths) if check else (None, None)
    results = [to_numpy(r) for r in _encode_batch(chunk, parameters, resolve_device(device))]
    if store is None or (parameters["encoding"] == "kmer-counts" and parameters["sparse"]):
        return results, *seen
    return write_zarr_rows(store, first_row, dict(zip(array_names, results, strict=True))), *seen


def encode_on_cluster(
    client: Any,
    out: ArrayWriter,
    n: int,
    parameters: dict[str, Any],
    *,
    device: str | None,
    batch_size: int,
    bar: Any,
    source: SequenceBatch | IndexedRecords,
    check: bool = False,
) -> tuple[_Encoder, tuple[list[str], np.ndarray]]:
    """Encode the records on the cluster's workers and write or keep what comes back.

    The blocks are whole chunks of rows (at most ``batch_size`` records), handed out a window
    of blocks at a time: the records themselves (``source`` a batch read here) or blocks of
    records that the workers read (``source`` :class:`~.fastx.IndexedRecords`); with ``check``
    they also check them and send back their names and lengths (returned with the encoder).
    """
    chunk_rows = out.common_chunk_rows(_row_bytes(parameters))
    encoder = _Encoder(out, n, parameters, "cpu", chunk_rows=chunk_rows)
    task_rows = whole_chunks(batch_size, chunk_rows)
    store = str(out.tmp_path.resolve()) if out.format == "zarr" else None
    token = uuid.uuid4().hex[:8]
    firsts = list(range(0, n, task_rows))

    def submit(first: int) -> Any:
        if isinstance(source, SequenceBatch):
            block = source.slice(first, first + task_rows)
            records: tuple = (np.ascontiguousarray(block.data), block.offsets)
        else:
            records = source.block(first, first + task_rows)
        return client.submit(
            _encode_task,
            records,
            check=check,
            parameters=parameters,
            device=device,
            store=store,
            array_names=encoder.array_names,
            first_row=first,
            key=f"encode-{first}-{token}",
        )

    futures = windowed(submit, firsts, window=task_window(client))
    names: list[str] = []
    lengths = [np.zeros(0, np.int64)]
    for first, (result, part_names, part_lengths) in zip(
        firsts, ordered_results(futures), strict=True
    ):
        if not isinstance(result, int):
            encoder.write_results(result, first)
        if check:
            names.extend(part_names)
            lengths.append(part_lengths)
        bar.update(min(task_rows, n - first))
    return encoder, (names, np.concatenate(lengths))
