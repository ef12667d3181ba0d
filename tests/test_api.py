"""The public API's shape: scanpy-style signatures, one version, errors that name parameters."""

from __future__ import annotations

import inspect
import re
import tomllib
from pathlib import Path

import click
import pytest

import gpu_genomics as gg
from gpu_genomics.cli import cli
from gpu_genomics.cli.common import cli_message
from gpu_genomics.errors import InputError, check_choice, check_range, invalid, positive_int

REPO = Path(__file__).resolve().parent.parent

#: How many leading parameters a public function takes by position (default 1: the data);
#: the rest are keyword-only.
POSITIONAL = {
    "one_hot": 2,  # seqs, length
    "tokenize": 2,  # seqs, max_len
    "kmer_tokenize": 2,  # seqs, k
    "kmer_token_counts": 2,  # seqs, k
    "kmer_counts": 2,  # seqs, k
    "encode_file": 2,  # input, output
    "convert_vcf": 3,  # input, output, options
    "build_interval_dataset": 4,  # metadata, reference, output, options
    "preprocess_bulk_file": 2,  # input, output
    "apply_scaler": 2,  # values, scaler
    "save_scaler": 2,  # scaler, path
    "filter_low_expression": 2,  # values, threshold
    "fit_scaler": 2,  # values, gene names
    "read_vcf": 1,
    "variant_windows": 4,  # vcf, reference, output, options
    "haplotype_windows": 5,  # vcf, reference, regions, output, options
}


def public_functions():
    for name in gg.__all__:
        value = getattr(gg, name)
        if inspect.isfunction(value):
            yield name, value


@pytest.mark.parametrize(("name", "function"), list(public_functions()))
def test_options_are_keyword_only_and_no_boolean_is_positional(name, function):
    parameters = list(inspect.signature(function).parameters.values())
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    assert len(positional) <= POSITIONAL.get(name, 1), [p.name for p in positional]
    for p in positional:
        assert "bool" not in str(p.annotation), (name, p.name)


def test_one_version_source():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", gg.__version__)
    from gpu_genomics.io.provenance import version

    assert version() == gg.__version__


def test_checks_name_the_parameter():
    with pytest.raises(InputError, match=r"^min_maf=0\.7 must lie between 0 and 0\.5$"):
        check_range("min_maf", 0.7, 0.0, 0.5)
    with pytest.raises(InputError, match=r"^merge='x' is not one of basset, hull$"):
        check_choice("merge", "x", ("basset", "hull"))
    for bad in (0, -1, 1.5, True, "3"):
        with pytest.raises(InputError, match=r"^k=.* must be a positive integer$"):
            positive_int("k", bad)
    assert positive_int("k", 3) == 3 and check_range("f", "0.5", 0, 1) == 0.5
    assert str(invalid("x", None, "is required")) == "x=None is required"


def test_the_cli_spells_parameters_as_its_flags():
    vcf = cli.commands["vcf"]
    assert cli_message("min_maf=0.7 must lie between 0 and 0.5", vcf) == (
        "--min-maf 0.7 must lie between 0 and 0.5"
    )
    assert cli_message("multiallelic='x' is not one of nonref, split", vcf) == (
        "--multiallelic 'x' is not one of nonref, split"
    )
    # an on/off flag set to True is the flag alone; a name without a value in backquotes
    assert cli_message("pass biallelic_only=True or `standardize`", vcf) == (
        "pass --biallelic-only or --standardize"
    )
    # only whole parameter names of this command; prefixes and other words are left alone
    assert cli_message("xmin_maf=1, region_x=2, path/min_maf=3", vcf) == (
        "xmin_maf=1, region_x=2, path/min_maf=3"
    )
    bulk = cli.commands["bulk"]  # --zscore/--no-zscore: False is the off spelling
    assert cli_message("zscore=False with zscore=True", bulk) == "--no-zscore with --zscore"
    encode = cli.commands["encode"]
    assert (
        cli_message("k=0 must be a positive integer", encode) == "-k 0 must be a positive integer"
    )
    intervals = cli.commands["intervals"]
    assert cli_message("`test_chroms` and min_overlap=-1", intervals) == (
        "--test-chr and --min-overlap -1"
    )


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_every_command_names_its_options_as_the_job_does(name):
    """The options of a command are the job's keyword parameters (so errors map back)."""
    from gpu_genomics.cli.bulk import preprocess_bulk_file
    from gpu_genomics.cli.encode import encode_file
    from gpu_genomics.cli.intervals import build_interval_dataset
    from gpu_genomics.cli.scrna import preprocess_file
    from gpu_genomics.cli.vcf import convert_vcf
    from gpu_genomics.variants.haplotypes import HaplotypeOptions
    from gpu_genomics.variants.windows import Encoding, WindowOptions

    windows = {  # one command, two jobs: the windows, and the haplotypes (--haplotypes)
        **WindowOptions.__dataclass_fields__,
        **Encoding.__dataclass_fields__,
        **HaplotypeOptions.__dataclass_fields__,
        **inspect.signature(gg.haplotype_windows).parameters,
    }
    jobs = {
        "variant-windows": (gg.variant_windows, windows),
        "encode": (encode_file, {}),
        "intervals": (build_interval_dataset, gg.IntervalOptions.__dataclass_fields__),
        "vcf": (convert_vcf, gg.VcfOptions.__dataclass_fields__),
        "bulk": (preprocess_bulk_file, {}),
        "scrna": (preprocess_file, {}),
    }
    if name not in jobs:
        return
    job, fields = jobs[name]
    accepted = set(inspect.signature(job).parameters) | set(fields)
    command: click.Command = cli.commands[name]
    options = {p.name for p in command.params if isinstance(p, click.Option)}
    options -= {"quiet", "loglevel", "help", "output"}  # output: passed by position
    if {"workers", "scheduler"} & options:  # made into the client the job takes
        assert "client" in accepted
        options -= {"workers", "scheduler"}
    assert options <= accepted, options - accepted


def test_importing_the_package_and_the_command_line_stays_light():
    """pandas, scanpy, anndata, zarr, h5py and dask load only on the path that needs them, so
    `import gpu_genomics` and `gpu-genomics --help` do not pay for them."""
    import subprocess
    import sys

    heavy = ["pandas", "scanpy", "anndata", "zarr", "h5py", "distributed", "cupy"]
    code = (
        "import sys, gpu_genomics, gpu_genomics.cli; "
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
