"""Jobs on a real Dask cluster (``distributed.LocalCluster``, 2 worker processes): the same
output as in-process, whatever the workers do, and the same one-line errors."""

from __future__ import annotations

import os
import signal
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


@pytest.mark.parametrize("options", ENCODINGS)
@pytest.mark.parametrize("suffix", [".h5", ".zarr"])
def test_encode_on_a_cluster_equals_in_process(client, tmp_path, monkeypatch, options, suffix):
    # blocks of 7 chunked rows: about 70 tasks over the 500 records, written in parallel
    monkeypatch.setattr(ArrayWriter, "common_chunk_rows", lambda self, row_bytes: 7)
    local_out, cluster_out = pair(tmp_path, suffix)
    fasta = REPO / "examples" / "sequences.fa.gz"
    local = gg.encode_file(fasta, local_out, device="cpu", **options)
    remote = gg.encode_file(
        fasta, cluster_out, device="cpu", batch_size=20, client=client, **options
    )
    assert remote["arrays"] == local["arrays"] and remote["n_sequences"] == 500
    outputs_equal(local_out, cluster_out)
    assert parameters_of(cluster_out)["workers"] == 2


def test_encode_errors_on_a_cluster_are_the_in_process_ones(client, tmp_path):
    fasta = tmp_path / "bad.fa"
    fasta.write_text(">a\nACGT\n>b\nAC*T\n")
    messages = []
    for client_or_none in (None, client):
        with pytest.raises(InputError) as info:
            gg.encode_file(fasta, tmp_path / "o.zarr", client=client_or_none, device="cpu")
        messages.append(str(info.value))
    assert messages[0] == messages[1] and "record 1 ('b')" in messages[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.fa"]
