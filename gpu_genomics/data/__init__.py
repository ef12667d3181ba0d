"""Batches of ``intervals`` datasets for training: shuffled, augmented on the device, DLPack.

:class:`BatchLoader` reads one split of an HDF5/Zarr output of ``gpu-genomics intervals`` and
yields seeded, shuffled batches of one-hot windows and targets, reverse-complemented and shifted
on the device (CUDA kernel on the GPU, numba on the CPU, bit-identical), read ahead on a
background thread; :func:`to_torch` / :func:`to_jax` (or ``framework=``) hand them over with
DLPack, and :meth:`BatchLoader.torch_dataset` wraps the loader as a torch ``IterableDataset``.
See ``docs/loader.md``.
"""

from __future__ import annotations

from .augment import augment_rows, draw_augmentation
from .frameworks import to_jax, to_torch, torch_dataset
from .loader import BatchLoader, DatasetInfo, ReadStats, describe, epoch_order, open_store

__all__ = [
    "BatchLoader",
    "DatasetInfo",
    "ReadStats",
    "augment_rows",
    "describe",
    "draw_augmentation",
    "epoch_order",
    "open_store",
    "to_jax",
    "to_torch",
    "torch_dataset",
]
