"""DETR (Carion et al., "End-to-End Object Detection with Transformers", ECCV 2020) as a person detector.

The network, top to bottom as in the paper's figure 2:

1. **Backbone**: an ImageNet ResNet (50 or 101 layers) whose batch norms are frozen (fixed statistics and
   affine parameters), giving a ``(B, 2048, H/32, W/32)`` feature map; a 1x1 convolution projects it to
   the transformer's width ``d`` (256).
2. **Position encoding**: a fixed 2-D sine table, ``d/2`` channels for the row and ``d/2`` for the column,
   each position normalised to ``(0, 2*pi]`` over the map's height and width.
3. **Transformer encoder**: post-norm layers of self-attention over the ``H/32 * W/32`` positions (the
   encoding added to queries and keys, not values) and a ReLU MLP.
4. **Transformer decoder**: ``num_queries`` (100) learned object queries, each layer self-attention among
   the queries, cross-attention to the encoder's memory, and an MLP; a final layer norm.
5. **Heads**: a linear classifier over the 91 COCO class ids plus "no object" (the last logit) and a
   3-layer MLP giving each query's box as ``(cx, cy, w, h)``, sigmoid-normalised to the image.

No anchors and no non-maximum suppression: each query predicts at most one object. :meth:`DETR.detect_persons`
is the person-detector interface the action-detection task calls: frames in ``[0, 1]`` at any size ->
per-frame ``(K, 5)`` person boxes ``(x1, y1, x2, y2, score)`` in the frames' pixels. Frames of one batch
share their size, so there is no padding and no padding mask (the publisher's mask is all false for them).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from videozoo.models.adapters.detr import from_detr_state_dict
from videozoo.models.layers.boxes import box_cxcywh_to_xyxy, nms
from videozoo.models.layers.kernels import fold_batch_norm
from videozoo.zoo import Weights, WeightsEnum, build_model, register_model

__all__ = ["DETR", "DETR_ResNet50_Weights", "DETR_ResNet101_Weights", "detr_resnet50", "detr_resnet101"]

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
#: The COCO class ids 0-90 in the checkpoints' output order, named as the publisher's demo notebook names them
#: ('N/A' for the ids COCO leaves unused); the classifier's last logit (id 91) is "no object".
COCO_CATEGORIES: tuple[str, ...] = (
    'N/A', 'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train', 'truck', 'boat',
    'traffic light', 'fire hydrant', 'N/A', 'stop sign', 'parking meter', 'bench', 'bird', 'cat', 'dog',
    'horse', 'sheep', 'cow', 'elephant', 'bear', 'zebra', 'giraffe', 'N/A', 'backpack', 'umbrella', 'N/A',
    'N/A', 'handbag', 'tie', 'suitcase', 'frisbee', 'skis', 'snowboard', 'sports ball', 'kite',
    'baseball bat', 'baseball glove', 'skateboard', 'surfboard', 'tennis racket', 'bottle', 'N/A',
    'wine glass', 'cup', 'fork', 'knife', 'spoon', 'bowl', 'banana', 'apple', 'sandwich', 'orange',
    'broccoli', 'carrot', 'hot dog', 'pizza', 'donut', 'cake', 'chair', 'couch', 'potted plant', 'bed',
    'N/A', 'dining table', 'N/A', 'N/A', 'toilet', 'N/A', 'tv', 'laptop', 'mouse', 'remote', 'keyboard',
    'cell phone', 'microwave', 'oven', 'toaster', 'sink', 'refrigerator', 'N/A', 'book', 'clock', 'vase',
    'scissors', 'teddy bear', 'hair drier', 'toothbrush',
)
#: The COCO class id of "person" (the checkpoints' output index).
PERSON = 1


# ----------------------------------------------------------------------------------------------------
# 1. Backbone: a ResNet with frozen batch norm


class FrozenBatchNorm2d(nn.Module):
    """Batch norm with fixed statistics and affine parameters (buffers, not parameters), as DETR freezes the
    ImageNet ResNet's; ``eps`` 1e-5 inside the square root."""

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: Tensor) -> Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale[None, :, None, None] + shift[None, :, None, None]


