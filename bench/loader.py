#!/usr/bin/env python
"""Benchmark ``gpu_genomics.data.BatchLoader`` against a plain h5py / zarr loop on the same files.

    python bench/loader.py [--n 50000] [--length 1000] [--flank 100] [--batch-size 128]
                           [--batches 150] [--repeats 3] [--workdir DIR] [--device auto]

Data (seeded, written once per run into ``--workdir``, a temporary folder by default): an
``intervals``-layout training split of ``n`` one-hot windows of ``length + 2 * flank`` positions
(uint8, uniform A/C/G/T, root attributes ``flank`` and ``base_order``) with ``--labels`` multi-hot
labels, written as the job writes it: HDF5 uncompressed and Zarr with zstd (level 3), both
chunked by 1,000 rows. The files were just written, so they are read from the page cache; a cold
disk would add the same device reads to every row of the table.

Cases (CPU; each iterates the first ``--batches`` batches of epoch 0, ``--batch-size`` rows each):

* ours: ``BatchLoader(..., device="cpu")`` yielding ``seqs`` (central ``length`` positions) and
  ``labels``, without augmentation and with reverse complement (p = 0.5) and shifts up to
  ``--max-shift`` (default: the flank), with ``prefetch`` 0 (reads in the iterating thread) and
  1 (a background thread); HDF5 in rows mode (its default: sorted rows, one hyperslab read per
  run of consecutive rows), Zarr in blocks mode (its default: chunk-sized blocks shuffled, rows
  shuffled within groups of 8 blocks, each chunk decompressed once per epoch);
* the plain loop: for each of the same batches, ``f["training_seqs"][np.sort(idx)]`` and
  ``f["training_labels"][np.sort(idx)]`` with h5py (default file options), the centre cropped
  with a slice, and, for the augmented case, the same draws applied per row in Python
  (``np.flip`` + a channel permutation, then the shifted slice); the Zarr loop does the same with
  ``z.oindex[np.sort(idx)]`` on its first ``--zarr-baseline-batches`` batches only (every batch
  decompresses about ``batch_size`` chunks), scaled per batch.

Checks: every implementation's batches, rows sorted by their index, must equal ours byte for byte
(BLAKE2 digests of seqs and labels, from an untimed first pass of each case that also warms it
up: numba's cache, h5py's metadata). The baselines take ours' indices and draws.

Timing: best (and median) of ``--repeats`` timed runs (one for the plain loops, which are slow);
the garbage collector off while timing. MB/s counts the bytes yielded (seqs + labels). Memory:
the peak traced by ``tracemalloc`` (NumPy arrays and Python objects in every thread, not HDF5's
chunk cache or the codecs' C buffers) over the first 20 batches of one more, untimed pass, the
opening of the file included. The machine's load average is printed: timings on a shared
machine vary.

GPU (where ``gpu_genomics.gpu_status()[0]`` is True): ours with ``device="gpu"`` and the same
augmentation (host reads on the thread, the copy to the device and the kernel in the iterating
thread), timed with a device synchronisation at the end; and the ``augment_rows`` kernel alone on
a batch already on the device (bytes read + written per second).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import hashlib
import os
import platform
import shlex
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))

from _common import (  # noqa: E402 (bench/ is the script's folder)
    cpu_model,
    git_revision,
    gpu_text,
    print_table,
    ram_gib,
    verdict,
)

import gpu_genomics as gg  # noqa: E402
from gpu_genomics.data import BatchLoader  # noqa: E402
from gpu_genomics.sequence.alphabet import complement_permutation  # noqa: E402

CHUNK_ROWS = 1000  # the intervals job's default
BASE_ORDER = "ACGT"


# --- data -------------------------------------------------------------------------------------
def write_data(args, workdir: Path) -> dict:
    """Write the HDF5 and Zarr files; return their paths, sizes and write times."""
    import h5py
    import zarr
    from zarr.codecs import ZstdCodec

    rng = np.random.default_rng(args.seed)
    width = args.length + 2 * args.flank
    eye = np.eye(4, dtype=np.uint8)
    h5_path, zarr_path = workdir / "bench.h5", workdir / "bench.zarr"
    attrs = {"flank": args.flank, "base_order": BASE_ORDER}
    timings = {}
    block = 5000
    chunk = min(CHUNK_ROWS, args.n)
    started = time.perf_counter()
    labels = rng.integers(0, 2, size=(args.n, args.labels), dtype=np.uint8)
    with h5py.File(h5_path, "w") as f:
        seqs = f.create_dataset(
            "training_seqs", shape=(args.n, width, 4), dtype=np.uint8, chunks=(chunk, width, 4)
        )
        f.create_dataset("training_labels", data=labels, chunks=(chunk, args.labels))
        for lo in range(0, args.n, block):
            hi = min(lo + block, args.n)
            seqs[lo:hi] = eye[rng.integers(0, 4, size=(hi - lo, width), dtype=np.uint8)]
        f.attrs.update(attrs)
    timings["hdf5"] = time.perf_counter() - started
    started = time.perf_counter()
    group = zarr.open_group(str(zarr_path), mode="w")
    codec = ZstdCodec(level=3)
    z_seqs = group.create_array(
        "training_seqs",
        shape=(args.n, width, 4),
        dtype=np.uint8,
        chunks=(chunk, width, 4),
        compressors=codec,
    )
    z_labels = group.create_array(
        "training_labels",
        shape=labels.shape,
        dtype=np.uint8,
        chunks=(chunk, args.labels),
        compressors=codec,
    )
    z_labels[...] = labels
    with h5py.File(h5_path) as f:  # the same rows
        for lo in range(0, args.n, chunk * 5):
            hi = min(lo + chunk * 5, args.n)
            z_seqs[lo:hi] = f["training_seqs"][lo:hi]
    group.attrs.update(attrs)
    timings["zarr"] = time.perf_counter() - started
    os.sync()
    return {
        "hdf5": h5_path,
        "zarr": zarr_path,
        "bytes": {"hdf5": h5_path.stat().st_size, "zarr": _folder_bytes(zarr_path)},
        "write_seconds": timings,
    }


def load_text() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def _folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# --- our loader -------------------------------------------------------------------------------
def ours_options(args, *, augment: bool, prefetch: int, device: str = "cpu") -> dict:
    return {
        "batch_size": args.batch_size,
        "seed": args.seed,
        "reverse_complement": augment,
        "max_shift": args.max_shift if augment else 0,
        "targets": ("labels", "index", "shift", "rc"),
        "prefetch": prefetch,
        "device": device,
    }


def ours_batches(path: Path, options: dict, n_batches: int) -> Iterator[dict]:
    """The first ``n_batches`` batches of epoch 0."""
    with BatchLoader(path, **options) as loader:
        for number, batch in enumerate(loader.iter_epoch(0)):
            if number == n_batches:
                return
            yield batch


def digest_sorted(index: np.ndarray, seqs: np.ndarray, labels: np.ndarray) -> str:
    """Digest of a batch with its rows sorted by index (host arrays)."""
    order = np.argsort(index, kind="stable")
    digest = hashlib.blake2b(digest_size=16)
    digest.update(np.ascontiguousarray(seqs[order]).tobytes())
    digest.update(np.ascontiguousarray(labels[order]).tobytes())
    return digest.hexdigest()


def reference_pass(path: Path, options: dict, n_batches: int) -> dict:
    """Ours, untimed: each batch's sorted indices, draws (sorted the same way) and digest."""
    batches = []
    for batch in ours_batches(path, options, n_batches):
        host = gg.to_numpy(batch)
        order = np.argsort(host["index"], kind="stable")
        batches.append(
            {
                "index": host["index"][order],
                "shift": host["shift"][order],
                "rc": host["rc"][order],
                "digest": digest_sorted(host["index"], host["seqs"], host["labels"]),
            }
        )
    return {"batches": batches}


