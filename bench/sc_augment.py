"""Benchmark: downsampling and simulated doublets, in memory and block by block, against scanpy.

The matrix of ``bench/scrna.py`` (default 100,000 cells x 20,000 genes, about 800 detected
genes per cell), cached as ``.h5ad`` under ``--cache``. Each pipeline runs in its own
subprocess, file to file (read the ``.h5ad``, compute, write ``.h5ad``), after a warm-up on a
small matrix:

* downsampling every cell to at most ``--target`` reads, without replacement:
  ``scanpy.pp.downsample_counts(counts_per_cell=T)`` (the peer), ours in memory
  (``downsample_counts(method="hypergeometric")``), ours block by block (``downsample_file``,
  20,000 cells per task) in this process and on a 2-worker LocalCluster;
* ``2 x cells`` doublets (scrublet's ``sim_doublet_ratio=2``), the parents' counts added:
  ``scanpy.pp.scrublet_simulate_doublets`` (the peer), ours in memory
  (``simulate_doublets``), ours block by block (``simulate_doublets_file``) in this process
  and on 2 workers.

Checked: ours block by block equals ours in memory (every value, both); every downsampled
cell has exactly ``min(total, T)`` reads in scanpy's output and ours (the draws differ: other
generators); every doublet's total is the sum of its parents' totals, in scanpy's and ours.
Printed: seconds, cells/s, peak RSS (the largest process; with workers, the client and each
worker), ratio to scanpy.

    python bench/sc_augment.py --cache /tmp/scrna-cache
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_model, git_revision, print_table, ram_gib
from scrna import make_counts, vm_hwm_bytes

CHUNK = 20_000
PIPELINES = {
    "downsample": ["scanpy", "ours-memory", "ours-blocks", "ours-2workers"],
    "doublets": ["scanpy", "ours-memory", "ours-blocks", "ours-2workers"],
}


def run_pipeline(task: str, pipeline: str, path: str, output: str, target: int) -> dict:
    """One pipeline, file to file, in this process; returns figures and a check summary."""
    import anndata as ad
    import scanpy as sc

    from gpu_genomics.execution import cluster
    from gpu_genomics.expression.singlecell import (
        downsample_counts,
        downsample_file,
        simulate_doublets,
        simulate_doublets_file,
    )

    started = time.perf_counter()
    workers = 2 if pipeline == "ours-2workers" else None
    if pipeline in ("ours-blocks", "ours-2workers"):
        with cluster(workers=workers, device="cpu") as client:
            if task == "downsample":
                downsample_file(
                    path, output, target_total=target, method="hypergeometric", seed=0,
                    chunk_cells=CHUNK, client=client, device="cpu",
                )  # fmt: skip
            else:
                n = 2 * ad.read_h5ad(path, backed="r").n_obs
                simulate_doublets_file(
                    path, output, n=n, seed=0, chunk_cells=CHUNK, client=client, device="cpu"
                )
            worker_peaks = (
                []
                if client is None
                else sorted(client.run(vm_hwm_bytes).values())  # bytes, per worker
            )
    else:
        worker_peaks = []
        adata = ad.read_h5ad(path)
        if task == "downsample":
            if pipeline == "scanpy":
                sc.pp.downsample_counts(adata, counts_per_cell=target, random_state=0)
            else:
                downsample_counts(
                    adata, target_total=target, method="hypergeometric", seed=0, device="cpu"
                )
            adata.write_h5ad(output)
        else:
            n = 2 * adata.n_obs
            if pipeline == "scanpy":
                doublets = sc.pp.scrublet_simulate_doublets(adata, sim_doublet_ratio=2.0)
            else:
                doublets = simulate_doublets(adata, n=n, seed=0, device="cpu")
            doublets.write_h5ad(output)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "peak": vm_hwm_bytes(), "worker_peaks": worker_peaks}


def child(task: str, pipeline: str, path: str, warmup: str, output: str, *, target: int) -> None:
    import warnings

    warnings.filterwarnings("ignore")
    run_pipeline(task, pipeline, warmup, output + ".warmup.h5ad", target)
    Path(output + ".warmup.h5ad").unlink(missing_ok=True)
    print(json.dumps(run_pipeline(task, pipeline, path, output, target)))


def measure(
    task: str, pipeline: str, path: Path, warmup: Path, output: Path, *, target: int
) -> dict:
    command = [
        sys.executable, __file__, "--child", task, pipeline, str(path), str(warmup), str(output),
        str(target),
    ]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{task} {pipeline} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def check(task: str, source: Path, outputs: dict[str, Path], target: int) -> list[str]:
    """The checks of the module docstring; returns one line per check."""
    import anndata as ad

    lines = []
    memory = ad.read_h5ad(outputs["ours-memory"])
    for name in ("ours-blocks", "ours-2workers"):
        other = ad.read_h5ad(outputs[name])
        same = (other.X != memory.X).nnz == 0 and other.X.dtype == memory.X.dtype
        if task == "doublets":
            same = same and list(other.obs["parent_1"]) == list(memory.obs["parent_1"])
        lines.append(f"{name} == ours-memory: {'PASS' if same else 'FAIL'}")
    x = ad.read_h5ad(source).X
    totals = np.asarray(x.sum(axis=1)).ravel()
    scanpy = ad.read_h5ad(outputs["scanpy"])
    if task == "downsample":
        want = np.minimum(totals, target)
        for name, result in (("scanpy", scanpy.X), ("ours", memory.X)):
            got = np.asarray(result.sum(axis=1)).ravel()
            lines.append(f"{name}: every cell min(total, {target}) reads: "
                         f"{'PASS' if np.array_equal(got, want) else 'FAIL'}")  # fmt: skip
    else:
        parents = {
            "scanpy": np.asarray(scanpy.obsm["doublet_parents"]).T,
            "ours": np.stack([memory.obs["parent_1"], memory.obs["parent_2"]]),
        }
        for name, result in (("scanpy", scanpy.X), ("ours", memory.X)):
            got = np.asarray(result.sum(axis=1)).ravel()
            want = totals[parents[name][0]] + totals[parents[name][1]]
            lines.append(f"{name}: every doublet's total = its parents': "
                         f"{'PASS' if np.allclose(got, want, rtol=1e-6) else 'FAIL'}")  # fmt: skip
    return lines


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=100_000)
    parser.add_argument("--genes", type=int, default=20_000)
    parser.add_argument("--genes-per-cell", type=int, default=800)
    parser.add_argument("--target", type=int, default=1_000, help="reads per cell to keep")
    parser.add_argument("--cache", type=Path, default=Path(".bench-cache"))
    parser.add_argument("--only", choices=sorted(PIPELINES), default=None)
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.child:
        task, pipeline, path, warmup, output, target = args.child
        child(task, pipeline, path, warmup, output, target=int(target))
        return
    args.cache.mkdir(parents=True, exist_ok=True)
    path = args.cache / f"counts-{args.cells}x{args.genes}-{args.genes_per_cell}.h5ad"
    warmup = args.cache / "augment-warmup.h5ad"
    if not path.exists():
        make_counts(args.cells, args.genes, args.genes_per_cell, seed=0).write_h5ad(path)
    if not warmup.exists():
        make_counts(2_000, 2_000, 200, seed=1).write_h5ad(warmup)
    print(f"# bench/sc_augment.py: {args.cells} cells x {args.genes} genes")
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs, {ram_gib()} RAM")
    print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, revision {git_revision()}")
    print("command: python " + " ".join(sys.argv))
    tasks = [args.only] if args.only else list(PIPELINES)
    for task in tasks:
        outputs = {name: args.cache / f"{task}-{name}.h5ad" for name in PIPELINES[task]}
        figures = {
            name: measure(task, name, path, warmup, outputs[name], target=args.target)
            for name in PIPELINES[task]
        }
        n_out = args.cells * (2 if task == "doublets" else 1)
        rows = []
        for name, figure in figures.items():
            workers = ", ".join(f"{b / 2**30:.2f}" for b in figure["worker_peaks"]) or "-"
            rows.append([
                name, f"{figure['seconds']:.2f}", f"{n_out / figure['seconds']:,.0f}",
                f"{figure['peak'] / 2**30:.2f}", workers,
                f"{figure['seconds'] / figures['scanpy']['seconds']:.2f}",
            ])  # fmt: skip
        print(f"\n{task}: file to file ({n_out:,} output cells)")
        print_table(
            ["pipeline", "seconds", "cells/s", "peak GiB", "worker peak GiB", "time / scanpy"],
            rows,
            left={0},
        )
        for line in check(task, path, outputs, args.target):
            print("  " + line)
        for output in outputs.values():
            output.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
