"""The ``gpu-genomics`` command line: ``info``, ``encode`` and ``intervals`` here; ``scrna``,
``vcf`` and ``bulk`` in ``cli_scrna``, ``cli_vcf`` and ``cli_bulk``.

User mistakes (:class:`~gpu_genomics.errors.GpuGenomicsError`) print one ``error:`` line and
exit with status 2; an interrupted run exits 130 and leaves no output behind.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import click
import numpy as np

from .. import __version__
from ..device import resolve_device, to_numpy
from ..errors import GpuGenomicsError, InputError
from ..io.store import ArrayWriter, format_from_path
from ..sequence.batch import SequenceBatch
from ..sequence.kmers import kmer_counts, kmer_names
from ..sequence.onehot import ONE_HOT_DTYPES, one_hot
from ..sequence.tokenizers import kmer_token_counts, kmer_tokenize, tokenize
from .common import (
    array_output_options,
    compression_option,
    device_option,
    logging_options,
    setup_logging,
)

log = logging.getLogger("gpu_genomics")

ENCODINGS = ("onehot", "tokens", "kmer-counts", "kmer-tokens")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gpu-genomics")
def cli() -> None:
    """GPU-accelerated preprocessing of genomics files into ML-ready arrays."""


@cli.command()
def info() -> None:
    """Print versions, CPU and GPU, and which backends are usable (and why not)."""
    from ..info import system_report

    rows = system_report()
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        click.echo(f"{name:<{width}}  {value}")


@cli.command()
@click.argument("seqs", type=click.Path(dir_okay=False))
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
@click.option("--layout", type=click.Choice(["NLC", "NCL"]), default="NLC", show_default=True)
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
@device_option
@compression_option
@click.option(
    "--batch-size",
    type=int,
    default=8192,
    show_default=True,
    help="Records encoded and written per step.",
)
@logging_options
def encode(seqs: str, output: str, **opts: Any) -> None:
    """Encode the sequences of a FASTA/FASTQ file (plain or gzip) into HDF5 or Zarr.

    Writes the encoded arrays (onehot; input_ids + attention_mask; kmer_counts), the record
    `names` and `lengths`, and attributes with the tool version, command line and parameters.
    """
    setup_logging(opts["quiet"], opts["loglevel"])
    started = time.perf_counter()
    format_from_path(output, opts["output_format"])  # refuse a bad output name before any work
    device = resolve_device(opts["device"])
    batch = SequenceBatch.from_fasta(seqs)
    n = len(batch)
    log.info(
        "%s: %d records, %d bases; encoding %s on %s",
        seqs,
        n,
        len(batch.data),
        opts["encoding"],
        device,
    )
    batch_size = opts["batch_size"]
    if batch_size < 1:
        raise InputError(f"--batch-size {batch_size} must be a positive integer")
    encoder = _Encoder(batch, device, opts)
    params = {key: value for key, value in opts.items() if key not in ("quiet", "loglevel")}
    params.update(encoder.resolved)
    with ArrayWriter(output, opts["output_format"], opts["compression"]) as out:
        encoder.create(out)
        from tqdm import tqdm

        with tqdm(total=n, unit="seq", disable=opts["quiet"] or None, desc="encode") as bar:
            for start in range(0, n, batch_size):
                encoder.write_rows(out, batch.slice(start, start + batch_size), start)
                bar.update(min(batch_size, n - start))
        encoder.finish(out)
        out.write("names", batch.names or [])
        out.write("lengths", batch.lengths)
        out.attrs(
            {
                "gpu_genomics_version": __version__,
                "command": shlex.join(
                    ["gpu-genomics", *click.get_current_context().find_root().obj["argv"]]
                ),
                "source": str(seqs),
                "encoding": opts["encoding"],
                "n_sequences": n,
                "parameters": params,
            }
        )
    log.info("wrote %s in %.1f s", output, time.perf_counter() - started)


def _chrom_list(value: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in value.split(",") if name.strip())


@click.command("intervals")
@click.option(
    "-i",
    "--input",
    "metadata",
    required=True,
    type=click.Path(dir_okay=False),
    help="Metadata: one BED path per line, 'PATH LABEL' lines, or Basset's 'NAME<TAB>PATH' lines.",
)
@click.option(
    "-f",
    "--fastq",
    "--fasta",
    "--reference",
    "reference",
    required=True,
    type=click.Path(dir_okay=False),
    help="Reference FASTA: bgzip (with or without .fai/.gzi) or plain.",
)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(),
    help="Output .h5/.hdf5 or .zarr (no suffix: .h5 is appended).",
)
@click.option(
    "-l", "--length", type=int, default=600, show_default=True, help="Region length in bases."
)
@click.option(
    "-m",
    "--min_overlap",
    "--min-overlap",
    "min_overlap",
    type=int,
    default=200,
    show_default=True,
    help="Overlap in bases that merges peaks.",
)
@click.option(
    "-e", "--exclusive", is_flag=True, help="Keep only regions with exactly one label (multiclass)."
)
@click.option(
    "--test_chr",
    "--test-chr",
    "test_chr",
    default="chr19,chr20",
    show_default=True,
    help="Comma-separated test chromosomes (--split chrom).",
)
@click.option(
    "--valid_chr",
    "--valid-chr",
    "valid_chr",
    default="chr21,chr22",
    show_default=True,
    help="Comma-separated validation chromosomes (--split chrom).",
)
@click.option(
    "--merge",
    type=click.Choice(["basset", "hull", "none"]),
    default="basset",
    show_default=True,
    help="Basset's greedy merge, bedtools-merge hulls, or none.",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["hdf5", "zarr", "basset"]),
    default=None,
    help="Default from the output's suffix; basset: seq_hdf5.py layout.",
)
@click.option("--split", type=click.Choice(["chrom", "random"]), default="chrom", show_default=True)
@click.option(
    "--valid-frac",
    "--valid_frac",
    "valid_frac",
    type=float,
    default=0.1,
    show_default=True,
    help="--split random: validation fraction.",
)
@click.option(
    "--test-frac",
    "--test_frac",
    "test_frac",
    type=float,
    default=0.1,
    show_default=True,
    help="--split random: test fraction.",
)
@click.option("--seed", type=int, default=1, show_default=True, help="--split random: seed.")
@device_option
@compression_option
@click.option("--dtype", type=click.Choice(ONE_HOT_DTYPES), default="uint8", show_default=True)
@click.option(
    "--alphabet",
    type=click.Choice(["ACGT", "ACTG"]),
    default="ACGT",
    show_default=True,
    help="One-hot column order (ACTG: the Rust tool's).",
)
@click.option(
    "--skip-unknown-chroms",
    "--skip_unknown_chroms",
    "skip_unknown_chroms",
    is_flag=True,
    help="Drop BED rows on chromosomes missing from the reference.",
)
@logging_options
def intervals(metadata: str, reference: str, output: str, **opts: Any) -> None:
    """Build an ML-ready dataset from BED peak files and a reference genome.

    Peaks are merged into fixed-length regions (--merge), labelled by the BED files they come
    from, split by chromosome (or at random), one-hot encoded, and written to HDF5 or Zarr:
    {training,validation,test}_{seqs,labels,coords,names}, label_names, chrom_names.
    """
    from ..intervals.job import IntervalOptions, build_interval_dataset

    setup_logging(opts["quiet"], opts["loglevel"])
    if output.endswith(("/", os.sep)):
        raise InputError(f"{output}: is a folder; give the output a file name such as out.h5")
    if not Path(output).suffix:
        output = f"{output}.zarr" if opts["output_format"] == "zarr" else f"{output}.h5"
    if opts["output_format"] != "basset":
        format_from_path(output, opts["output_format"])
    if not Path(output).resolve().parent.is_dir():
        raise InputError(f"{output}: the output folder does not exist; create it first")
    options = IntervalOptions(
        length=opts["length"],
        min_overlap=opts["min_overlap"],
        exclusive=opts["exclusive"],
        test_chroms=_chrom_list(opts["test_chr"]),
        valid_chroms=_chrom_list(opts["valid_chr"]),
        merge=opts["merge"],
        split=opts["split"],
        valid_frac=opts["valid_frac"],
        test_frac=opts["test_frac"],
        seed=opts["seed"],
        dtype=opts["dtype"],
        alphabet=opts["alphabet"],
        skip_unknown_chroms=opts["skip_unknown_chroms"],
        output_format=opts["output_format"],
        compression=opts["compression"],
    )
    argv = click.get_current_context().find_root().obj["argv"]
    summary = build_interval_dataset(
        metadata,
        reference,
        output,
        options,
        device=opts["device"],
        command=shlex.join([click.get_current_context().find_root().info_name or "", *argv]),
        progress=not opts["quiet"],
    )
    timings = ", ".join(f"{k} {v:.1f} s" for k, v in summary["timings"].items())
    log.info(
        "wrote %s: %s regions (%s)",
        output,
        ", ".join(f"{k} {v}" for k, v in summary["regions"].items()),
        timings,
    )


cli.add_command(intervals)

# Subcommands defined in their own modules (cli_<name>.py, options from cli_common):
from ..expression.bulk_job import bulk  # noqa: E402

cli.add_command(bulk)
from ..expression.singlecell.job import scrna  # noqa: E402

cli.add_command(scrna)
from ..variants.convert import vcf  # noqa: E402

cli.add_command(vcf)


class _Encoder:
    """Per-encoding array creation and chunked writing for ``encode``."""

    def __init__(self, batch: SequenceBatch, device: str, opts: dict[str, Any]) -> None:
        self.batch, self.device, self.opts = batch, device, opts
        self.encoding = opts["encoding"]
        self.resolved: dict[str, Any] = {}
        self._sparse_blocks: list[Any] = []
        if self.encoding == "onehot":
            self.width = opts["length"] if opts["length"] is not None else batch.max_length
            self.resolved["length"] = self.width
            # validate every option on an empty batch before any work
            one_hot([], self.width or 1, **self._onehot_kwargs())
        elif self.encoding == "tokens":
            if opts["max_len"] is None:
                raise InputError("--encoding tokens needs --max-len (tokens per row)")
            self.scheme = opts["scheme"] or "spec"
            tokenize([], opts["max_len"], self.scheme, device="cpu")
            self.width = opts["max_len"]
        elif self.encoding == "kmer-tokens":
            self.scheme = opts["scheme"] or "plain"
            self.width = opts["max_len"]
            if self.width is None:
                counts = kmer_token_counts(
                    batch, opts["k"], opts["stride"], self.scheme, device=device
                )
                self.width = max(int(counts.max()) if len(counts) else 0, 1)
            kmer_tokenize([], opts["k"], opts["stride"], self.scheme, self.width, device="cpu")
            self.resolved["max_len"] = self.width
        else:
            self.names = kmer_names(opts["k"], opts["canonical"])
            self.sparse = opts["sparse"] if opts["sparse"] is not None else opts["k"] > 6
            kmer_counts([], opts["k"], opts["canonical"], sparse=self.sparse, device="cpu")
        if self.encoding in ("tokens", "kmer-tokens"):
            self.resolved["scheme"] = self.scheme

    def _onehot_kwargs(self) -> dict[str, Any]:
        o = self.opts
        return {
            "alphabet": o["alphabet"],
            "dtype": o["dtype"],
            "n_value": o["n_value"],
            "layout": o["layout"],
            "pad": o["pad"],
            "device": self.device,
        }

    def create(self, out: ArrayWriter) -> None:
        n = len(self.batch)
        if self.encoding == "onehot":
            shape = (n, 4, self.width) if self.opts["layout"] == "NCL" else (n, self.width, 4)
            self.targets = [out.create("onehot", shape, self.opts["dtype"])]
        elif self.encoding in ("tokens", "kmer-tokens"):
            self.targets = [
                out.create("input_ids", (n, self.width), np.int32),
                out.create("attention_mask", (n, self.width), np.uint8),
            ]
        elif not self.sparse:
            self.targets = [out.create("kmer_counts", (n, len(self.names)), np.int32)]

    def write_rows(self, out: ArrayWriter, chunk: SequenceBatch, start: int) -> None:
        o = self.opts
        if self.encoding == "onehot":
            results = [one_hot(chunk, self.width, **self._onehot_kwargs())]
        elif self.encoding == "tokens":
            results = list(tokenize(chunk, self.width, self.scheme, device=self.device))
        elif self.encoding == "kmer-tokens":
            results = list(
                kmer_tokenize(
                    chunk, o["k"], o["stride"], self.scheme, self.width, device=self.device
                )
            )
        else:
            counts = to_numpy(
                kmer_counts(chunk, o["k"], o["canonical"], sparse=self.sparse, device=self.device)
            )
            if self.sparse:
                self._sparse_blocks.append(counts)
                return
            results = [counts]
        for target, result in zip(self.targets, results, strict=True):
            target[start : start + len(chunk)] = to_numpy(result)

    def finish(self, out: ArrayWriter) -> None:
        if self.encoding != "kmer-counts":
            return
        out.write("kmer_names", self.names)
        if self.sparse:
            import scipy.sparse

            n_columns = len(self.names)
            matrix = (
                scipy.sparse.vstack(self._sparse_blocks, format="csr")
                if self._sparse_blocks
                else scipy.sparse.csr_matrix((0, n_columns), dtype=np.int32)
            )
            for name in ("data", "indices", "indptr"):
                out.write(f"kmer_counts_{name}", getattr(matrix, name))
            out.attrs(
                {"kmer_counts_format": "csr", "kmer_counts_shape": [len(self.batch), n_columns]}
            )


def main(
    argv: list[str] | None = None, command: click.Command = cli, prog_name: str = "gpu-genomics"
) -> None:
    """Entry point of the ``gpu-genomics`` console script."""
    try:
        args = list(sys.argv[1:] if argv is None else argv)
        command.main(args=args, prog_name=prog_name, standalone_mode=False, obj={"argv": args})
    except GpuGenomicsError as exc:
        click.echo(f"gpu-genomics: error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("gpu-genomics: interrupted; no output was written", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("gpu-genomics: interrupted; no output was written", err=True)
        sys.exit(130)
    except OSError as exc:
        click.echo(f"gpu-genomics: error: {exc}", err=True)
        sys.exit(1)


def genomic_interval_pipeline_main(argv: list[str] | None = None) -> None:
    """``genomic_interval_pipeline``: the ``intervals`` command under the Rust tool's name."""
    main(argv, command=intervals, prog_name="genomic_interval_pipeline")
