"""Model registry and the staged-model interface every arm, the engine and LayerCAM use.

    MODELS                      canonical model order (rows of every table)
    get(name) -> ModelSpec      registered name, tv:NAME, timm:NAME or a bare library name
    build(name, num_classes, init="random"|"imagenet", cfg) -> StagedModel
    first_trainable_stage(model, groups) -> int   start of the trainable suffix
    swft_groups(model) -> [group names back to front]   (>= 3 groups or SWFTUnsupported)
"""

from thtl_bench.models.registry import (
    INITS,
    LITE0_PACKAGE,
    MODELS,
    ModelSpec,
    UnknownModel,
    WeightsOrigin,
    build,
    get,
    library_model,
)
from thtl_bench.models.staged import (
    StagedModel,
    StagingError,
    SWFTUnsupported,
    first_trainable_stage,
    state_dict_problems,
    swft_groups,
)

__all__ = [
    "INITS", "LITE0_PACKAGE", "MODELS", "ModelSpec", "UnknownModel", "WeightsOrigin", "build", "get", "library_model",
    "StagedModel", "StagingError", "SWFTUnsupported", "first_trainable_stage", "state_dict_problems",
    "swft_groups",
]
