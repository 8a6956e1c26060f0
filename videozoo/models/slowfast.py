"""SlowFast: a Slow and a Fast ResNet pathway joined by lateral connections.

Feichtenhofer et al., "SlowFast Networks for Video Recognition", ICCV 2019
(https://arxiv.org/abs/1812.03982), with PyTorchVideo's published Kinetics-400 checkpoints.

* The **Fast** pathway sees every frame of the clip with 1/8 of the channels (``beta_inv = 8``),
  and temporal (3x1x1) convolutions from its first stage on.
* The **Slow** pathway sees ``T // alpha`` of those frames with the full ResNet width; it only has
  temporal convolutions in its two upper stages (res4, res5).
* After the stem and each of the first three stages a **lateral connection** (a ``k x 1 x 1``
  convolution with temporal stride ``alpha``, BN, ReLU) brings Fast features to the Slow frame rate
  and concatenates them to the Slow features.
* The **head** average-pools each pathway with PyTorchVideo's fixed window, sized for the 224-pixel
  training clip, slides it over larger inputs (the 256-pixel 3-crop test size) and averages the
  windows; then dropout and one linear layer on the concatenated 2048 + 256 features. So
  ``forward_features`` returns the two pathways' maps, ``[slow, fast]``, and
  ``forward_head(maps, pre_logits=True)`` the pooled ``(B, 2304)`` embedding.

The model takes one clip ``(B, 3, T, H, W)``, the Fast pathway's frames, and picks the Slow frames
itself exactly as PyTorchVideo's ``PackPathway`` recipe does. ``forward_pathways(slow, fast)`` (and,
in eager mode, ``model([slow, fast])``) takes the two clips PyTorchVideo's models take.

Our module names are our own; PyTorchVideo's files (``{"model_state": ...}``, keys such as
``blocks.1.multipathway_blocks.0.res_blocks.0.branch2.conv_a.weight``) are renamed on loading by the
weights' ``state_dict_adapter`` (:func:`from_pytorchvideo_state_dict`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, List

import torch
from torch import Tensor, nn

from videozoo.zoo import Weights, WeightsEnum, build_model, register_model
from videozoo.models._base import FeatureLayer, VideoModel
from videozoo.models.layers import window_avg_pool
from videozoo.models.adapters.slowfast import from_pytorchvideo_state_dict
from videozoo.models.publishers.pytorchvideo import PTV_FILES_URL, PYSLOWFAST_CONFIGS_URL, ptv_meta, ptv_transforms
from videozoo.models.publishers.pytorchvideo import ptv_finetune_weights
from videozoo.models.resnet3d import ResNet3dStem, init_pyslowfast, res_stage

__all__ = [
    "SlowFast",
    "SlowFast_R50_Weights",
    "SlowFast_R50_4x16_Weights",
    "SlowFast_R101_Weights",
    "SlowFast_16x8_R101_50_50_Weights",
    "slowfast_r50",
    "slowfast_r50_4x16",
    "slowfast_r101",
    "slowfast_16x8_r101_50_50",
]


class Pathway(nn.Module):
    """One ResNet pathway: ``stem`` and ``layer1``..``layer4`` (res2..res5), run stage by stage by SlowFast;
    the stem and stages of :mod:`videozoo.models.resnet3d` (a Slow pathway is its Slow network).

    ``lateral[i]`` are the channels a lateral connection adds to the input of stage ``i`` (zeros for
    the Fast pathway); ``temporal_kernels[i]`` is the kernel of the first ``temporal_blocks[i]``
    blocks of stage ``i``, the others have none (1). ``spatial_strides`` and ``spatial_dilations``: per
    stage (the AVA detectors' res5 has stride 1 and dilation 2).
    """

    def __init__(
        self,
        width: int,
        layers: Sequence[int],
        stem_kernel: int,
        temporal_kernels: Sequence[int],
        temporal_blocks: Sequence[int],
        lateral: Sequence[int],
        spatial_strides: Sequence[int] = (1, 2, 2, 2),
        spatial_dilations: Sequence[int] = (1, 1, 1, 1),
    ) -> None:
        super().__init__()
        self.stem = ResNet3dStem(width, stem_kernel)
        in_planes = width
        stages = zip(layers, temporal_kernels, temporal_blocks, lateral, spatial_strides, spatial_dilations)
        for i, (depth, kernel, n_temporal, extra, stride, dilation) in enumerate(stages):
            planes = width * 2**i
            kernels = [kernel if j < n_temporal else 1 for j in range(depth)]
            stage = res_stage(in_planes + extra, planes, kernels, stride=stride, dilation=dilation)
            self.add_module(f"layer{i + 1}", stage)
            in_planes = planes * 4


class LateralConnection(nn.Module):
    """Fast -> Slow fusion: a ``k x 1 x 1`` convolution at temporal stride ``alpha`` (doubling the Fast
    channels), BN and ReLU, concatenated to the Slow features."""

    def __init__(self, fast_planes: int, kernel: int, alpha: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(
            fast_planes, 2 * fast_planes, (kernel, 1, 1), (alpha, 1, 1), (kernel // 2, 0, 0), bias=False
        )
        self.bn = nn.BatchNorm3d(2 * fast_planes)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, slow: Tensor, fast: Tensor) -> Tensor:
        return torch.cat([slow, self.relu(self.bn(self.conv(fast)))], 1)


class SlowFast(VideoModel):
    """SlowFast with ResNet-50/101 pathways.

    Args:
        layers: residual blocks per stage of both pathways.
        alpha: frame-rate ratio Fast/Slow (also the stride of the lateral connections).
        beta_inv: channel ratio Slow/Fast.
        fusion_kernel: temporal kernel of the lateral connections.
        temporal_blocks: how many blocks of each stage have temporal kernels (default: all).
        num_frames: Fast frames of the training clip the head's pooling windows were sized for,
            ``(num_frames / alpha, crop / 32, crop / 32)`` on the Slow and
            ``(num_frames, crop / 32, crop / 32)`` on the Fast pathway.
        crop_size: side of that training clip.
        num_classes: outputs of the classifier.
        dropout: before the classifier, while training.
        spatial_strides: per stage of both pathways, the spatial stride of its first block.
        spatial_dilations: per stage of both pathways, the spatial dilation of its middle convolutions.
    """

    stem_params = ("slow.stem", "fast.stem", "fuse0")

    def __init__(
        self, layers: Sequence[int] = (3, 4, 6, 3), *, alpha: int = 4, beta_inv: int = 8, fusion_kernel: int = 7,
        temporal_blocks: Sequence[int] | None = None, num_frames: int = 32, crop_size: int = 224,
        num_classes: int = 400, dropout: float = 0.5,
        spatial_strides: Sequence[int] = (1, 2, 2, 2), spatial_dilations: Sequence[int] = (1, 1, 1, 1),
    ) -> None:
        width = 64
        fast_width = width // beta_inv
        super().__init__(num_classes, num_features=width * 32 + fast_width * 32, min_temporal_size=alpha)
        self.num_layers = 4
        if len(layers) != 4 or (temporal_blocks is not None and len(temporal_blocks) != 4):
            raise ValueError(f"layers and temporal_blocks need 4 entries each, got {layers!r} and {temporal_blocks!r}.")
        if alpha < 1 or num_frames % alpha != 0:
            raise ValueError(f"num_frames ({num_frames}) must be a positive multiple of alpha ({alpha}).")
        self.alpha = alpha
        self.num_frames = num_frames
        self.crop_size = crop_size
        blocks = list(temporal_blocks if temporal_blocks is not None else layers)
        # The Fast channels after the stem and after stages 1-3, each fused into the Slow pathway at
        # twice that width: fuse0 after the stems, fuse<i> after stage i, nothing after the last.
        fast_planes = [fast_width, fast_width * 4, fast_width * 8, fast_width * 16]
        strides = (spatial_strides, spatial_dilations)
        self.slow = Pathway(width, layers, 1, (1, 1, 3, 3), blocks, [2 * p for p in fast_planes], *strides)
        self.fast = Pathway(fast_width, layers, 5, (3, 3, 3, 3), blocks, [0, 0, 0, 0], *strides)
        for i, planes in enumerate(fast_planes):
            self.add_module(f"fuse{i}", LateralConnection(planes, fusion_kernel, alpha))
        self.slow_pool_window = [num_frames // alpha, crop_size // 32, crop_size // 32]
        self.fast_pool_window = [num_frames, crop_size // 32, crop_size // 32]
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.num_features, num_classes)

        init_pyslowfast(self)  # channels-last too: faster convolutions on CPU (docs/performance-notes.md)

    # -- input ---------------------------------------------------------------------------------------

    def check_input_grid(self, x: Tensor) -> None:
        if x.shape[2] % self.alpha != 0:
            t = x.shape[2]
            raise ValueError(
                f"{self._name()} (alpha={self.alpha}) needs a number of frames divisible by {self.alpha}: the "
                f"lateral connections stride the Fast pathway's T frames by {self.alpha} onto the Slow "
                f"pathway's T/{self.alpha}; got T={t} in {list(x.shape)}. Use "
                f"T={t - t % self.alpha} or {t - t % self.alpha + self.alpha}."
            )

    def select_slow_frames(self, x: Tensor) -> Tensor:
        """The Slow pathway's ``T // alpha`` frames of the clip, chosen as PyTorchVideo's ``PackPathway``
        does: indices ``linspace(0, T - 1, T // alpha)`` (float32) truncated to integers."""
        t = x.shape[2]
        # Computed on the CPU as PackPathway does: another device's float rounding may truncate differently.
        index = torch.linspace(0, t - 1, t // self.alpha, dtype=torch.float32).long()
        return x.index_select(2, index.to(x.device))

    def _check_pathways(self, slow: Tensor, fast: Tensor) -> None:
        self.check_input(fast)
        expected = [fast.shape[0], 3, fast.shape[2] // self.alpha, fast.shape[3], fast.shape[4]]
        if list(slow.shape) != expected or slow.dtype != fast.dtype:
            raise ValueError(
                f"{self._name()} expects [slow, fast] clips, slow holding T/{self.alpha} of fast's T frames "
                f"(model.select_slow_frames(fast)), i.e. slow of shape {expected} and dtype {fast.dtype}; got "
                f"slow {list(slow.shape)} ({slow.dtype}) and fast {list(fast.shape)}. Or pass the fast clip alone."
            )

    # -- network -------------------------------------------------------------------------------------

    def forward_pathway_features(self, slow: Tensor, fast: Tensor) -> List[Tensor]:
        """The two pathways' last maps ``[slow, fast]`` for a ``[slow, fast]`` pair of clips."""
        slow = slow.contiguous(memory_format=torch.channels_last_3d)
        fast = fast.contiguous(memory_format=torch.channels_last_3d)
        slow, fast = self.slow.stem(slow), self.fast.stem(fast)
        slow = self.fuse0(slow, fast)
        if torch.jit.is_scripting():
            slow, fast = self.slow.layer1(slow), self.fast.layer1(fast)
            slow = self.fuse1(slow, fast)
            slow, fast = self.slow.layer2(slow), self.fast.layer2(fast)
            slow = self.fuse2(slow, fast)
            slow, fast = self.slow.layer3(slow), self.fast.layer3(fast)
            slow = self.fuse3(slow, fast)
            slow, fast = self.slow.layer4(slow), self.fast.layer4(fast)
            return [slow, fast]
        # Eager: the same stages, each checkpointed (set_grad_checkpointing).
        for layer in self.feature_layers():
            slow_stage, fast_stage = layer.outputs
            slow, fast = self.checkpointed(slow_stage, slow), self.checkpointed(fast_stage, fast)
            if len(layer.params) == 3:  # the lateral connection after stages 1-3
                slow = self.get_submodule(layer.params[2])(slow, fast)
        return [slow, fast]

    @torch.jit.unused
    def feature_layers(self) -> list[FeatureLayer]:
        """The four stages of both pathways, ``slow.layer<i>`` and ``fast.layer<i>``, with the lateral
        connection ``fuse<i>`` after them (stages 1-3); their features are ``[slow, fast]`` before it."""
        layers = []
        for i in range(1, 5):
            fuse = (f"fuse{i}",) if i < 4 else ()
            stages = (self.slow.get_submodule(f"layer{i}"), self.fast.get_submodule(f"layer{i}"))
            layers.append(FeatureLayer((f"slow.layer{i}", f"fast.layer{i}", *fuse), stages))
        return layers

    def forward_features(self, x: Tensor) -> List[Tensor]:  # type: ignore[override]
        """The pathways' last maps ``[(B, 2048, T/alpha, H', W'), (B, 256, T, H', W')]``."""
        return self.forward_pathway_features(self.select_slow_frames(x), x)

    def forward_head(self, x: List[Tensor], pre_logits: bool = False) -> Tensor:  # type: ignore[override]
        slow = window_avg_pool(x[0], self.slow_pool_window).mean((2, 3, 4))
        fast = window_avg_pool(x[1], self.fast_pool_window).mean((2, 3, 4))
        pooled = torch.cat([slow, fast], 1)
        return pooled if pre_logits else self.fc(self.dropout(pooled))

    @torch.jit.export
    def forward_pathways(self, slow: Tensor, fast: Tensor) -> Tensor:
        """Logits for PyTorchVideo's calling convention: the ``[slow, fast]`` clips of ``PackPathway``."""
        self._check_pathways(slow, fast)
        return self.forward_head(self.forward_pathway_features(slow, fast))

    def forward(self, x: Tensor) -> Tensor:
        """Logits of a clip ``(B, 3, T, H, W)``; in eager mode also of a ``[slow, fast]`` list."""
        if isinstance(x, (list, tuple)):  # statically False when scripted: use forward_pathways there
            if len(x) != 2:
                raise ValueError(f"{self._name()} expects one clip or a [slow, fast] pair, got {len(x)} tensors.")
            return self.forward_pathways(x[0], x[1])
        self.check_input(x)
        return self.forward_head(self.forward_features(x))


# ----------------------------------------------------------------------------------------------------
# Weights

_ZOO = f"{PTV_FILES_URL}/kinetics"
_CONFIGS = f"{PYSLOWFAST_CONFIGS_URL}/Kinetics/pytorchvideo"
_TRANSFORMS = ptv_transforms(256)


def _weights(config: str, num_frames: int, alpha: int, figures: tuple[int, float, float, float]) -> Weights:
    """PyTorchVideo's Kinetics-400 checkpoint ``<config>.pyth``: a Fast clip of ``num_frames`` frames 2 apart,
    ``alpha`` the Fast/Slow frame ratio; ``figures`` = (parameters, top-1, top-5, GFLOPs) as published."""
    num_params, acc1, acc5, gflops = figures
    slow, slow_stride = num_frames // alpha, 2 * alpha
    meta = ptv_meta(
        num_params=num_params, acc1=acc1, acc5=acc5, gflops=gflops, num_frames=num_frames, sampling_rate=2,
        min_size=(1, 1), min_temporal_size=alpha,
        docs=(
            f"PyTorchVideo's SlowFast {slow}x{slow_stride} Kinetics-400 checkpoint. The model's input is the "
            f"Fast pathway's clip, {num_frames} frames 2 apart at 30 fps; the Slow pathway takes {slow} of them, "
            f"evenly spread (alpha={alpha}). Accuracy is PyTorchVideo's model zoo figure: PySlowFast "
            f"evaluation ({config}) with 10 clips x 3 crops of 256 pixels, short side resized to 256, "
            f"mean 0.45 / std 0.225. At 256 pixels the head's 224-pixel window takes 2x2 positions; PySlowFast "
            f"averaged their softmax, this model (like PyTorchVideo's) averages their logits."
        ),
        recipe=f"{_CONFIGS}/{config}.yaml",
        slowfast_alpha=alpha,
        train_crop_size=224,
        test_crop_size=256,
        model_args={"num_frames": num_frames, "crop_size": 224},  # the head's pooling windows
    )
    return Weights(f"{_ZOO}/{config}.pyth", _TRANSFORMS, meta, state_dict_adapter=from_pytorchvideo_state_dict)


_SLOWFAST_R50_KINETICS = _weights("SLOWFAST_8x8_R50", 32, 4, (34566488, 76.94, 92.69, 65.71))
_SLOWFAST_R50_PATHWAYS = (
    "The model's input is the Fast pathway's clip of 32 frames; the Slow pathway takes 8 of them, evenly spread "
    "(alpha=4)."
)


class SlowFast_R50_Weights(WeightsEnum):
    KINETICS400_V1 = _SLOWFAST_R50_KINETICS
    # The same network with 174 / 157 classes (see ptv_finetune_weights for the recipes).
    SSV2_V1 = ptv_finetune_weights(
        "ssv2", 34045558, {"acc@1": 61.68, "acc@5": 86.92}, gflops=66.60,
        kinetics=KINETICS400_V1, arch="SlowFast 8x8 R50", input_note=_SLOWFAST_R50_PATHWAYS,
    )
    CHARADES_V1 = ptv_finetune_weights(
        "charades", 34006373, {"mAP": 37.24}, gflops=66.60,
        kinetics=KINETICS400_V1, arch="SlowFast 8x8 R50", input_note=_SLOWFAST_R50_PATHWAYS,
    )
    DEFAULT = KINETICS400_V1


class SlowFast_R50_4x16_Weights(WeightsEnum):
    KINETICS400_V1 = DEFAULT = _weights("SLOWFAST_4x16_R50", 32, 8, (34480216, 75.34, 91.89, 36.69))


class SlowFast_R101_Weights(WeightsEnum):
    KINETICS400_V1 = DEFAULT = _weights("SLOWFAST_8x8_R101", 32, 4, (62826968, 77.90, 93.27, 127.20))


class SlowFast_16x8_R101_50_50_Weights(WeightsEnum):
    KINETICS400_V1 = DEFAULT = _weights("SLOWFAST_16x8_R101_50_50", 64, 4, (53774808, 78.70, 93.61, 215.61))


# ----------------------------------------------------------------------------------------------------
# Builders

_R50 = (3, 4, 6, 3)
_R101 = (3, 4, 23, 3)


@register_model(SlowFast_R50_Weights)
def slowfast_r50(*, weights: SlowFast_R50_Weights | str | None = None, progress: bool = True, **kwargs: Any) -> SlowFast:
    """SlowFast R50 8x8: Fast pathway 32 frames at stride 2, Slow pathway 8 of them (alpha 4).

    Args:
        weights: :class:`SlowFast_R50_Weights` (a member, its name or ``"DEFAULT"``), a file's path, or ``None``
            (PyTorchVideo's format).
        progress: show a progress bar while downloading.
        kwargs: passed to :class:`SlowFast`; ``num_frames`` and ``crop_size`` are fixed by weights.
    """
    return build_model(SlowFast, SlowFast_R50_Weights, weights, progress, kwargs, layers=_R50, alpha=4, fusion_kernel=7)


@register_model(SlowFast_R50_4x16_Weights)
def slowfast_r50_4x16(
    *, weights: SlowFast_R50_4x16_Weights | str | None = None, progress: bool = True, **kwargs: Any
) -> SlowFast:
    """SlowFast R50 4x16: Fast pathway 32 frames at stride 2, Slow pathway 4 of them (alpha 8).

    Args: as :func:`slowfast_r50`, with :class:`SlowFast_R50_4x16_Weights`.
    """
    return build_model(SlowFast, SlowFast_R50_4x16_Weights, weights, progress, kwargs, layers=_R50, alpha=8, fusion_kernel=5)


@register_model(SlowFast_R101_Weights)
def slowfast_r101(*, weights: SlowFast_R101_Weights | str | None = None, progress: bool = True, **kwargs: Any) -> SlowFast:
    """SlowFast R101 8x8: ResNet-101 pathways, Fast 32 frames at stride 2, Slow 8 of them (alpha 4).

    Args: as :func:`slowfast_r50`, with :class:`SlowFast_R101_Weights`.
    """
    return build_model(SlowFast, SlowFast_R101_Weights, weights, progress, kwargs, layers=_R101, alpha=4, fusion_kernel=5)


@register_model(SlowFast_16x8_R101_50_50_Weights)
def slowfast_16x8_r101_50_50(
    *, weights: SlowFast_16x8_R101_50_50_Weights | str | None = None, progress: bool = True, **kwargs: Any
) -> SlowFast:
    """SlowFast R101 16x8 "50_50": Fast 64 frames at stride 2, Slow 16 of them (alpha 4); like the
    ResNet-50 variant, only the first 6 of the 23 res4 blocks have temporal kernels.

    Args: as :func:`slowfast_r50`, with :class:`SlowFast_16x8_R101_50_50_Weights`.
    """
    arch = {"layers": _R101, "alpha": 4, "fusion_kernel": 5, "temporal_blocks": _R50, "num_frames": 64}
    return build_model(SlowFast, SlowFast_16x8_R101_50_50_Weights, weights, progress, kwargs, **arch)
