"""Regenerate the bundled bulk RNA-seq example (seeded, offline): a genes x samples TPM table.

    python data/bulk/make_example.py

Writes data/bulk/example_expression.tsv: 300 genes (rows, ``gene_0001`` ...) x 12 samples
(columns, ``ctrl_01`` ... ``ctrl_06``, ``treat_01`` ... ``treat_06``), TPM with 3 decimals, the
specification's layout (rows: genes, columns: samples). About a quarter of the genes have a mean
log1p(TPM) at or below 1.0 (the default filter drops them), some genes have zeros in a few
samples, 30 genes differ between the two groups, and the last gene is constant (50 TPM in every
sample: its z-scores are 0).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
N_GENES = 300
N_PER_GROUP = 6


def main() -> None:
    rng = np.random.default_rng(20240605)
    samples = [f"ctrl_{i:02d}" for i in range(1, N_PER_GROUP + 1)]
    samples += [f"treat_{i:02d}" for i in range(1, N_PER_GROUP + 1)]
    genes = [f"gene_{i:04d}" for i in range(1, N_GENES + 1)]
    # mean log1p(TPM) per gene, then per-sample noise and a group effect on 30 genes
    gene_level = rng.normal(1.6, 1.2, size=N_GENES)
    log_tpm = gene_level[:, None] + rng.normal(0.0, 0.35, size=(N_GENES, 2 * N_PER_GROUP))
    changed = rng.choice(N_GENES - 1, size=30, replace=False)
    log_tpm[changed, N_PER_GROUP:] += rng.choice([-1.0, 1.0], size=(30, 1))
    tpm = np.expm1(np.clip(log_tpm, 0.0, None))
    dropout = (rng.random(tpm.shape) < 0.15) & (gene_level[:, None] < 1.0)
    tpm[dropout] = 0.0
    tpm[-1] = 50.0
    lines = ["gene_id\t" + "\t".join(samples)]
    for gene, row in zip(genes, tpm, strict=True):
        lines.append(gene + "\t" + "\t".join(f"{value:.3f}" for value in row))
    (HERE / "example_expression.tsv").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
