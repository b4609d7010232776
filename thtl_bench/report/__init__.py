"""The reporting side (no torch, nothing of engine/models/data): REPORT.md from the summary.

Modules: gather (the inputs besides the summary), sections (markdown per section), figures (the
matplotlib figures), plots (figure inputs from the summary, PNGs and plot-data CSVs), companions
(metrics.json, headline.json), style, markdown (render / write).
"""

from thtl_bench.report.markdown import render, write

__all__ = ["render", "write"]
