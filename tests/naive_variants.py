"""Plain-Python definitions of the variant windows and personal haplotypes.

Written from ``docs/variants.md#windows`` and ``#haplotypes``, one base at a time on Python
strings, without calling any code of ``gpu_genomics``. Coordinates are 0-based here;
``pos`` is the VCF's 1-based POS.
"""

from __future__ import annotations

COMPLEMENT = str.maketrans("ACGTNacgtnRYSWKMBDHVryswkmbdhv", "TGCANtgcanYRSWMKVHDByrswmkvhdb")


def reverse_complement(seq: str) -> str:
    return seq.translate(COMPLEMENT)[::-1]


def base(seq: str, i: int) -> str:
    """Base ``i`` of ``seq``; N outside it."""
    return seq[i] if 0 <= i < len(seq) else "N"


def window_start(p: int, contig_length: int, length: int, edge: str) -> int:
    start = p - length // 2
    if edge == "shift":
        start = min(max(start, 0), max(contig_length - length, 0))
    return start


def variant_windows(
    genome: str,
    pos: int,
    ref: str,
    alt: str,
    length: int,
    *,
    edge: str = "shift",
    strand: str = "+",
) -> tuple[str, str, int]:
    """``(reference window, alternate window, window start)`` of one ALT."""
    p = pos - 1
    assert genome[p : p + len(ref)].upper() == ref.upper()
    start = window_start(p, len(genome), length, edge)
    haplotype = genome[:p] + alt + genome[p + len(ref) :]
    ref_window = "".join(base(genome, i) for i in range(start, start + length))
    alt_window = "".join(base(haplotype, i) for i in range(start, start + length))
    if strand == "-":
        ref_window, alt_window = reverse_complement(ref_window), reverse_complement(alt_window)
    return ref_window, alt_window, start


def haplotype(
    genome: str,
    records: list[tuple[int, str, list[str]]],
    alleles: list[int],
    start: int,
    length: int,
) -> tuple[str, int]:
    """One haplotype's window of ``length`` bases from reference position ``start``.

    ``records``: ``(pos, REF, ALTs)`` in VCF order, those whose REF ends after ``start``;
    ``alleles``: the haplotype's allele at each (0 or less: REF). A record is applied when its
    allele is an ALT of letters and its REF starts at or after the end of the REF last applied.
    The haplotype is built as (reference position, base) pairs, ALT base ``t`` at position
    ``min(p + t, p + len(REF) - 1)``; the window is the bases at positions ``>= start`` (N
    before position 0 and past the end). Returns it and the number of records applied while
    the window was not yet full.
    """
    pieces: list[tuple[int, str]] = []
    cursor = 0
    end_last = None
    counted = 0
    lead = max(0, -start)  # N bases before the contig (edge="pad")
    for (pos, ref, alts), allele in zip(records, alleles, strict=True):
        p = pos - 1
        if allele <= 0 or not alts[allele - 1].isalpha():
            continue
        if end_last is not None and p < end_last:
            continue
        pieces += [(i, genome[i]) for i in range(cursor, p)]
        if lead + sum(1 for q, _ in pieces if q >= start) < length:
            counted += 1
        m = len(ref)
        pieces += [(min(p + t, p + m - 1), b) for t, b in enumerate(alts[allele - 1])]
        cursor = max(cursor, p + m)
        end_last = p + m
    pieces += [(i, genome[i]) for i in range(cursor, len(genome))]
    bases = ["N"] * lead + [b for q, b in pieces if q >= start]
    return "".join(bases[:length]).ljust(length, "N"), counted
