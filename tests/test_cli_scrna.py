"""``gpu-genomics scrna`` as a command line: its options (``none`` included) reach
:func:`~gpu_genomics.expression.singlecell.job.preprocess_file` and write what the library writes
for them; each step is logged; mistakes are one line naming the flags, exit 2, nothing written.

What the job computes is tested through the library in ``test_scrna_job.py``."""

from __future__ import annotations

import shlex

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
from sc_data import synthetic_counts
from test_cli import error_of, job_module, record_job, run
from test_scrna_job import RECIPE_DEFAULTS, STEPS, dense

from gpu_genomics.expression.singlecell.job import preprocess_file

DEFAULTS = {
    "transpose": False,
    **RECIPE_DEFAULTS,
    "rank_output": None,
    "model_version": 2,
    "n_tokens": None,
    "gene_medians": None,
    "token_dictionary": None,
    "gene_mapping": None,
    "special_tokens": None,
    "gene_key": None,
    "ties": "geneformer",
    "rank_attributes": (),
    "dataset_id": None,
    "dataset_name": None,
    "chunk_cells": None,
    "client": None,
    "device": "cpu",
    "progress": False,
}


@pytest.fixture(scope="module")
def counts_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("scrna") / "pbmc_like.h5ad"
    synthetic_counts().write_h5ad(path)
    return path


def test_options_map_to_the_job(monkeypatch, tmp_path, counts_file):
    """Every option, not at its default ('none' for a skipped bound): the job gets the
    parameters, and the outputs equal the library's for them."""
    calls = record_job(monkeypatch, job_module("scrna"), "preprocess_file")
    flags = ["--min-genes", "150", "--min-cells", "none", "--max-genes", "none",
             "--max-pct-mito", "50", "--mito-prefix", "MT-", "--target-sum", "none",
             "--n-top-genes", "100", "--hvg-flavor", "cell_ranger", "--keep-all-genes",
             "--max-value", "5", "--no-scale", "--bins", "31", "--bin-seed", "4",
             "--rank-encode", tmp_path / "cli.h5",
             "--model-version", "1", "--n-tokens", "64", "--special-tokens", "--ties", "stable",
             "--gene-key", "gene_ids", "--dataset-id",
             "d1", "--name", "Dataset one"]  # fmt: skip
    args = ["scrna", counts_file, "-o", tmp_path / "cli.h5ad", *flags, "--device", "cpu"]
    run(*args, "--quiet")
    parameters = {
        "min_genes": 150,
        "min_cells": None,
        "max_genes": None,
        "max_pct_mito": 50.0,
        "target_sum": None,
        "n_top_genes": 100,
        "hvg_flavor": "cell_ranger",
        "subset_hvg": False,
        "scale_max_value": 5.0,
        "scale_data": False,
        "value_bins": 31,
        "bin_seed": 4,
        "rank_output": str(tmp_path / "cli.h5"),
        "model_version": 1,
        "n_tokens": 64,
        "special_tokens": True,
        "ties": "stable",
        "gene_key": "gene_ids",
        "dataset_id": "d1",
        "dataset_name": "Dataset one",
    }
    assert calls == [
        {
            "paths": [str(counts_file), str(tmp_path / "cli.h5ad")],
            **DEFAULTS,
            **parameters,
            "command": shlex.join(map(str, ["gpu-genomics", *args, "--quiet"])),
        }
    ]
    library = parameters | {"rank_output": tmp_path / "lib.h5"}
    preprocess_file(counts_file, tmp_path / "lib.h5ad", device="cpu", **library)
    cli, lib = ad.read_h5ad(tmp_path / "cli.h5ad"), ad.read_h5ad(tmp_path / "lib.h5ad")
    assert list(cli.obs_names) == list(lib.obs_names)
    assert list(cli.var_names) == list(lib.var_names)
    np.testing.assert_array_equal(dense(cli.X), dense(lib.X))
    assert (cli.layers["X_binned"] != lib.layers["X_binned"]).nnz == 0
    assert cli.layers["X_binned"].max() <= 30
    assert cli.uns["dataset_card"] == lib.uns["dataset_card"]
    assert cli.uns["preprocess_recipe"] == lib.uns["preprocess_recipe"]
    assert cli.uns["dataset_card"]["name"] == "Dataset one"
    import h5py

    with h5py.File(tmp_path / "cli.h5") as a, h5py.File(tmp_path / "lib.h5") as b:
        for name in ("offsets", "token_ids", "vocab_id"):
            np.testing.assert_array_equal(a[name][...], b[name][...], err_msg=name)


