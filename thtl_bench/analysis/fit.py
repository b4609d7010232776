"""The fit gate: whether a trained arm reached the fit a claim may rest on (torch-free).

The gate is part of the analysis plan (`stats.fit`, hashed with the rules), so it is fixed before
results are seen and a change shows; every gated verdict is also reported without it. The
engine records facts only (each stage's training accuracy with its selected weights, the
training split's majority rate, epochs run, best epoch, the budget's patience and cap); the gate
reads them:

- a stage is judged on the weights it selected, and an arm on the stage it selected (SWFT: the
  step validation chose, judged the way every other arm's single stage is; when that is step 1,
  SWFT trained the head alone from step 1's weights: it *is* THTL last-layer, retrained, and the
  report says so);
- **accurate**: training accuracy >= `min_train_accuracy`; or
- **learned and converged**: the stage learned, *and* it stopped by the convergence rule: its
  validation loss had not improved for `patience` epochs when it stopped. A stage that stopped at
  the epoch cap did not converge, however flat its loss. It learned when either
  - its selected weights reach a Cohen's-kappa-like gain over the majority rate
    (acc - majority) / (1 - majority) >= `min_kappa` (relative to the task: a 5-grade task with a
    34 % majority needs 51 % at 0.25, a 71 %-majority binary task 78 %), or
  - (with `min_fit_gain`) its optimiser fitted the training split: the lowest epoch-mean training
    loss of the stage is at least `min_fit_gain` below the null loss, the cross-entropy of
    predicting the training split's class shares (1 - min loss / null >= min_fit_gain).
    Validation selects the weights, and when it selects an early epoch (the head fits the
    training split but the validation loss never improves again: the features do not carry the
    target) the selected weights sit near the majority rate. That is the transfer's outcome, not
    an optimisation failure; the kappa reading alone withheld exactly those replicates, the worst
    transfers (amended after the domains run of 2026-12-06: `stats.amendments`). A stage whose
    training loss never leaves the null (a network that did not train) still fails. The
    epoch-mean training loss is taken in training mode (augmentation, dropout), so it reads the
    fit conservatively;
- a THTL child of a step 1 that fails the gate fails too (it transfers a step 1 that was not
  trained), linked by the parent's case_id.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Gate:
    min_train_accuracy: float = 0.95
    min_kappa: float = 0.25
    require_convergence: bool = True
    min_fit_gain: float | None = None  # None: the selected weights' kappa alone (plans before the amendment)
    # None: a claim with any failing replicate is withheld. Else a claim whose failing replicates are
    # at most this share of its paired replicates is decided on the passing ones, and that verdict
    # stands only where the verdict without the gate is the same (rules.decide_gated).
    max_excluded_share: float | None = None

    @classmethod
    def of(cls, stats: dict) -> Gate:
        f = stats.get("fit") or {}
        gain, share = f.get("min_fit_gain"), f.get("max_excluded_share")
        return cls(float(f.get("min_train_accuracy", cls.min_train_accuracy)),
                   float(f.get("min_kappa", cls.min_kappa)), bool(f.get("require_convergence", True)),
                   None if gain is None else float(gain), None if share is None else float(share))

    def as_dict(self) -> dict:
        d = asdict(self)
        for k in ("min_fit_gain", "max_excluded_share"):
            if d[k] is None:  # a plan without an amendment hashes as it did before it
                d.pop(k)
        return d


def selected_stage(rec: dict) -> tuple[int, dict | None]:
    """(index, stage) of the stage whose weights the record kept: SWFT's selected step, else the
    only stage."""
    stages = rec.get("stages") or []
    steps = rec.get("swft_steps") or []
    for i, s in enumerate(steps):
        if s.get("selected") and i < len(stages):
            return i, stages[i]
    return (len(stages) - 1, stages[-1]) if stages else (-1, None)


def null_loss(class_counts: Sequence[float]) -> float | None:
    """Cross-entropy (nats) of predicting the class shares themselves: the loss of a model that
    learned only the prior (None without counts)."""
    n = float(sum(class_counts))
    if n <= 0:
        return None
    return -sum(c / n * math.log(c / n) for c in class_counts if c > 0)


def fit_gain(train_losses: Sequence[float | None], null: float | None) -> float | None:
    """1 - (lowest epoch-mean training loss) / null loss: 0 = no better than the prior, 1 = a
    perfect fit; None without losses or with a null of 0 (a one-class split)."""
    losses = [float(x) for x in train_losses if x is not None and math.isfinite(float(x))]
    if not losses or null is None or null <= 0:
        return None
    return 1.0 - min(losses) / null


def stage_fit(stage: dict, patience: int, max_epochs: int, gate: Gate, gain: float | None = None) -> dict:
    """The gate on one stage's recorded facts (see the module docstring); `gain` is the stage's
    fit_gain (read only when the gate has `min_fit_gain`)."""
    f = stage.get("fit") or {}
    acc, maj = f.get("train_accuracy"), f.get("majority")
    epochs, best = int(stage.get("epochs") or 0), int(stage.get("best_epoch") or 0)
    converged = epochs - best >= int(patience)
    at_cap = epochs >= int(max_epochs) and not converged
    kappa = None if acc is None or maj is None or maj >= 1 else (float(acc) - float(maj)) / (1.0 - float(maj))
    accurate = acc is not None and float(acc) >= gate.min_train_accuracy
    by_kappa = kappa is not None and kappa >= gate.min_kappa
    by_gain = gate.min_fit_gain is not None and gain is not None and gain >= gate.min_fit_gain
    learned = by_kappa or by_gain
    ok = accurate or (learned and (converged or not gate.require_convergence))
    why = []
    if not ok:
        if not learned:
            why.append("learned too little" if kappa is not None else "no training accuracy on record")
        if gate.require_convergence and not converged:
            why.append(f"stopped at the epoch cap ({epochs})" if at_cap else "did not converge")
    return {"ok": bool(ok), "train_accuracy": acc, "majority": maj, "kappa": kappa, "fit_gain": gain,
            "learned_by": "kappa" if by_kappa else "fit gain" if by_gain else None,
            "converged": bool(converged), "at_cap": bool(at_cap), "epochs": epochs, "best_epoch": best,
            "why": "; ".join(why)}


def record_gain(rec: dict, stage: dict) -> float | None:
    """fit_gain of one of the record's stages: its epochs' training losses (`history`, by stage
    name) against the null loss of the training split's class counts (rows of the train confusion)."""
    conf = (((rec.get("metrics") or {}).get("train") or {}).get("confusion")) or []
    if not isinstance(conf, list) or not all(isinstance(row, list) for row in conf):
        return None
    try:
        counts = [sum(float(v) for v in row) for row in conf]
    except (TypeError, ValueError):
        return None
    name = stage.get("name")
    losses = [h.get("train_loss") for h in rec.get("history") or [] if h.get("stage") == name]
    return fit_gain(losses, null_loss(counts))