# --- the plain loops --------------------------------------------------------------------------
def naive_augment(seqs: np.ndarray, shifts, flips, *, flank: int, length: int) -> np.ndarray:
    """Per row in Python: the shifted slice, flipped and channel-permuted when drawn."""
    perm = complement_permutation(BASE_ORDER)
    out = np.empty((len(seqs), length, seqs.shape[2]), dtype=seqs.dtype)
    for i in range(len(seqs)):
        window = seqs[i, flank + shifts[i] : flank + shifts[i] + length]
        if flips[i]:
            window = np.flip(window, axis=0)[:, perm]
        out[i] = window
    return out


def plain_batches(
    path: Path, fmt: str, reference: dict, args, *, augment: bool, n_batches: int
) -> Iterator[dict]:
    """The plain loop over ours' batches (sorted indices), h5py or zarr."""
    if fmt == "hdf5":
        import h5py

        store = h5py.File(path, "r")
        seqs, labels = store["training_seqs"], store["training_labels"]
        take = lambda array, idx: array[idx]  # noqa: E731
    else:
        import zarr

        store = zarr.open_group(str(path), mode="r")
        seqs, labels = store["training_seqs"], store["training_labels"]
        take = lambda array, idx: array.oindex[idx]  # noqa: E731
    try:
        for batch in reference["batches"][:n_batches]:
            idx = batch["index"]
            x, y = take(seqs, idx), take(labels, idx)
            if augment:
                x = naive_augment(
                    x, batch["shift"], batch["rc"], flank=args.flank, length=args.length
                )
            else:
                x = x[:, args.flank : args.flank + args.length]
            yield {"index": idx, "seqs": x, "labels": y}
    finally:
        if fmt == "hdf5":
            store.close()


