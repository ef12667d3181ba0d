"""QC reports (``gpu_genomics.report``, ``--report`` of ``scrna``, ``vcf`` and ``bulk``).

Each report function on synthetic figures, and each command on the bundled example data, writes
a page that a real headless Chromium loads without a console error, whose every ``<img>`` is
decoded (``naturalWidth > 0``) and not one colour (its PNG decoded here, and its region of the
browser's screenshot), and whose full-page screenshot is not blank. The browser tests skip
without ``chromium``/``chromedriver`` (Debian's ``chromium chromium-driver``) or selenium; the
rest do not need a browser: the summary table holds the thresholds, the jobs hand the report
the figures they computed (checked against the outputs and independent recomputations), a
failed write leaves nothing behind, bad report paths are one-line errors (exit status 2 on
the command line), and the out-of-core scrna recipe refuses ``--report``.
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from test_cli import error_of, job_module, record_job, run

from gpu_genomics import report as rp
from gpu_genomics.errors import InputError
from gpu_genomics.io import store

ROOT = Path(__file__).resolve().parent.parent
SCRNA = ROOT / "data" / "scrna" / "filtered_feature_bc_matrix"
VCF = ROOT / "data" / "vcf" / "example.vcf.gz"
BULK = ROOT / "data" / "bulk" / "example_expression.tsv"
#: The flags the brief of these tests gives Chromium (the machine's network is closed).
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1100,900",
)


# --- reading a page -------------------------------------------------------------------------


class _PageParser(HTMLParser):
    """The summary table's rows, the images' sources and the tags of a report page."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, str] = {}
        self.images: list[str] = []
        self.tags: list[tuple[str, dict]] = []
        self._cell: list[str] | None = None
        self._row: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "img":
            self.images.append(attributes.get("src", ""))
        if tag in ("th", "td"):
            self._cell = []
        if tag == "tr":
            self._row = []

    def handle_endtag(self, tag):
        if tag in ("th", "td") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        if tag == "tr" and len(self._row) == 2:
            self.rows[self._row[0]] = self._row[1]

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def parse(path: Path) -> _PageParser:
    parser = _PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def colours(png: bytes, *, crop: int = 0) -> tuple[int, float]:
    """``(distinct colours, fraction of pixels not of the commonest colour)`` of a PNG."""
    import matplotlib.image

    pixels = matplotlib.image.imread(io.BytesIO(png), format="png")
    if crop:
        pixels = pixels[crop:-crop, crop:-crop]
    flat = np.round(pixels.reshape(-1, pixels.shape[-1]) * 255).astype(np.uint8)
    values, counts = np.unique(flat, axis=0, return_counts=True)
    return len(values), 1 - counts.max() / counts.sum()


def assert_not_blank(png: bytes, what: str, *, min_ink: float = 0.005, crop: int = 0) -> None:
    """Fail unless ``png`` has two colours or more and ``min_ink`` of its pixels off the
    commonest colour (``crop`` pixels off each side first: the frame CSS draws round it)."""
    n, ink = colours(png, crop=crop)
    assert n > 1 and ink >= min_ink, f"{what} is blank: {n} colours, {ink:.4%} ink"


def assert_self_contained(path: Path, n_plots: int) -> _PageParser:
    """No script, no external reference; ``n_plots`` PNG data URIs, each non-blank."""
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert "<script" not in text.lower()
    assert not re.search(r"(src|href)=\"(?!data:)", text), "a reference to another resource"
    assert not re.search(r"https?://", text)
    page = parse(path)
    assert any(
        tag == "meta" and attrs.get("http-equiv") == "Content-Security-Policy"
        for tag, attrs in page.tags
    )
    assert len(page.images) == n_plots
    for k, src in enumerate(page.images):
        assert src.startswith("data:image/png;base64,"), src[:40]
        png = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        assert_not_blank(png, f"plot {k + 1}")
    return page


