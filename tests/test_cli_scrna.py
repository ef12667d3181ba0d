"""`gpu-genomics scrna`: the recipe end to end, its outputs and its one-line errors."""

from __future__ import annotations

import subprocess
import sys

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
from sc_data import synthetic_counts
from test_singlecell import spec_recipe

from gpu_genomics import cli


def run(*args) -> None:
    cli.main([str(a) for a in args])


@pytest.fixture(scope="module")
def counts_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("scrna") / "pbmc_like.h5ad"
    synthetic_counts().write_h5ad(path)
    return path


def dense(x):
    return x.toarray() if sp.issparse(x) else np.asarray(x)


@pytest.mark.parametrize("suffix", [".h5ad", ".zarr"])
def test_no_options_is_the_specification_recipe(tmp_path, counts_file, suffix):
    out = tmp_path / f"out{suffix}"
    run("scrna", counts_file, "-o", out, "--device", "cpu", "--quiet")
    ours = ad.read_h5ad(out) if suffix == ".h5ad" else ad.read_zarr(out)
    expected = spec_recipe(ad.read_h5ad(counts_file))
    assert list(ours.obs_names) == list(expected.obs_names)
    assert list(ours.var_names) == list(expected.var_names)
    np.testing.assert_array_equal(dense(ours.X), dense(expected.X))
    assert "counts" in ours.layers
    card = ours.uns["dataset_card"]
    assert card["dataset_id"] == "pbmc_like"
    assert (card["n_cells"], card["n_genes"]) == ours.shape
    for key in ("name", "modality", "preprocessing", "normalization", "feature_selection"):
        assert card[key]
    assert card["tool_version"].startswith("gpu-genomics")
    assert not list(tmp_path.glob(".*tmp*"))


def test_options_reach_the_recipe(tmp_path, counts_file):
    out = tmp_path / "out.h5ad"
    run(
        "scrna",
        counts_file,
        "-o",
        out,
        "--device",
        "cpu",
        "--quiet",
        "--n-top-genes",
        "100",
        "--keep-all-genes",
        "--no-scale",
        "--max-pct-mito",
        "50",
        "--dataset-id",
        "d1",
        "--name",
        "Dataset one",
    )
    ours = ad.read_h5ad(out)
    assert int(ours.var["highly_variable"].sum()) == 100
    assert ours.n_vars > 100
    assert ours.uns["dataset_card"]["name"] == "Dataset one"
    assert ours.uns["preprocess_recipe"]["max_pct_mito"] == 50
    assert dense(ours.X).min() >= 0  # not scaled


def test_logs_cells_and_genes_after_each_step(tmp_path, counts_file):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gpu_genomics",
            "scrna",
            str(counts_file),
            "-o",
            str(tmp_path / "o.h5ad"),
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    for step in (
        "filter_cells",
        "filter_genes",
        "qc_metrics",
        "filter_qc",
        "normalize_total",
        "log1p",
        "hvg (seurat)",
        "scale",
    ):
        line = next(line for line in result.stderr.splitlines() if step in line)
        assert " cells " in line and " genes " in line and line.endswith(" s")


