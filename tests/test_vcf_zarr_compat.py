"""The ``vcf`` job's Zarr output is a VCF Zarr that bio2zarr and sgkit users open: it equals what
``vcf2zarr convert`` (bio2zarr) writes for every array both write, and sgkit's QC statistics on it
agree with the QC arrays the job writes.

Inputs: the scikit-allel test VCFs that both tools convert (:data:`ALLEL_BOTH`; those that one of
them rejects are checked in :data:`ALLEL_OURS_REJECTS` and :data:`ALLEL_BIO2ZARR_REJECTS`), and
three msprime simulations built here (:func:`simulated_vcf`): missing calls, mixed ploidy
(diploid and haploid individuals), multi-allelic sites. Each input is converted once per tool
(:class:`Conversions`, module-scoped).

Conventions, as found in bio2zarr 0.2.1 and sgkit 0.8.0 (read from their sources):

- ``call_genotype``: both write -1 for a missing allele and -2 for the fill of a call of lower
  ploidy (a haploid ``0`` beside diploid calls is ``[0, -2]``, a haploid ``.`` is ``[-1, -2]``),
  so the arrays are compared for equality.
- ``call_genotype_phased``: equal on every call; a call of one allele is phased in both.
- ``variant_id``: both write ``.`` for a missing ID (bio2zarr adds ``variant_id_mask``).
- ``variant_quality``: both write the VCF Zarr missing sentinel NaN ``0x7F800001``
  (``bio2zarr.constants.FLOAT32_MISSING``; ``0x7F800002`` is fill) for ``.``.
- sgkit's ``variant_stats``/``sample_stats`` count a call as called only when none of its
  alleles is negative (``_classify_hom``), so a call padded with -2 (a haploid call beside
  diploid ones) is "not called" for sgkit, while the job counts it as fully called
  (docs/variants.md). sgkit's allele counts skip every negative value, so -2 is not counted, as
  here. sgkit reads -2 as fill only when ``call_genotype`` has the attribute
  ``mixed_ploidy=True``; then ``variant_stats`` refuses the dataset.

Every array both write is asserted equal, with bio2zarr as the reference.
"""

from __future__ import annotations

import importlib.util
import io
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

bio2zarr = pytest.importorskip("bio2zarr")
sgkit = pytest.importorskip("sgkit")
pysam = pytest.importorskip("pysam")
msprime = pytest.importorskip("msprime")
zarr = pytest.importorskip("zarr")

from bio2zarr import vcf as b2z_vcf  # noqa: E402
from test_cli import error_of  # noqa: E402

from gpu_genomics.errors import InputError  # noqa: E402
from gpu_genomics.variants.convert import convert_vcf  # noqa: E402

_ALLEL = importlib.util.find_spec("allel")
ALLEL_DATA = (
    Path(_ALLEL.submodule_search_locations[0]) / "test" / "data" if _ALLEL is not None else None
)

#: scikit-allel test VCFs that both tools convert. Near-copies of ``sample.vcf`` that differ in
#: header lines (altlen, test4, test14, test16, test176), ``sample.vcf.gz`` (bgzip input as
#: shipped), and test32 (103 samples, 11 variants, 7 contigs, many missing calls).
ALLEL_BOTH = [
    "altlen.vcf",
    "sample.vcf",
    "sample.vcf.gz",
    "test14.vcf",
    "test16.vcf",
    "test176.vcf",
    "test32.vcf",
    "test4.vcf",
]
#: Rejected by ours (a one-line InputError), with a fragment of the message. bio2zarr converts
#: ann.vcf (0 samples), empty.vcf (0 variants), test48b.vcf (it drops a record's columns beyond
#: the header's samples) and test63.vcf (GT ``0/1/2`` with one ALT, ``./3``, ploidy 3); it
#: rejects eff.vcf (spaces in the #CHROM line) and test48a.vcf (not a VCF) too.
ALLEL_OURS_REJECTS = {
    "ann.vcf": "no sample columns",
    "eff.vcf": "#CHROM line must be tab-separated",
    "empty.vcf": "no variant records",
    "test48a.vcf": "not a VCF header",
    "test48b.vcf": "more columns than the header",
    "test63.vcf": "names an allele the record does not have",
}
#: Converted by ours, rejected by bio2zarr 0.2.1: test1.vcf and test54.vcf.gz (FORMAT/AD
#: ``Number=R`` with more values than alleles: "Max number of values 2 exceeds max alt alleles
#: 1"), sample.utf8.vcf (UnicodeDecodeError on a non-ASCII header value), unsorted.vcf (tabix
#: cannot index it, and bio2zarr needs an index for a multi-contig VCF).
ALLEL_BIO2ZARR_REJECTS = ["sample.utf8.vcf", "test1.vcf", "test54.vcf.gz", "unsorted.vcf"]

