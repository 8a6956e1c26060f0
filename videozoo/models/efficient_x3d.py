"""Efficient X3D: PyTorchVideo's X3D-XS and X3D-S for mobile CPUs.

Feichtenhofer, "X3D: Expanding Architectures for Efficient Video Recognition", CVPR 2020
(https://arxiv.org/abs/2004.04730), as PyTorchVideo's accelerator builds it from "efficient blocks"
(``pytorchvideo/models/accelerator/mobile_cpu/efficient_x3d.py``): layers that its deployment tools
convert into QNNPACK-friendly 2D convolutions for phones. The published checkpoints are the blocks'
"original form", the trainable one, and that network is X3D's: the same stem, inverted bottlenecks
with channel-wise 3x3x3 convolutions, SE on every other block, ReLU / Swish / ReLU, widths 24 to 192
and depths (3, 5, 11, 7). So it is built as :class:`~videozoo.models.x3d.X3D`, with two differences
from PySlowFast's X3D, both switches of that class:

* every projection shortcut has a BatchNorm, the first stage's too (same width, stride 2), where
  PySlowFast's has none (``shortcut_norm=True``);
* the head averages the whole stage-4 map instead of a window fixed to the training clip
  (``global_pool=True``), and returns logits (PyTorchVideo's ``head_act="identity"``); at the training
  clip the two heads compute the same thing, at other sizes they differ.

XS and S are one network with one set of parameters (3.79 M; PyTorchVideo's builder differs only for
"L"); the checkpoints differ in the clip they were trained on: 4 or 13 frames of 160 x 160 pixels.

The files are bare state dicts of PyTorchVideo's ``EfficientX3d`` (no ``{"model_state": ...}``
wrapper, unlike PyTorchVideo's other checkpoints); :func:`from_pytorchvideo_state_dict` renames their
keys to ours: ``s1`` -> ``stem``, ``s2``-``s5`` -> ``layer1``-``layer4``, a block's
``layers.conv_{0,1,2}`` -> ``conv1``-``conv3``, ``_res_proj`` -> ``downsample``, the SE's 1x1x1
convolutions ``layers.se.se.block.{0,2}`` -> the linear ``se.fc1`` / ``se.fc2``, ``head.conv_5`` ->
``conv5``, ``head.lin_5`` -> ``lin5``, ``projection.model`` -> ``fc``.

On CPU the network runs as X3D does (``channels_last_3d`` and BatchNorm folded into the convolutions in
eval mode, see :class:`~videozoo.models.x3d.ConvBN`); PyTorchVideo's deployable form (its
``convert_to_deployable_form``) targets phones and is not needed for that.
"""

from __future__ import annotations

from typing import Any


from videozoo.zoo import Weights, WeightsEnum, build_model, register_model
from videozoo.models.adapters.efficient_x3d import from_pytorchvideo_state_dict
from videozoo.models.publishers.pytorchvideo import MODEL_ZOO_URL, PTV_FILES_URL, ptv_meta, ptv_transforms
from videozoo.models.x3d import X3D

__all__ = ["EfficientX3D_XS_Weights", "EfficientX3D_S_Weights", "efficient_x3d_xs", "efficient_x3d_s"]


# ----------------------------------------------------------------------------------------------------
# Weights

_DOCS = (
    "Weights published in PyTorchVideo's accelerator model zoo (its mobile CPU X3D-{size}, 'original "
    "form'). The accuracies are PyTorchVideo's on the Kinetics-400 validation set, 'measured with 10-clip "
    "evaluation'; it states neither the crops, the test size nor the frame stride. The recipe here "
    "reads that as 10 temporal clips of one centre crop, at the 160 px the network was trained on "
    "(PyTorchVideo's accelerator tutorial feeds X3D-XS 4 x 160 x 160), with X3D-{size}'s frame stride "
    "from PySlowFast's X3D configs ({frames} frames, every {rate}th at 30 fps). The X3D paper reports "
    "{paper} for this network with 10 clips x 3 crops at 160 px. GFLOPs are ours: multiply-adds per "
    "view at {frames} x 160 x 160, counted with torch's FlopCounterMode (FLOPs / 2), as the X3D paper "
    "gives them ({paper_gflops})."
)


def _weights(
    size: str, *, frames: int, rate: int, acc1: float, acc5: float, gflops: float, paper: str, paper_gflops: float
) -> Weights:
    return Weights(
        url=f"{PTV_FILES_URL}/kinetics/efficient_x3d_{size.lower()}_original_form.pyth",
        transforms=ptv_transforms(160),
        meta=ptv_meta(
            num_params=3794322, acc1=acc1, acc5=acc5, gflops=gflops, num_frames=frames, sampling_rate=rate,
            min_size=(1, 1),  # the head averages whatever map the backbone leaves
            min_temporal_size=1,
            docs=_DOCS.format(size=size, frames=frames, rate=rate, paper=paper, paper_gflops=paper_gflops),
            recipe=f"{MODEL_ZOO_URL}#pytorchvideo-accelerator-model-zoo",
            num_clips=10,
            num_crops=1,
        ),
        state_dict_adapter=from_pytorchvideo_state_dict,
    )


class EfficientX3D_XS_Weights(WeightsEnum):
    KINETICS400_V1 = _weights(
        "XS", frames=4, rate=12, acc1=68.5, acc5=88.0, gflops=0.61, paper="68.6 / 87.9", paper_gflops=0.60
    )
    DEFAULT = KINETICS400_V1


class EfficientX3D_S_Weights(WeightsEnum):
    KINETICS400_V1 = _weights(
        "S", frames=13, rate=6, acc1=73.0, acc5=90.6, gflops=1.96, paper="72.9 / 90.5", paper_gflops=1.96
    )
    DEFAULT = KINETICS400_V1


# ----------------------------------------------------------------------------------------------------
# Builders

# The switches that make X3D PyTorchVideo's mobile X3D (see the module docstring).
_EFFICIENT = {"global_pool": True, "shortcut_norm": True}


@register_model(EfficientX3D_XS_Weights)
def efficient_x3d_xs(
    *, weights: EfficientX3D_XS_Weights | str | None = None, progress: bool = True, **kwargs: Any
) -> X3D:
    """PyTorchVideo's mobile CPU X3D-XS: trained on 4 frames of 160 px; any clip size is accepted.

    Args:
        weights: :class:`EfficientX3D_XS_Weights` (a member, its name or ``"DEFAULT"``), a file's path, or ``None``
            (PyTorchVideo's bare state_dict).
        progress: show a progress bar while downloading.
        kwargs: passed to :class:`~videozoo.models.x3d.X3D`; ``num_frames`` and ``crop_size`` only
            record the training clip (the head pools globally).
    """
    return build_model(X3D, EfficientX3D_XS_Weights, weights, progress, kwargs, num_frames=4, crop_size=160, **_EFFICIENT)


@register_model(EfficientX3D_S_Weights)
def efficient_x3d_s(
    *, weights: EfficientX3D_S_Weights | str | None = None, progress: bool = True, **kwargs: Any
) -> X3D:
    """PyTorchVideo's mobile CPU X3D-S: the XS network trained on 13 frames of 160 px.

    Args: as :func:`efficient_x3d_xs`, with :class:`EfficientX3D_S_Weights`.
    """
    return build_model(X3D, EfficientX3D_S_Weights, weights, progress, kwargs, num_frames=13, crop_size=160, **_EFFICIENT)
