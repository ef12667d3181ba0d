"""Reading VCF and BCF into VCF-Zarr-style genotype arrays, one chunk of variants at a time.

Plain and gzip/bgzip VCF text is read in large blocks, cut at newlines into chunks of
``chunk_variants`` records, and every record of a chunk is parsed in parallel by a numba kernel
over the raw bytes (fixed columns, FORMAT, and the GT sub-field of each sample). BCF files and
region queries (``chr20:1-5000000``, which need a ``.tbi``/``.csi`` index) go through htslib
(pysam), which hands over each record's VCF text to the same parser. Memory is bounded by a
chunk of variants, not by the file.

Arrays follow VCF Zarr 0.4 names (sgkit/bio2zarr):

* ``call_genotype`` ``(variants, samples, ploidy) int8``: allele indices, ``-1`` for a missing
  allele (``.``), ``-2`` for fill (a haploid call beside diploid ones, ploidy above the call's);
* ``call_genotype_phased`` ``(variants, samples) bool``: no separator of the call is ``/``
  (a call of one allele, haploid or ``.``, is phased, as htslib, cyvcf2 and bio2zarr say);
* ``variant_contig`` ``(variants,) int32`` (index into ``contig_id``), ``variant_position``
  ``(variants,) int32`` (1-based, as in the VCF), ``variant_id`` (``.`` kept as ``.``),
  ``variant_allele`` (REF first, every ALT kept), ``variant_quality`` ``float32`` (for ``.``
  the VCF Zarr "missing" NaN, bits ``0x7F800001``), ``variant_filter_pass`` ``bool`` (FILTER
  is ``PASS``); ``sample_id``.
"""

from __future__ import annotations

import gzip
import logging
import os
import shlex
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numba
import numpy as np

from ..errors import InputError, positive_int
from ..io.files import is_gzip

log = logging.getLogger("gpu_genomics")

#: Bytes of decompressed text read at once.
BLOCK_BYTES = 16 * 2**20
DEFAULT_CHUNK_VARIANTS = 10_000
FIXED_COLUMNS = ("#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO")
#: QUAL ``.``: the VCF Zarr float32 "missing" NaN (0x7F800001; 0x7F800002 is fill), as bio2zarr.
QUALITY_MISSING = np.array(0x7F800001, dtype=np.uint32).view(np.float32)

# Error codes of the record kernel (0: the record parsed).
_TOO_FEW_COLUMNS = 1
_TOO_MANY_COLUMNS = 2
_BAD_GT = 3
_NO_GT = 4
_BAD_POS = 5
_ALLELE_RANGE = 6
_NO_FORMAT = 7


@numba.njit(cache=True, nogil=True, inline="always")
def _n_alleles(buf, alt_start, alt_end):  # pragma: no cover  (numba)
    """REF plus the ALT alleles of the ALT column ``buf[alt_start:alt_end]`` (``.``: none)."""
    if alt_end - alt_start == 1 and buf[alt_start] == 46:
        return 1
    alleles = 2
    for q in range(alt_start, alt_end):
        if buf[q] == 44:
            alleles += 1
    return alleles


@numba.njit(cache=True, nogil=True, inline="always")
def _diploid_row(buf, p, e, n_samples, alleles, gt_row, phased_row):  # noqa: PLR0917  # pragma: no cover
    """The calls ``buf[p:e]`` of one record, when all are one-digit diploid (FORMAT GT).

    When every call is ``a|b`` or ``a/b`` of one-digit alleles below ``alleles`` (or ``.``),
    tab-separated, writes ``gt_row`` ``(samples, 2)`` and ``phased_row`` and returns True; otherwise
    returns False, the rows partly written (the caller parses the record the general way,
    which writes every call or names the bad one). The calls are read as 4-byte words (a call
    and the tab after it), in one branch-free pass LLVM vectorises.
    """
    if e - p != 4 * n_samples - 1 or e + 1 > buf.shape[0]:
        return False
    words = buf[p : e + 1].view(np.uint32)  # a call and the byte after it (tab, line end)
    top = np.uint32(min(alleles, 10))
    ok = True
    for j in range(n_samples):
        w = words[j]
        c0 = w & np.uint32(0xFF)
        c1 = (w >> np.uint32(8)) & np.uint32(0xFF)
        c2 = (w >> np.uint32(16)) & np.uint32(0xFF)
        d0 = c0 - np.uint32(48)  # wraps above 9 for bytes below '0'
        d1 = c2 - np.uint32(48)
        dot0 = c0 == 46
        dot1 = c2 == 46
        ok &= ((c1 == 47) | (c1 == 124)) & (dot0 | (d0 < top)) & (dot1 | (d1 < top))
        gt_row[j, 0] = np.int8(-1) if dot0 else np.int8(d0)
        gt_row[j, 1] = np.int8(-1) if dot1 else np.int8(d1)
        phased_row[j] = c1 == 124
    for j in range(n_samples - 1):  # the separators between the calls
        ok &= (words[j] >> np.uint32(24)) == 9
    return ok


