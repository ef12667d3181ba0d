"""The ``vcf`` job read in parts: the same arrays whatever the partitions, the way the file is
stored (bgzip with or without its index, plain text, gzip, BCF), the chunk shape or the
workers; the blocks each range owns; errors naming the file's line from any partition."""

from __future__ import annotations

import itertools
import os
import signal
import zlib
from pathlib import Path

import numpy as np
import pytest
from compare_outputs import arrays_of, same

import gpu_genomics as gg
from gpu_genomics.errors import InputError
from gpu_genomics.execution import prefetched
from gpu_genomics.variants import blocks as B
from gpu_genomics.variants import convert as convert_module

msprime = pytest.importorskip("msprime")
pysam = pytest.importorskip("pysam")

FILTERED = {"min_maf": 0.05, "max_missing": 0.2, "multiallelic": "split", "standardize": True}


def simulated_text(seed: int = 7) -> str:
    """msprime: 30 diploid and 4 haploid samples, JC69 mutations (multi-allelic sites), 3%
    missing calls; two contigs, the second not in the header."""
    ts = msprime.sim_ancestry(
        samples=[msprime.SampleSet(30, ploidy=2), msprime.SampleSet(4, ploidy=1)],
        sequence_length=3e5,
        recombination_rate=1e-8,
        population_size=10_000,
        random_seed=seed,
    )
    ts = msprime.sim_mutations(ts, rate=4e-8, random_seed=seed, model=msprime.JC69())
    import io

    handle = io.StringIO()
    ts.write_vcf(handle, position_transform=lambda x: 1 + np.asarray(x))
    rng = np.random.default_rng(seed)
    lines = []
    for k, line in enumerate(handle.getvalue().splitlines(keepends=True)):
        if line.startswith("#"):
            lines.append(line)
            continue
        fields = line.rstrip("\n").split("\t")
        for j in np.flatnonzero(rng.random(len(fields) - 9) < 0.03):
            fields[9 + j] = ".|." if "|" in fields[9 + j] else "."
        if k % 2 == 0:
            fields[2] = f"rs{k}"
        lines.append("\t".join(fields) + "\n")
    body = [line for line in lines if not line.startswith("#")]
    half = len(body) // 2
    body[half:] = [line.replace("1\t", "chrZ\t", 1) for line in body[half:]]  # a new contig
    # chrZ positions restart: keep them sorted for tabix
    return "".join(line for line in lines if line.startswith("#")) + "".join(body)


