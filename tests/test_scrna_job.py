"""The ``scrna`` job (:func:`gpu_genomics.expression.singlecell.job.preprocess_file`) called as a
library: the specification's recipe end to end, its options, the Geneformer rank encoding of the
kept cells, errors naming the Python parameters (nothing written), provenance of every output."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
from sc_data import synthetic_counts
from test_encode_job import check_provenance, flat_provenance, parse_attr
from test_singlecell import spec_recipe

from gpu_genomics.device import gpu_status
from gpu_genomics.errors import DeviceError, InputError
from gpu_genomics.expression.singlecell.job import preprocess_file
from gpu_genomics.io.provenance import PROVENANCE_KEYS

STEPS = ("filter_cells", "filter_genes", "qc_metrics", "filter_qc", "normalize_total", "log1p",
         "hvg (seurat)", "scale")  # fmt: skip
RECIPE_DEFAULTS = {
    "min_genes": 200,
    "min_cells": 3,
    "max_genes": 2500,
    "max_pct_mito": 5.0,
    "mito_prefix": "MT-",
    "target_sum": 1e4,
    "n_top_genes": 2000,
    "hvg_flavor": "seurat",
    "subset_hvg": True,
    "scale_max_value": 10.0,
    "scale_data": True,
    "value_bins": None,
    "bin_seed": 0,
}


@pytest.fixture(scope="module")
def counts_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("scrna") / "pbmc_like.h5ad"
    synthetic_counts().write_h5ad(path)
    return path


def preprocess(input_path, output_path, **options) -> dict:
    """``preprocess_file`` on the CPU, returning its summary."""
    return preprocess_file(input_path, output_path, device="cpu", **options)


def dense(x):
    return x.toarray() if sp.issparse(x) else np.asarray(x)


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("suffix", [".h5ad", ".zarr"])
def test_no_options_is_the_specification_recipe(tmp_path, counts_file, suffix):
    out = tmp_path / f"out{suffix}"
    summary = preprocess(counts_file, out)
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
    assert listing(tmp_path) == [out.name]
    seconds = summary.pop("seconds")
    assert isinstance(seconds, float) and seconds >= 0
    assert summary == {
        "output": str(out),
        "n_cells": expected.n_obs,
        "n_genes": expected.n_vars,
        "rank_output": None,
        "out_of_core": False,
    }


def test_options_reach_the_recipe(tmp_path, counts_file):
    out = tmp_path / "out.h5ad"
    summary = preprocess(counts_file, out, n_top_genes=100, subset_hvg=False, scale_data=False,
                         max_pct_mito=50, dataset_id="d1", dataset_name="Dataset one")  # fmt: skip
    ours = ad.read_h5ad(out)
    assert int(ours.var["highly_variable"].sum()) == 100
    assert ours.n_vars > 100 and summary["n_genes"] == ours.n_vars
    assert ours.uns["dataset_card"]["name"] == "Dataset one"
    assert ours.uns["dataset_card"]["dataset_id"] == "d1"
    assert ours.uns["preprocess_recipe"]["max_pct_mito"] == 50
    assert (
        ours.uns["preprocess_recipe"]["subset_hvg"] is False
        or not (ours.uns["preprocess_recipe"]["subset_hvg"])
    )
    assert dense(ours.X).min() >= 0  # not scaled
    assert "mean" not in ours.var and "std" not in ours.var


def test_none_skips_a_bound(tmp_path, counts_file):
    out = tmp_path / "o.h5ad"
    preprocess(counts_file, out, max_genes=None, max_pct_mito=None, scale_data=False)
    ours = ad.read_h5ad(out)
    assert ours.obs["n_genes_by_counts"].max() >= 2500  # the deep cells stay
    assert ours.uns["preprocess_recipe"]["max_genes"] == "none"
    assert ours.uns["preprocess_recipe"]["max_pct_mito"] == "none"


def test_logs_cells_and_genes_after_each_step(tmp_path, counts_file, caplog):
    with caplog.at_level(logging.INFO, logger="gpu_genomics"):
        preprocess(counts_file, tmp_path / "o.h5ad")
    messages = [record.getMessage() for record in caplog.records]
    for step in STEPS:
        line = next(message for message in messages if message.startswith(step))
        assert " cells " in line and " genes " in line and line.endswith(" s")
    assert any(m.startswith(f"read {counts_file}: 500 cells x 4000 genes") for m in messages)
    assert any(m.startswith(f"wrote {tmp_path / 'o.h5ad'}: ") for m in messages)


def test_transposed_csv_gives_the_same(tmp_path):
    small = synthetic_counts(n_cells=80, n_genes=400, seed=4)
    table = small.to_df()
    table.to_csv(tmp_path / "cells.csv")
    table.T.to_csv(tmp_path / "genes.tsv", sep="\t")
    options = {"min_genes": 20, "n_top_genes": 50, "max_genes": None, "max_pct_mito": None}
    preprocess(tmp_path / "cells.csv", tmp_path / "a.h5ad", **options)
    preprocess(tmp_path / "genes.tsv", tmp_path / "b.h5ad", transpose=True, **options)
    a, b = ad.read_h5ad(tmp_path / "a.h5ad"), ad.read_h5ad(tmp_path / "b.h5ad")
    assert list(a.obs_names) == list(b.obs_names) and list(a.var_names) == list(b.var_names)
    np.testing.assert_allclose(dense(a.X), dense(b.X), rtol=1e-6)
    assert a.uns["dataset_card"]["dataset_id"] == "cells"
    assert b.uns["dataset_card"]["dataset_id"] == "genes"


@pytest.mark.parametrize("suffix", [".parquet", ".pq"])
def test_rank_encode_writes_tokens_of_the_kept_cells(tmp_path, counts_file, suffix):
    """Geneformer tokens of the cells the recipe keeps, from their raw counts over all genes
    (cell totals over every gene, genes seen in fewer than 3 cells included), in Parquet
    under either of its suffixes."""
    pq = pytest.importorskip("pyarrow.parquet")
    from gpu_genomics.expression.singlecell import rank_encode

    out, tokens = tmp_path / "out.h5ad", tmp_path / f"tokens{suffix}"
    summary = preprocess(counts_file, out, rank_output=tokens, model_version=1, n_tokens=4096)
    table = pq.read_table(tokens).to_pandas()
    ours = ad.read_h5ad(out)
    assert table["cell_id"].tolist() == list(ours.obs_names)
    assert table["length"].min() > 0
    kept = ad.read_h5ad(counts_file)[ours.obs_names].copy()  # every gene
    expected = rank_encode(kept, model_version=1, n_tokens=4096, counts_key=None, device="cpu")
    got = [list(ids) for ids in table["input_ids"]]
    assert got == [expected.cell_tokens(i).tolist() for i in range(len(expected))]
    # genes the recipe's filter_genes(min_cells=3) removed still count, as in Geneformer
    detected_in = np.asarray((kept.X > 0).sum(axis=0)).ravel()
    rare = {kept.var_names[g] for g in np.flatnonzero((detected_in > 0) & (detected_in < 3))}
    vocabulary = {token: gene for gene, token in expected.token_dictionary.items()}
    assert rare and rare <= {vocabulary[t] for ids in got for t in ids}
    assert summary["rank_output"] == str(tokens)
    metadata = json.loads(pq.read_schema(tokens).metadata[b"gpu_genomics"])
    assert metadata["n_tokens"] == 4096 and metadata["special_tokens"] is False


def test_rank_encode_options_and_hdf5(tmp_path, counts_file):
    import h5py

    tokens = tmp_path / "tokens.h5"
    preprocess(counts_file, tmp_path / "o.h5ad", rank_output=tokens, n_tokens=16,
               special_tokens=True, n_top_genes=100)  # fmt: skip
    with h5py.File(tokens) as f:
        offsets, ids = f["offsets"][...], f["token_ids"][...]
        vocabulary = dict(
            zip([v.decode() for v in f["vocab_token"][...]], f["vocab_id"][...], strict=True)
        )
        assert f.attrs["n_tokens"] == 16 and f.attrs["special_tokens"]
    lengths = np.diff(offsets)
    assert lengths.max() == 16 and lengths.min() >= 3
    assert (ids[offsets[:-1]] == vocabulary["<cls>"]).all()
    assert (ids[offsets[1:] - 1] == vocabulary["<eos>"]).all()


def test_rank_encode_with_gene_medians_and_token_dictionary_files(tmp_path, counts_file):
    pq = pytest.importorskip("pyarrow.parquet")
    adata = ad.read_h5ad(counts_file)
    genes = list(adata.var_names)
    medians = {gene: 1.0 + (i % 7) for i, gene in enumerate(genes)}
    dictionary = {"<pad>": 0, "<mask>": 1, **{gene: i + 2 for i, gene in enumerate(genes)}}
    (tmp_path / "medians.json").write_text(json.dumps(medians))
    (tmp_path / "tokens.json").write_text(json.dumps(dictionary))
    out = tmp_path / "t.parquet"
    preprocess(counts_file, tmp_path / "o.h5ad", rank_output=out, n_top_genes=100,
               gene_medians=tmp_path / "medians.json", model_version=1,
               token_dictionary=tmp_path / "tokens.json")  # fmt: skip
    from gpu_genomics.expression.singlecell import rank_encode

    kept = adata[ad.read_h5ad(tmp_path / "o.h5ad").obs_names].copy()
    expected = rank_encode(
        kept, gene_medians=medians, token_dictionary=dictionary, model_version=1, counts_key=None,
        device="cpu",
    )  # fmt: skip
    got = [list(ids) for ids in pq.read_table(out).to_pandas()["input_ids"]]
    assert got == [expected.cell_tokens(i).tolist() for i in range(len(expected))]
    record = json.loads(pq.read_schema(out).metadata[b"gpu_genomics_provenance"])
    check_provenance(
        record,
        tool="gpu-genomics scrna",
        inputs={
            "counts": counts_file,
            "gene medians": tmp_path / "medians.json",
            "token dictionary": tmp_path / "tokens.json",
        },
    )


# --- provenance -----------------------------------------------------------------------------
def test_every_output_carries_provenance(tmp_path, counts_file):
    import h5py
    import pyarrow.parquet as pq

    parameters = {
        "transpose": False,
        **RECIPE_DEFAULTS,
        "n_top_genes": 100,
        "rank_output": str(tmp_path / "t.parquet"),
        "model_version": 2,
        "n_tokens": 4096,
        "gene_medians": None,
        "token_dictionary": None,
        "gene_mapping": None,
        "special_tokens": True,
        "gene_key": None,
        "ties": "geneformer",
        "rank_attributes": {},
        "dataset_id": None,
        "dataset_name": None,
        "chunk_cells": None,  # in memory
        "workers": None,
    }
    expect = {"tool": "gpu-genomics scrna", "inputs": {"counts": counts_file}}
    preprocess(counts_file, tmp_path / "o.h5ad", rank_output=tmp_path / "t.parquet",
               n_top_genes=100, command="scrna here")  # fmt: skip
    uns = dict(ad.read_h5ad(tmp_path / "o.h5ad").uns["provenance"])
    assert set(uns) == set(PROVENANCE_KEYS)
    check_provenance(flat_provenance(uns), parameters=parameters, command="scrna here", **expect)
    schema = pq.read_schema(tmp_path / "t.parquet").metadata
    record = json.loads(schema[b"gpu_genomics_provenance"])
    check_provenance(record, parameters=parameters, command="scrna here", **expect)

    preprocess(counts_file, tmp_path / "o.zarr", rank_output=tmp_path / "t.h5",
               n_top_genes=100, command="again")  # fmt: skip
    parameters["rank_output"] = str(tmp_path / "t.h5")
    uns = dict(ad.read_zarr(tmp_path / "o.zarr").uns["provenance"])
    check_provenance(flat_provenance(uns), parameters=parameters, command="again", **expect)
    with h5py.File(tmp_path / "t.h5") as f:
        attrs = {key: parse_attr(value) for key, value in f.attrs.items()}
    assert set(attrs) - set(PROVENANCE_KEYS) == {"encoding", "n_tokens", "special_tokens"}
    check_provenance({k: attrs[k] for k in PROVENANCE_KEYS}, parameters=parameters, **expect)


# --- bad input ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"min_genes": 100000}, InputError, "filter_cells(min_genes=100000) removed every cell"),
        ({"rank_output": "x.txt"}, InputError, "rank_output='x.txt' must end in"),
        ({"target_sum": 0}, InputError, "target_sum=0 must be a number > 0"),
        ({"n_top_genes": 0}, InputError, "n_top_genes=0 must be an integer >= 1"),
        ({"scale_max_value": -1}, InputError, "scale_max_value=-1 must be a number > 0"),
        ({"min_genes": "x"}, InputError, "min_genes='x' must be an integer >= 0"),
        ({"hvg_flavor": "x"}, InputError, "hvg_flavor='x' is not one of seurat, cell_ranger"),
        ({"device": "tpu"}, InputError, "device='tpu' is not one of auto, gpu, cpu"),
        pytest.param(
            {"hvg_flavor": "seurat_v3", "device": "gpu"},
            DeviceError,
            "device='gpu' was requested",
            marks=pytest.mark.skipif(gpu_status()[0], reason="a GPU is usable here"),
        ),
    ],
)
def test_errors_name_the_parameter_and_write_nothing(
    tmp_path, counts_file, options, error, message
):
    out = tmp_path / "out.h5ad"
    options = {"device": "cpu", **options}
    with pytest.raises(error) as info:
        preprocess_file(counts_file, out, **options)
    assert message in str(info.value) and "\n" not in str(info.value), info.value
    assert "--" not in str(info.value)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_negative_counts_name_the_file_cell_and_gene(tmp_path):
    adata = synthetic_counts(n_cells=50, n_genes=300)
    values = adata.X.toarray()
    values[3, 40] = -2
    adata.X = sp.csr_matrix(values)
    adata.write_h5ad(tmp_path / "neg.h5ad")
    with pytest.raises(InputError) as info:
        preprocess(tmp_path / "neg.h5ad", tmp_path / "o.h5ad")
    message = str(info.value)
    assert "neg.h5ad: the single-cell recipe needs non-negative finite values, but cell " in message
    assert "'cell3' (row 3), gene 'G40' (column 40) of X holds -2.0 (negative)" in message
    assert listing(tmp_path) == ["neg.h5ad"]


def test_bad_paths_fail_first_and_write_nothing(tmp_path, counts_file, caplog):
    with pytest.raises(InputError, match=r"must end in \.h5ad or \.zarr"):
        preprocess(counts_file, tmp_path / "out.csv")
    with pytest.raises(InputError, match="no such file or folder"):
        preprocess(tmp_path / "nope.h5ad", tmp_path / "o.h5ad")
    with pytest.raises(InputError, match="does not exist"):
        preprocess(counts_file, tmp_path / "no" / "o.h5ad")
    with caplog.at_level(logging.INFO, logger="gpu_genomics"):
        with pytest.raises(InputError) as info:
            preprocess(counts_file, tmp_path / "o.h5ad", rank_output=tmp_path / "no" / "t.parquet")
    assert "does not exist" in str(info.value) and "filter_cells" not in caplog.text
    with pytest.raises(InputError, match="gene median file not found"):
        preprocess(counts_file, tmp_path / "o.h5ad", rank_output=tmp_path / "t.parquet",
                   gene_medians=tmp_path / "nope.pkl")  # fmt: skip
    assert listing(tmp_path) == []


def test_a_failed_write_removes_the_rank_encoding(tmp_path, counts_file, monkeypatch):
    """The tokens are written first; when the AnnData then fails, neither is left."""
    real = ad.AnnData.write_h5ad

    def fail(self, path, *args, **kwargs):
        real(self, path, *args, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ad.AnnData, "write_h5ad", fail)
    with pytest.raises(OSError, match="No space left"):
        preprocess(counts_file, tmp_path / "o.h5ad", rank_output=tmp_path / "t.parquet",
                   n_top_genes=100)  # fmt: skip
    assert listing(tmp_path) == []


def test_unknown_keyword_is_a_type_error_naming_it(tmp_path, counts_file):
    with pytest.raises(TypeError, match="unexpected keyword argument 'min_genesx'"):
        preprocess_file(counts_file, tmp_path / "o.h5ad", min_genesx=1)
    with pytest.raises(TypeError):
        preprocess_file(counts_file, tmp_path / "o.h5ad", True)  # noqa: FBT003 (options are keyword-only)
    assert listing(tmp_path) == []


def test_exported_as_gpu_genomics_sc():
    import gpu_genomics.sc as gsc

    if not hasattr(gsc, "preprocess_file"):
        pytest.skip("gpu_genomics.sc does not export preprocess_file yet")
    assert gsc.preprocess_file is preprocess_file


@pytest.mark.parametrize("name", ["same.zarr", "tokens.ZARR"])
def test_the_tokens_and_the_output_cannot_be_one_file(tmp_path, counts_file, name):
    out = tmp_path / name
    with pytest.raises(InputError, match=r"rank_output=.*must differ from the output"):
        preprocess(counts_file, out, rank_output=tmp_path / "." / name)
    assert list(tmp_path.iterdir()) == []