@numba.njit(parallel=True, cache=True, nogil=True)
def _parse_records(  # noqa: PLR0912, PLR0915, PLR0917 (one numba kernel per record)
    buf, starts, ends, n_samples, ploidy, gt, phased, positions, n_alleles, ploidy_seen, fields,
    errors, error_sample,
):  # pragma: no cover  (numba)  # fmt: skip
    """Parse the records ``buf[starts[i]:ends[i]]`` (no newline) of a VCF body.

    Fills ``gt`` ``(n, n_samples, ploidy) int8``, ``phased`` ``(n, n_samples) bool``,
    ``positions`` ``(n,) int64``, ``n_alleles`` ``(n,) int32`` (REF + ALTs), ``ploidy_seen``
    ``(n,) int32`` (most alleles in one call, even above ``ploidy``: then the caller re-parses
    with a larger ``ploidy``), ``fields`` ``(n, 11) int64`` (start of each of the first 10
    tab-separated columns; ``end + 1`` for absent ones, so column ``c`` is
    ``fields[c]:fields[c + 1] - 1``), ``errors`` ``(n,) int32`` and ``error_sample``.
    """
    for i in numba.prange(len(starts)):
        s = starts[i]
        e = ends[i]
        errors[i] = 0
        error_sample[i] = -1
        ploidy_seen[i] = 0
        fields[i, 0] = s
        ncol = 1
        p = s
        while p < e and ncol < 10:
            if buf[p] == 9:
                fields[i, ncol] = p + 1
                ncol += 1
            p += 1
        for c in range(ncol, 11):
            fields[i, c] = e + 1
        if ncol < 8 or (n_samples > 0 and ncol < 10):
            errors[i] = _TOO_FEW_COLUMNS
            continue
        # POS
        pos = 0
        p = fields[i, 1]
        pend = fields[i, 2] - 1
        if p >= pend:
            errors[i] = _BAD_POS
            continue
        bad = False
        while p < pend:
            ch = buf[p]
            if ch < 48 or ch > 57 or pos > 100_000_000_000:
                bad = True
                break
            pos = pos * 10 + (ch - 48)
            p += 1
        if bad:
            errors[i] = _BAD_POS
            continue
        positions[i] = pos
        alleles = _n_alleles(buf, fields[i, 4], fields[i, 5] - 1)
        n_alleles[i] = alleles
        if n_samples == 0:
            continue
        # FORMAT: which ':'-separated sub-field is GT
        f0 = fields[i, 8]
        f1 = fields[i, 9] - 1
        if f1 <= f0:
            errors[i] = _NO_FORMAT
            continue
        gt_index = -1
        k = 0
        q = f0
        while q <= f1:
            r = q
            while r < f1 and buf[r] != 58:
                r += 1
            if r - q == 2 and buf[q] == 71 and buf[q + 1] == 84:
                gt_index = k
                break
            k += 1
            q = r + 1
        if gt_index < 0:
            errors[i] = _NO_GT
            continue
        # samples
        p = fields[i, 9]
        if ploidy == 2 and gt_index == 0 and f1 - f0 == 2:  # FORMAT is GT: the common record
            if _diploid_row(buf, p, e, n_samples, alleles, gt[i], phased[i]):
                ploidy_seen[i] = 2
                continue
        most = 0
        for j in range(n_samples):
            if p > e:
                errors[i] = _TOO_FEW_COLUMNS
                error_sample[i] = j
                break
            # skip to the GT sub-field
            skipped = 0
            while skipped < gt_index and p < e and buf[p] != 9:
                if buf[p] == 58:
                    skipped += 1
                p += 1
            # the common call first: an allele of one digit (or '.'), '/' or '|', another,
            # then a tab, ':' or the line's end; anything else takes the general path below
            if skipped == gt_index and ploidy >= 2 and p + 3 <= e:
                c0 = np.int64(buf[p])
                c1 = buf[p + 1]
                c2 = np.int64(buf[p + 2])
                c3 = buf[p + 3] if p + 3 < e else 9
                v0 = -1 if c0 == 46 else c0 - 48
                v1 = -1 if c2 == 46 else c2 - 48
                separator = (c1 == 47) | (c1 == 124)
                field_end = (c3 == 9) | (c3 == 58)
                if (
                    separator
                    and field_end
                    and -1 <= v0 < min(alleles, 10)
                    and -1 <= v1 < min(alleles, 10)
                    and (v0 >= 0 or c0 == 46)
                    and (v1 >= 0 or c2 == 46)
                ):
                    gt[i, j, 0] = v0
                    gt[i, j, 1] = v1
                    for a in range(2, ploidy):
                        gt[i, j, a] = -2
                    phased[i, j] = c1 == 124
                    most = max(most, 2)
                    p += 3
                    while p < e and buf[p] != 9:  # past other sub-fields (none after a tab)
                        p += 1
                    p += 1
                    continue
            nal = 0
            all_pipes = True
            if skipped < gt_index:
                # trailing sub-fields dropped: GT is missing
                if ploidy > 0:
                    gt[i, j, 0] = -1
                nal = 1
            else:
                while True:
                    if p < e and buf[p] == 46:
                        value = -1
                        p += 1
                    elif p < e and buf[p] >= 48 and buf[p] <= 57:
                        value = 0
                        while p < e and buf[p] >= 48 and buf[p] <= 57:
                            value = value * 10 + (buf[p] - 48)
                            if value > 1000:
                                break
                            p += 1
                        if value >= alleles or value > 127:
                            errors[i] = _ALLELE_RANGE
                            error_sample[i] = j
                            break
                    else:
                        errors[i] = _BAD_GT
                        error_sample[i] = j
                        break
                    if nal < ploidy:
                        gt[i, j, nal] = value
                    nal += 1
                    if p < e and (buf[p] == 47 or buf[p] == 124):
                        if buf[p] == 47:
                            all_pipes = False
                        p += 1
                        continue
                    if p >= e or buf[p] == 58 or buf[p] == 9:
                        break
                    errors[i] = _BAD_GT
                    error_sample[i] = j
                    break
                if errors[i] != 0:
                    break
            for a in range(nal, ploidy):
                gt[i, j, a] = -2
            phased[i, j] = all_pipes
            most = max(most, nal)
            # to the next sample
            while p < e and buf[p] != 9:
                p += 1
            p += 1
        if errors[i] == 0 and p <= e:
            errors[i] = _TOO_MANY_COLUMNS
            error_sample[i] = n_samples
        ploidy_seen[i] = most


