"""The command line itself, for every command: options reach the job's parameters, mistakes are
one ``gpu-genomics: error:`` line naming the flags (exit 2), ``--help`` lists the arrays, an
interrupted run exits 130 and leaves nothing, ``--quiet`` prints no progress, and outputs record
the command line. Also the ``encode`` and ``intervals`` (``genomic_interval_pipeline``) options.

What the jobs compute is tested through the library: ``test_encode_job.py``,
``test_intervals.py``, ``test_vcf_job.py``, ``test_bulk_job.py``, ``test_scrna_job.py``.
``run``, ``error_of``, ``record_job`` and ``same_arrays`` are shared with ``test_cli_*.py``."""

from __future__ import annotations

import gzip
import logging
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_encode_job import FASTA, as_str, read
from test_intervals import bad_setup_files

import gpu_genomics as gg
from gpu_genomics import cli
from gpu_genomics.cli import common
from gpu_genomics.device import gpu_status
from gpu_genomics.io.provenance import PROVENANCE_KEYS

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data"
TRICKY = Path(__file__).resolve().parent / "data" / "vcf" / "tricky.vcf"
BULK = DATA / "bulk" / "example_expression.tsv"
TENX = DATA / "scrna" / "filtered_feature_bc_matrix"
INTERRUPTED = "gpu-genomics: interrupted; no output was written"


# --- shared helpers ------------------------------------------------------------------------
def run(*args, main=cli.main) -> None:
    """Run the command line ``args``; the ``gpu_genomics`` logger is left as it was (a command
    points it at this test's stderr and stops it propagating to pytest's log capture)."""
    logger = logging.getLogger("gpu_genomics")
    saved = logger.handlers[:], logger.level, logger.propagate
    try:
        main([str(a) for a in args])
    finally:
        logger.handlers[:] = saved[0]
        logger.setLevel(saved[1])
        logger.propagate = saved[2]


def exit_status(*args, main=cli.main) -> int:
    """The exit status of the command line ``args`` (0 when it returns)."""
    try:
        run(*args, main=main)
    except SystemExit as exc:
        return exc.code
    return 0


def error_of(capsys, *args, main=cli.main) -> str:
    """Run a command that must fail: exit status 2, one ``gpu-genomics: error:`` line (the last
    line; the only one with ``--quiet``), no traceback. Returns that line."""
    with pytest.raises(SystemExit) as info:
        run(*args, main=main)
    assert info.value.code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert lines, "no error printed"
    errors = [line for line in lines if line.startswith("gpu-genomics: error: ")]
    assert errors == [lines[-1]], err
    assert "Traceback" not in err
    if "--quiet" in [str(a) for a in args]:
        assert lines == errors, err
    return lines[-1]


def record_job(monkeypatch, module, name: str) -> list[dict]:
    """Replace the job ``module.name`` (as the command module imported it) by a recorder that
    calls it; each call appends ``{"paths": [...], **keywords}``."""
    calls: list[dict] = []
    real = getattr(module, name)

    def recorder(*paths, **keywords):
        calls.append({"paths": [str(p) for p in paths], **keywords})
        return real(*paths, **keywords)

    monkeypatch.setattr(module, name, recorder)
    return calls


def same_arrays(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key, value in a.items():
        if getattr(value, "dtype", None) is not None and value.dtype.kind in "OSUT":
            assert as_str(value.ravel()) == as_str(b[key].ravel()), key
        else:
            np.testing.assert_array_equal(value, b[key], err_msg=key)


def without_run_details(attrs: dict) -> dict:
    """Attributes that do not change between two runs of the same job."""
    return {k: v for k, v in attrs.items() if k not in ("created", "command")}


def _fake_terminal(monkeypatch) -> None:
    """Make the captured stderr look like a terminal, so that tqdm draws its bars."""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)


# --- inputs for every command --------------------------------------------------------------
@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """A FASTA, and a writable copy of the intervals example (indexes are built beside it)."""
    folder = tmp_path_factory.mktemp("inputs")
    (folder / "seqs.fa.gz").write_bytes(gzip.compress(FASTA.encode()))
    for path in DATA.iterdir():
        if path.suffix in (".bed", ".gz", ".txt"):
            shutil.copy(path, folder / path.name)
    return folder