# --- measuring --------------------------------------------------------------------------------
def run_case(
    make: Callable[[], Iterator[dict]],
    *,
    repeats: int,
    sync: Callable[[], None],
    busy_ms: float = 0.0,
    memory_batches: int = 20,
) -> dict:
    """Time ``repeats`` full iterations of ``make()``, then measure its memory on one more.

    ``busy_ms``: the consumer sleeps that long per batch (a training step that releases the
    GIL, as a GPU step does), so that prefetching has something to overlap with. Memory: the
    peak of ``tracemalloc`` (NumPy's arrays and Python's objects, every thread; not HDF5's or
    the codecs' own C buffers) over the first ``memory_batches`` batches of an untimed pass,
    the loader's opening included; tracing slows Python down, so it is kept out of the timing.
    """
    seconds = []
    count = 0
    for _ in range(repeats):
        gc.collect()
        gc.disable()
        try:
            started = time.perf_counter()
            count = 0
            for _batch in make():
                count += 1
                if busy_ms:
                    time.sleep(busy_ms / 1000)
            sync()
            seconds.append(time.perf_counter() - started)
        finally:
            gc.enable()
    gc.collect()
    tracemalloc.start()
    try:
        for number, _batch in enumerate(make()):
            if number + 1 == memory_batches:
                break
        peak = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    return {
        "best": min(seconds),
        "median": statistics.median(seconds),
        "batches": count,
        "peak": peak,
    }


def check_case(make: Callable[[], Iterator[dict]], reference: dict) -> bool:
    """Whether every batch of ``make()`` equals ours (rows sorted by index)."""
    digests = []
    for batch in make():
        host = gg.to_numpy(batch)
        digests.append(digest_sorted(host["index"], host["seqs"], host["labels"]))
    want = [b["digest"] for b in reference["batches"][: len(digests)]]
    return bool(digests) and digests == want


# --- the GPU ----------------------------------------------------------------------------------
def gpu_sync() -> None:
    import cupy

    cupy.cuda.Device().synchronize()


def gpu_kernel_rate(args, repeats: int) -> dict:
    """``augment_rows`` alone on a device-resident batch: batches/s and GB/s (read + written)."""
    import cupy

    from gpu_genomics import _kernels
    from gpu_genomics.data.augment import AUGMENT_ROWS

    rng = np.random.default_rng(args.seed)
    b, m, length = args.batch_size, args.max_shift, args.length
    src = cupy.asarray(rng.integers(0, 2, size=(b, length + 2 * m, 4), dtype=np.uint8))
    arguments = {
        "src": src.reshape(-1),
        "rows": cupy.asarray(rng.permutation(b).astype(np.int64)),
        "starts": cupy.asarray(rng.integers(0, 2 * m + 1, size=b).astype(np.int32)),
        "flips": cupy.asarray((rng.random(b) < 0.5).astype(np.uint8)),
        "perm": cupy.asarray(complement_permutation(BASE_ORDER).astype(np.int32)),
        "n_rows": b,
        "in_width": length + 2 * m,
        "out_width": length,
        "channels": 4,
        "item_bytes": 1,
        "out": cupy.empty(b * length * 4, dtype=np.uint8),
    }
    grid = _kernels.rows_grid(b, length * 4)
    calls = max(1, args.kernel_calls)
    AUGMENT_ROWS("gpu", grid=grid, **arguments)  # compile, warm up
    gpu_sync()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(calls):
            AUGMENT_ROWS("gpu", grid=grid, **arguments)
        gpu_sync()
        best = min(best, (time.perf_counter() - started) / calls)
    moved = 2 * b * length * 4  # the cropped rows read, and written
    return {"seconds": best, "batches_per_s": 1 / best, "gb_per_s": moved / best / 1e9}


