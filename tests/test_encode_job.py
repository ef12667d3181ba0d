"""The ``encode`` job (:func:`gpu_genomics.encode_file`) called as a library: it writes what the
Python API computes, whatever the batch size; bad options name the Python parameters and leave
nothing behind; every output carries its provenance.

``check_provenance`` and ``read`` are shared with the other job tests."""

from __future__ import annotations

import datetime
import gzip
import hashlib
import json
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.sparse
import zarr

import gpu_genomics as gg
from gpu_genomics.device import gpu_status
from gpu_genomics.errors import DeviceError, InputError
from gpu_genomics.io.provenance import PROVENANCE_KEYS
from gpu_genomics.sequence import encode as encode_module

FASTA = (
    ">r1 first record\nACGTNacgtRY\nACG\n>r2\nGGGCCCAAATTT\n>r3\n\n"
    ">r4\nacgtacgtacgtacgtNNNNACGTACGTAAC\n"
)
N_BASES = 14 + 12 + 0 + 31


@pytest.fixture
def fasta(tmp_path):
    path = tmp_path / "seqs.fa.gz"
    path.write_bytes(gzip.compress(FASTA.encode()))
    return path


def encode(fasta, out, **options) -> dict:
    """``encode_file`` on the CPU, returning its summary."""
    return gg.encode_file(fasta, out, device="cpu", **options)


def parse_attr(value):
    """An HDF5 attribute as written: nested values are JSON strings."""
    if isinstance(value, str) and value.startswith(("[", "{")):
        return json.loads(value)
    return value.item() if isinstance(value, np.generic) else value


def read(path):
    """``(arrays, attrs)`` of an HDF5 file or Zarr store; JSON attributes parsed."""
    if Path(path).is_dir():
        group = zarr.open_group(str(path), mode="r")
        return {k: group[k][...] for k in group.array_keys()}, dict(group.attrs)
    with h5py.File(path) as f:
        arrays = {k: f[k][...] for k in f}
        attrs = {k: parse_attr(v) for k, v in f.attrs.items()}
    return arrays, attrs


def as_str(values):
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def fasta_batch(path):
    return gg.SequenceBatch.from_fasta(path)


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- provenance, shared by every job's tests ------------------------------------------------
def check_provenance(
    record: dict,
    *,
    tool: str,
    inputs: dict[str, Path],
    parameters: dict | None = None,
    command: str | None = None,
    device: str = "cpu",
) -> None:
    """``record`` holds exactly :data:`PROVENANCE_KEYS` with sensible values: this version,
    ``tool``, the command, ``parameters`` (equal, or a subset when given as ``...``), ``inputs``
    (role -> path; files listed with their size and SHA-256, folders without), a UTC time of
    the last minute and ``device``."""
    assert set(record) == set(PROVENANCE_KEYS), sorted(record)
    assert record["gpu_genomics_version"] == gg.__version__
    assert record["tool"] == tool
    assert isinstance(record["command"], str) and record["command"]
    if command is not None:
        assert record["command"] == command
    assert record["device"] == device
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record["created"])
    created = datetime.datetime.strptime(record["created"], "%Y-%m-%dT%H:%M:%SZ")
    age = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) - created
    assert datetime.timedelta(seconds=-2) <= age < datetime.timedelta(minutes=5)
    assert isinstance(record["parameters"], dict)
    if parameters is not None:
        assert record["parameters"] == parameters
    json.dumps(record["parameters"])  # JSON types only
    listed = {entry["role"]: entry for entry in record["inputs"]}
    assert len(listed) == len(record["inputs"]), "a role is listed twice"
    assert set(listed) == set(inputs)
    for role, path in inputs.items():
        entry = listed[role]
        assert entry["path"] == str(Path(path).resolve()), role
        if Path(path).is_file():
            data = Path(path).read_bytes()
            assert entry["bytes"] == len(data), role
            assert entry["sha256"] == hashlib.sha256(data).hexdigest(), role
            assert set(entry) == {"role", "path", "bytes", "sha256"}
        else:
            assert set(entry) == {"role", "path"}, role


