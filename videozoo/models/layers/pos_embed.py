"""Position embeddings: resampling a learned or fixed table to another token grid, and the fixed
sine-cosine table."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["resize_pos_embed", "sinusoid_table"]


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


def sinusoid_table(num_positions: int, dim: int) -> Tensor:
    """float32 ``(num_positions, dim)``: column ``2i`` is ``sin(n / 10000^(2i/dim))``, column ``2i + 1``
    the cosine of the same angle (the Transformer's fixed encoding of position ``n``), computed in
    float64 and rounded once."""
    position = torch.arange(num_positions, dtype=torch.float64)[:, None]
    exponent = (torch.arange(dim) // 2 * 2).to(torch.float64) / dim
    angle = position / torch.pow(10000.0, exponent)[None, :]
    table = torch.empty_like(angle)
    table[:, 0::2] = torch.sin(angle[:, 0::2])
    table[:, 1::2] = torch.cos(angle[:, 1::2])
    return table.float()
