"""Genotype math (dosage, call rates, frequencies, filters, standardization) on both devices,
against plain-Python statements of the definitions and against scikit-allel."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gpu_genomics.variants import genotypes as G


def random_gt(seed: int = 0, n_variants: int = 40, n_samples: int = 25, ploidy: int = 3):
    """Random calls: up to 4 alleles, some missing alleles, some lower-ploidy calls (fill)."""
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, 4, size=(n_variants, n_samples, ploidy)).astype(np.int8)
    gt[rng.random(gt.shape) < 0.08] = -1
    call_ploidy = rng.choice([1, 2, ploidy], size=(n_variants, n_samples), p=[0.1, 0.7, 0.2])
    for a in range(ploidy):
        gt[:, :, a][call_ploidy <= a] = -2
    gt[0] = 0  # a monomorphic variant
    gt[1, :, 0] = 1  # a fixed ALT variant ...
    gt[1, :, 1:] = -2
    return gt


def naive_call(call):
    alleles = [int(a) for a in call if a != -2]
    return alleles, (not alleles) or any(a == -1 for a in alleles)


@pytest.mark.parametrize("seed", [0, 1])
def test_dosage_definition(device, host, seed):
    gt = random_gt(seed)
    got = host(G.dosage(gt, device=device))
    got_float = host(G.dosage(gt, dtype=np.float32, device=device))
    assert got.dtype == np.int8 and got_float.dtype == np.float32
    for i in range(gt.shape[0]):
        for j in range(gt.shape[1]):
            alleles, missing = naive_call(gt[i, j])
            want = -1 if missing else sum(a > 0 for a in alleles)
            assert got[i, j] == want
            assert math.isnan(got_float[i, j]) if missing else got_float[i, j] == want


def test_split_dosage_definition(device, host):
    gt = random_gt(2)
    n_alleles = np.array([1, 2] + [4] * (gt.shape[0] - 2))
    got, column_variant, column_allele = G.split_dosage(gt, n_alleles, device=device)
    got = host(got)
    want_columns = [(i, k) for i in range(len(n_alleles)) for k in range(1, n_alleles[i])]
    assert list(zip(column_variant.tolist(), column_allele.tolist(), strict=True)) == want_columns
    for c, (i, k) in enumerate(want_columns):
        for j in range(gt.shape[1]):
            alleles, missing = naive_call(gt[i, j])
            assert got[c, j] == (-1 if missing else sum(a == k for a in alleles))


def test_rates_and_frequencies(device, host):
    gt = random_gt(3)
    call_rate = host(G.variant_call_rate(gt, device=device))
    sample_missing = host(G.sample_missing_rate(gt, device=device))
    af = host(G.allele_frequency(gt, device=device))
    af2 = host(G.allele_frequency(gt, allele=2, device=device))
    missing = np.array([[naive_call(c)[1] for c in row] for row in gt])
    for i in range(gt.shape[0]):
        assert call_rate[i] == pytest.approx(sum(not m for m in missing[i]) / gt.shape[1])
        called = [a for call in gt[i] for a in call if a >= 0]
        want = sum(a > 0 for a in called) / len(called) if called else math.nan
        assert af[i] == pytest.approx(want, nan_ok=True)
        want2 = sum(a == 2 for a in called) / len(called) if called else math.nan
        assert af2[i] == pytest.approx(want2, nan_ok=True)
    for j in range(gt.shape[1]):
        assert sample_missing[j] == pytest.approx(missing[:, j].mean())
    np.testing.assert_array_equal(
        host(G.sample_missing_counts(gt, device=device)), missing.sum(axis=0)
    )
    maf = host(G.minor_allele_frequency(G.allele_frequency(gt, device=device)))
    np.testing.assert_allclose(maf, [min(p, 1 - p) for p in af])
    assert af[0] == 0 and af[1] == 1 and maf[1] == 0


@pytest.mark.parametrize("seed", [5, 6])
def test_variant_figures_in_one_pass_equal_the_separate_ones(device, host, seed):
    """Call rates and frequencies, per variant (non-REF) and per split column (alleles 1..4,
    one never called), to the last bit; no samples gives NaN."""
    gt = random_gt(seed, n_samples=2000 + seed)
    call_rate, af = (host(x) for x in G.variant_figures(gt, device=device))
    np.testing.assert_array_equal(call_rate, host(G.variant_call_rate(gt, device=device)))
    np.testing.assert_array_equal(af, host(G.allele_frequency(gt, device=device)))
    rows, alleles = G.split_columns(np.full(gt.shape[0], 5))
    split_rate, split_af = G.variant_figures(
        gt, column_variant=rows, column_allele=alleles, device=device
    )
    np.testing.assert_array_equal(host(split_rate), call_rate)
    want = host(G.allele_frequency(gt[rows], allele=alleles, device=device))
    np.testing.assert_array_equal(host(split_af), want)
    assert (host(split_af)[alleles == 4] == 0).all()  # random_gt draws alleles 0..3
    empty_rate, _ = G.variant_figures(gt[:, :0], device=device)
    assert np.isnan(host(empty_rate)).all()


def test_allele_frequency_per_row_allele(device, host):
    gt = random_gt(4)
    alleles = np.arange(gt.shape[0]) % 3 + 1
    got = host(G.allele_frequency(gt, allele=alleles, device=device))
    for i, k in enumerate(alleles):
        called = gt[i][gt[i] >= 0]
        assert got[i] == pytest.approx((called == k).mean())


def test_standardize_definition(device, host):
    gt = random_gt(5)
    dos = G.dosage(gt, device=device)
    af = G.allele_frequency(gt, device=device)
    got, kept = G.standardize(dos, af)
    got, kept = host(got), host(kept)
    dos_h, af_h = host(dos), host(af)
    want_kept = [0 < p < 1 for p in af_h]
    assert kept.tolist() == want_kept and not kept[0] and not kept[1]
    rows = [i for i in range(len(af_h)) if want_kept[i]]
    assert got.shape == (len(rows), gt.shape[1]) and got.dtype == np.float32
    for r, i in enumerate(rows):
        p = af_h[i]
        for j in range(gt.shape[1]):
            x = 2 * p if dos_h[i, j] < 0 else dos_h[i, j]
            want = (x - 2 * p) / math.sqrt(2 * p * (1 - p))
            assert got[r, j] == pytest.approx(want, rel=1e-5, abs=1e-6)


def test_standardize_mixed_ploidy(device, host):
    """Each call is scaled by its own ploidy k: (x - k p) / sqrt(k p (1 - p))."""
    gt = random_gt(6)
    dos = G.dosage(gt, device=device)
    af = G.allele_frequency(gt, device=device)
    call_ploidy = (gt != -2).sum(axis=2)
    xp = np if device == "cpu" else __import__("cupy")
    got, kept = G.standardize(dos, af, ploidy=xp.asarray(call_ploidy))
    got, kept, dos_h, af_h = host(got), host(kept), host(dos), host(af)
    rows = [i for i in range(len(af_h)) if 0 < af_h[i] < 1]
    assert kept.tolist() == [0 < p < 1 for p in af_h]
    for r, i in enumerate(rows):
        p = af_h[i]
        for j in range(gt.shape[1]):
            k = call_ploidy[i, j]
            want = 0.0 if dos_h[i, j] < 0 else (dos_h[i, j] - k * p) / math.sqrt(k * p * (1 - p))
            assert got[r, j] == pytest.approx(want, rel=1e-5, abs=1e-6)
    # haploid-only data: every standardized column has mean 0 over its called samples
    haploid = np.where(gt[:, :, :1] == -2, 0, gt[:, :, :1]).astype(np.int8)
    haploid[0, :3, 0] = 1  # no monomorphic column left out of the check by accident
    dos1 = G.dosage(haploid, device=device)
    af1 = G.allele_frequency(haploid, device=device)
    std1, kept1 = G.standardize(dos1, af1, ploidy=1)
    std1, dos1_h = host(std1), host(dos1)[host(kept1)]
    for row, calls in zip(std1, dos1_h, strict=True):
        assert row[calls >= 0].mean() == pytest.approx(0.0, abs=1e-5)


def test_variant_filter(device, host):
    xp = np if device == "cpu" else __import__("cupy")
    maf = xp.asarray([0.0, 0.01, 0.2, np.nan, 0.3])
    call_rate = xp.asarray([1.0, 0.95, 0.8, 1.0, 0.9])
    n_alleles = xp.asarray([2, 2, 3, 2, 2])
    keep = host(G.variant_filter(maf, call_rate, n_alleles))
    assert keep.tolist() == [True] * 5
    keep = host(G.variant_filter(maf, call_rate, n_alleles, min_maf=0.01, max_missing=0.1))
    assert keep.tolist() == [False, True, False, False, True]
    keep = host(G.variant_filter(maf, call_rate, n_alleles, biallelic_only=True))
    assert keep.tolist() == [True, True, False, True, True]
    with pytest.raises(G.InputError, match=r"min_maf=0\.7 must lie between 0 and 0\.5"):
        G.variant_filter(maf, call_rate, n_alleles, min_maf=0.7)


def test_dosage_against_allel_on_simulation(device, host, tmp_path):
    allel = pytest.importorskip("allel")
    from test_vcf import simulate_vcf

    from gpu_genomics.variants.reader import read_vcf

    path = simulate_vcf(tmp_path / "sim.vcf", n_samples=20, seed=5, missing=0.1)
    gt = read_vcf(path)["call_genotype"]
    got = host(G.dosage(gt, device=device))
    ref_gt = allel.GenotypeArray(allel.read_vcf(str(path), fields=["calldata/GT"])["calldata/GT"])
    ref = ref_gt.to_n_alt()  # allel counts the called ALT alleles even of a half-missing call
    missing = (ref_gt.values == -1).any(axis=-1)
    np.testing.assert_array_equal(np.where(got < 0, (gt > 0).sum(axis=-1), got), ref)
    np.testing.assert_array_equal(got < 0, missing)
    np.testing.assert_allclose(
        host(G.variant_call_rate(gt, device=device)), 1 - missing.mean(axis=1)
    )
    ac = ref_gt.count_alleles(max_allele=3)
    np.testing.assert_allclose(
        host(G.allele_frequency(gt, device=device)), ac[:, 1:].sum(axis=1) / ac.sum(axis=1)
    )


def test_maf_spectrum():
    spectrum = dict(G.maf_spectrum(np.array([0.0, 0.005, 0.02, 0.5, 0.45, np.nan])))
    assert spectrum["[0, 0.01)"] == 2
    assert spectrum["[0.01, 0.05)"] == 1
    assert spectrum["[0.4, 0.5]"] == 2
    assert spectrum["NaN"] == 1


def naive_figures(gt, sample_rows):
    """Every per-chunk statistic by the plain definitions, one call at a time."""
    n, n_samples, _ = gt.shape
    width = max(int(gt.max(initial=0)) + 1, 1)
    missing_calls = np.zeros(n, dtype=np.int64)
    counts = np.zeros((n, width), dtype=np.int64)
    dosage = np.zeros((n, n_samples), dtype=np.int8)
    sample_missing = np.zeros(n_samples, dtype=np.int64)
    for i in range(n):
        for j in range(n_samples):
            alleles, missing = naive_call(gt[i, j])
            for a in alleles:
                if a >= 0:
                    counts[i, a] += 1
            dosage[i, j] = -1 if missing else sum(a > 0 for a in alleles)
            missing_calls[i] += missing
            if sample_rows[i]:
                sample_missing[j] += missing
    return missing_calls, counts, dosage, sample_missing


@pytest.mark.parametrize(("seed", "ploidy"), [(7, 2), (8, 2), (9, 3), (10, 1)])
def test_chunk_figures_definition(device, host, monkeypatch, seed, ploidy):
    """The fused pass (dosage, allele counts, call rate, frequencies, per-sample missing counts
    of some rows) equals the definitions call by call: missing alleles, fill, multi-allelic
    rows, a row of fill only, one row block or several."""
    gt = random_gt(seed, n_variants=37, n_samples=29, ploidy=ploidy)
    gt[2] = -2  # no allele at all: every call missing
    if ploidy > 1:
        gt[3, :, 0] = -2  # fill before an allele: the call is present, not missing
        gt[3, :, 1] = 1
    gt[4] = np.where(gt[4] >= 0, 3, gt[4])  # allele 3 only: a multi-allelic row without REF
    rows = np.random.default_rng(seed).random(gt.shape[0]) < 0.5
    want_missing, want_counts, want_dosage, want_samples = naive_figures(gt, rows)
    for partial_bytes in (G.PARTIAL_BYTES, 1):  # several row blocks, then one
        monkeypatch.setattr(G, "PARTIAL_BYTES", partial_bytes)
        f = G.chunk_figures(gt, sample_rows=rows, device=device)
        np.testing.assert_array_equal(host(f.missing_calls), want_missing)
        np.testing.assert_array_equal(host(f.allele_counts), want_counts)
        np.testing.assert_array_equal(host(f.dosage), want_dosage)
        np.testing.assert_array_equal(host(f.sample_missing), want_samples)
        assert host(f.dosage).dtype == np.int8 and host(f.sample_missing).dtype == np.int64
    np.testing.assert_array_equal(host(f.dosage), host(G.dosage(gt, device=device)))
    wide = G.chunk_figures(gt, dosage=False, width=want_counts.shape[1] + 2, device=device)
    assert wide.dosage is None and wide.sample_missing is None
    np.testing.assert_array_equal(host(wide.allele_counts)[:, : want_counts.shape[1]], want_counts)
    assert (host(wide.allele_counts)[:, want_counts.shape[1] :] == 0).all()
    np.testing.assert_array_equal(host(wide.missing_calls), want_missing)
    # the figures derived from the counts: the separate functions' values, to the bit
    np.testing.assert_array_equal(host(f.call_rate()), host(G.variant_call_rate(gt, device=device)))
    np.testing.assert_array_equal(host(f.frequency()), host(G.allele_frequency(gt, device=device)))
    split_rows, split_alleles = G.split_columns(np.full(gt.shape[0], 5))
    np.testing.assert_array_equal(
        host(wide.frequency(split_rows, split_alleles)),
        host(G.allele_frequency(gt[split_rows], allele=split_alleles, device=device)),
    )
    for i in (0, 2, 4):
        called = [a for call in gt[i] for a in call if a >= 0]
        want = sum(a > 0 for a in called) / len(called) if called else math.nan
        assert host(f.frequency())[i] == pytest.approx(want, nan_ok=True)
    assert math.isnan(host(f.frequency())[2]) and host(f.call_rate())[2] == 0


def test_chunk_figures_empty(device, host):
    """No variants, or no samples: empty figures, zero counts, NaN rates."""
    gt = random_gt(11, n_variants=6, n_samples=5, ploidy=2)
    none = G.chunk_figures(gt[:0], sample_rows=np.zeros(0, bool), device=device)
    assert host(none.dosage).shape == (0, 5) and host(none.missing_calls).shape == (0,)
    np.testing.assert_array_equal(host(none.sample_missing), np.zeros(5, np.int64))
    no_samples = G.chunk_figures(gt[:, :0], sample_rows=np.ones(6, bool), device=device)
    assert host(no_samples.dosage).shape == (6, 0)
    assert (host(no_samples.missing_calls) == 0).all()
    assert (host(no_samples.allele_counts) == 0).all()
    assert np.isnan(host(no_samples.call_rate())).all()
    assert np.isnan(host(no_samples.frequency())).all()
    assert host(no_samples.sample_missing).shape == (0,)


def test_missing_in_rows(device, host):
    """Per-sample missing calls of chosen rows (repeats counted twice) from the dosages."""
    gt = random_gt(12, n_variants=30, n_samples=21, ploidy=3)
    dosage = G.dosage(gt, device=device)
    rows = np.array([0, 5, 5, 29, 13])
    missing = np.array([[naive_call(c)[1] for c in row] for row in gt])
    np.testing.assert_array_equal(host(G.missing_in_rows(dosage, rows)), missing[rows].sum(axis=0))
    np.testing.assert_array_equal(
        host(G.missing_in_rows(dosage, np.zeros(0, np.int64))), np.zeros(21, np.int64)
    )


def numpy_figures(gt, sample_rows, width):
    """Every per-chunk statistic by the definitions in NumPy array code (independent of the
    numba kernel and of the CUDA kernel)."""
    missing = (gt == -1).any(axis=2) | (gt == -2).all(axis=2)
    counts = np.zeros((gt.shape[0], width), dtype=np.int64)
    for k in range(width):
        counts[:, k] = (gt == k).sum(axis=(1, 2))
    dosage = np.where(missing, -1, (gt > 0).sum(axis=2)).astype(np.int8)
    sample_missing = missing[np.asarray(sample_rows, dtype=bool)].sum(axis=0, dtype=np.int64)
    return missing.sum(axis=1, dtype=np.int64), counts, dosage, sample_missing


def figures_gt(seed, n, n_samples, ploidy, *, top=3):
    """``random_gt`` calls with about a third of the rows multi-allelic (alleles up to ``top``)
    and the others biallelic."""
    rng = np.random.default_rng(seed)
    gt = random_gt(seed, n_variants=n, n_samples=n_samples, ploidy=ploidy)
    biallelic = rng.random(n) < 0.7
    gt[biallelic] = np.minimum(gt[biallelic], 1)
    if top > 3:
        gt[~biallelic] = np.where(gt[~biallelic] == 3, top, gt[~biallelic])
    return gt


def check_figures(device, host, gt, *, dosage=True, sample_rows=None, width=None):
    """``chunk_figures`` on ``device`` equals the NumPy definitions and the CPU path, exactly."""
    got = G.chunk_figures(gt, dosage=dosage, sample_rows=sample_rows, width=width, device=device)
    cpu = G.chunk_figures(gt, dosage=dosage, sample_rows=sample_rows, width=width, device="cpu")
    width = cpu.allele_counts.shape[1]
    rows = np.zeros(gt.shape[0], bool) if sample_rows is None else sample_rows
    want_missing, want_counts, want_dosage, want_samples = numpy_figures(gt, rows, width)
    for figures in (got, cpu):
        missing_calls, counts = host(figures.missing_calls), host(figures.allele_counts)
        assert missing_calls.dtype == np.int64 and counts.dtype == np.int64
        np.testing.assert_array_equal(missing_calls, want_missing)
        np.testing.assert_array_equal(counts, want_counts)
        if dosage:
            assert host(figures.dosage).dtype == np.int8
            np.testing.assert_array_equal(host(figures.dosage), want_dosage)
        else:
            assert figures.dosage is None
        if sample_rows is None:
            assert figures.sample_missing is None
        else:
            assert host(figures.sample_missing).dtype == np.int64
            np.testing.assert_array_equal(host(figures.sample_missing), want_samples)
    assert got.n_samples == cpu.n_samples == gt.shape[1]
    return got


@pytest.mark.parametrize(
    ("ploidy", "n", "n_samples", "width", "dosage", "rows"),
    [
        pytest.param(2, 37, 29, None, True, "half", id="diploid"),
        pytest.param(3, 37, 29, None, True, "half", id="ploidy3-fill"),
        pytest.param(1, 20, 40, None, True, "all", id="haploid"),
        pytest.param(2, 37, 29, 4, False, "half", id="width4-no-dosage"),
        pytest.param(3, 21, 33, 7, True, None, id="width7-no-mask"),
        pytest.param(5, 13, 70, None, False, "none", id="ploidy5-no-row-counted"),
    ],
)
def test_chunk_figures_cases(  # noqa: PLR0917 (pytest fixtures and parameters)
    device, host, ploidy, n, n_samples, width, dosage, rows
):
    """Missing alleles, fill, mixed ploidy, biallelic and multi-allelic rows (width 4 and
    wider than the alleles), without dosage, with some, all or no rows counted per sample."""
    gt = figures_gt(20 + ploidy, n, n_samples, ploidy)
    gt[2] = -2  # only fill: every call missing
    gt[3, :, 0] = -1  # a missing allele in every call
    mask = {
        "half": np.random.default_rng(n).random(n) < 0.5,
        "all": np.ones(n, bool),
        "none": np.zeros(n, bool),
        None: None,
    }[rows]
    check_figures(device, host, gt, dosage=dosage, sample_rows=mask, width=width)


def test_chunk_figures_width_one_and_top_alleles(device, host):
    """Width 1 (REF only), and alleles up to int8's largest, 127, with a wider count."""
    gt = figures_gt(30, 12, 45, 2)
    check_figures(device, host, np.minimum(gt, 0), sample_rows=np.ones(12, bool), width=1)
    check_figures(device, host, np.minimum(gt, 0), dosage=False)
    top = figures_gt(31, 12, 45, 2, top=127)
    top[5, :7, 1] = 100
    got = check_figures(device, host, top, sample_rows=np.arange(12) % 3 == 0, width=130)
    assert host(got.allele_counts)[:, 127].sum() > 0 and host(got.allele_counts)[5, 100] == 7


