"""``gpu-genomics info``: versions, CPU, GPU and which backends are usable (and why not)."""

from __future__ import annotations

import click


@click.command("info")
def info() -> None:
    """Print versions, CPU and GPU, and which backends are usable (and why not)."""
    from ..info import system_report

    rows = system_report()
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        click.echo(f"{name:<{width}}  {value}")
