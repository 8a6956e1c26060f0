"""What the checkpoints published by torchvision (VideoResNet, S3D, MViT, Swin3D) have in common.

All were trained or evaluated on Kinetics-400 with torchvision's category order; their evaluation
recipes are stated in torchvision's ``_docs`` and repeated here in machine-readable form.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from videozoo.video.transforms import VideoClassification
from videozoo.zoo import Weights
from videozoo.zoo.categories import KINETICS400_CATEGORIES

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "TV_MODELS_URL", "tv_meta", "tv_weights"]

#: Where torchvision publishes its checkpoints.
TV_MODELS_URL = "https://download.pytorch.org/models"
#: ImageNet's channel statistics, as torchvision normalises with them.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def tv_meta(
    *,
    num_params: int,
    acc1: float,
    acc5: float,
    gflops: float,
    file_size: float,
    recipe: str,
    docs: str,
    num_frames: int,
    frame_rate: float,
    num_clips: int,
    min_size: tuple[int, int] = (1, 1),
    min_temporal_size: int = 1,
    **extra: Any,
) -> dict[str, Any]:
    """Meta of a torchvision Kinetics-400 checkpoint.

    Args:
        gflops: per view, as torchvision states them.
        file_size: in MB, as torchvision states it.
        num_frames, frame_rate, num_clips: the evaluation recipe of ``docs`` (consecutive frames,
            one centre crop per clip).
        extra: further keys, e.g. ``model_args``.
    """
    return {
        "categories": list(KINETICS400_CATEGORIES),
        "min_size": min_size,
        "min_temporal_size": min_temporal_size,
        "num_params": num_params,
        "recipe": recipe,
        "_metrics": {"Kinetics-400": {"acc@1": acc1, "acc@5": acc5}},
        "_ops": gflops,
        "_file_size": file_size,
        "_docs": docs,
        "num_frames": num_frames,
        "sampling_rate": 1,
        "frame_rate": frame_rate,
        "num_clips": num_clips,
        "num_crops": 1,
        "license": "BSD-3-Clause",  # torchvision's licence, under which it publishes its weights
        **extra,
    }


def tv_weights(
    file: str,
    num_params: int,
    acc1: float,
    acc5: float,
    gflops: float,
    file_size: float,
    *,
    transforms: partial[VideoClassification],
    **recipe: Any,
) -> Weights:
    """torchvision's checkpoint ``{TV_MODELS_URL}/<file>``: its preset and :func:`tv_meta`.

    Args:
        file: the file's name, e.g. ``"r3d_18-b3b3357e.pth"``.
        num_params, acc1, acc5, gflops, file_size: the figures torchvision states (see :func:`tv_meta`).
        transforms: the evaluation preset.
        recipe: :func:`tv_meta`'s other arguments (``recipe``, ``docs``, ``num_frames``, ...).
    """
    meta = tv_meta(num_params=num_params, acc1=acc1, acc5=acc5, gflops=gflops, file_size=file_size, **recipe)
    return Weights(url=f"{TV_MODELS_URL}/{file}", transforms=transforms, meta=meta)
