"""The small machine-readable files beside REPORT.md: metrics.json (`dvc metrics diff`) and the
plot data of the figures (`dvc plots`)."""

from __future__ import annotations

import csv
import io
from typing import Any

VERDICT_CODE = {"reproduced": 1, "inconclusive": 0, "contradicted": -1}


def metrics_flat(summary: dict) -> dict[str, float]:
    """Flat, deterministic numbers for `dvc metrics diff` (verdicts coded +1/0/-1)."""
    out: dict[str, float] = {}

    def put(key: str, v: Any) -> None:
        if isinstance(v, bool):
            v = int(v)
        if isinstance(v, (int, float)):
            out[key] = round(float(v), 6)

    for c in summary["cells"]:
        base = f"grid.{c['model']}.{c['arm']}"
        put(f"{base}.n_seeds", c["n"])
        for name, st in c["metrics"].items():
            put(f"{base}.{name}.mean", st["mean"])
            put(f"{base}.{name}.std", st["std"])
        for key in ("train_images_per_s", "inference_images_per_s", "wall_s"):
            put(f"{base}.speed.{key}", c["timing"][key]["mean"])
    for r in summary["claims"]:
        base = f"claims.{r['id']}.{r['model']}"
        put(f"{base}.diff_pp", r["diff_pp"])
        put(f"{base}.rel_pct", r["rel_pct"])
        put(f"{base}.p_value", r["p_value"])
        put(f"{base}.verdict", VERDICT_CODE[r["verdict"]])
    put("projection.total_hours", summary["projection"]["total_hours"])
    return dict(sorted(out.items()))


def swft_csv(summary: dict) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["model", "step", "groups", "n", "val_acc", "val_std", "test_acc", "test_std", "selected"])
    for m in summary["swft"]:
        for s in m["steps"]:
            w.writerow([m["model"], s["step"], "+".join(s["groups"] or []), s["n"],
                        *(("" if s[k] is None else f"{s[k]:.6f}") for k in ("val_mean", "val_std",
                                                                            "test_mean", "test_std")),
                        s["selected"]])
    return buf.getvalue()
