"""convert_to_zarr: 10x Matrix Market, loom and CSV/TSV inputs converted a block of cells at a
time give the AnnData readers.read gives (written to Zarr), with the same one-line errors; the
out-of-core scrna job reads them so; needed_memory counts the carried elements."""

from __future__ import annotations

import dataclasses
import gzip
import logging
import re
import tracemalloc
import warnings
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sc_data import assert_same_elements, assert_same_output, synthetic_counts

pytest.importorskip("scanpy")

from gpu_genomics.errors import InputError
from gpu_genomics.expression.singlecell import chunked, convert, job
from gpu_genomics.expression.singlecell.blocks import open_carried, open_count_blocks
from gpu_genomics.expression.singlecell.convert import convert_to_zarr
from gpu_genomics.expression.singlecell.readers import read

CHUNK = 7  # cells per block: boundaries fall inside every dataset below
GENE_NAMES = ["mt-nd1", "MT-CO1", "Gene.1", "g ene", "dup", "dup", "beta-actin", "x_y"]


def counts(n_cells: int = 45, n_genes: int = 30, seed: int = 0) -> ad.AnnData:
    """CSR float32 counts with empty cells (at a block's start, inside one, and last) and odd,
    lower-case and duplicate gene names."""
    adata = synthetic_counts(n_cells=n_cells, n_genes=n_genes + 40, seed=seed, n_mito=2)
    adata = adata[:, :n_genes].copy()  # not the 40 rare genes: most cells have counts
    x = adata.X.tolil()
    for cell in {CHUNK, CHUNK * 2 + 3, n_cells - 1} & set(range(n_cells)):
        x[cell, :] = 0
    adata.X = sp.csr_matrix(x, dtype=np.float32)
    adata.X.eliminate_zeros()
    names = GENE_NAMES + [f"gene{i}" for i in range(len(GENE_NAMES), n_genes)]
    adata.var_names = names[:n_genes]
    adata.var["gene_ids"] = [f"ENSG{i:011d}" for i in range(n_genes)]
    adata.obs_names = [f"AAAC-{i}" if i % 3 else f"bc_{i}.x" for i in range(n_cells)]
    return adata


def write_mtx(
    folder: Path,
    adata: ad.AnnData,
    *,
    order: str = "cell",
    gz: bool = True,
    field: str = "integer",
    antibodies: int = 0,
    duplicates: bool = False,
) -> Path:
    """A 10x folder: Cell Ranger 3 (gzipped, features.tsv.gz with feature types and
    ``antibodies`` extra "Antibody Capture" features) or Cell Ranger 2 (plain, genes.tsv).

    ``order``: entries sorted by cell (as Cell Ranger), by gene, or shuffled; ``duplicates``:
    some entries split in two (legal: summed)."""
    folder.mkdir()
    coo = adata.X.tocoo()
    cells, genes, values = coo.row.astype(np.int64), coo.col.astype(np.int64), coo.data
    rng = np.random.default_rng(1)
    if antibodies:
        extra = rng.integers(0, adata.n_obs, size=3 * antibodies)
        cells = np.r_[cells, extra]
        genes = np.r_[genes, adata.n_vars + np.arange(3 * antibodies) % antibodies]
        values = np.r_[values, np.full(len(extra), 9.0, np.float32)]
    if duplicates:
        split = np.flatnonzero(values >= 2)[::3]
        half = np.floor(values[split] / 2)
        values = values.copy()
        values[split] -= half
        cells, genes, values = (
            np.r_[cells, cells[split]],
            np.r_[genes, genes[split]],
            np.r_[values, half],
        )
    if order == "cell":
        index = np.lexsort((genes, cells))
    elif order == "gene":
        index = np.lexsort((cells, genes))
    else:
        index = rng.permutation(len(cells))
    n_rows = adata.n_vars + antibodies
    text = f"%%MatrixMarket matrix coordinate {field} general\n%metadata_json: {{}}\n"
    text += f"{n_rows} {adata.n_obs} {len(index)}\n"
    shown = (lambda v: f"{int(v)}") if field == "integer" else repr
    text += "".join(
        f"{g + 1} {c + 1} {shown(float(v))}\n"
        for g, c, v in zip(genes[index], cells[index], values[index], strict=True)
    )
    ids = [*adata.var["gene_ids"], *(f"AB{i}" for i in range(antibodies))]
    names = [*adata.var_names, *(f"CD{i}" for i in range(antibodies))]
    types = ["Gene Expression"] * adata.n_vars + ["Antibody Capture"] * antibodies
    barcodes = "".join(f"{b}\n" for b in adata.obs_names)
    if gz:
        (folder / "matrix.mtx.gz").write_bytes(gzip.compress(text.encode()))
        features = "".join(f"{i}\t{n}\t{t}\n" for i, n, t in zip(ids, names, types, strict=True))
        (folder / "features.tsv.gz").write_bytes(gzip.compress(features.encode()))
        (folder / "barcodes.tsv.gz").write_bytes(gzip.compress(barcodes.encode()))
    else:
        (folder / "matrix.mtx").write_text(text)
        (folder / "genes.tsv").write_text(
            "".join(f"{i}\t{n}\n" for i, n in zip(ids, names, strict=True))
        )
        (folder / "barcodes.tsv").write_text(barcodes)
    return folder


