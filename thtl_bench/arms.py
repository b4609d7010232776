"""Transfer arms: the whole arm policy in one place (torch-free).

An arm says where its start weights come from, which layer groups train, at which learning
rates, for how many epochs, in which stages (SWFT: several), and what a case of it costs. The
engine asks only this module; the report reads the same fields. The canonical order of `ARMS` is
the row order of every table.

The budget rule (BUDGET_RULE, in words in REPORT.md): every stage of every arm, each SWFT step
included, trains under the same convergence criterion: at most `train.max_epochs` epochs,
stopping once the validation loss has not improved for `train.patience` epochs, and not before
`train.min_epochs` in a stage that starts a new head (SWFT steps after the first continue from
trained weights: at least `train.patience`); its learning rates warm up linearly over `train.warmup_epochs`, then
follow `train.schedule` over the rest of the budget. So the two sides of every claim get the
same criterion, whatever their cost per epoch. SWFT step k trains every group at its base lr x
`train.swft_lr_decay`^(k-1): step 1 is THTL last-layer's recipe, and each later step, which
unfreezes an earlier group, moves the weights less, so it refines rather than undoes the step
before.
"""

from __future__ import annotations

from dataclasses import dataclass

from thtl_bench.errors import UserError

INITS = ("random", "imagenet", "parent")
TRAINABLE = ("head", "all", "swft")


@dataclass(frozen=True)
class Arm:
    name: str
    trains_on: str  # target | intermediate (THTL step 1)
    init: str  # random | imagenet | parent
    trainable: str  # head | all | swft (cumulative groups, back to front)
    parent: str | None = None  # arm whose best checkpoint is the start (init == "parent")
    # Keys of params.yaml `train:` giving the lr of the head group and of every other group.
    head_lr: str = "lr_head"
    body_lr: str = "lr_backbone"
    cost: float = 1.0  # relative cost of one case (all-layer case = 1): shard balance, ETAs

    def __post_init__(self) -> None:
        if self.init not in INITS or self.trainable not in TRAINABLE or self.trains_on not in ("target", "intermediate"):
            raise ValueError(f"arm {self.name}: trains_on {self.trains_on!r} / init {self.init!r} / "
                             f"trainable {self.trainable!r}")
        if (self.init == "parent") != (self.parent is not None):
            raise ValueError(f"arm {self.name}: a parent is needed exactly when init is 'parent'")

    def lrs(self, train_cfg: dict) -> tuple[float, float]:
        """(head lr, body lr) from the train section."""
        return float(train_cfg[self.head_lr]), float(train_cfg[self.body_lr])

    @property
    def via_intermediate(self) -> bool:
        """Whether a case of this arm depends on an intermediate domain (THTL step 1 and its children)."""
        return self.trains_on == "intermediate" or self.init == "parent"


_ARMS = (
    # Random init trains every layer at one lr: there is no pre-trained body to protect.
    Arm("scratch", "target", "random", "all", head_lr="lr_scratch", body_lr="lr_scratch"),
    Arm("onestep_last", "target", "imagenet", "head", cost=0.2),
    Arm("onestep_all", "target", "imagenet", "all"),
    # Step 1 fine-tunes all layers on the intermediate domain (assumed; see docs/study.md).
    Arm("thtl_step1", "intermediate", "imagenet", "all"),
    Arm("thtl_last", "target", "parent", "head", parent="thtl_step1", cost=0.2),
    Arm("thtl_all", "target", "parent", "all", parent="thtl_step1"),
    Arm("swft", "target", "parent", "swft", parent="thtl_step1", cost=2.5),
)

ARMS: dict[str, Arm] = {a.name: a for a in _ARMS}
NAMES: list[str] = list(ARMS)


def get(name: str) -> Arm:
    try:
        return ARMS[name]
    except KeyError:
        raise UserError(f"unknown arm {name!r}; known arms: {', '.join(NAMES)}") from None


def children(name: str) -> list[str]:
    """Arms that start from `name`'s best checkpoint, in canonical order."""
    return [a.name for a in _ARMS if a.parent == name]


# ----------------------------------------------------------------------------- budgets

BUDGET_RULE = ("every stage of every arm, each SWFT step included: at most {max_epochs} epochs, stopping "
               "once the validation loss has not improved for {patience} epochs, and not before epoch "
               "{min_epochs} in a stage that starts a new head (every arm's first stage; later SWFT steps "
               "continue from trained weights: at least {patience}); learning rates warm up linearly over "
               "{warmup_epochs} epoch(s), then follow a {schedule} schedule; SWFT step k trains every "
               "group at its base lr x {swft_lr_decay}^(k-1)")


