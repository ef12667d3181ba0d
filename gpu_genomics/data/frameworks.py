"""Handing batches to torch and JAX through DLPack, without a copy.

A batch's arrays are NumPy (CPU) or CuPy (GPU) arrays; both export ``__dlpack__``, so
``torch.from_dlpack`` and ``jax.dlpack.from_dlpack`` wrap the same memory (a CuPy array stays
on its GPU, the consumer's stream is made to wait for the loader's work by the DLPack protocol).
Neither framework is a dependency: each is imported when first asked for.

JAX on the CPU may copy an array whose address is not aligned as XLA requires; torch never
copies.
"""

from __future__ import annotations

import functools
from typing import Any

from ..errors import InputError, check_choice


def to_torch(batch: dict[str, Any]) -> dict[str, Any]:
    """The batch's arrays as torch tensors sharing their memory (``torch.from_dlpack``)."""
    import torch

    return {name: torch.from_dlpack(array) for name, array in batch.items()}


def to_jax(batch: dict[str, Any]) -> dict[str, Any]:
    """The batch's arrays as JAX arrays (``jax.dlpack.from_dlpack``)."""
    import jax.dlpack

    return {name: jax.dlpack.from_dlpack(array) for name, array in batch.items()}


def to_framework(batch: dict[str, Any], framework: str) -> dict[str, Any]:
    """:func:`to_torch` or :func:`to_jax` (``framework`` ``"torch"`` / ``"jax"``).

    Raises:
        InputError: ``framework`` is neither, or is not installed.
    """
    convert = {"torch": to_torch, "jax": to_jax}[
        check_choice("framework", framework, ("torch", "jax"))
    ]
    try:
        return convert(batch)
    except ImportError as exc:
        raise InputError(
            f"framework={framework!r} needs {framework} installed ({exc}); it is not a "
            "dependency of gpu-genomics"
        ) from None


@functools.cache
def _torch_dataset_class() -> type:
    import torch.utils.data

    class LoaderDataset(torch.utils.data.IterableDataset):
        """A :class:`~gpu_genomics.data.BatchLoader` as an ``IterableDataset`` of batches."""

        def __init__(self, loader: Any) -> None:
            super().__init__()
            self.loader = loader

        def __iter__(self) -> Any:
            if torch.utils.data.get_worker_info() is not None:
                raise InputError(
                    "use the loader's dataset with DataLoader(num_workers=0): it reads ahead on "
                    "its own thread, and worker processes would each read the whole epoch"
                )
            for batch in self.loader:
                yield batch if self.loader.framework == "torch" else to_torch(batch)

        def __len__(self) -> int:
            return len(self.loader)

    return LoaderDataset


def torch_dataset(loader: Any) -> Any:
    """``loader`` as a ``torch.utils.data.IterableDataset`` whose items are batches of tensors.

    Each ``iter()`` runs the loader's next epoch. Use with
    ``DataLoader(dataset, batch_size=None, num_workers=0)``.

    Raises:
        InputError: torch is not installed.
    """
    try:
        cls = _torch_dataset_class()
    except ImportError as exc:
        raise InputError(
            f"torch_dataset() needs torch installed ({exc}); it is not a dependency of gpu-genomics"
        ) from None
    return cls(loader)