@numba.njit(cache=True, nogil=True, inline="always")
def _allele_byte(c):  # pragma: no cover  (numba)
    """``c`` can be a byte of an allele: not a tab, ':', '/' or '|'."""
    return not ((c == 9) | (c == 58) | (c == 47) | (c == 124))


@numba.njit(parallel=True, cache=True, nogil=True)
def _scan_records(  # noqa: PLR0912, PLR0915, PLR0917 (one numba kernel per record)
    buf, starts, ends, n_samples, n_alleles, ploidy_seen, chrom_end, unusual
):
    """What a first pass needs of the records ``buf[starts[i]:ends[i]]``, without parsing them.

    Fills ``n_alleles`` (REF + ALTs), ``ploidy_seen`` (most alleles in one GT: separators + 1),
    ``chrom_end`` (end of CHROM); ``unusual[i]`` is True for a record this scan does not
    judge (too few columns, a POS that is not digits, FORMAT not starting with GT, a sample
    count other than the header's): those batches are parsed in full instead.
    """  # pragma: no cover  (numba)
    for i in numba.prange(len(starts)):
        s = starts[i]
        e = ends[i]
        unusual[i] = False
        ploidy_seen[i] = 0
        col = 0
        pos_start = alt_start = alt_end = format_start = sample_start = -1
        p = s
        while p < e and col < 9:
            if buf[p] == 9:
                col += 1
                if col == 1:
                    chrom_end[i] = p
                    pos_start = p + 1
                elif col == 4:
                    alt_start = p + 1
                elif col == 5:
                    alt_end = p
                elif col == 8:
                    format_start = p + 1
                elif col == 9:
                    sample_start = p + 1
            p += 1
        if col < 9 or n_samples == 0:
            unusual[i] = True
            continue
        q = pos_start
        while q < e and buf[q] != 9:
            if buf[q] < 48 or buf[q] > 57:
                unusual[i] = True
            q += 1
        if q == pos_start:
            unusual[i] = True
        n_alleles[i] = _n_alleles(buf, alt_start, alt_end)
        f = format_start
        if not (f + 2 <= e and buf[f] == 71 and buf[f + 1] == 84) or (
            f + 2 < e and buf[f + 2] != 58 and buf[f + 2] != 9
        ):
            unusual[i] = True
            continue
        p = sample_start
        j = 0
        most = 0
        while True:
            alleles = 1
            # the common sample field first: 'a/b' or 'a|b' (one byte each), then a tab
            if p + 3 < e and buf[p + 3] == 9 and (buf[p + 1] == 47 or buf[p + 1] == 124):
                if _allele_byte(buf[p]) and _allele_byte(buf[p + 2]):
                    most = max(most, 2)
                    j += 1
                    p += 4
                    continue
            while p < e and buf[p] != 9 and buf[p] != 58:
                if buf[p] == 47 or buf[p] == 124:
                    alleles += 1
                p += 1
            most = max(most, alleles)
            j += 1
            while p < e and buf[p] != 9:
                p += 1
            if p >= e:
                break
            p += 1
        if j != n_samples:
            unusual[i] = True
        ploidy_seen[i] = most


def newlines(text: bytes) -> np.ndarray:
    """``(lines,) int64`` offsets of the newlines of ``text`` (found once per batch).

    NumPy's compare and ``flatnonzero`` (both let other threads run): the reading thread
    finds them while the consumer parses the batch before. On this project's 2-vCPU VMs they
    beat a SWAR numba pass over text just inflated (not in cache).
    """
    return np.flatnonzero(np.frombuffer(text, dtype=np.uint8) == 10)


def record_lines(
    buf: np.ndarray, *, numbered: bool = False, newline: np.ndarray | None = None
) -> tuple[np.ndarray, ...]:
    """``(starts, ends)`` of the non-blank lines of ``buf`` (whole lines).

    A carriage return before the newline is dropped; with ``numbered``, also the 0-based
    index of each line among all lines.
    """
    if newline is None:  # the offsets of the newlines, when the caller has not found them
        newline = np.flatnonzero(buf == 10)
    starts = np.concatenate(([0], newline[:-1] + 1)).astype(np.int64)
    ends = newline.astype(np.int64)
    crlf = (ends > starts) & (buf[np.maximum(ends - 1, 0)] == 13)
    ends = ends - crlf
    keep = ends > starts  # blank lines are skipped
    index = np.arange(len(starts), dtype=np.int64)
    if not keep.all():
        starts, ends, index = starts[keep], ends[keep], index[keep]
    return (starts, ends, index) if numbered else (starts, ends)


