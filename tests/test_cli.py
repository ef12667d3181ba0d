"""The command line: `encode` writes what the Python API computes; mistakes are one line."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import h5py
import numpy as np
import pytest
import scipy.sparse
import zarr

import gpu_genomics as gg
from gpu_genomics import cli
from gpu_genomics.device import gpu_status

FASTA = (
    ">r1 first record\nACGTNacgtRY\nACG\n>r2\nGGGCCCAAATTT\n>r3\n\n"
    ">r4\nacgtacgtacgtacgtNNNNACGTACGTAAC\n"
)


@pytest.fixture
def fasta(tmp_path):
    path = tmp_path / "seqs.fa.gz"
    path.write_bytes(gzip.compress(FASTA.encode()))
    return path


def run(*args: str) -> None:
    cli.main([str(a) for a in args])


def encode(fasta, out, *extra) -> None:
    """`encode` FASTA into `out` on the CPU, quietly, with extra flags."""
    run("encode", fasta, "-o", out, "--device", "cpu", "--quiet", *extra)


def read(path):
    if str(path).endswith(".zarr"):
        group = zarr.open_group(str(path), mode="r")
        return {k: group[k][...] for k in group.array_keys()}, dict(group.attrs)
    with h5py.File(path) as f:
        arrays = {k: f[k][...] for k in f}
        attrs = {
            k: json.loads(v) if isinstance(v, str) and v.startswith(("[", "{")) else v
            for k, v in f.attrs.items()
        }
    return arrays, attrs


def as_str(values):
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


@pytest.mark.parametrize("suffix", [".h5", ".zarr"])
def test_encode_onehot_matches_the_api(fasta, tmp_path, suffix):
    out = tmp_path / f"out{suffix}"
    encode(fasta, out, "--length", 20, "--pad", "center", "--batch-size", 3)
    arrays, attrs = read(out)
    batch = gg.SequenceBatch.from_fasta(fasta)
    expected = gg.one_hot(batch, 20, pad="center", device="cpu")
    np.testing.assert_array_equal(arrays["onehot"], expected)
    assert as_str(arrays["names"]) == ["r1", "r2", "r3", "r4"]
    np.testing.assert_array_equal(arrays["lengths"], [14, 12, 0, 31])
    assert attrs["encoding"] == "onehot" and attrs["n_sequences"] == 4
    assert attrs["gpu_genomics_version"] == gg.__version__
    assert attrs["parameters"]["length"] == 20 and attrs["parameters"]["pad"] == "center"
    assert "--length 20" in attrs["command"]


def test_encode_onehot_default_length_and_float_layout(fasta, tmp_path):
    out = tmp_path / "o.h5"
    encode(fasta, out, "--dtype", "float32", "--n-value", 0.25, "--layout", "NCL")
    arrays, attrs = read(out)
    expected = gg.one_hot(
        fasta_batch(fasta), dtype="float32", n_value=0.25, layout="NCL", device="cpu"
    )
    assert arrays["onehot"].shape == (4, 4, 31) and attrs["parameters"]["length"] == 31
    np.testing.assert_array_equal(arrays["onehot"], expected)


def fasta_batch(path):
    return gg.SequenceBatch.from_fasta(path)


@pytest.mark.parametrize("scheme", ["spec", "hyenadna"])
def test_encode_tokens(fasta, tmp_path, scheme):
    out = tmp_path / "t.h5"
    encode(
        fasta, out, "--encoding", "tokens", "--max-len", 16, "--scheme", scheme, "--batch-size", 2
    )
    arrays, _ = read(out)
    ids, mask = gg.tokenize(fasta_batch(fasta), 16, scheme, device="cpu")
    np.testing.assert_array_equal(arrays["input_ids"], ids)
    np.testing.assert_array_equal(arrays["attention_mask"], mask)


@pytest.mark.parametrize("scheme", ["plain", "dnabert", "nucleotide-transformer"])
def test_encode_kmer_tokens_default_max_len(fasta, tmp_path, scheme):
    out = tmp_path / "kt.zarr"
    encode(fasta, out, "--encoding", "kmer-tokens", "--scheme", scheme, "-k", 6, "--batch-size", 3)
    arrays, attrs = read(out)
    ids, mask = gg.kmer_tokenize(fasta_batch(fasta), 6, scheme=scheme, device="cpu")
    assert attrs["parameters"]["max_len"] == ids.shape[1]
    np.testing.assert_array_equal(arrays["input_ids"], ids)
    np.testing.assert_array_equal(arrays["attention_mask"], mask)


@pytest.mark.parametrize(
    ("k", "extra"), [(3, []), (3, ["--canonical"]), (7, []), (4, ["--sparse"])]
)
def test_encode_kmer_counts(fasta, tmp_path, k, extra):
    out = tmp_path / "kc.h5"
    encode(fasta, out, "--encoding", "kmer-counts", "-k", k, *extra, "--batch-size", 3)
    arrays, attrs = read(out)
    canonical = "--canonical" in extra
    expected = gg.kmer_counts(fasta_batch(fasta), k, canonical, sparse=False, device="cpu")
    assert as_str(arrays["kmer_names"]) == gg.kmer_names(k, canonical)
    if "kmer_counts" in arrays:
        np.testing.assert_array_equal(arrays["kmer_counts"], expected)
    else:
        matrix = scipy.sparse.csr_matrix(
            (
                arrays["kmer_counts_data"],
                arrays["kmer_counts_indices"],
                arrays["kmer_counts_indptr"],
            ),
            shape=tuple(attrs["kmer_counts_shape"]),
        )
        np.testing.assert_array_equal(matrix.toarray(), expected)


def error_of(capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        run(*args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "no error printed"
    assert "Traceback" not in "\n".join(err)
    return err[-1]


def test_missing_input_is_one_line(capsys, tmp_path):
    line = error_of(capsys, "encode", tmp_path / "nope.fa", "-o", tmp_path / "o.h5")
    assert line.startswith("gpu-genomics: error:") and "nope.fa" in line
    assert list(tmp_path.iterdir()) == []


def test_non_dna_input_names_the_record(capsys, tmp_path):
    bad = tmp_path / "bad.fa"
    bad.write_text(">ok\nACGT\n>protein\nMKVLAAGE\n")
    line = error_of(capsys, "encode", bad, "-o", tmp_path / "o.h5", "--device", "cpu")
    assert "bad.fa" in line and "'protein'" in line and "not a DNA letter" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.fa"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--encoding", "tokens"], "needs --max-len"),
        (["--encoding", "kmer-counts", "-k", "0"], "k=0"),
        (["--encoding", "tokens", "--max-len", "0"], "max_len=0"),
        (["--encoding", "kmer-tokens", "--scheme", "bpe"], "scheme='bpe'"),
        (["--alphabet", "ACGU"], "alphabet"),
        (["--batch-size", "0"], "batch-size"),
    ],
)
def test_bad_options_are_one_line(capsys, fasta, tmp_path, args, message):
    out = tmp_path / "o.h5"
    line = error_of(capsys, "encode", fasta, "-o", out, "--device", "cpu", *args)
    assert message in line
    assert not out.exists()


def test_bad_output_suffix_fails_before_work(capsys, fasta, tmp_path):
    line = error_of(capsys, "encode", fasta, "-o", tmp_path / "o.npy")
    assert "o.npy" in line and ".zarr" in line


@pytest.mark.skipif(gpu_status()[0], reason="a GPU is usable here")
def test_device_gpu_without_gpu(capsys, fasta, tmp_path):
    line = error_of(capsys, "encode", fasta, "-o", tmp_path / "o.h5", "--device", "gpu")
    assert "no GPU is usable" in line


def test_interrupted_run_leaves_nothing(fasta, tmp_path, monkeypatch):
    out = tmp_path / "o.h5"
    calls = []

    def explode(self, out_, chunk, start):
        calls.append(start)
        if start:
            raise KeyboardInterrupt

    monkeypatch.setattr(cli._Encoder, "write_rows", explode)
    with pytest.raises(SystemExit) as exit_info:
        run("encode", fasta, "-o", out, "--batch-size", 2, "--device", "cpu", "--quiet")
    assert exit_info.value.code == 130 and calls == [0, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seqs.fa.gz"]


def test_same_input_same_output(fasta, tmp_path):
    for name in ("a.h5", "b.h5"):
        encode(fasta, tmp_path / name, "--encoding", "kmer-counts", "-k", 2)
    a, _ = read(tmp_path / "a.h5")
    b, _ = read(tmp_path / "b.h5")
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_module_entry_point_and_info():
    help_text = subprocess.run(
        [sys.executable, "-m", "gpu_genomics", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "encode" in help_text and "info" in help_text
    info = subprocess.run(
        [sys.executable, "-m", "gpu_genomics", "info"], capture_output=True, text=True, check=True
    ).stdout
    assert "backend cpu" in info and "backend gpu" in info and "numpy" in info