def conv_bn(x: Tensor, conv: nn.Conv2d, bn: FrozenBatchNorm2d) -> Tensor:
    """``bn(conv(x))`` as one convolution, the frozen batch norm folded into the filters (recomputed on each
    call from the current tensors, so loading needs no refresh; the same function up to float rounding)."""
    weight, bias = fold_batch_norm(conv.weight, bn.running_mean, bn.running_var, bn.weight, bn.bias, bn.eps)
    return F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)


class Bottleneck(nn.Module):
    """ResNet v1.5's bottleneck (stride on the 3x3 convolution), 4x channel expansion."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = FrozenBatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = FrozenBatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = FrozenBatchNorm2d(out_channels)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), FrozenBatchNorm2d(out_channels)
            )

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else conv_bn(x, self.downsample[0], self.downsample[1])
        out = F.relu(conv_bn(x, self.conv1, self.bn1), inplace=True)
        out = F.relu(conv_bn(out, self.conv2, self.bn2), inplace=True)
        out = conv_bn(out, self.conv3, self.bn3)
        out += identity
        return F.relu(out, inplace=True)


class ResNetBackbone(nn.Module):
    """The ResNet's stem and four stages (no pooling, no classifier): ``(B, 3, H, W)`` -> ``(B, 2048, H/32,
    W/32)``."""

    def __init__(self, layers: tuple[int, int, int, int]) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = FrozenBatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_channels = 64
        for i, (depth, width) in enumerate(zip(layers, (64, 128, 256, 512))):
            blocks = [Bottleneck(in_channels, width, stride=1 if i == 0 else 2)]
            in_channels = width * Bottleneck.expansion
            blocks += [Bottleneck(in_channels, width) for _ in range(depth - 1)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        self.num_channels = in_channels

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(F.relu(conv_bn(x, self.conv1, self.bn1), inplace=True))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


# ----------------------------------------------------------------------------------------------------
# 2. Position encoding


def sine_position_encoding(height: int, width: int, dim: int, temperature: float = 10000.0,
                           device: torch.device | None = None) -> Tensor:  # fmt: skip
    """DETR's fixed 2-D sine encoding of an unpadded ``height x width`` map: ``(height * width, dim)``,
    rows in raster order; the first ``dim/2`` channels encode the row, the others the column.

    Positions count from 1 and are normalised to ``(0, 2*pi]`` (``i / (n + 1e-6) * 2*pi``); channel pair
    ``(2k, 2k+1)`` holds ``sin``/``cos`` of the position over ``temperature ** (2k / (dim/2))``.
    """
    half = dim // 2
    scale, eps = 2 * math.pi, 1e-6
    y = torch.arange(1, height + 1, dtype=torch.float32, device=device)
    x = torch.arange(1, width + 1, dtype=torch.float32, device=device)
    y, x = y / (height + eps) * scale, x / (width + eps) * scale
    dim_t = torch.arange(half, dtype=torch.float32, device=device)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / half)

    def encode(pos: Tensor) -> Tensor:  # (n,) -> (n, half), sin and cos interleaved
        angles = pos[:, None] / dim_t
        return torch.stack((angles[:, 0::2].sin(), angles[:, 1::2].cos()), dim=2).flatten(1)

    pos_y = encode(y)[:, None, :].expand(height, width, half)
    pos_x = encode(x)[None, :, :].expand(height, width, half)
    return torch.cat((pos_y, pos_x), dim=2).reshape(height * width, dim)


# ----------------------------------------------------------------------------------------------------
# 3-4. Transformer encoder and decoder (post-norm; sequences batch-first, (B, N, d))


class Attention(nn.Module):
    """Multi-head attention with one packed input projection (``in_proj_weight``: query, key and value
    rows) and ``out_proj``, as ``torch.nn.MultiheadAttention`` stores it; queries, keys and values arrive
    apart because DETR adds the position encoding to queries and keys only."""

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"The width {dim} must be divisible by num_heads={num_heads}.")
        self.num_heads = num_heads
        self.dropout = dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, query: Tensor, key: Tensor, value: Tensor) -> Tensor:
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3)
        q, k, v = (
            self._heads(F.linear(t, w, b)) for t, w, b in ((query, w_q, b_q), (key, w_k, b_k), (value, w_v, b_v))
        )
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.out_proj(out.transpose(1, 2).flatten(2))

    def _heads(self, x: Tensor) -> Tensor:
        return x.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)


class EncoderLayer(nn.Module):
    """Self-attention over the image positions, then a ReLU MLP; a residual and a layer norm after each."""

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = Attention(dim, num_heads, dropout)
        self.linear1 = nn.Linear(dim, mlp_dim)
        self.linear2 = nn.Linear(mlp_dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, pos: Tensor) -> Tensor:
        q = k = x + pos
        x = self.norm1(x + self.dropout(self.self_attn(q, k, x)))
        return self.norm2(x + self.dropout(self.linear2(self.dropout(F.relu(self.linear1(x))))))


class DecoderLayer(nn.Module):
    """Self-attention among the object queries, cross-attention to the encoder's memory, a ReLU MLP; a
    residual and a layer norm after each. ``query_pos`` (the learned queries) is added to the queries of both
    attentions, ``pos`` (the sine encoding) to the memory's keys."""

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = Attention(dim, num_heads, dropout)
        self.multihead_attn = Attention(dim, num_heads, dropout)
        self.linear1 = nn.Linear(dim, mlp_dim)
        self.linear2 = nn.Linear(mlp_dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, memory: Tensor, pos: Tensor, query_pos: Tensor) -> Tensor:
        q = k = x + query_pos
        x = self.norm1(x + self.dropout(self.self_attn(q, k, x)))
        x = self.norm2(x + self.dropout(self.multihead_attn(x + query_pos, memory + pos, memory)))
        return self.norm3(x + self.dropout(self.linear2(self.dropout(F.relu(self.linear1(x))))))


