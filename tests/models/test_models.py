"""Model registry and staged models: the stage chain must be the library model, group by group."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from thtl_bench import models
from thtl_bench.errors import UserError
from thtl_bench.models.staging import stage

EXPECTED_GROUPS = {
    "alexnet": ["head", "fc", "block3", "block2", "block1"],
    "vgg16": ["head", "fc", "block5", "block4", "block3", "block1_2"],
    "googlenet": ["head", "inception5", "inception4", "inception3", "stem"],
    "resnet18": ["head", "layer4", "layer3", "layer2", "layer1_stem"],
    "resnet50": ["head", "layer4", "layer3", "layer2", "layer1_stem"],
    "densenet121": ["head", "block4", "block3", "block2", "block1_stem"],
    "mobilenet_v2": ["head", "stage4", "stage3", "stage2", "stage1_stem"],
    "efficientnet_b0": ["head", "stage4", "stage3", "stage2", "stage1_stem"],
    "vit_b_16": ["head", "blocks4", "blocks3", "blocks2", "blocks1_embed"],
    "efficientnet_lite0": ["head", "stage4", "stage3", "stage2", "stage1_stem"],
    "efficientnet_lite1": ["head", "stage4", "stage3", "stage2", "stage1_stem"],
    "efficientnet_lite2": ["head", "stage4", "stage3", "stage2", "stage1_stem"],
}


def _size(spec: models.ModelSpec) -> int:
    # Smallest convenient input: 32 px, AlexNet's minimum 63 -> 64; the ViT is built for 32 px.
    return 64 if spec.min_size > 32 and not spec.fixed_size else 32


def _randomise(model: nn.Module, seed: int = 0) -> None:
    """O(1)-scale random weights and BatchNorm statistics everywhere. Library inits are degenerate
    for this check (zero ViT head, near-zero GoogLeNet/MobileNet outputs), so a wrong stage
    chain could still match them within tolerance."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in model.modules():
            for pname, p in mod.named_parameters(recurse=False):
                if p.dim() >= 2:
                    p.copy_(torch.randn(p.shape, generator=g) * p[0].numel() ** -0.5)
                else:
                    p.copy_((1.0 if pname == "weight" else 0.0) + 0.2 * torch.randn(p.shape, generator=g))
            if isinstance(mod, nn.modules.batchnorm._NormBase) and mod.running_mean is not None:
                mod.running_mean.copy_(0.1 * torch.randn(mod.running_mean.shape, generator=g))
                mod.running_var.copy_(0.5 + torch.rand(mod.running_var.shape, generator=g))


def _library_and_staged(name: str, num_classes: int = 3):
    spec = models.get(name)
    size = _size(spec)
    torch.manual_seed(0)
    ref = models.library_model(spec, num_classes, image_size=size).eval()
    _randomise(ref)
    staged = stage(copy.deepcopy(ref), spec.name, spec.library).eval()
    return spec, ref, staged, torch.randn(2, 3, size, size)


def _check_equivalent_and_layout(name: str, expected_groups: list[str] | None) -> None:
    spec, ref, staged, x = _library_and_staged(name)
    with torch.no_grad():
        want = ref(x)
        got = staged(x)
        assert want.std() > 1e-2  # a non-degenerate output, so the comparison means something
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
        # Any cut point: prefix features then suffix == full forward (the engine's feature cache).
        for k in range(1, len(staged.stages)):
            torch.testing.assert_close(staged.forward_range(staged.forward_range(x, 0, k), k), got, rtol=1e-5, atol=1e-6)

    head = staged.stages[staged.head_stage]
    assert staged.stage_names[-1] == staged.head_stage and isinstance(head, nn.Linear)
    assert staged.groups[0] == ("head", [staged.head_stage])
    # Back to front: each group's stages come strictly before those of the group listed before it.
    idx = [[staged.stage_index(s) for s in stages] for _, stages in staged.groups]
    assert all(max(later) < min(earlier) for earlier, later in zip(idx, idx[1:], strict=False))
    assert sorted(i for group in idx for i in group) == list(range(len(staged.stages)))
    if expected_groups is not None:
        assert staged.group_names == expected_groups

    # CAM layers fire during forward and give a spatial map (transformers via cam_reshape).
    maps = {}
    hooks = [m.register_forward_hook(lambda _m, _i, out, g=g: maps.__setitem__(g, out))
             for g, m in staged.cam_layers.items()]
    with torch.no_grad():
        staged(x)
    for h in hooks:
        h.remove()
    assert set(maps) == set(staged.cam_layers) and maps
    for g, out in maps.items():
        out = staged.cam_reshape(out) if staged.cam_reshape else out
        assert out.dim() == 4 and out.shape[0] == 2, (g, tuple(out.shape))


@pytest.mark.parametrize("name", models.MODELS)
def test_default_model_stages_equal_library_forward(name):
    _check_equivalent_and_layout(name, EXPECTED_GROUPS[name])


def test_canonical_order_and_swft_groups():
    assert models.MODELS == ["alexnet", "vgg16", "googlenet", "resnet18", "resnet50", "densenet121",
                             "mobilenet_v2", "efficientnet_b0", "vit_b_16", "efficientnet_lite0",
                             "efficientnet_lite1", "efficientnet_lite2"]
    m = models.build("resnet18", 2)
    assert models.swft_groups(m) == ["head", "layer4", "layer3", "layer2", "layer1_stem"]
    assert m.stages_of(["layer1_stem"]) == ["stem", "layer1"]
    assert m.weights_info["init"] == "random" and m.num_classes == 2
    assert m.cam_layers == {"layer4": m.stages["layer4"].layer4, "layer3": m.stages["layer3"],
                            "layer2": m.stages["layer2"], "layer1_stem": m.stages["layer1"]}


