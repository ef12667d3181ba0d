"""The ``vcf`` job without filters reads its file once (in this process): the text is read and
parsed once, and every Zarr store file (array metadata, chunks) is the two passes' byte for
byte, every HDF5 dataset the two passes' (values, chunks, attributes), whatever the chunk
shape; a later call of higher ploidy falls back to two passes; a write failing behind the
parse is raised and leaves nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_vcf_partitions import simulated_text, write_bgzf

import gpu_genomics as gg
from gpu_genomics.errors import InputError
from gpu_genomics.variants import convert as C
from gpu_genomics.variants import partitions as P
from gpu_genomics.variants.reader import RecordParser

pytest.importorskip("zarr")

HEADER = (
    "##fileformat=VCFv4.2\n##contig=<ID=1>\n##contig=<ID=2>\n"
    '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
    "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tA\tB\tC\n"
)
#: Multi-allelic sites, an ALT-less site, haploid and diploid calls in one record, missing
#: calls and alleles, phasing, three contigs (one only in records), 3-digit allele counts.
RECORDS = [
    "1\t1\trs1\tA\tC\t50\tPASS\t.\tGT\t0/1\t1|1\t./.\n",
    "1\t5\t.\tA\tC,G,T\t.\tq10\t.\tGT\t0/3\t2\t1/.\n",
    "1\t9\t.\tA\t.\t3.5\tPASS\t.\tGT\t0/0\t0\t.\n",
    "2\t2\trs4\tAT\tA,ATT\t.\t.\t.\tGT\t2|1\t0/0\t1/2\n",
    "chrX\t7\t.\tG\tC\t.\tPASS\t.\tGT\t1\t0\t.\n",
    "chrX\t8\t.\tG\tC,A\t.\tPASS\t.\tGT\t0/2\t.|1\t1/1\n",
]


def vcf(path: Path, records: list[str]) -> Path:
    """The records as bgzip of 256-byte blocks (so that batches are small), ``path.gz``."""
    out = path.with_name(path.name + ".gz")
    write_bgzf(out, (HEADER + "".join(records)).encode(), 256)
    return out


def records(n: int, seed: int = 3) -> list[str]:
    """``n`` records cycling through :data:`RECORDS` (positions increasing per contig)."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        fields = RECORDS[k % len(RECORDS)].rstrip("\n").split("\t")
        fields[1] = str(10 * k + 1)
        if rng.random() < 0.3:
            fields[9 + int(rng.integers(3))] = "./."
        out.append("\t".join(fields) + "\n")
    order = {"1": 0, "2": 1, "chrX": 2}
    return sorted(out, key=lambda line: order[line.split("\t")[0]])


def store_files(path: Path) -> dict[str, bytes]:
    """Every file of a Zarr store; the root's ``zarr.json`` (attributes, consolidated
    metadata) without the provenance and the seconds, which differ from run to run."""
    files = {}
    for file in sorted(path.rglob("*")):
        if file.is_file():
            files[str(file.relative_to(path))] = file.read_bytes()
    root = json.loads(files.pop("zarr.json"))
    volatile = {"created", "command", "seconds", "host", "started", "finished", "environment"}

    def scrub(value):
        if isinstance(value, dict):
            return {k: scrub(v) for k, v in value.items() if k not in volatile}
        if isinstance(value, list):
            return [scrub(v) for v in value]
        return value

    files["zarr.json (scrubbed)"] = json.dumps(scrub(root), sort_keys=True).encode()
    return files


def two_passes(monkeypatch, *args, **kwargs) -> dict:
    with monkeypatch.context() as patch:
        patch.setattr(P, "ONE_PASS", False)
        return gg.convert_vcf(*args, device="cpu", **kwargs)


class Counted:
    """Counts the text the job reads (every batch of :class:`~.blocks.OwnedLines`), the
    pass-1 scans and the pass-2 tasks."""

    def __init__(self, monkeypatch) -> None:
        self.text = 0
        self.batches = 0
        self.scans = 0
        self.tasks = 0
        real_lines, real_scan, real_rows = P.OwnedLines, RecordParser.scan, P.write_rows
        counter = self

        class Lines(real_lines):
            def __iter__(self):
                for text, position in super().__iter__():
                    counter.text += len(text)
                    counter.batches += 1
                    yield text, position

        def scan(self, *args, **kwargs):
            counter.scans += 1
            return real_scan(self, *args, **kwargs)

        def write_rows(*args):
            counter.tasks += 1
            return real_rows(*args)

        monkeypatch.setattr(P, "OwnedLines", Lines)
        monkeypatch.setattr(RecordParser, "scan", scan)
        monkeypatch.setattr(P, "write_rows", write_rows)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory) -> Path:
    """msprime (diploid and haploid samples, multi-allelic sites, missing calls, a contig
    not in the header) as bgzip of small blocks."""
    path = tmp_path_factory.mktemp("single") / "sim.vcf.gz"
    write_bgzf(path, simulated_text().encode(), 3000)
    return path


