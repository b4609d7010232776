"""One small staging function per model family: library model -> StagedModel.

Each function re-uses the library model's own modules (no copies), so weights loaded into the
library model before staging are the staged model's weights. Group rules:
- the head group is only the classifier's last Linear; pooling/flatten/dropout and any hidden
  fully connected layers sit in the stage before it;
- CNNs are grouped like ResNet's layer1..layer4 where the family has that structure, otherwise
  by output stride (4+stem, 8, 16, 32), so SWFT unfreezes comparable depths in every family.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable

import torch
import torchvision.models as tvm
from torch import nn

from thtl_bench.models.staged import StagedModel, StagingError

HEAD = "head"


def _seq(**modules: nn.Module | None) -> nn.Sequential:
    return nn.Sequential(OrderedDict((k, m) for k, m in modules.items() if m is not None))


def _dropout(p: float) -> nn.Module | None:
    return nn.Dropout(float(p)) if p and float(p) > 0 else None


def _stride(module: nn.Module) -> int:
    """Spatial downsampling factor of a feed-forward block (product of conv/pool strides)."""
    s = 1
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            st = m.stride[0] if isinstance(m.stride, tuple) else m.stride
            s *= int(st)
    return s


def _stride_group(cum_stride: int) -> str:
    # Output stride 4 and below joins the stem (as ResNet's layer1 + stem); 8, 16, 32 -> stage2..4.
    k = max(1, int(round(math.log2(max(cum_stride, 1)))) - 1)
    return "stage1_stem" if k <= 1 else f"stage{min(k, 4)}"


def _groups_by_stride(spatial: list[tuple[str, int]], top: str) -> list[tuple[str, list[str]]]:
    """Back-to-front groups from [(stage, cumulative stride)]; `top` joins the deepest group."""
    order: list[str] = []
    members: dict[str, list[str]] = {}
    for stage, stride in spatial:
        g = _stride_group(stride)
        if g not in members:
            order.append(g)
            members[g] = []
        members[g].append(stage)
    members[order[-1]].append(top)
    return [(HEAD, [HEAD])] + [(g, members[g]) for g in reversed(order)]


def _last_block_cams(groups, stage_modules: dict[str, nn.Module], skip=()) -> dict[str, nn.Module]:
    """CAM target per group: the last stage module of that group that yields a spatial map."""
    cams = {}
    for g, stages in groups[1:]:
        spatial = [s for s in stages if s not in skip]
        if spatial:
            cams[g] = stage_modules[spatial[-1]]
    return cams


# -- ResNet (torchvision and timm) ---------------------------------------------------------------
def stage_resnet(m: nn.Module, name: str) -> StagedModel:
    if isinstance(m, tvm.ResNet):
        stem = _seq(conv1=m.conv1, bn1=m.bn1, relu=m.relu, maxpool=m.maxpool)
        pool = dict(avgpool=m.avgpool, flatten=nn.Flatten(1), dropout=None)
    else:  # timm ResNet: act1, a flattening global_pool and an optional functional dropout
        stem = _seq(conv1=m.conv1, bn1=m.bn1, act1=m.act1, maxpool=m.maxpool)
        pool = dict(global_pool=m.global_pool, dropout=_dropout(getattr(m, "drop_rate", 0.0)))
    stages = [
        ("stem", stem),
        ("layer1", m.layer1),
        ("layer2", m.layer2),
        ("layer3", m.layer3),
        ("layer4", _seq(layer4=m.layer4, **pool)),
        (HEAD, m.fc),
    ]
    groups = [(HEAD, [HEAD]), ("layer4", ["layer4"]), ("layer3", ["layer3"]), ("layer2", ["layer2"]),
              ("layer1_stem", ["stem", "layer1"])]
    cams = {"layer4": m.layer4, "layer3": m.layer3, "layer2": m.layer2, "layer1_stem": m.layer1}
    return StagedModel(stages, groups, head_stage=HEAD, cam_layers=cams, name=name, family="resnet")


# -- VGG / AlexNet: features split after each MaxPool ----------------------------------------------
def stage_pooled_cnn(m: nn.Module, name: str) -> StagedModel:
    blocks: list[nn.Sequential] = []
    current: OrderedDict[str, nn.Module] = OrderedDict()
    for idx, layer in m.features.named_children():
        current[idx] = layer  # original index kept so keys read like the library's (features.<i>)
        if isinstance(layer, nn.MaxPool2d):
            blocks.append(nn.Sequential(current))
            current = OrderedDict()
    if current:
        raise StagingError(f"{name}: features do not end with a MaxPool; cannot split into blocks")
    classifier = list(m.classifier.children())
    if not isinstance(classifier[-1], nn.Linear):
        raise StagingError(f"{name}: classifier does not end with an nn.Linear")
    hidden = nn.Sequential(OrderedDict((str(i), c) for i, c in enumerate(classifier[:-1])))
    names = [f"block{i + 1}" for i in range(len(blocks))]
    stages = list(zip(names, blocks, strict=True))
    stages += [("fc", _seq(avgpool=m.avgpool, flatten=nn.Flatten(1), classifier=hidden)), (HEAD, classifier[-1])]
    # Conv groups back to front; with five blocks (VGG) the first two share a group, like ResNet's stem+layer1.
    conv_groups = [(n, [n]) for n in reversed(names)]
    if len(names) >= 5:
        conv_groups = conv_groups[:-2] + [("block1_2", [names[0], names[1]])]
    groups = [(HEAD, [HEAD]), ("fc", ["fc"])] + conv_groups
    # CAM on the last ReLU before each pool: twice the resolution of the pooled output.
    last_relu = {n: [c for c in b if isinstance(c, nn.ReLU)][-1] for n, b in stages[: len(blocks)]}
    cams = {g: last_relu[s[-1]] for g, s in conv_groups}
    family = "alexnet" if isinstance(m, tvm.AlexNet) else "vgg"
    return StagedModel(stages, groups, head_stage=HEAD, cam_layers=cams, name=name, family=family)


# -- GoogLeNet ---------------------------------------------------------------------------------------
class GoogLeNetInputTransform(nn.Module):
    """torchvision's GoogLeNet `transform_input`: ImageNet-normalised input -> the (x-0.5)/0.5 scale
    its ImageNet weights were trained on. Always on (parameter-free) so every init shares one graph."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c0 = x[:, 0:1] * (0.229 / 0.5) + (0.485 - 0.5) / 0.5
        c1 = x[:, 1:2] * (0.224 / 0.5) + (0.456 - 0.5) / 0.5
        c2 = x[:, 2:3] * (0.225 / 0.5) + (0.406 - 0.5) / 0.5
        return torch.cat((c0, c1, c2), 1)


