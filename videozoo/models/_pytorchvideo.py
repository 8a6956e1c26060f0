"""What the checkpoints published by PyTorchVideo (X3D, SlowFast, ...) have in common.

Their files are ``{"model_state": state_dict}`` dicts; they were evaluated with PySlowFast's Kinetics
recipe: 10 uniformly spaced clips x 3 crops per video, frames converted to float and normalised with
mean 0.45 / std 0.225 before a bilinear short-side resize, then cropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

from torch import Tensor

from videozoo._categories import KINETICS400_CATEGORIES
from videozoo.transforms import VideoClassification

__all__ = [
    "PTV_MEAN",
    "PTV_STD",
    "PTV_KINETICS400_CATEGORIES",
    "MODEL_ZOO_URL",
    "unwrap_model_state",
    "ptv_transforms",
    "ptv_meta",
]

PTV_MEAN = (0.45, 0.45, 0.45)
PTV_STD = (0.225, 0.225, 0.225)

# Class index -> name of the Kinetics-400 checkpoints. PyTorchVideo maps predictions to names with
# PySlowFast's https://dl.fbaipublicfiles.com/pyslowfast/dataset/class_names/kinetics_classnames.json
# ({name: index}). Checked entry by entry: its 400 indices map to exactly the names of
# KINETICS400_CATEGORIES in the same order, once the CSV quoting of the multi-word names is removed
# (the file spells index 290 '"sharpening knives"', quotes included; PyTorchVideo's tutorial strips
# them with ``.replace('"', "")``). So the published order is torchvision's, unquoted.
PTV_KINETICS400_CATEGORIES: tuple[str, ...] = KINETICS400_CATEGORIES

MODEL_ZOO_URL = "https://github.com/facebookresearch/pytorchvideo/blob/main/docs/source/model_zoo.md"


def unwrap_model_state(checkpoint: Any) -> dict[str, Tensor]:
    """The ``state_dict`` inside a PyTorchVideo checkpoint file (``{"model_state": state_dict}``).

    Keys prefixed ``model.`` (PySlowFast's ``PTV*`` wrappers of PyTorchVideo's networks) lose the prefix.
    Raises ``ValueError`` for anything else, e.g. a bare ``state_dict`` or another library's file.
    """
    if not isinstance(checkpoint, Mapping) or "model_state" not in checkpoint:
        if isinstance(checkpoint, Mapping):
            keys = list(checkpoint)
            found = f"a dict with keys {keys[:5]}{' ...' if len(keys) > 5 else ''}"
        else:
            found = f"a {type(checkpoint).__name__}"
        raise ValueError(
            f"Expected a PyTorchVideo checkpoint, a dict with the weights under 'model_state', but got {found}. "
            f"A state_dict saved from a videozoo model loads with model.load_state_dict() directly."
        )
    state = checkpoint["model_state"]
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError("The checkpoint's 'model_state' is not a state_dict (a dict of tensors).")
    if state and all(key.startswith("model.") for key in state):
        return {key[len("model.") :]: value for key, value in state.items()}
    return dict(state)


def ptv_transforms(test_size: int) -> partial[VideoClassification]:
    """PySlowFast's test-time preset: short side resized to ``test_size``, centre crop of ``test_size``.

    Frames are normalised in float before resizing (``resize_uint8=False``) and the centre crop's
    offset is rounded up (``crop_rounding="ceil"``), as PySlowFast's ``uniform_crop`` does.
    """
    return partial(
        VideoClassification,
        crop_size=test_size,
        resize_size=test_size,
        mean=PTV_MEAN,
        std=PTV_STD,
        resize_uint8=False,
        crop_rounding="ceil",
    )


def ptv_meta(
    *,
    num_params: int,
    acc1: float,
    acc5: float,
    gflops: float,
    num_frames: int,
    sampling_rate: int,
    min_size: tuple[int, int],
    min_temporal_size: int,
    docs: str,
    file_size: float | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Meta of a Kinetics-400 checkpoint from PyTorchVideo's model zoo (GFLOPs are per view)."""
    return {
        "categories": list(PTV_KINETICS400_CATEGORIES),
        "min_size": min_size,
        "min_temporal_size": min_temporal_size,
        "num_params": num_params,
        "recipe": MODEL_ZOO_URL,
        "_metrics": {"Kinetics-400": {"acc@1": acc1, "acc@5": acc5}},
        "_ops": gflops,
        "_file_size": file_size,
        "_docs": docs,
        # PySlowFast's Kinetics test protocol in machine-readable form (see videozoo.sampling):
        # num_frames frames every sampling_rate frames of the 30 fps video, 10 clips x 3 crops.
        "num_frames": num_frames,
        "sampling_rate": sampling_rate,
        "frame_rate": 30.0,
        "num_clips": 10,
        "num_crops": 3,
        **extra,
    }
