"""What a case is: its canonical config, its id and where its files live.

`case_id` is `config.digest(case_config(...))`. The canonical config holds only what changes the
result: model, arm, seed, the data fingerprint and image size (not the profile name), the split
parameters and assignment, the training parameters the arm uses (arms.train_subset), and for THTL
arms the parent's case_id. Execution knobs (device, precision, threads, compile, deterministic)
are recorded in `env`, not hashed. The exact feature cache (plain, one view) gives the same result
as the uncached path, so it is hashed only where it changes the training recipe (SWFT, multi-view).
"""

from __future__ import annotations

from pathlib import Path

from thtl_bench import arms, config, records
from thtl_bench.engine import inputs

ENGINE_VERSION = 1  # bump when the training recipe changes, so old records are not reused


def domain_classes(cfg: dict, domain: str) -> tuple[list[str], str | None]:
    d = cfg["data"][domain]
    return list(d["classes"]), d.get("positive")


def case_config(cfg: dict, model: str, arm: str, seed: int) -> dict:
    a = arms.get(arm)
    dom = inputs.domain(cfg, a.domain)
    classes, positive = domain_classes(cfg, a.domain)
    fraction_key = "target_fraction" if a.domain == "larynx" else "intermediate_fraction"
    sp = cfg["split"]
    conf = {
        "engine": ENGINE_VERSION, "model": model, "arm": arm, "seed": int(seed),
        "data": {"domain": a.domain, "fingerprint": dom.fingerprint,
                 "image_size": int(cfg["data"]["image_size"]), "classes": classes, "positive": positive},
        # The assignment itself is hashed too: split files can change without any parameter.
        "split": {"seed": sp["seed"], "val": sp["val"], "test": sp["test"], fraction_key: sp[fraction_key],
                  "assignment": config.digest([str(x) for x in dom.split], 16)},
        "train": arms.train_subset(cfg["train"], a),
    }
    if a.parent:
        conf["parent"] = case_id(cfg, model, a.parent, seed)
    return conf


def case_id(cfg: dict, model: str, arm: str, seed: int) -> str:
    return config.digest(case_config(cfg, model, arm, seed))


def checkpoint_dir(cfg: dict, model: str, arm: str, seed: int) -> Path:
    return Path(cfg["grid"]["checkpoints_dir"]) / records.slug(model, arm, seed)


def record_path(cfg: dict, model: str, arm: str, seed: int) -> Path:
    return records.record_path(cfg["grid"]["records_dir"], model, arm, seed)
