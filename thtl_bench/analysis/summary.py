"""Per model x arm statistics over seeds, SWFT step curves and provenance, from records only.

Records (thtl_bench.records) are the only input. Conventions: metric values stay fractions in
[0, 1] here; differences of claims are in percentage points (pp).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from thtl_bench import arms as arms_registry
from thtl_bench import catalog
from thtl_bench import domains as domain_registry
from thtl_bench.analysis import fit, inference, replicates
from thtl_bench.analysis.intervals import _none_if_nan, t_interval
from thtl_bench.config import canonical_json, digest
from thtl_bench.records import Case

# Test metrics summarised per domain role (names of thtl_bench.metrics): the target is binary; every
# intermediate task is a grade (DR 0-4, stenosis none/moderate/severe), hence QWK beside accuracy.
ROLE_METRICS = {
    "target": ("accuracy", "recall", "specificity", "precision", "f1", "auc"),
    "intermediate": ("accuracy", "qwk"),
}
TIMING_KEYS = ("train_images_per_s", "inference_images_per_s", "wall_s", "epoch_s")
# env keys that are execution knobs (not library versions): listed apart in provenance.
EXEC_KEYS = ("deterministic", "threads", "precision", "channels_last", "compile")


# ----------------------------------------------------------------------------- ordering

def _registry(kind: str) -> list[str]:
    """Canonical names: thtl_bench.arms.NAMES / thtl_bench.catalog.MODELS / thtl_bench.domains.NAMES."""
    return {"arms": list(arms_registry.NAMES), "models": list(catalog.MODELS),
            "domains": list(domain_registry.NAMES)}[kind]


def canonical_order(kind: str, seen: Iterable[str], order: dict | None = None) -> list[str]:
    """Names in registry order; names the registry lacks follow in first-seen order.

    `order` ({"models": [...], "arms": [...]}) replaces the registry (golden tests pin it).
    """
    ref = list((order or {}).get(kind) or _registry(kind))
    seen = list(dict.fromkeys(seen))
    return [n for n in ref if n in seen] + [n for n in seen if n not in ref]


# ----------------------------------------------------------------------------- record helpers

def _case(rec: dict) -> tuple[str, str, int]:
    c = rec["case"]
    return c["model"], c["arm"], int(c["seed"])


def _ok(records: Iterable[dict]) -> list[dict]:
    return [r for r in records if r["status"] == "ok"]


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dict -> {"a.b.c": leaf}; lists are leaves."""
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        out.update(flatten(v, key) if isinstance(v, dict) and v else {key: v})
    return out


def lookup(flat: dict[str, Any], key: str) -> Any:
    """A dotted key in a flattened config: exact, else the unique key ending in ".<key>"
    (configs nested one level deeper); None when absent or ambiguous."""
    if key in flat:
        return flat[key]
    hits = [k for k in flat if k.endswith("." + key)]
    return flat[hits[0]] if len(hits) == 1 else None


# ----------------------------------------------------------------------------- summarise

def _key_order(key: tuple, models: list[str], arms: list[str], doms: list[str]) -> tuple:
    model, arm, domain, tf, inf = key
    return (models.index(model), arms.index(arm), -1 if domain is None else doms.index(domain), -tf, -inf)


def summarise(records: Sequence[dict], cfg: dict, order: dict | None = None) -> dict:
    """Per cell (model, arm, intermediate domain, target share, intermediate share): each test
    metric over its replicates (mean, std, the values) with a replicate-level interval: for ratio
    metrics the claims' rule (inference.single: t over split units with the shared-patient term),
    for ROC AUC and kappa the t-interval over replicates. Cells follow the canonical order.

    Returns {"models", "arms", "domains", "cells": [...], "not_run": [...]}.
    """
    st = cfg["stats"]
    conf = float(st["confidence"])
    index = replicates.index(records, fit.Gate.of(st))
    models = canonical_order("models", [r["case"]["model"] for r in records], order)
    arms = canonical_order("arms", [r["case"]["arm"] for r in records], order)
    doms = canonical_order("domains", [r["case"].get("domain") for r in records if r["case"].get("domain")], order)
    cells = [_cell(k, index[k], conf) for k in sorted(index, key=lambda k: _key_order(k, models, arms, doms))]
    bad = [r for r in records if r["status"] != "ok"]
    not_run = [{**Case.of(r).as_dict(), "reason": r.get("reason") or "no reason recorded"}
               for r in sorted(bad, key=lambda r: (_key_order(replicates.cell_key(r), models, arms, doms),
                                                   Case.of(r).replicate))]
    return {"models": models, "arms": arms, "domains": doms, "cells": cells, "not_run": not_run}


