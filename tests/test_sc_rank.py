"""rank_encode, compute_gene_medians, the user-file readers, write_rank_encoding and bin_values.

Each against a plain per-cell Python/NumPy statement of Geneformer's or scGPT's definition.
"""

from __future__ import annotations

import itertools
import json
import pickle

import numpy as np
import pytest
import scipy.sparse as sp

from gpu_genomics import InputError
from gpu_genomics.expression.singlecell.binning import bin_values
from gpu_genomics.expression.singlecell.mappings import (
    default_token_dictionary,
    load_gene_medians,
    load_token_dictionary,
)
from gpu_genomics.expression.singlecell.rank import (
    compute_gene_medians,
    rank_encode,
    write_rank_encoding,
)

anndata = pytest.importorskip("anndata")

N_CELLS, N_GENES = 40, 60


def make_adata(seed: int = 0, dtype=np.float32, fmt: str = "csr"):
    """Negative-binomial counts with many ties, an all-zero cell and a one-gene cell."""
    rng = np.random.default_rng(seed)
    counts = rng.negative_binomial(1, 0.6, size=(N_CELLS, N_GENES)).astype(dtype)
    counts[5] = 0
    counts[7] = 0
    counts[7, 3] = 4
    counts[:, 10] = 0  # a gene never detected
    matrix = {"csr": sp.csr_matrix, "csc": sp.csc_matrix, "dense": np.asarray}[fmt](counts)
    adata = anndata.AnnData(X=matrix)
    adata.obs_names = [f"cell{i}" for i in range(N_CELLS)]
    adata.var_names = [f"SYM{j}" for j in range(N_GENES)]
    adata.var["gene_ids"] = [f"ENSG{j:05d}" for j in range(N_GENES)]
    return adata


def dense_counts(adata) -> np.ndarray:
    x = adata.X
    return (x.toarray() if sp.issparse(x) else np.asarray(x)).astype(np.float64)


def reference_medians(counts: np.ndarray, gene_ids) -> dict[str, float]:
    """Per gene: NumPy median of its non-zero count / cell total * 10,000 values."""
    out = {}
    for j, gene in enumerate(gene_ids):
        values = [
            counts[i, j] / counts[i].sum() * 10_000
            for i in range(counts.shape[0])
            if counts[i, j] > 0
        ]
        if values:
            out[gene] = float(np.median(values))
    return out


def reference_encoding(counts, gene_ids, medians, tokens, *, n_tokens, special):
    """Plain per-cell statement of Geneformer's tokenize_cell with ties by gene index."""
    cells = []
    for i in range(counts.shape[0]):
        total = counts[i].sum()
        ranked = []
        for j, gene in enumerate(gene_ids):
            if counts[i, j] > 0 and gene in medians and gene in tokens:
                ranked.append((counts[i, j] / total * 10_000 / medians[gene], j))
        ranked = sorted(ranked, key=lambda item: (-item[0], item[1]))
        limit = n_tokens - 2 if special else n_tokens
        ids = [tokens[gene_ids[j]] for _, j in ranked[:limit]]
        if special:
            ids = [tokens["<cls>"], *ids, tokens["<eos>"]]
        cells.append(ids)
    return cells


def as_lists(encoding, host) -> list[list[int]]:
    offsets = host(encoding.offsets)
    token_ids = host(encoding.token_ids)
    assert offsets.dtype == np.int64 and token_ids.dtype == np.int32
    assert offsets[0] == 0 and offsets[-1] == len(token_ids)
    return [token_ids[a:b].tolist() for a, b in itertools.pairwise(offsets)]


def user_medians(gene_ids, seed=1) -> dict[str, float]:
    """Few distinct medians (so normalised values tie) and some genes without one: those
    without a token in :func:`user_tokens` (a gene with a token but no median is an error,
    as in Geneformer)."""
    rng = np.random.default_rng(seed)
    choices = rng.choice([0.5, 1.0, 2.0], size=len(gene_ids))
    return {g: float(m) for k, (g, m) in enumerate(zip(gene_ids, choices, strict=True)) if k % 5}