def body_bytes(path: Path) -> int:
    import gzip

    return len(gzip.decompress(path.read_bytes())) - len(HEADER)


@pytest.mark.parametrize("multiallelic", ["nonref", "split"])
def test_without_filters_the_text_is_read_and_parsed_once(tmp_path, monkeypatch, multiallelic):
    path = vcf(tmp_path / "in.vcf", records(200))
    counted = Counted(monkeypatch)
    monkeypatch.setattr(P, "BATCH_BYTES", 500)  # many batches
    gg.convert_vcf(path, tmp_path / "o.zarr", device="cpu", chunk_variants=7,
                   multiallelic=multiallelic)  # fmt: skip
    assert (counted.text, counted.scans, counted.tasks) == (body_bytes(path), 0, 0)
    assert counted.batches > 5
    # the two passes read it twice: the count would show a second read
    counted.text = 0
    two_passes(monkeypatch, path, tmp_path / "two.zarr", chunk_variants=7,
               multiallelic=multiallelic)  # fmt: skip
    # (split: pass 2 reads it once for the variants, once for the columns)
    passes = 2 if multiallelic == "nonref" else 3
    assert counted.text == passes * body_bytes(path) and counted.scans > 0 and counted.tasks > 0
    assert store_files(tmp_path / "o.zarr") == store_files(tmp_path / "two.zarr")


@pytest.mark.parametrize(
    ("n", "chunk_variants", "chunk_samples", "batch_bytes", "multiallelic"),
    [
        (200, 7, 2, 500, "nonref"),
        (200, 7, 2, 500, "split"),
        (60, 1, 1, 300, "split"),  # a chunk a row, a sample a chunk
        (5, 1000, 10_000, 1 << 20, "split"),  # fewer rows than a chunk: created at the end
        (40, 40, 3, 200, "nonref"),  # exactly one chunk
        (41, 8, 3, 100, "split"),  # batches smaller than a record's line
    ],
)
@pytest.mark.parametrize("write_bytes", [P.WRITE_BYTES, 1])  # many chunks a call, or one
def test_one_pass_writes_the_two_passes_store_byte_for_byte(  # noqa: PLR0917
    tmp_path, monkeypatch, n, chunk_variants, chunk_samples, batch_bytes, multiallelic, write_bytes
):
    path = vcf(tmp_path / "in.vcf", records(n))
    options = {"chunk_variants": chunk_variants, "chunk_samples": chunk_samples,
               "multiallelic": multiallelic}  # fmt: skip
    monkeypatch.setattr(P, "BATCH_BYTES", batch_bytes)
    monkeypatch.setattr(P, "WRITE_BYTES", write_bytes)
    counted = Counted(monkeypatch)
    one = gg.convert_vcf(path, tmp_path / "one.zarr", device="cpu", **options)
    assert counted.tasks == 0
    two = two_passes(monkeypatch, path, tmp_path / "two.zarr", **options)
    assert counted.tasks > 0
    one.pop("seconds"), two.pop("seconds")
    assert one == two
    assert store_files(tmp_path / "one.zarr") == store_files(tmp_path / "two.zarr")


@pytest.mark.parametrize("chunk_variants", [61, 1000])
def test_simulated_file_one_pass_equals_two_passes_and_two_workers(
    simulated, tmp_path, monkeypatch, chunk_variants
):
    pytest.importorskip("distributed")
    from gpu_genomics.execution import cluster

    options = {"chunk_variants": chunk_variants, "chunk_samples": 16, "multiallelic": "split"}
    monkeypatch.setattr(P, "BATCH_BYTES", 20_000)
    counted = Counted(monkeypatch)
    gg.convert_vcf(simulated, tmp_path / "one.zarr", device="cpu", **options)
    assert counted.tasks == 0 and counted.scans == 0
    two_passes(monkeypatch, simulated, tmp_path / "two.zarr", **options)
    with cluster(workers=2, device="cpu") as client:
        gg.convert_vcf(simulated, tmp_path / "workers.zarr", device="cpu", client=client,
                       **options)  # fmt: skip
    one = store_files(tmp_path / "one.zarr")
    assert one == store_files(tmp_path / "two.zarr")
    assert one == store_files(tmp_path / "workers.zarr")