@dataclass
class VcfHeader:
    """What a VCF header says.

    Attributes:
        samples: the #CHROM line's sample columns, in order.
        contigs: the ##contig IDs, in order.
        has_gt: a ##FORMAT=<ID=GT line is present.
        n_lines: the number of header lines, so the first record is line ``n_lines + 1``.
        n_bytes: the header's length in the (uncompressed) text; 0 when read through htslib.
        meta_information: ``(key, value)`` of every ``##key=value`` line but the contig,
            FILTER, INFO and FORMAT ones (the VCF Zarr ``vcf_meta_information``, as bio2zarr).
    """

    samples: list[str]
    contigs: list[str]
    has_gt: bool
    n_lines: int
    n_bytes: int = 0
    meta_information: list[tuple[str, str]] = field(default_factory=list)


def _check_no_nul(lines: list[str], path: str | os.PathLike) -> None:
    """Refuse a header line holding a NUL byte (no output can store one in a string)."""
    for number, raw in enumerate(lines, start=1):
        if "\x00" in raw:
            column = raw.index("\x00")
            shown = raw[max(column - 20, 0) : column + 20].replace("\x00", "\\0")
            raise InputError(
                f"{path}: line {number}, column {column + 1}: the header holds a NUL byte "
                f"(...{shown!r}...); fix or remove it"
            )


def parse_header(lines: list[str], path: str | os.PathLike) -> VcfHeader:
    """Check and parse VCF header lines (``##...`` lines then the ``#CHROM`` line)."""
    if not lines or not lines[0].startswith("##fileformat=VCF"):
        first = lines[0][:40] if lines else "(empty file)"
        raise InputError(
            f"{path}: line 1: not a VCF header (found {first!r}, expected ##fileformat=VCF...); "
            "give a VCF/BCF file with its header"
        )
    _check_no_nul(lines, path)
    contigs: list[str] = []
    meta: list[tuple[str, str]] = []
    has_gt = False
    for raw in lines[:-1]:
        line = raw.rstrip("\r\n")
        key, equals, value = line[2:].partition("=")
        if line.startswith("##") and equals and key not in ("contig", "FILTER", "INFO", "FORMAT"):
            meta.append((key, value))
        if line.startswith("##contig=<"):
            for part in line[len("##contig=<") :].rstrip(">").split(","):
                if part.startswith("ID="):
                    contigs.append(part[3:])
                    break
        elif line.startswith("##FORMAT=<ID=GT,") or line.startswith("##FORMAT=<ID=GT>"):
            has_gt = True
    last = lines[-1].rstrip("\r\n")
    if not last.startswith("#CHROM"):
        raise InputError(
            f"{path}: line {len(lines)}: the header has no #CHROM line before the records; "
            "a VCF needs its #CHROM POS ID REF ALT QUAL FILTER INFO [FORMAT samples] line"
        )
    columns = last.split("\t")
    if tuple(columns[:8]) != FIXED_COLUMNS or (len(columns) > 8 and columns[8] != "FORMAT"):
        raise InputError(
            f"{path}: line {len(lines)}: the #CHROM line must be tab-separated "
            "#CHROM POS ID REF ALT QUAL FILTER INFO [FORMAT sample...]"
        )
    samples = columns[9:]
    seen: set[str] = set()
    duplicates = sorted({s for s in samples if s in seen or seen.add(s)})  # type: ignore[func-returns-value]
    if duplicates:
        raise InputError(
            f"{path}: line {len(lines)}: duplicate sample names {', '.join(duplicates[:5])}; "
            "rename them (bcftools reheader) so each sample is unique"
        )
    if samples and not has_gt:
        raise InputError(
            f"{path}: the header declares no GT field (##FORMAT=<ID=GT...>), so the file holds "
            "no genotypes; give a VCF with genotype calls"
        )
    return VcfHeader(
        samples=samples,
        contigs=contigs,
        has_gt=has_gt,
        n_lines=len(lines),
        meta_information=meta,
    )


@dataclass
class VcfChunk:
    """One chunk of consecutive records, arrays as in the module docstring.

    ``variant_index`` ``(n,) int64`` is each record's 0-based index among the records read;
    ``line`` ``(n,) int64`` its 1-based line in the text file (0 for BCF/region input);
    ``call_genotype`` has the chunk's own ploidy (the most alleles of any call in it).
    """

    call_genotype: np.ndarray
    call_genotype_phased: np.ndarray
    variant_contig: np.ndarray
    variant_position: np.ndarray
    variant_id: list[str]
    variant_allele: list[list[str]]
    variant_quality: np.ndarray
    variant_filter_pass: np.ndarray
    variant_index: np.ndarray
    line: np.ndarray = field(repr=False)

    def __len__(self) -> int:
        return len(self.variant_position)

    @property
    def n_alleles(self) -> np.ndarray:
        """``(n,) int32``: REF plus ALT alleles of each variant."""
        return np.array([len(a) for a in self.variant_allele], dtype=np.int32)