def stage_googlenet(m: tvm.GoogLeNet, name: str) -> StagedModel:
    if m.aux1 is not None or m.aux2 is not None:
        raise StagingError(f"{name}: build GoogLeNet with aux_logits=False (aux heads are not staged)")
    if not m.transform_input:
        raise StagingError(f"{name}: build GoogLeNet with transform_input=True (the staged stem always applies it)")
    stages = [
        ("stem", _seq(transform_input=GoogLeNetInputTransform(), conv1=m.conv1, maxpool1=m.maxpool1,
                      conv2=m.conv2, conv3=m.conv3, maxpool2=m.maxpool2)),
        ("inception3", _seq(inception3a=m.inception3a, inception3b=m.inception3b, maxpool3=m.maxpool3)),
        ("inception4", _seq(inception4a=m.inception4a, inception4b=m.inception4b, inception4c=m.inception4c,
                            inception4d=m.inception4d, inception4e=m.inception4e, maxpool4=m.maxpool4)),
        ("inception5", _seq(inception5a=m.inception5a, inception5b=m.inception5b, avgpool=m.avgpool,
                            flatten=nn.Flatten(1), dropout=m.dropout)),
        (HEAD, m.fc),
    ]
    groups = [(HEAD, [HEAD]), ("inception5", ["inception5"]), ("inception4", ["inception4"]),
              ("inception3", ["inception3"]), ("stem", ["stem"])]
    cams = {"inception5": m.inception5b, "inception4": m.inception4e, "inception3": m.inception3b, "stem": m.conv3}
    return StagedModel(stages, groups, head_stage=HEAD, cam_layers=cams, name=name, family="googlenet")


