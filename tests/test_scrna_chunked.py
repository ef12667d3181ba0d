"""The single-cell recipe out of core (``chunk_cells``) against the recipe in memory.

Small chunks, so that block boundaries fall inside every pass; every flavour, the median
target, integer, dense, unsorted and explicit-zero inputs, ``.h5ad`` and ``.zarr`` on both
sides. The in-memory output is the reference: the same cells, genes, columns (names, order,
dtypes), ``uns`` entries and layers; values to a relative 1e-5.
"""

from __future__ import annotations

import itertools
import json
import logging
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
from sc_data import assert_same_output, read_output, synthetic_counts

pytest.importorskip("scanpy")

from gpu_genomics.errors import InputError
from gpu_genomics.execution import cluster
from gpu_genomics.expression.singlecell import chunked, job
from gpu_genomics.expression.singlecell.blocks import open_count_blocks
from gpu_genomics.expression.singlecell.job import preprocess_file


def write_input(adata: ad.AnnData, path: Path) -> Path:
    if path.suffix == ".zarr":
        adata.write_zarr(path)
    else:
        adata.write_h5ad(path)
    return path


def in_memory_and_chunked(tmp_path: Path, source: Path, suffix: str = ".h5ad", **options):
    memory = tmp_path / f"memory{suffix}"
    blocks = tmp_path / "blocks" / f"memory{suffix}"  # the same name: it is in the card
    blocks.parent.mkdir(exist_ok=True)
    summary_memory = preprocess_file(source, memory, device="cpu", **options)
    summary_blocks = preprocess_file(source, blocks, device="cpu", **{"chunk_cells": 37, **options})
    assert not summary_memory["out_of_core"] and summary_blocks["out_of_core"]
    return memory, blocks


@pytest.fixture(scope="module")
def counts_h5ad(tmp_path_factory) -> Path:
    return write_input(synthetic_counts(500, 3000), tmp_path_factory.mktemp("in") / "c.h5ad")


@pytest.mark.parametrize("flavor", ["seurat", "cell_ranger", "seurat_v3"])
@pytest.mark.parametrize("target_sum", [1e4, None])
def test_every_flavor_and_target_equals_in_memory(tmp_path, counts_h5ad, flavor, target_sum):
    if flavor == "seurat_v3":
        pytest.importorskip("skmisc")
    memory, blocks = in_memory_and_chunked(
        tmp_path, counts_h5ad, hvg_flavor=flavor, target_sum=target_sum
    )
    assert_same_output(memory, blocks)


@pytest.mark.parametrize("suffix", [".h5ad", ".zarr"])
def test_zarr_input_and_output(tmp_path, suffix):
    source = write_input(synthetic_counts(300, 2000, seed=3), tmp_path / "c.zarr")
    memory, blocks = in_memory_and_chunked(tmp_path, source, suffix)
    assert_same_output(memory, blocks)


@pytest.mark.parametrize(
    "options",
    [
        {"n_top_genes": None},  # scanpy's cut-offs
        {"subset_hvg": False},
        {"scale_data": False},  # X stays CSR float32
        {"min_genes": None, "min_cells": None, "max_genes": None, "max_pct_mito": None},
        {"n_top_genes": 100_000},  # more than there are genes
        {"mito_prefix": "mt-"},  # no mitochondrial gene
    ],
)
def test_options_equal_in_memory(tmp_path, counts_h5ad, options):
    memory, blocks = in_memory_and_chunked(tmp_path, counts_h5ad, **options)
    assert_same_output(memory, blocks)


def test_integer_dense_unsorted_and_explicit_zero_inputs(tmp_path):
    base = synthetic_counts(240, 1500, seed=5)
    integer = base.copy()
    integer.X = base.X.astype(np.int32)
    dense_x = base.copy()
    dense_x.X = base.X.toarray()
    messy = base.copy()
    x = base.X.tocoo()
    order = np.random.default_rng(0).permutation(x.nnz)
    rows, cols, values = x.row[order], x.col[order], x.data[order]
    zeros = np.arange(0, 240, 7)  # explicit zeros in some rows
    messy.X = sp.csr_matrix(
        (
            np.r_[values, np.zeros(len(zeros), np.float32)],
            (np.r_[rows, zeros], np.r_[cols, zeros % 1500]),
        ),
        shape=x.shape,
    )
    messy.X.has_sorted_indices = False
    for name, adata in (("int", integer), ("dense", dense_x), ("messy", messy)):
        folder = tmp_path / name
        folder.mkdir()
        source = write_input(adata, folder / "c.h5ad")
        memory, blocks = in_memory_and_chunked(folder, source)
        assert_same_output(memory, blocks, same_types=name != "dense")


