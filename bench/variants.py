"""Benchmark: the ``vcf`` command at scale, file to file, against bio2zarr, cyvcf2, scikit-allel.

Data: msprime (Hudson coalescent, ``--samples`` diploid samples, exactly ``--sites`` sites each;
one ``--sites`` value for every size, or one per size: by default 200,000 and 2,000, so 2e8
genotype calls at each default size), written with tskit's ``ts.write_vcf``
(POS = tskit position + 1), ``--missing`` of the calls turned into ``./.`` (a vectorised pass:
tskit writes every diploid call as the 3 bytes ``a|b`` plus a separator, so a line's sample
fields are an ``(n, 4)`` byte array), bgzipped with ``pysam.BGZFile`` and tabix-indexed
(``pysam.tabix_index``). Cached under ``--cache`` by (samples, sites, seed, missing), with a
``.json`` beside it saying how the file was made and how long each step took.

End to end, VCF file -> Zarr, each tool a fresh subprocess, run as users run it (progress bars
off: ours' ``--quiet``, bio2zarr's ``-Q``; interpreter
start-up and imports included; after one untimed warm-up run of each on a tiny file, so that
on-disk compile caches and the page cache are warm; best of ``--repeats``, tools interleaved):

* ``ours``: ``python -m gpu_genomics vcf IN -o OUT.zarr --quiet`` (in-process);
* ``ours-w1``, ``ours-w2``: the same with ``--workers 1`` / ``--workers 2``, when
  ``gpu-genomics vcf --help`` lists ``--workers`` (otherwise skipped, and said so);
* ``vcf2zarr``: ``vcf2zarr convert -Q IN OUT`` (bio2zarr, single process, its default);
* ``vcf2zarr-p2``: ``vcf2zarr explode -Q -p 2 IN ICF`` then ``vcf2zarr encode -Q -p 2 ICF OUT``
  (the two steps' seconds summed, peaks the larger of the two);
* ``cyvcf2``: a minimal converter (this script, ``--child cyvcf2``): ``VCF(path)``, per record
  ``v.genotype.array()`` into an int8 ``call_genotype`` block written to Zarr every
  ``--chunks`` variants, with ``variant_position``;
* ``allel``: ``allel.vcf_to_zarr(path, out, fields=[calldata/GT, variants/POS, CHROM, ID, REF,
  ALT, QUAL, FILTER_PASS])`` (this script, ``--child allel``). allel 1.3's default
  ``compressor="default"`` is refused by zarr 3, so it gets the compressor allel documents as
  its default (Blosc zstd level 1, bit shuffle) and a Zarr v2 store, and ``--chunks`` as its
  ``chunk_length, chunk_width`` (its default 65,536-variant chunk would hold 13 GB of GT at
  100,000 samples).

Peak memory: the process tree is polled with psutil every 20 ms; "largest" is the largest RSS
of any one process (the polled maximum; not the kernel's ``ru_maxrss``, which counts the pages
a child shares with this process between fork and exec), "tree" the largest polled sum over the tree
(at least "largest"; pages shared between processes counted in each). Both are the maxima over
the repeats; "procs" the most processes seen at once (bio2zarr's include multiprocessing's
resource tracker).

Also (``--workload plink2``: the issue's 1,000 and 5,000 samples x 32,000 sites):

* ``ours-h5``: ours writing HDF5 (``-o OUT.h5``) instead of Zarr;
* ``plink2-pgen``: ``plink2 --vcf IN --make-pgen --out X`` (Debian's ``plink2``, its default
  threads: every CPU);
* ``plink2-freq``: ``plink2 --vcf IN --freq --missing --out X`` (``.afreq``, ``.vmiss``,
  ``.smiss``);
* the start-up floor: ours on the warm-up file (50 samples x 300 sites), best of
  ``--repeats``: what interpreter start-up, imports and numba's cache loading cost any run.

Check: every tool's ``call_genotype`` (allel's ``calldata/GT``) and positions are compared with
ours block by block (with vcf2zarr's exactly, -1 missing and -2 fill; cyvcf2's and allel's with
any negative allele read as missing). plink2 writes no ``call_genotype``: its ``.afreq``
(ALT_FREQS summed over the ALTs, times OBS_CT: ALT allele counts), ``.vmiss`` and ``.smiss``
(MISSING_CT) are compared with ours' ``dosage_allele_frequency``, ``variant_call_rate`` and
``sample_missing_rate`` as integer counts; the ``.pgen`` the same way through an untimed
``plink2 --pfile X --freq --missing``. Any difference exits with status 1 after the tables.

    python bench/variants.py                                  # 1,000 and 100,000 samples
    python bench/variants.py --samples 200,1000 --sites 2000 --repeats 1   # smoke test
    python bench/variants.py --tools ours,vcf2zarr --cache /tmp/vcf-cache --keep
    python bench/variants.py --workload plink2 --cache /tmp/vcf-cache  # against plink2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_model, fmt_rate, git_revision, gpu_text, print_table, ram_gib

TOOLS = ("ours", "ours-w1", "ours-w2", "ours-h5", "ours-base", "ours-h5-base", "vcf2zarr",
         "vcf2zarr-p2", "cyvcf2", "allel", "plink2-pgen", "plink2-freq")  # fmt: skip
OURS = ("ours", "ours-w1", "ours-w2", "ours-h5", "ours-base", "ours-h5-base")
#: ours from the ``--baseline`` source tree (run with that folder as the working directory)
BASELINE = ("ours-base", "ours-h5-base")
PLINK2 = ("plink2-pgen", "plink2-freq")
#: ``--workload``: (samples, sites, tools) of each preset (None: the command-line options)
WORKLOADS = {
    "default": None,
    "plink2": ("1000,5000", "32000", "ours,ours-h5,plink2-pgen,plink2-freq"),
}
POLL_S = 0.02
#: (samples, sites) of the untimed warm-up file
WARMUP = (50, 300)
#: msprime parameters: theta = 4 N mu per base
POPULATION, MUTATION, RECOMBINATION = 10_000, 1e-8, 1e-8


# --- data -------------------------------------------------------------------------------------


def data_path(cache: Path, n_samples: int, n_sites: int, seed: int, missing: float) -> Path:
    return cache / f"msprime-{n_samples}x{n_sites}-seed{seed}-missing{missing:g}.vcf.gz"


def simulate_ts(n_samples: int, n_sites: int, seed: int, steps: dict[str, float]):
    """A tree sequence with exactly ``n_sites`` sites, and how it was made (text)."""
    import msprime

    # Watterson: E[sites] = theta * L * a_n; a little more, then the extra sites are dropped
    a_n = float(np.sum(1.0 / np.arange(1, 2 * n_samples)))
    length = float(int(1.2 * n_sites / (4 * POPULATION * MUTATION * a_n)) + 1000)
    attempts = 0
    while True:
        attempts += 1
        started = time.perf_counter()
        ts = msprime.sim_ancestry(
            samples=n_samples,
            ploidy=2,
            sequence_length=length,
            recombination_rate=RECOMBINATION,
            population_size=POPULATION,
            random_seed=seed,
        )
        steps["sim_ancestry"] = steps.get("sim_ancestry", 0) + time.perf_counter() - started
        started = time.perf_counter()
        ts = msprime.sim_mutations(ts, rate=MUTATION, random_seed=seed)
        steps["sim_mutations"] = steps.get("sim_mutations", 0) + time.perf_counter() - started
        if ts.num_sites >= n_sites:
            break
        length = float(int(length * 1.3 * n_sites / max(ts.num_sites, 1)))
    how = (
        f"msprime {msprime.__version__} sim_ancestry (Hudson, N={POPULATION}, "
        f"r={RECOMBINATION}, {length:.0f} bp, {ts.num_trees} trees, {attempts} attempt(s)) + "
        f"sim_mutations (mu={MUTATION}, JC69; {ts.num_sites} sites, first {n_sites} kept)"
    )
    return ts.delete_sites(np.arange(n_sites, ts.num_sites)), how


def simulate(path: Path, n_samples: int, n_sites: int, missing: float, seed: int) -> dict:
    """Simulate, write ``path`` (+ ``.tbi``); return how (also written as ``path.json``)."""
    import pysam
    import tskit

    steps: dict[str, float] = {}
    ts, how = simulate_ts(n_samples, n_sites, seed, steps)
    path.parent.mkdir(parents=True, exist_ok=True)
    plain = path.with_name(path.name.removesuffix(".gz") + ".plain")
    started = time.perf_counter()
    with open(plain, "w") as handle:
        ts.write_vcf(handle, position_transform=lambda x: np.asarray(x) + 1)
    steps["write_vcf"] = time.perf_counter() - started
    plain_bytes = plain.stat().st_size

    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    n_missing = n_slow = 0
    with open(plain, "rb") as src, pysam.BGZFile(str(path), "wb") as dst:
        for line in src:
            if line.startswith(b"#"):
                dst.write(line)
                continue
            mask = rng.random(n_samples) < missing
            n_missing += int(mask.sum())
            fixed = _mask_fixed_width(line, mask)
            if fixed is None:  # not 'a|b' everywhere: split the fields (not seen from tskit)
                n_slow += 1
                fields = line.rstrip(b"\n").split(b"\t")
                for j in np.flatnonzero(mask):
                    fields[9 + j] = b"./."
                fixed = b"\t".join(fields) + b"\n"
            dst.write(fixed)
    plain.unlink()
    steps["missing+bgzip"] = time.perf_counter() - started
    started = time.perf_counter()
    pysam.tabix_index(str(path), preset="vcf", force=True)
    steps["tabix_index"] = time.perf_counter() - started
    meta = {
        "samples": n_samples,
        "sites": n_sites,
        "seed": seed,
        "missing": missing,
        "missing_calls": n_missing,
        "how": (
            f"{how}; tskit {tskit.__version__} write_vcf; './.' injected "
            f"{'vectorised' if n_slow == 0 else f'(per field on {n_slow} lines)'}; "
            f"pysam {pysam.__version__} BGZFile + tabix_index"
        ),
        "seconds": steps,
        "plain_bytes": plain_bytes,
        "bgzip_bytes": path.stat().st_size,
        "made": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
    }
    path.with_name(path.name + ".json").write_text(json.dumps(meta, indent=1))
    return meta


def _mask_fixed_width(line: bytes, mask: np.ndarray) -> bytes | None:
    """``line`` with the masked samples' ``a|b`` set to ``./.``; None if not fixed width."""
    start = -1
    for _ in range(9):
        start = line.find(b"\t", start + 1)
    start += 1
    n = len(mask)
    if start <= 0 or len(line) - start != 4 * n:
        return None
    buffer = bytearray(line)
    calls = np.frombuffer(buffer, dtype=np.uint8, count=4 * n, offset=start).reshape(n, 4)
    separators = calls[:, 3]
    if not (
        np.all(calls[:, 1] == ord("|"))
        and np.all(separators[:-1] == ord("\t"))
        and separators[-1] == ord("\n")
    ):
        return None
    calls[mask, :3] = np.frombuffer(b"./.", dtype=np.uint8)
    return bytes(buffer)