class Transformer(nn.Module):
    """The encoder's layers (no final norm, as DETR's post-norm encoder) and the decoder's, with its norm."""

    def __init__(self, dim: int, num_heads: int, num_encoder_layers: int, num_decoder_layers: int, mlp_dim: int,
                 dropout: float) -> None:  # fmt: skip
        super().__init__()
        self.encoder = nn.Module()
        self.encoder.layers = nn.ModuleList(EncoderLayer(dim, num_heads, mlp_dim, dropout) for _ in range(num_encoder_layers))
        self.decoder = nn.Module()
        self.decoder.layers = nn.ModuleList(DecoderLayer(dim, num_heads, mlp_dim, dropout) for _ in range(num_decoder_layers))
        self.decoder.norm = nn.LayerNorm(dim)
        for p in self.parameters():  # DETR's initialisation: Xavier for every matrix
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, src: Tensor, pos: Tensor, query_embed: Tensor) -> Tensor:
        """``src`` ``(B, N, d)`` image tokens, ``pos`` ``(N, d)``, ``query_embed`` ``(Q, d)`` -> ``(B, Q, d)``."""
        memory = src
        for layer in self.encoder.layers:
            memory = layer(memory, pos)
        query_pos = query_embed.expand(src.shape[0], -1, -1)
        x = torch.zeros_like(query_pos)
        for layer in self.decoder.layers:
            x = layer(x, memory, pos, query_pos)
        return self.decoder.norm(x)


# ----------------------------------------------------------------------------------------------------
# 5. Heads and the detector


