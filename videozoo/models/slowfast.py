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
  windows; then dropout and one linear layer on the concatenated 2048 + 256 features.

The model takes one clip ``(B, 3, T, H, W)``, the Fast pathway's frames, and picks the Slow frames
itself exactly as PyTorchVideo's ``PackPathway`` recipe does. ``forward_pathways(slow, fast)`` (and,
in eager mode, ``model([slow, fast])``) takes the two clips PyTorchVideo's models take.

Our module names are our own; PyTorchVideo's files (``{"model_state": ...}``, keys such as
``blocks.1.multipathway_blocks.0.res_blocks.0.branch2.conv_a.weight``) are renamed on loading by the
weights' ``state_dict_adapter`` (:func:`from_pytorchvideo_state_dict`).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Sequence
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from videozoo._api import Weights, WeightsEnum, build_model, register_model
from videozoo.models._base import VideoModel, check_num_classes
from videozoo.models._pytorchvideo import ptv_meta, ptv_transforms, unwrap_model_state

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
    "from_pytorchvideo_state_dict",
]


def _stem(out_planes: int, temporal_kernel: int) -> nn.Sequential:
    """A ``t x 7 x 7`` convolution at spatial stride 2, BN, ReLU and a 1x3x3 max-pool at stride 2."""
    return nn.Sequential(
        OrderedDict(
            conv=nn.Conv3d(
                3, out_planes, (temporal_kernel, 7, 7), (1, 2, 2), (temporal_kernel // 2, 3, 3), bias=False
            ),
            bn=nn.BatchNorm3d(out_planes),
            relu=nn.ReLU(inplace=True),
            pool=nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
        )
    )


class Bottleneck(nn.Module):
    """``t x 1 x 1`` reduction, ``1 x 3 x 3`` (spatially strided), ``1 x 1 x 1`` expansion; BN after each."""

    def __init__(self, in_planes: int, planes: int, out_planes: int, temporal_kernel: int, stride: int) -> None:
        super().__init__()
        t = temporal_kernel
        self.conv1 = nn.Conv3d(in_planes, planes, (t, 1, 1), padding=(t // 2, 0, 0), bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = nn.Conv3d(planes, planes, (1, 3, 3), (1, stride, stride), (0, 1, 1), bias=False)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = nn.Conv3d(planes, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm3d(out_planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_planes != out_planes:
            self.downsample = nn.Sequential(
                nn.Conv3d(in_planes, out_planes, 1, (1, stride, stride), bias=False), nn.BatchNorm3d(out_planes)
            )

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += shortcut
        return self.relu(out)


class Pathway(nn.Module):
    """One ResNet pathway: ``stem`` and ``layer1``..``layer4`` (res2..res5), run stage by stage by SlowFast.

    ``lateral[i]`` are the channels a lateral connection adds to the input of stage ``i`` (zeros for
    the Fast pathway); ``temporal_kernels[i]`` is the kernel of the first ``temporal_blocks[i]``
    blocks of stage ``i``, the others have none (1).
    """

    def __init__(
        self,
        width: int,
        layers: Sequence[int],
        stem_kernel: int,
        temporal_kernels: Sequence[int],
        temporal_blocks: Sequence[int],
        lateral: Sequence[int],
    ) -> None:
        super().__init__()
        self.stem = _stem(width, stem_kernel)
        in_planes = width
        for i, (depth, kernel, n_temporal, extra) in enumerate(zip(layers, temporal_kernels, temporal_blocks, lateral)):
            planes = width * 2**i
            blocks = []
            for j in range(depth):
                stride = 2 if i > 0 and j == 0 else 1
                t = kernel if j < n_temporal else 1
                blocks.append(Bottleneck(in_planes + (extra if j == 0 else 0), planes, planes * 4, t, stride))
                in_planes = planes * 4
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))


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


def _window_pool(x: Tensor, window: list[int]) -> Tensor:
    """Average over a fixed ``window`` slid at stride 1, then over the windows: ``(B, C, T, H, W) -> (B, C)``.

    A feature map smaller than the window is averaged whole, and a clip longer than the window slides
    it in time too; PyTorchVideo raises on both (its two pathways' pooled grids then differ).
    """
    kernel = [min(window[0], x.shape[2]), min(window[1], x.shape[3]), min(window[2], x.shape[4])]
    return F.avg_pool3d(x, kernel, stride=1).mean((2, 3, 4))


class SlowFast(VideoModel):
    """SlowFast with ResNet-50/101 pathways.

    ``alpha``: frame-rate ratio Fast/Slow (also the stride of the lateral connections); ``beta_inv``:
    channel ratio Slow/Fast; ``fusion_kernel``: temporal kernel of the lateral connections;
    ``temporal_blocks``: how many blocks of each stage have temporal kernels (default: all);
    ``num_frames`` and ``crop_size``: the training clip the head's pooling window was sized for,
    ``(num_frames / alpha, crop / 32, crop / 32)`` on the Slow and ``(num_frames, crop / 32, crop / 32)``
    on the Fast pathway.
    """

    def __init__(
        self,
        layers: Sequence[int] = (3, 4, 6, 3),
        *,
        alpha: int = 4,
        beta_inv: int = 8,
        fusion_kernel: int = 7,
        temporal_blocks: Sequence[int] | None = None,
        num_frames: int = 32,
        crop_size: int = 224,
        num_classes: int = 400,
        dropout: float = 0.5,
    ) -> None:
        width = 64
        fast_width = width // beta_inv
        super().__init__(num_classes, num_features=width * 32 + fast_width * 32, min_temporal_size=alpha)
        if len(layers) != 4 or (temporal_blocks is not None and len(temporal_blocks) != 4):
            raise ValueError(f"layers and temporal_blocks need 4 entries each, got {layers!r} and {temporal_blocks!r}.")
        if alpha < 1 or num_frames % alpha != 0:
            raise ValueError(f"num_frames ({num_frames}) must be a positive multiple of alpha ({alpha}).")
        self.alpha = alpha
        blocks = list(temporal_blocks if temporal_blocks is not None else layers)
        # The Fast channels after the stem and after stages 1-3, each fused into the Slow pathway at
        # twice that width: fuse0 after the stems, fuse<i> after stage i, nothing after the last.
        fast_planes = [fast_width, fast_width * 4, fast_width * 8, fast_width * 16]
        self.slow = Pathway(width, layers, 1, (1, 1, 3, 3), blocks, lateral=[2 * p for p in fast_planes])
        self.fast = Pathway(fast_width, layers, 5, (3, 3, 3, 3), blocks, lateral=[0, 0, 0, 0])
        for i, planes in enumerate(fast_planes):
            self.add_module(f"fuse{i}", LateralConnection(planes, fusion_kernel, alpha))
        self.slow_window = [num_frames // alpha, crop_size // 32, crop_size // 32]
        self.fast_window = [num_frames, crop_size // 32, crop_size // 32]
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.num_features, num_classes)

        # PySlowFast's initialisation: MSRA fill, the last BN of each residual branch at zero.
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, Bottleneck):
                nn.init.zeros_(m.bn3.weight)
        nn.init.normal_(self.fc.weight, 0, 0.01)
        nn.init.zeros_(self.fc.bias)
        # Channels-last (NDHWC) activations and filters: 1.3x faster convolutions on CPU than NCDHW,
        # the same results up to float rounding. Loading a state_dict keeps this layout.
        self.to(memory_format=torch.channels_last_3d)

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

    def forward_pathway_features(self, slow: Tensor, fast: Tensor) -> Tensor:
        """Pooled ``(B, 2048 + 256)`` features of a ``[slow, fast]`` pair of clips."""
        slow = slow.contiguous(memory_format=torch.channels_last_3d)
        fast = fast.contiguous(memory_format=torch.channels_last_3d)
        slow, fast = self.slow.stem(slow), self.fast.stem(fast)
        slow = self.fuse0(slow, fast)
        slow, fast = self.slow.layer1(slow), self.fast.layer1(fast)
        slow = self.fuse1(slow, fast)
        slow, fast = self.slow.layer2(slow), self.fast.layer2(fast)
        slow = self.fuse2(slow, fast)
        slow, fast = self.slow.layer3(slow), self.fast.layer3(fast)
        slow = self.fuse3(slow, fast)
        slow, fast = self.slow.layer4(slow), self.fast.layer4(fast)
        return torch.cat([_window_pool(slow, self.slow_window), _window_pool(fast, self.fast_window)], 1)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.forward_pathway_features(self.select_slow_frames(x), x)

    def forward_head(self, x: Tensor) -> Tensor:
        return self.fc(self.dropout(x))

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

    def reset_classifier(self, num_classes: int) -> None:
        check_num_classes(num_classes)
        self.fc = nn.Linear(self.num_features, num_classes, device=self.fc.weight.device, dtype=self.fc.weight.dtype)
        nn.init.normal_(self.fc.weight, 0, 0.01)
        nn.init.zeros_(self.fc.bias)
        self.num_classes = num_classes


# ----------------------------------------------------------------------------------------------------
# PyTorchVideo's checkpoint layout

# PyTorchVideo's key prefixes -> ours. <p> is the pathway (0 slow, 1 fast), <s> the
# stage, <b> the block. blocks.0 holds the stems, blocks.1-4 the stages, blocks.5 the pooling and
# blocks.6 the head; the lateral connections live in blocks.0-3 as multipathway_fusion.
_PTV_KEYS = [
    (r"blocks\.0\.multipathway_blocks\.(?P<p>[01])\.conv\.", "{p}.stem.conv."),
    (r"blocks\.0\.multipathway_blocks\.(?P<p>[01])\.norm\.", "{p}.stem.bn."),
    (r"blocks\.(?P<s>[1-4])\.multipathway_blocks\.(?P<p>[01])\.res_blocks\.(?P<b>\d+)\.branch1_conv\.",
     "{p}.layer{s}.{b}.downsample.0."),
    (r"blocks\.(?P<s>[1-4])\.multipathway_blocks\.(?P<p>[01])\.res_blocks\.(?P<b>\d+)\.branch1_norm\.",
     "{p}.layer{s}.{b}.downsample.1."),
    (r"blocks\.(?P<s>[1-4])\.multipathway_blocks\.(?P<p>[01])\.res_blocks\.(?P<b>\d+)\.branch2\.conv_(?P<n>[abc])\.",
     "{p}.layer{s}.{b}.conv{n}."),
    (r"blocks\.(?P<s>[1-4])\.multipathway_blocks\.(?P<p>[01])\.res_blocks\.(?P<b>\d+)\.branch2\.norm_(?P<n>[abc])\.",
     "{p}.layer{s}.{b}.bn{n}."),
    (r"blocks\.(?P<s>[0-3])\.multipathway_fusion\.conv_fast_to_slow\.", "fuse{s}.conv."),
    (r"blocks\.(?P<s>[0-3])\.multipathway_fusion\.norm\.", "fuse{s}.bn."),
    (r"blocks\.6\.proj\.", "fc."),
]
_PTV_PATTERNS = [(re.compile(pattern), template) for pattern, template in _PTV_KEYS]
_PATHWAY = {"0": "slow", "1": "fast"}
_BRANCH = {"a": "1", "b": "2", "c": "3"}


def _ptv_to_ours(key: str) -> str | None:
    for pattern, template in _PTV_PATTERNS:
        m = pattern.match(key)
        if m is not None:
            groups = m.groupdict()
            if "p" in groups:
                groups["p"] = _PATHWAY[groups["p"]]
            if "n" in groups:
                groups["n"] = _BRANCH[groups["n"]]
            return template.format(**groups) + key[m.end() :]
    return None


def from_pytorchvideo_state_dict(checkpoint: Any) -> dict[str, Tensor]:
    """Our ``state_dict`` from a PyTorchVideo SlowFast checkpoint ``{"model_state": state_dict}``.

    Every key is renamed; one that is not part of PyTorchVideo's SlowFast layout is an error. Keys
    prefixed ``model.`` (PySlowFast's ``PTVSlowFast`` wrapper) are accepted too.
    """
    state = unwrap_model_state(checkpoint)
    if state and all(k.startswith("model.") for k in state):
        state = {k[len("model.") :]: v for k, v in state.items()}
    out: dict[str, Tensor] = {}
    unknown = []
    for key, value in state.items():
        ours = _ptv_to_ours(key)
        if ours is None:
            unknown.append(key)
        else:
            out[ours] = value
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise ValueError(
            f"Not a PyTorchVideo SlowFast checkpoint: {len(unknown)} of its {len(state)} keys are not in "
            f"PyTorchVideo's SlowFast layout ({shown}). A state_dict saved from a videozoo SlowFast loads "
            f"with model.load_state_dict() directly."
        )
    return out


# ----------------------------------------------------------------------------------------------------
# Weights

_ZOO = "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics"
_CONFIGS = "https://github.com/facebookresearch/SlowFast/blob/main/configs/Kinetics/pytorchvideo"
_TRANSFORMS = ptv_transforms(256)


def _meta(
    config: str, num_params: int, acc1: float, acc5: float, gflops: float, num_frames: int, alpha: int
) -> dict[str, Any]:
    slow, slow_stride = num_frames // alpha, 2 * alpha
    return ptv_meta(
        num_params=num_params,
        acc1=acc1,
        acc5=acc5,
        gflops=gflops,
        num_frames=num_frames,
        sampling_rate=2,
        min_size=(1, 1),
        min_temporal_size=alpha,
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
    )


class SlowFast_R50_Weights(WeightsEnum):
    KINETICS400_V1 = Weights(
        url=f"{_ZOO}/SLOWFAST_8x8_R50.pyth",
        transforms=_TRANSFORMS,
        meta=_meta("SLOWFAST_8x8_R50", 34566488, 76.94, 92.69, 65.71, num_frames=32, alpha=4),
        state_dict_adapter=from_pytorchvideo_state_dict,
    )
    DEFAULT = KINETICS400_V1


class SlowFast_R50_4x16_Weights(WeightsEnum):
    KINETICS400_V1 = Weights(
        url=f"{_ZOO}/SLOWFAST_4x16_R50.pyth",
        transforms=_TRANSFORMS,
        meta=_meta("SLOWFAST_4x16_R50", 34480216, 75.34, 91.89, 36.69, num_frames=32, alpha=8),
        state_dict_adapter=from_pytorchvideo_state_dict,
    )
    DEFAULT = KINETICS400_V1


class SlowFast_R101_Weights(WeightsEnum):
    KINETICS400_V1 = Weights(
        url=f"{_ZOO}/SLOWFAST_8x8_R101.pyth",
        transforms=_TRANSFORMS,
        meta=_meta("SLOWFAST_8x8_R101", 62826968, 77.90, 93.27, 127.20, num_frames=32, alpha=4),
        state_dict_adapter=from_pytorchvideo_state_dict,
    )
    DEFAULT = KINETICS400_V1


class SlowFast_16x8_R101_50_50_Weights(WeightsEnum):
    KINETICS400_V1 = Weights(
        url=f"{_ZOO}/SLOWFAST_16x8_R101_50_50.pyth",
        transforms=_TRANSFORMS,
        meta=_meta("SLOWFAST_16x8_R101_50_50", 53774808, 78.70, 93.61, 215.61, num_frames=64, alpha=4),
        state_dict_adapter=from_pytorchvideo_state_dict,
    )
    DEFAULT = KINETICS400_V1


# ----------------------------------------------------------------------------------------------------
# Builders

_R50 = (3, 4, 6, 3)
_R101 = (3, 4, 23, 3)


@register_model(SlowFast_R50_Weights)
def slowfast_r50(
    *, weights: SlowFast_R50_Weights | str | None = None, progress: bool = True, **kwargs: Any
) -> SlowFast:
    """SlowFast R50 8x8: Fast pathway 32 frames at stride 2, Slow pathway 8 of them (alpha 4)."""
    model = partial(SlowFast, _R50, alpha=4, fusion_kernel=7)
    return build_model(model, SlowFast_R50_Weights, weights, progress, **kwargs)


@register_model(SlowFast_R50_4x16_Weights)
def slowfast_r50_4x16(
    *, weights: SlowFast_R50_4x16_Weights | str | None = None, progress: bool = True, **kwargs: Any
) -> SlowFast:
    """SlowFast R50 4x16: Fast pathway 32 frames at stride 2, Slow pathway 4 of them (alpha 8)."""
    model = partial(SlowFast, _R50, alpha=8, fusion_kernel=5)
    return build_model(model, SlowFast_R50_4x16_Weights, weights, progress, **kwargs)


@register_model(SlowFast_R101_Weights)
def slowfast_r101(
    *, weights: SlowFast_R101_Weights | str | None = None, progress: bool = True, **kwargs: Any
) -> SlowFast:
    """SlowFast R101 8x8: ResNet-101 pathways, Fast 32 frames at stride 2, Slow 8 of them (alpha 4)."""
    model = partial(SlowFast, _R101, alpha=4, fusion_kernel=5)
    return build_model(model, SlowFast_R101_Weights, weights, progress, **kwargs)


@register_model(SlowFast_16x8_R101_50_50_Weights)
def slowfast_16x8_r101_50_50(
    *, weights: SlowFast_16x8_R101_50_50_Weights | str | None = None, progress: bool = True, **kwargs: Any
) -> SlowFast:
    """SlowFast R101 16x8 "50_50": Fast 64 frames at stride 2, Slow 16 of them (alpha 4); like the
    ResNet-50 variant, only the first 6 of the 23 res4 blocks have temporal kernels."""
    model = partial(SlowFast, _R101, alpha=4, fusion_kernel=5, temporal_blocks=(3, 4, 6, 3), num_frames=64)
    return build_model(model, SlowFast_16x8_R101_50_50_Weights, weights, progress, **kwargs)
