"""Declared outputs: one :class:`ArraySpec` per array a job writes, in an :class:`OutputSpec`.

In the style of sgkit's variable registry and bio2zarr's array specs, every job declares each
array it writes once: its name, dtype, dimension names and meaning (and, for arrays written only
with some options, when). The declaration is used three ways:

* :class:`~gpu_genomics.io.store.ArrayWriter` takes the spec and refuses an undeclared array,
  takes the dimension names from it, and casts values to the declared dtype;
* ``docs/outputs.md`` and the README's array tables are generated from it
  (:func:`outputs_markdown`; a test checks they agree);
* tests assert that what a job writes is declared.

Names may hold one placeholder in braces, such as ``{split}_seqs``; the spec lists the values
it takes (``placeholders={"split": ("training", "validation", "test")}``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

#: dtype of variable-length string arrays, of HDF5 soft links, and of AnnData ``uns`` entries
#: (a mapping of values) in a spec.
STRING = "str"
LINK = "link"
MAPPING = "mapping"


@dataclass(frozen=True)
class ArraySpec:
    """One output array.

    Attributes:
        name: the array's name (may hold a ``{placeholder}``).
        dtype: a NumPy dtype name, :data:`STRING`, :data:`LINK`, or alternatives joined by
            ``|`` when an option chooses (``"uint8|float16|float32"``).
        dims: the dimension names, one per axis (Zarr ``dimension_names``, HDF5
            ``_ARRAY_DIMENSIONS``).
        description: what it holds, with units.
        when: the options under which it is written (empty: always).
    """

    name: str
    dtype: str
    dims: tuple[str, ...]
    description: str
    when: str = ""

    @property
    def dtypes(self) -> tuple[str, ...]:
        """The allowed dtypes."""
        return tuple(self.dtype.split("|"))

    def cast(self, values: np.ndarray) -> np.ndarray:
        """``values`` in the declared dtype (same-kind casts only).

        Raises:
            TypeError: the declared dtype is one of several and ``values`` has none of them,
                or the cast would change the kind of the values (a bug in the job).
        """
        if values.size == 0 and len(self.dtypes) == 1:
            return values.astype(self.dtype)
        if len(self.dtypes) > 1:
            if values.dtype.name not in self.dtypes:
                raise TypeError(f"{self.name}: dtype {values.dtype} is not one of {self.dtype}")
            return values
        return values.astype(self.dtype, casting="same_kind", copy=False)


@dataclass(frozen=True)
class OutputSpec:
    """The arrays of one output format.

    Attributes:
        title: what the output is (a heading in the docs).
        arrays: the declared arrays, in the order they are documented.
        placeholders: placeholder name -> the values it takes in array names.
    """

    title: str
    arrays: tuple[ArraySpec, ...]
    placeholders: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def __iter__(self) -> Iterator[ArraySpec]:
        return iter(self.arrays)

    def __post_init__(self) -> None:
        names = [a.name for a in self.arrays]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"{self.title}: arrays declared twice: {repeated}")

    def _pattern(self, template: str) -> re.Pattern[str]:
        pattern = re.escape(template)
        for key, values in self.placeholders.items():
            choices = "|".join(re.escape(v) for v in values)
            pattern = pattern.replace(re.escape(f"{{{key}}}"), f"(?P<{key}>{choices})")
        return re.compile(pattern)

    def lookup(self, name: str) -> ArraySpec:
        """The declaration of the array ``name``, placeholders filled in (in its dims too).

        Raises:
            KeyError: ``name`` is not declared (a bug in the job that writes it).
        """
        for array in self.arrays:
            match = self._pattern(array.name).fullmatch(name)
            if match:
                dims = tuple(d.format(**match.groupdict()) for d in array.dims)
                return dataclasses.replace(array, name=name, dims=dims)
        raise KeyError(f"{name!r} is not declared in the output spec {self.title!r}")

    def names(self) -> list[str]:
        """Every array name, placeholders expanded."""
        expanded: list[str] = []
        for array in self.arrays:
            names = [array.name]
            for key, values in self.placeholders.items():
                names = [n.replace(f"{{{key}}}", v) for n in names for v in values]
            expanded.extend(dict.fromkeys(names))
        return expanded

    def undeclared(self, written: Sequence[str]) -> list[str]:
        """The names in ``written`` that no declaration matches."""
        undeclared = []
        for name in written:
            try:
                self.lookup(name)
            except KeyError:
                undeclared.append(name)
        return undeclared

    def markdown(self) -> str:
        """The declaration as a Markdown table (array, dtype, dimensions, when, meaning)."""
        rows = [
            "| array | dtype | dimensions | written | meaning |",
            "| --- | --- | --- | --- | --- |",
        ]
        for a in self.arrays:
            dtype = a.dtype.replace("|", " \\| ")
            dims = "(" + ", ".join(a.dims) + ")" if a.dims else ""
            rows.append(
                f"| `{a.name}` | {dtype} | {dims} | {a.when or 'always'} | {a.description} |"
            )
        return "\n".join(rows)


def outputs_markdown(specs: Sequence[OutputSpec]) -> str:
    """``docs/outputs.md``: one section and table per spec."""
    parts = [
        "# Output arrays",
        "",
        "Generated from the output specs declared beside each job (`gpu_genomics.io.spec`): "
        "`make docs` rewrites this file and a test checks that it is current. The semantics "
        "are in the other pages of `docs/`.",
    ]
    for spec in specs:
        parts += ["", f"## {spec.title}", ""]
        if spec.placeholders:
            values = "; ".join(f"`{{{k}}}`: {', '.join(v)}" for k, v in spec.placeholders.items())
            parts += [f"Placeholders: {values}.", ""]
        parts.append(spec.markdown())
    return "\n".join(parts) + "\n"


def all_specs() -> list[OutputSpec]:
    """Every output spec of the package, in the order of ``docs/outputs.md``."""
    from ..expression.bulk_job import BULK_ARRAYS
    from ..expression.singlecell.job import SCRNA_OUTPUT
    from ..expression.singlecell.rank import RANK_ARRAYS
    from ..intervals.layouts import BASSET_ARRAYS, INTERVAL_ARRAYS
    from ..sequence.encode import ENCODE_ARRAYS
    from ..variants.convert import VCF_ARRAYS
    from ..variants.haplotypes import HAPLOTYPE_ARRAYS
    from ..variants.windows import VARIANT_WINDOW_ARRAYS

    return [
        INTERVAL_ARRAYS,
        BASSET_ARRAYS,
        ENCODE_ARRAYS,
        VCF_ARRAYS,
        VARIANT_WINDOW_ARRAYS,
        HAPLOTYPE_ARRAYS,
        BULK_ARRAYS,
        SCRNA_OUTPUT,
        RANK_ARRAYS,
    ]
