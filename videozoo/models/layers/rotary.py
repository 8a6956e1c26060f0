"""3D rotary position embeddings (V-JEPA 2's): a head's channels in three sections rotated by a token's
frame, row and column index, computed from the clip's own token grid (no table to resample)."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["apply_rope", "rope_3d_tables", "rope_section_dim"]


def rope_section_dim(head_dim: int) -> int:
    """Channels of a head that each of the frame, row and column positions rotates: ``2 * (head_dim // 3 // 2)``."""
    return 2 * ((head_dim // 3) // 2)


def rope_3d_tables(grid: list[int], head_dim: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """float32 ``(cos, sin)``, each ``(T' * H' * W', 3 * d)`` with ``d = rope_section_dim(head_dim)``, for a
    ``(T', H', W')`` token grid in (t, h, w) order.

    Columns ``[0, d)`` rotate by the token's frame index, ``[d, 2d)`` by its row, ``[2d, 3d)`` by its
    column; within a section, column ``c`` uses the angle ``pos * 10000^(-(c mod d/2) / (d/2))`` (the
    frequencies repeated, as the reference lays them out).
    """
    d = rope_section_dim(head_dim)
    t, h, w = grid[0], grid[1], grid[2]
    ids = torch.arange(t * h * w, device=device)
    frame = ids // (h * w)
    row = (ids - frame * (h * w)) // w
    col = ids - frame * (h * w) - row * w
    omega = torch.arange(d // 2, dtype=torch.float32, device=device) / (d / 2.0)
    omega = 1.0 / torch.pow(10000.0, omega)
    cos: list[Tensor] = []
    sin: list[Tensor] = []
    for pos in [frame, row, col]:
        angle = pos.unsqueeze(-1) * omega  # (N, d/2), float32
        cos.append(angle.cos().repeat(1, 2))
        sin.append(angle.sin().repeat(1, 2))
    return torch.cat(cos, dim=-1), torch.cat(sin, dim=-1)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate the first ``cos.shape[-1]`` channels of ``x`` (``(..., N, D)``) pairwise, ``(x0, x1) ->
    (x0 cos - x1 sin, x1 cos + x0 sin)`` per channel's own angle; the remaining channels pass unchanged."""
    r = cos.shape[-1]
    head = x[..., :r]
    pairs = head.unflatten(-1, (-1, 2))
    rotated = torch.stack([-pairs[..., 1], pairs[..., 0]], dim=-1).flatten(-2)
    head = head * cos + rotated * sin
    if r == x.shape[-1]:
        return head
    return torch.cat([head, x[..., r:]], dim=-1)
