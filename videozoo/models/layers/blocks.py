"""Building blocks several families share: stochastic depth, the ResNets' initialisation, the
fixed-window pooling of PySlowFast's heads, probability averaging over window positions, and the
pieces of the ViT-style families: the tubelet embedding, RMSNorm, layer scale, multi-head
self-attention through SDPA (optionally with query-key norms and 3D rotary positions) and the
pre-norm transformer block built from them.

Each is written once here; a family file imports it rather than keeping its own copy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from videozoo.models.layers.kernels import attention, linear
from videozoo.models.layers.rotary import apply_rope

__all__ = [
    "LayerScale",
    "Mlp",
    "RMSNorm",
    "SelfAttention",
    "TransformerBlock",
    "TubeletEmbed",
    "transformer_blocks",
    "drop_path",
    "drop_path_mask",
    "drop_path_rates",
    "init_conv_bn",
    "init_weights",
    "log_mean_softmax",
    "merge_heads",
    "split_heads",
    "window_avg_pool",
]


def drop_path_mask(x: Tensor, p: float, training: bool) -> Tensor | None:
    """Stochastic depth ("row" mode): per-sample multipliers ``(B, 1, ..., 1)`` for a residual branch.

    Each is 0 with probability ``p`` and ``1 / (1 - p)`` otherwise; ``None`` (keep everything) in eval
    mode or when ``p == 0``. Families that run a block in chunks draw the mask once and apply it to each.
    """
    if not training or p == 0.0:
        return None
    keep = 1.0 - p
    mask = x.new_empty([x.shape[0]] + [1] * (x.dim() - 1)).bernoulli_(keep)
    if keep > 0.0:
        mask.div_(keep)
    return mask


def drop_path(x: Tensor, p: float, training: bool) -> Tensor:
    """``x`` with whole samples zeroed with probability ``p`` while training (see :func:`drop_path_mask`)."""
    mask = drop_path_mask(x, p, training)
    return x if mask is None else x * mask


def drop_path_rates(stochastic_depth_prob: float, depth: int) -> list[float]:
    """Each of ``depth`` blocks' drop-path probability: growing linearly from 0 in the first block to
    ``stochastic_depth_prob`` in the last."""
    return [stochastic_depth_prob * i / max(depth - 1, 1) for i in range(depth)]


def init_weights(
    model: nn.Module, layers: tuple[type[nn.Module], ...] = (nn.Linear,), std: float = 0.02, truncated: bool = False
) -> None:
    """The ViT-style initialisation: the weights of every module of a type in ``layers`` drawn from
    N(0, ``std``) (truncated at +-2 when ``truncated``, as ``nn.init.trunc_normal_``), their biases 0, and
    every LayerNorm at scale 1 / shift 0 (PyTorch's default, restated).

    ``trunc_normal_(std=0.02)`` cuts at +-2, i.e. 100 standard deviations: the same distribution as a plain
    normal in one pass instead of five (seconds for the large models), which is why some families pass
    ``truncated=False`` for a publisher's truncated normal.
    """
    draw = nn.init.trunc_normal_ if truncated else nn.init.normal_
    for m in model.modules():
        if isinstance(m, layers):
            draw(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def init_conv_bn(model: nn.Module, zero_init: Iterable[nn.BatchNorm3d] = ()) -> None:
    """PySlowFast's and torchvision's ResNet initialisation: MSRA fill (fan-out) for every ``Conv3d``,
    BatchNorm at scale 1 / shift 0, and scale 0 for the norms in ``zero_init`` (the last of each residual
    branch, so that each block starts as the identity)."""
    for m in model.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm3d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for bn in zero_init:
        nn.init.zeros_(bn.weight)


def window_avg_pool(x: Tensor, window: list[int]) -> Tensor:
    """Average over a fixed ``window`` (the head's, sized for the training clip) slid at stride 1.

    ``(B, C, T, H, W) -> (B, C, T - t + 1, H - h + 1, W - w + 1)``: one output per window position. A
    map smaller than the window in some dimension is averaged whole in it (PyTorchVideo raises there).
    """
    kernel = [min(window[0], x.shape[2]), min(window[1], x.shape[3]), min(window[2], x.shape[4])]
    if x.dtype in (torch.bfloat16, torch.float16) and x.device.type == "cpu":  # no reduced-precision CPU kernel
        return F.avg_pool3d(x.float(), kernel, stride=1).to(x.dtype)
    return F.avg_pool3d(x, kernel, stride=1)


def log_mean_softmax(logits: Tensor) -> Tensor:
    """``log(mean_p softmax(logits[:, p]))``: per-position logits ``(B, P, K)`` -> ``(B, K)``.

    The heads that average class *probabilities* over their window positions (PySlowFast's X3D,
    PyTorchVideo's R(2+1)D) return this as their logits, so that ``softmax`` of it is that average.
    Computed stably, as a log-sum-exp of log-probabilities.
    """
    return torch.logsumexp(F.log_softmax(logits, dim=-1), dim=1) - math.log(logits.shape[1])


# ----------------------------------------------------------------------------------------------------
# Transformer pieces (VideoMAE, TimeSformer, ViViT, Hiera, InternVideo2, V-JEPA 2)

class Mlp(nn.Module):
    """``fc2(act(fc1(x)))``: the transformer's feed-forward branch.

    Args:
        approximate: GELU's ``"none"`` (exact erf) or ``"tanh"`` (what some checkpoints call "gelu_fast").
    """

    def __init__(self, dim: int, hidden_dim: int, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"approximate must be 'none' or 'tanh' (F.gelu's forms), got {approximate!r}.")
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        x = linear(x, self.fc1.weight, self.fc1.bias, gelu=self.approximate)
        return linear(x, self.fc2.weight, self.fc2.bias)


class RMSNorm(nn.Module):
    """``weight * x / sqrt(mean(x^2) + eps)`` over the last dimension, computed in float32 (InternVideo2's)."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        y = x.float()
        y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * y.to(x.dtype)


class LayerScale(nn.Module):
    """A learned per-channel scale of a residual branch (``gamma``, CaiT's layer scale)."""

    def __init__(self, dim: int, init_value: float = 1e-5) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init_value))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


def split_heads(x: Tensor, num_heads: int) -> Tensor:
    """``(B, N, C) -> (B, heads, N, C / heads)``, a view where ``x``'s strides allow (SDPA's layout)."""
    b, n, c = x.shape
    return x.reshape(b, n, num_heads, c // num_heads).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    """``(B, heads, N, D) -> (B, N, heads * D)``: the inverse of :func:`split_heads`."""
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


def _norm(kind: str, dim: int, eps: float) -> nn.Module:
    if kind == "layer":
        return nn.LayerNorm(dim, eps=eps)
    if kind == "rms":
        return RMSNorm(dim, eps)
    raise ValueError(f"norm must be 'layer' (LayerNorm) or 'rms' (RMSNorm), got {kind!r}.")


class SelfAttention(nn.Module):
    """Multi-head self-attention over tokens ``(B, N, C)`` through :func:`~videozoo.models.layers.kernels.attention`
    (``F.scaled_dot_product_attention``, or its faster form in bf16 on CPU).

    One fused ``qkv`` projection. ``qkv_bias="qv"`` gives queries and values a bias and keys none
    (BEiT's and VideoMAE's ``q_bias``/``v_bias``: the fused bias is ``cat(q_bias, 0, v_bias)``);
    ``"qkv"`` biases all three, ``"none"`` none.

    Args:
        qk_norm: RMS-normalise the queries and the keys over all heads at once (``q_norm``, ``k_norm``:
            InternVideo2's), with epsilon ``norm_eps``.

        num_prefix_tokens: leading tokens (class tokens) that the rotary tables do not rotate.

    ``forward(x, cos, sin)`` also rotates every head's queries and keys, past the first
    ``num_prefix_tokens``, by rotary tables (:func:`~videozoo.models.layers.rotary.apply_rope`: V-JEPA 2's
    3D positions, PE-Core's 2D ones), in the tables' precision, then back to the values' dtype.
    """

    def __init__(
        self, dim: int, num_heads: int, qkv_bias: str = "qkv", qk_norm: bool = False, norm_eps: float = 1e-6,
        num_prefix_tokens: int = 0,
    ) -> None:  # fmt: skip
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}.")
        if qkv_bias not in ("qkv", "qv", "none"):
            raise ValueError(f"qkv_bias must be 'qkv', 'qv' or 'none', got {qkv_bias!r}.")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias == "qkv")
        self.q_bias: nn.Parameter | None = nn.Parameter(torch.zeros(dim)) if qkv_bias == "qv" else None
        self.v_bias: nn.Parameter | None = nn.Parameter(torch.zeros(dim)) if qkv_bias == "qv" else None
        self.proj = nn.Linear(dim, dim)
        self.q_norm: nn.Module = RMSNorm(dim, norm_eps) if qk_norm else nn.Identity()
        self.k_norm: nn.Module = RMSNorm(dim, norm_eps) if qk_norm else nn.Identity()
        self.num_prefix_tokens = num_prefix_tokens

    def forward(self, x: Tensor, cos: Tensor | None = None, sin: Tensor | None = None) -> Tensor:
        b, n, c = x.shape
        q_bias, v_bias = self.q_bias, self.v_bias
        if q_bias is not None and v_bias is not None:
            qkv = linear(x, self.qkv.weight, torch.cat([q_bias, torch.zeros_like(q_bias), v_bias]))
        else:
            qkv = linear(x, self.qkv.weight, self.qkv.bias)
        q, k, v = qkv.reshape(b, n, 3, c).unbind(2)  # (B, N, C) views
        heads = self.num_heads
        q, k, v = split_heads(self.q_norm(q), heads), split_heads(self.k_norm(k), heads), split_heads(v, heads)
        if cos is not None and sin is not None:
            q, k = self.rotate(q, cos, sin).type_as(v), self.rotate(k, cos, sin).type_as(v)
        y = attention(q, k, v)
        return linear(merge_heads(y), self.proj.weight, self.proj.bias)

    def rotate(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        """``apply_rope`` on the tokens of ``x`` ``(B, heads, N, D)`` past the prefix ones."""
        p = self.num_prefix_tokens
        if p == 0:
            return apply_rope(x, cos, sin)
        return torch.cat([x[:, :, :p], apply_rope(x[:, :, p:], cos, sin)], dim=2)


class TransformerBlock(nn.Module):
    """Pre-norm transformer block: ``x + ls1(attn(norm1(x)))``, then ``x + ls2(mlp(norm2(x)))``, each
    branch dropped per sample with probability ``stochastic_depth_prob`` while training (the layer
    scales ``ls1``, ``ls2`` only where ``layer_scale`` is given).

    Args:
        qkv_bias: see :class:`SelfAttention`.
        norm_eps: the norms' epsilon, as the checkpoint was trained with (1e-6 or 1e-12).
        approximate: see :class:`Mlp`.
        norm: ``"layer"`` (LayerNorm) or ``"rms"`` (:class:`RMSNorm`) for ``norm1`` and ``norm2``.
        qk_norm: see :class:`SelfAttention`.
        layer_scale: the initial value of learned per-channel scales of both branches (:class:`LayerScale`);
            ``None``: no scales.
        num_prefix_tokens: see :class:`SelfAttention`.

    ``forward(x, cos, sin)`` passes rotary tables to the attention (see :class:`SelfAttention`).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: str = "qkv",
        norm_eps: float = 1e-6,
        stochastic_depth_prob: float = 0.0,
        approximate: str = "none",
        norm: str = "layer",
        qk_norm: bool = False,
        layer_scale: float | None = None,
        num_prefix_tokens: int = 0,
    ) -> None:
        super().__init__()
        self.norm1 = _norm(norm, dim, norm_eps)
        self.attn = SelfAttention(dim, num_heads, qkv_bias, qk_norm, norm_eps, num_prefix_tokens)
        self.ls1: nn.Module = nn.Identity() if layer_scale is None else LayerScale(dim, layer_scale)
        self.norm2 = _norm(norm, dim, norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), approximate)
        self.ls2: nn.Module = nn.Identity() if layer_scale is None else LayerScale(dim, layer_scale)
        self.stochastic_depth_prob = stochastic_depth_prob

    def forward(self, x: Tensor, cos: Tensor | None = None, sin: Tensor | None = None) -> Tensor:
        x = x + drop_path(self.ls1(self.attn(self.norm1(x), cos, sin)), self.stochastic_depth_prob, self.training)
        return x + drop_path(self.ls2(self.mlp(self.norm2(x))), self.stochastic_depth_prob, self.training)


def transformer_blocks(
    depth: int, dim: int, num_heads: int, stochastic_depth_prob: float = 0.0, **block: Any
) -> nn.ModuleList:
    """``depth`` :class:`TransformerBlock` s of width ``dim``, their drop-path probability growing linearly
    from 0 to ``stochastic_depth_prob`` (:func:`drop_path_rates`); ``block``: the blocks' other arguments."""
    rates = drop_path_rates(stochastic_depth_prob, depth)
    return nn.ModuleList(TransformerBlock(dim, num_heads, stochastic_depth_prob=p, **block) for p in rates)


class TubeletEmbed(nn.Module):
    """Tubelets of ``tubelet_size x patch_size x patch_size`` pixels embedded by a 3D convolution (``proj``).

    Args:
        stride: the convolution's stride; ``None``: the tubelet itself (non-overlapping tubelets, the ViTs').
        padding: the convolution's zero padding (Hiera's 3x7x7 tubelets overlap: stride 2x4x4, padding 1x3x3).
    """

    def __init__(
        self,
        embed_dim: int,
        patch_size: int,
        tubelet_size: int,
        stride: tuple[int, int, int] | None = None,
        padding: tuple[int, int, int] = (0, 0, 0),
    ) -> None:
        super().__init__()
        kernel = (tubelet_size, patch_size, patch_size)
        self.proj = nn.Conv3d(3, embed_dim, kernel, stride=kernel if stride is None else stride, padding=padding)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)