SIMULATED = ["sim_missing", "sim_mixed_ploidy", "sim_multiallelic"]
INPUTS = ALLEL_BOTH + SIMULATED
#: Inputs with haploid calls beside diploid ones: the ``X:10`` call ``0`` of NA00001 in
#: sample.vcf and its near-copies, the haploid individuals of the mixed-ploidy simulation.
HAPLOID_INPUTS = [
    name for name in INPUTS if name not in ("test32.vcf", "sim_missing", "sim_multiallelic")
]
#: Inputs with a ``QUAL`` of ``.`` (tskit writes ``.`` for every record; test32 has none).
QUAL_MISSING_INPUTS = [name for name in INPUTS if name != "test32.vcf"]

#: Arrays our output must have: the VCF Zarr arrays both tools write, and the QC arrays
#: compared with sgkit's statistics.
CORE = (
    "call_genotype",
    "call_genotype_phased",
    "variant_contig",
    "variant_position",
    "variant_id",
    "variant_allele",
    "variant_quality",
    "variant_filter_pass",
    "sample_id",
    "contig_id",
    "variant_call_rate",
    "sample_missing_rate",
    "dosage",
    "dosage_variant",
    "dosage_allele_frequency",
)
#: Written by bio2zarr; compared only where our output has them.
OPTIONAL = ("call_genotype_mask", "variant_id_mask", "variant_length", "filter_id", "contig_length")
STRING_ARRAYS = {
    "variant_id",
    "variant_allele",
    "sample_id",
    "contig_id",
    "filter_id",
    "filter_description",
}

FLOAT32_MISSING_BITS = 0x7F800001  # bio2zarr.constants.FLOAT32_MISSING, VCF Zarr "missing"


# --- inputs ------------------------------------------------------------------------------------
def _inject_missing(text: str, rng: np.random.Generator) -> str:
    """Replace about 8% of the calls by missing ones (``./.``, ``.|.``, haploid ``.``) and about
    4% of the diploid ones by half-missing ones (``0|.``, ``.|1``)."""
    out = []
    for line in text.splitlines():
        if line.startswith("#"):
            out.append(line)
            continue
        fields = line.split("\t")
        for j in range(9, len(fields)):
            gt = fields[j]
            u = rng.random()
            if u < 0.08:
                fields[j] = "." if len(gt) == 1 else str(rng.choice(["./.", ".|."]))
            elif u < 0.12 and len(gt) == 3:
                side = int(rng.integers(2))
                fields[j] = "." + gt[1:] if side == 0 else gt[:2] + "."
        out.append("\t".join(fields))
    return "\n".join(out) + "\n"