def user_tokens(gene_ids, seed=2) -> dict[str, int]:
    """A shuffled dictionary with special tokens, missing a few genes."""
    rng = np.random.default_rng(seed)
    ids = rng.permutation(len(gene_ids)) + 4
    tokens = {"<pad>": 0, "<mask>": 1, "<cls>": 2, "<eos>": 3}
    tokens.update({g: int(t) for k, (g, t) in enumerate(zip(gene_ids, ids, strict=True)) if k % 5})
    return tokens


@pytest.mark.parametrize(("n_tokens", "special"), [(2048, False), (6, False), (6, True), (3, True)])
def test_rank_encode_matches_reference(device, host, n_tokens, special):
    adata = make_adata()
    gene_ids = list(adata.var["gene_ids"])
    medians = user_medians(gene_ids)
    tokens = user_tokens(gene_ids)
    encoding = rank_encode(
        adata,
        n_tokens=n_tokens,
        gene_medians=medians,
        token_dictionary=tokens,
        special_tokens=special,
        device=device,
    )
    expected = reference_encoding(
        dense_counts(adata), gene_ids, medians, tokens, n_tokens=n_tokens, special=special
    )
    assert as_lists(encoding, host) == expected
    assert list(encoding.cell_ids) == list(adata.obs_names)
    assert encoding.n_tokens == n_tokens and encoding.special_tokens is special
    # the all-zero cell: empty, or just <cls> <eos>
    assert expected[5] == ([2, 3] if special else [])


def test_rank_encode_ties_broken_by_gene_index(device, host):
    counts = np.array([[3, 0, 3, 3, 1, 3]], dtype=np.int64)
    adata = anndata.AnnData(X=sp.csr_matrix(counts))
    medians = {g: 1.0 for g in adata.var_names}
    encoding = rank_encode(adata, gene_medians=medians, device=device)
    # default dictionary: <pad>, <mask>, then genes 0..5 -> 2..7
    assert as_lists(encoding, host) == [[2, 4, 5, 7, 6]]


def test_rank_encode_default_dictionary_and_medians_from_data(device, host):
    adata = make_adata(seed=3)
    gene_ids = list(adata.var["gene_ids"])
    counts = dense_counts(adata)
    medians = compute_gene_medians(adata, device=device)
    expected_medians = reference_medians(counts, gene_ids)
    assert medians.keys() == expected_medians.keys()
    for gene, value in expected_medians.items():
        assert medians[gene] == value, gene  # exact: same float64 operations
    encoding = rank_encode(adata, n_tokens=20, special_tokens=True, device=device)
    tokens = encoding.token_dictionary
    assert list(tokens)[:4] == ["<pad>", "<mask>", "<cls>", "<eos>"]
    assert [tokens[g] for g in gene_ids] == list(range(4, 4 + N_GENES))
    expected = reference_encoding(
        counts, gene_ids, expected_medians, tokens, n_tokens=20, special=True
    )
    assert as_lists(encoding, host) == expected


@pytest.mark.parametrize("fmt", ["csc", "dense"])
def test_rank_encode_other_formats_and_int_dtype(device, host, fmt):
    adata = make_adata(seed=4, dtype=np.int32, fmt=fmt)
    reference = make_adata(seed=4)
    gene_ids = list(adata.var["gene_ids"])
    medians, tokens = user_medians(gene_ids), user_tokens(gene_ids)
    got = rank_encode(
        adata, n_tokens=8, gene_medians=medians, token_dictionary=tokens, device=device
    )
    want = rank_encode(
        reference, n_tokens=8, gene_medians=medians, token_dictionary=tokens, device="cpu"
    )
    assert as_lists(got, host) == as_lists(want, np.asarray)