def hdf5_contents(path: Path) -> dict[str, object]:
    """Every dataset of an HDF5 file (dtype, shape, chunks, values, attributes) and the root's
    attributes without the provenance and the seconds; ``maxshape`` left out (the one pass's
    datasets grow along their variants or columns axis)."""
    import h5py

    out: dict[str, object] = {}
    with h5py.File(path, "r") as f:
        for name, d in f.items():
            values = d[()]
            if d.dtype.kind == "O":
                values = values.tolist()
            else:
                values = (values.dtype.str, values.tobytes())
            attrs = {k: np.asarray(v).tolist() for k, v in d.attrs.items()}
            out[name] = (d.dtype.str, d.shape, d.chunks, values, attrs)
        root = dict(f.attrs)
    volatile = {"created", "command", "seconds", "host", "started", "finished", "environment"}
    for key in ("provenance", "summary"):
        if key in root:
            value = json.loads(root[key]) if isinstance(root[key], str) else root[key]
            if isinstance(value, dict):
                value = {k: v for k, v in value.items() if k not in volatile}
            root[key] = value
    out["/ attrs"] = {k: (v if isinstance(v, dict) else np.asarray(v).tolist())
                      for k, v in root.items() if k not in volatile}  # fmt: skip
    return out


@pytest.mark.parametrize(
    ("n", "chunk_variants", "chunk_samples", "batch_bytes", "multiallelic"),
    [
        (200, 7, 2, 500, "nonref"),
        (200, 7, 2, 500, "split"),
        (5, 1000, 10_000, 1 << 20, "split"),  # fewer rows than a chunk: created at the end
        (41, 8, 3, 100, "split"),  # batches smaller than a record's line
    ],
)
def test_the_hdf5_output_is_read_once_and_equals_the_two_passes(  # noqa: PLR0917
    tmp_path, monkeypatch, n, chunk_variants, chunk_samples, batch_bytes, multiallelic
):
    path = vcf(tmp_path / "in.vcf", records(n))
    options = {"chunk_variants": chunk_variants, "chunk_samples": chunk_samples,
               "multiallelic": multiallelic}  # fmt: skip
    monkeypatch.setattr(P, "BATCH_BYTES", batch_bytes)
    counted = Counted(monkeypatch)
    one = gg.convert_vcf(path, tmp_path / "one.h5", device="cpu", **options)
    assert (counted.text, counted.scans, counted.tasks) == (body_bytes(path), 0, 0)
    two = two_passes(monkeypatch, path, tmp_path / "two.h5", **options)
    assert counted.tasks > 0
    one.pop("seconds"), two.pop("seconds")
    assert one == two
    got, want = hdf5_contents(tmp_path / "one.h5"), hdf5_contents(tmp_path / "two.h5")
    assert got.keys() == want.keys()
    for name in want:
        assert got[name] == want[name], name
    zarr_one = gg.convert_vcf(path, tmp_path / "one.zarr", device="cpu", **options)
    zarr_one.pop("seconds")
    assert zarr_one == one


def test_filters_still_take_two_passes(tmp_path, monkeypatch):
    path = vcf(tmp_path / "in.vcf", records(30))
    counted = Counted(monkeypatch)
    gg.convert_vcf(path, tmp_path / "o.h5", device="cpu", chunk_variants=7, min_maf=0.1)
    assert counted.text >= body_bytes(path) and counted.tasks > 0


