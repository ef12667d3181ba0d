#!/usr/bin/env python
"""End-to-end benchmark of ``gpu-genomics intervals`` against the usual pipelines.

    python bench/intervals.py [--rows 1800000] [--files 30] [--scale 1] [--workdir DIR]

Data (generated once, seeded, cached in ``--workdir``; a rerun with the same parameters reuses
it): an hg19-shaped genome (chr1..chr22, chrX, chrY with hg19's sizes times ``--scale``) as a
plain FASTA with 60-base lines and its ``.fai`` (uniform random bases, about 45% soft-masked in
300-base runs, N telomeres of 10 kb, an N centromere block of up to 3 Mb, sporadic single Ns),
and ``--files`` BED6 peak files with ``--rows`` rows in all (file sizes vary +-40%), written in
MACS2's order (sorted by chromosome name, then start). About 85% of each file's peaks sit on
hotspots shared across files (one hotspot per 8 rows; each hotspot has a popularity drawn from
Beta(0.6, 1.4), so some are in nearly every file and most in a few), jittered by N(0, 60) bp
around the hotspot; the rest are file-specific background peaks. Widths: log-normal around
350 bp, clipped to 150-1000 bp. Strand column: 80% '.', 10% '+', 10% '-'.

Pipelines, same run, same data, each stage run as a child process:

* ours: ``gpu-genomics intervals -i META -f REF -o OUT.h5 --device cpu --loglevel info``
  with ``--merge hull`` (the same work as the glue) and with the default ``--merge basset``;
  with ``--device gpu`` too when ``gpu_genomics.gpu_status()[0]`` is True. ``--loglevel info``
  replaces ``--quiet`` so that the tool logs its stage timings (stderr goes to a file, so the
  progress bar disables itself either way).
* the common glue (hull): label column added with awk, ``LC_ALL=C sort -k1,1 -k2,2n``,
  ``bedtools merge -d -MIN_OVERLAP -c 4 -o distinct``; 600-bp windows around each hull's
  midpoint, shifted inward at chromosome ends (pandas); ``bedtools getfasta -tab``; NumPy
  one-hot (byte lookup table + ``np.eye(5, 4, dtype=uint8)``, so N rows are zero as ours);
  multi-hot labels from the merge column; split by chromosome as ours; written with h5py.
* Basset-style (basset merge): Basset's ``preprocess_features.py`` in plain Python (line-by-line
  BED reading, per-(chromosome, strand) lists, open groups, greedy ``merge_peaks``),
  ``bedtools getfasta -s``, and ``seq_hdf5.py`` with a per-base encoder in the Python 2-era style
  of Basset's ``dna_io`` (a dict lookup per base appending to lists, then ``np.array``, float16
  ``(n, 4, 1, L)``, 0.25 for N), random split, h5py. Merge and getfasta run on all the data; the
  encode+write stage runs on the first ``--basset-subset`` regions and its time is scaled
  linearly to all regions (the table says so).

Checks: ours (hull) and the glue must give the same set of windows (chromosome, start), the same
labels per window and the same one-hot rows on a random sample; ours (basset) and the
Basset-style merge the same windows (chromosome, start, strand) and labels, and the same
sequences on a sample (reverse complements included).

Memory: the maximum resident set size of the largest process of each stage, from
``/usr/bin/time -f %M`` around the stage (``ru_maxrss`` of ``wait4``, which covers the child
and all its descendants); a pipeline's figure is the maximum over its stages. Processes running
concurrently inside one shell pipe are not summed (awk and ``bedtools merge`` stream; ``sort``
is the big one). ``bedtools getfasta`` maps the whole FASTA, so its figure is file-backed pages
(its anonymous memory is under 1 MiB).

With ``--bgzip``, ours also runs on the CPU (both merges) from a bgzip copy of the genome (pysam's
``tabix_compress``, indexed with ``.fai`` and ``.gzi``; made once and cached beside the FASTA):
the table's rows ``cpu bgzip``, their time/ours against the plain FASTA, a check that both forms
give the same arrays, and the bgzip ``sequences_and_write`` stage against the plain one.

The genome FASTA is read once before timing so that every pipeline finds it in the page cache;
numba's cache for ours is warmed on the bundled example (``data/``) first. Every pipeline is
timed once (wall clock of its child processes, Python start-up included).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))

import _common as common  # noqa: E402 (bench/ is the script's folder)
from _common import cpu_model, fmt_rate, git_revision, gpu_text, ram_gib, verdict  # noqa: E402

import gpu_genomics as gg  # noqa: E402

# hg19 chromosome sizes (UCSC), chr1..chr22, chrX, chrY
HG19 = {
    "chr1": 249_250_621,
    "chr2": 243_199_373,
    "chr3": 198_022_430,
    "chr4": 191_154_276,
    "chr5": 180_915_260,
    "chr6": 171_115_067,
    "chr7": 159_138_663,
    "chr8": 146_364_022,
    "chr9": 141_213_431,
    "chr10": 135_534_747,
    "chr11": 135_006_516,
    "chr12": 133_851_895,
    "chr13": 115_169_878,
    "chr14": 107_349_540,
    "chr15": 102_531_392,
    "chr16": 90_354_753,
    "chr17": 81_195_210,
    "chr18": 78_077_248,
    "chr19": 59_128_983,
    "chr20": 63_025_520,
    "chr21": 48_129_895,
    "chr22": 51_304_566,
    "chrX": 155_270_560,
    "chrY": 59_373_566,
}
TEST_CHROMS = ("chr19", "chr20")  # ours' defaults; the glue splits the same way
VALID_CHROMS = ("chr21", "chr22")
SPLITS = ("training", "validation", "test")

GLUE_TARGET = 3.0  # ours (cpu, hull) >= 3x faster than the bedtools glue
MEMORY_TARGET = 1.5e9  # ours (cpu) peak memory < 1.5 GB (10^9 bytes)
BGZIP_STAGE_TARGET = 1.5  # --bgzip: its sequences_and_write stage <= 1.5x the plain FASTA's
BASSET_TARGET = 20.0  # ours (cpu, basset) >= 20x faster than Basset's pipeline
BASSET_REFERENCE = (170.0, 2.0e9, 1_800_000)  # seconds, bytes, BED rows (30 files, 2 cores)

HAVE_TIME = os.access("/usr/bin/time", os.X_OK)
LINE = 60  # FASTA line width
CHUNK = LINE * (1 << 20)  # bases generated per step
TELOMERE = 10_000
CENTROMERE = 3_000_000


# --- data ------------------------------------------------------------------------------------
def chrom_sizes(scale: float) -> dict[str, int]:
    return {name: max(100_000, int(size * scale)) for name, size in HG19.items()}


def gaps_of(size: int) -> list[tuple[int, int]]:
    """N blocks of a chromosome: both telomeres and a centromere block at 40% of its length."""
    centromere = min(CENTROMERE, size // 50)
    middle = int(size * 0.4)
    return [(0, TELOMERE), (middle, middle + centromere), (size - TELOMERE, size)]


def write_genome(path: Path, sizes: dict[str, int], seed: int) -> None:
    """Plain FASTA with 60-base lines, written in chunks with NumPy, and its ``.fai``."""
    rng = np.random.default_rng(seed)
    upper = np.frombuffer(b"ACGT", dtype=np.uint8)
    fai = []
    tmp = path.with_suffix(".tmp")
    offset = 0
    with open(tmp, "wb") as out:
        for name, size in sizes.items():
            header = f">{name}\n".encode()
            out.write(header)
            offset += len(header)
            fai.append(f"{name}\t{size}\t{offset}\t{LINE}\t{LINE + 1}\n")
            gaps = gaps_of(size)
            for lo in range(0, size, CHUNK):
                n = min(CHUNK, size - lo)
                bases = upper[np.frombuffer(rng.bytes(n), dtype=np.uint8) & 3]
                soft = rng.random((n + 299) // 300, dtype=np.float32) < 0.45
                bases[np.repeat(soft, 300)[:n]] |= 0x20  # soft-masked runs: lowercase
                bases[rng.integers(0, n, size=rng.binomial(n, 2e-5))] = ord("N")
                for gap_lo, gap_hi in gaps:
                    a, b = max(gap_lo, lo) - lo, min(gap_hi, lo + n) - lo
                    if a < b:
                        bases[a:b] = ord("N")
                full = n // LINE
                lines = np.empty((full, LINE + 1), dtype=np.uint8)
                lines[:, :LINE] = bases[: full * LINE].reshape(full, LINE)
                lines[:, LINE] = ord("\n")
                out.write(lines.tobytes())
                if n > full * LINE:
                    out.write(bases[full * LINE :].tobytes() + b"\n")
            offset += size + (size + LINE - 1) // LINE
    tmp.rename(path)
    Path(f"{path}.fai").write_text("".join(fai))


def _positions(rng, n: int, sizes: dict[str, int], margin: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random (chromosome index, position) pairs, uniform over the genome, away from
    the N blocks by at least ``margin``."""
    lengths = np.array(list(sizes.values()), dtype=np.int64)
    chrom = rng.choice(len(lengths), size=n, p=lengths / lengths.sum())
    pos = (rng.random(n) * lengths[chrom]).astype(np.int64)
    bad = np.zeros(n, dtype=bool)
    for index, size in enumerate(lengths):
        rows = chrom == index
        for lo, hi in gaps_of(int(size)):
            bad |= rows & (pos > lo - margin) & (pos < hi + margin)
    if bad.any():
        chrom[bad], pos[bad] = _positions(rng, int(bad.sum()), sizes, margin)
    return chrom, pos