class RecordParser:
    """Parses blocks of VCF record lines (as read from a file with this header) into chunks.

    Args:
        path: the file named in error messages.
        samples: the header's sample names.
        contigs: the contigs known so far (header ``##contig`` IDs, then those already seen);
            a record naming another contig appends it to ``contigs``.

    ``max_ploidy``: the most alleles of any call parsed so far.
    """

    def __init__(self, path: str | os.PathLike, samples: list[str], contigs: list[str]) -> None:
        self.path = Path(path)
        self.samples = samples
        self.contigs = list(contigs)
        self._contig_index = {name: i for i, name in enumerate(self.contigs)}
        self.max_ploidy = 0
        self._alloc_ploidy = 2

    def parse(
        self,
        text: bytes,
        first_line: int,
        first_record: int,
        *,
        newline: np.ndarray | None = None,
    ) -> VcfChunk:
        """Parse whole record lines (each ending in a newline; blank ones skipped).

        ``first_line``: the file line of ``text``'s first line (0: lines are not known, errors
        name records); ``first_record``: the index of its first record among the file's;
        ``newline``: :func:`newlines` of ``text`` when the caller has them.

        Raises:
            InputError: a record that is not valid VCF, named by line (or record) and sample.
        """
        return self._parse(text, first_line, first_record, newline=newline)

    def scan(self, text: bytes, *, newline: np.ndarray | None = None) -> np.ndarray | None:
        """The alleles of each record of ``text`` (whole lines), without parsing the records.

        Updates :attr:`max_ploidy` and :attr:`contigs` as :meth:`parse` would. Returns
        ``(records,) int32`` REF + ALT counts, or None when a record is one this scan does not
        judge (then :meth:`parse` the text, which names what is wrong, if anything).
        """
        buf = np.frombuffer(text, dtype=np.uint8)
        starts, ends = record_lines(buf, newline=newline)
        n = len(starts)
        n_alleles = np.zeros(n, dtype=np.int32)
        ploidy_seen = np.zeros(n, dtype=np.int32)
        chrom_end = np.zeros(n, dtype=np.int64)
        unusual = np.zeros(n, dtype=np.bool_)
        _scan_records(buf, starts, ends, len(self.samples), n_alleles, ploidy_seen, chrom_end,
                      unusual)  # fmt: skip
        if unusual.any():
            return None
        previous = None
        for start, end in zip(starts.tolist(), chrom_end.tolist(), strict=True):
            chrom = text[start:end]
            if chrom != previous:
                previous = chrom
                try:
                    name = chrom.decode()
                except UnicodeDecodeError:
                    return None
                if name not in self._contig_index:
                    self._contig_index[name] = len(self.contigs)
                    self.contigs.append(name)
        if n:
            self.max_ploidy = max(self.max_ploidy, int(ploidy_seen.max()))
        return n_alleles

    def _where(self, line: int, record: int, chrom: bytes | None = None, pos: str = "") -> str:
        place = f"line {line}" if line else f"record {record + 1}"
        if chrom is not None:
            place += f" ({chrom.decode('utf-8', 'replace')}:{pos})"
        return f"{self.path}: {place}"

    def _parse(
        self,
        text: bytes,
        first_line: int,
        first_record: int,
        *,
        newline: np.ndarray | None = None,
    ) -> VcfChunk:
        """Parse one chunk of records into a :class:`VcfChunk`.

        ``text`` holds whole lines, the first of them line ``first_line`` of the file (0 for
        BCF/region input) and record ``first_record``; ``newline``: its newlines, if known.
        """
        buf = np.frombuffer(text, dtype=np.uint8)
        starts, ends, line_numbers = record_lines(buf, numbered=True, newline=newline)
        line_numbers += first_line
        if not first_line:
            line_numbers[:] = 0
        gt, phased, positions, fields = self._parse_genotypes(
            text, buf, starts, ends, line_numbers=line_numbers, first_record=first_record
        )
        if np.any(positions > np.iinfo(np.int32).max):
            i = int(np.flatnonzero(positions > np.iinfo(np.int32).max)[0])
            where = self._where(int(line_numbers[i]), first_record + i)
            raise InputError(f"{where}: POS {positions[i]} is larger than 2^31-1")
        columns = self._fixed_columns(text, fields, line_numbers, first_record)
        return VcfChunk(
            call_genotype=gt,
            call_genotype_phased=phased,
            variant_position=positions.astype(np.int32),
            variant_index=np.arange(first_record, first_record + len(starts), dtype=np.int64),
            line=line_numbers,
            **columns,
        )

    def _parse_genotypes(
        self,
        text: bytes,
        buf: np.ndarray,
        starts: np.ndarray,
        ends: np.ndarray,
        *,
        line_numbers: np.ndarray,
        first_record: int,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Run the record kernel over a chunk's lines.

        Returns ``(gt, phased, positions, fields)``, ``gt`` with the chunk's own ploidy (the
        kernel runs again with a wider array when a call has more alleles than allocated).
        """
        n = len(starts)
        n_samples = len(self.samples)
        while True:
            ploidy = self._alloc_ploidy if n_samples else 0
            gt = np.empty((n, n_samples, ploidy), dtype=np.int8)
            phased = np.empty((n, n_samples), dtype=np.bool_)
            positions = np.zeros(n, dtype=np.int64)
            n_alleles = np.zeros(n, dtype=np.int32)
            ploidy_seen = np.zeros(n, dtype=np.int32)
            fields = np.zeros((n, 11), dtype=np.int64)
            errors = np.zeros(n, dtype=np.int32)
            error_sample = np.zeros(n, dtype=np.int32)
            _parse_records(
                buf, starts, ends, n_samples, ploidy, gt, phased, positions, n_alleles,
                ploidy_seen, fields, errors, error_sample,
            )  # fmt: skip
            bad = np.flatnonzero(errors)
            if len(bad):
                self._raise(
                    text,
                    int(bad[0]),
                    errors=errors,
                    error_sample=error_sample,
                    fields=fields,
                    line_numbers=line_numbers,
                    first_record=first_record,
                )
            most = int(ploidy_seen.max()) if n else 0
            if most <= ploidy or n_samples == 0:
                break
            self._alloc_ploidy = most
        self.max_ploidy = max(self.max_ploidy, most)
        if n_samples and most < ploidy:
            gt = np.ascontiguousarray(gt[:, :, : max(most, 1)])
        return gt, phased, positions, fields

    def _fixed_columns(
        self, text: bytes, fields: np.ndarray, line_numbers: np.ndarray, first_record: int
    ) -> dict[str, Any]:
        """CHROM (as ``variant_contig``), ID, REF and ALT, QUAL and FILTER of every record."""
        n = len(fields)
        contig = np.empty(n, dtype=np.int32)
        ids: list[str] = []
        alleles: list[list[str]] = []
        quality = np.empty(n, dtype=np.float32)
        filter_pass = np.empty(n, dtype=np.bool_)
        contig_index = self._contig_index
        for i, row in enumerate(fields.tolist()):
            try:
                chrom = text[row[0] : row[1] - 1].decode()
                variant_id = text[row[2] : row[3] - 1].decode()
                ref = text[row[3] : row[4] - 1].decode()
                alt = text[row[4] : row[5] - 1].decode()
            except UnicodeDecodeError:
                where = self._where(int(line_numbers[i]), first_record + i)
                raise InputError(
                    f"{where}: CHROM, ID, REF or ALT holds bytes that are not UTF-8 text; "
                    "VCF text must be UTF-8 (convert the file, e.g. with iconv)"
                ) from None
            index = contig_index.get(chrom)
            if index is None:
                index = contig_index[chrom] = len(self.contigs)
                self.contigs.append(chrom)
            contig[i] = index
            ids.append(variant_id)
            alleles.append([ref] if alt == "." else [ref, *alt.split(",")])
            qual = text[row[5] : row[6] - 1]
            if qual == b".":
                quality[i] = QUALITY_MISSING
            else:
                try:
                    quality[i] = float(qual)
                except ValueError:
                    where = self._where(int(line_numbers[i]), first_record + i)
                    raise InputError(
                        f"{where}: QUAL {qual.decode('utf-8', 'replace')!r} is not a number or '.'"
                    ) from None
            filter_pass[i] = text[row[6] : row[7] - 1] == b"PASS"
        return {
            "variant_contig": contig,
            "variant_id": ids,
            "variant_allele": alleles,
            "variant_quality": quality,
            "variant_filter_pass": filter_pass,
        }

    def _raise(  # one record's error code as a one-line InputError
        self,
        text: bytes,
        i: int,
        *,
        errors: np.ndarray,
        error_sample: np.ndarray,
        fields: np.ndarray,
        line_numbers: np.ndarray,
        first_record: int,
    ) -> None:
        code = int(errors[i])
        row = fields[i]
        chrom = text[row[0] : row[1] - 1] if row[1] - 1 <= len(text) else None
        pos = text[row[1] : row[2] - 1].decode("utf-8", "replace") if row[2] > row[1] else ""
        where = self._where(int(line_numbers[i]), first_record + i, chrom, pos)
        j = int(error_sample[i])
        sample = self.samples[j] if 0 <= j < len(self.samples) else None
        n_columns = 9 + len(self.samples) if self.samples else 8
        if code == _TOO_FEW_COLUMNS:
            raise InputError(
                f"{where}: too few tab-separated columns (the header has {n_columns}); "
                "fix or remove the record"
            )
        if code == _TOO_MANY_COLUMNS:
            raise InputError(
                f"{where}: more columns than the header's {n_columns}; fix or remove the record"
            )
        if code == _BAD_POS:
            raise InputError(f"{where}: POS is not a positive integer; fix the record")
        if code == _NO_FORMAT:
            raise InputError(f"{where}: empty FORMAT column; it must list GT")
        if code == _NO_GT:
            raise InputError(
                f"{where}: FORMAT has no GT field, so the record has no genotypes; "
                "remove the record or add GT"
            )
        start = row[9]
        values = text[start : text.find(b"\n", start)].split(b"\t")
        value = values[j].decode("utf-8", "replace") if 0 <= j < len(values) else ""
        if code == _ALLELE_RANGE:
            raise InputError(
                f"{where}: sample {sample}: genotype {value!r} names an allele the record "
                "does not have (or one above 127); fix GT or ALT"
            )
        raise InputError(
            f"{where}: sample {sample}: bad genotype {value!r}; GT must be allele indices or "
            "'.' separated by '/' or '|'"
        )


class VcfReader(RecordParser):
    """Stream a VCF/BCF file as :class:`VcfChunk` objects of up to ``chunk_variants`` records.

    Args:
        path: ``.vcf``, ``.vcf.gz`` (gzip or bgzip) or ``.bcf``.
        region: ``chrom``, ``chrom:start-end`` (1-based, inclusive); needs an index
            (``.tbi``/``.csi``) beside a bgzipped VCF or a BCF.
        chunk_variants: records per chunk (memory is about ``chunk_variants`` times the text of
            one record plus ``samples * ploidy`` bytes per record).

    Attributes after construction: ``samples``, ``contigs`` (grows when records name contigs
    missing from the header), ``max_ploidy`` (largest call seen so far; final after
    iteration).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        region: str | None = None,
        chunk_variants: int = DEFAULT_CHUNK_VARIANTS,
    ) -> None:
        self.path = Path(path)
        self.region = region or None
        self.chunk_variants = positive_int("chunk_variants", chunk_variants)
        if not self.path.exists():
            raise InputError(f"{self.path}: no such file; check the path")
        if self.path.is_dir():
            raise InputError(f"{self.path}: is a folder, not a VCF/BCF file")
        self._gzip = is_gzip(self.path)
        self._bcf = self._is_bcf()
        if self._bcf or self.region:
            self.header = self._pysam_header()
        else:
            self.header = self._text_header()
        RecordParser.__init__(self, self.path, self.header.samples, self.header.contigs)

    def _is_bcf(self) -> bool:
        if self.path.suffix.lower() == ".bcf":
            return True
        if self._gzip:
            try:
                with gzip.open(self.path, "rb") as handle:
                    return handle.read(3) == b"BCF"
            except (OSError, EOFError, zlib.error):
                return False
        return False

    # --- headers -------------------------------------------------------------------------
    def _open_text(self) -> Any:
        if self._gzip:
            return gzip.open(self.path, "rb")
        return open(self.path, "rb")

    def _text_header(self) -> VcfHeader:
        lines: list[str] = []
        n_bytes = 0
        try:
            with self._open_text() as handle:
                while True:
                    raw = handle.readline()
                    if not raw:
                        break
                    if not raw.startswith(b"#"):
                        lines.append(raw.decode("utf-8", "replace"))
                        break
                    lines.append(raw.decode("utf-8", "replace"))
                    n_bytes += len(raw)
                    if raw.startswith(b"#CHROM"):
                        break
        except (OSError, EOFError, zlib.error) as exc:
            raise InputError(f"{self.path}: cannot read ({exc}); check the file") from None
        if lines and not lines[-1].startswith("#"):
            if lines[0].startswith("##fileformat=VCF"):
                raise InputError(
                    f"{self.path}: line {len(lines)}: record before the #CHROM header line; "
                    "a VCF needs its #CHROM POS ID REF ALT QUAL FILTER INFO ... line"
                )
            lines = lines[:1]
        header = parse_header(lines, self.path)
        header.n_bytes = n_bytes
        return header

    def _pysam_header(self) -> VcfHeader:
        import pysam

        try:
            with pysam.VariantFile(str(self.path)) as vf:
                text = str(vf.header)
        except (OSError, ValueError) as exc:
            raise InputError(f"{self.path}: htslib cannot open it as VCF/BCF ({exc})") from None
        return parse_header(text.splitlines(keepends=True), self.path)

    @property
    def through_htslib(self) -> bool:
        """BCF, or a region query: read through htslib (records then have no line numbers)."""
        return self._bcf or bool(self.region)

    def text(self) -> Iterator[bytes]:
        """The input as VCF text: its header, then blocks of whole record lines.

        A text VCF's own bytes (blank lines kept, so line numbers stay); htslib's VCF text
        of a BCF file or of the records of a region.
        """
        if self.through_htslib:
            import pysam

            with pysam.VariantFile(str(self.path)) as vf:
                yield str(vf.header).encode()
            batches = self._pysam_batches()
        else:
            with self._open_text() as handle:
                yield b"".join(handle.readline() for _ in range(self.header.n_lines))
            batches = self._text_batches()
        for text, _ in batches:
            yield text

    # --- iteration -------------------------------------------------------------------------
    def __iter__(self) -> Iterator[VcfChunk]:
        if self._bcf or self.region:
            batches = self._pysam_batches()
        else:
            batches = self._text_batches()
        n_done = 0
        for text, first_line in batches:
            chunk = self._parse(text, first_line, n_done)
            n_done += len(chunk)
            if len(chunk):
                yield chunk

    def _text_batches(self) -> Iterator[tuple[bytes, int]]:
        """Whole lines, ``chunk_variants`` at a time, with the line number of the first."""
        line_no = self.header.n_lines + 1
        pieces: list[bytes] = []  # read but not yet yielded
        carry_lines = 0  # newlines in pieces
        with self._open_text() as handle:
            for _ in range(self.header.n_lines):
                handle.readline()
            while True:
                try:
                    block = handle.read(BLOCK_BYTES)
                except (OSError, EOFError, zlib.error) as exc:
                    raise InputError(
                        f"{self.path}: compressed data is corrupt or truncated ({exc}); "
                        "re-download or recompress the file"
                    ) from None
                if not block:
                    break
                # blocks are kept apart until they hold a chunk of records, so that a chunk
                # larger than a block is joined and scanned once (linear, not quadratic)
                n_block_lines = block.count(b"\n")
                if carry_lines + n_block_lines < self.chunk_variants:
                    pieces.append(block)
                    carry_lines += n_block_lines
                    continue
                data = b"".join([*pieces, block])
                newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
                start = 0
                used = 0
                while len(newlines) - used >= self.chunk_variants:
                    stop = int(newlines[used + self.chunk_variants - 1]) + 1
                    yield data[start:stop], line_no
                    line_no += self.chunk_variants
                    used += self.chunk_variants
                    start = stop
                pieces = [data[start:]]
                carry_lines = len(newlines) - used
        carry = b"".join(pieces)
        if carry.strip():
            yield carry if carry.endswith(b"\n") else carry + b"\n", line_no

    def _pysam_batches(self) -> Iterator[tuple[bytes, int]]:
        import pysam

        if self.region:
            index_found = any(Path(str(self.path) + suffix).exists() for suffix in (".tbi", ".csi"))
            if not index_found:
                quoted = shlex.quote(str(self.path))
                tool = (
                    f"bcftools index {quoted}"
                    if self._bcf
                    else f"tabix -p vcf {quoted} (or bcftools index {quoted})"
                )
                raise InputError(
                    f"{self.path}: region={self.region!r} needs an index (.tbi/.csi) beside the "
                    f"file; bgzip it and run {tool}"
                )
        try:
            vf = pysam.VariantFile(str(self.path))
        except (OSError, ValueError) as exc:
            raise InputError(f"{self.path}: htslib cannot open it ({exc})") from None
        with vf:
            try:
                records = vf.fetch(region=self.region) if self.region else vf.fetch()
            except (OSError, ValueError) as exc:
                raise InputError(
                    f"{self.path}: cannot query region {self.region!r} ({exc}); use chrom or "
                    "chrom:start-end with a contig named in the file"
                ) from None
            lines: list[str] = []
            try:
                for rec in records:
                    lines.append(str(rec))
                    if len(lines) == self.chunk_variants:
                        yield "".join(lines).encode(), 0
                        lines = []
            except (OSError, ValueError) as exc:
                raise InputError(f"{self.path}: htslib cannot read a record ({exc})") from None
            if lines:
                yield "".join(lines).encode(), 0