@pytest.mark.parametrize(
    ("target_blocks", "max_grid", "want_tile"),
    [
        pytest.param(None, None, 1, id="default-tiles"),
        pytest.param(128, None, 7, id="tiles-of-7"),
        pytest.param(1, None, 32, id="tiles-of-32"),
        pytest.param(85, (2, 3), 7, id="grid-stride"),
    ],
)
@pytest.mark.parametrize("ploidy", [2, 3])
def test_chunk_figures_many_blocks(  # noqa: PLR0917 (pytest fixtures and parameters)
    device, host, monkeypatch, target_blocks, max_grid, want_tile, ploidy
):
    """300 rows x 700 samples span several blocks along both grid dimensions: row tiles of 1,
    7 (a partial batch of rows) and 32 (a partial last tile), and grids smaller than the data
    (each block strides over sample blocks and row tiles)."""
    from gpu_genomics import _kernels

    if target_blocks is not None:
        monkeypatch.setattr(G, "FIGURES_BLOCKS", target_blocks)
    if max_grid is not None:
        monkeypatch.setattr(_kernels, "MAX_GRID_X", max_grid[0])
        monkeypatch.setattr(_kernels, "MAX_GRID_Y", max_grid[1])
    grid, tile_rows, _ = G._figures_launch(300, 700, 4)
    assert tile_rows == want_tile and min(grid.blocks) > 1
    if max_grid is not None:
        assert grid.blocks == max_grid
    gt = figures_gt(40 + ploidy, 300, 700, ploidy)
    gt[5] = -2  # only fill: every call missing
    gt[250:, 600:] = -2  # calls of fill only across block edges
    rows = np.random.default_rng(41).random(300) < 0.3
    check_figures(device, host, gt, sample_rows=rows)


