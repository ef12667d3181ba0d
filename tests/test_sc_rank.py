"""rank_encode, compute_gene_medians, the user-file readers, write_rank_encoding and bin_values.

Each against a plain per-cell Python/NumPy statement of Geneformer's or scGPT's definition.
"""

from __future__ import annotations

import collections
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
    load_gene_mapping,
    load_gene_medians,
    load_token_dictionary,
)
from gpu_genomics.expression.singlecell.rank import (
    compute_gene_medians,
    gene_columns,
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


def tokenize_as_geneformer(
    adata,
    medians,
    tokens,
    *,
    model_input_size=4096,
    special_token=True,
    gene_key="gene_ids",
    mapping=None,
    target_sum=10_000,
    ties="geneformer",
):
    """Geneformer's TranscriptomeTokenizer (tokenize_anndata, then create_dataset), restated.

    On the matrix as stored (SciPy sparse or dense: NumPy and SciPy compute the tokenizer's
    expression differently for each), in the stored dtypes: ids upper-cased and mapped
    (identity over the token dictionary by default, the mapping kept to ids with a token),
    columns of one id summed (single columns first, then the repeated ids in first-occurrence
    order), ``filter_pass`` applied, ``X / n_counts * target_sum / medians`` with the medians
    as ``np.array`` of the stored values, ``csr_matrix`` of it, each row's stored values ranked
    with ``np.argsort(-values)`` (``ties="stable"``: by gene), truncated, special tokens added.
    Cells without a gene are dropped. Without ``obs["n_counts"]`` (Geneformer requires it), the
    totals over all columns in the matrix's float type (float64 for integers).
    """
    x = adata.X
    sparse = sp.issparse(x)
    ids = [str(g).upper() for g in adata.var[gene_key]]
    mapping = {k: k for k in tokens} if mapping is None else mapping
    mapping = {k: v for k, v in mapping.items() if v in tokens}
    mapped = [mapping.get(g) for g in ids]
    seen = collections.Counter(g for g in mapped if g is not None)
    single = [j for j, g in enumerate(mapped) if g is not None and seen[g] == 1]
    repeated = [g for g in dict.fromkeys(mapped) if g is not None and seen[g] > 1]
    columns = [x[:, [j]] for j in single]
    for r in repeated:
        summed = x[:, [j for j, g in enumerate(mapped) if g == r]].sum(axis=1)
        columns.append(sp.csr_matrix(summed) if sparse else np.asarray(summed).reshape(-1, 1))
    names = [mapped[j] for j in single] + repeated
    if not columns:
        collapsed = sp.csr_matrix((x.shape[0], 0), dtype=x.dtype)
    else:
        collapsed = sp.hstack(columns, format="csr") if sparse else np.hstack(columns)
    if "n_counts" in adata.obs.columns:
        n_counts = adata.obs["n_counts"].to_numpy()
    else:
        dense_x = x.toarray() if sparse else np.asarray(x)
        float_type = x.dtype if x.dtype in (np.float32, np.float64) else np.float64
        n_counts = dense_x.astype(np.float64).sum(axis=1).astype(float_type)
    rows = np.arange(x.shape[0])
    if "filter_pass" in adata.obs.columns:
        rows = np.where([v == 1 for v in adata.obs["filter_pass"]])[0]
    coding = [j for j, g in enumerate(names) if g in tokens]
    norm_factor_vector = np.array([medians[names[j]] for j in coding])  # KeyError upstream
    coding_tokens = np.array([tokens[names[j]] for j in coding], dtype=np.int64)
    x_view = collapsed[rows][:, coding]
    with np.errstate(invalid="ignore", divide="ignore"):  # a cell without counts: 0 / 0
        x_norm = x_view / n_counts[rows][:, None] * target_sum / norm_factor_vector
    x_norm = sp.csr_matrix(x_norm)
    x_norm.eliminate_zeros()  # a cell without counts: its NaNs are dropped with it, below
    cells = []
    for i in range(len(rows)):
        row = x_norm[i]
        values, genes = row.data, row.indices
        if ties == "geneformer":
            order = np.argsort(-values)
        else:
            order = sorted(range(len(values)), key=lambda k: (-values[k], genes[k]))
        ranked = coding_tokens[genes][order].tolist()
        if not ranked or not np.isfinite(values).all():
            continue
        if special_token:
            ranked = [tokens["<cls>"], *ranked[: model_input_size - 2], tokens["<eos>"]]
        else:
            ranked = ranked[:model_input_size]
        cells.append(ranked)
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


@pytest.mark.parametrize(
    ("n_tokens", "special"), [(None, None), (2048, False), (6, False), (6, True), (3, True)]
)
@pytest.mark.parametrize("ties", ["geneformer", "stable"])
def test_rank_encode_matches_geneformer(device, host, n_tokens, special, ties):
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
        ties=ties,
        device=device,
    )
    expected = tokenize_as_geneformer(
        adata,
        medians,
        tokens,
        model_input_size=4096 if n_tokens is None else n_tokens,
        special_token=special is not False,
        ties=ties,
    )
    assert as_lists(encoding, host) == expected
    # the all-zero cell 5 is left out, as Geneformer leaves out cells without genes
    kept = [i for i in range(N_CELLS) if i != 5]
    assert list(encoding.cell_ids) == [f"cell{i}" for i in kept]
    assert encoding.cell_rows.tolist() == kept
    assert encoding.n_tokens == (4096 if n_tokens is None else n_tokens)
    assert encoding.special_tokens is (special is not False)