def flat_provenance(record: dict) -> dict:
    """A provenance record stored flat (AnnData ``uns``): JSON strings parsed, "none" None."""
    parsed = {}
    for key, raw in record.items():
        value = raw.item() if isinstance(raw, np.generic) else raw
        if isinstance(value, str) and value.startswith(("[", "{")):
            value = json.loads(value)
        parsed[key] = None if value == "none" else value
    return parsed


# --- what is written ------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".h5", ".zarr"])
def test_onehot_matches_the_api_and_summary(fasta, tmp_path, suffix):
    out = tmp_path / f"out{suffix}"
    summary = encode(fasta, out, length=20, pad="center", batch_size=3)
    arrays, attrs = read(out)
    expected = gg.one_hot(fasta_batch(fasta), 20, pad="center", device="cpu")
    np.testing.assert_array_equal(arrays["onehot"], expected)
    assert as_str(arrays["names"]) == ["r1", "r2", "r3", "r4"]
    np.testing.assert_array_equal(arrays["lengths"], [14, 12, 0, 31])
    assert attrs["encoding"] == "onehot" and attrs["n_sequences"] == 4
    assert attrs["gpu_genomics_version"] == gg.__version__
    assert attrs["parameters"]["length"] == 20 and attrs["parameters"]["pad"] == "center"
    assert set(arrays) == {"onehot", "names", "lengths"}
    seconds = summary.pop("seconds")
    assert isinstance(seconds, float) and seconds >= 0
    assert summary == {
        "output": str(out),
        "encoding": "onehot",
        "n_sequences": 4,
        "n_bases": N_BASES,
        "arrays": {"onehot": (4, 20, 4)},
    }
    assert listing(tmp_path) == sorted([fasta.name, out.name])


def test_onehot_default_length_and_float_layout(fasta, tmp_path):
    out = tmp_path / "o.h5"
    summary = encode(fasta, out, dtype="float32", n_value=0.25, layout="NCL")
    arrays, attrs = read(out)
    expected = gg.one_hot(
        fasta_batch(fasta), dtype="float32", n_value=0.25, layout="NCL", device="cpu"
    )
    assert arrays["onehot"].shape == (4, 4, 31) and attrs["parameters"]["length"] == 31
    assert arrays["onehot"].dtype == np.float32
    np.testing.assert_array_equal(arrays["onehot"], expected)
    assert summary["arrays"] == {"onehot": (4, 4, 31)}


@pytest.mark.parametrize("scheme", ["spec", "hyenadna"])
def test_tokens(fasta, tmp_path, scheme):
    out = tmp_path / "t.h5"
    summary = encode(fasta, out, encoding="tokens", max_len=16, scheme=scheme, batch_size=2)
    arrays, attrs = read(out)
    ids, mask = gg.tokenize(fasta_batch(fasta), 16, scheme=scheme, device="cpu")
    np.testing.assert_array_equal(arrays["input_ids"], ids)
    np.testing.assert_array_equal(arrays["attention_mask"], mask)
    assert summary["arrays"] == {"input_ids": (4, 16), "attention_mask": (4, 16)}
    assert attrs["parameters"]["scheme"] == scheme and attrs["encoding"] == "tokens"


def test_tokens_default_scheme_is_spec(fasta, tmp_path):
    encode(fasta, tmp_path / "t.h5", encoding="tokens", max_len=16)
    arrays, attrs = read(tmp_path / "t.h5")
    ids, _ = gg.tokenize(fasta_batch(fasta), 16, scheme="spec", device="cpu")
    np.testing.assert_array_equal(arrays["input_ids"], ids)
    assert attrs["parameters"]["scheme"] == "spec"


@pytest.mark.parametrize("scheme", ["plain", "dnabert", "nucleotide-transformer"])
def test_kmer_tokens_default_max_len(fasta, tmp_path, scheme):
    out = tmp_path / "kt.zarr"
    summary = encode(fasta, out, encoding="kmer-tokens", scheme=scheme, k=6, batch_size=3)
    arrays, attrs = read(out)
    ids, mask = gg.kmer_tokenize(fasta_batch(fasta), 6, scheme=scheme, device="cpu")
    assert attrs["parameters"]["max_len"] == ids.shape[1]
    np.testing.assert_array_equal(arrays["input_ids"], ids)
    np.testing.assert_array_equal(arrays["attention_mask"], mask)
    assert summary["arrays"]["input_ids"] == ids.shape