def test_one_block_and_chunks_of_one_cell_agree(tmp_path):
    source = write_input(synthetic_counts(60, 800, seed=8), tmp_path / "c.h5ad")
    options = {"min_genes": 20, "n_top_genes": 200}
    memory = tmp_path / "a" / "c.h5ad"
    for folder, chunk in (("a", 1), ("b", 10_000)):
        (tmp_path / folder).mkdir()
        preprocess_file(source, tmp_path / folder / "c.h5ad", chunk_cells=chunk, **options)
    assert_same_output(memory, tmp_path / "b" / "c.h5ad", rtol=1e-12)


def test_other_formats_are_converted_once_and_removed(tmp_path, caplog):
    adata = synthetic_counts(200, 1200, seed=2)
    table = tmp_path / "c.csv"
    frame = adata.to_df()
    frame.index.name = "cell"
    frame.to_csv(table)
    caplog.set_level(logging.INFO, logger="gpu_genomics")
    memory, blocks = in_memory_and_chunked(tmp_path, table)
    assert "temporary Zarr" in caplog.text
    assert_same_output(memory, blocks)
    assert sorted(p.name for p in blocks.parent.iterdir()) == ["memory.h5ad"]


def test_auto_goes_out_of_core_when_the_matrix_would_not_fit(
    tmp_path, counts_h5ad, monkeypatch, caplog
):
    import gpu_genomics.info

    monkeypatch.setattr(gpu_genomics.info, "available_memory", lambda: 1 << 20)
    caplog.set_level(logging.INFO, logger="gpu_genomics")
    summary = preprocess_file(counts_h5ad, tmp_path / "o.h5ad", device="cpu")
    assert summary["out_of_core"]
    assert "running out of core" in caplog.text
    blocks, *_ = open_count_blocks(counts_h5ad, "h5ad")
    assert job.needed_memory(blocks, chunked.Recipe()) > 1 << 20
    monkeypatch.setattr(gpu_genomics.info, "available_memory", lambda: 1 << 40)
    assert not preprocess_file(counts_h5ad, tmp_path / "p.h5ad")["out_of_core"]


def test_a_bad_count_names_the_file_row_and_writes_nothing(tmp_path):
    adata = synthetic_counts(200, 500, seed=1)
    x = adata.X.tolil()
    x[151, 7] = -1
    adata.X = x.tocsr()
    source = write_input(adata, tmp_path / "bad.h5ad")
    with pytest.raises(InputError) as error:
        preprocess_file(source, tmp_path / "o.h5ad", chunk_cells=40)
    message = str(error.value)
    assert (
        "bad.h5ad" in message
        and "'cell151' (row 151)" in message
        and "'MT-7' (column 7)" in message
    )
    assert "\n" not in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.h5ad"]


def test_a_non_integer_count_under_seurat_v3_names_the_cell_and_gene(tmp_path):
    pytest.importorskip("skmisc")
    adata = synthetic_counts(300, 3000, seed=12)
    x = adata.X.tolil()
    x[250, 100] = 2.5
    adata.X = x.tocsr()
    source = write_input(adata, tmp_path / "half.h5ad")
    messages = []
    for chunk in (None, 30):
        with pytest.raises(InputError) as error:
            preprocess_file(source, tmp_path / "o.h5ad", hvg_flavor="seurat_v3", chunk_cells=chunk)
        messages.append(str(error.value))
    for message in messages:  # in memory the row is the filtered matrix's; out of core the file's
        assert "flavor 'seurat_v3' needs non-negative integer counts" in message
        assert (
            "cell 'cell250'" in message
            and "gene 'G100'" in message
            and "2.5 (not whole)" in message
        )
    assert "'cell250' (row 250)" in messages[1]


