"""InternVideo2: a ViT over 1x14x14 tubelets with RMSNorm, query-key norms, layer scale and an attention-pooled head.

Wang et al., "InternVideo2: Scaling Foundation Models for Multimodal Video Understanding", ECCV 2024
(https://arxiv.org/abs/2403.15377); code and checkpoints at
https://github.com/OpenGVLab/InternVideo/tree/main/InternVideo2/single_modality (``models/internvideo2.py``,
the reference these modules reproduce, run without flash-attn: its fused kernels compute the same
functions).

The encoder. Every frame is cut into 14x14 patches (a 1x14x14 strided 3D convolution, one tubelet per
frame), a learned class token is put first and a learned position table ``(1, 1 + T * H/14 * W/14, C)``
is added. Each block is pre-norm with RMSNorm (epsilon 1e-6, a scale and no bias): its attention has a
fused ``qkv`` projection without bias, RMS-normalises the queries and the keys over all heads at once
(``q_norm``, ``k_norm``), and both branches are scaled per channel by learned layer scales (``ls1``,
``ls2``) before the residual (the shared :class:`~videozoo.models.layers.TransformerBlock` with
``norm="rms"``, ``qk_norm`` and ``layer_scale``). There is no norm after the last block.

The head. An attention pooling (``clip_projector``): one query, the mean of all tokens (the class
token included), attends to the tokens; query, keys and values each have their own LayerNorm (1e-5),
projections without bias plus separate bias vectors (``q_bias``, ``k_bias``, ``v_bias``), and the
output projection maps the width to 768 (``clip_embed_dim``, the teacher's CLIP width) with 16 heads
whatever the encoder's width. ``fc_norm`` (LayerNorm) and the linear classifier follow; the embedding
(``forward_head(pre_logits=True)``) is ``fc_norm``'s output.

Clip sizes. The position table is built for ``num_frames`` x ``crop_size`` (the checkpoint's: 8 x 224).
Other clips run: any frame count, and sides that are multiples of 14. The table is then resampled as
the publisher resamples it when it loads a checkpoint into a model of another size: linearly over
time, then bicubically over each frame's grid (``align_corners=False``); the class token's entry is
kept. The publisher does this once, at loading; here it happens at the forward of a clip of another
size, so the built size stays exact.

Key layout. The files use the reference's names, which are ours
(:func:`videozoo.models.adapters.internvideo2.from_internvideo2_state_dict` unwraps them).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from videozoo.zoo import Weights, WeightsEnum, build_model, register_model
from videozoo.zoo.categories import KINETICS400_CATEGORIES, SSV2_CATEGORIES
from videozoo.models._base import VideoModel, crop_pair
from videozoo.models.adapters.internvideo2 import from_internvideo2_state_dict
from videozoo.models.layers import (
    TubeletEmbed,
    init_weights,
    linear,
    resize_pos_embed,
    split_heads,
    transformer_blocks,
)
from videozoo.models.publishers.huggingface import HF_URL
from videozoo.models.publishers.torchvision import IMAGENET_MEAN, IMAGENET_STD
from videozoo.video.transforms import VideoClassification

__all__ = [
    "InternVideo2",
    "InternVideo2_S14_Weights",
    "InternVideo2_B14_Weights",
    "InternVideo2_L14_Weights",
    "InternVideo2_1B_Weights",
    "InternVideo2_1B_F16_Weights",
    "internvideo2_s14",
    "internvideo2_b14",
    "internvideo2_l14",
    "internvideo2_1b",
    "internvideo2_1b_f16",
]


# ----------------------------------------------------------------------------------------------------
# The head


class PoolingAttention(nn.Module):
    """One query attends to the tokens: bias-free ``q``, ``k``, ``v`` projections plus the bias vectors
    ``q_bias``, ``k_bias``, ``v_bias``, and an output projection to ``out_dim``. ``(B, 1, C), (B, N, C),
    (B, N, C) -> (B, out_dim)``."""

    def __init__(self, dim: int, num_heads: int, out_dim: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by the pooling's num_heads {num_heads}.")
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.k_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, out_dim)

    def forward(self, query: Tensor, keys: Tensor, values: Tensor) -> Tensor:
        b, _, c = keys.shape
        heads = self.num_heads
        q = split_heads(linear(query, self.q.weight, self.q_bias), heads)
        k = split_heads(linear(keys, self.k.weight, self.k_bias), heads)
        v = split_heads(linear(values, self.v.weight, self.v_bias), heads)
        y = F.scaled_dot_product_attention(q, k, v).reshape(b, c)
        return linear(y, self.proj.weight, self.proj.bias)


class AttentionPooling(nn.Module):
    """The mean token, LayerNorm-ed, attends to the LayerNorm-ed tokens (separate norms for the query,
    the keys and the values): ``(B, N, C) -> (B, out_dim)``."""

    def __init__(self, dim: int, num_heads: int, out_dim: int, norm_eps: float = 1e-5) -> None:
        super().__init__()
        self.norm1_q = nn.LayerNorm(dim, eps=norm_eps)
        self.norm1_k = nn.LayerNorm(dim, eps=norm_eps)
        self.norm1_v = nn.LayerNorm(dim, eps=norm_eps)
        self.cross_attn = PoolingAttention(dim, num_heads, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        query = self.norm1_q(x.mean(1, keepdim=True))
        return self.cross_attn(query, self.norm1_k(x), self.norm1_v(x))


# ----------------------------------------------------------------------------------------------------
# The model


class InternVideo2(VideoModel):
    """The InternVideo2 single-modality classifier.

    Args:
        embed_dim: token width.
        depth: encoder blocks.
        num_heads: attention heads of the encoder.
        mlp_ratio: hidden width of the MLPs relative to ``embed_dim``.
        patch_size: height and width of a patch, in pixels.
        num_frames: frames of the built clip (the position table's time axis; one tubelet per frame).
        crop_size: frame size of the built clip, one value or (H, W).
        pool_heads: heads of the attention pooling (16 in every published size).
        pool_dim: width of the pooled embedding (the attention pooling's output: 768).
        norm_eps: epsilon of the RMSNorms.
        layer_scale: initial value of the layer scales (the publisher's ``layer_scale_init_value``).
        stochastic_depth_prob: drop-path probability of the last block, growing linearly from 0.
        dropout: before the classifier, while training (the publisher's ``fc_drop_rate``).
        num_classes: outputs of the classifier.
    """

    classifier_name = "head"
    layers_are_blocks = True
    stem_params = ("cls_token", "pos_embed", "patch_embed")
    head_params = ("clip_projector", "fc_norm", "head")
    no_decay_params = ("cls_token", "pos_embed")

    def __init__(
        self,
        embed_dim: int = 1024,
        depth: int = 24,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        patch_size: int = 14,
        num_frames: int = 8,
        crop_size: int | Sequence[int] = 224,
        pool_heads: int = 16,
        pool_dim: int = 768,
        norm_eps: float = 1e-6,
        layer_scale: float = 1e-5,
        stochastic_depth_prob: float = 0.1,
        dropout: float = 0.0,
        num_classes: int = 400,
    ) -> None:
        height, width = crop_pair(crop_size)
        if depth < 1 or num_frames < 1 or height % patch_size or width % patch_size:
            raise ValueError(
                f"InternVideo2 needs depth >= 1, num_frames >= 1 and crop_size divisible by patch_size; got "
                f"depth={depth}, num_frames={num_frames}, crop_size={crop_size!r}, patch_size={patch_size}."
            )
        super().__init__(num_classes, pool_dim, min_temporal_size=1, min_size=patch_size)
        self.num_frames = num_frames
        self.crop_size = (height, width) if height != width else height
        self.patch_size = patch_size
        self.num_layers = depth
        self.grid = [num_frames, height // patch_size, width // patch_size]

        self.patch_embed = TubeletEmbed(embed_dim, patch_size, 1)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + num_frames * self.grid[1] * self.grid[2], embed_dim))
        # Pre-norm blocks with RMSNorms, query-key norms and layer scales (the shared TransformerBlock).
        self.blocks = transformer_blocks(
            depth, embed_dim, num_heads, stochastic_depth_prob, mlp_ratio=mlp_ratio, qkv_bias="none",
            norm_eps=norm_eps, norm="rms", qk_norm=True, layer_scale=layer_scale,
        )  # fmt: skip
        self.clip_projector = AttentionPooling(embed_dim, pool_heads, pool_dim)
        self.fc_norm = nn.LayerNorm(pool_dim)
        self.head_drop = nn.Dropout(dropout)
        self.head = nn.Linear(pool_dim, num_classes)

        # The publisher's initialisation: truncated normal 0.02 for linear weights, zero biases, unit
        # norms; the class token at truncated normal 0.02. (Its position table starts as a 3D sine-cosine
        # table; here it starts as a truncated normal 0.02: every published file replaces it.)
        init_weights(self, truncated=True)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.init_classifier(self.head)

    # -- input ---------------------------------------------------------------------------------------

    def check_input_grid(self, x: Tensor) -> None:
        p = self.patch_size
        built = [self.num_frames, self.grid[1] * p, self.grid[2] * p]
        self.check_tiling(x, [1, p, p], f"1x{p}x{p} tubelets", built)

    # -- forward -------------------------------------------------------------------------------------

    def position_embedding(self, grid: list[int]) -> Tensor:
        """The ``(1, 1 + prod(grid), C)`` table for a ``(T', H', W')`` token grid: the learned table at the
        built grid, otherwise its patch entries resampled linearly over time, then bicubically over
        each frame (the publisher's resampling when it loads a checkpoint at another size)."""
        table = self.pos_embed
        if grid == self.grid:
            return table
        t, h, w = self.grid
        cls, patches = table[:, :1], table[:, 1:]
        c = patches.shape[-1]
        patches = resize_pos_embed(patches, [t, h * w], [grid[0], h * w], mode="bilinear")
        patches = resize_pos_embed(patches.reshape(grid[0], h * w, c), [h, w], grid[1:], mode="bicubic")
        return torch.cat([cls, patches.reshape(1, -1, c)], dim=1)

    def forward_features(self, x: Tensor) -> Tensor:
        """The tokens after the last block, ``(B, 1 + T' * H' * W', embed_dim)``: the class token, then the
        patches in (t, h, w) order."""
        x = self.patch_embed(x)  # (B, C, T', H', W')
        grid = [x.shape[2], x.shape[3], x.shape[4]]
        x = x.flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)
        x = x + self.position_embedding(grid).to(x.dtype)
        for block in self.blocks:
            x = block(x) if torch.jit.is_scripting() else self.checkpointed(block, x)
        return x

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.fc_norm(self.clip_projector(x))
        return x if pre_logits else self.head(self.head_drop(x))

    # -- fine-tuning ---------------------------------------------------------------------------------

    def init_classifier(self, layer: nn.Module) -> None:
        """The publisher's fine-tuning initialisation: truncated normal 0.02 scaled by ``init_scale``
        0.001 (its default), zero bias."""
        nn.init.trunc_normal_(layer.weight, std=0.02)
        with torch.no_grad():
            layer.weight.mul_(0.001)
        nn.init.zeros_(layer.bias)


# ----------------------------------------------------------------------------------------------------
# Weights
#
# Checked against the publisher (github.com/OpenGVLab/InternVideo, InternVideo2/single_modality: MODEL_ZOO.md,
# models/internvideo2.py, scripts/finetuning/full_tuning/*): the architectures (S/14 384/12/6, B/14 768/12/12,
# L/14 1024/24/16, 1B 1408/40/16 with 48/11 MLPs; attention pooling of 16 heads to 768; 1x14x14 tubelets),
# the files' paths and the top-1 figures of MODEL_ZOO.md, and the evaluation recipe of the fine-tuning
# scripts (8 frames of 224 px by sparse segment sampling, short side 224, 4 segments x 3 crops, ImageNet
# statistics). Not checked (no network): the files' wrapper key, the repositories' gating and licence tags,
# and the class order inside the files (see each member's _docs).
#
# Left out: the distilled B/14's Something-Something V2 file (MODEL_ZOO.md links the K700 file in its row;
# the SSv2 file's path could not be verified), the Kinetics-710/600/700 heads, and the 6B (no files).

_RECIPE = "https://github.com/OpenGVLab/InternVideo/blob/main/InternVideo2/single_modality/MODEL_ZOO.md"
_DISTILLED = f"{HF_URL}/OpenGVLab/InternVideo2_distillation_models"

# The publisher's test transform: short side resized to 224, crops of 224 (3 across for the published
# views, the centre one for a single view), ImageNet statistics.
_TRANSFORMS = partial(VideoClassification, crop_size=(224, 224), resize_size=(224,), mean=IMAGENET_MEAN, std=IMAGENET_STD)

_LICENSE_NOTE = (
    "Licence: the InternVideo repository's (Apache-2.0); the Hugging Face repository's own licence tag was not "
    "checked offline."
)
_OPEN_NOTE = (
    " Access: downloaded without a token (the repository is taken to be open; if the Hub answers 401 or 403, the "
    "error names the page whose terms to accept and HF_TOKEN, which is then sent)."
)
_GATED_NOTE = (
    " Access: a gated repository (as InternVideo2's 1B repositories are taken to be; not checked offline): accept "
    "its conditions once on its Hugging Face page, then set HF_TOKEN to an access token of that account; without "
    "one, loading fails at once saying so."
)


def _meta(
    url: str, dataset: str, acc1: float, num_params: int, gflops: float, file_size: float | None, docs: str, frames: int = 8
) -> Weights:
    kinetics = dataset == "Kinetics-400"
    meta = {
        "categories": list(KINETICS400_CATEGORIES if kinetics else SSV2_CATEGORIES),
        "min_size": (14, 14),
        "min_temporal_size": 1,
        "num_params": num_params,
        "recipe": _RECIPE,
        "license": "Apache-2.0",
        "_metrics": {dataset: {"acc@1": acc1}},
        "_ops": gflops,
        "_file_size": file_size,
        "_docs": docs,
        "num_frames": frames,
        # The publisher's sparse sampling: 8 (or 16) segments over the whole video, a frame from each; it averages
        # 4 such views (segment offsets) x 3 crops, videozoo's segment sampling takes one (the centres).
        "sampling": "segments",
        "sampling_rate": None,
        "frame_rate": None if kinetics else 12.0,
        "num_clips": 1,
        "num_crops": 3,
        "model_args": {"num_frames": frames, "crop_size": 224},  # the position table's grid
    }
    if not kinetics:
        meta["hflip"] = False
    return Weights(url, _TRANSFORMS, meta, from_internvideo2_state_dict)


def _distilled(size: str, file: str, dataset: str, acc1: float, num_params: int, gflops: float) -> Weights:
    path = f"stage1/{size}/{file}/pytorch_model.bin"
    if dataset == "Kinetics-400":
        how = "distilled from InternVideo2-1B on K-Mash, fine-tuned on Kinetics-710, then on Kinetics-400"
        order = "Kinetics-400's usual (alphabetical) order, the label ids of the annotation lists the publisher's data code reads"
    else:
        how = "distilled from InternVideo2-1B on K-Mash, fine-tuned on Something-Something V2"
        order = "the Something-Something V2 labels' numbering (something-something-v2-labels.json)"
    docs = (
        f"InternVideo2-{size} ({how}): OpenGVLab/InternVideo2_distillation_models, {path}. Top-1 as MODEL_ZOO.md "
        f"states it (top-5 is not published), measured with 8 frames by sparse sampling, 4 segment offsets x 3 crops "
        f"of 224 px; videozoo's segment sampling takes one offset x 3 crops. Class order: {order} "
        f"(assumed, not checked inside the file). GFLOPs: multiply-adds of one 8x224x224 "
        f"view, counted with torch.utils.flop_counter. {_LICENSE_NOTE}{_OPEN_NOTE}"
    )
    return _meta(f"{_DISTILLED}/resolve/main/{path}", dataset, acc1, num_params, gflops, None, docs)


def _one_b(
    repo: str, file: str, dataset: str, acc1: float, num_params: int, gflops: float, frames: int = 8
) -> Weights:
    how = "fine-tuned on Kinetics-710, then on Kinetics-400" if dataset == "Kinetics-400" else "fine-tuned on Something-Something V2"
    docs = (
        f"InternVideo2-1B after its first stage (masked pre-training on K-Mash), {how}: OpenGVLab/{repo}, {file}. "
        f"Top-1 as MODEL_ZOO.md states it, measured with {frames} frames by sparse sampling, 4 segment offsets x 3 "
        f"crops of 224 px; videozoo's segment sampling takes one offset x 3 crops. The network (1.0 B parameters) is "
        f"built on the meta device and filled from the file. GFLOPs: multiply-adds of one {frames}x224x224 view, counted with "
        f"torch.utils.flop_counter. {_LICENSE_NOTE}{_GATED_NOTE}"
    )
    member = _meta(f"{HF_URL}/OpenGVLab/{repo}/resolve/main/{file}", dataset, acc1, num_params, gflops, None, docs, frames)
    member.meta["gated"] = True
    return member


class InternVideo2_S14_Weights(WeightsEnum):
    KINETICS400_V1 = _distilled("S14", "S14_ft_k710_ft_k400_f8", "Kinetics-400", 85.4, 23_352_976, 83.3)
    SSV2_V1 = _distilled("S14", "S14_ft_ssv2_f8", "Something-Something-V2", 71.6, 23_179_182, 83.3)
    DEFAULT = KINETICS400_V1


class InternVideo2_B14_Weights(WeightsEnum):
    KINETICS400_V1 = _distilled("B14", "B14_ft_k710_ft_k400_f8", "Kinetics-400", 88.4, 89_748_112, 254.8)
    DEFAULT = KINETICS400_V1


class InternVideo2_L14_Weights(WeightsEnum):
    KINETICS400_V1 = _distilled("L14", "L14_ft_k710_ft_k400_f8", "Kinetics-400", 90.4, 309_238_416, 830.7)
    SSV2_V1 = _distilled("L14", "L14_ft_ssv2_f8", "Something-Something-V2", 76.4, 309_064_622, 830.7)
    DEFAULT = KINETICS400_V1


class InternVideo2_1B_Weights(WeightsEnum):
    KINETICS400_V1 = _one_b("InternVideo2-Stage1-1B-224p-f8-K400", "1B_ft_k710_ft_k400_f8.pth", "Kinetics-400", 91.3, 1_021_017_744, 2550.7)
    SSV2_V1 = _one_b("InternVideo2-Stage1-1B-224p-f8-SthSth", "1B_ft_ssv2_f8.pth", "Something-Something-V2", 77.1, 1_020_843_950, 2550.7)
    DEFAULT = KINETICS400_V1


class InternVideo2_1B_F16_Weights(WeightsEnum):
    KINETICS400_V1 = _one_b(
        "InternVideo2-Stage1-1B-224p-f8-K400", "1B_ft_k710_ft_k400_f16.pth", "Kinetics-400", 91.6, 1_023_901_328, 6045.3, 16
    )
    DEFAULT = KINETICS400_V1


# ----------------------------------------------------------------------------------------------------
# Builders

_WEIGHTS_DOC = """
    Args:
        weights: a member of :class:`{enum}`, its name, ``"DEFAULT"``, or the path of a local file in the
            published format (the publisher's ``pytorch_model.bin`` / ``.pth``); ``None`` for random
            initialisation.
        progress: show a progress bar while downloading.
        kwargs: passed to :class:`InternVideo2` (e.g. ``num_classes``, ``num_frames``, ``crop_size`` without
            weights; ``stochastic_depth_prob`` for fine-tuning).
"""


@register_model(InternVideo2_S14_Weights)
def internvideo2_s14(
    *, weights: InternVideo2_S14_Weights | str | None = None, progress: bool = True, **kwargs: Any
) -> InternVideo2:
    """InternVideo2-S/14 (distilled): width 384, 12 blocks, 6 heads, 8 frames of 224 px."""
    return build_model(InternVideo2, InternVideo2_S14_Weights, weights, progress, kwargs, embed_dim=384, depth=12, num_heads=6)


@register_model(InternVideo2_B14_Weights)
def internvideo2_b14(
    *, weights: InternVideo2_B14_Weights | str | None = None, progress: bool = True, **kwargs: Any
) -> InternVideo2:
    """InternVideo2-B/14 (distilled): width 768, 12 blocks, 12 heads, 8 frames of 224 px."""
    return build_model(InternVideo2, InternVideo2_B14_Weights, weights, progress, kwargs, embed_dim=768, depth=12, num_heads=12)


@register_model(InternVideo2_L14_Weights)
def internvideo2_l14(
    *, weights: InternVideo2_L14_Weights | str | None = None, progress: bool = True, **kwargs: Any
) -> InternVideo2:
    """InternVideo2-L/14 (distilled): width 1024, 24 blocks, 16 heads, 8 frames of 224 px."""
    return build_model(InternVideo2, InternVideo2_L14_Weights, weights, progress, kwargs, embed_dim=1024, depth=24, num_heads=16)


@register_model(InternVideo2_1B_Weights)
def internvideo2_1b(
    *, weights: InternVideo2_1B_Weights | str | None = None, progress: bool = True, **kwargs: Any
) -> InternVideo2:
    """InternVideo2-1B/14: width 1408, 40 blocks, 16 heads, MLPs 48/11 wide, 8 frames of 224 px."""
    return build_model(
        InternVideo2, InternVideo2_1B_Weights, weights, progress, kwargs, embed_dim=1408, depth=40, num_heads=16, mlp_ratio=48 / 11
    )


@register_model(InternVideo2_1B_F16_Weights)
def internvideo2_1b_f16(
    *, weights: InternVideo2_1B_F16_Weights | str | None = None, progress: bool = True, **kwargs: Any
) -> InternVideo2:
    """InternVideo2-1B/14 for 16 frames: the network of :func:`internvideo2_1b` with a position table for 16
    frames of 224 px (its 16-frame Kinetics-400 fine-tune)."""
    return build_model(
        InternVideo2, InternVideo2_1B_F16_Weights, weights, progress, kwargs, embed_dim=1408, depth=40, num_heads=16,
        mlp_ratio=48 / 11, num_frames=16,
    )  # fmt: skip


for _builder, _enum in (
    (internvideo2_1b_f16, "InternVideo2_1B_F16_Weights"),
    (internvideo2_s14, "InternVideo2_S14_Weights"),
    (internvideo2_b14, "InternVideo2_B14_Weights"),
    (internvideo2_l14, "InternVideo2_L14_Weights"),
    (internvideo2_1b, "InternVideo2_1B_Weights"),
):
    _builder.__doc__ = (_builder.__doc__ or "").rstrip() + "\n" + _WEIGHTS_DOC.format(enum=_enum)
