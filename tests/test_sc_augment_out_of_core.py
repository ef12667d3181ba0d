"""scGPT binning, downsampling and doublet simulation block by block, against the in-memory ones.

The out-of-core results must equal the in-memory functions' on the same input (same seed),
whatever the chunk size (chunks that cut the data anywhere, of one cell, larger than the data)
and on 1 or 2 Dask workers.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
from click.testing import CliRunner
from sc_data import assert_same_output, read_output, synthetic_counts

from gpu_genomics.cli import cli
from gpu_genomics.errors import InputError
from gpu_genomics.execution import cluster
from gpu_genomics.expression.singlecell import bin_values, downsample_counts, simulate_doublets
from gpu_genomics.expression.singlecell.augment import downsampled_counts
from gpu_genomics.expression.singlecell.augment_job import (
    downsample_file,
    simulate_doublets_file,
)
from gpu_genomics.expression.singlecell.binning import bin_csr
from gpu_genomics.expression.singlecell.job import preprocess_file
from gpu_genomics.expression.singlecell.recipe import preprocess


def small_counts(n_cells: int = 203, n_genes: int = 60, seed: int = 0, dtype=np.float32):
    """Counts with many ties, an empty cell, a cell with one count and upper-case names."""
    rng = np.random.default_rng(seed)
    x = rng.negative_binomial(1, 0.3, size=(n_cells, n_genes)).astype(dtype)
    x[rng.random(x.shape) < 0.5] = 0
    if n_cells > 9:
        x[4] = 0  # no reads
        x[9] = 0
        x[9, 3] = 1  # one read
    adata = ad.AnnData(X=sp.csr_matrix(x))
    adata.obs_names = [f"Cell-{i}" for i in range(n_cells)]
    adata.var_names = [f"gene{j}" for j in range(n_genes)]
    return adata


def same_matrix(a, b) -> None:
    a, b = sp.csr_matrix(a), sp.csr_matrix(b)
    a.sort_indices()
    b.sort_indices()
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_array_equal(a.indptr, b.indptr)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.data, b.data)


# --- scGPT binning --------------------------------------------------------------------------


@pytest.mark.parametrize("split", [1, 7, 50, 203])
def test_bins_of_blocks_binned_alone_are_the_whole_matrixs(split):
    """The tie-breaking draws are keyed by (cell, gene): a block binned alone from its first
    cell gets the bins it gets in the whole matrix, and the values tie with edges often."""
    x = sp.csr_matrix(small_counts().X.astype(np.float64))
    x.data = np.log1p(x.data)
    whole = bin_csr(
        np, x.data, x.indices.astype(np.int64), x.indptr.astype(np.int64), n_genes=x.shape[1],
        n_bins=11, seed=5, tie_break="random",
    )  # fmt: skip
    parts = []
    for start in range(0, x.shape[0], split):
        block = x[start : start + split]
        parts.append(
            bin_csr(
                np,
                block.data,
                block.indices.astype(np.int64),
                block.indptr.astype(np.int64),
                n_genes=x.shape[1],
                n_bins=11,
                seed=5,
                tie_break="random",
                first_cell=start,
            )
        )
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    # ties were broken at random: the left bins differ somewhere
    left = bin_csr(
        np, x.data, x.indices.astype(np.int64), x.indptr.astype(np.int64), n_genes=x.shape[1],
        n_bins=11, seed=5, tie_break="left",
    )  # fmt: skip
    assert (left != whole).any()


def recipe_options(**more):
    return {
        "min_genes": 5, "min_cells": 2, "max_genes": None, "max_pct_mito": None,
        "n_top_genes": 40, **more,
    }  # fmt: skip


def test_scrna_bins_are_bin_values_of_the_log_normalised_output_genes(tmp_path):
    """layers['X_binned'] is bin_values of the recipe's values before scale (same seed)."""
    adata = synthetic_counts(300, 800, seed=3)
    unscaled = preprocess(adata, **recipe_options(scale_data=False), copy=True, device="cpu")
    want = bin_values(unscaled, n_bins=21, seed=9, inplace=False, device="cpu")
    want.eliminate_zeros()
    scaled = preprocess(adata, **recipe_options(value_bins=21, bin_seed=9), copy=True, device="cpu")
    same_matrix(scaled.layers["X_binned"], want)
    assert "bin_values" in list(scaled.uns["preprocess_steps"]["step"])
    assert scaled.uns["preprocess_recipe"]["value_bins"] == 21
    other = preprocess(adata, **recipe_options(value_bins=21, bin_seed=10), copy=True, device="cpu")
    assert (other.layers["X_binned"] != scaled.layers["X_binned"]).nnz  # the seed matters


