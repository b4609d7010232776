"""The reporting side (no torch, nothing of engine/models/data): REPORT.md from the summary.

Modules: gather (the inputs besides the summary), sections (markdown per section), figures,
companions (metrics.json, plot data), markdown (render / write).
"""

from thtl_bench.report.markdown import render, write

__all__ = ["render", "write"]
