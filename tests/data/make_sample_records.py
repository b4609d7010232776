"""Write the FAKE sample records used as test fixtures, or the golden outputs derived from them.

    python tests/data/make_sample_records.py            # rewrite tests/data/records/*.json
    python tests/data/make_sample_records.py --golden   # rewrite tests/data/golden/* from them

The records are TEST FIXTURES, not measurements: plausible numbers drawn from a fixed random
model so that the reporting code has something schema-exact to aggregate (2 models x 7 arms x
3 seeds, per-sample test predictions, SWFT steps, timings, plus two not-run cases). Each record
says so in its `fixture` key, its env and its data fingerprint. Metrics are computed from the
predictions with thtl_bench.metrics, so the two always agree. Each record's `config` has the
engine's layout (engine.case.case_config), its `train` section built by the engine's own
`_train_subset` from the repo params.yaml (smoke profile): per-arm lrs and epoch budgets.

Run `--golden` only after a deliberate change of the aggregation; tests/test_report.py fails
whenever the aggregate of these records differs from the committed golden files.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import norm

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from thtl_bench import metrics, records  # noqa: E402
from thtl_bench.config import digest  # noqa: E402

HERE = Path(__file__).resolve().parent
RECORDS = HERE / "records"
GOLDEN = HERE / "golden"
FIXTURE_NOTE = "FAKE test fixture written by tests/data/make_sample_records.py; not a measurement"

# Pinned order and parameters for the golden aggregate (independent of registries/params.yaml).
GOLDEN_ORDER = {
    "models": ["alexnet", "vgg16", "googlenet", "resnet18", "resnet50", "densenet121",
               "mobilenet_v2", "efficientnet_b0", "vit_b_16", "efficientnet_lite0"],
    "arms": ["scratch", "onestep_last", "onestep_all", "thtl_step1", "thtl_last", "thtl_all", "swft"],
}
GOLDEN_CFG = {
    "stats": {"confidence": 0.95, "bootstrap": 2000, "bootstrap_seed": 0, "bootstrap_below_seeds": 5,
              "equivalence_margin_pp": 5.0, "alpha": 0.05},
    "report": {"projection": {"profile": None, "models": GOLDEN_ORDER["models"][:9],
                              "arms": GOLDEN_ORDER["arms"], "seeds": 5, "image_size": 224,
                              "max_epochs": 30, "swft_max_epochs": 10,
                              "fundus_images": 3662, "larynx_images": 8181}},
}

MODELS = ["resnet18", "efficientnet_lite0"]
ARMS = GOLDEN_ORDER["arms"]
SEEDS = [0, 1, 2]
LARYNX = ["benign", "malignant"]
FUNDUS = ["0", "1", "2", "3", "4"]
# (specificity, malignant recall) each arm aims at, per model: shaped like the paper's story
# for resnet18 (THTL last layer collapses on malignant, SWFT recovers), mixed for the other.
RATES = {
    "resnet18": {"scratch": (0.80, 0.62), "onestep_last": (0.86, 0.70), "onestep_all": (0.84, 0.66),
                 "thtl_last": (0.85, 0.10), "thtl_all": (0.86, 0.72), "swft": (0.93, 0.86)},
    "efficientnet_lite0": {"scratch": (0.78, 0.60), "onestep_last": (0.80, 0.55),
                           "onestep_all": (0.88, 0.74), "thtl_last": (0.78, 0.50),
                           "thtl_all": (0.86, 0.74), "swft": (0.86, 0.74)},
}
STEP1_SIGMA = {"resnet18": 0.55, "efficientnet_lite0": 0.65}  # fundus grade noise
SPEED = {"resnet18": 1.0, "efficientnet_lite0": 1.4}  # relative CPU throughput
SWFT_GROUPS = {"resnet18": ["head", "layer4", "layer3", "layer2", "layer1+stem"],
               "efficientnet_lite0": ["head", "blocks.6", "blocks.4-5", "blocks.2-3", "blocks.0-1+stem"]}
N = {"larynx": {"train": 150, "val": 54, "test": 68}, "fundus": {"train": 75, "val": 27, "test": 34}}
PROFILE = "smoke"  # the repo params.yaml profile whose train section the fixtures record


def _params() -> dict:
    """params.yaml (repo root), smoke profile: the source of the fixtures' training parameters."""
    from thtl_bench import config

    return config.load(ROOT / "params.yaml", profile=PROFILE)