def write_table(path: Path, adata: ad.AnnData, *, transpose: bool) -> Path:
    """A CSV/TSV table, cells x genes or (``transpose``) genes x cells; duplicate gene names
    made unique (a table's names must be)."""
    adata = adata.copy()
    adata.var_names_make_unique()
    sep = "," if ".csv" in path.name else "\t"
    values = adata.X.toarray()
    rows, columns = (
        (adata.var_names, adata.obs_names) if transpose else (adata.obs_names, adata.var_names)
    )
    matrix = values.T if transpose else values
    lines = [sep.join(["", *columns])]
    lines += [sep.join([r, *(f"{v:g}" for v in row)]) for r, row in zip(rows, matrix, strict=True)]
    text = "\n".join(lines) + "\n"
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def written_by_anndata(adata: ad.AnnData, path: Path) -> ad.AnnData:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adata.write_zarr(path)
    return ad.read_zarr(path)


def assert_converted_as_read(tmp_path: Path, source: Path, *, transpose: bool = False) -> Path:
    """convert_to_zarr(source) read back equals readers.read(source) written to Zarr: names,
    columns (and their dtypes), X (CSR, dtype, values, stored entries), layers, obsm; and the
    blocks read by rows are its rows."""
    store = tmp_path / "converted.zarr"
    convert_to_zarr(source, store, transpose=transpose, chunk_cells=CHUNK)
    in_memory = read(source, transpose=transpose)
    expected = written_by_anndata(in_memory, tmp_path / "expected.zarr")
    got = ad.read_zarr(store)
    assert list(got.obs_names) == list(in_memory.obs_names)
    assert list(got.var_names) == list(in_memory.var_names)
    pd.testing.assert_frame_equal(got.obs, expected.obs)
    pd.testing.assert_frame_equal(got.var, expected.var)
    assert got.X.format == "csr" and got.X.has_sorted_indices
    assert got.X.dtype == in_memory.X.dtype == np.float32
    assert got.X.nnz == in_memory.X.nnz
    np.testing.assert_array_equal(got.X.toarray(), in_memory.X.toarray())
    assert_same_elements(got, expected)
    blocks, *_ = open_count_blocks(store, "zarr")
    assert (blocks.encoding, blocks.n_cells, blocks.n_genes) == (
        "csr_matrix", in_memory.n_obs, in_memory.n_vars,
    )  # fmt: skip
    for start in range(0, blocks.n_cells, 5):
        stop = min(start + 5, blocks.n_cells)
        np.testing.assert_array_equal(
            blocks.read(start, stop).toarray(), in_memory.X[start:stop].toarray()
        )
    open_carried(store, "zarr", layers_written=chunked.RECIPE_LAYERS)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    return store