@pytest.mark.parametrize(("chunk", "workers"), [(37, None), (1000, None), (53, 2)])
def test_scrna_bins_out_of_core_equal_in_memory(tmp_path, chunk, workers):
    source = tmp_path / "in.h5ad"
    synthetic_counts(300, 800, seed=4).write_h5ad(source)
    options = recipe_options(value_bins=51, bin_seed=2)
    memory = tmp_path / "m" / "o.h5ad"
    blocks = tmp_path / "b" / "o.h5ad"
    memory.parent.mkdir()
    blocks.parent.mkdir()
    preprocess_file(source, memory, device="cpu", **options)
    with cluster(workers=workers, device="cpu") as client:
        summary = preprocess_file(
            source, blocks, device="cpu", chunk_cells=chunk, client=client, **options
        )
    assert summary["out_of_core"]
    assert_same_output(memory, blocks)
    same_matrix(read_output(memory).layers["X_binned"], read_output(blocks).layers["X_binned"])


def test_scrna_bad_bins_are_one_line(tmp_path):
    source = tmp_path / "in.h5ad"
    synthetic_counts(60, 300).write_h5ad(source)
    for value_bins, bin_seed in ((2, 0), (11, -1)):
        with pytest.raises(InputError, match=r"value_bins|n_bins|bin_seed"):
            preprocess_file(
                source, tmp_path / "o.h5ad", device="cpu", value_bins=value_bins,
                bin_seed=bin_seed,
            )  # fmt: skip
    assert not (tmp_path / "o.h5ad").exists()


# --- downsampling ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["binomial", "hypergeometric", "multinomial"])
@pytest.mark.parametrize("target", [{"fraction": 0.4}, {"target_total": 12}])
def test_downsample_file_equals_in_memory(tmp_path, method, target):
    adata = small_counts()
    source = tmp_path / "in.h5ad"
    adata.write_h5ad(source)
    want = downsample_counts(adata, method=method, seed=11, block_cells=16, copy=True, **target)
    assert (want.X != adata.X).nnz  # something was drawn
    chunks = (1, 20, 48, 10_000) if method == "hypergeometric" else (20, 10_000)
    for chunk in chunks:  # rounded up to whole blocks of 16
        out = tmp_path / f"o{chunk}.zarr"
        downsample_file(
            source, out, method=method, seed=11, block_cells=16, chunk_cells=chunk,
            device="cpu", **target,
        )  # fmt: skip
        got = ad.read_zarr(out)
        same_matrix(got.X, want.X)
        assert list(got.obs_names) == list(adata.obs_names)
        assert list(got.var_names) == list(adata.var_names)
        assert got.uns["provenance"]["tool"] == "gpu-genomics downsample"


def test_downsample_random_blocks_are_independent_of_the_rest():
    """Rows of whole random blocks downsampled alone, from their first block on, are the
    whole matrix's rows: what lets a task be any run of blocks."""
    x = small_counts().X.astype(np.int64)
    whole = downsampled_counts(
        np, "cpu", x.data.copy(), x.indptr.astype(np.int64), fraction=0.3, target_total=None,
        method="hypergeometric", seed=4, block_cells=10,
    )  # fmt: skip
    part = x[40:90]
    alone = downsampled_counts(
        np, "cpu", part.data.copy(), part.indptr.astype(np.int64), fraction=0.3,
        target_total=None, method="hypergeometric", seed=4, block_cells=10, first_block=4,
    )  # fmt: skip
    np.testing.assert_array_equal(alone, whole[x.indptr[40] : x.indptr[90]])
    again = downsampled_counts(
        np, "cpu", x.data.copy(), x.indptr.astype(np.int64), fraction=0.3, target_total=None,
        method="hypergeometric", seed=5, block_cells=10,
    )  # fmt: skip
    assert (again != whole).any()


