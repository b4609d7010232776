"""Reference points a trained model's test accuracy should be read against (numpy + scikit-learn).

- majority: always predicting the train split's most frequent class;
- ceiling: logistic regression on the generator's per-image truth (phantom_indices.csv,
  e.g. tortuosity indices, dot statistics, lesion counts), fitted on train: what a perfect
  reader of the label-defining geometry could reach;
- shortcut: logistic regression on colour histograms and global image statistics only: well
  above the majority rate means the label can be read without looking at vessel geometry.

Each accuracy (and, for more than two classes, quadratic weighted kappa) carries a bootstrap
interval that resamples test *groups* (patients), as the study's images are not independent.

`for_config(cfg)` is `thtl-bench references`: the three points for every domain of the profile
(the target and grid.domains) and every split seed of grid.replicates, at data.image_size, with
the stats: bootstrap settings; the CLI writes it to <report.dir>/references.json (SCHEMA):

    schema    "thtl-bench/references/v1"
    settings  {n_boot, bootstrap_seed, confidence, image_size, bins}
    data      {domain: {kind, fingerprint, n_images, classes, ceiling_columns | None, generator}}
    entries   [{domain, split_seed, classes, n_train, n_test, test_groups, confidence, n_boot,
                majority_class, majority, shortcut, ceiling | None, ceiling_columns | None, note}]
              majority / shortcut / ceiling: {accuracy, accuracy_ci, qwk*, qwk_ci*} (qwk: > 2
              classes); ceiling None (with a note) where the domain has no phantom_indices.csv,
              i.e. real data.

No dates, timings or paths: the report embeds it, and the same data and settings give the same
file.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from thtl_bench.errors import UserError


class ReferencePointError(UserError, ValueError):
    """Inputs the reference points cannot be computed from."""


def colour_features(images_u8: np.ndarray, bins: int = 16) -> np.ndarray:
    """(N, 3 * bins + 17): per-channel histograms (fractions of pixels), per-channel mean, SD
    and 5/50/95th percentiles, luminance mean and SD: everything an image says without where."""
    x = np.asarray(images_u8)
    n = len(x)
    flat = x.reshape(n, -1, 3).astype(np.int64)
    edges = np.minimum(flat * bins // 256, bins - 1)
    hist = np.zeros((n, 3, bins))
    for c in range(3):
        for i in range(n):
            hist[i, c] = np.bincount(edges[i, :, c], minlength=bins)
    hist /= flat.shape[1]
    f = flat.astype(np.float64)
    lum = f @ np.array([0.299, 0.587, 0.114])
    stats = [f.mean(1), f.std(1), *np.percentile(f, [5, 50, 95], axis=1), lum.mean(1)[:, None], lum.std(1)[:, None]]
    return np.concatenate([hist.reshape(n, -1), *stats], axis=1)


def _fit_predict(x_tr, y_tr, x_te, seed: int) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(np.unique(y_tr)) < 2:
        return np.full(len(x_te), y_tr[0])
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, random_state=seed))
    return model.fit(x_tr, y_tr).predict(x_te)


def _qwk_from_confusion(conf: np.ndarray) -> np.ndarray:
    """Quadratic weighted kappa of (..., K, K) confusion matrices (rows true, columns predicted)."""
    k = conf.shape[-1]
    i, j = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    w = (i - j) ** 2 / max((k - 1) ** 2, 1)
    n = conf.sum(axis=(-2, -1), keepdims=True)
    expected = conf.sum(-1, keepdims=True) * conf.sum(-2, keepdims=True) / np.maximum(n, 1)
    num = (w * conf).sum(axis=(-2, -1))
    den = (w * expected).sum(axis=(-2, -1))
    return np.where(den > 0, 1 - num / np.where(den > 0, den, 1), 1.0)


def _score(y: np.ndarray, pred: np.ndarray, groups: np.ndarray, k: int, rng: np.random.Generator,
           n_boot: int, confidence: float) -> dict:
    ug, gi = np.unique(groups, return_inverse=True)
    conf_g = np.zeros((len(ug), k, k))
    np.add.at(conf_g, (gi, y, pred), 1)
    conf = conf_g.sum(0)
    out = {"accuracy": float(np.trace(conf) / conf.sum())}
    lo_q, hi_q = (1 - confidence) / 2, 1 - (1 - confidence) / 2
    boot = conf_g[rng.integers(0, len(ug), (n_boot, len(ug)))].sum(1)  # (n_boot, k, k)
    acc = np.trace(boot, axis1=1, axis2=2) / boot.sum((1, 2))
    out["accuracy_ci"] = [float(np.quantile(acc, lo_q)), float(np.quantile(acc, hi_q))]
    if k > 2:
        out["qwk"] = float(_qwk_from_confusion(conf))
        q = _qwk_from_confusion(boot)
        out["qwk_ci"] = [float(np.quantile(q, lo_q)), float(np.quantile(q, hi_q))]
    return out


def references(images_u8: np.ndarray, labels, groups, split, classes: list[str], indices: np.ndarray | None = None,
               *, seed: int, n_boot: int, confidence: float = 0.95, bins: int = 16) -> dict:
    """Majority rate, ceiling (on `indices`, (N, K) generator truth; None skips it) and shortcut
    probe for the test split, each fitted on the train split. `labels` are class indices into
    `classes` (ordinal for kappa), `groups` patient ids, `split` train/val/test/unused per image."""
    y = np.asarray(labels, dtype=np.int64)
    g = np.asarray([str(x) for x in groups])
    s = np.asarray([str(x) for x in split])
    k = len(classes)
    if not (len(y) == len(g) == len(s) == len(images_u8)):
        raise ReferencePointError(f"references: {len(images_u8)} images, {len(y)} labels, {len(g)} groups and "
                              f"{len(s)} split entries; give one of each per image")
    tr, te = s == "train", s == "test"
    if not tr.any() or not te.any():
        raise ReferencePointError("references need images in both the train and the test split; run `thtl-bench data split`")
    if y.min() < 0 or y.max() >= k:
        raise ReferencePointError(f"labels must be class indices 0..{k - 1} for classes {classes}")
    rng = np.random.default_rng(seed)
    counts = np.bincount(y[tr], minlength=k)
    majority = int(np.argmax(counts))
    out = {"classes": list(classes), "n_train": int(tr.sum()), "n_test": int(te.sum()),
           "test_groups": int(len(np.unique(g[te]))), "confidence": confidence, "n_boot": n_boot,
           "majority_class": classes[majority]}
    out["majority"] = _score(y[te], np.full(int(te.sum()), majority), g[te], k, rng, n_boot, confidence)
    feats = colour_features(images_u8, bins)
    out["shortcut"] = _score(y[te], _fit_predict(feats[tr], y[tr], feats[te], seed), g[te], k, rng, n_boot, confidence)
    out["shortcut"]["features"] = f"{bins}-bin RGB histograms + per-channel mean/SD/percentiles + luminance"
    if indices is not None:
        ind = np.asarray(indices, dtype=np.float64).reshape(len(y), -1)
        out["ceiling"] = _score(y[te], _fit_predict(ind[tr], y[tr], ind[te], seed), g[te], k, rng, n_boot, confidence)
    else:
        out["ceiling"] = None
    return out


def load_indices(root: str | Path, ids: list[str], columns: list[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """Rows of <root>/phantom_indices.csv for `ids` (sample ids: paths relative to the domain
    root), as an (N, K) array of `columns` (default: the meta file's ceiling_columns)."""
    root = Path(root)
    path = root / "phantom_indices.csv"
    if not path.is_file():
        raise ReferencePointError(f"{path} not found: the ceiling needs the generator's per-image truth, which only "
                              "phantom data has (`thtl-bench synth`); pass indices=None for real data")
    if columns is None:
        meta = root / "phantom_stats.json"
        columns = json.loads(meta.read_text())["ceiling_columns"] if meta.is_file() else None
    with open(path, newline="") as fh:
        rows = {r["id"]: r for r in csv.DictReader(fh)}
    if columns is None:
        raise ReferencePointError(f"{root}/phantom_stats.json is missing: name the columns of {path} to use")
    missing = [i for i in ids if i not in rows]
    if missing:
        raise ReferencePointError(f"{path} has no row for {missing[0]!r} ({len(missing)} ids missing): regenerate the "
                              "phantoms (`thtl-bench synth`) so images and indices match")
    bad = [c for c in columns if c not in next(iter(rows.values()))]
    if bad:
        raise ReferencePointError(f"{path} has no column {bad[0]!r}")
    return np.array([[float(rows[i][c]) for c in columns] for i in ids]), list(columns)


SCHEMA = "thtl-bench/references/v1"
BINS = 16  # colour-histogram bins of the shortcut probe (`colour_features`)
NO_TRUTH = ("no phantom_indices.csv: the ceiling needs the generator's per-image truth, which only "
            "phantom data has (real data: no ceiling)")


def for_config(cfg: dict, domains: list[str] | None = None, split_seeds: list[int] | None = None) -> dict:
    """The references.json document (module docstring) for the profile's domains and split
    seeds (or the ones given). The images are decoded once per domain (the tensor cache);
    each split seed is its splits/<domain>/k<seed>.csv."""
    from thtl_bench.data import splits
    from thtl_bench.data.cache import load_images, with_split
    from thtl_bench.data.check import profile_domains

    st = cfg["stats"]
    n_boot, seed, confidence = int(st["bootstrap"]), int(st["bootstrap_seed"]), float(st["confidence"])
    doms = list(domains) if domains is not None else profile_domains(cfg)
    seeds = [int(k) for k in (split_seeds if split_seeds is not None else splits.split_seeds(cfg))]
    doc: dict = {"schema": SCHEMA, "entries": [], "data": {},
                 "settings": {"n_boot": n_boot, "bootstrap_seed": seed, "confidence": confidence,
                              "image_size": int(cfg["data"]["image_size"]), "bins": BINS}}
    for d in doms:
        base = load_images(cfg, d)
        indices, columns, note = None, None, None
        if (Path(base.root) / "phantom_indices.csv").is_file():
            indices, columns = load_indices(base.root, base.ids)
        else:
            note = NO_TRUTH
        doc["data"][d] = {"kind": base.kind, "fingerprint": base.fingerprint, "n_images": len(base.ids),
                          "classes": list(base.classes), "ceiling_columns": columns, "generator": base.generator}
        images = np.asarray(base.images)  # one read of the memory map for every split seed
        for k in seeds:
            dt = with_split(cfg, base, k)
            r = references(images, dt.labels, dt.groups, dt.split, dt.classes, indices, seed=seed, n_boot=n_boot,
                           confidence=confidence, bins=BINS)
            doc["entries"].append({"domain": d, "split_seed": k, **r, "ceiling_columns": columns, "note": note})
    return doc
