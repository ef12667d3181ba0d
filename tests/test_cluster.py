"""Jobs on a real Dask cluster (``distributed.LocalCluster``, 2 worker processes): the same
output as in-process, whatever the workers do, and the same one-line errors."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from compare_outputs import arrays_of, same

import gpu_genomics as gg
from gpu_genomics.errors import InputError
from gpu_genomics.execution import SCHEDULER_ENV, cluster, require_distributed
from gpu_genomics.intervals import cluster as intervals_cluster
from gpu_genomics.io.store import ArrayWriter

distributed = pytest.importorskip("distributed")

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data"
#: Attributes that say how and when the output was made, not what it holds.
RUN_DETAILS = ("command", "created", "parameters")


@pytest.fixture(scope="module")
def client():
    with cluster(workers=2, device="cpu") as running:
        yield running


def outputs_equal(a: Path, b: Path) -> None:
    """Every array equal, every attribute equal but the run details (and the worker count)."""
    arrays_a, attrs_a = arrays_of(a)
    arrays_b, attrs_b = arrays_of(b)
    assert arrays_a.keys() == arrays_b.keys()
    for name in arrays_a:
        assert same(arrays_a[name], arrays_b[name]), name
    assert attrs_a.keys() == attrs_b.keys()
    for owner in attrs_a:
        left = {k: v for k, v in attrs_a[owner].items() if k not in RUN_DETAILS}
        right = {k: v for k, v in attrs_b[owner].items() if k not in RUN_DETAILS}
        assert repr(left) == repr(right), owner


def parameters_of(path: Path) -> dict:
    import json

    root = arrays_of(path)[1]["/"]
    value = root["parameters"]
    return json.loads(value) if isinstance(value, str) else dict(value)


def pair(tmp_path: Path, suffix: str) -> tuple[Path, Path]:
    """The in-process and the cluster output: the same name (it is in the dataset card), in
    two folders."""
    (tmp_path / "local").mkdir(exist_ok=True)
    (tmp_path / "cluster").mkdir(exist_ok=True)
    return tmp_path / "local" / f"d{suffix}", tmp_path / "cluster" / f"d{suffix}"


def build(output: Path, **options) -> dict:
    return gg.build_interval_dataset(
        DATA / "metadata.txt", DATA / "reference.fa.gz", output, device="cpu", **options
    )


@pytest.mark.parametrize("merge", ["basset", "hull", "none"])
@pytest.mark.parametrize("split", ["chrom", "random"])
@pytest.mark.parametrize("suffix", [".h5", ".zarr"])
def test_intervals_on_a_cluster_equals_in_process(client, tmp_path, merge, split, suffix):
    options = {"merge": merge, "split": split, "seed": 4, "valid_frac": 0.2}
    local_out, cluster_out = pair(tmp_path, suffix)
    local = build(local_out, **options)
    remote = build(cluster_out, client=client, **options)
    assert remote["regions"] == local["regions"] and remote["n_peaks"] == local["n_peaks"]
    outputs_equal(local_out, cluster_out)
    assert parameters_of(cluster_out)["workers"] == 2
    assert parameters_of(local_out)["workers"] is None
    assert [p.name for p in cluster_out.parent.iterdir()] == [cluster_out.name]  # no leftovers


@pytest.mark.parametrize(
    "options",
    [
        {"output_format": "basset", "split": "random"},
        {"exclusive": True, "merge": "none", "length": 300},
        {"alphabet": "ACTG", "dtype": "float16", "compression": "gzip"},
        {"skip_unknown_chroms": True, "test_chroms": "chr1", "valid_chroms": ("chr2", "chr3")},
    ],
)
def test_every_layout_and_option_on_a_cluster(client, tmp_path, options):
    local_out, cluster_out = pair(tmp_path, ".h5")
    local = build(local_out, **options)
    remote = build(cluster_out, client=client, **options)
    assert remote["regions"] == local["regions"]
    outputs_equal(local_out, cluster_out)


def test_a_task_per_row_range_when_rows_outnumber_a_task(client, tmp_path, monkeypatch):
    # small chunks give several row tasks per split, some spanning two chromosomes
    monkeypatch.setattr(intervals_cluster, "row_chunk_rows", lambda writer, n_labels: 7)
    local_out, cluster_out = pair(tmp_path, ".zarr")
    build(local_out, split="random", seed=2)
    build(cluster_out, split="random", seed=2, client=client)
    outputs_equal(local_out, cluster_out)
    import zarr

    assert zarr.open_group(str(cluster_out))["training_seqs"].chunks[0] == 7


@pytest.mark.parametrize("suffix", [".h5", ".zarr"])
def test_a_worker_killed_during_the_sequences_still_gives_the_same_output(
    client, tmp_path, monkeypatch, suffix
):
    """The first row task's result arrives, then a worker process is killed: Dask reruns its
    tasks (and the merges it held) elsewhere, and the output is the in-process one."""
    local_out, cluster_out = pair(tmp_path, suffix)
    build(local_out, split="random")
    monkeypatch.setattr(intervals_cluster, "row_chunk_rows", lambda writer, n_labels: 5)
    real_results, real_write_rows = intervals_cluster.ordered_results, intervals_cluster.write_rows
    killed: list[int] = []

    def kill_after_the_first_row_task(futures, **kwargs):
        for result in real_results(futures, **kwargs):
            yield result
            if not killed:
                pid = next(iter(client.run(os.getpid).values()))
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

    def write_rows(*args, **kwargs):  # only the sequence stage's results kill a worker
        monkeypatch.setattr(intervals_cluster, "ordered_results", kill_after_the_first_row_task)
        try:
            return real_write_rows(*args, **kwargs)
        finally:
            monkeypatch.setattr(intervals_cluster, "ordered_results", real_results)

    monkeypatch.setattr(intervals_cluster, "write_rows", write_rows)
    build(cluster_out, split="random", client=client)
    assert len(killed) == 1
    outputs_equal(local_out, cluster_out)
    client.wait_for_workers(2, timeout=60)


def test_a_bad_bed_file_fails_cleanly_with_the_in_process_error(client, tmp_path):
    bad = tmp_path / "bad.bed"
    bad.write_text("chr1\t100\t200\nchr1\t10\t5\n")
    metadata = tmp_path / "metadata.txt"
    metadata.write_text(f"{DATA / 'celltype1.bed'}\n{bad}\n{DATA / 'celltype3.bed'}\n")
    messages = []
    for client_or_none in (None, client):
        with pytest.raises(InputError) as info:
            gg.build_interval_dataset(
                metadata,
                DATA / "reference.fa.gz",
                tmp_path / "o.zarr",
                client=client_or_none,
                device="cpu",
            )
        messages.append(str(info.value))
    assert messages[0] == messages[1] == f"{bad}: line 2: start 10 is after end 5; swap or fix them"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.bed", "metadata.txt"]


def test_the_command_line_runs_on_a_local_cluster(tmp_path):
    from gpu_genomics.cli import main

    args = ["intervals", "-i", DATA / "metadata.txt", "-f", DATA / "reference.fa.gz", "--quiet"]
    local_out, cluster_out = pair(tmp_path, ".zarr")
    main([str(a) for a in [*args, "-o", cluster_out, "--workers", "2", "--device", "cpu"]])
    build(local_out)
    outputs_equal(local_out, cluster_out)
    assert parameters_of(cluster_out)["workers"] == 2


def test_joining_a_running_scheduler(client, tmp_path, monkeypatch):
    address = client.scheduler.address
    first, second = pair(tmp_path, ".h5")
    with cluster(scheduler=address) as joined:
        build(first, client=joined)
    monkeypatch.setenv(SCHEDULER_ENV, address)  # no option: the environment's scheduler
    with cluster() as joined:
        assert joined is not None and joined.scheduler.address == address
        build(second, client=joined)
    outputs_equal(first, second)


def test_cluster_options_are_checked(monkeypatch):
    monkeypatch.delenv(SCHEDULER_ENV, raising=False)
    with cluster() as none:
        assert none is None  # no option: in this process
    with pytest.raises(InputError, match="not both"), cluster(workers=2, scheduler="tcp://x:1"):
        pass
    with (
        pytest.raises(InputError, match=r"^workers=0 must be a positive integer$"),
        cluster(workers=0),
    ):
        pass
    with pytest.raises(InputError, match="cannot connect"), cluster(scheduler="tcp://127.0.0.1:9"):
        pass
    monkeypatch.setitem(__import__("sys").modules, "distributed", None)
    with pytest.raises(InputError, match=r"pip install 'gpu-genomics\[dask\]'"):
        require_distributed()


def test_windowed_submits_at_most_a_window_ahead():
    from gpu_genomics.execution import windowed

    submitted: list[int] = []

    class Done:
        def __init__(self, value):
            self.value = value

        def result(self):
            return self.value

    def submit(item):
        submitted.append(item)
        return Done(item)

    seen = []
    for future in windowed(submit, list(range(10)), window=3):
        assert len(submitted) <= len(seen) + 1 + 3
        seen.append(future.result())
    assert seen == list(range(10)) == submitted
    assert np.array_equal(seen, np.arange(10))


@pytest.mark.gpu
def test_intervals_on_a_gpu_cluster_equals_the_cpu_in_process(tmp_path):
    """On a GPU machine: a LocalCUDACluster (one worker per GPU, with dask-cuda) or a local
    cluster sharing the GPU gives the CPU's output."""
    if os.environ.get("GPU_GENOMICS_EMULATE_GPU"):
        pytest.skip("worker processes do not see the emulated GPU")
    local_out, cluster_out = pair(tmp_path, ".zarr")
    build(local_out, split="random")
    with cluster(workers=1, device="gpu") as gpu_client:
        gg.build_interval_dataset(
            DATA / "metadata.txt",
            DATA / "reference.fa.gz",
            cluster_out,
            split="random",
            device="gpu",
            client=gpu_client,
        )
    arrays_a, _ = arrays_of(local_out)
    arrays_b, _ = arrays_of(cluster_out)
    assert arrays_a.keys() == arrays_b.keys()
    assert all(same(arrays_a[k], arrays_b[k]) for k in arrays_a)


