"""The one aggregation path: records (+ the running side's artefacts) -> the summary dict behind
summary.json, REPORT.md and compare.

The summary depends on the records, the `stats:` parameters (the analysis plan, hashed) and the
artefacts only (report/flops.json for the cost projection, report/transfer.json for the
transferability scores, report/references.json for the reference points; no dates, no paths),
so it is deterministic.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from thtl_bench import records as records_mod
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


def off_grid(records: Sequence[dict], cfg: dict) -> list[dict]:
    """Records of replicates outside the profile's design: (training seed, split seed) not a pair
    of grid.replicates (e.g. `thtl-bench run --seed 1 --off-grid` gives s1/k0 beside s1/k1). A
    config without grid.replicates (a summary-only one) has no design to hold records to."""
    design = (cfg.get("grid") or {}).get("replicates")
    if design is None:
        return []
    pairs = {(int(s), int(k)) for s, k in design}
    return [r for r in records if (int(r["case"]["seed"]), int(r["case"]["split"])) not in pairs]


def _warn(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def load_records(dirs: Sequence[str | os.PathLike], cfg: dict, *, include_off_grid: bool = False,
                 warn: Callable[[str], None] = _warn) -> list[dict]:
    """The records under `dirs` for the aggregate: off-grid replicates (`off_grid`) are named in a
    warning and left out, so an extra run never counts as a replicate of the design, unless
    `include_off_grid`."""
    for d in dirs:
        if not Path(d).exists():
            raise UserError(f"records folder {d} not found: run `thtl-bench grid` first")
    recs = records_mod.load_all(dirs)
    off = off_grid(recs, cfg)
    if off:
        pairs = ", ".join(f"{s}/{k}" for s, k in cfg["grid"]["replicates"])  # present: off_grid found some
        names = ", ".join(r["slug"] for r in off[:5]) + (f" and {len(off) - 5} more" if len(off) > 5 else "")
        warn(f"warning: {len(off)} record(s) of replicates outside grid.replicates ({pairs}): {names}; "
             + ("counted, as --include-off-grid asks" if include_off_grid else
                "left out (--include-off-grid counts them)"))
    if include_off_grid:
        return recs
    ids = {id(r) for r in off}
    return [r for r in recs if id(r) not in ids]


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
