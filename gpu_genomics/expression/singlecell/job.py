"""``gpu-genomics scrna``: the single-cell recipe from a count matrix to ML-ready AnnData."""

from __future__ import annotations

import logging
import shlex
import time
from pathlib import Path
from typing import Any

import click

from ...cli.common import device_option, logging_options, setup_logging
from ...errors import InputError
from ...io.store import check_output_folder, removed_on_failure

log = logging.getLogger("gpu_genomics")


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


@click.command("scrna")
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
@click.option("--mito-prefix", default="MT-", show_default=True, help="Mitochondrial gene prefix.")
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
    type=click.Choice(["seurat", "cell_ranger", "seurat_v3"]),
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
    type=float,
    default=10.0,
    show_default=True,
    help="scale: clip scaled values at this.",
)
@click.option("--no-scale", is_flag=True, help="Skip the final scaling step.")
@click.option(
    "--rank-encode",
    "rank_output",
    type=click.Path(),
    default=None,
    help="Also write Geneformer rank-value tokens of the kept cells (.parquet, .h5 or .zarr).",
)
@click.option("--n-tokens", type=int, default=2048, show_default=True, help="rank-encode length.")
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
@click.option("--special-tokens", is_flag=True, help="rank-encode: add <cls> and <eos> (V2).")
@click.option("--dataset-id", default=None, help="Dataset card id (default: the input's name).")
@click.option("--name", "dataset_name", default=None, help="Dataset card name.")
@device_option
@logging_options
def scrna(input_path: str, output: str, **opts: Any) -> None:
    """Run the single-cell recipe on INPUT (.h5ad, 10x .h5, 10x folder, .loom, .zarr, CSV/TSV).

    With no options this is exactly the specification's recipe: filter_cells(min_genes=200),
    filter_genes(min_cells=3), QC metrics with MT- genes, keep cells with < 2500 genes and
    < 5% mitochondrial counts, normalize_total(1e4), log1p, 2000 highly variable genes (seurat),
    scale(max_value=10). Raw counts are kept in layers['counts'].
    """
    from .. import singlecell as sc

    setup_logging(opts["quiet"], opts["loglevel"])
    sc.require_scanpy()
    output_path = Path(output)
    if not output_path.name.lower().endswith((".h5ad", ".zarr")):
        raise InputError(f"{output}: the output must end in .h5ad or .zarr")
    check_output_folder(output_path)
    backend = sc.resolve_backend(opts["device"])
    rank_files = _rank_inputs(opts)

    started = time.perf_counter()
    adata = sc.read(input_path, transpose=opts["transpose"])
    log.info(
        "read %s: %d cells x %d genes (%.2f s)",
        input_path,
        adata.n_obs,
        adata.n_vars,
        time.perf_counter() - started,
    )
    encoding: list[Any] = []

    def rank_encode(counts: Any) -> None:
        encoding.append(_rank_encode(counts, opts, rank_files, backend))

    try:
        sc.preprocess(
            adata,
            min_genes=opts["min_genes"],
            min_cells=opts["min_cells"],
            max_genes=opts["max_genes"],
            max_pct_mito=opts["max_pct_mito"],
            mito_prefix=opts["mito_prefix"],
            target_sum=opts["target_sum"],
            n_top_genes=opts["n_top_genes"],
            hvg_flavor=opts["hvg_flavor"],
            subset_hvg=opts["subset_hvg"],
            scale_max_value=opts["max_value"],
            scale_data=not opts["no_scale"],
            on_counts=rank_encode if opts["rank_output"] else None,
            device=backend,
        )
    except InputError as exc:
        raise InputError(f"{input_path}: {exc}") from None
    argv = click.get_current_context().find_root().obj["argv"]
    adata.uns["dataset_card"] = sc.dataset_card(
        adata,
        dataset_id=opts["dataset_id"] or _stem(Path(input_path)),
        name=opts["dataset_name"],
        source=str(input_path),
        command=shlex.join(["gpu-genomics", *argv]),
    )
    written = time.perf_counter()
    if encoding:  # first: the main output is written last, or not at all
        from .rank import write_rank_encoding

        write_rank_encoding(encoding[0], opts["rank_output"])
    with removed_on_failure(opts["rank_output"]):
        sc.write(adata, output_path)
    log.info(
        "wrote %s: %d cells x %d genes (%.2f s); total %.2f s",
        output,
        adata.n_obs,
        adata.n_vars,
        time.perf_counter() - written,
        time.perf_counter() - started,
    )


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".h5ad", ".h5", ".hdf5", ".loom", ".zarr", ".csv", ".tsv", ".txt"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name or path.name


def _rank_inputs(opts: dict[str, Any]) -> dict[str, Any]:
    """Load (and so validate) the rank-encoding files before any work."""
    if not opts["rank_output"]:
        return {}
    from .rank import load_gene_medians, load_token_dictionary

    suffix = Path(opts["rank_output"]).name.lower()
    if not suffix.endswith((".parquet", ".h5", ".hdf5", ".zarr")):
        raise InputError(f"{opts['rank_output']}: --rank-encode must end in .parquet, .h5 or .zarr")
    check_output_folder(opts["rank_output"])
    return {
        "gene_medians": load_gene_medians(opts["gene_medians"]) if opts["gene_medians"] else None,
        "token_dictionary": (
            load_token_dictionary(opts["token_dictionary"]) if opts["token_dictionary"] else None
        ),
    }


def _rank_encode(adata: Any, opts: dict[str, Any], files: dict[str, Any], backend: str) -> Any:
    from .rank import rank_encode

    started = time.perf_counter()
    encoding = rank_encode(
        adata,
        n_tokens=opts["n_tokens"],
        gene_medians=files["gene_medians"],
        token_dictionary=files["token_dictionary"],
        special_tokens=opts["special_tokens"],
        device="gpu" if backend == "gpu" else "cpu",
    )
    log.info(
        "rank_encode            %9d cells %7d tokens  %8.2f s",
        adata.n_obs,
        int(encoding.offsets[-1]),
        time.perf_counter() - started,
    )
    return encoding
