"""The ``encode`` job: a FASTA/FASTQ file into one-hot, token or k-mer arrays in HDF5 or Zarr.

:func:`encode_file` reads the file once into a :class:`~gpu_genomics.sequence.batch.SequenceBatch`,
encodes ``batch_size`` records at a time on the chosen device and writes each block of rows as it
is done, so memory holds the file's bases plus one block of encoded rows (a sparse k-mer matrix is
gathered whole before it is written). With a Dask ``client`` the blocks are tasks on the cluster
(:mod:`.cluster`). The arrays are declared in :data:`ENCODE_ARRAYS`.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import numpy as np

from ..device import resolve_device, to_numpy
from ..errors import InputError, check_choice, positive_int
from ..execution import worker_count
from ..io.provenance import provenance
from ..io.spec import STRING, ArraySpec, OutputSpec
from ..io.store import ArrayWriter, format_from_path, resolve_compression
from .batch import SequenceBatch
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
    uppercase: bool = False,
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
        uppercase: tokens with scheme hyenadna, kmer-tokens with scheme dnabert: read
            lower-case letters as upper case (those tokenizers are case-sensitive: without it a
            lower-case letter or k-mer is [UNK]).
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
            uppercase=uppercase,
        )
    )
    if client is not None:
        from . import cluster as tasks
    with ArrayWriter(output_path, output_format, compression, spec=ENCODE_ARRAYS) as out:
        records = (
            None if client is None else tasks.records_on_cluster(client, input_path, batch_size)
        )
        names: list[str] | None = None
        lengths = token_counts = batch = None
        if records is None:  # one reader, this process
            batch = SequenceBatch.from_fasta(input_path)
            names, lengths = batch.names or [], batch.lengths
        elif (encoding == "onehot" and length is None) or (
            encoding == "kmer-tokens" and max_len is None
        ):  # the rows' width depends on the records: a first pass reads them on the workers
            names, lengths, token_counts = tasks.read_on_cluster(
                client,
                records,
                parameters,
                batch_size=batch_size,
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
        _resolve_row_width(
            parameters,
            length=length,
            max_len=max_len,
            lengths=lengths,
            token_counts=token_counts,
            batch=batch,
            input_path=input_path,
            device=device_name,
        )
        parameters["workers"] = None if client is None else worker_count(client)
        from tqdm import tqdm

        with tqdm(total=n, unit="seq", disable=not progress or None, desc="encode") as bar:
            if client is None:
                encoder = _Encoder(out, n, parameters, device_name)
                for start in range(0, n, batch_size):
                    encoder.write_rows(batch.slice(start, start + batch_size), start)
                    bar.update(min(batch_size, n - start))
            else:
                encoder, seen = tasks.encode_on_cluster(
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


def _resolve_row_width(
    parameters: dict[str, Any],
    *,
    length: int | None,
    max_len: int | None,
    lengths: np.ndarray | None,
    token_counts: np.ndarray | None,
    batch: SequenceBatch | None,
    input_path: str | os.PathLike,
    device: str,
) -> None:
    """Set the one-hot ``length`` or the kmer-tokens ``max_len`` in ``parameters``.

    What the user gave, or what the records need: the longest record's length, the most
    tokens of a record (``token_counts`` from the cluster's first pass, or counted on ``batch``).

    Raises:
        InputError: one-hot without ``length`` of a file whose records are all empty.
    """
    encoding = parameters["encoding"]
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
                    batch,
                    parameters["k"],
                    stride=parameters["stride"],
                    scheme=parameters["scheme"],
                    device=device,
                )
            max_len = max(int(np.max(token_counts, initial=0)), 1)
        parameters["max_len"] = max_len


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
    uppercase: bool = False,
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
        options = {"max_len": max_len, "scheme": scheme or "spec", "uppercase": bool(uppercase)}
        probe = {}
    elif encoding == "kmer-tokens":
        options = {
            "k": k,
            "stride": stride,
            "scheme": scheme or "plain",
            "uppercase": bool(uppercase),
        }
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
        return list(
            tokenize(
                chunk, p["max_len"], scheme=p["scheme"], uppercase=p["uppercase"], device=device
            )
        )
    if encoding == "kmer-tokens":
        return list(
            kmer_tokenize(
                chunk,
                p["k"],
                stride=p["stride"],
                scheme=p["scheme"],
                max_len=p["max_len"],
                uppercase=p["uppercase"],
                device=device,
            )
        )
    return [kmer_counts(chunk, p["k"], canonical=p["canonical"], sparse=p["sparse"], device=device)]


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
