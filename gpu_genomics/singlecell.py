"""``gpu_genomics.singlecell``: the single-cell subpackage, :mod:`gpu_genomics.expression.singlecell`."""

from __future__ import annotations

from .expression.singlecell import *  # noqa: F403
from .expression.singlecell import __all__  # noqa: F401