def load_or_simulate(args, n_samples: int, n_sites: int) -> tuple[Path, dict, str]:
    path = data_path(args.cache, n_samples, n_sites, args.seed, args.missing)
    meta_path = path.with_name(path.name + ".json")
    tbi = path.with_name(path.name + ".tbi")
    if path.exists() and tbi.exists() and meta_path.exists():
        return path, json.loads(meta_path.read_text()), "cached"
    started = time.perf_counter()
    meta = simulate(path, n_samples, n_sites, args.missing, args.seed)
    return path, meta, f"simulated now in {time.perf_counter() - started:.1f} s"


# --- the two converters run as children of this script -----------------------------------------


def convert_cyvcf2(path: str, out: str, chunks: tuple[int, int]) -> None:
    """Minimal VCF -> Zarr with cyvcf2: ``call_genotype`` (int8) and ``variant_position``."""
    import zarr
    from cyvcf2 import VCF

    vcf = VCF(path)
    n = len(vcf.samples)
    v_chunk, s_chunk = chunks
    root = zarr.open_group(out, mode="w")
    gt = root.create_array(
        "call_genotype", shape=(0, n, 2), chunks=(v_chunk, min(s_chunk, n), 2), dtype="int8"
    )
    pos = root.create_array("variant_position", shape=(0,), chunks=(v_chunk,), dtype="int32")
    block = np.empty((v_chunk, n, 2), dtype=np.int8)
    positions = np.empty(v_chunk, dtype=np.int32)
    k = 0
    for variant in vcf:
        block[k] = variant.genotype.array()[:, :2]  # last column: phasing
        positions[k] = variant.POS
        k += 1
        if k == v_chunk:
            gt.append(block, axis=0)
            pos.append(positions, axis=0)
            k = 0
    if k:
        gt.append(block[:k], axis=0)
        pos.append(positions[:k], axis=0)


