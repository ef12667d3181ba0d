"""QC reports: one self-contained HTML page per job run, with embedded plots.

``--report REPORT.html`` on ``scrna``, ``vcf`` and ``bulk`` (``report=`` of their jobs), or
one function per job on figures of your own: :func:`scrna_report`, :func:`vcf_report`,
:func:`bulk_report`, :func:`intervals_report`. Each page has a title, the provenance line
(tool, version, device, time, command), a summary table holding the job's figures and
thresholds, and matplotlib plots (Agg, PNG) embedded as ``data:`` URIs: no script and no
external resource (``docs/reports.md``). Pages are written atomically.

matplotlib is needed only to write a page (``pip install 'gpu-genomics[report]'``); importing
this package does not import it.
"""

from __future__ import annotations

from .html import (
    MATPLOTLIB_MISSING,
    Page,
    check_report_path,
    require_matplotlib,
    written_reports,
)
from .jobs import bulk_report, intervals_report, scrna_report, vcf_report
from .plots import Histogram

__all__ = [
    "MATPLOTLIB_MISSING",
    "Histogram",
    "Page",
    "bulk_report",
    "check_report_path",
    "intervals_report",
    "require_matplotlib",
    "scrna_report",
    "vcf_report",
    "written_reports",
]
