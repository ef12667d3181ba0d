"""Provenance: what made an output, stored under the same keys by every writer.

:func:`provenance` returns a dict with the keys of :data:`PROVENANCE_KEYS`:

* ``gpu_genomics_version``: the package version;
* ``tool``: the job, e.g. ``"gpu-genomics vcf"``;
* ``command``: the command line (the CLI's, or this process's ``sys.argv`` for a Python call);
* ``parameters``: every parameter of the job, resolved (JSON types; ``None`` kept);
* ``inputs``: one dict per input file, ``{"role", "path", "bytes"}`` plus ``"sha256"`` for
  files up to :data:`CHECKSUM_MAX_BYTES` (cheap to hash); a folder input has no size or hash;
* ``created``: UTC time of writing, ISO 8601 to the second;
* ``device``: ``"cpu"`` or ``"gpu"``.

HDF5 and Zarr outputs hold them as root attributes (nested values as JSON strings in HDF5, as
JSON in Zarr, see :meth:`~gpu_genomics.io.store.ArrayWriter.attrs`); AnnData outputs in
``uns["provenance"]`` (nested values as JSON strings); Parquet files in the schema metadata
key ``gpu_genomics_provenance``; scaler JSON files under ``"provenance"``.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

#: Files up to this size get a SHA-256 in ``inputs``; larger ones only their size.
CHECKSUM_MAX_BYTES = 256 * 2**20
PROVENANCE_KEYS = (
    "gpu_genomics_version",
    "tool",
    "command",
    "parameters",
    "inputs",
    "created",
    "device",
)


def version() -> str:
    """The installed package's version (one source: ``gpu_genomics.__version__``)."""
    from .. import __version__

    return __version__


def command_line(argv: Sequence[str] | None = None, program: str | None = None) -> str:
    """``argv`` (default: this process's arguments) joined as a shell would read it."""
    if argv is None:
        argv = sys.argv[1:]
        program = program or Path(sys.argv[0]).name
    return shlex.join([program or "gpu-genomics", *argv])


def describe_input(role: str, path: str | os.PathLike) -> dict[str, Any]:
    """``{"role", "path", "bytes", "sha256"}`` of one input file (see the module docstring)."""
    target = Path(path)
    entry: dict[str, Any] = {"role": role, "path": str(target.resolve())}
    if target.is_file():
        size = target.stat().st_size
        entry["bytes"] = size
        if size <= CHECKSUM_MAX_BYTES:
            digest = hashlib.sha256()
            with open(target, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            entry["sha256"] = digest.hexdigest()
    return entry


def provenance(
    tool: str,
    *,
    parameters: Mapping[str, Any],
    inputs: Mapping[str, str | os.PathLike | None],
    device: str,
    command: str | None = None,
) -> dict[str, Any]:
    """The provenance record of one output.

    Args:
        tool: the job's name, ``"gpu-genomics <command>"``.
        parameters: the job's resolved parameters (made JSON-safe: tuples become lists, paths
            strings).
        inputs: role -> path of every input file (``None`` paths are left out).
        device: where the job computed (``"cpu"`` or ``"gpu"``).
        command: the command line; default :func:`command_line` of this process.

    Returns:
        A dict with the keys of :data:`PROVENANCE_KEYS`.
    """
    return {
        "gpu_genomics_version": version(),
        "tool": tool,
        "command": command if command is not None else command_line(),
        "parameters": json_safe(dict(parameters)),
        "inputs": [describe_input(role, path) for role, path in inputs.items() if path is not None],
        "created": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "device": device,
    }


def json_safe(value: Any) -> Any:
    """Return ``value`` in a form that ``json.dumps`` takes.

    Recursively, tuples become lists, paths and other objects str, and NumPy scalars Python
    numbers.
    """
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if hasattr(value, "item"):  # NumPy scalar
        return value.item()
    return str(value)


def flat(record: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``record`` flattened for AnnData's ``uns``.

    Nested values become JSON strings and ``None`` becomes ``"none"``: ``uns`` stores neither.
    """
    return {
        key: json.dumps(value, sort_keys=True)
        if isinstance(value, dict | list)
        else "none"
        if value is None
        else value
        for key, value in record.items()
    }