def test_rank_encode_gene_key_and_layer(device, host):
    adata = make_adata(seed=5)
    adata.layers["counts"] = adata.X.copy()
    adata.X = None
    medians = {f"SYM{j}": 1.0 for j in range(0, N_GENES, 2)}
    tokens = {"<pad>": 0, "<mask>": 1, **{f"SYM{j}": j + 2 for j in range(0, N_GENES, 2)}}
    encoding = rank_encode(
        adata, n_tokens=50, gene_medians=medians, token_dictionary=tokens, layer="counts",
        gene_key=None, device=device,
    )  # fmt: skip
    assert host(encoding.token_ids).size == 0  # var["gene_ids"] is used: no SYM names match
    adata.var["symbol"] = adata.var_names
    encoding = rank_encode(
        adata, n_tokens=50, gene_medians=medians, token_dictionary=tokens, layer="counts",
        gene_key="symbol", device=device,
    )  # fmt: skip
    tokens = encoding.token_dictionary
    expected = reference_encoding(
        dense_counts(anndata.AnnData(adata.layers["counts"])),
        list(adata.var_names),
        medians,
        tokens,
        n_tokens=50,
        special=False,
    )
    assert as_lists(encoding, host) == expected


@pytest.mark.parametrize("suffix", [".pkl", ".json", ".tsv", "-header.tsv"])
def test_user_files(tmp_path, device, host, suffix):
    adata = make_adata(seed=6)
    gene_ids = list(adata.var["gene_ids"])
    medians, tokens = user_medians(gene_ids, 7), user_tokens(gene_ids, 8)
    paths = []
    for name, mapping in (("medians", medians), ("tokens", tokens)):
        path = tmp_path / f"{name}{suffix}"
        if suffix == ".pkl":
            path.write_bytes(pickle.dumps({k: np.float32(v) for k, v in mapping.items()}))
            if name == "tokens":
                path.write_bytes(pickle.dumps(mapping))
        elif suffix == ".json":
            path.write_text(json.dumps(mapping))
        else:
            header = "gene\tvalue\n" if suffix.startswith("-header") else ""
            path.write_text(header + "".join(f"{k}\t{v!r}\n" for k, v in mapping.items()))
        paths.append(path)
    loaded = load_gene_medians(paths[0])
    assert loaded.keys() == medians.keys()
    assert all(np.isclose(loaded[g], medians[g]) for g in medians)
    assert load_token_dictionary(paths[1]) == tokens
    encoding = rank_encode(
        adata,
        n_tokens=10,
        gene_medians=paths[0],
        token_dictionary=paths[1],
        special_tokens=True,
        device=device,
    )
    expected = reference_encoding(
        dense_counts(adata), gene_ids, loaded, tokens, n_tokens=10, special=True
    )
    assert as_lists(encoding, host) == expected


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("m.tsv", "ENSG1\t1.0\nENSG2\t0\n", "ENSG2"),
        ("m.tsv", "ENSG1\t1.0\nENSG2\n", "line 2"),
        ("m.tsv", "ENSG1\t1.0\nENSG1\t2.0\n", "line 2"),
        ("m.json", "[1, 2]", "not an object"),
        ("m.json", "{oops", "not valid JSON"),
        ("m.csv", "ENSG1,1\n", "suffix"),
        ("m.pkl", "not a pickle", "cannot read the pickle"),
    ],
)
def test_bad_median_files(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InputError, match=message) as info:
        load_gene_medians(path)
    assert "\n" not in str(info.value)


