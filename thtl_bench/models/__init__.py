"""Model registry and the staged-model interface every arm, the engine and LayerCAM use.

    get(name) -> ModelSpec      registered name (thtl_bench.catalog), tv:NAME, timm:NAME or a bare library name
    build(name, num_classes, init="random"|"imagenet", cfg) -> StagedModel
    first_trainable_stage(model, groups) -> int   start of the trainable suffix
    swft_groups(model) -> [group names back to front]   (>= 3 groups or SWFTUnsupported)
Modules: spec (what is known of a model), library (the unstaged library model), staging (the
families: stage chains and groups), staged (StagedModel), weights (offline resolution and strict
loading), fetch (opt-in download and import).
"""

from thtl_bench.catalog import MODELS
from thtl_bench.models.library import library_model
from thtl_bench.models.registry import INITS, UnknownModel, build, get
from thtl_bench.models.spec import ModelSpec, WeightsOrigin
from thtl_bench.models.staged import (
    StagedModel,
    StagingError,
    SWFTUnsupported,
    first_trainable_stage,
    state_dict_problems,
    swft_groups,
)

__all__ = [
    "INITS", "MODELS", "ModelSpec", "UnknownModel", "WeightsOrigin", "build", "get", "library_model",
    "StagedModel", "StagingError", "SWFTUnsupported", "first_trainable_stage", "state_dict_problems",
    "swft_groups",
]
