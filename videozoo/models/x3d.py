"""X3D: XS, S, M and L.

Feichtenhofer, "X3D: Expanding Architectures for Efficient Video Recognition", CVPR 2020
(https://arxiv.org/abs/2004.04730). A ResNet of inverted bottlenecks whose 3x3x3 convolution is
channel-wise (one filter per channel), with squeeze-excitation on every other block and Swish after
the channel-wise convolution. The sizes are "expansions" of one tiny network: wider
(``width_factor``), deeper (``depth_factor``), longer clips and larger frames.

The head (PySlowFast's "projected pooling") is a 1x1x1 convolution + BN + ReLU, an average pool with a
window fixed to the clip size the network was built for, a 1x1x1 projection to 2048 channels + ReLU,
then the classifier, applied at every window position. On larger inputs (PySlowFast tests at a larger
short side than it trains, e.g. X3D-M at 256 px for a head built for 224 px) the window slides with
stride 1 and the class *probabilities* of all positions are averaged.

The published checkpoints are PyTorchVideo's, in its module layout; ``X3D_*_Weights`` carry an adapter
(:func:`from_pytorchvideo_state_dict`) that renames their keys to ours, so the files load unchanged:
``videozoo.x3d_m(weights="path/to/X3D_M.pyth")`` for a file downloaded by hand.

On CPU the network runs in ``channels_last_3d`` layout and, in eval mode, with each BN folded into the
convolution before it (see :class:`ConvBN`); both are the same arithmetic in a faster order.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from videozoo.zoo import Weights, WeightsEnum, build_model, register_model
from videozoo.models._base import VideoModel
from videozoo.models.layers import (
    conv3d_channels_last,
    conv_bn_folded,
    fold_batch_norm,
    init_conv_bn,
    log_mean_softmax,
    onednn_applies,
    position_mean,
    window_avg_pool,
)
from videozoo.models.adapters.x3d import from_pytorchvideo_state_dict
from videozoo.models.publishers.pytorchvideo import PTV_FILES_URL, PYSLOWFAST_CONFIGS_URL, ptv_meta, ptv_transforms

__all__ = [
    "X3D",
    "X3D_XS_Weights",
    "X3D_S_Weights",
    "X3D_M_Weights",
    "X3D_L_Weights",
    "x3d_xs",
    "x3d_s",
    "x3d_m",
    "x3d_l",
]


def _round_width(width: float, multiplier: float, divisor: int = 8) -> int:
    """Scale a channel count and round it to a multiple of ``divisor`` (never down by more than 10%)."""
    scaled = width * multiplier
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


def _folds(training: bool, x: Tensor, weight: Tensor) -> bool:
    """Whether a module takes its fused eval path (:meth:`ConvBN.folded`): eval mode, a channels-last input,
    and oneDNN's fused operators for it (:func:`~videozoo.models.layers.onednn_applies`: CPU inference,
    outside autocast and every tracer, so that exported and compiled graphs keep ``forward``'s operators).
    Eager only: callers ask inside ``if not torch.jit.is_scripting()``."""
    return not training and x.is_contiguous(memory_format=torch.channels_last_3d) and onednn_applies(x, weight)


class ConvBN(nn.Module):
    """A bias-free ``Conv3d`` followed by ``BatchNorm3d`` (or by nothing when ``norm=False``).

    Two ways of computing the same function faster, neither visible in the state_dict:

    * with the BN in eval mode, one convolution whose weight and bias fold the BN in: one pass over the
      activations instead of two;
    * on a channels-last input, a 1x1x1 convolution is a matrix product over rows of channels
      (``F.linear`` on a view), and a kt x 1 x 1 one is a 2D convolution over a (T, H*W) view; PyTorch's
      CPU convolution would take slow paths for both (with a single thread), converting layouts.

    ``forward`` is what TorchScript and the tracers see; eager eval-mode blocks call :meth:`folded`,
    which also fuses the activation and the shortcut's sum into oneDNN's convolution.
    """

    def __init__(
        self, in_planes: int, out_planes: int, kernel_size: tuple[int, int, int] = (1, 1, 1),
        stride: tuple[int, int, int] = (1, 1, 1), padding: tuple[int, int, int] = (0, 0, 0), groups: int = 1,
        norm: bool = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_planes, out_planes, kernel_size, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm3d(out_planes) if norm else None
        self.pointwise = kernel_size == (1, 1, 1) and padding == (0, 0, 0) and groups == 1

    def forward(self, x: Tensor) -> Tensor:
        bn = self.bn
        if bn is None:
            return self._conv(x, self.conv.weight, None)
        if bn.training:
            return bn(self._conv(x, self.conv.weight, None))
        mean, var = bn.running_mean, bn.running_var
        assert mean is not None and var is not None
        weight, bias = fold_batch_norm(self.conv.weight, mean, var, bn.weight, bn.bias, bn.eps)
        return self._conv(x, weight, bias)

    def _conv(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        conv = self.conv
        if not x.is_contiguous(memory_format=torch.channels_last_3d):
            return F.conv3d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)
        if self.pointwise:
            st, sh, sw = conv.stride
            rows = x[:, :, ::st, ::sh, ::sw].permute(0, 2, 3, 4, 1)  # (B, T, H, W, C)
            return F.linear(rows, weight.flatten(1), bias).permute(0, 4, 1, 2, 3)
        # The kt x 1 x 1 stem convolution as a 2D one; every result kept channels-last (PyTorch's CPU
        # convolution answers some shapes in the default layout, e.g. with a single thread, which would
        # send every later layer down the slow path).
        return conv3d_channels_last(x, weight, bias, conv.stride, conv.padding, conv.groups)

    @torch.jit.unused
    def folded(self, x: Tensor, activation: str = "none", residual: Tensor | None = None) -> Tensor:
        """``forward`` in eval mode on a channels-last ``x``, plus ``residual``, then ``activation``
        (``"relu"`` or ``"swish"``): in CPU inference one oneDNN convolution with the BN folded into filters
        kept between calls and the rest fused (:func:`~videozoo.models.layers.conv_bn_folded`)."""
        conv = self.conv
        if self.bn is None:
            return conv3d_channels_last(x, conv.weight, None, conv.stride, conv.padding, conv.groups, activation, residual)
        return conv_bn_folded(x, conv, self.bn, activation, residual)


class SqueezeExcitation(nn.Module):
    """Channel attention: global average, bottleneck MLP, sigmoid gate."""

    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels, reduced)
        self.fc2 = nn.Linear(reduced, channels)

    def forward(self, x: Tensor) -> Tensor:
        scale = torch.sigmoid(self.fc2(F.relu(self.fc1(position_mean(x)), inplace=True)))
        return x * scale[:, :, None, None, None]


class X3DStem(nn.Module):
    """A 1x3x3 spatial convolution (stride 2), then a channel-wise 5x1x1 temporal one, BN, ReLU."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.width = width
        self.conv_xy = nn.Conv3d(3, width, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), bias=False)
        self.conv_t = ConvBN(width, width, (5, 1, 1), padding=(2, 0, 0), groups=width)

    def forward(self, x: Tensor) -> Tensor:
        x = self._conv_xy_channels_last(x) if x.device.type == "cpu" else self.conv_xy(x)
        if not torch.jit.is_scripting():  # (compiled out when scripting)
            if _folds(self.training, x, self.conv_t.conv.weight):
                return self.conv_t.folded(x, "relu")
        return F.relu(self.conv_t(x), inplace=True)

    def _conv_xy_channels_last(self, x: Tensor) -> Tensor:
        """``conv_xy`` for CPU, where oneDNN runs X3D's channel-wise 3D convolutions faster on
        channels-last activations (docs/performance-notes.md): the same convolution, frame by frame as a 2D one on channels-last
        frames, whose output is then already (B, C, T, H, W) in ``channels_last_3d`` layout; every
        later layer keeps it.
        """
        b, c, t, h, w = x.shape
        frames = x.permute(0, 2, 3, 4, 1).contiguous().view(b * t, h, w, c).permute(0, 3, 1, 2)
        weight = self.conv_xy.weight.squeeze(2).contiguous(memory_format=torch.channels_last)
        y = F.conv2d(frames, weight, None, self.conv_xy.stride[1:], self.conv_xy.padding[1:])
        y = y.view(b, t, y.shape[1], y.shape[2], y.shape[3]).transpose(1, 2)
        return y.contiguous(memory_format=torch.channels_last_3d)  # a no-op unless oneDNN chose otherwise


