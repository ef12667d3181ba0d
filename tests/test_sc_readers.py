"""Readers: every input format gives the same AnnData as the matrix it was written from."""

from __future__ import annotations

import gzip
import logging

import anndata as ad
import h5py
import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp
from sc_data import synthetic_counts

import gpu_genomics.sc as gsc
from gpu_genomics.errors import InputError


@pytest.fixture(scope="module")
def small() -> ad.AnnData:
    adata = synthetic_counts(n_cells=40, n_genes=60, seed=3)
    adata.var["gene_ids"] = [f"ENSG{i:011d}" for i in range(adata.n_vars)]
    return adata


def assert_same(read: ad.AnnData, expected: ad.AnnData) -> None:
    assert sp.issparse(read.X) and read.X.format == "csr"
    np.testing.assert_array_equal(read.X.toarray(), expected.X.toarray())
    assert list(read.obs_names) == list(expected.obs_names)
    assert list(read.var_names) == list(expected.var_names)
    assert "gene_ids" in read.var and "gene_symbols" in read.var


def write_10x_h5(path, adata: ad.AnnData) -> None:
    """Cell Ranger v3 layout: /matrix with CSC (genes x cells) and /matrix/features."""
    csc = sp.csc_matrix(adata.X.T.astype(np.int32))
    with h5py.File(path, "w") as f:
        m = f.create_group("matrix")
        m["barcodes"] = np.array(adata.obs_names, dtype="S")
        m["data"], m["indices"], m["indptr"] = csc.data, csc.indices, csc.indptr
        m["shape"] = np.array(csc.shape, dtype=np.int32)
        feats = m.create_group("features")
        feats["id"] = np.array(adata.var["gene_ids"], dtype="S")
        feats["name"] = np.array(adata.var_names, dtype="S")
        feats["feature_type"] = np.array(["Gene Expression"] * adata.n_vars, dtype="S")
        feats["genome"] = np.array(["GRCh38"] * adata.n_vars, dtype="S")
        feats["_all_tag_keys"] = np.array(["genome"], dtype="S")


def write_10x_mtx(folder, adata: ad.AnnData) -> None:
    folder.mkdir()
    with gzip.open(folder / "matrix.mtx.gz", "wb") as f:
        scipy.io.mmwrite(f, sp.coo_matrix(adata.X.T.astype(np.int64)))
    with gzip.open(folder / "features.tsv.gz", "wt") as f:
        for gene_id, name in zip(adata.var["gene_ids"], adata.var_names, strict=True):
            f.write(f"{gene_id}\t{name}\tGene Expression\n")
    with gzip.open(folder / "barcodes.tsv.gz", "wt") as f:
        f.write("".join(f"{b}\n" for b in adata.obs_names))


def write_table(path, adata: ad.AnnData, *, transpose: bool) -> None:
    sep = "," if ".csv" in path.name else "\t"
    values = adata.X.toarray().astype(int)
    rows, columns = (
        (adata.var_names, adata.obs_names) if transpose else (adata.obs_names, adata.var_names)
    )
    matrix = values.T if transpose else values
    lines = [sep.join(["", *columns])]
    lines += [sep.join([r, *map(str, row)]) for r, row in zip(rows, matrix, strict=True)]
    text = "\n".join(lines) + "\n"
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)


def test_h5ad_and_zarr(tmp_path, small):
    small.write_h5ad(tmp_path / "a.h5ad")
    small.write_zarr(tmp_path / "a.zarr")
    assert_same(gsc.read(tmp_path / "a.h5ad"), small)
    assert_same(gsc.read(tmp_path / "a.zarr"), small)


def test_10x_h5(tmp_path, small):
    write_10x_h5(tmp_path / "filtered_feature_bc_matrix.h5", small)
    read = gsc.read(tmp_path / "filtered_feature_bc_matrix.h5")
    assert_same(read, small)
    assert list(read.var["gene_ids"]) == list(small.var["gene_ids"])


def test_10x_matrix_folder(tmp_path, small):
    write_10x_mtx(tmp_path / "filtered", small)
    read = gsc.read(tmp_path / "filtered")
    assert_same(read, small)
    assert list(read.var["gene_ids"]) == list(small.var["gene_ids"])


def test_loom(tmp_path, small):
    small.write_loom(tmp_path / "a.loom")
    assert_same(gsc.read(tmp_path / "a.loom"), small)


@pytest.mark.parametrize("name", ["cells.csv", "cells.tsv", "cells.tsv.gz"])
@pytest.mark.parametrize("transpose", [False, True])
def test_tables(tmp_path, small, name, transpose):
    write_table(tmp_path / name, small, transpose=transpose)
    assert_same(gsc.read(tmp_path / name, transpose=transpose), small)


def test_duplicate_gene_names_warn(tmp_path, small, caplog):
    dup = small.copy()
    dup.var_names = ["G1"] * 2 + list(dup.var_names[2:])
    dup.write_h5ad(tmp_path / "dup.h5ad")
    with caplog.at_level(logging.WARNING, logger="gpu_genomics"):
        read = gsc.read(tmp_path / "dup.h5ad")
    assert read.var_names.is_unique and "duplicate gene names" in caplog.text


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.h5ad", None, "no such file"),
        ("cells.xlsx", b"x", "unknown input type"),
        ("broken.h5ad", b"not hdf5", r"broken.h5ad: cannot be read as h5ad"),
        ("broken.h5", b"not hdf5", r"broken.h5: not a readable HDF5 file"),
        ("broken.loom", b"not hdf5", r"broken.loom: cannot be read as loom"),
        ("bad.csv", b",g1,g2\nc1,1,x\n", r"bad.csv.*line 2.*'x'"),
        ("empty.csv", b"", "empty"),
    ],
)
def test_unreadable_inputs_are_one_line_errors(tmp_path, name, content, message):
    if content is not None:
        (tmp_path / name).write_bytes(content)
    with pytest.raises(InputError, match=message) as info:
        gsc.read(tmp_path / name)
    assert "\n" not in str(info.value)


def test_transpose_applies_to_tables_only(tmp_path, small):
    small.write_h5ad(tmp_path / "a.h5ad")
    with pytest.raises(InputError, match=r"a\.h5ad: transpose=True applies to CSV/TSV tables only"):
        gsc.read(tmp_path / "a.h5ad", transpose=True)


def test_folder_without_matrix(tmp_path):
    with pytest.raises(InputError, match=r"a folder without matrix\.mtx"):
        gsc.read(tmp_path)