def test_ties_geneformer_and_stable_differ_on_this_data():
    """The data above hold ties that NumPy's argsort orders otherwise than by gene."""
    adata = make_adata()
    gene_ids = list(adata.var["gene_ids"])
    medians, tokens = user_medians(gene_ids), user_tokens(gene_ids)
    by_argsort = tokenize_as_geneformer(adata, medians, tokens, ties="geneformer")
    by_gene = tokenize_as_geneformer(adata, medians, tokens, ties="stable")
    assert by_argsort != by_gene


def test_rank_encode_ties(device, host):
    counts = np.array([[3, 0, 3, 3, 1, 3]], dtype=np.int64)
    adata = anndata.AnnData(X=sp.csr_matrix(counts))
    medians = {g: 1.0 for g in adata.var_names}
    encoding = rank_encode(
        adata, gene_medians=medians, model_version=1, ties="stable", device=device
    )
    # default dictionary: <pad>, <mask>, then genes 0..5 -> 2..7
    assert as_lists(encoding, host) == [[2, 4, 5, 7, 6]]
    # 40 genes of two values: NumPy's argsort does not keep the gene order among equal ones
    counts = np.tile([2, 3], 20)[None, :]
    adata = anndata.AnnData(X=sp.csr_matrix(counts.astype(np.float32)))
    medians = {g: 1.0 for g in adata.var_names}
    values = counts[0] / counts.sum() * 10_000
    want = (np.argsort(-values) + 2).tolist()
    assert want != sorted(want, key=lambda t: (-values[t - 2], t))  # the case is a real one
    for ties, expected in (
        ("geneformer", want),
        ("stable", sorted(want, key=lambda t: (-values[t - 2], t))),
    ):
        encoding = rank_encode(
            adata, gene_medians=medians, model_version=1, ties=ties, device=device
        )
        assert as_lists(encoding, host) == [expected], ties


def test_rank_encode_default_dictionary_and_medians_from_data(device, host):
    adata = make_adata(seed=3)
    gene_ids = list(adata.var["gene_ids"])
    counts = dense_counts(adata)
    medians = compute_gene_medians(adata, device=device)
    expected_medians = reference_medians(counts, gene_ids)
    assert medians.keys() == expected_medians.keys()
    for gene, value in expected_medians.items():
        assert medians[gene] == value, gene  # exact: same float64 operations
    encoding = rank_encode(adata, n_tokens=20, device=device)
    tokens = encoding.token_dictionary
    assert list(tokens)[:4] == ["<pad>", "<mask>", "<cls>", "<eos>"]
    assert [tokens[g] for g in gene_ids] == list(range(4, 4 + N_GENES))
    # a gene never detected has no median from the data, and no value to rank either
    with_all = {g: 1.0 for g in gene_ids} | expected_medians
    expected = tokenize_as_geneformer(adata, with_all, tokens, model_input_size=20)
    assert as_lists(encoding, host) == expected


