"""gpu_genomics.data.BatchLoader against NumPy references on files written here (HDF5 and Zarr).

The files follow the intervals layout (``{split}_seqs`` with a flank, ``{split}_labels``,
``{split}_targets`` profiles, ``{split}_is_negative``, root attributes ``flank``,
``base_order``, ``target_bin_size``), written directly with h5py / zarr; one test reads a real
output of ``build_interval_dataset``. References are per row and naive: ``np.flip`` and a
channel permutation built from the letters.
"""

from __future__ import annotations

import gc
import json
import threading
from pathlib import Path

import numpy as np
import pytest

from gpu_genomics import DeviceError, InputError, gpu_status
from gpu_genomics.data import BatchLoader, augment_rows, epoch_order, to_torch
from gpu_genomics.data import loader as loader_module
from gpu_genomics.device import to_numpy

REPO = Path(__file__).resolve().parent.parent
COMPLEMENT = {"A": "T", "C": "G", "G": "C", "T": "A"}
ALL = ("labels", "targets", "is_negative", "index", "shift", "rc")


def complement_channels(base_order: str) -> list[int]:
    """Channel ``c`` of a reverse complement is channel ``perm[c]`` (from the letters)."""
    return [base_order.index(COMPLEMENT[letter]) for letter in base_order]


