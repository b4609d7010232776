"""A finished case's trained model, for LayerCAM and the benchmarks' timed inference.

The checkpoint must carry the case_id the current parameters give the case: figures of weights
trained under other data or settings would not match the records they sit beside.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from thtl_bench import arms
from thtl_bench.engine import checkpoint
from thtl_bench.engine.case import build_model  # the engine's one model seam
from thtl_bench.engine.identity import case_id
from thtl_bench.errors import UserError
from thtl_bench.records import slug


def checkpoint_path(checkpoints_dir: str | os.PathLike, model: str, arm: str, seed: int) -> Path:
    return Path(checkpoints_dir) / slug(model, arm, seed) / "best.pt"


def run_command(cfg: dict, model: str, arm: str, seed: int) -> str:
    return f"thtl-bench run --model {model} --arm {arm} --seed {seed} --profile {cfg.get('profile', 'smoke')} --ensure-checkpoint"


def missing_error(cfg: dict, cases: list[tuple[str, str, int]], ckdir: Path) -> UserError:
    lines = [f"{checkpoint_path(ckdir, *c)} (create it with `{run_command(cfg, *c)}`)" for c in cases]
    return UserError("LayerCAM needs the best checkpoint of each case; missing:\n  " + "\n  ".join(lines))


def load_case_model(cfg: dict, model: str, arm: str, seed: int, *,
                    checkpoints_dir: str | os.PathLike | None = None,
                    device: torch.device | str = "cpu") -> nn.Module:
    """The case's best weights (the engine's best.pt) in a freshly built StagedModel, eval mode.

    The checkpoint must carry the case_id the current parameters give the case: figures of
    weights trained under other data or settings would not match the records they sit beside.
    """
    ckdir = Path(checkpoints_dir or cfg["grid"]["checkpoints_dir"])
    path = checkpoint_path(ckdir, model, arm, seed)
    if not path.is_file():
        raise missing_error(cfg, [(model, arm, seed)], ckdir)
    blob = checkpoint.load(path)
    if not isinstance(blob, dict) or "model" not in blob:
        raise UserError(f"{path} is not a best.pt written by the engine (no 'model' weights); "
                        f"delete it and run `{run_command(cfg, model, arm, seed)}`")
    want = case_id(cfg, model, arm, seed)
    if blob.get("case_id") != want:
        raise UserError(f"{path} was trained under other parameters (case_id {blob.get('case_id')}, current "
                        f"{want}); run `{run_command(cfg, model, arm, seed)}` to train this case")
    classes = blob.get("classes") or cfg["data"][arms.get(arm).domain]["classes"]
    net = build_model(model, len(classes), "random", cfg)
    net.load_strict(blob["model"], what=str(path))  # any missing/unexpected/mis-shaped key fails
    return net.to(device).eval()