def test_kmer_tokens_stride_and_max_len(fasta, tmp_path):
    out = tmp_path / "kt.h5"
    encode(fasta, out, encoding="kmer-tokens", k=3, stride=2, max_len=5)
    arrays, attrs = read(out)
    ids, mask = gg.kmer_tokenize(fasta_batch(fasta), 3, stride=2, max_len=5, device="cpu")
    np.testing.assert_array_equal(arrays["input_ids"], ids)
    np.testing.assert_array_equal(arrays["attention_mask"], mask)
    parameters = attrs["parameters"]
    assert (parameters["k"], parameters["stride"], parameters["max_len"]) == (3, 2, 5)
    assert parameters["scheme"] == "plain"


def csr_of(arrays, attrs):
    return scipy.sparse.csr_matrix(
        (arrays["kmer_counts_data"], arrays["kmer_counts_indices"], arrays["kmer_counts_indptr"]),
        shape=tuple(attrs["kmer_counts_shape"]),
    )


@pytest.mark.parametrize(
    ("k", "options"),
    [(3, {}), (3, {"canonical": True}), (7, {}), (4, {"sparse": True}), (7, {"sparse": False})],
)
def test_kmer_counts(fasta, tmp_path, k, options):
    out = tmp_path / "kc.h5"
    summary = encode(fasta, out, encoding="kmer-counts", k=k, batch_size=3, **options)
    arrays, attrs = read(out)
    canonical = options.get("canonical", False)
    expected = gg.kmer_counts(
        fasta_batch(fasta), k, canonical=canonical, sparse=False, device="cpu"
    )
    assert as_str(arrays["kmer_names"]) == gg.kmer_names(k, canonical=canonical)
    sparse = options.get("sparse", k > 6)
    assert attrs["parameters"]["sparse"] == sparse
    if not sparse:
        assert "kmer_counts_data" not in arrays
        np.testing.assert_array_equal(arrays["kmer_counts"], expected)
        assert summary["arrays"] == {"kmer_counts": expected.shape}
    else:
        assert "kmer_counts" not in arrays and attrs["kmer_counts_format"] == "csr"
        np.testing.assert_array_equal(csr_of(arrays, attrs).toarray(), expected)
        assert set(summary["arrays"]) == {f"kmer_counts_{p}" for p in ("data", "indices", "indptr")}


@pytest.mark.parametrize(
    "options",
    [
        {"length": 20, "pad": "center"},
        {"encoding": "tokens", "max_len": 16},
        {"encoding": "kmer-tokens", "k": 4},
        {"encoding": "kmer-counts", "k": 3},
        {"encoding": "kmer-counts", "k": 7},
    ],
)
def test_batch_size_does_not_change_the_arrays(fasta, tmp_path, options):
    outputs = []
    for batch_size in (1, 3, 8192):
        out = tmp_path / f"b{batch_size}.h5"
        encode(fasta, out, batch_size=batch_size, **options)
        outputs.append(read(out)[0])
    for other in outputs[1:]:
        assert other.keys() == outputs[0].keys()
        for key in outputs[0]:
            np.testing.assert_array_equal(other[key], outputs[0][key], err_msg=key)


def test_same_input_same_output(fasta, tmp_path):
    for name in ("a.h5", "b.h5"):
        encode(fasta, tmp_path / name, encoding="kmer-counts", k=2)
    a, _ = read(tmp_path / "a.h5")
    b, _ = read(tmp_path / "b.h5")
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


