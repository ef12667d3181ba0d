"""``gpu-genomics downsample`` and ``gpu-genomics doublets``: count augmentation, file to file."""

from __future__ import annotations

from typing import Any

import click

from ..expression.singlecell.augment import (
    DOUBLET_MODES,
    DOWNSAMPLE_BLOCK_CELLS,
    DOWNSAMPLE_METHODS,
)
from ..expression.singlecell.augment_job import downsample_file, simulate_doublets_file
from .common import cluster_options, device_option, logging_options, run_job


def _input_options(command: Any) -> Any:
    """``-o``, ``--seed``, ``--chunk-cells`` and ``--transpose``, shared by both commands."""
    for option in reversed(
        (
            click.argument("input_path", metavar="INPUT", type=click.Path()),
            click.option(
                "-o", "--output", required=True, type=click.Path(), help="Output .h5ad or .zarr."
            ),
            click.option("--seed", type=int, default=0, show_default=True, help="Random seed."),
            click.option(
                "--chunk-cells",
                type=int,
                default=None,
                help="Cells per task (default 20000).",
            ),
            click.option("--transpose", is_flag=True, help="CSV/TSV input is genes x cells."),
        )
    ):
        command = option(command)
    return command


@click.command("downsample")
@_input_options
@click.option("--fraction", type=float, default=None, help="Keep this fraction of reads.")
@click.option("--target-total", type=int, default=None, help="Keep this many reads per cell.")
@click.option(
    "--method",
    type=click.Choice(DOWNSAMPLE_METHODS),
    default="binomial",
    show_default=True,
    help="binomial: thin every count; hypergeometric: exactly the target, without "
    "replacement (scanpy); multinomial: exactly the target, with replacement.",
)
@click.option(
    "--block-cells",
    type=int,
    default=DOWNSAMPLE_BLOCK_CELLS,
    show_default=True,
    help="Cells per random block (each has its own generator; results depend on it).",
)
@cluster_options
@device_option
@logging_options
def downsample(input_path: str, output: str, **options: Any) -> None:
    """Lower each cell's sequencing depth in INPUT's raw counts, block by block.

    Give exactly one of --fraction and --target-total. The counts equal
    gpu_genomics.sc.downsample_counts on the whole matrix with the same options.
    """
    run_job(downsample_file, input_path, output, **options)


@click.command("doublets")
@_input_options
@click.option("-n", "--n", "n", type=int, required=True, help="Number of doublets.")
@click.option(
    "--how",
    type=click.Choice(DOUBLET_MODES),
    default="sum",
    show_default=True,
    help="sum: the parents' counts added (scrublet); mean: their average.",
)
@cluster_options
@device_option
@logging_options
def doublets(input_path: str, output: str, **options: Any) -> None:
    """Simulate N doublets of INPUT's cells (two distinct random parents each), block by block.

    The doublets equal gpu_genomics.sc.simulate_doublets on the whole matrix with the same seed.
    """
    run_job(simulate_doublets_file, input_path, output, **options)
