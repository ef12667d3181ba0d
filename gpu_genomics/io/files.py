"""Reading input files whole, plain or gzip/bgzip compressed."""

from __future__ import annotations

import gzip
import io
import os
import zlib
from collections.abc import Sequence

from ..errors import InputError

GZIP_MAGIC = b"\x1f\x8b"
#: The empty block that ends every BGZF file (SAM/BAM specification, section 4.1.2).
BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")


def read_bytes(path: str | os.PathLike) -> bytes:
    """The file's content, decompressed when it starts with the gzip magic (gzip or bgzip).

    Raises:
        InputError: the file is missing or unreadable, or its gzip data is corrupt.
    """
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc}); check the path") from None
    if raw[:2] == GZIP_MAGIC:
        if _is_bgzf_head(raw[:18]) and not raw.endswith(BGZF_EOF):
            raise InputError(
                f"{path}: the bgzip file has no end-of-file block, so it is cut short; "
                "re-download or recompress it"
            )
        raw = _inflate(raw, path)
    return raw


def _inflate(raw: bytes, path: str | os.PathLike) -> bytes:
    """Every gzip member of ``raw``, decompressed.

    With ISA-L's inflate (the ``isal`` package, 2-3x quicker than zlib) when it is installed;
    else, or when it fails, with the standard library, whose error is the one reported.

    Raises:
        InputError: the gzip data is corrupt or truncated.
    """
    try:
        from isal import igzip
    except ImportError:
        pass
    else:
        try:
            return igzip.decompress(raw)
        except Exception:  # the standard library, below, names the problem
            pass
    try:
        # GzipFile streams member after member: gzip.decompress copies the rest of the
        # input for every member, quadratic in a bgzip file's thousands of 64 KiB blocks
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
            return stream.read()
    except (OSError, EOFError, ValueError, zlib.error) as exc:
        raise InputError(
            f"{path}: gzip data is corrupt or truncated ({exc}); re-download or recompress"
        ) from None


def is_bgzf(path: str | os.PathLike) -> bool:
    """True when the file starts with a BGZF block (gzip with the 'BC' extra subfield)."""
    with open(path, "rb") as handle:
        return _is_bgzf_head(handle.read(18))


def _is_bgzf_head(head: bytes) -> bool:
    return len(head) >= 14 and head[:4] == b"\x1f\x8b\x08\x04" and head[12:14] == b"BC"


def is_gzip(path: str | os.PathLike) -> bool:
    """True when the file starts with the gzip magic (gzip or bgzip)."""
    with open(path, "rb") as handle:
        return handle.read(2) == GZIP_MAGIC


def stem(name: str, suffixes: Sequence[str], *, ignore_case: bool = False) -> str:
    """Return ``name`` without the ``suffixes`` it ends with.

    Each suffix is tried once, in the given order (``stem("a.bed.gz", (".gz", ".bed"))`` is
    ``"a"``); with ``ignore_case`` they match in any case. ``name`` itself comes back if nothing
    is left.
    """
    result = name
    for suffix in suffixes:
        ends = result.lower().endswith(suffix.lower()) if ignore_case else result.endswith(suffix)
        if ends:
            result = result[: -len(suffix)]
    return result or name