def write_bgzf(path: Path, data: bytes, block_text: int) -> None:
    """A bgzip file with blocks of ``block_text`` bytes of text (many small blocks)."""
    with open(path, "wb") as handle:
        for start in range(0, len(data), block_text):
            piece = data[start : start + block_text]
            compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
            body = compressor.compress(piece) + compressor.flush()
            header = bytes.fromhex("1f8b08040000000000ff0600") + b"BC" + (2).to_bytes(2, "little")
            size = len(header) + 2 + len(body) + 8
            handle.write(header + (size - 1).to_bytes(2, "little") + body)
            handle.write(zlib.crc32(piece).to_bytes(4, "little") + len(piece).to_bytes(4, "little"))
        handle.write(bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000"))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """The same records as bgzip (small blocks) with a .tbi, with a .csi, without an index;
    as plain text, gzip and BCF."""
    folder = tmp_path_factory.mktemp("vcf-parts")
    text = simulated_text()
    plain = folder / "plain.vcf"
    plain.write_text(text)
    paths = {"plain": plain}
    for name in ("tbi", "csi", "noindex"):
        paths[name] = folder / f"{name}.vcf.gz"
        write_bgzf(paths[name], text.encode(), 3000)
    paths["tiny"] = folder / "tiny.vcf.gz"  # 64-byte blocks: most own no line
    write_bgzf(paths["tiny"], text.encode(), 64)
    pysam.tabix_index(str(paths["tbi"]), preset="vcf", force=True)
    pysam.tabix_index(str(paths["csi"]), preset="vcf", force=True, csi=True)
    import gzip

    paths["gzip"] = folder / "gzip.vcf.gz"
    paths["gzip"].write_bytes(gzip.compress(text.encode()))
    paths["bcf"] = folder / "sim.bcf"
    declared = folder / "declared.vcf"  # BCF names contigs by their index in the header
    declared.write_text(text.replace("#CHROM", "##contig=<ID=chrZ>\n#CHROM", 1))
    with pysam.VariantFile(str(declared)) as src:
        with pysam.VariantFile(str(paths["bcf"]), "wb", header=src.header) as dst:
            for record in src:
                dst.write(record)
    return paths


def arrays(path: Path) -> dict:
    """The arrays of an output, strings as str (HDF5 gives bytes)."""
    out = {}
    for name, stored in arrays_of(path)[0].items():
        out[name] = stored
        if stored.dtype.kind in "OSUT":
            strings = [v.decode() if isinstance(v, bytes) else str(v) for v in stored.ravel()]
            out[name] = np.array(strings).reshape(stored.shape)
    return out


def assert_same_arrays(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name, value in a.items():
        assert same(value, b[name]), name


@pytest.mark.parametrize("options", [{}, FILTERED], ids=["all", "filtered"])
def test_every_partitioning_and_storage_gives_the_same_arrays(inputs, tmp_path, options):
    reference = tmp_path / "one.zarr"
    summary = gg.convert_vcf(inputs["plain"], reference, device="cpu", partitions=1, **options)
    expected = arrays(reference)
    assert summary["variants_read"] > 500 and 0 < summary["variants_kept"]
    runs = [("tbi", 2), ("tbi", 40), ("csi", 7), ("noindex", 13), ("noindex", 500),
            ("plain", 9), ("gzip", 3), ("bcf", 4), ("tiny", 2000)]  # fmt: skip
    for name, n in runs:
        out = tmp_path / f"{name}-{n}.zarr"
        gg.convert_vcf(inputs[name], out, device="cpu", partitions=n, **options)
        got = arrays(out)
        if name == "bcf":  # htslib writes QUAL '.' and IDs as the text has them
            got, expected_here = _without(got), _without(expected)
        else:
            expected_here = expected
        assert_same_arrays(expected_here, got)
    h5 = tmp_path / "parts.h5"
    gg.convert_vcf(inputs["noindex"], h5, device="cpu", partitions=11, **options)
    assert_same_arrays(expected, arrays(h5))


def _without(values: dict) -> dict:
    return {k: v for k, v in values.items() if k not in ("variant_quality",)}


def test_the_arrays_equal_the_sequential_reader_and_the_plain_text_scan(
    inputs, tmp_path, monkeypatch
):
    """Against :func:`gpu_genomics.read_vcf` (one reader, chunk after chunk), with many
    partitions of a plain file cut into 4 KiB blocks."""
    monkeypatch.setattr(B, "SPAN_BYTES", 4096)
    out = tmp_path / "o.zarr"
    gg.convert_vcf(inputs["plain"], out, device="cpu", partitions=64, chunk_variants=37)
    got = arrays(out)
    whole = gg.read_vcf(inputs["plain"])
    for name in ("call_genotype", "call_genotype_phased", "variant_position", "variant_contig"):
        np.testing.assert_array_equal(got[name], whole[name], err_msg=name)
    assert list(got["contig_id"]) == ["1", "chrZ"]
    assert got["call_genotype"].shape[2] == 2 and (got["call_genotype"] == -2).any()


def test_chunks_follow_the_options(inputs, tmp_path):
    import zarr

    out = tmp_path / "o.zarr"
    gg.convert_vcf(inputs["tbi"], out, device="cpu", chunk_variants=37, chunk_samples=7)
    group = zarr.open_group(str(out), mode="r")
    assert group["call_genotype"].chunks == (37, 7, 2)
    assert group["call_genotype_phased"].chunks == (37, 7)
    assert group["dosage"].chunks == (7, 37)
    assert group["variant_position"].chunks == (37,)
    assert group["sample_id"].chunks == (7,)
    default = tmp_path / "d.zarr"
    gg.convert_vcf(inputs["tbi"], default, device="cpu")
    assert_same_arrays(arrays(out), arrays(default))
    n_variants, n_samples = zarr.open_group(str(default))["call_genotype"].shape[:2]
    assert zarr.open_group(str(default))["call_genotype"].chunks == (
        min(1000, n_variants),
        min(10_000, n_samples),
        2,
    )


# --- blocks ------------------------------------------------------------------------------
def _all_blocks(path: Path) -> list[int]:
    return [offset for offset, _ in B._bgzf_blocks(str(path), 0)]


def test_any_cut_into_block_ranges_reads_every_line_once(inputs):
    path = inputs["noindex"]
    header = gg.VcfReader(path).header
    file = B.text_file(path, header.n_bytes)
    starts = [s for s in _all_blocks(path) if s >= file.data_block]
    body = inputs["plain"].read_bytes()[header.n_bytes :]
    rng = np.random.default_rng(0)
    for n_cuts in (0, 1, 5, len(starts) - 1):
        cuts = sorted(rng.choice(starts[1:], size=n_cuts, replace=False).tolist())
        bounds = [file.data_block, *cuts, file.size]
        read = b""
        owned_lines = 0
        for start, stop in itertools.pairwise(bounds):
            lines = B.OwnedLines(file, start, stop, batch_bytes=5000)
            for text, position in lines:
                read += text
                owner, _ = lines.owners(text, position)
                assert (owner >= 0).all() and (owner < len(lines.block_offsets)).all()
                owned_lines += len(owner)
            assert lines.block_offsets == [s for s in starts if start <= s < stop]
        assert read == body
        assert owned_lines == body.count(b"\n")


def test_block_starts_from_the_index_and_from_the_headers(inputs, tmp_path):
    starts = _all_blocks(inputs["tbi"])
    for name in ("tbi", "csi"):
        from_index = B.index_block_starts(inputs[name])
        assert from_index is not None and len(from_index) > 3
        assert set(from_index.tolist()) <= set(starts)
    assert B.index_block_starts(inputs["noindex"]) is None
    stale = tmp_path / "stale.vcf.gz"
    stale.write_bytes(inputs["tbi"].read_bytes())
    (tmp_path / "stale.vcf.gz.tbi").write_bytes(Path(f"{inputs['tbi']}.tbi").read_bytes())
    os.utime(stale, (2e9, 2e9))  # newer than its index
    assert B.index_block_starts(stale) is None
    size = inputs["noindex"].stat().st_size
    for target in [0, 1, starts[3] - 1, starts[3], starts[3] + 1, size - 40, size - 1]:
        expected = next((s for s in starts if s >= target), None)
        assert B._next_bgzf_block(str(inputs["noindex"]), target, size) == expected


def test_a_gzip_that_is_not_bgzip_is_read_through_a_copy_that_is_removed(inputs, tmp_path):
    out = tmp_path / "o.h5"
    gg.convert_vcf(inputs["gzip"], out, device="cpu", partitions=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.h5"]


# --- errors ------------------------------------------------------------------------------
def _with_bad_record(inputs: dict, tmp_path: Path) -> tuple[Path, int]:
    lines = inputs["plain"].read_text().splitlines(keepends=True)
    bad = len(lines) - 40
    fields = lines[bad - 1].split("\t")
    fields[12] = "0/x"
    lines[bad - 1] = "\t".join(fields)
    path = tmp_path / "bad.vcf.gz"
    write_bgzf(path, "".join(lines).encode(), 3000)
    return path, bad


@pytest.mark.parametrize("partitions", [1, 6, 60])
def test_a_bad_record_is_named_by_its_line_from_any_partition(inputs, tmp_path, partitions):
    path, line = _with_bad_record(inputs, tmp_path)
    with pytest.raises(InputError) as info:
        gg.convert_vcf(path, tmp_path / "o.zarr", device="cpu", partitions=partitions)
    message = str(info.value)
    assert message.startswith(f"{path}: line {line} (") and "bad genotype '0/x'" in message
    assert "\n" not in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.vcf.gz"]


# --- on a cluster --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def client():
    pytest.importorskip("distributed")
    from gpu_genomics.execution import cluster

    with cluster(workers=2, device="cpu") as running:
        yield running


@pytest.mark.parametrize("suffix", [".zarr", ".h5"])
def test_on_a_cluster_the_arrays_are_the_in_process_ones(inputs, tmp_path, client, suffix):
    local, remote = tmp_path / f"local{suffix}", tmp_path / f"cluster{suffix}"
    gg.convert_vcf(inputs["tbi"], local, device="cpu", **FILTERED)
    gg.convert_vcf(inputs["tbi"], remote, device="cpu", client=client, chunk_variants=50,
                   **FILTERED)  # fmt: skip
    assert_same_arrays(arrays(local), arrays(remote))


def test_a_bad_record_on_a_cluster_is_the_in_process_error(inputs, tmp_path, client):
    path, line = _with_bad_record(inputs, tmp_path)
    with pytest.raises(InputError, match=rf"^{path}: line {line} \(.*bad genotype '0/x'"):
        gg.convert_vcf(path, tmp_path / "o.zarr", device="cpu", client=client, partitions=9)


def test_a_worker_killed_while_writing_still_gives_the_same_output(
    inputs, tmp_path, client, monkeypatch
):
    local, remote = tmp_path / "local.zarr", tmp_path / "cluster.zarr"
    gg.convert_vcf(inputs["tbi"], local, device="cpu", chunk_variants=40)
    real = convert_module.map_in_order
    killed: list[int] = []

    def kill_after_the_first_result(client_, function, arguments, *, name):
        for k, result in enumerate(real(client_, function, arguments, name=name)):
            yield result
            if name == "vcf-rows" and k == 0 and not killed:
                pid = next(iter(client.run(os.getpid).values()))
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

    monkeypatch.setattr(convert_module, "map_in_order", kill_after_the_first_result)
    gg.convert_vcf(inputs["tbi"], remote, device="cpu", client=client, chunk_variants=40)
    assert len(killed) == 1
    assert_same_arrays(arrays(local), arrays(remote))
    client.wait_for_workers(2, timeout=60)


# --- the first pass's scan ---------------------------------------------------------------
def _records_text(path: Path) -> bytes:
    header = gg.VcfReader(path).header
    return path.read_bytes()[header.n_bytes :]


def test_the_scan_finds_what_the_parse_finds(inputs):
    """Alleles, ploidy and contigs of every record, without parsing them."""
    from gpu_genomics.variants.reader import RecordParser

    header = gg.VcfReader(inputs["plain"]).header
    text = _records_text(inputs["plain"])
    scanner = RecordParser("x", header.samples, header.contigs)
    parser = RecordParser("x", header.samples, header.contigs)
    n_alleles = scanner.scan(text)
    chunk = parser.parse(text, 1, 0)
    np.testing.assert_array_equal(n_alleles, chunk.n_alleles)
    assert (n_alleles > 2).any()
    assert scanner.max_ploidy == parser.max_ploidy == 2
    assert scanner.contigs == parser.contigs == ["1", "chrZ"]


def test_records_the_scan_does_not_judge_are_parsed(tmp_path):
    """GT not first in FORMAT, a haploid '.', a triploid call: the scan gives up on such a batch
    and the parse reads it; the arrays are those of a parse of every record."""
    from gpu_genomics.variants.reader import RecordParser

    tricky = Path(__file__).parent / "data" / "vcf" / "tricky.vcf"
    header = gg.VcfReader(tricky).header
    text = _records_text(tricky)
    assert RecordParser("x", header.samples, header.contigs).scan(text) is None
    first = text.split(b"\n", 1)[0] + b"\n"  # the first record alone: GT first, diploid
    assert RecordParser("x", header.samples, header.contigs).scan(first).tolist() == [2]
    out = tmp_path / "o.zarr"
    gg.convert_vcf(tricky, out, device="cpu", partitions=1)
    whole = gg.read_vcf(tricky)
    got = arrays(out)
    for name in ("call_genotype", "variant_position", "variant_allele"):
        assert same(got[name], whole[name]), name


@pytest.mark.parametrize("suffix", [".zarr", ".h5"])
def test_rows_kept_on_disk_by_chunk_of_samples_give_the_same_arrays(
    inputs, tmp_path, monkeypatch, suffix
):
    """Every task's rows along samples spooled to disk (as at biobank sizes), seven samples
    a chunk: the arrays are those kept in memory, and the spool files are gone."""
    from gpu_genomics.variants import partitions

    expected = tmp_path / f"memory{suffix}"
    gg.convert_vcf(inputs["tbi"], expected, device="cpu", chunk_samples=7, **FILTERED)
    written = []
    real = partitions.SpooledRows.write

    def write(self, fd, first_row, values):
        written.append(self.path)
        real(self, fd, first_row, values)

    monkeypatch.setattr(partitions, "SPILL_BYTES", 0)
    monkeypatch.setattr(partitions.SpooledRows, "write", write)
    (tmp_path / "spilled").mkdir()
    out = tmp_path / "spilled" / f"o{suffix}"
    gg.convert_vcf(inputs["tbi"], out, device="cpu", chunk_samples=7, chunk_variants=64,
                   **FILTERED)  # fmt: skip
    names = {Path(p).name.split("-")[0] for p in written}
    assert names == {"call_genotype", "call_genotype_phased", "dosage", "dosage_standardized"}
    assert_same_arrays(arrays(expected), arrays(out))
    assert sorted(p.name for p in (tmp_path / "spilled").iterdir()) == [f"o{suffix}"]


# --- found in review: a reader thread left behind, records never checked, spool files kept ---
def test_leaving_a_prefetched_loop_early_stops_its_thread():
    import threading
    import time

    def consume() -> None:
        for _ in prefetched(iter([1, 2])):
            time.sleep(0.3)  # the producer has queued the last item and its end mark
            break

    worker = threading.Thread(target=consume, daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive()


def _vcf(records: list[str]) -> str:
    header = (
        "##fileformat=VCFv4.2\n##contig=<ID=1>\n"
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tA\tB\n"
    )
    return header + "".join(records)


@pytest.mark.parametrize("options", [{}, {"biallelic_only": True}, {"min_maf": 0.2}])
def test_a_bad_record_in_any_batch_fails_in_time_whatever_the_filters(
    tmp_path, monkeypatch, options
):
    """Small batches, the bad record in the middle (so a batch is still queued when it
    fails), in a record the filters would drop: a one-line error, quickly."""
    import threading

    from gpu_genomics.variants import partitions

    monkeypatch.setattr(partitions, "BATCH_BYTES", 200)
    records = [f"1\t{i}\t.\tA\tC,G\t.\t.\t.\tGT\t0/1\t1/2\n" for i in range(1, 200)]
    records[100] = "1\t101\t.\tA\tC,G\t.\t.\t.\tGT\t0/x\t2/9\n"
    path = tmp_path / "bad.vcf"
    path.write_text(_vcf(records))
    errors: list[BaseException] = []

    def run() -> None:
        try:
            gg.convert_vcf(path, tmp_path / "o.zarr", device="cpu", partitions=3, **options)
        except BaseException as error:
            errors.append(error)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "the job hung"
    assert len(errors) == 1 and isinstance(errors[0], InputError)
    assert f"{path}: line 105 " in str(errors[0]) and "bad genotype '0/x'" in str(errors[0])


def test_a_failed_task_closes_and_removes_its_spool_files(tmp_path, monkeypatch):
    from gpu_genomics.variants import partitions

    monkeypatch.setattr(partitions, "SPILL_BYTES", 0)
    records = [f"1\t{i}\t.\tA\tC\t.\t.\t.\tGT\t0/1\t1/1\n" for i in range(1, 50)]
    records[40] = "1\t41\t.\tA\tC\tbad\t.\t.\tGT\t0/1\t1/1\n"  # QUAL: found by pass 2
    path = tmp_path / "bad.vcf"
    path.write_text(_vcf(records))
    with pytest.raises(InputError, match=r"line 45: QUAL 'bad' is not a number"):
        gg.convert_vcf(path, tmp_path / "o.zarr", device="cpu", chunk_variants=8)
    if os.path.isdir("/proc/self/fd"):  # no descriptor left open on a (deleted) spool file
        targets = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                targets.append(os.readlink(f"/proc/self/fd/{fd}"))
            except OSError:
                continue
        assert not [t for t in targets if str(tmp_path) in t], targets
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.vcf"]
