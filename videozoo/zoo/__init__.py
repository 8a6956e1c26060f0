"""The zoo: weights and their recipes, the registry, the one loading path, the checkpoint store.

Nothing here knows a network or a video: the families in :mod:`videozoo.models` register their
builders and weights tables here, and the tasks ask for them by name.
"""

from videozoo.zoo.loading import build_model, load_weights
from videozoo.zoo.recipe import ClipRecipe
from videozoo.zoo.registry import (
    TASKS,
    get_model,
    get_model_builder,
    get_model_task,
    get_model_weights,
    get_weight,
    list_models,
    register_model,
    registered,
)
from videozoo.zoo.weights import ExtraFile, Weights, WeightsEnum, is_checkpoint_path

__all__ = [
    "TASKS", "ClipRecipe", "ExtraFile", "Weights", "WeightsEnum", "build_model", "get_model", "get_model_builder", "get_model_task",
    "get_model_weights",
    "get_weight", "is_checkpoint_path", "list_models", "load_weights", "register_model", "registered",
]  # fmt: skip