@pytest.mark.parametrize(
    ("output_format", "compression", "stored"),
    [("zarr", None, "zarr"), ("hdf5", "gzip", "hdf5"), (None, "lzf", "hdf5")],
)
def test_format_and_compression(fasta, tmp_path, output_format, compression, stored):
    out = tmp_path / "named.out" if output_format else tmp_path / "o.h5"
    encode(fasta, out, output_format=output_format, compression=compression, length=8)
    if stored == "zarr":
        assert (out / "zarr.json").exists()
    else:
        assert h5py.is_hdf5(out)
        if compression:
            with h5py.File(out) as f:
                assert f["onehot"].compression == compression
    arrays, attrs = read(out)
    np.testing.assert_array_equal(arrays["onehot"], gg.one_hot(fasta_batch(fasta), 8, device="cpu"))
    assert attrs["parameters"]["output_format"] == stored
    assert attrs["parameters"]["compression"] == compression or "zstd"  # None: Zarr's default


def test_provenance(fasta, tmp_path):
    out = tmp_path / "o.h5"
    encode(fasta, out, command="my encode --length 5", length=5)
    _, attrs = read(out)
    record = {key: attrs[key] for key in PROVENANCE_KEYS}
    assert set(attrs) - set(PROVENANCE_KEYS) == {"encoding", "n_sequences"}
    check_provenance(
        record,
        tool="gpu-genomics encode",
        inputs={"sequences": fasta},
        command="my encode --length 5",
        parameters={
            "encoding": "onehot",
            "batch_size": 8192,
            "output_format": "hdf5",
            "compression": "none",  # resolved: HDF5's default
            "alphabet": "ACGT",
            "dtype": "uint8",
            "n_value": 0.0,
            "layout": "NLC",
            "pad": "right",
            "length": 5,
            "workers": None,  # in this process
        },
    )


def test_provenance_of_a_python_call_is_this_process(fasta, tmp_path):
    import sys

    from gpu_genomics.io.provenance import command_line

    encode(fasta, tmp_path / "o.zarr", encoding="kmer-counts", k=2)
    _, attrs = read(tmp_path / "o.zarr")
    assert attrs["command"] == command_line(sys.argv[1:], Path(sys.argv[0]).name)
    check_provenance(
        {key: attrs[key] for key in PROVENANCE_KEYS},
        tool="gpu-genomics encode",
        inputs={"sequences": fasta},
        parameters={
            "encoding": "kmer-counts",
            "batch_size": 8192,
            "output_format": "zarr",
            "compression": "zstd",  # resolved: Zarr's default
            "k": 2,
            "canonical": False,
            "sparse": False,
            "workers": None,
        },
    )


# --- bad input ------------------------------------------------------------------------------
def test_missing_input_names_the_file_and_writes_nothing(tmp_path):
    with pytest.raises(InputError, match=r"nope\.fa"):
        encode(tmp_path / "nope.fa", tmp_path / "o.h5")
    assert list(tmp_path.iterdir()) == []


def test_non_dna_input_names_the_record(tmp_path):
    bad = tmp_path / "bad.fa"
    bad.write_text(">ok\nACGT\n>protein\nMKVLAAGE\n")
    with pytest.raises(InputError) as info:
        encode(bad, tmp_path / "o.h5")
    message = str(info.value)
    assert "bad.fa" in message and "'protein'" in message and "not a DNA letter" in message
    assert "\n" not in message
    assert listing(tmp_path) == ["bad.fa"]