def write_dataset(
    path: Path,
    *,
    n: int = 150,
    length: int = 40,
    flank: int = 4,
    base_order: str = "ACTG",
    dtype: str = "uint8",
    bin_size: int = 10,
    n_tracks: int = 2,
    chunk_rows: int = 16,
    compression: str | None = None,
    scalar_targets: bool = False,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Write the intervals layout (training split) to ``path`` (.h5 or .zarr); return it."""
    rng = np.random.default_rng(seed)
    width = length + 2 * flank
    eye = np.eye(5, 4)
    eye[4] = 0.25 if dtype.startswith("float") else 0  # N
    arrays = {
        "training_seqs": eye[rng.integers(0, 5, size=(n, width))].astype(dtype),
        "training_labels": rng.integers(0, 2, size=(n, 3), dtype=np.uint8),
        "training_targets": (
            rng.random((n, 2), dtype=np.float32)
            if scalar_targets
            else rng.random((n, length // bin_size, n_tracks), dtype=np.float32)
        ),
        "training_is_negative": (rng.random(n) < 0.3).astype(np.uint8),
    }
    attrs = {
        "length": length,
        "flank": flank,
        "base_order": base_order,
        "target_bin_size": 0 if scalar_targets else bin_size,
        "dataset_card": {"length": length, "flank": flank},
    }
    if path.suffix == ".zarr":
        import zarr

        group = zarr.open_group(str(path), mode="w")
        for name, values in arrays.items():
            target = group.create_array(
                name, shape=values.shape, dtype=values.dtype, chunks=(chunk_rows, *values.shape[1:])
            )
            target[...] = values
        group.attrs.update(attrs)
    else:
        import h5py

        with h5py.File(path, "w") as f:
            for name, values in arrays.items():
                f.create_dataset(
                    name,
                    data=values,
                    chunks=(chunk_rows, *values.shape[1:]),
                    compression=compression,
                )
            for key, value in attrs.items():
                f.attrs[key] = json.dumps(value) if isinstance(value, dict) else value
    return arrays


def epoch(loader: BatchLoader, number: int | None = None) -> list[dict[str, np.ndarray]]:
    batches = loader if number is None else loader.iter_epoch(number)
    return [to_numpy(batch) for batch in batches]


def assert_same(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for key in x:
            assert x[key].dtype == y[key].dtype, key
            np.testing.assert_array_equal(x[key], y[key], err_msg=key)


def reference(stored: dict, batch: dict, *, flank: int, length: int, base_order: str) -> dict:
    """The batch computed row by row from the stored arrays, its index, shifts and flips."""
    perm = complement_channels(base_order)
    seqs, targets = [], []
    for row, shift, rc in zip(batch["index"], batch["shift"], batch["rc"], strict=True):
        window = stored["training_seqs"][row, flank + shift : flank + shift + length]
        profile = stored["training_targets"][row]
        if rc:
            window = np.flip(window, axis=0)[:, perm]
            profile = np.flip(profile, axis=0)
        seqs.append(window)
        targets.append(profile)
    return {
        "seqs": np.stack(seqs),
        "targets": np.stack(targets),
        "labels": stored["training_labels"][batch["index"]],
        "is_negative": stored["training_is_negative"][batch["index"]],
    }


@pytest.fixture(params=["h5", "zarr"])
def dataset(request, tmp_path) -> tuple[Path, dict]:
    path = tmp_path / f"data.{request.param}"
    return path, write_dataset(path)


# --- order ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("block_rows", [None, 0, 16, 7])
def test_every_row_once_per_epoch_and_centre_crop(dataset, block_rows):
    path, stored = dataset
    with BatchLoader(
        path, batch_size=32, targets=ALL, block_rows=block_rows, device="cpu"
    ) as loader:
        assert len(loader) == 5 and loader.info.length == 40 and loader.info.flank == 4
        batches = epoch(loader)
    assert [len(b["index"]) for b in batches] == [32, 32, 32, 32, 22]
    index = np.concatenate([b["index"] for b in batches])
    np.testing.assert_array_equal(np.sort(index), np.arange(150))
    assert not np.array_equal(index, np.arange(150))  # shuffled
    for batch in batches:
        assert batch["seqs"].shape == (len(batch["index"]), 40, 4)
        assert batch["seqs"].dtype == np.uint8
        np.testing.assert_array_equal(batch["seqs"], stored["training_seqs"][batch["index"], 4:44])
        np.testing.assert_array_equal(batch["labels"], stored["training_labels"][batch["index"]])
        np.testing.assert_array_equal(batch["targets"], stored["training_targets"][batch["index"]])
        assert not batch["shift"].any() and not batch["rc"].any()


def test_default_block_rows_follow_the_storage(tmp_path):
    write_dataset(tmp_path / "plain.h5")
    write_dataset(tmp_path / "gzip.h5", compression="gzip")
    write_dataset(tmp_path / "data.zarr")
    with BatchLoader(tmp_path / "plain.h5", device="cpu") as plain:
        assert plain.block_rows == 0 and not plain.info.seqs_compressed
    for name in ("gzip.h5", "data.zarr"):
        with BatchLoader(tmp_path / name, device="cpu") as loader:
            assert loader.info.seqs_compressed and loader.block_rows == 16


def test_same_seed_same_batches_and_epochs_differ(dataset):
    path, _ = dataset
    options = dict(batch_size=40, targets=ALL, reverse_complement=True, max_shift=2, device="cpu")
    with BatchLoader(path, seed=3, **options) as a, BatchLoader(path, seed=3, **options) as b:
        first, second = epoch(a), epoch(a)  # the epoch counter advances
        assert a.epoch == 2
        assert_same(first, epoch(b, 0))
        assert_same(second, epoch(b, 1))
        b.set_epoch(1)
        assert_same(second, epoch(b))
        assert not np.array_equal(first[0]["index"], second[0]["index"])
        assert not np.array_equal(first[0]["shift"], second[0]["shift"])
    with BatchLoader(path, seed=4, **options) as other:
        assert not np.array_equal(epoch(other)[0]["index"], first[0]["index"])


def test_unshuffled_rows_come_in_order(dataset):
    path, stored = dataset
    with BatchLoader(path, batch_size=64, shuffle=False, targets=("index",), device="cpu") as ld:
        batches = epoch(ld)
    np.testing.assert_array_equal(np.concatenate([b["index"] for b in batches]), np.arange(150))
    np.testing.assert_array_equal(
        np.concatenate([b["seqs"] for b in batches]), stored["training_seqs"][:, 4:44]
    )


def test_block_shuffle_reads_each_block_once(tmp_path):
    path = tmp_path / "data.zarr"
    stored = write_dataset(path, n=192, chunk_rows=16)
    with BatchLoader(
        path, batch_size=24, targets=("index",), buffer_blocks=3, device="cpu", seed=1
    ) as loader:
        assert loader.block_rows == 16
        reads, read_bytes = loader.stats.reads, loader.stats.bytes_read  # labels etc. at open
        batches = epoch(loader)
        n_blocks = 12
        assert loader.stats.reads - reads == n_blocks  # seqs only: the rest is resident
        assert loader.stats.bytes_read - read_bytes == stored["training_seqs"][:, 4:44].nbytes
    order = np.concatenate([b["index"] for b in batches])
    np.testing.assert_array_equal(np.sort(order), np.arange(192))
    # the rows of each group of 3 blocks come together: 48 consecutive positions hold 3 blocks
    for first in range(0, 192, 48):
        assert len(np.unique(order[first : first + 48] // 16)) == 3
    np.testing.assert_array_equal(
        order, epoch_order(192, shuffle=True, seed=1, epoch=0, block_rows=16, buffer_blocks=3)
    )


def test_rows_mode_reads_only_the_rows_and_positions_used(tmp_path):
    path = tmp_path / "data.h5"
    stored = write_dataset(path, n=150, flank=4)
    with BatchLoader(path, batch_size=50, max_shift=1, device="cpu") as loader:
        # HDF5's chunk cache would copy a whole chunk for every row read: it is off
        assert loader._seqs.data.id.get_access_plist().get_chunk_cache()[1] == 0
        before = loader.stats.bytes_read
        epoch(loader)
        assert loader.stats.bytes_read - before == stored["training_seqs"][:, 3:45].nbytes
        assert loader.stats.batches == 3


# --- augmentation --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("base_order", "dtype"), [("ACTG", "uint8"), ("ACGT", "float16"), ("ACTG", "float32")]
)
def test_shifts_and_reverse_complement_match_the_naive_reference(tmp_path, base_order, dtype):
    path = tmp_path / "data.h5"
    stored = write_dataset(path, n=300, base_order=base_order, dtype=dtype, flank=5)
    with BatchLoader(
        path, batch_size=64, targets=ALL, reverse_complement=True, max_shift=5, device="cpu"
    ) as loader:
        batches = epoch(loader)
    shifts = np.concatenate([b["shift"] for b in batches])
    flips = np.concatenate([b["rc"] for b in batches])
    assert shifts.min() == -5 and shifts.max() == 5
    assert 0.35 < flips.mean() < 0.65
    for batch in batches:
        want = reference(stored, batch, flank=5, length=40, base_order=base_order)
        for key, value in want.items():
            assert batch[key].dtype == value.dtype
            np.testing.assert_array_equal(batch[key], value, err_msg=key)


def test_reverse_complement_probability_and_scalar_targets(tmp_path):
    path = tmp_path / "data.zarr"
    stored = write_dataset(path, scalar_targets=True)
    with BatchLoader(
        path, batch_size=150, targets=("targets", "rc", "index"), reverse_complement=1.0
    ) as ld:
        (batch,) = epoch(ld)
    assert batch["rc"].all()
    np.testing.assert_array_equal(batch["targets"], stored["training_targets"][batch["index"]])
    perm = complement_channels("ACTG")
    centre = stored["training_seqs"][batch["index"], 4:44]
    np.testing.assert_array_equal(batch["seqs"], centre[:, ::-1][:, :, perm])
    with BatchLoader(path, targets=("rc",), reverse_complement=0.0) as never:
        assert not epoch(never)[0]["rc"].any()


def test_dtype_converts_the_seqs(dataset):
    path, stored = dataset
    with BatchLoader(path, batch_size=200, dtype="float32", targets=("index",)) as loader:
        (batch,) = epoch(loader)
    assert batch["seqs"].dtype == np.float32
    np.testing.assert_array_equal(batch["seqs"], stored["training_seqs"][batch["index"], 4:44])


def test_large_targets_are_read_per_batch(dataset, monkeypatch):
    path, _ = dataset
    options = dict(batch_size=32, targets=ALL, reverse_complement=True, max_shift=4)
    with BatchLoader(path, **options) as resident:
        want = epoch(resident)
    monkeypatch.setattr(loader_module, "RESIDENT_BYTES", 0)
    with BatchLoader(path, **options) as streamed:
        assert all(a.resident is None for a in streamed._arrays)
        assert_same(epoch(streamed), want)


@pytest.mark.parametrize("dtype", ["uint8", "int8", "float16", "float32", "int64"])
def test_augment_rows_against_numpy(device, dtype):
    rng = np.random.default_rng(5)
    src = rng.integers(-100, 100, size=(9, 13, 3)).astype(dtype)
    rows = rng.permutation(9)[:7]
    starts = rng.integers(0, 6, size=7)
    flips = rng.integers(0, 2, size=7)
    perm = np.array([2, 0, 1])
    got = to_numpy(
        augment_rows(device, src, rows=rows, starts=starts, flips=flips, perm=perm, out_width=8)
    )
    want = np.stack(
        [
            src[r, s : s + 8][::-1][:, perm] if f else src[r, s : s + 8]
            for r, s, f in zip(rows, starts, flips, strict=True)
        ]
    )
    assert got.dtype == src.dtype
    np.testing.assert_array_equal(got, want)
    labels = rng.integers(0, 2, size=(9, 5)).astype(dtype)
    np.testing.assert_array_equal(to_numpy(augment_rows(device, labels, rows=rows)), labels[rows])
    with pytest.raises(ValueError, match="starts must lie"):
        augment_rows(device, src, rows=rows, starts=starts + 6, out_width=8)


# --- batches, prefetch, errors --------------------------------------------------------------
def test_drop_last(dataset):
    path, _ = dataset
    with BatchLoader(path, batch_size=64, drop_last=True, targets=("index",)) as loader:
        batches = epoch(loader)
        assert len(loader) == 2
    assert [len(b["seqs"]) for b in batches] == [64, 64]
    assert len(np.unique(np.concatenate([b["index"] for b in batches]))) == 128
    with BatchLoader(path, batch_size=64) as keep:
        assert [len(b["seqs"]) for b in epoch(keep)] == [64, 64, 22]


@pytest.mark.parametrize("block_rows", [0, 16])
def test_prefetch_on_and_off_give_the_same_batches(dataset, block_rows):
    path, _ = dataset
    options = dict(
        batch_size=16, targets=ALL, reverse_complement=True, max_shift=3, block_rows=block_rows
    )
    with (
        BatchLoader(path, prefetch=0, **options) as a,
        BatchLoader(path, prefetch=3, **options) as b,
    ):
        assert_same(epoch(a), epoch(b))
        with BatchLoader(path, prefetch=1, **options) as c:
            assert_same(epoch(a, 5), epoch(c, 5))


def test_stopping_early_ends_the_reading_thread(dataset):
    path, _ = dataset
    with BatchLoader(path, batch_size=8, prefetch=2) as loader:
        for _ in loader:
            break
        gc.collect()
        assert not [t for t in threading.enumerate() if t.name == "gpu-genomics-loader"]


def test_closing_the_loader_stops_its_epochs(dataset):
    path, _ = dataset
    loader = BatchLoader(path, batch_size=8, prefetch=2)
    batches = iter(loader)
    next(batches)
    loader.close()
    assert not [t for t in threading.enumerate() if t.name == "gpu-genomics-loader"]
    assert next(batches, None) is None
    with pytest.raises(InputError, match="closed"):
        next(iter(loader))


def test_a_read_error_reaches_the_consumer(dataset, monkeypatch):
    path, _ = dataset
    with BatchLoader(path, batch_size=50, prefetch=1) as loader:
        read = loader_module._Array.read_runs

        def failing(array, runs, out):
            if loader.stats.batches >= 1:  # the second batch
                raise OSError("disk gone")
            return read(array, runs, out)

        monkeypatch.setattr(loader_module._Array, "read_runs", failing)
        batches = iter(loader)
        next(batches)
        with pytest.raises(OSError, match="disk gone"):
            list(batches)


def test_max_shift_beyond_the_flank_is_an_error(dataset):
    path, _ = dataset
    with pytest.raises(InputError, match=r"max_shift=5 exceeds the flank of .*data\.\w+ \(4 bases"):
        BatchLoader(path, max_shift=5)
    BatchLoader(path, max_shift=4).close()


def test_missing_split_array_or_file_names_the_file(dataset):
    path, _ = dataset
    with pytest.raises(InputError, match=rf"{path.name}: no array validation_seqs .*training"):
        BatchLoader(path, split="validation")
    with pytest.raises(InputError, match=rf"{path.name}: no array training_weights .*is_negative"):
        BatchLoader(path, targets=("labels", "weights"))
    with pytest.raises(InputError, match=r"missing\.h5: no such file"):
        BatchLoader(path.parent / "missing.h5")


def test_an_inconsistent_flank_is_an_error(tmp_path):
    path = tmp_path / "data.h5"
    write_dataset(path, length=40, flank=4)
    import h5py

    with h5py.File(path, "a") as f:
        f.attrs["flank"] = 3
    with pytest.raises(InputError, match=r"48 positions per row, .* length=40 and flank=3 \(46\)"):
        BatchLoader(path)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"batch_size": 0}, "batch_size=0 must be a positive integer"),
        ({"reverse_complement": 1.5}, r"reverse_complement=1.5 must be .* in \[0, 1\]"),
        ({"prefetch": -1}, "prefetch=-1 must be an integer >= 0"),
        ({"seed": -2}, "seed=-2"),
        ({"framework": "keras"}, "framework='keras' is not one of torch, jax"),
        ({"dtype": "U4"}, "dtype='U4' must be a numeric dtype"),
        ({"block_rows": -1}, "block_rows=-1"),
        ({"device": "tpu"}, "device='tpu' is not one of"),
    ],
)
def test_bad_options(dataset, option, message):
    path, _ = dataset
    with pytest.raises(InputError, match=message):
        BatchLoader(path, **option)


def test_gpu_without_a_gpu_is_a_device_error(dataset):
    if gpu_status()[0]:
        pytest.skip("a GPU is usable here")
    path, _ = dataset
    with pytest.raises(DeviceError, match="device='gpu' was requested but no GPU is usable"):
        BatchLoader(path, device="gpu")
    with BatchLoader(path, device="auto") as loader:
        assert loader.device == "cpu"


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["uint8", "float16"])
def test_gpu_batches_equal_cpu_bit_for_bit(tmp_path, dtype):
    path = tmp_path / "data.h5"
    write_dataset(path, n=70, dtype=dtype, compression="gzip")
    options = dict(
        batch_size=32, targets=ALL, reverse_complement=True, max_shift=4, dtype="float32"
    )
    with (
        BatchLoader(path, device="gpu", **options) as gpu,
        BatchLoader(path, device="cpu", **options) as cpu,
    ):
        assert gpu.device == "gpu" and gpu.block_rows == 16
        on_gpu = list(gpu)
        assert type(on_gpu[0]["seqs"]).__module__.startswith("cupy")
        assert_same([to_numpy(b) for b in on_gpu], epoch(cpu))


# --- a real output of the intervals job -----------------------------------------------------
def test_an_intervals_output(tmp_path):
    from gpu_genomics import reverse_complement
    from gpu_genomics.intervals.job import build_interval_dataset

    output = tmp_path / "x.h5"
    build_interval_dataset(REPO / "data/metadata.txt", REPO / "data/reference.fa.gz", output)
    import h5py

    with h5py.File(output) as f:
        seqs, labels = f["training_seqs"][...], f["training_labels"][...]
    with BatchLoader(
        output, batch_size=16, targets=("labels", "index", "rc"), reverse_complement=True
    ) as loader:
        assert loader.info.flank == 0 and loader.info.length == seqs.shape[1] == 600
        batches = epoch(loader)
    index = np.concatenate([b["index"] for b in batches])
    np.testing.assert_array_equal(np.sort(index), np.arange(len(seqs)))
    for batch in batches:
        want = seqs[batch["index"]]
        flipped = batch["rc"].astype(bool)
        assert flipped.any() or len(batch["rc"]) < 4
        want[flipped] = reverse_complement(want[flipped], kind="onehot", device="cpu")
        np.testing.assert_array_equal(batch["seqs"], want)
        np.testing.assert_array_equal(batch["labels"], labels[batch["index"]])


def test_a_flanked_intervals_output_shifts_within_the_stored_bases(tmp_path):
    """flank=50: each shifted crop is the reference window moved by its shift, so crops at
    shift 0 equal the unflanked output's windows where both have the same coordinates."""
    import h5py

    from gpu_genomics.intervals.job import build_interval_dataset

    data = REPO / "data"
    flanked, plain = tmp_path / "f.h5", tmp_path / "p.h5"
    build_interval_dataset(data / "metadata.txt", data / "reference.fa.gz", flanked, flank=50)
    build_interval_dataset(data / "metadata.txt", data / "reference.fa.gz", plain)
    with h5py.File(flanked) as f, h5py.File(plain) as p:
        stored, coords = f["training_seqs"][...], f["training_coords"][...]
        plain_seqs, plain_coords = p["training_seqs"][...], p["training_coords"][...]
    assert stored.shape[1] == 700
    with BatchLoader(
        flanked, batch_size=32, targets=("index", "shift"), max_shift=50, device="cpu"
    ) as loader:
        assert (loader.info.flank, loader.info.length) == (50, 600)
        batches = epoch(loader)
        centred = epoch(BatchLoader(flanked, batch_size=32, targets=("index",), device="cpu"))
    shifts = np.concatenate([b["shift"] for b in batches])
    assert shifts.min() < 0 < shifts.max()
    for batch in batches:
        for row, index, shift in zip(batch["seqs"], batch["index"], batch["shift"], strict=True):
            np.testing.assert_array_equal(row, stored[index, 50 + shift : 650 + shift])
    by_coords = {tuple(c): i for i, c in enumerate(plain_coords.tolist())}
    matched = 0
    for batch in centred:
        for row, index in zip(batch["seqs"], batch["index"], strict=True):
            other = by_coords.get(tuple(coords[index].tolist()))
            if other is not None:
                np.testing.assert_array_equal(row, plain_seqs[other])
                matched += 1
    assert matched > 0.9 * len(coords)


# --- DLPack ------------------------------------------------------------------------------------
def test_torch_gets_the_arrays_without_a_copy(dataset):
    torch = pytest.importorskip("torch")
    path, stored = dataset
    with BatchLoader(
        path, batch_size=64, targets=("labels", "targets", "index"), device="cpu"
    ) as loader:
        batch = next(iter(loader))
        tensors = to_torch(batch)
        for name, array in batch.items():
            assert tensors[name].data_ptr() == array.ctypes.data, name
            assert tuple(tensors[name].shape) == array.shape
        assert tensors["seqs"].dtype == torch.uint8 and tensors["targets"].dtype == torch.float32
        with BatchLoader(
            path, batch_size=64, framework="torch", targets=("index",), device="cpu"
        ) as as_torch:
            first = next(iter(as_torch))
            assert isinstance(first["seqs"], torch.Tensor)
            want = stored["training_seqs"][first["index"].numpy(), 4:44]
            np.testing.assert_array_equal(first["seqs"].numpy(), want)
        dataset_ = loader.torch_dataset()
        assert isinstance(dataset_, torch.utils.data.IterableDataset) and len(dataset_) == 3
        batches = list(torch.utils.data.DataLoader(dataset_, batch_size=None))
        assert [tuple(b["seqs"].shape) for b in batches] == [(64, 40, 4), (64, 40, 4), (22, 40, 4)]
        assert isinstance(batches[0]["labels"], torch.Tensor)


@pytest.mark.parametrize("name", ["torch", "jax"])
def test_a_missing_framework_is_an_input_error(dataset, name):
    try:
        __import__(name)
    except ImportError:
        pass
    else:
        pytest.skip(f"{name} is installed")
    path, _ = dataset
    with BatchLoader(path, framework=name) as loader, pytest.raises(InputError, match=name):
        next(iter(loader))
