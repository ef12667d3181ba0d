"""``gpu_genomics.sc``: short name of :mod:`gpu_genomics.expression.singlecell`."""

from __future__ import annotations

from .expression.singlecell import *  # noqa: F403
from .expression.singlecell import __all__  # noqa: F401