def test_bad_token_files_and_arguments(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("ENSG1\t4\nENSG2\tx\n")
    with pytest.raises(InputError, match="ENSG2"):
        load_token_dictionary(path)
    with pytest.raises(InputError, match="not found"):
        load_token_dictionary(tmp_path / "missing.pkl")
    adata = make_adata()
    with pytest.raises(InputError, match="<cls>"):
        rank_encode(adata, special_tokens=True, token_dictionary={"ENSG00000": 5}, device="cpu")
    with pytest.raises(InputError, match="n_tokens"):
        rank_encode(adata, n_tokens=0, device="cpu")
    with pytest.raises(InputError, match="layer"):
        rank_encode(adata, layer="nope", device="cpu")


def test_mapping_arguments_must_be_paths_or_dicts():
    adata = make_adata()
    with pytest.raises(InputError, match=r"`gene_medians` must be a path or a dict .* not int"):
        rank_encode(adata, gene_medians=42, device="cpu")
    with pytest.raises(InputError, match=r"`token_dictionary` must be a path or a dict .* list"):
        rank_encode(adata, token_dictionary=[1], device="cpu")
    with pytest.raises(InputError, match=r"gene_medians: gene 'ENSG00001' has median -1"):
        rank_encode(adata, gene_medians={"ENSG00001": -1}, device="cpu")
    with pytest.raises(InputError, match=r"token_dictionary: token 'ENSG00001' has id 'x'"):
        rank_encode(adata, token_dictionary={"ENSG00001": "x"}, device="cpu")
    for function in (rank_encode, compute_gene_medians):
        with pytest.raises(InputError, match=r"target_sum=0 must be a positive number"):
            function(adata, target_sum=0, device="cpu")


def test_default_token_dictionary():
    assert default_token_dictionary(["g1", "g2", "g1"]) == {
        "<pad>": 0,
        "<mask>": 1,
        "g1": 2,
        "g2": 3,
    }
    assert default_token_dictionary(np.array(["g1", "g2"]), special_tokens=True) == {
        "<pad>": 0,
        "<mask>": 1,
        "<cls>": 2,
        "<eos>": 3,
        "g1": 4,
        "g2": 5,
    }


def test_parameters_after_adata_are_keyword_only():
    adata = make_adata()
    with pytest.raises(TypeError):
        rank_encode(adata, 8)  # type: ignore[misc]
    with pytest.raises(TypeError):
        bin_values(adata, 51)  # type: ignore[misc]
    with pytest.raises(TypeError):
        default_token_dictionary(["g1"], True)  # type: ignore[misc]  # noqa: FBT003 (options are keyword-only)


@pytest.mark.parametrize("bad", [-1.0, np.nan, np.inf])
def test_rank_encode_rejects_bad_values(device, bad):
    adata = make_adata()
    adata.X = adata.X.toarray()
    adata.X[3, 8] = bad
    with pytest.raises(InputError, match=r"'cell3' \(row 3\).*'SYM8'"):
        rank_encode(adata, device=device)


@pytest.mark.parametrize("suffix", [".parquet", ".h5", ".zarr"])
def test_write_rank_encoding(tmp_path, device, suffix):
    adata = make_adata(seed=9)
    encoding = rank_encode(adata, n_tokens=12, special_tokens=True, device=device)
    offsets = np.asarray(encoding.to_host().offsets)
    token_ids = np.asarray(encoding.to_host().token_ids)
    path = tmp_path / f"enc{suffix}"
    write_rank_encoding(encoding, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary left
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        assert str(table.schema.field("input_ids").type) == "list<element: int32>"
        rows = table.column("input_ids").to_pylist()
        assert table.column("cell_id").to_pylist() == list(adata.obs_names)
        assert table.column("length").to_pylist() == np.diff(offsets).tolist()
        meta = json.loads(table.schema.metadata[b"gpu_genomics"])
        assert meta["n_tokens"] == 12 and meta["token_dictionary"] == encoding.token_dictionary
    else:
        if suffix == ".h5":
            import h5py

            store = h5py.File(path, "r")
            cell_ids = [c.decode() for c in store["cell_id"][:]]
        else:
            import zarr

            store = zarr.open_group(str(path), mode="r")
            cell_ids = list(store["cell_id"][:])
        assert cell_ids == list(adata.obs_names)
        np.testing.assert_array_equal(store["offsets"][:], offsets)
        got_tokens = store["token_ids"][:]
        assert got_tokens.dtype == np.int32
        rows = [got_tokens[a:b].tolist() for a, b in itertools.pairwise(offsets)]
        assert int(store.attrs["n_tokens"]) == 12
    assert rows == [token_ids[a:b].tolist() for a, b in itertools.pairwise(offsets)]


def test_write_rank_encoding_bad_path(tmp_path):
    encoding = rank_encode(make_adata(), device="cpu")
    with pytest.raises(InputError, match=r"\.parquet"):
        write_rank_encoding(encoding, tmp_path / "out.txt")
    with pytest.raises(InputError, match="does not exist"):
        write_rank_encoding(encoding, tmp_path / "missing" / "out.parquet")
    assert list(tmp_path.iterdir()) == []


# --- bin_values -------------------------------------------------------------------------


def reference_bins(values: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Per cell, scGPT: left = np.digitize(x, edges), right = np.digitize(x, edges, right=True)
    with edges = np.quantile(non-zeros, linspace(0, 1, n_bins - 1)); zeros 0."""
    left = np.zeros(values.shape, dtype=np.int64)
    right = np.zeros(values.shape, dtype=np.int64)
    for i, row in enumerate(values):
        nonzero = row > 0
        if not nonzero.any():
            continue
        edges = np.quantile(row[nonzero], np.linspace(0, 1, n_bins - 1))
        left[i, nonzero] = np.digitize(row[nonzero], edges)
        right[i, nonzero] = np.digitize(row[nonzero], edges, right=True)
    return left, right


def log_normalised(seed: int = 10, fmt: str = "csr"):
    adata = make_adata(seed=seed, fmt=fmt)
    x = dense_counts(adata)
    totals = np.maximum(x.sum(axis=1, keepdims=True), 1)
    values = np.log1p(x / totals * 1e4).astype(np.float32)
    adata.X = sp.csr_matrix(values) if fmt == "csr" else values
    return adata, values.astype(np.float64)


@pytest.mark.parametrize("n_bins", [51, 5])
def test_bin_values_left_matches_numpy(device, n_bins):
    adata, values = log_normalised()
    bin_values(adata, n_bins=n_bins, tie_break="left", device=device)
    got = adata.layers["X_binned"]
    assert sp.issparse(got) and got.format == "csr" and got.dtype == np.int64
    np.testing.assert_array_equal(got.indptr, adata.X.indptr)  # same pattern
    np.testing.assert_array_equal(got.indices, adata.X.indices)
    np.testing.assert_array_equal(got.toarray(), reference_bins(values, n_bins)[0])


def test_bin_values_random_ties(device):
    adata, values = log_normalised(seed=11, fmt="dense")
    got = bin_values(adata, n_bins=51, seed=3, inplace=False, device=device)
    assert isinstance(got, np.ndarray) and got.dtype == np.int64
    assert "X_binned" not in adata.layers
    left, right = reference_bins(values, 51)
    nonzero = values > 0
    assert (got[~nonzero] == 0).all()
    # scGPT's _digitize(side="both"): ceil(u * (right - left) + left), u in [0, 1)
    lower = np.where(left > right, right + 1, left)
    assert ((got >= lower) & (got <= left))[nonzero].all()
    assert (got[nonzero] >= 1).all() and (got <= 50).all()
    again = bin_values(adata, n_bins=51, seed=3, inplace=False, device=device)
    np.testing.assert_array_equal(got, again)
    other = bin_values(adata, n_bins=51, seed=4, inplace=False, device=device)
    tied = nonzero & (left > right + 1)
    assert tied.sum() > 100 and (other[tied] != got[tied]).any()
    # a value tied with several edges lands uniformly among them: for the one-gene cell 7
    # (all 50 edges equal) the bins over many seeds cover 1..50 evenly
    cell = anndata.AnnData(X=sp.csr_matrix(np.array([[0.0, 2.0]] * 2000)))
    bins = bin_values(cell, n_bins=51, seed=0, inplace=False, device=device).toarray()[:, 1]
    counts = np.bincount(bins, minlength=51)[1:]
    assert counts.sum() == 2000 and counts.min() > 15 and counts.max() < 70


def test_nearby_seeds_draw_unrelated_streams():
    from gpu_genomics.expression.singlecell.binning import _splitmix_uniform

    n = 10_000
    streams = [_splitmix_uniform(np, seed, n) for seed in range(4)]
    for a in range(4):
        for b in range(a + 1, 4):  # no shift of one stream is the other's
            shared = np.intersect1d(streams[a], streams[b])
            assert len(shared) == 0, (a, b, len(shared))
            assert abs(np.corrcoef(streams[a], streams[b])[0, 1]) < 0.05
    assert 0.49 < streams[0].mean() < 0.51


def test_bin_values_rejects_negative(device):
    adata, _ = log_normalised()
    adata.X = adata.X.toarray()
    adata.X[2, 4] = -0.5
    with pytest.raises(InputError, match=r"'cell2' \(row 2\)"):
        bin_values(adata, device=device)
    with pytest.raises(InputError, match="n_bins"):
        bin_values(adata, n_bins=2, device=device)


@pytest.mark.gpu
def test_bin_values_gpu_equals_cpu():
    adata, _ = log_normalised(seed=12)
    cpu = bin_values(adata, seed=5, inplace=False, device="cpu")
    gpu = bin_values(adata, seed=5, inplace=False, device="gpu")
    np.testing.assert_array_equal(cpu.toarray(), gpu.toarray())


class _RunsCode:
    """A pickle that calls ``os.system`` when loaded (what a crafted dictionary file does)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_gene_with_a_token_but_no_median_is_an_error_as_in_geneformer(device):
    adata = make_adata(seed=3)
    gene_ids = list(adata.var["gene_ids"])
    medians = {g: 1.0 for g in gene_ids[2:]}
    with pytest.raises(InputError, match=r"2 genes of the data have a token but no gene median"):
        rank_encode(adata, gene_medians=medians, device=device)  # the default dictionary
    tokens = {"<pad>": 0, "<mask>": 1, **{g: i + 2 for i, g in enumerate(gene_ids[2:])}}
    rank_encode(adata, gene_medians=medians, token_dictionary=tokens, device=device)  # no token


def test_ensembl_id_is_the_default_gene_key_as_in_geneformer(device, host):
    adata = make_adata(seed=3)
    ids = [f"ENSG{j:05d}" for j in range(adata.n_vars)]
    adata.var["ensembl_id"] = ids
    by_default = rank_encode(adata, n_tokens=20, device=device)
    by_key = rank_encode(adata, n_tokens=20, gene_key="ensembl_id", device=device)
    assert as_lists(by_default, host) == as_lists(by_key, host)
    assert set(by_default.token_dictionary) >= set(ids)


def test_a_crafted_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "ran"
    for name, payload in (
        ("direct.pkl", _RunsCode(marker)),
        ("nested.pkl", {"ENSG1": 1.0, "ENSG2": _RunsCode(marker)}),
    ):
        path = tmp_path / name
        path.write_bytes(pickle.dumps(payload))
        for load in (load_gene_medians, load_token_dictionary):
            with pytest.raises(InputError, match=r"references (posix|os)\.system.*refused") as info:
                load(path)
            assert "\n" not in str(info.value) and name in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_geneformer_style_pickles_load_at_every_protocol(tmp_path, protocol):
    import collections

    medians = {"ENSG1": np.float32(0.5), "ENSG2": np.float64(2.25), "ENSG3": 3}
    tokens = collections.OrderedDict([("<pad>", 0), ("<mask>", 1), ("ENSG1", np.int64(2))])
    (tmp_path / "m.pkl").write_bytes(pickle.dumps(medians, protocol=protocol))
    (tmp_path / "t.pkl").write_bytes(pickle.dumps(tokens, protocol=protocol))
    assert load_gene_medians(tmp_path / "m.pkl") == {"ENSG1": 0.5, "ENSG2": 2.25, "ENSG3": 3.0}
    assert load_token_dictionary(tmp_path / "t.pkl") == {"<pad>": 0, "<mask>": 1, "ENSG1": 2}