def test_a_step_that_removes_everything_is_one_line(tmp_path, counts_h5ad):
    with pytest.raises(InputError, match=r"filter_cells\(min_genes=100000\) removed every cell"):
        preprocess_file(counts_h5ad, tmp_path / "o.h5ad", chunk_cells=50, min_genes=100_000)
    assert list(tmp_path.iterdir()) == []


def test_a_bad_chunk_size_is_refused(tmp_path, counts_h5ad):
    with pytest.raises(InputError, match="chunk_cells"):
        preprocess_file(counts_h5ad, tmp_path / "o.h5ad", chunk_cells=0)
    assert list(tmp_path.iterdir()) == []


def test_csc_input_is_refused_with_the_fix(tmp_path):
    adata = synthetic_counts(50, 300)
    adata.X = adata.X.tocsc()
    source = write_input(adata, tmp_path / "csc.h5ad")
    with pytest.raises(InputError, match=r"csc.h5ad: X is stored as csc_matrix.*tocsr"):
        preprocess_file(source, tmp_path / "o.h5ad", chunk_cells=10)


def test_moments_are_scanpys_mean_and_variance():
    from scanpy.preprocessing._utils import _get_mean_var

    x = synthetic_counts(120, 400, seed=4).X
    parts = [chunked.Moments.of(x[a : a + 17]) for a in range(0, 120, 17)]
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    mean, var = total.mean_var()
    want_mean, want_var = _get_mean_var(x)
    np.testing.assert_allclose(mean, want_mean, rtol=1e-12)
    np.testing.assert_allclose(var, want_var, rtol=1e-9)


def rank_tables(path: Path):
    """``(cell ids, token lists, metadata)`` of a rank output, whatever its format."""
    if path.suffix == ".dataset":  # what Geneformer's training code opens
        datasets = pytest.importorskip("datasets")
        import json

        dataset = datasets.load_from_disk(str(path))
        assert dataset.column_names[:2] == ["input_ids", "length"]
        assert dataset.features["input_ids"].feature.dtype == "int64"
        assert dataset["length"] == [len(ids) for ids in dataset["input_ids"]]
        meta = json.loads(dataset.info.description)
        meta.pop("provenance")
        return dataset["cell_id"], dataset["input_ids"], meta
    if path.suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        return (
            table["cell_id"].to_pylist(),
            table["input_ids"].to_pylist(),
            dict(table.schema.metadata),
        )
    from compare_outputs import arrays_of

    arrays, attrs = arrays_of(path)
    offsets, tokens = arrays["offsets"], arrays["token_ids"]
    lists = [list(tokens[a:b]) for a, b in itertools.pairwise(offsets)]
    text = [v.decode() if isinstance(v, bytes) else str(v) for v in arrays["vocab_token"]]
    vocab = dict(zip(text, arrays["vocab_id"].tolist(), strict=True))
    root = {k: v for k, v in attrs["/"].items() if k in ("n_tokens", "special_tokens", "encoding")}
    cells = [c.decode() if isinstance(c, bytes) else str(c) for c in arrays["cell_id"]]
    return cells, lists, {"vocab": vocab, **root}


@pytest.mark.parametrize(
    ("suffix", "options"),
    [
        (".parquet", {}),
        (".dataset", {"special_tokens": True, "n_tokens": 4096}),
        (".h5", {"special_tokens": True, "n_tokens": 64}),
        (".zarr", {"n_tokens": 100}),
    ],
)
def test_rank_encoding_out_of_core_equals_in_memory(tmp_path, counts_h5ad, suffix, options):
    """Gene medians from the data (the exact two-pass medians) and the tokens of every cell."""
    memory_tokens = tmp_path / f"memory{suffix}"
    blocks_tokens = tmp_path / "blocks" / f"memory{suffix}"
    memory, blocks = in_memory_and_chunked(
        tmp_path, counts_h5ad, rank_output=None, **{"n_top_genes": 500}
    )
    for output, tokens, chunk in ((memory, memory_tokens, None), (blocks, blocks_tokens, 41)):
        output.unlink()
        preprocess_file(
            counts_h5ad, output, rank_output=tokens, chunk_cells=chunk, n_top_genes=500, **options
        )
    assert_same_output(memory, blocks)
    assert sorted(p.name for p in blocks.parent.iterdir()) == sorted(  # no scratch left
        [blocks.name, blocks_tokens.name]
    )
    cells_a, lists_a, meta_a = rank_tables(memory_tokens)
    cells_b, lists_b, meta_b = rank_tables(blocks_tokens)
    assert cells_a == cells_b == list(read_output(blocks).obs_names)
    assert lists_a == lists_b
    assert sum(map(len, lists_a)) > 0
    assert {k: v for k, v in meta_a.items() if "provenance" not in str(k)} == {
        k: v for k, v in meta_b.items() if "provenance" not in str(k)
    }


