"""videozoo: video models with their published weights and exact preprocessing.

Importing videozoo loads the zoo (weights, registry, loading), the models and the presets only; the
video side and the tasks (``predict``, ``VideoClassifier``, ``read_video``, ... and with them PyAV) are
imported on first use, so a user who only wants the networks (e.g. through torch.hub) does not need
PyAV. See docs/design.md for the layers.
"""

from typing import TYPE_CHECKING, Any

from videozoo.errors import (
    CheckpointError,
    DownloadError,
    ExportError,
    VideoDecodeError,
    VideozooError,
)
from videozoo.models import *  # noqa: F403
from videozoo.models import __all__ as _models_all
from videozoo.video.transforms import VideoClassification
from videozoo.zoo import (
    TASKS,
    ClipRecipe,
    Weights,
    WeightsEnum,
    get_model,
    get_model_builder,
    get_model_task,
    get_model_weights,
    get_weight,
    is_checkpoint_path,
    list_models,
    load_weights,
    register_model,
    registered,
)

if TYPE_CHECKING:
    from videozoo.tasks.classify import Prediction, VideoClassifier, predict
    from videozoo.tasks.classify import classify_collection
    from videozoo.tasks.timeline import timeline_collection
    from videozoo.tasks.engines import Engine, accelerate
    from videozoo.tasks.export import ExportResult, export_model
    from videozoo.tasks.extract import extract
    from videozoo.tasks.memory import reuse_freed_memory
    from videozoo.tasks.runner import Runner, load_model
    from videozoo.tasks.timeline import Timeline, timeline
    from videozoo.video.io import Video, VideoInfo, VideoReader, read_video
    from videozoo.tasks.detect import Detections, detect, detect_collection

__version__ = "0.1.0"

# Public names of the video side and the tasks -> the module that defines them (imported on first access).
_LAZY = {
    "load_model": "videozoo.tasks.runner",
    "Runner": "videozoo.tasks.runner",
    "predict": "videozoo.tasks.classify",
    "VideoClassifier": "videozoo.tasks.classify",
    "Prediction": "videozoo.tasks.classify",
    "timeline": "videozoo.tasks.timeline",
    "detect": "videozoo.tasks.detect",
    "Detections": "videozoo.tasks.detect",
    "detect_collection": "videozoo.tasks.detect",
    "Timeline": "videozoo.tasks.timeline",
    "extract": "videozoo.tasks.extract",
    "classify_collection": "videozoo.tasks.classify",
    "timeline_collection": "videozoo.tasks.timeline",
    "accelerate": "videozoo.tasks.engines",
    "Engine": "videozoo.tasks.engines",
    "export_model": "videozoo.tasks.export",
    "ExportResult": "videozoo.tasks.export",
    "reuse_freed_memory": "videozoo.tasks.memory",
    "Video": "videozoo.video.io",
    "VideoInfo": "videozoo.video.io",
    "VideoReader": "videozoo.video.io",
    "read_video": "videozoo.video.io",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'videozoo' has no attribute {name!r}")


__all__ = [
    # the zoo
    "TASKS",
    "ClipRecipe",
    "Weights",
    "WeightsEnum",
    "get_model",
    "get_model_builder",
    "get_model_task",
    "get_model_weights",
    "get_weight",
    "is_checkpoint_path",
    "list_models",
    "load_weights",
    "register_model",
    "registered",
    # the presets
    "VideoClassification",
    # the video side
    "Video",
    "VideoInfo",
    "VideoReader",
    "read_video",
    # the tasks
    "Runner",
    "load_model",
    "predict",
    "VideoClassifier",
    "Prediction",
    "timeline",
    "Timeline",
    "extract",
    "classify_collection",
    "timeline_collection",
    "export_model",
    "ExportResult",
    "accelerate",
    "Engine",
    "reuse_freed_memory",
    "detect",
    "Detections",
    "detect_collection",
    # errors
    "VideozooError",
    "DownloadError",
    "CheckpointError",
    "VideoDecodeError",
    "ExportError",
    *_models_all,
]
