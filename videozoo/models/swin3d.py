"""Video Swin Transformer: Swin3D-T, -S and -B.

Liu et al., "Video Swin Transformer", CVPR 2022 (https://arxiv.org/abs/2106.13230). A clip is cut into
2x4x4 patches; four stages of Transformer blocks attend within non-overlapping 8x7x7 windows of
tokens, every second block with the windows shifted by half a window so that information crosses
window borders; between stages, patch merging halves the spatial resolution and doubles the width.

Module names and behaviour follow torchvision's port (``torchvision.models.video.swin3d_*``), so the
published checkpoints load with ``strict=True`` and give its outputs at every input size:

* clips are zero-padded to whole patches and, after ``norm1``, tokens to whole windows; padded tokens
  take part in attention unmasked;
* along a dimension no longer than the window, the window shrinks to that length and is not shifted;
  a shrunk window of ``n`` tokens reads its relative position bias from the first ``n`` rows and
  columns of the full window's index table, as torchvision does;
* tokens from different regions of a shifted window are kept apart by an additive -100, not -inf.

Speed: each attention layer reorders its tokens into window order with one gather (padding, cyclic
shift and window partition at once). Windows that share a shift mask form a group: interior windows
need none, so for them the attention mask is just the (heads, N, N) position bias, broadcast by
``scaled_dot_product_attention``; at most seven border groups get the bias plus their own (N, N) mask.
Each group's projected output is written straight back to its tokens' places (``index_copy_``),
undoing partition and shift in one pass (padding is then sliced off). Gather indices, groups and masks
depend only on the input shape and are computed once per shape (``_cached_window_layout``).
"""

import functools
from collections.abc import Sequence
from functools import partial
from typing import Any, List, NamedTuple, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from videozoo.zoo import WeightsEnum, build_model, register_model
from videozoo.models._base import FeatureLayer, VideoModel
from videozoo.models.layers import attention, drop_path, drop_path_rates, init_weights, linear
from videozoo.models.publishers.torchvision import IMAGENET_MEAN, IMAGENET_STD, tv_weights
from videozoo.video.transforms import VideoClassification

__all__ = [
    "SwinTransformer3d",
    "Swin3D_T_Weights",
    "Swin3D_S_Weights",
    "Swin3D_B_Weights",
    "swin3d_t",
    "swin3d_s",
    "swin3d_b",
]


# ----------------------------------------------------------------------------------------------------
# Window layout: everything about an attention layer's windows that depends only on the input shape


class WindowLayout(NamedTuple):
    window: List[int]  # window actually used along (T, H, W)
    pad: List[int]  # zero tokens appended along (T, H, W)
    gather: Tensor  # (B * padded volume,): token i of window order is padded token gather[i]
    bounds: List[int]  # windows [bounds[i], bounds[i + 1]) form group i
    masks: Tensor  # (groups, N, N): additive shift mask of each group, 0 or -100
    masked: List[bool]  # whether group i needs its mask (interior windows do not)