def read_vcf(
    path: str | os.PathLike,
    *,
    region: str | None = None,
    chunk_variants: int = DEFAULT_CHUNK_VARIANTS,
) -> dict[str, Any]:
    """Read a whole VCF/BCF (or a region of it) into memory as VCF-Zarr-named arrays.

    Returns a dict with ``call_genotype`` ``(variants, samples, ploidy) int8`` (-1 missing,
    -2 fill), ``call_genotype_phased`` ``(variants, samples) bool``, ``variant_contig``
    ``int32``, ``variant_position`` ``int32`` (1-based), ``variant_id`` and ``sample_id`` and
    ``contig_id`` (str arrays), ``variant_allele`` ``(variants, max_alleles)`` str array padded
    with ``""`` (REF first), ``variant_quality`` ``float32`` (NaN for ``.``),
    ``variant_filter_pass`` ``bool``.

    Raises:
        InputError: a missing/unreadable file, a header or record that is not valid VCF, a
            region without an index.
    """
    reader = VcfReader(path, region=region, chunk_variants=chunk_variants)
    chunks = list(reader)
    return concat_chunks(chunks, reader)


def pad_ploidy(gt: np.ndarray, ploidy: int) -> np.ndarray:
    """``gt`` widened to ``ploidy`` alleles with -2 fill (returned as is when wide enough)."""
    if gt.shape[2] >= ploidy:
        return gt
    out = np.full((*gt.shape[:2], ploidy), -2, dtype=np.int8)
    out[:, :, : gt.shape[2]] = gt
    return out


