"""The AVA action detectors: PyTorchVideo's ``DetectionBBoxNetwork`` checkpoint layout -> ours.

Its files hold the backbone under ``model.`` in the layout of PyTorchVideo's Kinetics networks (stages
``model.blocks.<i>``) and the RoI head's classifier as ``detection_head.proj`` (the head's RoIAlign and
pools have no parameters). The backbone keys lose the prefix, the classifier becomes the Kinetics
head's ``blocks.<n>.proj``, and the Kinetics adapter of the backbone's family does the rest (and refuses
any key it has no rule for).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from videozoo.models.adapters import resnet3d, slowfast, wrapped_state_dict

__all__ = ["from_pytorchvideo_slow_detection_state_dict", "from_pytorchvideo_slowfast_detection_state_dict"]


def _as_kinetics_layout(checkpoint: Any, head: str) -> dict[str, Any]:
    """``{"model_state": ...}`` with the backbone's ``model.`` prefix removed and the classifier at
    ``blocks.<head>.proj``; other keys are passed on unchanged for the Kinetics adapter to refuse."""
    state = wrapped_state_dict(checkpoint, "model_state", "PyTorchVideo")
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if key.startswith("model.blocks."):
            key = key[len("model.") :]
        elif key.startswith("detection_head.proj."):
            key = f"blocks.{head}.proj." + key[len("detection_head.proj.") :]
        out[key] = value
    return {"model_state": out}


def from_pytorchvideo_slow_detection_state_dict(checkpoint: Any) -> dict[str, Tensor]:
    """Our ``state_dict`` from PyTorchVideo's ``SLOW_4x16_R50_DETECTION.pyth`` (``create_resnet_with_roi_head``)."""
    return resnet3d.from_pytorchvideo_state_dict(_as_kinetics_layout(checkpoint, "5"))


def from_pytorchvideo_slowfast_detection_state_dict(checkpoint: Any) -> dict[str, Tensor]:
    """Our ``state_dict`` from PyTorchVideo's ``SLOWFAST_8x8_R50_DETECTION.pyth`` (``create_slowfast_with_roi_head``)."""
    return slowfast.from_pytorchvideo_state_dict(_as_kinetics_layout(checkpoint, "6"))