COMMANDS = ["encode", "intervals", "vcf", "bulk", "scrna"]


def command_line_of(command: str, inputs: Path, out: Path) -> tuple[list, Path]:
    """``(arguments, output)`` of a small CPU run of ``command`` writing into ``out``."""
    if command == "encode":
        output = out / "e.h5"
        return ["encode", inputs / "seqs.fa.gz", "-o", output, "--batch-size", "2"], output
    if command == "intervals":
        output = out / "i.h5"
        args = ["intervals", "-i", inputs / "metadata.txt", "-f", inputs / "reference.fa.gz"]
        return [*args, "-o", output, "--length", "300"], output
    if command == "vcf":
        output = out / "v.h5"
        return ["vcf", TRICKY, "-o", output, "--chunk-variants", "3"], output
    if command == "bulk":
        output = out / "b.h5"
        return ["bulk", BULK, "-o", output], output
    output = out / "s.h5ad"
    return ["scrna", TENX, "-o", output, "--n-top-genes", "200"], output


def recorded_command(output: Path) -> str:
    if output.suffix == ".h5ad":
        import anndata

        return anndata.read_h5ad(output).uns["provenance"]["command"]
    return read(output)[1]["command"]


def job_module(command: str):
    import importlib

    return importlib.import_module(f"gpu_genomics.cli.{command}")


JOBS = {
    "encode": "encode_file",
    "intervals": "build_interval_dataset",
    "vcf": "convert_vcf",
    "bulk": "preprocess_bulk_file",
    "scrna": "preprocess_file",
}
SPECS = {
    "encode": "gpu_genomics.sequence.encode:ENCODE_ARRAYS",
    "intervals": "gpu_genomics.intervals.layouts:INTERVAL_ARRAYS",
    "vcf": "gpu_genomics.variants.convert:VCF_ARRAYS",
    "bulk": "gpu_genomics.expression.bulk_job:BULK_ARRAYS",
    "scrna": "gpu_genomics.expression.singlecell.job:SCRNA_OUTPUT",
}


def spec_of(command: str):
    import importlib

    module, name = SPECS[command].split(":")
    return getattr(importlib.import_module(module), name)


# --- every command -------------------------------------------------------------------------
@pytest.mark.parametrize("command", COMMANDS)
def test_help_lists_the_arrays(capsys, command):
    assert exit_status(command, "--help") == 0
    text = " ".join(capsys.readouterr().out.split())
    spec = spec_of(command)
    assert " ".join(common.arrays_epilog(spec).split()) in text
    assert text.startswith(f"Usage: gpu-genomics {command} ")
    for option in ("--device", "--quiet", "--loglevel", "--help"):
        assert option in text


def test_help_of_genomic_interval_pipeline(capsys):
    from gpu_genomics.intervals.layouts import INTERVAL_ARRAYS

    assert exit_status("--help", main=cli.genomic_interval_pipeline_main) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert text.startswith("Usage: genomic_interval_pipeline ")
    assert " ".join(common.arrays_epilog(INTERVAL_ARRAYS).split()) in text


@pytest.mark.parametrize("command", COMMANDS)
def test_quiet_prints_nothing_and_the_command_line_is_recorded(
    capsys, monkeypatch, tmp_path, inputs, command
):
    args, output = command_line_of(command, inputs, tmp_path)
    args = [*args, "--device", "cpu", "--quiet"]
    calls = record_job(monkeypatch, job_module(command), JOBS[command])
    _fake_terminal(monkeypatch)
    run(*args)
    captured = capsys.readouterr()
    assert captured.err == ""
    assert calls[0]["progress"] is False
    assert calls[0]["command"] == shlex.join(["gpu-genomics", *map(str, args)])
    assert recorded_command(output) == calls[0]["command"]
    assert calls[0]["device"] == "cpu"
    assert captured.out == ""  # vcf prints its QC summary only without --quiet


PROGRESS_BARS = {"encode": "encode: 100%", "intervals": "sequences: 100%", "vcf": "vcf: 100%"}


