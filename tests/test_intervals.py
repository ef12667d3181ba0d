"""The intervals job (:func:`gpu_genomics.build_interval_dataset`) called as a library: arrays
against pysam and make_regions, layouts, splits, batch sizes, the returned summary, bad input
(errors naming the Python parameters, nothing written), provenance; the reference reader.

The command line (``intervals``, ``genomic_interval_pipeline``) is tested in ``test_cli.py``."""

from __future__ import annotations

import dataclasses
import gzip
import json
import logging
import shutil
import sys
from pathlib import Path

import h5py
import numpy as np
import pysam
import pytest
import zarr
from test_encode_job import check_provenance

import gpu_genomics as gg
from gpu_genomics.errors import InputError
from gpu_genomics.intervals import job as job_module
from gpu_genomics.intervals.bed import read_metadata
from gpu_genomics.intervals.job import IntervalOptions, assign_splits, load_peaks
from gpu_genomics.intervals.reference import Reference
from gpu_genomics.intervals.regions import make_regions
from gpu_genomics.io.provenance import PROVENANCE_KEYS

DATA = Path(__file__).resolve().parent.parent / "data"
SPLITS = ("training", "validation", "test")


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> Path:
    """A writable copy of the bundled example (indexes are built next to the reference)."""
    folder = tmp_path_factory.mktemp("example")
    for path in DATA.iterdir():
        if path.suffix in (".bed", ".gz", ".txt"):
            shutil.copy(path, folder / path.name)
    return folder


def job(example: Path, output: Path, *, metadata: str = "metadata.txt", **options) -> dict:
    """``build_interval_dataset`` on the example (CPU) into ``output``; returns its summary."""
    options = {"device": "cpu", **options}
    return gg.build_interval_dataset(
        example / metadata, example / "reference.fa.gz", output, **options
    )


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def read_h5(path: Path) -> tuple[dict, dict]:
    with h5py.File(path) as f:
        arrays = {k: f[k][...] for k in f}
        attrs = {
            k: json.loads(v) if isinstance(v, str) and v.startswith(("[", "{")) else v
            for k, v in f.attrs.items()
        }
        links = {k: f.get(k, getlink=True) for k in f}
    attrs["_links"] = {k: v.path for k, v in links.items() if isinstance(v, h5py.SoftLink)}
    return arrays, attrs