def test_chunk_figures_empty_cases(device, host):
    """No rows or no samples, with and without dosage and per-sample counts."""
    gt = figures_gt(50, 6, 5, 2)
    for dosage in (True, False):
        for rows in (None, np.ones(6, bool)):
            check_figures(
                device, host, gt[:0], dosage=dosage, sample_rows=None if rows is None else rows[:0]
            )
            check_figures(device, host, gt[:, :0], dosage=dosage, sample_rows=rows, width=3)


def test_genotype_figures_kernel_and_twin(device, host):
    """The declaration called directly: the kernel on the GPU, its twin on the CPU, into zeroed
    outputs, equal the definitions."""
    from gpu_genomics.device import array_module

    xp = array_module(device)
    gt = figures_gt(60, 23, 300, 3)
    rows = np.random.default_rng(61).random(23) < 0.5
    n, n_samples, ploidy = gt.shape
    width = 4
    outputs = {
        "dosage": xp.zeros((n, n_samples), dtype=np.int8),
        "missing_calls": xp.zeros(n, dtype=np.int64),
        "counts": xp.zeros((n, width), dtype=np.int64),
        "sample_missing": xp.zeros(n_samples, dtype=np.int64),
    }
    grid, tile_rows, shared_mem = G._figures_launch(n, n_samples, width)
    G.GENOTYPE_FIGURES(
        device,
        grid=grid,
        shared_mem=shared_mem,
        gt=gt,
        sample_rows=rows.view(np.uint8),
        n_rows=n,
        n_samples=n_samples,
        ploidy=ploidy,
        width=width,
        tile_rows=tile_rows,
        want_dosage=True,
        want_samples=True,
        **outputs,
    )
    want_missing, want_counts, want_dosage, want_samples = numpy_figures(gt, rows, width)
    np.testing.assert_array_equal(host(outputs["dosage"]), want_dosage)
    np.testing.assert_array_equal(host(outputs["missing_calls"]), want_missing)
    np.testing.assert_array_equal(host(outputs["counts"]), want_counts)
    np.testing.assert_array_equal(host(outputs["sample_missing"]), want_samples)
