"""Benchmark: the single-cell recipe, our API against plain scanpy (and the GPU when usable).

Generates a sparse count matrix (default 100,000 cells x 20,000 genes, about 800 detected genes
per cell, 13 ``MT-`` genes, a share of low-quality, very deep and damaged cells so that every
filter removes something), cached as ``.h5ad`` under ``--cache``. Each pipeline then runs in its
own subprocess on the same file, after a warm-up on a small matrix (numba compiles scanpy's
kernels once per process):

* ``scanpy``: the specification's recipe verbatim (docs/singlecell.md#recipe), step by step;
* ``ours-cpu``: ``gpu_genomics.sc.preprocess(adata, device="cpu")`` (same recipe, plus the raw
  counts kept in ``layers["counts"]`` and the spec's extra columns);
* ``ours-gpu``: the same with ``device="gpu"`` (rapids-singlecell), when usable; the recipe
  synchronises the device before each clock read.

Printed: seconds per step and in total, cells per second, peak RSS of the subprocess (loaded
matrix included), and our overhead against scanpy (target: at most 5%) or the GPU speed-up.

    python bench/scrna.py                       # 100k x 20k
    python bench/scrna.py --cells 20000 --genes 10000 --repeats 3
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
from _common import cpu_model, git_revision, gpu_text, print_table, ram_gib

N_MITO = 13


def make_counts(n_cells: int, n_genes: int, genes_per_cell: int, seed: int):
    """CSR float32 ``(n_cells, n_genes)`` counts, generated sparse (never dense)."""
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    popularity = rng.gamma(0.4, 1.0, size=n_genes)
    popularity[:N_MITO] = popularity[N_MITO:].sum() * 0.02 / N_MITO  # ~2% mitochondrial
    popularity /= popularity.sum()
    depth = rng.lognormal(0.0, 0.45, size=n_cells)
    depth[: n_cells // 25] *= 0.15  # low quality: < 200 genes
    depth[n_cells // 25 : n_cells // 12] *= 4.0  # very deep: > 2500 genes
    per_cell = rng.poisson(genes_per_cell * depth).astype(np.int64)
    rows = np.repeat(np.arange(n_cells, dtype=np.int32), per_cell)
    cols = rng.choice(n_genes, size=len(rows), p=popularity).astype(np.int32)
    values = rng.geometric(0.55, size=len(rows)).astype(np.float32)
    damaged = (rows >= n_cells // 12) & (rows < n_cells // 12 + n_cells // 30) & (cols < N_MITO)
    values[damaged] *= 30  # damaged cells: mostly mitochondrial reads
    matrix = sp.coo_matrix((values, (rows, cols)), shape=(n_cells, n_genes)).tocsr()
    matrix.sum_duplicates()
    names = [f"MT-{i}" for i in range(N_MITO)] + [f"G{i}" for i in range(N_MITO, n_genes)]
    return ad.AnnData(
        X=matrix,
        obs=pd.DataFrame(index=[f"cell{i}" for i in range(n_cells)]),
        var=pd.DataFrame(index=names),
    )


def scanpy_recipe(adata, steps: dict[str, float]):
    """The specification's recipe verbatim, timing each step into ``steps``."""
    import scanpy as sc

    def timed(name, fn):
        started = time.perf_counter()
        result = fn()
        steps[name] = time.perf_counter() - started
        return result

    timed("filter_cells", lambda: sc.pp.filter_cells(adata, min_genes=200))
    timed("filter_genes", lambda: sc.pp.filter_genes(adata, min_cells=3))

    def qc():
        adata.var["mt"] = adata.var_names.str.startswith("MT-")
        sc.pp.calculate_qc_metrics(
            adata, qc_vars=["mt"], percent_top=None, log1p=False, inplace=True
        )

    timed("qc_metrics", qc)
    adata = timed(
        "filter_qc",
        lambda: adata[(adata.obs.n_genes_by_counts < 2500) & (adata.obs.pct_counts_mt < 5), :],
    )
    timed("normalize_total", lambda: sc.pp.normalize_total(adata, target_sum=1e4))
    timed("log1p", lambda: sc.pp.log1p(adata))

    def hvg():
        sc.pp.highly_variable_genes(adata, n_top_genes=2000)
        return adata[:, adata.var.highly_variable]

    adata = timed("hvg (seurat)", hvg)
    timed("scale", lambda: sc.pp.scale(adata, max_value=10))
    return adata


def ours(adata, device: str, steps: dict[str, float]):
    import gpu_genomics.sc as gsc

    gsc.preprocess(adata, device=device)
    result = adata
    table = result.uns["preprocess_steps"]
    for name, seconds in zip(table["step"], table["seconds"], strict=True):
        steps[str(name)] = float(seconds)
    return result


