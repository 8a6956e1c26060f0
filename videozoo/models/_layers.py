"""Pieces that several families share: stochastic depth, BatchNorm folding, initialisation, window pooling,
and the plain transformer block (multi-head self-attention + MLP) of the ViT-style families.

Each is written once here; a family file imports it rather than keeping its own copy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "Mlp",
    "SelfAttention",
    "TransformerBlock",
    "conv3d_channels_last",
    "conv_bn_folded",
    "drop_path",
    "drop_path_mask",
    "fold_batch_norm",
    "init_conv_bn",
    "linear",
    "onednn_applies",
    "log_mean_softmax",
    "resize_pos_embed",
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


def fold_batch_norm(
    weight: Tensor, mean: Tensor, var: Tensor, scale: Tensor, shift: Tensor, eps: float
) -> tuple[Tensor, Tensor]:
    """Weight and bias of the one convolution that equals a bias-free convolution (``weight``) followed by
    an eval-mode BatchNorm (running ``mean``/``var``, affine ``scale``/``shift``, ``eps``).

    Callers recompute it from the current parameters on every call, so loading or fine-tuning needs no
    refresh; it takes tensors rather than the module so that scripted models can call it.
    """
    factor = scale * torch.rsqrt(var + eps)
    return weight * factor.reshape([-1] + [1] * (weight.dim() - 1)), shift - mean * factor


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
# oneDNN in fp32 inference

# PyTorch's fp32 matrix products on CPU go to MKL's sgemm, which on the AVX-512 machines these models are
# benchmarked on reaches about half the throughput of oneDNN's inner product (the kernel ONNX Runtime
# and inductor's freezing path use) on the transformers' shapes; its small 3D convolutions go to an
# im2col path. The fused oneDNN operators inductor calls are used directly where they apply.
_ONEDNN = (
    torch.backends.mkldnn.is_available()
    and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    and hasattr(torch.ops.mkldnn, "_convolution_pointwise")
)


def onednn_applies(x: Tensor, weight: Tensor) -> bool:
    """Whether :func:`linear` and :func:`conv3d_channels_last` take oneDNN for these operands: CPU fp32
    inference with oneDNN available and enabled, outside autocast and any tracer (torch.jit.trace, dynamo:
    torch.export and torch.compile, the ONNX exporters), whose graphs must stay portable."""
    return (
        _ONEDNN
        and bool(torch.backends.mkldnn.enabled)
        and x.device.type == "cpu"
        and x.dtype == weight.dtype == torch.float32
        and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
        and not torch.is_autocast_enabled("cpu")
        and not torch.jit.is_tracing()
        and not torch.compiler.is_compiling()
        and not torch.onnx.is_in_onnx_export()
    )


def linear(x: Tensor, weight: Tensor, bias: Tensor | None, gelu: str | None = None) -> Tensor:
    """``F.linear``, then GELU if ``gelu`` names its form (``"none"``: exact erf, ``"tanh"``: the tanh
    approximation, as ``F.gelu``'s ``approximate``). In CPU fp32 inference (:func:`onednn_applies`) this
    is oneDNN's inner product with the GELU fused: the same fp32 arithmetic up to rounding order, about
    twice as fast as MKL's sgemm here. Scripted, traced and exported models, autograd and autocast keep
    ``F.linear``."""
    if not torch.jit.is_scripting():
        if onednn_applies(x, weight):
            # oneDNN is only fast on dense operands (strided ones can take a reference path).
            post_op, algorithm = ("none", "") if gelu is None else ("gelu", gelu)
            return torch.ops.mkldnn._linear_pointwise(x.contiguous(), weight.contiguous(), bias, post_op, [], algorithm)
    y = F.linear(x, weight, bias)
    return y if gelu is None else F.gelu(y, approximate=gelu)


def conv3d_channels_last(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    stride: tuple[int, int, int],
    padding: tuple[int, int, int],
    groups: int = 1,
    relu: bool = False,
) -> Tensor:
    """``F.conv3d`` (no dilation) of a ``channels_last_3d`` clip, then ReLU if ``relu``, with a
    ``channels_last_3d`` result, run where the CPU convolution is fast.

    A ``t x 1 x 1`` kernel (spatial stride 1) runs as a 2D convolution over a (T, H*W) view, a
    ``1 x h x w`` kernel (temporal stride 1) as one over the frames: oneDNN's 2D kernels beat its 3D
    ones on these (R(2+1)D-18: 1.1x). In CPU fp32 inference (:func:`onednn_applies`) every convolution
    is oneDNN's, called directly with the ReLU fused: ``F.conv3d`` sends small inputs (batch 1, few
    frames: B*C*T*H <= 20480) with kernels no wider than 3 to PyTorch's slow im2col path instead (3.6x
    slower on R3D-18's 256-channel 3x3x3 layer). Elsewhere (autograd, autocast, tracers) ``F.conv2d`` /
    ``F.conv3d`` run, then ReLU.
    """
    onednn = False
    if not torch.jit.is_scripting():  # (compiled out when scripting, the only form TorchScript skips)
        onednn = onednn_applies(x, weight)
    b, c, t, h, w = x.shape
    kt, kh, kw = weight.shape[2:]
    st, pad = [stride[0], stride[1], stride[2]], [padding[0], padding[1], padding[2]]  # lists slice in TorchScript
    if (kh, kw) == (1, 1) and st[1:] == [1, 1] and pad[1:] == [0, 0]:
        planes = x.permute(0, 2, 3, 4, 1).reshape(b, t, h * w, c).permute(0, 3, 1, 2)  # (B, C, T, H*W)
        y = _conv(planes, weight.squeeze(-1), bias, st[:2], pad[:2], groups, relu, onednn)
        return y.permute(0, 2, 3, 1).reshape(b, y.shape[2], h, w, y.shape[1]).permute(0, 4, 1, 2, 3)
    if kt == 1 and st[0] == 1 and pad[0] == 0:
        frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)  # channels-last frames
        y = _conv(frames, weight.squeeze(2), bias, st[1:], pad[1:], groups, relu, onednn)
        return y.permute(0, 2, 3, 1).reshape(b, t, y.shape[2], y.shape[3], y.shape[1]).permute(0, 4, 1, 2, 3)
    y = _conv(x, weight, bias, st, pad, groups, relu, onednn)
    return y.contiguous(memory_format=torch.channels_last_3d)


def _conv(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    stride: list[int],
    padding: list[int],
    groups: int,
    relu: bool,
    onednn: bool,
) -> Tensor:
    """A channels-last 2D or 3D convolution, then ReLU if ``relu``; oneDNN's fused one if ``onednn``."""
    if onednn:
        layout = torch.channels_last if x.dim() == 4 else torch.channels_last_3d  # oneDNN's fast filter layout
        return torch.ops.mkldnn._convolution_pointwise(
            x, weight.contiguous(memory_format=layout), bias, padding, stride, [1] * (x.dim() - 2), groups,
            "relu" if relu else "none", [], "",
        )
    if x.dim() == 4:
        y = F.conv2d(x, weight, bias, stride, padding, 1, groups)
    else:
        y = F.conv3d(x, weight, bias, stride, padding, 1, groups)
    return F.relu(y, inplace=True) if relu else y


