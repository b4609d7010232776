"""The one aggregation path: records (+ the running side's artefacts) -> the summary dict behind
summary.json, REPORT.md and compare.

The summary depends on the records, the `stats:` parameters (the analysis plan, hashed) and the
artefacts only (report/flops.json for the cost projection, report/transfer.json for the
transferability scores, report/references.json for the reference points; no dates, no paths),
so it is deterministic.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from thtl_bench.analysis import calibration, claims, projection, rules, studies, summary
from thtl_bench.errors import UserError
from thtl_bench.io import atomic_write_json

SUMMARY_SCHEMA = "thtl-bench/summary/v2"
ARTEFACTS = {"flops": "flops.json", "transfer": "transfer.json", "references": "references.json",
             "calibration": "calibration.json"}


def aggregate(records: Sequence[dict], cfg: dict, order: dict | None = None, flops: dict | None = None,
              transfer: dict | None = None, references: dict | None = None, calibration: dict | None = None) -> dict:
    """The full summary of `records`; `cfg` supplies the `stats:` section (the analysis plan),
    the artefacts the projection (`flops`), the transferability table (`transfer`), the
    reference points (`references`) and the rule's calibration at this design (`calibration`,
    used only when it was computed from these very records: its key)."""
    if not records:
        raise UserError("no records to aggregate: run `thtl-bench grid` first or point at a records folder")
    summ = summary.summarise(records, cfg, order)
    order = {"models": summ["models"], "arms": summ["arms"], "domains": summ["domains"]}
    plan = claims.plan(cfg["stats"])
    return {
        "schema": SUMMARY_SCHEMA,
        "stats_params": {k: cfg["stats"][k] for k in sorted(cfg["stats"])},
        "plan": plan, "plan_hash": rules.plan_hash(plan),
        "provenance": summary.provenance(records),
        **summ,
        "claims": claims.evaluate(records, cfg, order),
        "swft": summary.swft_curves(records, summ["models"]),
        "sizes": studies.sizes(records, cfg["stats"]),
        "calibration": _calibration(records, cfg, calibration),
        "transfer": studies.transfer(records, transfer, cfg["stats"]),
        "references": references,
        "projection": projection.projection(records, flops, order),
        "config": summary.config_values(records),
        "train_by_arm": summary.train_by_arm(records, summ["arms"]),
    }


def _calibration(records: Sequence[dict], cfg: dict, cal: dict | None) -> dict | None:
    """The calibration artefact with its verdict when it belongs to these records and plan (its
    key), else None: a calibration of other records says nothing about this run."""
    if not cal:
        return None
    current = calibration.key(calibration.inputs(records, cfg), cfg["stats"])
    if cal.get("key") != current:
        return {"stale": True, "key": cal.get("key"), "expected_key": current}
    return {**cal, "verdict": calibration.verdict(cal)}


def load_artefacts(report_dir: str | Path) -> dict:
    """The running side's artefacts beside the report, by name (None where not written)."""
    return {k: load_flops(Path(report_dir) / f) for k, f in ARTEFACTS.items()}


def write_summary(summ: dict, path: str | Path) -> Path:
    return atomic_write_json(path, summ)


def load_summary(path: str | Path) -> dict:
    path = Path(path)
    try:
        s = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: cannot read summary JSON ({exc}); run `thtl-bench aggregate`") from exc
    if not isinstance(s, dict) or s.get("schema") != SUMMARY_SCHEMA:
        raise UserError(f"{path}: not a thtl-bench summary ({SUMMARY_SCHEMA}); run `thtl-bench aggregate`")
    return s


def load_flops(path: str | Path) -> dict | None:
    """A JSON artefact (FLOP counts, scores, references), or None when it was not written."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc}); re-run the command that writes it "
                        "(thtl-bench flops / transfer / references)") from exc


def cell(summ: dict, model: str, arm: str) -> dict | None:
    for c in summ["cells"]:
        if c["model"] == model and c["arm"] == arm:
            return c
    return None