@pytest.mark.parametrize("suffix", [".zarr", ".h5ad"])
def test_downsample_file_on_two_workers_and_other_inputs(tmp_path, suffix):
    adata = small_counts(dtype=np.int32)
    source = tmp_path / f"in{suffix}"
    if suffix == ".zarr":
        adata.write_zarr(source)
    else:
        adata.write_h5ad(source)
    want = downsample_counts(adata, target_total=9, seed=3, block_cells=32, copy=True)
    with cluster(workers=2, device="cpu") as client:
        downsample_file(
            source, tmp_path / "o.h5ad", target_total=9, seed=3, block_cells=32,
            chunk_cells=40, client=client, device="cpu",
        )  # fmt: skip
    got = ad.read_h5ad(tmp_path / "o.h5ad")
    same_matrix(got.X, want.X)
    assert got.X.dtype == np.int32


def test_downsample_file_from_a_table_is_converted_and_removed(tmp_path):
    adata = small_counts(40, 12)
    table = tmp_path / "in.csv"
    dense = adata.X.toarray().astype(int)
    lines = ["cell," + ",".join(adata.var_names)]
    lines += [
        f"{name}," + ",".join(map(str, row))
        for name, row in zip(adata.obs_names, dense, strict=True)
    ]
    table.write_text("\n".join(lines) + "\n")
    out = tmp_path / "o.h5ad"
    downsample_file(table, out, fraction=0.5, seed=1, block_cells=8, chunk_cells=8, device="cpu")
    from gpu_genomics.expression.singlecell import read

    want = downsample_counts(read(table), fraction=0.5, seed=1, block_cells=8, copy=True)
    same_matrix(ad.read_h5ad(out).X, want.X)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "o.h5ad"]


@pytest.mark.parametrize(
    ("value", "match"),
    [(-1.0, "negative"), (1.5, "integer|whole"), (np.nan, "finite|NaN|nan")],
)
def test_downsample_file_bad_count_names_the_row_and_writes_nothing(tmp_path, value, match):
    adata = small_counts(50, 10)
    x = adata.X.tolil()
    x[33, 2] = value
    adata.X = x.tocsr()
    source = tmp_path / "in.h5ad"
    adata.write_h5ad(source)
    with pytest.raises(InputError, match=match) as error:
        downsample_file(source, tmp_path / "o.h5ad", fraction=0.5, chunk_cells=16, device="cpu")
    message = str(error.value)
    assert "in.h5ad" in message and ("33" in message or "Cell-33" in message)
    assert "\n" not in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.h5ad"]


# --- doublets -------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["sum", "mean"])
@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_doublets_file_equal_in_memory(tmp_path, how, dtype):
    adata = small_counts(dtype=dtype)
    source = tmp_path / "in.h5ad"
    adata.write_h5ad(source)
    simulate_doublets(adata, n=450, how=how, seed=8).write_h5ad(tmp_path / "memory.h5ad")
    want = ad.read_h5ad(tmp_path / "memory.h5ad")
    chunks = (1, 7, 64, 10_000) if (how, dtype) == ("sum", np.int64) else (7, 10_000)
    for chunk in chunks:
        out = tmp_path / f"o{chunk}.h5ad"
        summary = simulate_doublets_file(
            source, out, n=450, how=how, seed=8, chunk_cells=chunk, device="cpu"
        )
        assert summary["n_cells"] == 450
        got = ad.read_h5ad(out)
        same_matrix(got.X, want.X)
        assert got.obs.equals(want.obs)
        assert list(got.var_names) == list(adata.var_names)
    assert not [p for p in tmp_path.iterdir() if "spool" in p.name]  # the scratch is gone