# -- DenseNet: features split after each transition -------------------------------------------------
def stage_densenet(m: tvm.DenseNet, name: str) -> StagedModel:
    chunks: list[OrderedDict] = [OrderedDict()]
    for child_name, child in m.features.named_children():
        if child_name.startswith("denseblock"):
            chunks.append(OrderedDict())
        chunks[-1][child_name] = child
    stem, dense = chunks[0], chunks[1:]
    # torchvision applies relu + pooling functionally after `features`; modules here do the same.
    relu = nn.ReLU(inplace=False)
    dense[-1].update(relu=relu, avgpool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(1))
    names = [f"block{i + 1}" for i in range(len(dense))]
    stages = [("stem", nn.Sequential(stem))] + [(n, nn.Sequential(c)) for n, c in zip(names, dense, strict=True)]
    stages.append((HEAD, m.classifier))
    groups = [(HEAD, [HEAD])] + [(n, [n]) for n in reversed(names[1:])] + [("block1_stem", ["stem", names[0]])]
    # CAM per group: its dense block's output; the deepest group uses the final norm5 + relu map
    # (what the classifier pools).
    denseblock = {n: next(v for k, v in c.items() if k.startswith("denseblock")) for n, c in zip(names, dense, strict=True)}
    denseblock[names[-1]] = relu
    cams = {g: denseblock[ss[-1]] for g, ss in groups[1:]}
    return StagedModel(stages, groups, head_stage=HEAD, cam_layers=cams, name=name, family="densenet")


# -- MobileNetV2 (torchvision): inverted residuals grouped by output stride --------------------------
def stage_mobilenet_v2(m: tvm.MobileNetV2, name: str) -> StagedModel:
    chunks: OrderedDict[str, OrderedDict] = OrderedDict()
    cum = 1
    for idx, block in m.features.named_children():
        cum *= _stride(block)
        # stem = the stride-2 part; stage1 = stride 4; then stage2..4 = strides 8, 16, 32 (ResNet layout).
        stage_name = "stem" if cum <= 2 else ("stage1" if cum <= 4 else _stride_group(cum))
        chunks.setdefault(stage_name, OrderedDict())[idx] = block  # original feature index kept
    last = next(reversed(chunks))
    chunks[last].update(avgpool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(1), dropout=m.classifier[0])
    stages = [(s, nn.Sequential(mods)) for s, mods in chunks.items()] + [(HEAD, m.classifier[-1])]
    deep = [s for s in chunks if s not in ("stem", "stage1")]
    groups = [(HEAD, [HEAD])] + [(s, [s]) for s in reversed(deep)] + [("stage1_stem", ["stem", "stage1"])]
    last_block = {s: [c for k, c in mods.items() if k.isdigit()][-1] for s, mods in chunks.items()}
    cams = {g: last_block[ss[-1]] for g, ss in groups[1:]}
    return StagedModel(stages, groups, head_stage=HEAD, cam_layers=cams, name=name, family="mobilenet_v2")


