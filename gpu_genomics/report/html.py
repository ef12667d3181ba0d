"""One self-contained HTML page: a title, the provenance line, a summary table and plots.

:class:`Page` collects what a report shows and :meth:`Page.write` writes it: inline CSS, each
plot a matplotlib figure drawn by the Agg backend into a PNG embedded as a base64 ``data:``
URI, no script and no external resource (a Content-Security-Policy that allows only inline
styles and ``data:`` images says so to the browser). The page is written atomically
(:func:`~gpu_genomics.io.store.atomic_output`): figures are drawn one at a time into a
temporary file beside the report, which replaces the report only once it is complete.

matplotlib is imported only when a page is written; without it :func:`require_matplotlib`
raises the one-line :class:`~gpu_genomics.errors.InputError` the jobs raise before any work.
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError, invalid
from ..io.store import atomic_output, check_output_folder

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Report names end in one of these (case-insensitive).
REPORT_SUFFIXES = (".html", ".htm")
#: What the library says when matplotlib is missing (``report`` reads ``--report`` on the CLI).
MATPLOTLIB_MISSING = "`report` needs matplotlib: pip install 'gpu-genomics[report]'"
#: Size of every plot, inches at :data:`DPI` (700 x 360 pixels).
FIGURE_SIZE = (7.0, 3.6)
DPI = 100

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       margin: 2em auto; max-width: 960px; padding: 0 1em; color: #1f2328; background: #fff; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #d0d7de; }
p.provenance { color: #57606a; font-size: 0.9em; margin-top: 0; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
       background: #f6f8fa; padding: 0.1em 0.3em; border-radius: 4px; word-break: break-all; }
table.summary { border-collapse: collapse; font-size: 0.92em; }
table.summary th, table.summary td { border: 1px solid #d0d7de; padding: 0.25em 0.7em;
       text-align: left; vertical-align: top; }
table.summary th { background: #f6f8fa; font-weight: 600; white-space: nowrap; }
figure { margin: 1.2em 0; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid #d0d7de; }
figcaption { color: #57606a; font-size: 0.9em; margin-top: 0.3em; }
"""
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def require_matplotlib() -> None:
    """Raise :class:`InputError` (:data:`MATPLOTLIB_MISSING`) unless matplotlib imports."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise InputError(MATPLOTLIB_MISSING) from None


def check_report_path(
    path: str | os.PathLike, *, outputs: Iterable[str | os.PathLike | None] = ()
) -> Path:
    """Check, before any work, that a report can be written at ``path``; return it as a Path.

    Raises:
        InputError: ``path`` does not end in ``.html``/``.htm``, is a folder, equals one of
            ``outputs``, or its folder is missing or not writable; or matplotlib is missing.
    """
    report = Path(path)
    if not report.name.lower().endswith(REPORT_SUFFIXES):
        raise invalid("report", str(path), "must end in .html or .htm")
    if report.is_dir():
        raise InputError(f"{path}: exists and is a folder; choose another report name")
    check_output_folder(report)
    for output in outputs:
        if output is not None and Path(output).resolve() == report.resolve():
            raise invalid("report", str(path), "must differ from the outputs")
    require_matplotlib()
    return report


@contextlib.contextmanager
def written_reports() -> Iterator[list[Path]]:
    """Yield a list; the reports appended to it are removed if the block fails.

    A job writes its report inside the block that writes (and commits) its outputs, so that a
    report is never left without them; a report of the same name from an earlier run, not
    appended, is left alone.
    """
    written: list[Path] = []
    try:
        yield written
    except BaseException:
        for path in written:
            Path(path).unlink(missing_ok=True)
        raise


def format_value(value: Any) -> str:
    """A summary value as the table shows it.

    ``none`` for None, yes/no, integers with thousands separators, floats to 6 significant
    digits, a mapping as ``key value, ...``, a list of pairs as ``a b; c d``.
    """
    if isinstance(value, Mapping):
        return ", ".join(f"{key} {format_value(item)}" for key, item in value.items())
    if isinstance(value, list | tuple | np.ndarray):
        items = list(value)
        if items and all(isinstance(item, list | tuple) for item in items):  # pairs
            return "; ".join(" ".join(format_value(part) for part in item) for item in items)
        return ", ".join(format_value(item) for item in items)
    if value is None:
        text = "none"
    elif isinstance(value, bool | np.bool_):
        text = "yes" if value else "no"
    elif isinstance(value, int | np.integer):
        text = f"{int(value):,}"
    elif isinstance(value, float | np.floating):
        text = "NaN" if math.isnan(float(value)) else f"{float(value):.6g}"
    else:
        text = str(value)
    return text


@dataclass
class Plot:
    """One figure of a page: ``draw(figure)`` fills a fresh matplotlib figure."""

    caption: str
    draw: Callable[[Figure], None]
    alt: str = ""


@dataclass
class Page:
    """What one report page shows.

    Attributes:
        title: the page's title and heading.
        provenance: the job's provenance record (:func:`~gpu_genomics.io.provenance.provenance`):
            tool, version, command, created, device make the line under the title.
        summary: ``(key, value)`` rows of the summary table, in order.
        plots: the figures, in order.
    """

    title: str
    provenance: Mapping[str, Any] | None = None
    summary: list[tuple[str, Any]] = field(default_factory=list)
    plots: list[Plot] = field(default_factory=list)

    def add_rows(self, rows: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> None:
        """Append summary rows (a mapping, or ``(key, value)`` pairs)."""
        items = rows.items() if isinstance(rows, Mapping) else rows
        self.summary.extend((str(key), value) for key, value in items)

    def add_plot(self, caption: str, draw: Callable[[Figure], None], *, alt: str = "") -> None:
        """Append a figure drawn by ``draw(figure)``."""
        self.plots.append(Plot(caption, draw, alt or caption))

    def write(self, path: str | os.PathLike) -> Path:
        """Write the page to ``path`` atomically (nothing is left at ``path`` if it fails).

        Raises:
            InputError: matplotlib is missing, or ``path`` cannot be written.
        """
        require_matplotlib()
        path = Path(path)
        with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
            handle.write(self._head())
            for number, plot in enumerate(self.plots, 1):
                handle.write(_figure_html(plot, number))
            handle.write("</body>\n</html>\n")
        return path

    def _head(self) -> str:
        """Everything before the figures: head, title, provenance line, summary table."""
        title = html.escape(self.title)
        parts = [
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n',
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
            '<link rel="icon" href="data:,">\n',
            f"<title>{title}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n",
            f"<h1>{title}</h1>\n",
            _provenance_html(self.provenance),
            '<h2>Summary</h2>\n<table class="summary">\n<tbody>\n',
        ]
        parts += [
            f"<tr><th>{html.escape(key)}</th><td>{html.escape(format_value(value))}</td></tr>\n"
            for key, value in self.summary
        ]
        parts.append("</tbody>\n</table>\n<h2>Plots</h2>\n")
        return "".join(parts)


def _provenance_html(record: Mapping[str, Any] | None) -> str:
    if not record:
        return ""
    details = [
        f"{record.get('tool', 'gpu-genomics')} {record.get('gpu_genomics_version', '')}".strip(),
        f"device {record['device']}" if record.get("device") else "",
        f"created {record['created']}" if record.get("created") else "",
    ]
    line = html.escape(", ".join(detail for detail in details if detail))
    command = record.get("command")
    if command:
        line += f"<br>command: <code>{html.escape(str(command))}</code>"
    return f'<p class="provenance">{line}</p>\n'


def _figure_html(plot: Plot, number: int) -> str:
    """The ``<figure>`` of one plot, its PNG drawn now (Agg) and embedded as base64."""
    png = render_png(plot.draw)
    width, height = (round(side * DPI) for side in FIGURE_SIZE)
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure id="plot-{number}">\n'
        f'<img src="data:image/png;base64,{data}" width="{width}" height="{height}" '
        f'alt="{html.escape(plot.alt, quote=True)}">\n'
        f"<figcaption>{html.escape(plot.caption)}</figcaption>\n</figure>\n"
    )


def render_png(draw: Callable[[Figure], None]) -> bytes:
    """The PNG of a new :data:`FIGURE_SIZE` figure that ``draw(figure)`` fills (Agg backend).

    The figure is made without pyplot, so no global state or interactive backend is touched.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=FIGURE_SIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    draw(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()