@pytest.mark.parametrize(
    ("order", "gz", "field", "duplicates"),
    [
        ("cell", True, "integer", False),  # as Cell Ranger writes it: one pass
        ("gene", True, "integer", False),  # scipy's mmwrite order: sorted by block on disk
        ("random", True, "real", True),  # any order, real values, duplicates summed
        ("cell", False, "real", False),  # Cell Ranger 2: plain files, genes.tsv
        ("random", False, "integer", True),
    ],
)
def test_matrix_market_equals_readers_read(tmp_path, order, gz, field, duplicates):
    adata = counts()
    if field == "real":
        adata.X.data = adata.X.data * np.float32(0.37)  # not integers, rounded to float32
    folder = write_mtx(
        tmp_path / "mtx", adata, order=order, gz=gz, field=field, antibodies=2 if gz else 0,
        duplicates=duplicates,
    )  # fmt: skip
    store = assert_converted_as_read(tmp_path, folder)
    got = ad.read_zarr(store)
    assert got.n_vars == adata.n_vars  # the antibody features left out, as scanpy does
    np.testing.assert_allclose(got.X.toarray(), adata.X.toarray(), rtol=1e-6)


def test_sorted_entries_are_written_in_one_pass_and_others_sorted_on_disk(tmp_path, monkeypatch):
    added: list[int] = []
    add = convert._Buckets.add
    monkeypatch.setattr(
        convert._Buckets, "add", lambda self, c, g, v: (added.append(len(c)), add(self, c, g, v))
    )
    monkeypatch.setattr(convert, "ENTRIES_PER_READ", 40)
    adata = counts()
    stores = []
    for order in ("cell", "gene"):
        folder = write_mtx(tmp_path / order, adata, order=order)
        stores.append(tmp_path / f"{order}.zarr")
        convert_to_zarr(folder, stores[-1], chunk_cells=CHUNK)
        assert bool(added) == (order == "gene")
    a, b = (ad.read_zarr(store) for store in stores)
    np.testing.assert_array_equal(a.X.toarray(), b.X.toarray())
    assert (a.X.indptr == b.X.indptr).all()


def test_loom_with_layers_and_obsm_equals_readers_read(tmp_path):
    adata = counts(40, 25)
    rng = np.random.default_rng(2)
    adata.layers["spliced"] = sp.csr_matrix(adata.X.toarray() * 2)
    adata.layers["unspliced"] = sp.csr_matrix(rng.poisson(0.3, adata.shape).astype(np.float32))
    adata.obsm["X_pca"] = rng.normal(size=(adata.n_obs, 3)).astype(np.float32)
    adata.obs["batch"] = [f"b{i % 2}" for i in range(adata.n_obs)]
    adata.obs["score"] = rng.normal(size=adata.n_obs)
    adata.var["gene_ids"] = adata.var["gene_ids"].to_numpy()
    adata.var_names_make_unique()  # loom gene names from var_names
    path = tmp_path / "a.loom"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adata.write_loom(path, write_obsm_varm=True)
    store = assert_converted_as_read(tmp_path, path)
    got = ad.read_zarr(store)
    assert sorted(got.layers) == ["matrix", "spliced", "unspliced"]
    assert "X_pca" in got.obsm
    # X is the spliced layer (anndata's X_name), as readers.read gives it
    np.testing.assert_array_equal(got.X.toarray(), adata.layers["spliced"].toarray())


