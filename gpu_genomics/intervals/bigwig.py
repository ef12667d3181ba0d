"""Continuous targets from bigWig tracks: one target column per track, per window or per bin.

The track list (``TRACKS.txt``, :func:`read_track_list`): one bigWig per line, ``PATH`` or
``PATH<whitespace>NAME`` (a tab separates the two when there is one; without a tab, a line that
names an existing file is all path, else the last word is the name). The name defaults to the
file name without ``.bw``/``.bigWig``/``.bigwig``. Blank lines and ``#`` comments are skipped;
relative paths resolve against the list file's folder. Names must be unique.

Targets (:meth:`TrackSet.targets`, :func:`window_targets`), for windows
``[start, start + length)`` of one chromosome (0-based, half-open, in bases):

* without ``bin_size``: ``float32 (n, K)``, one statistic per window and track;
* with ``bin_size=B``: ``float32 (n, length // B, K)``, one statistic per bin of ``B`` bases
  (``length`` must be a multiple of ``B``); a ``minus`` row's bin axis is reversed (the profile
  of the reverse-complemented window). Scalar targets are strand-blind.

A base is *covered* when an interval of the track holds it with a value that is not NaN. A NaN
stored in the bigWig as a value is treated as not covered: exactly what pyBigWig's
``values()`` reports (NaN) for a base no interval holds. With ``missing="zero"`` (the default)
an uncovered base counts as a value of 0, as basenji's and CREsted's bigWig targets do
(CREsted's ``mean0``/``sum`` through pybigtools, ``missing=0.0`` for binned tracks):

* ``mean``: the sum of the values over the bin / the bin's length;
* ``max``: the largest value over the bin's bases, uncovered bases as 0 (so a partly covered
  bin of negative values gives 0);
* ``sum``: the sum of the values over the bin's bases (value × bases, in the track's units);
* ``coverage``: the fraction of the bin's bases covered, in ``[0, 1]``.

With ``missing="ignore"`` the statistics are over covered bases only, as pyBigWig's
``bw.stats(chrom, start, end, type=target, exact=True)``: ``mean`` is the sum / the covered
bases, ``max`` the largest covered value, ``sum`` the sum over covered bases; a bin with no
covered base gives NaN for these three. ``coverage`` is the same fraction in both modes, 0.0
for a bin with no covered base (pyBigWig's ``coverage`` gives None there). Where a track
stores NaN values, pyBigWig's ``stats`` differs from these definitions (its ``mean``/``sum``
turn NaN, its ``coverage`` counts those bases); ``values()`` reduced with NumPy's ``nan*``
functions agrees with them everywhere.

A chromosome a track does not have is uncovered throughout for that track (zeros, or NaN with
``missing="ignore"``; coverage 0): a track made for part of the genome is allowed.
:attr:`TrackSet.chrom_lengths` tells the caller which tracks lack a chromosome. A chromosome
whose length in the track differs from ``chrom_length`` (the reference's), or a window past the
track's end of the chromosome, is an error naming the track.

Reading: per chromosome, in bulk. The windows (sorted) are grouped into chunks, stretches of
the chromosome holding whole windows, windows less than :data:`CHUNK_GAP` bases apart sharing
one, each at most ``max(MAX_CHUNK_BASES, length)`` bases; each chunk of each track is read at
once with pyBigWig's ``values(..., numpy=True)`` and reduced by a numba kernel (statistics in
float64, stored as float32). Memory beyond the returned array: one ``float32`` buffer of a
chunk, at most ``4 × max(MAX_CHUNK_BASES, length)`` bytes (16 MiB by default), and the
windows' order (``8 n`` bytes).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numba
import numpy as np

from ..errors import InputError, check_choice, positive_int
from ..io.files import stem

#: the statistics a target can be (module docstring)
TARGET_MODES = ("mean", "max", "sum", "coverage")
#: how bases no interval covers count (module docstring)
MISSING_MODES = ("zero", "ignore")
#: file name endings dropped to name a track
BIGWIG_SUFFIXES = (".bw", ".bigWig", ".bigwig")
#: windows closer than this many bases are read in one chunk: decoding a short gap costs less
#: than another read
CHUNK_GAP = 16_384
#: the most bases read from a track at once (unless one window is longer): 16 MiB of float32
MAX_CHUNK_BASES = 1 << 22

# the two byte orders of the bigWig magic number 0x888FFC26
_BIGWIG_MAGIC = (b"\x26\xfc\x8f\x88", b"\x88\x8f\xfc\x26")
_BIGBED_MAGIC = (b"\xeb\xf2\x89\x87", b"\x87\x89\xf2\xeb")


@dataclass(frozen=True)
class Track:
    """One bigWig of the track list and the name of its target column."""

    path: Path
    name: str


def read_track_list(path: str | os.PathLike) -> list[Track]:
    """Parse a track list (module docstring); return its tracks in line order.

    Every file is checked to exist and to start with the bigWig magic number (pyBigWig is not
    needed for this).

    Raises:
        InputError: the list cannot be read or lists no bigWig; a line has more than two
            fields; a file is missing, a folder or not a bigWig; two tracks share a name.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the track list ({exc}); check the path") from None
    tracks: list[Track] = []
    line_of: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = _track_fields(line, path.parent)
        if len(fields) > 2:
            raise InputError(
                f"{path}: line {number}: expected 'PATH' or 'PATH<TAB>NAME', found "
                f"{len(fields)} fields: {line[:80]!r}"
            )
        bigwig = _resolve(fields[0], path.parent)
        _check_bigwig_file(bigwig, f"{path}: line {number}: bigWig file {bigwig}")
        name = fields[1] if len(fields) == 2 else stem(bigwig.name, BIGWIG_SUFFIXES)
        if name in line_of:
            raise InputError(
                f"{path}: line {number}: track name {name!r} is already the name of line "
                f"{line_of[name]}; give each track its own name (PATH<TAB>NAME)"
            )
        line_of[name] = number
        tracks.append(Track(bigwig, name))
    if not tracks:
        raise InputError(
            f"{path}: the track list names no bigWig files; list one per line (PATH or "
            "PATH<TAB>NAME)"
        )
    return tracks