ENCODINGS = [
    {},
    {"length": 700, "pad": "center", "dtype": "float16", "n_value": 0.25, "layout": "NCL"},
    {"encoding": "tokens", "max_len": 300, "scheme": "hyenadna"},
    {"encoding": "kmer-tokens", "scheme": "dnabert"},
    {"encoding": "kmer-tokens", "scheme": "nucleotide-transformer", "k": 6},
    {"encoding": "kmer-counts", "k": 3},
    {"encoding": "kmer-counts", "k": 7, "canonical": True},
]


@pytest.fixture(scope="module")
def fastas(tmp_path_factory):
    """The example's records as gzip (read here), plain FASTA (the workers read byte ranges)
    and indexed bgzip (the workers read ranges of it through its .fai and .gzi)."""
    import gzip

    import pysam

    folder = tmp_path_factory.mktemp("fastas")
    plain = folder / "sequences.fa"
    plain.write_bytes(gzip.decompress((REPO / "examples" / "sequences.fa.gz").read_bytes()))
    bgzip = folder / "sequences.bgz.fa.gz"
    pysam.tabix_compress(str(plain), str(bgzip), force=True)
    pysam.faidx(str(bgzip))
    return {"gzip": REPO / "examples" / "sequences.fa.gz", "plain": plain, "bgzip": bgzip}