@pytest.mark.parametrize("workers", [None, 2])
def test_rank_encoding_filter_pass_and_collapsed_ids_out_of_core(tmp_path, workers):
    """Geneformer's input handling out of core as in memory: cells whose filter_pass is not 1
    left out (of the tokens and of the medians from the data), lower-case and repeated ids one
    gene, cells without a gene left out; the same with two workers."""
    from gpu_genomics.expression.singlecell import rank_encode

    adata = synthetic_counts(300, 2000, seed=21)
    ids = [f"ENSG{j:05d}" for j in range(adata.n_vars)]
    ids[5], ids[9], ids[11] = "ensg00004", "ENSG00004", "Ensg00011"  # one gene in 3 columns
    adata.var["ensembl_id"] = ids
    adata.obs["filter_pass"] = np.where(np.arange(adata.n_obs) % 7 == 3, 0, 1)
    adata.obs["cell_type"] = [f"type{i % 4}" for i in range(adata.n_obs)]
    source = write_input(adata, tmp_path / "in.h5ad")
    outputs = []
    for chunk in (None, 41):
        folder = tmp_path / f"run{chunk}"
        folder.mkdir()
        with cluster(workers=workers if chunk else None, device="cpu") as client:
            preprocess_file(
                source, folder / "o.h5ad", rank_output=folder / "t.parquet", chunk_cells=chunk,
                n_top_genes=300, n_tokens=64, client=client, device="cpu",
                rank_attributes=["cell_type:label"],
            )  # fmt: skip
        outputs.append(rank_tables(folder / "t.parquet"))
    (cells_a, lists_a, meta_a), (cells_b, lists_b, _) = outputs
    assert cells_a == cells_b and lists_a == lists_b
    recipe_cells = list(read_output(tmp_path / "runNone" / "o.h5ad").obs_names)
    passing = [c for c in recipe_cells if adata.obs.loc[c, "filter_pass"] == 1]
    assert cells_a == passing and len(passing) < len(recipe_cells)
    kept = adata[passing].copy()
    want = rank_encode(kept, n_tokens=64, counts_key=None, device="cpu")
    assert lists_a == [want.cell_tokens(i).tolist() for i in range(len(want))]
    vocabulary = json.loads(meta_a[b"gpu_genomics"])["token_dictionary"]
    assert "ENSG00004" in vocabulary and "ensg00004" not in vocabulary
    assert "ENSG00009" not in vocabulary and "ENSG00011" in vocabulary
    import pyarrow.parquet as pq

    labels = [
        pq.read_table(tmp_path / f"run{c}" / "t.parquet")["label"].to_pylist() for c in (None, 41)
    ]
    assert labels[0] == labels[1] == [adata.obs.loc[c, "cell_type"] for c in passing]