# --- the browser ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium driven by chromedriver (selenium), one for the module."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if binary is None or driver_path is None:
        pytest.skip("chromium and chromedriver are not installed (apt-get install chromium "
                    "chromium-driver)")  # fmt: skip
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="gpu-genomics-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def render(driver, path: Path, shots: Path) -> dict:
    """Load ``path`` in the browser; its console log, images and screenshots."""
    driver.get_log("browser")  # what earlier pages left
    driver.set_window_size(1100, 900)
    driver.get(path.resolve().as_uri())
    state = driver.execute_script("return document.readyState")
    images = driver.execute_script(
        "return Array.from(document.images).map(i => "
        "({complete: i.complete, width: i.naturalWidth, height: i.naturalHeight}))"
    )
    elements = driver.find_elements("css selector", "img")
    image_shots = [element.screenshot_as_png for element in elements]
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1100, min(int(height) + 100, 16000))
    screenshot = driver.get_screenshot_as_png()
    shots.mkdir(parents=True, exist_ok=True)
    (shots / f"{path.stem}.png").write_bytes(screenshot)
    logs = driver.get_log("browser")
    return {
        "state": state,
        "title": driver.title,
        "errors": [entry for entry in logs if entry["level"] in ("SEVERE", "WARNING")],
        "images": images,
        "image_shots": image_shots,
        "screenshot": screenshot,
    }


def assert_renders(driver, path: Path, shots: Path, n_plots: int) -> dict:
    """The page loads without console errors; every image decoded and non-blank."""
    seen = render(driver, path, shots)
    assert seen["state"] == "complete"
    assert seen["errors"] == [], seen["errors"]
    assert seen["title"].startswith("gpu-genomics")
    assert len(seen["images"]) == n_plots
    for k, image in enumerate(seen["images"]):
        assert image["complete"] and image["width"] > 0 and image["height"] > 0, (k, image)
    for k, png in enumerate(seen["image_shots"]):
        assert_not_blank(png, f"the screenshot of plot {k + 1}", min_ink=0.01, crop=4)
    assert_not_blank(seen["screenshot"], "the page's screenshot", min_ink=0.02)
    return seen


def test_the_browser_check_fails_on_a_broken_page(browser, tmp_path):
    """The checks above can fail: a missing image is a console error and a 0-width image."""
    page = tmp_path / "broken.html"
    page.write_text(
        "<!DOCTYPE html><html><head><title>gpu-genomics broken</title>"
        '<link rel="icon" href="data:,"></head><body><img src="missing.png"></body></html>'
    )
    seen = render(browser, page, tmp_path)
    assert any("missing.png" in entry["message"] for entry in seen["errors"]), seen["errors"]
    assert seen["images"][0]["width"] == 0
    with pytest.raises(AssertionError):
        assert_renders(browser, page, tmp_path, 1)


def test_the_blank_check_fails_on_a_one_colour_image():
    import matplotlib.image

    white = io.BytesIO()
    matplotlib.image.imsave(white, np.ones((20, 30, 3)), format="png")
    with pytest.raises(AssertionError, match="a white image is blank: 1 colours"):
        assert_not_blank(white.getvalue(), "a white image")
    dotted = np.ones((20, 30, 3))
    dotted[5, 5] = 0  # one pixel of ink: another colour, but far too little ink
    matplotlib.image.imsave(white := io.BytesIO(), dotted, format="png")
    with pytest.raises(AssertionError, match="blank: 2 colours"):
        assert_not_blank(white.getvalue(), "a dot")


# --- synthetic figures ----------------------------------------------------------------------


def _cells(rng, n: int) -> dict:
    return {
        "n_genes": rng.integers(20, 3000, n),
        "total_counts": rng.lognormal(7, 1, n),
        "pct_counts_mt": rng.gamma(2.0, 2.0, n),
    }


def scrna_figures(rng) -> dict:
    before = _cells(rng, 800)
    keep = (before["n_genes"] >= 200) & (before["n_genes"] < 2500) & (before["pct_counts_mt"] < 5)
    return {
        "before": before,
        "after": {key: value[keep] for key, value in before.items()},
        "min_genes": 200,
        "max_genes": 2500,
        "max_pct_mito": 5.0,
        "hvg": {
            "means": rng.gamma(1.0, 1.0, 400),
            "dispersions": rng.normal(0, 1, 400),
            "highly_variable": rng.random(400) < 0.25,
        },
        "hvg_flavor": "seurat",
        "summary": {"input cells": 800, "kept cells": int(keep.sum())},
    }


