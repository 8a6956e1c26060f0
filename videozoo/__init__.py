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
from videozoo.errors import CheckpointError, DownloadError, VideoDecodeError, VideozooError
from videozoo.inference import Prediction, VideoClassifier, predict
from videozoo.io import VideoReader, read_video
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
    "predict",
    "VideoClassifier",
    "Prediction",
    "VideoReader",
    "read_video",
    "VideozooError",
    "DownloadError",
    "CheckpointError",
    "VideoDecodeError",
    *_models_all,
]
