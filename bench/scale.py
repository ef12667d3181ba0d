#!/usr/bin/env python
"""Scale-out benchmark: the ``intervals`` and ``encode`` jobs in-process and on Dask clusters.

    python bench/scale.py [--workloads hg19,encode] [--workers 1,2] [--workdir DIR]
    python bench/scale.py --workloads encode-sized [--encode-files 1000 --encode-rows 100000000]

Workloads (data generated once, seeded, cached in ``--workdir``):

* ``hg19``: the ``intervals`` job on bench/intervals.py's hg19-sized data (3.1 Gbp plain FASTA,
  30 BED files, 1.8 M rows; same generator), basset merge, Zarr output;
* ``encode``: the ``encode`` job, one-hot of ``--encode-records`` random 1,000-bp records into
  Zarr, from a plain FASTA (without and with ``--length``) and from the same records in bgzip
  with a ``.fai`` and ``.gzi`` (the workers read their own records in every case);
* ``encode-sized``: an ENCODE-sized ``intervals`` input: ``--encode-files`` BED files (1,000) and
  ``--encode-rows`` rows in all (100 M), one label per file, peaks drawn around 1 M shared sites
  (as ENCODE's cell types share most of their peaks) plus 1% background, on the hg19-sized
  genome, 200-bp windows, ``hull`` merge, Zarr output. The in-process run is tried under an
  address-space limit of ``--memory-limit`` GiB (the machine's RAM less a margin), so that it
  fails with a MemoryError instead of the kernel's OOM killer; the cluster run must complete.

Each run is a child process (``--child``) that starts the cluster (``--workers N``, a
``distributed.LocalCluster`` of N single-threaded worker processes) or none (in-process), runs
the job through the library (what ``gpu-genomics ... --workers N`` runs), and reports the job's
wall seconds (the cluster's start-up apart), the peak resident set of its own process (the
client) and of every worker process (``VmHWM`` of each, read through ``client.run`` before the
cluster closes). Outputs of every configuration are compared array for array with the
in-process one (for ``encode-sized``, with the 2-worker run when in-process fails).

What scales with workers: reading the BED files, the per-chromosome merges (one task each: the
largest chromosome bounds it), encoding and writing Zarr chunks. What does not: the client's
planning (counts, the random split), and HDF5 output, which goes through one writer.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _common import cpu_model, fmt_rate, git_revision, print_table, ram_gib

import gpu_genomics as gg


# --- data ------------------------------------------------------------------------------------
def hg19_data(args) -> dict:
    import intervals as bench_intervals

    data_args = argparse.Namespace(
        workdir=args.workdir, scale=1.0, seed=0, rows=1_800_000, files=30
    )
    return bench_intervals.make_data(data_args)


def encode_fasta(args) -> Path:
    """``--encode-records`` random records of 1,000 bases (5% lowercase runs, sporadic N)."""
    path = Path(args.workdir) / f"encode-{args.encode_records}.fa"
    if path.exists():
        return path
    rng = np.random.default_rng(7)
    letters = np.frombuffer(b"ACGTacgtN", dtype=np.uint8)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as out:
        for first in range(0, args.encode_records, 10_000):
            n = min(10_000, args.encode_records - first)
            codes = rng.choice(9, size=(n, 1000), p=[0.235] * 4 + [0.01] * 4 + [0.02])
            seqs = letters[codes]
            for i in range(n):
                row = seqs[i].tobytes()
                out.write(f">r{first + i}\n".encode() + row[:500] + b"\n" + row[500:] + b"\n")
    tmp.rename(path)
    return path


def bgzip_indexed(fasta: Path) -> Path:
    """``fasta`` compressed with bgzip and indexed (``.fai``, ``.gzi``) as samtools does."""
    import pysam

    path = fasta.with_suffix(".fa.gz")
    if not Path(f"{path}.gzi").exists():
        pysam.tabix_compress(str(fasta), str(path), force=True)
        pysam.faidx(str(path))
    return path


def encode_sized_data(args, genome: Path, sizes: dict[str, int]) -> Path:
    """The ENCODE-sized BED files and their metadata (see the module docstring)."""
    import intervals as bench_intervals
    import pandas as pd

    folder = Path(args.workdir) / f"encode-sized-{args.encode_files}-{args.encode_rows}"
    metadata = folder / "metadata.txt"
    if metadata.exists():
        return metadata
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(11)
    names = np.array(list(sizes), dtype=object)
    lengths = np.array(list(sizes.values()), dtype=np.int64)
    site_chrom, site_pos = bench_intervals._positions(rng, 1_000_000, sizes, 2_000)
    popularity = rng.beta(0.6, 1.4, size=len(site_chrom))
    popularity /= popularity.sum()
    per_file = args.encode_rows // args.encode_files
    for index in range(args.encode_files):
        n_background = per_file // 100
        sites = rng.choice(len(site_chrom), size=per_file - n_background, p=popularity)
        bg_chrom, bg_pos = bench_intervals._positions(rng, n_background, sizes, 2_000)
        chrom = np.concatenate([site_chrom[sites], bg_chrom])
        centre = np.concatenate(
            [site_pos[sites] + np.rint(rng.normal(0, 40, len(sites))).astype(np.int64), bg_pos]
        )
        width = np.clip(rng.lognormal(np.log(300), 0.4, per_file), 150, 800).astype(np.int64)
        start = np.clip(centre - width // 2, 0, lengths[chrom] - width)
        frame = pd.DataFrame({"chrom": names[chrom], "start": start, "end": start + width})
        frame.sort_values(["chrom", "start"]).to_csv(
            folder / f"f{index:04d}.bed", sep="\t", header=False, index=False
        )
    metadata.write_text("".join(f"f{i:04d}.bed\n" for i in range(args.encode_files)))
    return metadata


# --- one run (a child process) -----------------------------------------------------------------
def peak_rss() -> int:
    """This process's peak resident set in bytes: ``VmHWM`` of ``/proc/self/status``, which
    starts afresh at exec (``ru_maxrss`` would start at the forking parent's size)."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(argv: list[str]) -> None:
    """Run one configuration; print its figures as JSON on the last line of stdout."""
    spec = json.loads(argv[0])
    workers = spec["workers"]
    from gpu_genomics.execution import cluster

    started = time.perf_counter()
    with cluster(workers=workers, device="cpu") as client:
        ready = time.perf_counter()
        if spec["job"] == "intervals":
            gg.build_interval_dataset(
                spec["metadata"],
                spec["reference"],
                spec["output"],
                device="cpu",
                client=client,
                **spec["options"],
            )
        else:
            gg.encode_file(
                spec["input"], spec["output"], device="cpu", client=client, **spec["options"]
            )
        done = time.perf_counter()
        worker_rss = []
        if client is not None:
            worker_rss = sorted(int(v) for v in client.run(peak_rss).values())
    own = peak_rss()
    print(
        json.dumps(
            {
                "seconds": done - ready,
                "startup": ready - started,
                "client_rss": own,
                "worker_rss": worker_rss,
            }
        )
    )


def run(spec: dict, *, limit_gib: float | None = None) -> dict:
    """Run ``spec`` in a child process; its figures, or ``{"error": ...}``."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    if limit_gib is not None and shutil.which("prlimit"):
        cmd = ["prlimit", f"--as={int(limit_gib * 2**30)}", "--", *cmd]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": f"exit {done.returncode}: {last[:160]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def same_outputs(a: Path, b: Path) -> bool:
    from compare_outputs import arrays_of, same

    arrays_a, _ = arrays_of(a)
    arrays_b, _ = arrays_of(b)
    return arrays_a.keys() == arrays_b.keys() and all(
        same(arrays_a[k], arrays_b[k]) for k in arrays_a
    )


def gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.2f}"


def report(name: str, units: int, unit: str, results: dict, outputs: dict, *, ref_key: str) -> None:
    print(f"\n## {name}\n")
    rows = []
    reference = results.get(ref_key, {})
    for key, result in results.items():
        if "error" in result:
            rows.append([key, "-", "-", "-", "-", "-", result["error"]])
            continue
        speedup = (
            reference.get("seconds", np.nan) / result["seconds"]
            if "seconds" in reference
            else np.nan
        )
        workers = ", ".join(gib(r) for r in result["worker_rss"]) or "-"
        equal = (
            "ref"
            if key == ref_key
            else ("yes" if same_outputs(outputs[ref_key], outputs[key]) else "NO")
        )
        rows.append(
            [
                key,
                f"{result['seconds']:.1f}",
                fmt_rate(units / result["seconds"]) + f" {unit}/s",
                f"{speedup:.2f}x",
                gib(result["client_rss"]),
                workers,
                equal,
            ]
        )
    print_table(
        [
            "run",
            "seconds",
            "throughput",
            "vs ref",
            "client peak GiB",
            "per-worker peak GiB",
            "same output",
        ],
        rows,
        left={0, 6},
    )


def compare(
    title: str,
    job: dict,
    *,
    folder: Path,
    worker_counts: list[int],
    units: tuple[int, str],
    limit_gib: float | None = None,
) -> None:
    """Run ``job`` in-process (under ``limit_gib`` of address space) and on each worker count;
    print the table, against in-process or, when that failed, the largest cluster."""
    results, outputs = {}, {}
    for workers in [None, *worker_counts]:
        key = "in-process" if workers is None else f"--workers {workers}"
        outputs[key] = folder / str(workers) / "out.zarr"
        outputs[key].parent.mkdir(parents=True)
        spec = {**job, "workers": workers, "output": str(outputs[key])}
        clock = time.perf_counter()
        results[key] = run(spec, limit_gib=limit_gib if workers is None else None)
        print(f"{key}: {time.perf_counter() - clock:.0f} s wall", flush=True)
    ref = "in-process" if "error" not in results["in-process"] else key
    report(title, *units, results, outputs, ref_key=ref)


# --- main ------------------------------------------------------------------------------------
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", default="hg19,encode")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--workdir", default="/tmp/gg-bench-intervals")
    parser.add_argument("--encode-records", type=int, default=200_000)
    parser.add_argument("--encode-files", type=int, default=1000)
    parser.add_argument("--encode-rows", type=int, default=100_000_000)
    parser.add_argument(
        "--memory-limit",
        type=float,
        default=22.0,
        help="GiB of address space for the in-process encode-sized run",
    )
    parser.add_argument("--child", nargs=1, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        child(args.child)
        return 0
    workloads = args.workloads.split(",")
    worker_counts = [int(w) for w in args.workers.split(",")]
    print("# gpu_genomics benchmark: scale-out (in-process vs Dask LocalCluster)")
    print(
        f"date: {datetime.date.today()}; machine: {cpu_model()} ({os.cpu_count()} cores), "
        f"{ram_gib()} RAM; python {platform.python_version()}; gpu_genomics {gg.__version__} "
        f"(git {git_revision()})"
    )
    print(f"command: python bench/scale.py {' '.join(argv or sys.argv[1:])}")
    runs = Path(args.workdir) / "scale-runs"
    shutil.rmtree(runs, ignore_errors=True)
    runs.mkdir(parents=True)
    if "hg19" in workloads or "encode-sized" in workloads:
        data = hg19_data(args)
    if "hg19" in workloads:
        compare(
            "intervals, hg19-sized: 30 BED files, 1.8 M rows, basset merge, Zarr",
            {
                "job": "intervals",
                "metadata": str(data["metadata"]),
                "reference": str(data["genome"]),
                "options": {},
            },
            folder=runs / "hg19",
            worker_counts=worker_counts,
            units=(1_800_000, "rows"),
        )
    if "encode" in workloads:
        fasta = encode_fasta(args)
        inputs = [
            ("plain FASTA, the longest record's length (a first pass)", fasta, {}),
            ("plain FASTA, --length 1000 (one pass)", fasta, {"length": 1000}),
            ("bgzip with .fai and .gzi, --length 1000", bgzip_indexed(fasta), {"length": 1000}),
        ]
        for number, (label, path, options) in enumerate(inputs):
            compare(
                f"encode one-hot: {args.encode_records} records x 1,000 bp, {label}, Zarr",
                {"job": "encode", "input": str(path), "options": options},
                folder=runs / f"encode-{number}",
                worker_counts=worker_counts,
                units=(args.encode_records, "records"),
            )
    if "encode-sized" in workloads:
        metadata = encode_sized_data(args, data["genome"], data["sizes"])
        compare(
            f"intervals, ENCODE-sized: {args.encode_files} BED files, {args.encode_rows} rows, "
            f"{args.encode_files} labels, hull merge, 200 bp, Zarr",
            {
                "job": "intervals",
                "metadata": str(metadata),
                "reference": str(data["genome"]),
                "options": {"merge": "hull", "length": 200, "min_overlap": 100},
            },
            folder=runs / "encode-sized",
            worker_counts=[max(worker_counts)],
            units=(args.encode_rows, "rows"),
            limit_gib=args.memory_limit,
        )
    shutil.rmtree(runs, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