def vcf_figures(rng) -> dict:
    rates = rng.beta(30, 1, 1000)
    maf = rng.uniform(0, 0.5, 1000)
    kept = (maf >= 0.05) & (rates >= 0.9)
    return {
        "call_rate": rates[kept],
        "maf": rp.Histogram.of(maf[kept], np.linspace(0, 0.5, 101)),
        "sample_missing": rng.uniform(0, 0.05, 60),
        "min_maf": 0.05,
        "max_missing": 0.1,
        "call_rate_before": rp.Histogram.of(rates, np.linspace(0, 1, 201)),
        "maf_before": maf,
        "maf_spectrum": [("[0, 0.01)", 0), ("[0.01, 0.05)", 0), ("[0.05, 0.5]", int(kept.sum()))],
        "summary": {"variants_read": 1000, "variants_kept": int(kept.sum())},
    }


def bulk_figures(rng) -> dict:
    means = rng.normal(1.5, 1.2, 500)
    return {
        "mean_log": means,
        "kept": means > 1.0,
        "min_mean_log": 1.0,
        "summary": {"samples": 12, "input genes": 500},
    }


def intervals_figures(rng, n_labels: int = 3) -> dict:
    names = [f"cell_type_{k}" for k in range(n_labels)]
    return {
        "split_counts": {"train": 700, "valid": 150, "test": 150},
        "label_names": names,
        "labels_per_split": {
            split: rng.integers(1, n, n_labels)
            for split, n in (("train", 700), ("valid", 150), ("test", 150))
        },
        "labels_per_region": rng.integers(1, n_labels + 1, 1000),
        "gc_per_split": {
            "train": rng.beta(4, 6, 700),
            "valid": rp.Histogram.of(rng.beta(4, 6, 150), np.linspace(0, 1, 51)),
            "test": rng.beta(4, 6, 150),
        },
        "n_shifted": 12,
        "summary": {"reference": "hg38.fa", "sequence_length": 1000},
    }