@pytest.mark.parametrize("options", ENCODINGS)
@pytest.mark.parametrize("suffix", [".h5", ".zarr"])
@pytest.mark.parametrize("kind", ["gzip", "plain", "bgzip"])
def test_encode_on_a_cluster_equals_in_process(  # noqa: PLR0917 (fixtures and parameters)
    client, tmp_path, monkeypatch, fastas, options, suffix, kind
):
    # blocks of 7 chunked rows: about 70 tasks over the 500 records, written in parallel
    monkeypatch.setattr(ArrayWriter, "common_chunk_rows", lambda self, row_bytes: 7)
    local_out, cluster_out = pair(tmp_path, suffix)
    fasta = fastas[kind]
    local = gg.encode_file(fasta, local_out, device="cpu", **options)
    remote = gg.encode_file(
        fasta, cluster_out, device="cpu", batch_size=20, client=client, **options
    )
    assert remote["arrays"] == local["arrays"] and remote["n_sequences"] == 500
    outputs_equal(local_out, cluster_out)
    assert parameters_of(cluster_out)["workers"] == 2


@pytest.mark.parametrize("name", ["bad.fa", "bad.fa.gz"])
def test_encode_errors_on_a_cluster_are_the_in_process_ones(client, tmp_path, name):
    """A bad record in the 3rd block of a plain FASTA (read by a worker) or a gzip one (read
    here) is named as in-process: its index in the file, its name and position."""
    import gzip

    text = "".join(f">r{i}\nACGTN\n" for i in range(45)) + ">bad\nAC*T\n>r46\nAC\n"
    fasta = tmp_path / name
    fasta.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    messages = []
    for client_or_none in (None, client):
        with pytest.raises(InputError) as info:
            gg.encode_file(
                fasta, tmp_path / "o.zarr", client=client_or_none, device="cpu", batch_size=20
            )
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    assert messages[0].startswith(f"{fasta}: record 45 ('bad'): '*' at position 2 is not")
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def wrapped_fasta(line_end: str = "\n") -> str:
    """Records as users have them: wrapped at 60 bases, descriptions, lower case, IUPAC
    letters, empty records and lengths that are whole lines."""
    rng = np.random.default_rng(3)
    letters = np.array(list("ACGTNacgtnRYKM"))
    text = []
    for i, n in enumerate([0, 1, 59, 60, 61, 120, 0, 250, 7, 180, *rng.integers(0, 400, 30)]):
        bases = "".join(rng.choice(letters, n))
        lines = [bases[j : j + 60] for j in range(0, n, 60)]
        text.append(f">rec{i} sample={i % 3} len={n}{line_end}")
        text.extend(line + line_end for line in lines)
    return "".join(text)


