"""Store a bulk :class:`~gpu_genomics.expression.bulk.Scaler` in JSON or HDF5 files.

Bulk outputs holding a scaler are read back too (``docs/bulk.md#scaler``).

* ``.json``: keys ``format`` (``"gpu-genomics/bulk-scaler"``), ``version``, ``gene_id``,
  ``mean``, ``std`` (floats written exactly), ``n_samples``, ``log1p``, and ``provenance``;
* ``.h5``/``.hdf5``: arrays ``gene_id``, ``scaler_mean``, ``scaler_std`` and the rest as
  attributes: the same names as in a ``gpu-genomics bulk`` output, which :func:`load_scaler`
  also reads (HDF5 or Zarr), so an earlier output can be applied to new data.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..io.provenance import json_safe
from ..io.store import atomic_output
from .bulk import Scaler

SCALER_FORMAT = "gpu-genomics/bulk-scaler"
SCALER_VERSION = 1
SCALER_SUFFIXES = (".json", ".h5", ".hdf5")


def save_scaler(
    scaler: Scaler, path: str | os.PathLike, *, provenance: dict[str, Any] | None = None
) -> None:
    """Write ``scaler`` to ``path`` (``.json``, ``.h5`` or ``.hdf5``; see the module docstring).

    Written to a temporary file and renamed, so a failure leaves no partial file.
    ``provenance`` (:func:`gpu_genomics.io.provenance.provenance`) is stored with it.
    """
    target = Path(path)
    kind = scaler_kind(target)
    try:
        with atomic_output(target) as tmp:
            if kind == "json":
                document = {
                    "format": SCALER_FORMAT,
                    "version": SCALER_VERSION,
                    "n_samples": scaler.n_samples,
                    "log1p": scaler.log1p,
                    "gene_id": [str(name) for name in scaler.gene_names],
                    "mean": [float(x) for x in scaler.mean],
                    "std": [float(x) for x in scaler.std],
                    "provenance": json_safe(provenance or {}),
                }
                tmp.write_text(json.dumps(document, indent=1) + "\n")
            else:
                import h5py

                with h5py.File(tmp, "w") as out:
                    write_scaler_arrays(scaler, out.create_dataset)
                    out.attrs.update(_scaler_attrs(scaler))
                    for key, value in (provenance or {}).items():
                        nested = isinstance(value, dict | list)
                        out.attrs[key] = json.dumps(json_safe(value)) if nested else value
    except OSError as exc:
        raise InputError(f"{target}: cannot write the scaler ({exc.strerror or exc})") from None


def scaler_kind(path: str | os.PathLike) -> str:
    """``"json"`` or ``"hdf5"`` from a scaler file's suffix, else InputError."""
    suffix = Path(path).suffix.lower()
    if suffix not in SCALER_SUFFIXES:
        raise InputError(
            f"{path}: a scaler file must end in .json, .h5 or .hdf5 (got {suffix or 'no suffix'})"
        )
    return "json" if suffix == ".json" else "hdf5"


def _scaler_attrs(scaler: Scaler) -> dict[str, Any]:
    return {
        "scaler_format": SCALER_FORMAT,
        "scaler_version": SCALER_VERSION,
        "scaler_n_samples": scaler.n_samples,
        "scaler_log1p": scaler.log1p,
    }


def write_scaler_arrays(scaler: Scaler, create: Callable[..., Any]) -> None:
    """Write ``gene_id``, ``scaler_mean``, ``scaler_std`` through an h5py ``create_dataset``."""
    import h5py

    create(
        "gene_id",
        data=np.array([str(n) for n in scaler.gene_names], dtype=object),
        dtype=h5py.string_dtype(),
    )
    create("scaler_mean", data=scaler.mean)
    create("scaler_std", data=scaler.std)


