"""Regenerate the bundled example (seeded, offline): a small bgzip reference and BED files.

    python data/make_example.py

Writes data/reference.fa.gz (bgzip; .fai/.gzi are built on first use), four BED files
(plain, gzip, one with track/comment lines and strands), metadata.txt (one path per line),
metadata_custom.txt ('path label', two files sharing a label) and basset_targets.txt.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pysam

HERE = Path(__file__).resolve().parent
CHROMS = {"chr1": 120_000, "chr2": 90_000, "chr19": 40_000, "chr20": 35_000, "chr21": 30_000,
          "chr22": 30_000, "chrX": 50_000, "chrUn_tiny": 400}


def main() -> None:
    rng = np.random.default_rng(7)
    plain = HERE / "reference.fa"
    with open(plain, "w") as fasta:
        for name, size in CHROMS.items():
            bases = rng.choice(list("ACGT"), size=size, p=[0.3, 0.2, 0.2, 0.3])
            if size > 1000:
                gap = int(rng.integers(0, size - 300))
                bases[gap : gap + 200] = "N"  # an assembly gap
                mask = int(rng.integers(0, size - 500))
                bases[mask : mask + 400] = np.char.lower(bases[mask : mask + 400])  # soft-masked
            text = "".join(bases)
            fasta.write(f">{name}\n")
            fasta.write("\n".join(text[i : i + 60] for i in range(0, size, 60)) + "\n")
    pysam.tabix_compress(str(plain), str(HERE / "reference.fa.gz"), force=True)
    plain.unlink()
    hotspots = {name: rng.integers(0, size, 12) for name, size in CHROMS.items() if size > 1000}
    beds = []
    for index in range(4):
        rows = []
        for name, centres in hotspots.items():
            for centre in centres:
                if rng.random() < 0.6:  # each cell type opens most hotspots
                    mid = int(centre + rng.integers(-150, 150))
                    width = int(rng.integers(150, 600))
                    start = max(0, mid - width // 2)
                    end = min(CHROMS[name], start + width)
                    strand = "+-"[int(rng.integers(0, 2))]
                    rows.append((name, start, end, strand))
        rows.append(("chrUn_tiny", 10, 200, "+"))  # dropped: chromosome shorter than 600
        rows.sort(key=lambda r: (r[0], r[1]))
        lines = [f"{c}\t{s}\t{e}\tpeak{i}\t{int(rng.integers(0, 1000))}\t{t}"
                 for i, (c, s, e, t) in enumerate(rows)]
        if index == 2:
            lines = ['track name="celltype3 DNase"', "# peaks called with MACS2", *lines]
        text = "\n".join(lines) + "\n"
        path = HERE / (f"celltype{index + 1}.bed" + (".gz" if index % 2 else ""))
        if index % 2:
            path.write_bytes(gzip.compress(text.encode(), mtime=0))
        else:
            path.write_text(text)
        beds.append(path.name)
    (HERE / "metadata.txt").write_text("\n".join(beds) + "\n")
    (HERE / "metadata_custom.txt").write_text(
        "\n".join(f"{bed} {label}" for bed, label in zip(beds, [1, 2, 2, 3], strict=True)) + "\n"
    )
    (HERE / "basset_targets.txt").write_text(
        "\n".join(f"CellType{i + 1}\t{bed}" for i, bed in enumerate(beds)) + "\n"
    )


if __name__ == "__main__":
    main()
