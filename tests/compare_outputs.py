"""Check that two versions of gpu-genomics write the same arrays from the bundled data.

Usage::

    python tests/compare_outputs.py --base REV [--head PATH] [--keep DIR]

``REV`` is a git revision of this repository (checked out into a temporary worktree); ``--head``
is a source tree (default: this checkout). Each tree runs the same commands (every job, both
formats and the main options) on ``data/``, ``examples/`` and ``tests/data/`` into its own
folder, on the CPU; then every array of every output (HDF5 datasets, Zarr arrays, AnnData
groups, Parquet columns) is compared byte for byte: same names, shapes, dtypes and bytes.
Attributes (provenance) are listed where they differ but do not fail the check, since they hold
paths, dates and the command line. Exit status 0 when every array is equal, 1 otherwise.

A refactoring must leave this check green; a change that means to change an output says so.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent

#: (output name, gpu-genomics arguments); inputs are relative to the tree's root.
COMMANDS: list[tuple[str, list[str]]] = [
    ("intervals.h5", ["intervals", "-i", "data/metadata.txt", "-f", "data/reference.fa.gz"]),
    (
        "intervals-hull.zarr",
        ["intervals", "-i", "data/basset_targets.txt", "-f", "data/reference.fa.gz",
         "--merge", "hull", "--alphabet", "ACTG", "--dtype", "float16"],
    ),
    (
        "intervals-basset.h5",
        ["intervals", "-i", "data/metadata_custom.txt", "-f", "data/reference.fa.gz",
         "--format", "basset", "--split", "random", "--seed", "3"],
    ),
    (
        "intervals-none.h5",
        ["intervals", "-i", "data/metadata.txt", "-f", "data/reference.fa.gz", "--merge",
         "none", "--exclusive", "--length", "300"],
    ),
    ("onehot.h5", ["encode", "examples/sequences.fa.gz", "--length", "1000", "--pad", "center"]),
    (
        "onehot-ncl.zarr",
        ["encode", "examples/sequences.fa.gz", "--dtype", "float16", "--n-value", "0.25",
         "--layout", "NCL", "--batch-size", "77"],
    ),
    ("tokens.h5", ["encode", "examples/sequences.fa.gz", "--encoding", "tokens", "--max-len",
                   "512"]),
    (
        "tokens-hyena.zarr",
        ["encode", "examples/sequences.fa.gz", "--encoding", "tokens", "--max-len", "1024",
         "--scheme", "hyenadna"],
    ),
    (
        "kmer-tokens-dnabert.h5",
        ["encode", "examples/sequences.fa.gz", "--encoding", "kmer-tokens", "--scheme",
         "dnabert", "-k", "6", "--max-len", "512"],
    ),
    (
        "kmer-tokens-nt.h5",
        ["encode", "examples/sequences.fa.gz", "--encoding", "kmer-tokens", "--scheme",
         "nucleotide-transformer"],
    ),
    (
        "kmer-tokens-plain.zarr",
        ["encode", "examples/sequences.fa.gz", "--encoding", "kmer-tokens", "-k", "3",
         "--stride", "2"],
    ),
    ("kmers.zarr", ["encode", "examples/sequences.fa.gz", "--encoding", "kmer-counts", "-k", "6"]),
    (
        "kmers-sparse.h5",
        ["encode", "examples/sequences.fa.gz", "--encoding", "kmer-counts", "-k", "8",
         "--canonical", "--batch-size", "100"],
    ),
    (
        "scrna.h5ad",
        ["scrna", "data/scrna/filtered_feature_bc_matrix", "--rank-encode", "{out}/rank.parquet"],
    ),
    (
        "scrna-v3.zarr",
        ["scrna", "data/scrna/filtered_feature_bc_matrix", "--hvg-flavor", "seurat_v3",
         "--n-top-genes", "500", "--rank-encode", "{out}/rank-v2.h5", "--special-tokens",
         "--n-tokens", "256"],
    ),
    ("vcf.zarr", ["vcf", "data/vcf/example.vcf.gz", "--min-maf", "0.01", "--standardize"]),
    (
        "vcf-split.h5",
        ["vcf", "tests/data/vcf/tricky.vcf", "--multiallelic", "split", "--standardize",
         "--chunk-variants", "3"],
    ),
    (
        "vcf-region.h5",
        ["vcf", "data/vcf/example.vcf.gz", "--region", "chr1:1-50000", "--biallelic-only",
         "--max-missing", "0.05"],
    ),
    ("bulk.h5", ["bulk", "data/bulk/example_expression.tsv", "--save-scaler",
                 "{out}/scaler.json"]),
    (
        "bulk-applied.zarr",
        ["bulk", "data/bulk/example_expression.tsv", "--apply-scaler", "{out}/bulk.h5",
         "--no-zscore"],
    ),
]  # fmt: skip

#: Arrays that hold provenance rather than data (AnnData keeps it in ``uns``): the command line,
#: timings, dates, paths. Reported like attributes where they differ, never failed on.
PROVENANCE = re.compile(r"(^|/)(command|seconds|date|created|input|source)$|^uns/provenance(/|$)")

#: Files written beside the main outputs (by --rank-encode and --save-scaler).
EXTRA_OUTPUTS = ("rank.parquet", "rank-v2.h5", "scaler.json")


def run_all(tree: Path, out: Path) -> None:
    """Run every command with ``tree``'s package (on the CPU, quietly) into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(tree), "GPU_GENOMICS_DEVICE": "cpu"}
    for name, args in COMMANDS:
        argv = [a.replace("{out}", str(out)) for a in args] + ["-o", str(out / name), "--quiet"]
        code = "import sys; from gpu_genomics.cli import main; main(sys.argv[1:])"
        result = subprocess.run(
            [sys.executable, "-c", code, *argv],
            cwd=tree,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise SystemExit(f"{tree}: {' '.join(argv)} failed:\n{result.stderr}")


def arrays_of(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Every array in an output, by path inside it, and its attributes by owner path."""
    arrays: dict[str, np.ndarray] = {}
    attrs: dict[str, Any] = {}
    suffix = path.suffix
    if suffix in (".h5", ".h5ad"):
        import h5py

        with h5py.File(path, "r") as f:
            attrs["/"] = dict(f.attrs)

            def visit(name: str, node: Any) -> None:
                attrs[name] = dict(node.attrs)
                if isinstance(node, h5py.Dataset):
                    value = node[()]
                    arrays[name] = np.asarray(value)

            f.visititems(visit)
    elif suffix == ".zarr":
        import zarr

        root = zarr.open_group(str(path), mode="r")
        attrs["/"] = dict(root.attrs)
        for name, node in root.members(max_depth=None):
            attrs[name] = dict(node.attrs)
            if isinstance(node, zarr.Array):
                arrays[name] = np.asarray(node[...])
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        for column in table.column_names:
            arrays[column] = np.asarray(table[column].to_pylist(), dtype=object)
        attrs["/"] = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    elif suffix == ".json":  # a scaler file: every key but the provenance
        import json

        document = json.loads(path.read_text())
        attrs["/"] = {"provenance": document.pop("provenance", None)}
        for key, value in document.items():
            arrays[key] = np.asarray(value if isinstance(value, list) else [value], dtype=object)
    return arrays, attrs


def same(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind in "OT":  # object or variable-width strings: compare the values
        return [repr(x) for x in a.ravel()] == [repr(x) for x in b.ravel()]
    return a.tobytes() == b.tobytes()


def compare(base: Path, head: Path) -> int:
    """Print every difference between the outputs in ``base`` and ``head``; return their count."""
    failures = 0
    names = [name for name, _ in COMMANDS] + list(EXTRA_OUTPUTS)
    for name in names:
        base_arrays, base_attrs = arrays_of(base / name)
        head_arrays, head_attrs = arrays_of(head / name)
        if not base_arrays:
            print(f"{name}: no arrays read")
            failures += 1
        for key in sorted(set(base_arrays) | set(head_arrays)):
            if PROVENANCE.search(key):
                if (
                    key not in base_arrays
                    or key not in head_arrays
                    or not same(base_arrays[key], head_arrays[key])
                ):
                    print(f"provenance {name}:{key} differs")
            elif key not in head_arrays or key not in base_arrays:
                where = "head" if key not in head_arrays else "base"
                print(f"FAIL {name}:{key} missing in {where}")
                failures += 1
            elif not same(base_arrays[key], head_arrays[key]):
                a, b = base_arrays[key], head_arrays[key]
                print(f"FAIL {name}:{key} differs ({a.dtype}{a.shape} vs {b.dtype}{b.shape})")
                failures += 1
        for owner in sorted(set(base_attrs) | set(head_attrs)):
            old, new = base_attrs.get(owner, {}), head_attrs.get(owner, {})
            changed = sorted(k for k in set(old) | set(new) if repr(old.get(k)) != repr(new.get(k)))
            if changed:
                print(f"attrs {name}:{owner}: {', '.join(changed)}")
        print(f"{name}: {len(head_arrays)} arrays compared")
    return failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="git revision to compare against")
    parser.add_argument("--head", type=Path, default=REPO, help="source tree (default: here)")
    parser.add_argument("--keep", type=Path, default=None, help="keep the outputs in this folder")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="compare-outputs-")) if args.keep is None else args.keep
    worktree = work / "base-tree"
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", "-f", str(worktree), args.base],
        check=True,
        capture_output=True,
    )
    try:
        run_all(worktree, work / "base")
        run_all(args.head.resolve(), work / "head")
        failures = compare(work / "base", work / "head")
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(worktree)],
                       check=False, capture_output=True)  # fmt: skip
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print("all arrays equal" if not failures else f"{failures} differences")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
