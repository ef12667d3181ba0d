#!/usr/bin/env python
"""Benchmark one-hot encoding and k-mer counting against the usual Python/NumPy idioms.

    python bench/encode.py [--n 20000] [--length 1000] [--k 6] [--repeats 3] [--device both]

Data: ``n`` random sequences of ``length`` bases (seeded), with a small fraction of N and of
lowercase letters, given as an ``(n, L)`` uint8 array, as a list of str (conversion timed) and
as a prebuilt ``SequenceBatch`` (``as_batch`` and its validation not timed).

CPU (same process, same data): ``gpu_genomics.one_hot`` / ``gpu_genomics.kmer_counts`` against
the NumPy lookup-table + ``np.eye`` idiom, a per-base Python loop and ``collections.Counter``
over k-mer strings. The pure-Python baselines run on a subset and are scaled linearly to ``n``
(the table says so). Every baseline's output (from its warm-up run) is asserted equal to ours,
so each row does the same work. Each implementation is warmed up once (numba JIT/cache load,
first touch of memory), then the best (and median) of ``--repeats`` timed runs is reported,
with the garbage collector off while timing (as ``timeit`` does).

Peak memory (CPU rows): each measurement runs in a fresh subprocess that builds the same data,
warms the implementation up on 8 sequences, resets the kernel's RSS high-water mark
(``/proc/self/clear_refs``), runs the operation once and reports ``VmHWM`` minus the ``VmRSS``
before the call: the peak extra resident memory of one call (its output included), whatever
allocated it (NumPy, numba, Python objects). Inputs that existed before the call are not
counted. glibc is told to mmap blocks of 64 KiB and more and to give freed memory back, so a
call cannot reuse heap memory left over from building the data.

GPU (only where ``gpu_genomics.gpu_status()[0]`` is True): ours with ``device="gpu"`` on a batch
already uploaded (``as_batch(array)`` + ``batch.arrays("gpu")``), and from the host array,
timed with ``cupyx.profiler.benchmark`` (CUDA events around each call, so host-side work inside
the call counts) after a synchronised warm-up, outputs checked against the CPU; one-hot
bandwidth (n*L bytes read + 4*n*L written) is compared with a device-to-device copy measured in
the same run and with the theoretical peak from the device's memory clock and bus width. As a
diagnostic, the single kernel launch inside each call is also recorded and replayed alone.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import gc
import importlib.util
import itertools
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))

import _common as common  # noqa: E402 (bench/ is the script's folder)
from _common import cpu_model, fmt_rate, git_revision, gpu_text, ram_gib, verdict  # noqa: E402

import gpu_genomics as gg  # noqa: E402
from gpu_genomics.sequence.kmers import DENSE_MAX_K  # noqa: E402

ONE_HOT_TARGET = 10.0  # CPU one-hot: ours >= 10x faster than the NumPy idiom
KMER_TARGET = 100.0  # CPU k-mer counting: ours >= 100x faster than Counter
GPU_BANDWIDTH_TARGET = 0.70  # GPU one-hot: >= 70% of the device's memory bandwidth
GPU_KMER_TARGET = 20e9  # GPU k-mer counting: >= 20 G bases/s
WARMUP_SEQS = 8  # sequences used to warm up in the memory subprocesses


# --- data ----------------------------------------------------------------------------------
def make_sequences(
    n: int, length: int, seed: int, n_fraction: float, lower_fraction: float
) -> np.ndarray:
    """``(n, length) uint8`` ASCII: uniform A/C/G/T, a fraction ``n_fraction`` of N and a
    fraction ``lower_fraction`` of lowercase a/c/g/t/n, at independent random positions."""
    rng = np.random.default_rng(seed)
    scale = 1_000_000
    draw = rng.integers(0, scale, size=(n, length), dtype=np.uint32)
    seqs = np.frombuffer(b"ACGT", dtype=np.uint8)[draw & 3]
    seqs[draw < int(n_fraction * scale)] = ord("N")
    lower = rng.random(size=(n, length), dtype=np.float32) < lower_fraction
    seqs[lower] |= 0x20  # ASCII upper -> lower
    return seqs


def to_strings(seqs: np.ndarray) -> list[str]:
    return [row.tobytes().decode("ascii") for row in seqs]


# --- baselines -----------------------------------------------------------------------------
def numpy_code_table() -> np.ndarray:
    """``(256,) uint8``: A/C/G/T (either case) -> 0..3, anything else -> 4."""
    table = np.full(256, 4, dtype=np.uint8)
    for code, base in enumerate("ACGT"):
        table[ord(base)] = code
        table[ord(base.lower())] = code
    return table


NUMPY_CODES = numpy_code_table()
NUMPY_EYE = np.eye(5, 4, dtype=np.uint8)  # row 4 (N and other letters) is all zeros


def numpy_one_hot(seqs: np.ndarray) -> np.ndarray:
    """The usual idiom: bytes -> codes through a lookup table, then ``eye[codes]``."""
    return NUMPY_EYE[NUMPY_CODES[seqs]]


LOOP_COLUMN = {base: code for code, base in enumerate("ACGT")} | {
    base.lower(): code for code, base in enumerate("ACGT")
}


def loop_one_hot(seqs: list[str], length: int) -> np.ndarray:
    """Per-base Python loop writing into a zeroed ``(n, length, 4) uint8`` array."""
    out = np.zeros((len(seqs), length, 4), dtype=np.uint8)
    for i, seq in enumerate(seqs):
        row = out[i]
        for j, base in enumerate(seq[:length]):
            column = LOOP_COLUMN.get(base)
            if column is not None:
                row[j, column] = 1
    return out


def seqpro_one_hot(seqs: np.ndarray) -> np.ndarray:
    """seqpro's ``ohe`` (case-sensitive: lower-case letters are all-zero rows), so the bases are
    upper-cased first, as a user of it would; the upper-casing is timed."""
    import seqpro

    upper = np.where((seqs >= ord("a")) & (seqs <= ord("z")), seqs - 32, seqs).astype(np.uint8)
    return seqpro.ohe(upper.view("S1"), alphabet=seqpro.DNA)


def kmer_columns(k: int) -> dict[str, int]:
    """k-mer string -> column, lexicographic ACGT order (built once, outside the timing)."""
    return {"".join(p): i for i, p in enumerate(itertools.product("ACGT", repeat=k))}


def counter_kmer_counts(seqs: list[str], k: int, columns: dict[str, int]) -> np.ndarray:
    """``Counter`` over k-mer strings, then a ``4**k`` vector per sequence; k-mers with a
    letter other than A/C/G/T are skipped. Sequences are upper-cased first so that lowercase
    (soft-masked) bases count, as they do in ours."""
    out = np.zeros((len(seqs), 4**k), dtype=np.int32)
    for row, text in enumerate(seqs):
        seq = text.upper()
        counts = Counter(seq[i : i + k] for i in range(len(seq) - k + 1))
        for kmer, count in counts.items():
            column = columns.get(kmer)
            if column is not None:
                out[row, column] = count
    return out


# --- the measured cases ----------------------------------------------------------------------
# key: (operation, implementation, input form, subset option name or None)
CASES = {
    "onehot/ours/array": ("one-hot", "ours (cpu)", "uint8 array", None),
    "onehot/ours/list": ("one-hot", "ours (cpu)", "list of str", None),
    "onehot/ours/batch": ("one-hot", "ours (cpu)", "SequenceBatch", None),
    "onehot/numpy/array": ("one-hot", "NumPy LUT + eye", "uint8 array", None),
    "onehot/loop/list": ("one-hot", "Python loop", "list of str", "loop_subset"),
    "onehot/seqpro/array": ("one-hot", "seqpro.ohe (upper-cased first)", "uint8 array", None),
    "kmer/ours/array": ("k-mer counts", "ours (cpu)", "uint8 array", None),
    "kmer/ours/list": ("k-mer counts", "ours (cpu)", "list of str", None),
    "kmer/ours/batch": ("k-mer counts", "ours (cpu)", "SequenceBatch", None),
    "kmer/counter/list": ("k-mer counts", "Counter", "list of str", "counter_subset"),
}
if importlib.util.find_spec("seqpro") is None:  # the peer is optional (pip install seqpro)
    del CASES["onehot/seqpro/array"]


def build_case(key: str, seqs: np.ndarray, strs: list[str], args) -> Callable[[], object]:
    """A zero-argument callable doing case ``key`` on ``seqs`` / ``strs`` (subset cases take
    their first ``--loop-subset`` / ``--counter-subset`` sequences)."""
    operation, _, rest = key.partition("/")
    if operation == "onehot":
        return onehot_case(rest, seqs, strs, args)
    if operation == "kmer":
        return kmer_case(rest, seqs, strs, args)
    raise KeyError(key)


def onehot_case(case: str, seqs: np.ndarray, strs: list[str], args) -> Callable[[], object]:
    """:func:`build_case` for the ``onehot/<case>`` keys."""
    if case == "ours/array":
        return lambda: gg.one_hot(seqs, device="cpu")
    if case == "ours/list":
        return lambda: gg.one_hot(strs, device="cpu")
    if case == "ours/batch":
        batch = gg.as_batch(seqs)  # built (and validated) once, outside the timing
        return lambda: gg.one_hot(batch, device="cpu")
    if case == "numpy/array":
        return lambda: numpy_one_hot(seqs)
    if case == "loop/list":
        subset, length = strs[: args.loop_subset], seqs.shape[1]
        return lambda: loop_one_hot(subset, length)
    if case == "seqpro/array":
        return lambda: seqpro_one_hot(seqs)
    raise KeyError(f"onehot/{case}")


def kmer_case(case: str, seqs: np.ndarray, strs: list[str], args) -> Callable[[], object]:
    """:func:`build_case` for the ``kmer/<case>`` keys."""
    k = args.k
    if case == "ours/array":
        return lambda: gg.kmer_counts(seqs, k, device="cpu")
    if case == "ours/list":
        return lambda: gg.kmer_counts(strs, k, device="cpu")
    if case == "ours/batch":
        batch = gg.as_batch(seqs)
        return lambda: gg.kmer_counts(batch, k, device="cpu")
    if case == "counter/list":
        subset = strs[: args.counter_subset]
        columns = kmer_columns(k)
        return lambda: counter_kmer_counts(subset, k, columns)
    raise KeyError(f"kmer/{case}")


# --- timing --------------------------------------------------------------------------------
def best_time(fn: Callable[[], object], repeats: int) -> tuple[float, float, object]:
    """Warm up once, then time ``repeats`` runs (gc off while timing).
    Returns ``(best seconds, median seconds, result of the warm-up run)``."""
    result = fn()
    times = []
    for _ in range(repeats):
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        finally:
            gc.enable()
    return min(times), float(np.median(times)), result


# --- memory (CPU) --------------------------------------------------------------------------
def _proc_status_kib(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def memory_child(key: str, args) -> None:
    """Subprocess entry: print the JSON peak RSS increase (bytes) of one call of ``key``."""
    seqs = make_sequences(args.n, args.length, args.seed, args.n_fraction, args.lower_fraction)
    strs = to_strings(seqs)
    build_case(key, seqs[:WARMUP_SEQS], strs[:WARMUP_SEQS], args)()  # JIT, caches, tables
    fn = build_case(key, seqs, strs, args)
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # reset VmHWM to the current RSS (Linux >= 4.0)
    except OSError as exc:
        print(json.dumps({"error": f"cannot reset VmHWM: {exc}"}))
        return
    before = _proc_status_kib("VmRSS")
    result = fn()
    peak = _proc_status_kib("VmHWM")
    del result
    print(json.dumps({"peak_increase_bytes": (peak - before) * 1024}))


def measure_memory(key: str, args) -> tuple[float | None, str]:
    """Run :func:`memory_child` in a fresh interpreter; ``(bytes or None, error text)``."""
    command = [sys.executable, str(Path(__file__).resolve()), "--memory-child", key]
    for option in (
        "n",
        "length",
        "k",
        "seed",
        "n_fraction",
        "lower_fraction",
        "loop_subset",
        "counter_subset",
    ):
        command += [f"--{option.replace('_', '-')}", str(getattr(args, option))]
    # A fixed glibc mmap threshold (no dynamic raising) and a low trim threshold: blocks of
    # 64 KiB and more get fresh pages and freed memory goes back to the kernel, so a call cannot
    # hide its allocations in heap memory left over from building the data.
    env = dict(
        os.environ,
        GPU_GENOMICS_DEVICE="cpu",
        MALLOC_MMAP_THRESHOLD_="65536",
        MALLOC_TRIM_THRESHOLD_="65536",
    )
    proc = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return None, (proc.stderr.strip().splitlines() or ["no output"])[-1]
    answer = json.loads(lines[-1])
    if "error" in answer:
        return None, answer["error"]
    return float(answer["peak_increase_bytes"]), ""


# --- formatting ----------------------------------------------------------------------------


def fmt_seconds(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f}"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} us"


def fmt_mib(nbytes: float | None) -> str:
    return "n/a" if nbytes is None else f"{nbytes / 2**20:.1f}"


def print_table(rows: list[dict]) -> None:
    header = (
        "operation",
        "implementation",
        "input",
        "timed on",
        "best",
        "median",
        "bases/s",
        "peak MiB",
        "time/ours",
    )
    body = [
        (
            r["operation"],
            r["implementation"],
            r["input"],
            r["timed_on"],
            fmt_seconds(r["seconds"]),
            fmt_seconds(r["median"]) if r.get("median") is not None else "-",
            fmt_rate(r["bases_per_s"]),
            r.get("memory_text") or fmt_mib(r.get("memory")),
            f"{r['ratio']:.3g}x" if r.get("ratio") is not None else "-",
        )
        for r in rows
    ]
    common.print_table(header, body, left={0, 1, 2, 3})


# --- machine facts -------------------------------------------------------------------------


def print_header(args, *, gpu_ok: bool, gpu_reason: str) -> None:
    import numba

    print("# gpu_genomics benchmark: one-hot encoding and k-mer counting")
    print(f"date:        {datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')}")
    print(f"command:     {shlex.join(sys.orig_argv)}")
    print(f"cpu:         {cpu_model()}")
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    print(
        f"cores:       {os.cpu_count()} logical, {usable} usable; "
        f"numba threads {numba.get_num_threads()}"
    )
    print(f"ram:         {ram_gib()}")
    gpu_line = gpu_text(gpu_ok=gpu_ok, gpu_reason=gpu_reason)
    if gpu_ok:
        import cupy

        gpu_line += f", CUDA runtime {cupy.cuda.runtime.runtimeGetVersion()}"
    print(f"gpu:         {gpu_line}")
    print(
        f"software:    python {platform.python_version()}, numpy {np.__version__}, "
        f"numba {numba.__version__}, gpu_genomics {gg.__version__} (git {git_revision()})"
    )
    print(
        f"data:        {args.n} x {args.length} bp, seed {args.seed}, "
        f"{args.n_fraction:.1%} N, {args.lower_fraction:.1%} lowercase (random positions)"
    )
    print(f"timing:      warm-up 1 run, best of {args.repeats}; k = {args.k}")
    print()


def prefault(mib: int) -> None:
    """Touch and free ``mib`` MiB once, so that the first benchmark to allocate big buffers does
    not pay a virtual machine's first-touch cost for memory the process never had."""
    if mib > 0:
        buffer = np.ones(mib * 2**20, dtype=np.uint8)
        del buffer


