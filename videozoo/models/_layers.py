"""Pieces that several families share: stochastic depth, BatchNorm folding, initialisation, window pooling.

Each is written once here; a family file imports it rather than keeping its own copy.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["drop_path", "drop_path_mask", "fold_batch_norm", "init_conv_bn", "window_avg_pool"]


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
    return F.avg_pool3d(x, kernel, stride=1)