def budget_text(t: dict) -> str:
    """The budget rule with this train section's numbers (REPORT.md states it)."""
    return BUDGET_RULE.format(**{k: t[k] for k in ("min_epochs", "max_epochs", "patience", "warmup_epochs",
                                                   "schedule", "swft_lr_decay")})


def train_subset(t: dict, arm: Arm) -> dict:
    """The training parameters a case of `arm` depends on (hashed into its case id and recorded
    under config.train): its own lrs, the budget rule, and the recipe switches it uses."""
    head_lr, body_lr = arm.lrs(t)
    keys = ("batch_size", "optimizer", "weight_decay", "schedule", "warmup_epochs", "min_epochs", "max_epochs",
            "patience", "max_grad_norm", "head_init_std")
    sub = {k: t[k] for k in keys}
    sub.update(lr_head=head_lr, lr_body=body_lr)
    views = int(t.get("head_only_views", 1))
    if arm.trainable == "head":
        sub["head_only_views"] = views
        if views > 1:
            sub.update(augment=t["augment"], feature_cache=bool(t["feature_cache"]))
    else:
        sub["augment"] = t["augment"]
        if arm.trainable == "swft":
            sub["feature_cache"] = bool(t["feature_cache"])
            sub["swft_lr_decay"] = float(t["swft_lr_decay"])
    return sub


# ----------------------------------------------------------------------------- stages

@dataclass
class Plan:
    """One training stage of a case: the loop trains `groups` (their `stages`) at `lrs`."""

    name: str  # "main" or "step<k>" for SWFT
    groups: list[str]  # trainable model groups, back to front
    stages: list[str]  # their stages
    max_epochs: int
    augment: bool  # online augmentation of train batches (uncached path)
    cache: bool  # use the frozen-feature cache when the frozen prefix is non-empty
    lrs: dict[str, float]  # group -> lr; "other": stages outside every group
    views: int = 1  # cached train views (1 = plain)
    min_epochs: int = 1  # early stopping cannot fire before this epoch


def augment_enabled(aug: dict | None) -> bool:
    aug = aug or {}
    return bool(aug.get("hflip") or aug.get("vflip") or aug.get("rotate_deg") or aug.get("brightness")
                or aug.get("contrast"))


def plans(arm: Arm, groups: list[tuple[str, list[str]]], stages: list[str], t: dict) -> list[Plan]:
    """The stages of a case of `arm` on a model whose `groups` run back to front (groups[0] is the
    head) over its forward-ordered `stages`. The head group trains at the head lr, every other
    group at the body lr; SWFT step k scales both by swft_lr_decay^(k-1) (see BUDGET_RULE)."""
    head_lr, body_lr = arm.lrs(t)

    def lrs(scale: float) -> dict[str, float]:
        out = {g: (head_lr if i == 0 else body_lr) * scale for i, (g, _) in enumerate(groups)}
        return out | {"other": body_lr * scale}

    aug = augment_enabled(t.get("augment"))
    cache = bool(t.get("feature_cache"))
    epochs, fresh, onward = int(t["max_epochs"]), int(t["min_epochs"]), int(t["patience"])
    if arm.trainable == "head":
        views = int(t.get("head_only_views", 1))
        head, head_stages = groups[0]
        return [Plan("main", [head], list(head_stages), epochs, aug and views > 1, cache, lrs(1.0), views, fresh)]
    if arm.trainable == "all":
        return [Plan("main", [g for g, _ in groups], list(stages), epochs, aug, cache, lrs(1.0), 1, fresh)]
    out = []
    decay = float(t["swft_lr_decay"])
    for k in range(1, len(groups) + 1):
        chosen = groups[:k]
        last = k == len(groups)
        st = list(stages) if last else [s for _, ss in chosen for s in ss]
        # Cached steps train on plain features (augmentation would need the frozen prefix per
        # batch); the last step has no frozen prefix and augments like the all-layer arms.
        # Step 1 trains the head alone with THTL last-layer's recipe, so C2/C3 measure what the
        # later steps add.
        # Step 1 starts a new head (the floor of every fresh start); later steps continue from
        # trained weights and stop by the same convergence rule after `patience` epochs at least.
        out.append(Plan(f"step{k}", [g for g, _ in chosen], st, epochs, aug and (last or not cache), cache,
                        lrs(decay ** (k - 1)), 1, fresh if k == 1 else onward))
    return out