# --- CPU section ---------------------------------------------------------------------------
def run_cpu(args, seqs: np.ndarray, strs: list[str]) -> dict:
    n, length = seqs.shape
    total = n * length
    rows: list[dict] = []
    results: dict[str, object] = {}

    def add(key: str, seconds: float, median: float, timed_on: str, ratio_to: str) -> None:
        operation, implementation, form, _ = CASES[key]
        row = {
            "key": key,
            "operation": operation,
            "implementation": implementation,
            "input": form,
            "seconds": seconds,
            "median": median,
            "bases_per_s": total / seconds,
            "timed_on": timed_on,
            "ratio_to": ratio_to,
        }
        rows.append(row)

    print("## CPU", flush=True)
    for key, (_, _, _, subset_option) in CASES.items():
        fn = build_case(key, seqs, strs, args)
        seconds, median, result = best_time(fn, args.repeats)
        ours_key = key.split("/")[0] + "/ours/array"
        timed_on = "all"
        if subset_option is not None:
            subset = min(getattr(args, subset_option), n)
            ours = results[ours_key]
            assert np.array_equal(result, ours[:subset]), f"{key}: output differs from ours"
            seconds *= n / subset
            median *= n / subset
            timed_on = f"{subset} seqs, x{n / subset:.4g}"
        elif key != ours_key:
            assert np.array_equal(result, results[ours_key]), f"{key}: output differs from ours"
        else:
            results[key] = result
        add(key, seconds, median, timed_on, ours_key)
        print(f"  timed {key}: {fmt_seconds(seconds)}", flush=True)

    by_key = {row["key"]: row for row in rows}
    for row in rows:
        row["ratio"] = row["seconds"] / by_key[row["ratio_to"]]["seconds"]
    if args.memory:
        for row in rows:
            row["memory"], error = measure_memory(row["key"], args)
            subset_option = CASES[row["key"]][3]
            if row["memory"] is not None and subset_option is not None:
                row["memory_text"] = f"{fmt_mib(row['memory'])} (subset)"
            if error:
                print(f"  memory of {row['key']} not measured: {error}")
    print()
    print_table(rows)
    print()
    print(
        f"best/median: of {args.repeats} timed runs after one warm-up run. time/ours: this row's "
        "best time divided by ours (cpu) on the uint8 array, same operation (> 1: ours is "
        "faster). SequenceBatch: the batch built once before timing (as_batch, which validates "
        "the letters, is not timed); uint8 array and list of str: conversion included."
    )
    print(
        "timed on 'N seqs, xF': a pure-Python baseline timed on its first N sequences and "
        "multiplied by F = n/N (linear scaling)."
    )
    if args.memory:
        print(
            "peak MiB: extra resident memory (VmHWM - VmRSS before) of one call in a fresh "
            "process, output included, input not; '(subset)' = measured on the subset, not "
            "scaled."
        )
    print(
        "All baselines' outputs were asserted equal to ours (one-hot uint8 (n, L, 4) with all-"
        "zero N rows; int32 (n, 4**k) counts skipping non-ACGT windows)."
    )
    onehot_speedup = (
        by_key["onehot/numpy/array"]["seconds"] / by_key["onehot/ours/array"]["seconds"]
    )
    kmer_speedup = by_key["kmer/counter/list"]["seconds"] / by_key["kmer/ours/array"]["seconds"]
    print()
    print(
        f"target CPU one-hot   >= {ONE_HOT_TARGET:g}x NumPy idiom: {onehot_speedup:.2f}x  "
        f"{verdict(ok=onehot_speedup >= ONE_HOT_TARGET)}"
    )
    print(
        f"target CPU k-mer k={args.k} >= {KMER_TARGET:g}x Counter:    {kmer_speedup:.1f}x  "
        f"{verdict(ok=kmer_speedup >= KMER_TARGET)}"
    )
    print(flush=True)
    return {"rows": by_key, "results": results}


