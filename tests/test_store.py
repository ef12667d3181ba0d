"""ArrayWriter: both formats hold the same arrays, and nothing is left half-written."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import zarr

from gpu_genomics.errors import InputError
from gpu_genomics.io.store import ArrayWriter, format_from_path


def _read(path):
    if str(path).endswith(".zarr"):
        group = zarr.open_group(str(path), mode="r")
        arrays = {name: group[name][...] for name in group.array_keys()}
        return arrays, dict(group.attrs)
    with h5py.File(path) as f:
        arrays = {name: f[name][...] for name in f}
        attrs = {
            k: (json.loads(v) if isinstance(v, str) and v.startswith(("[", "{")) else v)
            for k, v in f.attrs.items()
        }
    return arrays, attrs


@pytest.mark.parametrize("suffix", [".h5", ".zarr"])
@pytest.mark.parametrize("compression", [None, "gzip", "none"])
def test_round_trip(tmp_path, suffix, compression):
    path = tmp_path / f"out{suffix}"
    block = np.arange(2500 * 3, dtype=np.int32).reshape(2500, 3)
    with ArrayWriter(path, compression=compression, chunk_rows=1000) as out:
        target = out.create("block", block.shape, block.dtype)
        target[0:1200] = block[:1200]
        target[1200:] = block[1200:]
        out.write("names", ["a", "bb", "ccc"])
        out.write("empty", np.zeros((0, 4), np.uint8))
        out.attrs({"parameters": {"k": 6}, "version": "x", "n": 3})
    arrays, attrs = _read(path)
    np.testing.assert_array_equal(arrays["block"], block)
    assert [n.decode() if isinstance(n, bytes) else n for n in arrays["names"]] == [
        "a",
        "bb",
        "ccc",
    ]
    assert arrays["empty"].shape == (0, 4)
    assert attrs["parameters"] == {"k": 6} and attrs["version"] == "x" and attrs["n"] == 3


def test_hdf5_chunks_are_row_blocks(tmp_path):
    with ArrayWriter(tmp_path / "c.h5", chunk_rows=1000) as out:
        out.create("x", (5000, 600, 4), np.uint8)
    with h5py.File(tmp_path / "c.h5") as f:
        assert f["x"].chunks == (1000, 600, 4)


@pytest.mark.parametrize("suffix", [".h5", ".zarr"])
def test_failure_leaves_nothing_and_keeps_the_old_output(tmp_path, suffix):
    path = tmp_path / f"out{suffix}"
    with ArrayWriter(path) as out:
        out.write("x", np.ones(3))
    with pytest.raises(RuntimeError), ArrayWriter(path) as out:
        out.write("x", np.zeros(5))
        raise RuntimeError("interrupted")
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    np.testing.assert_array_equal(_read(path)[0]["x"], np.ones(3))


def test_success_replaces_an_existing_output(tmp_path):
    path = tmp_path / "out.zarr"
    for value in (1, 2):
        with ArrayWriter(path) as out:
            out.write("x", np.full(3, value))
    np.testing.assert_array_equal(_read(path)[0]["x"], np.full(3, 2))
    assert [p.name for p in tmp_path.iterdir()] == ["out.zarr"]


def test_output_format_comes_from_the_suffix():
    assert format_from_path("a.h5") == "hdf5" and format_from_path("a.HDF5") == "hdf5"
    assert format_from_path("a.zarr") == "zarr"
    assert format_from_path("a.bin", "zarr") == "zarr"
    with pytest.raises(InputError, match=r"a\.txt.*\.h5/\.hdf5 or \.zarr"):
        format_from_path("a.txt")


def test_bad_compression_and_missing_folder(tmp_path):
    with pytest.raises(InputError, match="brotli"):
        ArrayWriter(tmp_path / "a.h5", compression="brotli")
    with (
        pytest.raises(InputError, match="lzf"),
        ArrayWriter(tmp_path / "a.zarr", compression="lzf"),
    ):
        pass
    with pytest.raises(InputError, match="does not exist"), ArrayWriter(tmp_path / "no" / "a.h5"):
        pass
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_replace_what_is_not_an_earlier_output(tmp_path):
    folder = tmp_path / "data.zarr"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "keep.txt").write_text("x")
    with pytest.raises(InputError, match="not a Zarr store"):
        ArrayWriter(folder)
    (tmp_path / "f.zarr").write_text("x")
    with pytest.raises(InputError, match="not a Zarr store"):
        ArrayWriter(tmp_path / "f.zarr")
    (tmp_path / "d.h5").mkdir()
    with pytest.raises(InputError, match="is a folder"):
        ArrayWriter(tmp_path / "d.h5")
    assert (folder / "sub" / "keep.txt").read_text() == "x"


def test_chunks_are_capped_in_bytes(tmp_path):
    """Wide rows get fewer rows per chunk (codecs such as Blosc refuse buffers over 2 GiB)."""
    from gpu_genomics.io.store import MAX_CHUNK_BYTES

    with ArrayWriter(tmp_path / "wide.zarr", chunk_rows=10_000) as out:
        wide = out.create("wide", (100, MAX_CHUNK_BYTES // 8), np.int8)
        narrow = out.create("narrow", (100, 4), np.int8)
    assert wide.chunks == (8, MAX_CHUNK_BYTES // 8)
    assert narrow.chunks == (100, 4)