def bgzip_indexed(plain, out):
    import pysam

    pysam.tabix_compress(str(plain), str(out), force=True)
    pysam.faidx(str(out))
    return out


def located(path):
    """The records of a plain or an indexed bgzip FASTA as the cluster path finds them (the
    locate tasks run here, one per range of 7 listed records)."""
    from gpu_genomics.sequence.fastx import (
        IndexedRecords,
        bgzf_split_points,
        locate_records,
        plain_records,
    )

    points = bgzf_split_points(path)
    if points is None:
        return plain_records(path)
    cuts = [*points[::7].tolist(), -1]
    starts = [locate_records(str(path), a, b) for a, b in itertools.pairwise(cuts)]
    return IndexedRecords(str(path), "bgzf", np.append(np.concatenate(starts), -1))


@pytest.mark.parametrize("line_end", ["\n", "\r\n"])
def test_workers_read_every_block_as_the_whole_file_reads(tmp_path, fastas, line_end):
    """Wrapped records with empty ones (which samtools faidx leaves out of the .fai): every
    block a worker reads is that slice of the whole file, names, lengths and bases."""
    from gpu_genomics.sequence.fastx import read_block

    plain = tmp_path / "wrapped.fa"
    plain.write_bytes(wrapped_fasta(line_end).encode())
    bgzip = bgzip_indexed(plain, tmp_path / "wrapped.fa.gz")
    assert len(Path(f"{bgzip}.fai").read_text().splitlines()) == 38  # two empty records
    whole = gg.SequenceBatch.from_fasta(plain)
    for path, kind in ((plain, "plain"), (bgzip, "bgzf"), (fastas["bgzip"], "bgzf")):
        records = located(path)
        reference = whole if path != fastas["bgzip"] else gg.SequenceBatch.from_fasta(path)
        assert records.kind == kind and len(records) == len(reference)
        for first in range(0, len(records), 5):
            data, offsets, names = read_block(records.block(first, first + 5))
            part = reference.slice(first, first + 5)
            assert names == part.names
            np.testing.assert_array_equal(offsets, part.offsets - part.offsets[0])
            assert data.tobytes() == part.data.tobytes()