def train_subset(cfg: dict, arm: str) -> dict:
    """The engine's own `config.train` of an arm (imported lazily: the engine pulls in torch)."""
    from thtl_bench import arms
    from thtl_bench.engine.case import _train_subset

    return _train_subset(cfg, arms.get(arm))


def case_config(cfg: dict, model: str, arm: str, seed: int, domain: str, parent: str | None) -> dict:
    """Same layout as thtl_bench.engine.case.case_config (which needs the data to fingerprint)."""
    from thtl_bench.engine.case import ENGINE_VERSION

    sp = cfg["split"]
    fraction_key = "target_fraction" if domain == "larynx" else "intermediate_fraction"
    conf = {"engine": ENGINE_VERSION, "model": model, "arm": arm, "seed": seed,
            "data": {"domain": domain, "fingerprint": f"fixture-{domain}-v1", "image_size": 64,
                     "classes": LARYNX if domain == "larynx" else FUNDUS,
                     "positive": cfg["data"][domain].get("positive")},
            "split": {"seed": sp["seed"], "val": sp["val"], "test": sp["test"], fraction_key: sp[fraction_key],
                      "assignment": f"fixture-{domain}-split-v1"},
            "train": train_subset(cfg, arm)}
    if parent:
        conf["parent"] = parent
    return conf


def _test_set(domain: str) -> tuple[list[str], np.ndarray]:
    """The one fixed test split of a domain (same for every model, arm and seed)."""
    if domain == "larynx":
        labels = np.array([0] * 40 + [1] * 28)
        ids = [f"{LARYNX[y]}/patient{i // 4:03d}/img{i:03d}.png" for i, y in enumerate(labels)]
    else:
        labels = np.repeat(np.arange(5), [12, 3, 9, 4, 6])
        ids = [f"grade{y}/fundus{i:03d}.png" for i, y in enumerate(labels)]
    return ids, labels


def _binary_probs(rng, labels: np.ndarray, spec: float, recall: float) -> np.ndarray:
    """Latent score N(0,1) benign / N(d,1) malignant, threshold t: hits spec and recall on average."""
    t = norm.ppf(spec)
    d = t - norm.ppf(1 - recall)
    score = rng.normal(size=len(labels)) + d * labels
    p = 1.0 / (1.0 + np.exp(-2.0 * (score - t)))
    return np.stack([1 - p, p], 1)


def _fundus_probs(rng, labels: np.ndarray, sigma: float) -> np.ndarray:
    latent = labels + rng.normal(scale=sigma, size=len(labels))
    logits = -((np.arange(5)[None, :] - latent[:, None]) ** 2) / 0.5
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _metrics_for(rng, domain: str, model: str, arm: str, shift: float, n: int, boost: float = 0.0):
    labels = rng.integers(0, 2 if domain == "larynx" else 5, size=n)
    if domain == "larynx":
        s, r = RATES[model][arm]
        probs = _binary_probs(rng, labels, min(s + boost + shift, 0.99), min(r + boost + shift, 0.99))
        return metrics.compute(labels, probs, LARYNX, "malignant")
    probs = _fundus_probs(rng, labels, max(STEP1_SIGMA[model] - boost + shift, 0.1))
    return metrics.compute(labels, probs, FUNDUS)


