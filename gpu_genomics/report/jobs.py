"""One QC report function per job; each takes what its job already computed.

Every function writes one self-contained HTML page (:class:`~.html.Page`): the job's summary
and its thresholds in the summary table, then its plots, each threshold drawn as a vertical
line. They take arrays (or :class:`~.plots.Histogram` counts a job binned as it went), not
files, so a Python caller can make a report of its own figures.

* :func:`scrna_report`: detected genes, total counts and % mitochondrial counts per cell before
  and after the filters; the highly variable genes' mean-dispersion plot.
* :func:`vcf_report`: the MAF spectrum, MAF and variant call rate histograms (all variants
  read, when known, and the kept ones) with the ``min_maf``/``max_missing`` lines, and the
  sample missingness histogram.
* :func:`bulk_report`: mean log expression per gene, kept and dropped, with the threshold.
* :func:`intervals_report`: regions per split, regions per label and split, labels per region,
  GC per split, windows shifted at chromosome ends.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .html import Page, check_report_path
from .plots import (
    Histogram,
    as_values,
    draw_bars,
    draw_grouped_bars,
    draw_histograms,
    draw_scatter,
)

#: The per-cell QC values of :func:`scrna_report` (scanpy's ``obs`` column names).
CELL_QC = ("n_genes", "total_counts", "pct_counts_mt")
#: The per-gene HVG values of :func:`scrna_report` (scanpy's ``var`` column names).
HVG_COLUMNS = ("means", "dispersions", "highly_variable")
#: Bins of the MAF, call rate and GC fraction plots of arrays (a Histogram keeps its own).
MAF_EDGES = np.linspace(0.0, 0.5, 101)
CALL_RATE_EDGES = np.linspace(0.0, 1.0, 201)
FRACTION_EDGES = np.linspace(0.0, 1.0, 51)


def _page(
    kind: str,
    title: str | None,
    provenance: Mapping[str, Any] | None,
    summary: Mapping[str, Any] | None,
    thresholds: Mapping[str, Any],
) -> Page:
    page = Page(title or f"gpu-genomics {kind} QC report", provenance=provenance)
    page.add_rows(summary or {})
    page.add_rows(thresholds)
    return page


def _columns(values: Mapping[str, Any], names: Sequence[str], what: str) -> dict[str, np.ndarray]:
    missing = [name for name in names if name not in values]
    if missing:
        raise InputError(f"{what} lacks {', '.join(missing)} (it needs {', '.join(names)})")
    columns = {name: as_values(values[name], f"{what}[{name!r}]") for name in names}
    if len({len(column) for column in columns.values()}) > 1:
        raise InputError(f"{what}: its arrays differ in length")
    return columns


def scrna_report(
    path: str | os.PathLike,
    *,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    min_genes: int | None = None,
    max_genes: int | None = None,
    max_pct_mito: float | None = None,
    hvg: Mapping[str, Any] | None = None,
    hvg_flavor: str | None = None,
    summary: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
    title: str | None = None,
) -> Path:
    """Write the single-cell recipe's QC report.

    Args:
        path: the ``.html`` file to write.
        before: per-cell arrays of the input's cells, keys :data:`CELL_QC`: ``n_genes``
            (detected genes), ``total_counts``, ``pct_counts_mt`` (percent of counts in
            mitochondrial genes).
        after: the same arrays for the cells the filters kept.
        min_genes: ``filter_cells``'s bound (drawn on the genes plot); None: not applied.
        max_genes: the QC filter's bound on detected genes; None: not applied.
        max_pct_mito: the QC filter's bound on % mitochondrial counts; None: not applied.
        hvg: per-gene arrays, keys :data:`HVG_COLUMNS` (``means``, ``dispersions`` and the
            ``highly_variable`` flags) of the genes the HVG step ranked; None: no such plot.
        hvg_flavor: the HVG flavor, named on its plot.
        summary: rows of the summary table (the thresholds are added after them).
        provenance: the job's provenance record (the line under the title).
        title: the page's title.

    Returns:
        ``path``.

    Raises:
        InputError: a missing or misshapen array, a bad ``path``, or matplotlib missing.
    """
    check_report_path(path)
    cells_before = _columns(before, CELL_QC, "before")
    cells_after = _columns(after, CELL_QC, "after")
    page = _page(
        "scrna",
        title,
        provenance,
        summary,
        {"min_genes": min_genes, "max_genes": max_genes, "max_pct_mito": max_pct_mito},
    )
    series = {
        name: [("input cells", cells_before[name]), ("kept cells", cells_after[name])]
        for name in CELL_QC
    }
    page.add_plot(
        "Detected genes per cell, before and after the filters, with the filter_cells "
        "(min_genes) and QC (max_genes) bounds.",
        lambda figure: draw_histograms(
            figure,
            series["n_genes"],
            xlabel="detected genes per cell",
            integer=True,
            lines=[("min_genes", min_genes), ("max_genes", max_genes)],
            title="Genes per cell",
        ),
    )
    page.add_plot(
        "Total counts per cell, before and after the filters (log scale when they span a wide "
        "range).",
        lambda figure: draw_histograms(
            figure,
            series["total_counts"],
            xlabel="total counts per cell",
            log=True,
            title="Counts per cell",
        ),
    )
    page.add_plot(
        "Percent of counts in mitochondrial genes per cell, before and after the filters, with "
        "the QC bound (max_pct_mito).",
        lambda figure: draw_histograms(
            figure,
            series["pct_counts_mt"],
            xlabel="% mitochondrial counts per cell",
            lines=[("max_pct_mito", max_pct_mito)],
            title="Mitochondrial counts per cell",
        ),
    )
    if hvg is not None:
        genes = _columns(hvg, HVG_COLUMNS, "hvg")
        named = f" ({hvg_flavor})" if hvg_flavor else ""
        page.add_plot(
            f"Highly variable genes{named}: each gene's dispersion against its mean; the "
            "selected genes in colour.",
            lambda figure: draw_scatter(
                figure,
                genes["means"],
                genes["dispersions"],
                genes["highly_variable"] > 0,
                xlabel="mean expression",
                ylabel="dispersion",
                labels=("highly variable", "other genes"),
                title=f"Mean-dispersion{named}",
            ),
        )
    return page.write(path)


def vcf_report(
    path: str | os.PathLike,
    *,
    call_rate: Any,
    maf: Any,
    sample_missing: Any,
    min_maf: float = 0.0,
    max_missing: float = 1.0,
    call_rate_before: Any = None,
    maf_before: Any = None,
    maf_spectrum: Sequence[tuple[str, int]] | None = None,
    summary: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
    title: str | None = None,
) -> Path:
    """Write the VCF job's QC report.

    Args:
        path: the ``.html`` file to write.
        call_rate: the kept variants' call rates (fully called calls / samples): an array, or
            a :class:`~.plots.Histogram` of them.
        maf: the kept dosage columns' minor allele frequencies (array or Histogram).
        sample_missing: each sample's missing rate over the kept variants (array).
        min_maf: the MAF filter (a line on the MAF plot when > 0).
        max_missing: the missing-rate filter (a line at call rate ``1 - max_missing`` when < 1).
        call_rate_before: the call rates of every variant read, before the filters (array or
            Histogram); None: unknown (only the kept ones are drawn).
        maf_before: the MAF of every column read, before the filters; None: unknown.
        maf_spectrum: ``[(bin label, count), ...]`` of the kept columns (the job's summary);
            default: binned here from ``maf`` when it is an array.
        summary: rows of the summary table (the thresholds are added after them).
        provenance: the job's provenance record.
        title: the page's title.

    Returns:
        ``path``.

    Raises:
        InputError: a misshapen array, a bad ``path``, or matplotlib missing.
    """
    check_report_path(path)
    if maf_spectrum is None and not isinstance(maf, Histogram):
        from ..variants.genotypes import maf_spectrum as spectrum_of

        maf_spectrum = spectrum_of(as_values(maf, "maf"))
    missing = as_values(sample_missing, "sample_missing")
    page = _page(
        "vcf", title, provenance, summary, {"min_maf": min_maf, "max_missing": max_missing}
    )
    if maf_spectrum is not None:
        spectrum = list(maf_spectrum)
        page.add_plot(
            "MAF spectrum of the kept dosage columns.",
            lambda figure: draw_bars(
                figure,
                [label for label, _ in spectrum],
                [count for _, count in spectrum],
                ylabel="dosage columns",
                title="MAF spectrum (kept)",
            ),
        )

    def with_before(before: Any, kept: Any, what: str) -> list[tuple[str, Any]]:
        kept_series = [(f"kept {what}", kept)]
        return kept_series if before is None else [(f"all {what} read", before), *kept_series]

    maf_series = with_before(maf_before, maf, "columns")
    page.add_plot(
        "Minor allele frequency of every dosage column read"
        + (" and " if maf_before is not None else ": ")
        + "of the kept ones, with the min_maf filter.",
        lambda figure: draw_histograms(
            figure,
            maf_series,
            xlabel="minor allele frequency",
            edges=MAF_EDGES,
            zoom=True,
            lines=[("min_maf", min_maf if min_maf > 0 else None)],
            title="MAF",
        ),
    )
    rate_series = with_before(call_rate_before, call_rate, "variants")
    page.add_plot(
        "Variant call rate (fully called calls / samples), with the max_missing filter drawn "
        "at call rate 1 - max_missing.",
        lambda figure: draw_histograms(
            figure,
            rate_series,
            xlabel="variant call rate",
            edges=CALL_RATE_EDGES,
            zoom=True,
            lines=[("1 - max_missing", 1 - max_missing if max_missing < 1 else None)],
            title="Variant call rate",
        ),
    )
    page.add_plot(
        "Sample missingness: each sample's fraction of calls with a missing allele, over the "
        "kept variants (no sample filter is applied).",
        lambda figure: draw_histograms(
            figure,
            [("samples", missing)],
            xlabel="sample missing rate",
            title="Sample missingness",
        ),
    )
    return page.write(path)


def bulk_report(
    path: str | os.PathLike,
    *,
    mean_log: Any,
    kept: Any,
    min_mean_log: float | None,
    summary: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
    title: str | None = None,
) -> Path:
    """Write the bulk job's QC report.

    Args:
        path: the ``.html`` file to write.
        mean_log: ``(n_input_genes,)``: each input gene's mean log expression over samples.
        kept: ``(n_input_genes,)`` bool: the genes kept.
        min_mean_log: the filter's threshold (a line); None: no threshold (a stored scaler's
            genes were kept).
        summary: rows of the summary table (the threshold is added after them).
        provenance: the job's provenance record.
        title: the page's title.

    Returns:
        ``path``.

    Raises:
        InputError: misshapen arrays, a bad ``path``, or matplotlib missing.
    """
    check_report_path(path)
    means = as_values(mean_log, "mean_log")
    mask = np.asarray(kept, dtype=bool)
    if mask.shape != means.shape:
        raise InputError(f"kept: {mask.shape} does not match mean_log's {means.shape}")
    page = _page("bulk", title, provenance, summary, {"min_mean_log": min_mean_log})
    page.add_plot(
        "Mean log expression of each input gene over the samples, all genes and the kept "
        "ones, with the min_mean_log threshold (genes above it are kept).",
        lambda figure: draw_histograms(
            figure,
            [("input genes", means), ("kept genes", means[mask])],
            xlabel="mean log expression",
            lines=[("min_mean_log", min_mean_log)],
            ylabel="genes",
            title="Mean log expression per gene",
        ),
    )
    return page.write(path)


def intervals_report(
    path: str | os.PathLike,
    *,
    split_counts: Mapping[str, int],
    label_names: Sequence[str],
    labels_per_split: Mapping[str, Any],
    labels_per_region: Any,
    gc_per_split: Mapping[str, Any],
    n_shifted: int,
    summary: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
    title: str | None = None,
) -> Path:
    """Write the intervals job's QC report.

    Args:
        path: the ``.html`` file to write.
        split_counts: regions per split (``{"train": n, "valid": n, "test": n}``).
        label_names: the ``K`` labels.
        labels_per_split: split -> ``(K,)`` regions carrying each label.
        labels_per_region: ``(n,)`` int: labels each region carries.
        gc_per_split: split -> GC fraction (0..1) of each of its regions (an array, or a
            :class:`~.plots.Histogram`).
        n_shifted: windows shifted to fit inside their chromosome's ends.
        summary: rows of the summary table.
        provenance: the job's provenance record.
        title: the page's title.

    Returns:
        ``path``.

    Raises:
        InputError: misshapen arrays, a bad ``path``, or matplotlib missing.
    """
    check_report_path(path)
    splits = [str(name) for name in split_counts]
    counts = [int(split_counts[name]) for name in splits]
    n_labels = len(label_names)
    per_split = np.zeros((len(splits), n_labels))
    for s, name in enumerate(splits):
        row = np.asarray(labels_per_split.get(name, np.zeros(n_labels)), dtype=np.float64)
        if row.shape != (n_labels,):
            raise InputError(
                f"labels_per_split[{name!r}]: shape {row.shape}, expected ({n_labels},), one "
                "count per label"
            )
        per_split[s] = row
    per_region = as_values(labels_per_region, "labels_per_region")
    gc = [
        (name, values if isinstance(values, Histogram) else as_values(values, f"gc[{name!r}]"))
        for name, values in gc_per_split.items()
    ]
    n_regions = sum(counts)
    page = _page(
        "intervals",
        title,
        provenance,
        summary,
        {"regions": n_regions, "windows shifted at chromosome ends": int(n_shifted)},
    )
    page.add_plot(
        "Regions per split.",
        lambda figure: draw_bars(figure, splits, counts, ylabel="regions", title="Splits"),
    )
    page.add_plot(
        "Regions carrying each label, per split.",
        lambda figure: draw_grouped_bars(
            figure,
            splits,
            [str(name) for name in label_names],
            per_split,
            ylabel="regions",
            title="Labels per split",
        ),
    )
    page.add_plot(
        "Labels per region: how many labels each region carries.",
        lambda figure: draw_histograms(
            figure,
            [("regions", per_region)],
            xlabel="labels per region",
            integer=True,
            ylabel="regions",
            title="Labels per region",
        ),
    )

    page.add_plot(
        "GC fraction of the regions of each split (each split's histogram sums to 1).",
        lambda figure: draw_histograms(
            figure,
            gc,
            xlabel="GC fraction",
            ylabel="fraction of the split's regions",
            edges=FRACTION_EDGES,
            fractions=True,
            title="GC content per split",
        ),
    )
    shifted = int(n_shifted)
    page.add_plot(
        "Windows shifted to fit inside their chromosome (they would have crossed its start or "
        "end), and the others.",
        lambda figure: draw_bars(
            figure,
            ["shifted at chromosome ends", "in place"],
            [shifted, max(0, n_regions - shifted)],
            ylabel="windows",
            colours=("#d62728", "#1f77b4"),
            title="Windows at chromosome ends",
        ),
    )
    return page.write(path)