@pytest.mark.parametrize("command", COMMANDS)
def test_progress_and_log_without_quiet(capsys, monkeypatch, tmp_path, inputs, command):
    args, _ = command_line_of(command, inputs, tmp_path)
    calls = record_job(monkeypatch, job_module(command), JOBS[command])
    _fake_terminal(monkeypatch)
    run(*args, "--device", "cpu")
    err = capsys.readouterr().err
    assert calls[0]["progress"] is True
    assert any(line.startswith("gpu-genomics: ") for line in err.splitlines()), err
    if command in PROGRESS_BARS:
        assert PROGRESS_BARS[command] in err, err
    run(*args, "--device", "cpu", "--loglevel", "warning")
    assert "gpu-genomics: " not in capsys.readouterr().err


def _interrupt(monkeypatch, command: str, tmp_path: Path) -> list:
    """Make ``command`` stop with Ctrl-C while it writes; returns the extra arguments that make
    it write a second file first (bulk's scaler, scrna's rank encoding)."""
    if command == "encode":
        from gpu_genomics.sequence.encode import _Encoder

        real = _Encoder.write_rows

        def write_rows(self, chunk, start):
            real(self, chunk, start)
            if start:
                raise KeyboardInterrupt

        monkeypatch.setattr(_Encoder, "write_rows", write_rows)
        return []
    if command == "intervals":
        from gpu_genomics.intervals import job

        real = job._write_sequences

        def write_sequences(*args, **kwargs):
            real(*args, **kwargs)
            raise KeyboardInterrupt

        monkeypatch.setattr(job, "_write_sequences", write_sequences)
        return []
    if command == "vcf":
        from gpu_genomics.variants import partitions

        real, real_all = partitions.write_rows, partitions.read_all_rows

        def write_rows(*args):  # a task has written its chunks (two passes)
            real(*args)
            raise KeyboardInterrupt

        def read_all_rows(*args, **kwargs):  # a batch parsed, its rows handed on (one pass)
            for batch in real_all(*args, **kwargs):
                yield batch
                raise KeyboardInterrupt

        monkeypatch.setattr(partitions, "write_rows", write_rows)
        monkeypatch.setattr(partitions, "read_all_rows", read_all_rows)
        return []
    if command == "bulk":
        from gpu_genomics.expression import bulk_job

        def to_numpy(values):
            raise KeyboardInterrupt

        monkeypatch.setattr(bulk_job, "to_numpy", to_numpy)
        return ["--save-scaler", tmp_path / "scaler.json"]
    import anndata

    real = anndata.AnnData.write_h5ad

    def write_h5ad(self, path, *args, **kwargs):
        real(self, path, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(anndata.AnnData, "write_h5ad", write_h5ad)
    return ["--rank-encode", tmp_path / "tokens.parquet"]


@pytest.mark.parametrize("command", COMMANDS)
def test_interrupted_run_exits_130_and_leaves_nothing(
    capsys, monkeypatch, tmp_path, inputs, command
):
    out = tmp_path / "out"
    out.mkdir()
    args, _ = command_line_of(command, inputs, out)
    extra = _interrupt(monkeypatch, command, out)
    with pytest.raises(SystemExit) as info:
        run(*args, *extra, "--device", "cpu", "--quiet")
    assert info.value.code == 130
    assert capsys.readouterr().err.strip() == INTERRUPTED
    assert list(out.iterdir()) == []


BAD_OPTION = {  # (extra arguments, what the line says, the Python name it must not use)
    "encode": (["--batch-size", "0"], "--batch-size 0 must be a positive integer", "batch_size"),
    "intervals": (["--valid-frac", "2"], "--valid-frac 2.0 must lie between 0 and 1", "_frac"),
    "vcf": (["--min-maf", "0.7"], "--min-maf 0.7 must lie between 0 and 0.5", "min_maf"),
    "bulk": (
        ["--min-mean-log", "2", "--apply-scaler", "s.json"],
        "--min-mean-log 2.0 has no effect with --apply-scaler 's.json'",
        "min_mean_log",
    ),
    "scrna": (["--n-top-genes", "0"], "--n-top-genes 0 must be an integer >= 1", "n_top_genes"),
}


@pytest.mark.parametrize("command", COMMANDS)
def test_a_bad_option_is_one_line_naming_the_flag(capsys, tmp_path, inputs, command):
    args, _ = command_line_of(command, inputs, tmp_path)
    extra, message, python_name = BAD_OPTION[command]
    line = error_of(capsys, *args, *extra, "--device", "cpu", "--quiet")
    assert message in line and python_name not in line, line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", COMMANDS)
def test_a_missing_input_is_one_line(capsys, tmp_path, command):
    out = tmp_path / ("o.h5ad" if command == "scrna" else "o.h5")
    if command == "intervals":
        args = ["intervals", "-i", tmp_path / "nope.txt", "-f", DATA / "reference.fa.gz"]
    else:
        args = [command, tmp_path / "nope.txt"]
    line = error_of(capsys, *args, "-o", out, "--device", "cpu")
    assert "nope.txt" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(gpu_status()[0], reason="a GPU is usable here")
@pytest.mark.parametrize("command", ["encode", "intervals", "vcf", "bulk"])
def test_device_gpu_without_gpu_names_the_flag(capsys, tmp_path, inputs, command):
    args, _ = command_line_of(command, inputs, tmp_path)
    line = error_of(capsys, *args, "--device", "gpu")
    assert "--device 'gpu' was requested but no GPU is usable" in line
    assert "device='gpu'" not in line and "use --device 'cpu'" in line
    assert list(tmp_path.iterdir()) == []


def test_os_errors_exit_1(capsys, monkeypatch, tmp_path, inputs):
    from gpu_genomics.sequence.encode import _Encoder

    def full(self, chunk, start):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_Encoder, "write_rows", full)
    with pytest.raises(SystemExit) as info:
        run("encode", inputs / "seqs.fa.gz", "-o", tmp_path / "o.h5", "--quiet")
    assert info.value.code == 1
    assert capsys.readouterr().err.strip() == (
        "gpu-genomics: error: [Errno 28] No space left on device"
    )
    assert list(tmp_path.iterdir()) == []