def simulated_vcf(kind: str, folder: Path) -> Path:
    """An msprime simulation written by tskit as a bgzipped, tabix-indexed VCF.

    ``sim_missing``: 40 diploids, missing and half-missing calls. ``sim_mixed_ploidy``: 25
    diploid and 10 haploid individuals, missing calls. ``sim_multiallelic``: 40 diploids, JC69
    mutations at a high rate on a short discrete genome, so many sites have 2 or 3 ALTs."""
    seed = {"sim_missing": 11, "sim_mixed_ploidy": 12, "sim_multiallelic": 13}[kind]
    if kind == "sim_mixed_ploidy":
        samples = [msprime.SampleSet(25, ploidy=2), msprime.SampleSet(10, ploidy=1)]
    else:
        samples = [msprime.SampleSet(40, ploidy=2)]
    length, rate = (800, 3e-6) if kind == "sim_multiallelic" else (4_000, 5e-7)
    ts = msprime.sim_ancestry(
        samples=samples,
        sequence_length=length,
        recombination_rate=1e-8,
        population_size=10_000,
        random_seed=seed,
    )
    ts = msprime.sim_mutations(
        ts, rate=rate, model=msprime.JC69(), discrete_genome=True, random_seed=seed
    )
    buffer = io.StringIO()
    ts.write_vcf(buffer, position_transform=lambda x: np.asarray(x) + 1)  # POS 1-based
    text = buffer.getvalue()
    records = [line.split("\t") for line in text.splitlines() if not line.startswith("#")]
    assert 100 <= len(records) <= 600, len(records)
    n_alts = np.array([len(rec[4].split(",")) for rec in records])
    if kind == "sim_multiallelic":
        assert (n_alts >= 2).sum() >= 20 and (n_alts >= 3).any(), np.bincount(n_alts)
    if kind == "sim_mixed_ploidy":
        calls = records[0][9:]
        assert [len(c) for c in calls] == [3] * 25 + [1] * 10, calls  # diploid, then haploid
    if kind != "sim_multiallelic":
        text = _inject_missing(text, np.random.default_rng(seed))
    path = folder / f"{kind}.vcf"
    path.write_text(text)
    return Path(pysam.tabix_index(str(path), preset="vcf", force=True))


def _allel_inputs(name: str, folder: Path) -> tuple[Path, Path]:
    """(our input, bio2zarr's input): a copy of the plain VCF for ours, and its bgzipped and
    tabix-indexed copy for bio2zarr (which needs the index); a shipped ``.vcf.gz`` for both."""
    if ALLEL_DATA is None or not (ALLEL_DATA / name).exists():
        pytest.skip(f"scikit-allel test data {name} not installed")
    local = folder / name
    shutil.copy(ALLEL_DATA / name, local)
    if name.endswith(".gz"):
        pysam.tabix_index(str(local), preset="vcf", force=True)
        return local, local
    indexed = pysam.tabix_index(str(local), preset="vcf", force=True, keep_original=True)
    return local, Path(indexed)


# --- conversions ---------------------------------------------------------------------------------
def _dims(array) -> tuple[str, ...]:
    names = getattr(array.metadata, "dimension_names", None)
    if names is None:
        names = array.attrs.get("_ARRAY_DIMENSIONS")
    return tuple(names or ())


def _load(path: Path) -> tuple[dict[str, np.ndarray], dict[str, tuple[str, ...]], dict]:
    group = zarr.open_group(str(path), mode="r")
    arrays, dims = {}, {}
    for name, array in group.arrays():
        value = np.asarray(array[...])
        if name in STRING_ARRAYS or value.dtype.kind in "OTU":
            value = value.astype(object)  # StringDType (zarr 3), object or fixed-width: as str
        arrays[name] = value
        dims[name] = _dims(array)
    return arrays, dims, dict(group.attrs)


@dataclass
class Pair:
    """One input converted by ours and by bio2zarr (``ref``)."""

    name: str
    ours_path: Path
    ref_path: Path
    ours: dict[str, np.ndarray] = field(default_factory=dict)
    ref: dict[str, np.ndarray] = field(default_factory=dict)
    ours_dims: dict[str, tuple[str, ...]] = field(default_factory=dict)
    ref_dims: dict[str, tuple[str, ...]] = field(default_factory=dict)
    ours_attrs: dict = field(default_factory=dict)
    ref_attrs: dict = field(default_factory=dict)

    def both(self, array: str) -> tuple[np.ndarray, np.ndarray]:
        assert array in self.ours, f"{self.name}: our output has no {array}"
        return self.ours[array], self.ref[array]

    @property
    def haploid(self) -> np.ndarray:
        """(variants, samples): calls with one allele slot, the rest fill (bio2zarr's array)."""
        gt = self.ref["call_genotype"]
        return (gt[..., 0] != -2) & (gt[..., 1:] == -2).all(axis=-1)