def _track_fields(line: str, folder: Path) -> list[str]:
    """The fields of a line: split at tabs; without one, ``PATH`` or ``PATH NAME`` (docstring)."""
    if "\t" in line:
        return [field.strip() for field in line.split("\t") if field.strip()]
    if _resolve(line, folder).is_file():
        return [line]
    head, _, last = line.rpartition(" ")
    if head.strip() and _resolve(head.strip(), folder).is_file():
        return [head.strip(), last]
    return line.split()


def _resolve(name: str, folder: Path) -> Path:
    return Path(name) if Path(name).is_absolute() else folder / name


def _check_bigwig_file(path: Path, what: str) -> None:
    """Raise ``"<what> <problem>; <fix>"`` unless ``path`` is a file starting as a bigWig."""
    if not path.exists():
        raise InputError(f"{what} does not exist; check the path")
    if not path.is_file():
        raise InputError(f"{what} is a folder, not a bigWig file; name the file")
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise InputError(f"{what} cannot be read ({exc}); check its permissions") from None
    if magic in _BIGBED_MAGIC:
        raise InputError(f"{what} is a bigBed, not a bigWig; list bigWig signal tracks")
    if magic not in _BIGWIG_MAGIC:
        raise InputError(
            f"{what} is not a bigWig (no bigWig magic number); convert bedGraph or wig "
            "with bedGraphToBigWig/wigToBigWig"
        )


def _require_pybigwig() -> Any:
    try:
        import pyBigWig
    except ImportError as exc:
        raise InputError(
            f"bigWig targets need pyBigWig ({exc}); pip install 'gpu-genomics[bigwig]'"
        ) from None
    return pyBigWig


