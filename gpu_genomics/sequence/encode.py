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
from typing import Any

import numpy as np

from ..device import resolve_device, to_numpy
from ..errors import InputError, check_choice, positive_int
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
    batch_size: int = 8192,
    output_format: str | None = None,
    compression: str | None = None,
    device: str | None = None,
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
        progress: show a progress bar.
        command: the command line stored in the provenance (default: this process's).

    Returns:
        A summary: ``output``, ``encoding``, ``n_sequences``, ``n_bases``, ``arrays`` (name ->
        shape) and ``seconds``.

    Raises:
        InputError: a bad option or input file (nothing is written).

    Memory: the file's bases (1 byte each) plus one block of ``batch_size`` encoded rows on the
    device and the host; the CSR k-mer matrix is held whole.
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
        batch = SequenceBatch.from_fasta(input_path)
        n = len(batch)
        log.info(
            "%s: %d records, %d bases; encoding %s on %s",
            input_path,
            n,
            len(batch.data),
            encoding,
            device_name,
        )
        if encoding == "onehot":
            parameters["length"] = length if length is not None else batch.max_length
            if not parameters["length"]:
                raise InputError(
                    f"{input_path}: every record is empty, so the longest is 0 bases; "
                    "pass `length` (bases per row)"
                )
        elif encoding == "kmer-tokens":
            if max_len is None:
                counts = kmer_token_counts(
                    batch, k, stride=stride, scheme=parameters["scheme"], device=device_name
                )
                max_len = max(int(counts.max()) if len(counts) else 0, 1)
            parameters["max_len"] = max_len
        encoder = _Encoder(out, batch, parameters, device_name)
        from tqdm import tqdm

        with tqdm(total=n, unit="seq", disable=not progress or None, desc="encode") as bar:
            for start in range(0, n, batch_size):
                encoder.write_rows(batch.slice(start, start + batch_size), start)
                bar.update(min(batch_size, n - start))
        encoder.finish()
        out.write("names", batch.names or [])
        out.write("lengths", batch.lengths)
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
        "n_bases": len(batch.data),
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


class _Encoder:
    """Creates the arrays of one encoding and fills them a block of records at a time."""

    def __init__(
        self, out: ArrayWriter, batch: SequenceBatch, parameters: dict[str, Any], device: str
    ) -> None:
        self.out, self.n, self.p, self.device = out, len(batch), parameters, device
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
        return self.out.create(name, shape, dtype, dims=dims)

    def _encode(self, chunk: SequenceBatch) -> list[Any]:
        return _encode_batch(chunk, self.p, self.device)

    def write_rows(self, chunk: SequenceBatch, start: int) -> None:
        """Encode ``chunk`` (records ``start ..``) and write its rows."""
        results = self._encode(chunk)
        if self.p["encoding"] == "kmer-counts" and self.p["sparse"]:
            self._sparse_blocks.append(to_numpy(results[0]))
            return
        for target, result in zip(self.targets, results, strict=True):
            target[start : start + len(chunk)] = to_numpy(result)

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