class Conversions:
    """Each input converted once per tool, on first use."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.pairs: dict[str, Pair | BaseException] = {}

    def get(self, name: str) -> Pair:
        if name not in self.pairs:
            try:
                self.pairs[name] = self._convert(name)
            except Exception as exc:  # remembered: the other tests of this input fail at once
                self.pairs[name] = exc
                raise
        result = self.pairs[name]
        if isinstance(result, BaseException):
            pytest.fail(f"{name}: converting failed in an earlier test: {result!r}", pytrace=False)
        return result

    def _convert(self, name: str) -> Pair:
        work = self.folder / name
        work.mkdir()
        if name in SIMULATED:
            ours_input = ref_input = simulated_vcf(name, work)
        else:
            ours_input, ref_input = _allel_inputs(name, work)
        pair = Pair(name, work / "ours.zarr", work / "bio2zarr.zarr")
        convert_vcf(ours_input, pair.ours_path, device="cpu")
        b2z_vcf.convert([str(ref_input)], str(pair.ref_path), worker_processes=0)
        pair.ours, pair.ours_dims, pair.ours_attrs = _load(pair.ours_path)
        pair.ref, pair.ref_dims, pair.ref_attrs = _load(pair.ref_path)
        return pair


@pytest.fixture(scope="module")
def conversions(tmp_path_factory) -> Conversions:
    return Conversions(tmp_path_factory.mktemp("vcf_zarr_compat"))


@pytest.fixture(params=INPUTS)
def pair(request, conversions) -> Pair:
    return conversions.get(request.param)


def _sgkit_dataset(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return sgkit.load_dataset(str(path))


# --- the arrays both write -----------------------------------------------------------------------
def test_core_arrays_and_dimensions(pair):
    """Ours writes every core array, and names the axes of each array bio2zarr also writes as
    bio2zarr does (VCF Zarr dimension names)."""
    missing = [name for name in CORE if name not in pair.ours]
    assert not missing, missing
    shared = sorted(set(pair.ours) & set(pair.ref))
    assert {"call_genotype", "variant_allele", "sample_id", "contig_id"} <= set(shared)
    assert {n: pair.ours_dims[n] for n in shared} == {n: pair.ref_dims[n] for n in shared}


def test_vcf_zarr_group_attributes(conversions):
    """The group attributes bio2zarr writes (but ``source``, its own name): the version (ours
    0.4, the version of the names it follows; bio2zarr 0.5) and the same meta-information."""
    pair = conversions.get("sample.vcf")
    assert str(pair.ref_attrs["vcf_zarr_version"]).startswith("0.")
    assert pair.ours_attrs["vcf_zarr_version"] == "0.4"
    ours = [list(kv) for kv in pair.ours_attrs["vcf_meta_information"]]
    assert ours == [list(kv) for kv in pair.ref_attrs["vcf_meta_information"]]
    assert ["fileformat", "VCFv4.0"] in ours


def test_call_genotype(pair):
    """Same allele indices, -1 for a missing allele, -2 for the fill of a lower-ploidy call
    (``[x, -2]`` for a haploid call, ``[-1, -2]`` for a haploid ``.``), same ploidy."""
    ours, ref = pair.both("call_genotype")
    assert ours.shape == ref.shape
    np.testing.assert_array_equal(ours, ref)
    assert set(np.unique(ours)) <= {-2, -1, *range(ref.max() + 1)}
    if pair.name == "sim_mixed_ploidy":
        assert (ours[:, 25:, 1] == -2).all() and (ours[:, :25] != -2).all()
        assert (ours[:, 25:, 0] == -1).any()
    if pair.name in ("sim_missing", "sim_mixed_ploidy"):
        half = (ours == -1).any(-1) & (ours >= 0).any(-1)
        assert (ours == -1).all(-1).any() and half.any()


def test_call_genotype_phased_diploid_calls(pair):
    """Equal on every call with at least two alleles (``./.`` unphased, ``.|.`` phased)."""
    ours, ref = pair.both("call_genotype_phased")
    assert ours.shape == ref.shape
    keep = ~pair.haploid
    np.testing.assert_array_equal(ours[keep], ref[keep])


@pytest.mark.parametrize("name", HAPLOID_INPUTS)
def test_call_genotype_phased_haploid_calls(conversions, name):
    """A call of one allele (haploid, or a haploid ``.``) is phased in both (htslib's phase
    bit, which bio2zarr writes)."""
    pair = conversions.get(name)
    ours, ref = pair.both("call_genotype_phased")
    haploid = pair.haploid
    assert haploid.any()
    assert ours[haploid].all()
    np.testing.assert_array_equal(ours[haploid], ref[haploid])


def test_variant_position_and_contig(pair):
    """Same positions; same contig names, in the same order; each variant on the same contig
    name (indices compared through contig_id; ours int32, bio2zarr int8 or wider)."""
    np.testing.assert_array_equal(*pair.both("variant_position"))
    ours_contigs, ref_contigs = pair.both("contig_id")
    assert ours_contigs.tolist() == ref_contigs.tolist()
    ours, ref = pair.both("variant_contig")
    assert ours_contigs[ours].tolist() == ref_contigs[ref].tolist()


def test_variant_allele(pair):
    """REF then every ALT, ``""`` padding, the same number of allele columns."""
    ours, ref = pair.both("variant_allele")
    assert ours.shape == ref.shape
    assert ours.tolist() == ref.tolist()
    if pair.name == "sim_multiallelic":
        assert ((ours != "").sum(axis=1) >= 3).sum() >= 20


def test_variant_id(pair):
    """The ID; ``.`` for a missing one in both (bio2zarr marks it in variant_id_mask)."""
    ours, ref = pair.both("variant_id")
    assert ours.tolist() == ref.tolist()
    np.testing.assert_array_equal(ref == ".", pair.ref["variant_id_mask"])


def test_sample_id(pair):
    ours, ref = pair.both("sample_id")
    assert ours.tolist() == ref.tolist()


def test_variant_quality(pair):
    """Equal values, NaN where bio2zarr writes its missing sentinel (bit patterns: below)."""
    ours, ref = pair.both("variant_quality")
    np.testing.assert_array_equal(ours.astype(np.float32), ref)
    ref_bits = ref.view(np.uint32)
    assert (np.isnan(ref) == (ref_bits == FLOAT32_MISSING_BITS)).all()
    assert np.isnan(ref).any() == (pair.name in QUAL_MISSING_INPUTS)


@pytest.mark.parametrize("name", QUAL_MISSING_INPUTS)
def test_variant_quality_missing_bit_pattern(conversions, name):
    """QUAL ``.`` is the VCF Zarr "missing" NaN, bits 0x7F800001, in both."""
    pair = conversions.get(name)
    ours, ref = pair.both("variant_quality")
    missing = ref.view(np.uint32) == FLOAT32_MISSING_BITS
    assert missing.any()
    np.testing.assert_array_equal(ours.view(np.uint32), ref.view(np.uint32))


def test_variant_filter_pass(pair):
    """``FILTER`` is ``PASS``: bio2zarr's variant_filter column of PASS (``.`` sets none)."""
    ours = pair.ours["variant_filter_pass"]
    filter_ids = pair.ref["filter_id"].tolist()
    ref = pair.ref["variant_filter"]
    expected = ref[:, filter_ids.index("PASS")] if "PASS" in filter_ids else np.zeros_like(ours)
    np.testing.assert_array_equal(ours, expected)


