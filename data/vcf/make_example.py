"""Write the bundled variants example ``data/vcf/example.vcf.gz`` (bgzip) and its tabix index:
100 diploid samples x about 6,900 sites on two chromosomes, simulated with msprime (Hudson
coalescent, 1 Mb each), 2% of calls set missing (``./.``) and a few half-missing (``0/.``),
plus three multi-allelic sites so that ``--multiallelic split`` has something to split.

Deterministic for a msprime version: ``python data/vcf/make_example.py``.
"""

from __future__ import annotations

import io
from pathlib import Path

import msprime
import numpy as np
import pysam

OUT = Path(__file__).resolve().parent / "example.vcf.gz"
N_SAMPLES = 100


def simulate(contig: str, seed: int) -> list[str]:
    ts = msprime.sim_ancestry(
        N_SAMPLES,
        sequence_length=1_000_000,
        recombination_rate=1e-8,
        population_size=10_000,
        random_seed=seed,
    )
    ts = msprime.sim_mutations(
        ts, rate=1.5e-8, random_seed=seed, model=msprime.BinaryMutationModel()
    )
    text = io.StringIO()
    ts.write_vcf(
        text,
        contig_id=contig,
        individual_names=[f"S{i:03d}" for i in range(N_SAMPLES)],
        position_transform=lambda x: np.fmax(1, np.round(x)).astype(int),
    )
    return text.getvalue().splitlines()


def main() -> None:
    rng = np.random.default_rng(11)
    first, second = simulate("chr1", 1), simulate("chr2", 2)
    header = [line for line in first if line.startswith("##") and not line.startswith("##contig")]
    header += ["##contig=<ID=chr1,length=1000000>", "##contig=<ID=chr2,length=1000000>"]
    columns = next(line for line in first if line.startswith("#CHROM"))
    records = [line for line in first + second if not line.startswith("#")]
    lines = []
    last = {}
    for number, record in enumerate(records):
        fields = record.split("\t")
        position = max(int(fields[1]), last.get(fields[0], 0) + 1)  # strictly increasing
        last[fields[0]] = position
        fields[1] = str(position)
        fields[2] = f"{fields[0]}_{position}"
        fields[3], fields[4] = "A", "G"
        calls = fields[9:]
        if number % 500 == 7:  # a third allele
            fields[4] = "G,T"
            calls = [c.replace("1|1", "1|2") for c in calls]
        for i in np.nonzero(rng.random(len(calls)) < 0.02)[0]:
            calls[i] = "./." if rng.random() < 0.8 else calls[i][0] + "/."
        lines.append("\t".join(fields[:9] + calls))
    text = "\n".join([*header, columns, *lines]) + "\n"
    plain = OUT.with_suffix("")
    plain.write_text(text)
    pysam.tabix_compress(str(plain), str(OUT), force=True)
    pysam.tabix_index(str(OUT), preset="vcf", force=True)
    plain.unlink()
    print(f"wrote {OUT}: {N_SAMPLES} samples x {len(lines)} sites")


if __name__ == "__main__":
    main()
