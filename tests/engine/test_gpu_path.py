"""The GPU path on CPU (issue 22): a GPU profile fails fast when CUDA does not come up and says
why; records say what ran (device, precision, channels_last, whether compile ran compiled, the
determinism the run can claim); torch.compile stays compiled (one graph per callable per stage)
or records why not; the case identity holds CPU threads only where they change numbers.
CUDA-only settings are driven on CPU by patching `runtime.accelerated`; compile uses aot_eager."""

from __future__ import annotations

import contextlib
import copy
import sys
from pathlib import Path

import pytest
import torch
from support.engine import C, tiny
from torch import nn

import thtl_bench
from thtl_bench import config
from thtl_bench.engine import case as case_mod
from thtl_bench.engine import identity, loop, run_case, runners, runtime
from thtl_bench.errors import UserError
from thtl_bench.models.staged import StagedModel


def fake_tool(tmp_path, monkeypatch, name: str, body: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    tool = bin_dir / name
    tool.write_text("#!/usr/bin/env bash\n" + body)
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")


SMI = """if [ "$1" = -L ]; then echo 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-x)'; exit 0; fi
echo '| NVIDIA-SMI 570.86.15   Driver Version: 570.86.15   CUDA Version: {cuda}  |'
"""


# -- 1. fail fast, say why ------------------------------------------------------------------------
def test_the_paper_profile_asks_for_cuda_and_never_falls_back(cfg, monkeypatch, tmp_path):
    paper = config.load(config.DEFAULT_PARAMS, "paper")["train"]
    assert paper["device"] == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    fake_tool(tmp_path, monkeypatch, "nvidia-smi", SMI.format(cuda="12.8"))
    with pytest.raises(UserError, match="CUDA did not come up") as exc:
        runtime.resolve_device(paper)
    assert "-S train.device=cpu" in str(exc.value) and "driver 570.86.15 supports CUDA up to 12.8" in str(exc.value)
    # A case of a CUDA profile stops before any work, with no record and no checkpoint.
    cfg["train"]["device"] = "cuda"
    with pytest.raises(UserError, match="CUDA did not come up"):
        run_case(cfg, C("tiny", "onestep_last"))
    assert not list(tmp_path.rglob("*.json")) and not list(tmp_path.rglob("*.pt"))
    # auto (the CPU default) takes the CPU when CUDA is absent.
    assert runtime.resolve_device({"device": "auto"}).type == "cpu"


@pytest.mark.parametrize("driver_cuda,too_old", [("12.8", True), ("13.0", False)])
def test_diagnosis_compares_the_wheels_cuda_with_the_driver(monkeypatch, tmp_path, driver_cuda, too_old):
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.cuda, "init", lambda: (_ for _ in ()).throw(RuntimeError("Found no NVIDIA driver")))
    fake_tool(tmp_path, monkeypatch, "nvidia-smi", SMI.format(cuda=driver_cuda))
    lines = runtime.cuda_diagnosis()
    text = "\n".join(lines)
    assert f"supports CUDA up to {driver_cuda}; this torch is built for CUDA 13.0" in text
    assert ("driver is too old" in text) is too_old
    assert "NVIDIA H100" in text and "torch says: Found no NVIDIA driver" in text