def text(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def expected_onehot(fasta: Path, names: list[str], alphabet: str = "ACGT") -> np.ndarray:
    """One-hot of each `chrom:start-end(strand)` fetched with pysam, reverse-complemented for -."""
    comp = str.maketrans("ACGTNacgtn", "TGCANtgcan")
    with pysam.FastaFile(str(fasta)) as ref:
        seqs = []
        for name in names:
            chrom, rest = name.split(":")
            span, strand = rest[:-3], rest[-2]
            start, end = (int(x) for x in span.split("-"))
            seq = ref.fetch(chrom, start, end)
            seqs.append(seq.translate(comp)[::-1] if strand == "-" else seq)
    return gg.one_hot(seqs, alphabet=alphabet, device="cpu")


@pytest.mark.parametrize("merge", ["basset", "hull", "none"])
def test_example_dataset_matches_pysam_and_make_regions(example, tmp_path, merge):
    out = tmp_path / "ds.h5"
    summary = job(example, out, merge=merge)
    arrays, attrs = read_h5(out)
    sources, label_names = read_metadata(example / "metadata.txt")
    ref = Reference(example / "reference.fa.gz")
    peaks = load_peaks(sources, ref, skip_unknown_chroms=False)
    n_peaks = len(peaks)
    peaks = peaks[ref.lengths[peaks["chrom"]] >= 600]
    regions = make_regions(
        peaks,
        merge,
        length=600,
        min_overlap=200,
        chrom_sizes=ref.lengths,
        n_labels=4,
        device="cpu",
    )
    split = assign_splits(regions, ref.names, IntervalOptions())
    assert text(arrays["label_names"]) == label_names == [f"celltype{i}" for i in range(1, 5)]
    assert text(arrays["chrom_names"]) == ref.names
    total = 0
    for index, name in enumerate(SPLITS):
        rows = split == index
        total += int(rows.sum())
        names = text(arrays[f"{name}_names"])
        np.testing.assert_array_equal(arrays[f"{name}_labels"], regions.labels[rows])
        coords = arrays[f"{name}_coords"]
        assert coords.dtype == np.int64 and coords.shape == (rows.sum(), 3)
        np.testing.assert_array_equal(coords[:, 0], regions.chrom[rows])
        np.testing.assert_array_equal(coords[:, 1], regions.start[rows])
        np.testing.assert_array_equal(coords[:, 2] - coords[:, 1], 600)
        # rows in reference chromosome order, then start
        assert np.all(np.diff(coords[:, 0] * 10**9 + coords[:, 1]) >= 0)
        np.testing.assert_array_equal(
            arrays[f"{name}_seqs"], expected_onehot(example / "reference.fa.gz", names)
        )
        assert attrs["_links"][f"{name}_sequences"] == f"/{name}_seqs"
    assert total == len(regions) > 50
    # chrUn_tiny (400 bp) is shorter than the windows: nothing from it
    assert "chrUn_tiny" not in "".join(text(arrays["training_names"]))
    names = [text(arrays[f"{s}_names"]) for s in SPLITS]
    assert {n.split(":")[0] for n in names[2]} <= {"chr19", "chr20"}
    assert {n.split(":")[0] for n in names[1]} <= {"chr21", "chr22"}
    card = attrs["dataset_card"]
    assert card["n_regions"] == {s: len(n) for s, n in zip(SPLITS, names, strict=True)}
    assert card["labels"] == label_names and card["length"] == 600
    assert attrs["parameters"]["merge"] == merge and attrs["base_order"] == "ACGT"
    index = next(entry for entry in attrs["inputs"] if entry["role"] == "reference index")
    assert index["path"].endswith(".fai") and len(index["sha256"]) == 64
    assert attrs["tool"] == "gpu-genomics intervals"
    assert attrs["gpu_genomics_version"] == gg.__version__
    # the summary
    assert summary["output"] == str(out) and summary["regions"] == card["n_regions"]
    assert summary["n_peaks"] == len(peaks) <= n_peaks
    assert set(summary) == {"output", "regions", "n_peaks", "timings"}
    assert set(summary["timings"]) == {"read", "merge", "sequences_and_write"}
    assert all(seconds >= 0 for seconds in summary["timings"].values())
    assert listing(tmp_path) == ["ds.h5"]


def test_zarr_holds_the_same_arrays(example, tmp_path):
    job(example, tmp_path / "a.h5")
    job(example, tmp_path / "a.zarr")
    h5, _ = read_h5(tmp_path / "a.h5")
    group = zarr.open_group(str(tmp_path / "a.zarr"), mode="r")
    for name in group.array_keys():
        values = group[name][...]
        if values.dtype.kind in "OUT":
            assert text(values) == text(h5[name]), name
        else:
            np.testing.assert_array_equal(values, h5[name], err_msg=name)
    assert set(group.array_keys()) == {k for k in h5 if not k.endswith("_sequences")}


def test_custom_labels_share_columns_and_basset_names(example, tmp_path):
    job(example, tmp_path / "c.h5", merge="none", metadata="metadata_custom.txt")
    job(example, tmp_path / "p.h5", merge="none")
    custom, _ = read_h5(tmp_path / "c.h5")
    plain, _ = read_h5(tmp_path / "p.h5")
    assert text(custom["label_names"]) == ["1", "2", "3"]
    for split in SPLITS:
        p = plain[f"{split}_labels"]
        merged = np.stack([p[:, 0], p[:, 1] | p[:, 2], p[:, 3]], axis=1)
        np.testing.assert_array_equal(custom[f"{split}_labels"], merged)
    job(example, tmp_path / "b.h5", metadata="basset_targets.txt")
    assert text(read_h5(tmp_path / "b.h5")[0]["label_names"]) == [
        f"CellType{i}" for i in range(1, 5)
    ]


def test_basset_layout(example, tmp_path):
    out = tmp_path / "basset.h5"
    summary = job(example, out, output_format="basset", split="random", seed=3)
    arrays, attrs = read_h5(out)
    assert {
        "train_in",
        "train_out",
        "valid_in",
        "valid_out",
        "test_in",
        "test_out",
        "test_headers",
        "target_labels",
    } <= set(arrays)
    x = arrays["test_in"]
    assert x.dtype == np.float16 and x.shape[1:] == (4, 1, 600)
    assert arrays["test_out"].dtype == np.int8
    expected = gg.one_hot(
        [s for s in _fetch(example, text(arrays["test_headers"]))],
        dtype="float16",
        n_value=0.25,
        layout="NCL",
        device="cpu",
    )
    np.testing.assert_array_equal(x[:, :, 0, :], expected)
    n = sum(arrays[f"{s}_in"].shape[0] for s in ("train", "valid", "test"))
    assert arrays["test_in"].shape[0] == int(0.5 + 0.1 * n)
    assert arrays["valid_in"].shape[0] == int(0.5 + 0.1 * n)
    assert summary["regions"] == {
        "training": arrays["train_in"].shape[0],
        "validation": arrays["valid_in"].shape[0],
        "test": arrays["test_in"].shape[0],
    }
    assert attrs["base_order"] == "ACGT" and attrs["parameters"]["output_format"] == "basset"
    assert text(arrays["target_labels"]) == [f"celltype{i}" for i in range(1, 5)]


def _fetch(example: Path, names: list[str]) -> list[str]:
    comp = str.maketrans("ACGTNacgtn", "TGCANtgcan")
    out = []
    with pysam.FastaFile(str(example / "reference.fa.gz")) as ref:
        for name in names:
            chrom, rest = name.split(":")
            start, end = (int(x) for x in rest[:-3].split("-"))
            seq = ref.fetch(chrom, start, end)
            out.append(seq.translate(comp)[::-1] if rest[-2] == "-" else seq)
    return out


def test_random_split_is_seeded_and_ordered(example, tmp_path):
    split = {"split": "random", "valid_frac": 0.2, "test_frac": 0.3}
    job(example, tmp_path / "a.h5", **split, seed=5)
    job(example, tmp_path / "b.h5", **split, seed=5)
    job(example, tmp_path / "c.h5", **split, seed=6)
    a, b, c = (read_h5(tmp_path / f"{x}.h5")[0] for x in "abc")
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert text(a["test_names"]) != text(c["test_names"])
    n = sum(len(a[f"{s}_names"]) for s in SPLITS)
    assert len(a["test_names"]) == int(0.5 + 0.3 * n)
    assert len(a["validation_names"]) == int(0.5 + 0.2 * n)
    coords = a["training_coords"]
    assert np.all(np.diff(coords[:, 0] * 10**9 + coords[:, 1]) >= 0)


def test_exclusive_and_actg_alphabet(example, tmp_path):
    job(example, tmp_path / "e.h5", exclusive=True, alphabet="ACTG")
    arrays, attrs = read_h5(tmp_path / "e.h5")
    assert attrs["base_order"] == "ACTG"
    for split in SPLITS:
        assert np.all(arrays[f"{split}_labels"].sum(axis=1) == 1)
        names = text(arrays[f"{split}_names"])
        np.testing.assert_array_equal(
            arrays[f"{split}_seqs"], expected_onehot(example / "reference.fa.gz", names, "ACTG")
        )


def test_length_overlap_chromosome_split_and_suffix(example, tmp_path):
    """The Rust tool's example run (length 500, min_overlap 150, chr1 test, chr2 validation)
    into an output without suffix: ``.h5`` is appended."""
    summary = job(example, tmp_path / "small_dataset", min_overlap=150, length=500,
                  test_chroms=("chr1",), valid_chroms=["chr2"])  # fmt: skip
    assert summary["output"] == str(tmp_path / "small_dataset.h5")
    arrays, attrs = read_h5(tmp_path / "small_dataset.h5")
    assert arrays["training_seqs"].shape[1:] == (500, 4)
    assert {n.split(":")[0] for n in text(arrays["test_names"])} == {"chr1"}
    assert {n.split(":")[0] for n in text(arrays["validation_names"])} == {"chr2"}
    assert attrs["parameters"]["min_overlap"] == 150
    assert attrs["parameters"]["test_chroms"] == ["chr1"]
    assert attrs["dataset_card"]["length"] == 500
    assert listing(tmp_path) == ["small_dataset.h5"]


@pytest.mark.parametrize(
    ("options", "stored"),
    [({"dtype": "float16"}, np.float16), ({"dtype": "int8", "compression": "gzip"}, np.int8)],
)
def test_dtype_and_compression(example, tmp_path, options, stored):
    job(example, tmp_path / "d.h5", length=300, **options)
    arrays, attrs = read_h5(tmp_path / "d.h5")
    assert arrays["training_seqs"].dtype == stored
    job(example, tmp_path / "u.h5", length=300)
    plain, _ = read_h5(tmp_path / "u.h5")
    np.testing.assert_array_equal(arrays["training_seqs"], plain["training_seqs"])
    assert attrs["parameters"]["dtype"] == options["dtype"]
    if "compression" in options:
        with h5py.File(tmp_path / "d.h5") as f:
            assert f["training_seqs"].compression == "gzip"


def test_options_object_and_overrides(example, tmp_path):
    options = IntervalOptions(length=300, merge="hull", split="random", seed=4)
    job(example, tmp_path / "a.h5", options=options)
    job(example, tmp_path / "b.h5", length=300, merge="hull", split="random", seed=4)
    job(example, tmp_path / "c.h5", options=options, merge="none")
    a, a_attrs = read_h5(tmp_path / "a.h5")
    b, b_attrs = read_h5(tmp_path / "b.h5")
    _, c_attrs = read_h5(tmp_path / "c.h5")
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert a_attrs["parameters"] == b_attrs["parameters"]
    assert c_attrs["parameters"] == a_attrs["parameters"] | {"merge": "none"}
    assert options.merge == "hull"  # the caller's object is not changed


def test_same_input_same_output(example, tmp_path):
    for name in ("a.h5", "b.h5"):
        job(example, tmp_path / name)
    a, _ = read_h5(tmp_path / "a.h5")
    b, _ = read_h5(tmp_path / "b.h5")
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_plain_fasta_reference_and_empty_bed(example, tmp_path, caplog):
    plain = tmp_path / "ref.fa"
    plain.write_bytes(gzip.decompress((example / "reference.fa.gz").read_bytes()))
    (tmp_path / "empty.bed").write_text("track name=empty\n")
    shutil.copy(example / "celltype1.bed", tmp_path)
    (tmp_path / "meta.txt").write_text("celltype1.bed\nempty.bed\n")
    gg.build_interval_dataset(tmp_path / "meta.txt", plain, tmp_path / "o.h5", device="cpu")
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("empty.bed: holds no peaks; its label column is all zero" in w for w in warnings)
    arrays, _ = read_h5(tmp_path / "o.h5")
    labels = np.concatenate([arrays[f"{s}_labels"] for s in SPLITS])
    assert labels.shape[1] == 2 and labels[:, 0].all() and not labels[:, 1].any()
    names = text(arrays["training_names"])
    np.testing.assert_array_equal(arrays["training_seqs"], expected_onehot(plain, names))


def test_no_region_left_writes_an_empty_dataset(example, tmp_path, caplog):
    """The only region has both labels, so exclusive=True keeps none."""
    for name in ("a.bed", "b.bed"):
        (tmp_path / name).write_text("chr1\t1000\t1400\n")
    (tmp_path / "meta.txt").write_text("a.bed\nb.bed\n")
    ref = example / "reference.fa.gz"
    with caplog.at_level(logging.INFO, logger="gpu_genomics"):
        summary = gg.build_interval_dataset(tmp_path / "meta.txt", ref, tmp_path / "o.h5",
                                            exclusive=True, device="cpu")  # fmt: skip
    assert summary["regions"] == {"training": 0, "validation": 0, "test": 0}
    assert summary["n_peaks"] == 2
    assert "exclusive: kept 0 of 1 regions" in caplog.text
    assert "no regions left to write" in caplog.text
    arrays, attrs = read_h5(tmp_path / "o.h5")
    assert arrays["training_seqs"].shape == (0, 600, 4)
    assert arrays["training_labels"].shape == (0, 2)
    assert attrs["dataset_card"]["n_regions"] == summary["regions"]


# --- provenance ---------------------------------------------------------------------------
@pytest.mark.parametrize("output_format", [None, "zarr", "basset"])
def test_provenance(example, tmp_path, output_format):
    out = tmp_path / ("o.zarr" if output_format == "zarr" else "o.h5")
    job(example, out, output_format=output_format, command="intervals here", length=300)
    if output_format == "zarr":
        attrs = dict(zarr.open_group(str(out), mode="r").attrs)
    else:
        attrs = read_h5(out)[1]
    layout = {"base_order", "dataset_card", "length", "flank"}
    assert set(attrs) - set(PROVENANCE_KEYS) - {"_links"} == layout
    assert (attrs["length"], attrs["flank"]) == (300, 0)
    sources, _ = read_metadata(example / "metadata.txt")
    inputs = {
        "metadata": example / "metadata.txt",
        "reference": example / "reference.fa.gz",
        "reference index": example / "reference.fa.gz.fai",
        "reference bgzip index": example / "reference.fa.gz.gzi",
    }
    inputs.update({f"bed {s.column + 1}:{s.line}": s.path for s in sources})
    assert [f"bed {i}:{i}" for i in range(1, 5)] == [k for k in inputs if k.startswith("bed")]
    parameters = json.loads(json.dumps(dataclasses.asdict(IntervalOptions(length=300))))
    parameters["output_format"] = output_format or "hdf5"  # resolved from the suffix
    parameters["compression"] = "zstd" if output_format == "zarr" else "none"
    parameters["workers"] = None  # in this process
    check_provenance(
        {k: attrs[k] for k in PROVENANCE_KEYS},
        tool="gpu-genomics intervals",
        inputs=inputs,
        parameters=parameters,
        command="intervals here",
    )


# --- bad input ----------------------------------------------------------------------------
def bad_case(tmp_path: Path, bed_text: str) -> Path:
    """A metadata file listing one BED file of ``bed_text``."""
    (tmp_path / "bad.bed").write_text(bed_text)
    (tmp_path / "meta.txt").write_text("bad.bed\n")
    return tmp_path / "meta.txt"


def error_of(metadata, reference, output, **options) -> str:
    """The one-line InputError of a failing build_interval_dataset."""
    with pytest.raises(InputError) as info:
        gg.build_interval_dataset(metadata, reference, output, **{"device": "cpu", **options})
    message = str(info.value)
    assert "\n" not in message and "--" not in message, message
    return message


@pytest.mark.parametrize(
    ("bed", "message"),
    [
        ("chr1\t100\t200\nchr1\t300\n", "bad.bed: line 2: a BED line needs chrom, start and end"),
        ("chr1\t100\t200\nchr1\tabc\t400\n", "bad.bed: line 2: start and end must be integers"),
        ("track x\nchr1\t500\t400\n", "bad.bed: line 2: start 500 is after end 400"),
        ("chr1\t-5\t400\n", "bad.bed: line 1: negative coordinate"),
        ("chr1\t1\t400\nchrZ\t1\t400\nchr9\t1\t9\n", "chromosomes not in the reference"),
    ],
)
def test_bad_bed_names_the_line_and_writes_nothing(example, tmp_path, bed, message):
    meta = bad_case(tmp_path, bed)
    line = error_of(meta, example / "reference.fa.gz", tmp_path / "out.h5")
    assert message in line
    if "reference" in message:
        assert "chr9, chrZ" in line and "pass skip_unknown_chroms=True to drop them" in line
    assert not (tmp_path / "out.h5").exists()
    assert listing(tmp_path) == ["bad.bed", "meta.txt"]


def test_skip_unknown_chroms_drops_them(caplog, example, tmp_path):
    meta = bad_case(tmp_path, "chr1\t1000\t1400\nchrZ\t1\t400\n")
    with caplog.at_level(logging.WARNING, logger="gpu_genomics"):
        gg.build_interval_dataset(meta, example / "reference.fa.gz", tmp_path / "out.h5",
                                  skip_unknown_chroms=True, device="cpu")  # fmt: skip
    arrays, attrs = read_h5(tmp_path / "out.h5")
    assert text(arrays["training_names"]) == ["chr1:900-1500(+)"]
    assert "chrZ" in caplog.text and "dropped 1 rows" in caplog.text
    assert attrs["parameters"]["skip_unknown_chroms"] is True


def bad_setup_files(case: str, example: Path, tmp_path: Path) -> tuple:
    """``(metadata, reference, output)`` of a bad-setup case: the example's, but for the file
    the case spoils (shared by the library's and the command line's error tests)."""
    meta, ref, out = example / "metadata.txt", example / "reference.fa.gz", tmp_path / "o.h5"
    if case == "missing_bed":
        meta = tmp_path / "m.txt"
        meta.write_text(f"{example / 'celltype1.bed'}\nnope.bed\n")
    elif case == "missing_reference":
        ref = tmp_path / "nope.fa"
    elif case == "bad_metadata":
        meta = tmp_path / "m.txt"
        meta.write_text("a.bed 1 extra\n")
    elif case == "missing_metadata":
        meta = tmp_path / "nope.txt"
    elif case == "output_folder":
        out = tmp_path / "no" / "o.h5"
    elif case == "output_is_a_folder":
        out = f"{tmp_path}/"
    elif case == "plain_gzip_reference":
        ref = tmp_path / "ref.fa.gz"
        ref.write_bytes(gzip.compress(gzip.decompress((example / "reference.fa.gz").read_bytes())))
    elif case == "unknown_chroms":
        (tmp_path / "bad.bed").write_text("chr1\t1\t400\nchrZ\t1\t400\n")
        meta = tmp_path / "m.txt"
        meta.write_text("bad.bed\n")
    return meta, ref, out


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing_bed", "line 2: BED file"),
        ("missing_reference", "reference FASTA not found"),
        ("bad_metadata", "line 1: expected 'BED_PATH'"),
        ("missing_metadata", "cannot read the metadata file"),
        ("output_folder", "/no does not exist"),
        ("plain_gzip_reference", "recompress it with bgzip"),
        ("both_splits", "chromosomes in both `test_chroms` and `valid_chroms`: chr2"),
        ("fractions", "valid_frac=0.6 plus test_frac=0.6 must not exceed 1"),
        ("basset_zarr", "output_format='basset' writes HDF5; name the output .h5"),
        ("bad_format", "output_format='npz' is not one of hdf5, zarr, basset"),
    ],
)
def test_bad_setup_names_the_problem(example, tmp_path, case, message):
    meta, ref, out = bad_setup_files(case, example, tmp_path)
    options: dict = {}
    if case == "both_splits":
        options = {"test_chroms": ["chr1", "chr2"], "valid_chroms": ("chr2",)}
    elif case == "fractions":
        options = {"valid_frac": 0.6, "test_frac": 0.6}
    elif case == "basset_zarr":
        options, out = {"output_format": "basset"}, tmp_path / "o.zarr"
    elif case == "bad_format":
        options = {"output_format": "npz"}
    before = listing(tmp_path)
    assert message in error_of(meta, ref, out, **options)
    assert not out.exists() and listing(tmp_path) == before


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"length": 0}, "length=0 must be a positive integer"),
        ({"batch_rows": 0}, "batch_rows=0 must be a positive integer"),
        ({"min_overlap": -1}, "min_overlap=-1 must be 0 or more"),
        ({"merge": "union"}, "merge='union' is not one of basset, hull, none"),
        ({"split": "half"}, "split='half' is not one of chrom, random"),
        ({"dtype": "int64"}, "dtype='int64' is not one of uint8, int8, float16, float32"),
        ({"alphabet": "TGCA"}, "alphabet='TGCA' is not one of ACGT, ACTG"),
        ({"valid_frac": 2}, "valid_frac=2 must lie between 0 and 1"),
        ({"test_frac": -0.5}, "test_frac=-0.5 must lie between 0 and 1"),
        ({"compression": "bz2"}, "compression='bz2' is not one of"),
        ({"device": "tpu"}, "device='tpu' is not one of auto, gpu, cpu"),
    ],
)
def test_bad_parameters_name_them_and_write_nothing(example, tmp_path, options, message):
    assert message in error_of(example / "metadata.txt", example / "reference.fa.gz",
                               tmp_path / "o.h5", **options)  # fmt: skip
    assert listing(tmp_path) == []


