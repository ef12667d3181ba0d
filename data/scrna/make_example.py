"""Write the bundled single-cell example: a 10x Cell Ranger matrix folder
(``filtered_feature_bc_matrix/``: ``matrix.mtx.gz``, ``features.tsv.gz``, ``barcodes.tsv.gz``)
of 1,200 cells x 3,000 genes of synthetic negative-binomial counts, with low-quality, very deep
and damaged (mitochondrial) cells so that every step of the recipe removes something.

Deterministic: ``python data/scrna/make_example.py`` rewrites byte-identical files.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import scipy.io
import scipy.sparse as sp

N_CELLS, N_GENES, N_MITO = 1200, 3000, 13
OUT = Path(__file__).resolve().parent / "filtered_feature_bc_matrix"


def counts(seed: int = 7) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    gene_means = rng.gamma(0.25, 0.8, size=N_GENES)
    gene_means[:N_MITO] = 0.5
    gene_means[-30:] = 0.0005  # seen in fewer than 3 cells
    depth = rng.lognormal(0.0, 0.5, size=(N_CELLS, 1))
    depth[: N_CELLS // 20] *= 0.03  # < 200 genes
    depth[N_CELLS // 20 : N_CELLS // 12] *= 60.0  # > 2500 genes
    values = rng.negative_binomial(2, 2.0 / (2.0 + gene_means * depth))
    values[N_CELLS // 12 : N_CELLS // 12 + N_CELLS // 25, :N_MITO] *= 25  # damaged
    return sp.csr_matrix(values.astype(np.int32))


def write_gzip(path: Path, data: bytes) -> None:
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
        f.write(data)


def main() -> None:
    OUT.mkdir(exist_ok=True)
    matrix = counts()
    buffer = io.BytesIO()
    scipy.io.mmwrite(buffer, sp.coo_matrix(matrix.T), field="integer")
    write_gzip(OUT / "matrix.mtx.gz", buffer.getvalue())
    symbols = [f"MT-ND{i}" for i in range(N_MITO)] + [f"GENE{i}" for i in range(N_MITO, N_GENES)]
    features = "".join(
        f"ENSG{i:011d}\t{symbol}\tGene Expression\n" for i, symbol in enumerate(symbols)
    )
    write_gzip(OUT / "features.tsv.gz", features.encode())
    barcodes = "".join(f"CELL{i:05d}-1\n" for i in range(N_CELLS))
    write_gzip(OUT / "barcodes.tsv.gz", barcodes.encode())
    print(f"wrote {OUT}: {N_CELLS} cells x {N_GENES} genes, {matrix.nnz} non-zeros")


if __name__ == "__main__":
    main()