def test_diagnosis_without_a_driver_or_with_every_gpu_masked(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setattr(torch.version, "cuda", None)
    text = "\n".join(runtime.cuda_diagnosis())
    assert "CPU-only build" in text and "nvidia-smi not found" in text and "--gpus all" in text
    assert "hides every GPU" in text


def test_records_say_what_ran(cfg):
    rec = run_case(cfg, C("tiny", "swft"))
    env = rec["env"]
    assert env["device"] == "cpu" and env["precision"] == "fp32"
    assert env["channels_last"] is bool(cfg["train"]["channels_last"])  # a setting on CPU too
    assert env["compile"] is False
    detail = env["compile_detail"]
    assert detail["requested"] is False and detail["active"] is False and "false" in detail["reason"]
    assert [s["stage"] for s in detail["stages"]] == [f"step{k}" for k in range(1, 5)]
    assert env["determinism"]["bitwise"] is True and "bitwise deterministic" in env["determinism"]["statement"]


# -- 3. compile that stays compiled ----------------------------------------------------------------
@pytest.fixture
def compiled_cfg(cfg, monkeypatch):
    """compile on, as on CUDA (accelerated), with aot_eager; one compile per callable allowed:
    any recompile within a stage is a hard error."""
    monkeypatch.setattr(runtime, "accelerated", lambda device: True)
    monkeypatch.setattr(runners, "BACKEND", "aot_eager")
    monkeypatch.setattr(torch._dynamo.config, "recompile_limit", 1)
    cfg["train"].update(compile=True, precision="bf16", channels_last=True, batch_size=6)
    return cfg


@pytest.mark.parametrize("arm", ["scratch", "onestep_last", "swft"])
def test_compiled_stages_compile_once_per_callable_and_stay_compiled(compiled_cfg, arm):
    # batch 6 leaves a partial last batch and splits of unequal sizes: every shape the eager loop
    # would feed differs, so a missing static shape would recompile and fail here.
    rec = run_case(compiled_cfg, C("tiny", arm))
    assert rec["status"] == "ok"
    detail = rec["env"]["compile_detail"]
    assert rec["env"]["compile"] is True and detail["active"] and detail["backend"] == "aot_eager"
    assert detail["stages"] and all(s["graphs"] == {"train": 1, "eval": 1} and s["ran_compiled"]
                                    and not s["fallback"] for s in detail["stages"])
    assert identity.case_config(compiled_cfg, C("tiny", arm))["execution"]["compile"] is True


def test_without_static_shapes_the_recompile_is_caught_not_silent(compiled_cfg, monkeypatch):
    # The planted defect: training batches with a partial last batch (the eager loop's) under compile.
    real = loop.batch_bounds
    monkeypatch.setattr(loop, "batch_bounds", lambda n, bs, static=False: real(n, bs, False))
    with pytest.raises(UserError, match="recompiled the train callable past"):
        run_case(compiled_cfg, C("tiny", "scratch"))


def test_padded_evaluation_equals_the_unpadded_one(cfg):
    model = tiny("tiny", 2, "random", cfg).eval()
    images = torch.randint(0, 256, (11, 32, 32, 3), dtype=torch.uint8)
    labels = torch.arange(11) % 2
    splits = {s: (images, labels) for s in ("train", "val", "test")}
    feeder = loop.Feeder(model, [], splits, device=torch.device("cpu"), amp=None, batch_size=4, aug_cfg={},
                         augment_train=False, cache=False, views=1, view_seed=0, channels_last=False,
                         aug_gen=torch.Generator(), max_cache_bytes=0.0)
    ctx = loop.Ctx(slug="x", train={"batch_size": 4}, device=torch.device("cpu"), amp=None, gens={}, seed=0, save=None)
    plain = loop.predict(model, model, feeder, "val", ctx, static=False)
    padded = loop.predict(model, model, feeder, "val", ctx, static=True)
    assert plain[1].shape == padded[1].shape == (11, 2)
    assert abs(plain[0] - padded[0]) < 1e-6 and abs(plain[1] - padded[1]).max() < 1e-6


def test_static_training_batches_have_one_size():
    assert loop.batch_bounds(20, 8, static=True) == [(0, 8), (8, 16)]
    assert loop.batch_bounds(5, 8, static=True) == [(0, 5)]  # smaller than a batch: one batch
    assert loop.batch_bounds(17, 8) == [(0, 8), (8, 17)]  # eager: a 1-row batch is folded in
    assert loop.batch_bounds(20, 8) == [(0, 8), (8, 16), (16, 20)]


class Breaks(nn.Module):
    def forward(self, x):
        torch._dynamo.graph_break()
        return x


def test_a_model_that_cannot_be_captured_runs_eager_and_the_record_says_why(compiled_cfg, monkeypatch):
    def breaking(name, k, init, c):
        net = tiny(name, k, init, c)
        stages = [(n, nn.Sequential(Breaks(), m) if n == "top" else m) for n, m in net.stages.items()]
        return StagedModel(stages, net.groups, head_stage="fc", cam_layers={}, name=name, family="tiny",
                           weights_info=net.weights_info)

    monkeypatch.setattr(case_mod, "build_model", breaking)
    rec = run_case(compiled_cfg, C("tiny", "scratch"))
    assert rec["status"] == "ok" and rec["env"]["compile"] is False
    (stage,) = rec["env"]["compile_detail"]["stages"]
    assert not stage["ran_compiled"] and len(stage["fallback"]) == 2
    assert all("not compiled, ran eager" in f for f in stage["fallback"])


# -- 4. determinism per profile ----------------------------------------------------------------
def test_determinism_is_stated_per_device_and_strict_where_claimed():
    smoke, paper = (config.load(config.DEFAULT_PARAMS, p)["train"] for p in ("smoke", "paper"))
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert runtime.determinism(smoke, cpu)["bitwise"] is True
    gpu = runtime.determinism(paper, cuda)
    assert gpu["bitwise"] is False and gpu["cudnn_benchmark"] is True
    assert gpu["statement"].startswith("not bitwise deterministic") and "seeds are fixed" in gpu["statement"]
    before = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    try:
        runtime.configure(paper, cuda)  # flags only: no CUDA call
        assert torch.backends.cudnn.benchmark and not torch.are_deterministic_algorithms_enabled()
        runtime.configure(smoke, cpu)
        assert torch.are_deterministic_algorithms_enabled()
        assert not torch.is_deterministic_algorithms_warn_only_enabled()  # strict: a claim that holds
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = before


def test_a_kernel_without_a_deterministic_version_is_a_clear_error(cfg, monkeypatch):
    def refuse(*a, **k):
        raise RuntimeError("adaptive_avg_pool2d_backward_cuda does not have a deterministic implementation, but "
                           "you set 'torch.use_deterministic_algorithms(True)'")

    monkeypatch.setattr(loop, "_fit", refuse)
    with pytest.raises(UserError, match="train.deterministic=false"):
        run_case(cfg, C("tiny", "scratch"))


# -- 5. identity: CPU threads on CPU only ---------------------------------------------------------
def test_cpu_threads_are_part_of_a_cpu_case_only(cfg):
    def cid(device: str, threads: int) -> str:
        c = copy.deepcopy(cfg)
        c["train"].update(device=device, num_threads=threads)
        return identity.case_id(c, C("tiny", "onestep_all"))

    assert cid("cpu", 1) != cid("cpu", 3)
    # A CUDA case (computed here without CUDA: the id is the asked-for device's) ignores threads.
    assert cid("cuda", 1) == cid("cuda", 3) == cid("cuda:0", 0)
    assert cid("cuda", 1) != cid("cpu", 1)
    c = copy.deepcopy(cfg)
    c["train"]["device"] = "cuda"
    ex = identity.case_config(c, C("tiny", "onestep_all"))["execution"]
    assert ex["device"] == "cuda" and "threads" not in ex


# -- 2. no host round trip inside the steps ---------------------------------------------------------
@pytest.fixture
def round_trips(monkeypatch):
    """On CPU, the regions `runtime.sync_check` marks (where CUDA's sync debug mode is "error"
    under scripts/gpu_check.sh) record every call that on a GPU is a blocking host round trip,
    made by the watched code: `.item()`, float()/int()/bool() of a tensor, `.cpu()`, `.numpy()`,
    `.tolist()`. torch's own host-side bookkeeping (e.g. the optimizer's CPU step counters) is not
    the engine's and is not watched."""
    state = {"depth": 0, "hits": [], "watch": [str(Path(thtl_bench.__file__).parent)], "regions": []}

    @contextlib.contextmanager
    def marked(device, mode=None):
        state["regions"].append(sys._getframe(2).f_code.co_name)  # who marked it
        state["depth"] += 1
        try:
            yield
        finally:
            state["depth"] -= 1

    monkeypatch.setattr(runtime, "sync_check", marked)
    for name in ("item", "__float__", "__int__", "__bool__", "cpu", "numpy", "tolist"):
        real = getattr(torch.Tensor, name)

        def guard(self, *a, _real=real, _name=name, **k):
            caller = sys._getframe(1).f_code
            if state["depth"] and caller.co_filename.startswith(tuple(state["watch"])):
                state["hits"].append(f"{_name} in {caller.co_name} ({Path(caller.co_filename).name})")
            return _real(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, guard)
    return state


@pytest.mark.parametrize("arm", ["scratch", "onestep_last", "swft"])
def test_steps_evaluation_and_cache_build_make_no_host_round_trip(cfg, round_trips, arm):
    cfg["train"]["head_only_views"] = 2  # the multi-view cache build and view indices too
    assert run_case(cfg, C("tiny", arm))["status"] == "ok"
    assert round_trips["hits"] == []
    marked = set(round_trips["regions"])  # epochs' steps, every evaluation, and the cache build where used
    assert {"_fit", "predict"} <= marked and (arm == "scratch") != ("_build" in marked)


def test_a_round_trip_inside_a_step_is_caught(cfg, round_trips, monkeypatch):
    round_trips["watch"].append(__file__)
    real = loop.train_step

    def chatty(*a, **k):
        loss = real(*a, **k)
        float(loss)  # the planted defect: a per-step sync
        return loss

    monkeypatch.setattr(loop, "train_step", chatty)
    run_case(cfg, C("tiny", "scratch"))
    assert round_trips["hits"] and all(h.startswith("__float__ in chatty") for h in round_trips["hits"])
