"""The plots the reports are made of, and :class:`Histogram`, counts a job can add up.

Every ``draw_*`` function fills a matplotlib figure (see :meth:`.html.Page.add_plot`); none
imports matplotlib at module level. A histogram series is either the values themselves (an
array: binned here, over edges shared by the series of one plot) or a :class:`Histogram`
that a job binned as it went (its edges are then the plot's).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Bins of a histogram of raw values.
BINS = 50
#: One colour per series, in order (matplotlib's default cycle, as hex).
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")
#: Threshold lines.
LINE_COLOUR = "#d62728"


@dataclass(frozen=True)
class Histogram:
    """Counts of values in bins: ``counts[k]`` values in ``[edges[k], edges[k + 1])``.

    The last bin is closed, as :func:`numpy.histogram`'s. Two histograms over the same edges
    add up (``a + b``), so a job can bin block by block in constant memory.

    Attributes:
        edges: ``(k + 1,) float64``, increasing.
        counts: ``(k,) int64``.
    """

    edges: np.ndarray
    counts: np.ndarray

    @classmethod
    def of(cls, values: Any, edges: Any) -> Histogram:
        """Bin the finite ``values`` (NaN and infinities are left out) over ``edges``."""
        values = np.asarray(values, dtype=np.float64).ravel()
        edges = np.asarray(edges, dtype=np.float64)
        counts, _ = np.histogram(values[np.isfinite(values)], bins=edges)
        return cls(edges, counts.astype(np.int64))

    @classmethod
    def empty(cls, edges: Any) -> Histogram:
        """No value yet, over ``edges``."""
        edges = np.asarray(edges, dtype=np.float64)
        return cls(edges, np.zeros(len(edges) - 1, dtype=np.int64))

    def __add__(self, other: Histogram) -> Histogram:
        if not np.array_equal(self.edges, other.edges):
            raise ValueError("histograms over different edges cannot be added")
        return Histogram(self.edges, self.counts + other.counts)

    @property
    def total(self) -> int:
        """Values counted."""
        return int(self.counts.sum())


Series = Any  #: an array of values or a Histogram


def as_values(values: Any, name: str) -> np.ndarray:
    """``values`` as a 1-D float64 array.

    Raises:
        InputError: not one-dimensional (named ``name``).
    """
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise InputError(f"{name}: expected a 1-D array, got shape {array.shape}")
    return array


def shared_edges(
    series: Sequence[Series],
    *,
    lines: Sequence[float | None] = (),
    log: bool = False,
    integer: bool = False,
) -> np.ndarray:
    """Bin edges for all ``series`` of one plot (those of a :class:`Histogram` among them).

    Over the range of the finite values and of the threshold ``lines``; geometric with
    ``log`` (when every value is > 0), on whole numbers with ``integer``.
    """
    for item in series:
        if isinstance(item, Histogram):
            return item.edges
    finite = [np.asarray(item, dtype=np.float64) for item in series]
    finite = [item[np.isfinite(item)] for item in finite]
    points = np.concatenate([*finite, np.asarray([x for x in lines if x is not None], float)])
    if points.size == 0:
        return np.linspace(0.0, 1.0, BINS + 1)
    low, high = float(points.min()), float(points.max())
    if log and low > 0 and high > low:
        return np.geomspace(low, high, BINS + 1)
    if integer:
        low, high = np.floor(low), np.ceil(high)
        step = max(1.0, np.ceil((high - low + 1) / BINS))
        return np.arange(low - 0.5, high + step + 0.5, step)
    if high == low:
        low, high = low - 0.5, high + 0.5
    return np.linspace(low, high, BINS + 1)


def binned(item: Series, edges: np.ndarray) -> Histogram:
    """``item`` as a :class:`Histogram` over ``edges`` (binned here when it is an array)."""
    return item if isinstance(item, Histogram) else Histogram.of(item, edges)


def draw_histograms(
    figure: Figure,
    series: Sequence[tuple[str, Series]],
    *,
    xlabel: str,
    lines: Sequence[tuple[str, float | None]] = (),
    log: bool = False,
    integer: bool = False,
    edges: Any = None,
    zoom: bool = False,
    fractions: bool = False,
    ylabel: str = "count",
    title: str | None = None,
) -> None:
    """Overlaid histograms, the first filled, the others outlined, and threshold lines.

    Args:
        figure: the figure to draw in.
        series: ``(label, values or Histogram)``, in drawing order.
        xlabel: the x axis's label.
        lines: ``(label, x)`` vertical threshold lines; a None ``x`` is left out.
        log: geometric bins and a log x axis (when the values are > 0).
        integer: whole-number bins (detected genes, labels per region).
        edges: the bins of the array series (default: :func:`shared_edges`; a
            :class:`Histogram` keeps its own).
        zoom: narrow the x axis to the bins that hold values and the lines (for fixed
            ``edges`` wider than the values).
        fractions: draw each series as fractions of its own total (series of unequal size).
        ylabel: the y axis's label.
        title: the plot's title.
    """
    axes = figure.subplots()
    if edges is None:
        edges = shared_edges(
            [item for _, item in series], lines=[x for _, x in lines], log=log, integer=integer
        )
    edges = np.asarray(edges, dtype=np.float64)
    for k, (label, item) in enumerate(series):
        histogram = binned(item, edges)
        colour = COLOURS[k % len(COLOURS)]
        heights = histogram.counts.astype(np.float64)
        if fractions and histogram.total:
            heights /= histogram.total
        axes.stairs(
            heights,
            histogram.edges,
            fill=k == 0,
            alpha=0.55 if k == 0 else 1.0,
            color=colour,
            linewidth=1.6,
            label=f"{label} ({histogram.total:,})",
        )
    if log and edges[0] > 0 and edges[-1] / edges[0] > 20:
        axes.set_xscale("log")
    if integer:
        from matplotlib.ticker import MaxNLocator

        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    if zoom:
        _zoom(axes, [binned(item, edges) for _, item in series], [x for _, x in lines])
    _threshold_lines(axes, lines)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    if title:
        axes.set_title(title)
    axes.legend(loc="best", fontsize="small")


def _zoom(axes: Any, histograms: Sequence[Histogram], lines: Sequence[float | None]) -> None:
    """Narrow the x axis to the occupied bins of ``histograms`` and the ``lines``."""
    points = [float(x) for x in lines if x is not None]
    for histogram in histograms:
        occupied = np.flatnonzero(histogram.counts)
        if len(occupied):
            points += [histogram.edges[occupied[0]], histogram.edges[occupied[-1] + 1]]
    if points:
        low, high = min(points), max(points)
        pad = 0.04 * (high - low) or 0.01
        axes.set_xlim(low - pad, high + pad)


def _threshold_lines(axes: Any, lines: Sequence[tuple[str, float | None]]) -> None:
    styles = ("--", ":", "-.")
    for k, (label, x) in enumerate(item for item in lines if item[1] is not None):
        axes.axvline(
            x, color=LINE_COLOUR, linestyle=styles[k % 3], linewidth=1.5, label=f"{label} = {x:g}"
        )


def draw_bars(
    figure: Figure,
    labels: Sequence[str],
    values: Sequence[float],
    *,
    ylabel: str,
    title: str | None = None,
    colours: Sequence[str] | None = None,
) -> None:
    """One bar per label, its value written above it."""
    axes = figure.subplots()
    positions = np.arange(len(labels))
    bars = axes.bar(
        positions,
        [float(v) for v in values],
        color=list(colours) if colours else COLOURS[0],
        edgecolor="#1f2328",
        linewidth=0.6,
    )
    axes.bar_label(bars, labels=[f"{v:,.0f}" for v in values], fontsize="small", padding=2)
    axes.set_xticks(positions, [str(label) for label in labels], rotation=_rotation(labels))
    axes.set_ylabel(ylabel)
    axes.margins(y=0.15)
    if title:
        axes.set_title(title)


def draw_grouped_bars(
    figure: Figure,
    groups: Sequence[str],
    members: Sequence[str],
    values: np.ndarray,
    *,
    ylabel: str,
    title: str | None = None,
) -> None:
    """``values[g, m]``: a bar per member within each group (a heatmap past 12 members)."""
    axes = figure.subplots()
    values = np.asarray(values, dtype=np.float64).reshape(len(groups), len(members))
    if len(members) > 12:
        image = axes.imshow(values.T, aspect="auto", cmap="viridis", interpolation="nearest")
        figure.colorbar(image, ax=axes, label=ylabel)
        axes.set_xticks(np.arange(len(groups)), list(groups))
        axes.set_yticks(np.arange(len(members)), list(members), fontsize="x-small")
    else:
        width = 0.8 / max(1, len(members))
        positions = np.arange(len(groups))
        for m, member in enumerate(members):
            axes.bar(
                positions + (m - (len(members) - 1) / 2) * width,
                values[:, m],
                width,
                label=member,
                color=COLOURS[m % len(COLOURS)],
            )
        axes.set_xticks(positions, list(groups))
        axes.set_ylabel(ylabel)
        axes.legend(loc="best", fontsize="small", ncols=min(4, max(1, len(members))))
    if title:
        axes.set_title(title)


def draw_scatter(
    figure: Figure,
    x: np.ndarray,
    y: np.ndarray,
    selected: np.ndarray,
    *,
    xlabel: str,
    ylabel: str,
    labels: tuple[str, str],
    title: str | None = None,
) -> None:
    """``y`` against ``x``, the ``selected`` points in colour over the others in grey."""
    axes = figure.subplots()
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    selected = np.asarray(selected, dtype=bool)
    finite = np.isfinite(x) & np.isfinite(y)
    for mask, label, colour, size in (
        (finite & ~selected, labels[1], "#8c959f", 6),
        (finite & selected, labels[0], COLOURS[3], 8),
    ):
        axes.scatter(
            x[mask],
            y[mask],
            s=size,
            color=colour,
            alpha=0.7,
            linewidths=0,
            label=f"{label} ({int(mask.sum()):,})",
        )
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.legend(loc="best", fontsize="small", markerscale=2)
    if title:
        axes.set_title(title)


def _rotation(labels: Sequence[Any]) -> int:
    return 30 if sum(len(str(label)) for label in labels) > 60 else 0