ALLEL_FIELDS = [
    "calldata/GT", "variants/POS", "variants/CHROM", "variants/ID", "variants/REF",
    "variants/ALT", "variants/QUAL", "variants/FILTER_PASS",
]  # fmt: skip


def convert_allel(path: str, out: str, chunks: tuple[int, int]) -> None:
    import allel
    import numcodecs
    import zarr

    zarr.config.set({"default_zarr_format": 2})
    compressor = numcodecs.Blosc(cname="zstd", clevel=1, shuffle=numcodecs.Blosc.BITSHUFFLE)
    allel.vcf_to_zarr(
        path, out, fields=ALLEL_FIELDS, compressor=compressor, overwrite=True,
        chunk_length=chunks[0], chunk_width=chunks[1],
    )  # fmt: skip


CHILDREN = {"cyvcf2": convert_cyvcf2, "allel": convert_allel}


# --- running a tool and watching its memory ---------------------------------------------------


def run_tracked(command: list[str], log_path: Path, cwd: Path | None = None) -> dict:
    """Run ``command`` (in ``cwd``); its wall seconds, exit code and peak RSS (largest
    process, tree sum)."""
    import psutil

    with open(log_path, "ab") as log:
        log.write(f"$ {shlex.join(command)}\n".encode())
        log.flush()
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=cwd)
        done = threading.Event()
        result: dict = {}

        def wait() -> None:  # wait4: the exit time and the kernel's ru_maxrss, without polling
            _, status, usage = os.wait4(proc.pid, 0)
            result["seconds"] = time.perf_counter() - started
            result["rc"] = os.waitstatus_to_exitcode(status)
            result["ru_maxrss"] = usage.ru_maxrss * 1024
            done.set()

        waiter = threading.Thread(target=wait, daemon=True)
        waiter.start()
        try:
            root = psutil.Process(proc.pid)
        except psutil.Error:  # already gone
            done.wait()
        largest = tree = n_procs = 0
        while not done.is_set():
            try:
                members = [root, *root.children(recursive=True)]
            except psutil.Error:
                members = []
            sizes = []
            for member in members:
                try:
                    sizes.append(member.memory_info().rss)
                except psutil.Error:
                    pass
            if sizes and not done.is_set():
                largest, tree = max(largest, *sizes), max(tree, sum(sizes))
                n_procs = max(n_procs, len(sizes))
            done.wait(POLL_S)
        waiter.join()
        proc.returncode = result["rc"]
    # not the kernel's ru_maxrss: it counts the pages a child shares with this (large) process
    # between fork and exec, so after a check had loaded arrays it said every tool peaked at
    # this process's size
    result.pop("ru_maxrss")
    # the tree's peak is at least its largest process's (a poll can miss the very peak)
    result.update(largest=largest, tree=max(tree, largest), procs=n_procs)
    return result


