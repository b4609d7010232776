"""Shared builders for analysis tests: tiny hand-made records (schema v2 fields the analysis
reads), with metrics computed from their per-sample predictions so the two always agree."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from thtl_bench import metrics
from thtl_bench.records import SCHEMA, Case

CLASSES = ["benign", "malignant"]


def larynx_test_set(split: int, n: int = 40) -> tuple[list[str], list[str], np.ndarray]:
    """(ids, patients, labels) of the larynx test split of one split seed: alternating labels,
    patients of two images each; every split seed holds other images and patients."""
    labels = np.array([0, 1] * (n // 2))
    patients = [f"k{split}/p{i // 2:03d}" for i in range(n)]
    ids = [f"{p}/img{i:03d}.png" for i, p in enumerate(patients)]
    return ids, patients, labels


def record(case: Case, correct: Sequence[bool], n: int | None = None, fit_ok: bool | None = True,
           pool: int | None = None) -> dict:
    """An ok record of `case` on its split's larynx test set whose predictions are right exactly
    where `correct` is True. Its one stage passes the default fit gate (`fit_ok`), or learned too
    little (False: train accuracy 0.6 on a 0.5 majority); None: no stage on record. `pool`: the
    data set's patients (default: four times the test patients)."""
    correct = np.asarray(correct, bool)
    ids, patients, labels = larynx_test_set(case.split, len(correct) if n is None else n)
    pred = np.where(correct, labels, 1 - labels)
    probs = np.stack([0.9 - 0.8 * pred, 0.1 + 0.8 * pred], 1)
    n_test = len(set(patients))
    total = pool or 4 * n_test
    rec = {
        "schema": SCHEMA, "status": "ok", "case_id": f"id-{case.slug}", "slug": case.slug,
        "case": case.as_dict() | {"profile": "t"}, "config": {"train": {"patience": 4, "max_epochs": 20}},
        "created": "2024-01-01T00:00:00Z",
        "data": {"domain": "larynx", "classes": CLASSES, "positive": "malignant",
                 "patients": {"train": total - 2 * n_test, "val": n_test, "test": n_test}},
        "metrics": {"test": metrics.compute(labels, probs, CLASSES, "malignant")},
        "predictions": {"test": {"ids": ids, "groups": patients, "labels": labels.tolist(),
                                 "probs": probs.tolist()}},
        "weights": {"init": "test", "source": "test"}, "trainable": {"groups": ["head"]}, "history": [],
        "timing": {"wall_s": 10.0, "train_images_per_s": 100.0, "inference_images_per_s": 300.0, "epoch_s": 1.0},
        "env": {"device": "cpu", "device_name": "test CPU"},
    }
    if fit_ok is not None:
        rec["stages"] = [{"name": "main", "epochs": 12, "best_epoch": 8,
                          "fit": {"train_accuracy": 0.99 if fit_ok else 0.6, "majority": 0.5}}]
    return rec


def not_run(case: Case, reason: str) -> dict:
    return {"schema": SCHEMA, "status": "not_run", "reason": reason, "case_id": f"id-{case.slug}",
            "slug": case.slug, "case": case.as_dict() | {"profile": "t"}, "config": {},
            "created": "2024-01-01T00:00:00Z"}


def pair(n_reps: int | Sequence[tuple[int, int]], acc_a: float, acc_b: float, *, model: str = "resnet18",
         arm_a: str = "thtl_last", arm_b: str = "onestep_last", domain: str = "fundus", n: int = 40,
         seed: int = 0) -> list[dict]:
    """Records of two arms on the replicates (seed, split) given, or (s, s) for s < n_reps; each
    image right with probability acc_a (arm A, through `domain` where it is a THTL arm) or acc_b
    (arm B), drawn from `seed`."""
    from thtl_bench import arms

    reps = [(s, s) for s in range(n_reps)] if isinstance(n_reps, int) else list(n_reps)
    rng = np.random.default_rng(seed)
    recs = []
    for s, k in reps:
        for arm, acc in ((arm_a, acc_a), (arm_b, acc_b)):
            d = domain if arms.get(arm).via_intermediate else None
            recs.append(record(Case(model, arm, s, k, d), rng.random(n) < acc))
    return recs
