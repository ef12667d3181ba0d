"""``gpu-genomics bulk`` as a command line: its options reach
:func:`gpu_genomics.preprocess_bulk_file` and write what the library writes for them; mistakes
are one line naming the flags, exit 2, and leave no output; the summary line.

What the job computes is tested through the library in ``test_bulk_job.py``."""

from __future__ import annotations

import shlex

import numpy as np
import pandas as pd
import pytest
from test_bulk_job import BAD_INPUTS, EXAMPLE, read, spec_recipe
from test_cli import error_of, job_module, record_job, run, same_arrays, without_run_details

import gpu_genomics as gg

DEFAULTS = {
    "output_format": None,
    "samples_by_genes": False,
    "already_log": False,
    "min_mean_log": None,
    "apply_scaler_path": None,
    "save_scaler_path": None,
    "zscore": True,
    "device": "cpu",
    "compression": None,
    "progress": False,
}


def bulk(*args) -> None:
    run("bulk", *args, "--device", "cpu", "--quiet")


def test_options_map_to_the_job(monkeypatch, tmp_path):
    """Every option, not at its default: the job gets the parameters, and the output (and the
    scaler file) equal the library's for them."""
    table = pd.read_csv(EXAMPLE, sep="\t", index_col=0)
    path = tmp_path / "log_samples.csv"
    np.log2(table + 0.01).T.to_csv(path)
    calls = record_job(monkeypatch, job_module("bulk"), "preprocess_bulk_file")
    flags = ["--format", "zarr", "--samples-by-genes", "--already-log", "--min-mean-log",
             "2.5", "--save-scaler", tmp_path / "cli.h5", "--no-zscore", "--compression",
             "gzip"]  # fmt: skip
    args = ["bulk", path, "-o", tmp_path / "cli.out", *flags, "--device", "cpu", "--quiet"]
    run(*args)
    parameters = {
        "output_format": "zarr",
        "samples_by_genes": True,
        "already_log": True,
        "min_mean_log": 2.5,
        "save_scaler_path": str(tmp_path / "cli.h5"),
        "zscore": False,
        "compression": "gzip",
    }
    assert calls == [
        {
            "paths": [str(path), str(tmp_path / "cli.out")],
            **DEFAULTS,
            **parameters,
            "command": shlex.join(map(str, ["gpu-genomics", *args])),
        }
    ]
    gg.preprocess_bulk_file(path, tmp_path / "lib.out", device="cpu",
                            **parameters | {"save_scaler_path": tmp_path / "lib.h5"})  # fmt: skip
    cli_arrays, cli_attrs = read(tmp_path / "cli.out")
    lib_arrays, lib_attrs = read(tmp_path / "lib.out")
    same_arrays(cli_arrays, lib_arrays)
    cli_attrs, lib_attrs = without_run_details(cli_attrs), without_run_details(lib_attrs)
    assert cli_attrs.pop("parameters") | {"save_scaler_path": None} == (
        lib_attrs.pop("parameters") | {"save_scaler_path": None}
    )
    assert cli_attrs == lib_attrs
    same_arrays(read(tmp_path / "cli.h5")[0], read(tmp_path / "lib.h5")[0])
    # --apply-scaler, --zscore
    run("bulk", path, "-o", tmp_path / "a.h5", "--apply-scaler", tmp_path / "cli.h5",
        "--samples-by-genes", "--already-log", "--zscore", "--quiet")  # fmt: skip
    assert calls[-1]["apply_scaler_path"] == str(tmp_path / "cli.h5")
    assert calls[-1]["zscore"] is True and calls[-1]["min_mean_log"] is None
    assert calls[-1]["device"] is None
    applied, attrs = read(tmp_path / "a.h5")
    assert not attrs["scaler_fitted"] and applied["gene_id"] == cli_arrays["gene_id"]


def test_summary_line(tmp_path, capsys):
    run("bulk", EXAMPLE, "-o", tmp_path / "o.h5", "--device", "cpu")
    err = capsys.readouterr().err
    keep = spec_recipe(EXAMPLE)[2]
    line = next(line for line in err.splitlines() if line.startswith("gpu-genomics: bulk: "))
    assert f"bulk: 12 samples, {keep.sum()} of 300 genes kept (mean log expression > 1.0)" in line
    assert f"wrote {tmp_path / 'o.h5'} in " in line


def test_scaler_problems_name_the_flags(tmp_path, capsys):
    path = tmp_path / "x.tsv"
    path.write_text("gene\tS1\tS2\nG1\t10\t20\nG2\t30\t40\n")
    scaler = tmp_path / "s.json"
    bulk(path, "-o", tmp_path / "fit.h5", "--save-scaler", scaler)
    other = tmp_path / "y.tsv"
    other.write_text("gene\tS1\nG2\t1\nG3\t2\n")
    err = error_of(capsys, "bulk", other, "--apply-scaler", scaler, "-o", tmp_path / "y.h5")
    assert f"{other}: 1 of the 2 genes of the scaler from {scaler} are missing" in err
    assert "'G1'" in err
    args = ["bulk", path, "--apply-scaler", scaler, "--min-mean-log", 2, "-o", tmp_path / "z.h5"]
    err = error_of(capsys, *args, "--quiet")
    assert err == (
        f"gpu-genomics: error: --min-mean-log 2.0 has no effect with --apply-scaler '{scaler}' "
        "(the scaler's genes are kept); drop one of them"
    )
    err = error_of(
        capsys, "bulk", path, "--save-scaler", tmp_path / "z.h5", "-o", tmp_path / "z.h5"
    )
    assert f"--save-scaler '{tmp_path / 'z.h5'}' must differ from the output" in err
    err = error_of(capsys, "bulk", path, "--save-scaler", tmp_path / "s.csv", "-o", "z.h5")
    assert "must end in .json, .h5 or .hdf5" in err
    err = error_of(capsys, "bulk", path, "--apply-scaler", tmp_path / "none.json", "-o", "z.h5")
    assert "no such scaler file" in err
    err = error_of(capsys, "bulk", path, "-o", tmp_path / "out.csv")
    assert "cannot tell the output format" in err and "--format 'hdf5'" in err
    assert "output_format" not in err
    assert not (tmp_path / "y.h5").exists() and not (tmp_path / "z.h5").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit.h5", "s.json", "x.tsv", "y.tsv"]


@pytest.mark.parametrize("text,expected", [BAD_INPUTS[0], BAD_INPUTS[-1]])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, text, expected):
    import re

    path = tmp_path / "bad.tsv"
    path.write_text(text)
    err = error_of(capsys, "bulk", path, "-o", tmp_path / "out.zarr", "--save-scaler",
                   tmp_path / "s.h5", "--quiet")  # fmt: skip
    assert str(path) in err and re.search(expected, err), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tsv"]