def load_scaler(path: str | os.PathLike) -> Scaler:
    """Read a scaler written by :func:`save_scaler` or stored in a ``gpu-genomics bulk`` output.

    A file from :func:`save_scaler` is ``.json`` or ``.h5``; a bulk output is ``.h5``/``.hdf5``
    or ``.zarr``, with arrays ``gene_id``, ``scaler_mean``, ``scaler_std``.

    Raises:
        InputError: the file is missing or not a scaler, its arrays disagree in length, a
            mean or std is not finite, a std is not positive, or a gene repeats.
    """
    source = str(path)
    target = Path(source)
    if not target.exists():
        raise InputError(f"{source}: no such scaler file")
    suffix = target.suffix.lower()
    if suffix == ".json":
        fields = _read_scaler_json(source)
    elif suffix in (".h5", ".hdf5", ".zarr"):
        fields = _read_scaler_arrays(source, suffix)
    else:
        raise InputError(f"{source}: a scaler file must be .json, .h5/.hdf5 or a bulk output .zarr")
    names = np.array([str(n) for n in fields["gene_id"]], dtype=object)
    try:
        mean = np.asarray(fields["mean"], dtype=np.float64).reshape(-1)
        std = np.asarray(fields["std"], dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{source}: the scaler's mean/std are not numbers ({exc})") from None
    if not (len(names) == len(mean) == len(std)) or len(names) == 0:
        raise InputError(
            f"{source}: the scaler has {len(names)} genes, {len(mean)} means and {len(std)} "
            "standard deviations; they must be equal and non-zero"
        )
    for label, array in (("mean", mean), ("std", std)):
        bad = np.flatnonzero(~np.isfinite(array) | ((array <= 0) if label == "std" else False))
        if len(bad):
            raise InputError(
                f"{source}: the scaler's {label} of gene {names[bad[0]]!r} is {array[bad[0]]}; "
                f"every {label} must be finite{' and > 0' if label == 'std' else ''}"
            )
    unique, counts = np.unique(names.astype(str), return_counts=True)
    if (counts > 1).any():
        duplicate = str(unique[counts > 1][0])
        raise InputError(f"{source}: gene {duplicate!r} appears twice in the scaler")
    try:
        n_samples = int(fields.get("n_samples", 0))
    except (TypeError, ValueError):
        n_samples = 0
    return Scaler(
        gene_names=names,
        mean=mean,
        std=std,
        n_samples=n_samples,
        log1p=bool(fields.get("log1p", True)),
        source=source,
    )


def _read_scaler_json(source: str) -> dict[str, Any]:
    try:
        document = json.loads(Path(source).read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{source}, line {exc.lineno}: not valid JSON ({exc.msg})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{source}: cannot be read ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != SCALER_FORMAT:
        raise InputError(
            f'{source}: not a gpu-genomics scaler (no "format": "{SCALER_FORMAT}"); '
            "save one with gpu_genomics.save_scaler or gpu-genomics bulk --save-scaler"
        )
    missing = [key for key in ("gene_id", "mean", "std") if key not in document]
    if missing:
        raise InputError(f"{source}: the scaler lacks the key {missing[0]!r}")
    if not isinstance(document["gene_id"], list):
        raise InputError(f'{source}: "gene_id" must be a list of gene names')
    return document


def _read_scaler_arrays(source: str, suffix: str) -> dict[str, Any]:
    try:
        if suffix == ".zarr":
            import zarr

            root: Any = zarr.open_group(source, mode="r")
            keys = set(root.array_keys())
        else:
            import h5py

            root = h5py.File(source, "r")
            keys = set(root.keys())
    except Exception as exc:  # h5py/zarr raise many types for a file that is not theirs
        raise InputError(f"{source}: cannot be opened as {suffix[1:]} ({exc})") from None
    try:
        missing = [k for k in ("gene_id", "scaler_mean", "scaler_std") if k not in keys]
        if missing:
            raise InputError(
                f"{source}: has no {missing[0]!r} array; give a scaler saved with save_scaler "
                "(gpu-genomics bulk --save-scaler) or a gpu-genomics bulk output"
            )
        attrs = dict(root.attrs)
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in root["gene_id"][...]]
        return {
            "gene_id": names,
            "mean": root["scaler_mean"][...],
            "std": root["scaler_std"][...],
            "n_samples": attrs.get("scaler_n_samples", 0),
            "log1p": bool(attrs.get("scaler_log1p", True)),
        }
    finally:
        if suffix != ".zarr":
            root.close()


__all__ = ["load_scaler", "save_scaler", "scaler_kind"]