def test_rank_encode_writes_tokens_of_the_kept_cells(tmp_path, counts_file):
    """Geneformer tokens of the cells the recipe keeps, from their raw counts over all genes
    (cell totals over every gene, genes seen in fewer than 3 cells included)."""
    pq = pytest.importorskip("pyarrow.parquet")
    from gpu_genomics.expression.singlecell import rank_encode

    out, tokens = tmp_path / "out.h5ad", tmp_path / "tokens.parquet"
    args = ["--rank-encode", tokens, "--n-tokens", "4096"]  # every detected gene
    run("scrna", counts_file, "-o", out, "--device", "cpu", "--quiet", *args)
    table = pq.read_table(tokens).to_pandas()
    ours = ad.read_h5ad(out)
    assert table["cell_id"].tolist() == list(ours.obs_names)
    assert table["length"].min() > 0
    kept = ad.read_h5ad(counts_file)[ours.obs_names].copy()  # every gene
    expected = rank_encode(kept, n_tokens=4096, device="cpu")
    got = [list(ids) for ids in table["input_ids"]]
    assert got == [expected.cell_tokens(i).tolist() for i in range(len(expected))]
    # genes the recipe's filter_genes(min_cells=3) removed still count, as in Geneformer
    detected_in = np.asarray((kept.X > 0).sum(axis=0)).ravel()
    rare = {kept.var_names[g] for g in np.flatnonzero((detected_in > 0) & (detected_in < 3))}
    vocabulary = {token: gene for gene, token in expected.token_dictionary.items()}
    assert rare and rare <= {vocabulary[t] for ids in got for t in ids}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--min-genes", "100000"], "removed every cell"),
        (["--hvg-flavor", "seurat_v3", "--device", "gpu"], "device='gpu' was requested"),
        (["--rank-encode", "x.txt"], "--rank-encode must end in"),
    ],
)
def test_errors_are_one_line_and_write_nothing(tmp_path, counts_file, capsys, args, message):
    out = tmp_path / "out.h5ad"
    if "--device" not in args:
        args = [*args, "--device", "cpu"]
    with pytest.raises(SystemExit) as exit_info:
        run("scrna", counts_file, "-o", out, "--quiet", *args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists() and not list(tmp_path.iterdir())


def test_negative_counts_name_the_file_cell_and_gene(tmp_path, capsys):
    adata = synthetic_counts(n_cells=50, n_genes=300)
    values = adata.X.toarray()
    values[3, 40] = -2
    adata.X = sp.csr_matrix(values)
    adata.write_h5ad(tmp_path / "neg.h5ad")
    with pytest.raises(SystemExit):
        run("scrna", tmp_path / "neg.h5ad", "-o", tmp_path / "o.h5ad", "--device", "cpu")
    err = capsys.readouterr().err
    assert "neg.h5ad: the single-cell recipe needs non-negative finite values, but cell " in err
    assert "'cell3' (row 3), gene 'G40' (column 40) of X holds -2.0 (negative)" in err
    assert not (tmp_path / "o.h5ad").exists()


def test_bad_output_suffix(tmp_path, counts_file, capsys):
    with pytest.raises(SystemExit):
        run("scrna", counts_file, "-o", tmp_path / "out.csv", "--device", "cpu")
    assert "must end in .h5ad or .zarr" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target-sum", "0"], "target_sum=0.0 must be a number > 0"),
        (["--n-top-genes", "0"], "n_top_genes=0 must be an integer >= 1"),
        (["--max-value", "-1"], "scale_max_value=-1.0 must be a number > 0"),
        (["--min-genes", "x"], "'x' is not a int or 'none'"),
    ],
)
def test_bad_numbers_are_refused_before_any_work(tmp_path, counts_file, capsys, args, message):
    with pytest.raises(SystemExit):
        run("scrna", counts_file, "-o", tmp_path / "o.h5ad", "--device", "cpu", *args)
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_none_skips_a_bound(tmp_path, counts_file):
    out = tmp_path / "o.h5ad"
    run("scrna", counts_file, "-o", out, "--device", "cpu", "--quiet", "--max-genes", "none",
        "--max-pct-mito", "none", "--no-scale")  # fmt: skip
    ours = ad.read_h5ad(out)
    assert ours.obs["n_genes_by_counts"].max() >= 2500  # the deep cells stay
    assert ours.uns["preprocess_recipe"]["max_genes"] == "none"


def test_a_missing_rank_folder_fails_first_and_writes_nothing(tmp_path, counts_file, capsys):
    out = tmp_path / "o.h5ad"
    with pytest.raises(SystemExit):
        run("scrna", counts_file, "-o", out, "--device", "cpu", "--rank-encode",
            tmp_path / "missing" / "t.parquet")  # fmt: skip
    err = capsys.readouterr().err
    assert "does not exist" in err and "filter_cells" not in err
    assert not out.exists()
