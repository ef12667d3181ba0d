"""The intervals job end to end: arrays against pysam and make_regions, layouts, bad input."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pysam
import pytest
import zarr

import gpu_genomics as gg
from gpu_genomics import cli
from gpu_genomics.intervals.bed import read_metadata
from gpu_genomics.intervals.job import IntervalOptions, assign_splits, load_peaks
from gpu_genomics.intervals.reference import Reference
from gpu_genomics.intervals.regions import make_regions

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


def run(*args) -> None:
    cli.main([str(a) for a in args])


def job(example: Path, output: Path, *extra, metadata: str = "metadata.txt") -> None:
    """Run `intervals` on the example (CPU, quiet) into `output`, with extra flags."""
    run(
        "intervals",
        "-i",
        example / metadata,
        "-f",
        example / "reference.fa.gz",
        "-o",
        output,
        "--device",
        "cpu",
        "--quiet",
        *extra,
    )


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
    job(example, out, "--merge", merge)
    arrays, attrs = read_h5(out)
    sources, label_names = read_metadata(example / "metadata.txt")
    ref = Reference(example / "reference.fa.gz")
    peaks = load_peaks(sources, ref, False)
    peaks = peaks[ref.lengths[peaks["chrom"]] >= 600]
    regions = make_regions(peaks, merge, 600, 200, ref.lengths, 4, device="cpu")
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
    assert attrs["reference_index_checksum"].startswith("sha256:")
    assert "intervals" in attrs["command"] and attrs["gpu_genomics_version"] == gg.__version__


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
    job(example, tmp_path / "c.h5", "--merge", "none", metadata="metadata_custom.txt")
    job(example, tmp_path / "p.h5", "--merge", "none")
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
    job(example, out, "--format", "basset", "--split", "random", "--seed", 3)
    arrays, _ = read_h5(out)
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
    split = ["--split", "random", "--valid-frac", "0.2", "--test-frac", "0.3"]
    job(example, tmp_path / "a.h5", *split, "--seed", 5)
    job(example, tmp_path / "b.h5", *split, "--seed", 5)
    job(example, tmp_path / "c.h5", *split, "--seed", 6)
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
    job(example, tmp_path / "e.h5", "-e", "--alphabet", "ACTG")
    arrays, attrs = read_h5(tmp_path / "e.h5")
    assert attrs["base_order"] == "ACTG"
    for split in SPLITS:
        assert np.all(arrays[f"{split}_labels"].sum(axis=1) == 1)
        names = text(arrays[f"{split}_names"])
        np.testing.assert_array_equal(
            arrays[f"{split}_seqs"], expected_onehot(example / "reference.fa.gz", names, "ACTG")
        )


def test_rust_tool_spelling_and_suffix(example, tmp_path):
    args = [
        "-i",
        example / "metadata.txt",
        "--fastq",
        example / "reference.fa.gz",
        "-o",
        tmp_path / "small_dataset",
        "--min_overlap",
        "150",
        "-l",
        "500",
        "--test_chr",
        "chr1",
        "--valid_chr",
        "chr2",
        "--loglevel",
        "warning",
    ]
    cli.genomic_interval_pipeline_main([str(a) for a in args])
    arrays, attrs = read_h5(tmp_path / "small_dataset.h5")
    assert arrays["training_seqs"].shape[1:] == (500, 4)
    assert {n.split(":")[0] for n in text(arrays["test_names"])} == {"chr1"}
    assert {n.split(":")[0] for n in text(arrays["validation_names"])} == {"chr2"}
    assert attrs["parameters"]["min_overlap"] == 150
    assert attrs["command"].startswith("genomic_interval_pipeline")


def test_same_input_same_output(example, tmp_path):
    for name in ("a.h5", "b.h5"):
        job(example, tmp_path / name)
    a, _ = read_h5(tmp_path / "a.h5")
    b, _ = read_h5(tmp_path / "b.h5")
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_plain_fasta_reference_and_empty_bed(example, tmp_path):
    plain = tmp_path / "ref.fa"
    plain.write_bytes(gzip.decompress((example / "reference.fa.gz").read_bytes()))
    (tmp_path / "empty.bed").write_text("track name=empty\n")
    shutil.copy(example / "celltype1.bed", tmp_path)
    (tmp_path / "meta.txt").write_text("celltype1.bed\nempty.bed\n")
    run(
        "intervals",
        "-i",
        tmp_path / "meta.txt",
        "-f",
        plain,
        "-o",
        tmp_path / "o.h5",
        "--quiet",
        "--device",
        "cpu",
    )
    arrays, _ = read_h5(tmp_path / "o.h5")
    labels = np.concatenate([arrays[f"{s}_labels"] for s in SPLITS])
    assert labels.shape[1] == 2 and labels[:, 0].all() and not labels[:, 1].any()
    names = text(arrays["training_names"])
    np.testing.assert_array_equal(arrays["training_seqs"], expected_onehot(plain, names))


# --- bad input ----------------------------------------------------------------------------
def error_of(capsys, *args) -> str:
    with pytest.raises(SystemExit) as exit_info:
        run(*args)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines and "Traceback" not in "\n".join(lines)
    return lines[-1]


def bad_case(tmp_path: Path, example: Path, bed_text: str) -> list:
    (tmp_path / "bad.bed").write_text(bed_text)
    (tmp_path / "meta.txt").write_text("bad.bed\n")
    return [
        "intervals",
        "-i",
        tmp_path / "meta.txt",
        "-f",
        example / "reference.fa.gz",
        "-o",
        tmp_path / "out.h5",
        "--device",
        "cpu",
    ]


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
def test_bad_bed_is_one_line_and_writes_nothing(capsys, example, tmp_path, bed, message):
    line = error_of(capsys, *bad_case(tmp_path, example, bed))
    assert message in line
    if "reference" in message:
        assert "chr9, chrZ" in line and "--skip-unknown-chroms" in line
    assert not (tmp_path / "out.h5").exists()
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_skip_unknown_chroms_drops_them(capsys, example, tmp_path):
    args = bad_case(tmp_path, example, "chr1\t1000\t1400\nchrZ\t1\t400\n")
    run(*args, "--skip-unknown-chroms", "--quiet")
    arrays, _ = read_h5(tmp_path / "out.h5")
    assert text(arrays["training_names"]) == ["chr1:900-1500(+)"]
    assert "chrZ" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing_bed", "line 2: BED file"),
        ("missing_reference", "reference FASTA not found"),
        ("bad_metadata", "line 1: expected 'BED_PATH'"),
        ("missing_metadata", "cannot read the metadata file"),
        ("output_folder", "output folder does not exist"),
        ("plain_gzip_reference", "recompress it with bgzip"),
        ("both_splits", "both --test_chr and --valid_chr"),
    ],
)
def test_bad_setup_is_one_line(capsys, example, tmp_path, case, message):
    meta, ref, out = example / "metadata.txt", example / "reference.fa.gz", tmp_path / "o.h5"
    extra: list = []
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
    elif case == "plain_gzip_reference":
        ref = tmp_path / "ref.fa.gz"
        ref.write_bytes(gzip.compress(gzip.decompress((example / "reference.fa.gz").read_bytes())))
    elif case == "both_splits":
        extra = ["--test_chr", "chr1,chr2", "--valid_chr", "chr2"]
    line = error_of(
        capsys, "intervals", "-i", meta, "-f", ref, "-o", out, "--device", "cpu", *extra
    )
    assert message in line
    assert not out.exists()


def test_console_script_runs():
    out = subprocess.run(
        [sys.executable, "-m", "gpu_genomics", "intervals", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for flag in ("--min_overlap", "--test_chr", "--valid_chr", "--fastq", "--merge", "--split"):
        assert flag in out


@pytest.mark.gpu
@pytest.mark.parametrize("merge", ["basset", "hull", "none"])
def test_gpu_and_cpu_write_identical_arrays(example, tmp_path, merge):
    for device in ("cpu", "gpu"):
        job(example, tmp_path / f"{device}.h5", "--merge", merge, "--device", device)
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
    peaks = load_peaks(sources, ref, False)
    peaks = peaks[ref.lengths[peaks["chrom"]] >= 600]
    expected = make_regions(peaks, "hull", 600, 200, ref.lengths, 4, device="cpu")
    monkeypatch.setitem(sys.modules, "cudf", None)
    monkeypatch.setattr(regions_module, "resolve_device", lambda device: "gpu")
    regions_module._dataframe_library.cache_clear()
    try:
        with caplog.at_level(logging.INFO, logger="gpu_genomics"):
            got = make_regions(peaks, "hull", 600, 200, ref.lengths, 4, device="gpu")
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


def test_peaks_past_the_chromosome_end_name_the_build(capsys, example, tmp_path):
    line = error_of(
        capsys, *bad_case(tmp_path, example, "chr1\t1000\t1400\nchr1\t900000\t900100\n")
    )
    assert "start past the end of their chromosome" in line and "chr1:900000" in line
    line = error_of(capsys, *bad_case(tmp_path, example, "chr1\t1\t99999999999999999999\n"))
    assert "beyond any chromosome" in line


def test_zarr_format_without_suffix_and_folder_output(capsys, example, tmp_path):
    job(example, tmp_path / "nosuffix", "--format", "zarr")
    assert (tmp_path / "nosuffix.zarr" / "zarr.json").exists()
    line = error_of(
        capsys,
        "intervals",
        "-i",
        example / "metadata.txt",
        "-f",
        example / "reference.fa.gz",
        "-o",
        f"{tmp_path}/",
        "--device",
        "cpu",
    )
    assert "is a folder" in line


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
