"""The benchmark session's own figures (`nox -s benchmark`): wall time, peak memory, cases trained
and reused, and whether the run was whole and clean.

Two files under `report.dir`, which REPORT.md shows:
- `bench_session.json`: the figures of the last WHOLE and CLEAN session (every case selected, run
  to the end, none failed or errored). Only such a run may replace it: a failed, partial or
  interrupted run never overwrites measured figures.
- `bench_last_run.json`: what the last session was, whatever happened (status, counts, the first
  failures), so a failure is visible beside the figures it did not replace.
"""

from __future__ import annotations

import os
import resource
from datetime import datetime, timezone
from pathlib import Path

from thtl_bench.io import atomic_write_json

SESSION_FILE = "bench_session.json"
LAST_RUN_FILE = "bench_last_run.json"
# study cases first: the perf cases and the calibration read their records
ORDER = ("test_study.py", "test_perf.py", "test_calibration.py")


def eta_s(elapsed: float, done_cost: float, total_cost: float) -> float:
    """Seconds left, from the time so far per unit of work done (cases weighted by their arm's
    relative cost, arms.Arm.cost: an all-layer case weighs five head-only ones)."""
    return elapsed / done_cost * max(total_cost - done_cost, 0.0)


def partial_reason(items_by_file: dict[str, int], expected: dict[str, int | None], deselected: int,
                   stopped: bool) -> str | None:
    """Why a session is not the whole suite (then its wall time says nothing about the budget):
    a -k/-m selection, node ids or one file, or a run stopped early (-x, --maxfail, Ctrl-C)."""
    if deselected:
        return f"{deselected} case(s) deselected"
    if stopped:
        return "the run was stopped before the end"
    missing = [f for f in ORDER if f not in items_by_file]
    if missing:
        return f"{', '.join(missing)} not run"
    for name, n in items_by_file.items():
        want = expected.get(name)
        if want is not None and n < want:
            return f"{n} of {want} cases of {name} selected"
    return None


def peak_rss_gib() -> float:
    # ru_maxrss is KiB on Linux; children cover any worker processes.
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 2**20


def finish(cfg: dict, *, wall_s: float, cases: int, failed: int, errors: list[str], exitstatus: int,
           partial: str | None, device: str, counts: dict) -> tuple[Path | None, Path]:
    """Write bench_last_run.json always and bench_session.json only for a whole, clean run.
    Returns (session file written or None, last-run file)."""
    rdir = Path(cfg["report"]["dir"])
    budget = cfg.get("bench", {})
    status = "partial" if partial else ("failed" if failed or errors or exitstatus else "ok")
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    doc = {
        "profile": cfg["profile"], "wall_s": round(wall_s, 1), "peak_rss_gib": round(peak_rss_gib(), 3),
        "cases": cases, "failed": failed, "exitstatus": int(exitstatus), "device": device,
        "cpu_count": os.cpu_count(), "created": now,
        "targets": {"wall_s": budget.get("session_wall_s"), "peak_rss_gib": budget.get("session_peak_gib")},
        **{k: counts.get(k, 0) for k in ("study_cases_trained", "study_cases_reused", "study_cases_not_run")},
    }
    last = atomic_write_json(rdir / LAST_RUN_FILE, {**doc, "status": status, "partial": partial,
                                                    "errors": errors[:20]})
    if status != "ok":
        return None, last
    return atomic_write_json(rdir / SESSION_FILE, doc), last
