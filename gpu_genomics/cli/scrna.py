"""``gpu-genomics scrna``: the single-cell recipe from a count matrix to ML-ready AnnData."""

from __future__ import annotations

from typing import Any

import click

from ..expression.singlecell.job import SCRNA_OUTPUT, preprocess_file
from ..expression.singlecell.recipe import HVG_FLAVORS, MITO_PREFIX
from .common import (
    arrays_epilog,
    cluster_options,
    device_option,
    logging_options,
    report_option,
    run_job,
)


class _NumberOrNone(click.ParamType):
    """An int or float option that also takes ``none`` (skip that bound or step)."""

    def __init__(self, kind: type) -> None:
        self.kind = kind
        self.name = f"{kind.__name__}|none"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if value is None or isinstance(value, self.kind):
            return value
        if str(value).strip().lower() == "none":
            return None
        try:
            return self.kind(value)
        except ValueError:
            self.fail(f"{value!r} is not a {self.kind.__name__} or 'none'", param, ctx)


INT_OR_NONE = _NumberOrNone(int)
FLOAT_OR_NONE = _NumberOrNone(float)


@click.command("scrna", epilog=arrays_epilog(SCRNA_OUTPUT))
@click.argument("input_path", metavar="INPUT", type=click.Path())
@click.option(
    "-o", "--output", required=True, type=click.Path(), help="Output .h5ad or .zarr (AnnData)."
)
@click.option(
    "--transpose", is_flag=True, help="CSV/TSV input is genes x cells (default cells x genes)."
)
@click.option(
    "--min-genes",
    type=INT_OR_NONE,
    default=200,
    show_default=True,
    help="filter_cells; none: skip.",
)
@click.option(
    "--min-cells", type=INT_OR_NONE, default=3, show_default=True, help="filter_genes; none: skip."
)
@click.option(
    "--max-genes",
    type=INT_OR_NONE,
    default=2500,
    show_default=True,
    help="Keep cells with fewer detected genes.",
)
@click.option(
    "--max-pct-mito",
    type=FLOAT_OR_NONE,
    default=5.0,
    show_default=True,
    help="Keep cells with a smaller percent of mitochondrial counts.",
)
@click.option(
    "--mito-prefix", default=MITO_PREFIX, show_default=True, help="Mitochondrial gene prefix."
)
@click.option(
    "--target-sum",
    type=FLOAT_OR_NONE,
    default=1e4,
    show_default=True,
    help="normalize_total; none: scanpy's median rule.",
)
@click.option(
    "--n-top-genes",
    type=INT_OR_NONE,
    default=2000,
    show_default=True,
    help="HVG count; none: scanpy's dispersion cut-offs.",
)
@click.option(
    "--hvg-flavor",
    type=click.Choice(HVG_FLAVORS),
    default="seurat",
    show_default=True,
)
@click.option(
    "--subset-hvg/--keep-all-genes",
    default=True,
    show_default=True,
    help="Keep only the highly variable genes (the recipe) or all, flagged.",
)
@click.option(
    "--max-value",
    "scale_max_value",
    type=float,
    default=10.0,
    show_default=True,
    help="scale: clip scaled values at this.",
)
@click.option(
    "--scale/--no-scale",
    "scale_data",
    default=True,
    show_default=True,
    help="--no-scale: skip the final scaling step.",
)
@click.option(
    "--bins",
    "value_bins",
    type=int,
    default=None,
    help="Also write scGPT's value bins (n_bins, e.g. 51) of each cell's log-normalised values "
    "of the kept genes to layers['X_binned'].",
)
@click.option(
    "--bin-seed", type=int, default=0, show_default=True, help="Seed of the binning's tie breaks."
)
@click.option(
    "--rank-encode",
    "rank_output",
    type=click.Path(),
    default=None,
    help="Also write Geneformer rank-value tokens of the kept cells (.parquet, .dataset, .h5 "
    "or .zarr).",
)
@click.option(
    "--model-version",
    type=click.Choice(["1", "2"]),
    default="2",
    show_default=True,
    callback=lambda _ctx, _param, value: int(value),
    help="rank-encode: Geneformer V1 (2048 tokens) or V2 (4096 with <cls>/<eos>).",
)
@click.option(
    "--n-tokens", type=int, default=None, help="rank-encode length (default: the version's)."
)
@click.option(
    "--gene-medians",
    type=click.Path(),
    default=None,
    help="rank-encode: gene medians file (pickle, JSON, TSV); default: from the data.",
)
@click.option(
    "--token-dictionary",
    type=click.Path(),
    default=None,
    help="rank-encode: gene-id -> token file (pickle, JSON, TSV); default: built from the data.",
)
@click.option(
    "--gene-mapping",
    type=click.Path(),
    default=None,
    help="rank-encode: gene-id -> gene-id file (Geneformer's ensembl_mapping_dict).",
)
@click.option(
    "--special-tokens/--no-special-tokens",
    default=None,
    help="rank-encode: add <cls> and <eos> (default: the version's).",
)
@click.option(
    "--ties",
    type=click.Choice(["geneformer", "stable"]),
    default="geneformer",
    show_default=True,
    help="rank-encode: equal values as NumPy's argsort orders them (Geneformer) or by gene.",
)
@click.option(
    "--rank-attribute",
    "rank_attributes",
    multiple=True,
    metavar="COLUMN[:NAME]",
    help="rank-encode: an obs column written beside the tokens (.parquet/.dataset; repeat).",
)
@click.option(
    "--gene-key",
    default=None,
    help="rank-encode: the var column of gene ids (default: ensembl_id when present, as "
    "Geneformer, else gene_ids, else the gene names).",
)
@click.option("--dataset-id", default=None, help="Dataset card id (default: the input's name).")
@click.option("--name", "dataset_name", default=None, help="Dataset card name.")
@click.option(
    "--chunk-cells",
    type=int,
    default=None,
    help="Run out of core, this many cells per task (default: in memory unless the matrix "
    "would not fit, then 20000).",
)
@report_option
@cluster_options
@device_option
@logging_options
def scrna(input_path: str, output: str, **options: Any) -> None:
    """Run the single-cell recipe on INPUT (.h5ad, 10x .h5, 10x folder, .loom, .zarr, CSV/TSV).

    With no options this is the recipe of docs/singlecell.md: filter_cells(min_genes=200),
    filter_genes(min_cells=3), QC metrics with MT- genes, keep cells with < 2500 genes and
    < 5% mitochondrial counts, normalize_total(1e4), log1p, 2000 highly variable genes (seurat),
    scale(max_value=10). Raw counts are kept in layers['counts']; --bins adds scGPT's value
    bins in layers['X_binned'].

    Out of core (--chunk-cells, --workers, --scheduler, or a matrix larger than the memory
    available) the same recipe runs on blocks of cells read from disk, with the same output.
    """
    run_job(preprocess_file, input_path, output, **options)