def test_unknown_model_lists_valid_names():
    with pytest.raises(UserError) as exc:
        models.get("resnet19")
    msg = str(exc.value)
    for name in models.MODELS:
        assert name in msg
    assert "tv:NAME" in msg and "timm:NAME" in msg and "resnet18" in msg.split("Did you mean")[1]
    with pytest.raises(UserError):
        models.get("timm:no_such_model_xyz")


def test_bare_and_prefixed_names_resolve_to_canonical_specs():
    assert models.get("mobilenet_v3_small").name == "tv:mobilenet_v3_small"
    assert models.get("test_vit").name == "timm:test_vit"
    assert models.get("timm:resnet10t").library == "timm"
    spec = models.get("tv:resnet18")
    assert spec.name == "tv:resnet18" and not spec.default and spec.file_stem == "tv-resnet18"


def test_timm_resnet_gets_resnet_staging():
    _check_equivalent_and_layout("timm:resnet10t", EXPECTED_GROUPS["resnet18"])


@pytest.mark.parametrize("name", ["tv:mobilenet_v3_small", "timm:test_vit"])
def test_generic_models_have_body_and_head_and_refuse_swft(name):
    _check_equivalent_and_layout(name, ["head", "body"])
    m = models.build(name, 4, image_size=32).eval()  # eval: batch of 1 through BatchNorm
    assert m.family.startswith("generic_") and m(torch.randn(1, 3, 32, 32)).shape == (1, 4)
    with pytest.raises(models.SWFTUnsupported, match="at least three layer groups"):
        models.swft_groups(m)
    assert models.first_trainable_stage(m, ["head"]) == 1


def test_first_trainable_stage_and_forward_range_names():
    m = models.build("resnet18", 2).eval()
    assert models.first_trainable_stage(m, ["head"]) == m.stage_index("head") == 5
    assert models.first_trainable_stage(m, ["head", "layer4"]) == 4
    assert models.first_trainable_stage(m, m.group_names) == 0
    assert models.first_trainable_stage(m, []) == len(m.stages)
    with pytest.raises(models.StagingError, match="unknown group"):
        models.first_trainable_stage(m, ["layer9"])
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        feats = m.forward_range(x, 0, "head")
        assert feats.shape == (1, 512)
        torch.testing.assert_close(m.forward_range(feats, "head"), m(x))


def test_replace_head_is_new_linear_seeded_by_caller():
    m = models.build("resnet18", 2)
    old = m.stages["head"]
    torch.manual_seed(7)
    new = m.replace_head(5)
    assert new is m.stages["head"] and new is not old
    assert (new.in_features, new.out_features) == (512, 5) and m.num_classes == 5
    assert m.weights_info["head"]["from_classes"] == 2 and m.weights_info["head"]["not_loaded"] == [
        "stages.head.weight", "stages.head.bias"]
    torch.manual_seed(7)
    again = m.replace_head(5)
    torch.testing.assert_close(again.weight, new.weight)
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 5)


def test_build_is_deterministic_under_the_callers_seed():
    torch.manual_seed(3)
    a = models.build("efficientnet_lite0", 2)
    torch.manual_seed(3)
    b = models.build("efficientnet_lite0", 2)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)


def test_load_strict_names_keys_and_can_skip_only_the_head():
    src = models.build("resnet18", 5)
    dst = models.build("resnet18", 2)
    sd = src.state_dict()
    with pytest.raises(models.StagingError, match=r"stages\.head\.weight \(5, 512\) != \(2, 512\)"):
        dst.load_strict(sd)
    skipped = dst.load_strict(sd, except_head=True)
    assert skipped == ["stages.head.weight", "stages.head.bias"]
    assert torch.equal(dst.stages["layer4"][0][0].conv1.weight, src.stages["layer4"][0][0].conv1.weight)
    broken = {k: v for k, v in sd.items() if k != "stages.layer2.0.bn1.running_mean"}
    broken["stages.extra.weight"] = torch.zeros(1)
    with pytest.raises(models.StagingError) as exc:
        dst.load_strict(broken, except_head=True)
    assert "stages.layer2.0.bn1.running_mean" in str(exc.value) and "stages.extra.weight" in str(exc.value)


def test_staged_model_rejects_inconsistent_layouts():
    stages = [("body", nn.Sequential(nn.Flatten(1))), ("head", nn.Linear(12, 2))]
    with pytest.raises(models.StagingError, match="do not tile"):
        models.StagedModel(stages, [("head", ["head"])], head_stage="head", cam_layers={}, name="t", family="t")
    with pytest.raises(models.StagingError, match="must be the last stage"):
        models.StagedModel(list(reversed(stages)), [("head", ["head"]), ("body", ["body"])], head_stage="head",
                           cam_layers={}, name="t", family="t")
    with pytest.raises(models.StagingError, match="not inside the stages"):
        models.StagedModel(stages, [("head", ["head"]), ("body", ["body"])], head_stage="head",
                           cam_layers={"body": nn.ReLU()}, name="t", family="t")


def test_bad_build_arguments_are_user_errors():
    with pytest.raises(UserError, match="unknown init"):
        models.build("resnet18", 2, init="imagenet21k")
    with pytest.raises(UserError, match="divisible by its patch size"):
        models.build("vit_b_16", 2, image_size=40)