def make_record(model: str, arm: str, seed: int, step1_ids: dict, cfg: dict | None = None) -> dict:
    cfg = cfg or _params()
    mi, ai = MODELS.index(model), ARMS.index(arm)
    rng = np.random.default_rng([mi, ai, seed, 7])
    domain = "fundus" if arm == "thtl_step1" else "larynx"
    parent = step1_ids[(model, seed)] if arm in ("thtl_last", "thtl_all", "swft") else None
    config = case_config(cfg, model, arm, seed, domain, parent and parent[0])
    train_cfg = config["train"]  # the arm's own budget: max_epochs is per step for SWFT
    shift = float(rng.normal(scale=0.03))  # seed-to-seed variation of the arm's rates
    ids, labels = _test_set(domain)
    if domain == "larynx":
        s, r = RATES[model][arm]
        probs = _binary_probs(rng, labels, min(s + shift, 0.99), min(r + shift, 0.99))
        test = metrics.compute(labels, probs, LARYNX, "malignant")
    else:
        probs = _fundus_probs(rng, labels, STEP1_SIGMA[model] + shift)
        test = metrics.compute(labels, probs, FUNDUS)
    val = _metrics_for(rng, domain, model, arm, shift, N[domain]["val"])
    train = _metrics_for(rng, domain, model, arm, shift, N[domain]["train"], boost=0.08)

    head_only = arm in ("onestep_last", "thtl_last")
    ips = (2600.0 if head_only else 210.0) * SPEED[model] * float(rng.uniform(0.9, 1.1))
    history, steps = [], None
    n_train = N[domain]["train"]
    if arm == "swft":
        steps, acc = [], test["accuracy"]
        val_curve = np.minimum(np.linspace(val["accuracy"] - 0.12, val["accuracy"], 5)
                               + rng.normal(scale=0.01, size=5), 1.0)
        best = int(np.argmax(val_curve))
        test_curve = np.linspace(acc - 0.15, acc, 5) + rng.normal(scale=0.01, size=5)
        test_curve[best] = acc
        for k in range(len(SWFT_GROUPS[model])):
            ep = int(rng.integers(2, train_cfg["max_epochs"] + 1))
            for _ in range(ep):
                history.append(_epoch(rng, len(history) + 1, f"swft_step{k + 1}", n_train, ips * (4 - k) / 4 + 40))
            steps.append({"step": k + 1, "groups": SWFT_GROUPS[model][: k + 1], "epochs": ep,
                          "val": {"accuracy": float(min(val_curve[k], 1.0))},
                          "test": {"accuracy": float(min(test_curve[k], 1.0))}, "selected": k == best})
    else:
        for e in range(int(rng.integers(train_cfg["patience"] + 1, train_cfg["max_epochs"] + 1))):
            history.append(_epoch(rng, e + 1, "train", n_train, ips))
    epoch_total = sum(h["seconds"] for h in history)
    wall = epoch_total + float(rng.uniform(1.0, 2.0)) + (3.0 if head_only else 0.0)
    rec = {
        "schema": records.SCHEMA,
        "case_id": digest(config),
        "slug": records.slug(model, arm, seed),
        "status": "ok",
        "fixture": FIXTURE_NOTE,
        "case": {"model": model, "arm": arm, "seed": seed, "profile": PROFILE},
        "config": config,
        "data": {"kind": "phantom", "domain": domain, "classes": LARYNX if domain == "larynx" else FUNDUS,
                 **({"positive": "malignant"} if domain == "larynx" else {}),
                 "fingerprint": f"fixture-{domain}-v1", "n": N[domain], "image_size": 64},
        "weights": {"init": {"scratch": "random", "onestep_last": "imagenet", "onestep_all": "imagenet",
                             "thtl_step1": "imagenet"}.get(arm, "parent"), "source": "fixture (no weights)"},
        "trainable": {"groups": ["head"] if head_only else ["all"], "params": 1026 if head_only else 11_000_000,
                      "total_params": 11_000_000, "frozen_bn_eval": head_only},
        "metrics": {"train": train, "val": val, "test": test},
        "predictions": {"test": {"ids": ids, "labels": labels.tolist(),
                                 "probs": np.round(probs, 6).tolist()}},
        "history": history,
        "timing": {"wall_s": round(wall, 3), "train_images_per_s": round(ips, 2),
                   "epoch_s": round(epoch_total / len(history), 3),
                   "inference_images_per_s": round(ips * (1.2 if head_only else 3.0), 2),
                   "feature_cache": head_only},
        "env": {"python": "3.11.7", "torch": "2.4.1+cpu", "torchvision": "0.19.1+cpu", "timm": "1.0.9",
                "numpy": "1.26.4", "device": "cpu", "device_name": "fixture CPU (fake)",
                "platform": "Linux-x86_64 (fixture)", "git_commit": "fixture", "deterministic": True},
        "created": f"2024-03-01T00:{mi * 10 + ai:02d}:{seed:02d}Z",
    }
    # Metrics are recomputed from the rounded probabilities so that records stay self-consistent.
    rec["metrics"]["test"] = metrics.compute(labels, np.array(rec["predictions"]["test"]["probs"]),
                                             rec["data"]["classes"], rec["data"].get("positive"))
    if steps is not None:
        rec["swft_steps"] = steps
        sel = next(s for s in steps if s["selected"])
        sel["test"]["accuracy"] = rec["metrics"]["test"]["accuracy"]
    if arm == "thtl_step1":
        step1_ids[(model, seed)] = (rec["case_id"], rec["slug"])
    elif parent:
        rec["parent"] = {"case_id": parent[0], "slug": parent[1]}
    return rec