def test_transpose_and_token_files_reach_the_job(monkeypatch, tmp_path):
    small = synthetic_counts(n_cells=60, n_genes=300, seed=2)
    small.to_df().T.to_csv(tmp_path / "genes.csv")
    (tmp_path / "medians.json").write_text("{}")
    calls = record_job(monkeypatch, job_module("scrna"), "preprocess_file")
    run("scrna", tmp_path / "genes.csv", "-o", tmp_path / "o.zarr", "--transpose",
        "--min-genes", "10", "--max-pct-mito", "none", "--max-genes", "none",
        "--n-top-genes", "50", "--gene-medians", tmp_path / "medians.json",
        "--token-dictionary", tmp_path / "tokens.json", "--quiet", "--device", "cpu")  # fmt: skip
    assert calls[0]["transpose"] is True
    assert calls[0]["gene_medians"] == str(tmp_path / "medians.json")
    assert calls[0]["token_dictionary"] == str(tmp_path / "tokens.json")
    assert calls[0]["max_pct_mito"] is None and calls[0]["max_genes"] is None
    assert ad.read_zarr(tmp_path / "o.zarr").n_vars == 50


def test_logs_cells_and_genes_after_each_step(tmp_path, counts_file, capsys):
    run("scrna", counts_file, "-o", tmp_path / "o.h5ad", "--device", "cpu")
    err = capsys.readouterr().err
    for step in STEPS:
        line = next(line for line in err.splitlines() if step in line)
        assert line.startswith("gpu-genomics: ")
        assert " cells " in line and " genes " in line and line.endswith(" s")
    run("scrna", counts_file, "-o", tmp_path / "o.h5ad", "--device", "cpu", "--quiet")
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--min-genes", "100000"], "filter_cells(--min-genes 100000) removed every cell"),
        (["--hvg-flavor", "seurat_v3", "--device", "gpu"], "--device 'gpu' was requested"),
        (["--rank-encode", "x.txt"], "--rank-encode 'x.txt' must end in"),
        (
            ["--rank-encode", "t.h5", "--rank-attribute", "cell_type"],
            "are written to .parquet and .dataset rank outputs only",
        ),
        (
            ["--rank-encode", "t.parquet", "--rank-attribute", "nope"],
            "--rank-attribute: 'nope' not in the input's obs",
        ),
        (
            ["--rank-encode", "t.parquet", "--rank-attribute", "nope", "--chunk-cells", "50"],
            "--rank-attribute: 'nope' not in the input's obs",
        ),
        (["--target-sum", "0"], "--target-sum 0.0 must be a number > 0"),
        (["--n-top-genes", "0"], "--n-top-genes 0 must be an integer >= 1"),
        (["--max-value", "-1"], "--max-value -1.0 must be a number > 0"),
    ],
)
def test_errors_are_one_line_naming_the_flags(tmp_path, counts_file, capsys, args, message):
    out = tmp_path / "out.h5ad"
    if "--device" not in args:
        args = [*args, "--device", "cpu"]
    err = error_of(capsys, "scrna", counts_file, "-o", out, "--quiet", *args)
    assert message in err, err
    names = ("min_genes", "rank_output", "target_sum", "n_top_genes", "max_value=", "rank_attr")
    for python_name in names:
        assert python_name not in err
    assert not out.exists() and not list(tmp_path.iterdir())


def test_a_bad_number_is_refused_by_the_parser(tmp_path, counts_file, capsys):
    with pytest.raises(SystemExit) as info:
        run("scrna", counts_file, "-o", tmp_path / "o.h5ad", "--device", "cpu", "--min-genes", "x")
    assert info.value.code == 2
    assert "'x' is not a int or 'none'" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_negative_counts_name_the_file_cell_and_gene(tmp_path, capsys):
    adata = synthetic_counts(n_cells=50, n_genes=300)
    values = adata.X.toarray()
    values[3, 40] = -2
    adata.X = sp.csr_matrix(values)
    adata.write_h5ad(tmp_path / "neg.h5ad")
    err = error_of(capsys, "scrna", tmp_path / "neg.h5ad", "-o", tmp_path / "o.h5ad",
                   "--device", "cpu")  # fmt: skip
    assert "neg.h5ad: the single-cell recipe needs non-negative finite values, but cell " in err
    assert "'cell3' (row 3), gene 'G40' (column 40) of X holds -2.0 (negative)" in err
    assert not (tmp_path / "o.h5ad").exists()


def test_bad_paths_are_one_line(tmp_path, counts_file, capsys):
    err = error_of(capsys, "scrna", counts_file, "-o", tmp_path / "out.csv", "--device", "cpu")
    assert "must end in .h5ad or .zarr" in err
    with pytest.raises(SystemExit) as info:  # fails first: no step runs
        run("scrna", counts_file, "-o", tmp_path / "o.h5ad", "--device", "cpu", "--rank-encode",
            tmp_path / "missing" / "t.parquet")  # fmt: skip
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "does not exist" in err.splitlines()[-1] and "filter_cells" not in err
    assert not list(tmp_path.iterdir())