def test_gene_medians_of_blocks_are_compute_gene_medians(tmp_path):
    from gpu_genomics.expression.singlecell import compute_gene_medians
    from gpu_genomics.expression.singlecell.chunked import _Block, gene_medians_of_blocks
    from gpu_genomics.expression.singlecell.rank import gene_columns

    adata = synthetic_counts(300, 900, seed=9)
    x = adata.X.tolil()
    x[:40, 20] = 3  # ties, and an even count of values for gene 20
    x[40, 20] = 0
    x[:, 30] = 0  # a gene never detected
    x[5, 30] = 7  # ... but once
    adata.X = x.tocsr()
    source = write_input(adata, tmp_path / "c.h5ad")
    blocks, _, var, _ = open_count_blocks(source, "h5ad")
    cells = [_Block(a, min(a + 23, 300), np.arange(min(23, 300 - a))) for a in range(0, 300, 23)]
    ids = np.asarray(var.index, dtype=object)
    gone = ids[7]
    ids[[3, 7]] = ids[3].lower(), ids[3]  # one gene in two columns, one of them lower case
    adata.var_names = ids
    got = gene_medians_of_blocks(None, blocks, cells, gene_columns(ids))
    want = compute_gene_medians(adata)
    assert ids[7] in want and ids[3] not in want and gone not in want
    assert got.keys() == want.keys() and got == want  # bit for bit


def write_10x_v3(path: Path, adata: ad.AnnData, n_antibodies: int) -> Path:
    """Cell Ranger v3 ``.h5``: CSC features x barcodes of int32, with antibody features."""
    import h5py

    rng = np.random.default_rng(1)
    antibodies = sp.csr_matrix(rng.poisson(5, (adata.n_obs, n_antibodies)).astype(np.float32))
    x = sp.hstack([adata.X, antibodies]).tocsr()
    csc = sp.csc_matrix(x.T.astype(np.int32))
    names = [*adata.var_names, *(f"AB{i}" for i in range(n_antibodies))]
    kinds = ["Gene Expression"] * adata.n_vars + ["Antibody Capture"] * n_antibodies
    with h5py.File(path, "w") as f:
        m = f.create_group("matrix")
        m["barcodes"] = np.array([f"{name}-1" for name in adata.obs_names], dtype="S")
        m["data"], m["indices"], m["indptr"] = csc.data, csc.indices, csc.indptr
        m["shape"] = np.array(csc.shape, dtype=np.int32)
        features = m.create_group("features")
        features["id"] = np.array([f"ENSG{i:011d}" for i in range(len(names))], dtype="S")
        features["name"] = np.array(names, dtype="S")
        features["feature_type"] = np.array(kinds, dtype="S")
        features["genome"] = np.array(["GRCh38"] * len(names), dtype="S")
        features["_all_tag_keys"] = np.array(["genome"], dtype="S")
    return path


def test_cell_ranger_h5_is_read_by_blocks_as_scanpy_reads_it(tmp_path, caplog):
    import scanpy as sc

    source = write_10x_v3(tmp_path / "filtered.h5", synthetic_counts(260, 1800, seed=7), 9)
    blocks, obs, var, _ = open_count_blocks(source, "10x-h5")
    want = sc.read_10x_h5(source)
    assert list(obs.index) == list(want.obs_names) and list(var.index) == list(want.var_names)
    assert list(var.columns) == list(want.var.columns)
    got = blocks.read(0, blocks.n_cells)
    assert got.dtype == want.X.dtype == np.float32 and got.shape == want.shape
    assert (got != want.X).nnz == 0
    caplog.set_level(logging.INFO, logger="gpu_genomics")
    memory, chunked_out = in_memory_and_chunked(tmp_path, source)
    assert "temporary Zarr" not in caplog.text
    assert_same_output(memory, chunked_out)


def test_given_medians_missing_a_tokened_gene_fail_before_any_pass(
    tmp_path, counts_h5ad, monkeypatch
):
    import json

    from gpu_genomics.expression.singlecell import chunked as module

    medians = tmp_path / "m.json"
    medians.write_text(json.dumps({"G20": 1.0}))  # every other gene has a token and no median
    calls = []
    monkeypatch.setattr(module, "_scan_task", lambda *args: calls.append(args))
    for chunk in (None, 50):
        with pytest.raises(InputError, match="genes of the data have a token but no gene median"):
            preprocess_file(
                counts_h5ad, tmp_path / "o.h5ad", chunk_cells=chunk,
                rank_output=tmp_path / "t.parquet", gene_medians=medians,
            )  # fmt: skip
    assert calls == []  # out of core: refused before the first pass


