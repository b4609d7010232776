"""Preflight: does the device a profile asks for come up, before any work starts?

    python -m thtl_bench.perf.preflight --profile paper [--require-cuda] [--json FILE]

Resolves the profile's `train.device` exactly as a case does (`runtime.resolve_device`: `cuda`
never falls back to the CPU), then on CUDA allocates, multiplies in the profile's precision and
synchronises, so a card that is listed but unusable fails here too. `--require-cuda` also refuses
a profile that would run on the CPU here (`auto` without CUDA): what a GPU workflow wants. Prints
the device facts (GPU, driver, the torch build's CUDA version, cuDNN, determinism); exit status 0
when the device is usable, 2 otherwise, with the reason and the fix on stderr (the driver/wheel
diagnosis of `runtime.cuda_diagnosis`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch

from thtl_bench import config
from thtl_bench.engine import env, runtime
from thtl_bench.errors import UserError
from thtl_bench.io import atomic_write_json


def device_facts(train: dict, device: torch.device) -> dict:
    """What a GPU figure needs beside it: the card, its driver and the torch build, and the
    execution settings the profile runs with there."""
    amp = runtime.amp_dtype(train, device)
    out = {"device": str(device), "device_name": env.device_name(device), "torch": torch.__version__,
           "torch_cuda_build": torch.version.cuda, "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
           "precision": str(amp).removeprefix("torch.") if amp else "fp32",
           "channels_last": runtime.channels_last(train, device), "compile": runtime.compile_setting(train, device),
           "determinism": runtime.determinism(train, device), "machine": env.machine(device)}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        out.update(cudnn=torch.backends.cudnn.version(), capability=list(torch.cuda.get_device_capability(device)),
                   memory_gib=round(props.total_memory / 2**30, 1), multiprocessors=props.multi_processor_count,
                   driver=runtime.nvidia_smi())
    return out


def check(cfg: dict, require_cuda: bool = False) -> tuple[torch.device, dict]:
    """(device, facts) for the profile's train section, or UserError saying why it is unusable."""
    t = cfg["train"]
    device = runtime.resolve_device(t)
    if require_cuda and device.type != "cuda":
        raise UserError(f"profile {cfg.get('profile')!r} would run on the CPU here (train.device="
                        f"{t.get('device')}), and a GPU run was required.\n"
                        + "\n".join(f"  - {line}" for line in runtime.cuda_diagnosis()))
    if device.type == "cuda":
        try:
            dtype = runtime.amp_dtype(t, device) or torch.float32
            a = torch.randn(256, 256, device=device, dtype=dtype)
            float((a @ a).float().sum())  # a kernel runs and its result comes back
            runtime.synchronize(device)
        except RuntimeError as exc:
            raise UserError(f"{device} is listed but does not run a kernel: {str(exc).splitlines()[0]}\n"
                            + "\n".join(f"  - {line}" for line in runtime.cuda_diagnosis())) from exc
    return device, device_facts(t, device)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m thtl_bench.perf.preflight", description=__doc__.splitlines()[0])
    ap.add_argument("--params", default=None, help="parameter file (default: params.yaml or $THTL_PARAMS)")
    ap.add_argument("--profile", default=None, help="profile (default: $THTL_PROFILE or params.yaml's)")
    ap.add_argument("-S", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--require-cuda", action="store_true", help="fail unless the run would be on CUDA")
    ap.add_argument("--json", default=None, help="also write the facts (or the failure) to this file")
    args = ap.parse_args(argv)
    try:
        cfg = config.load(args.params, args.profile, args.overrides)
        _, facts = check(cfg, args.require_cuda)
    except UserError as exc:
        if args.json:
            atomic_write_json(args.json, {"ok": False, "error": str(exc)})
        print(f"preflight: {exc}", file=sys.stderr)
        return 2
    doc = {"ok": True, "profile": cfg.get("profile"), **facts}
    if args.json:
        atomic_write_json(args.json, doc)
    print(json.dumps(doc, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