def record_fit(rec: dict, gate: Gate) -> dict:
    """The gate on a record's selected stage, with `stage` and, for SWFT, `head_only` (the
    selected step trained the head alone)."""
    t = (rec.get("config") or {}).get("train") or {}
    i, st = selected_stage(rec)
    if st is None:
        return {"ok": False, "why": "no stage on record", "stage": None, "head_only": False}
    out = stage_fit(st, int(t.get("patience", 1)), int(t.get("max_epochs", 10**9)), gate, record_gain(rec, st))
    steps = rec.get("swft_steps") or []
    out["stage"] = st.get("name")
    out["head_only"] = bool(steps) and list((steps[i] if i < len(steps) else {}).get("groups") or []) == ["head"]
    return out


def gated(records: Sequence[dict], gate: Gate) -> list[dict]:
    """Copies of `records` with `gate` = record_fit(...) (ok records only), a THTL child failing
    where its step-1 parent fails (`gate.parent` names it)."""
    out = [dict(r) for r in records]
    for r in out:
        if r.get("status") == "ok":
            r["gate"] = record_fit(r, gate)
    by_id = {r["case_id"]: r for r in out if r.get("status") == "ok" and r.get("case_id")}
    for r in out:
        link = r.get("parent") if isinstance(r.get("parent"), dict) else {}
        parent = by_id.get(link.get("case_id")) if link.get("case_id") else None
        if r.get("gate") and parent is not None and not parent["gate"]["ok"]:
            r["gate"] = {**r["gate"], "own_ok": r["gate"]["ok"], "ok": False,
                         "parent": parent.get("slug") or parent["case_id"],
                         "why": f"its step 1 ({parent.get('slug')}) failed the gate: {parent['gate']['why']}"}
    return out