def test_doublets_file_on_two_workers_to_zarr(tmp_path):
    adata = small_counts(seed=2)
    source = tmp_path / "in.zarr"
    adata.write_zarr(source)
    want = simulate_doublets(adata, n=120, seed=1)
    with cluster(workers=2, device="cpu") as client:
        simulate_doublets_file(
            source, tmp_path / "o.zarr", n=120, seed=1, chunk_cells=30, client=client,
            device="cpu",
        )  # fmt: skip
    got = ad.read_zarr(tmp_path / "o.zarr")
    same_matrix(got.X, want.X)
    assert list(got.obs["parent_1_name"]) == list(want.obs["parent_1_name"])


def test_doublets_file_refuses_bad_input(tmp_path):
    one = small_counts(1, 5)
    one.write_h5ad(tmp_path / "one.h5ad")
    with pytest.raises(InputError, match="at least 2 cells"):
        simulate_doublets_file(tmp_path / "one.h5ad", tmp_path / "o.h5ad", n=3, device="cpu")
    adata = small_counts(30, 5)
    x = adata.X.tolil()
    x[21, 1] = -2
    adata.X = x.tocsr()
    adata.write_h5ad(tmp_path / "neg.h5ad")
    with pytest.raises(InputError, match="negative") as error:
        simulate_doublets_file(
            tmp_path / "neg.h5ad", tmp_path / "o.h5ad", n=3, chunk_cells=8, device="cpu"
        )
    assert "neg.h5ad" in str(error.value)
    with pytest.raises(InputError, match="must end in"):
        simulate_doublets_file(tmp_path / "neg.h5ad", tmp_path / "o.txt", n=3, device="cpu")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["neg.h5ad", "one.h5ad"]


