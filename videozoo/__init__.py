"""videozoo: video classification models with their published weights and exact preprocessing."""

from videozoo._api import (
    Weights,
    WeightsEnum,
    get_model,
    get_model_builder,
    get_model_weights,
    get_weight,
    list_models,
    register_model,
)
from videozoo.models import *  # noqa: F403
from videozoo.models import __all__ as _models_all
from videozoo.transforms import VideoClassification

__version__ = "0.1.0"

__all__ = [
    "Weights",
    "WeightsEnum",
    "get_model",
    "get_model_builder",
    "get_model_weights",
    "get_weight",
    "list_models",
    "register_model",
    "VideoClassification",
    *_models_all,
]