def conv_bn_folded(x: Tensor, conv: nn.Conv3d, bn: nn.BatchNorm3d, relu: bool = False) -> Tensor:
    """``bn(conv(x))`` for an eval-mode ``bn``, then ReLU if ``relu``, as one convolution with the BN
    folded into its filters (and the ReLU fused where :func:`conv3d_channels_last` can).

    ``x`` is channels-last, and so is the result. Eager only (TorchScript takes no modules as
    arguments): the convolutional families call it from an ``@torch.jit.unused`` eval path, and scripted
    models run the unfolded modules, the same function up to float rounding. The folded filters are
    recomputed from the current parameters on every call, so loading or fine-tuning needs no refresh.
    """
    assert bn.running_mean is not None and bn.running_var is not None
    weight, bias = fold_batch_norm(conv.weight, bn.running_mean, bn.running_var, bn.weight, bn.bias, bn.eps)
    return conv3d_channels_last(x, weight, bias, conv.stride, conv.padding, conv.groups, relu)


# ----------------------------------------------------------------------------------------------------
# Transformer pieces (VideoMAE, TimeSformer, ViViT)


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


class SelfAttention(nn.Module):
    """Multi-head self-attention over tokens ``(B, N, C)`` through ``F.scaled_dot_product_attention``.

    One fused ``qkv`` projection. ``qkv_bias="qv"`` gives queries and values a bias and keys none
    (BEiT's and VideoMAE's ``q_bias``/``v_bias``: the fused bias is ``cat(q_bias, 0, v_bias)``);
    ``"qkv"`` biases all three, ``"none"`` none.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: str = "qkv") -> None:
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

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        q_bias, v_bias = self.q_bias, self.v_bias
        if q_bias is not None and v_bias is not None:
            qkv = linear(x, self.qkv.weight, torch.cat([q_bias, torch.zeros_like(q_bias), v_bias]))
        else:
            qkv = linear(x, self.qkv.weight, self.qkv.bias)
        q, k, v = qkv.reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4).unbind(0)
        y = F.scaled_dot_product_attention(q, k, v)
        return linear(y.transpose(1, 2).reshape(b, n, c), self.proj.weight, self.proj.bias)


class TransformerBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``, each branch
    dropped per sample with probability ``stochastic_depth_prob`` while training.

    Args:
        qkv_bias: see :class:`SelfAttention`.
        norm_eps: the LayerNorms' epsilon, as the checkpoint was trained with (1e-6 or 1e-12).
        approximate: see :class:`Mlp`.
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
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = SelfAttention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), approximate)
        self.stochastic_depth_prob = stochastic_depth_prob

    def forward(self, x: Tensor) -> Tensor:
        x = x + drop_path(self.attn(self.norm1(x)), self.stochastic_depth_prob, self.training)
        return x + drop_path(self.mlp(self.norm2(x)), self.stochastic_depth_prob, self.training)


def resize_pos_embed(pos_embed: Tensor, old_grid: list[int], new_grid: list[int], mode: str = "trilinear") -> Tensor:
    """Resample position embeddings laid out on a token grid to another grid.

    ``pos_embed`` is ``(..., prod(old_grid), C)`` with the grid ``(T,)``, ``(H, W)`` or ``(T, H, W)``
    flattened in row-major order; the result is ``(..., prod(new_grid), C)``. An unchanged grid returns
    ``pos_embed`` itself, so the built size stays exact. ``mode`` is ``F.interpolate``'s (``"linear"``,
    ``"bicubic"``, ``"trilinear"``, ``"nearest"``), with ``align_corners=False``.
    """
    if old_grid == new_grid:
        return pos_embed
    lead = pos_embed.shape[:-2]
    c = pos_embed.shape[-1]
    grid = pos_embed.reshape([-1] + old_grid + [c])
    if mode == "nearest":  # as gathers: ONNX's nearest Resize rounds differently from torch's
        for axis, (old, new) in enumerate(zip(old_grid, new_grid)):
            grid = grid.index_select(axis + 1, _nearest_indices(old, new, grid.device))
        return grid.reshape(list(lead) + [-1, c])
    grid = grid.movedim(-1, 1)  # (N, C, *old_grid)
    grid = F.interpolate(grid, size=new_grid, mode=mode, align_corners=False)
    return grid.movedim(1, -1).reshape(list(lead) + [-1, c])


def _nearest_indices(old: int, new: int, device: torch.device) -> Tensor:
    """The source index of each of ``new`` positions under ``F.interpolate(mode="nearest")``:
    ``floor(i * old / new)`` with the scale in float32, as torch computes it."""
    scale = torch.tensor(old / new, dtype=torch.float32)
    index = (torch.arange(new, dtype=torch.float32) * scale).floor().to(torch.long).clamp(max=old - 1)
    return index.to(device)
