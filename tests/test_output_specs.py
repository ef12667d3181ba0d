"""Declared outputs: every array a job writes is declared in its spec, every array the spec says
is always written is there, and ``docs/outputs.md`` and the README's tables are the specs'."""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import pytest
import zarr

import gpu_genomics as gg
from gpu_genomics.io.spec import all_specs, outputs_markdown
from gpu_genomics.variants.convert import STANDARDIZED

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data"


def written(path: Path) -> list[str]:
    """Every array (and HDF5 link) at the root of an HDF5 file or Zarr store."""
    if path.suffix == ".zarr":
        return sorted(zarr.open_group(str(path), mode="r").array_keys())
    with h5py.File(path, "r") as handle:
        return sorted(handle.keys())


def test_docs_outputs_page_is_generated_from_the_specs():
    page = (REPO / "docs" / "outputs.md").read_text()
    assert page == outputs_markdown(all_specs()), "run `make docs` and commit docs/outputs.md"


def test_readme_tables_are_the_specs():
    readme = (REPO / "README.md").read_text()
    blocks = dict(re.findall(r"<!-- arrays: (.+?) -->\n(.*?)\n<!-- /arrays -->", readme, re.S))
    titles = {spec.title for spec in all_specs()}
    assert set(blocks) == titles
    for spec in all_specs():
        assert blocks[spec.title] == spec.markdown(), spec.title


@pytest.mark.parametrize("suffix", [".h5", ".zarr"])
def test_intervals_writes_what_it_declares(tmp_path, suffix):
    out = tmp_path / f"d{suffix}"
    gg.build_interval_dataset(DATA / "metadata.txt", DATA / "reference.fa.gz", out, device="cpu")
    names = written(out)
    spec = gg.intervals.INTERVAL_ARRAYS
    assert spec.undeclared(names) == []
    hdf5_only = {n for n in spec.names() if spec.lookup(n).when == "HDF5"}
    # the arrays of options (bigWig targets, negatives): tests/test_training_sets.py
    optional = {n for n in spec.names() if spec.lookup(n).when not in ("", "HDF5")}
    assert optional
    expected = set(spec.names()) - optional - (hdf5_only if suffix == ".zarr" else set())
    assert expected == set(names)


def test_basset_layout_writes_what_it_declares(tmp_path):
    out = tmp_path / "b.h5"
    gg.build_interval_dataset(DATA / "metadata.txt", DATA / "reference.fa.gz", out,
                              output_format="basset", device="cpu")  # fmt: skip
    assert set(written(out)) == set(gg.intervals.BASSET_ARRAYS.names())


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, {"onehot"}),
        ({"encoding": "tokens", "max_len": 64}, {"input_ids", "attention_mask"}),
        ({"encoding": "kmer-tokens", "scheme": "dnabert"}, {"input_ids", "attention_mask"}),
        ({"encoding": "kmer-counts", "k": 3}, {"kmer_counts", "kmer_names"}),
        (
            {"encoding": "kmer-counts", "k": 8},
            {"kmer_counts_data", "kmer_counts_indices", "kmer_counts_indptr", "kmer_names"},
        ),
    ],
)
def test_encode_writes_what_it_declares(tmp_path, options, expected):
    out = tmp_path / "e.zarr"
    gg.encode_file(REPO / "examples" / "sequences.fa.gz", out, device="cpu", **options)
    names = written(out)
    assert gg.sequence.ENCODE_ARRAYS.undeclared(names) == []
    assert set(names) == expected | {"names", "lengths"}


@pytest.mark.parametrize("standardize", [False, True])
def test_vcf_writes_what_it_declares(tmp_path, standardize):
    out = tmp_path / "v.h5"
    gg.convert_vcf(DATA / "vcf" / "example.vcf.gz", out, standardize=standardize, device="cpu")
    spec = gg.variants.VCF_ARRAYS
    expected = {a.name for a in spec if standardize or a.when != STANDARDIZED}
    assert set(written(out)) == expected


def test_bulk_writes_what_it_declares(tmp_path):
    out = tmp_path / "b.h5"
    gg.preprocess_bulk_file(DATA / "bulk" / "example_expression.tsv", out, device="cpu")
    assert set(written(out)) == set(gg.expression.BULK_ARRAYS.names())


def test_rank_encoding_writes_what_it_declares(tmp_path):
    pytest.importorskip("scanpy")
    import gpu_genomics.sc as gsc
    from gpu_genomics.expression.singlecell.rank import RANK_ARRAYS

    adata = gsc.read(DATA / "scrna" / "filtered_feature_bc_matrix")
    gsc.write_rank_encoding(gsc.rank_encode(adata, device="cpu"), tmp_path / "r.h5")
    assert set(written(tmp_path / "r.h5")) == set(RANK_ARRAYS.names())


def test_scrna_writes_what_it_declares(tmp_path):
    pytest.importorskip("scanpy")
    import anndata

    import gpu_genomics.sc as gsc
    from gpu_genomics.expression.singlecell.job import SCRNA_OUTPUT

    source = DATA / "scrna" / "filtered_feature_bc_matrix"
    raw = gsc.read(source)
    for flavor in ("seurat", "seurat_v3"):
        out = tmp_path / f"{flavor}.h5ad"
        gsc.preprocess_file(source, out, hvg_flavor=flavor, n_top_genes=500, device="cpu")
        adata = anndata.read_h5ad(out)
        elements = ["X", *(f"layers/{k}" for k in adata.layers), *(f"uns/{k}" for k in adata.uns)]
        elements += [f"obs/{c}" for c in adata.obs if c not in raw.obs]
        ours = ("gene_ids", "gene_symbols")  # added by the reader when the input lacks them
        elements += [f"var/{c}" for c in adata.var if c not in raw.var or c in ours]
        assert SCRNA_OUTPUT.undeclared(elements) == []
        always = {a.name for a in SCRNA_OUTPUT if not a.when}
        assert always <= set(elements)
        assert not adata.obsm and not adata.varm and not adata.obsp
