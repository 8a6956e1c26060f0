"""The CPU kernel dispatch: fp32 inference routed to oneDNN's fused operators, and BatchNorm folded
into the convolution before it.

Each function computes what its plain PyTorch counterpart does (``F.linear``, ``F.conv3d``, a
convolution then an eval-mode BatchNorm) up to float rounding, and falls back to it wherever the fast
path does not apply: autograd, autocast, TorchScript and every tracer (export, compile, ONNX) see
plain operators only. How much faster each path is: docs/performance-notes.md.
"""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "attention", "conv3d_channels_last", "conv_bn_folded", "fold_batch_norm", "linear", "onednn_applies", "position_mean",
]

# PyTorch's fp32 matrix products on CPU go to MKL's sgemm, which on the AVX-512 machines these models are
# benchmarked on reaches about half the throughput of oneDNN's inner product (the kernel ONNX Runtime
# and inductor's freezing path use) on the transformers' shapes; its small 3D convolutions go to an
# im2col path. The fused oneDNN operators inductor calls are used directly where they apply.
_ONEDNN = (
    torch.backends.mkldnn.is_available()
    and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    and hasattr(torch.ops.mkldnn, "_convolution_pointwise")
)
# bf16 operands (a model converted with ``model.to(torch.bfloat16)``) take the same fused operators where the
# CPU has native bf16 dot products (AVX512-BF16 or AMX); elsewhere oneDNN would emulate them slowly.
_ONEDNN_BF16 = _ONEDNN and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def onednn_applies(x: Tensor, weight: Tensor) -> bool:
    """Whether :func:`linear` and :func:`conv3d_channels_last` take oneDNN for these operands: CPU fp32 (or
    bf16, where the CPU has it) inference with oneDNN available and enabled, outside autocast and any tracer (torch.jit.trace, dynamo:
    torch.export and torch.compile, the ONNX exporters), whose graphs must stay portable."""
    return (
        _ONEDNN
        and bool(torch.backends.mkldnn.enabled)
        and x.device.type == "cpu"
        and x.dtype == weight.dtype
        and (x.dtype == torch.float32 or (x.dtype == torch.bfloat16 and _ONEDNN_BF16))
        and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
        and not torch.is_autocast_enabled("cpu")
        and not _traced()
    )


def linear(x: Tensor, weight: Tensor, bias: Tensor | None, gelu: str | None = None) -> Tensor:
    """``F.linear``, then GELU if ``gelu`` names its form (``"none"``: exact erf, ``"tanh"``: the tanh
    approximation, as ``F.gelu``'s ``approximate``). In CPU fp32 inference (:func:`onednn_applies`) this
    is oneDNN's inner product with the GELU fused: the same fp32 arithmetic up to rounding order.
    Scripted, traced and exported models, autograd and autocast keep ``F.linear``."""
    if not torch.jit.is_scripting():
        if onednn_applies(x, weight):
            # oneDNN is only fast on dense operands (strided ones can take a reference path).
            post_op, algorithm = ("none", "") if gelu is None else ("gelu", gelu)
            return torch.ops.mkldnn._linear_pointwise(x.contiguous(), weight.contiguous(), bias, post_op, [], algorithm)
    y = F.linear(x, weight, bias)
    return y if gelu is None else F.gelu(y, approximate=gelu)


def position_mean(x: Tensor) -> Tensor:
    """``x.mean((2, 3, 4))`` of a ``(B, C, T, H, W)`` clip: the mean of each channel, ``(B, C)``.

    For a bf16 ``channels_last_3d`` clip on CPU, outside autograd and tracers, it is a matrix product of
    a row of ones with the clip's rows of channels (oneDNN's bf16 product, accumulating in fp32), then
    the division: PyTorch's bf16 reduction over these dimensions runs 5-10x slower than its fp32 one (1.2
    ms against 0.12 for X3D-S's first squeeze-excitation), the product as fast as fp32.
    """
    if not torch.jit.is_scripting():  # (compiled out when scripting)
        if _blocked_applies(x) and x.dtype == torch.bfloat16 and x.is_contiguous(memory_format=torch.channels_last_3d):
            b, c = x.shape[:2]
            rows = x.permute(0, 2, 3, 4, 1).reshape(b, -1, c)  # a view: (B, positions, C)
            ones = x.new_ones(b, 1, rows.shape[1])
            return torch.bmm(ones, rows).view(b, c).div_(rows.shape[1])
    return x.mean((2, 3, 4))


def attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, block: int | None = None) -> Tensor:
    """``softmax(q k^T / sqrt(head_dim) + mask) v`` over ``(..., tokens, head_dim)``, as
    ``F.scaled_dot_product_attention(q, k, v, attn_mask=mask)`` (``mask``: an additive float bias that
    broadcasts to ``(..., queries, keys)``, or ``None``).

    In bf16 or fp16 on CPU, outside autograd and tracers, it is two matrix products and a softmax per
    block of ``block`` queries: PyTorch's fused CPU kernel runs no faster in bf16 than in fp32, where the
    bf16 products run at twice the rate (1.6x the fused kernel at VideoMAE-S's 1568 tokens,
    docs/performance-notes.md). By default a block holds about 400 K scores per head: about 200 queries
    of 2,049 keys (InternVideo2-S/14) or 1,568 (VideoMAE-S), where 128-256 were fastest; 1,000 of 392
    keys (MViT's pooled attention: 1.5x faster than blocks of 256, whose overhead per block dominated);
    every query of a 392-token window (Swin3D). The first dimension (windows, clips) is taken a few at a
    time, so that a block's scores stay near 2 M (4 MB, in cache while the softmax and the second
    product read them): 4 of Swin3D-T's first-stage windows at a time ran 1.15x faster than all 128.
    """
    if not torch.jit.is_scripting():  # (compiled out when scripting)
        if _blocked_applies(q) and q.dim() >= 3:
            return _attention_in_blocks(q, k, v, mask, block)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def _attention_in_blocks(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, block: int | None) -> Tensor:
    """:func:`attention`'s bf16 path: blocks of queries, and of the first dimension."""
    out = q.new_empty(q.shape[:-1] + v.shape[-1:])
    keys, v = k.contiguous().transpose(-1, -2), v.contiguous()  # once, not once per block
    n, m = q.shape[-2], k.shape[-2]
    rows = max(64, (3 << 17) // m) if block is None else block
    rows = -(-n // -(-n // rows))  # equal blocks of at most ``rows``
    per_item = q[0, ..., :1, :1].numel() * rows * m  # scores of one item of the first dimension
    items = max(1, (1 << 21) // per_item) if block is None else q.shape[0]
    mask_items = mask is not None and mask.dim() == q.dim() and mask.shape[0] > 1
    scale = q.shape[-1] ** -0.5
    for i in range(0, q.shape[0], items):
        j = i + items
        qi, ki, vi, oi = q[i:j], keys[i:j] if keys.shape[0] > 1 else keys, v[i:j] if v.shape[0] > 1 else v, out[i:j]
        mi = mask[i:j] if mask is not None and mask_items else mask
        for start in range(0, n, rows):
            scores = torch.matmul(qi[..., start : start + rows, :] * scale, ki)
            if mi is not None:
                scores = scores.add_(mi if mi.shape[-2] == 1 else mi[..., start : start + rows, :])
            oi[..., start : start + rows, :] = torch.matmul(scores.softmax(-1), vi)
    return out


def _blocked_applies(q: Tensor) -> bool:
    """Whether :func:`attention` takes its blocked path: bf16/fp16 CPU inference outside any tracer."""
    return (
        q.device.type == "cpu"
        and q.dtype in (torch.bfloat16, torch.float16)
        and not (torch.is_grad_enabled() and q.requires_grad)
        and not _traced()
    )


def _traced() -> bool:
    """Whether a tracer records this call (torch.jit.trace, dynamo: torch.export and torch.compile, the ONNX
    exporters): their graphs keep the plain operators, portable to any machine."""
    return torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export()


def conv3d_channels_last(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    stride: tuple[int, int, int],
    padding: tuple[int, int, int],
    groups: int = 1,
    activation: str = "none",
    residual: Tensor | None = None,
) -> Tensor:
    """``F.conv3d`` (no dilation) of a ``channels_last_3d`` clip, plus ``residual`` if given, then
    ``activation`` (``"none"``, ``"relu"`` or ``"swish"``, only the first two with a residual), with a
    ``channels_last_3d`` result, run where the CPU convolution is fast.

    A ``t x 1 x 1`` kernel (spatial stride 1) runs as a 2D convolution over a (T, H*W) view, a
    ``1 x h x w`` kernel (temporal stride 1) as one over the frames: oneDNN's 2D kernels beat its 3D
    ones on these. In CPU inference (:func:`onednn_applies`) every convolution is oneDNN's, called
    directly with the sum and the activation fused into it (one pass over the output instead of three):
    ``F.conv3d`` sends small inputs (batch 1, few frames: B*C*T*H <= 20480) with kernels no wider than 3
    to PyTorch's slow im2col path instead. Elsewhere (autograd, autocast, tracers) ``F.conv2d`` /
    ``F.conv3d`` run, then the sum and the activation.
    """
    if residual is not None and activation == "swish":
        raise ValueError("conv3d_channels_last: a residual takes activation 'none' or 'relu'")
    onednn = False
    if not torch.jit.is_scripting():  # (compiled out when scripting, the only form TorchScript skips)
        onednn = onednn_applies(x, weight)
    b, c, t, h, w = x.shape
    kt, kh, kw = weight.shape[2:]
    st, pad = [stride[0], stride[1], stride[2]], [padding[0], padding[1], padding[2]]  # lists slice in TorchScript
    if (kh, kw) == (1, 1) and st[1:] == [1, 1] and pad[1:] == [0, 0]:
        planes = x.permute(0, 2, 3, 4, 1).reshape(b, t, h * w, c).permute(0, 3, 1, 2)  # (B, C, T, H*W)
        other = residual  # the residual (B, C', T', H, W) in the same view
        if residual is not None:
            r = residual.permute(0, 2, 3, 4, 1)
            other = r.reshape(b, r.shape[1], h * w, r.shape[4]).permute(0, 3, 1, 2)
        y = _conv(planes, weight.squeeze(-1), bias, st[:2], pad[:2], groups, activation, other, onednn)
        return y.permute(0, 2, 3, 1).reshape(b, y.shape[2], h, w, y.shape[1]).permute(0, 4, 1, 2, 3)
    if kt == 1 and st[0] == 1 and pad[0] == 0:
        frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)  # channels-last frames
        other = residual
        if residual is not None:
            r = residual.permute(0, 2, 1, 3, 4)
            other = r.reshape(b * t, r.shape[2], r.shape[3], r.shape[4])
        y = _conv(frames, weight.squeeze(2), bias, st[1:], pad[1:], groups, activation, other, onednn)
        return y.permute(0, 2, 3, 1).reshape(b, t, y.shape[2], y.shape[3], y.shape[1]).permute(0, 4, 1, 2, 3)
    y = _conv(x, weight, bias, st, pad, groups, activation, residual, onednn)
    return y.contiguous(memory_format=torch.channels_last_3d)


def _conv(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    stride: list[int],
    padding: list[int],
    groups: int,
    activation: str,
    residual: Tensor | None,
    onednn: bool,
) -> Tensor:
    """A channels-last 2D or 3D convolution, plus ``residual``, then ``activation``; oneDNN's fused one
    if ``onednn``."""
    if onednn:
        layout = torch.channels_last if x.dim() == 4 else torch.channels_last_3d  # oneDNN's fast filter layout
        weight = weight.contiguous(memory_format=layout)
        dilation = [1] * (x.dim() - 2)
        if residual is None:
            return torch.ops.mkldnn._convolution_pointwise(
                x, weight, bias, padding, stride, dilation, groups, activation, [], ""
            )
        return torch.ops.mkldnn._convolution_pointwise(  # the "binary" overload
            x, residual.contiguous(memory_format=layout), weight, bias, padding, stride, dilation, groups, "add",
            None, None if activation == "none" else activation, [], None,
        )
    if x.dim() == 4:
        y = F.conv2d(x, weight, bias, stride, padding, 1, groups)
    else:
        y = F.conv3d(x, weight, bias, stride, padding, 1, groups)
    if residual is not None:
        y = y.add_(residual)
    if activation == "relu":
        return F.relu(y, inplace=True)
    return F.silu(y, inplace=True) if activation == "swish" else y


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


def conv_bn_folded(
    x: Tensor, conv: nn.Conv3d, bn: nn.BatchNorm3d, activation: str = "none", residual: Tensor | None = None
) -> Tensor:
    """``bn(conv(x))`` for an eval-mode ``bn``, plus ``residual`` if given, then ``activation`` (as
    :func:`conv3d_channels_last`), as one convolution with the BN folded into its filters (and the sum
    and activation fused where :func:`conv3d_channels_last` can).

    ``x`` is channels-last, and so is the result. Eager only (TorchScript takes no modules as
    arguments): the convolutional families call it from an ``@torch.jit.unused`` eval path, and scripted
    models run the unfolded modules, the same function up to float rounding. The folded filters follow
    the current parameters (:func:`_folded_filters`), so loading or fine-tuning needs no refresh.
    """
    assert bn.running_mean is not None and bn.running_var is not None
    weight, bias = _folded_filters(conv, bn)
    if conv.dilation != (1, 1, 1):  # dilated (the AVA detectors' res5): the plain convolution
        y = F.conv3d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)
        y = y if residual is None else y + residual
        y = F.relu(y) if activation == "relu" else F.silu(y) if activation == "swish" else y
        return y.contiguous(memory_format=torch.channels_last_3d)
    return conv3d_channels_last(x, weight, bias, conv.stride, conv.padding, conv.groups, activation, residual)


# conv -> (the identity and version of each tensor folded, the folded filters); weak, so the cache goes
# with the module, and outside it, so that state_dict, deepcopy and pickling never see it.
_FOLDED: weakref.WeakKeyDictionary[nn.Conv3d, tuple[tuple, tuple[Tensor, Tensor]]] = weakref.WeakKeyDictionary()


def _folded_filters(conv: nn.Conv3d, bn: nn.BatchNorm3d) -> tuple[Tensor, Tensor]:
    """:func:`fold_batch_norm` of ``conv`` and ``bn``, filters channels-last (the layout oneDNN takes).

    Where no gradient is recorded and no tracer runs, the result is kept for the module and reused while
    the five tensors it was folded from stay the same: a tensor replaced (loading into new tensors,
    ``.to()``, whose ``param.data = ...`` keeps the tensor but moves its storage) or changed in place
    (``load_state_dict``, an optimizer step, BatchNorm's running statistics in training: each bumps the
    tensor's version) folds again. Folding on every call, with the copy into
    oneDNN's layout, cost r3d_18 8 % of its forward (docs/benchmarks.md). The kept filters are one more
    copy of the convolutions' weights; the tensors they were folded from are held until the next fold.
    """
    tensors = (conv.weight, bn.running_mean, bn.running_var, bn.weight, bn.bias)
    if torch.is_grad_enabled() or _traced() or any(t.is_inference() for t in tensors):  # (those keep no version)
        return fold_batch_norm(*tensors, bn.eps)  # type: ignore[arg-type]
    state = (torch.is_inference_mode_enabled(), bn.eps, tuple((id(t), t._version, t.data_ptr()) for t in tensors))
    kept = _FOLDED.get(conv)
    if kept is not None and kept[0][:3] == state:
        return kept[1]
    weight, bias = fold_batch_norm(*tensors, bn.eps)  # type: ignore[arg-type]
    folded = weight.contiguous(memory_format=torch.channels_last_3d), bias
    _FOLDED[conv] = ((*state, tensors), folded)  # the tensors held: their identities cannot be reused meanwhile
    return folded