@pytest.mark.parametrize("suffix", [".zarr", ".h5"])
@pytest.mark.parametrize("failing", [1, 9])  # the first write, and one after a resize
def test_a_write_failing_behind_the_parse_is_raised_and_leaves_nothing(
    tmp_path, monkeypatch, suffix, failing
):
    path = vcf(tmp_path / "in.vcf", records(200))
    monkeypatch.setattr(P, "BATCH_BYTES", 400)
    calls = {"n": 0}
    real = P.write_to

    def write_to(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == failing:
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(P, "write_to", write_to)
    with pytest.raises(OSError, match="No space left"):
        gg.convert_vcf(path, tmp_path / f"o{suffix}", device="cpu", chunk_variants=7)
    assert calls["n"] >= failing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.vcf.gz"]


def test_a_higher_ploidy_after_the_first_chunk_falls_back_to_two_passes(tmp_path, monkeypatch):
    lines = records(60)
    lines[50] = lines[50].replace("\tGT\t", "\tGT\t", 1).rsplit("\t", 1)[0] + "\t0/1/1\n"
    path = vcf(tmp_path / "in.vcf", lines)
    monkeypatch.setattr(P, "BATCH_BYTES", 300)
    counted = Counted(monkeypatch)
    summary = gg.convert_vcf(path, tmp_path / "one.zarr", device="cpu", chunk_variants=5)
    assert summary["ploidy"] == 3 and counted.tasks > 0  # the two passes wrote it
    assert counted.text > 2 * body_bytes(path)  # part of a read, then two
    two_passes(monkeypatch, path, tmp_path / "two.zarr", chunk_variants=5)
    assert store_files(tmp_path / "one.zarr") == store_files(tmp_path / "two.zarr")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.vcf.gz", "one.zarr", "two.zarr"]


def test_a_higher_ploidy_within_the_first_chunk_stays_in_one_pass(tmp_path, monkeypatch):
    lines = records(60)
    lines[3] = lines[3].rsplit("\t", 1)[0] + "\t0/1/1\n"
    path = vcf(tmp_path / "in.vcf", lines)
    monkeypatch.setattr(P, "BATCH_BYTES", 300)
    counted = Counted(monkeypatch)
    summary = gg.convert_vcf(path, tmp_path / "one.zarr", device="cpu", chunk_variants=50)
    assert summary["ploidy"] == 3 and counted.tasks == 0
    two_passes(monkeypatch, path, tmp_path / "two.zarr", chunk_variants=50)
    assert store_files(tmp_path / "one.zarr") == store_files(tmp_path / "two.zarr")


@pytest.mark.parametrize("bad", [2, 150])  # before and after the arrays are created
def test_a_bad_record_is_a_one_line_error_naming_its_line_and_leaves_nothing(
    tmp_path, monkeypatch, bad
):
    lines = records(200)
    lines[bad] = lines[bad].replace("\tGT\t", "\tGT\t").rsplit("\t", 1)[0] + "\t0/z\n"
    path = vcf(tmp_path / "in.vcf", lines)
    monkeypatch.setattr(P, "BATCH_BYTES", 400)
    counted = Counted(monkeypatch)
    with pytest.raises(InputError) as error:
        gg.convert_vcf(path, tmp_path / "o.zarr", device="cpu", chunk_variants=7)
    message = str(error.value)
    assert "\n" not in message and f"{path}: line {5 + 1 + bad} " in message, message
    assert "0/z" in message and counted.tasks == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.vcf.gz"]


def test_no_records_is_the_same_error_in_one_pass(tmp_path):
    path = vcf(tmp_path / "in.vcf", [])
    with pytest.raises(InputError, match=r"no variant records; nothing to convert"):
        gg.convert_vcf(path, tmp_path / "o.zarr", device="cpu")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.vcf.gz"]


def test_wide_files_take_the_two_passes():
    filters = P.Filters(
        min_maf=0.0, max_missing=1.0, biallelic_only=False, multiallelic="nonref", standardize=False
    )
    options = C.VcfOptions(chunk_variants=1000)
    assert C.one_pass_applies(filters, options, None, 16_000)
    assert not C.one_pass_applies(filters, options, None, 17_000)  # a chunk > 32 MiB
    assert not C.one_pass_applies(filters, options, object(), 10)  # a cluster


# --- the pieces of the one pass: writes behind the parse, newlines found by the reading thread
def test_write_behind_runs_calls_in_order_bounded_and_raises_the_first_error():
    import threading
    import time

    from gpu_genomics.execution import WriteBehind

    done: list[int] = []
    threads = set()

    def call(k: int) -> None:
        time.sleep(0.002)
        threads.add(threading.current_thread().name)
        done.append(k)

    with WriteBehind(depth=2) as writes:
        for k in range(20):
            writes.submit(call, k)
            assert len(writes._pending) <= 2
    assert done == list(range(20))
    assert len(threads) == 1 and threading.current_thread().name not in threads

    def fail() -> None:
        raise OSError("disk full")

    writes = WriteBehind(depth=1)
    writes.submit(fail)
    with pytest.raises(OSError, match="disk full"):
        writes.drain()
    # leaving by an error: the calls not started are cancelled, the running one finished
    started: list[int] = []
    gate = threading.Event()
    with pytest.raises(KeyboardInterrupt), WriteBehind(depth=3) as writes:
        writes.submit(lambda: (started.append(0), gate.wait(5)))
        writes.submit(started.append, 1)
        gate.set()
        raise KeyboardInterrupt
    assert started[0] == 0 and len(started) <= 2


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 63, 64, 65, 5000])
def test_newlines_are_every_newline_whatever_the_alignment(n):
    from gpu_genomics.variants.reader import newlines

    rng = np.random.default_rng(n)
    for density in (0.0, 0.02, 0.5, 1.0):
        data = np.where(rng.random(n) < density, 10, rng.integers(0, 256, n)).astype(np.uint8)
        text = data.tobytes()
        for start in range(min(n, 9)):  # unaligned starts
            want = np.flatnonzero(data[start:] == 10)
            got = newlines(text[start:])
            assert got.dtype == np.int64 and np.array_equal(got, want)
