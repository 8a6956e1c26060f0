"""Boxes in plain torch: conversions, pairwise IoU and greedy non-maximum suppression.

Boxes are ``(N, 4)`` float tensors of rows ``(x1, y1, x2, y2)`` (corners, ``x2 >= x1``, ``y2 >= y1``)
unless a function says otherwise. The person detectors and the action-detection tracker share them.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["box_area", "box_cxcywh_to_xyxy", "box_iou", "nms"]


def box_cxcywh_to_xyxy(boxes: Tensor) -> Tensor:
    """``(..., 4)`` rows ``(centre x, centre y, width, height)`` -> ``(x1, y1, x2, y2)``."""
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack((cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h), dim=-1)


def box_area(boxes: Tensor) -> Tensor:
    """``(N,)`` areas of ``(N, 4)`` corner boxes (0 for empty or inverted ones)."""
    return (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """``(N, M)`` intersection over union of every box of ``boxes1`` ``(N, 4)`` with every one of
    ``boxes2`` ``(M, 4)``. Two empty boxes have IoU 0 (not NaN)."""
    top_left = torch.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    wh = (bottom_right - top_left).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = box_area(boxes1)[:, None] + box_area(boxes2)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(inter.dtype).tiny), torch.zeros_like(inter))


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression, as torchvision.ops.nms: the indices of the boxes kept, highest score
    first. A box is dropped when its IoU with a kept box of higher score is above ``iou_threshold``.

    Args:
        boxes: ``(N, 4)`` corner boxes.
        scores: ``(N,)`` their scores.
        iou_threshold: boxes overlapping a better one by more than this are suppressed.
    """
    if boxes.dim() != 2 or boxes.shape[-1] != 4 or scores.shape != boxes.shape[:1]:
        raise ValueError(f"nms takes boxes (N, 4) and scores (N,); got {list(boxes.shape)} and {list(scores.shape)}.")
    order = torch.argsort(scores, descending=True, stable=True)
    iou = box_iou(boxes[order], boxes[order])
    keep = torch.ones(len(order), dtype=torch.bool, device=boxes.device)
    for i in range(len(order)):
        if keep[i]:
            keep[i + 1 :] &= iou[i, i + 1 :] <= iou_threshold
    return order[keep]