class TrackSet:
    """The bigWig tracks of a track list, opened once; targets per chromosome.

    Use as a context manager (or call :meth:`close`)::

        with TrackSet(read_track_list("tracks.txt")) as tracks:
            for chrom, starts in windows_by_chromosome:
                y = tracks.targets(chrom, starts, 2048, target="mean", bin_size=32)

    Attributes:
        tracks: the :class:`Track` of each column, in column order.
        names: the column names (``K``).
        chrom_lengths: per track, ``{chromosome: length in bases}`` from its header.
    """

    def __init__(self, tracks: Iterable[Track | str | os.PathLike]) -> None:
        self.tracks = [
            t if isinstance(t, Track) else Track(Path(t), stem(Path(t).name, BIGWIG_SUFFIXES))
            for t in tracks
        ]
        if not self.tracks:
            raise InputError("tracks lists no bigWig files; give at least one")
        self.names = [t.name for t in self.tracks]
        if len(set(self.names)) < len(self.names):
            duplicate = next(n for n in self.names if self.names.count(n) > 1)
            raise InputError(f"tracks: two tracks are named {duplicate!r}; name them apart")
        pybigwig = _require_pybigwig()
        self._numpy = bool(getattr(pybigwig, "numpy", 0))
        self._files: list[Any] = []
        try:
            for track in self.tracks:
                _check_bigwig_file(track.path, f"bigWig file {track.path} (track {track.name})")
                try:
                    handle = pybigwig.open(str(track.path))
                except RuntimeError as exc:
                    raise InputError(
                        f"{track.path}: cannot open the bigWig of track {track.name} ({exc}); "
                        "is the file complete? remake it with bedGraphToBigWig"
                    ) from None
                self._files.append(handle)
                if not handle.isBigWig():
                    raise InputError(
                        f"{track.path}: track {track.name} is not a bigWig; list bigWig files"
                    )
        except BaseException:
            self.close()
            raise
        self.chrom_lengths: list[dict[str, int]] = [
            {str(k): int(v) for k, v in (handle.chroms() or {}).items()} for handle in self._files
        ]

    def __enter__(self) -> TrackSet:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close every track (idempotent)."""
        for handle in self._files:
            handle.close()
        self._files = []

    def targets(
        self,
        chrom: str,
        starts: np.ndarray,
        length: int,
        *,
        target: str = "mean",
        bin_size: int | None = None,
        minus: np.ndarray | None = None,
        missing: str = "zero",
        chrom_length: int | None = None,
    ) -> np.ndarray:
        """The targets of windows ``[starts, starts + length)`` of ``chrom`` (module docstring).

        Args:
            chrom: the chromosome, named as in the tracks.
            starts: ``(n,)`` integer window starts (0-based, any order).
            length: the window length in bases.
            target: one of :data:`TARGET_MODES`.
            bin_size: bases per bin (a divisor of ``length``), or None for one value per window.
            minus: ``(n,)`` bool, True where the window is read on the minus strand (its bins
                come back reversed); None: all plus.
            missing: ``"zero"`` or ``"ignore"`` (how uncovered bases count).
            chrom_length: the chromosome's length in the reference, checked against each
                track's; None: windows are checked against the tracks' lengths only.

        Returns:
            ``float32 (n, K)`` without ``bin_size``, else ``float32 (n, length // bin_size, K)``.

        Raises:
            InputError: a bad parameter value; a window outside the chromosome; a track whose
                chromosome length differs from ``chrom_length`` or ends before a window.
        """
        if not self._files:
            raise InputError("the TrackSet is closed; open the tracks again")
        length = positive_int("length", length)
        check_choice("target", target, TARGET_MODES)
        check_choice("missing", missing, MISSING_MODES)
        if bin_size is None:
            step = length
        else:
            step = positive_int("bin_size", bin_size)
            if length % step:
                raise InputError(
                    f"bin_size={bin_size!r} does not divide the window length {length}; choose "
                    "a bin size that divides it"
                )
        starts = np.asarray(starts)
        if starts.ndim != 1 or (starts.size and starts.dtype.kind not in "iu"):
            raise InputError(f"starts must be a 1-D integer array, got shape {starts.shape}")
        starts = starts.astype(np.int64, copy=False)
        n = len(starts)
        flip = np.zeros(n, dtype=np.bool_) if minus is None else np.asarray(minus, dtype=np.bool_)
        if flip.shape != (n,):
            raise InputError(f"minus has shape {flip.shape}; it must be ({n},), one per window")
        n_bins = length // step
        out = np.empty((n, n_bins, len(self.tracks)), dtype=np.float32)
        if n:
            self._fill(chrom, starts, length, step, flip, target, missing, chrom_length, out)
        return out[:, 0, :] if bin_size is None else out

    def _fill(  # noqa: PLR0917 (private: called once, by targets)
        self,
        chrom: str,
        starts: np.ndarray,
        length: int,
        step: int,
        flip: np.ndarray,
        target: str,
        missing: str,
        chrom_length: int | None,
        out: np.ndarray,
    ) -> None:
        first, last = int(starts.min()), int(starts.max()) + length
        if first < 0 or (chrom_length is not None and last > chrom_length):
            raise InputError(
                f"windows {chrom}:{first}-{last} reach outside the chromosome"
                + (f" (0-{chrom_length})" if chrom_length is not None else "")
                + "; keep windows inside their chromosome"
            )
        order = np.argsort(starts, kind="stable")
        sorted_starts = starts[order]
        bounds, chunk_ends = _chunk_windows(
            sorted_starts, length, CHUNK_GAP, max(MAX_CHUNK_BASES, length)
        )
        mode = TARGET_MODES.index(target)
        ignore = missing == "ignore"
        for column, (track, handle, sizes) in enumerate(
            zip(self.tracks, self._files, self.chrom_lengths, strict=True)
        ):
            size = sizes.get(chrom)
            if size is None:  # the track has no data there: every base uncovered
                out[:, :, column] = np.nan if ignore and mode != 3 else 0.0
                continue
            if chrom_length is not None and size != chrom_length:
                raise InputError(
                    f"{track.path}: chromosome {chrom} is {size} bases long in track "
                    f"{track.name} but {chrom_length} in the reference; use a bigWig made on "
                    "the reference's assembly"
                )
            if last > size:
                raise InputError(
                    f"{track.path}: window {chrom}:{last - length}-{last} ends past the end of "
                    f"{chrom} ({size} bases) in track {track.name}; use a bigWig made on the "
                    "reference's assembly"
                )
            for k in range(len(chunk_ends)):
                a, b = int(bounds[k]), int(bounds[k + 1])
                lo, hi = int(sorted_starts[a]), int(chunk_ends[k])
                values = self._values(handle, track, chrom, lo, hi)
                _reduce_bins(
                    values, sorted_starts[a:b] - lo, order[a:b], flip, step, mode, ignore,
                    out, column,
                )  # fmt: skip

    def _values(self, handle: Any, track: Track, chrom: str, lo: int, hi: int) -> np.ndarray:
        """``float32 (hi - lo,)``: the track's values over ``chrom:lo-hi``, NaN where uncovered."""
        try:
            if self._numpy:
                values = handle.values(chrom, lo, hi, numpy=True)
            else:  # a pyBigWig built without NumPy
                values = handle.values(chrom, lo, hi)
        except RuntimeError as exc:
            raise InputError(
                f"{track.path}: cannot read {chrom}:{lo}-{hi} of track {track.name} ({exc}); "
                "is the file complete? remake it with bedGraphToBigWig"
            ) from None
        values = np.ascontiguousarray(values, dtype=np.float32)
        if values.shape == (hi - lo,):
            return values
        if values.size == 0:  # pyBigWig's answer for a bigWig that holds no interval at all
            return np.full(hi - lo, np.nan, dtype=np.float32)
        raise InputError(
            f"{track.path}: reading {chrom}:{lo}-{hi} of track {track.name} gave "
            f"{values.size} values, not {hi - lo}; is the file complete? remake it"
        )


def window_targets(
    tracks: Sequence[Track | str | os.PathLike] | TrackSet,
    chrom: str,
    starts: np.ndarray,
    length: int,
    *,
    target: str = "mean",
    bin_size: int | None = None,
    minus: np.ndarray | None = None,
    missing: str = "zero",
    chrom_length: int | None = None,
) -> np.ndarray:
    """:meth:`TrackSet.targets` of ``tracks`` (opened and closed here unless a TrackSet).

    Returns:
        ``float32 (n, K)`` without ``bin_size``, else ``float32 (n, length // bin_size, K)``.
    """
    options = {
        "target": target,
        "bin_size": bin_size,
        "minus": minus,
        "missing": missing,
        "chrom_length": chrom_length,
    }
    if isinstance(tracks, TrackSet):
        return tracks.targets(chrom, starts, length, **options)
    with TrackSet(tracks) as opened:
        return opened.targets(chrom, starts, length, **options)


@numba.njit(cache=True, nogil=True)
def _chunk_windows(
    starts: np.ndarray, length: int, max_gap: int, max_bases: int
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
    """Group sorted windows into chunks (module docstring).

    Returns ``(bounds, ends)``: chunk ``k`` holds windows ``bounds[k]:bounds[k + 1]`` and spans
    ``starts[bounds[k]]`` to ``ends[k]``.
    """
    n = len(starts)
    bounds = np.empty(n + 1, dtype=np.int64)
    ends = np.empty(n, dtype=np.int64)
    k = 0
    i = 0
    while i < n:
        low = starts[i]
        high = low + length
        j = i + 1
        while j < n and starts[j] <= high + max_gap and starts[j] + length - low <= max_bases:
            high = starts[j] + length
            j += 1
        bounds[k] = i
        ends[k] = high
        k += 1
        i = j
    bounds[k] = n
    return bounds[: k + 1], ends[:k]


@numba.njit(parallel=True, cache=True, nogil=True)
def _reduce_bins(  # noqa: PLR0917 (numba: positional arguments)
    values, offsets, rows, flip, step, mode, ignore, out, column
):  # pragma: no cover
    """``out[rows[w], bin, column]``: statistic ``mode`` of bins of ``step`` bases.

    Window ``w`` starts at ``values[offsets[w]]``; NaN values are uncovered bases; a ``flip``
    row's bins are stored in reverse. ``mode``: 0 mean, 1 max, 2 sum, 3 coverage.
    """
    n_bins = out.shape[1]
    for w in numba.prange(len(offsets)):
        row = rows[w]
        for b in range(n_bins):
            begin = offsets[w] + b * step
            total = 0.0
            top = -np.inf
            covered = 0
            for p in range(begin, begin + step):
                value = values[p]
                if not np.isnan(value):
                    total += value
                    covered += 1
                    top = max(top, value)
            if mode == 3:
                result = covered / step
            elif covered == 0:
                result = np.nan if ignore else 0.0
            elif mode == 0:
                result = total / covered if ignore else total / step
            elif mode == 1:
                result = top if ignore or covered == step else max(top, 0.0)
            else:
                result = total
            out[row, n_bins - 1 - b if flip[row] else b, column] = result
