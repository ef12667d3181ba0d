"""The reference genome: chromosome names and sizes, and whole chromosomes as byte arrays.

Accepted: bgzip FASTA (``.fai``/``.gzi`` used, or built next to it when missing and the
folder is writable) and plain FASTA (``.fai`` likewise), both read through pysam/htslib. A FASTA
compressed with plain gzip cannot be read at random: it is refused with the command that turns
it into bgzip. Each chromosome is read once, as ``uint8`` ASCII codes.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from .errors import InputError
from .files import GZIP_MAGIC, is_bgzf


class Reference:
    """An indexed FASTA reference.

    Attributes:
        path: the FASTA file.
        names: chromosome names in the index's (the file's) order.
        lengths: ``(n_chroms,) int64`` chromosome lengths in bases.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        import pysam

        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"{self.path}: reference FASTA not found; check -f/--fasta")
        with open(self.path, "rb") as handle:
            compressed = handle.read(2) == GZIP_MAGIC
        if compressed and not is_bgzf(self.path):
            raise InputError(
                f"{self.path}: compressed with plain gzip, which cannot be read by region; "
                f"recompress it with bgzip: gunzip -c {self.path} | bgzip > "
                f"{self.path.with_suffix('')}.bgz (bgzip comes with htslib/samtools)"
            )
        missing = [p for p in self._index_paths(compressed) if not p.exists()]
        if missing and not os.access(self.path.parent, os.W_OK):
            raise InputError(
                f"{self.path}: no index ({', '.join(p.name for p in missing)}) and the folder "
                "is not writable; run `samtools faidx` on a writable copy"
            )
        try:
            self._fasta = pysam.FastaFile(str(self.path))
        except (OSError, ValueError) as exc:
            raise InputError(
                f"{self.path}: cannot open or index the FASTA ({exc}); is it a FASTA file?"
            ) from None
        self.names: list[str] = list(self._fasta.references)
        self.lengths = np.asarray(self._fasta.lengths, dtype=np.int64)
        self._index_of = {name: i for i, name in enumerate(self.names)}
        if not self.names:
            raise InputError(f"{self.path}: the reference holds no sequences")

    def _index_paths(self, compressed: bool) -> list[Path]:
        paths = [Path(f"{self.path}.fai")]
        if compressed:
            paths.append(Path(f"{self.path}.gzi"))
        return paths

    def index_of(self, name: str) -> int | None:
        """Position of chromosome ``name`` in :attr:`names`, or None."""
        return self._index_of.get(name)

    def fetch(self, name: str) -> np.ndarray:
        """The whole chromosome ``name`` as ``(length,) uint8`` ASCII letters."""
        sequence = self._fasta.fetch(name)
        return np.frombuffer(sequence.encode("ascii"), dtype=np.uint8)

    def index_checksum(self) -> str:
        """``sha256:...`` of the ``.fai`` index (chromosome names, lengths and layout)."""
        digest = hashlib.sha256(Path(f"{self.path}.fai").read_bytes()).hexdigest()
        return f"sha256:{digest}"

    def close(self) -> None:
        self._fasta.close()