def test_cli_downsample_and_doublets(tmp_path):
    adata = small_counts(80, 20)
    adata.write_h5ad(tmp_path / "in.h5ad")
    runner = CliRunner()
    result = runner.invoke(
        cli,
        ["downsample", str(tmp_path / "in.h5ad"), "-o", str(tmp_path / "d.h5ad"),
         "--fraction", "0.5", "--method", "hypergeometric", "--seed", "4", "--block-cells", "16",
         "--chunk-cells", "20", "--device", "cpu", "--quiet"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    want = downsample_counts(
        adata, fraction=0.5, method="hypergeometric", seed=4, block_cells=16, copy=True
    )
    same_matrix(ad.read_h5ad(tmp_path / "d.h5ad").X, want.X)
    result = runner.invoke(
        cli,
        ["doublets", str(tmp_path / "in.h5ad"), "-o", str(tmp_path / "x.zarr"), "-n", "30",
         "--how", "mean", "--seed", "2", "--device", "cpu", "--quiet"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    same_matrix(
        ad.read_zarr(tmp_path / "x.zarr").X, simulate_doublets(adata, n=30, how="mean", seed=2).X
    )


def test_cli_bad_option_is_one_line_exit_2(tmp_path):
    small_counts(10, 5).write_h5ad(tmp_path / "in.h5ad")
    from gpu_genomics.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["downsample", str(tmp_path / "in.h5ad"), "-o", str(tmp_path / "o.h5ad"),
              "--fraction", "0.5", "--target-total", "3", "--quiet"])  # fmt: skip
    assert exit_info.value.code == 2
    assert not (tmp_path / "o.h5ad").exists()


def test_in_memory_block_size_changes_the_draws_but_not_the_law():
    """block_cells is part of the seed's meaning: another size draws other counts, with the
    same expected totals (binomial thinning keeps p * total on average)."""
    adata = synthetic_counts(400, 500, seed=1)
    a = downsample_counts(adata, fraction=0.5, seed=0, block_cells=4096, copy=True)
    b = downsample_counts(adata, fraction=0.5, seed=0, block_cells=64, copy=True)
    assert (a.X != b.X).nnz
    total = adata.X.sum()
    for result in (a, b):
        assert abs(result.X.sum() - 0.5 * total) < 4 * np.sqrt(0.25 * total)


def test_outputs_are_written_whole_or_not_at_all(tmp_path, monkeypatch):
    """A failure in the last task leaves no output and no scratch folder."""
    from gpu_genomics.expression.singlecell import augment_job

    adata = small_counts(60, 8)
    adata.write_h5ad(tmp_path / "in.h5ad")
    calls = {"n": 0}
    real = augment_job._doublets_task

    def failing(*args):
        calls["n"] += 1
        if calls["n"] == 3:
            raise InputError("stopped")
        return real(*args)

    monkeypatch.setattr(augment_job, "_doublets_task", failing)
    with pytest.raises(InputError, match="stopped"):
        simulate_doublets_file(
            tmp_path / "in.h5ad", tmp_path / "o.h5ad", n=50, chunk_cells=10, device="cpu"
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.h5ad"]


def test_every_path_is_read_once_per_pass(tmp_path, monkeypatch):
    """The shuffle reads every input block once (pass 1), not once per chunk of doublets."""
    from gpu_genomics.expression.singlecell.blocks import CountBlocks

    adata = small_counts(100, 8)
    adata.write_h5ad(tmp_path / "in.h5ad")
    reads: list[tuple[int, int]] = []
    real = CountBlocks.read

    def counted(self, start, stop):
        reads.append((start, stop))
        return real(self, start, stop)

    monkeypatch.setattr(CountBlocks, "read", counted)
    simulate_doublets_file(
        tmp_path / "in.h5ad", tmp_path / "o.h5ad", n=400, chunk_cells=25, device="cpu"
    )
    assert sorted(reads) == [(0, 25), (25, 50), (50, 75), (75, 100)]


@pytest.mark.parametrize("method", ["hypergeometric", "multinomial"])
def test_cpu_resampling_does_not_depend_on_the_threads(method):
    """The numba resampler runs the random blocks in parallel; each block seeds its own draws,
    so one thread or two give the same counts."""
    import numba

    adata = synthetic_counts(600, 300, seed=2)
    runs = []
    for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
        numba.set_num_threads(threads)
        try:
            runs.append(
                downsample_counts(
                    adata, fraction=0.5, method=method, seed=6, block_cells=32, copy=True
                ).X
            )
        finally:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    same_matrix(runs[0], runs[1])
    assert (runs[0] != adata.X).nnz


@pytest.mark.parametrize("how", ["sum", "mean"])
def test_doublets_in_chunks_equal_the_whole(monkeypatch, how):
    """The CPU builds the doublets DOUBLET_CHUNK at a time: chunks of 7 give the doublets one
    chunk gives, and each is its two parents' rows added (or averaged)."""
    from gpu_genomics.expression.singlecell import augment

    adata = small_counts(dtype=np.int32)
    whole = simulate_doublets(adata, n=100, how=how, seed=4, device="cpu")
    monkeypatch.setattr(augment, "DOUBLET_CHUNK", 7)
    chunked = simulate_doublets(adata, n=100, how=how, seed=4, device="cpu")
    same_matrix(chunked.X, whole.X)
    x = adata.X.toarray().astype(np.float64)
    want = x[whole.obs["parent_1"]] + x[whole.obs["parent_2"]]
    if how == "mean":
        want /= 2
    np.testing.assert_array_equal(chunked.X.toarray(), want.astype(chunked.X.dtype))


def test_an_anndata_before_0_7_file_is_converted_as_scrna_converts_it(tmp_path):
    """The augmentation jobs open their input as the out-of-core recipe does: a legacy-layout
    .h5ad (which anndata reads whole) is converted once, not refused."""
    from test_scrna_chunked import write_legacy_h5ad

    adata = small_counts(40, 12)
    legacy = write_legacy_h5ad(adata, tmp_path / "legacy.h5ad")
    downsample_file(legacy, tmp_path / "o.h5ad", fraction=0.5, seed=2, block_cells=8,
                    chunk_cells=8, device="cpu")  # fmt: skip
    want = downsample_counts(ad.read_h5ad(legacy), fraction=0.5, seed=2, block_cells=8, copy=True)
    same_matrix(ad.read_h5ad(tmp_path / "o.h5ad").X, want.X)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["legacy.h5ad", "o.h5ad"]