def _cell(key: tuple, by_rep: dict, conf: float) -> dict:
    model, arm, domain, tf, inf = key
    recs = [by_rep[k] for k in sorted(by_rep)]
    trains_on = recs[0].get("data", {}).get("domain", "larynx")
    metrics = {}
    role = domain_registry.DOMAINS[trains_on].role if trains_on in domain_registry.DOMAINS else None
    for name in ROLE_METRICS.get(role, ("accuracy",)):
        values = [r["metrics"]["test"].get(name) for r in recs]
        entry = t_interval(values, conf)
        entry["values"] = [_none_if_nan(v) for v in values]
        entry["interval"] = "t over replicates"
        if name in inference.RATIO_METRICS:
            try:
                ev = inference.single(replicates.cell_replicates(by_rep, name))
            except ValueError:
                ev = None
            if ev is not None and ev.decidable:
                lo, hi = ev.interval(conf)
                # A proportion's interval beyond [0, 1] says nothing more: clipped.
                entry.update(ci_low=max(0.0, lo / 100.0), ci_high=min(1.0, hi / 100.0),
                             interval="the claims' rule: t over split units with the shared-patient term")
        metrics[name] = entry
    conf_mats = [np.asarray(r["metrics"]["test"]["confusion"]) for r in recs
                 if r["metrics"]["test"].get("confusion") is not None]
    timing = {}
    for k in TIMING_KEYS:
        values = [r.get("timing", {}).get(k) for r in recs]
        t = t_interval(values, conf)
        timing[k] = {"mean": t["mean"], "std": t["std"], "values": values}
    gates = [r.get("gate") or {} for r in recs]
    return {
        "model": model, "arm": arm, "domain": domain, "target_fraction": tf, "intermediate_fraction": inf,
        "trains_on": trains_on,
        "replicates": [list(k) for k in sorted(by_rep)],
        "n": len(recs),
        "metrics": metrics,
        "confusion_sum": np.sum(conf_mats, axis=0).tolist() if conf_mats else None,
        "fit": {"train_accuracy": [g.get("train_accuracy") for g in gates], "kappa": [g.get("kappa") for g in gates],
                "fit_gain": [g.get("fit_gain") for g in gates],
                "converged": [g.get("converged") for g in gates], "stage": [g.get("stage") for g in gates],
                "head_only": [g.get("head_only") for g in gates], "why": [g.get("why") or "" for g in gates],
                "ok": [g.get("ok") for g in gates], "undertrained": replicates.undertrained(by_rep)},
        "epochs": [[st.get("epochs") for st in r.get("stages") or []] for r in recs],
        "test_patients": sorted({(r.get("data") or {}).get("patients", {}).get("test") for r in recs}, key=str),
        "timing": timing,
        "devices": sorted({_device(r) for r in recs}),
        "image_size": sorted({r.get("data", {}).get("image_size") for r in recs}, key=str),
    }


def _device(rec: dict) -> str:
    env = rec.get("env", {})
    dev, name = env.get("device"), env.get("device_name")
    return f"{dev} ({name})" if name and name != dev else str(dev)


# ----------------------------------------------------------------------------- SWFT curves

def _acc(x: Any) -> float | None:
    """A SWFT step's split entry: a metrics dict (its accuracy) or a bare accuracy."""
    if isinstance(x, dict):
        return x.get("accuracy")
    return x