@pytest.mark.parametrize("array", OPTIONAL)
def test_optional_array(pair, array):
    """bio2zarr's arrays that ours may add: equal where ours writes them."""
    if array not in pair.ours or array not in pair.ref:
        pytest.skip(f"{array} is not in both outputs")
    ours, ref = pair.both(array)
    assert ours.shape == ref.shape
    if array in STRING_ARRAYS:
        assert ours.tolist() == ref.tolist()
    else:
        np.testing.assert_array_equal(ours, ref)


def test_variant_filter(pair):
    """Where ours writes variant_filter: the same filter names set for each variant."""
    if "variant_filter" not in pair.ours or "filter_id" not in pair.ours:
        pytest.skip("our output has no variant_filter/filter_id")

    def names(arrays):
        ids = arrays["filter_id"]
        return [sorted(ids[row].tolist()) for row in arrays["variant_filter"]]

    assert names(pair.ours) == names(pair.ref)


# --- sgkit -------------------------------------------------------------------------------------
def _fill_called(gt: np.ndarray) -> np.ndarray:
    """Calls with fill (-2), no missing allele and at least one allele: fully called for the job,
    not called for sgkit's variant_stats/sample_stats."""
    return (gt == -2).any(-1) & ~(gt == -1).any(-1) & (gt >= 0).any(-1)


