"""Transfer arms: the whole arm policy in one place (torch-free).

An arm says where its start weights come from, which layer groups train, at which learning
rates, for how many epochs, in which stages (SWFT: several), and what a case of it costs. The
engine asks only this module; the report reads the same fields. The canonical order of `ARMS` is
the row order of every table.
"""

from __future__ import annotations

from dataclasses import dataclass

from thtl_bench.errors import UserError

INITS = ("random", "imagenet", "parent")
TRAINABLE = ("head", "all", "swft")


@dataclass(frozen=True)
class Arm:
    name: str
    domain: str  # larynx (target) or fundus (THTL step 1)
    init: str  # random | imagenet | parent
    trainable: str  # head | all | swft (cumulative groups, back to front)
    parent: str | None = None  # arm whose best checkpoint is the start (init == "parent")
    # Keys of params.yaml `train:` giving the lr of the head group and of every other group.
    head_lr: str = "lr_head"
    body_lr: str = "lr_backbone"
    cost: float = 1.0  # relative cost of one case (all-layer case = 1): shard balance, ETAs

    def __post_init__(self) -> None:
        if self.init not in INITS or self.trainable not in TRAINABLE:
            raise ValueError(f"arm {self.name}: init {self.init!r} / trainable {self.trainable!r}")
        if (self.init == "parent") != (self.parent is not None):
            raise ValueError(f"arm {self.name}: a parent is needed exactly when init is 'parent'")

    def lrs(self, train_cfg: dict) -> tuple[float, float]:
        """(head lr, body lr) from the train section."""
        return float(train_cfg[self.head_lr]), float(train_cfg[self.body_lr])


_ARMS = (
    # Random init trains every layer at one lr: there is no pre-trained body to protect.
    Arm("scratch", "larynx", "random", "all", head_lr="lr_scratch", body_lr="lr_scratch"),
    Arm("onestep_last", "larynx", "imagenet", "head", cost=0.2),
    Arm("onestep_all", "larynx", "imagenet", "all"),
    # Step 1 fine-tunes all layers on fundus (assumed; see docs/study.md).
    Arm("thtl_step1", "fundus", "imagenet", "all"),
    Arm("thtl_last", "larynx", "parent", "head", parent="thtl_step1", cost=0.2),
    Arm("thtl_all", "larynx", "parent", "all", parent="thtl_step1"),
    Arm("swft", "larynx", "parent", "swft", parent="thtl_step1", cost=1.5),
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

def head_epochs(t: dict) -> int:
    """Budget of a head-only stage (`train.head_max_epochs`, null = max_epochs): with the feature
    cache it costs little, so last-layer training may run longer."""
    return int(t["head_max_epochs"]) if t.get("head_max_epochs") is not None else int(t["max_epochs"])


def max_epochs(t: dict, arm: Arm) -> int:
    """Epoch budget per stage: SWFT steps have their own (its head-only first step: head_epochs)."""
    if arm.trainable == "swft":
        return int(t["swft_max_epochs"])
    if arm.trainable == "head":
        return head_epochs(t)
    return int(t["max_epochs"])


def train_subset(t: dict, arm: Arm) -> dict:
    """The training parameters a case of `arm` depends on (hashed into its case id and recorded
    under config.train): its own lrs and epoch budget, and the recipe switches it uses."""
    head_lr, body_lr = arm.lrs(t)
    keys = ("batch_size", "optimizer", "weight_decay", "schedule", "patience", "max_grad_norm")
    sub = {k: t[k] for k in keys}
    sub.update(lr_head=head_lr, lr_body=body_lr, max_epochs=max_epochs(t, arm))
    views = int(t.get("head_only_views", 1))
    if arm.trainable == "head":
        sub["head_only_views"] = views
        if views > 1:
            sub.update(augment=t["augment"], feature_cache=bool(t["feature_cache"]))
    else:
        sub["augment"] = t["augment"]
        if arm.trainable == "swft":
            sub["feature_cache"] = bool(t["feature_cache"])
            sub["head_step_epochs"] = head_epochs(t)
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


def augment_enabled(aug: dict | None) -> bool:
    aug = aug or {}
    return bool(aug.get("hflip") or aug.get("vflip") or aug.get("rotate_deg") or aug.get("brightness")
                or aug.get("contrast"))


def plans(arm: Arm, groups: list[tuple[str, list[str]]], stages: list[str], t: dict) -> list[Plan]:
    """The stages of a case of `arm` on a model whose `groups` run back to front (groups[0] is the
    head) over its forward-ordered `stages`. The head group trains at the head lr, every other
    group at the body lr."""
    head_lr, body_lr = arm.lrs(t)
    lrs = {g: (head_lr if i == 0 else body_lr) for i, (g, _) in enumerate(groups)} | {"other": body_lr}
    aug = augment_enabled(t.get("augment"))
    cache = bool(t.get("feature_cache"))
    if arm.trainable == "head":
        views = int(t.get("head_only_views", 1))
        head, head_stages = groups[0]
        return [Plan("main", [head], list(head_stages), max_epochs(t, arm), aug and views > 1, cache, lrs, views)]
    if arm.trainable == "all":
        return [Plan("main", [g for g, _ in groups], list(stages), int(t["max_epochs"]), aug, cache, lrs)]
    out = []
    for k in range(1, len(groups) + 1):
        chosen = groups[:k]
        last = k == len(groups)
        st = list(stages) if last else [s for _, ss in chosen for s in ss]
        # Cached steps train on plain features (augmentation would need the frozen prefix per
        # batch); the last step has no frozen prefix and augments like the all-layer arms.
        # Step 1 trains the head alone: THTL last-layer's recipe and budget, so C2/C3 measure what
        # the later steps add rather than a shorter head training.
        epochs = head_epochs(t) if k == 1 else max_epochs(t, arm)
        out.append(Plan(f"step{k}", [g for g, _ in chosen], st, epochs, aug and (last or not cache), cache, lrs))
    return out
