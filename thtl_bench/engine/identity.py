"""What a case is: its canonical config, its id and where its files live.

`case_id` is `config.digest(case_config(...))`. The canonical config holds what changes the
result, so a record is reused only when all of it is the same:
- model, arm, seed; the data fingerprint, image size and resize rule (not the profile name); the
  split parameters and assignment; the training parameters the arm uses (arms.train_subset);
  for THTL arms the parent's case_id;
- `code`: a fingerprint of the source of the modules that make a case's numbers (CODE_DIRS minus
  NOT_TRAINING; comments, docstrings and layout ignored), so a change of the training code
  invalidates old records without anyone bumping a version;
- `execution`: the settings that change numbers without changing the recipe (device type,
  effective precision, channels_last, torch.compile, deterministic mode, the feature-cache memory
  cap that decides whether the cache is used; on CPU the thread count, which on CUDA changes
  nothing).
The exact feature cache (plain, one view) gives the same result as the uncached path, so it is
hashed only where it changes the training recipe (SWFT, multi-view).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import io
import tokenize
from pathlib import Path

import torch

from thtl_bench import arms, config, records
from thtl_bench.engine import inputs, runtime
from thtl_bench.records import Case

PACKAGE = Path(__file__).resolve().parent.parent
# Source that makes a case's numbers: these folders and files, except modules that only check,
# generate, schedule or describe (their effect reaches a case through data or settings, which
# are hashed themselves).
CODE_DIRS = ("engine", "models", "data", "arms.py", "catalog.py", "config.py", "metrics.py", "records.py")
NOT_TRAINING = ("data/check.py", "data/phantoms.py", "data/tortuosity.py", "data/references.py",
                "data/detmath.py", "data/pngio.py", "engine/grid.py", "engine/lock.py", "engine/load.py",
                "engine/env.py", "models/fetch.py",
                # the phantom generators and the CAM's segment labels: their effect on a case is its
                # data, which the case's data fingerprint already holds
                "data/fundus_phantom.py", "data/larynx_phantom.py", "data/angio_phantom.py", "data/vessels.py",
                "data/segments.py")


def _tokens(path: Path) -> str:
    """The module's code tokens without comments, docstrings or layout (stable across Python
    versions, unlike ast.dump)."""
    src = path.read_text(encoding="utf-8")
    docs = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                docs.add((first.lineno, first.col_offset))
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
            tokenize.ENCODING, tokenize.ENDMARKER}
    out = [t.string for t in tokenize.generate_tokens(io.StringIO(src).readline)
           if t.type not in skip and not (t.type == tokenize.STRING and t.start in docs)]
    return " ".join(out)


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """sha256 (16 hex) over the normalised source of the training path (see the module docstring)."""
    files = []
    for entry in CODE_DIRS:
        p = PACKAGE / entry
        files += sorted(p.rglob("*.py")) if p.is_dir() else [p]
    h = hashlib.sha256()
    for f in files:
        rel = f.relative_to(PACKAGE).as_posix()
        if rel in NOT_TRAINING:
            continue
        h.update(rel.encode() + b"\0" + _tokens(f).encode() + b"\0")
    return h.hexdigest()[:16]


def execution(t: dict) -> dict:
    """The execution settings that change a case's numbers, as they take effect on the device type
    the train section asks for (not the one present: a GPU case keeps its id on a CPU login node).
    The CPU thread count changes a CPU run's last bits (the order of its reductions), so it is part
    of a CPU case; on CUDA it changes no number, and GPU nodes with other core counts share cases."""
    device = torch.device(runtime.device_type(t))
    amp = runtime.amp_dtype(t, device)
    out = {"device": device.type, "precision": str(amp).removeprefix("torch.") if amp else "fp32",
           "channels_last": runtime.channels_last(t, device), "compile": runtime.compiled(t, device),
           "deterministic": bool(t.get("deterministic")),
           "feature_cache_max_gb": float(t.get("feature_cache_max_gb", 4))}
    if device.type == "cpu":
        out["threads"] = runtime.threads(t)
    return out


def domain_classes(cfg: dict, domain: str) -> tuple[list[str], str | None]:
    d = cfg["data"][domain]
    return list(d["classes"]), d.get("positive")


def parent_case(case: Case) -> Case | None:
    """THTL step 1 of a THTL child: same model, replicate, domain and intermediate share; step 1
    never sees the target, so the target share is not part of it."""
    a = arms.get(case.arm)
    if not a.parent:
        return None
    return Case(case.model, a.parent, case.seed, case.split, case.domain, 1.0, case.intermediate_fraction)


def case_config(cfg: dict, case: Case) -> dict:
    a = arms.get(case.arm)
    dom = inputs.domain(cfg, case)
    on = inputs.trains_on(case)
    classes, positive = domain_classes(cfg, on)
    sp = cfg["split"]
    conf = {
        "code": code_fingerprint(), "model": case.model, "arm": case.arm, "seed": int(case.seed),
        "data": {"domain": on, "fingerprint": dom.fingerprint, "image_size": int(cfg["data"]["image_size"]),
                 "resize": cfg["data"]["resize"], "classes": classes, "positive": positive},
        # The assignment itself is hashed too: split files can change without any parameter.
        "split": {"seed": int(case.split), "val": sp["val"], "test": sp["test"], "fraction": float(dom.fraction),
                  "assignment": config.digest([str(x) for x in dom.split], 16)},
        "train": arms.train_subset(cfg["train"], a),
        "execution": execution(cfg["train"]),
    }
    parent = parent_case(case)
    if parent is not None:
        conf["parent"] = case_id(cfg, parent)
    return conf


def case_id(cfg: dict, case: Case) -> str:
    return config.digest(case_config(cfg, case))


def checkpoint_dir(cfg: dict, case: Case) -> Path:
    return Path(cfg["grid"]["checkpoints_dir"]) / case.slug


def record_path(cfg: dict, case: Case) -> Path:
    return records.record_path(cfg["grid"]["records_dir"], case)
