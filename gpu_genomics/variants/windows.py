"""The ``variant-windows`` job: VCF variants + a reference -> reference and alternate windows.

For every ALT allele of every record (a multi-allelic record gives one row per ALT) the job
writes the reference window of ``length`` bases around the variant and the same window of the
alternate haplotype, one-hot encoded or as token ids of any of the package's token schemes
(``docs/variants.md#windows``).

**Anchor rule (left-anchored).** With ``p = POS - 1`` (0-based), ``m = len(REF)`` and the ALT
allele ``A``, the alternate haplotype of the contig ``G`` is ``G[:p] + A + G[p + m:]``. The
reference window is ``G[s : s + length]`` and the alternate window is the same coordinates of
the haplotype, ``H[s : s + length]``: the bases left of the variant are the same in both
windows, the ALT starts where REF starts (window index ``p - s``, ``length // 2`` unless
shifted at a contig end), an insertion pushes the right flank out of the window (an ALT longer
than the room left is cut: ``alt_truncated``), and a deletion pulls more of the right flank in.
SNVs and MNVs are substituted in place.

**Contig ends.** ``s = p - length // 2``. With ``edge="shift"`` (default) ``s`` is moved
inward to ``[0, contig_length - length]`` so that the window lies inside the contig; with
``edge="pad"`` it is kept. Any base outside the contig (``edge="pad"``, a contig shorter than
``length``, or a deletion that pulls in bases past the contig end) is ``N``.

**Work split.** The VCF is read in this process in chunks of records (each a task, its size
set so that its encoded rows hold about :data:`TASK_BYTES`); each task reads its windows from
the reference (one bulk gather per contig), checks REF, builds the alternate windows (host,
numba: string work) and encodes both on the device (one-hot and tokenizers: CUDA kernels on
the GPU, numba on the CPU), then this process appends the rows to the output in record order.
Tasks run in this process or on a Dask cluster (:func:`~gpu_genomics.execution.map_in_order`);
the output is the same array for array.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numba
import numpy as np

from ..device import resolve_device, to_numpy
from ..errors import InputError, check_choice, positive_int, with_options
from ..execution import map_in_order, worker_count
from ..intervals.reference import Reference
from ..io.provenance import provenance
from ..io.spec import STRING, ArraySpec, OutputSpec
from ..io.store import ArrayWriter, check_output_folder, format_from_path, resolve_compression
from ..sequence.alphabet import IUPAC_DNA
from ..sequence.batch import SequenceBatch
from ..sequence.revcomp import reverse_complement_rows
from .reader import VcfChunk, VcfReader

log = logging.getLogger("gpu_genomics")

#: Encoded bytes (reference and alternate rows together) a task aims at.
TASK_BYTES = 64 << 20
#: Rows per output chunk.
CHUNK_WINDOWS = 1_000
WINDOW_ENCODINGS = ("onehot", "tokens", "kmer-tokens")
EDGE_MODES = ("shift", "pad")
STRANDS = ("+", "-")
REF_MISMATCH_MODES = ("error", "skip")
#: The base written for positions outside the contig.
PAD_BASE = ord("N")
_W = ("windows",)
ONEHOT = "encoding onehot"
TOKENS = "encoding tokens, kmer-tokens"

VARIANT_WINDOW_ARRAYS = OutputSpec(
    "variant-windows: VCF + reference -> reference and alternate windows (HDF5/Zarr)",
    (
        ArraySpec(
            "{allele}_seqs",
            "uint8|int8|float16|float32",
            (*_W, "positions", "channels"),
            "one-hot window of the reference (ref) or the alternate haplotype (alt), channels "
            "in `alphabet` order; N (and bases outside the contig) `n_value`",
            ONEHOT,
        ),
        ArraySpec(
            "{allele}_input_ids",
            "int32",
            (*_W, "tokens"),
            "token ids of the window under `scheme`",
            TOKENS,
        ),
        ArraySpec(
            "{allele}_attention_mask", "uint8", (*_W, "tokens"), "1 real token, 0 padding", TOKENS
        ),
        ArraySpec(
            "window_start",
            "int64",
            _W,
            "0-based contig position of the first base of both windows (+ strand; negative "
            "with edge=pad near the contig start)",
        ),
        ArraySpec(
            "variant_offset",
            "int32",
            _W,
            "window index (+ strand) where REF and ALT start: POS - 1 - window_start",
        ),
        ArraySpec(
            "alt_truncated", "bool", _W, "the ALT allele runs past the window end and is cut"
        ),
        ArraySpec("variant_contig", "int32", _W, "index into contig_id"),
        ArraySpec("variant_position", "int32", _W, "POS, 1-based"),
        ArraySpec("variant_id", STRING, _W, "ID ('.' kept)"),
        ArraySpec(
            "variant_allele",
            STRING,
            (*_W, "alleles"),
            "REF, then this row's ALT (a multi-allelic record is split into one row per ALT)",
        ),
        ArraySpec("alt_index", "int16", _W, "which ALT of the record the row applies (1..)"),
        ArraySpec(
            "variant_quality", "float32", _W, "QUAL; '.' is the VCF Zarr missing NaN (0x7F800001)"
        ),
        ArraySpec("variant_filter_pass", "bool", _W, "FILTER is PASS"),
        ArraySpec(
            "variant_index", "int64", _W, "0-based index of the record among the records read"
        ),
        ArraySpec("window_name", STRING, _W, "contig:POS:REF>ALT"),
        ArraySpec(
            "contig_id", STRING, ("contigs",), "##contig IDs, then contigs seen only in records"
        ),
    ),
    placeholders={"allele": ("ref", "alt")},
)

_SYMBOLIC = re.compile(r"^(<.*>|\*|.*[\[\]].*|\..+|.+\.)$")
_LETTERS = re.compile(f"[{IUPAC_DNA}{IUPAC_DNA.lower()}]+")


# --- options -------------------------------------------------------------------------------
@dataclass
class Encoding:
    """How windows are encoded (shared by the window and haplotype jobs).

    Attributes:
        encoding: ``"onehot"``, ``"tokens"`` (one token per base) or ``"kmer-tokens"``.
        alphabet: onehot: column order, a permutation of ``ACGT``.
        dtype: onehot: ``uint8``, ``int8``, ``float16`` or ``float32``.
        n_value: onehot: value of N (and other IUPAC letters) in all four columns.
        scheme: tokens: ``spec`` (default) or ``hyenadna``; kmer-tokens: ``plain`` (default),
            ``dnabert`` or ``nucleotide-transformer``.
        k: kmer-tokens: k-mer size.
        stride: kmer-tokens: bases between k-mer starts.
        max_len: kmer-tokens: tokens per row (default: the count of a window of ``length``
            A/C/G/T bases; Nucleotide Transformer rows holding N can need more).
        uppercase: tokens hyenadna, kmer-tokens dnabert: read lower-case (soft-masked) bases
            as upper case.
    """

    encoding: str = "onehot"
    alphabet: str = "ACGT"
    dtype: str = "uint8"
    n_value: float = 0.0
    scheme: str | None = None
    k: int = 6
    stride: int = 1
    max_len: int | None = None
    uppercase: bool = False

    def resolved(self, length: int) -> dict[str, Any]:
        """The encoder's parameters for windows of ``length`` bases, every option checked.

        Raises:
            InputError: an option that is invalid for the encoding.
        """
        from ..sequence.encode import _encoding_options
        from ..sequence.tokenizers import kmer_token_counts

        check_choice("encoding", self.encoding, WINDOW_ENCODINGS)
        max_len = length if self.encoding == "tokens" else self.max_len
        options = _encoding_options(
            self.encoding,
            length=length,
            pad="right",
            alphabet=self.alphabet,
            dtype=self.dtype,
            n_value=self.n_value,
            layout="NLC",
            max_len=max_len,
            scheme=self.scheme,
            k=self.k,
            stride=self.stride,
            canonical=False,
            sparse=None,
            uppercase=self.uppercase,
        )
        parameters = {"encoding": self.encoding, **options}
        if self.encoding == "onehot":
            parameters["length"] = length
        elif self.encoding == "kmer-tokens" and max_len is not None:
            parameters["max_len"] = positive_int("max_len", max_len)
        elif self.encoding == "kmer-tokens":
            clean = SequenceBatch.from_array(np.full((1, length), ord("A"), dtype=np.uint8))
            counts = kmer_token_counts(
                clean,
                options["k"],
                stride=options["stride"],
                scheme=options["scheme"],
                device="cpu",
            )
            parameters["max_len"] = max(int(counts[0]), 1)
        return parameters


def row_bytes(parameters: dict[str, Any]) -> int:
    """Encoded bytes of one window under resolved encoder ``parameters`` (every array's row)."""
    from ..sequence.encode import _row_bytes

    return sum(_row_bytes(parameters))


def encode_windows(windows: np.ndarray, parameters: dict[str, Any], device: str) -> list[Any]:
    """Encode ``(n, L) uint8`` windows (host, IUPAC letters) on ``device``; host arrays back.

    Returns ``[onehot]`` ``(n, L, 4)`` or ``[input_ids, attention_mask]`` ``(n, tokens)``.
    """
    from ..sequence.encode import _encode_batch

    batch = SequenceBatch(
        np.ascontiguousarray(windows).reshape(-1),
        np.arange(len(windows) + 1, dtype=np.int64) * windows.shape[1],
        None,
        windows.shape[1],
    )
    return [to_numpy(a) for a in _encode_batch(batch, parameters, device)]


def encoded_names(prefix: str, parameters: dict[str, Any]) -> list[str]:
    """The array names of encoded windows: ``{prefix}_seqs`` or ids and mask."""
    if parameters["encoding"] == "onehot":
        return [f"{prefix}_seqs"]
    return [f"{prefix}_input_ids", f"{prefix}_attention_mask"]


@dataclass
class WindowOptions:
    """The parameters of :func:`variant_windows` (the flags of ``variant-windows``).

    Attributes:
        length: window length in bases.
        encoding: an :class:`Encoding` (or set its fields through :func:`variant_windows`'s
            keywords: ``encoding="tokens"``, ``scheme="hyenadna"``, ...).
        edge: ``"shift"`` (windows moved inside the contig) or ``"pad"`` (kept centred; bases
            outside the contig are N).
        strand: ``"+"``, or ``"-"``: both windows reverse-complemented.
        ref_mismatch: ``"error"`` (a REF that differs from the reference is an error naming the
            record) or ``"skip"`` (such records are counted, reported and left out).
        skip_unknown_contigs: leave out (and count) records on contigs the reference lacks;
            else an error.
        region: read only ``chrom`` or ``chrom:start-end`` of the VCF (needs its index).
        output_format: ``"hdf5"`` or ``"zarr"``; default from the output's suffix.
        compression: ``none``, ``gzip``, ``lzf`` or ``zstd``.
        chunk_windows: rows per output chunk.
        task_records: records per task (default: about 64 MiB of encoded rows).
    """

    length: int = 1000
    encoding: Encoding = field(default_factory=Encoding)
    edge: str = "shift"
    strand: str = "+"
    ref_mismatch: str = "error"
    skip_unknown_contigs: bool = False
    region: str | None = None
    output_format: str | None = None
    compression: str | None = None
    chunk_windows: int = CHUNK_WINDOWS
    task_records: int | None = None

    def check(self) -> dict[str, Any]:
        """Check every parameter; return the resolved encoder parameters.

        Raises:
            InputError: the first invalid parameter.
        """
        positive_int("length", self.length)
        positive_int("chunk_windows", self.chunk_windows)
        if self.task_records is not None:
            positive_int("task_records", self.task_records)
        check_choice("edge", self.edge, EDGE_MODES)
        check_choice("strand", self.strand, STRANDS)
        check_choice("ref_mismatch", self.ref_mismatch, REF_MISMATCH_MODES)
        return self.encoding.resolved(self.length)


def split_parameters(
    kind: type, parameters: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``parameters`` split into the fields of :class:`Encoding` and the rest (``kind``'s)."""
    names = {f.name for f in dataclasses.fields(Encoding)} - {
        f.name for f in dataclasses.fields(kind)
    }
    encoding = {k: v for k, v in parameters.items() if k in names}
    if isinstance(parameters.get("encoding"), str):
        encoding["encoding"] = parameters["encoding"]
    rest = {k: v for k, v in parameters.items() if k not in encoding}
    return encoding, rest


# --- the geometry, gathers and kernels -----------------------------------------------------
def window_starts(positions: np.ndarray, contig_length: int, length: int, edge: str) -> np.ndarray:
    """``(n,) int64`` window starts for 0-based variant starts ``positions`` (module doc)."""
    starts = np.asarray(positions, dtype=np.int64) - length // 2
    if edge == "shift":
        starts = np.clip(starts, 0, max(contig_length - length, 0))
    return starts


def padded_windows(ref: Reference, name: str, starts: np.ndarray, length: int) -> np.ndarray:
    """``(n, length) uint8`` bases ``[starts[i], starts[i] + length)`` of contig ``name``.

    Positions outside the contig are ``N``. One bulk gather (:meth:`Reference.windows`).
    """
    starts = np.asarray(starts, dtype=np.int64)
    out = np.full((len(starts), length), PAD_BASE, dtype=np.uint8)
    contig_length = int(ref.lengths[ref.index_of(name)])
    if not len(starts) or contig_length == 0 or length == 0:
        return out
    read = min(length, contig_length)
    clipped = np.clip(starts, 0, contig_length - read)
    data, data_starts = ref.windows(name, clipped, read)
    _place_padded(data, data_starts, starts, clipped, read, contig_length, out)
    return out


@numba.njit(parallel=True, cache=True, nogil=True)
def _place_padded(data, data_starts, starts, clipped, read, contig_length, out):  # pragma: no cover  # noqa: PLR0917
    """``out[i, j]`` = contig base ``starts[i] + j`` from the gathered ``read``-base windows."""
    length = out.shape[1]
    for i in numba.prange(len(starts)):
        for j in range(length):
            position = starts[i] + j
            if 0 <= position < contig_length:
                offset = position - clipped[i]
                if 0 <= offset < read:
                    out[i, j] = data[data_starts[i] + offset]


@numba.njit(parallel=True, cache=True, nogil=True)
def _ref_mismatch(windows, offsets, ref_data, ref_starts):  # pragma: no cover
    """``(n,) bool``: REF (``ref_data[ref_starts[i]:ref_starts[i + 1]]``) differs from the window.

    Compared upper-cased, over the part of REF inside the window (from ``offsets[i]``).
    """
    n, length = windows.shape
    bad = np.zeros(n, dtype=np.bool_)
    for i in numba.prange(n):
        for t in range(ref_starts[i + 1] - ref_starts[i]):
            j = offsets[i] + t
            if j >= length:
                break
            a = windows[i, j]
            b = ref_data[ref_starts[i] + t]
            if 97 <= a <= 122:
                a -= 32
            if 97 <= b <= 122:
                b -= 32
            if a != b:
                bad[i] = True
                break
    return bad


@numba.njit(parallel=True, cache=True, nogil=True)
def _alt_windows(  # noqa: PLR0917 (numba: positional arguments)
    windows, offsets, ref_lengths, alt_data, alt_starts, extra, extra_row, out
):  # pragma: no cover
    """Alternate windows: left flank, ALT, then the contig from the end of REF (module doc).

    ``extra[extra_row[i]]`` holds the contig bases that follow what ``windows[i]`` gives.
    """
    n, length = windows.shape
    for i in numba.prange(n):
        c = offsets[i]
        for j in range(c):
            out[i, j] = windows[i, j]
        j = c
        for t in range(alt_starts[i], alt_starts[i + 1]):
            if j >= length:
                break
            out[i, j] = alt_data[t]
            j += 1
        q = c + ref_lengths[i]
        while j < length and q < length:
            out[i, j] = windows[i, q]
            j += 1
            q += 1
        e = 0
        while j < length:
            out[i, j] = extra[extra_row[i], e]
            j += 1
            e += 1


def _flat(strings: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """ASCII strings back to back as ``uint8`` and their ``(n + 1,) int64`` offsets."""
    offsets = np.zeros(len(strings) + 1, dtype=np.int64)
    np.cumsum([len(s) for s in strings], out=offsets[1:])
    data = np.frombuffer("".join(strings).encode("ascii"), dtype=np.uint8)
    return (data if len(data) else np.zeros(1, dtype=np.uint8)), offsets


def alternate_windows(
    ref: Reference,
    name: str,
    windows: np.ndarray,
    *,
    starts: np.ndarray,
    offsets: np.ndarray,
    ref_alleles: list[str],
    alt_alleles: list[str],
) -> np.ndarray:
    """The ``(n, L) uint8`` alternate windows of the reference ``windows`` of contig ``name``.

    Row ``i`` applies ``alt_alleles[i]`` in place of ``ref_alleles[i]`` at window index
    ``offsets[i]`` (left-anchored, module docstring); bases past the window come from the
    contig (``N`` past its end), read for the rows that need them in one gather.
    """
    n, length = windows.shape
    m = np.array([len(a) for a in ref_alleles], dtype=np.int64)
    k = np.array([len(a) for a in alt_alleles], dtype=np.int64)
    c = offsets.astype(np.int64)
    used = c + np.minimum(k, length - c)
    from_window = np.minimum(np.maximum(length - (c + m), 0), length - used)
    need = length - used - from_window
    extra_start = starts + c + m + from_window
    rows = np.flatnonzero(need > 0)
    width = int(need.max()) if len(rows) else 1
    extra = np.full((max(len(rows), 1), width), PAD_BASE, dtype=np.uint8)
    if len(rows):
        extra = padded_windows(ref, name, extra_start[rows], width)
    extra_row = np.zeros(n, dtype=np.int64)
    extra_row[rows] = np.arange(len(rows))
    alt_data, alt_starts = _flat(alt_alleles)
    out = np.empty_like(windows)
    _alt_windows(windows, c, m, alt_data, alt_starts, extra, extra_row, out)
    return out


# --- tasks ---------------------------------------------------------------------------------
@dataclass
class Records:
    """The fixed columns of a chunk of VCF records, as a task gets them.

    ``contig`` indexes ``contig_names`` (the reader's contigs when the chunk was read); ``line``
    is each record's line in the file (0 when read through htslib).
    """

    contig: np.ndarray
    position: np.ndarray
    variant_id: list[str]
    alleles: list[list[str]]
    quality: np.ndarray
    filter_pass: np.ndarray
    variant_index: np.ndarray
    line: np.ndarray
    contig_names: list[str]

    @classmethod
    def of(cls, chunk: VcfChunk, contig_names: list[str]) -> Records:
        """The columns of ``chunk`` (its genotypes are not kept)."""
        return cls(
            contig=chunk.variant_contig,
            position=chunk.variant_position,
            variant_id=chunk.variant_id,
            alleles=chunk.variant_allele,
            quality=chunk.variant_quality,
            filter_pass=chunk.variant_filter_pass,
            variant_index=chunk.variant_index,
            line=chunk.line,
            contig_names=list(contig_names),
        )

    def where(self, vcf: str, i: int) -> str:
        """``"file: line 12 (chr1:100)"`` (or ``record 5``) naming record ``i``."""
        place = f"line {self.line[i]}" if self.line[i] else f"record {self.variant_index[i] + 1}"
        chrom = self.contig_names[self.contig[i]]
        return f"{vcf}: {place} ({chrom}:{self.position[i]})"


@dataclass(frozen=True)
class WindowTask:
    """What one task needs: the records, the inputs' paths and the resolved options."""

    vcf: str
    reference: str
    records: Records
    options: WindowOptions
    parameters: dict[str, Any]
    device: str


@dataclass
class WindowRows:
    """A task's rows (host arrays, in record order) and its counts."""

    arrays: dict[str, Any]
    counts: dict[str, int]
    first_mismatch: str | None = None


_REFERENCES: dict[tuple[str, float], Reference] = {}


def open_reference(path: str) -> Reference:
    """The :class:`Reference` at ``path``, opened once per process (and file version)."""
    key = (str(Path(path).resolve()), os.stat(path).st_mtime)
    if key not in _REFERENCES:
        _REFERENCES.clear()
        _REFERENCES[key] = Reference(path)
    return _REFERENCES[key]


def check_allele(allele: str, what: str, where: str) -> bool:
    """True for an allele of IUPAC letters; False for a symbolic one (``<DEL>``, ``*``, ...).

    Raises:
        InputError: anything else (REF must always be letters).
    """
    if _LETTERS.fullmatch(allele):
        return True
    if what == "ALT" and _SYMBOLIC.match(allele):
        return False
    raise InputError(
        f"{where}: {what} {allele!r} is not made of IUPAC letters (A C G T N ...); fix the record"
        + ("" if what == "REF" else " (symbolic ALTs such as <DEL> or * are skipped)")
    )


def _alt_rows(task: WindowTask, ref: Reference, counts: dict[str, int]) -> tuple[list, list]:
    """``(record, ALT number)`` of every row of the task's records; skips counted."""
    records = task.records
    record_of: list[int] = []
    alt_index: list[int] = []
    for i, alleles in enumerate(records.alleles):
        if len(alleles) == 1:
            counts["no_alt"] += 1
            continue
        name = records.contig_names[records.contig[i]]
        if ref.index_of(name) is None:
            if not task.options.skip_unknown_contigs:
                raise InputError(
                    f"{records.where(task.vcf, i)}: contig {name} is not in the reference "
                    f"{task.reference}; use the matching reference, or pass "
                    "skip_unknown_contigs=True to count and skip such records"
                )
            counts["unknown_contig"] += 1
            continue
        where = records.where(task.vcf, i)
        check_allele(alleles[0], "REF", where)
        for j, alt in enumerate(alleles[1:], start=1):
            if check_allele(alt, "ALT", where):
                record_of.append(i)
                alt_index.append(j)
            else:
                counts["symbolic_alt"] += 1
    return record_of, alt_index


def _mismatched(
    ref: Reference, name: str, windows: np.ndarray, *, starts: np.ndarray, p: np.ndarray,
    ref_alleles: list[str],
) -> np.ndarray:  # fmt: skip
    """``(n,) bool``: REF differs from the contig (inside the window, then past it)."""
    length = windows.shape[1]
    offsets = p - starts
    ref_data, ref_starts = _flat(ref_alleles)
    bad = _ref_mismatch(windows, offsets, ref_data, ref_starts)
    m = np.array([len(a) for a in ref_alleles], dtype=np.int64)
    for t in np.flatnonzero(offsets + m > length).tolist():  # REF runs past the window
        tail = ref.fetch(name, int(starts[t]) + length, int(p[t] + m[t])).tobytes().decode()
        if tail.upper() != ref_alleles[t][length - int(offsets[t]) :].upper():
            bad[t] = True
    return bad


def _contig_rows(
    task: WindowTask, ref: Reference, name: str, *, rows: np.ndarray, ref_alleles: list[str],
    alt_alleles: list[str],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str | None]:  # fmt: skip
    """The rows of one contig: ``(ref windows, alt windows, starts, REF mismatch, message)``.

    Raises:
        InputError: a REF past the contig end, or (``ref_mismatch="error"``) one that differs.
    """
    records, length = task.records, task.options.length
    contig_length = int(ref.lengths[ref.index_of(name)])
    p = records.position[rows].astype(np.int64) - 1
    m = np.array([len(a) for a in ref_alleles], dtype=np.int64)
    past = np.flatnonzero(p + m > contig_length)
    if len(past):
        raise InputError(
            f"{records.where(task.vcf, int(rows[past[0]]))}: REF {ref_alleles[past[0]]!r} runs "
            f"past the end of {name} ({contig_length} bases) in {task.reference}; is the "
            "reference the genome build of the VCF?"
        )
    starts = window_starts(p, contig_length, length, task.options.edge)
    windows = padded_windows(ref, name, starts, length)
    bad = _mismatched(ref, name, windows, starts=starts, p=p, ref_alleles=ref_alleles)
    message = None
    if bad.any():
        t = int(np.flatnonzero(bad)[0])
        genome = ref.fetch(name, int(p[t]), int(p[t] + m[t])).tobytes().decode()
        message = (
            f"{records.where(task.vcf, int(rows[t]))}: REF {ref_alleles[t]!r} does not match "
            f"the reference {task.reference} ({genome!r} at {name}:{p[t] + 1}); use the "
            "reference the VCF was called against, or pass ref_mismatch=skip to count and "
            "skip such records"
        )
        if task.options.ref_mismatch == "error":
            raise InputError(message)
    alt = alternate_windows(
        ref, name, windows, starts=starts, offsets=p - starts, ref_alleles=ref_alleles,
        alt_alleles=alt_alleles,
    )  # fmt: skip
    return windows, alt, starts, bad, message


def _variant_fields(
    records: Records, rows: np.ndarray, ref_alleles: list[str], alt_alleles: list[str]
) -> dict[str, Any]:
    """The per-row copies of the records' fields (``window_name`` and ``variant_allele`` too)."""
    names = [records.contig_names[c] for c in records.contig[rows].tolist()]
    positions = records.position[rows]
    pairs = list(zip(ref_alleles, alt_alleles, strict=True))
    return {
        "variant_contig": records.contig[rows].astype(np.int32),
        "variant_position": positions.astype(np.int32),
        "variant_id": [records.variant_id[i] for i in rows.tolist()],
        "variant_allele": np.array(pairs, dtype=object).reshape(len(rows), 2),
        "variant_quality": records.quality[rows],
        "variant_filter_pass": records.filter_pass[rows],
        "variant_index": records.variant_index[rows],
        "window_name": [
            f"{c}:{q}:{r}>{a}"
            for c, q, (r, a) in zip(names, positions.tolist(), pairs, strict=True)
        ],
    }


def window_task(task: WindowTask) -> WindowRows:
    """Build, check and encode the windows of one chunk of records (module docstring).

    Memory: the chunk's records, two ``(rows, length)`` byte windows plus the bases past the
    window of the rows that need them, and the encoded rows (about :data:`TASK_BYTES`).

    Raises:
        InputError: a bad REF or ALT, a record on a contig the reference lacks (unless
            skipped), a REF past its contig's end, or a REF that differs from the reference
            (with ``ref_mismatch="error"``).
    """
    records, length = task.records, task.options.length
    ref = open_reference(task.reference)
    counts = {"symbolic_alt": 0, "no_alt": 0, "unknown_contig": 0, "ref_mismatch": 0}
    record_of, alt_index = _alt_rows(task, ref, counts)
    rows = np.array(record_of, dtype=np.int64)
    n = len(rows)
    ref_win = np.empty((n, length), dtype=np.uint8)
    alt_win = np.empty((n, length), dtype=np.uint8)
    starts = np.zeros(n, dtype=np.int64)
    bad = np.zeros(n, dtype=bool)
    ref_alleles = [records.alleles[i][0] for i in record_of]
    alt_alleles = [records.alleles[i][j] for i, j in zip(record_of, alt_index, strict=True)]
    first_mismatch = None
    contig_of_row = records.contig[rows] if n else np.zeros(0, dtype=np.int32)
    for contig in np.unique(contig_of_row).tolist():
        group = np.flatnonzero(contig_of_row == contig)
        refs, alts = [ref_alleles[g] for g in group], [alt_alleles[g] for g in group]
        name = records.contig_names[contig]
        ref_win[group], alt_win[group], starts[group], bad[group], message = _contig_rows(
            task, ref, name, rows=rows[group], ref_alleles=refs, alt_alleles=alts
        )
        first_mismatch = first_mismatch or message
    counts["ref_mismatch"] = len(np.unique(rows[bad]))
    kept = np.flatnonzero(~np.isin(rows, rows[bad]))  # every ALT of a mismatched record
    rows, ref_win, alt_win, starts = rows[kept], ref_win[kept], alt_win[kept], starts[kept]
    ref_alleles = [ref_alleles[t] for t in kept.tolist()]
    alt_alleles = [alt_alleles[t] for t in kept.tolist()]
    if task.options.strand == "-":
        reverse_complement_rows(ref_win, np.arange(len(rows)))
        reverse_complement_rows(alt_win, np.arange(len(rows)))
    arrays: dict[str, Any] = {}
    for prefix, windows in (("ref", ref_win), ("alt", alt_win)):
        encoded = encode_windows(windows, task.parameters, task.device)
        arrays.update(zip(encoded_names(prefix, task.parameters), encoded, strict=True))
    offsets = records.position[rows].astype(np.int64) - 1 - starts
    alt_lengths = np.array([len(a) for a in alt_alleles], dtype=np.int64)
    arrays.update(
        {
            "window_start": starts,
            "variant_offset": offsets.astype(np.int32),
            "alt_truncated": offsets + alt_lengths > length,
            "alt_index": np.asarray(alt_index, dtype=np.int16)[kept],
            **_variant_fields(records, rows, ref_alleles, alt_alleles),
        }
    )
    counts["records"] = len(records.position)
    counts["windows"] = len(rows)
    return WindowRows(arrays=arrays, counts=counts, first_mismatch=first_mismatch)


# --- the job -------------------------------------------------------------------------------
def in_groups(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """``items`` in lists of ``size`` (the last one shorter)."""
    group: list[Any] = []
    for item in items:
        group.append(item)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


class RowAppender:
    """Create the row arrays (first axis growable) on first sight and append rows in order."""

    def __init__(self, out: ArrayWriter, chunk_rows: int) -> None:
        self.out = out
        self.chunk_rows = chunk_rows
        self.targets: dict[str, Any] = {}
        self.rows = 0

    def append(self, arrays: dict[str, Any]) -> None:
        """Append one block of rows (every array the same number of rows)."""
        sizes = {len(v) for v in arrays.values()}
        if len(sizes) != 1:
            raise AssertionError(f"rows of unequal lengths: {sizes}")
        n = sizes.pop()
        for name, given in arrays.items():
            target = self.targets.get(name)
            strings = isinstance(given, list) or np.asarray(given).dtype.kind in "OUS"
            values = np.asarray(given, dtype=object if strings else None)
            if target is None:
                target = self.targets[name] = self.out.create(
                    name,
                    (0, *values.shape[1:]),
                    str if strings else values.dtype,
                    chunk_rows=self.chunk_rows,
                    resizable=True,
                )
            if not n:
                continue
            target.resize((self.rows + n, *values.shape[1:]))
            zarr_strings = strings and self.out.format == "zarr"
            target[self.rows : self.rows + n] = values.astype(str) if zarr_strings else values
        self.rows += n


def variant_windows(
    vcf: str | os.PathLike,
    reference: str | os.PathLike,
    output: str | os.PathLike,
    options: WindowOptions | None = None,
    *,
    device: str | None = None,
    client: Any = None,
    progress: bool = False,
    command: str | None = None,
    **parameters: Any,
) -> dict[str, Any]:
    """Write the reference and alternate windows of every ALT of a VCF (module docstring).

    Args:
        vcf: ``.vcf``, ``.vcf.gz`` (gzip or bgzip) or ``.bcf``; samples, if any, are ignored.
        reference: the reference FASTA (plain or bgzip; indexed when the index is missing).
        output: ``.h5``/``.hdf5`` or ``.zarr`` (or any name with ``output_format``).
        options: a :class:`WindowOptions`; ``parameters`` override its fields and those of its
            :class:`Encoding` (``length=2048``, ``encoding="tokens"``, ``scheme="hyenadna"``).
        device: ``"auto" | "gpu" | "cpu"`` for the encoding.
        client: a :class:`distributed.Client` to run the tasks on; None: in this process.
        progress: show a progress bar of the records read.
        command: the command line stored in the provenance (default: this process's).
        **parameters: any field of :class:`WindowOptions` or :class:`Encoding`.

    Returns:
        A summary: ``records`` read, ``windows`` written, ``no_alt`` (records whose ALT is
        ``.``), ``symbolic_alt`` (ALTs skipped), ``ref_mismatch`` and ``unknown_contig``
        (records skipped), ``seconds``.

    Raises:
        InputError: a bad parameter or input; nothing is written.

    Arrays (:data:`VARIANT_WINDOW_ARRAYS`): per row, ``{ref,alt}_seqs`` ``(windows, length, 4)``
    one-hot (or ``{ref,alt}_input_ids``/``_attention_mask`` ``(windows, tokens)`` int32/uint8),
    and the row's variant fields. Memory per task: its chunk of records (and their genotypes,
    when the VCF has samples) and about :data:`TASK_BYTES` of rows; this process holds one
    group of tasks' records (twice the workers) and one task's rows at a time.
    """
    encoding_fields, parameters = split_parameters(WindowOptions, parameters)
    options = with_options(options, WindowOptions, parameters, caller="variant_windows")
    if encoding_fields:
        base = options.encoding if isinstance(options.encoding, Encoding) else Encoding()
        options = dataclasses.replace(
            options, encoding=dataclasses.replace(base, **encoding_fields)
        )
    encoder = options.check()
    output_format = format_from_path(output, options.output_format)
    device_name = resolve_device(device)
    started = time.perf_counter()
    check_output_folder(output)
    with Reference(reference):  # the reference is checked (and indexed) before any task
        pass
    reader = VcfReader(vcf, region=options.region)
    task_records = options.task_records or max(1, TASK_BYTES // (2 * row_bytes(encoder)))
    reader.chunk_variants = task_records
    totals = dict.fromkeys(
        ("records", "windows", "no_alt", "symbolic_alt", "ref_mismatch", "unknown_contig"), 0
    )
    first_mismatch = None
    record = provenance(
        "gpu-genomics variant-windows",
        parameters={
            **dataclasses.asdict(options),
            "encoder": encoder,
            "output_format": output_format,
            "compression": resolve_compression(output_format, options.compression),
        },
        inputs={"vcf": vcf, "reference": reference},
        device=device_name,
        command=command,
    )
    from tqdm import tqdm

    group_size = 2 * worker_count(client) if client is not None else 1
    with (
        ArrayWriter(
            output,
            options.output_format,
            options.compression,
            chunk_rows=options.chunk_windows,
            spec=VARIANT_WINDOW_ARRAYS,
        ) as out,
        tqdm(unit="record", desc="variant-windows", disable=not progress or None) as bar,
    ):
        appender = RowAppender(out, options.chunk_windows)
        tasks = (
            WindowTask(
                str(vcf),
                str(reference),
                Records.of(chunk, reader.contigs),
                options,
                encoder,
                device_name,
            )
            for chunk in reader
        )
        for group in in_groups(tasks, group_size):
            arguments = [(task,) for task in group]
            for result in map_in_order(client, window_task, arguments, name="variant-windows"):
                appender.append(result.arrays)
                for key, value in result.counts.items():
                    totals[key] += value
                first_mismatch = first_mismatch or result.first_mismatch
                bar.update(result.counts["records"])
        if appender.rows == 0 and not appender.targets:  # no record at all: empty arrays
            empty = window_task(
                WindowTask(
                    str(vcf), str(reference), _no_records(reader.contigs), options, encoder, "cpu"
                )
            )
            appender.append(empty.arrays)
        out.write("contig_id", np.array(reader.contigs, dtype=object))
        if totals["ref_mismatch"]:
            log.warning(
                "skipped %d records whose REF does not match the reference; the first: %s",
                totals["ref_mismatch"],
                first_mismatch,
            )
        for key, what in (
            ("symbolic_alt", "symbolic ALT alleles (<...>, *, breakends)"),
            ("unknown_contig", "records on contigs not in the reference"),
        ):
            if totals[key]:
                log.warning("skipped %d %s", totals[key], what)
        summary = {**totals, "seconds": round(time.perf_counter() - started, 3)}
        out.attrs(
            {
                **record,
                "summary": summary,
                "anchor": "left: ALT replaces REF at window index POS - 1 - window_start; "
                "the alternate window is the haplotype's bases at the same coordinates",
                "strand": options.strand,
                "length": options.length,
            }
        )
    log.info("wrote %s: %d windows of %d records", output, totals["windows"], totals["records"])
    return summary


def _no_records(contigs: list[str]) -> Records:
    return Records(
        contig=np.zeros(0, np.int32),
        position=np.zeros(0, np.int32),
        variant_id=[],
        alleles=[],
        quality=np.zeros(0, np.float32),
        filter_pass=np.zeros(0, bool),
        variant_index=np.zeros(0, np.int64),
        line=np.zeros(0, np.int64),
        contig_names=list(contigs),
    )


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as printed by the CLI."""
    skipped = ", ".join(
        f"{summary[k]} {label}"
        for k, label in (
            ("no_alt", "without ALT"),
            ("symbolic_alt", "symbolic ALTs"),
            ("ref_mismatch", "REF mismatches"),
            ("unknown_contig", "on unknown contigs"),
        )
        if summary.get(k)
    )
    line = f"windows: {summary['windows']} from {summary['records']} records"
    return line + (f" (skipped: {skipped})" if skipped else "")