@pytest.mark.parametrize("options", [{}, {"encoding": "kmer-counts", "k": 2}])
def test_encode_of_wrapped_records_on_a_cluster_equals_in_process(
    client, tmp_path, monkeypatch, options
):
    """One pass (k-mer counts: the workers check and name the records as they encode) and
    two (one-hot of the longest record's length: names and lengths first)."""
    monkeypatch.setattr(ArrayWriter, "common_chunk_rows", lambda self, row_bytes: 3)
    plain = tmp_path / "wrapped.fa"
    plain.write_bytes(wrapped_fasta().encode())
    for path in (plain, bgzip_indexed(plain, tmp_path / "wrapped.fa.gz")):
        local_out, cluster_out = tmp_path / "local.zarr", tmp_path / "cluster.zarr"
        gg.encode_file(path, local_out, device="cpu", **options)
        gg.encode_file(path, cluster_out, device="cpu", client=client, batch_size=4, **options)
        outputs_equal(local_out, cluster_out)
        shutil.rmtree(local_out), shutil.rmtree(cluster_out)


def test_which_files_the_workers_read_themselves(fastas, tmp_path):
    from gpu_genomics.sequence.fastx import bgzf_split_points, plain_records

    assert plain_records(fastas["plain"]).kind == "plain"
    assert bgzf_split_points(fastas["bgzip"]) is not None
    for gzip_file in (fastas["gzip"], fastas["bgzip"]):  # compressed: not a plain FASTA
        assert plain_records(gzip_file) is None
    assert bgzf_split_points(fastas["gzip"]) is None  # gzip, not bgzip: read here, handed out
    fastq = tmp_path / "r.fq"
    fastq.write_text("@r\nACGT\n+\nIIII\n")
    unindexed = tmp_path / "u.fa.gz"
    unindexed.write_bytes(fastas["bgzip"].read_bytes())  # bgzip without its .fai/.gzi
    assert plain_records(fastq) is None and bgzf_split_points(unindexed) is None
    stale = bgzip_indexed(fastas["plain"], tmp_path / "stale.fa.gz")
    os.utime(stale, (time.time() + 10, time.time() + 10))  # rewritten after it was indexed
    assert bgzf_split_points(stale) is None


def test_records_the_index_leaves_out_are_encoded_all_the_same(client, tmp_path):
    """samtools faidx keeps the first of two records of one name (and no empty record): the
    workers find every record between the ones it lists."""
    plain = tmp_path / "repeated.fa"
    records = [f">r{i % 30}\nACGTACGT\n" for i in range(40)]
    plain.write_text("".join(records[:35]) + ">empty\n" + "".join(records[35:]))
    bgzip = bgzip_indexed(plain, tmp_path / "repeated.fa.gz")
    assert len(Path(f"{bgzip}.fai").read_text().splitlines()) == 30
    local_out, cluster_out = tmp_path / "local.zarr", tmp_path / "cluster.zarr"
    assert gg.encode_file(bgzip, local_out, device="cpu")["n_sequences"] == 41
    gg.encode_file(bgzip, cluster_out, device="cpu", client=client, batch_size=4)
    outputs_equal(local_out, cluster_out)


def test_an_out_of_date_index_is_a_one_line_error(tmp_path):
    from gpu_genomics.sequence.fastx import bgzf_split_points, locate_records

    plain = tmp_path / "a.fa"
    plain.write_text(">a\nACGTACGTAC\n>b\nAC\n")
    bgzip = bgzip_indexed(plain, tmp_path / "a.fa.gz")
    Path(f"{bgzip}.fai").write_text("a\t6\t3\t10\t11\nb\t2\t13\t2\t3\n")  # 'a' 4 short
    points = bgzf_split_points(bgzip)
    with pytest.raises(InputError, match=r"a\.fa\.gz: no record starts at byte 10 where .*fai"):
        locate_records(str(bgzip), int(points[1]), -1)