def test_plain_loom_equals_readers_read(tmp_path):
    """A float64 loom matrix: a value too small for float32 stays a stored 0, as in memory."""
    loompy = pytest.importorskip("loompy")
    adata = counts(30, 20, seed=4)
    adata.var_names_make_unique()
    matrix = adata.X.toarray().T.astype(np.float64)  # genes x cells
    gene, cell = np.argwhere(matrix == 0)[0]
    matrix[gene, cell] = 1e-60
    path = tmp_path / "plain.loom"
    loompy.create(
        str(path),
        matrix,
        row_attrs={"Gene": np.array(adata.var_names), "gene_ids": adata.var["gene_ids"].to_numpy()},
        col_attrs={"CellID": np.array(adata.obs_names)},
    )
    with h5py.File(path, "r") as f:
        assert f["matrix"].dtype == np.float64
    store = assert_converted_as_read(tmp_path, path)
    assert ad.read_zarr(store).X.nnz == adata.X.nnz + 1


@pytest.mark.parametrize(
    ("name", "transpose"),
    [("c.csv", False), ("c.tsv", True), ("c.tsv.gz", False), ("c.csv.gz", True)],
)
def test_tables_equal_readers_read(tmp_path, name, transpose, monkeypatch):
    monkeypatch.setattr(convert, "ENTRIES_PER_READ", 64)  # several chunks of rows
    adata = counts(40, 26, seed=5)
    adata.X.data = adata.X.data * np.float32(0.5)  # halves, exact in text
    path = write_table(tmp_path / name, adata, transpose=transpose)
    assert_converted_as_read(tmp_path, path, transpose=transpose)


# --- errors --------------------------------------------------------------------------------------


def read_error(source: Path, **options) -> str:
    with pytest.raises(InputError) as info:
        read(source, **options)
    return str(info.value)


def convert_error(source: Path, store: Path, **options) -> str:
    with pytest.raises(InputError) as info:
        convert_to_zarr(source, store, chunk_cells=CHUNK, **options)
    message = str(info.value)
    assert "\n" not in message
    assert not store.exists()
    assert [p.name for p in store.parent.iterdir() if p.name.startswith(".")] == []
    return message


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ("1 1 5\n1 x 1\n", r"matrix.mtx: a malformed entry after line 3"),
        ("1 1 5\n1 2\n", r"matrix.mtx: a malformed entry after line 3"),  # a value missing
        ("1 1 5\n4 1 5\n", r"matrix.mtx: entry 2 \(after line 3\) is at row 4, column 1, outside"),
        ("1 1 5\n1 3 5\n", r"row 1, column 3, outside the 3 x 2"),
        ("0 1 5\n", r"row 0, column 1, outside"),
        ("1 1 5\n", r"1 entries, but the size line \(line 3\) says 2"),
    ],
)
def test_a_bad_matrix_market_entry_is_the_same_one_line_error(tmp_path, entries, message):
    folder = tmp_path / "filtered"
    folder.mkdir()
    (folder / "matrix.mtx").write_text(
        "%%MatrixMarket matrix coordinate integer general\n%comment\n3 2 2\n" + entries
    )
    (folder / "genes.tsv").write_text("".join(f"E{i}\tG{i}\n" for i in range(3)))
    (folder / "barcodes.tsv").write_text("A-1\nB-1\n")
    got = convert_error(folder, tmp_path / "o.zarr")
    in_memory = read_error(folder)
    # readers.read checks the indices, then scanpy's reader the values, in words of its own
    assert got == in_memory or ("1 2\n" in entries and "\n" not in in_memory)
    assert re.search(message, got), got


def test_bad_matrix_market_headers_are_one_line(tmp_path):
    folder = write_mtx(tmp_path / "m", counts(10, 8), gz=False)
    text = (folder / "matrix.mtx").read_text().splitlines(keepends=True)
    for lines, message in (
        (["%%MatrixMarket matrix array real general\n", *text[1:]], "line 1: not a coordinate"),
        ([text[0], text[1], "8 ten 3\n", *text[3:]], "line 3: the size line must be"),
        (["%%MatrixMarket matrix coordinate complex general\n", *text[1:]], "line 1: a complex"),
    ):
        (folder / "matrix.mtx").write_text("".join(lines))
        assert message in convert_error(folder, tmp_path / "o.zarr")


