"""The analysis side (no torch, nothing of engine/models/data): records in, summary out.

Modules: intervals (small statistics), summary (per-cell statistics, SWFT curves, provenance),
claims (C1-C5 and their verdicts), projection (cost of a whole grid), aggregate (the one path
from records to summary.json), compare (two results side by side).
"""
