"""What every ``gpu-genomics`` command shares: options, logging, the command line, errors.

Each command lives in its own module of :mod:`gpu_genomics.cli` and takes its ``--device``,
``--compression`` and ``--quiet``/``--loglevel`` options from here, so they read the same
everywhere; ``encode``, ``bulk`` and ``vcf`` also their ``-o``/``--format`` (``intervals``,
with its ``basset`` format, and ``scrna``, with its AnnData outputs, declare their own). Its
callback calls the library's job through :func:`run_job`, which rewrites the library's
``name=value`` mentions of parameters into the command's flags.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import Callable
from typing import Any

import click

from ..device import DEVICE_CHOICES
from ..errors import GpuGenomicsError
from ..execution import cluster
from ..io.provenance import command_line as joined_command_line
from ..io.spec import OutputSpec
from ..io.store import COMPRESSIONS, FORMATS

log = logging.getLogger("gpu_genomics")


def setup_logging(*, quiet: bool, loglevel: str) -> None:
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


def cluster_options(command: Any) -> Any:
    """``--workers N`` and ``--scheduler ADDRESS``: run the job on a Dask cluster."""
    command = click.option(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="Run on the Dask cluster of this scheduler (default: $DASK_SCHEDULER_ADDRESS when "
        "set and --workers is not given).",
    )(command)
    return click.option(
        "--workers",
        type=int,
        default=None,
        help="Run on a local Dask cluster of this many worker processes (one per GPU with "
        "dask-cuda). Default: in this process.",
    )(command)


def report_option(command: Any) -> Any:
    """``--report REPORT.html``: also write the job's QC report (one self-contained page).

    The job gets ``report=PATH`` only when the option is given, so a run without it calls the
    job exactly as before (``report`` is a keyword of the job, not of its options).
    """

    @functools.wraps(command)
    def run(*args: Any, **options: Any) -> Any:
        if options.get("report") is None:
            options.pop("report", None)
        return command(*args, **options)

    return click.option(
        "--report",
        type=click.Path(dir_okay=False),
        default=None,
        metavar="REPORT.html",
        help="Also write a QC report: one self-contained HTML page with plots and the summary "
        "(needs matplotlib).",
    )(run)


def array_output_options(command: Any) -> Any:
    """Add the ``-o/--output`` and ``--format hdf5|zarr`` options to ``command``.

    ``--output`` is an HDF5 file or Zarr folder. The options are shared by the commands that
    write named arrays through :class:`~gpu_genomics.io.store.ArrayWriter`.
    """
    command = click.option(
        "--format",
        "output_format",
        type=click.Choice(FORMATS),
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


def command_line() -> str:
    """Return the command line as typed.

    That is the program's name and the arguments :func:`main` got (else ``sys.argv``).
    """
    root = click.get_current_context().find_root()
    argv = root.obj.get("argv") if isinstance(root.obj, dict) else None
    return joined_command_line(
        argv if argv is not None else sys.argv[1:], root.info_name or "gpu-genomics"
    )


def _spelling(opts: list[str]) -> str:
    """The one of an option's spellings to show: long (``--k`` is too short), with dashes."""
    long = [o for o in opts if o.startswith("--") and len(o) > 3] or opts
    return ([o for o in long if "_" not in o] or long)[0]


def _flags(command: click.Command) -> dict[str, tuple[str, str | None]]:
    """Map each option's parameter name to its flags.

    Parameter name -> (the flag users type, the flag that sets it False, for an on/off
    flag ``--x/--no-x``; ``""`` for a plain on flag; None for an option with a value).
    """
    flags: dict[str, tuple[str, str | None]] = {}
    for param in command.params:
        if isinstance(param, click.Option) and param.name:
            off = _spelling(param.secondary_opts) if param.secondary_opts else ""
            flags[param.name] = (_spelling(param.opts), off if param.is_flag else None)
    return flags


_VALUE = r"('[^']*'|\"[^\"]*\"|[^\s,;:)]+)"


def cli_message(message: str, command: click.Command) -> str:
    """Return ``message`` with ``command``'s parameter names written as its flags.

    Each ``name=value`` of one of ``command``'s options is written as the option,
    ``--flag value`` (an on/off flag: ``--flag`` for True, ``--no-flag`` for False), and each
    `` `name` `` (a parameter named without a value) as ``--flag``.
    """
    for name, (flag, off) in _flags(command).items():

        def spelled(match: re.Match[str], flag: str = flag, off: str | None = off) -> str:
            value = match.group(1)
            if off is not None and value == "True":
                return flag
            if off and value == "False":
                return off
            return f"{flag} {value}"

        message = re.sub(rf"(?<![\w./-]){re.escape(name)}={_VALUE}", spelled, message)
        message = message.replace(f"`{name}`", flag)
    return message


def run_job(
    job: Callable[..., Any], *paths: str, quiet: bool, loglevel: str, **options: Any
) -> Any:
    """Set up logging, then run ``job(*paths, **options)``.

    The job gets the command line and a progress bar unless ``quiet``, and, for a command with
    :func:`cluster_options`, the client of the cluster they ask for (None: in-process). The
    library's errors come back naming this command's flags.
    """
    setup_logging(quiet=quiet, loglevel=loglevel)
    try:
        if "workers" not in options:  # a command without cluster options
            return job(*paths, **options, progress=not quiet, command=command_line())
        workers, scheduler = options.pop("workers"), options.pop("scheduler")
        with cluster(workers=workers, scheduler=scheduler, device=options.get("device")) as client:
            return job(*paths, **options, client=client, progress=not quiet, command=command_line())
    except GpuGenomicsError as exc:
        raise type(exc)(cli_message(str(exc), click.get_current_context().command)) from None


def arrays_epilog(spec: OutputSpec) -> str:
    """The ``--help`` epilog listing the arrays a command writes, from its output spec."""
    return "Arrays written: " + ", ".join(a.name for a in spec) + "."
