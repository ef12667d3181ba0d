"""Reading and writing files: what every job shares.

What lives here: :mod:`.files` (reading input files whole, gzip/bgzip sniffing, name stems),
:mod:`.store` (:class:`ArrayWriter`, the atomic HDF5/Zarr writer, and :func:`atomic_output` for
other files: a temporary path renamed on success), :mod:`.provenance` (the one provenance record
every output carries) and :mod:`.spec` (declared output arrays, :class:`OutputSpec`).
"""

from __future__ import annotations

from .provenance import provenance
from .spec import ArraySpec, OutputSpec
from .store import ArrayWriter, atomic_output

__all__ = ["ArraySpec", "ArrayWriter", "OutputSpec", "atomic_output", "provenance"]
