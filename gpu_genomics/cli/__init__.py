"""The ``gpu-genomics`` command line: one thin module per command over the library's jobs.

``info`` (:mod:`.info`), ``encode`` (:mod:`.encode`), ``intervals`` (:mod:`.intervals`, also
installed as ``genomic_interval_pipeline``), ``scrna`` (:mod:`.scrna`), ``vcf`` (:mod:`.vcf`),
``bulk`` (:mod:`.bulk`), ``variant-windows`` (:mod:`.variant_windows`), ``downsample`` and
``doublets`` (:mod:`.augment`). A command parses its
options, sets up logging and progress, calls its job and prints the summary; user mistakes
(:class:`~gpu_genomics.errors.GpuGenomicsError`) print one ``error:`` line naming the command's
flags and exit with status 2; an interrupted run exits 130 and leaves no output behind.
"""

from __future__ import annotations

import sys

import click

from ..errors import GpuGenomicsError
from ..io import interrupts
from ..io.provenance import version
from .augment import doublets, downsample
from .bulk import bulk
from .encode import encode
from .info import info
from .intervals import intervals
from .scrna import scrna
from .variant_windows import variant_windows_command
from .vcf import vcf


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version(), prog_name="gpu-genomics")
def cli() -> None:
    """GPU-accelerated preprocessing of genomics files into ML-ready arrays."""


for _command in (
    info,
    encode,
    intervals,
    scrna,
    vcf,
    bulk,
    variant_windows_command,
    downsample,
    doublets,
):
    cli.add_command(_command)


def main(
    argv: list[str] | None = None, command: click.Command = cli, prog_name: str = "gpu-genomics"
) -> None:
    """Entry point of the ``gpu-genomics`` console script."""
    try:
        args = list(sys.argv[1:] if argv is None else argv)
        with interrupts.handled():
            command.main(args=args, prog_name=prog_name, standalone_mode=False, obj={"argv": args})
    except interrupts.Interrupted as exc:
        _end_interrupted(exc)
    except GpuGenomicsError as exc:
        click.echo(f"gpu-genomics: error: {exc}", err=True)
        sys.exit(2)
    except (click.exceptions.Abort, KeyboardInterrupt) as exc:
        if isinstance(exc.__cause__, interrupts.Interrupted):  # click wraps it in Abort
            _end_interrupted(exc.__cause__)
        if isinstance(exc.__cause__, EOFError):  # click turns an EOFError into Abort
            click.echo(
                f"gpu-genomics: error: an input ended early ({exc.__cause__ or 'EOFError'}); "
                "it is truncated or corrupt: copy or download it again",
                err=True,
            )
            sys.exit(2)
        click.echo("gpu-genomics: interrupted; no output was written", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except OSError as exc:
        click.echo(f"gpu-genomics: error: {exc}", err=True)
        sys.exit(1)


def _end_interrupted(exc: interrupts.Interrupted) -> None:
    """End a run that SIGINT/SIGTERM interrupted: its temporary outputs removed, one line.

    The process ends at once (``os._exit``), so that threads still writing (Zarr's) and their
    pending tasks neither recreate a removed temporary path nor print at interpreter exit.
    """
    import os

    from ..io.store import remove_unfinished

    remove_unfinished()
    click.echo(f"gpu-genomics: interrupted ({exc}); no output was written", err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    remove_unfinished()  # again: a Zarr thread may have written a chunk in the meantime
    os._exit(exc.exit_status)


def genomic_interval_pipeline_main(argv: list[str] | None = None) -> None:
    """``genomic_interval_pipeline``: the ``intervals`` command under the Rust tool's name."""
    main(argv, command=intervals, prog_name="genomic_interval_pipeline")