def test_cli_message_rewrites_parameters_as_flags():
    from gpu_genomics.cli.bulk import bulk
    from gpu_genomics.cli.intervals import intervals
    from gpu_genomics.cli.vcf import vcf

    assert common.cli_message("min_maf=0.7 must lie between 0 and 0.5", vcf) == (
        "--min-maf 0.7 must lie between 0 and 0.5"
    )
    assert common.cli_message("standardize=True and biallelic_only=True", vcf) == (
        "--standardize and --biallelic-only"
    )
    assert common.cli_message("needs `region` (see region='x', not xregion=1)", vcf) == (
        "needs --region (see --region 'x', not xregion=1)"
    )
    assert common.cli_message("both `test_chroms` and `valid_chroms`", intervals) == (
        "both --test-chr and --valid-chr"
    )
    assert common.cli_message("pass skip_unknown_chroms=True", intervals) == (
        "pass --skip-unknown-chroms"
    )
    assert common.cli_message("apply_scaler_path='/a b/s.json'; zscore", bulk) == (
        "--apply-scaler '/a b/s.json'; zscore"
    )
    assert common.cli_message("output_format='zarr'", bulk) == "--format 'zarr'"


def test_module_entry_point_and_info():
    help_text = subprocess.run(
        [sys.executable, "-m", "gpu_genomics", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in ("encode", "info", *COMMANDS):
        assert command in help_text
    info = subprocess.run(
        [sys.executable, "-m", "gpu_genomics", "info"], capture_output=True, text=True, check=True
    ).stdout
    assert "backend cpu" in info and "backend gpu" in info and "numpy" in info


def test_version(capsys):
    assert exit_status("--version") == 0
    assert capsys.readouterr().out.strip() == f"gpu-genomics, version {gg.__version__}"


# --- encode ------------------------------------------------------------------------------------
ENCODE_FLAGS = {  # every option of `encode`, not at its default, and the parameter it sets
    "onehot": (
        ["--length", "20", "--pad", "center", "--alphabet", "ACTG", "--dtype", "float16",
         "--n-value", "0.25", "--layout", "NCL", "--batch-size", "3", "--compression", "gzip",
         "--format", "hdf5"],
        {"length": 20, "pad": "center", "alphabet": "ACTG", "dtype": "float16", "n_value": 0.25,
         "layout": "NCL", "batch_size": 3, "compression": "gzip", "output_format": "hdf5"},
    ),
    "tokens": (
        ["--encoding", "tokens", "--max-len", "16", "--scheme", "hyenadna"],
        {"encoding": "tokens", "max_len": 16, "scheme": "hyenadna"},
    ),
    "kmer-tokens": (
        ["--encoding", "kmer-tokens", "-k", "3", "--stride", "2", "--scheme", "dnabert",
         "--uppercase"],
        {"encoding": "kmer-tokens", "k": 3, "stride": 2, "scheme": "dnabert", "uppercase": True},
    ),
    "kmer-counts": (
        ["--encoding", "kmer-counts", "--k", "4", "--canonical", "--sparse"],
        {"encoding": "kmer-counts", "k": 4, "canonical": True, "sparse": True},
    ),
}  # fmt: skip
ENCODE_DEFAULTS = {
    "encoding": "onehot",
    "length": None,
    "pad": "right",
    "alphabet": "ACGT",
    "dtype": "uint8",
    "n_value": 0.0,
    "layout": "NLC",
    "max_len": None,
    "scheme": None,
    "k": 6,
    "stride": 1,
    "canonical": False,
    "sparse": None,
    "uppercase": False,
    "batch_size": 8192,
    "output_format": None,
    "compression": None,
    "device": "cpu",
    "client": None,  # no --workers / --scheduler: in this process
    "progress": False,
}


@pytest.mark.parametrize("encoding", list(ENCODE_FLAGS))
def test_encode_options_map_to_the_job(monkeypatch, tmp_path, inputs, encoding):
    """Every flag reaches its parameter, and the output is the library's for them."""
    fasta = inputs / "seqs.fa.gz"
    flags, parameters = ENCODE_FLAGS[encoding]
    calls = record_job(monkeypatch, job_module("encode"), "encode_file")
    args = ["encode", fasta, "-o", tmp_path / "cli.h5", *flags, "--device", "cpu", "--quiet"]
    run(*args)
    expected = {**ENCODE_DEFAULTS, **parameters}
    assert calls == [
        {
            "paths": [str(fasta), str(tmp_path / "cli.h5")],
            **expected,
            "command": shlex.join(["gpu-genomics", *map(str, args)]),
        }
    ]
    library = {k: v for k, v in expected.items() if k != "progress"}
    gg.encode_file(fasta, tmp_path / "lib.h5", **library)
    cli_arrays, cli_attrs = read(tmp_path / "cli.h5")
    lib_arrays, lib_attrs = read(tmp_path / "lib.h5")
    same_arrays(cli_arrays, lib_arrays)
    assert without_run_details(cli_attrs) == without_run_details(lib_attrs)


def test_encode_sparse_dense_and_defaults(monkeypatch, tmp_path, inputs):
    calls = record_job(monkeypatch, job_module("encode"), "encode_file")
    fasta = inputs / "seqs.fa.gz"
    run("encode", fasta, "-o", tmp_path / "a.zarr", "--encoding", "kmer-counts", "--dense")
    run("encode", fasta, "-o", tmp_path / "b.h5", "--device", "auto", "--loglevel", "ERROR")
    assert calls[0]["sparse"] is False and calls[0]["device"] is None
    assert calls[1]["device"] == "auto" and calls[1]["progress"] is True
    assert {k: calls[1][k] for k in ENCODE_DEFAULTS if k not in ("device", "progress")} == {
        k: v for k, v in ENCODE_DEFAULTS.items() if k not in ("device", "progress")
    }
    arrays, attrs = read(tmp_path / "b.h5")
    assert attrs["device"] == ("gpu" if gpu_status()[0] else "cpu")
    assert arrays["onehot"].shape == (4, 31, 4)


@pytest.mark.parametrize(
    ("args", "message", "python_name"),
    [
        (["--encoding", "tokens"], "--encoding 'tokens' needs --max-len", "max_len"),
        (["--encoding", "kmer-counts", "-k", "0"], "-k 0 must be a positive integer", "k="),
        (["--encoding", "tokens", "--max-len", "0"], "--max-len 0 must be a positive", "max_len"),
        (
            ["--encoding", "kmer-tokens", "--scheme", "bpe"],
            "--scheme 'bpe' is not one of",
            "scheme=",
        ),
        (
            ["--encoding", "kmer-tokens", "--stride", "0"],
            "--stride 0 must be a positive",
            "stride=",
        ),
        (["--alphabet", "ACGU"], "--alphabet 'ACGU' must be a permutation", "alphabet="),
        (["--batch-size", "0"], "--batch-size 0 must be a positive integer", "batch_size"),
        (["--length", "0"], "--length 0 must be a positive integer", "length="),
    ],
)
def test_encode_bad_options_name_the_flags(  # noqa: PLR0917 (pytest fixtures and parameters)
    capsys, tmp_path, inputs, args, message, python_name
):
    out = tmp_path / "o.h5"
    line = error_of(capsys, "encode", inputs / "seqs.fa.gz", "-o", out, "--device", "cpu", *args)
    assert message in line and python_name not in line, line
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_encode_input_errors_are_one_line(capsys, tmp_path):
    bad = tmp_path / "bad.fa"
    bad.write_text(">ok\nACGT\n>protein\nMKVLAAGE\n")
    line = error_of(capsys, "encode", bad, "-o", tmp_path / "o.h5", "--device", "cpu")
    assert "bad.fa" in line and "'protein'" in line and "not a DNA letter" in line
    line = error_of(capsys, "encode", bad, "-o", tmp_path / "o.npy", "--quiet")
    assert "o.npy" in line and ".zarr" in line and "--format 'hdf5'" in line
    assert "output_format" not in line
    empty = tmp_path / "empty.fa"
    empty.write_text(">a\n")
    line = error_of(capsys, "encode", empty, "-o", tmp_path / "o.h5", "--quiet")
    assert "pass --length (bases per row)" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.fa", "empty.fa"]


def test_encode_click_rejects_a_bad_choice(capsys, tmp_path, inputs):
    with pytest.raises(SystemExit) as info:
        run("encode", inputs / "seqs.fa.gz", "-o", tmp_path / "o.h5", "--encoding", "bpe")
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Invalid value for '--encoding'" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_encode_paths_with_spaces_are_quoted_in_the_command(tmp_path, inputs):
    folder = tmp_path / "my data"
    folder.mkdir()
    shutil.copy(inputs / "seqs.fa.gz", folder / "s 1.fa.gz")
    run("encode", folder / "s 1.fa.gz", "-o", folder / "o 1.h5", "--quiet", "--device", "cpu")
    command = read(folder / "o 1.h5")[1]["command"]
    assert shlex.split(command) == [
        "gpu-genomics",
        "encode",
        str(folder / "s 1.fa.gz"),
        "-o",
        str(folder / "o 1.h5"),
        "--quiet",
        "--device",
        "cpu",
    ]


# --- intervals / genomic_interval_pipeline -------------------------------------------------
INTERVAL_DEFAULTS = {
    "length": 600,
    "min_overlap": 200,
    "exclusive": False,
    "test_chroms": ("chr19", "chr20"),
    "valid_chroms": ("chr21", "chr22"),
    "merge": "basset",
    "output_format": None,
    "split": "chrom",
    "valid_frac": 0.1,
    "test_frac": 0.1,
    "seed": 1,
    "device": "cpu",
    "compression": None,
    "dtype": "uint8",
    "alphabet": "ACGT",
    "skip_unknown_chroms": False,
    "center": "midpoint",
    "universe": None,
    "label_overlap": 0.5,
    "label_overlap_of": "region",
    "flank": 0,
    "blacklist": None,
    "blacklist_overlap": 1.0,
    "max_n_frac": None,
    "min_distance_to_end": 0,
    "negatives": 0,
    "negatives_gc_bins": 20,
    "bigwig": None,
    "target": "mean",
    "bin_size": None,
    "bigwig_missing": "zero",
    "client": None,  # no --workers / --scheduler: in this process
    "progress": False,
}


def test_intervals_options_map_to_the_job(monkeypatch, tmp_path, inputs):
    calls = record_job(monkeypatch, job_module("intervals"), "build_interval_dataset")
    meta, ref = inputs / "metadata.txt", inputs / "reference.fa.gz"
    flags = ["-l", "300", "-m", "100", "-e", "--test-chr", "chr1, chr3", "--valid-chr", "chr2",
             "--merge", "hull", "--format", "zarr", "--split", "random", "--valid-frac", "0.2",
             "--test-frac", "0.3", "--seed", "5", "--compression", "gzip", "--dtype", "float16",
             "--alphabet", "ACTG", "--skip-unknown-chroms"]  # fmt: skip
    args = ["intervals", "-i", meta, "-f", ref, "-o", tmp_path / "cli", *flags]
    run(*args, "--device", "cpu", "--quiet")
    parameters = {
        "length": 300,
        "min_overlap": 100,
        "exclusive": True,
        "test_chroms": ("chr1", "chr3"),
        "valid_chroms": ("chr2",),
        "merge": "hull",
        "output_format": "zarr",
        "split": "random",
        "valid_frac": 0.2,
        "test_frac": 0.3,
        "seed": 5,
        "compression": "gzip",
        "dtype": "float16",
        "alphabet": "ACTG",
        "skip_unknown_chroms": True,
    }
    command = shlex.join(["gpu-genomics", *map(str, args), "--device", "cpu", "--quiet"])
    assert calls == [
        {
            "paths": [str(meta), str(ref), str(tmp_path / "cli")],
            **INTERVAL_DEFAULTS,
            **parameters,
            "command": command,
        }
    ]
    gg.build_interval_dataset(meta, ref, tmp_path / "lib", device="cpu", **parameters)
    cli_arrays, cli_attrs = read(tmp_path / "cli.zarr")
    lib_arrays, lib_attrs = read(tmp_path / "lib.zarr")
    same_arrays(cli_arrays, lib_arrays)
    cli_attrs, lib_attrs = without_run_details(cli_attrs), without_run_details(lib_attrs)
    assert cli_attrs.pop("dataset_card")["n_regions"] == lib_attrs.pop("dataset_card")["n_regions"]
    assert cli_attrs == lib_attrs


def test_rust_tool_spelling_and_suffix(monkeypatch, tmp_path, inputs):
    """genomic_interval_pipeline's own flags (underscores, --fastq) and its output naming."""
    calls = record_job(monkeypatch, job_module("intervals"), "build_interval_dataset")
    args = [
        "-i",
        inputs / "metadata.txt",
        "--fastq",
        inputs / "reference.fa.gz",
        "-o",
        tmp_path / "small_dataset",
        "--min_overlap",
        "150",
        "-l",
        "500",
        "--test_chr",
        "chr1",
        "--valid_chr",
        "chr2",
        "--valid_frac",
        "0.2",
        "--test_frac",
        "0.1",
        "--skip_unknown_chroms",
        "--loglevel",
        "warning",
    ]
    run(*args, main=cli.genomic_interval_pipeline_main)
    arrays, attrs = read(tmp_path / "small_dataset.h5")
    assert arrays["training_seqs"].shape[1:] == (500, 4)
    assert {n.split(":")[0] for n in as_str(arrays["test_names"])} == {"chr1"}
    assert {n.split(":")[0] for n in as_str(arrays["validation_names"])} == {"chr2"}
    assert attrs["parameters"]["min_overlap"] == 150
    assert attrs["command"] == shlex.join(["genomic_interval_pipeline", *map(str, args)])
    call = calls[0]
    assert (call["min_overlap"], call["length"], call["valid_frac"]) == (150, 500, 0.2)
    assert call["test_chroms"] == ("chr1",) and call["valid_chroms"] == ("chr2",)
    assert call["skip_unknown_chroms"] is True and call["progress"] is True
    for spelling in (["--fasta"], ["--reference"], ["-f"]):
        run("intervals", "-i", inputs / "metadata.txt", *spelling, inputs / "reference.fa.gz",
            "-o", tmp_path / "x.h5", "--quiet", "--device", "cpu", "--length", "200")  # fmt: skip
        assert calls[-1]["paths"][1] == str(inputs / "reference.fa.gz")


def test_console_script_help_lists_the_rust_flags():
    out = subprocess.run(
        [sys.executable, "-m", "gpu_genomics", "intervals", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for flag in ("--min_overlap", "--test_chr", "--valid_chr", "--fastq", "--merge", "--split"):
        assert flag in out


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing_bed", "line 2: BED file"),
        ("missing_reference", "reference FASTA not found"),
        ("bad_metadata", "line 1: expected 'BED_PATH'"),
        ("missing_metadata", "cannot read the metadata file"),
        ("output_folder", "/no does not exist"),
        ("output_is_a_folder", "is a folder"),
        ("plain_gzip_reference", "recompress it with bgzip"),
        ("both_splits", "chromosomes in both --test-chr and --valid-chr: chr2"),
        ("fractions", "--valid-frac 0.6 plus --test-frac 0.6 must not exceed 1"),
        ("basset_zarr", "--format 'basset' writes HDF5"),
        ("unknown_chroms", "pass --skip-unknown-chroms to drop them"),
        ("length", "--length 0 must be a positive integer"),
        ("min_overlap", "--min-overlap -1 must be 0 or more"),
    ],
)
def test_intervals_errors_are_one_line_naming_the_flags(capsys, inputs, tmp_path, case, message):
    meta, ref, out = bad_setup_files(case, inputs, tmp_path)
    extra: list = []
    if case == "both_splits":
        extra = ["--test_chr", "chr1,chr2", "--valid_chr", "chr2"]
    elif case == "fractions":
        extra = ["--valid-frac", "0.6", "--test-frac", "0.6"]
    elif case == "basset_zarr":
        extra, out = ["--format", "basset"], tmp_path / "o.zarr"
    elif case == "length":
        extra = ["--length", "0"]
    elif case == "min_overlap":
        extra = ["-m", "-1"]
    before = sorted(tmp_path.iterdir())
    line = error_of(capsys, "intervals", "-i", meta, "-f", ref, "-o", out, "--device", "cpu",
                    *extra)  # fmt: skip
    assert message in line, line
    for python_name in ("test_chroms", "valid_frac", "output_format", "skip_unknown", "=True"):
        assert python_name not in line
    assert sorted(tmp_path.iterdir()) == before


def test_intervals_warnings_reach_stderr(capsys, inputs, tmp_path):
    (tmp_path / "bad.bed").write_text("chr1\t1000\t1400\nchrZ\t1\t400\n")
    (tmp_path / "m.txt").write_text("bad.bed\n")
    run("intervals", "-i", tmp_path / "m.txt", "-f", inputs / "reference.fa.gz", "-o",
        tmp_path / "o.h5", "--skip-unknown-chroms", "--quiet", "--device", "cpu")  # fmt: skip
    err = capsys.readouterr().err
    assert err.startswith("gpu-genomics: ") and "chrZ" in err and "dropped 1 rows" in err


def test_intervals_prints_what_it_wrote(capsys, inputs, tmp_path):
    run("intervals", "-i", inputs / "metadata.txt", "-f", inputs / "reference.fa.gz", "-o",
        tmp_path / "o", "--device", "cpu", "--length", "300")  # fmt: skip
    err = capsys.readouterr().err
    summary_line = next(line for line in err.splitlines() if line.startswith("gpu-genomics: wrote"))
    assert f"wrote {tmp_path / 'o.h5'}: training " in summary_line and "sequences_and_write" in (
        summary_line
    )


def test_provenance_keys_of_a_cli_output(tmp_path, inputs):
    run("encode", inputs / "seqs.fa.gz", "-o", tmp_path / "o.h5", "--quiet", "--device", "cpu")
    _, attrs = read(tmp_path / "o.h5")
    assert set(PROVENANCE_KEYS) <= set(attrs) and attrs["tool"] == "gpu-genomics encode"
    assert attrs["device"] == "cpu"
