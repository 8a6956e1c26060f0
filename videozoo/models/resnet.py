"""VideoResNet: R3D, MC3 and R(2+1)D.

Tran et al., "A Closer Look at Spatiotemporal Convolutions for Action Recognition", CVPR 2018
(https://arxiv.org/abs/1711.11248). One ResNet-18 skeleton; the variants differ only in the
convolution used inside each residual stage:

* ``"3d"``   — a full 3x3x3 convolution (R3D),
* ``"2d"``   — a 1x3x3 convolution with no temporal extent (the upper stages of MC3),
* ``"2+1d"`` — a 1x3x3 spatial convolution, BN, ReLU, then a 3x1x1 temporal one, with the middle
  width chosen so the pair has the parameter count of the 3x3x3 it replaces (R(2+1)D).

Module names follow torchvision's, so the published checkpoints load with ``strict=True``.

On CPU in eval mode the network runs as the bottleneck 3D ResNets do (``models/resnet3d.py``): in
``channels_last_3d`` layout, with each BN folded into the convolution before it and the ReLU after
it fused (``layers.conv_bn_folded``), every convolution oneDNN's: the 1x3x3 / 3x1x1 ones as its 2D
kernels, the 3x3x3 ones called directly where PyTorch would take its im2col path (R3D-18's 14x14 and
7x7 stages at batch 1). Training and TorchScript run the plain modules: the same function up to float
rounding. Measured gains: docs/performance-notes.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any, Literal

import torch
from torch import Tensor, nn

from videozoo.zoo import WeightsEnum, build_model, register_model
from videozoo.models._base import VideoModel
from videozoo.models.layers import conv_bn_folded, init_conv_bn
from videozoo.models.publishers.torchvision import tv_weights
from videozoo.video.transforms import VideoClassification

__all__ = [
    "VideoResNet",
    "R3D_18_Weights",
    "MC3_18_Weights",
    "R2Plus1D_18_Weights",
    "r3d_18",
    "mc3_18",
    "r2plus1d_18",
]

ConvKind = Literal["3d", "2d", "2+1d"]


def _conv(kind: ConvKind, in_planes: int, out_planes: int, mid_planes: int, stride: int) -> nn.Module:
    """The 3x3x3-equivalent convolution of a residual block, in one of the three factorisations."""
    if kind == "3d":
        return nn.Conv3d(in_planes, out_planes, (3, 3, 3), stride=stride, padding=1, bias=False)
    if kind == "2d":
        return nn.Conv3d(in_planes, out_planes, (1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), bias=False)
    return nn.Sequential(
        nn.Conv3d(in_planes, mid_planes, (1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), bias=False),
        nn.BatchNorm3d(mid_planes),
        nn.ReLU(inplace=True),
        nn.Conv3d(mid_planes, out_planes, (3, 1, 1), stride=(stride, 1, 1), padding=(1, 0, 0), bias=False),
    )


class BasicBlock(nn.Module):
    """Two convolutions and an identity (or 1x1x1 projection) shortcut."""

    def __init__(self, kind: ConvKind, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        # The (2+1)D width that matches the parameters of a full 3x3x3 convolution (paper, eq. 1).
        mid = (in_planes * planes * 27) // (in_planes * 9 + 3 * planes)
        self.conv1 = nn.Sequential(_conv(kind, in_planes, planes, mid, stride), nn.BatchNorm3d(planes), nn.ReLU(True))
        # torchvision (and so the checkpoints) reuse the first convolution's width for the second.
        self.conv2 = nn.Sequential(_conv(kind, planes, planes, mid, 1), nn.BatchNorm3d(planes))
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            # A "2d" stage never strides in time, so neither does its shortcut.
            ds_stride = (1, stride, stride) if kind == "2d" else (stride, stride, stride)
            self.downsample = nn.Sequential(
                nn.Conv3d(in_planes, planes, kernel_size=1, stride=ds_stride, bias=False), nn.BatchNorm3d(planes)
            )

    def forward(self, x: Tensor) -> Tensor:
        if not self.training and not torch.jit.is_scripting():
            return self._forward_folded(x)
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.conv2(self.conv1(x))
        out += shortcut
        return self.relu(out)

    @torch.jit.unused
    def _forward_folded(self, x: Tensor) -> Tensor:
        """``forward`` in eval mode on a channels-last ``x``, each BN folded into its convolution."""
        downsample = self.downsample
        shortcut = x if downsample is None else conv_bn_folded(x, downsample[0], downsample[1])
        out = _unit_folded(x, self.conv1, "relu")
        return _unit_folded(out, self.conv2, "relu", residual=shortcut)


def _unit_folded(x: Tensor, unit: nn.Sequential, activation: str = "none", residual: Tensor | None = None) -> Tensor:
    """``unit[1](unit[0](x))`` (a convolution of :func:`_conv`, then its BN) with the BNs folded, plus
    ``residual``, then ``activation`` (as :func:`~videozoo.models.layers.conv_bn_folded`)."""
    conv, bn = unit[0], unit[1]
    if isinstance(conv, nn.Sequential):  # (2+1)D: spatial convolution, BN, ReLU, temporal convolution
        x = conv_bn_folded(x, conv[0], conv[1], activation="relu")
        conv = conv[3]
    return conv_bn_folded(x, conv, bn, activation, residual)


class VideoResNet(VideoModel):
    """ResNet-18 for clips: a stem, four residual stages (64-512 channels) and a linear classifier.

    Any clip size works; the head averages the last stage over the whole clip.

    Args:
        stage_convs: the convolution kind of each of the four stages.
        layers: residual blocks per stage.
        stem: ``"basic"`` (a 3x7x7 convolution) or ``"2+1d"`` (1x7x7 to 45 channels, then 3x1x1).
        num_classes: outputs of the classifier.
        zero_init_residual: start every block as the identity (last BN of each branch at 0).
    """

    def __init__(
        self,
        stage_convs: Sequence[ConvKind],
        layers: Sequence[int] = (2, 2, 2, 2),
        stem: Literal["basic", "2+1d"] = "basic",
        num_classes: int = 400,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__(num_classes, num_features=512)
        self.num_layers = 4
        if len(stage_convs) != 4 or len(layers) != 4:
            raise ValueError(f"stage_convs and layers need 4 entries each, got {stage_convs!r} and {layers!r}.")
        if stem == "basic":
            self.stem = nn.Sequential(
                nn.Conv3d(3, 64, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False),
                nn.BatchNorm3d(64),
                nn.ReLU(inplace=True),
            )
        else:
            self.stem = nn.Sequential(
                nn.Conv3d(3, 45, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
                nn.BatchNorm3d(45),
                nn.ReLU(inplace=True),
                nn.Conv3d(45, 64, (3, 1, 1), stride=1, padding=(1, 0, 0), bias=False),
                nn.BatchNorm3d(64),
                nn.ReLU(inplace=True),
            )
        in_planes = 64
        for i, (kind, depth, planes) in enumerate(zip(stage_convs, layers, (64, 128, 256, 512)), start=1):
            blocks = []
            for j in range(depth):
                blocks.append(BasicBlock(kind, in_planes, planes, stride=2 if (j == 0 and i > 1) else 1))
                in_planes = planes
            self.add_module(f"layer{i}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(512, num_classes)

        last_norms = [m.conv2[1] for m in self.modules() if isinstance(m, BasicBlock)] if zero_init_residual else []
        init_conv_bn(self, zero_init=last_norms)
        self.init_classifier(self.fc)

    def forward_features(self, x: Tensor) -> Tensor:
        """The last stage's map ``(B, 512, T', H', W')``."""
        if not self.training and not torch.jit.is_scripting():
            x = self._stem_folded(x.contiguous(memory_format=torch.channels_last_3d))
        else:
            x = self.stem(x)
        if torch.jit.is_scripting():
            return self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.run_layers(x, [self.layer1, self.layer2, self.layer3, self.layer4])

    @torch.jit.unused
    def _stem_folded(self, x: Tensor) -> Tensor:
        stem = self.stem
        for i in range(0, len(stem), 3):  # (convolution, BN, ReLU) once or twice
            x = conv_bn_folded(x, stem[i], stem[i + 1], activation="relu")
        return x

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.avgpool(x).flatten(1)
        return x if pre_logits else self.fc(x)


# ----------------------------------------------------------------------------------------------------
# Weights

_TRANSFORMS = partial(VideoClassification, crop_size=(112, 112), resize_size=(128, 171))


_DOCS = (
    "The weights reproduce closely the accuracy of the paper. The accuracies are estimated on video-level "
    "with parameters `frame_rate=15`, `clips_per_video=5`, and `clip_len=16`."
)
_RECIPE = "https://github.com/pytorch/vision/tree/main/references/video_classification"
_weights = partial(
    tv_weights, transforms=_TRANSFORMS, recipe=_RECIPE, docs=_DOCS, num_frames=16, frame_rate=15.0, num_clips=5
)


class R3D_18_Weights(WeightsEnum):
    KINETICS400_V1 = DEFAULT = _weights("r3d_18-b3b3357e.pth", 33371472, 63.200, 83.479, 40.697, 127.359)


class MC3_18_Weights(WeightsEnum):
    KINETICS400_V1 = DEFAULT = _weights("mc3_18-a90a0ba3.pth", 11695440, 63.960, 84.130, 43.343, 44.672)


class R2Plus1D_18_Weights(WeightsEnum):
    KINETICS400_V1 = DEFAULT = _weights("r2plus1d_18-91a641e6.pth", 31505325, 67.463, 86.175, 40.519, 120.318)


# ----------------------------------------------------------------------------------------------------
# Builders


@register_model(R3D_18_Weights)
def r3d_18(*, weights: R3D_18_Weights | str | None = None, progress: bool = True, **kwargs: Any) -> VideoResNet:
    """R3D-18: 3x3x3 convolutions in every stage.

    Args:
        weights: :class:`R3D_18_Weights` (a member, its name or ``"DEFAULT"``), a file's path, or ``None``.
        progress: show a progress bar while downloading.
        kwargs: passed to :class:`VideoResNet` (e.g. ``num_classes``, without weights).
    """
    return build_model(VideoResNet, R3D_18_Weights, weights, progress, kwargs, stage_convs=("3d",) * 4)


@register_model(MC3_18_Weights)
def mc3_18(*, weights: MC3_18_Weights | str | None = None, progress: bool = True, **kwargs: Any) -> VideoResNet:
    """MC3-18: 3D convolutions in the first stage, 2D (1x3x3) convolutions above it.

    Args: as :func:`r3d_18`, with :class:`MC3_18_Weights`.
    """
    return build_model(VideoResNet, MC3_18_Weights, weights, progress, kwargs, stage_convs=("3d", "2d", "2d", "2d"))


@register_model(R2Plus1D_18_Weights)
def r2plus1d_18(*, weights: R2Plus1D_18_Weights | str | None = None, progress: bool = True, **kwargs: Any) -> VideoResNet:
    """R(2+1)D-18: every 3x3x3 convolution factorised into a spatial and a temporal one.

    Args: as :func:`r3d_18`, with :class:`R2Plus1D_18_Weights`.
    """
    return build_model(VideoResNet, R2Plus1D_18_Weights, weights, progress, kwargs, stage_convs=("2+1d",) * 4, stem="2+1d")