def child(pipeline: str, path: str, warmup: str) -> None:
    """Run one pipeline in this (fresh) process and print its figures as JSON."""
    import warnings

    import anndata as ad

    warnings.filterwarnings("ignore")
    run = {
        "scanpy": scanpy_recipe,
        "ours-cpu": lambda a, s: ours(a, "cpu", s),
        "ours-gpu": lambda a, s: ours(a, "gpu", s),
    }
    run[pipeline](ad.read_h5ad(warmup), {})  # compile numba / CUDA kernels
    adata = ad.read_h5ad(path)
    steps: dict[str, float] = {}
    started = time.perf_counter()
    result = run[pipeline](adata, steps)
    total = time.perf_counter() - started
    peak_kib = 0
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                peak_kib = int(line.split()[1])
    print(
        json.dumps(
            {
                "steps": steps,
                "total": total,
                "peak_gib": peak_kib / 2**20,
                "shape": list(result.shape),
                "checksum": float(np.asarray(result.X, dtype=np.float64).sum()),
            }
        )
    )


def measure(pipeline: str, path: Path, warmup: Path) -> dict:
    command = [sys.executable, __file__, "--child", pipeline, str(path), str(warmup)]
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{pipeline} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=100_000)
    parser.add_argument("--genes", type=int, default=20_000)
    parser.add_argument("--genes-per-cell", type=int, default=800)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1, help="runs per pipeline; best kept")
    parser.add_argument("--cache", type=Path, default=Path(".bench-cache"))
    parser.add_argument("--device", choices=["cpu", "gpu", "auto"], default="auto")
    parser.add_argument("--child", nargs=3, metavar=("PIPELINE", "PATH", "WARMUP"))
    return parser.parse_args(argv)


def make_inputs(args) -> tuple[Path, Path]:
    """The benchmark's matrix and the warm-up matrix, generated unless already cached."""
    args.cache.mkdir(parents=True, exist_ok=True)
    name = f"scrna-{args.cells}x{args.genes}-{args.genes_per_cell}-{args.seed}.h5ad"
    path, warmup = args.cache / name, args.cache / "scrna-warmup.h5ad"
    if not path.exists():
        started = time.perf_counter()
        make_counts(args.cells, args.genes, args.genes_per_cell, args.seed).write_h5ad(path)
        print(f"generated {path} in {time.perf_counter() - started:.1f} s")
    if not warmup.exists():
        make_counts(2000, 3000, 400, 1).write_h5ad(warmup)
    return path, warmup


def print_report(args, pipelines: list[str], best: dict[str, dict], shape: tuple) -> None:
    """Seconds per step, totals, cells/s and peak RSS per pipeline, then the target."""
    steps = list(best["scanpy"]["steps"])
    extra = [s for s in best["ours-cpu"]["steps"] if s not in steps]
    header = ["step", *pipelines]
    body = [[s, *(_seconds(best[p]["steps"].get(s)) for p in pipelines)] for s in steps + extra]
    body.append(["total", *(_seconds(best[p]["total"]) for p in pipelines)])
    body.append(["cells/s", *(f"{args.cells / best[p]['total']:,.0f}" for p in pipelines)])
    body.append(["peak RSS", *(f"{best[p]['peak_gib']:.2f} GiB" for p in pipelines)])
    print()
    print_table(header, body, left={0})
    overhead = best["ours-cpu"]["total"] / best["scanpy"]["total"] - 1
    print()
    print(
        f"ours-cpu vs scanpy: {overhead:+.1%} ({'PASS' if overhead <= 0.05 else 'FAIL'}: "
        "target at most +5%)"
    )
    if "ours-gpu" in best:
        print(f"ours-gpu vs ours-cpu: {best['ours-cpu']['total'] / best['ours-gpu']['total']:.1f}x")
    same = best["ours-cpu"]["checksum"] == best["scanpy"]["checksum"]
    print(f"output    {shape} (cells, genes); ours-cpu X equals scanpy's: {same}")


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.child:
        child(*args.child)
        return

    from gpu_genomics.expression.singlecell import rapids_status

    gpu_ok, gpu_reason = rapids_status()
    if args.device == "gpu" and not gpu_ok:
        raise SystemExit(f"--device gpu: {gpu_reason}")
    path, warmup = make_inputs(args)
    print("# bench/scrna.py")
    print(f"date      {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; revision {git_revision()}")
    print(f"machine   {cpu_model()}, {os.cpu_count()} CPUs, {ram_gib()} RAM")
    print(f"gpu       {gpu_text(gpu_ok=gpu_ok, gpu_reason=gpu_reason)}")
    print(f"command   python bench/{Path(__file__).name} {' '.join(sys.argv[1:])}")
    print(f"data      {args.cells} cells x {args.genes} genes, ~{args.genes_per_cell} genes/cell")

    pipelines = ["scanpy", "ours-cpu"] + (["ours-gpu"] if gpu_ok and args.device != "cpu" else [])
    best: dict[str, dict] = {}
    for _ in range(args.repeats):
        for pipeline in pipelines:  # interleaved, so drift on a shared machine hits all alike
            result = measure(pipeline, path, warmup)
            if pipeline not in best or result["total"] < best[pipeline]["total"]:
                best[pipeline] = result
    shapes = {tuple(r["shape"]) for r in best.values()}
    if len(shapes) != 1:
        raise SystemExit(f"pipelines disagree on the output shape: {shapes}")
    print_report(args, pipelines, best, shapes.pop())


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


if __name__ == "__main__":
    main()
