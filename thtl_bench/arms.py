"""Transfer arms: each a small declarative policy (domain, start weights, trainable groups, lrs).

The engine reads only these fields, so an arm's behaviour is visible in one line here. The
canonical order of `ARMS` is the row order of every table.
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
    Arm("onestep_last", "larynx", "imagenet", "head"),
    Arm("onestep_all", "larynx", "imagenet", "all"),
    # Step 1 fine-tunes all layers on fundus (assumed; see docs/study.md).
    Arm("thtl_step1", "fundus", "imagenet", "all"),
    Arm("thtl_last", "larynx", "parent", "head", parent="thtl_step1"),
    Arm("thtl_all", "larynx", "parent", "all", parent="thtl_step1"),
    Arm("swft", "larynx", "parent", "swft", parent="thtl_step1"),
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