def commands(tool: str, path: Path, out: Path, *, work: Path, args, features: dict) -> list[list]:
    """The command line(s) of one tool run (two for vcf2zarr-p2)."""
    chunks = args.chunks
    if tool in PLINK2:
        plink2 = shutil.which("plink2") or "plink2"
        what = ["--make-pgen"] if tool == "plink2-pgen" else ["--freq", "--missing"]
        return [[plink2, "--vcf", str(path), *what, "--out", str(out)]]
    if tool in OURS:
        command = [sys.executable, "-m", "gpu_genomics", "vcf", str(path), "-o", str(out),
                   "--quiet"]  # fmt: skip
        if tool.startswith("ours-w"):
            command += ["--workers", tool.removeprefix("ours-w")]
        if args.device:
            command += ["--device", args.device]
        if args.chunks_given and features["chunk_sizes"]:
            command += ["--variants-chunk-size", str(chunks[0]),
                        "--samples-chunk-size", str(chunks[1])]  # fmt: skip
        return [command + shlex.split(args.ours_args)]
    vcf2zarr = shutil.which("vcf2zarr", path=str(Path(sys.executable).parent)) or "vcf2zarr"
    zarr_chunks = ["-l", str(chunks[0]), "-w", str(chunks[1])] if args.chunks_given else []
    if tool == "vcf2zarr":
        return [[vcf2zarr, "convert", "-Q", *zarr_chunks, str(path), str(out)]]
    if tool == "vcf2zarr-p2":
        icf = work / f"{out.stem}.icf"
        return [
            [vcf2zarr, "explode", "-Q", "-f", "-p", "2", str(path), str(icf)],
            [vcf2zarr, "encode", "-Q", "-f", "-p", "2", *zarr_chunks, str(icf), str(out)],
        ]
    chunk_text = f"{chunks[0]},{chunks[1]}"
    return [[sys.executable, __file__, "--child", tool, str(path), str(out), "--chunks",
             chunk_text]]  # fmt: skip


def output_path(work: Path, tool: str) -> Path:
    """Where ``tool`` writes: a Zarr folder, an HDF5 file, or plink2's ``--out`` prefix."""
    if tool in PLINK2:
        return work / tool
    return work / f"{tool}.{'h5' if tool.startswith('ours-h5') else 'zarr'}"


def _remove_output(out: Path) -> None:
    """Remove a previous run's output (and plink2's ``prefix.*`` files; not the bench's log)."""
    if out.is_dir():
        shutil.rmtree(out, ignore_errors=True)
    elif out.exists():
        out.unlink()
    for file in out.parent.glob(f"{out.name}.*"):
        if file.is_file() and not file.name.endswith(".bench-log"):
            file.unlink()


def measure(tool: str, path: Path, out: Path, *, work: Path, args, features: dict) -> dict:
    _remove_output(out)
    log_path = work / f"{out.name}.bench-log"  # not plink2's prefix.log
    log_path.unlink(missing_ok=True)
    lines = commands(tool, path, out, work=work, args=args, features=features)
    cwd = args.baseline if tool in BASELINE else None  # `-m gpu_genomics` from that tree
    steps = [run_tracked(c, log_path, cwd) for c in lines]
    for step in steps:
        if step["rc"] != 0:
            tail = log_path.read_text(errors="replace")[-3000:]
            raise SystemExit(f"{tool} failed (exit {step['rc']}) on {path}:\n{tail}")
    if tool == "vcf2zarr-p2":
        icf = work / f"{out.stem}.icf"
        steps[0]["icf_bytes"] = _folder_bytes(icf)
        shutil.rmtree(icf, ignore_errors=True)
    return {
        "seconds": sum(s["seconds"] for s in steps),
        "steps": [s["seconds"] for s in steps],
        "largest": max(s["largest"] for s in steps),
        "tree": max(s["tree"] for s in steps),
        "procs": max(s["procs"] for s in steps),
        "out_bytes": _folder_bytes(out),
        **({"icf_bytes": steps[0]["icf_bytes"]} if "icf_bytes" in steps[0] else {}),
    }


