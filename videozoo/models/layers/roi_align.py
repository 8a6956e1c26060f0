"""RoIAlign (He et al., "Mask R-CNN", ICCV 2017, https://arxiv.org/abs/1703.06870) in plain torch ops.

It computes what torchvision's ``roi_align`` computes (the function PyTorchVideo's and PySlowFast's AVA
heads call), without torchvision: each box is cut into ``output_size`` bins; each bin is the average of
a ``grid_h x grid_w`` grid of bilinear samples of the feature map, ``grid = sampling_ratio`` or, for
``sampling_ratio <= 0``, ``ceil(box side / bins)`` chosen per box. A sample more than one pixel outside
the map is zero; one within a pixel of the border is clamped onto it.

Bilinear sampling is separable, and so are the out-of-map test and the grid average: a box's output is
``Wy @ map @ Wx^T`` with ``Wy (bins_h, H)`` and ``Wx (bins_w, W)`` interpolation matrices that already
hold the grid's average. The matrices are built for all boxes at once (grids padded to the largest box's
and masked), so there is no loop over boxes.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["roi_align"]


def _axis_weights(start: Tensor, end: Tensor, bins: int, size: int, sampling_ratio: int, aligned: bool) -> Tensor:
    """``(K, bins, size)``: the weight of each map row (or column) in each bin of each box, averaged over
    the bin's samples along this axis. ``start``/``end``: the boxes' ``(K,)`` edges in map coordinates."""
    extent = end - start
    if not aligned:  # torchvision's legacy boxes: at least one pixel
        extent = extent.clamp(min=1.0)
    bin_size = extent / bins
    if sampling_ratio > 0:
        grid = torch.full_like(extent, float(sampling_ratio))
    else:
        grid = torch.ceil(extent / bins)
    if torch.jit.is_scripting() or not (torch.jit.is_tracing() or torch.compiler.is_compiling()):
        most = max(int(grid.max().item()), 1) if grid.numel() > 0 else 1
    else:  # a graph (ONNX, torch.export) has a fixed grid: enough for any box inside the map
        most = max(math.ceil(size / bins), 1) if sampling_ratio <= 0 else sampling_ratio
    samples = torch.arange(most, dtype=start.dtype, device=start.device)  # (G,)
    index = torch.arange(bins, dtype=start.dtype, device=start.device)  # (P,)
    # Sample positions (K, P, G), as torchvision computes them: start + p * bin + (g + .5) * bin / grid.
    k_grid = grid.clamp(min=1.0)[:, None, None]
    pos = start[:, None, None] + index[None, :, None] * bin_size[:, None, None]
    pos = pos + (samples[None, None, :] + 0.5) * bin_size[:, None, None] / k_grid
    used = (samples[None, None, :] < grid[:, None, None]) & (pos >= -1.0) & (pos <= size)
    pos = pos.clamp(min=0.0)
    low = pos.floor().long()
    at_end = low >= size - 1
    low = torch.where(at_end, torch.full_like(low, size - 1), low)
    high = torch.where(at_end, low, low + 1)
    pos = torch.where(at_end, low.to(pos.dtype), pos)
    frac = pos - low.to(pos.dtype)
    # The grid's average along this axis (torchvision divides by grid_h * grid_w, at least 1).
    share = used.to(pos.dtype) / grid.clamp(min=1.0)[:, None, None]
    weights = torch.zeros(start.shape[0], bins, size, dtype=start.dtype, device=start.device)
    weights.scatter_add_(2, low, (1.0 - frac) * share)
    weights.scatter_add_(2, high, frac * share)
    return weights


def roi_align(
    features: Tensor,
    boxes: Tensor,
    output_size: list[int],
    spatial_scale: float,
    sampling_ratio: int = 0,
    aligned: bool = False,
) -> Tensor:
    """Pool each box of ``boxes`` from ``features`` into an ``output_size`` grid.

    Args:
        features: maps ``(B, C, H, W)``.
        boxes: ``(K, 5)`` rows ``(batch_index, x1, y1, x2, y2)`` in input-image pixels.
        output_size: ``[bins_h, bins_w]``.
        spatial_scale: map pixels per input pixel (``1 / 16`` for a stride-16 map).
        sampling_ratio: samples per bin along each axis; ``<= 0``: ``ceil(box side / bins)`` per box.
        aligned: shift the boxes by half a map pixel (``True``: Detectron2's corrected alignment;
            ``False``: the original, which also makes every box at least one map pixel wide).

    Returns ``(K, C, bins_h, bins_w)``, equal to ``torchvision.ops.roi_align`` up to float rounding.
    """
    _, _, height, width = features.shape
    bins_h, bins_w = output_size[0], output_size[1]
    offset = 0.5 if aligned else 0.0
    # Sample positions in float32 at least (bf16 would round a coordinate of 300 pixels to 2 pixels).
    precise = torch.float64 if features.dtype == torch.float64 else torch.float32
    coords = boxes[:, 1:5].to(precise) * spatial_scale - offset
    wy = _axis_weights(coords[:, 1], coords[:, 3], bins_h, height, sampling_ratio, aligned)  # (K, P, H)
    wx = _axis_weights(coords[:, 0], coords[:, 2], bins_w, width, sampling_ratio, aligned)  # (K, Q, W)
    maps = features.index_select(0, boxes[:, 0].long())  # (K, C, H, W)
    return torch.einsum("kph,kchw,kqw->kcpq", wy.to(features.dtype), maps, wx.to(features.dtype))