# -- EfficientNet (torchvision features blocks; timm conv_stem/bn1/blocks/conv_head/bn2) -------------
def stage_efficientnet(m: nn.Module, name: str) -> StagedModel:
    if isinstance(m, tvm.EfficientNet):
        feats = list(m.features.children())
        stem, blocks, top_conv = feats[0], feats[1:-1], feats[-1]
        top = _seq(conv_head=top_conv, avgpool=m.avgpool, flatten=nn.Flatten(1), dropout=m.classifier[0])
        head, cam_top = m.classifier[-1], top_conv
    else:  # timm EfficientNet / MobileNetV2 / MNASNet-style models share this class
        stem = _seq(conv_stem=m.conv_stem, bn1=m.bn1)
        blocks = list(m.blocks.children())
        top = _seq(conv_head=m.conv_head, bn2=m.bn2, global_pool=m.global_pool,
                   dropout=_dropout(getattr(m, "drop_rate", 0.0)))
        head, cam_top = m.classifier, m.bn2
        if not isinstance(m.global_pool.flatten, nn.Flatten):
            raise StagingError(f"{name}: timm global_pool must flatten for the head stage to be a Linear")
    if not isinstance(head, nn.Linear):
        raise StagingError(f"{name}: classifier is not an nn.Linear")
    names = ["stem"] + [f"block{i + 1}" for i in range(len(blocks))]
    stages = [("stem", stem)] + list(zip(names[1:], blocks, strict=True)) + [("top", top), (HEAD, head)]
    cum, spatial = 1, []
    for n, mod in stages[:-2]:
        cum *= _stride(mod)
        spatial.append((n, cum))
    groups = _groups_by_stride(spatial, "top")
    mods = dict(stages)
    cams = _last_block_cams(groups, mods, skip=("top",))
    cams[groups[1][0]] = cam_top  # deepest group: the 1x1 head conv map the classifier pools
    family = "efficientnet" if isinstance(m, tvm.EfficientNet) else "timm_efficientnet"
    return StagedModel(stages, groups, head_stage=HEAD, cam_layers=cams, name=name, family=family)


# -- ViT (torchvision) ------------------------------------------------------------------------------
class ViTEmbed(nn.Module):
    """Patch embedding + class token + position embedding (+ its dropout): encoder input tokens."""

    def __init__(self, vit: tvm.VisionTransformer) -> None:
        super().__init__()
        self.conv_proj = vit.conv_proj
        self.class_token = vit.class_token
        self.pos_embedding = vit.encoder.pos_embedding
        self.dropout = vit.encoder.dropout
        self.image_size, self.patch_size, self.hidden_dim = vit.image_size, vit.patch_size, vit.hidden_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        torch._assert(h == self.image_size and w == self.image_size,
                      f"ViT built for {self.image_size}px input, got {h}x{w}")
        x = self.conv_proj(x).reshape(n, self.hidden_dim, -1).permute(0, 2, 1)
        x = torch.cat([self.class_token.expand(n, -1, -1), x], dim=1)
        return self.dropout(x + self.pos_embedding)