@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize(
    ("line", "cell", "message"),
    [
        (5, "abc", r"c.csv, line 5, column '.*': 'abc' is not a number"),
        (9, "", r"c.csv, line 9, column '.*': missing value ''"),
        (3, "inf", r"c.csv, line 3, column .* is not a finite number"),
    ],
)
def test_a_bad_table_value_is_the_same_one_line_error(tmp_path, transpose, line, cell, message):
    path = write_table(tmp_path / "c.csv", counts(20, 12), transpose=transpose)
    lines = path.read_text().splitlines()
    fields = lines[line - 1].split(",")
    fields[3] = cell
    lines[line - 1] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")
    got = convert_error(path, tmp_path / "o.zarr", transpose=transpose)
    assert got == read_error(path, transpose=transpose)
    assert re.search(message, got), got


def test_ragged_lines_and_duplicate_row_names_are_the_same_one_line_errors(tmp_path):
    path = write_table(tmp_path / "c.csv", counts(20, 12), transpose=False)
    lines = path.read_text().splitlines()
    for edited, message in (
        ([*lines[:6], lines[6] + ",7", *lines[7:]], "line 7: has 14 fields, expected 13"),
        ([*lines[:15], lines[2], *lines[16:]], "duplicate row name 'AAAC-1' (lines 3 and 16)"),
    ):
        path.write_text("\n".join(edited) + "\n")
        got = convert_error(path, tmp_path / "o.zarr")
        assert got == read_error(path)
        assert message in got, got


def test_other_formats_and_options_are_refused(tmp_path):
    adata = counts(10, 8)
    adata.write_h5ad(tmp_path / "a.h5ad")
    assert "not converted by streaming" in convert_error(tmp_path / "a.h5ad", tmp_path / "o.zarr")
    folder = write_mtx(tmp_path / "m", adata)
    assert "transpose=True applies to CSV/TSV tables only" in convert_error(
        folder, tmp_path / "o.zarr", transpose=True
    )
    assert "no such file" in convert_error(tmp_path / "missing.csv", tmp_path / "o.zarr")