def swft_curves(records: Sequence[dict], models: list[str]) -> list[dict]:
    """Per (model, domain): val/test accuracy per SWFT step, over replicates (mean, std) and per
    replicate, with the step validation selected in each replicate (selection is on validation
    loss; test scores are diagnostic)."""
    out = []
    index = replicates.index(records)
    for key in sorted((k for k in index if k[1] == "swft" and k[3] == 1.0 and k[4] == 1.0),
                      key=lambda k: (models.index(k[0]) if k[0] in models else len(models), str(k[2]))):
        by_rep = index[key]
        steps: dict[int, dict] = {}
        per_rep = []
        for rk in sorted(by_rep):
            r = by_rep[rk]
            if not r.get("swft_steps"):
                continue
            sel = [int(x["step"]) for x in r["swft_steps"] if x.get("selected")]
            per_rep.append({"key": f"s{rk[0]}/k{rk[1]}", "selected": sel[0] if sel else None,
                            "val": [_acc(x.get("val")) for x in r["swft_steps"]],
                            "test": [_acc(x.get("test")) for x in r["swft_steps"]]})
            for x in r["swft_steps"]:
                e = steps.setdefault(int(x["step"]), {"groups": x.get("groups"), "val": [], "test": [],
                                                      "selected": 0, "epochs": []})
                e["val"].append(_acc(x.get("val")))
                e["test"].append(_acc(x.get("test")))
                e["epochs"].append(x.get("epochs"))
                e["selected"] += bool(x.get("selected"))
        rows = []
        for k in sorted(steps):
            e = steps[k]
            v, t = t_interval(e["val"]), t_interval(e["test"])
            rows.append({"step": k, "groups": e["groups"], "n": v["n"],
                         "val_mean": v["mean"], "val_std": v["std"],
                         "test_mean": t["mean"], "test_std": t["std"],
                         "selected": e["selected"], "epochs": e["epochs"]})
        if rows:
            out.append({"model": key[0], "domain": key[2], "steps": rows, "replicates": per_rep,
                        "selected_by": "validation loss (lowest best validation loss over the steps)"})
    return out


# ----------------------------------------------------------------------------- provenance

def provenance(records: Sequence[dict]) -> dict:
    """What produced the records: profiles, data kind and fingerprints, devices, versions."""
    ok = _ok(records)

    def distinct(values: Iterable[Any]) -> list:
        return sorted({canonical_json(v) for v in values if v is not None})

    libs: dict[str, set] = defaultdict(set)
    execution: dict[str, set] = defaultdict(set)
    for r in ok:
        for k, v in (r.get("env") or {}).items():
            if k in EXEC_KEYS:
                execution[k].add(canonical_json(v))
            elif k not in ("device", "device_name", "platform", "git_commit", "machine"):
                libs[k].add(str(v))
    fps = defaultdict(set)
    for r in ok:
        d = r.get("data", {})
        fps[d.get("domain", "?")].add(str(d.get("fingerprint")))
    classes = {}
    for r in ok:
        d = r.get("data", {})
        classes.setdefault(d.get("domain", "?"), d.get("classes"))
    created = sorted(r.get("created", "") for r in records)
    return {
        "n_records": len(records),
        "n_ok": len(ok),
        "n_not_run": len(records) - len(ok),
        "records_digest": digest(sorted(r["case_id"] for r in records)),
        "profiles": sorted({r["case"]["profile"] for r in records}),
        "data_kinds": sorted({str(r.get("data", {}).get("kind")) for r in ok}),
        "data_fingerprints": {k: sorted(v) for k, v in sorted(fps.items())},
        "classes": dict(sorted(classes.items())),
        "image_sizes": sorted({r.get("data", {}).get("image_size") for r in ok}, key=str),
        "devices": sorted({_device(r) for r in ok}),
        "machines": distinct((r.get("env") or {}).get("machine") for r in ok),
        "platforms": sorted({str(r.get("env", {}).get("platform")) for r in ok}),
        "record_git_commits": sorted({str(r.get("env", {}).get("git_commit")) for r in ok}),
        "deterministic": distinct(r.get("env", {}).get("deterministic") for r in ok),
        "execution": {k: sorted(v) for k, v in sorted(execution.items())},
        "libraries": {k: sorted(v) for k, v in sorted(libs.items())},
        "created": [created[0], created[-1]] if created else None,
        "fixture": any(r.get("fixture") for r in records),
    }


def config_values(records: Sequence[dict]) -> dict[str, list]:
    """Every flattened config key of the ok records -> its distinct values (sorted)."""
    vals: dict[str, dict[str, Any]] = defaultdict(dict)
    for r in _ok(records):
        for k, v in flatten(r.get("config") or {}).items():
            vals[k][canonical_json(v)] = v
    return {k: [v[s] for s in sorted(v)] for k, v in sorted(vals.items())}


def train_by_arm(records: Sequence[dict], arms: Sequence[str]) -> dict[str, dict[str, list]]:
    """Per arm (given order): its ok records' flattened `train.*` config keys -> distinct values.

    The engine records only the training parameters an arm uses (engine.case._train_subset):
    its own head/body lrs and epoch budget (`train.max_epochs`: per step for SWFT, the
    last-layer budget for head arms), so these differ between arms and are read per arm.
    """
    out: dict[str, dict[str, list]] = {}
    for a in arms:
        vals = config_values([r for r in records if _case(r)[1] == a])
        train = {k: v for k, v in vals.items() if k.startswith("train.")}
        if train:
            out[a] = train
    return out
