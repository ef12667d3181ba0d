"""Benchmark: a simulated bgzipped VCF -> dosage matrix, ours against scikit-allel and cyvcf2.

Data: msprime (``--samples`` diploid samples, sites until at least ``--sites``), written with
``ts.write_vcf`` and ``--missing`` of the calls turned into ``./.``, bgzipped with pysam.

End to end (each tool in a fresh subprocess, so its peak RSS is its own; best of
``--repeats``): file -> ``(variants, samples)`` dosage matrix.

* ours: ``gpu_genomics.variants.reader.VcfReader`` chunks -> ``genotypes.dosage`` (int8, -1
  missing);
* allel: ``allel.read_vcf(path, fields=["calldata/GT"])`` -> ``GenotypeArray.to_n_alt()``;
* cyvcf2: ``VCF(path)``, ``v.genotype.array()`` per record -> non-REF count, -1 missing.

The three dosages are checked to agree (allel's counts the called ALT alleles of a missing
call, so it is compared where ours is not missing). With a usable GPU, the math
(dosage, call rate, allele frequency, standardization) is timed on CPU and GPU on the whole
matrix already in memory.

    python bench/variants.py [--samples 1000] [--sites 30000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_model, git_revision, print_table, ram_gib

TOOLS = ("ours", "allel", "cyvcf2")


def simulate(path: Path, n_samples: int, n_sites: int, missing: float, seed: int = 1) -> int:
    import msprime
    import pysam

    length = 1e6
    while True:
        ts = msprime.sim_ancestry(
            samples=n_samples,
            ploidy=2,
            sequence_length=length,
            recombination_rate=1e-8,
            population_size=10_000,
            random_seed=seed,
        )
        ts = msprime.sim_mutations(ts, rate=1e-8, random_seed=seed)
        if ts.num_sites >= n_sites:
            break
        length = float(int(length * 1.3 * n_sites / max(ts.num_sites, 1)))
    plain = path.with_suffix("")
    rng = np.random.default_rng(seed)
    with open(plain, "w") as handle:
        ts.write_vcf(handle)
    with open(plain) as src, open(str(plain) + ".m", "w") as dst:
        for line in src:
            if line.startswith("#"):
                dst.write(line)
                continue
            fields = line.rstrip("\n").split("\t")
            for j in np.flatnonzero(rng.random(len(fields) - 9) < missing):
                fields[9 + j] = "./."
            dst.write("\t".join(fields) + "\n")
    os.replace(str(plain) + ".m", plain)
    pysam.tabix_compress(str(plain), str(path), force=True)
    plain.unlink()
    return ts.num_sites


def dosage_ours(path: str) -> np.ndarray:
    from gpu_genomics.variants import genotypes
    from gpu_genomics.variants.reader import VcfReader

    parts = [genotypes.dosage(c.call_genotype, device="cpu") for c in VcfReader(path)]
    return np.concatenate(parts)


def dosage_allel(path: str) -> np.ndarray:
    import allel

    gt = allel.read_vcf(path, fields=["calldata/GT"])["calldata/GT"]
    return allel.GenotypeArray(gt).to_n_alt()


def dosage_cyvcf2(path: str) -> np.ndarray:
    from cyvcf2 import VCF

    rows = []
    for variant in VCF(path):
        alleles = variant.genotype.array()[:, :-1]  # last column: phasing
        count = (alleles > 0).sum(axis=1)
        rows.append(np.where((alleles < 0).any(axis=1), -1, count).astype(np.int8))
    return np.array(rows)


FUNCTIONS = {"ours": dosage_ours, "allel": dosage_allel, "cyvcf2": dosage_cyvcf2}


def child(tool: str, path: str, repeats: int) -> None:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = FUNCTIONS[tool](path)
        times.append(time.perf_counter() - start)
    rss = _vm_hwm_bytes()
    print(json.dumps({"seconds": min(times), "rss": rss, "shape": list(result.shape)}))


def _vm_hwm_bytes() -> int:
    """Peak RSS of this process (VmHWM; ru_maxrss would include the parent's at fork)."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure(tool: str, path: Path, repeats: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", tool, str(path), "--repeats", str(repeats)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def check_agreement(path: Path) -> list[str]:
    ours = dosage_ours(str(path))
    allel_d = dosage_allel(str(path))
    cy = dosage_cyvcf2(str(path))
    called = ours >= 0
    return [
        f"ours == cyvcf2 (missing -1 in both): {np.array_equal(ours, cy)}",
        f"ours == allel where ours is called: {np.array_equal(ours[called], allel_d[called])}",
        f"missing calls: {(~called).sum()} of {ours.size} ({(~called).mean():.2%})",
    ]


def gpu_math(path: Path, repeats: int) -> list[list[object]]:
    from gpu_genomics.device import gpu_status
    from gpu_genomics.variants import genotypes as G
    from gpu_genomics.variants.reader import read_vcf

    if not gpu_status()[0]:
        return []
    import cupy

    gt_host = read_vcf(path)["call_genotype"]
    rows = []
    for device in ("cpu", "gpu"):
        gt = cupy.asarray(gt_host) if device == "gpu" else gt_host

        def work(gt=gt, device=device):
            dos = G.dosage(gt, device=device)
            af = G.allele_frequency(gt, device=device)
            G.variant_call_rate(gt, device=device)
            std, _ = G.standardize(dos, af)
            if device == "gpu":
                cupy.cuda.Device().synchronize()
            return std

        work()
        best = min(_timed(work) for _ in range(repeats))
        rows.append([device, f"{best:.4f}", f"{gt_host.shape[0] * gt_host.shape[1] / best:.3g}"])
    return rows


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--sites", type=int, default=30_000)
    parser.add_argument("--missing", type=float, default=0.01)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--vcf", help="use this VCF instead of simulating one")
    parser.add_argument("--child", nargs=2, metavar=("TOOL", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.repeats)
        return
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs, {ram_gib()} RAM")
    print(f"revision: {git_revision()}")
    with tempfile.TemporaryDirectory() as tmp:
        if args.vcf:
            path = Path(args.vcf)
        else:
            path = Path(tmp) / "sim.vcf.gz"
            start = time.perf_counter()
            n_sites = simulate(path, args.samples, args.sites, args.missing)
            print(
                f"data: msprime, {args.samples} samples x {n_sites} sites, "
                f"{args.missing:.1%} calls missing, {path.stat().st_size / 2**20:.1f} MiB bgzip "
                f"(simulated in {time.perf_counter() - start:.1f} s)"
            )
        for line in check_agreement(path):
            print("check:", line)
        results = {tool: measure(tool, path, args.repeats) for tool in TOOLS}
        shape = results["ours"]["shape"]
        body = []
        for tool in TOOLS:
            r = results[tool]
            body.append(
                [
                    tool,
                    f"{r['seconds']:.3f}",
                    f"{shape[0] / r['seconds']:.3g}",
                    f"{shape[0] * shape[1] / r['seconds'] / 1e6:.3g}",
                    f"{r['rss'] / 2**20:.0f}",
                    f"{r['seconds'] / results['ours']['seconds']:.2f}",
                ]
            )
        print(f"\nend to end, bgzipped VCF -> dosage {shape[0]} x {shape[1]} (best of "
              f"{args.repeats}, fresh process each):")  # fmt: skip
        print_table(
            ["tool", "seconds", "variants/s", "M calls/s", "peak RSS MiB", "time / ours"],
            body,
            left={0},
        )
        rows = gpu_math(path, args.repeats)
        if rows:
            print("\nmath only (dosage + AF + call rate + standardize), matrix in memory:")
            print_table(["device", "seconds", "calls/s"], rows, left={0})
        else:
            print("\nno usable GPU: GPU math not timed")


if __name__ == "__main__":
    main()