# --- the single-cell recipe -------------------------------------------------------------------


@pytest.fixture(scope="module")
def cells_h5ad(tmp_path_factory) -> Path:
    pytest.importorskip("scanpy")
    from sc_data import synthetic_counts

    path = tmp_path_factory.mktemp("cells") / "c.h5ad"
    synthetic_counts(400, 2500, seed=6).write_h5ad(path)
    return path


@pytest.mark.parametrize("suffix", [".h5ad", ".zarr"])
@pytest.mark.parametrize("flavor", ["seurat", "seurat_v3"])
def test_scrna_on_a_cluster_equals_in_process_and_in_memory(
    client, tmp_path, cells_h5ad, suffix, flavor
):
    from sc_data import assert_same_output

    from gpu_genomics.expression.singlecell.job import preprocess_file

    if flavor == "seurat_v3":
        pytest.importorskip("skmisc")
    local_out, cluster_out = pair(tmp_path, suffix)
    (tmp_path / "memory").mkdir()
    memory_out = tmp_path / "memory" / f"d{suffix}"
    options = {"hvg_flavor": flavor, "target_sum": None, "device": "cpu"}
    preprocess_file(cells_h5ad, local_out, chunk_cells=45, **options)
    remote = preprocess_file(cells_h5ad, cluster_out, chunk_cells=45, client=client, **options)
    preprocess_file(cells_h5ad, memory_out, **options)
    assert remote["out_of_core"]
    assert_same_output(local_out, cluster_out, rtol=0)  # the same sums in the same order
    assert_same_output(memory_out, cluster_out)
    assert [p.name for p in cluster_out.parent.iterdir()] == [cluster_out.name]


def test_scrna_rank_encoding_on_a_cluster_equals_in_process(client, tmp_path, cells_h5ad):
    import pyarrow.parquet as pq

    from gpu_genomics.expression.singlecell.job import preprocess_file

    local_out, cluster_out = pair(tmp_path, ".zarr")
    tables = []
    for output, run in ((local_out, {}), (cluster_out, {"client": client})):
        tokens = output.parent / "t.parquet"
        preprocess_file(cells_h5ad, output, chunk_cells=33, rank_output=tokens, **run)
        tables.append(pq.read_table(tokens).drop_columns([]))
    assert (
        tables[0]
        .select(["cell_id", "input_ids", "length"])
        .equals(tables[1].select(["cell_id", "input_ids", "length"]))
    )
    assert tables[0].num_rows > 0


def test_scrna_errors_on_a_cluster_are_the_in_process_ones(client, tmp_path):
    pytest.importorskip("scanpy")
    from sc_data import synthetic_counts

    from gpu_genomics.expression.singlecell.job import preprocess_file

    adata = synthetic_counts(120, 300, seed=2)
    x = adata.X.tolil()
    x[97, 3] = np.nan
    adata.X = x.tocsr()
    source = tmp_path / "nan.h5ad"
    adata.write_h5ad(source)
    messages = []
    for run in ({}, {"client": client}):
        with pytest.raises(InputError) as error:
            preprocess_file(source, tmp_path / "o.zarr", chunk_cells=20, **run)
        messages.append(str(error.value))
    assert messages[0] == messages[1]
    assert "'cell97' (row 97)" in messages[0] and "not finite" in messages[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nan.h5ad"]


def test_scrna_command_line_on_a_local_cluster(tmp_path, cells_h5ad):
    from sc_data import assert_same_output

    from gpu_genomics.cli import main

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for folder, extra in (("a", []), ("b", ["--workers", "2", "--chunk-cells", "64"])):
        output = tmp_path / folder / "c.zarr"
        main(["scrna", str(cells_h5ad), "-o", str(output), "--quiet", "--device", "cpu", *extra])
    assert_same_output(tmp_path / "a" / "c.zarr", tmp_path / "b" / "c.zarr")
    assert json.loads(read_output_parameters(tmp_path / "b" / "c.zarr"))["workers"] == 2


def read_output_parameters(path: Path) -> str:
    import anndata

    return anndata.read_zarr(path).uns["provenance"]["parameters"]
