"""The ``encode`` job: a FASTA/FASTQ file into one-hot, token or k-mer arrays in HDF5 or Zarr.

:func:`encode_file` reads the file once into a :class:`~gpu_genomics.sequence.batch.SequenceBatch`,
encodes ``batch_size`` records at a time on the chosen device and writes each block of rows as it
is done, so memory holds the file's bases plus one block of encoded rows (a sparse k-mer matrix is
gathered whole before it is written). The arrays are declared in :data:`ENCODE_ARRAYS`.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from typing import Any

import numpy as np

from ..device import resolve_device, to_numpy
from ..errors import InputError, check_choice, positive_int
from ..execution import ordered_results, windowed, worker_count
from ..io.provenance import provenance
from ..io.spec import STRING, ArraySpec, OutputSpec
from ..io.store import ArrayWriter, format_from_path, resolve_compression
from .batch import SequenceBatch
from .fastx import IndexedRecords, bgzf_split_points, locate_records, plain_records, read_block
from .kmers import DENSE_MAX_K, kmer_counts, kmer_names
from .onehot import one_hot
from .tokenizers import kmer_token_counts, kmer_tokenize, tokenize

log = logging.getLogger("gpu_genomics")

ENCODINGS = ("onehot", "tokens", "kmer-counts", "kmer-tokens")
#: Rows of a batch's arrays: every encoding's first dimension.
SEQUENCES = "sequences"

ENCODE_ARRAYS = OutputSpec(
    "encode: FASTA/FASTQ -> HDF5/Zarr",
    (
        ArraySpec(
            "onehot",
            "uint8|int8|float16|float32",
            (SEQUENCES, "positions", "channels"),
            "one-hot bases, channels in `alphabet` order; N and other IUPAC letters `n_value`, "
            "padding 0; (sequences, channels, positions) with layout NCL",
            "encoding onehot",
        ),
        ArraySpec(
            "input_ids",
            "int32",
            (SEQUENCES, "tokens"),
            "token ids of `scheme`, padded or truncated to `max_len`",
            "encoding tokens, kmer-tokens",
        ),
        ArraySpec(
            "attention_mask",
            "uint8",
            (SEQUENCES, "tokens"),
            "1 for a real token, 0 for padding",
            "encoding tokens, kmer-tokens",
        ),
        ArraySpec(
            "kmer_counts",
            "int32",
            (SEQUENCES, "kmers"),
            "k-mer counts, columns as `kmer_names`",
            "encoding kmer-counts, dense",
        ),
        ArraySpec(
            "kmer_counts_data",
            "int32",
            ("nonzero",),
            "CSR values (attribute `kmer_counts_shape`: rows, columns)",
            "encoding kmer-counts, sparse",
        ),
        ArraySpec(
            "kmer_counts_indices",
            "int32|int64",
            ("nonzero",),
            "CSR column of each value",
            "encoding kmer-counts, sparse",
        ),
        ArraySpec(
            "kmer_counts_indptr",
            "int32|int64",
            ("row_pointers",),
            "CSR row pointer: row i is entries indptr[i]:indptr[i+1] (int64 beyond 2**31 - 1 "
            "entries)",
            "encoding kmer-counts, sparse",
        ),
        ArraySpec(
            "kmer_names",
            STRING,
            ("kmers",),
            "the k-mer of each column (A,C,G,T order; canonical k-mers with `canonical`)",
            "encoding kmer-counts",
        ),
        ArraySpec("names", STRING, (SEQUENCES,), "record names (the header's first word)"),
        ArraySpec("lengths", "int64", (SEQUENCES,), "record lengths in bases"),
    ),
)


def encode_file(
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    *,
    encoding: str = "onehot",
    length: int | None = None,
    pad: str = "right",
    alphabet: str = "ACGT",
    dtype: str = "uint8",
    n_value: float = 0.0,
    layout: str = "NLC",
    max_len: int | None = None,
    scheme: str | None = None,
    k: int = 6,
    stride: int = 1,
    canonical: bool = False,
    sparse: bool | None = None,
    batch_size: int = 8192,
    output_format: str | None = None,
    compression: str | None = None,
    device: str | None = None,
    client: Any = None,
    progress: bool = False,
    command: str | None = None,
) -> dict[str, Any]:
    """Encode the records of a FASTA/FASTQ file (plain, gzip or bgzip) into HDF5 or Zarr.

    Args:
        input_path: the FASTA or FASTQ file.
        output_path: ``.h5``/``.hdf5`` file or ``.zarr`` folder (or any name with
            ``output_format``); written to a temporary path and renamed at the end.
        encoding: ``"onehot"``, ``"tokens"`` (one token per base), ``"kmer-tokens"`` or
            ``"kmer-counts"``.
        length: onehot: bases per row (default: the longest record).
        pad: onehot: ``"right"`` or ``"center"`` (see :func:`~gpu_genomics.one_hot`).
        alphabet: onehot: column order.
        dtype: onehot: ``uint8``, ``int8``, ``float16`` or ``float32``.
        n_value: onehot: value of N and other IUPAC rows.
        layout: onehot: ``"NLC"`` or ``"NCL"``.
        max_len: tokens (required) and kmer-tokens (default: the longest row): tokens per row.
        scheme: tokens: ``spec`` (default) or ``hyenadna``; kmer-tokens: ``plain`` (default),
            ``dnabert`` or ``nucleotide-transformer``.
        k: k-mer size (kmer-tokens, kmer-counts).
        stride: kmer-tokens: bases between k-mer starts.
        canonical: kmer-counts: merge reverse complements.
        sparse: kmer-counts: CSR (True) or dense (False); default CSR for ``k > 6``.
        batch_size: records encoded and written per step.
        output_format: ``"hdf5"`` or ``"zarr"``; default from the suffix.
        compression: ``none``, ``gzip``, ``lzf`` (HDF5) or ``zstd``; default none for HDF5,
            zstd for Zarr.
        device: ``"auto" | "gpu" | "cpu"``.
        client: a :class:`distributed.Client`: encode the blocks of records on its cluster
            (this process reads the file and hands the blocks out; Zarr chunks are written by
            the workers, HDF5 rows here, in order); default: this process.
        progress: show a progress bar.
        command: the command line stored in the provenance (default: this process's).

    Returns:
        A summary: ``output``, ``encoding``, ``n_sequences``, ``n_bases``, ``arrays`` (name ->
        shape) and ``seconds``.

    Raises:
        InputError: a bad option or input file (nothing is written).

    Memory: the file's bases (1 byte each) plus one block of ``batch_size`` encoded rows on the
    device and the host; the CSR k-mer matrix is held whole. On a cluster: the file's bases
    here, and one block per worker task (a few blocks in flight at a time).
    """
    started = time.perf_counter()
    check_choice("encoding", encoding, ENCODINGS)
    output_format = format_from_path(output_path, output_format)
    batch_size = positive_int("batch_size", batch_size)
    device_name = resolve_device(device)
    parameters: dict[str, Any] = {
        "encoding": encoding,
        "batch_size": batch_size,
        "output_format": output_format,
        "compression": resolve_compression(output_format, compression),
    }
    parameters.update(
        _encoding_options(
            encoding,
            length=length,
            pad=pad,
            alphabet=alphabet,
            dtype=dtype,
            n_value=n_value,
            layout=layout,
            max_len=max_len,
            scheme=scheme,
            k=k,
            stride=stride,
            canonical=canonical,
            sparse=sparse,
        )
    )
    with ArrayWriter(output_path, output_format, compression, spec=ENCODE_ARRAYS) as out:
        records = None if client is None else _records_on_cluster(client, input_path, batch_size)
        names: list[str] | None = None
        lengths: np.ndarray | None = None
        batch = None
        if records is None:  # one reader, this process
            batch = SequenceBatch.from_fasta(input_path)
            names, lengths = batch.names or [], batch.lengths
        elif (encoding == "onehot" and length is None) or (
            encoding == "kmer-tokens" and max_len is None
        ):  # the rows' width depends on the records: a first pass reads them on the workers
            names, lengths, token_counts = _read_on_cluster(
                client,
                records,
                parameters,
                batch_size=batch_size,
                k=k,
                stride=stride,
                progress=progress,
            )
        n = len(batch) if records is None else len(records)
        log.info(
            "%s: %d records%s; encoding %s on %s",
            input_path,
            n,
            "" if lengths is None else f", {int(np.sum(lengths))} bases",
            encoding,
            device_name,
        )
        if encoding == "onehot":
            parameters["length"] = length if length is not None else int(np.max(lengths, initial=0))
            if not parameters["length"]:
                raise InputError(
                    f"{input_path}: every record is empty, so the longest is 0 bases; "
                    "pass `length` (bases per row)"
                )
        elif encoding == "kmer-tokens":
            if max_len is None:
                if batch is not None:
                    token_counts = kmer_token_counts(
                        batch, k, stride=stride, scheme=parameters["scheme"], device=device_name
                    )
                max_len = max(int(np.max(token_counts, initial=0)), 1)
            parameters["max_len"] = max_len
        parameters["workers"] = None if client is None else worker_count(client)
        from tqdm import tqdm

        with tqdm(total=n, unit="seq", disable=not progress or None, desc="encode") as bar:
            if client is None:
                encoder = _Encoder(out, n, parameters, device_name)
                for start in range(0, n, batch_size):
                    encoder.write_rows(batch.slice(start, start + batch_size), start)
                    bar.update(min(batch_size, n - start))
            else:
                encoder, seen = _encode_on_cluster(
                    client,
                    out,
                    n,
                    parameters,
                    device=device,
                    batch_size=batch_size,
                    bar=bar,
                    source=batch if batch is not None else records,
                    check=names is None,
                )
                if names is None:  # read and checked by the workers as they encoded
                    names, lengths = seen
        encoder.finish()
        out.write("names", names)
        out.write("lengths", np.asarray(lengths, dtype=np.int64))
        record = provenance(
            "gpu-genomics encode",
            parameters=parameters,
            inputs={"sequences": input_path},
            device=device_name,
            command=command,
        )
        out.attrs({**record, "encoding": encoding, "n_sequences": n})
        arrays = {name: tuple(shape) for name, shape in encoder.shapes.items()}
    seconds = time.perf_counter() - started
    log.info("wrote %s in %.1f s", output_path, seconds)
    return {
        "output": str(output_path),
        "encoding": encoding,
        "n_sequences": n,
        "n_bases": int(np.sum(lengths)),
        "arrays": arrays,
        "seconds": seconds,
    }


def _encoding_options(
    encoding: str,
    *,
    length: int | None,
    pad: str,
    alphabet: str,
    dtype: str,
    n_value: float,
    layout: str,
    max_len: int | None,
    scheme: str | None,
    k: int,
    stride: int,
    canonical: bool,
    sparse: bool | None,
) -> dict[str, Any]:
    """Check the options ``encoding`` uses, before any work, and return them resolved.

    The default scheme and the dense/sparse choice are filled in; ``length`` (onehot) and
    ``max_len`` (kmer-tokens) defaults depend on the records and are resolved later.

    Raises:
        InputError: an option is invalid for the encoding.
    """
    if encoding == "onehot":
        if length is not None:
            positive_int("length", length)
        options = {
            "alphabet": alphabet,
            "dtype": dtype,
            "n_value": n_value,
            "layout": layout,
            "pad": pad,
        }
        probe = {"length": length or 1}
    elif encoding == "tokens":
        if max_len is None:
            raise InputError("encoding='tokens' needs `max_len` (tokens per row)")
        options = {"max_len": max_len, "scheme": scheme or "spec"}
        probe = {}
    elif encoding == "kmer-tokens":
        options = {"k": k, "stride": stride, "scheme": scheme or "plain"}
        probe = {"max_len": 1 if max_len is None else max_len}
    else:
        dense_k = k <= DENSE_MAX_K if isinstance(k, int | np.integer) else True  # else refused
        options = {
            "k": k,
            "canonical": bool(canonical),
            "sparse": not dense_k if sparse is None else bool(sparse),
        }
        probe = {}
    _encode_batch([], {"encoding": encoding, **options, **probe}, "cpu")  # checks every option
    return options


def _encode_batch(chunk: Any, p: dict[str, Any], device: str) -> list[Any]:
    """Encode ``chunk`` with the resolved parameters ``p`` of one encoding.

    Returns the arrays of its rows, in the order the encoding's arrays are created. On an empty
    batch it only checks the options (how :func:`_encoding_options` validates them).
    """
    encoding = p["encoding"]
    if encoding == "onehot":
        return [
            one_hot(
                chunk,
                p["length"],
                alphabet=p["alphabet"],
                dtype=p["dtype"],
                n_value=p["n_value"],
                layout=p["layout"],
                pad=p["pad"],
                device=device,
            )
        ]
    if encoding == "tokens":
        return list(tokenize(chunk, p["max_len"], scheme=p["scheme"], device=device))
    if encoding == "kmer-tokens":
        return list(
            kmer_tokenize(
                chunk,
                p["k"],
                stride=p["stride"],
                scheme=p["scheme"],
                max_len=p["max_len"],
                device=device,
            )
        )
    return [kmer_counts(chunk, p["k"], canonical=p["canonical"], sparse=p["sparse"], device=device)]


def _records_on_cluster(
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
    token = uuid.uuid4().hex[:8]

    def submit(i: int) -> Any:
        stop = cuts[i + 1] if i + 1 < len(cuts) else -1
        return client.submit(
            locate_records, str(path), cuts[i], stop, key=f"encode-locate-{i}-{token}"
        )

    futures = windowed(submit, range(len(cuts)), window=2 * worker_count(client))
    starts = np.concatenate(list(ordered_results(futures)))
    return IndexedRecords(str(path), "bgzf", np.append(starts, -1))


def _read_task(
    block: tuple, *, first_record: int, counts: dict[str, Any] | None
) -> tuple[list[str], np.ndarray, np.ndarray | None]:
    """Read and check a block of records (:meth:`~.fastx.IndexedRecords.block`) on a worker.

    Returns their names, lengths and, with ``counts`` (``k``, ``stride``, ``scheme``), their
    k-mer token counts.

    Raises:
        InputError: a record holds a byte that is not an IUPAC letter (named as in-process).
    """
    data, offsets, names = read_block(block)
    records = SequenceBatch(data, offsets, names)
    records.validate(source=block[1], first_record=first_record)
    tokens = None
    if counts is not None:
        tokens = kmer_token_counts(
            records, counts["k"], stride=counts["stride"], scheme=counts["scheme"], device="cpu"
        )
    return names, records.lengths, tokens


def _read_on_cluster(
    client: Any,
    records: IndexedRecords,
    parameters: dict[str, Any],
    *,
    batch_size: int,
    k: int,
    stride: int,
    progress: bool,
) -> tuple[list[str], np.ndarray, np.ndarray | None]:
    """Read every record's name and length on the cluster (a first pass over the records).

    Also their k-mer token counts when kmer-tokens needs the longest row; the workers check
    the records as they read them.
    """
    counts = None
    if parameters["encoding"] == "kmer-tokens" and parameters.get("max_len") is None:
        counts = {"k": k, "stride": stride, "scheme": parameters["scheme"]}
    token = uuid.uuid4().hex[:8]
    firsts = list(range(0, len(records), batch_size))

    def submit(first: int) -> Any:
        return client.submit(
            _read_task,
            records.block(first, first + batch_size),
            first_record=first,
            counts=counts,
            key=f"encode-read-{first}-{token}",
        )

    from tqdm import tqdm

    names: list[str] = []
    lengths, tokens = [], []
    futures = windowed(submit, firsts, window=2 * worker_count(client))
    with tqdm(total=len(records), unit="seq", disable=not progress or None, desc="read") as bar:
        for part_names, part_lengths, part_tokens in ordered_results(futures):
            names.extend(part_names)
            lengths.append(part_lengths)
            tokens.append(part_tokens)
            bar.update(len(part_names))
    lengths_all = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
    tokens_all = np.concatenate(tokens) if counts is not None and tokens else None
    return names, lengths_all, tokens_all


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
    names = None
    if isinstance(source[0], str):
        data, offsets, names = read_block(source)
    else:
        data, offsets = source
    chunk = SequenceBatch(data, offsets, names)
    if check:
        chunk.validate(source=source[1], first_record=first_row)
    seen = (names, chunk.lengths) if check else (None, None)
    results = [to_numpy(r) for r in _encode_batch(chunk, parameters, resolve_device(device))]
    if store is None or (parameters["encoding"] == "kmer-counts" and parameters["sparse"]):
        return results, *seen
    import zarr

    group = zarr.open_group(store, mode="r+")
    for name, rows in zip(array_names, results, strict=True):
        group[name][first_row : first_row + len(rows)] = rows
    return len(chunk), *seen


def _encode_on_cluster(
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
    task_rows = max(chunk_rows, batch_size - batch_size % chunk_rows)
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

    futures = windowed(submit, firsts, window=2 * worker_count(client))
    names: list[str] = []
    lengths: list[np.ndarray] = []
    for first, (result, part_names, part_lengths) in zip(
        firsts, ordered_results(futures), strict=True
    ):
        if not isinstance(result, int):
            encoder.write_results(result, first)
        if check:
            names.extend(part_names)
            lengths.append(part_lengths)
        bar.update(min(task_rows, n - first))
    return encoder, (names, np.concatenate(lengths) if lengths else np.zeros(0, np.int64))


def _row_bytes(parameters: dict[str, Any]) -> list[int]:
    """Bytes of one row of each array the encoding fills by rows."""
    encoding = parameters["encoding"]
    if encoding == "onehot":
        return [parameters["length"] * 4 * np.dtype(parameters["dtype"]).itemsize]
    if encoding in ("tokens", "kmer-tokens"):
        return [parameters["max_len"] * 4, parameters["max_len"]]
    return [4 ** parameters["k"] * 4]


class _Encoder:
    """Creates the arrays of one encoding and fills them a block of records at a time."""

    def __init__(
        self,
        out: ArrayWriter,
        n: int,
        parameters: dict[str, Any],
        device: str,
        *,
        chunk_rows: int | None = None,
    ) -> None:
        self.out, self.n, self.p, self.device = out, n, parameters, device
        self.chunk_rows = chunk_rows
        self.shapes: dict[str, tuple[int, ...]] = {}
        self._sparse_blocks: list[Any] = []
        encoding = parameters["encoding"]
        if encoding == "onehot":
            width = parameters["length"]
            ncl = parameters["layout"] == "NCL"
            shape = (self.n, 4, width) if ncl else (self.n, width, 4)
            dims = (SEQUENCES, "channels", "positions") if ncl else None
            self.targets = [self._create("onehot", shape, parameters["dtype"], dims)]
        elif encoding in ("tokens", "kmer-tokens"):
            shape = (self.n, parameters["max_len"])
            self.targets = [
                self._create("input_ids", shape, np.int32),
                self._create("attention_mask", shape, np.uint8),
            ]
        else:
            self.names = kmer_names(parameters["k"], canonical=parameters["canonical"])
            if not parameters["sparse"]:
                self.targets = [self._create("kmer_counts", (self.n, len(self.names)), np.int32)]

    def _create(self, name: str, shape: tuple[int, ...], dtype: Any, dims: Any = None) -> Any:
        self.shapes[name] = shape
        return self.out.create(name, shape, dtype, chunk_rows=self.chunk_rows, dims=dims)

    def _encode(self, chunk: SequenceBatch) -> list[Any]:
        return _encode_batch(chunk, self.p, self.device)

    @property
    def sparse(self) -> bool:
        """Whether the output is a CSR matrix, gathered whole before it is written."""
        return self.p["encoding"] == "kmer-counts" and self.p["sparse"]

    @property
    def array_names(self) -> list[str]:
        """The arrays filled by rows, in the order :func:`_encode_batch` returns them."""
        return [name for name in self.shapes if name != "kmer_names"]

    def write_rows(self, chunk: SequenceBatch, start: int) -> None:
        """Encode ``chunk`` (records ``start ..``) and write its rows."""
        self.write_results([to_numpy(r) for r in self._encode(chunk)], start)

    def write_results(self, results: list[Any], start: int) -> None:
        """Write the encoded rows of records ``start ..`` (or keep a CSR block)."""
        if self.sparse:
            self._sparse_blocks.append(results[0])
            return
        for target, result in zip(self.targets, results, strict=True):
            target[start : start + len(result)] = result

    def finish(self) -> None:
        """Write what is written once, after every block: the k-mer names and the CSR matrix."""
        if self.p["encoding"] != "kmer-counts":
            return
        self.out.write("kmer_names", self.names)
        if not self.p["sparse"]:
            return
        import scipy.sparse

        n_columns = len(self.names)
        matrix = (
            scipy.sparse.vstack(self._sparse_blocks, format="csr")
            if self._sparse_blocks
            else scipy.sparse.csr_matrix((0, n_columns), dtype=np.int32)
        )
        for part in ("data", "indices", "indptr"):
            values = getattr(matrix, part)
            self.shapes[f"kmer_counts_{part}"] = values.shape
            self.out.write(f"kmer_counts_{part}", values)
        self.out.attrs({"kmer_counts_format": "csr", "kmer_counts_shape": [self.n, n_columns]})