def allele_table(alleles: list[list[str]], width: int | None = None) -> np.ndarray:
    """``(variants, width)`` str array of alleles, REF first, padded with ``""``."""
    width = width or max((len(a) for a in alleles), default=1)
    table = np.full((len(alleles), width), "", dtype=object)
    for i, row in enumerate(alleles):
        table[i, : len(row)] = row
    return table.astype(str) if len(alleles) else np.empty((0, width), dtype="<U1")


def concat_chunks(chunks: list[VcfChunk], reader: VcfReader) -> dict[str, Any]:
    """Join chunks into the arrays documented in :func:`read_vcf`."""
    n_samples = len(reader.samples)
    ploidy = max(reader.max_ploidy, 1) if n_samples else 0
    if chunks:
        gt = np.concatenate([pad_ploidy(c.call_genotype, ploidy) for c in chunks])
        phased = np.concatenate([c.call_genotype_phased for c in chunks])
    else:
        gt = np.empty((0, n_samples, ploidy), dtype=np.int8)
        phased = np.empty((0, n_samples), dtype=np.bool_)

    def cat(name: str, dtype: Any) -> np.ndarray:
        if not chunks:
            return np.empty(0, dtype=dtype)
        return np.concatenate([getattr(c, name) for c in chunks]).astype(dtype, copy=False)

    alleles = [a for c in chunks for a in c.variant_allele]
    return {
        "call_genotype": gt,
        "call_genotype_phased": phased,
        "variant_contig": cat("variant_contig", np.int32),
        "variant_position": cat("variant_position", np.int32),
        "variant_id": np.array([i for c in chunks for i in c.variant_id], dtype=str),
        "variant_allele": allele_table(alleles),
        "variant_quality": cat("variant_quality", np.float32),
        "variant_filter_pass": cat("variant_filter_pass", np.bool_),
        "sample_id": np.array(reader.samples, dtype=str),
        "contig_id": np.array(reader.contigs, dtype=str),
    }


__all__ = [
    "RecordParser",
    "VcfChunk",
    "VcfHeader",
    "VcfReader",
    "allele_table",
    "concat_chunks",
    "newlines",
    "pad_ploidy",
    "parse_header",
    "read_vcf",
]
