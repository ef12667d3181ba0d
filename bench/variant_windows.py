"""Benchmark: ``variant-windows`` (ref/alt windows, and ``--haplotypes``) against peers.

* Windows: ours against a plain pysam + NumPy loop (one ``FastaFile.fetch`` per variant, the
  same left-anchored rule, a NumPy one-hot table, HDF5 written in blocks). gReLU is not
  installed here (it pulls in PyTorch) and GenVarLoader's ref/alt mode needs a genotype
  dataset, so the loop is the peer; its arrays must equal ours.
* Haplotypes: ours against GenVarLoader (``gvl.write`` of the BED and VCF, then
  ``Dataset.open(...).with_seqs("haplotypes")`` read whole), when a Python with genvarloader
  is given (``--gvl-python``) or importable; the share of haplotypes that agree is printed.

Each tool runs as its own process; wall seconds and peak resident memory (polled) are
reported. Simulated input: one random contig, bi-allelic SNVs and 1-10 base indels that do
not overlap, phased genotypes. Usage::

    .venv/bin/python bench/variant_windows.py --variants 100000 --length 1000 \\
        --regions 1000 --samples 16 --gvl-python /path/to/venv/bin/python
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_model, fmt_rate, git_revision, print_table, ram_gib
from variants import run_tracked

GVL_SCRIPT = """
import sys, numpy as np, genvarloader as gvl, genoray
vcf, bed, ref, out, length = sys.argv[1:6]
gvl.write(out + ".gvl", bed, variants=genoray.VCF(vcf), overwrite=True)
ds = gvl.Dataset.open(out + ".gvl", reference=ref).with_seqs("haplotypes").with_len(int(length))
np.save(out, np.asarray(ds[:, :]))
np.save(out + "_samples", np.array(ds.samples, dtype=str))
"""


def simulate(
    folder: Path,
    *,
    n_variants: int,
    contig: int,
    samples: int,
    regions: int,
    length: int,
    seed: int,
) -> dict[str, Path]:
    """A reference, a bgzip VCF with its .tbi and a BED of ``length``-base regions."""
    import pysam

    rng = np.random.default_rng(seed)
    genome = np.frombuffer(b"ACGT", dtype=np.uint8)[rng.integers(0, 4, contig)].tobytes()
    fasta = folder / "ref.fa"
    with open(fasta, "wb") as handle:
        handle.write(b">chr1\n")
        for i in range(0, contig, 60):
            handle.write(genome[i : i + 60] + b"\n")
    pysam.faidx(str(fasta))
    gaps = rng.integers(12, max(13, 2 * contig // max(n_variants, 1) - 12), n_variants)
    positions = 20 + np.cumsum(gaps)
    positions = positions[positions < contig - 20]
    kinds = rng.random(len(positions))
    sizes = rng.integers(1, 11, len(positions))
    text = folder / "v.vcf"
    names = [f"s{i}" for i in range(samples)]
    header = [
        "##fileformat=VCFv4.2",
        f"##contig=<ID=chr1,length={contig}>",
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "\t".join(
            ["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", *names]
        ),
    ]
    pyrng = random.Random(seed)
    with open(text, "w") as handle:
        handle.write("\n".join(header) + "\n")
        for p, kind, size in zip(positions.tolist(), kinds.tolist(), sizes.tolist(), strict=True):
            ref = chr(genome[p])
            if kind < 0.7:
                alt = "ACGT"[("ACGT".index(ref) + pyrng.randint(1, 3)) % 4]
            elif kind < 0.85:
                alt = ref + "".join(pyrng.choice("ACGT") for _ in range(size))
            else:
                ref, alt = genome[p : p + size + 1].decode(), ref
            gts = "\t".join(f"{pyrng.randint(0, 1)}|{pyrng.randint(0, 1)}" for _ in names)
            handle.write(f"chr1\t{p + 1}\tv{p + 1}\t{ref}\t{alt}\t50\tPASS\t.\tGT\t{gts}\n")
    vcf = Path(pysam.tabix_index(str(text), preset="vcf", force=True))
    bed = folder / "regions.bed"
    starts = np.sort(rng.integers(0, contig - length, regions))
    bed.write_text("".join(f"chr1\t{s}\t{s + length}\n" for s in starts.tolist()))
    return {"fasta": fasta, "vcf": vcf, "bed": bed, "variants": len(positions)}


def pysam_loop(vcf: str, fasta: str, out: str, length: int) -> None:
    """The peer: one fetch per variant, Python strings, a NumPy one-hot table, h5py blocks."""
    import h5py
    import pysam

    table = np.zeros((256, 4), dtype=np.uint8)
    for i, base in enumerate("ACGT"):
        table[ord(base), i] = table[ord(base.lower()), i] = 1
    genome = pysam.FastaFile(fasta)
    block = 4096
    with h5py.File(out, "w") as handle, pysam.VariantFile(vcf) as records:
        ref_out = handle.create_dataset(
            "ref_seqs", (0, length, 4), "uint8", maxshape=(None, length, 4), chunks=(256, length, 4)
        )
        alt_out = handle.create_dataset(
            "alt_seqs", (0, length, 4), "uint8", maxshape=(None, length, 4), chunks=(256, length, 4)
        )
        refs: list[bytes] = []
        alts: list[bytes] = []

        def flush() -> None:
            n = len(ref_out)
            for target, rows in ((ref_out, refs), (alt_out, alts)):
                target.resize((n + len(rows), length, 4))
                target[n:] = table[np.frombuffer(b"".join(rows), np.uint8)].reshape(-1, length, 4)
                rows.clear()

        for record in records:
            p = record.pos - 1
            contig_length = genome.get_reference_length(record.chrom)
            start = min(max(p - length // 2, 0), max(contig_length - length, 0))
            ref = record.ref
            for alt in record.alts or ():
                window = genome.fetch(record.chrom, start, start + length)
                tail = genome.fetch(record.chrom, p + len(ref), p + len(ref) + length)
                haplotype = window[: p - start] + alt + tail
                refs.append(window.ljust(length, "N").encode())
                alts.append(haplotype[:length].ljust(length, "N").encode())
            if len(refs) >= block:
                flush()
        flush()
    genome.close()


def gvl_python(option: str | None) -> str | None:
    if option:
        return option
    try:
        import genvarloader  # noqa: F401
    except ImportError:
        return None
    return sys.executable


def _measure(tools: dict[str, list[str]], units: int, job: str, *, log: Path, repeats: int) -> list:
    """Run each tool ``repeats`` times (the fastest run kept: numba's cache is warm by then)."""
    rows = []
    for tool, command in tools.items():
        best = None
        for _ in range(repeats):
            result = run_tracked(command, log)
            if result["rc"]:
                raise SystemExit(f"{tool} failed; see {log}")
            if best is None or result["seconds"] < best["seconds"]:
                best = result
        rows.append([job, tool, f"{units:,}", f"{best['seconds']:.1f}",
                     fmt_rate(units / best["seconds"]), f"{best['tree'] / 2**20:.0f}"])  # fmt: skip
    return rows


def _windows(ours: list[str], data: dict, work: Path, args: argparse.Namespace) -> tuple:
    import h5py

    tools = {
        "gpu-genomics variant-windows": [
            *ours, "variant-windows", str(data["vcf"]), "-f", str(data["fasta"]), "-o",
            str(work / "ours.h5"), "-l", str(args.length), "--device", args.device, "--quiet",
        ],
        "pysam + NumPy loop": [
            sys.executable, __file__, "--peer-loop", str(data["vcf"]), str(data["fasta"]),
            str(work / "loop.h5"), str(args.length),
        ],
    }  # fmt: skip
    rows = _measure(tools, data["variants"], "windows", log=work / "log.txt",
                    repeats=args.repeats)  # fmt: skip
    with h5py.File(work / "ours.h5") as a, h5py.File(work / "loop.h5") as b:
        same = all(np.array_equal(a[k][...], b[k][...]) for k in ("ref_seqs", "alt_seqs"))
    return rows, same


def _haplotypes(ours: list[str], data: dict, work: Path, args: argparse.Namespace) -> tuple:
    import h5py

    tools = {
        "gpu-genomics --haplotypes": [
            *ours, "variant-windows", str(data["vcf"]), "-f", str(data["fasta"]), "-o",
            str(work / "haps.h5"), "--haplotypes", str(data["bed"]), "--device", args.device,
            "--quiet",
        ]
    }  # fmt: skip
    python = gvl_python(args.gvl_python)
    if python:
        script = work / "gvl_run.py"
        script.write_text(GVL_SCRIPT)
        tools["GenVarLoader (write + read)"] = [
            python, str(script), str(data["vcf"]), str(data["bed"]), str(data["fasta"]),
            str(work / "gvl"), str(args.length),
        ]  # fmt: skip
    units = args.regions * args.samples * 2
    rows = _measure(tools, units, "haplotypes", log=work / "log.txt", repeats=args.repeats)
    if not python:
        return rows, None
    theirs = np.load(work / "gvl.npy").reshape(args.regions, args.samples, 2, -1)
    order = np.load(work / "gvl_samples.npy").tolist()  # GenVarLoader sorts the samples
    theirs = theirs[:, [order.index(f"s{i}") for i in range(args.samples)]]
    with h5py.File(work / "haps.h5") as handle:
        onehot = handle["hap_seqs"][...]
    letters = np.frombuffer(b"ACGT", np.uint8)[onehot.argmax(-1)]
    letters[onehot.max(-1) == 0] = ord("N")
    upper = np.char.upper(theirs.view("S1")).view(np.uint8)
    return rows, float((letters == upper).all(-1).mean())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", type=int, default=100_000)
    parser.add_argument("--length", type=int, default=1000)
    parser.add_argument("--contig", type=int, default=20_000_000, help="contig length, bases")
    parser.add_argument("--regions", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2, help="runs per tool; fastest kept")
    parser.add_argument("--gvl-python", default=None, help="a Python with genvarloader")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--peer-loop", nargs=4, metavar=("VCF", "FASTA", "OUT", "LENGTH"),
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args(argv)
    if args.peer_loop:
        vcf, fasta, out, length = args.peer_loop
        pysam_loop(vcf, fasta, out, int(length))
        return
    ours = [str(Path(sys.executable).parent / "gpu-genomics")]
    if not Path(ours[0]).exists():
        ours = [sys.executable, "-m", "gpu_genomics"]
    work = Path(tempfile.mkdtemp(prefix="bench-variant-windows-"))
    try:
        data = simulate(work, n_variants=args.variants, contig=args.contig,
                        samples=args.samples, regions=args.regions, length=args.length,
                        seed=args.seed)  # fmt: skip
        window_rows, same = _windows(ours, data, work, args)
        hap_rows, agreement = _haplotypes(ours, data, work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"revision {git_revision()}; {cpu_model()}; RAM {ram_gib()}; device {args.device}")
    print(f"{data['variants']:,} variants (70% SNV, 15% insertions, 15% deletions of 1-10 "
          f"bases), windows of {args.length} bases; haplotypes: {args.regions} regions x "
          f"{args.samples} samples x 2; best of {args.repeats} runs")  # fmt: skip
    header = ["job", "tool", "units", "seconds", "units/s", "peak MiB"]
    print_table(header, window_rows + hap_rows, left={0, 1})
    print(f"windows: ours equal the loop's arrays: {same}")
    if agreement is None:
        print("haplotypes: GenVarLoader not available (pass --gvl-python)")
    else:
        print(f"haplotypes: share identical to GenVarLoader's: {agreement:.4f}")
    print(json.dumps({"windows_equal": same, "haplotype_agreement": agreement}))
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
