"""``gpu_genomics.singlecell``: :mod:`gpu_genomics.expression.singlecell` under its old name."""

from __future__ import annotations

from .expression.singlecell import *  # noqa: F403
from .expression.singlecell import __all__  # noqa: F401