# --- the report -------------------------------------------------------------------------------
def print_header(args, data: dict, *, gpu_ok: bool, gpu_reason: str) -> None:
    import h5py
    import numba
    import zarr

    width = args.length + 2 * args.flank
    print("# gpu_genomics benchmark: the batch loader (gpu_genomics.data)")
    print(f"date:        {datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')}")
    print(f"command:     {shlex.join(sys.orig_argv)}")
    print(f"cpu:         {cpu_model()}")
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    print(
        f"cores:       {os.cpu_count()} logical, {usable} usable; "
        f"numba threads {numba.get_num_threads()}"
    )
    print(f"ram:         {ram_gib()}")
    print(f"gpu:         {gpu_text(gpu_ok=gpu_ok, gpu_reason=gpu_reason)}")
    print(
        f"software:    python {platform.python_version()}, numpy {np.__version__}, "
        f"h5py {h5py.__version__} (HDF5 {h5py.version.hdf5_version}), zarr {zarr.__version__}, "
        f"numba {numba.__version__}, gpu_genomics {gg.__version__} (git {git_revision()})"
    )
    print(
        f"data:        {args.n} x ({args.length} + 2 x {args.flank}) bp one-hot uint8 "
        f"({args.n * width * 4 / 1e6:.0f} MB), {args.labels} labels, seed {args.seed}; "
        f"chunks of {CHUNK_ROWS} rows"
    )
    sizes = data["bytes"]
    writes = data["write_seconds"]
    print(
        f"files:       HDF5 uncompressed {sizes['hdf5'] / 1e6:.0f} MB (written in "
        f"{writes['hdf5']:.1f} s), Zarr zstd-3 {sizes['zarr'] / 1e6:.0f} MB "
        f"({writes['zarr']:.1f} s); read from the page cache"
    )
    print(
        f"batches:     {args.batch_size} rows, the first {args.batches} of epoch 0 "
        f"(Zarr plain loop: {args.zarr_baseline_batches}); augmentation: reverse complement "
        f"p=0.5, shifts up to {args.max_shift} bp"
    )
    print(
        f"timing:      untimed checking pass (warm-up), then best of {args.repeats} "
        f"(plain loops: 1), gc off; load {load_text()} (1/5/15-min averages)"
    )
    print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--length", type=int, default=1000)
    parser.add_argument("--flank", type=int, default=100)
    parser.add_argument("--max-shift", type=int, default=None, help="default: the flank")
    parser.add_argument("--labels", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--batches", type=int, default=150)
    parser.add_argument("--zarr-baseline-batches", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--kernel-calls", type=int, default=200)
    parser.add_argument(
        "--busy-ms", type=float, default=2.0, help="consumer work per batch in the prefetch rows"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto")
    parser.add_argument("--workdir", default=None, help="default: a temporary folder, removed")
    args = parser.parse_args(argv)
    args.max_shift = args.flank if args.max_shift is None else args.max_shift
    args.batches = min(args.batches, -(-args.n // args.batch_size))
    gpu_ok, gpu_reason = gg.gpu_status() if args.device != "cpu" else (False, "not requested")
    if args.device == "gpu" and not gpu_ok:
        print(f"no usable GPU ({gpu_reason})", file=sys.stderr)
        return 1

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="gg-loader-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        data = write_data(args, workdir)
        gc.collect()
        print_header(args, data, gpu_ok=gpu_ok, gpu_reason=gpu_reason)
        rows, checks = run_all(args, data, gpu_ok=gpu_ok)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)

    row_bytes = args.length * 4 + args.labels
    header = [
        "file",
        "augment",
        "implementation",
        "batches/s",
        "median",
        "MB/s",
        "vs plain",
        "traced MiB",
        "equal",
    ]
    body = []
    plain_rate = {}
    for row in rows:
        rate = row["batches"] / row["best"]
        if row["impl"].startswith("plain"):
            plain_rate[row["file"], row["augment"]] = rate
    for row in rows:
        rate = row["batches"] / row["best"]
        base = plain_rate.get((row["file"], row["augment"]))
        plain = row["impl"].startswith("plain") or row.get("busy")
        ratio = "" if base is None or plain else f"{rate / base:.1f}x"
        body.append(
            [
                row["file"],
                "RC+shift" if row["augment"] else "none",
                row["impl"],
                f"{rate:.1f}",
                f"{row['batches'] / row['median']:.1f}",
                f"{rate * args.batch_size * row_bytes / 1e6:.0f}",
                ratio,
                f"{row['peak']:.1f}",
                verdict(ok=row["ok"]),
            ]
        )
    print_table(header, body, left={0, 1, 2})
    print()
    for line in checks:
        print(line)
    print(f"load at end: {load_text()} (1/5/15-min averages)")
    return 0 if all(row["ok"] for row in rows) else 1


def run_all(args, data: dict, *, gpu_ok: bool) -> tuple[list[dict], list[str]]:
    """Every case: its check, then its timing."""
    rows, notes = [], []
    n = args.batches
    no_sync = lambda: None  # noqa: E731
    for fmt, mode in (("hdf5", "rows"), ("zarr", "blocks")):
        path = data[fmt]
        for augment in (False, True):
            reference = reference_pass(path, ours_options(args, augment=augment, prefetch=0), n)
            checked = {}
            for prefetch in (0, 1):
                options = ours_options(args, augment=augment, prefetch=prefetch)
                make = lambda p=path, o=options: ours_batches(p, o, n)  # noqa: E731
                ok = checked[prefetch] = check_case(make, reference)
                timing = run_case(make, repeats=args.repeats, sync=no_sync)
                rows.append(
                    {
                        "file": fmt,
                        "augment": augment,
                        "impl": f"ours cpu, {mode}, prefetch {prefetch}",
                        "ok": ok,
                        **timing,
                    }
                )
            for prefetch in (0, 1) if augment and args.busy_ms else ():
                options = ours_options(args, augment=augment, prefetch=prefetch)
                make = lambda p=path, o=options: ours_batches(p, o, n)  # noqa: E731
                timing = run_case(make, repeats=args.repeats, sync=no_sync, busy_ms=args.busy_ms)
                rows.append(
                    {
                        "file": fmt,
                        "augment": augment,
                        "impl": f"ours cpu, prefetch {prefetch}, busy {args.busy_ms:g} ms/batch",
                        "ok": checked[prefetch],
                        "busy": True,
                        **timing,
                    }
                )
            if gpu_ok:
                options = ours_options(args, augment=augment, prefetch=1, device="gpu")
                make = lambda p=path, o=options: ours_batches(p, o, n)  # noqa: E731
                ok = check_case(make, reference)
                timing = run_case(make, repeats=args.repeats, sync=gpu_sync)
                rows.append(
                    {
                        "file": fmt,
                        "augment": augment,
                        "impl": f"ours gpu, {mode}, prefetch 1",
                        "ok": ok,
                        **timing,
                    }
                )
            n_plain = n if fmt == "hdf5" else min(n, args.zarr_baseline_batches)
            make = lambda p=path, f=fmt, r=reference, a=augment, k=n_plain: plain_batches(  # noqa: E731
                p, f, r, args, augment=a, n_batches=k
            )
            ok = check_case(make, reference)
            timing = run_case(make, repeats=1, sync=no_sync)
            name = "plain h5py loop" if fmt == "hdf5" else "plain zarr loop (oindex)"
            rows.append({"file": fmt, "augment": augment, "impl": name, "ok": ok, **timing})
        with BatchLoader(data[fmt], **ours_options(args, augment=True, prefetch=0)) as loader:
            before = loader.stats.bytes_read
            for _ in loader.iter_epoch(0):  # a whole epoch: blocks are read a group at a time
                pass
            rows_read = loader.info.n_rows
        yielded = args.batch_size * args.length * 4
        per_batch = (loader.stats.bytes_read - before) / max(rows_read, 1) * args.batch_size
        notes.append(
            f"{fmt}: ours reads {per_batch / 1e6:.2f} MB of selections per {args.batch_size} rows "
            "over an epoch "
            f"with max_shift={args.max_shift} ({per_batch / yielded:.2f}x the "
            f"{yielded / 1e6:.2f} MB of seqs yielded; {mode} mode)"
        )
    if gpu_ok:
        kernel = gpu_kernel_rate(args, args.repeats)
        notes.append(
            f"gpu kernel alone (augment_rows, batch on the device): {kernel['batches_per_s']:.0f} "
            f"batches/s, {kernel['gb_per_s']:.1f} GB/s read + written, "
            f"{kernel['seconds'] * 1e6:.1f} us per batch"
        )
    return rows, notes


if __name__ == "__main__":
    sys.exit(main())