def write_peaks(folder: Path, sizes: dict[str, int], rows: int, files: int, seed: int) -> int:
    """``files`` BED6 files with ``rows`` rows in all; returns the number of rows written."""
    import pandas as pd

    rng = np.random.default_rng(seed + 1)
    names = np.array(list(sizes), dtype=object)
    lengths = np.array(list(sizes.values()), dtype=np.int64)
    n_hot = max(100, rows // 8)
    hot_chrom, hot_pos = _positions(rng, n_hot, sizes, 2_000)
    popularity = rng.beta(0.6, 1.4, size=n_hot)
    weights = rng.uniform(0.6, 1.4, size=files)
    per_file = np.floor(weights / weights.sum() * rows).astype(np.int64)
    per_file[-1] += rows - per_file.sum()
    strands = np.array([".", "+", "-"], dtype=object)
    total = 0
    for index, n_rows in enumerate(per_file):
        wanted = 0.85 * n_rows
        chance = np.minimum(1.0, popularity * wanted / popularity.sum())
        hot = np.flatnonzero(rng.random(n_hot) < chance)[:n_rows]
        n_background = n_rows - len(hot)
        bg_chrom, bg_pos = _positions(rng, n_background, sizes, 2_000)
        chrom = np.concatenate([hot_chrom[hot], bg_chrom])
        centre = np.concatenate(
            [hot_pos[hot] + np.rint(rng.normal(0, 60, len(hot))).astype(np.int64), bg_pos]
        )
        width = np.clip(rng.lognormal(np.log(350), 0.45, n_rows), 150, 1000).astype(np.int64)
        start = np.clip(centre - width // 2, 0, lengths[chrom] - width)
        frame = pd.DataFrame(
            {
                "chrom": names[chrom],
                "start": start,
                "end": start + width,
                "name": [f"peak{i}" for i in range(n_rows)],
                "score": rng.integers(10, 1000, n_rows),
                "strand": strands[rng.choice(3, size=n_rows, p=[0.8, 0.1, 0.1])],
            }
        )
        frame = frame.sort_values(["chrom", "start"], kind="stable")  # MACS2's order
        frame["name"] = [f"peak{i}" for i in range(n_rows)]
        frame.to_csv(folder / f"peaks_{index:02d}.bed", sep="\t", header=False, index=False)
        total += n_rows
    return total


def make_data(args, *, genome_needed: bool = True) -> dict:
    """Generate (or reuse) the genome and the peak files; return the paths and facts."""
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    sizes = chrom_sizes(args.scale)
    genome_key = {"scale": args.scale, "seed": args.seed, "line": LINE, "version": 1}
    genome = work / f"genome-scale{args.scale:g}.fa"
    genome_meta = Path(f"{genome}.json")
    peaks_key = {**genome_key, "rows": args.rows, "files": args.files, "version": 1}
    peaks = work / f"peaks-scale{args.scale:g}-rows{args.rows}-files{args.files}-seed{args.seed}"
    peaks_meta = peaks / "params.json"
    made = []
    clock = time.perf_counter()
    if genome_needed and (
        not (genome.exists() and genome_meta.exists())
        or json.loads(genome_meta.read_text()) != genome_key
    ):
        write_genome(genome, sizes, args.seed)
        genome_meta.write_text(json.dumps(genome_key))
        made.append(f"genome {time.perf_counter() - clock:.1f} s")
    clock = time.perf_counter()
    if not peaks_meta.exists() or json.loads(peaks_meta.read_text()) != peaks_key:
        if peaks.exists():
            shutil.rmtree(peaks)
        peaks.mkdir()
        write_peaks(peaks, sizes, args.rows, args.files, args.seed)
        beds = sorted(peaks.glob("peaks_*.bed"))
        (peaks / "metadata.txt").write_text("".join(f"{b.name}\n" for b in beds))
        (peaks / "basset_targets.txt").write_text("".join(f"{b.stem}\t{b}\n" for b in beds))
        peaks_meta.write_text(json.dumps(peaks_key))
        made.append(f"peaks {time.perf_counter() - clock:.1f} s")
    beds = sorted(peaks.glob("peaks_*.bed"))
    bgzip = genome.with_suffix(".fa.gz")
    if (
        genome_needed
        and args.bgzip
        and not (Path(f"{bgzip}.gzi").exists() and bgzip.stat().st_mtime >= genome.stat().st_mtime)
    ):
        import pysam

        clock = time.perf_counter()
        pysam.tabix_compress(str(genome), str(bgzip), force=True)
        for index in (Path(f"{bgzip}.fai"), Path(f"{bgzip}.gzi")):
            index.unlink(missing_ok=True)
        pysam.faidx(str(bgzip))
        made.append(f"bgzip copy {time.perf_counter() - clock:.1f} s")
    return {
        "genome": genome,
        "bgzip": bgzip if args.bgzip else None,
        "sizes": sizes,
        "metadata": peaks / "metadata.txt",
        "targets": peaks / "basset_targets.txt",
        "beds": beds,
        "made": ", ".join(made) if made else "reused from the cache",
    }


# --- running child processes -------------------------------------------------------------------
def run_stage(cmd: list[str] | str, log_path: Path, *, shell: bool = False) -> dict:
    """Run one stage as a child process; wall seconds and max RSS (bytes) of its process tree.

    The stage runs under ``/usr/bin/time -f %M``, which reports ``ru_maxrss`` from ``wait4`` on
    its own child: the largest resident set of that child or of any of its waited-for
    descendants. (``wait4`` from this process would not do: on Linux a child's ``ru_maxrss``
    starts at its parent's resident size when it is forked, i.e. this benchmark's.)
    """
    if shell:
        cmd = ["/bin/bash", "-c", cmd]
    rss_path = log_path.with_suffix(".rss")
    rss_path.unlink(missing_ok=True)
    timer = ["/usr/bin/time", "-o", str(rss_path), "-f", "%M"] if HAVE_TIME else []
    with open(log_path, "wb") as err:
        clock = time.perf_counter()
        child = subprocess.Popen([*timer, *cmd], stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - clock
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        tail = log_path.read_text(errors="replace")[-3000:]
        raise SystemExit(f"stage failed (exit {child.returncode}): {cmd}\n{tail}")
    if HAVE_TIME:
        maxrss_kib = int(rss_path.read_text().split()[-1])
    else:  # an upper bound: includes this process's resident size at fork time
        maxrss_kib = usage.ru_maxrss
    return {"seconds": seconds, "maxrss": maxrss_kib * 1024, "log": log_path}


def child_cmd(mode: str, *extra: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--child", mode, *extra]


def read_fai(genome: Path) -> dict[str, int]:
    sizes = {}
    for line in Path(f"{genome}.fai").read_text().splitlines():
        name, length = line.split("\t")[:2]
        sizes[name] = int(length)
    return sizes


# --- ours ------------------------------------------------------------------------------------
OURS_LOG = re.compile(
    r"wrote .*\(read ([\d.]+) s, merge ([\d.]+) s, sequences_and_write ([\d.]+) s\)"
)


def ours_cmd(meta, genome, out, *, merge: str, device: str, length: int, overlap: int) -> list[str]:
    exe = Path(sys.executable).with_name("gpu-genomics")
    base = [str(exe)] if exe.exists() else [sys.executable, "-m", "gpu_genomics"]
    return [
        *base,
        "intervals",
        "-i",
        str(meta),
        "-f",
        str(genome),
        "-o",
        str(out),
        "--device",
        device,
        "--merge",
        merge,
        "--length",
        str(length),
        "--min_overlap",
        str(overlap),
        "--loglevel",
        "info",
    ]


def run_ours(args, data, merge: str, device: str, *, bgzip: bool = False) -> dict:
    os.sync()  # no write-back of an earlier run's output during this one
    work = Path(args.workdir) / "runs"
    tag = "-bgzip" if bgzip else ""
    out = work / f"ours-{merge}-{device}{tag}.h5"
    out.unlink(missing_ok=True)
    cmd = ours_cmd(
        data["metadata"],
        data["bgzip"] if bgzip else data["genome"],
        out,
        merge=merge,
        device=device,
        length=args.length,
        overlap=args.min_overlap,
    )
    result = run_stage(cmd, work / f"ours-{merge}-{device}{tag}.log")
    text = result["log"].read_text()
    match = OURS_LOG.search(text)
    if not match:
        print(
            f"  warning: no 'wrote ...: ... (read X s, merge Y s, sequences_and_write Z s)' line "
            f"in {result['log']}; stage timings left out",
            flush=True,
        )
    result["stages"] = (
        dict(zip(("read", "merge", "sequences_and_write"), map(float, match.groups()), strict=True))
        if match
        else {}
    )
    result["regions"] = count_regions(out)
    result["output"] = out
    result["command"] = shlex.join(cmd)
    return result


def warm_up_ours(args, devices: list[str]) -> None:
    """Load/compile numba's cache (and CuPy's kernels) on the bundled example, untimed."""
    work = Path(args.workdir) / "runs"
    for device in devices:
        for merge in ("hull", "basset"):
            out = work / f"warmup-{merge}-{device}.h5"
            out.unlink(missing_ok=True)
            cmd = ours_cmd(
                REPO / "data" / "metadata.txt",
                REPO / "data" / "reference.fa.gz",
                out,
                merge=merge,
                device=device,
                length=args.length,
                overlap=args.min_overlap,
            )
            run_stage(cmd, work / f"warmup-{merge}-{device}.log")
            out.unlink(missing_ok=True)


def count_regions(path: Path) -> int:
    import h5py

    with h5py.File(path, "r") as f:
        if "training_seqs" in f:
            return sum(f[f"{s}_seqs"].shape[0] for s in SPLITS)
        return sum(f[f"{s}_in"].shape[0] for s in ("train", "valid", "test"))


# --- the common glue ---------------------------------------------------------------------------
def run_glue(args, data) -> dict:
    os.sync()
    work = Path(args.workdir) / "runs"
    merged, windows, tab = work / "glue-merged.bed", work / "glue-windows.bed", work / "glue.tab"
    out = work / "glue.h5"
    for path in (merged, windows, tab, out):
        path.unlink(missing_ok=True)
    label = " ; ".join(
        f"awk -v OFS='\\t' -v L={i} '{{print $1,$2,$3,L}}' {shlex.quote(str(bed))}"
        for i, bed in enumerate(data["beds"])
    )
    merge = (
        f"set -o pipefail; {{ {label} ; }} | LC_ALL=C sort -k1,1 -k2,2n | "
        f"bedtools merge -i stdin -d -{args.min_overlap} -c 4 -o distinct > {merged}"
    )
    stages = {
        "label+sort+merge": run_stage(merge, work / "glue-merge.log", shell=True),
        "windows": run_stage(
            child_cmd(
                "glue-windows",
                str(merged),
                str(windows),
                str(data["genome"]),
                str(args.length),
            ),
            work / "glue-windows.log",
        ),
        "getfasta": run_stage(
            [
                "bedtools",
                "getfasta",
                "-fi",
                str(data["genome"]),
                "-bed",
                str(windows),
                "-tab",
                "-fo",
                str(tab),
            ],
            work / "glue-getfasta.log",
        ),
        "onehot+write": run_stage(
            child_cmd(
                "glue-encode",
                str(windows),
                str(tab),
                str(data["genome"]),
                str(out),
                str(len(data["beds"])),
                str(args.length),
            ),
            work / "glue-encode.log",
        ),
    }
    return {
        "seconds": sum(s["seconds"] for s in stages.values()),
        "maxrss": max(s["maxrss"] for s in stages.values()),
        "stages": {k: s["seconds"] for k, s in stages.items()},
        "stage_rss": {k: s["maxrss"] for k, s in stages.items()},
        "regions": count_regions(out),
        "output": out,
    }


def glue_windows(merged: str, windows: str, genome: str, length: str) -> None:
    """Glue step: one window of ``length`` around each hull's midpoint, shifted inward."""
    import pandas as pd

    length = int(length)
    sizes = pd.Series(read_fai(Path(genome)))
    hulls = pd.read_csv(
        merged, sep="\t", header=None, names=["chrom", "start", "end", "labels"], dtype={3: str}
    )
    mid = (hulls["start"] + hulls["end"]) // 2
    chrom_len = hulls["chrom"].map(sizes)
    start = np.maximum(mid - length // 2, 0)
    start = np.minimum(start, chrom_len - length)
    out = pd.DataFrame(
        {"chrom": hulls["chrom"], "start": start, "end": start + length, "labels": hulls["labels"]}
    )
    out.to_csv(windows, sep="\t", header=False, index=False)


def glue_encode(  # noqa: PLR0917 (child entry: argv is positional)
    windows: str, tab: str, genome: str, out: str, n_labels: str, length: str
) -> None:
    """Glue step: NumPy one-hot (lookup table + np.eye), labels, chromosome split, h5py."""
    import h5py
    import pandas as pd

    length, n_labels = int(length), int(n_labels)
    regions = pd.read_csv(
        windows, sep="\t", header=None, names=["chrom", "start", "end", "labels"], dtype={3: str}
    )
    seqs = pd.read_csv(tab, sep="\t", header=None, names=["name", "seq"])
    codes = np.frombuffer("".join(seqs["seq"]).encode("ascii"), dtype=np.uint8)
    lut = np.full(256, 4, dtype=np.uint8)
    for i, base in enumerate("ACGT"):
        lut[ord(base)] = lut[ord(base.lower())] = i
    onehot = np.eye(5, 4, dtype=np.uint8)[lut[codes].reshape(len(seqs), length)]
    labels = np.zeros((len(regions), n_labels), dtype=np.uint8)
    for row, text in enumerate(regions["labels"]):
        for label in text.split(","):
            labels[row, int(label)] = 1
    chrom_index = {name: i for i, name in enumerate(read_fai(Path(genome)))}
    coords = np.stack(
        [
            regions["chrom"].map(chrom_index).to_numpy(np.int64),
            regions["start"].to_numpy(np.int64),
            regions["end"].to_numpy(np.int64),
        ],
        axis=1,
    )
    split = np.zeros(len(regions), dtype=np.int8)
    split[regions["chrom"].isin(VALID_CHROMS).to_numpy()] = 1
    split[regions["chrom"].isin(TEST_CHROMS).to_numpy()] = 2
    with h5py.File(out, "w") as f:
        for index, name in enumerate(SPLITS):
            rows = split == index
            f.create_dataset(f"{name}_seqs", data=onehot[rows])
            f.create_dataset(f"{name}_labels", data=labels[rows])
            f.create_dataset(f"{name}_coords", data=coords[rows])


# --- Basset-style ------------------------------------------------------------------------------
def run_basset(args, data) -> dict:
    os.sync()
    work = Path(args.workdir) / "runs"
    merged, act, fasta = work / "basset.bed", work / "basset_act.txt", work / "basset.fa"
    out = work / "basset.h5"
    for path in (merged, act, fasta, out):
        path.unlink(missing_ok=True)
    stages = {
        "merge (Python)": run_stage(
            child_cmd(
                "basset-merge",
                str(data["targets"]),
                str(data["genome"]),
                str(merged),
                str(act),
                str(args.length),
                str(args.min_overlap),
            ),
            work / "basset-merge.log",
        ),
        "getfasta -s": run_stage(
            [
                "bedtools",
                "getfasta",
                "-fi",
                str(data["genome"]),
                "-bed",
                str(merged),
                "-s",
                "-fo",
                str(fasta),
            ],
            work / "basset-getfasta.log",
        ),
    }
    n_regions = sum(1 for _ in open(merged))
    subset = min(args.basset_subset, n_regions)
    encode = run_stage(
        child_cmd("basset-encode", str(fasta), str(act), str(out), str(subset), str(args.seed)),
        work / "basset-encode.log",
    )
    factor = n_regions / subset
    full_rss = max(s["maxrss"] for s in stages.values())
    stages["encode+write (scaled)"] = {
        "seconds": encode["seconds"] * factor,
        "maxrss": encode["maxrss"],
    }
    return {
        "seconds": sum(s["seconds"] for s in stages.values()),
        "maxrss": full_rss,  # merge and getfasta on all data; encode's is the subset's
        "stages": {k: s["seconds"] for k, s in stages.items()},
        "stage_rss": {k: s["maxrss"] for k, s in stages.items()},
        "regions": n_regions,
        "subset": subset,
        "factor": factor,
        "encode_subset_seconds": encode["seconds"],
        "output": out,
        "bed": merged,
        "act": act,
        "fasta": fasta,
    }


class Peak:
    """Basset's ``Peak``: start, end and the set of targets it is active in."""

    def __init__(self, start, end, act):
        self.start = start
        self.end = end
        self.act = act

    def extend(self, size, chrom_len):
        mid = (self.start + self.end) // 2
        self.start = max(0, mid - size // 2)
        self.end = self.start + size
        if self.end > chrom_len:
            self.end = chrom_len
            self.start = self.end - size

    def merge(self, other, size, chrom_len):
        mids = [(self.start + self.end) // 2, (other.start + other.end) // 2]
        weights = [1 + len(self.act), 1 + len(other.act)]
        mid = int(0.5 + (mids[0] * weights[0] + mids[1] * weights[1]) / float(sum(weights)))
        self.start = mid
        self.end = mid + 1
        self.extend(size, chrom_len)
        self.act = self.act | other.act


def merge_peaks(peaks, size, merge_overlap, chrom_len):
    """Basset's ``merge_peaks``: merge the adjacent pair with the largest overlap (leftmost on
    ties) while that overlap is at least ``merge_overlap``."""
    while len(peaks) > 1:
        best_i, best = 0, peaks[0].end - peaks[1].start
        for i in range(1, len(peaks) - 1):
            overlap = peaks[i].end - peaks[i + 1].start
            if overlap > best:
                best_i, best = i, overlap
        if best < merge_overlap:
            break
        peaks[best_i].merge(peaks[best_i + 1], size, chrom_len)
        del peaks[best_i + 1]
    return peaks


def read_target_peaks(targets) -> tuple[list[str], dict[tuple[str, str], list]]:
    """Basset's reading of the targets table and of each BED file, line by line: the target
    names and ``(start, end, target index)`` of every peak per (chromosome, strand)."""
    target_beds, target_names = [], []
    for line in open(targets):
        a = line.rstrip("\n").split("\t")
        target_names.append(a[0])
        target_beds.append(a[1])
    chrom_peaks = {}
    for ti, bed in enumerate(target_beds):
        for line in open(bed):
            if line.startswith("#"):
                continue
            a = line.rstrip("\n").split("\t")
            strand = "+"
            if len(a) > 5 and a[5] in ("+", "-"):
                strand = a[5]
            start, end = int(a[1]), int(a[2])
            chrom_peaks.setdefault((a[0], strand), []).append((start, end, ti))
    return target_names, chrom_peaks


def basset_merge(  # noqa: PLR0917 (child entry: argv is positional)
    targets, genome, out_bed, out_act, size, merge_overlap
) -> None:
    """Basset's preprocess_features.py in plain Python: line-by-line BED reading, peaks per
    (chromosome, strand) as midpoints [mid, mid + 1) sorted as its sortBed, extended to
    windows, open groups, greedy merge, activity table."""
    size, merge_overlap = int(size), int(merge_overlap)
    chrom_lengths = read_fai(Path(genome))
    target_names, chrom_peaks = read_target_peaks(targets)
    with open(out_bed, "w") as bed_out, open(out_act, "w") as act_out:
        act_out.write("\t" + "\t".join(target_names) + "\n")
        for chrom, strand in sorted(chrom_peaks):
            chrom_len = chrom_lengths[chrom]
            # each peak becomes [mid, mid + 1), sorted (sortBed; ties by target), then extended
            groups, open_peaks, open_end = [], [], None
            entries = sorted(((s + e) // 2, ti) for s, e, ti in chrom_peaks[(chrom, strand)])
            for mid, ti in entries:
                peak = Peak(mid, mid + 1, {ti})
                peak.extend(size, chrom_len)
                if open_peaks and open_end - merge_overlap <= peak.start:
                    groups.append(open_peaks)
                    open_peaks = []
                if not open_peaks:
                    open_end = peak.end
                open_peaks.append(peak)
                open_end = max(open_end, peak.end)
            if open_peaks:
                groups.append(open_peaks)
            for group in groups:
                for peak in merge_peaks(group, size, merge_overlap, chrom_len):
                    name = f"{chrom}:{peak.start}-{peak.end}({strand})"
                    bed_out.write(f"{chrom}\t{peak.start}\t{peak.end}\t.\t.\t{strand}\n")
                    acts = ["0"] * len(target_names)
                    for ti in peak.act:
                        acts[ti] = "1"
                    act_out.write(name + "\t" + "\t".join(acts) + "\n")


ONE_HOT = {"A": [1, 0, 0, 0], "C": [0, 1, 0, 0], "G": [0, 0, 1, 0], "T": [0, 0, 0, 1]}
N_ROW = [0.25, 0.25, 0.25, 0.25]


def dna_one_hot(seq):
    """Per-base encoder in the Python 2-era style of Basset's dna_io: a dict lookup per base,
    appended to a list of rows."""
    seq = seq.upper()
    rows = []
    for nt in seq:
        rows.append(ONE_HOT.get(nt, N_ROW))
    return rows


def basset_encode(fasta, act, out, subset, seed) -> None:
    """seq_hdf5.py on the first ``subset`` sequences: read FASTA and activity table, one-hot
    per base, float16 ``(n, 4, 1, L)``, random split 80/10/10, h5py."""
    import h5py

    subset, seed = int(subset), int(seed)
    headers, seqs, seq = [], [], []
    for line in open(fasta):
        if line.startswith(">"):
            if len(headers) == subset:
                break
            if seq:
                seqs.append("".join(seq))
                seq = []
            headers.append(line[1:].rstrip())
        else:
            seq.append(line.rstrip())
    if seq:
        seqs.append("".join(seq))
    targets = []
    with open(act) as handle:
        target_labels = handle.readline().rstrip("\n").split("\t")[1:]
        for line in handle:
            if len(targets) == len(seqs):
                break
            targets.append([int(x) for x in line.rstrip("\n").split("\t")[1:]])
    seq_vecs = [dna_one_hot(s) for s in seqs]
    x = np.array(seq_vecs, dtype=np.float16)  # (n, L, 4)
    n, length = x.shape[0], x.shape[1]
    x = x.transpose(0, 2, 1).reshape(n, 4, 1, length)
    y = np.array(targets, dtype=np.int8)
    order = np.random.RandomState(seed).permutation(n)
    n_test = n_valid = int(0.1 * n)
    parts = {
        "test": order[:n_test],
        "valid": order[n_test : n_test + n_valid],
        "train": order[n_test + n_valid :],
    }
    with h5py.File(out, "w") as f:
        f.create_dataset("target_labels", data=np.array(target_labels, dtype="S"))
        f.create_dataset("test_headers", data=np.array([headers[i] for i in parts["test"]], "S"))
        for name, rows in parts.items():
            f.create_dataset(f"{name}_in", data=x[rows])
            f.create_dataset(f"{name}_out", data=y[rows])


# --- checks ----------------------------------------------------------------------------------
def _ours_all(path: Path) -> dict:
    """Coordinates, labels and split/row of every region of our output."""
    import h5py

    chrom, start, labels, where = [], [], [], []
    with h5py.File(path, "r") as f:
        for index, name in enumerate(SPLITS):
            coords = f[f"{name}_coords"][:]
            chrom.append(coords[:, 0])
            start.append(coords[:, 1])
            labels.append(f[f"{name}_labels"][:])
            where.append(np.stack([np.full(len(coords), index), np.arange(len(coords))], axis=1))
        names = None
        if "training_names" in f:
            names = np.concatenate([f[f"{s}_names"][:] for s in SPLITS])
    return {
        "chrom": np.concatenate(chrom).astype(np.int64),
        "start": np.concatenate(start).astype(np.int64),
        "labels": np.concatenate(labels).astype(np.uint8),
        "where": np.concatenate(where),
        "names": names,
    }


def check_glue(ours_path: Path, glue_path: Path, n_sample: int, seed: int) -> list[str]:
    """Same windows, same labels, same one-hot rows on a sample. Two hulls that overlap by less
    than --min_overlap can have the same midpoint, hence the same window: the glue writes it
    twice, ours once with the labels unioned; the glue's duplicates are unioned likewise."""
    import h5py

    a, b = _ours_all(ours_path), _ours_all(glue_path)
    lines = [f"ours (hull) {len(a['start'])} regions, glue {len(b['start'])} regions"]
    key_a = a["chrom"] * (1 << 33) + a["start"]
    key_b = b["chrom"] * (1 << 33) + b["start"]
    ub, first_b, inverse = np.unique(key_b, return_index=True, return_inverse=True)
    order_a = np.argsort(key_a)
    same = np.array_equal(key_a[order_a], ub)
    lines.append(
        f"window starts: {'identical sets' if same else 'DIFFER'} "
        f"({len(np.setdiff1d(key_a, ub))} only in ours, {len(np.setdiff1d(ub, key_a))} only in "
        f"glue; {len(key_b) - len(ub)} glue windows repeat another (two hulls, one midpoint), "
        "kept once by ours)"
    )
    ok = same
    if same:
        union_b = np.zeros((len(ub), b["labels"].shape[1]), dtype=np.uint8)
        np.maximum.at(union_b, inverse, b["labels"])
        labels_same = np.array_equal(a["labels"][order_a], union_b)
        ok &= labels_same
        lines.append(f"labels per window: {'identical' if labels_same else 'DIFFER'}")
        rng = np.random.default_rng(seed)
        picks = rng.choice(len(key_a), size=min(n_sample, len(key_a)), replace=False)
        mismatched = 0
        with h5py.File(ours_path, "r") as fa, h5py.File(glue_path, "r") as fb:
            for pick in picks:
                ib = first_b[np.searchsorted(ub, key_a[pick])]
                sa, ra = a["where"][pick]
                sb, rb = b["where"][ib]
                xa = fa[f"{SPLITS[sa]}_seqs"][ra]
                xb = fb[f"{SPLITS[sb]}_seqs"][rb]
                mismatched += not np.array_equal(xa, xb)
        ok &= mismatched == 0
        lines.append(f"one-hot rows on {len(picks)} random windows: {mismatched} differ")
    lines.insert(0, f"check ours (hull) vs glue: {'PASS' if ok else 'FAIL'}")
    return lines


def read_fasta_records(path: Path, wanted: set[int]) -> dict[int, str]:
    """The sequences of the records numbered ``wanted`` (0-based, in file order) of a FASTA."""
    seqs = {}
    with open(path) as handle:
        record = -1
        for line in handle:
            if line.startswith(">"):
                record += 1
                if record > max(wanted):
                    break
            elif record in wanted:
                seqs[record] = seqs.get(record, "") + line.rstrip()
    return seqs


def check_basset(ours_path: Path, basset: dict, genome: Path, n_sample: int, seed: int):
    """Ours (basset merge) vs the Basset-style merge: windows, strands, labels; sequences on a
    sample of the encoded subset (reverse complements included)."""
    import h5py
    import pandas as pd

    names = list(read_fai(genome))
    index = {n: i for i, n in enumerate(names)}
    a = _ours_all(ours_path)
    minus_a = np.array([bytes(n).endswith(b"(-)") for n in a["names"]], dtype=bool)
    chrom_b, start_b, minus_b = [], [], []
    for line in open(basset["bed"]):
        f = line.split("\t")
        chrom_b.append(index[f[0]])
        start_b.append(int(f[1]))
        minus_b.append(f[5].startswith("-"))
    labels_b = pd.read_csv(basset["act"], sep="\t", index_col=0).to_numpy(np.uint8)
    key_a = (a["chrom"] * (1 << 33) + a["start"]) * 2 + minus_a
    key_b = (np.array(chrom_b) * (1 << 33) + np.array(start_b)) * 2 + np.array(minus_b)
    # Basset keeps identical windows twice; ours keeps them once with labels unioned
    ub, inverse = np.unique(key_b, return_inverse=True)
    union_b = np.zeros((len(ub), labels_b.shape[1]), dtype=np.uint8)
    np.maximum.at(union_b, inverse, labels_b)
    order_a = np.argsort(key_a)
    same = np.array_equal(key_a[order_a], ub)
    lines = [
        f"ours (basset) {len(key_a)} regions, Basset-style {len(key_b)} windows "
        f"({len(key_b) - len(ub)} identical windows, kept once by ours); "
        f"{int(minus_a.sum())} on '-' strand",
        f"windows (chrom, start, strand): {'identical sets' if same else 'DIFFER'} "
        f"({len(np.setdiff1d(key_a, ub))} only in ours, {len(np.setdiff1d(ub, key_a))} only in "
        "Basset-style)",
    ]
    ok = same
    if same:
        labels_same = np.array_equal(a["labels"][order_a], union_b)
        ok &= labels_same
        lines.append(f"labels per window: {'identical' if labels_same else 'DIFFER'}")
        # sequences: the first `subset` Basset windows went through the per-base encoder
        rng = np.random.default_rng(seed)
        first = np.unique(key_b[: basset["subset"]], return_index=True)[1]
        picks = rng.choice(first, size=min(n_sample, len(first)), replace=False)
        seqs = read_fasta_records(basset["fasta"], set(int(p) for p in picks))
        mismatched = 0
        lut = np.full(256, 4, dtype=np.uint8)
        for i, base in enumerate("ACGT"):
            lut[ord(base)] = lut[ord(base.lower())] = i
        with h5py.File(ours_path, "r") as fa:
            for pick in picks:
                ia = order_a[np.searchsorted(key_a[order_a], key_b[pick])]
                split, row = a["where"][ia]
                xa = fa[f"{SPLITS[split]}_seqs"][row]
                codes = lut[np.frombuffer(seqs[int(pick)].encode(), dtype=np.uint8)]
                xb = np.eye(5, 4, dtype=np.uint8)[codes]
                mismatched += not np.array_equal(xa, xb)
        ok &= mismatched == 0
        lines.append(
            f"sequences of {len(picks)} random windows (getfasta -s vs ours): {mismatched} differ"
        )
    lines.insert(0, f"check ours (basset) vs Basset-style: {'PASS' if ok else 'FAIL'}")
    return lines


# --- report ----------------------------------------------------------------------------------


# --- stages: BED reading and the interval merge against their peers ----------------------------
READ_TARGET = 2.0  # ours (read_bed) >= 2x faster than pandas read_csv on the gzip BED files
MERGE_PEER = "polars-bio"  # ours (the job's hull merge) at least as fast as polars-bio
READ_TOOLS = ("ours", "pandas read_csv")
MERGE_TOOLS = ("ours regions", "ours hulls", "polars-bio", "pyranges1", "bioframe", "bedtools")


def gzip_beds(beds: list[Path]) -> list[Path]:
    """``peaks_NN.bed.gz`` beside each BED file (gzip level 6, made once, kept in the cache)."""
    import gzip

    out = []
    for bed in beds:
        packed = bed.with_name(bed.name + ".gz")
        if not packed.exists():
            tmp = packed.with_suffix(".tmp")
            with open(bed, "rb") as src, gzip.GzipFile(tmp, "wb", compresslevel=6, mtime=0) as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            tmp.rename(packed)
        out.append(packed)
    return out


def _best(work, repeat: int) -> tuple[list[float], object]:
    """Run ``work()`` ``repeat`` times; every wall time (seconds) and the last result."""
    times, result = [], None
    for _ in range(repeat):
        clock = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - clock)
    return times, result


def _rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _stage_peaks(beds: list[Path], names: list[str]):
    """The job's merge input: every row of every file, ``chrom`` as the reference index."""
    import pandas as pd

    from gpu_genomics.intervals.bed import read_bed

    index = {name: i for i, name in enumerate(names)}
    frames = []
    for label, bed in enumerate(beds):
        frame = read_bed(bed)
        lookup = np.array([index[str(c)] for c in frame["chrom"].cat.categories], dtype=np.int32)
        frames.append(
            pd.DataFrame(
                {
                    "chrom": lookup[frame["chrom"].cat.codes.to_numpy()],
                    "start": frame["start"].to_numpy(),
                    "end": frame["end"].to_numpy(),
                    "minus": frame["minus"].to_numpy(),
                    "label": np.full(len(frame), label, dtype=np.int32),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def stage_child(  # noqa: PLR0917 (child entry: argv is positional)
    stage: str, tool: str, folder: str, out: str, repeat: str, min_overlap: str, length: str
) -> None:
    """Time one tool on one stage in this process; write its times and output to ``out``.

    Inputs are loaded (untimed) first; ``rss_inputs`` is the peak RSS (MiB) with them loaded.
    """
    import pandas as pd

    from gpu_genomics.io.files import read_bytes

    repeat, min_overlap, length = int(repeat), int(min_overlap), int(length)
    beds = sorted(Path(folder).glob("peaks_*.bed.gz"))
    names = list(HG19)
    result: dict[str, np.ndarray] = {}
    if stage == "read":
        if tool == "ours":
            from gpu_genomics.intervals.bed import read_bed

            def work():
                return [read_bed(bed) for bed in beds]

        else:

            def work():
                frames = []
                for bed in beds:
                    frame = pd.read_csv(
                        bed,
                        sep="\t",
                        header=None,
                        usecols=[0, 1, 2, 5],
                        dtype={0: "category", 5: "category"},
                        engine="c",
                        na_filter=False,
                    )
                    frames.append(
                        pd.DataFrame(
                            {
                                "chrom": frame[0],
                                "start": frame[1],
                                "end": frame[2],
                                "minus": (frame[5] == "-").to_numpy(),
                            }
                        )
                    )
                return frames

        rss_inputs = _rss_mib()
        times, frames = _best(work, repeat)
        result = {
            "chrom": np.concatenate([f["chrom"].astype(str).to_numpy(str) for f in frames]),
            **{k: np.concatenate([f[k].to_numpy() for f in frames]) for k in ("start", "end")},
            "minus": np.concatenate([f["minus"].to_numpy(bool) for f in frames]),
            "bytes": np.array(sum(len(read_bytes(bed)) for bed in beds)),
        }
    else:
        peaks = _stage_peaks(beds, names)
        sizes = np.array(list(chrom_sizes_of_names(names, folder).values()), dtype=np.int64)
        chrom_names = np.asarray(names)[peaks["chrom"].to_numpy()]
        work, finish = merge_work(tool, peaks, chrom_names, sizes, min_overlap, length, len(beds))
        rss_inputs = _rss_mib()
        times, raw = _best(work, repeat)
        result = finish(raw)
    np.savez(out, times=np.array(times), rss_inputs=np.array(rss_inputs), **result)


def chrom_sizes_of_names(names: list[str], folder: str) -> dict[str, int]:
    """The chromosome sizes the peaks were made with (``params.json`` of their folder)."""
    scale = json.loads((Path(folder) / "params.json").read_text())["scale"]
    sizes = chrom_sizes(scale)
    return {name: sizes[name] for name in names}


def merge_work(  # noqa: PLR0917 (the inputs of one child)
    tool: str, peaks, chrom_names: np.ndarray, sizes: np.ndarray, min_overlap: int, length, n_labels
):
    """The timed call of one merge tool, and the untimed step that turns its output into arrays
    (hulls sorted by chromosome name and start, or ours' regions)."""
    import pandas as pd

    from gpu_genomics.intervals.regions import make_regions, merge_intervals

    chrom = peaks["chrom"].to_numpy()
    start, end = peaks["start"].to_numpy(), peaks["end"].to_numpy()
    if tool == "ours regions":

        def work():
            return make_regions(
                peaks,
                "hull",
                length=length,
                min_overlap=min_overlap,
                chrom_sizes=sizes,
                n_labels=n_labels,
                device="cpu",
            )

        def regions_arrays(regions):
            return {"chrom": regions.chrom, "start": regions.start, "labels": regions.labels}

        return work, regions_arrays
    if tool == "ours hulls":

        def work():
            return merge_intervals(chrom, start, end, min_overlap=min_overlap)

        def hull_arrays(out):
            return _hulls(np.asarray(list(HG19))[out[1]], out[2], out[3])

        return work, hull_arrays
    frame = pd.DataFrame({"chrom": chrom_names.astype(object), "start": start, "end": end})
    if tool == "polars-bio":
        import polars as pl
        import polars_bio as pb

        pb.set_option("datafusion.bio.coordinate_system_check", "false")
        table = pl.from_pandas(frame)

        def work():
            return pb.merge(table, min_dist=-min_overlap, output_type="polars.DataFrame")

        return work, lambda out: _hulls(*(out[c].to_numpy() for c in ("chrom", "start", "end")))
    if tool == "pyranges1":
        import pyranges as pr

        columns = {"chrom": "Chromosome", "start": "Start", "end": "End"}
        ranges = pr.PyRanges(frame.rename(columns=columns))

        def work():
            return ranges.merge_overlaps(use_strand=False, slack=-min_overlap)

        return work, lambda out: _hulls(*(out[c].to_numpy() for c in columns.values()))
    if tool == "bioframe":
        from bioframe.core.arrops import merge_intervals as bioframe_merge

        def work():
            # bioframe.merge refuses min_dist < 0; its NumPy core per chromosome takes it
            parts = []
            for name, group in frame.groupby("chrom", sort=False):
                _, hull_start, hull_end = bioframe_merge(
                    group["start"].to_numpy(), group["end"].to_numpy(), min_dist=-min_overlap
                )
                parts.append((np.full(len(hull_start), name, dtype=object), hull_start, hull_end))
            return parts

        return work, lambda parts: _hulls(*(np.concatenate(c) for c in zip(*parts, strict=True)))
    raise SystemExit(f"unknown merge tool {tool!r}")


def _hulls(chrom, start, end) -> dict[str, np.ndarray]:
    """Hulls as ``chrom`` (str), ``start``, ``end`` arrays sorted by (chrom, start)."""
    chrom = np.asarray(chrom).astype(str)
    start, end = np.asarray(start, dtype=np.int64), np.asarray(end, dtype=np.int64)
    order = np.lexsort((end, start, chrom))
    return {"chrom": chrom[order], "start": start[order], "end": end[order]}


def peer_available(tool: str) -> str | None:
    """None when the tool can run here, else why not."""
    import importlib.metadata
    import importlib.util

    if tool == "bedtools":
        return None if shutil.which("bedtools") else "bedtools not on PATH"
    module, dist = {
        "polars-bio": ("polars_bio", "polars-bio"),
        "pyranges1": ("pyranges", "pyranges1"),
        "bioframe": ("bioframe", "bioframe"),
    }.get(tool, (None, None))
    if module is None:
        return None
    try:
        version_text = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return f"{dist} not installed (pip install -e '.[bench]')"
    if tool == "pyranges1" and sys.version_info < (3, 12):
        return f"{dist} {version_text} needs Python >= 3.12 (this is {platform.python_version()})"
    return None if importlib.util.find_spec(module) else f"{module} not importable"


def run_stage_tool(args, stage: str, tool: str, folder: Path, work: Path) -> dict:
    """One tool on one stage in a child process: best of ``--repeat``, RSS, and its output."""
    slug = f"{stage}-{tool.replace(' ', '_')}"
    if tool == "bedtools":
        return run_bedtools_merge(args, work, slug)
    out = work / f"{slug}.npz"
    cmd = child_cmd(
        "stage",
        stage,
        tool,
        str(folder),
        str(out),
        str(args.repeat),
        str(args.min_overlap),
        str(args.length),
    )
    if tool.startswith("ours"):  # ours on one thread (numba's pool is not used by the merge)
        cmd = ["env", "NUMBA_NUM_THREADS=1", *cmd]
    result = run_stage(cmd, work / f"{slug}.log")
    with np.load(out) as saved:
        output = {k: saved[k] for k in saved.files}
    times = output.pop("times").tolist()
    return {
        "seconds": min(times),
        "times": times,
        "maxrss": result["maxrss"],
        "rss_inputs": float(output.pop("rss_inputs")) * 2**20,
        "output": output,
    }


def merge_input_bed(folder: Path, work: Path) -> Path:
    """All rows as ``chrom start end label`` (label: the file's index), for bedtools."""
    path = work / "merge-input.bed"
    if not path.exists():
        with open(path, "w") as out:
            for label, bed in enumerate(sorted(folder.glob("peaks_*.bed"))):
                with open(bed) as handle:
                    for line in handle:
                        chrom, start, end = line.split("\t", 3)[:3]
                        out.write(f"{chrom}\t{start}\t{end}\t{label}\n")
    return path


def run_bedtools_merge(args, work: Path, slug: str) -> dict:
    """``sort | bedtools merge -d -MIN_OVERLAP -c 4 -o distinct``, best of ``--repeat`` runs."""
    source = merge_input_bed(Path(args.peaks_folder), work)
    merged = work / f"{slug}.bed"
    cmd = (
        f"set -o pipefail; LC_ALL=C sort -k1,1 -k2,2n -k3,3n {shlex.quote(str(source))} | "
        f"bedtools merge -i stdin -d -{args.min_overlap} -c 4 -o distinct "
        f"> {shlex.quote(str(merged))}"
    )
    runs = [run_stage(cmd, work / f"{slug}.log", shell=True) for _ in range(args.repeat)]
    chrom, start, end, labels = [], [], [], []
    with open(merged) as handle:
        for line in handle:
            fields = line.rstrip("\n").split("\t")
            chrom.append(fields[0])
            start.append(int(fields[1]))
            end.append(int(fields[2]))
            labels.append(fields[3])
    output = _hulls(chrom, start, end)
    order = np.lexsort((np.array(end), np.array(start), np.array(chrom)))
    output["labels"] = np.array(labels, dtype=object)[order]
    return {
        "seconds": min(r["seconds"] for r in runs),
        "times": [r["seconds"] for r in runs],
        "maxrss": max(r["maxrss"] for r in runs),
        "rss_inputs": None,
        "output": output,
    }


def check_read(results: dict) -> list[str]:
    """Every reader gives the same rows (chromosome, start, end, strand) in the same order."""
    ours = results["ours"]["output"]
    lines = []
    for tool, result in results.items():
        if tool == "ours":
            continue
        other = result["output"]
        same = all(np.array_equal(ours[k], other[k]) for k in ("chrom", "start", "end", "minus"))
        lines.append(
            f"check read: ours vs {tool}: {verdict(ok=same)} ({len(ours['start']):,} rows)"
        )
    return lines


def check_merge(results: dict, sizes: dict[str, int], length: int) -> list[str]:
    """Every tool gives ours' hulls; ours' regions are bedtools' hulls' windows and labels."""
    from gpu_genomics.intervals.regions import windows_at

    ours = results["ours hulls"]["output"]
    lines = []
    for tool, result in results.items():
        if tool in ("ours hulls", "ours regions"):
            continue
        other = result["output"]
        same = all(np.array_equal(ours[k], other[k]) for k in ("chrom", "start", "end"))
        text = f"({len(ours['start']):,} vs {len(other['start']):,} hulls)"
        if not same and all(np.array_equal(ours[k], other[k]) for k in ("chrom", "start")):
            # the same clusters (hulls are runs of the sorted rows: same starts, same clusters)
            n_ends = int((ours["end"] != other["end"]).sum())
            text += f"; same clusters, {n_ends:,} hull ends differ" + (
                " (bioframe's core ends a hull at the running maximum of every earlier end, "
                "which a negative min_dist lets pass the hull's own ends; bioframe.merge "
                "refuses min_dist < 0)"
                if tool == "bioframe"
                else ""
            )
        lines.append(f"check merge: ours hulls vs {tool}: {verdict(ok=same)} {text}")
    if "bedtools" in results and "ours regions" in results:
        bed = results["bedtools"]["output"]
        names = list(sizes)
        lengths = np.array([sizes[c] for c in bed["chrom"]], dtype=np.int64)
        window = windows_at((bed["start"] + bed["end"]) // 2, length, lengths)
        expected: dict[tuple[str, int], set[int]] = {}
        for chrom, start, labels in zip(bed["chrom"], window, bed["labels"], strict=True):
            expected.setdefault((str(chrom), int(start)), set()).update(
                int(x) for x in labels.split(",")
            )
        regions = results["ours regions"]["output"]
        got = {
            (names[c], int(s)): {int(x) for x in np.flatnonzero(row)}
            for c, s, row in zip(regions["chrom"], regions["start"], regions["labels"], strict=True)
        }
        lines.append(
            f"check merge: ours regions vs bedtools hulls' windows and labels: "
            f"{verdict(ok=got == expected)} ({len(got):,} vs {len(expected):,} windows)"
        )
    return lines


def run_stages(args, data: dict) -> dict:
    """The read and merge stages, every tool in its own child process, on the same data."""
    work = Path(args.workdir) / "runs"
    work.mkdir(exist_ok=True)
    folder = data["metadata"].parent
    args.peaks_folder = str(folder)
    gz = gzip_beds(data["beds"])
    print(
        f"stages: {len(gz)} gzip BED files, {sum(p.stat().st_size for p in gz) / 2**20:.1f} MiB "
        f"compressed; best of {args.repeat} runs each",
        flush=True,
    )
    stages: dict[str, dict] = {"read": {}, "merge": {}}
    skipped: dict[str, str] = {}
    for stage, tools in (("read", READ_TOOLS), ("merge", MERGE_TOOLS)):
        for tool in tools:
            why = peer_available(tool)
            if why:
                skipped[tool] = why
                print(f"  {stage} {tool}: not run ({why})", flush=True)
                continue
            stages[stage][tool] = run_stage_tool(args, stage, tool, folder, work)
            times = ", ".join(f"{t:.3f}" for t in stages[stage][tool]["times"])
            print(f"  {stage} {tool}: {times} s", flush=True)
    return {"stages": stages, "skipped": skipped, "sizes": data["sizes"], "gz": gz}


def print_stages(args, result: dict, n_rows: int) -> None:
    """The stage tables (seconds, throughput, memory, ratios), checks and targets."""
    stages = result["stages"]
    print()
    for stage, ref in (("read", "ours"), ("merge", "ours regions")):
        rows = stages[stage]
        if ref not in rows:
            continue
        head = [
            "tool",
            "best s",
            "runs s",
            "rows/s",
            "MB/s",
            "max RSS MiB",
            "RSS inputs MiB",
            "time/ours",
        ]
        body = []
        n_bytes = float(rows["ours"]["output"]["bytes"]) if stage == "read" else None
        for tool, r in rows.items():
            body.append(
                [
                    tool,
                    f"{r['seconds']:.3f}",
                    " ".join(f"{t:.3f}" for t in r["times"]),
                    fmt_rate(n_rows / r["seconds"]),
                    f"{n_bytes / r['seconds'] / 1e6:,.0f}" if n_bytes else "-",
                    fmt_mib(r["maxrss"]),
                    fmt_mib(r["rss_inputs"]),
                    f"{r['seconds'] / rows[ref]['seconds']:.2f}x",
                ]
            )
        print(f"stage {stage}:")
        common.print_table(head, body, left={0, 2})
        print()
    print(
        f"stage read: the {len(result['gz'])} gzip BED files into frames of (chrom, start, end, "
        "strand); ours is "
        "read_bed (inflate, numba parse, checks), pandas read_csv its C parser on the same "
        "columns. stage merge: the job's hull merge input (every row, chromosome as the "
        "reference index) already in memory; ours regions is make_regions(merge='hull') "
        "(clusters, windows, multi-hot labels, identical windows kept once), ours hulls "
        "merge_intervals (clusters and hulls only, the peers' work); polars-bio merge, "
        "pyranges1 merge_overlaps and bioframe's merge core (per chromosome) get a pandas or "
        f"polars frame with string chromosomes; bedtools is 'LC_ALL=C sort -k1,1 -k2,2n -k3,3n "
        f"| bedtools merge -d -{args.min_overlap} -c 4 -o distinct' file to file (text parse "
        "included). best s: the fastest of the runs in one process (the first run of ours "
        "loads numba's cache). max RSS: the child process's peak (inputs included); RSS "
        "inputs: its peak once the inputs were loaded, before the timed runs. rows/s: BED rows "
        "in per second; MB/s: decompressed BED bytes per second. time/ours: this row's best / "
        "ours' best (> 1: ours is faster). Ours run on one thread (NUMBA_NUM_THREADS=1); the "
        "peers use their defaults."
    )
    print()
    for line in check_read(stages["read"]) + check_merge(
        stages["merge"], result["sizes"], args.length
    ):
        print(line)
    read, merge = stages["read"], stages["merge"]
    if "pandas read_csv" in read:
        speed = read["pandas read_csv"]["seconds"] / read["ours"]["seconds"]
        print(
            f"target read_bed >= {READ_TARGET:g}x faster than pandas read_csv: {speed:.2f}x  "
            f"{verdict(ok=speed >= READ_TARGET)}"
        )
    if MERGE_PEER in merge:
        speed = merge[MERGE_PEER]["seconds"] / merge["ours regions"]["seconds"]
        print(
            f"target merge (make_regions hull, one thread) at least as fast as {MERGE_PEER}: "
            f"{speed:.2f}x  {verdict(ok=speed >= 1)}"
        )
    print()


def fmt_mib(nbytes: float | None) -> str:
    return "-" if nbytes is None else f"{nbytes / 2**20:,.0f}"


def print_table(rows: list[dict]) -> None:
    head = [
        "pipeline",
        "merge",
        "device",
        "timed on",
        "seconds",
        "regions",
        "regions/s",
        "bases/s",
        "max RSS MiB",
        "time/ours",
    ]
    cells = [
        [
            r["pipeline"],
            r["merge"],
            r["device"],
            r["timed_on"],
            f"{r['seconds']:.1f}",
            f"{r['regions']:,}" if r["regions"] else "-",
            fmt_rate(r["regions"] / r["seconds"]) if r["regions"] else "-",
            fmt_rate(r["regions"] * r["length"] / r["seconds"]) if r["regions"] else "-",
            r.get("rss_text") or fmt_mib(r["maxrss"]),
            f"{r['ratio']:.2f}x" if r.get("ratio") is not None else "-",
        ]
        for r in rows
    ]
    common.print_table(head, cells, left={0, 1, 2, 3})


def load_text() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def peer_versions() -> str:
    """The installed versions of the merge and read peers."""
    import importlib.metadata

    texts = []
    for dist in ("polars-bio", "polars", "pyranges1", "bioframe", "isal"):
        try:
            texts.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            texts.append(f"{dist} not installed")
    return ", ".join(texts)


def tool_version(cmd: list[str]) -> str:
    try:
        text = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
        return text.splitlines()[0].strip() if text else "unknown"
    except OSError:
        return "not found"


def print_header(args, data: dict, *, gpu_ok: bool, gpu_reason: str, n_rows: int) -> None:
    import h5py
    import numba
    import pandas as pd
    import pyarrow
    import pysam

    work = Path(args.workdir)
    free = shutil.disk_usage(work).free / 2**30
    genome_bases = sum(data["sizes"].values())
    print("# gpu_genomics benchmark: intervals (BED peaks + reference -> one-hot HDF5)")
    print(f"date:        {datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')}")
    print(f"command:     {shlex.join(sys.orig_argv)}")
    print(f"cpu:         {cpu_model()}")
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    print(f"cores:       {os.cpu_count()} logical, {usable} usable")
    print(f"ram:         {ram_gib()}")
    print(f"load:        {load_text()} (1/5/15-min averages at start)")
    print(f"disk:        {free:.0f} GiB free in {work}")
    gpu_line = gpu_text(gpu_ok=gpu_ok, gpu_reason=gpu_reason)
    print(f"gpu:         {gpu_line}")
    print(
        f"software:    python {platform.python_version()}, numpy {np.__version__}, "
        f"pandas {pd.__version__}, numba {numba.__version__}, h5py {h5py.__version__}, "
        f"pysam {pysam.__version__}, pyarrow {pyarrow.__version__}, gpu_genomics "
        f"{gg.__version__} (git {git_revision()})"
    )
    print(f"peers:       {peer_versions()}")
    print(
        f"tools:       {tool_version(['bedtools', '--version'])}, "
        f"{tool_version(['sort', '--version'])}"
    )
    fasta = (
        f"plain FASTA {data['genome'].stat().st_size / 2**30:.2f} GiB, 60-base lines"
        if not args.only_stages
        else "not written (--only-stages)"
    )
    if data.get("bgzip") and not args.only_stages:
        fasta += f"; its bgzip copy {data['bgzip'].stat().st_size / 2**30:.2f} GiB (.fai, .gzi)"
    print(
        f"genome:      hg19-shaped, {len(data['sizes'])} chromosomes (chr1..chr22, chrX, chrY), "
        f"{genome_bases / 1e9:.2f} Gbp = hg19 sizes x {args.scale:g}; {fasta}"
    )
    print(
        f"peaks:       {len(data['beds'])} BED6 files, {n_rows:,} rows, seed {args.seed}, "
        f"hotspot-clustered, widths 150-1000 bp, 10% '-' strand"
    )
    print(f"data:        {data['made']} ({work})")
    print(
        f"regions:     --length {args.length}, --min_overlap {args.min_overlap}; "
        f"test {','.join(TEST_CHROMS)}, validation {','.join(VALID_CHROMS)}"
    )
    print("timing:      one run each, wall clock of the child processes; FASTA in page cache")
    print(
        f"stages:      best of {args.repeat} runs inside one child process per tool "
        "(read and merge stages)"
    )
    print()


# --- main ------------------------------------------------------------------------------------
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_800_000, help="BED rows in all")
    parser.add_argument("--files", type=int, default=30, help="number of BED files")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="genome size factor (1: hg19's real sizes)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--length", type=int, default=600)
    parser.add_argument("--min-overlap", type=int, default=200)
    parser.add_argument("--workdir", default="/tmp/gg-bench-intervals")
    parser.add_argument(
        "--basset-subset",
        type=int,
        default=20_000,
        help="regions the per-base Basset-style encoder is timed on (scaled linearly)",
    )
    parser.add_argument(
        "--device",
        choices=("cpu", "gpu", "both"),
        default="both",
        help="ours on cpu, on gpu (needs a usable GPU), or both (gpu when usable)",
    )
    parser.add_argument("--check-sample", type=int, default=500, help="rows compared per check")
    parser.add_argument("--no-basset", dest="basset", action="store_false")
    parser.add_argument("--no-glue", dest="glue", action="store_false")
    parser.add_argument(
        "--keep-outputs", action="store_true", help="keep the HDF5 outputs in WORKDIR/runs"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per tool in the read and merge stages"
    )
    parser.add_argument(
        "--no-stages",
        dest="stages",
        action="store_false",
        help="skip the read and merge stages against their peers",
    )
    parser.add_argument(
        "--only-stages",
        action="store_true",
        help="only the read and merge stages (no genome, no end-to-end pipelines)",
    )
    parser.add_argument(
        "--bgzip",
        action="store_true",
        help="also run ours on the CPU from a bgzip copy of the genome (made once, cached)",
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rows < args.files or args.files < 1:
        parser.error("--rows must be >= --files >= 1")
    if args.scale <= 0 or args.length < 1 or args.min_overlap < 0 or args.basset_subset < 1:
        parser.error("--scale, --length and --basset-subset must be positive")
    if args.repeat < 1:
        parser.error("--repeat must be positive")
    return args


CHILDREN = {
    "glue-windows": glue_windows,
    "glue-encode": glue_encode,
    "basset-merge": basset_merge,
    "basset-encode": basset_encode,
    "stage": stage_child,
}


class Runs(NamedTuple):
    """The timed pipelines: ours per (merge, device), the glue and Basset-style (None: off)."""

    ours: dict[tuple[str, str], dict]
    glue: dict | None
    basset: dict | None


def run_pipelines(args, data: dict, devices: list[str]) -> Runs:
    """Warm ours up, put the FASTA in the page cache, then time every pipeline once."""
    warm_up_ours(args, devices)
    for path in (data["genome"], data.get("bgzip")):  # into the page cache, for every pipeline
        if path is None:
            continue
        with open(path, "rb") as handle:
            while handle.read(1 << 26):
                pass

    ours = {}
    for device in devices:
        for merge in ("hull", "basset"):
            ours[merge, device] = run_ours(args, data, merge, device)
            print(
                f"  timed ours {merge}/{device}: {ours[merge, device]['seconds']:.1f} s",
                flush=True,
            )
    if data.get("bgzip") and "cpu" in devices:
        for merge in ("hull", "basset"):
            key = (merge, "cpu bgzip")
            ours[key] = run_ours(args, data, merge, "cpu", bgzip=True)
            print(f"  timed ours {merge}/cpu bgzip: {ours[key]['seconds']:.1f} s", flush=True)
    glue = run_glue(args, data) if args.glue else None
    if glue:
        print(f"  timed glue: {glue['seconds']:.1f} s", flush=True)
    basset = run_basset(args, data) if args.basset else None
    if basset:
        print(f"  timed Basset-style: {basset['seconds']:.1f} s", flush=True)
    print()
    return Runs(ours, glue, basset)


def result_rows(args, runs: Runs, *, cpu_ref: str, n_rows: int, ref_seconds: float) -> list[dict]:
    """The rows of the result table: ours, the glue, Basset-style and Basset's reference."""
    ours, glue, basset = runs
    rows = []
    for (merge, device), r in ours.items():
        rows.append(
            {
                "pipeline": "ours",
                "merge": merge,
                "device": device,
                "timed_on": "all",
                "seconds": r["seconds"],
                "regions": r["regions"],
                "length": args.length,
                "maxrss": r["maxrss"],
                "ratio": r["seconds"] / ours[merge, cpu_ref]["seconds"],
            }
        )
    if glue:
        rows.append(
            {
                "pipeline": "bedtools glue",
                "merge": "hull",
                "device": "cpu",
                "timed_on": "all",
                "seconds": glue["seconds"],
                "regions": glue["regions"],
                "length": args.length,
                "maxrss": glue["maxrss"],
                "ratio": glue["seconds"] / ours["hull", cpu_ref]["seconds"],
            }
        )
    if basset:
        rows.append(
            {
                "pipeline": "Basset-style",
                "merge": "basset",
                "device": "cpu",
                "timed_on": (
                    f"encode {basset['subset']:,} of {basset['regions']:,}, x{basset['factor']:.1f}"
                ),
                "seconds": basset["seconds"],
                "regions": basset["regions"],
                "length": args.length,
                "maxrss": basset["maxrss"],
                "ratio": basset["seconds"] / ours["basset", cpu_ref]["seconds"],
            }
        )
    rows.append(
        {
            "pipeline": "Basset reference",
            "merge": "basset",
            "device": "cpu",
            "timed_on": f"170 s x {n_rows:,}/1.8 M rows",
            "seconds": ref_seconds,
            "regions": 0,
            "length": args.length,
            "maxrss": BASSET_REFERENCE[1],
            "rss_text": "1,907 (2 GB)",
            "ratio": ref_seconds / ours["basset", cpu_ref]["seconds"],
        }
    )
    return rows


def print_notes(runs: Runs, cpu_ref: str) -> None:
    """What the table's columns mean, then the seconds and memory of every stage."""
    ours, glue, basset = runs
    print()
    print(
        "seconds: wall clock of one run (child processes, Python start-up included). "
        "regions/s, bases/s: output regions (and regions x length bases) per second. "
        "max RSS: largest single process of the pipeline's stages (/usr/bin/time %M). "
        "time/ours: this row's seconds / ours on the "
        f"{cpu_ref.upper()} with the same merge mode (> 1: ours is faster). "
        f"Basset-style: merge and getfasta on all data; the per-base encode+write stage timed on "
        "the first regions and scaled linearly; its max RSS is that of merge and getfasta (the "
        "encode stage's, on the subset, is listed under stages and not scaled). "
        "bedtools getfasta maps the whole FASTA: its RSS is file-backed pages (page cache), "
        "its anonymous memory is under 1 MiB. "
        "Basset reference: the issue's 170 s / 2 GB for 1.8 M rows from 30 files (2 cores), "
        "scaled linearly to this run's rows."
    )
    print()
    print("stages, seconds (max RSS MiB):")
    for (merge, device), r in ours.items():
        stages = r["stages"]
        other = r["seconds"] - sum(stages.values())
        text = ", ".join(f"{k} {v:.1f}" for k, v in stages.items())
        print(
            f"  ours {merge}/{device}: {text}, start-up+rest {other:.1f}; "
            f"{fmt_mib(r['maxrss'])} MiB"
        )
    for name, result in (("glue", glue), ("Basset-style", basset)):
        if result:
            text = ", ".join(
                f"{k} {v:.1f} ({fmt_mib(result['stage_rss'][k])})"
                for k, v in result["stages"].items()
            )
            print(f"  {name}: {text}")
    if basset:
        print(
            f"  Basset-style encode+write measured: {basset['encode_subset_seconds']:.1f} s on "
            f"{basset['subset']:,} regions"
        )
    print()


def same_arrays(a: Path, b: Path) -> list[str]:
    """The datasets of two HDF5 outputs that differ (compared in slices of rows)."""
    import h5py

    differ = []
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        if sorted(fa) != sorted(fb):
            return [f"datasets {sorted(fa)} vs {sorted(fb)}"]
        for key in fa:
            x, y = fa[key], fb[key]
            if x.shape != y.shape:
                differ.append(f"{key} shape")
                continue
            step = max(1, (64 << 20) // max(1, int(np.prod(x.shape[1:])) * x.dtype.itemsize))
            if any(
                not np.array_equal(x[i : i + step], y[i : i + step])
                for i in range(0, max(len(x), 1), step)
            ):
                differ.append(key)
    return differ


def print_checks(args, data: dict, runs: Runs, cpu_ref: str) -> None:
    """Ours against the glue and against Basset-style: same windows, labels and sequences."""
    ours, glue, basset = runs
    for merge in ("hull", "basset"):
        if (merge, "cpu bgzip") in ours and (merge, "cpu") in ours:
            differ = same_arrays(ours[merge, "cpu"]["output"], ours[merge, "cpu bgzip"]["output"])
            print(
                f"check ours ({merge}) bgzip vs plain FASTA: "
                f"{verdict(ok=not differ)} ({'identical arrays' if not differ else differ})"
            )
    if glue:
        for line in check_glue(
            ours["hull", cpu_ref]["output"], glue["output"], args.check_sample, args.seed
        ):
            print(line)
    if basset:
        for line in check_basset(
            ours["basset", cpu_ref]["output"],
            basset,
            data["genome"],
            args.check_sample,
            args.seed,
        ):
            print(line)
    print()


def print_targets(
    runs: Runs, devices: list[str], *, n_rows: int, ref_seconds: float, gpu_reason: str
) -> None:
    """The CPU targets with their verdicts, and the GPU's share of the write stage."""
    ours, glue, basset = runs
    if "cpu" in devices:
        hull, bas = ours["hull", "cpu"], ours["basset", "cpu"]
        if glue:
            speed = glue["seconds"] / hull["seconds"]
            print(
                f"target CPU ours (hull) >= {GLUE_TARGET:g}x faster than the glue: "
                f"{speed:.2f}x  {verdict(ok=speed >= GLUE_TARGET)}"
            )
        bgz = ours.get(("hull", "cpu bgzip"))
        if glue and bgz:
            speed = glue["seconds"] / bgz["seconds"]
            print(
                f"target CPU ours (hull, bgzip) >= {GLUE_TARGET:g}x faster than the glue: "
                f"{speed:.2f}x  {verdict(ok=speed >= GLUE_TARGET)}"
            )
        for merge in ("hull", "basset"):
            bgz = ours.get((merge, "cpu bgzip"))
            plain = ours[merge, "cpu"]["stages"].get("sequences_and_write")
            if bgz and plain and bgz["stages"].get("sequences_and_write"):
                ratio = bgz["stages"]["sequences_and_write"] / plain
                print(
                    f"target CPU ours ({merge}) bgzip sequences_and_write within "
                    f"{BGZIP_STAGE_TARGET:g}x of the plain FASTA's: {ratio:.2f}x  "
                    f"{verdict(ok=ratio <= BGZIP_STAGE_TARGET)}"
                )
        for merge, r in (("hull", hull), ("basset", bas)):
            print(
                f"target CPU ours ({merge}) peak memory < 1.5 GB: "
                f"{r['maxrss'] / 1e9:.2f} GB  {verdict(ok=r['maxrss'] < MEMORY_TARGET)}"
            )
        if basset:
            speed = basset["seconds"] / bas["seconds"]
            print(
                f"target CPU ours (basset) >= {BASSET_TARGET:g}x faster than Basset-style: "
                f"{speed:.1f}x  {verdict(ok=speed >= BASSET_TARGET)}"
            )
        speed = ref_seconds / bas["seconds"]
        print(
            f"target CPU ours (basset) >= {BASSET_TARGET:g}x faster than Basset's 170 s "
            f"scaled to {n_rows:,} rows ({ref_seconds:.0f} s): {speed:.1f}x  "
            f"{verdict(ok=speed >= BASSET_TARGET)}"
        )
    if "gpu" in devices:
        for merge in ("hull", "basset"):
            r = ours[merge, "gpu"]
            stages = r["stages"]
            if stages:
                write = stages["sequences_and_write"]
                print(
                    f"GPU ours ({merge}): sequences_and_write {write:.1f} s = "
                    f"{write / sum(stages.values()):.0%} of the logged stages, "
                    f"{write / r['seconds']:.0%} of wall"
                )
    else:
        print(f"GPU: not measured ({gpu_reason})")


def remove_outputs(runs: Path) -> None:
    """Delete the HDF5 outputs and the large intermediate files of ``runs``."""
    for path in runs.glob("*.h5"):
        path.unlink()
    for path in (runs / "glue.tab", runs / "basset.fa"):
        path.unlink(missing_ok=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        CHILDREN[args.child[0]](*args.child[1:])
        return 0
    gpu_ok, gpu_reason = gg.gpu_status() if args.device != "cpu" else (False, "not requested")
    if args.device == "gpu" and not gpu_ok:
        print(f"no usable GPU ({gpu_reason})", file=sys.stderr)
        return 1
    data = make_data(args, genome_needed=not args.only_stages)
    os.sync()  # the generated data on disk before anything is timed
    n_rows = sum(1 for bed in data["beds"] for _ in open(bed, "rb"))
    print_header(args, data, gpu_ok=gpu_ok, gpu_reason=gpu_reason, n_rows=n_rows)
    runs_dir = Path(args.workdir) / "runs"
    runs_dir.mkdir(exist_ok=True)
    if args.stages or args.only_stages:
        print_stages(args, run_stages(args, data), n_rows)
    if args.only_stages:
        print(f"load at end: {load_text()} (1/5/15-min averages)")
        return 0
    devices = (["cpu"] if args.device != "gpu" else []) + (["gpu"] if gpu_ok else [])
    runs = run_pipelines(args, data, devices)

    cpu_ref = "cpu" if "cpu" in devices else "gpu"
    ref_seconds = BASSET_REFERENCE[0] * n_rows / BASSET_REFERENCE[2]
    print_table(result_rows(args, runs, cpu_ref=cpu_ref, n_rows=n_rows, ref_seconds=ref_seconds))
    print_notes(runs, cpu_ref)
    print_checks(args, data, runs, cpu_ref)
    print_targets(runs, devices, n_rows=n_rows, ref_seconds=ref_seconds, gpu_reason=gpu_reason)

    print(f"load at end: {load_text()} (1/5/15-min averages)")
    if not args.keep_outputs:
        remove_outputs(runs_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