class ClassToken(nn.Module):
    """Selects the class token: (B, 1+HW, C) -> (B, C)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0]


class TokensToMap:
    """LayerCAM reshape for transformer blocks: drop the prefix (class/register) tokens,
    (B, prefix+HW, C) -> (B, C, H, W). A class, not a closure, so models stay picklable."""

    def __init__(self, prefix_tokens: int = 1) -> None:
        self.prefix_tokens = prefix_tokens

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n, t, c = x.shape
        side = math.isqrt(t - self.prefix_tokens)
        return x[:, self.prefix_tokens:].reshape(n, side, side, c).permute(0, 3, 1, 2)


def stage_vit(m: tvm.VisionTransformer, name: str, n_groups: int = 4) -> StagedModel:
    layers = list(m.encoder.layers.named_children())
    per = math.ceil(len(layers) / n_groups)
    chunks = [OrderedDict(layers[i:i + per]) for i in range(0, len(layers), per)]
    names = [f"blocks{i + 1}" for i in range(len(chunks))]
    heads = list(m.heads.named_children())
    pre_logits = OrderedDict((k, v) for k, v in heads[:-1])  # representation layer, if configured
    stages = [("embed", ViTEmbed(m))] + [(n, nn.Sequential(c)) for n, c in zip(names, chunks, strict=True)]
    stages += [("pool", _seq(ln=m.encoder.ln, cls_token=ClassToken(), **pre_logits)), (HEAD, heads[-1][1])]
    groups = [(HEAD, [HEAD]), (names[-1], [names[-1], "pool"])]
    groups += [(n, [n]) for n in reversed(names[1:-1])] + [(f"{names[0]}_embed", ["embed", names[0]])]
    by_name = dict(stages)
    cams = {g: by_name[next(s for s in ss if s.startswith("blocks"))][-1] for g, ss in groups[1:]}
    # After the last block only the class token reaches the head, so that block's output patch
    # tokens get zero gradient (a blank map); explain its input norm instead, as grad-cam's ViT
    # example does (blocks[-1].norm1).
    cams[names[-1]] = by_name[names[-1]][-1].ln_1
    return StagedModel(stages, groups, head_stage=HEAD, cam_layers=cams, name=name, family="vit",
                       cam_reshape=TokensToMap(1))


# -- Generic: any other torchvision/timm classifier = body + head ---------------------------------
def _set_submodule(root: nn.Module, path: str, new: nn.Module) -> None:
    parent, _, leaf = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, new)


def stage_generic(m: nn.Module, name: str, library: str) -> StagedModel:
    """Body (the library model with its last Linear swapped for Identity) + that Linear as head."""
    if library == "timm":
        path = m.pretrained_cfg.get("classifier") if hasattr(m, "pretrained_cfg") else None
        if not isinstance(path, str):
            raise StagingError(f"{name}: timm model has no single classifier ({path!r}); not supported")
    else:
        linears = [n for n, mod in m.named_modules() if isinstance(mod, nn.Linear)]
        if not linears:
            raise StagingError(f"{name}: no nn.Linear classifier found (e.g. a convolutional classifier); not supported")
        path = linears[-1]
    head = m.get_submodule(path)
    if not isinstance(head, nn.Linear):
        raise StagingError(f"{name}: classifier {path!r} is {type(head).__name__}, not an nn.Linear; not supported")
    _set_submodule(m, path, nn.Identity())
    cams = {}
    info = getattr(m, "feature_info", None)
    if library == "timm" and info:
        last = info[-1]["module"] if isinstance(info, list) else info.module_name(-1)
        cams["body"] = m.get_submodule(last)
    else:  # the deepest top-level child that holds a convolution: the last spatial map
        convs = [c for c in m.children() if any(isinstance(x, nn.Conv2d) for x in c.modules())]
        if convs:
            cams["body"] = convs[-1]
    # timm transformers emit token sequences; their prefix-token count tells how to make a map.
    prefix = getattr(m, "num_prefix_tokens", None)
    reshape = TokensToMap(int(prefix)) if library == "timm" and prefix is not None else None
    return StagedModel([("body", m), (HEAD, head)], [(HEAD, [HEAD]), ("body", ["body"])], head_stage=HEAD,
                       cam_layers=cams, name=name, family=f"generic_{library}", cam_reshape=reshape)


def _timm_classes(module: str, name: str) -> tuple[type, ...]:
    import importlib

    return (getattr(importlib.import_module(f"timm.models.{module}"), name),)


# One entry per family: (name, the library classes it serves, its staging function). The first
# match wins, so every torchvision or timm ResNet, say, gets ResNet groups; anything else is
# staged generically as body + head.
FAMILIES: tuple[tuple[str, Callable[[], tuple[type, ...]], Callable[[nn.Module, str], StagedModel]], ...] = (
    ("resnet", lambda: (tvm.ResNet, *_timm_classes("resnet", "ResNet")), stage_resnet),
    ("pooled_cnn", lambda: (tvm.VGG, tvm.AlexNet), stage_pooled_cnn),
    ("googlenet", lambda: (tvm.GoogLeNet,), stage_googlenet),
    ("densenet", lambda: (tvm.DenseNet,), stage_densenet),
    ("mobilenet_v2", lambda: (tvm.MobileNetV2,), stage_mobilenet_v2),
    ("efficientnet", lambda: (tvm.EfficientNet, *_timm_classes("efficientnet", "EfficientNet")), stage_efficientnet),
    ("vit", lambda: (tvm.VisionTransformer,), stage_vit),
)


def stage(m: nn.Module, name: str, library: str) -> StagedModel:
    """The family's staging of `m` (FAMILIES), else the generic body + head staging."""
    for _, classes, fn in FAMILIES:
        if isinstance(m, classes()):
            return fn(m, name)
    return stage_generic(m, name, library)