def with_every_element(adata: ad.AnnData, seed: int = 0) -> ad.AnnData:
    """``adata`` with ``obsm`` (dense, CSR, a DataFrame), layers (CSR, dense, and a
    ``counts`` the recipe replaces), ``obsp`` (CSR, dense), ``varm`` (an array, a DataFrame),
    ``varp`` and ``raw`` (more genes than ``X``, a ``var`` column and a ``varm``)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    n, g = adata.shape
    adata.obsm["X_pca"] = rng.normal(size=(n, 6)).astype(np.float32)
    adata.obsm["X_sparse"] = sp.random(n, 9, density=0.3, format="csr", random_state=seed)
    adata.obsm["table"] = pd.DataFrame({"u": rng.integers(0, 9, n)}, index=adata.obs_names)
    adata.layers["spliced"] = sp.random(
        n, g, density=0.05, format="csr", random_state=seed + 1, dtype=np.float32
    )
    adata.layers["ambient"] = rng.normal(size=(n, g))
    adata.layers["counts"] = adata.X * 7  # the recipe writes its own
    adata.obsp["distances"] = sp.random(n, n, density=0.05, format="csr", random_state=seed + 2)
    adata.obsp["affinity"] = rng.random((n, n)).astype(np.float32)
    adata.varm["PCs"] = rng.normal(size=(g, 4))
    adata.varm["loadings"] = pd.DataFrame({"w": rng.random(g)}, index=adata.var_names)
    adata.varp["correlation"] = sp.random(g, g, density=0.01, format="csr", random_state=seed + 3)
    raw_x = sp.hstack([adata.X, sp.csr_matrix(rng.poisson(1.0, (n, 5)))]).tocsr()
    raw = ad.AnnData(
        X=(raw_x * 3).astype(np.int32),
        obs=pd.DataFrame(index=adata.obs_names),
        var=pd.DataFrame(
            {"kind": ["gene"] * g + ["spike"] * 5},
            index=[*adata.var_names, *(f"ERCC{i}" for i in range(5))],
        ),
    )
    raw.varm["raw_PCs"] = rng.normal(size=(g + 5, 2))
    adata.raw = raw
    return adata


@pytest.mark.parametrize("workers", [None, 2])
@pytest.mark.parametrize("suffix", [".h5ad", ".zarr"])
def test_obsm_layers_obsp_varm_varp_and_raw_are_carried_as_in_memory(tmp_path, suffix, workers):
    """Every element of the input the in-memory recipe keeps, kept the same out of core: in
    blocks of 37 cells (boundaries inside), in this process and on two workers, with
    ``.h5ad`` and ``.zarr`` input and output."""
    adata = with_every_element(synthetic_counts(300, 1500, seed=31))
    source = write_input(adata, tmp_path / f"in{suffix}")
    memory = tmp_path / f"memory{suffix}"
    blocks = tmp_path / "blocks" / f"memory{suffix}"
    blocks.parent.mkdir()
    options = {"n_top_genes": 400, "device": "cpu"}
    assert not preprocess_file(source, memory, **options)["out_of_core"]
    with cluster(workers=workers, device="cpu") as client:
        summary = preprocess_file(source, blocks, chunk_cells=37, client=client, **options)
    assert summary["out_of_core"]
    assert_same_output(memory, blocks)
    out = read_output(blocks)  # and what in memory gives is anndata's subsetting of the input
    cells = adata.obs_names.get_indexer(out.obs_names)
    genes = adata.var_names.get_indexer(out.var_names)
    assert 0 < len(cells) < adata.n_obs and 0 < len(genes) < adata.n_vars
    assert np.all(np.diff(cells) > 0) and np.any(np.diff(cells) > 1)  # cells dropped inside
    assert sorted(out.obsm) == ["X_pca", "X_sparse", "table"]
    np.testing.assert_array_equal(out.obsm["X_pca"], adata.obsm["X_pca"][cells])
    assert sp.issparse(out.obsm["X_sparse"])
    assert (out.obsm["X_sparse"] != adata.obsm["X_sparse"][cells]).nnz == 0
    assert list(out.obsm["table"]["u"]) == list(adata.obsm["table"]["u"].iloc[cells])
    assert sorted(out.layers) == ["ambient", "counts", "spliced"]
    np.testing.assert_array_equal(
        out.layers["ambient"], adata.layers["ambient"][np.ix_(cells, genes)]
    )
    assert (out.layers["spliced"] != adata.layers["spliced"][cells][:, genes]).nnz == 0
    assert (out.layers["counts"] != adata.X[cells][:, genes]).nnz == 0  # the recipe's
    assert (out.obsp["distances"] != adata.obsp["distances"][cells][:, cells]).nnz == 0
    np.testing.assert_array_equal(
        out.obsp["affinity"], adata.obsp["affinity"][np.ix_(cells, cells)]
    )
    np.testing.assert_array_equal(out.varm["PCs"], adata.varm["PCs"][genes])
    assert list(out.varm["loadings"]["w"]) == list(adata.varm["loadings"]["w"].iloc[genes])
    assert (out.varp["correlation"] != adata.varp["correlation"][genes][:, genes]).nnz == 0
    assert out.raw.shape == (len(cells), adata.raw.n_vars) and out.raw.X.dtype == np.int32
    assert (out.raw.X != adata.raw.X[cells]).nnz == 0
    assert list(out.raw.var["kind"]) == list(adata.raw.var["kind"])
    np.testing.assert_array_equal(out.raw.varm["raw_PCs"], adata.raw.varm["raw_PCs"])


def test_a_csc_layer_is_refused_out_of_core_naming_it(tmp_path):
    adata = synthetic_counts(80, 400, seed=32)
    adata.layers["spliced"] = adata.X.tocsc()
    adata.layers["counts"] = adata.X.tocsc()  # replaced by the recipe's: not read
    source = write_input(adata, tmp_path / "in.h5ad")
    with pytest.raises(InputError, match=r"in.h5ad: layers/spliced is stored as csc_matrix.*CSR"):
        preprocess_file(source, tmp_path / "o.h5ad", chunk_cells=20, min_genes=10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.h5ad"]
    del adata.layers["spliced"]
    source = write_input(adata, tmp_path / "in.h5ad")
    preprocess_file(source, tmp_path / "o.h5ad", chunk_cells=20, min_genes=10, n_top_genes=50)
    assert sorted(read_output(tmp_path / "o.h5ad").layers) == ["counts"]


def write_legacy_h5ad(adata: ad.AnnData, path: Path) -> Path:
    """``adata`` in anndata < 0.7's layout: record-array obs/var, h5sparse X and raw.X/raw.var."""
    import h5py

    x = sp.csr_matrix(adata.X)

    def sparse(group) -> None:
        group.attrs["h5sparse_format"] = "csr"
        group.attrs["h5sparse_shape"] = x.shape
        group["data"], group["indices"], group["indptr"] = x.data, x.indices, x.indptr

    def records(names) -> np.ndarray:
        return np.array([(str(n).encode(),) for n in names], dtype=[("index", "S16")])

    with h5py.File(path, "w") as root:
        sparse(root.create_group("X"))
        root["obs"], root["var"] = records(adata.obs_names), records(adata.var_names)
        sparse(root.create_group("raw.X"))
        root["raw.var"] = records(adata.var_names)
    return path


def test_anndata_before_0_7_layout_runs_in_memory_and_converted_out_of_core(tmp_path):
    """anndata reads the legacy layout whole: in memory it is read so (not refused), out of
    core it is converted once (raw carried), and reading it by blocks is one line with the fix."""
    adata = synthetic_counts(120, 400, seed=5)
    legacy = write_legacy_h5ad(adata, tmp_path / "legacy.h5ad")
    assert ad.read_h5ad(legacy).raw is not None  # anndata's own reader takes it
    options = {"n_top_genes": 50, "min_genes": 20, "max_pct_mito": None}
    memory, blocks = in_memory_and_chunked(tmp_path, legacy, **options)
    assert_same_output(memory, blocks)
    assert read_output(blocks).raw is not None
    with pytest.raises(InputError, match=r"anndata < 0\.7.*rewrite it once") as error:
        open_count_blocks(legacy, "h5ad")
    assert "\n" not in str(error.value)