class X3DBottleneck(nn.Module):
    """1x1x1 expand, channel-wise 3x3x3 (+ SE), Swish, 1x1x1 project; ReLU after the residual sum.

    The shortcut is a strided 1x1x1 convolution when the block changes width or resolution. In the
    first stage (same width, stride 2) PyTorchVideo's network has no BN after that convolution, and
    neither do we: the checkpoints were trained that way. Its mobile X3D has one there
    (``shortcut_norm=True``).
    """

    def __init__(
        self, in_planes: int, planes: int, out_planes: int, stride: int, se_planes: int, shortcut_norm: bool = False
    ) -> None:
        super().__init__()
        self.conv1 = ConvBN(in_planes, planes)
        self.conv2 = ConvBN(planes, planes, (3, 3, 3), (1, stride, stride), (1, 1, 1), groups=planes)
        self.se = SqueezeExcitation(planes, se_planes) if se_planes > 0 else None
        self.conv3 = ConvBN(planes, out_planes)
        self.downsample: ConvBN | None = None
        if stride != 1 or in_planes != out_planes:
            norm = shortcut_norm or in_planes != out_planes
            self.downsample = ConvBN(in_planes, out_planes, stride=(1, stride, stride), norm=norm)

    def forward(self, x: Tensor) -> Tensor:
        if not torch.jit.is_scripting():  # (compiled out when scripting)
            if _folds(self.training, x, self.conv1.conv.weight):
                return self._forward_folded(x)
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.conv2(F.relu(self.conv1(x), inplace=True))
        if self.se is not None:
            out = self.se(out)
        out = self.conv3(F.silu(out, inplace=True))  # Swish
        return F.relu(out.add_(shortcut), inplace=True)

    @torch.jit.unused
    def _forward_folded(self, x: Tensor) -> Tensor:
        """``forward`` with every activation and the shortcut's sum fused into the convolution before it
        (:meth:`ConvBN.folded`); the SE, when there is one, sits between the channel-wise convolution and
        its Swish."""
        shortcut = x if self.downsample is None else self.downsample.folded(x)
        out = self.conv1.folded(x, "relu")
        if self.se is None:
            out = self.conv2.folded(out, "swish")
        else:
            out = F.silu(self.se(self.conv2.folded(out)), inplace=True)
        return self.conv3.folded(out, "relu", residual=shortcut)


