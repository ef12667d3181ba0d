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

import importlib
import sys
from collections.abc import Iterator, MutableMapping

import click

from ..errors import GpuGenomicsError
from ..io import interrupts
from ..io.provenance import version

#: Each command -> (its module in this package, the command's name there), in the order
#: ``gpu-genomics --help`` lists them. A module is imported only when its command is looked
#: up, so ``gpu-genomics vcf`` does not import the single-cell code, nor ``bulk`` the VCF code.
COMMAND_MODULES: dict[str, tuple[str, str]] = {
    "bulk": ("bulk", "bulk"),
    "doublets": ("augment", "doublets"),
    "downsample": ("augment", "downsample"),
    "encode": ("encode", "encode"),
    "info": ("info", "info"),
    "intervals": ("intervals", "intervals"),
    "scrna": ("scrna", "scrna"),
    "variant-windows": ("variant_windows", "variant_windows_command"),
    "vcf": ("vcf", "vcf"),
}


class LazyCommands(MutableMapping[str, click.Command]):
    """A group's ``commands``: their names known at once, each imported on first lookup.

    Listing the names (``sorted(group.commands)``, ``name in group.commands``, click's "Did you
    mean" suggestions) imports nothing; ``group.commands[name]`` imports the command's module.
    """

    def __init__(self, modules: dict[str, tuple[str, str]]) -> None:
        self._modules = dict(modules)
        self._loaded: dict[str, click.Command] = {}

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._loaded:
            module, attribute = self._modules[name]  # KeyError: no such command
            command = getattr(importlib.import_module(f".{module}", __name__), attribute)
            self._loaded[name] = command
        return self._loaded[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        if name not in self:
            raise KeyError(name)
        self._modules.pop(name, None)
        self._loaded.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._modules or name in self._loaded

    def __iter__(self) -> Iterator[str]:
        yield from self._modules
        yield from (name for name in self._loaded if name not in self._modules)

    def __len__(self) -> int:
        return len(self._modules.keys() | self._loaded.keys())


class LazyGroup(click.Group):
    """A :class:`click.Group` over :data:`COMMAND_MODULES`, importing only the command run."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.commands = LazyCommands(COMMAND_MODULES)

    def list_commands(self, ctx: click.Context) -> list[str]:
        """The commands' names, sorted as ``--help`` lists them; imports none of them."""
        return sorted(self.commands)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command ``cmd_name`` (its module imported now), or None if there is none."""
        return self.commands.get(cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version(), prog_name="gpu-genomics")
def cli() -> None:
    """GPU-accelerated preprocessing of genomics files into ML-ready arrays."""


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
    main(argv, command=cli.commands["intervals"], prog_name="genomic_interval_pipeline")
