"""The callables a stage runs its trainable suffix with: eager, or compiled so that it stays compiled.

torch.compile keeps its compiled graphs per code object and recompiles when a guard fails (a new
batch size, train vs eval mode, grad mode, another module); past `recompile_limit` it silently runs
eager. A stage therefore gets two callables with their own code objects, one for training steps
and one for evaluation, compiled with `fullgraph=True` (a graph break or a recompile past the
limit is an error, never a silent eager fallback) and `dynamic=False`, on shapes that do not
change within the stage: training batches drop the last partial batch, evaluation pads its last
batch (eval mode is per-sample, the padded rows are discarded). Dynamo's caches are reset at the
start of every stage, so the stages of a case (and the cases of a grid in one process) never add
up to the limit. A counting backend records how many graphs each callable compiled: the record
says whether the stage ran compiled, and a test asserts one graph per callable per stage.

A model whose forward cannot be captured whole fails on its first call, before it computed
anything: the stage then runs eager, and the record says so with the reason.
"""

from __future__ import annotations

import torch
from torch import nn

from thtl_bench.engine import runtime
from thtl_bench.errors import UserError

BACKEND = "inductor"  # tests use aot_eager (the same graph capture, no code generation)


class _Train(nn.Module):
    """The training-step callable (its own forward, hence its own compile cache)."""

    def __init__(self, suffix: nn.Module):
        super().__init__()
        self.suffix = suffix

    def forward(self, x):
        return self.suffix(x)


class _Eval(nn.Module):
    """The evaluation callable (no grad, eval mode: a separate compile cache from training)."""

    def __init__(self, suffix: nn.Module):
        super().__init__()
        self.suffix = suffix

    def forward(self, x):
        return self.suffix(x)


class Runner:
    """One callable of a stage: the compiled module while it compiles, else the eager suffix."""

    def __init__(self, kind: str, eager: nn.Module, compiled: nn.Module | None, info: dict):
        self.kind, self.eager, self.compiled, self.info = kind, eager, compiled, info

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.compiled is None:
            return self.eager(x)
        graphs = self.info["graphs"][self.kind]
        try:
            out = self.compiled(x)
        except torch._dynamo.exc.FailOnRecompileLimitHit as exc:
            raise UserError(
                f"torch.compile recompiled the {self.kind} callable past torch._dynamo.config.recompile_limit "
                f"({torch._dynamo.config.recompile_limit}) within one stage: its input changed shape, dtype or "
                "mode. The engine keeps these static, so this is a bug; meanwhile set -S train.compile=false "
                "(the last checkpoint is kept)") from exc
        except Exception as exc:  # noqa: BLE001 - whatever dynamo or the backend raise on a model they cannot take
            if graphs:
                raise  # it compiled before: a real error of the step, not of compilation
            if not type(exc).__module__.startswith(("torch._dynamo", "torch._inductor", "torch.fx")):
                raise
            self.compiled = None
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            self.info["fallback"].append(f"{self.kind} callable not compiled, ran eager: {type(exc).__name__}: {first}")
            return self.eager(x)
        return out


def make(suffix: nn.Module, train: dict, device: torch.device) -> tuple[Runner, Runner, dict]:
    """(train callable, eval callable, info) for one stage. `info` goes into the record:
    {"compiled": bool, "reason": why not, "graphs": {"train": n, "eval": n}, "fallback": [reasons]}."""
    on, why = runtime.compile_setting(train, device)
    info: dict = {"compiled": on, "reason": why, "graphs": {"train": 0, "eval": 0}, "fallback": []}
    if not on:
        return Runner("train", suffix, None, info), Runner("eval", suffix, None, info), info
    torch._dynamo.reset()  # a new stage: new modules and trainable sets; nothing of the last is kept
    inner = torch._dynamo.lookup_backend(BACKEND)

    def counting(kind: str):
        def backend(gm, example_inputs):
            info["graphs"][kind] += 1
            return inner(gm, example_inputs)
        return backend

    runners = [Runner(kind, suffix, torch.compile(cls(suffix), backend=counting(kind), fullgraph=True, dynamic=False),
                      info) for kind, cls in (("train", _Train), ("eval", _Eval))]
    return runners[0], runners[1], info


def ran_compiled(info: dict) -> bool:
    """Whether a stage's suffix ran compiled throughout: asked for and active, both callables
    compiled (at least one graph each), no fallback."""
    return bool(info["compiled"] and not info["fallback"] and all(info["graphs"].values()))