def _build_window_layout(
    batch: int, size: List[int], window_size: List[int], shift_size: List[int], device: torch.device
) -> WindowLayout:
    window: List[int] = []
    shift: List[int] = []
    padded: List[int] = []
    for d in range(3):
        fits = size[d] <= window_size[d]
        window.append(size[d] if fits else window_size[d])
        shift.append(0 if fits else shift_size[d])
        padded.append((size[d] + window[d] - 1) // window[d] * window[d])
    grid = [padded[d] // window[d] for d in range(3)]
    volume = padded[0] * padded[1] * padded[2]
    offsets = [torch.arange(window[d], device=device) for d in range(3)]

    # Shifting by s cuts the last window along that dimension into offsets [0, w - s) and [w - s, w);
    # a group is a choice, per shifted dimension, of "last window" (cut) or "any other" (whole).
    choices: List[List[int]] = [[0, 1] if shift[d] > 0 else [0] for d in range(3)]
    gathers: List[Tensor] = []
    masks: List[Tensor] = []
    masked: List[bool] = []
    bounds: List[int] = [0]
    for last_t in choices[0]:
        for last_h in choices[1]:
            for last_w in choices[2]:
                last = [last_t, last_h, last_w]
                sources: List[Tensor] = []
                label = torch.zeros(window[0], window[1], window[2], dtype=torch.long, device=device)
                for d in range(3):
                    if last[d] == 1:
                        starts = torch.full((1,), grid[d] - 1, device=device)
                        cut = (offsets[d] >= window[d] - shift[d]).long() << d
                        label = label + cut.view([-1 if e == d else 1 for e in range(3)])
                    else:
                        starts = torch.arange(grid[d] - (1 if shift[d] > 0 else 0), device=device)
                    # padded coordinate of offset i in window g after the cyclic shift by -shift
                    sources.append((starts[:, None] * window[d] + offsets[d][None, :] + shift[d]) % padded[d])
                nt, nh, nw = sources[0].shape[0], sources[1].shape[0], sources[2].shape[0]
                index = (
                    torch.arange(batch, device=device).view(batch, 1, 1, 1, 1, 1, 1) * volume
                    + sources[0].view(1, nt, 1, 1, window[0], 1, 1) * (padded[1] * padded[2])
                    + sources[1].view(1, 1, nh, 1, 1, window[1], 1) * padded[2]
                    + sources[2].view(1, 1, 1, nw, 1, 1, window[2])
                )
                gathers.append(index.reshape(-1))
                label = label.reshape(-1)
                masks.append((label[:, None] != label[None, :]).float() * -100.0)
                masked.append(last_t + last_h + last_w > 0)
                bounds.append(bounds[-1] + batch * nt * nh * nw)
    gather = torch.cat(gathers)
    pad = [padded[d] - size[d] for d in range(3)]
    return WindowLayout(window, pad, gather, bounds, torch.stack(masks), masked)


@functools.lru_cache(maxsize=64)
def _cached_window_layout(
    batch: int, size: Tuple[int, ...], window_size: Tuple[int, ...], shift_size: Tuple[int, ...], device: torch.device
) -> WindowLayout:
    return _build_window_layout(batch, list(size), list(window_size), list(shift_size), device)


# ----------------------------------------------------------------------------------------------------
# Building blocks


class ShiftedWindowAttention3d(nn.Module):
    """Multi-head self-attention within (shifted) 3D windows, with a learned relative position bias."""

    def __init__(
        self,
        dim: int,
        window_size: List[int],
        shift_size: List[int],
        num_heads: int,
        attention_dropout: float = 0.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.window_size = list(window_size)
        self.shift_size = list(shift_size)
        self.num_heads = num_heads
        self.attention_dropout = attention_dropout
        self.dropout = dropout
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

        wt, wh, ww = window_size
        num_offsets = (2 * wt - 1) * (2 * wh - 1) * (2 * ww - 1)
        self.relative_position_bias_table = nn.Parameter(torch.zeros(num_offsets, num_heads))
        nn.init.normal_(self.relative_position_bias_table, std=0.02)  # see SwinTransformer3d's init
        # Row i, column j: the table row of the offset from token j to token i of a window (torchvision
        # keeps this table in the published state_dict).
        coords = torch.stack(torch.meshgrid(torch.arange(wt), torch.arange(wh), torch.arange(ww), indexing="ij"))
        coords = coords.flatten(1)
        rel = coords[:, :, None] - coords[:, None, :] + torch.tensor([wt - 1, wh - 1, ww - 1])[:, None, None]
        index = (rel[0] * (2 * wh - 1) + rel[1]) * (2 * ww - 1) + rel[2]
        self.register_buffer("relative_position_index", index)

    def _layout(self, batch: int, size: List[int], device: torch.device) -> WindowLayout:
        if torch.jit.is_scripting():
            return _build_window_layout(batch, size, self.window_size, self.shift_size, device)
        return self._cached_layout(batch, size, device)

    @torch.jit.unused
    def _cached_layout(self, batch: int, size: List[int], device: torch.device) -> WindowLayout:
        if torch.compiler.is_compiling():  # tracing (torch.export): nothing real to keep
            return _build_window_layout(batch, size, self.window_size, self.shift_size, device)
        return _cached_window_layout(batch, tuple(size), tuple(self.window_size), tuple(self.shift_size), device)

    def _position_bias(self, n: int) -> Tensor:
        """(heads, n, n) bias for a window of n tokens."""
        index = self.relative_position_index
        if n != index.shape[0]:
            index = index[:n, :n]
        # Rows of the (offsets, heads) table, then heads first: gathering columns of its transpose took
        # 5-20x longer in bf16 (4.6 ms a block in Swin3D-T's third stage).
        bias = self.relative_position_bias_table.index_select(0, index.reshape(-1))
        return bias.t().reshape(self.num_heads, n, n).contiguous()

    def forward(self, x: Tensor) -> Tensor:
        """(B, T, H, W, C) -> (B, T, H, W, C)."""
        b, t, h, w, c = x.shape
        layout = self._layout(b, [t, h, w], x.device)
        if layout.pad[0] + layout.pad[1] + layout.pad[2] > 0:
            x = F.pad(x, (0, 0, 0, layout.pad[2], 0, layout.pad[1], 0, layout.pad[0]))
        n = layout.window[0] * layout.window[1] * layout.window[2]
        qkv = linear(x.reshape(-1, c).index_select(0, layout.gather), self.qkv.weight, self.qkv.bias)
        qkv = qkv.view(-1, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (windows, heads, n, head_dim) each
        bias = self._position_bias(n)
        p = self.attention_dropout if self.training else 0.0
        # Each group's output goes straight back to its tokens' places (padding included, cut below).
        out = qkv.new_empty(x.shape)
        for i in range(len(layout.masked)):
            start, end = layout.bounds[i], layout.bounds[i + 1]
            mask = bias + layout.masks[i] if layout.masked[i] else bias
            if p > 0.0:
                y = F.scaled_dot_product_attention(q[start:end], k[start:end], v[start:end], attn_mask=mask.unsqueeze(0).to(q.dtype), dropout_p=p)
            else:
                y = attention(q[start:end], k[start:end], v[start:end], mask.unsqueeze(0).to(q.dtype))
            y = F.dropout(linear(y.transpose(1, 2).reshape(-1, c), self.proj.weight, self.proj.bias), self.dropout, self.training)
            out.view(-1, c).index_copy_(0, layout.gather[start * n : end * n], y)
        return out[:, :t, :h, :w] if layout.pad[0] + layout.pad[1] + layout.pad[2] > 0 else out


class SwinTransformerBlock3d(nn.Module):
    """Pre-norm residual block: windowed attention, then a GELU MLP, each with stochastic depth."""

    def __init__(
        self, dim: int, num_heads: int, window_size: List[int], shift_size: List[int], mlp_ratio: float,
        dropout: float, attention_dropout: float, stochastic_depth_prob: float,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = ShiftedWindowAttention3d(dim, window_size, shift_size, num_heads, attention_dropout, dropout)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim), nn.Dropout(dropout)
        )
        self.stochastic_depth_prob = stochastic_depth_prob

    def forward(self, x: Tensor) -> Tensor:
        x = x + drop_path(self.attn(self.norm1(x)), self.stochastic_depth_prob, self.training)
        return x + drop_path(self._mlp(self.norm2(x)), self.stochastic_depth_prob, self.training)

    def _mlp(self, x: Tensor) -> Tensor:
        fc1, fc2 = self.mlp[0], self.mlp[3]
        x = self.mlp[2](linear(x, fc1.weight, fc1.bias, gelu="none"))
        return self.mlp[4](linear(x, fc2.weight, fc2.bias))


class PatchMerging(nn.Module):
    """Concatenate each 2x2 spatial neighbourhood (zero-padding odd sizes) and project 4C -> 2C."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: Tensor) -> Tensor:
        b, t, h, w, c = x.shape
        if h % 2 == 1 or w % 2 == 1:
            x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        h, w = (h + 1) // 2, (w + 1) // 2
        # torchvision's channel order: neighbours (dh, dw) = (0, 0), (1, 0), (0, 1), (1, 1)
        x = x.view(b, t, h, 2, w, 2, c).permute(0, 1, 2, 4, 5, 3, 6).reshape(b, t, h, w, 4 * c)
        return linear(self.norm(x), self.reduction.weight, None)


class PatchEmbed3d(nn.Module):
    """Zero-pad the clip to whole patches, embed each patch linearly, normalise; channels go last."""

    def __init__(self, patch_size: List[int], embed_dim: int) -> None:
        super().__init__()
        self.patch_size = list(patch_size)
        self.proj = nn.Conv3d(3, embed_dim, kernel_size=tuple(patch_size), stride=tuple(patch_size))
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        pt, ph, pw = [(-x.shape[2 + d]) % self.patch_size[d] for d in range(3)]
        if pt + ph + pw > 0:
            x = F.pad(x, (0, pw, 0, ph, 0, pt))
        return self.norm(self.proj(x).permute(0, 2, 3, 4, 1))


# ----------------------------------------------------------------------------------------------------
# The model


class SwinTransformer3d(VideoModel):
    """Video Swin Transformer: patch embedding, four stages of (shifted) window attention, a linear head.

    Any clip size works: the clip is padded to whole patches and every stage to whole windows.
    Stochastic depth grows linearly from 0 in the first block to ``stochastic_depth_prob`` in the last.

    Args:
        patch_size: (T, H, W) of the patches.
        embed_dim: channels of the first stage; each later stage doubles them.
        depths: blocks per stage.
        num_heads: attention heads per stage.
        window_size: (T, H, W) of the attention windows (shifted by half in every other block).
        mlp_ratio: hidden width of the MLPs, relative to the block's width.
        dropout: after the patch embedding, in the MLPs and after attention, while training.
        attention_dropout: on the attention weights, while training.
        stochastic_depth_prob: drop-path probability of the last block.
        num_classes: outputs of the classifier.
    """

    classifier_name = "head"
    layers_are_blocks = True
    stem_params = ("patch_embed",)
    head_params = ("norm", "head")

    def __init__(
        self, patch_size: Sequence[int], embed_dim: int, depths: Sequence[int], num_heads: Sequence[int],
        window_size: Sequence[int], mlp_ratio: float = 4.0, dropout: float = 0.0, attention_dropout: float = 0.0,
        stochastic_depth_prob: float = 0.1, num_classes: int = 400,
    ) -> None:
        if len(patch_size) != 3 or len(window_size) != 3 or len(depths) != len(num_heads) or not depths:
            raise ValueError(
                "patch_size and window_size need 3 values (T, H, W) and depths and num_heads one value per stage; "
                f"got {patch_size!r}, {window_size!r}, {depths!r}, {num_heads!r}."
            )
        num_features = embed_dim * 2 ** (len(depths) - 1)
        super().__init__(num_classes, num_features)
        self.num_layers = sum(depths)
        self.patch_embed = PatchEmbed3d(list(patch_size), embed_dim)
        self.pos_drop = nn.Dropout(dropout)

        layers: List[nn.Module] = []
        rates = iter(drop_path_rates(stochastic_depth_prob, sum(depths)))
        for stage, (depth, heads) in enumerate(zip(depths, num_heads)):
            dim = embed_dim * 2**stage
            blocks = []
            for i in range(depth):
                shift = [0 if i % 2 == 0 else w // 2 for w in window_size]
                drop = next(rates)
                blocks.append(
                    SwinTransformerBlock3d(
                        dim, heads, list(window_size), shift, mlp_ratio, dropout, attention_dropout, drop
                    )
                )
            layers.append(nn.Sequential(*blocks))
            if stage < len(depths) - 1:
                layers.append(PatchMerging(dim))
        self.features = nn.Sequential(*layers)
        self.norm = nn.LayerNorm(num_features)
        self.head = nn.Linear(num_features, num_classes)

        init_weights(self)  # torchvision's trunc_normal_(std=0.02), as a plain normal (see init_weights)

    def forward_features(self, x: Tensor) -> Tensor:
        """The normalised tokens of the last stage as a map ``(B, T', H', W', num_features)``."""
        x = self.pos_drop(self.patch_embed(x))  # (B, T, H, W, C)
        for stage in self.features:  # a stage's blocks, or patch merging
            x = stage(x) if torch.jit.is_scripting() else self.checkpointed(stage, x)
        return self.norm(x)

    @torch.jit.unused
    def feature_layers(self) -> list[FeatureLayer]:
        """The blocks ``features.<2s>.<j>`` of each stage ``s``; the patch merging before a stage counts with its
        first block."""
        layers = []
        for s in range(0, len(self.features), 2):
            for j, block in enumerate(self.features[s]):
                merging = (f"features.{s - 1}",) if s > 0 and j == 0 else ()
                layers.append(FeatureLayer((*merging, f"features.{s}.{j}"), (block,)))
        return layers

    @torch.jit.unused
    def no_weight_decay(self) -> set[str]:
        """Parameters trained without weight decay: the relative position bias tables (as timm's Swin)."""
        return {name for name, _ in self.named_parameters() if name.endswith("relative_position_bias_table")}

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = x.mean((1, 2, 3))
        return x if pre_logits else self.head(x)

    def init_classifier(self, layer: nn.Module) -> None:
        nn.init.normal_(layer.weight, std=0.02)
        nn.init.zeros_(layer.bias)


# ----------------------------------------------------------------------------------------------------
# Weights

# Ported from the paper's ImageNet-normalised checkpoints, so ImageNet statistics, short side 256.
_TRANSFORMS = partial(VideoClassification, crop_size=(224, 224), resize_size=(256,), mean=IMAGENET_MEAN, std=IMAGENET_STD)


_DOCS = (
    "The weights were ported from the paper. The accuracies are estimated on video-level "
    "with parameters `frame_rate=15`, `clips_per_video=12`, and `clip_len=32`"
)
_RECIPE = "https://github.com/SwinTransformer/Video-Swin-Transformer#kinetics-400"
_weights = partial(
    tv_weights, transforms=_TRANSFORMS, recipe=_RECIPE, docs=_DOCS, num_frames=32, frame_rate=15.0, num_clips=12
)


class Swin3D_T_Weights(WeightsEnum):
    KINETICS400_V1 = DEFAULT = _weights("swin3d_t-7615ae03.pth", 28158070, 77.715, 93.519, 43.882, 121.543)


class Swin3D_S_Weights(WeightsEnum):
    KINETICS400_V1 = DEFAULT = _weights("swin3d_s-da41c237.pth", 49816678, 79.521, 94.158, 82.841, 218.288)


class Swin3D_B_Weights(WeightsEnum):
    KINETICS400_V1 = _weights("swin3d_b_1k-24f7c7c6.pth", 88048984, 79.427, 94.386, 140.667, 364.134)
    KINETICS400_IMAGENET22K_V1 = _weights("swin3d_b_22k-7c6ae6fa.pth", 88048984, 81.643, 95.574, 140.667, 364.134)
    DEFAULT = KINETICS400_V1


# ----------------------------------------------------------------------------------------------------
# Builders

_CONFIG: dict[str, Any] = {"patch_size": (2, 4, 4), "window_size": (8, 7, 7)}
_T = {"embed_dim": 96, "depths": (2, 2, 6, 2), "num_heads": (3, 6, 12, 24), **_CONFIG}
_S = {**_T, "depths": (2, 2, 18, 2)}
_B = {**_S, "embed_dim": 128, "num_heads": (4, 8, 16, 32)}


@register_model(Swin3D_T_Weights)
def swin3d_t(*, weights: Swin3D_T_Weights | str | None = None, progress: bool = True, **kwargs: Any) -> SwinTransformer3d:
    """Swin3D-T: width 96, depths 2-2-6-2, 3-24 heads (28.2 M parameters).

    Args:
        weights: :class:`Swin3D_T_Weights` (a member, its name or ``"DEFAULT"``), a file's path, or ``None``.
        progress: show a progress bar while downloading.
        kwargs: passed to :class:`SwinTransformer3d` (e.g. ``num_classes``, without weights).
    """
    return build_model(SwinTransformer3d, Swin3D_T_Weights, weights, progress, kwargs, **_T)


@register_model(Swin3D_S_Weights)
def swin3d_s(*, weights: Swin3D_S_Weights | str | None = None, progress: bool = True, **kwargs: Any) -> SwinTransformer3d:
    """Swin3D-S: width 96, depths 2-2-18-2, 3-24 heads (49.8 M parameters).

    Args: as :func:`swin3d_t`, with :class:`Swin3D_S_Weights`.
    """
    return build_model(SwinTransformer3d, Swin3D_S_Weights, weights, progress, kwargs, **_S)


@register_model(Swin3D_B_Weights)
def swin3d_b(*, weights: Swin3D_B_Weights | str | None = None, progress: bool = True, **kwargs: Any) -> SwinTransformer3d:
    """Swin3D-B: width 128, depths 2-2-18-2, 4-32 heads (88.0 M parameters).

    ``KINETICS400_V1`` was pre-trained on ImageNet-1K, ``KINETICS400_IMAGENET22K_V1`` on ImageNet-22K.

    Args: as :func:`swin3d_t`, with :class:`Swin3D_B_Weights`.
    """
    return build_model(SwinTransformer3d, Swin3D_B_Weights, weights, progress, kwargs, **_B)
