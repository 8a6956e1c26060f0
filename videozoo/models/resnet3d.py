"""ResNet3dBottleneck 3D ResNets: Slow, C2D, I3D, CSN and R(2+1)D-50, with PyTorchVideo's Kinetics-400 checkpoints.

One ResNet-50/101 skeleton (a 7x7 stem, four stages of bottleneck blocks 256-2048 channels wide, a
linear classifier) from which PyTorchVideo builds five video networks. They differ in where time is
modelled, i.e. in the temporal kernels of the blocks' first convolution (``temporal_kernels``), in the
block's middle convolution (``block``) and in where time is downsampled:

* **C2D** (Wang et al., "Non-local Neural Networks", CVPR 2018, https://arxiv.org/abs/1711.07971): a 2D
  ResNet-50 applied to every frame; no temporal kernel anywhere, but a 2x1x1 temporal max-pool after
  the first stage (``stage1_pool``).
* **I3D** (Carreira and Zisserman, "Quo Vadis, Action Recognition?", CVPR 2017,
  https://arxiv.org/abs/1705.07750), as a ResNet-50 "inflated" like PySlowFast's: a 5x7x7 stem and
  3x1x1 first convolutions in every block of res2 and every other block of res3-res5; the same pool.
* **Slow** (the Slow pathway of Feichtenhofer et al., "SlowFast Networks for Video Recognition", ICCV
  2019, https://arxiv.org/abs/1812.03982): temporal kernels only in res4 and res5, no temporal
  downsampling at all. The Slow pathway of :class:`~videozoo.models.slowfast.SlowFast` is built from
  this file's stem, block and stage.
* **CSN** (Tran et al., "Video Classification with Channel-Separated Convolutional Networks", ICCV 2019,
  https://arxiv.org/abs/1904.02811), the "interaction-reduced" ir-CSN-101: the block's middle
  convolution is a channel-wise (one filter per channel) 3x3x3 one, which also halves the frame rate
  in res3-res5; a 3x7x7 stem.
* **R(2+1)D-50** (Tran et al., "A Closer Look at Spatiotemporal Convolutions for Action Recognition",
  CVPR 2018, https://arxiv.org/abs/1711.11248), the bottleneck version PyTorchVideo publishes: the
  middle convolution is a 3x1x1 temporal one, BN and ReLU, then the 1x3x3 spatial one; a 1x7x7 stem
  without max-pool, every stage halves the frame size and res4, res5 the frame rate.

The **head** average-pools the last map with PyTorchVideo's fixed window, sized for the training clip
(``num_frames`` frames of ``crop_size`` pixels, e.g. 8x7x7 for Slow 8x8), and slides it at stride 1
over larger clips (PySlowFast tests at 256 pixels, 2x2 positions). PyTorchVideo's models then
classify every position and average: the logits for Slow, C2D, I3D and CSN, which equals classifying
the mean pooled vector (what we compute), and the class *probabilities* for R(2+1)D, whose
PyTorchVideo head ends with a softmax. For R(2+1)D ``forward`` therefore returns, as X3D does,
``log(mean_p softmax(logits_p))`` where there are several positions: ``softmax(forward(x))`` is
PyTorchVideo's output at every size (``average_probs``). ``forward_head(f, pre_logits=True)`` is the
mean pooled vector, ``(B, 2048)``, for all of them.

PyTorchVideo's files (``{"model_state": ...}``, keys such as
``blocks.1.res_blocks.0.branch2.conv_a.weight``) are renamed on loading by the weights'
``state_dict_adapter`` (:func:`from_pytorchvideo_state_dict`); the module names are our own.

On CPU the network runs in ``channels_last_3d`` layout (activations and filters), as SlowFast does:
oneDNN's convolutions, the channel-wise ones of CSN above all, are faster on it. In eval mode each BN
is folded into the convolution before it and the ReLU after it fused (recomputed on every call,
invisible in the state_dict; ``layers.conv_bn_folded``), and the convolutions go through
``layers.conv3d_channels_last``, which keeps small clips (Slow 4x16, C2D/I3D after their temporal
pool) off PyTorch's slow im2col path. A scripted model runs the plain modules (TorchScript takes no
modules as arguments); all compute the same function up to float rounding. SlowFast is built from the
same blocks. Measured gains, and the comparison with PyTorchVideo's networks on the same weights:
docs/performance-notes.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import Any, Literal

import torch
from torch import Tensor, nn

from videozoo.zoo import Weights, WeightsEnum, build_model, register_model
from videozoo.models._base import VideoModel
from videozoo.models.layers import (
    conv_bn_folded,
    init_conv_bn,
    log_mean_softmax,
    window_avg_pool,
)
from videozoo.models.adapters.resnet3d import from_pytorchvideo_state_dict
from videozoo.models.publishers.pytorchvideo import PTV_FILES_URL, PYSLOWFAST_CONFIGS_URL, ptv_meta, ptv_transforms
from videozoo.models.publishers.pytorchvideo import ptv_finetune_weights

__all__ = [
    "ResNet3D",
    "Slow_R50_Weights",
    "Slow_R50_4x16_Weights",
    "C2D_R50_Weights",
    "I3D_R50_Weights",
    "CSN_R101_Weights",
    "R2Plus1D_R50_Weights",
    "slow_r50",
    "slow_r50_4x16",
    "c2d_r50",
    "i3d_r50",
    "csn_r101",
    "r2plus1d_r50",
]

#: The block's middle convolution: ``"2d"`` 1x3x3 (Slow, C2D, I3D, SlowFast), ``"channelwise"`` 3x3x3
#: with one filter per channel (ir-CSN), ``"2+1d"`` 3x1x1 then 1x3x3 with BN and ReLU between (R(2+1)D).
BlockKind = Literal["2d", "channelwise", "2+1d"]


class ResNet3dStem(nn.Module):
    """A ``t x 7 x 7`` convolution at spatial stride 2, BN, ReLU and (with ``pool``) a 1x3x3 max-pool at
    stride 2."""

    def __init__(self, out_planes: int, temporal_kernel: int, pool: bool = True) -> None:
        super().__init__()
        t = temporal_kernel
        self.conv = nn.Conv3d(3, out_planes, (t, 7, 7), (1, 2, 2), (t // 2, 3, 3), bias=False)
        self.bn = nn.BatchNorm3d(out_planes)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)) if pool else None

    def forward(self, x: Tensor) -> Tensor:
        if self.training or torch.jit.is_scripting():
            x = self.relu(self.bn(self.conv(x)))
        else:
            x = self._conv_bn_relu_folded(x)
        return x if self.pool is None else self.pool(x)

    @torch.jit.unused
    def _conv_bn_relu_folded(self, x: Tensor) -> Tensor:
        return conv_bn_folded(x, self.conv, self.bn, activation="relu")


def _middle_conv(kind: BlockKind, planes: int, stride: int, temporal_stride: int, dilation: int = 1) -> nn.Module:
    """The block's middle convolution, which carries its strides (and its spatial ``dilation``: the AVA
    detectors' res5)."""
    if dilation != 1 and kind != "2d":
        raise ValueError(f"a spatial dilation needs the '2d' block, got {kind!r}.")
    if kind == "2d":
        d = dilation
        return nn.Conv3d(planes, planes, (1, 3, 3), (temporal_stride, stride, stride), (0, d, d), (1, d, d), bias=False)
    if kind == "channelwise":
        return nn.Conv3d(planes, planes, 3, (temporal_stride, stride, stride), 1, groups=planes, bias=False)
    return Conv2Plus1d(planes, stride, temporal_stride)


