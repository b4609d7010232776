"""The one record schema: a self-describing JSON file per case, written atomically.

A record is the only thing the reporting side reads, so it embeds everything needed to rebuild
the report: the case (its key, `Case`), the canonical config whose hash is its id, the
data provenance, library versions and device, metrics per split, per-sample test predictions,
SWFT step metrics and timings. The record file itself is the case's done marker: it is written
last, by an atomic rename, so a killed case never leaves a half-written record behind.

Layout of one record (keys marked * are optional):

    schema        "thtl-bench/record/v2"
    case_id       12-hex digest of `config`
    slug          Case.slug (file stem; readable, unique within a records dir)
    status        "ok" | "not_run"   (not_run: `reason` says why, e.g. no ImageNet weights offline)
    reason*       text
    case          {model, arm, seed, split, domain, target_fraction, intermediate_fraction, profile}
    config        the canonical config subset the case depends on (hashed into case_id)
    data          {kind, domain, classes, positive*, fingerprint, n: {train, val, test}, image_size,
                   generator*}
    parent*       {case_id, slug, sha256} of the THTL step-1 case this one started from
    checkpoint*   {file, sha256} of the best.pt this record describes
    weights       {init, source, detail*, sha256*}
    trainable     {groups, params, total_params, frozen_bn_eval}
    metrics       {train, val, test}: dicts of metric name -> value (see thtl_bench.metrics)
    predictions   {test: {ids, groups, labels, probs}}   per sample (groups: patient ids), so any
                  metric and any patient-level resampling can be recomputed
    history       [{epoch, stage, train_loss, val_loss, val_acc, lr, seconds}]
    swft_steps*   [{step, groups, epochs, val, test, selected}]
    timing        {wall_s, train_images_per_s, epoch_s, inference_images_per_s, feature_cache}
    env           {python, torch, torchvision, timm, numpy, device, device_name, platform,
                   git_commit, deterministic}
    created       ISO-8601 UTC time
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from thtl_bench.errors import UserError
from thtl_bench.io import atomic_write_json

SCHEMA = "thtl-bench/record/v2"
STATUSES = ("ok", "not_run")
REQUIRED = ("schema", "case_id", "slug", "status", "case", "config", "created")
REQUIRED_OK = ("data", "weights", "trainable", "metrics", "predictions", "history", "timing", "env")


class RecordError(UserError, ValueError):
    """A record file that does not follow the schema."""


def _pct(fraction: float) -> str:
    """A fraction as a compact percentage for slugs: 0.02 -> '2', 0.125 -> '12.5'."""
    return f"{100 * float(fraction):g}"


@dataclass(frozen=True, order=True)
class Case:
    """What one case is: a model, an arm and a replicate (training seed, split seed), plus, for
    THTL arms, the intermediate domain, and the size axes (shares of the training splits used).

    A replicate is one training run on one patient-grouped split. Target-only arms (scratch,
    one-step) have no domain and ignore the intermediate fraction; THTL step 1 ignores the target
    fraction (it never sees the target)."""

    model: str
    arm: str
    seed: int
    split: int = 0
    domain: str | None = None
    target_fraction: float = 1.0
    intermediate_fraction: float = 1.0

    @property
    def slug(self) -> str:
        parts = [self.model, self.arm]
        if self.domain is not None:
            parts.append(self.domain)
        parts += [f"s{self.seed}", f"k{self.split}"]
        if float(self.target_fraction) != 1.0:
            parts.append(f"t{_pct(self.target_fraction)}")
        if self.domain is not None and float(self.intermediate_fraction) != 1.0:
            parts.append(f"i{_pct(self.intermediate_fraction)}")
        return "__".join(parts)

    @property
    def replicate(self) -> tuple[int, int]:
        return int(self.seed), int(self.split)

    def as_dict(self) -> dict:
        return {"model": self.model, "arm": self.arm, "seed": int(self.seed), "split": int(self.split),
                "domain": self.domain, "target_fraction": float(self.target_fraction),
                "intermediate_fraction": float(self.intermediate_fraction)}

    @classmethod
    def of(cls, rec: dict) -> Case:
        """The case of a record (its `case` entry)."""
        c = rec["case"]
        return cls(c["model"], c["arm"], int(c["seed"]), int(c.get("split", 0)), c.get("domain"),
                   float(c.get("target_fraction", 1.0)), float(c.get("intermediate_fraction", 1.0)))


def slug(case: Case) -> str:
    return case.slug


def validate(rec: dict, source: str = "<record>") -> dict:
    """Check the keys every consumer relies on; raise RecordError naming the file."""
    if not isinstance(rec, dict):
        raise RecordError(f"{source}: a record is a JSON object")
    if rec.get("schema") != SCHEMA:
        raise RecordError(f"{source}: schema {rec.get('schema')!r}, expected {SCHEMA!r}")
    missing = [k for k in REQUIRED if k not in rec]
    if rec.get("status") == "ok":
        missing += [k for k in REQUIRED_OK if k not in rec]
    if missing:
        raise RecordError(f"{source}: missing keys {missing}; re-run the case to rewrite it")
    if rec["status"] not in STATUSES:
        raise RecordError(f"{source}: status {rec['status']!r} not in {STATUSES}")
    for key in ("model", "arm", "seed", "split", "domain", "target_fraction", "intermediate_fraction", "profile"):
        if key not in rec["case"]:
            raise RecordError(f"{source}: case lacks {key!r}")
    if rec["slug"] != Case.of(rec).slug:
        raise RecordError(f"{source}: slug {rec['slug']!r} does not match its case ({Case.of(rec).slug!r})")
    return rec


def record_path(records_dir: str | os.PathLike, case: Case) -> Path:
    return Path(records_dir) / f"{case.slug}.json"


def write(records_dir: str | os.PathLike, rec: dict) -> Path:
    validate(rec)
    path = Path(records_dir) / f"{rec['slug']}.json"
    atomic_write_json(path, rec)
    return path


def read(path: str | os.PathLike) -> dict:
    path = Path(path)
    try:
        rec = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise RecordError(f"{path}: not valid JSON ({exc}); delete it to re-run the case") from exc
    return validate(rec, str(path))


def index(records_dir: str | os.PathLike) -> dict:
    """A small stand-in for a records folder: each record file's slug, case_id, status and sha256,
    in slug order (the same folder gives the same bytes). dvc.yaml's grid stage writes it to
    report/records.json, which the later stages depend on: a file in git in every checkout,
    where the profile's records folder may not exist yet (docs/reproducibility.md)."""
    from thtl_bench.io import sha256_file

    rows = []
    for f in sorted(Path(records_dir).rglob("*.json")):
        rec = read(f)
        rows.append({"slug": rec["slug"], "case_id": rec["case_id"], "status": rec["status"], "sha256": sha256_file(f)})
    rows.sort(key=lambda r: r["slug"])
    return {"records_dir": Path(records_dir).as_posix(), "n": len(rows),
            "n_ok": sum(r["status"] == "ok" for r in rows), "records": rows}


def load_all(sources: Iterable[str | os.PathLike]) -> list[dict]:
    """All records under the given folders/files (shards merge by simply listing their folders).

    The same case (case_id) found twice is kept once; two different ids for one slug mean two
    configurations were mixed, which is refused.
    """
    by_slug: dict[str, dict] = {}
    for src in sources:
        src = Path(src)
        files = sorted(src.rglob("*.json")) if src.is_dir() else [src]
        for f in files:
            rec = read(f)
            old = by_slug.get(rec["slug"])
            if old is not None and old["case_id"] != rec["case_id"]:
                raise RecordError(
                    f"{f}: case {rec['slug']} also found with another config (case_id "
                    f"{old['case_id']} vs {rec['case_id']}); keep one records folder per profile"
                )
            by_slug[rec["slug"]] = rec
    return [by_slug[k] for k in sorted(by_slug)]