def time_ours_cpu_only(args, seqs: np.ndarray) -> dict:
    """Ours on the CPU (uint8 array) only: the reference for the GPU/CPU ratio with
    ``--device gpu``."""
    rows, results = {}, {}
    for key in ("onehot/ours/array", "onehot/ours/batch", "kmer/ours/array", "kmer/ours/batch"):
        seconds, _, results[key] = best_time(build_case(key, seqs, [], args), args.repeats)
        rows[key] = {"seconds": seconds}
    return {"rows": rows, "results": results}


# --- GPU section ---------------------------------------------------------------------------
def gpu_times(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Best and median CUDA-event time of ``fn`` (events around the whole call, host work
    inside it included), after a synchronised warm-up."""
    import cupy as cp
    from cupyx.profiler import benchmark

    fn()
    cp.cuda.Device().synchronize()
    result = benchmark(fn, n_repeat=repeats, n_warmup=1)
    times = np.asarray(result.gpu_times)[0]
    return float(np.min(times)), float(np.median(times))


def gpu_best(fn: Callable[[], object], repeats: int) -> float:
    """Best CUDA-event time of ``fn`` (see :func:`gpu_times`)."""
    return gpu_times(fn, repeats)[0]


def device_peak(fn: Callable[[], object]) -> float | None:
    """Peak bytes held from CuPy's memory pool during one call of ``fn`` (None: not measured)."""
    import cupy as cp

    class PeakHook(cp.cuda.MemoryHook):
        """Peak bytes held from CuPy's memory pool while the hook is active."""

        name = "BenchPeakHook"

        def __init__(self):
            self.current = 0
            self.peak = 0

        def malloc_postprocess(self, **kwargs):
            self.current += kwargs["mem_size"]
            self.peak = max(self.peak, self.current)

        def free_postprocess(self, **kwargs):
            self.current -= kwargs["mem_size"]

    device = cp.cuda.Device()
    try:
        device.synchronize()
        with PeakHook() as hook:
            out = fn()
            device.synchronize()
            del out
        return float(hook.peak)
    except Exception as exc:
        print(f"  device memory not measured: {type(exc).__name__}: {exc}")
        return None


def run_gpu(args, seqs: np.ndarray, cpu: dict) -> None:
    """The GPU section: outputs checked against the CPU, then timed, diagnosed and reported."""
    import cupy as cp

    n, length = seqs.shape
    total = n * length
    device = cp.cuda.Device()
    best = functools.partial(gpu_best, repeats=args.gpu_repeats)

    print("## GPU", flush=True)
    batch = gg.as_batch(seqs)
    batch.arrays("gpu")  # upload once; the timed calls reuse the device copy
    device.synchronize()
    check_gpu_outputs(batch, args.k, cpu["results"])

    # bandwidth references: a measured device-to-device copy and the theoretical peak
    copy_bytes, copy_bandwidth = copy_bandwidth_measured(cp, best)
    theoretical = theoretical_bandwidth(cp, device.id)

    rows = time_gpu_cases(args, seqs, batch, cpu)
    rows.update(kernel_diagnostics(args, batch, cpu, best, total=total))
    print_gpu_report(
        args,
        rows,
        cpu,
        total=total,
        copy_bytes=copy_bytes,
        copy_bandwidth=copy_bandwidth,
        theoretical=theoretical,
    )


def check_gpu_outputs(batch, k: int, cpu_results: dict) -> None:
    """Assert that one-hot and k-mer counts on the GPU equal ours on the CPU."""
    gpu_onehot = gg.one_hot(batch, device="gpu")
    assert np.array_equal(gg.to_numpy(gpu_onehot), cpu_results["onehot/ours/array"]), (
        "one_hot: GPU output differs from CPU"
    )
    del gpu_onehot
    gpu_kmers = gg.kmer_counts(batch, k, device="gpu")
    assert np.array_equal(gg.to_numpy(gpu_kmers), cpu_results["kmer/ours/array"]), (
        "kmer_counts: GPU output differs from CPU"
    )
    del gpu_kmers


def time_gpu_cases(args, seqs: np.ndarray, batch, cpu: dict) -> dict[str, dict]:
    """One table row per GPU case: whole calls, batch on the GPU and array on the host."""
    total = seqs.size
    # (operation, input form, call, the CPU row it is compared with)
    cases = {
        "onehot/batch": ("one-hot", "batch on GPU", lambda: gg.one_hot(batch, device="gpu"),
                         "onehot/ours/batch"),
        "onehot/array": ("one-hot", "uint8 array on host", lambda: gg.one_hot(seqs, device="gpu"),
                         "onehot/ours/array"),
        "kmer/batch": ("k-mer counts", "batch on GPU",
                       lambda: gg.kmer_counts(batch, args.k, device="gpu"), "kmer/ours/batch"),
        "kmer/array": ("k-mer counts", "uint8 array on host",
                       lambda: gg.kmer_counts(seqs, args.k, device="gpu"), "kmer/ours/array"),
    }  # fmt: skip
    rows: dict[str, dict] = {}
    for key, (operation, form, fn, cpu_key) in cases.items():
        seconds, median = gpu_times(fn, args.gpu_repeats)
        rows[key] = {
            "operation": operation,
            "implementation": "ours (gpu)",
            "input": form,
            "timed_on": "all",
            "seconds": seconds,
            "median": median,
            "bases_per_s": total / seconds,
            "memory": device_peak(fn),
            "ratio": seconds / cpu["rows"][cpu_key]["seconds"],
            "cpu_key": cpu_key,
        }
        print(f"  timed {operation} / {form}: {fmt_seconds(seconds)}", flush=True)
    return rows


def kernel_diagnostics(
    args, batch, cpu: dict, best: Callable[[Callable[[], object]], float], *, total: int
) -> dict[str, dict]:
    """The '... kernel only' rows: the one kernel launch of each call, replayed alone."""
    diagnostics = (
        ("onehot/kernel", "one-hot", "gather kernel only", lambda: gg.one_hot(batch, device="gpu"),
         "onehot/ours/array", "onehot/ours/batch"),
        ("kmer/kernel", "k-mer counts", "counting kernel only",
         lambda: gg.kmer_counts(batch, args.k, device="gpu"), "kmer/ours/array",
         "kmer/ours/batch"),
    )  # fmt: skip
    rows: dict[str, dict] = {}
    for key, operation, implementation, call, expected_key, cpu_key in diagnostics:
        seconds = kernel_only(best, call, cpu["results"][expected_key])
        if seconds is not None:
            rows[key] = {
                "operation": operation,
                "implementation": implementation,
                "input": "all args on GPU",
                "timed_on": "all",
                "seconds": seconds,
                "bases_per_s": total / seconds,
                "memory_text": "-",
                "ratio": seconds / cpu["rows"][cpu_key]["seconds"],
            }
    return rows


def print_gpu_report(
    args,
    rows: dict[str, dict],
    cpu: dict,
    *,
    total: int,
    copy_bytes: int,
    copy_bandwidth: float,
    theoretical: float | None,
) -> None:
    """The GPU table, its notes, the bandwidth figures and the GPU targets."""
    print()
    print_table(list(rows.values()))
    print()
    print(
        "time/ours here: GPU best time divided by ours (cpu) on the same input form in this run "
        "(batch on GPU vs SequenceBatch; array vs array, upload and validation included; "
        "< 1: the GPU is faster)."
    )
    print("peak MiB (GPU): peak bytes held from CuPy's memory pool during one call.")
    print(
        f"GPU times: CUDA events around each whole call, best/median of {args.gpu_repeats} after "
        "a synchronised warm-up (host work inside the call, e.g. small uploads, counts). "
        "'... kernel only' (diagnostic): the single kernel launch inside ours, recorded during a "
        "call and replayed alone with the package's own arguments (output allocation, small "
        "uploads and other host work excluded)."
    )
    print()

    onehot_bytes = total * (1 + 4)  # read n*L bytes, write n*L*4 bytes (uint8 output)
    print(
        f"device-to-device copy: {copy_bytes / 2**20:.0f} MiB, "
        f"{copy_bandwidth / 1e9:.1f} GB/s (read + write)"
    )
    if theoretical is not None:
        print(
            f"theoretical peak:      {theoretical / 1e9:.1f} GB/s "
            "(memoryClockRate x 2 x busWidth / 8)"
        )
    else:
        print("theoretical peak:      not obtainable from the device properties")
    for row in (rows[key] for key in ("onehot/batch", "onehot/kernel") if key in rows):
        achieved = onehot_bytes / row["seconds"]
        line = (
            f"one-hot {row['implementation']} ({row['input']}): {achieved / 1e9:.1f} GB/s "
            f"= {achieved / copy_bandwidth:.1%} of measured copy"
        )
        if theoretical is not None:
            line += f", {achieved / theoretical:.1%} of theoretical"
        print(line)
    print()
    onehot_fraction = onehot_bytes / rows["onehot/batch"]["seconds"] / copy_bandwidth
    kmer_rate = rows["kmer/batch"]["bases_per_s"]
    print(
        f"target GPU one-hot >= {GPU_BANDWIDTH_TARGET:.0%} of memory bandwidth (measured copy; "
        f"whole call, batch on GPU): {onehot_fraction:.1%}  "
        f"{verdict(ok=onehot_fraction >= GPU_BANDWIDTH_TARGET)}"
    )
    print(
        f"target GPU k-mer k={args.k} >= {GPU_KMER_TARGET / 1e9:g} G bases/s (batch on GPU): "
        f"{kmer_rate / 1e9:.2f} G bases/s  {verdict(ok=kmer_rate >= GPU_KMER_TARGET)}"
    )
    for key in ("onehot/batch", "onehot/array", "kmer/batch", "kmer/array"):
        row = rows[key]
        speedup = cpu["rows"][row["cpu_key"]]["seconds"] / row["seconds"]
        print(
            f"GPU vs CPU (ours, {row['operation']}, {row['input']}): "
            f"CPU time / GPU time = {speedup:.1f}x"
        )
    print(flush=True)


def copy_bandwidth_measured(cp, gpu_best) -> tuple[int, float]:
    """``(buffer bytes, bytes/s)`` of ``cupy.copyto`` between two large device buffers,
    counting the bytes read plus the bytes written."""
    free_bytes, _ = cp.cuda.runtime.memGetInfo()
    copy_bytes = int(min(2**30, free_bytes // 4)) // 2**20 * 2**20
    src = cp.ones(copy_bytes, dtype=cp.uint8)
    dst = cp.empty_like(src)
    seconds = gpu_best(functools.partial(cp.copyto, dst, src))
    del src, dst
    cp.get_default_memory_pool().free_all_blocks()
    return copy_bytes, 2 * copy_bytes / seconds


def theoretical_bandwidth(cp, device_id: int) -> float | None:
    """Bytes/s from the memory clock (kHz, double data rate) and bus width (bits)."""
    props = cp.cuda.runtime.getDeviceProperties(device_id)
    clock_khz = props.get("memoryClockRate")
    bus_bits = props.get("memoryBusWidth")
    try:  # CUDA 13 dropped these fields from cudaDeviceProp; the attributes remain
        if not clock_khz:
            clock_khz = cp.cuda.runtime.deviceGetAttribute(36, device_id)  # MemoryClockRate
        if not bus_bits:
            bus_bits = cp.cuda.runtime.deviceGetAttribute(37, device_id)  # GlobalMemoryBusWidth
    except Exception:
        pass
    if not clock_khz or not bus_bits:
        return None
    return float(clock_khz) * 1e3 * 2 * bus_bits / 8


def kernel_only(gpu_best, call: Callable[[], object], expected) -> float | None:
    """Diagnostic: the time of the one CUDA kernel launch inside ``call`` on its own.

    ``call`` runs once with ``gpu_genomics._kernels.launch``, through which the package launches
    every kernel, wrapped to record its arguments (the compiled function, the grid, the kernel
    arguments as converted for the device and the shared memory, exactly as the package built
    them); that launch is then replayed and timed, so only the kernel is. Nothing about the
    kernel's signature is assumed here. Skipped (None) unless exactly one launch was seen and the
    output still equals ``expected`` after the replays.
    """
    from gpu_genomics import _kernels

    original = getattr(_kernels, "launch", None)
    if original is None:
        print("  kernel-only diagnostic skipped: gpu_genomics._kernels has no launch")
        return None
    launches = []

    def record(*args, **kwargs):
        launches.append((args, kwargs))
        return original(*args, **kwargs)

    _kernels.launch = record
    try:
        result = call()
    finally:
        _kernels.launch = original
    if len(launches) != 1:
        print(f"  kernel-only diagnostic skipped: {len(launches)} launches through launch")
        return None
    args, kwargs = launches[0]
    seconds = gpu_best(lambda: original(*args, **kwargs))
    if not np.array_equal(gg.to_numpy(result), expected):
        print("  kernel-only diagnostic skipped: replaying the launch changed the output")
        return None
    return seconds


# --- main ----------------------------------------------------------------------------------
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20_000, help="number of sequences")
    parser.add_argument("--length", type=int, default=1000, help="bases per sequence")
    parser.add_argument("--k", type=int, default=6, help="k-mer size (dense output: k <= 6)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the best is kept")
    parser.add_argument(
        "--device",
        choices=("cpu", "gpu", "both"),
        default="both",
        help="cpu section, gpu section (needs a usable GPU), or both",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-fraction", type=float, default=0.01, help="fraction of N bases")
    parser.add_argument(
        "--lower-fraction", type=float, default=0.05, help="fraction of lowercase bases"
    )
    parser.add_argument(
        "--loop-subset",
        type=int,
        default=1000,
        help="sequences the per-base Python loop is timed on",
    )
    parser.add_argument(
        "--counter-subset",
        type=int,
        default=2000,
        help="sequences the Counter baseline is timed on",
    )
    parser.add_argument("--gpu-repeats", type=int, default=20, help="timed runs per GPU case")
    parser.add_argument(
        "--no-memory",
        dest="memory",
        action="store_false",
        help="skip the per-measurement memory subprocesses",
    )
    parser.add_argument(
        "--prefault-mib", type=int, default=2048, help="MiB to touch once before timing (0: off)"
    )
    parser.add_argument("--memory-child", metavar="CASE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.k > DENSE_MAX_K:
        parser.error(f"--k must be <= {DENSE_MAX_K} (dense counts)")
    if min(args.n, args.length, args.repeats, args.loop_subset, args.counter_subset) < 1:
        parser.error("--n, --length, --repeats and the subsets must be >= 1")
    if args.length < args.k:
        parser.error("--length must be >= --k")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.memory_child:
        memory_child(args.memory_child, args)
        return 0
    gpu_ok, gpu_reason = gg.gpu_status() if args.device != "cpu" else (False, "not requested")
    print_header(args, gpu_ok=gpu_ok, gpu_reason=gpu_reason)
    prefault(args.prefault_mib)
    seqs = make_sequences(args.n, args.length, args.seed, args.n_fraction, args.lower_fraction)
    if args.device in ("cpu", "both"):
        cpu = run_cpu(args, seqs, to_strings(seqs))
    else:
        cpu = time_ours_cpu_only(args, seqs)
    if args.device in ("gpu", "both"):
        if gpu_ok:
            run_gpu(args, seqs, cpu)
        else:
            print(f"## GPU\nskipped: no usable GPU ({gpu_reason}); no GPU figures measured.")
            if args.device == "gpu":
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