@pytest.mark.parametrize("fmt", ["csc", "dense"])
@pytest.mark.parametrize("dtype", [np.int32, np.float64])
def test_rank_encode_other_formats_and_dtypes(device, host, fmt, dtype):
    adata = make_adata(seed=4, dtype=dtype, fmt=fmt)
    gene_ids = list(adata.var["gene_ids"])
    medians, tokens = user_medians(gene_ids), user_tokens(gene_ids)
    got = rank_encode(
        adata, n_tokens=8, gene_medians=medians, token_dictionary=tokens, device=device
    )
    want = tokenize_as_geneformer(adata, medians, tokens, model_input_size=8)
    assert as_lists(got, host) == want


def test_rank_encode_gene_key_and_layer(device, host):
    adata = make_adata(seed=5)
    adata.layers["counts"] = adata.X.copy()
    adata.X = None
    medians = {f"SYM{j}": 1.0 for j in range(0, N_GENES, 2)}
    tokens = {"<pad>": 0, "<mask>": 1, **{f"SYM{j}": j + 2 for j in range(0, N_GENES, 2)}}
    encoding = rank_encode(
        adata, n_tokens=50, gene_medians=medians, token_dictionary=tokens, layer="counts",
        gene_key=None, model_version=1, device=device,
    )  # fmt: skip
    assert len(encoding) == 0  # var["gene_ids"] is used: no SYM names match, no cell left
    adata.var["symbol"] = adata.var_names
    encoding = rank_encode(
        adata, n_tokens=50, gene_medians=medians, token_dictionary=tokens, layer="counts",
        gene_key="symbol", model_version=1, device=device,
    )  # fmt: skip
    expected = tokenize_as_geneformer(
        anndata.AnnData(X=adata.layers["counts"], var=adata.var),
        medians,
        tokens,
        model_input_size=50,
        special_token=False,
        gene_key="symbol",
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
    assert loaded.dtype == (np.float32 if suffix == ".pkl" else np.float64)
    encoding = rank_encode(
        adata, n_tokens=10, gene_medians=paths[0], token_dictionary=paths[1], device=device
    )
    # as Geneformer loads them: float32 scalars from its pickles, float64 from text
    stored = pickle.loads(paths[0].read_bytes()) if suffix == ".pkl" else loaded
    expected = tokenize_as_geneformer(adata, stored, tokens, model_input_size=10)
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
        assert table.column("cell_id").to_pylist() == list(encoding.cell_ids)
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
        assert cell_ids == list(encoding.cell_ids)
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
    streams = [_splitmix_uniform(np, seed, np.arange(n, dtype=np.uint64)) for seed in range(4)]
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


def _raised(function, adata, medians, device):
    with pytest.raises(InputError) as info:
        function(adata, gene_medians=medians, device=device)
    return info.value


def test_a_gene_with_a_token_but_no_median_is_an_error_as_in_geneformer(device):
    adata = make_adata(seed=3)
    gene_ids = list(adata.var["gene_ids"])
    medians = {g: 1.0 for g in gene_ids[2:]}
    with pytest.raises(InputError, match=r"2 genes of the data have a token but no gene median"):
        rank_encode(adata, gene_medians=medians, device=device)  # the default dictionary
    tokens = {"<pad>": 0, "<mask>": 1, **{g: i + 2 for i, g in enumerate(gene_ids[2:])}}
    rank_encode(  # the two have no token
        adata, gene_medians=medians, token_dictionary=tokens, model_version=1, device=device
    )
    assert "missing_medians='drop'" in str(_raised(rank_encode, adata, medians, device))
    dropped = rank_encode(
        adata, gene_medians=medians, missing_medians="drop", model_version=1, device=device
    )
    assert all(t not in (2, 3) for t in dropped.token_ids.tolist())  # gene 0, 1: tokens 2, 3


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


# --- Geneformer's input handling: versions, ids, cells, types ----------------------------------


def _near_ties(dtype=np.float32, n_cells=200):
    """Per cell one count of gene 0 and three of gene 1 whose medians are 1 and 3 (1 + 3e-8),
    with totals that vary: the order of the two depends on the precision of the division."""
    counts = np.zeros((n_cells, 3), dtype=dtype)
    counts[:, 0], counts[:, 1] = 1, 3
    counts[:, 2] = np.arange(1, n_cells + 1) * 7
    adata = anndata.AnnData(X=sp.csr_matrix(counts))
    adata.obs_names = [f"c{i}" for i in range(n_cells)]
    adata.var["gene_ids"] = ["ENSG0", "ENSG1", "ENSG2"]
    medians = {"ENSG0": 1.0, "ENSG1": 3 * (1 + 3e-8), "ENSG2": 1e6}
    tokens = {"<pad>": 0, "<mask>": 1, "<cls>": 2, "<eos>": 3, "ENSG0": 4, "ENSG1": 5, "ENSG2": 6}
    return adata, medians, tokens


def test_float32_counts_are_divided_in_float32_as_geneformer_does(device, host):
    adata32, medians, tokens = _near_ties(np.float32)
    adata64, _, _ = _near_ties(np.float64)
    want32 = tokenize_as_geneformer(adata32, medians, tokens)
    want64 = tokenize_as_geneformer(adata64, medians, tokens)
    assert want32 != want64  # the precision decides the order of some cells
    for adata, want in ((adata32, want32), (adata64, want64)):
        got = rank_encode(adata, gene_medians=medians, token_dictionary=tokens, device=device)
        assert as_lists(got, host) == want
    # float32 n_counts in obs with float32 counts: float32 too; float64 n_counts: float64
    for totals_type, want in ((np.float32, want32), (np.float64, want64)):
        adata = adata32.copy()
        adata.obs["n_counts"] = np.asarray(adata.X.sum(axis=1)).ravel().astype(totals_type)
        assert tokenize_as_geneformer(adata, medians, tokens) == want
        got = rank_encode(adata, gene_medians=medians, token_dictionary=tokens, device=device)
        assert as_lists(got, host) == want


def test_float32_medians_as_geneformer_pickles_them(tmp_path, device, host):
    adata, medians, tokens = _near_ties(np.float32)
    medians32 = {gene: np.float32(value) for gene, value in medians.items()}
    medians32["ENSG1"] = np.float32(3.0000002)
    path = tmp_path / "medians.pkl"
    path.write_bytes(pickle.dumps(medians32))
    want = tokenize_as_geneformer(adata, medians32, tokens)
    assert want != tokenize_as_geneformer(
        adata, {k: float(v) for k, v in medians32.items()}, tokens
    )
    got = rank_encode(adata, gene_medians=path, token_dictionary=tokens, device=device)
    assert as_lists(got, host) == want


def test_obs_n_counts_is_the_total_when_present(device, host):
    adata = make_adata(seed=11)
    gene_ids = list(adata.var["gene_ids"])
    medians, tokens = user_medians(gene_ids), user_tokens(gene_ids)
    totals = np.asarray(adata.X.sum(axis=1)).ravel()
    adata.obs["n_counts"] = np.where(totals > 0, totals * 2 + 1, 0).astype(np.float32)
    want = tokenize_as_geneformer(adata, medians, tokens, model_input_size=12)
    got = rank_encode(
        adata, n_tokens=12, gene_medians=medians, token_dictionary=tokens, device=device
    )
    assert as_lists(got, host) == want
    ignored = rank_encode(
        adata, n_tokens=12, gene_medians=medians, token_dictionary=tokens, counts_key=None,
        device=device,
    )  # fmt: skip
    del adata.obs["n_counts"]
    assert as_lists(ignored, host) == tokenize_as_geneformer(
        adata, medians, tokens, model_input_size=12
    )
    adata.obs["n_counts"] = totals
    adata.obs.loc["cell3", "n_counts"] = 0
    with pytest.raises(InputError, match=r"cell 'cell3' \(row 3\) has obs\['n_counts'\] = 0\.0;"):
        rank_encode(adata, gene_medians=medians, token_dictionary=tokens, device=device)


def test_filter_pass_cells_are_left_out(device, host, caplog):
    adata = make_adata(seed=12)
    gene_ids = list(adata.var["gene_ids"])
    medians, tokens = user_medians(gene_ids), user_tokens(gene_ids)
    passes = np.ones(N_CELLS, dtype=object)
    passes[[0, 3, 8]] = [0, 2, "1"]  # Geneformer keeps the cells whose value == 1
    passes[[4, 9]] = [True, 1.0]
    adata.obs["filter_pass"] = passes
    with caplog.at_level("INFO", logger="gpu_genomics"):
        got = rank_encode(
            adata, n_tokens=9, gene_medians=medians, token_dictionary=tokens, device=device
        )
    assert "3 of 40 cells have filter_pass != 1" in caplog.text
    assert "1 of 37 cells have no gene" in caplog.text  # cell 5
    kept = [i for i in range(N_CELLS) if i not in (0, 3, 5, 8)]
    assert got.cell_rows.tolist() == kept
    assert list(got.cell_ids) == [f"cell{i}" for i in kept]
    assert as_lists(got, host) == tokenize_as_geneformer(adata, medians, tokens, model_input_size=9)
    everyone = rank_encode(
        adata, n_tokens=9, gene_medians=medians, token_dictionary=tokens, filter_key=None,
        device=device,
    )  # fmt: skip
    assert len(everyone) == N_CELLS - 1
    # medians from the data: over the cells that pass
    passing = adata[[i for i in range(N_CELLS) if i not in (0, 3, 8)]]
    assert compute_gene_medians(adata, device=device) == compute_gene_medians(
        passing, filter_key=None, device=device
    )


def test_ids_are_upper_cased_mapped_and_collapsed_as_geneformer_does(device, host):
    rng = np.random.default_rng(13)
    counts = rng.negative_binomial(1, 0.5, size=(30, 8)).astype(np.float32)
    adata = anndata.AnnData(X=sp.csr_matrix(counts))
    adata.obs_names = [f"c{i}" for i in range(30)]
    # lower case; two columns of one gene (different case); a retired id mapped to a current
    # one that is also a column; an id the mapping lacks
    adata.var["ensembl_id"] = [
        "ensg1", "ENSG2", "Ensg2", "ENSG3", "ENSG_OLD", "ENSG4", "ENSG9", "ensg5",
    ]  # fmt: skip
    tokens = {"<pad>": 0, "<mask>": 1, "<cls>": 2, "<eos>": 3}
    tokens |= {f"ENSG{i}": 10 + i for i in range(1, 6)}
    medians = {f"ENSG{i}": float(m) for i, m in zip(range(1, 6), [1, 2, 2, 1, 4], strict=True)}
    mapping = {f"ENSG{i}": f"ENSG{i}" for i in range(1, 6)} | {"ENSG_OLD": "ENSG3"}
    for gene_mapping in (None, mapping):
        want = tokenize_as_geneformer(
            adata, medians, tokens, gene_key="ensembl_id", mapping=gene_mapping
        )
        got = rank_encode(
            adata, gene_medians=medians, token_dictionary=tokens, gene_mapping=gene_mapping,
            device=device,
        )  # fmt: skip
        assert as_lists(got, host) == want
        assert all(len(set(cell)) == len(cell) for cell in want)  # one token per gene
    # the mapping's genes: ENSG3 sums two columns and comes after the single ones
    columns = gene_columns(np.asarray(adata.var["ensembl_id"]), gene_mapping=mapping, tokens=tokens)
    assert list(columns.ids) == ["ENSG1", "ENSG4", "ENSG5", "ENSG2", "ENSG3"]
    assert columns.gene_of_column.tolist() == [0, 3, 3, 4, 4, 1, -1, 2]
    medians_by_data = compute_gene_medians(adata, gene_mapping=mapping, device=device)
    assert set(medians_by_data) == {"ENSG1", "ENSG2", "ENSG3", "ENSG4", "ENSG5"}


def test_model_versions():
    adata = make_adata(seed=14)
    v2 = rank_encode(adata, device="cpu")
    assert (v2.n_tokens, v2.special_tokens) == (4096, True)
    assert v2.token_dictionary["<cls>"] == v2.token_ids[0]
    v1 = rank_encode(adata, model_version=1, device="cpu")
    assert (v1.n_tokens, v1.special_tokens) == (2048, False)
    assert rank_encode(adata, model_version="V1", device="cpu").n_tokens == 2048
    both = rank_encode(adata, model_version=1, special_tokens=True, n_tokens=10, device="cpu")
    assert (both.n_tokens, both.special_tokens) == (10, True)
    with pytest.raises(InputError, match=r"model_version=3 must be 1 or 2"):
        rank_encode(adata, model_version=3, device="cpu")
    with pytest.raises(InputError, match=r"ties='random' is not one of geneformer, stable"):
        rank_encode(adata, ties="random", device="cpu")


def test_gene_mapping_files(tmp_path):
    path = tmp_path / "map.tsv"
    path.write_text("# retired ids\nENSG_OLD\tENSG3\nENSG3\tENSG3\n")
    assert load_gene_mapping(path) == {"ENSG_OLD": "ENSG3", "ENSG3": "ENSG3"}
    (tmp_path / "bad.json").write_text('{"ENSG1": 5}')
    with pytest.raises(InputError, match=r"bad.json: gene 'ENSG1' maps to 5"):
        load_gene_mapping(tmp_path / "bad.json")


def test_attributes_go_with_the_encoded_cells(tmp_path, device):
    datasets = pytest.importorskip("datasets")
    import pandas as pd

    adata = make_adata(seed=15)
    adata.obs["cell_type"] = pd.Categorical([f"t{i % 3}" for i in range(N_CELLS)])
    adata.obs["donor"] = np.arange(N_CELLS) * 10
    adata.obs["score"] = np.where(np.arange(N_CELLS) % 4 == 0, np.nan, 0.5)
    adata.obs["filter_pass"] = [0 if i == 2 else 1 for i in range(N_CELLS)]
    encoding = rank_encode(
        adata, attributes=["cell_type:label", "donor", "score"], n_tokens=8, device=device
    )
    rows = encoding.cell_rows.tolist()
    assert 2 not in rows and 5 not in rows  # filtered; no gene
    assert encoding.attributes["label"].tolist() == [f"t{i % 3}" for i in rows]
    assert encoding.attributes["donor"].dtype == np.int64
    assert encoding.attributes["donor"].tolist() == [i * 10 for i in rows]
    np.testing.assert_array_equal(
        encoding.attributes["score"], np.where(np.array(rows) % 4 == 0, np.nan, 0.5)
    )
    write_rank_encoding(encoding, tmp_path / "t.dataset")
    dataset = datasets.load_from_disk(str(tmp_path / "t.dataset"))
    assert dataset.column_names == ["input_ids", "length", "cell_id", "label", "donor", "score"]
    assert dataset["label"] == [f"t{i % 3}" for i in rows]
    assert dataset["donor"] == [i * 10 for i in rows]
    write_rank_encoding(encoding, tmp_path / "t.parquet")
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "t.parquet")["label"].to_pylist() == dataset["label"]
    with pytest.raises(InputError, match=r"attributes are written to \.parquet and \.dataset"):
        write_rank_encoding(encoding, tmp_path / "t.h5")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.dataset", "t.parquet"]
    with pytest.raises(InputError, match=r"attributes: 'nope' not in adata.obs"):
        rank_encode(adata, attributes=["nope"], device=device)
    with pytest.raises(InputError, match="the output column 'length' is taken"):
        rank_encode(adata, attributes={"donor": "length"}, device=device)
