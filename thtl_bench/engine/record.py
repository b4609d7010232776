"""Writing a case's record (thtl_bench.records is the schema; this builds its content).

The record (written last, atomically) is the case's done marker. A not_run record (e.g. no
ImageNet weights offline) is rewritten only when something about it changed, so retries are
idempotent for git and for DVC's view of the records as outputs.
"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np

from thtl_bench import metrics, records
from thtl_bench.engine.identity import record_path
from thtl_bench.records import Case


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def existing(cfg: dict, case: Case) -> dict | None:
    """The record on disk for this case, or None (absent, unreadable or an old schema: the case
    then runs again and overwrites it)."""
    path = record_path(cfg, case)
    if not path.is_file():
        return None
    try:
        return records.read(path)
    except records.RecordError:
        return None


def base(cfg: dict, case: Case, conf: dict, cid: str) -> dict:
    return {"schema": records.SCHEMA, "case_id": cid, "slug": case.slug,
            "case": case.as_dict() | {"profile": cfg.get("profile")}, "config": conf}


def not_run(cfg: dict, rec_base: dict, reason: str) -> dict:
    old = existing(cfg, Case.of(rec_base))
    if old is not None and old["status"] == "not_run" and old["case_id"] == rec_base["case_id"] \
            and old.get("reason") == reason and old.get("parent") == rec_base.get("parent"):
        return old
    rec = {**rec_base, "status": "not_run", "reason": reason, "created": now()}
    records.write(cfg["grid"]["records_dir"], rec)
    return rec


def _metrics(labels: dict, result: dict, split: str, classes: list[str], positive: str | None) -> dict:
    loss, probs = result["evals"][split]
    return metrics.compute(labels[split], probs, classes, positive, loss)


def ok(rec_base: dict, *, dom, classes: list[str], positive: str | None, labels: dict[str, np.ndarray],
       done: list[dict], selected: int, weights: dict, total_params: int, timing: dict, wall_s: float,
       env: dict, data_kind: str, image_size: int, swft: bool) -> dict:
    """The record of a finished case from its stage results (`done`, `selected` chosen on
    validation). Per-sample test predictions are kept so any metric can be recomputed."""
    best = done[selected]
    rec = {
        **rec_base,
        "status": "ok",
        "data": {"kind": data_kind, "domain": dom.domain, "classes": classes, "positive": positive,
                 "fingerprint": dom.fingerprint, "n": {s: int(len(dom.index(s))) for s in labels},
                 "patients": {s: len({dom.groups[i] for i in dom.index(s)}) for s in labels},
                 "image_size": int(image_size), "generator": dom.generator},
        "weights": weights,
        "trainable": {"groups": best["groups"], "stages": best["stages"], "params": best["trainable_params"],
                      "total_params": int(total_params),
                      "frozen_bn_eval": all(r["frozen_bn_unchanged"] for r in done)},
        "metrics": {s: _metrics(labels, best, s, classes, positive) for s in labels},
        "predictions": {"test": {"ids": [str(dom.ids[i]) for i in dom.index("test")],
                                 "groups": [str(dom.groups[i]) for i in dom.index("test")],
                                 "labels": labels["test"].tolist(),
                                 "probs": best["evals"]["test"][1].tolist()}},
        "history": [h for r in done for h in r["history"]],
        # The facts the fit gate judges, of the selected stage (loop.training_fit; the gate itself is
        # the analysis plan's: thtl_bench.analysis.fit).
        "fit": best["fit"],
        "stages": [{"name": r["name"], "epochs": r["epochs"], "best_epoch": r["best_epoch"],
                    "start_val_loss": r["history"][0]["val_loss"] if r["history"] and r["history"][0]["epoch"] == 0
                    else None, "best_val_loss": r["best_val_loss"], "fit": r["fit"]} for r in done],
        "timing": {
            "wall_s": wall_s,
            "train_images_per_s": timing["train_images"] / max(timing["train_s"] + timing["cache_s"], 1e-9),
            "epoch_s": sum(timing["epoch_s"]) / max(len(timing["epoch_s"]), 1),
            "epochs": len(timing["epoch_s"]),
            "inference_images_per_s": 1.0 / max(best["test_s_per_image"], 1e-12),
            "feature_cache": any(r["feature_cache"] for r in done),
            "feature_cache_s": timing["cache_s"],
        },
        "env": env,
        "created": now(),
    }
    if swft:
        rec["swft_steps"] = [
            {"step": i + 1, "groups": r["groups"], "epochs": r["epochs"], "best_epoch": r["best_epoch"],
             "best_val_loss": r["best_val_loss"], "feature_cache": r["feature_cache"], "augment": r["augment"],
             "start_digest": r["start_digest"], "best_digest": r["best_digest"], "selected": i == selected,
             **{s: _metrics(labels, r, s, classes, positive) for s in ("val", "test")}}
            for i, r in enumerate(done)]
    return rec