#: report function, figures, plots drawn, summary rows the page must show.
CASES = {
    "scrna": (
        rp.scrna_report,
        scrna_figures,
        4,
        {"min_genes": "200", "max_genes": "2,500", "max_pct_mito": "5", "input cells": "800"},
    ),
    "vcf": (
        rp.vcf_report,
        vcf_figures,
        4,
        {"min_maf": "0.05", "max_missing": "0.1", "variants_read": "1,000"},
    ),
    "bulk": (rp.bulk_report, bulk_figures, 1, {"min_mean_log": "1", "input genes": "500"}),
    "intervals": (
        rp.intervals_report,
        intervals_figures,
        5,
        {"regions": "1,000", "windows shifted at chromosome ends": "12", "reference": "hg38.fa"},
    ),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_report_functions_write_a_self_contained_page_with_the_thresholds(kind, tmp_path):
    function, figures, n_plots, rows = CASES[kind]
    path = tmp_path / f"{kind}.html"
    provenance = {"tool": f"gpu-genomics {kind}", "gpu_genomics_version": "9.9.9",
                  "command": f"gpu-genomics {kind} in -o 'out put.h5' <x>", "device": "cpu",
                  "created": "2026-01-01T00:00:00Z"}  # fmt: skip
    assert function(path, **figures(np.random.default_rng(1)), provenance=provenance) == path
    page = assert_self_contained(path, n_plots)
    for key, value in rows.items():
        assert page.rows.get(key) == value, (key, page.rows)
    text = path.read_text()
    assert "gpu-genomics " + kind + " 9.9.9" in text
    assert "gpu-genomics " + kind + " in -o &#x27;out put.h5&#x27; &lt;x&gt;" in text  # escaped
    assert not list(tmp_path.glob(".*"))  # no temporary or lock file left


@pytest.mark.parametrize("kind", sorted(CASES))
def test_report_functions_render_in_chromium(kind, browser, tmp_path):
    function, figures, n_plots, _ = CASES[kind]
    path = function(tmp_path / f"{kind}.html", **figures(np.random.default_rng(2)))
    assert_renders(browser, path, tmp_path / "shots", n_plots)


def test_many_labels_are_a_heatmap_that_renders(browser, tmp_path):
    path = rp.intervals_report(
        tmp_path / "labels.html", **intervals_figures(np.random.default_rng(3), n_labels=30)
    )
    assert_renders(browser, path, tmp_path / "shots", 5)


def test_skipped_thresholds_read_none_and_draw_no_line(tmp_path):
    figures = scrna_figures(np.random.default_rng(4)) | {"max_genes": None, "hvg": None}
    page = assert_self_contained(rp.scrna_report(tmp_path / "r.html", **figures), 3)
    assert page.rows["max_genes"] == "none" and page.rows["min_genes"] == "200"


def test_histograms_add_up_and_leave_nan_out():
    edges = np.linspace(0, 1, 11)
    a = rp.Histogram.of([0.05, 0.15, np.nan, 1.0, np.inf], edges)
    b = rp.Histogram.of([0.05], edges)
    assert (a + b).counts.tolist() == [2, 1, 0, 0, 0, 0, 0, 0, 0, 1] and (a + b).total == 4
    assert (rp.Histogram.empty(edges) + a).counts.tolist() == a.counts.tolist()
    with pytest.raises(ValueError, match="different edges"):
        a + rp.Histogram.empty(np.linspace(0, 1, 5))


def test_bad_figures_are_one_line_errors(tmp_path):
    figures = scrna_figures(np.random.default_rng(5))
    del figures["after"]["pct_counts_mt"]
    with pytest.raises(InputError, match=r"^after lacks pct_counts_mt \(it needs "):
        rp.scrna_report(tmp_path / "r.html", **figures)
    with pytest.raises(InputError, match=r"^kept: \(3,\) does not match mean_log's \(4,\)$"):
        rp.bulk_report(tmp_path / "r.html", mean_log=np.ones(4), kept=[1, 0, 1],
                       min_mean_log=1.0)  # fmt: skip
    with pytest.raises(InputError, match=r"labels_per_split\['test'\]: shape \(2,\)"):
        rp.intervals_report(
            tmp_path / "r.html",
            **intervals_figures(np.random.default_rng(5))
            | {"labels_per_split": {"test": np.ones(2)}},
        )
    assert not (tmp_path / "r.html").exists()


# --- atomic writes and bad paths ------------------------------------------------------------


def test_a_failed_report_leaves_no_partial_file(monkeypatch, tmp_path):
    """The fourth plot fails after three are written into the temporary file: the previous
    report stays as it was, and nothing else is left in the folder."""
    path = tmp_path / "r.html"
    path.write_text("the previous report")
    seen = {}

    def failing(*args, **kwargs):
        seen["partial"] = {p.name: p.stat().st_size for p in tmp_path.iterdir() if p != path}
        raise RuntimeError("drawing failed")

    monkeypatch.setattr("gpu_genomics.report.jobs.draw_scatter", failing)
    with pytest.raises(RuntimeError, match="drawing failed"):
        rp.scrna_report(path, **scrna_figures(np.random.default_rng(6)))
    partial = {name: size for name, size in seen["partial"].items() if ".tmp-" in name}
    assert list(partial) == [f".r.html.tmp-{os.getpid()}"] and min(partial.values()) > 10_000
    assert path.read_text() == "the previous report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]
    path.unlink()
    with pytest.raises(RuntimeError):
        rp.scrna_report(path, **scrna_figures(np.random.default_rng(6)))
    assert list(tmp_path.iterdir()) == []


def test_bad_report_paths_are_one_line_errors(tmp_path):
    figures = bulk_figures(np.random.default_rng(7))
    missing = tmp_path / "no" / "r.html"
    with pytest.raises(InputError, match=rf"^{re.escape(str(missing))}: the folder .* does not"):
        rp.bulk_report(missing, **figures)
    with pytest.raises(InputError, match=r"^report='.*r\.png' must end in \.html or \.htm$"):
        rp.bulk_report(tmp_path / "r.png", **figures)
    (tmp_path / "dir.html").mkdir()
    with pytest.raises(InputError, match=r"dir\.html: exists and is a folder"):
        rp.bulk_report(tmp_path / "dir.html", **figures)
    with pytest.raises(InputError, match=r"must differ from the outputs$"):
        rp.check_report_path(tmp_path / "a.HTML", outputs=[None, tmp_path / "a.HTML"])
    assert rp.check_report_path(tmp_path / "a.htm") == tmp_path / "a.htm"


def test_without_matplotlib_the_error_says_what_to_install(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    with pytest.raises(InputError, match=re.escape(rp.MATPLOTLIB_MISSING)):
        rp.bulk_report(tmp_path / "r.html", **bulk_figures(np.random.default_rng(8)))
    line = error_of(capsys, "bulk", BULK, "-o", tmp_path / "o.h5", "--report",
                    tmp_path / "r.html", "--device", "cpu", "--quiet")  # fmt: skip
    assert line == (
        "gpu-genomics: error: --report needs matplotlib: pip install 'gpu-genomics[report]'"
    )
    assert list(tmp_path.iterdir()) == []  # refused before any work


# --- the commands on the example data -------------------------------------------------------


def _spy(monkeypatch, name: str) -> list[dict]:
    """Record the keyword arguments of ``gpu_genomics.report.<name>`` (the jobs import it when
    they write the report) and call it."""
    calls: list[dict] = []
    real = getattr(rp, name)

    def spy(path, **figures):
        calls.append({"path": Path(path), **figures})
        return real(path, **figures)

    monkeypatch.setattr(rp, name, spy)
    return calls


@pytest.fixture(scope="module")
def scrna_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("scrna")
    with pytest.MonkeyPatch.context() as monkeypatch:
        calls = _spy(monkeypatch, "scrna_report")
        run("scrna", SCRNA, "-o", out / "out.h5ad", "--report", out / "qc.html",
            "--device", "cpu", "--quiet")  # fmt: skip
    return out, calls


@pytest.fixture(scope="module")
def vcf_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("vcf")
    with pytest.MonkeyPatch.context() as monkeypatch:
        calls = _spy(monkeypatch, "vcf_report")
        run("vcf", VCF, "-o", out / "out.zarr", "--min-maf", "0.01", "--max-missing", "0.05",
            "--report", out / "qc.html", "--device", "cpu", "--quiet")  # fmt: skip
    return out, calls


@pytest.fixture(scope="module")
def bulk_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bulk")
    with pytest.MonkeyPatch.context() as monkeypatch:
        calls = _spy(monkeypatch, "bulk_report")
        run("bulk", BULK, "-o", out / "out.h5", "--report", out / "qc.html",
            "--device", "cpu", "--quiet")  # fmt: skip
    return out, calls


def test_scrna_report_holds_the_recipes_figures(scrna_run):
    import anndata
    import scanpy as sc

    out, calls = scrna_run
    (call,) = calls
    assert call["path"] == out / "qc.html"
    output = anndata.read_h5ad(out / "out.h5ad")
    raw = sc.read_10x_mtx(SCRNA)
    # before: every input cell, over all genes (computed here independently)
    x = raw.X.tocsr()
    np.testing.assert_array_equal(call["before"]["n_genes"], np.diff(x.indptr))
    np.testing.assert_allclose(call["before"]["total_counts"], np.asarray(x.sum(axis=1)).ravel())
    mito = np.asarray(raw.var_names.str.startswith("MT-"))
    assert mito.sum() > 5
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = 100 * np.asarray(x[:, mito].sum(1)).ravel() / np.asarray(x.sum(1)).ravel()
    np.testing.assert_allclose(call["before"]["pct_counts_mt"], np.nan_to_num(expected))
    assert call["before"]["pct_counts_mt"].max() > 5  # cells the QC filter removes
    # after: the kept cells' QC columns as written
    for name in ("total_counts", "pct_counts_mt"):
        np.testing.assert_allclose(call["after"][name], output.obs[name].to_numpy())
    np.testing.assert_array_equal(call["after"]["n_genes"], output.obs["n_genes_by_counts"])
    # the HVG step's genes (those filter_genes kept), the selected ones flagged
    hvg = call["hvg"]
    steps = dict(zip(output.uns["preprocess_steps"]["step"],
                     output.uns["preprocess_steps"]["n_genes"], strict=True))  # fmt: skip
    assert len(hvg["means"]) == steps["filter_genes"] > output.n_vars
    assert int(hvg["highly_variable"].sum()) == output.n_vars
    selected = np.asarray(hvg["dispersions"])[hvg["highly_variable"]]
    np.testing.assert_allclose(selected, output.var["dispersions"].to_numpy(), rtol=1e-6)
    assert (call["min_genes"], call["max_genes"], call["max_pct_mito"]) == (200, 2500, 5.0)
    page = assert_self_contained(out / "qc.html", 4)
    assert page.rows["min_genes"] == "200" and page.rows["max_pct_mito"] == "5"
    assert page.rows["input cells"] == "1,200"
    assert page.rows["kept cells"] == f"{output.n_obs:,}"


def test_vcf_report_holds_the_jobs_figures(vcf_run):
    import zarr

    out, calls = vcf_run
    (call,) = calls
    group = zarr.open_group(str(out / "out.zarr"), mode="r")
    summary = dict(group.attrs)["summary"]
    # kept: the written per-variant and per-column figures, binned
    rates, maf = group["variant_call_rate"][:], group["dosage_maf"][:]
    assert call["call_rate"].total == len(rates) == summary["variants_kept"]
    assert (
        call["call_rate"].counts.tolist()
        == np.histogram(rates, call["call_rate"].edges)[0].tolist()
    )
    assert call["maf"].total == int(np.isfinite(maf).sum())
    assert rates.min() >= 0.95 and np.nanmin(maf) >= 0.01
    # before the filters: every record read (pass 1), some outside the filters
    before = call["call_rate_before"]
    assert before.total == summary["variants_read"] > summary["variants_kept"]
    assert before.counts[before.edges[1:] < 0.9499].sum() > 0  # below 1 - max_missing
    assert call["maf_before"].total >= call["maf"].total
    np.testing.assert_array_equal(call["sample_missing"], group["sample_missing_rate"][:])
    assert (call["min_maf"], call["max_missing"]) == (0.01, 0.05)
    page = assert_self_contained(out / "qc.html", 4)
    assert page.rows["min_maf"] == "0.01" and page.rows["max_missing"] == "0.05"
    assert page.rows["variants_kept"] == f"{summary['variants_kept']:,}"


def test_vcf_without_figure_filters_reports_the_kept_variants_only(monkeypatch, tmp_path):
    calls = _spy(monkeypatch, "vcf_report")
    run("vcf", VCF, "-o", tmp_path / "out.h5", "--report", tmp_path / "qc.html", "--device",
        "cpu", "--quiet")  # fmt: skip
    (call,) = calls
    assert call["call_rate_before"] is None and call["maf_before"] is None
    assert call["call_rate"].total == 6863  # every record is kept
    assert_self_contained(tmp_path / "qc.html", 4)


def test_bulk_report_holds_the_jobs_figures(bulk_run):
    import h5py
    import pandas as pd

    out, calls = bulk_run
    (call,) = calls
    table = pd.read_csv(BULK, sep="\t", index_col=0)
    np.testing.assert_allclose(call["mean_log"], np.log1p(table.T.to_numpy()).mean(axis=0))
    with h5py.File(out / "out.h5") as f:
        np.testing.assert_array_equal(call["kept"], f["gene_mask"][:])
    assert call["min_mean_log"] == 1.0
    page = assert_self_contained(out / "qc.html", 1)
    assert page.rows["min_mean_log"] == "1" and page.rows["kept genes"] == "219"


@pytest.mark.parametrize("run_fixture", ["scrna_run", "vcf_run", "bulk_run"])
def test_command_reports_render_in_chromium(run_fixture, request, browser, tmp_path):
    out, _ = request.getfixturevalue(run_fixture)
    n_plots = {"scrna_run": 4, "vcf_run": 4, "bulk_run": 1}[run_fixture]
    seen = assert_renders(browser, out / "qc.html", tmp_path, n_plots)
    assert seen["title"] == f"gpu-genomics {run_fixture.split('_')[0]} QC report"


def test_the_job_gets_report_only_when_it_is_given(monkeypatch, tmp_path):
    calls = record_job(monkeypatch, job_module("bulk"), "preprocess_bulk_file")
    run("bulk", BULK, "-o", tmp_path / "a.h5", "--device", "cpu", "--quiet")
    run("bulk", BULK, "-o", tmp_path / "b.h5", "--report", tmp_path / "b.html", "--device",
        "cpu", "--quiet")  # fmt: skip
    assert "report" not in calls[0]
    assert calls[1]["report"] == str(tmp_path / "b.html")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.h5", "b.h5", "b.html"]


COMMANDS = {
    "scrna": (SCRNA, "out.h5ad"),
    "vcf": (VCF, "out.zarr"),
    "bulk": (BULK, "out.h5"),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_missing_report_folder_is_one_line_and_nothing_is_written(command, capsys, tmp_path):
    source, output = COMMANDS[command]
    report = tmp_path / "missing" / "qc.html"
    line = error_of(capsys, command, source, "-o", tmp_path / output, "--report", report,
                    "--device", "cpu", "--quiet")  # fmt: skip
    assert line == (f"gpu-genomics: error: {report}: the folder {report.parent} does not exist")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_report_paths_are_checked_before_any_work(command, capsys, tmp_path):
    source, output = COMMANDS[command]
    line = error_of(capsys, command, source, "-o", tmp_path / output, "--report",
                    tmp_path / "qc.txt", "--device", "cpu", "--quiet")  # fmt: skip
    assert line == (
        f"gpu-genomics: error: --report '{tmp_path / 'qc.txt'}' must end in .html or .htm"
    )
    if command != "scrna":  # scrna's outputs cannot end in .html
        line = error_of(capsys, command, source, "-o", tmp_path / "same.html", "--format",
                        "hdf5", "--report", tmp_path / "same.html", "--device", "cpu",
                        "--quiet")  # fmt: skip
        assert line == (
            f"gpu-genomics: error: --report '{tmp_path / 'same.html'}' must differ from the outputs"
        )
    assert list(tmp_path.iterdir()) == []


def test_the_out_of_core_recipe_refuses_a_report(capsys, tmp_path):
    line = error_of(capsys, "scrna", SCRNA, "-o", tmp_path / "o.h5ad", "--chunk-cells", "500",
                    "--report", tmp_path / "qc.html", "--device", "cpu", "--quiet")  # fmt: skip
    assert line.startswith(
        f"gpu-genomics: error: --report '{tmp_path / 'qc.html'}' is not written by the "
        "out-of-core recipe yet"
    )
    assert line.endswith("; drop it, or run in memory")
    assert list(tmp_path.iterdir()) == []


def test_the_out_of_core_recipe_chosen_for_memory_refuses_a_report(monkeypatch, tmp_path):
    """A matrix too large for memory goes out of core by itself: refused, nothing written."""
    from gpu_genomics.expression.singlecell import job

    _h5ad_of_example(tmp_path)
    monkeypatch.setattr("gpu_genomics.info.available_memory", lambda: 1)
    with pytest.raises(InputError, match=r"^report='.*' is not written by the out-of-core"):
        job.preprocess_file(tmp_path / "in.h5ad", tmp_path / "o.h5ad",
                            report=tmp_path / "qc.html", device="cpu")  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.h5ad"]
    monkeypatch.setattr("gpu_genomics.info.available_memory", lambda: 1 << 50)
    job.preprocess_file(
        tmp_path / "in.h5ad", tmp_path / "o.h5ad", report=tmp_path / "qc.html", device="cpu"
    )  # in memory: written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.h5ad", "o.h5ad", "qc.html"]


def _h5ad_of_example(tmp_path: Path) -> Path:
    import scanpy as sc

    path = tmp_path / "in.h5ad"
    adata = sc.read_10x_mtx(SCRNA)
    adata.X = adata.X.tocsr()  # read by blocks of cells out of core
    adata.write_h5ad(path)
    return path


def _fail_commit_of(monkeypatch, name: str) -> None:
    """Make the commit of the output named ``name`` fail as a full disk would."""
    real = store._commit

    def commit(tmp_path, path):
        if Path(path).name == name:
            store._remove(Path(tmp_path))  # as the real one does when the rename fails
            raise OSError(28, "No space left on device")
        return real(tmp_path, path)

    monkeypatch.setattr(store, "_commit", commit)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_no_report_is_left_when_the_output_fails(command, monkeypatch, tmp_path):
    import gpu_genomics as gg
    from gpu_genomics.expression.singlecell.job import preprocess_file

    source, output = COMMANDS[command]
    job = {"scrna": preprocess_file, "vcf": gg.convert_vcf, "bulk": gg.preprocess_bulk_file}
    calls = _spy(monkeypatch, f"{command}_report")
    _fail_commit_of(monkeypatch, output)
    with pytest.raises(OSError, match="No space left"):
        job[command](source, tmp_path / output, report=tmp_path / "qc.html", device="cpu")
    assert len(calls) == 1  # the report was written, then removed with the output
    assert list(tmp_path.iterdir()) == []


def test_report_figures_are_the_same_on_each_device(device, monkeypatch, tmp_path):
    """``bulk`` and ``vcf`` hand their report the same figures on the GPU as on the CPU."""
    import gpu_genomics as gg

    bulk_calls = _spy(monkeypatch, "bulk_report")
    vcf_calls = _spy(monkeypatch, "vcf_report")
    for name in ("cpu", device):
        gg.preprocess_bulk_file(BULK, tmp_path / f"{name}.h5", report=tmp_path / f"b{name}.html",
                                device=name)  # fmt: skip
        gg.convert_vcf(VCF, tmp_path / f"{name}.zarr", report=tmp_path / f"v{name}.html",
                       min_maf=0.01, max_missing=0.05, device=name)  # fmt: skip
    cpu, other = bulk_calls
    np.testing.assert_allclose(other["mean_log"], cpu["mean_log"], rtol=1e-12)
    np.testing.assert_array_equal(other["kept"], cpu["kept"])
    cpu, other = vcf_calls
    for key in ("call_rate", "maf", "call_rate_before", "maf_before"):
        np.testing.assert_array_equal(other[key].counts, cpu[key].counts, err_msg=key)
    np.testing.assert_array_equal(other["sample_missing"], cpu["sample_missing"])


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_failing_report_writes_no_output_and_keeps_the_earlier_report(
    command, monkeypatch, tmp_path
):
    import gpu_genomics as gg
    from gpu_genomics.expression.singlecell.job import preprocess_file

    source, output = COMMANDS[command]
    job = {"scrna": preprocess_file, "vcf": gg.convert_vcf, "bulk": gg.preprocess_bulk_file}
    (tmp_path / "qc.html").write_text("the earlier report")

    def failing(path, **figures):
        raise RuntimeError("the report failed")

    monkeypatch.setattr(rp, f"{command}_report", failing)
    with pytest.raises(RuntimeError, match="the report failed"):
        job[command](source, tmp_path / output, report=tmp_path / "qc.html", device="cpu")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qc.html"]
    assert (tmp_path / "qc.html").read_text() == "the earlier report"


# --- the intervals job's report ----------------------------------------------------------------
INTERVALS = ("-i", ROOT / "data" / "metadata.txt", "-f", ROOT / "data" / "reference.fa.gz")


@pytest.fixture(scope="module")
def intervals_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("intervals")
    with pytest.MonkeyPatch.context() as monkeypatch:
        calls = _spy(monkeypatch, "intervals_report")
        run("intervals", *INTERVALS, "-o", out / "out.h5", "--flank", "50", "--negatives",
            "1x", "--report", out / "qc.html", "--device", "cpu", "--quiet")  # fmt: skip
    return out, calls


def test_intervals_report_holds_the_jobs_figures(intervals_run):
    """Split counts, labels and GC are those of the arrays written; GC recounted from the
    one-hot rows' central windows."""
    import h5py

    out, calls = intervals_run
    (call,) = calls
    with h5py.File(out / "out.h5") as f:
        for split in ("training", "validation", "test"):
            labels, seqs = f[f"{split}_labels"][:], f[f"{split}_seqs"][:, 50:650]
            assert call["split_counts"][split] == len(labels)
            np.testing.assert_array_equal(call["labels_per_split"][split], labels.sum(axis=0))
            acgt = seqs.sum(axis=(1, 2))
            gc = seqs[:, :, 1:3].sum(axis=(1, 2)) / acgt  # ACGT order: C and G
            np.testing.assert_allclose(np.sort(call["gc_per_split"][split]), np.sort(gc))
        coords, names = f["training_coords"][:], list(f["chrom_names"].asstr()[:])
        n_labels = np.concatenate([f[f"{s}_labels"][:].sum(axis=1) for s in
                                   ("training", "validation", "test")])  # fmt: skip
    np.testing.assert_array_equal(np.sort(call["labels_per_region"]), np.sort(n_labels))
    assert names and coords.shape[1] == 3
    page = assert_self_contained(out / "qc.html", 5)
    assert page.rows["flank"] == "50" and page.rows["negatives"] != "0"


def test_intervals_report_renders_in_chromium(intervals_run, browser, tmp_path):
    out, _ = intervals_run
    seen = assert_renders(browser, out / "qc.html", tmp_path, 5)
    assert seen["title"] == "gpu-genomics intervals QC report"


def test_intervals_report_errors_are_one_line(capsys, tmp_path):
    report = tmp_path / "missing" / "qc.html"
    line = error_of(capsys, "intervals", *INTERVALS, "-o", tmp_path / "o.h5", "--report",
                    report, "--device", "cpu", "--quiet")  # fmt: skip
    assert line == f"gpu-genomics: error: {report}: the folder {report.parent} does not exist"
    flags = ("--report", tmp_path / "qc.html", "--workers", "1", "--device", "cpu", "--quiet")
    line = error_of(capsys, "intervals", *INTERVALS, "-o", tmp_path / "o.h5", *flags)
    assert line == (
        f"gpu-genomics: error: --report '{tmp_path / 'qc.html'}' is written in this process only "
        "(for now); run without --workers/--scheduler"
    )
    assert list(tmp_path.iterdir()) == []