def test_unknown_keyword_is_a_type_error_naming_it(example, tmp_path):
    with pytest.raises(TypeError, match=r"^build_interval_dataset\(\) got an unexpected keyword "
                       "argument 'lenght'$"):  # fmt: skip
        gg.build_interval_dataset(example / "metadata.txt", example / "reference.fa.gz",
                                  tmp_path / "o.h5", lenght=1)  # fmt: skip
    with pytest.raises(TypeError):  # options after the paths are keyword-only
        gg.build_interval_dataset(example / "metadata.txt", example / "reference.fa.gz",
                                  tmp_path / "o.h5", None, "cpu")  # fmt: skip
    assert listing(tmp_path) == []


def test_interrupted_run_leaves_nothing(example, tmp_path, monkeypatch):
    real = job_module._write_sequences
    calls = []

    def write_sequences(*args, **kwargs):
        calls.append(1)
        real(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(job_module, "_write_sequences", write_sequences)
    for name, options in (("o.h5", {}), ("o.zarr", {}), ("b.h5", {"output_format": "basset"})):
        with pytest.raises(KeyboardInterrupt):
            job(example, tmp_path / name, **options)
        assert listing(tmp_path) == []
    assert len(calls) == 3


@pytest.mark.gpu
@pytest.mark.parametrize("merge", ["basset", "hull", "none"])
def test_gpu_and_cpu_write_identical_arrays(example, tmp_path, merge):
    for device in ("cpu", "gpu"):
        summary = job(example, tmp_path / f"{device}.h5", merge=merge, device=device)
        assert read_h5(tmp_path / f"{device}.h5")[1]["device"] == device
        assert summary["output"] == str(tmp_path / f"{device}.h5")
    cpu, _ = read_h5(tmp_path / "cpu.h5")
    gpu, _ = read_h5(tmp_path / "gpu.h5")
    assert cpu.keys() == gpu.keys()
    for key in cpu:
        np.testing.assert_array_equal(cpu[key], gpu[key], err_msg=key)


def test_gpu_without_cudf_merges_with_pandas(monkeypatch, caplog, example):
    import logging

    from gpu_genomics.intervals import regions as regions_module

    sources, _ = read_metadata(example / "metadata.txt")
    ref = Reference(example / "reference.fa.gz")
    peaks = load_peaks(sources, ref, skip_unknown_chroms=False)
    peaks = peaks[ref.lengths[peaks["chrom"]] >= 600]
    expected = make_regions(
        peaks,
        "hull",
        length=600,
        min_overlap=200,
        chrom_sizes=ref.lengths,
        n_labels=4,
        device="cpu",
    )
    monkeypatch.setitem(sys.modules, "cudf", None)
    monkeypatch.setattr(regions_module, "resolve_device", lambda device: "gpu")
    regions_module._dataframe_library.cache_clear()
    try:
        with caplog.at_level(logging.INFO, logger="gpu_genomics"):
            got = make_regions(
                peaks,
                "hull",
                length=600,
                min_overlap=200,
                chrom_sizes=ref.lengths,
                n_labels=4,
                device="gpu",
            )
    finally:
        regions_module._dataframe_library.cache_clear()
    assert "cuDF is not importable" in caplog.text
    np.testing.assert_array_equal(got.start, expected.start)
    np.testing.assert_array_equal(got.labels, expected.labels)


@pytest.mark.parametrize("max_gap", [0, 5, 1000])
def test_window_spans_cover_every_window(max_gap):
    from gpu_genomics.intervals.reference import window_spans

    rng = np.random.default_rng(max_gap)
    chromosome = np.arange(20_000, dtype=np.int64)
    starts = np.sort(rng.integers(0, 20_000 - 50, 300))
    span_starts, span_ends, buffer_starts = window_spans(starts, 50, max_gap)
    assert np.all(span_starts[1:] > span_ends[:-1] + max_gap)  # spans apart by more than the gap
    buffer = np.concatenate([chromosome[s:e] for s, e in zip(span_starts, span_ends, strict=True)])
    for start, at in zip(starts, buffer_starts, strict=True):
        np.testing.assert_array_equal(buffer[at : at + 50], chromosome[start : start + 50])
    covered = len(set().union(*(range(s, s + 50) for s in starts)))
    assert covered <= len(buffer) <= covered + max_gap * (len(starts) - 1)


def test_small_batches_give_the_same_arrays(example, tmp_path):
    from gpu_genomics.intervals.job import build_interval_dataset

    plain = tmp_path / "ref.fa"
    plain.write_bytes(gzip.decompress((example / "reference.fa.gz").read_bytes()))
    outputs = []
    for reference in (example / "reference.fa.gz", plain):
        for batch_rows in (4096, 7):
            out = tmp_path / f"{reference.name}-{batch_rows}.h5"
            options = IntervalOptions(batch_rows=batch_rows, split="random", seed=2)
            build_interval_dataset(
                example / "metadata.txt", reference, out, options, device="cpu", progress=False
            )
            outputs.append(read_h5(out)[0])
    for other in outputs[1:]:
        for key in outputs[0]:
            np.testing.assert_array_equal(other[key], outputs[0][key], err_msg=key)


def test_metadata_with_spaces_bom_and_custom_labels(example, tmp_path):
    folder = tmp_path / "my peaks"
    folder.mkdir()
    shutil.copy(example / "celltype1.bed", folder / "cell type 1.bed")
    shutil.copy(example / "celltype2.bed.gz", folder / "cell type 2.bed.gz")
    (folder / "meta.txt").write_text("\ufeffcell type 1.bed\ncell type 2.bed.gz\n", "utf-8")
    (folder / "custom.txt").write_text("cell type 1.bed 5\ncell type 2.bed.gz 7\n")
    sources, names = read_metadata(folder / "meta.txt")
    assert names == ["cell type 1", "cell type 2"] and [s.column for s in sources] == [0, 1]
    sources, names = read_metadata(folder / "custom.txt")
    assert names == ["5", "7"] and sources[1].path.name == "cell type 2.bed.gz"


def test_peaks_past_the_chromosome_end_name_the_build(example, tmp_path):
    ref = example / "reference.fa.gz"
    meta = bad_case(tmp_path, "chr1\t1000\t1400\nchr1\t900000\t900100\n")
    line = error_of(meta, ref, tmp_path / "out.h5")
    assert "start past the end of their chromosome" in line and "chr1:900000" in line
    meta = bad_case(tmp_path, "chr1\t1\t99999999999999999999\n")
    assert "beyond any chromosome" in error_of(meta, ref, tmp_path / "out.h5")
    assert listing(tmp_path) == ["bad.bed", "meta.txt"]


def test_zarr_format_without_suffix_and_folder_output(example, tmp_path):
    summary = job(example, tmp_path / "nosuffix", output_format="zarr")
    assert (tmp_path / "nosuffix.zarr" / "zarr.json").exists()
    assert summary["output"] == str(tmp_path / "nosuffix.zarr")
    line = error_of(example / "metadata.txt", example / "reference.fa.gz", f"{tmp_path}/")
    assert "is a folder" in line
    assert listing(tmp_path) == ["nosuffix.zarr"]


@pytest.mark.parametrize("compressed", [True, False])
def test_reference_fetch_and_windows_match_pysam(example, tmp_path, compressed):
    path = example / "reference.fa.gz"
    if not compressed:
        path = tmp_path / "ref.fa"
        path.write_bytes(gzip.decompress((example / "reference.fa.gz").read_bytes()))
    rng = np.random.default_rng(3)
    with Reference(path) as ref, pysam.FastaFile(str(path)) as truth:
        for name, size in zip(ref.names, ref.lengths.tolist(), strict=True):
            for _ in range(20):
                start, end = sorted(rng.integers(0, size + 1, 2).tolist())
                assert ref.fetch(name, start, end).tobytes().decode() == truth.fetch(
                    name, start, end
                )
            if size >= 61:
                starts = np.sort(rng.integers(0, size - 61, 30))
                data, at = ref.windows(name, starts, 61)
                for s, a in zip(starts.tolist(), at.tolist(), strict=True):
                    assert data[a : a + 61].tobytes().decode() == truth.fetch(name, s, s + 61)


def test_chromosome_lists_given_as_one_string_are_comma_separated(example, tmp_path):
    options = gg.IntervalOptions(test_chroms="chr1, chr2", valid_chroms="chr3")
    assert options.test_chroms == ("chr1", "chr2") and options.valid_chroms == ("chr3",)
    listed = gg.build_interval_dataset(
        example / "metadata.txt",
        example / "reference.fa.gz",
        tmp_path / "s.h5",
        test_chroms="chr1,chr2",
        device="cpu",
    )
    tupled = gg.build_interval_dataset(
        example / "metadata.txt",
        example / "reference.fa.gz",
        tmp_path / "t.h5",
        test_chroms=("chr1", "chr2"),
        device="cpu",
    )
    assert listed["regions"] == tupled["regions"] and listed["regions"]["test"] > 0


@pytest.mark.parametrize("seed", [-1, 1.5, "x", True])
def test_a_bad_seed_is_refused_before_any_work(example, tmp_path, seed):
    with pytest.raises(InputError, match=r"^seed=.* must be a non-negative integer$"):
        gg.build_interval_dataset(
            example / "metadata.txt",
            example / "reference.fa.gz",
            tmp_path / "o.h5",
            split="random",
            seed=seed,
            device="cpu",
        )
    assert list(tmp_path.iterdir()) == []
