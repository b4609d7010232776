"""A finished case's trained model, for LayerCAM and the benchmarks' timed inference.

The checkpoint must carry the case_id the current parameters give the case: figures of weights
trained under other data or settings would not match the records they sit beside.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from thtl_bench.engine import case as engine_case  # build_model: the engine's one model seam
from thtl_bench.engine import checkpoint, inputs
from thtl_bench.engine.identity import case_id
from thtl_bench.errors import UserError
from thtl_bench.records import Case


def checkpoint_path(checkpoints_dir: str | os.PathLike, case: Case) -> Path:
    return Path(checkpoints_dir) / case.slug / "best.pt"


def run_command(cfg: dict, case: Case) -> str:
    """The command that trains `case` (named in errors)."""
    parts = [f"thtl-bench run --profile {cfg.get('profile', 'smoke')} --model {case.model} --arm {case.arm}",
             f"--seed {case.seed} --split {case.split}"]
    if case.domain is not None:
        parts.append(f"--domain {case.domain}")
    if float(case.target_fraction) != 1.0:
        parts.append(f"--target-fraction {case.target_fraction:g}")
    if case.domain is not None and float(case.intermediate_fraction) != 1.0:
        parts.append(f"--intermediate-fraction {case.intermediate_fraction:g}")
    return " ".join(parts + ["--ensure-checkpoint"])


def missing_error(cfg: dict, cases: list[Case], ckdir: Path, needs: str = "LayerCAM") -> UserError:
    """One error naming every missing best.pt and the command that creates it; `needs` says who asks."""
    lines = [f"{checkpoint_path(ckdir, c)} (create it with `{run_command(cfg, c)}`)" for c in cases]
    return UserError(f"{needs} needs the best checkpoint of each case; missing:\n  " + "\n  ".join(lines))


def load_case_model(cfg: dict, case: Case, *, checkpoints_dir: str | os.PathLike | None = None,
                    device: torch.device | str = "cpu") -> nn.Module:
    """The case's best weights (the engine's best.pt) in a freshly built StagedModel, eval mode.

    The checkpoint must carry the case_id the current parameters give the case: figures of
    weights trained under other data or settings would not match the records they sit beside.
    """
    ckdir = Path(checkpoints_dir or cfg["grid"]["checkpoints_dir"])
    path = checkpoint_path(ckdir, case)
    if not path.is_file():
        raise missing_error(cfg, [case], ckdir)
    blob = checkpoint.load(path)
    if "model" not in blob:
        raise UserError(f"{path} is not a best.pt written by the engine (no 'model' weights); "
                        f"delete it and run `{run_command(cfg, case)}`")
    want = case_id(cfg, case)
    if blob.get("case_id") != want:
        raise UserError(f"{path} was trained under other parameters (case_id {blob.get('case_id')}, current "
                        f"{want}); run `{run_command(cfg, case)}` to train this case")
    classes = blob.get("classes") or cfg["data"][inputs.trains_on(case)]["classes"]
    net = engine_case.build_model(case.model, len(classes), "random", cfg)
    net.load_strict(blob["model"], what=str(path))  # any missing/unexpected/mis-shaped key fails
    return net.to(device).eval()