class Conv2Plus1d(nn.Module):
    """R(2+1)D's middle convolution: ``conv_t`` (3x1x1, temporal stride), BN, ReLU, ``conv_xy`` (1x3x3,
    spatial stride), at the block's inner width throughout (as PyTorchVideo builds it)."""

    def __init__(self, planes: int, stride: int, temporal_stride: int) -> None:
        super().__init__()
        self.conv_t = nn.Conv3d(planes, planes, (3, 1, 1), (temporal_stride, 1, 1), (1, 0, 0), bias=False)
        self.bn = nn.BatchNorm3d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv_xy = nn.Conv3d(planes, planes, (1, 3, 3), (1, stride, stride), (0, 1, 1), bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_xy(self.relu(self.bn(self.conv_t(x))))


class ResNet3dBottleneck(nn.Module):
    """``t x 1 x 1`` reduction, the middle convolution (:data:`BlockKind`, strided), ``1 x 1 x 1``
    expansion, BN after each; a strided 1x1x1 convolution + BN as shortcut where the shape changes."""

    def __init__(
        self, in_planes: int, planes: int, out_planes: int, temporal_kernel: int, stride: int,
        kind: BlockKind = "2d", temporal_stride: int = 1, dilation: int = 1,
    ) -> None:
        super().__init__()
        t = temporal_kernel
        self.conv1 = nn.Conv3d(in_planes, planes, (t, 1, 1), padding=(t // 2, 0, 0), bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = _middle_conv(kind, planes, stride, temporal_stride, dilation)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = nn.Conv3d(planes, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm3d(out_planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or temporal_stride != 1 or in_planes != out_planes:
            self.downsample = nn.Sequential(
                nn.Conv3d(in_planes, out_planes, 1, (temporal_stride, stride, stride), bias=False),
                nn.BatchNorm3d(out_planes),
            )

    def forward(self, x: Tensor) -> Tensor:
        if not self.training and not torch.jit.is_scripting():
            return self._forward_folded(x)
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += shortcut
        return self.relu(out)

    @torch.jit.unused
    def _forward_folded(self, x: Tensor) -> Tensor:
        """``forward`` in eval mode with each BN folded into the convolution before it, and the shortcut's
        sum and the last ReLU into the last convolution: one pass over the activations instead of three
        (the folded filters follow the current parameters, so loading or fine-tuning needs no refresh)."""
        downsample = self.downsample
        shortcut = x if downsample is None else conv_bn_folded(x, downsample[0], downsample[1])
        out = conv_bn_folded(x, self.conv1, self.bn1, activation="relu")
        conv2 = self.conv2
        if isinstance(conv2, Conv2Plus1d):
            out = conv_bn_folded(out, conv2.conv_t, conv2.bn, activation="relu")
            conv2 = conv2.conv_xy
        out = conv_bn_folded(out, conv2, self.bn2, activation="relu")
        return conv_bn_folded(out, self.conv3, self.bn3, "relu", residual=shortcut)


def res_stage(
    in_planes: int,
    planes: int,
    temporal_kernels: Sequence[int],
    stride: int,
    kind: BlockKind = "2d",
    temporal_stride: int = 1,
    dilation: int = 1,
) -> nn.Sequential:
    """One stage: ``len(temporal_kernels)`` blocks of width ``planes`` (``4 * planes`` out), the first
    one strided; ``temporal_kernels[j]`` is block ``j``'s first kernel; ``dilation``, the spatial
    dilation of every block's middle convolution."""
    blocks = []
    for j, t in enumerate(temporal_kernels):
        first = j == 0
        blocks.append(
            ResNet3dBottleneck(
                in_planes if first else 4 * planes,
                planes,
                4 * planes,
                t,
                stride if first else 1,
                kind,
                temporal_stride if first else 1,
                dilation,
            )
        )
    return nn.Sequential(*blocks)


def init_pyslowfast(model: VideoModel) -> None:
    """PySlowFast's initialisation of a bottleneck ResNet (MSRA fill, the last BN of each residual branch
    at zero, the classifier's ``init_classifier``), and channels-last (NDHWC) activations and filters
    (see the module docstring), a layout that loading a state_dict keeps."""
    init_conv_bn(model, zero_init=[m.bn3 for m in model.modules() if isinstance(m, ResNet3dBottleneck)])
    model.init_classifier(model.get_classifier())
    model.to(memory_format=torch.channels_last_3d)


class ResNet3D(VideoModel):
    """A bottleneck 3D ResNet: stem, four stages (64-512 inner channels), windowed average pool, linear.

    Args:
        layers: blocks per stage ((3, 4, 6, 3) for ResNet-50, (3, 4, 23, 3) for ResNet-101).
        block: the blocks' middle convolution (see :data:`BlockKind`).
        stem_kernel: temporal kernel of the 7x7 stem convolution.
        stem_pool: a 1x3x3 max-pool (stride 2) after the stem.
        temporal_kernels: per stage, the temporal kernels of the blocks' first convolution: one value
            for every block, or a pattern repeated over the stage (I3D's ``(3, 1)``).
        spatial_strides: per stage, the stride of its first block in height and width.
        temporal_strides: per stage, the temporal stride of its first block.
        spatial_dilations: per stage, the spatial dilation of its blocks' middle convolutions (the AVA
            detectors' res5: stride 1, dilation 2).
        stage1_pool: a 2x1x1 temporal max-pool (stride 2) after the first stage (C2D, I3D).
        num_frames: frames of the training clip the head's window was sized for: ``(num_frames / s,
            crop_size / 32, crop_size / 32)``, ``s`` the network's total temporal stride.
        crop_size: side of that training clip.
        average_probs: over several window positions, average class probabilities (``forward``
            returns their log) instead of logits, as PyTorchVideo's R(2+1)D does.
        num_classes: outputs of the classifier.
        dropout: before the classifier, while training.
    """

    def __init__(
        self, layers: Sequence[int] = (3, 4, 6, 3), *, block: BlockKind = "2d", stem_kernel: int = 1,
        stem_pool: bool = True, temporal_kernels: Sequence[int | Sequence[int]] = (1, 1, 3, 3),
        spatial_strides: Sequence[int] = (1, 2, 2, 2), temporal_strides: Sequence[int] = (1, 1, 1, 1),
        spatial_dilations: Sequence[int] = (1, 1, 1, 1), stage1_pool: bool = False, num_frames: int = 8, crop_size: int = 224, average_probs: bool = False,
        num_classes: int = 400, dropout: float = 0.5,
    ) -> None:
        width = 64
        super().__init__(num_classes, num_features=width * 32, min_temporal_size=2 if stage1_pool else 1)
        self.num_layers = 4
        stages = (layers, temporal_kernels, spatial_strides, temporal_strides, spatial_dilations)
        if any(len(entry) != 4 for entry in stages):
            raise ValueError(
                "layers, temporal_kernels, spatial_strides, temporal_strides and spatial_dilations need 4 "
                "entries each, got "
                + ", ".join(repr(tuple(entry)) for entry in stages)
            )
        if block not in ("2d", "channelwise", "2+1d"):
            raise ValueError(f"block must be '2d', 'channelwise' or '2+1d', got {block!r}.")
        time_stride = math.prod(temporal_strides) * (2 if stage1_pool else 1)
        if num_frames < 1 or num_frames % time_stride != 0:
            raise ValueError(
                f"num_frames ({num_frames}) must be a positive multiple of the network's temporal stride "
                f"({time_stride}): the head's window spans num_frames / {time_stride} frames of the last map."
            )
        self.num_frames = num_frames
        self.crop_size = crop_size
        self.average_probs = average_probs
        self.stem = ResNet3dStem(width, stem_kernel, stem_pool)
        in_planes = width
        for i, (depth, kernels, stride, t_stride, dilation) in enumerate(zip(*stages)):
            pattern = [kernels] if isinstance(kernels, int) else list(kernels)
            planes = width * 2**i
            per_block = [pattern[j % len(pattern)] for j in range(depth)]
            stage = res_stage(in_planes, planes, per_block, stride, block, t_stride, dilation)
            self.add_module(f"layer{i + 1}", stage)
            in_planes = 4 * planes
        self.stage1_pool = nn.MaxPool3d((2, 1, 1), (2, 1, 1)) if stage1_pool else None
        self.pool_window = [num_frames // time_stride, crop_size // 32, crop_size // 32]
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.num_features, num_classes)

        init_pyslowfast(self)

    def forward_features(self, x: Tensor) -> Tensor:
        """The last stage's map ``(B, 2048, T', H', W')``."""
        x = self.stem(x.contiguous(memory_format=torch.channels_last_3d))
        x = self.layer1(x) if torch.jit.is_scripting() else self.checkpointed(self.layer1, x)
        if self.stage1_pool is not None:
            x = self.stage1_pool(x)
        if torch.jit.is_scripting():
            return self.layer4(self.layer3(self.layer2(x)))
        return self.run_layers(x, [self.layer2, self.layer3, self.layer4])

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = window_avg_pool(x, self.pool_window)  # (B, 2048, t, h, w): one vector per window position
        if pre_logits:
            return x.mean((2, 3, 4))
        if not self.average_probs or x.shape[2] * x.shape[3] * x.shape[4] == 1:
            # The classifier is linear: classifying the mean vector is averaging the positions' logits.
            return self.fc(self.dropout(x.mean((2, 3, 4))))
        return log_mean_softmax(self.fc(self.dropout(x.flatten(2).transpose(1, 2))))


# ----------------------------------------------------------------------------------------------------
# Weights



def _weights(
    file: str,
    arch: str,
    frames: int,
    rate: int,
    figures: tuple[int, float, float, float],
    *,
    min_temporal_size: int = 1,
    average_probs: bool = False,
) -> Weights:
    """PyTorchVideo's Kinetics-400 checkpoint ``{PTV_FILES_URL}/kinetics/<file>.pyth`` of ``arch``, trained on
    ``frames`` frames ``rate`` apart and evaluated with PySlowFast's 3-crop test at 256 pixels; ``figures`` =
    (parameters, top-1, top-5, GFLOPs) as published."""
    num_params, acc1, acc5, gflops = figures
    config = f"Kinetics/pytorchvideo/{file}"
    averaged = "class probabilities, as PyTorchVideo's model does" if average_probs else (
        "logits, as PyTorchVideo's model does (PySlowFast averaged their softmax)"
    )
    return Weights(
        url=f"{PTV_FILES_URL}/kinetics/{file}.pyth",
        transforms=ptv_transforms(256),
        meta=ptv_meta(
            num_params=num_params, acc1=acc1, acc5=acc5, gflops=gflops, num_frames=frames, sampling_rate=rate,
            min_size=(1, 1),  # maps smaller than the head's window are pooled whole
            min_temporal_size=min_temporal_size,
            docs=(
                f"PyTorchVideo's {arch} {frames}x{rate} Kinetics-400 checkpoint: {frames} frames {rate} apart at "
                f"30 fps. Accuracy is PyTorchVideo's model zoo figure: PySlowFast evaluation ({config}) with 10 "
                f"clips x 3 crops of 256 pixels, short side resized to 256, mean 0.45 / std 0.225. At 256 pixels "
                f"the head's 224-pixel window takes 2x2 positions; this model averages their {averaged}."
            ),
            recipe=f"{PYSLOWFAST_CONFIGS_URL}/{config}.yaml",
            train_crop_size=224,
            test_crop_size=256,
            model_args={"num_frames": frames, "crop_size": 224},  # the head's pooling window
        ),
        state_dict_adapter=from_pytorchvideo_state_dict,
    )


_SLOW_R50_KINETICS = _weights("SLOW_8x8_R50", "Slow R50", 8, 8, (32454096, 74.58, 91.63, 54.52))
_slow_r50_finetune = partial(ptv_finetune_weights, kinetics=_SLOW_R50_KINETICS, arch="Slow 8x8 R50")


class Slow_R50_Weights(WeightsEnum):
    KINETICS400_V1 = _SLOW_R50_KINETICS
    # The same network with 174 / 157 classes (see ptv_finetune_weights for the recipes).
    SSV2_V1 = _slow_r50_finetune("ssv2", 31991022, {"acc@1": 60.04, "acc@5": 85.19}, gflops=55.10)
    CHARADES_V1 = _slow_r50_finetune("charades", 31956189, {"mAP": 34.72}, gflops=55.10)
    DEFAULT = KINETICS400_V1


class Slow_R50_4x16_Weights(WeightsEnum):
    KINETICS400_V1 = DEFAULT = _weights("SLOW_4x16_R50", "Slow R50", 4, 16, (32454096, 72.40, 90.18, 27.55))


class C2D_R50_Weights(WeightsEnum):
    KINETICS400_V1 = DEFAULT = _weights(
        "C2D_8x8_R50", "C2D R50", 8, 8, (24327632, 71.46, 89.68, 25.89), min_temporal_size=2
    )


class I3D_R50_Weights(WeightsEnum):
    KINETICS400_V1 = DEFAULT = _weights(
        "I3D_8x8_R50", "I3D R50", 8, 8, (28043472, 73.27, 90.70, 37.53), min_temporal_size=2
    )


class CSN_R101_Weights(WeightsEnum):
    KINETICS400_V1 = DEFAULT = _weights("CSN_32x2_R101", "ir-CSN R101", 32, 2, (22213776, 77.00, 92.90, 75.62))


class R2Plus1D_R50_Weights(WeightsEnum):
    KINETICS400_V1 = DEFAULT = _weights(
        "R2PLUS1D_16x4_R50", "R(2+1)D R50", 16, 4, (28107600, 76.01, 92.23, 76.45), average_probs=True
    )


# ----------------------------------------------------------------------------------------------------
# Builders

# The published networks, as ResNet3D's arguments (its defaults are Slow's: no temporal stride, 3x1x1
# kernels in res4 and res5).
_R50 = (3, 4, 6, 3)
_R101 = (3, 4, 23, 3)
_C2D = {"layers": _R50, "temporal_kernels": (1, 1, 1, 1), "stage1_pool": True, "num_frames": 8}
_I3D = {**_C2D, "stem_kernel": 5, "temporal_kernels": (3, (3, 1), (3, 1), (1, 3))}
_CSN = {
    "layers": _R101, "block": "channelwise", "stem_kernel": 3, "temporal_kernels": (1, 1, 1, 1),
    "temporal_strides": (1, 2, 2, 2), "num_frames": 32,
}
_R2PLUS1D = {
    "layers": _R50, "block": "2+1d", "stem_pool": False, "temporal_kernels": (1, 1, 1, 1), "spatial_strides": (2, 2, 2, 2),
    "temporal_strides": (1, 1, 2, 2), "num_frames": 16, "average_probs": True,
}


@register_model(Slow_R50_Weights)
def slow_r50(*, weights: Slow_R50_Weights | str | None = None, progress: bool = True, **kwargs: Any) -> ResNet3D:
    """Slow R50 8x8: 8 frames, 3x1x1 kernels in res4 and res5 only, no temporal downsampling.

    Args:
        weights: :class:`Slow_R50_Weights` (a member, its name or ``"DEFAULT"``), a file's path, or ``None``
            (PyTorchVideo's format).
        progress: show a progress bar while downloading.
        kwargs: passed to :class:`ResNet3D`; ``num_frames`` and ``crop_size`` are fixed by weights.
    """
    return build_model(ResNet3D, Slow_R50_Weights, weights, progress, kwargs, layers=_R50, num_frames=8)


@register_model(Slow_R50_4x16_Weights)
def slow_r50_4x16(*, weights: Slow_R50_4x16_Weights | str | None = None, progress: bool = True, **kwargs: Any) -> ResNet3D:
    """Slow R50 4x16: the Slow network of :func:`slow_r50` with a head for 4 frames (16 apart).

    Args: as :func:`slow_r50`, with :class:`Slow_R50_4x16_Weights`.
    """
    return build_model(ResNet3D, Slow_R50_4x16_Weights, weights, progress, kwargs, layers=_R50, num_frames=4)


@register_model(C2D_R50_Weights)
def c2d_r50(*, weights: C2D_R50_Weights | str | None = None, progress: bool = True, **kwargs: Any) -> ResNet3D:
    """C2D R50 8x8: a 2D ResNet-50 on every frame, a 2x1x1 temporal max-pool after res2.

    Args: as :func:`slow_r50`, with :class:`C2D_R50_Weights`.
    """
    return build_model(ResNet3D, C2D_R50_Weights, weights, progress, kwargs, **_C2D)


@register_model(I3D_R50_Weights)
def i3d_r50(*, weights: I3D_R50_Weights | str | None = None, progress: bool = True, **kwargs: Any) -> ResNet3D:
    """I3D R50 8x8: a 5x7x7 stem, 3x1x1 kernels in all res2 blocks and every other block above (res5:
    the 2nd), a 2x1x1 temporal max-pool after res2.

    Args: as :func:`slow_r50`, with :class:`I3D_R50_Weights`.
    """
    return build_model(ResNet3D, I3D_R50_Weights, weights, progress, kwargs, **_I3D)


@register_model(CSN_R101_Weights)
def csn_r101(*, weights: CSN_R101_Weights | str | None = None, progress: bool = True, **kwargs: Any) -> ResNet3D:
    """ir-CSN R101 32x2: channel-wise 3x3x3 middle convolutions, a 3x7x7 stem; res3-res5 halve the
    frame rate (32 frames -> 4).

    Args: as :func:`slow_r50`, with :class:`CSN_R101_Weights`.
    """
    return build_model(ResNet3D, CSN_R101_Weights, weights, progress, kwargs, **_CSN)


@register_model(R2Plus1D_R50_Weights)
def r2plus1d_r50(*, weights: R2Plus1D_R50_Weights | str | None = None, progress: bool = True, **kwargs: Any) -> ResNet3D:
    """R(2+1)D R50 16x4: (2+1)D middle convolutions, a 1x7x7 stem without max-pool, every stage halves
    the frame size and res4, res5 the frame rate (16 frames -> 4); the head averages probabilities.

    Args: as :func:`slow_r50`, with :class:`R2Plus1D_R50_Weights`.
    """
    return build_model(ResNet3D, R2Plus1D_R50_Weights, weights, progress, kwargs, **_R2PLUS1D)