def _epoch(rng, epoch: int, stage: str, n_train: int, ips: float) -> dict:
    return {"epoch": epoch, "stage": stage, "train_loss": round(float(rng.uniform(0.2, 0.7)), 4),
            "val_loss": round(float(rng.uniform(0.3, 0.8)), 4), "val_acc": round(float(rng.uniform(0.6, 0.9)), 4),
            "lr": 1e-4, "seconds": round(n_train / ips + float(rng.uniform(0.05, 0.15)), 4)}


def not_run_record(model: str, arm: str, seed: int, cfg: dict | None = None) -> dict:
    config = case_config(cfg or _params(), model, arm, seed, "larynx", None)
    return {"schema": records.SCHEMA, "case_id": digest(config), "slug": records.slug(model, arm, seed),
            "status": "not_run", "fixture": FIXTURE_NOTE,
            "reason": f"no ImageNet weights for {model} offline (weights/ has none); "
                      "other weights are never substituted under the ImageNet name",
            "case": {"model": model, "arm": arm, "seed": seed, "profile": PROFILE},
            "config": config, "created": "2024-03-01T01:00:00Z"}


def write_records(out: Path = RECORDS) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.json"):
        old.unlink()
    step1: dict = {}
    paths = []
    cfg = _params()
    for model in MODELS:
        for arm in ARMS:  # step 1 precedes the THTL arms, which reference it
            for seed in SEEDS:
                paths.append(records.write(out, make_record(model, arm, seed, step1, cfg)))
    for arm in ("onestep_last", "onestep_all"):
        paths.append(records.write(out, not_run_record("vit_b_16", arm, 0, cfg)))
    return paths


def golden_outputs(records_dir: Path = RECORDS) -> tuple[dict, str]:
    """The aggregate and claims table the golden test compares against."""
    from thtl_bench import claims, stats

    summary = stats.aggregate(records.load_all([records_dir]), GOLDEN_CFG, GOLDEN_ORDER)
    return summary, claims.table(summary["claims"]) + "\n"


def write_golden(out: Path = GOLDEN) -> None:
    summary, table = golden_outputs()
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    (out / "claims_table.md").write_text(table)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--golden", action="store_true", help="rewrite tests/data/golden/* from the records")
    args = ap.parse_args()
    if args.golden:
        write_golden()
        print(f"wrote {GOLDEN}/summary.json and claims_table.md")
    else:
        print(f"wrote {len(write_records())} fixture records to {RECORDS}")


if __name__ == "__main__":
    main()