def test_sgkit_opens_our_output(pair):
    ds = _sgkit_dataset(pair.ours_path)
    gt = pair.ours["call_genotype"]
    assert ds["call_genotype"].shape == gt.shape
    assert dict(ds.sizes)["variants"] == gt.shape[0]
    assert dict(ds.sizes)["samples"] == gt.shape[1]
    assert ds["call_genotype"].dims == ("variants", "samples", "ploidy")
    np.testing.assert_array_equal(ds["call_genotype"].values, gt)
    assert ds["sample_id"].values.tolist() == pair.ours["sample_id"].tolist()


def test_sgkit_variant_and_sample_call_rate(pair):
    """sgkit's variant_call_rate and sample_call_rate against ours: equal (1e-12) where no call
    has fill; a fill-padded call that the job counts as fully called is uncalled for sgkit."""
    ds = _sgkit_dataset(pair.ours_path)
    gt = pair.ours["call_genotype"]
    n_variants, n_samples, _ = gt.shape
    called = ~(gt == -1).any(-1) & (gt >= 0).any(-1)
    ours_rate, ours_missing = pair.ours["variant_call_rate"], pair.ours["sample_missing_rate"]
    # ours, as documented (docs/variants.md#qc)
    np.testing.assert_allclose(ours_rate, called.mean(axis=1), rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours_missing, 1 - called.mean(axis=0), rtol=0, atol=1e-12)
    fill_called = _fill_called(gt)
    assert fill_called.any() == (pair.name in HAPLOID_INPUTS)
    variant_stats = sgkit.variant_stats(ds, merge=False).compute()
    sample_stats = sgkit.sample_stats(ds, merge=False).compute()
    np.testing.assert_allclose(
        variant_stats["variant_call_rate"].values,
        ours_rate - fill_called.sum(axis=1) / n_samples,
        rtol=0,
        atol=1e-12,
    )
    np.testing.assert_allclose(
        sample_stats["sample_call_rate"].values,
        1 - ours_missing - fill_called.sum(axis=0) / n_variants,
        rtol=0,
        atol=1e-12,
    )
    if pair.name == "sim_mixed_ploidy":  # sgkit: a haploid sample is never called
        assert (sample_stats["sample_call_rate"].values[25:] == 0).all()


def test_sgkit_allele_frequency(pair):
    """Our nonref dosage_allele_frequency (one column per variant) is sgkit's frequency of the
    ALT allele at biallelic sites, and 1 - its REF frequency everywhere (NaN: nothing called)."""
    ds = _sgkit_dataset(pair.ours_path)
    n_variants = pair.ours["call_genotype"].shape[0]
    np.testing.assert_array_equal(pair.ours["dosage_variant"], np.arange(n_variants))
    ours = pair.ours["dosage_allele_frequency"]
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        af = sgkit.variant_stats(ds, merge=False)["variant_allele_frequency"].values
    biallelic = (pair.ours["variant_allele"] != "").sum(axis=1) == 2
    assert biallelic.any()
    np.testing.assert_allclose(ours[biallelic], af[biallelic, 1], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ours, 1 - af[:, 0], rtol=1e-12, atol=1e-12)