class X3D(VideoModel):
    """X3D with a head built for ``num_frames`` frames of ``crop_size`` x ``crop_size`` pixels.

    ``forward_features`` returns the head's first (per-position) convolution, ``(B, C, T', H', W')``.
    The head average-pools it with a window fixed to the built clip size, slid at stride 1, and
    projects every window position to ``num_features`` (2048) channels:

    * ``forward_head(f, pre_logits=True)`` is the mean of those projections over the positions,
      ``(B, num_features)`` at any input size (the clip embedding);
    * ``forward_head(f)`` is, when the input fits the window once (up to the built size), the
      classifier's logits, and otherwise the log of the class probabilities averaged over the
      positions, as PySlowFast tests at larger sizes: either way ``softmax(forward(x))`` is the
      probability PyTorchVideo's model returns. Above the built size the logits are therefore not the
      classifier applied to the embedding (which would average logits, not probabilities).

    Inputs whose stage-4 map is smaller than the window in some dimension (PyTorchVideo rejects
    them; e.g. fewer frames than ``num_frames``) are pooled over that whole dimension.

    With ``global_pool=True`` (PyTorchVideo's mobile X3D, :mod:`videozoo.models.efficient_x3d`) the
    head averages the whole map instead: one position at every size, so the logits are always the
    classifier applied to the embedding, and ``num_frames`` / ``crop_size`` only record the clip the
    network was trained on.

    Args:
        num_frames: frames of the training clip (the head's temporal window).
        crop_size: side of the training crop; the spatial window is ``ceil(crop_size / 32)``.
        depth_factor: blocks per stage relative to (1, 2, 5, 3), rounded up.
        width_factor: channels relative to the base network.
        bottleneck_factor: inner width of each block relative to its output width.
        stem_width: channels of the base network's stem (before ``width_factor``).
        head_width: channels of the projection the classifier reads (``num_features``).
        se_ratio: squeeze-excitation width relative to the block's inner width (0: no SE).
        dropout: before the classifier, while training.
        num_classes: outputs of the classifier.
        global_pool: the head averages the whole stage-4 map rather than a window of the built clip.
        shortcut_norm: a BN after every projection shortcut, the first stage's too (see
            :class:`X3DBottleneck`).
    """

    head_params = ("conv5", "lin5", "fc")  # conv5 before the pooling, too

    def __init__(
        self, num_frames: int, crop_size: int, depth_factor: float = 2.2, width_factor: float = 2.0,
        bottleneck_factor: float = 2.25, stem_width: int = 12, head_width: int = 2048, se_ratio: float = 0.0625,
        dropout: float = 0.5, num_classes: int = 400, global_pool: bool = False, shortcut_norm: bool = False,
    ) -> None:
        super().__init__(num_classes, head_width)
        self.num_layers = 4
        self.num_frames = num_frames
        self.crop_size = crop_size
        self.global_pool = global_pool
        self.pool_window = [num_frames, math.ceil(crop_size / 32), math.ceil(crop_size / 32)]

        self.stem = X3DStem(_round_width(stem_width, width_factor))

        # Four stages, each halving the resolution in its first block; widths double per stage.
        in_planes = self.stem.width
        stage_width = stem_width
        for i, depth in enumerate((1, 2, 5, 3), start=1):
            if i > 1:
                stage_width = _round_width(stage_width, 2.0)
            out_planes = _round_width(stage_width, width_factor)
            planes = int(bottleneck_factor * out_planes)
            se_planes = _round_width(planes, se_ratio)
            blocks = []
            for j in range(math.ceil(depth_factor * depth)):
                # SE on the 1st, 3rd, 5th, ... block of each stage.
                se = se_planes if se_ratio > 0 and j % 2 == 0 else 0
                blocks.append(X3DBottleneck(in_planes, planes, out_planes, 2 if j == 0 else 1, se, shortcut_norm))
                in_planes = out_planes
            self.add_module(f"layer{i}", nn.Sequential(*blocks))

        # Head: conv5 (to the last stage's inner width), pool, lin5 (to 2048), classifier.
        self.conv5 = ConvBN(in_planes, planes)
        self.lin5 = nn.Conv3d(planes, head_width, 1, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(head_width, num_classes)

        # PySlowFast's ZERO_INIT_FINAL_BN: each block starts as the identity.
        last_norms = [m.conv3.bn for m in self.modules() if isinstance(m, X3DBottleneck)]
        init_conv_bn(self, zero_init=[bn for bn in last_norms if bn is not None])
        self.init_classifier(self.fc)

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        if torch.jit.is_scripting():
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        else:
            x = self.run_layers(x, [self.layer1, self.layer2, self.layer3, self.layer4])
        if not torch.jit.is_scripting():  # (compiled out when scripting)
            if _folds(self.training, x, self.conv5.conv.weight):
                return self.conv5.folded(x, "relu")
        return F.relu(self.conv5(x), inplace=True)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = x.mean((2, 3, 4), keepdim=True) if self.global_pool else window_avg_pool(x, self.pool_window)
        x = F.relu(self.lin5(x), inplace=True)  # (B, 2048, t, h, w): one vector per window position
        if pre_logits:
            return x.mean((2, 3, 4))
        logits = self.fc(self.dropout(x.flatten(2).transpose(1, 2)))  # (B, positions, num_classes)
        return logits[:, 0] if logits.shape[1] == 1 else log_mean_softmax(logits)


# ----------------------------------------------------------------------------------------------------
# Weights

_DOCS = (
    "Weights published by PyTorchVideo, trained with PySlowFast. The accuracies are video-level on the "
    "Kinetics-400 validation set with 10 temporal clips x 3 spatial crops, at a short side (= crop) of "
    "{test} px; the head was built for {train} px crops (1-crop testing). The preset resizes and crops "
    "to {test} px, where the model averages class probabilities over its pooling window positions. "
    "GFLOPs are PyTorchVideo's, per view at {test} px."
)

_CONFIGS = f"{PYSLOWFAST_CONFIGS_URL}/Kinetics/pytorchvideo"


def _weights(
    name: str, frames: int, rate: int, train: int, test: int, *, params: int, acc1: float, acc5: float, gflops: float
) -> Weights:
    """PyTorchVideo's ``<name>.pyth``: ``frames`` frames ``rate`` apart, head built for ``train`` px, tested at ``test``."""
    return Weights(
        url=f"{PTV_FILES_URL}/kinetics/{name}.pyth",
        transforms=ptv_transforms(test),
        meta=ptv_meta(
            num_params=params, acc1=acc1, acc5=acc5, gflops=gflops, num_frames=frames, sampling_rate=rate,
            min_size=(1, 1),  # smaller inputs than the head's window are pooled whole (see X3D)
            min_temporal_size=1,
            docs=_DOCS.format(test=test, train=train),
            recipe=f"{_CONFIGS}/{name}.yaml",
            train_crop_size=train,
            test_crop_size=test,
            model_args={"num_frames": frames, "crop_size": train},  # the head's pooling window
        ),
        state_dict_adapter=from_pytorchvideo_state_dict,
    )


class X3D_XS_Weights(WeightsEnum):
    KINETICS400_V1 = DEFAULT = _weights("X3D_XS", 4, 12, 160, 182, params=3794274, acc1=69.12, acc5=88.63, gflops=0.91)


class X3D_S_Weights(WeightsEnum):
    KINETICS400_V1 = DEFAULT = _weights("X3D_S", 13, 6, 160, 182, params=3794274, acc1=73.33, acc5=91.27, gflops=2.96)


class X3D_M_Weights(WeightsEnum):
    KINETICS400_V1 = DEFAULT = _weights("X3D_M", 16, 5, 224, 256, params=3794274, acc1=75.94, acc5=92.72, gflops=6.72)


class X3D_L_Weights(WeightsEnum):
    KINETICS400_V1 = DEFAULT = _weights("X3D_L", 16, 5, 312, 356, params=6153384, acc1=77.44, acc5=93.31, gflops=26.64)


# ----------------------------------------------------------------------------------------------------
# Builders


@register_model(X3D_XS_Weights)
def x3d_xs(*, weights: X3D_XS_Weights | str | None = None, progress: bool = True, **kwargs: Any) -> X3D:
    """X3D-XS: 4 frames, head built for 160 px.

    Args:
        weights: :class:`X3D_XS_Weights` (a member, its name or ``"DEFAULT"``), a file's path, or ``None``
            (PyTorchVideo's format).
        progress: show a progress bar while downloading.
        kwargs: passed to :class:`X3D`; ``num_frames`` and ``crop_size`` are fixed by weights.
    """
    return build_model(X3D, X3D_XS_Weights, weights, progress, kwargs, num_frames=4, crop_size=160)


@register_model(X3D_S_Weights)
def x3d_s(*, weights: X3D_S_Weights | str | None = None, progress: bool = True, **kwargs: Any) -> X3D:
    """X3D-S: 13 frames, head built for 160 px.

    Args: as :func:`x3d_xs`, with :class:`X3D_S_Weights`.
    """
    return build_model(X3D, X3D_S_Weights, weights, progress, kwargs, num_frames=13, crop_size=160)


@register_model(X3D_M_Weights)
def x3d_m(*, weights: X3D_M_Weights | str | None = None, progress: bool = True, **kwargs: Any) -> X3D:
    """X3D-M: 16 frames, head built for 224 px.

    Args: as :func:`x3d_xs`, with :class:`X3D_M_Weights`.
    """
    return build_model(X3D, X3D_M_Weights, weights, progress, kwargs, num_frames=16, crop_size=224)


@register_model(X3D_L_Weights)
def x3d_l(*, weights: X3D_L_Weights | str | None = None, progress: bool = True, **kwargs: Any) -> X3D:
    """X3D-L: 16 frames, head built for 312 px, 5x deeper than the base network.

    Args: as :func:`x3d_xs`, with :class:`X3D_L_Weights`.
    """
    return build_model(X3D, X3D_L_Weights, weights, progress, kwargs, num_frames=16, crop_size=312, depth_factor=5.0)