class MLP(nn.Module):
    """Linear layers with ReLU between them (DETR's box head: 3 layers, ``d`` -> ``d`` -> ``d`` -> 4)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int) -> None:
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(dims))

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x) if i == len(self.layers) - 1 else F.relu(layer(x))
        return x


class DETR(nn.Module):
    """DETR: a ResNet, a transformer encoder-decoder over its feature map, and per-query class and box heads.

    Args:
        num_classes: class ids the classifier scores (91 for COCO: ids 0-90, some unused), plus one
            "no object" logit.
        num_queries: object queries, the most objects one image can hold.
        hidden_dim: the transformer's width ``d``.
        num_heads: attention heads.
        num_encoder_layers: transformer encoder layers.
        num_decoder_layers: transformer decoder layers.
        mlp_dim: the transformer MLPs' hidden width.
        dropout: dropout in the transformer while training (0.1 as published).
        layers: bottleneck blocks per ResNet stage ((3, 4, 6, 3): ResNet-50; (3, 4, 23, 3): ResNet-101).
        resize_size: :meth:`detect_persons` resizes frames so that the shorter side is this many pixels
            (None: frames are used at their own size).
        max_size: ... unless that makes the longer side exceed this; then the longer side is ``max_size``.
        score_threshold: :attr:`default_score_threshold`.
    """

    def __init__(
        self,
        num_classes: int = 91,
        num_queries: int = 100,
        hidden_dim: int = 256,
        num_heads: int = 8,
        num_encoder_layers: int = 6,
        num_decoder_layers: int = 6,
        mlp_dim: int = 2048,
        dropout: float = 0.1,
        layers: tuple[int, int, int, int] = (3, 4, 6, 3),
        resize_size: int | None = 800,
        max_size: int | None = 1333,
        score_threshold: float = 0.7,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2 (the person is class id {PERSON}), got {num_classes}.")
        self.num_classes = num_classes
        self.num_queries = num_queries
        self.hidden_dim = hidden_dim
        #: Shorter side (pixels) frames are resized to before detection; None keeps their size.
        self.resize_size = resize_size
        #: Longest side (pixels) allowed after resizing; None: no limit.
        self.max_size = max_size
        #: Persons scoring below this are dropped when :meth:`detect_persons` is given no threshold.
        self.default_score_threshold = score_threshold
        #: IoU above which :meth:`detect_persons` suppresses a person box overlapping a better one; None (the
        #: default): no suppression, as DETR's set prediction needs none.
        self.nms_iou_threshold: float | None = None
        self.backbone = ResNetBackbone(layers)
        self.input_proj = nn.Conv2d(self.backbone.num_channels, hidden_dim, 1)
        self.transformer = Transformer(hidden_dim, num_heads, num_encoder_layers, num_decoder_layers, mlp_dim, dropout)
        self.query_embed = nn.Embedding(num_queries, hidden_dim)
        self.class_embed = nn.Linear(hidden_dim, num_classes + 1)
        self.bbox_embed = MLP(hidden_dim, hidden_dim, 4, 3)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Normalised images ``(B, 3, H, W)`` -> class logits ``(B, num_queries, num_classes + 1)`` (the last
        is "no object") and boxes ``(B, num_queries, 4)``: ``(cx, cy, w, h)`` as fractions of the image."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"DETR expects normalised images (B, 3, H, W); got shape {list(images.shape)}.")
        features = self.input_proj(self.backbone(images))
        d, h, w = features.shape[1:]
        pos = sine_position_encoding(h, w, d, device=features.device).to(features.dtype)
        hs = self.transformer(features.flatten(2).transpose(1, 2), pos, self.query_embed.weight)
        return self.class_embed(hs), self.bbox_embed(hs).sigmoid()

    # -- the person-detector interface ----------------------------------------------------------------

    def resized_size(self, height: int, width: int) -> tuple[int, int]:
        """The ``(height, width)`` :meth:`detect_persons` resizes a ``height x width`` frame to: the publisher's
        evaluation resize (shorter side :attr:`resize_size`, longer side at most :attr:`max_size`, sizes
        truncated to integers as its ``get_size_with_aspect_ratio`` does)."""
        size = self.resize_size
        if size is None:
            return height, width
        short, long = float(min(height, width)), float(max(height, width))
        if self.max_size is not None and long / short * size > self.max_size:
            size = round(self.max_size * short / long)
        if (width <= height and width == size) or (height <= width and height == size):
            return height, width
        if width < height:
            return int(size * height / width), size
        return size, int(size * width / height)

    @torch.no_grad()
    def detect_persons(self, frames: Tensor, score_threshold: float | None = None) -> list[Tensor]:
        """Person boxes in each frame.

        Args:
            frames: RGB frames ``(B, 3, H, W)``, floats in [0, 1], at the video's own size.
            score_threshold: keep persons scoring at least this (default :attr:`default_score_threshold`).

        Returns one ``(K, 5)`` float32 tensor per frame, rows ``(x1, y1, x2, y2, score)`` in the frames'
        pixel coordinates (clipped to the frame), sorted by score, highest first. A query is a person when
        "person" is its most probable class (softmax over the classes and "no object"; the score is that
        probability), as DETR's post-processing labels boxes. Runs in eval mode (no dropout) and without
        gradients, and leaves the model's mode as it was.
        """
        self._check_frames(frames)
        threshold = self.default_score_threshold if score_threshold is None else float(score_threshold)
        if frames.shape[0] == 0:
            return []
        dtype = self.query_embed.weight.dtype
        height, width = frames.shape[-2:]
        x = frames.to(device=self.query_embed.weight.device, dtype=torch.float32)
        size = self.resized_size(height, width)
        if size != (height, width):  # torchvision's resize of float tensors: bilinear, antialiased
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        x = ((x - self.mean) / self.std).to(dtype)
        training = self.training
        self.eval()  # detection never runs the transformer's dropout, whatever mode the model is in
        try:
            logits, boxes = self(x)
        finally:
            self.train(training)
        probs = logits.float().softmax(-1)[..., :-1]
        scores, labels = probs.max(-1)
        scale = torch.tensor([width, height, width, height], dtype=torch.float32, device=boxes.device)
        corners = box_cxcywh_to_xyxy(boxes.float()) * scale
        corners = torch.minimum(corners.clamp(min=0), scale)
        results = []
        for frame_boxes, frame_scores, frame_labels in zip(corners, scores, labels):
            keep = (frame_labels == PERSON) & (frame_scores >= threshold)
            kept_boxes, kept_scores = frame_boxes[keep], frame_scores[keep]
            if self.nms_iou_threshold is not None:
                order = nms(kept_boxes, kept_scores, self.nms_iou_threshold)
            else:
                order = torch.argsort(kept_scores, descending=True, stable=True)
            results.append(torch.cat((kept_boxes[order], kept_scores[order, None]), dim=1))
        return results

    def _check_frames(self, frames: Any) -> None:
        if not isinstance(frames, Tensor):
            raise TypeError(f"detect_persons takes a tensor of frames (B, 3, H, W); got {type(frames).__name__}.")
        if frames.dim() != 4 or frames.shape[1] != 3:
            hint = " For one frame (3, H, W) use frames.unsqueeze(0)." if frames.dim() == 3 else ""
            hint = hint or (" For (B, H, W, 3) frames use frames.permute(0, 3, 1, 2)." if frames.dim() == 4 and frames.shape[-1] == 3 else "")
            raise ValueError(f"detect_persons expects RGB frames (B, 3, H, W); got shape {list(frames.shape)}.{hint}")
        if not frames.is_floating_point():
            raise ValueError(
                f"detect_persons expects float frames with values in [0, 1]; got {frames.dtype}. "
                f"For uint8 frames use frames.float() / 255."
            )
        if frames.numel() and (frames.min() < 0 or frames.max() > 1):
            raise ValueError(
                f"detect_persons expects frames with values in [0, 1]; got values from {frames.min().item():.3g} "
                f"to {frames.max().item():.3g}. Pass unnormalised RGB frames divided by 255 (the detector "
                f"normalises them itself)."
            )
        if min(frames.shape[-2:]) < 1:
            raise ValueError(f"detect_persons got empty frames of size {frames.shape[-2]}x{frames.shape[-1]}.")


# ----------------------------------------------------------------------------------------------------
# Weights
#
# Checked against the publisher (github.com/facebookresearch/detr: README model zoo, hubconf.py,
# models/*.py, datasets/coco.py's evaluation resize, the colab branch's notebooks/detr_demo.ipynb for the
# class names and the 0.7 demo threshold, LICENSE: Apache-2.0). The parameter counts are this module's
# (equal to the reference built by hubconf's _make_detr, checked by the parity generator). Not checked
# (no network): the files themselves (their size, sha256 and that the top level holds only "model").

_README = "https://github.com/facebookresearch/detr#model-zoo"


def _meta(name: str, box_ap: float, num_params: int, file_size: float, note: str = "") -> dict[str, Any]:
    return {
        "categories": list(COCO_CATEGORIES),
        "num_params": num_params,
        "min_size": (32, 32),
        "input": "RGB frames in [0, 1], any size; resized to shorter side 800 (longer at most 1333)",
        "recipe": _README,
        "license": "Apache-2.0",
        "_metrics": {"COCO-val2017": {"box_map": box_ap}},
        "_file_size": file_size,
        "_docs": (
            f"{name} trained by its authors on COCO 2017 for 500 epochs (facebookresearch/detr's model zoo). Box AP "
            f"on COCO val2017 (5k images) as the publisher's README states it, all 80 classes; videozoo uses the "
            f"person class only. Evaluation resize: shorter side 800, longer side at most 1333 (the model's "
            f"resize_size and max_size), ImageNet normalisation. detect_persons keeps persons scoring at least "
            f"0.7, the publisher's demo threshold (default_score_threshold). Categories: the 91 COCO class ids "
            f"in the checkpoint's output order, 'N/A' for the ids COCO does not use, as the publisher's demo "
            f"names them; the 92nd logit is 'no object'.{note}"
        ),
    }


class DETR_ResNet50_Weights(WeightsEnum):
    COCO_V1 = Weights(
        url="https://dl.fbaipublicfiles.com/detr/detr-r50-e632da11.pth",
        transforms=nn.Identity,  # detect_persons resizes and normalises frames itself
        meta=_meta("DETR with a ResNet-50", 42.0, 41_524_768, 159.0),
        state_dict_adapter=from_detr_state_dict,
    )
    DEFAULT = COCO_V1


class DETR_ResNet101_Weights(WeightsEnum):
    COCO_V1 = Weights(
        url="https://dl.fbaipublicfiles.com/detr/detr-r101-2c7b67e5.pth",
        transforms=nn.Identity,
        meta=_meta("DETR with a ResNet-101", 43.5, 60_464_672, 232.0),
        state_dict_adapter=from_detr_state_dict,
    )
    DEFAULT = COCO_V1


_R50 = {"layers": (3, 4, 6, 3)}
_R101 = {"layers": (3, 4, 23, 3)}


@register_model(DETR_ResNet50_Weights, task="person_detection")
def detr_resnet50(*, weights: DETR_ResNet50_Weights | str | None = None, progress: bool = True, **kwargs: Any) -> DETR:
    """DETR with a ResNet-50 backbone, 6 encoder and 6 decoder layers, 100 queries (COCO box AP 42.0)."""
    return build_model(DETR, DETR_ResNet50_Weights, weights, progress, kwargs, **_R50)


@register_model(DETR_ResNet101_Weights, task="person_detection")
def detr_resnet101(*, weights: DETR_ResNet101_Weights | str | None = None, progress: bool = True, **kwargs: Any) -> DETR:
    """DETR with a ResNet-101 backbone, 6 encoder and 6 decoder layers, 100 queries (COCO box AP 43.5)."""
    return build_model(DETR, DETR_ResNet101_Weights, weights, progress, kwargs, **_R101)