def test_sgkit_call_allele_count_and_dosage(pair):
    """Our nonref dosage is the sum of sgkit's per-call ALT allele counts (fill not counted),
    -1 for a call with a missing allele or no allele."""
    ds = _sgkit_dataset(pair.ours_path)
    gt = pair.ours["call_genotype"]
    counts = sgkit.count_call_alleles(ds, merge=False)["call_allele_count"].values
    missing = (gt == -1).any(-1) | ~(gt >= 0).any(-1)
    expected = np.where(missing, -1, counts[..., 1:].sum(axis=-1).astype(np.int64))
    np.testing.assert_array_equal(pair.ours["dosage"], expected.T)


def test_sgkit_mixed_ploidy_attribute(pair):
    """With ``mixed_ploidy=True`` on call_genotype, sgkit reads -2 as fill: its call_ploidy is
    the number of non-fill alleles, and variant_stats refuses the dataset."""
    ds = _sgkit_dataset(pair.ours_path)
    ds["call_genotype"].attrs["mixed_ploidy"] = True
    gt = pair.ours["call_genotype"]
    ploidy = sgkit.infer_call_ploidy(ds, merge=False)["call_ploidy"].values
    np.testing.assert_array_equal(ploidy, (gt != -2).sum(axis=-1))
    if pair.name == "sim_mixed_ploidy":
        assert (ploidy[:, :25] == 2).all() and (ploidy[:, 25:] == 1).all()
    with pytest.raises(ValueError, match="Mixed-ploidy"):
        sgkit.variant_stats(ds)


# --- inputs one tool rejects ---------------------------------------------------------------------
@pytest.mark.parametrize(("name", "fragment"), sorted(ALLEL_OURS_REJECTS.items()))
def test_allel_inputs_ours_rejects(tmp_path, capsys, name, fragment):
    """A one-line InputError naming the file, nothing written; the command line prints it as
    one ``gpu-genomics: error:`` line, exit 2, no traceback."""
    if ALLEL_DATA is None or not (ALLEL_DATA / name).exists():
        pytest.skip(f"scikit-allel test data {name} not installed")
    local = tmp_path / name
    shutil.copy(ALLEL_DATA / name, local)
    output = tmp_path / "out.zarr"
    with pytest.raises(InputError) as info:
        convert_vcf(local, output, device="cpu")
    message = str(info.value)
    assert "\n" not in message
    assert str(local) in message and fragment in message, message
    assert not output.exists()
    line = error_of(capsys, "vcf", local, "-o", output, "--device", "cpu", "--quiet")
    assert fragment in line, line
    assert not output.exists()


@pytest.mark.parametrize("name", ALLEL_BIO2ZARR_REJECTS)
def test_allel_inputs_only_ours_converts(tmp_path, name):
    """Ours converts them; bio2zarr 0.2.1 raises (if it stops raising, compare the file too)."""
    if ALLEL_DATA is None or not (ALLEL_DATA / name).exists():
        pytest.skip(f"scikit-allel test data {name} not installed")
    local = tmp_path / name
    shutil.copy(ALLEL_DATA / name, local)
    summary = convert_vcf(local, tmp_path / "ours.zarr", device="cpu")
    assert summary["variants_kept"] == summary["variants_read"] > 0
    ref_input = local
    if name.endswith(".vcf"):
        try:
            ref_input = pysam.tabix_index(str(local), preset="vcf", force=True, keep_original=True)
        except OSError:  # unsorted.vcf: tabix refuses it
            ref_input = local
    with pytest.raises((ValueError, KeyError)):
        b2z_vcf.convert([str(ref_input)], str(tmp_path / "b2z.zarr"), worker_processes=0)
