"""``gpu-genomics encode``: FASTA/FASTQ records into one-hot, token or k-mer arrays."""

from __future__ import annotations

from typing import Any

import click

from ..sequence.encode import ENCODE_ARRAYS, ENCODINGS, encode_file
from ..sequence.onehot import LAYOUTS, ONE_HOT_DTYPES
from .common import (
    array_output_options,
    arrays_epilog,
    cluster_options,
    compression_option,
    device_option,
    logging_options,
    run_job,
)


@click.command("encode", epilog=arrays_epilog(ENCODE_ARRAYS))
@click.argument("input_path", metavar="SEQS", type=click.Path(dir_okay=False))
@array_output_options
@click.option("--encoding", type=click.Choice(ENCODINGS), default="onehot", show_default=True)
@click.option(
    "--length", type=int, default=None, help="onehot: bases per row (default: longest record)."
)
@click.option(
    "--pad",
    type=click.Choice(["right", "center"]),
    default="right",
    show_default=True,
    help="onehot: where shorter records are padded / longer ones cropped.",
)
@click.option("--alphabet", default="ACGT", show_default=True, help="onehot: column order.")
@click.option("--dtype", type=click.Choice(ONE_HOT_DTYPES), default="uint8", show_default=True)
@click.option(
    "--n-value",
    type=float,
    default=0.0,
    show_default=True,
    help="onehot: value of N/IUPAC rows (0.25 with a float dtype as Basset).",
)
@click.option("--layout", type=click.Choice(LAYOUTS), default="NLC", show_default=True)
@click.option(
    "--max-len",
    type=int,
    default=None,
    help="tokens (required) / kmer-tokens (default: longest): tokens per row.",
)
@click.option(
    "--scheme",
    default=None,
    help="tokens: spec|hyenadna (spec); kmer-tokens: plain|dnabert|nucleotide-transformer (plain).",
)
@click.option("-k", "--k", "k", type=int, default=6, show_default=True, help="k-mer size.")
@click.option("--stride", type=int, default=1, show_default=True, help="kmer-tokens: stride.")
@click.option("--canonical", is_flag=True, help="kmer-counts: merge reverse complements.")
@click.option("--sparse/--dense", default=None, help="kmer-counts: force CSR or dense output.")
@click.option(
    "--uppercase",
    is_flag=True,
    help="tokens --scheme hyenadna, kmer-tokens --scheme dnabert: read lower-case letters as "
    "upper case (else [UNK], as those case-sensitive tokenizers give them).",
)
@device_option
@compression_option
@click.option(
    "--batch-size",
    type=int,
    default=8192,
    show_default=True,
    help="Records encoded and written per step.",
)
@cluster_options
@logging_options
def encode(input_path: str, output: str, **options: Any) -> None:
    """Encode the sequences of a FASTA/FASTQ file (plain or gzip) into HDF5 or Zarr.

    Writes the encoded arrays (onehot; input_ids + attention_mask; kmer_counts), the record
    `names` and `lengths`, and attributes with the tool version, command line and parameters.
    """
    run_job(encode_file, input_path, output, **options)