def test_every_record_empty_needs_a_length(tmp_path):
    empty = tmp_path / "empty.fa"
    empty.write_text(">a\n>b\n")
    with pytest.raises(InputError, match=r"every record is empty.*pass `length`"):
        encode(empty, tmp_path / "o.h5")
    assert listing(tmp_path) == ["empty.fa"]
    encode(empty, tmp_path / "o.h5", length=4)
    assert read(tmp_path / "o.h5")[0]["onehot"].shape == (2, 4, 4)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"encoding": "tokens"}, "encoding='tokens' needs `max_len`"),
        ({"encoding": "kmer-counts", "k": 0}, "k=0 must be a positive integer"),
        ({"encoding": "tokens", "max_len": 0}, "max_len=0 must be a positive integer"),
        ({"encoding": "kmer-tokens", "scheme": "bpe"}, "scheme='bpe' is not one of"),
        ({"encoding": "kmer-tokens", "stride": 0}, "stride=0 must be a positive integer"),
        ({"encoding": "bpe"}, "encoding='bpe' is not one of onehot, tokens"),
        ({"alphabet": "ACGU"}, "alphabet='ACGU' must be a permutation"),
        ({"batch_size": 0}, "batch_size=0 must be a positive integer"),
        ({"length": 0}, "length=0 must be a positive integer"),
        ({"pad": "middle"}, "pad='middle' is not one of"),
        ({"dtype": "int64"}, "dtype='int64' is not one of"),
        ({"layout": "LNC"}, "layout='LNC' is not one of NLC, NCL"),
        ({"compression": "bz2"}, "compression='bz2' is not one of"),
        ({"output_format": "npy"}, "output_format='npy' is not one of hdf5, zarr"),
        ({"device": "tpu"}, "device='tpu' is not one of auto, gpu, cpu"),
    ],
)
def test_bad_options_name_the_parameter_and_write_nothing(fasta, tmp_path, options, message):
    out = tmp_path / "o.h5"
    options = {"device": "cpu", **options}
    with pytest.raises(InputError) as info:
        gg.encode_file(fasta, out, **options)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert "--" not in str(info.value)  # the library names parameters, not flags
    assert listing(tmp_path) == [fasta.name]


def test_bad_output_suffix_fails_before_work(fasta, tmp_path, monkeypatch):
    monkeypatch.setattr(gg.SequenceBatch, "from_fasta", pytest.fail)  # no reading
    with pytest.raises(InputError) as info:
        encode(fasta, tmp_path / "o.npy")
    assert "o.npy" in str(info.value) and ".zarr" in str(info.value)
    assert "output_format=" in str(info.value)
    with pytest.raises(InputError, match="does not exist"):
        encode(fasta, tmp_path / "no" / "o.h5")
    assert listing(tmp_path) == [fasta.name]


def test_an_existing_non_store_is_not_replaced(fasta, tmp_path):
    (tmp_path / "o.zarr").mkdir()
    (tmp_path / "o.zarr" / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="not a Zarr store"):
        encode(fasta, tmp_path / "o.zarr")
    assert (tmp_path / "o.zarr" / "keep.txt").read_text() == "mine"


@pytest.mark.skipif(gpu_status()[0], reason="a GPU is usable here")
def test_device_gpu_without_gpu(fasta, tmp_path):
    with pytest.raises(DeviceError) as info:
        gg.encode_file(fasta, tmp_path / "o.h5", device="gpu")
    assert "device='gpu' was requested" in str(info.value)
    assert "no GPU is usable" in str(info.value)
    assert listing(tmp_path) == [fasta.name]


def test_unknown_keyword_is_a_type_error_naming_it(fasta, tmp_path):
    with pytest.raises(TypeError, match="unexpected keyword argument 'lenght'"):
        gg.encode_file(fasta, tmp_path / "o.h5", lenght=20)
    with pytest.raises(TypeError):
        gg.encode_file(fasta, tmp_path / "o.h5", "onehot")  # options are keyword-only
    assert listing(tmp_path) == [fasta.name]


def test_interrupted_run_leaves_nothing(fasta, tmp_path, monkeypatch):
    calls = []

    def explode(self, chunk, start):
        calls.append(start)
        if start:
            raise KeyboardInterrupt

    monkeypatch.setattr(encode_module._Encoder, "write_rows", explode)
    for name in ("o.h5", "o.zarr"):
        calls.clear()
        with pytest.raises(KeyboardInterrupt):
            encode(fasta, tmp_path / name, batch_size=2)
        assert calls == [0, 2]
        assert listing(tmp_path) == ["seqs.fa.gz"]


def test_a_failed_run_keeps_the_previous_output(fasta, tmp_path, monkeypatch):
    out = tmp_path / "o.h5"
    encode(fasta, out, length=8)
    before = out.read_bytes()

    def explode(self, chunk, start):
        raise InputError("boom")

    monkeypatch.setattr(encode_module._Encoder, "write_rows", explode)
    with pytest.raises(InputError, match="boom"):
        encode(fasta, out, length=12)
    assert out.read_bytes() == before
    assert listing(tmp_path) == sorted(["o.h5", fasta.name])
