"""videozoo: video classification models with their published weights and exact preprocessing.

Importing videozoo loads the models, weights and presets only; the video side (``predict``,
``VideoClassifier``, ``read_video``, ... and with them PyAV) is imported on first use, so a user who
only wants the networks (e.g. through torch.hub) does not need PyAV.
"""

from typing import TYPE_CHECKING, Any

from videozoo._api import (
    Weights,
    WeightsEnum,
    get_model,
    get_model_builder,
    get_model_weights,
    get_weight,
    is_checkpoint_path,
    list_models,
    load_weights,
    register_model,
)
from videozoo._memory import reuse_freed_memory
from videozoo.errors import (
    CheckpointError,
    DownloadError,
    ExportError,
    VideoDecodeError,
    VideozooError,
)
from videozoo.models import *  # noqa: F403
from videozoo.models import __all__ as _models_all
from videozoo.transforms import VideoClassification

if TYPE_CHECKING:
    from videozoo.inference import Prediction, VideoClassifier, predict
    from videozoo.io import VideoReader, read_video
    from videozoo.timelines import Timeline, timeline
    from videozoo.features import extract
    from videozoo.export import ExportResult, export_model

__version__ = "0.1.0"

# Public names of the video side -> the module that defines them (imported on first access).
_LAZY = {
    "predict": "videozoo.inference",
    "VideoClassifier": "videozoo.inference",
    "Prediction": "videozoo.inference",
    "VideoReader": "videozoo.io",
    "read_video": "videozoo.io",
    "timeline": "videozoo.timelines",
    "Timeline": "videozoo.timelines",
    "extract": "videozoo.features",
    "export_model": "videozoo.export",
    "ExportResult": "videozoo.export",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'videozoo' has no attribute {name!r}")

__all__ = [
    "Weights",
    "WeightsEnum",
    "get_model",
    "get_model_builder",
    "get_model_weights",
    "get_weight",
    "is_checkpoint_path",
    "load_weights",
    "list_models",
    "register_model",
    "VideoClassification",
    "reuse_freed_memory",
    "predict",
    "VideoClassifier",
    "Prediction",
    "VideoReader",
    "read_video",
    "timeline",
    "Timeline",
    "extract",
    "export_model",
    "ExportResult",
    "VideozooError",
    "DownloadError",
    "CheckpointError",
    "VideoDecodeError",
    "ExportError",
    *_models_all,
]
