"""Benchmark: Geneformer rank encoding, ours against Geneformer's own tokenizer loop.

Generates a sparse count matrix (default 200,000 cells x 20,000 genes, about 2,000 detected
genes per cell, float32 counts as AnnData files hold them), float32 gene medians (as
Geneformer's pickles hold them) and a V2 token dictionary, cached as ``.npz`` under
``--cache``. Each pipeline runs in its own subprocess on the same matrix (loaded first, so peak
RSS includes it, as it does for a user):

* ``ours``: ``rank_encode(adata, gene_medians=..., token_dictionary=...)`` on the CPU (V2,
  ``ties="geneformer"``): the numba pass over the rows;
* ``ours-arrays``: the same on the array path (the GPU's algorithm, one sort of all entries,
  here on NumPy): what ``rank_encode`` did on the CPU before;
* ``geneformer``: the loop of Geneformer's ``TranscriptomeTokenizer.tokenize_anndata`` (chunks
  of 512 cells: ``X / n_counts * 10_000 / medians``, ``csr_matrix``, ``np.argsort(-values)`` per
  cell) and ``create_dataset``'s truncation and special tokens, restated (the tokenizer is not
  a PyPI package here).

Every pipeline's tokens are compared with ``geneformer``'s (all must be equal). Printed:
seconds, cells/s, peak RSS, the matrix's size, ratios.

    python bench/rank.py                               # 200k x 20k
    python bench/rank.py --cells 20000 --cache /tmp/rank-cache
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fmt_rate, git_revision, print_table, ram_gib, verdict

PIPELINES = ("ours", "ours-arrays", "geneformer")


def _matrix_path(cache: Path, cells: int, genes: int, per_cell: int) -> Path:
    return cache / f"rank-{cells}x{genes}-{per_cell}.npz"


def generate(cache: Path, cells: int, genes: int, per_cell: int) -> Path:
    """The CSR matrix (float32), its medians (float32) and token ids, written once."""
    path = _matrix_path(cache, cells, genes, per_cell)
    if path.exists():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    popularity = rng.gamma(0.6, size=genes)
    popularity /= popularity.sum()
    rows = []
    for start in range(0, cells, 5_000):  # a block of cells at a time: draws, then distinct
        block = rng.choice(genes, size=(min(5_000, cells - start), per_cell), p=popularity)
        rows.extend(np.unique(row).astype(np.int32) for row in block)
    indptr = np.zeros(cells + 1, dtype=np.int64)
    np.cumsum([len(row) for row in rows], out=indptr[1:])
    indices = np.concatenate(rows)
    del rows
    data = (rng.negative_binomial(1, 0.4, size=indptr[-1]) + 1).astype(np.float32)
    medians = rng.lognormal(0.0, 1.0, size=genes).astype(np.float32)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, indptr=indptr, indices=indices, data=data, medians=medians, shape=[cells, genes])
    tmp.rename(path)
    return path


def _load(path: Path):
    import anndata
    import scipy.sparse as sp

    stored = np.load(path)
    cells, genes = (int(v) for v in stored["shape"])
    x = sp.csr_matrix((stored["data"], stored["indices"], stored["indptr"]), shape=(cells, genes))
    ids = np.array([f"ENSG{j:011d}" for j in range(genes)], dtype=object)
    adata = anndata.AnnData(X=x)
    adata.var["ensembl_id"] = ids
    medians = {g: np.float32(m) for g, m in zip(ids, stored["medians"], strict=True)}
    tokens = {"<pad>": 0, "<mask>": 1, "<cls>": 2, "<eos>": 3}
    tokens |= {g: 4 + j for j, g in enumerate(ids)}
    return adata, medians, tokens


def _geneformer(adata, medians, tokens) -> tuple[np.ndarray, np.ndarray]:
    """Geneformer's tokenize_anndata loop and create_dataset's V2 layout, restated."""
    import scipy.sparse as sp

    ids = list(adata.var["ensembl_id"])
    coding = np.where([tokens.get(g, False) is not False for g in ids])[0]
    norm_factor_vector = np.array([medians[ids[i]] for i in coding])
    coding_tokens = np.array([tokens[ids[i]] for i in coding])
    n_counts = np.asarray(adata.X.sum(axis=1))  # Geneformer reads obs["n_counts"]
    cells = []
    for i in range(0, adata.n_obs, 512):
        x_view = adata.X[i : i + 512][:, coding]
        x_norm = sp.csr_matrix(x_view / n_counts[i : i + 512] * 10_000 / norm_factor_vector)
        for j in range(x_norm.shape[0]):
            row = x_norm[j]
            ranked = coding_tokens[row.indices][np.argsort(-row.data)][:4094]
            cells.append(np.concatenate([[tokens["<cls>"]], ranked, [tokens["<eos>"]]]))
    lengths = np.array([len(c) for c in cells], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return offsets, np.concatenate(cells).astype(np.int32)


def run_one(name: str, path: Path) -> None:
    """Run one pipeline (in this subprocess) and print its figures as JSON."""
    adata, medians, tokens = _load(path)
    from gpu_genomics.expression.singlecell import rank as rank_module

    started = time.perf_counter()
    if name == "geneformer":
        offsets, token_ids = _geneformer(adata, medians, tokens)
    else:
        if name == "ours-arrays":  # the array path forced on the CPU
            rank_module._encode_cpu = rank_module._encode_arrays
        encoding = rank_module.rank_encode(
            adata, gene_medians=medians, token_dictionary=tokens, device="cpu"
        )
        offsets, token_ids = np.asarray(encoding.offsets), np.asarray(encoding.token_ids)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB, before
    print(  # the digests (zero-copy views of the arrays)
        json.dumps(
            {
                "seconds": seconds,
                "peak_gib": peak,
                "tokens": int(offsets[-1]),
                "offsets_digest": hashlib.sha256(memoryview(offsets.astype(np.int64))).hexdigest(),
                "digest": hashlib.sha256(memoryview(np.ascontiguousarray(token_ids))).hexdigest(),
            }
        )
    )


def main() -> None:
    """Generate the data, run every pipeline in its own subprocess, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=200_000)
    parser.add_argument("--genes", type=int, default=20_000)
    parser.add_argument("--genes-per-cell", type=int, default=2_000)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/rank-cache"))
    parser.add_argument("--only", choices=PIPELINES, action="append")
    parser.add_argument("--run-one", choices=PIPELINES, help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_one:
        run_one(args.run_one, args.path)
        return
    path = generate(args.cache, args.cells, args.genes, args.genes_per_cell)
    nnz = int(np.load(path)["indptr"][-1])
    matrix_gib = nnz * 8 / 2**30
    print(
        f"rank encoding, {args.cells:,} cells x {args.genes:,} genes, {nnz:,} non-zeros "
        f"(CSR data + indices {matrix_gib:.2f} GiB); {ram_gib()}; revision {git_revision()}"
    )
    results = {}
    for name in args.only or PIPELINES:
        command = [sys.executable, __file__, "--run-one", name, "--path", str(path)]
        output = subprocess.run(
            command, check=True, capture_output=True, text=True, env=dict(os.environ)
        )
        results[name] = json.loads(output.stdout.strip().splitlines()[-1])
    reference = results.get("geneformer")
    body = []
    for name, figures in results.items():
        same = reference is None or all(
            figures[k] == reference[k] for k in ("tokens", "offsets_digest", "digest")
        )
        body.append(
            [
                name,
                f"{figures['seconds']:.2f}",
                fmt_rate(args.cells / figures["seconds"]),
                f"{figures['peak_gib']:.2f}",
                f"{figures['peak_gib'] / matrix_gib:.2f}",
                "" if reference is None else f"{reference['seconds'] / figures['seconds']:.2f}x",
                verdict(ok=same),
            ]
        )
    print_table(
        ["pipeline", "seconds", "cells/s", "peak GiB", "peak / matrix", "vs geneformer", "equal"],
        body,
        left={0},
    )


if __name__ == "__main__":
    main()