# --- memory --------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["mtx-cell", "mtx-random", "loom", "csv", "tsv-transposed"])
def test_no_more_than_a_block_is_held(tmp_path, monkeypatch, source):
    """Every block written holds at most chunk_cells cells, every parsed chunk at most
    ENTRIES_PER_READ entries (or one table row), and each block read back from disk one block's
    entries: what the converter holds at once."""
    monkeypatch.setattr(convert, "ENTRIES_PER_READ", 30)
    written: list[tuple[int, int]] = []
    write = convert._CsrWriter.write

    def recording_write(self, start, block):
        written.append((start, block.shape[0]))
        return write(self, start, block)

    monkeypatch.setattr(convert._CsrWriter, "write", recording_write)
    parsed: list[int] = []
    entries = convert.iter_matrix_market

    def recording_entries(*args, **kwargs):
        for chunk in entries(*args, **kwargs):
            parsed.append(len(chunk[0]))
            yield chunk

    monkeypatch.setattr(convert, "iter_matrix_market", recording_entries)
    rows_read: list[int] = []
    table_rows = convert._table_rows

    def recording_rows(*args, **kwargs):
        for values, names in table_rows(*args, **kwargs):
            rows_read.append(values.size)
            yield values, names

    monkeypatch.setattr(convert, "_table_rows", recording_rows)
    taken: list[int] = []
    take = convert._Buckets.take
    monkeypatch.setattr(convert._Buckets, "take", lambda self, b: taken.append(b) or take(self, b))
    adata = counts(50, 24, seed=6)
    adata.var_names_make_unique()
    transpose = source == "tsv-transposed"
    if source.startswith("mtx"):
        path = write_mtx(tmp_path / "m", adata, order=source.split("-")[1])
    elif source == "loom":
        path = tmp_path / "a.loom"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            adata.write_loom(path)
    else:
        path = write_table(tmp_path / f"a.{source[:3]}", adata, transpose=transpose)
    convert_to_zarr(path, tmp_path / "o.zarr", chunk_cells=CHUNK, transpose=transpose)
    assert written and max(n for _, n in written) <= CHUNK
    assert all(start % CHUNK == 0 for start, _ in written) or source == "csv"
    assert sum(n for _, n in written) <= adata.n_obs
    assert max(parsed, default=0) <= 30
    assert max(rows_read, default=0) <= max(30, adata.n_obs if transpose else adata.n_vars)
    if source in ("mtx-random", "tsv-transposed"):
        assert sorted(taken) == list(range(-(-adata.n_obs // CHUNK)))  # one block at a time
    np.testing.assert_array_equal(ad.read_zarr(tmp_path / "o.zarr").X.toarray(), adata.X.toarray())


def sparse_counts(n_cells: int, n_genes: int, seed: int) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    x = sp.random(n_cells, n_genes, density=0.25, format="csr", random_state=rng, dtype=np.float32)
    x.data = np.ceil(x.data * 20)
    adata = ad.AnnData(
        X=x,
        obs=pd.DataFrame(index=[f"c{i}" for i in range(n_cells)]),
        var=pd.DataFrame(index=[f"g{i}" for i in range(n_genes)]),
    )
    adata.var["gene_ids"] = adata.var_names.to_numpy()
    return adata


@pytest.mark.parametrize("order", ["cell", "random"])
def test_peak_memory_does_not_grow_with_the_matrix(tmp_path, monkeypatch, order):
    """Measured by tracemalloc (NumPy's buffers are traced): for a matrix 5 times larger the
    converter's peak stays about the same (one block, one parsed chunk, Zarr's chunk buffers,
    and the names), while readers.read's grows 5 times."""
    monkeypatch.setattr(convert, "ENTRIES_PER_READ", 5_000)
    peaks, wholes, sizes = [], [], []
    for n_cells in (1_000, 5_000):
        adata = sparse_counts(n_cells, 400, seed=n_cells)
        sizes.append(adata.X.data.nbytes + adata.X.indices.nbytes + adata.X.indptr.nbytes)
        folder = write_mtx(tmp_path / f"{n_cells}", adata, order=order)
        read(folder)  # imports and caches warmed up
        tracemalloc.start()
        try:
            convert_to_zarr(folder, tmp_path / f"{n_cells}.zarr", chunk_cells=50)
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            read(folder)
            wholes.append(tracemalloc.get_traced_memory()[1] - base)
        finally:
            tracemalloc.stop()
    assert wholes[0] > sizes[0] and wholes[1] > 4 * wholes[0]  # the measure sees the matrix
    assert peaks[1] < 1.25 * peaks[0], (peaks, sizes)
    assert peaks[1] < sizes[1], (peaks, sizes)


# --- the scrna job and needed_memory -----------------------------------------------------------


def test_scrna_out_of_core_on_a_10x_folder_equals_in_memory(tmp_path, caplog):
    from test_scrna_chunked import in_memory_and_chunked

    adata = synthetic_counts(300, 1500, seed=9)
    adata.var["gene_ids"] = [f"ENSG{i:011d}" for i in range(adata.n_vars)]
    folder = write_mtx(tmp_path / "filtered_feature_bc_matrix", adata, order="random")
    caplog.set_level(logging.INFO, logger="gpu_genomics")
    memory, blocks = in_memory_and_chunked(tmp_path, folder)
    assert "converted once, streaming 37 cells at a time, to a temporary Zarr" in caplog.text
    assert_same_output(memory, blocks)
    assert sorted(p.name for p in blocks.parent.iterdir()) == ["memory.h5ad"]


def with_carried(tmp_path: Path) -> tuple[Path, int]:
    """An .h5ad with an obsm array, a layer and raw; and their bytes in memory."""
    adata = synthetic_counts(200, 600, seed=10)
    rng = np.random.default_rng(0)
    adata.obsm["X_big"] = rng.normal(size=(adata.n_obs, 300))
    layer = sp.csr_matrix(adata.X * 2, dtype=np.float32)
    adata.layers["spliced"] = layer
    adata.layers["counts"] = adata.X.copy()  # the input's own: read in memory, then replaced
    adata.raw = adata.copy()
    path = tmp_path / "c.h5ad"
    adata.write_h5ad(path)
    x = adata.raw.X
    csr_bytes = layer.nnz * 8 + 8 * (adata.n_obs + 1)
    raw_bytes = x.nnz * 8 + 8 * (adata.n_obs + 1)
    return path, adata.obsm["X_big"].nbytes + 2 * csr_bytes + raw_bytes


def test_needed_memory_counts_the_carried_elements(tmp_path):
    path, carried_bytes = with_carried(tmp_path)
    blocks, *_ = open_count_blocks(path, "h5ad")
    carried = open_carried(path, "h5ad", layers_written=chunked.RECIPE_LAYERS)
    recipe = chunked.Recipe()
    alone = job.needed_memory(blocks, recipe)
    with_them = job.needed_memory(blocks, recipe, carried=carried)
    raw_var = job._held_bytes(carried.raw_var)
    assert raw_var > 0
    assert with_them - alone == 2 * (carried_bytes + raw_var)


def test_auto_goes_out_of_core_for_the_carried_elements(tmp_path, monkeypatch, caplog):
    import gpu_genomics.info

    path, _ = with_carried(tmp_path)
    blocks, *_ = open_count_blocks(path, "h5ad")
    carried = open_carried(path, "h5ad", layers_written=chunked.RECIPE_LAYERS)
    options = {"min_genes": 20, "n_top_genes": 200}
    recipe = dataclasses.replace(chunked.Recipe(), **options)
    alone = job.needed_memory(blocks, recipe)
    with_them = job.needed_memory(blocks, recipe, carried=carried)
    monkeypatch.setattr(gpu_genomics.info, "available_memory", lambda: (alone + with_them) // 2)
    caplog.set_level(logging.INFO, logger="gpu_genomics")
    summary = job.preprocess_file(path, tmp_path / "o.h5ad", device="cpu", **options)
    assert summary["out_of_core"], "X alone fits; with the carried elements it does not"
    assert "running out of core" in caplog.text
    monkeypatch.setattr(gpu_genomics.info, "available_memory", lambda: with_them)
    assert not job.preprocess_file(path, tmp_path / "p.h5ad", device="cpu", **options)[
        "out_of_core"
    ]
    assert_same_output(tmp_path / "p.h5ad", tmp_path / "o.h5ad")


def test_a_csc_layer_still_runs_in_memory_when_it_fits(tmp_path, monkeypatch):
    import gpu_genomics.info

    adata = synthetic_counts(120, 500, seed=11)
    adata.layers["spliced"] = sp.csc_matrix(adata.X)
    adata.write_h5ad(tmp_path / "c.h5ad")
    monkeypatch.setattr(gpu_genomics.info, "available_memory", lambda: 1 << 40)
    options = {"min_genes": 20, "n_top_genes": 200, "max_pct_mito": None}
    summary = job.preprocess_file(tmp_path / "c.h5ad", tmp_path / "o.h5ad", device="cpu", **options)
    assert not summary["out_of_core"]
    with pytest.raises(InputError, match="layers/spliced is stored as csc_matrix"):
        job.preprocess_file(
            tmp_path / "c.h5ad", tmp_path / "p.h5ad", device="cpu", chunk_cells=50, **options
        )
