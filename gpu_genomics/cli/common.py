"""Options and logging set-up shared by every ``gpu-genomics`` subcommand.

Each subcommand lives in its own module (``cli`` for ``info``/``encode``/``intervals``,
``cli_scrna``, ``cli_vcf``, ``cli_bulk``) and takes its ``--device``, ``--compression``,
``--quiet``/``--loglevel`` options from here, so they read the same everywhere.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from ..device import DEVICE_CHOICES
from ..io.store import COMPRESSIONS

log = logging.getLogger("gpu_genomics")


def setup_logging(quiet: bool, loglevel: str) -> None:
    """Log to stderr as ``gpu-genomics: ...`` at ``loglevel`` (warnings only with ``quiet``)."""
    level = "warning" if quiet else loglevel.lower()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("gpu-genomics: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level.upper())
    log.propagate = False


device_option = click.option(
    "--device",
    type=click.Choice(DEVICE_CHOICES),
    default=None,
    help="Where to compute (default: $GPU_GENOMICS_DEVICE or auto).",
)
compression_option = click.option(
    "--compression",
    type=click.Choice(COMPRESSIONS),
    default=None,
    help="Default: none for HDF5, zstd for Zarr.",
)


def logging_options(command: Any) -> Any:
    """``--quiet`` and ``--loglevel``, shared by the commands."""
    command = click.option(
        "--loglevel",
        type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
        default="info",
        show_default=True,
    )(command)
    return click.option("--quiet", is_flag=True, help="No progress bars; warnings only.")(command)


def array_output_options(command: Any) -> Any:
    """``-o/--output`` (an HDF5 file or Zarr folder) and ``--format hdf5|zarr``, shared by the
    commands that write named arrays through :class:`~gpu_genomics.store.ArrayWriter`."""
    command = click.option(
        "--format",
        "output_format",
        type=click.Choice(["hdf5", "zarr"]),
        default=None,
        help="Output format; default from the output's suffix.",
    )(command)
    return click.option(
        "-o",
        "--output",
        required=True,
        type=click.Path(dir_okay=True),
        help="Output .h5/.hdf5 file or .zarr folder.",
    )(command)
