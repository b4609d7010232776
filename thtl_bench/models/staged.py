"""StagedModel: a classifier cut into an ordered chain of stages, with back-to-front groups.

Every arm and the feature cache see a model only through this interface: the engine trains a set
of groups, runs the frozen prefix once (`forward_range`) and the trainable suffix every step;
LayerCAM reads `cam_layers`. The stage chain must compute exactly what the library model computes
(tests/test_models.py checks it numerically for every family).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from thtl_bench.errors import UserError


class StagingError(UserError):
    """A model, group or stage name that the staged interface cannot serve."""


class SWFTUnsupported(StagingError):
    """SWFT asked for on a model whose staging has fewer than three groups."""


def describe_keys(keys: Iterable[str], limit: int = 8) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def state_dict_problems(module: nn.Module, state_dict: dict, skip: Iterable[str] = ()) -> list[str]:
    """Missing, unexpected and wrongly shaped keys of `state_dict` for `module` (empty = loads strictly)."""
    skip = set(skip)
    own = {k: v for k, v in module.state_dict().items() if k not in skip}
    given = {k: v for k, v in state_dict.items() if k not in skip}
    problems = []
    missing = own.keys() - given.keys()
    unexpected = given.keys() - own.keys()
    shapes = [f"{k} {tuple(given[k].shape)} != {tuple(own[k].shape)}"
              for k in sorted(own.keys() & given.keys())
              if hasattr(given[k], "shape") and tuple(given[k].shape) != tuple(own[k].shape)]
    if missing:
        problems.append(f"missing keys ({len(missing)}): {describe_keys(missing)}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {describe_keys(unexpected)}")
    if shapes:
        problems.append(f"shape mismatches ({len(shapes)}): {describe_keys(shapes)}")
    return problems


class StagedModel(nn.Module):
    """An ordered chain of stages; `forward` composes all of them.

    groups: `[(group_name, [stage names in forward order])]` from BACK to FRONT; groups[0] is the
    head group holding only `head_stage`, the classifier's last `nn.Linear`.
    cam_layers: `{group_name: module}` whose output is that group's spatial feature map (groups
    without one, e.g. VGG's fully connected block, are absent). `cam_reshape` turns a token
    sequence into a (B, C, H, W) map for transformer families (None for CNNs).
    """

    def __init__(
        self,
        stages: list[tuple[str, nn.Module]],
        groups: list[tuple[str, list[str]]],
        *,
        head_stage: str,
        cam_layers: dict[str, nn.Module],
        name: str,
        family: str,
        cam_reshape: Callable[[torch.Tensor], torch.Tensor] | None = None,
        weights_info: dict | None = None,
    ) -> None:
        super().__init__()
        self.stages = nn.ModuleDict(stages)
        self.groups = [(g, list(s)) for g, s in groups]
        self.head_stage = head_stage
        self.name = name
        self.family = family
        self.cam_reshape = cam_reshape
        self.weights_info = dict(weights_info or {"init": "random"})
        self._check_layout()
        # Keep CAM targets as paths, not module references, so deepcopy/pickle/replace_head stay consistent.
        paths = {id(m): n for n, m in self.named_modules()}
        missing = [g for g, m in cam_layers.items() if id(m) not in paths]
        if missing:
            raise StagingError(f"{name}: cam layer(s) of group(s) {missing} are not inside the stages")
        self._cam_paths = {g: paths[id(m)] for g, m in cam_layers.items()}

    def _check_layout(self) -> None:
        names = list(self.stages)
        if names[-1] != self.head_stage or not isinstance(self.stages[self.head_stage], nn.Linear):
            raise StagingError(f"{self.name}: the head stage {self.head_stage!r} must be the last stage and an nn.Linear")
        if self.groups[0][1] != [self.head_stage]:
            raise StagingError(f"{self.name}: the first group must hold only the head stage, got {self.groups[0]}")
        flat = [s for _, stages in reversed(self.groups) for s in stages]
        if flat != names:
            raise StagingError(f"{self.name}: groups (back to front) {self.groups} do not tile the stages {names} in order")

    # -- running ----------------------------------------------------------------------------
    @property
    def stage_names(self) -> list[str]:
        return list(self.stages)

    @property
    def group_names(self) -> list[str]:
        return [g for g, _ in self.groups]

    @property
    def num_classes(self) -> int:
        return self.stages[self.head_stage].out_features

    def stage_index(self, stage: int | str) -> int:
        if isinstance(stage, int):
            if not 0 <= stage <= len(self.stages):
                raise StagingError(f"{self.name}: stage index {stage} outside 0..{len(self.stages)}")
            return stage
        try:
            return self.stage_names.index(stage)
        except ValueError:
            raise StagingError(f"{self.name}: unknown stage {stage!r}; stages: {self.stage_names}") from None

    def forward_range(self, x: torch.Tensor, start: int | str = 0, stop: int | str | None = None) -> torch.Tensor:
        """Run stages [start, stop) (indices or stage names; stop=None runs to the end)."""
        i = self.stage_index(start)
        j = len(self.stages) if stop is None else self.stage_index(stop)
        for stage in list(self.stages.values())[i:j]:
            x = stage(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_range(x)

    # -- groups ------------------------------------------------------------------------------
    def stages_of(self, groups: Iterable[str]) -> list[str]:
        """Stage names (forward order) belonging to `groups`; unknown group names are an error."""
        table = dict(self.groups)
        groups = list(groups)
        unknown = [g for g in groups if g not in table]
        if unknown:
            raise StagingError(f"{self.name}: unknown group(s) {unknown}; groups back to front: {self.group_names}")
        wanted = {s for g in groups for s in table[g]}
        return [s for s in self.stage_names if s in wanted]

    @property
    def cam_layers(self) -> dict[str, nn.Module]:
        return {g: self.get_submodule(p) for g, p in self._cam_paths.items()}

    # -- head and weights --------------------------------------------------------------------
    def replace_head(self, num_classes: int) -> nn.Linear:
        """A fresh Linear head (same in_features); its init draws from the caller's torch RNG."""
        old = self.stages[self.head_stage]
        new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
        new.to(device=old.weight.device, dtype=old.weight.dtype)
        self.stages[self.head_stage] = new
        self.weights_info["head"] = {
            "stage": self.head_stage,
            "replaced": True,
            "from_classes": old.out_features,
            "to_classes": num_classes,
            "not_loaded": [f"stages.{self.head_stage}.{k}" for k, _ in new.named_parameters()],
        }
        return new

    @torch.no_grad()
    def init_head(self, std: float, generator: torch.Generator) -> dict:
        """Every arm's new head from one distribution: weights N(0, std^2) drawn from `generator`
        (seeded by the case), bias zero. Whatever the library's own head init would be (timm's
        efficientnet heads are U(+-1/sqrt(fan_out)), torchvision's Linear U(+-1/sqrt(fan_in))), arms
        starting from random, ImageNet or parent weights then begin alike, with logits near 0 and
        a first loss near ln(C). Returns the head's statistics for the record."""
        head = self.stages[self.head_stage]
        w = torch.randn(head.weight.shape, generator=generator, dtype=torch.float32) * float(std)
        head.weight.copy_(w.to(head.weight.device, head.weight.dtype))
        if head.bias is not None:
            head.bias.zero_()
        return {"std": float(std), "weight_std": float(w.std()), "weight_mean": float(w.mean()),
                "shape": list(head.weight.shape)}

    def head_keys(self) -> list[str]:
        return [f"stages.{self.head_stage}.{k}" for k in self.stages[self.head_stage].state_dict()]

    def load_strict(self, state_dict: dict, *, except_head: bool = False, what: str = "checkpoint") -> list[str]:
        """Load a StagedModel state dict strictly; with except_head the head is left as is.

        Returns the head keys that were not loaded (empty unless except_head). Any other missing,
        unexpected or mis-shaped key raises StagingError naming the keys.
        """
        skip = self.head_keys() if except_head else []
        problems = state_dict_problems(self, state_dict, skip)
        if problems:
            raise StagingError(f"{what} does not fit {self.name} ({self.family}): " + "; ".join(problems))
        body = {k: v for k, v in state_dict.items() if k not in skip}
        self.load_state_dict(body, strict=not except_head)
        return skip


def first_trainable_stage(model: StagedModel, trainable_groups: Iterable[str]) -> int:
    """Index of the first stage the given groups train; stages before it form a frozen prefix.

    With no trainable group it is len(model.stages) (everything frozen).
    """
    names = model.stages_of(trainable_groups)
    return model.stage_index(names[0]) if names else len(model.stages)


def swft_groups(model: StagedModel) -> list[str]:
    """Group names back to front for SWFT's cumulative unfreezing; needs at least three groups."""
    if len(model.groups) < 3:
        raise SWFTUnsupported(
            f"SWFT needs at least three layer groups but {model.name} has a generic staging "
            f"({model.group_names}): its family has no group definition. Families with one: "
            "resnet, vgg/alexnet, googlenet, densenet, mobilenet_v2/efficientnet (torchvision and "
            "timm), vit (torchvision)."
        )
    return model.group_names
