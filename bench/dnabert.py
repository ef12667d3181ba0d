"""Benchmark: DNABERT token ids, ours against Hugging Face ``tokenizers`` (the Rust tokenizer).

DNABERT's pipeline as its users run it: each sequence cut into overlapping k-mers joined by
spaces (DNABERT's ``seq2kmer``, in Python), then the tokenizer: here the fastest one, a
``tokenizers`` ``WordLevel`` model over DNABERT's k-mer vocabulary (ours, the same ids) with a
whitespace pre-tokenizer, ``[CLS] ... [SEP]`` added and right padding, ``encode_batch`` on all
sequences (Rust, in parallel). Ours: ``kmer_tokenize(seqs, k, scheme="dnabert")`` on the same
sequences. Sequences are at most 510 k-mers long, where DNABERT's layout is one ``[CLS]`` and
one ``[SEP]``; lower-case letters and N give ``[UNK]`` in both (DNABERT is case-sensitive).

``hf-tokenizers-encode-only`` is the tokenizer alone, the k-mer strings made before the timing.

Each tool runs in its own subprocess (peak RSS of the process, inputs included); ids and masks
are compared (SHA-256) with ours. Printed: seconds (best of ``--repeats``), sequences/s,
k-mers/s, peak RSS, ratio.

    python bench/dnabert.py [--n 20000] [--length 500] [--k 6] [--repeats 3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_model, fmt_rate, git_revision, print_table, ram_gib, verdict

TOOLS = ("ours", "hf-tokenizers", "hf-tokenizers-encode-only")


def make_sequences(n: int, length: int, seed: int = 0) -> list[str]:
    """Random DNA with 1% N and 5% lower-case letters, as ``bench/encode.py`` makes it."""
    rng = np.random.default_rng(seed)
    codes = np.frombuffer(b"ACGT", dtype=np.uint8)[rng.integers(0, 4, (n, length))]
    codes[rng.random((n, length)) < 0.01] = ord("N")
    lower = rng.random((n, length)) < 0.05
    codes[lower] = codes[lower] | 0x20
    return [row.tobytes().decode() for row in codes]


def seq2kmer(seq: str, k: int) -> str:
    """DNABERT's ``seq2kmer``: the overlapping k-mers of ``seq``, joined by spaces."""
    return " ".join(seq[i : i + k] for i in range(len(seq) + 1 - k))


def hf_tokenizer(k: int):
    """A ``tokenizers`` WordLevel tokenizer over DNABERT's vocabulary (ours: the same ids)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    import gpu_genomics as gg

    vocabulary = gg.kmer_vocabulary(k, scheme="dnabert")
    tokenizer = Tokenizer(models.WordLevel(vocab=vocabulary, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        special_tokens=[("[CLS]", vocabulary["[CLS]"]), ("[SEP]", vocabulary["[SEP]"])],
    )
    tokenizer.enable_padding(pad_id=vocabulary["[PAD]"], pad_token="[PAD]")
    return tokenizer


def run_one(tool: str, args: argparse.Namespace) -> None:
    """Time one tool in this process; print its figures and output digests as JSON."""
    seqs = make_sequences(args.n, args.length)
    if tool == "ours":
        import gpu_genomics as gg

        def work() -> tuple[np.ndarray, np.ndarray]:
            ids, mask = gg.kmer_tokenize(seqs, args.k, scheme="dnabert", device="cpu")
            return np.asarray(ids, dtype=np.int32), np.asarray(mask, dtype=np.uint8)

    else:
        tokenizer = hf_tokenizer(args.k)
        given = [seq2kmer(s, args.k) for s in seqs] if tool.endswith("encode-only") else None

        def work() -> tuple[np.ndarray, np.ndarray]:
            texts = given if given is not None else [seq2kmer(s, args.k) for s in seqs]
            encodings = tokenizer.encode_batch(texts)
            ids = np.array([e.ids for e in encodings], dtype=np.int32)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.uint8)
            return ids, mask

    work()  # warm-up: numba cache load, tokenizer threads
    best = float("inf")
    for _ in range(args.repeats):
        started = time.perf_counter()
        ids, mask = work()
        best = min(best, time.perf_counter() - started)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # KiB -> MiB
    digest = hashlib.sha256(memoryview(np.ascontiguousarray(ids))).hexdigest()
    digest += hashlib.sha256(memoryview(np.ascontiguousarray(mask))).hexdigest()
    print(json.dumps({"seconds": best, "peak_mib": peak, "digest": digest, "shape": ids.shape}))


def main() -> None:
    """Run every tool in its own subprocess and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--length", type=int, default=500)
    parser.add_argument("--k", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--run-one", choices=TOOLS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.length + 1 - args.k > 510:
        parser.error("--length: at most 510 k-mers, where DNABERT's layout is one [CLS] ... [SEP]")
    if args.run_one:
        run_one(args.run_one, args)
        return
    print(
        f"DNABERT ids, {args.n:,} sequences x {args.length} bp, k = {args.k}; {cpu_model()}, "
        f"{ram_gib()}; revision {git_revision()}"
    )
    results = {}
    for tool in TOOLS:
        command = [sys.executable, __file__, "--run-one", tool]
        command += ["--n", str(args.n), "--length", str(args.length), "--k", str(args.k)]
        command += ["--repeats", str(args.repeats)]
        output = subprocess.run(command, check=True, capture_output=True, text=True)
        results[tool] = json.loads(output.stdout.strip().splitlines()[-1])
    kmers = args.n * (args.length + 1 - args.k)
    ours = results["ours"]
    body = [
        [
            tool,
            f"{figures['seconds']:.3f}",
            fmt_rate(args.n / figures["seconds"]),
            fmt_rate(kmers / figures["seconds"]),
            f"{figures['peak_mib']:.0f}",
            f"{figures['seconds'] / ours['seconds']:.2f}x",
            verdict(ok=figures["digest"] == ours["digest"]),
        ]
        for tool, figures in results.items()
    ]
    print_table(
        ["tool", "seconds", "seqs/s", "k-mers/s", "peak MiB", "time/ours", "equal"], body, left={0}
    )


if __name__ == "__main__":
    main()