def _folder_bytes(folder: Path) -> int:
    """Bytes of a folder, a file, or (plink2's ``--out`` prefix) the files it names."""
    if folder.is_file():
        return folder.stat().st_size
    if not folder.exists():
        return sum(
            f.stat().st_size
            for f in folder.parent.glob(f"{folder.name}.*")
            if f.suffix != ".log" and not f.name.endswith(".bench-log")
        )
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


# --- checking the outputs ---------------------------------------------------------------------


def _open(out: Path):
    """Our output, HDF5 or Zarr, as a mapping of arrays."""
    if out.suffix == ".h5":
        import h5py

        return h5py.File(out, "r")
    import zarr

    return zarr.open_group(str(out), mode="r")


def _arrays(tool: str, out: Path):
    root = _open(out)
    if tool == "allel":
        return root["calldata/GT"], root["variants/POS"]
    return root["call_genotype"], root["variant_position"]


def check_outputs(reference: str, outputs: dict[str, Path]) -> tuple[bool, list[str], tuple]:
    """Compare every output's genotypes and positions with ``reference``'s, block by block."""
    ref_gt, ref_pos = _arrays(reference, outputs[reference])
    ref_positions = ref_pos[:]
    shape = tuple(ref_gt.shape)
    block = max(1, 2**27 // max(1, shape[1] * shape[2]))
    lines, ok = [], True
    missing = 0
    for start in range(0, shape[0], block):
        missing += int((ref_gt[start : start + block] == -1).all(axis=-1).sum())
    lines.append(
        f"{reference}: call_genotype {shape}, {missing} missing calls of "
        f"{shape[0] * shape[1]} ({missing / max(1, shape[0] * shape[1]):.2%})"
    )
    for tool, out in outputs.items():
        if tool == reference:
            continue
        if tool in PLINK2:
            good, text = check_plink2(tool, out, outputs[reference])
            ok &= good
            lines += text
            continue
        gt, pos = _arrays(tool, out)
        exact = tool in OURS or tool.startswith("vcf2zarr")
        if tuple(gt.shape) != shape:
            ok = False
            lines.append(f"{tool} vs {reference}: FAIL, shape {tuple(gt.shape)} != {shape}")
            continue
        same_pos = bool(np.array_equal(pos[:], ref_positions))
        differ = 0
        for start in range(0, shape[0], block):
            a = ref_gt[start : start + block]
            b = gt[start : start + block]
            if not exact:  # cyvcf2, allel: any negative allele is a missing one
                b = np.where(b < 0, -1, b).astype(a.dtype)
                a = np.where(a < 0, -1, a)
            differ += int((a != b).any(axis=-1).sum())
        good = same_pos and differ == 0
        ok &= good
        rule = "exact" if exact else "negative = missing"
        lines.append(
            f"{tool} vs {reference}: {'PASS' if good else 'FAIL'} (call_genotype {rule}: "
            f"{differ} calls differ; positions equal: {same_pos})"
        )
    return ok, lines, shape


def _plink_table(path: Path) -> dict[str, np.ndarray]:
    """A plink2 text table (``#`` header line) as columns of strings."""
    lines = path.read_text().splitlines()
    header = lines[0].lstrip("#").split("\t")
    rows = [line.split("\t") for line in lines[1:]]
    return {name: np.array([row[k] for row in rows]) for k, name in enumerate(header)}


def _plink_counts(prefix: Path) -> dict[str, np.ndarray]:
    """Integer counts from plink2's ``.afreq``, ``.vmiss`` and ``.smiss`` at ``prefix``."""
    afreq = _plink_table(prefix.with_name(prefix.name + ".afreq"))
    vmiss = _plink_table(prefix.with_name(prefix.name + ".vmiss"))
    smiss = _plink_table(prefix.with_name(prefix.name + ".smiss"))
    obs = afreq["OBS_CT"].astype(np.int64)
    alt_freq = np.array([sum(float(x) for x in v.split(",")) for v in afreq["ALT_FREQS"]])
    return {
        "alt_count": np.rint(alt_freq * obs).astype(np.int64),
        "called_alleles": obs,
        "variant_missing": vmiss["MISSING_CT"].astype(np.int64),
        "sample_missing": smiss["MISSING_CT"].astype(np.int64),
    }


def check_plink2(tool: str, out: Path, ours: Path) -> tuple[bool, list[str]]:
    """plink2's counts (``.afreq``/``.vmiss``/``.smiss``; the ``.pgen`` through an untimed
    ``plink2 --pfile --freq --missing``) against ours' frequencies and missing rates."""
    prefix = out
    if tool == "plink2-pgen":
        prefix = out.with_name(out.name + "-stats")
        subprocess.run(
            [shutil.which("plink2") or "plink2", "--pfile", str(out), "--freq", "--missing",
             "--out", str(prefix)],
            check=True, capture_output=True,
        )  # fmt: skip
    theirs = _plink_counts(prefix)
    root = _open(ours)
    n_variants, n_samples = root["call_genotype"].shape[:2]
    af = np.asarray(root["dosage_allele_frequency"][:])
    call_rate = np.asarray(root["variant_call_rate"][:])
    sample_rate = np.asarray(root["sample_missing_rate"][:])
    variant_missing = np.rint((1.0 - call_rate) * n_samples).astype(np.int64)
    called = theirs["called_alleles"]
    checks = {
        "variants": len(called) == n_variants,
        "variant missing": np.array_equal(theirs["variant_missing"], variant_missing),
        "sample missing": np.array_equal(
            theirs["sample_missing"], np.rint(sample_rate * n_variants).astype(np.int64)
        ),
        "called alleles": np.array_equal(called, 2 * (n_samples - variant_missing)),
        "ALT counts": np.array_equal(
            theirs["alt_count"], np.rint(np.nan_to_num(af) * called).astype(np.int64)
        ),
    }
    good = all(checks.values())
    what = ", ".join(f"{name} {'equal' if same else 'DIFFER'}" for name, same in checks.items())
    source = ".pgen via --pfile --freq --missing" if tool == "plink2-pgen" else "its outputs"
    return good, [f"{tool} vs ours: {'PASS' if good else 'FAIL'} ({source}; {what})"]


# --- report -----------------------------------------------------------------------------------


def _mib(n_bytes: float, digits: int = 0) -> str:
    return f"{n_bytes / 2**20:,.{digits}f}"


def print_size_table(n_samples: int, shape: tuple, best: dict[str, dict], args) -> None:
    tools = list(best)
    base = next((t for t in OURS if t in best), tools[0])
    n_variants, n_calls = shape[0], shape[0] * shape[1]
    body = []
    for tool in tools:
        r = best[tool]
        seconds = r["seconds"]
        steps = " + ".join(f"{s:.2f}" for s in r["steps"]) if len(r["steps"]) > 1 else ""
        body.append(
            [
                tool,
                f"{seconds:.2f}" + (f" ({steps})" if steps else ""),
                fmt_rate(n_variants / seconds),
                fmt_rate(n_calls / seconds),
                _mib(r["largest"]),
                _mib(r["tree"]),
                r["procs"],
                _mib(r["out_bytes"], 1),
                f"{seconds / best[base]['seconds']:.2f}",
            ]
        )
    print(
        f"\nend to end, VCF file -> output file, {n_samples} samples x {n_variants} variants = "
        f"{n_calls:.3g} calls (best of {args.repeats}, fresh process each):"
    )
    print_table(
        ["tool", "seconds", "variants/s", "calls/s", "peak RSS MiB", "tree RSS MiB", "procs",
         "output MiB", f"time / {base}"],
        body,
        left={0},
    )  # fmt: skip
    for tool in (t for t in tools if t in OURS):
        ratios = [f"{best[tool]['seconds'] / best[p]['seconds']:.2f}x {p}" for p in PLINK2
                  if p in best]  # fmt: skip
        if ratios:
            print(f"{tool}: time / plink2 = {', '.join(ratios)} (target: at most 2x)")
    if "vcf2zarr-p2" in best and "icf_bytes" in best["vcf2zarr-p2"]:
        print(
            f"vcf2zarr-p2: seconds = explode + encode; intermediate ICF "
            f"{_mib(best['vcf2zarr-p2']['icf_bytes'], 1)} MiB (deleted)"
        )


def print_scaling(results: list[tuple[int, tuple, dict]]) -> None:
    (n0, shape0, small), (n1, shape1, large) = results[0], results[-1]
    calls0, calls1 = shape0[0] * shape0[1], shape1[0] * shape1[1]
    print(
        f"\nscaling, {n0} -> {n1} samples (samples x{n1 / n0:.3g}, variants "
        f"x{shape1[0] / shape0[0]:.3g}, calls x{calls1 / calls0:.3g}):"
    )
    for tool in large:
        if tool not in small:
            continue
        a, b = small[tool], large[tool]
        rate = (calls1 / b["seconds"]) / (calls0 / a["seconds"])
        print(
            f"  {tool:12s} time x{b['seconds'] / a['seconds']:.3g} (calls/s x{rate:.3g}), "
            f"peak RSS x{b['largest'] / a['largest']:.3g} "
            f"({_mib(a['largest'])} -> {_mib(b['largest'])} MiB), "
            f"tree RSS x{b['tree'] / max(a['tree'], 1):.3g}"
        )


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    parts = [f"python {platform.python_version()}"]
    for name in ("numpy", "numba", "zarr", "h5py", "bio2zarr", "cyvcf2", "scikit-allel",
                 "msprime", "tskit", "pysam", "psutil", "isal"):  # fmt: skip
        try:
            parts.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            parts.append(f"{name} missing")
    plink2 = shutil.which("plink2")
    if plink2:
        head = subprocess.run(
            [plink2, "--version"], check=False, capture_output=True, text=True
        ).stdout
        parts.append(head.strip().splitlines()[0] if head.strip() else "plink2")
    else:
        parts.append("plink2 missing")
    return ", ".join(parts)


def ours_features() -> dict:
    help_text = subprocess.run(
        [sys.executable, "-m", "gpu_genomics", "vcf", "--help"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return {
        "workers": "--workers" in help_text,
        "chunk_sizes": "--variants-chunk-size" in help_text and "--samples-chunk-size" in help_text,
    }


def _int_list(text: str) -> list[int]:
    return [int(float(x)) for x in text.split(",") if x.strip()]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workload",
        choices=sorted(WORKLOADS),
        default="default",
        help="plink2: the issue's sizes (1,000 and 5,000 samples x 32,000 sites) and tools "
        "(ours to Zarr and HDF5, plink2 --make-pgen and --freq --missing); overrides "
        "--samples, --sites and --tools",
    )
    parser.add_argument("--samples", default="1000,100000", help="diploid sample counts")
    parser.add_argument(
        "--sites",
        default="200000,2000",
        help="sites per size: one value for all, or one per --samples value "
        "(default: 2e8 calls at each default size)",
    )
    parser.add_argument("--missing", type=float, default=0.01, help="fraction of calls ./.")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="runs per tool; best kept")
    parser.add_argument("--tools", default=",".join(TOOLS), help=f"subset of {','.join(TOOLS)}")
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        metavar="DIR",
        help="a source tree holding another gpu_genomics (e.g. `git archive REV gpu_genomics "
        "kernels | tar -x -C DIR`): also run ours from it, as ours-base and ours-h5-base, "
        "interleaved with the rest (the before and after on one machine at one time)",
    )
    parser.add_argument("--cache", type=Path, default=Path(".bench-cache/variants"))
    parser.add_argument("--keep", action="store_true", help="keep the outputs (under --cache)")
    parser.add_argument(
        "--chunks",
        default=None,
        metavar="V,S",
        help="Zarr chunks (variants, samples): cyvcf2's and allel's always (default 1000,10000, "
        "vcf2zarr's default); when given, also vcf2zarr's -l/-w and ours' "
        "--variants-chunk-size/--samples-chunk-size (where ours has them)",
    )
    parser.add_argument("--device", choices=["auto", "cpu", "gpu"], help="ours' --device")
    parser.add_argument("--ours-args", default="", help="extra options for every ours run")
    parser.add_argument(
        "--no-warmup",
        dest="warmup",
        action="store_false",
        help="skip the untimed run of every tool on a tiny file before timing",
    )
    parser.add_argument("--child", nargs=3, metavar=("TOOL", "IN", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.chunks_given = args.chunks is not None
    args.chunks = tuple(_int_list(args.chunks or "1000,10000"))
    if len(args.chunks) != 2:
        parser.error("--chunks: two integers, V,S")
    if args.child:
        return args
    preset = WORKLOADS[args.workload]
    if preset is not None:
        args.samples, args.sites, args.tools = preset
    args.samples = _int_list(args.samples)
    sites = _int_list(args.sites)
    if len(sites) == 1:
        sites = sites * len(args.samples)
    if len(sites) != len(args.samples):
        parser.error("--sites: one value, or one per --samples value")
    args.sites = sites
    args.tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    if args.baseline is not None:
        args.baseline = args.baseline.resolve()
        args.tools += [f"{t}-base" for t in ("ours", "ours-h5") if t in args.tools]
    else:
        args.tools = [t for t in args.tools if t not in BASELINE]
    unknown = set(args.tools) - set(TOOLS)
    if unknown:
        parser.error(f"--tools: unknown {sorted(unknown)}; choose from {','.join(TOOLS)}")
    return args


def print_header(args, tools: list[str], skipped: list[str], features: dict) -> None:
    if args.device in (None, "auto"):
        from gpu_genomics.device import gpu_status

        gpu_ok, gpu_reason = gpu_status()
    else:
        gpu_ok, gpu_reason = (False, "not requested") if args.device == "cpu" else (True, "")
    print("# bench/variants.py")
    print(f"date      {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; revision {git_revision()}")
    print(f"machine   {cpu_model()}, {os.cpu_count()} CPUs, {ram_gib()} RAM")
    print(f"gpu       {gpu_text(gpu_ok=gpu_ok, gpu_reason=gpu_reason)}")
    print(f"software  {versions()}")
    print(f"command   python bench/{Path(__file__).name} {shlex.join(sys.argv[1:])}")
    print(f"tools     {', '.join(tools)}")
    if skipped:
        print(f"skipped   {', '.join(skipped)}: `gpu-genomics vcf --help` lists no --workers")
    if args.baseline is not None:
        print(f"baseline  ours-base, ours-h5-base: python -m gpu_genomics from {args.baseline}")
    chunked = args.chunks_given and features["chunk_sizes"]
    print(
        f"ours      python -m gpu_genomics vcf IN -o OUT.zarr (ours-h5: OUT.h5) --quiet"
        f"{' --device ' + args.device if args.device else ''}"
        f"{' ' + args.ours_args if args.ours_args else ''}; "
        f"chunk options {'passed' if chunked else 'not passed'}"
    )
    vcf2zarr_chunks = "also vcf2zarr -l/-w" if args.chunks_given else "vcf2zarr its default"
    print(
        f"chunks    {args.chunks[0]} variants x {args.chunks[1]} samples for cyvcf2 and allel; "
        f"{vcf2zarr_chunks}"
    )


def run_size(args, tools: list[str], features: dict, n_samples: int, n_sites: int):
    """Data, every tool's best run and the output check for one size; ``(ok, shape, best)``."""
    path, meta, origin = load_or_simulate(args, n_samples, n_sites)
    steps = ", ".join(f"{k} {v:.1f} s" for k, v in meta["seconds"].items())
    print(
        f"\ndata      {path} ({origin}; made {meta['made']}): {n_samples} samples x "
        f"{n_sites} sites, {meta['missing']:.1%} calls ./., "
        f"{meta['plain_bytes'] / 2**20:,.1f} MiB VCF text -> "
        f"{meta['bgzip_bytes'] / 2**20:,.1f} MiB bgzip"
    )
    print(f"how       {meta['how']}")
    print(f"took      {steps}")
    work = args.cache / f"out-{n_samples}x{n_sites}"
    work.mkdir(parents=True, exist_ok=True)
    outputs = {t: output_path(work, t) for t in tools}
    best: dict[str, dict] = {}
    for _ in range(args.repeats):
        for tool in tools:  # interleaved, so drift on a shared machine hits all alike
            r = measure(tool, path, outputs[tool], work=work, args=args, features=features)
            if tool not in best:
                best[tool] = r
                continue
            peaks = {k: max(r[k], best[tool][k]) for k in ("largest", "tree", "procs")}
            if r["seconds"] < best[tool]["seconds"]:
                best[tool] = r
            best[tool].update(peaks)
    reference = next((t for t in OURS if t in tools), tools[0])
    ok, lines, shape = check_outputs(reference, outputs)
    print_size_table(n_samples, shape, best, args)
    for line in lines:
        print(f"check     {line}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return ok, shape, best


def warm_up(args, tools: list[str], features: dict) -> None:
    """Every tool once, untimed, on a tiny file: compiled caches, .pyc, page cache all warm."""
    path, _, _ = load_or_simulate(args, WARMUP[0], WARMUP[1])
    work = args.cache / "warmup"
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for tool in tools:
        measure(tool, path, output_path(work, tool), work=work, args=args, features=features)
    print(
        f"warm-up   every tool once on {WARMUP[0]} samples x {WARMUP[1]} sites, untimed "
        f"({time.perf_counter() - started:.1f} s)"
    )
    for tool in (t for t in ("ours", "ours-h5", *BASELINE) if t in tools):  # start-up floor
        runs = [measure(tool, path, output_path(work, tool), work=work, args=args,
                        features=features) for _ in range(args.repeats)]  # fmt: skip
        fastest = min(runs, key=lambda r: r["seconds"])
        print(
            f"floor     {tool} on the warm-up file: {fastest['seconds']:.2f} s, peak RSS "
            f"{_mib(fastest['largest'])} MiB (best of {args.repeats}: start-up, imports, numba "
            "cache loads, the job's fixed costs)"
        )
    shutil.rmtree(work, ignore_errors=True)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.child:
        tool, path, out = args.child
        CHILDREN[tool](path, out, args.chunks)
        return
    features = ours_features()
    tools = [t for t in args.tools if features["workers"] or t not in ("ours-w1", "ours-w2")]
    skipped = [t for t in args.tools if t not in tools]
    print_header(args, tools, skipped, features)
    args.cache.mkdir(parents=True, exist_ok=True)
    if args.warmup:
        warm_up(args, tools, features)
    results: list[tuple[int, tuple, dict]] = []
    all_ok = True
    for n_samples, n_sites in zip(args.samples, args.sites, strict=True):
        ok, shape, best = run_size(args, tools, features, n_samples, n_sites)
        all_ok &= ok
        results.append((n_samples, shape, best))
    if len(results) > 1:
        print_scaling(results)
    print(f"\noutputs   {'PASS' if all_ok else 'FAIL'}: every tool's genotypes equal ours")
    if not all_ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
