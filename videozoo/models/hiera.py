"""Hiera: a hierarchical vision transformer without the bells and whistles.

Ryali et al., "Hiera: A Hierarchical Vision Transformer without the Bells-and-Whistles", ICML 2023
(https://arxiv.org/abs/2306.00989); weights from https://github.com/facebookresearch/hiera.

A clip is cut into 3x7x7 space-time patches at stride 2x4x4 (so 16x224x224 makes an 8x56x56 token
grid), separable learned position embeddings are added (one table over the frame's positions, one
over time), and four stages of plain pre-norm transformer blocks follow. Each later stage starts with a
block whose *query* is max-pooled 2x2 in space, halving the grid's height and width while channels
and heads double (the residual branch goes through a linear layer and the same pooling). There are no
convolutions, no relative positions and no key/value pooling: the spatial bias was learned in MAE
pre-training instead.

Mask units. The first two stages attend only within *mask units*: the tokens of one frame's 8x8 patch
block (of the token grid at the start; 4x4 and 2x2 of it after each pooling). The first block of stage
3 still attends within units (the lag of one block the reference has: a stage's first block uses the
previous stage's attention kind); everything after that attends globally.

Token order. The blocks never see the tokens in raster order. Right after the embedding they are
reordered once ("unrolled"): unit by unit (frame, unit row, unit column), and inside a unit first by
the position within the 2x2 cell of the finest grid, then within the 2x2 cell of the next coarser one,
and so on. Then

* the tokens of one mask unit are contiguous, so mask-unit attention is a reshape to
  ``(B * units, tokens per unit, C)``;
* 2x2 max pooling is a max over the outermost index inside each unit, ``view(B, units, 4, -1, C).amax(2)``,
  and after it the order is again the same kind of order, one level coarser;
* after the last pooling each unit is one token, in raster order (frame, row, column).

The reference keeps the same within-unit order but stores the units' index innermost (tokens are
``(position in unit, unit)``); attention and pooling give identical results either way, and unit-major
order makes every reshape above a free view. The head averages the final tokens, normalises the mean
and classifies it.

Other clip sizes. The position tables are sized for the built clip (``num_frames``, ``crop_size``; the
checkpoints' 16x224x224). A clip of another size is accepted when its token grid tiles into whole mask
units: an even number of frames, and height and width multiples of 32 (4-pixel patches x 8-token
units). The temporal table is then resampled linearly and the spatial one bicubically to the clip's
grid (``resize_pos_embed``, ``align_corners=False``); at the built size the tables are used as they are,
so it reproduces the reference exactly.

Module names are the publisher's, so its checkpoints (``{"model_state": state_dict}``) load strictly
once unwrapped.

Speed (CPU; measured against the reference in docs/performance-notes.md):

* one copy reorders the tokens (the reference unrolls in three passes), and q, k and v are views of
  the fused projection's output, laid out for attention without a head-major copy; the query is
  pooled before it is split into heads;
* the linear layers run on oneDNN in fp32 inference (``layers.linear``, the MLP's GELU fused);
* attention is ``F.scaled_dot_product_attention``, except in bf16/fp16 on CPU, where two matrix
  products and a softmax beat its fused kernel (the shared ``attention``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from videozoo.zoo import Weights, WeightsEnum, build_model, register_model
from videozoo.zoo.categories import KINETICS400_CATEGORIES
from videozoo.models._base import VideoModel
from videozoo.models.layers import Mlp, TubeletEmbed, attention, drop_path, drop_path_rates, linear, resize_pos_embed
from videozoo.models.adapters.hiera import from_hiera_state_dict
from videozoo.models.publishers.pytorchvideo import ptv_transforms

__all__ = [
    "Hiera",
    "Hiera_B_Weights",
    "Hiera_B_Plus_Weights",
    "Hiera_L_Weights",
    "Hiera_H_Weights",
    "hiera_b",
    "hiera_b_plus",
    "hiera_l",
    "hiera_h",
]

PATCH_SIZE, TUBELET_SIZE = 7, 3  # the patches' kernel: 3x7x7 ...
PATCH_STRIDE, PATCH_PADDING = (2, 4, 4), (1, 3, 3)  # ... overlapping, at stride 2x4x4
Q_STRIDE = (1, 2, 2)  # the query pooling of each stage transition, per axis (T, H, W)


class HieraBlockSpec(NamedTuple):
    """One block: its widths, heads, query pooling and attention kind."""

    dim_in: int
    dim_out: int
    num_heads: int
    q_stride: int  # flattened pooling window of the query (1: none, 4: 2x2)
    mask_unit_attn: bool  # attend within mask units (else over all tokens)
    unit_size: int  # tokens per mask unit at the block's input


def block_specs(
    stages: tuple[int, ...],
    embed_dim: int,
    num_heads: int,
    mask_unit_attn: tuple[bool, ...] = (True, True, False, False),
) -> list[HieraBlockSpec]:
    """The blocks of a Hiera: channels and heads double at each stage's first block, which also pools
    the query 2x2 (every stage transition pools); attention kind lags one block behind the stages."""
    q_stride = Q_STRIDE[0] * Q_STRIDE[1] * Q_STRIDE[2]
    unit_size = q_stride ** (len(stages) - 1)  # 8x8 tokens: one unit pools to one token
    specs = []
    dim, heads, stage = embed_dim, num_heads, 0
    starts = {sum(stages[: s + 1]) for s in range(len(stages) - 1)}
    for i in range(sum(stages)):
        unit_attn = mask_unit_attn[stage]  # the previous stage's kind in a stage's first block
        dim_out, pool = dim, 1
        if i in starts:
            dim_out, heads, stage, pool = 2 * dim, 2 * heads, stage + 1, q_stride
        specs.append(HieraBlockSpec(dim, dim_out, heads, pool, unit_attn, unit_size))
        unit_size //= pool
        dim = dim_out
    return specs


def _pool(x: Tensor, unit_size: int, stride: int) -> Tensor:
    """2x2 max pooling of unrolled tokens: the max over the outermost index inside each mask unit.
    ``(B, N, C) -> (B, N / stride, C)``."""
    b, n, c = x.shape
    return x.view(b, n // unit_size, stride, unit_size // stride, c).amax(2).view(b, n // stride, c)


def _unroll(x: Tensor, levels: int, strides: list[int], unit_tokens: list[int]) -> Tensor:
    """Raster-order tokens ``(B, T, H, W, C)`` -> unrolled ``(B, N, C)`` (see the module docstring).

    Each axis ``n`` is split as ``(units, s_levels, ..., s_1)`` with ``s_k`` its stride at pooling
    level ``k`` (``strides``, the same at every level; ``unit_tokens``: a mask unit's extent); the result is
    ordered (units of T, H, W; s_1 of T, H, W; ...; s_levels of T, H, W).
    """
    b, t, h, w, c = x.shape
    shape = [b]
    for n, s, u in zip([t, h, w], strides, unit_tokens):
        shape.append(n // u)
        shape.extend([s] * levels)
    shape.append(c)
    per_axis = levels + 1
    order = [0, 1, 1 + per_axis, 1 + 2 * per_axis]
    for k in range(1, levels + 1):
        for axis in range(3):
            order.append(1 + axis * per_axis + levels - k + 1)
    order.append(3 * per_axis + 1)
    return x.reshape(shape).permute(order).reshape(b, t * h * w, c)


# ----------------------------------------------------------------------------------------------------
# Building blocks


class MaskUnitAttention(nn.Module):
    """Multi-head attention within mask units (or over all tokens), with optional query pooling.

    Keys and values keep every token; the query is max-pooled over the outermost index inside each
    unit first (``q_stride`` > 1), so the output has ``N / q_stride`` tokens.
    """

    def __init__(self, dim: int, dim_out: int, num_heads: int, q_stride: int, mask_unit_attn: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.dim_out = dim_out
        self.q_stride = q_stride
        self.mask_unit_attn = mask_unit_attn
        self.qkv = nn.Linear(dim, 3 * dim_out)
        self.proj = nn.Linear(dim_out, dim_out)

    def forward(self, x: Tensor, unit_size: int) -> Tensor:
        b, n, _ = x.shape
        c, heads = self.dim_out, self.num_heads
        windows = n // unit_size if self.mask_unit_attn else 1
        qkv = linear(x, self.qkv.weight, self.qkv.bias).view(b, n, 3, c)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # (B, N, C) views
        if self.q_stride > 1:
            q = _pool(q, unit_size, self.q_stride)
        nq = q.shape[1]
        # (B * windows, heads, tokens per window, head_dim) views; the windows are contiguous runs.
        q = q.reshape(b * windows, nq // windows, heads, c // heads).transpose(1, 2)
        k = k.reshape(b * windows, n // windows, heads, c // heads).transpose(1, 2)
        v = v.reshape(b * windows, n // windows, heads, c // heads).transpose(1, 2)
        y = attention(q, k, v)
        return linear(y.transpose(1, 2).reshape(b, nq, c), self.proj.weight, self.proj.bias)


class HieraBlock(nn.Module):
    """Pre-norm block: ``x + attn(norm1(x))`` (with the residual projected by ``proj`` and pooled
    where the block widens and pools), then ``x + mlp(norm2(x))``; both branches dropped per sample
    with probability ``stochastic_depth_prob`` while training."""

    def __init__(self, spec: HieraBlockSpec, mlp_ratio: float, stochastic_depth_prob: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(spec.dim_in, eps=1e-6)
        self.attn = MaskUnitAttention(spec.dim_in, spec.dim_out, spec.num_heads, spec.q_stride, spec.mask_unit_attn)
        self.norm2 = nn.LayerNorm(spec.dim_out, eps=1e-6)
        self.mlp = Mlp(spec.dim_out, int(spec.dim_out * mlp_ratio))
        self.proj: nn.Linear | None = nn.Linear(spec.dim_in, spec.dim_out) if spec.dim_in != spec.dim_out else None
        self.q_stride = spec.q_stride
        self.unit_size = spec.unit_size
        self.stochastic_depth_prob = stochastic_depth_prob

    def forward(self, x: Tensor) -> Tensor:
        x_norm = self.norm1(x)
        proj = self.proj
        if proj is not None:
            x = linear(x_norm, proj.weight, proj.bias)
        if self.q_stride > 1:
            x = _pool(x, self.unit_size, self.q_stride)
        x = x + drop_path(self.attn(x_norm, self.unit_size), self.stochastic_depth_prob, self.training)
        return x + drop_path(self.mlp(self.norm2(x)), self.stochastic_depth_prob, self.training)


class Head(nn.Module):
    """Dropout (training only) and the classifier ``projection``."""

    def __init__(self, dim: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.projection = nn.Linear(dim, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.projection(self.dropout(x))


# ----------------------------------------------------------------------------------------------------
# The network


class Hiera(VideoModel):
    """Hiera for video classification.

    Args:
        stages: blocks per stage.
        embed_dim: channels of the first stage (doubled at each later stage).
        num_heads: heads of the first stage (doubled at each later stage).
        num_frames: frames of the clip the position tables are sized for (even).
        crop_size: ``(H, W)`` of its frames, or one int for square frames (multiples of 32). Clips of
            other accepted sizes are run with the tables resampled (module docstring).
        num_classes: outputs of the classifier.
        mlp_ratio: hidden width of the MLPs relative to their blocks' width.
        dropout: before the classifier, while training.
        stochastic_depth_prob: drop-path probability of the last block (growing linearly from 0).
        mask_unit_attn: per stage, whether it attends within mask units (the first block of a stage
            uses the previous stage's entry).
    """

    classifier_name = "head.projection"
    layers_are_blocks = True
    stem_params = ("patch_embed", "pos_embed_spatial", "pos_embed_temporal")
    head_params = ("norm", "head")
    no_decay_params = ("pos_embed_spatial", "pos_embed_temporal")  # the position embeddings

    def __init__(
        self, stages: tuple[int, ...] = (2, 3, 16, 3), embed_dim: int = 96, num_heads: int = 1,
        num_frames: int = 16, crop_size: int | tuple[int, int] = (224, 224), num_classes: int = 400,
        mlp_ratio: float = 4.0, dropout: float = 0.0, stochastic_depth_prob: float = 0.0,
        mask_unit_attn: tuple[bool, ...] = (True, True, False, False),
    ) -> None:
        if len(mask_unit_attn) != len(stages):
            raise ValueError(f"mask_unit_attn needs one entry per stage ({len(stages)}), got {mask_unit_attn!r}.")
        height, width = (crop_size, crop_size) if isinstance(crop_size, int) else crop_size
        levels = len(stages) - 1  # poolings; a mask unit is pooled to one token by the last stage
        unit_tokens = [Q_STRIDE[a] ** levels for a in range(3)]  # a mask unit in tokens: 1 x 8 x 8
        unit = [PATCH_STRIDE[a] * unit_tokens[a] for a in range(3)]  # ... and in pixels: 2 x 32 x 32
        if num_frames % unit[0] or height % unit[1] or width % unit[2] or min(num_frames, height, width) < 1:
            raise ValueError(
                f"Hiera needs num_frames divisible by {unit[0]} and crop_size by {unit[1]} (its patches and "
                f"{unit_tokens[1]}x{unit_tokens[2]}-token mask units tile the clip); got "
                f"num_frames={num_frames}, crop_size={(height, width)}."
            )
        specs = block_specs(tuple(stages), embed_dim, num_heads, tuple(mask_unit_attn))
        super().__init__(num_classes, specs[-1].dim_out, min_temporal_size=unit[0], min_size=min(unit[1], unit[2]))
        self.num_frames = num_frames
        self.crop_size = (height, width)
        self.levels = levels
        self.q_stride = list(Q_STRIDE)
        self.unit_tokens = unit_tokens
        self.unit = unit
        self.grid = [num_frames // PATCH_STRIDE[0], height // PATCH_STRIDE[1], width // PATCH_STRIDE[2]]
        self.num_layers = len(specs)

        self.patch_embed = TubeletEmbed(embed_dim, PATCH_SIZE, TUBELET_SIZE, PATCH_STRIDE, PATCH_PADDING)
        self.pos_embed_spatial = nn.Parameter(torch.zeros(1, self.grid[1] * self.grid[2], embed_dim))
        self.pos_embed_temporal = nn.Parameter(torch.zeros(1, self.grid[0], embed_dim))
        self.blocks = nn.ModuleList(
            HieraBlock(spec, mlp_ratio, p) for spec, p in zip(specs, drop_path_rates(stochastic_depth_prob, len(specs)))
        )
        self.norm = nn.LayerNorm(specs[-1].dim_out, eps=1e-6)
        self.head = Head(specs[-1].dim_out, num_classes, dropout)

        # The reference's initialisation: truncated normal 0.02, biases 0.02, a classifier scaled by 1e-3.
        nn.init.trunc_normal_(self.pos_embed_spatial, std=0.02)
        nn.init.trunc_normal_(self.pos_embed_temporal, std=0.02)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv3d)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if isinstance(m, nn.Linear) and m.bias is not None:
                    nn.init.constant_(m.bias, 0.02)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.constant_(m.bias, 0.02)
        self.init_classifier(self.head.projection)

    # -- input ---------------------------------------------------------------------------------------

    def check_input_grid(self, x: Tensor) -> None:
        units = f"mask units of {self.unit[0]}x{self.unit[1]}x{self.unit[2]} pixels"  # which must tile the token grid
        self.check_tiling(x, self.unit, units, [self.num_frames, self.crop_size[0], self.crop_size[1]])

    # -- forward -------------------------------------------------------------------------------------

    def pos_embed(self, grid: list[int]) -> Tensor:
        """Position embeddings ``(T*H*W, C)`` for a token grid: the built tables, resampled if needed."""
        spatial = resize_pos_embed(self.pos_embed_spatial, self.grid[1:], grid[1:], mode="bicubic")
        temporal = resize_pos_embed(self.pos_embed_temporal, self.grid[:1], grid[:1], mode="linear")
        return (spatial[0].unsqueeze(0) + temporal[0].unsqueeze(1)).flatten(0, 1)

    def forward_features(self, x: Tensor) -> Tensor:
        """The last block's tokens ``(B, T', H', W', num_features)`` in raster order (before the head's
        norm): one per mask unit, e.g. 8 x 7 x 7 for 16x224x224 clips."""
        # Channels-last patches make the (B, T*H*W, C) token sequence a free view (the ONNX exporter
        # has no memory formats; scripted models leave the layout to the convolution).
        if not torch.jit.is_scripting():
            if not torch.onnx.is_in_onnx_export():
                x = x.contiguous(memory_format=torch.channels_last_3d)
        x = self.patch_embed(x)
        b, c, t, h, w = x.shape
        x = x.flatten(2).transpose(1, 2) + self.pos_embed([t, h, w])
        x = _unroll(x.reshape(b, t, h, w, c), self.levels, self.q_stride, self.unit_tokens)
        for block in self.blocks:
            x = block(x) if torch.jit.is_scripting() else self.checkpointed(block, x)
        u = self.unit_tokens
        return x.view(b, t // u[0], h // u[1], w // u[2], x.shape[-1])

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.norm(x.flatten(1, 3).mean(1))
        if pre_logits:
            return x
        return self.head(x)

    # -- training ------------------------------------------------------------------------------------

    def init_classifier(self, layer: nn.Module) -> None:
        """The reference's head initialisation: truncated normal 0.02 and bias 0.02, both scaled by 1e-3."""
        nn.init.trunc_normal_(layer.weight, std=0.02)
        nn.init.constant_(layer.bias, 0.02)
        with torch.no_grad():
            layer.weight.mul_(1e-3)
            layer.bias.mul_(1e-3)




# ----------------------------------------------------------------------------------------------------
# Weights

HIERA_FILES_URL = "https://dl.fbaipublicfiles.com/hiera"
HIERA_README_URL = "https://github.com/facebookresearch/hiera#video-models"

# The clip as the publisher's evaluation prepared it: PySlowFast's Kinetics loader, which Hiera's
# inference example names as the one it trained and evaluated with (16 frames 4 apart at 30 fps, mean
# 0.45 / std 0.225 as in that example): for 3-crop testing the short side is resized to the 224-pixel
# test crop, and the crops are taken along the long side (a centre crop here).
_TRANSFORMS = ptv_transforms(224)


def _weights(name: str, num_params: int, acc1: float, gflops: float) -> Weights:
    """A Kinetics-400 checkpoint of the model zoo (MAE pre-training on K400, then K400 fine-tuning).

    ``gflops``: multiply-adds of one 16x224x224 view (convolution, linear layers and attention, counted
    by ``torch.utils.flop_counter``, halved).
    """
    return Weights(
        url=f"{HIERA_FILES_URL}/{name}.pth",
        transforms=_TRANSFORMS,
        meta={
            "categories": list(KINETICS400_CATEGORIES),
            "min_size": (32, 32),
            "min_temporal_size": 2,
            "num_params": num_params,
            "recipe": HIERA_README_URL,
            # The publisher reports top-1 only (README and paper: "all metrics are top-1 accuracies").
            "_metrics": {"Kinetics-400": {"acc@1": acc1}},
            "_ops": gflops,
            "_file_size": None,  # not stated by the publisher
            "_docs": (
                f"facebookresearch/hiera's {name} (checkpoint mae_k400_ft_k400): MAE pre-trained and fine-tuned "
                f"on Kinetics-400. Top-1 accuracy as its README and the paper state it, 3 spatial crops x 5 "
                f"clips of 16 frames 4 apart (30 fps); top-5 accuracy is not published. GFLOPs (multiply-adds of "
                f"one view) counted with torch.utils.flop_counter."
            ),
            "num_frames": 16,
            "sampling_rate": 4,
            "frame_rate": 30.0,
            "num_clips": 5,
            "num_crops": 3,
            "license": "CC-BY-NC-4.0",  # the model zoo's licence (LICENSE.models); the code is Apache-2.0
            "model_args": {"num_frames": 16, "crop_size": 224},  # the position tables' size
        },
        state_dict_adapter=from_hiera_state_dict,
    )


class Hiera_B_Weights(WeightsEnum):
    KINETICS400_V1 = DEFAULT = _weights("hiera_base_16x224", 51_092_560, 84.0, 101.73)


class Hiera_B_Plus_Weights(WeightsEnum):
    KINETICS400_V1 = DEFAULT = _weights("hiera_base_plus_16x224", 69_392_240, 85.0, 132.30)


class Hiera_L_Weights(WeightsEnum):
    KINETICS400_V1 = DEFAULT = _weights("hiera_large_16x224", 213_091_600, 87.3, 412.13)


class Hiera_H_Weights(WeightsEnum):
    KINETICS400_V1 = DEFAULT = _weights("hiera_huge_16x224", 671_627_664, 87.8, 1157.80)


# ----------------------------------------------------------------------------------------------------
# Builders


@register_model(Hiera_B_Weights)
def hiera_b(*, weights: Hiera_B_Weights | str | None = None, progress: bool = True, **kwargs: Any) -> Hiera:
    """Hiera-B (16x224): stages (2, 3, 16, 3), 96 channels and 1 head in the first stage.

    Args:
        weights: :class:`Hiera_B_Weights` (a member, its name or ``"DEFAULT"``), a file's path, or ``None``.
        progress: show a progress bar while downloading.
        kwargs: for :class:`Hiera`; ``num_frames`` and ``crop_size`` are fixed by weights (the built model
            still runs other accepted clip sizes).
    """
    return build_model(Hiera, Hiera_B_Weights, weights, progress, kwargs, stages=(2, 3, 16, 3), embed_dim=96, num_heads=1)


@register_model(Hiera_B_Plus_Weights)
def hiera_b_plus(
    *, weights: Hiera_B_Plus_Weights | str | None = None, progress: bool = True, **kwargs: Any
) -> Hiera:
    """Hiera-B+ (16x224): stages (2, 3, 16, 3), 112 channels and 2 heads in the first stage.

    Args: as :func:`hiera_b`, with :class:`Hiera_B_Plus_Weights`.
    """
    return build_model(
        Hiera, Hiera_B_Plus_Weights, weights, progress, kwargs, stages=(2, 3, 16, 3), embed_dim=112, num_heads=2
    )


@register_model(Hiera_L_Weights)
def hiera_l(*, weights: Hiera_L_Weights | str | None = None, progress: bool = True, **kwargs: Any) -> Hiera:
    """Hiera-L (16x224): stages (2, 6, 36, 4), 144 channels and 2 heads in the first stage.

    Args: as :func:`hiera_b`, with :class:`Hiera_L_Weights`.
    """
    return build_model(Hiera, Hiera_L_Weights, weights, progress, kwargs, stages=(2, 6, 36, 4), embed_dim=144, num_heads=2)


@register_model(Hiera_H_Weights)
def hiera_h(*, weights: Hiera_H_Weights | str | None = None, progress: bool = True, **kwargs: Any) -> Hiera:
    """Hiera-H (16x224): stages (2, 6, 36, 4), 256 channels and 4 heads in the first stage.

    Args: as :func:`hiera_b`, with :class:`Hiera_H_Weights`.
    """
    return build_model(Hiera, Hiera_H_Weights, weights, progress, kwargs, stages=(2, 6, 36, 4), embed_dim=256, num_heads=4)
