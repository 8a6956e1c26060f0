"""VideoMAE: a plain ViT over space-time tubelets, fine-tuned from masked-autoencoder pre-training.

Tong et al., "VideoMAE: Masked Autoencoders are Data-Efficient Learners for Self-Supervised Video
Pre-Training", NeurIPS 2022 (https://arxiv.org/abs/2203.12602). The classifier is the pre-trained
encoder: a clip is cut into 2x16x16 tubelets (a strided 3D convolution), a fixed sine-cosine position
table is added, ViT blocks attend over all the tokens jointly, and the head averages the tokens,
normalises the mean (``fc_norm``) and classifies it. There is no class token.

The published fine-tunes are the Hugging Face ports of the authors' checkpoints
(``MCG-NJU/videomae-*-finetuned-*``, ``transformers.VideoMAEForVideoClassification``). Their key
layout differs from ours (:func:`from_huggingface_state_dict`): separate ``query``/``key``/``value``
projections, which are fused here into one ``qkv`` weight, and the attention's bias as two vectors,
``q_bias`` and ``v_bias`` (keys have none: the fused bias is ``cat(q_bias, 0, v_bias)``, as in BEiT).
Numerics follow the port: block LayerNorms at epsilon 1e-12 (its ``layer_norm_eps``), ``fc_norm`` at
PyTorch's default 1e-5 (the authors trained all norms at 1e-6; the difference is far below the
checkpoints' precision).

Position table and clip size. The table is the 1D sinusoid of the token's flat index
(``sin``/``cos`` of ``n / 10000^(2i/C)``, computed in float64 as the reference does) over the
``T/2 x H/16 x W/16`` grid of the built clip (``num_frames`` x ``crop_size``); it is a buffer, not in
the state dict, and is added as is at the built size. Any other clip whose frames divide by the
tubelet and whose sides divide by the patch also runs: the table, seen as a ``(T', H', W')`` grid, is
resampled trilinearly (``resize_pos_embed``, ``align_corners=False``) to the input's token grid.
The reference accepts only the built size; results at other sizes are this library's extension.

Layer-wise learning-rate decay (``references/``) reads :attr:`VideoMAE.num_layers` and
:meth:`VideoMAE.layer_index`: 0 for the patch embedding, ``i + 1`` for block ``i``, ``num_layers + 1``
for ``fc_norm`` and the head, as the authors' fine-tuning assigns them.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from videozoo.zoo import Weights, WeightsEnum, build_model, register_model
from videozoo.zoo.categories import KINETICS400_CATEGORIES, KINETICS710_CATEGORIES, SSV2_CATEGORIES
from videozoo.models._base import VideoModel, crop_pair
from videozoo.models.adapters.videomae import (
    from_huggingface_state_dict,
    from_videomae_v2_state_dict,
    kinetics400_from_videomae_v2_k710,
)
from videozoo.models.publishers.huggingface import hf_files
from videozoo.models.publishers.torchvision import IMAGENET_MEAN, IMAGENET_STD
from videozoo.models.layers import TubeletEmbed, init_weights, resize_pos_embed, sinusoid_table, transformer_blocks
from videozoo.video.transforms import VideoClassification

__all__ = [
    "VideoMAE",
    "VideoMAE_S_Weights",
    "VideoMAE_B_Weights",
    "VideoMAE_L_Weights",
    "VideoMAE_H_Weights",
    "VideoMAE_V2_S_Weights",
    "VideoMAE_V2_B_Weights",
    "videomae_s",
    "videomae_b",
    "videomae_l",
    "videomae_h",
    "videomae_v2_s",
    "videomae_v2_b",
]


class VideoMAE(VideoModel):
    """The VideoMAE classifier: tubelet embedding, fixed position table, ViT blocks, mean-pooled head.

    Args:
        embed_dim: token width.
        depth: number of transformer blocks.
        num_heads: attention heads per block.
        mlp_ratio: hidden width of the MLPs, relative to ``embed_dim``.
        patch_size: height and width of a tubelet, in pixels.
        tubelet_size: frames per tubelet.
        num_frames: frames of the built clip (the position table's grid).
        crop_size: frame size of the built clip, one value or (H, W).
        norm_eps: epsilon of the blocks' LayerNorms.
        fc_norm_eps: epsilon of the LayerNorm after pooling.
        stochastic_depth_prob: drop-path probability of the last block, growing linearly from 0 in the
            first (VideoMAE's fine-tuning default: 0.1).
        dropout: before the classifier, while training (the authors' ``fc_drop_rate``).
        num_classes: outputs of the classifier.
    """

    classifier_name = "head"
    layers_are_blocks = True
    stem_params = ("patch_embed", "pos_embed")
    head_params = ("fc_norm", "head")

    def __init__(
        self, embed_dim: int = 768, depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0,
        patch_size: int = 16, tubelet_size: int = 2, num_frames: int = 16, crop_size: int | Sequence[int] = 224,
        norm_eps: float = 1e-12, fc_norm_eps: float = 1e-5, stochastic_depth_prob: float = 0.1,
        dropout: float = 0.0, num_classes: int = 400,
    ) -> None:
        height, width = crop_pair(crop_size)
        if depth < 1 or num_frames % tubelet_size or height % patch_size or width % patch_size:
            raise ValueError(
                f"VideoMAE needs depth >= 1, num_frames divisible by tubelet_size and crop_size by patch_size; got "
                f"depth={depth}, num_frames={num_frames}, tubelet_size={tubelet_size}, crop_size={crop_size!r}, "
                f"patch_size={patch_size}."
            )
        super().__init__(num_classes, embed_dim, min_temporal_size=tubelet_size, min_size=patch_size)
        self.num_frames = num_frames
        self.crop_size = (height, width) if height != width else height
        self.patch_size = patch_size
        self.tubelet_size = tubelet_size
        self.num_layers = depth
        self.grid = [num_frames // tubelet_size, height // patch_size, width // patch_size]

        self.patch_embed = TubeletEmbed(embed_dim, patch_size, tubelet_size)
        grid = self.grid
        table = sinusoid_table(grid[0] * grid[1] * grid[2], embed_dim)
        self.register_buffer("pos_embed", table, persistent=False)
        self.blocks = transformer_blocks(
            depth, embed_dim, num_heads, stochastic_depth_prob, mlp_ratio=mlp_ratio, qkv_bias="qv", norm_eps=norm_eps
        )
        self.fc_norm = nn.LayerNorm(embed_dim, eps=fc_norm_eps)
        self.head_drop = nn.Dropout(dropout)
        self.head = nn.Linear(embed_dim, num_classes)

        init_weights(self)  # the authors' trunc_normal_(std=0.02) for every Linear (see init_weights)
        self.init_classifier(self.head)

    # -- input ---------------------------------------------------------------------------------------

    def check_input_grid(self, x: Tensor) -> None:
        t, p = self.tubelet_size, self.patch_size
        built = [self.num_frames, self.grid[1] * p, self.grid[2] * p]
        self.check_tiling(x, [t, p, p], f"{t}x{p}x{p} tubelets", built)

    # -- forward -------------------------------------------------------------------------------------

    def position_embedding(self, grid: list[int]) -> Tensor:
        """The ``(prod(grid), C)`` position table for a ``(T', H', W')`` token grid: the built table
        itself at the built grid, otherwise resampled trilinearly over the grid."""
        return resize_pos_embed(self.pos_embed, self.grid, grid)

    def forward_features(self, x: Tensor) -> Tensor:
        """The tokens after the last block, ``(B, T' * H' * W', embed_dim)`` in (t, h, w) order."""
        x = self.patch_embed(x)  # (B, C, T', H', W')
        grid = [x.shape[2], x.shape[3], x.shape[4]]
        x = x.flatten(2).transpose(1, 2)
        x = x + self.position_embedding(grid).to(x.dtype)
        for block in self.blocks:
            x = block(x) if torch.jit.is_scripting() else self.checkpointed(block, x)
        return x

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.fc_norm(x.mean(1))
        return x if pre_logits else self.head(self.head_drop(x))

    # -- fine-tuning ---------------------------------------------------------------------------------

    def init_classifier(self, layer: nn.Module) -> None:
        """The authors' fine-tuning initialisation: trunc_normal_(std=0.02) scaled by ``init_scale``
        0.001 (their default), zero bias."""
        nn.init.normal_(layer.weight, std=0.02 * 0.001)
        nn.init.zeros_(layer.bias)

    # no_weight_decay() is empty: the position table is a fixed buffer, and there is no class token.


# ----------------------------------------------------------------------------------------------------
# Weights

_RECIPE = "https://github.com/MCG-NJU/VideoMAE/blob/main/MODEL_ZOO.md"

# The authors' test transform (their datasets' Resize(short_side_size=224, bilinear), CenterCrop(224) for
# the centre view, ImageNet statistics; VideoMAEImageProcessor's shortest_edge 224 and centre crop 224).
_TRANSFORMS = partial(VideoClassification, crop_size=(224, 224), resize_size=(224,), mean=IMAGENET_MEAN, std=IMAGENET_STD)


def _hf_weights(repo: str, meta: dict[str, Any]) -> Weights:
    adapter = from_huggingface_state_dict
    return Weights(**hf_files(f"MCG-NJU/{repo}"), transforms=_TRANSFORMS, meta=meta, state_dict_adapter=adapter)


def _kinetics(size: str, num_params: int, acc1: float, acc5: float, gflops: float) -> Weights:
    return _hf_weights(
        f"videomae-{size}-finetuned-kinetics",
        {
            "categories": list(KINETICS400_CATEGORIES),
            "min_size": (16, 16),
            "min_temporal_size": 2,
            "num_params": num_params,
            "recipe": _RECIPE,
            "license": "CC-BY-NC-4.0",
            "_metrics": {"Kinetics-400": {"acc@1": acc1, "acc@5": acc5}},
            "_ops": gflops,
            "_file_size": round(num_params * 4 / 1e6, 1),  # float32 tensors
            "_docs": (
                f"The authors' ViT-{size[0].upper()} checkpoint (pre-trained 1600 epochs on Kinetics-400, fine-tuned), "
                f"ported to Hugging Face as MCG-NJU/videomae-{size}-finetuned-kinetics. Accuracy as published in "
                f"the VideoMAE model zoo: 16 frames every 4, 5 clips x 3 crops of 224 px (short side 224)."
            ),
            "num_frames": 16,
            "sampling_rate": 4,
            "frame_rate": 30.0,
            "num_clips": 5,
            "num_crops": 3,
            "model_args": {"num_frames": 16, "crop_size": 224},  # the position table's grid
        },
    )


def _ssv2(kinetics: Weights, size: str, num_params: int, acc1: float, acc5: float, epochs: int) -> Weights:
    return _hf_weights(
        f"videomae-{size}-finetuned-ssv2",
        {
            **kinetics.meta,
            "categories": list(SSV2_CATEGORIES),
            "num_params": num_params,
            "_metrics": {"Something-Something-V2": {"acc@1": acc1, "acc@5": acc5}},
            "_file_size": round(num_params * 4 / 1e6, 1),
            "_docs": (
                f"The authors' ViT-{size[0].upper()} checkpoint (pre-trained {epochs} epochs on Something-Something V2, "
                f"fine-tuned), ported to Hugging Face as MCG-NJU/videomae-{size}-finetuned-ssv2. Accuracy as published "
                f"in the VideoMAE model zoo: 16 frames by segments (TSN-style) over the whole video, 2 temporal views "
                f"x 3 crops; videozoo's segment sampling takes one view (the segments' centres) x 3 crops."
            ),
            # Segment sampling over the video's frames (the authors decode the 12 fps WebM files as they
            # are: 12.0 is their native rate); no horizontal flip in training (the classes tell left from
            # right). The published 2 temporal views do not fit a one-view segment recipe.
            "sampling": "segments",
            "sampling_rate": None,
            "frame_rate": 12.0,
            "num_clips": 1,
            "num_crops": 3,
            "hflip": False,
        },
    )


class VideoMAE_S_Weights(WeightsEnum):
    KINETICS400_V1 = _kinetics("small", 22_033_936, 79.0, 93.8, 57.0)
    SSV2_V1 = _ssv2(KINETICS400_V1, "small", 21_946_926, 66.8, 90.3, 2400)
    DEFAULT = KINETICS400_V1


class VideoMAE_B_Weights(WeightsEnum):
    KINETICS400_V1 = _kinetics("base", 86_534_800, 81.5, 95.1, 180.0)
    SSV2_V1 = _ssv2(KINETICS400_V1, "base", 86_361_006, 70.8, 92.4, 2400)
    DEFAULT = KINETICS400_V1


class VideoMAE_L_Weights(WeightsEnum):
    KINETICS400_V1 = _kinetics("large", 304_270_736, 85.2, 96.8, 597.0)
    DEFAULT = KINETICS400_V1


class VideoMAE_H_Weights(WeightsEnum):
    KINETICS400_V1 = _kinetics("huge", 632_119_440, 86.6, 97.1, 1192.0)
    DEFAULT = KINETICS400_V1


# VideoMAE V2 (Wang et al., "VideoMAE V2: Scaling Video Masked Autoencoders with Dual Masking", CVPR 2023,
# https://arxiv.org/abs/2303.16727). Its ViT-S and ViT-B were distilled on Kinetics-710 from the fine-tuned
# ViT-giant; these are VideoMAE's network (the authors' models/modeling_finetune.py: the same layout and key
# names as ours, mean pooling, q/v biases, no layer scale) with the authors' LayerNorm epsilon, 1e-6, in the
# blocks and in fc_norm. Checked against github.com/OpenGVLab/VideoMAEv2 (docs/MODEL_ZOO.md, models/,
# scripts/finetune/vit_b_k710_ft.sh, misc/): the files' URLs, the top-1 figures of the distillation table, the
# Kinetics-710 class list and its Kinetics-400 rows, the evaluation recipe (16 frames every 4, 5 clips x 3
# crops, short side 224, ImageNet statistics) and the repository's licence (MIT). Not checked (no network):
# the files' wrapper key and the Hugging Face repository's licence tag and access conditions. The giant
# model's files (and the "fine-tuning accuracy" rows of the distilled models) sit behind a request form or
# are not published: they are not in the zoo.

_V2_RECIPE = "https://github.com/OpenGVLab/VideoMAEv2/blob/master/docs/MODEL_ZOO.md"
_V2_HF = "https://huggingface.co/OpenGVLab/VideoMAE2/resolve/main/distill"


def _videomae_v2(size: str, num_classes: int, num_params: int, acc1: float, dataset: str, gflops: float) -> Weights:
    k400 = dataset == "Kinetics-400"
    file = f"vit_{size[0]}_k710_dl_from_giant.pth"
    what = (
        "the Kinetics-710 classifier cut to its Kinetics-400 rows (misc/label_710to400.json, in Kinetics-400's "
        "order): the scores the authors' Kinetics-400 figure of this file is measured on"
        if k400
        else "the Kinetics-710 classifier as published (710 classes: Kinetics-400, -600 and -700 merged, in "
        "the order of the authors' misc/label_map_k710.txt)"
    )
    meta = {
        "categories": list(KINETICS400_CATEGORIES if k400 else KINETICS710_CATEGORIES),
        "min_size": (16, 16),
        "min_temporal_size": 2,
        "num_params": num_params,
        "recipe": _V2_RECIPE,
        "license": "MIT",
        "_metrics": {dataset: {"acc@1": acc1}},
        "_ops": gflops,
        "_file_size": None,  # not stated by the publisher
        "_docs": (
            f"VideoMAE V2's ViT-{size[0].upper()}/16 distilled on Kinetics-710 from its fine-tuned ViT-giant "
            f"(OpenGVLab/VideoMAE2 on Hugging Face, distill/{file}), {what}. Top-1 as the VideoMAE V2 model zoo "
            f"states it for this file (top-5 is not published): 16 frames every 4, 5 clips x 3 crops of 224 px. "
            f"The model zoo's higher 'fine-tuning accuracy' belongs to further fine-tuned weights it does not "
            f"publish. GFLOPs: multiply-adds of one 16x224x224 view, counted with torch.utils.flop_counter. Licence: "
            f"the VideoMAE V2 repository's (MIT); the Hugging Face repository's own tag and access conditions were "
            f"not checked offline (the model zoo calls these files directly downloadable). The ViT-giant's files sit "
            f"behind the authors' request form and are not in the zoo."
        ),
        "num_frames": 16,
        "sampling_rate": 4,
        "frame_rate": 30.0,
        "num_clips": 5,
        "num_crops": 3,
        "model_args": {"num_frames": 16, "crop_size": 224},  # the position table's grid
    }
    # Both members read the same file (one download, one name in the cache); their adapters differ. A copy of
    # the file passed as weights=PATH loads as the first member, Kinetics-400; load_weights(model,
    # VideoMAE_V2_*_Weights.KINETICS710_DISTILLED, PATH) reads it with its 710 classes.
    adapter = kinetics400_from_videomae_v2_k710 if k400 else from_videomae_v2_state_dict
    return Weights(f"{_V2_HF}/{file}", _TRANSFORMS, meta, adapter)


class VideoMAE_V2_S_Weights(WeightsEnum):
    KINETICS400_DISTILLED = _videomae_v2("small", 400, 22_033_936, 83.7, "Kinetics-400", 56.9)
    KINETICS710_DISTILLED = _videomae_v2("small", 710, 22_153_286, 77.6, "Kinetics-710", 56.9)
    DEFAULT = KINETICS400_DISTILLED


class VideoMAE_V2_B_Weights(WeightsEnum):
    KINETICS400_DISTILLED = _videomae_v2("base", 400, 86_534_800, 86.6, "Kinetics-400", 180.3)
    KINETICS710_DISTILLED = _videomae_v2("base", 710, 86_773_190, 81.5, "Kinetics-710", 180.3)
    DEFAULT = KINETICS400_DISTILLED


# ----------------------------------------------------------------------------------------------------
# Builders

_WEIGHTS_DOC = """
    Args:
        weights: a member of :class:`{enum}`, its name, ``"DEFAULT"``, or the path of a local file in the
            published format (Hugging Face's ``model.safetensors`` / ``pytorch_model.bin``); ``None`` for
            random initialisation.
        progress: show a progress bar while downloading.
        kwargs: passed to :class:`VideoMAE` (e.g. ``num_classes``, ``num_frames``, ``crop_size`` without
            weights; ``stochastic_depth_prob`` for fine-tuning).
"""


@register_model(VideoMAE_S_Weights)
def videomae_s(*, weights: VideoMAE_S_Weights | str | None = None, progress: bool = True, **kwargs: Any) -> VideoMAE:
    """VideoMAE ViT-S/16: width 384, 12 blocks, 6 heads (22 M parameters), 16 frames of 224 px.

    6 heads as in the authors' ``vit_small_patch16_224``, which trained these weights (Hugging Face's
    conversion script configures the small models with 16).
    """
    return build_model(VideoMAE, VideoMAE_S_Weights, weights, progress, kwargs, embed_dim=384, depth=12, num_heads=6)


@register_model(VideoMAE_B_Weights)
def videomae_b(*, weights: VideoMAE_B_Weights | str | None = None, progress: bool = True, **kwargs: Any) -> VideoMAE:
    """VideoMAE ViT-B/16: width 768, 12 blocks, 12 heads (87 M parameters), 16 frames of 224 px."""
    return build_model(VideoMAE, VideoMAE_B_Weights, weights, progress, kwargs, embed_dim=768, depth=12, num_heads=12)


@register_model(VideoMAE_L_Weights)
def videomae_l(*, weights: VideoMAE_L_Weights | str | None = None, progress: bool = True, **kwargs: Any) -> VideoMAE:
    """VideoMAE ViT-L/16: width 1024, 24 blocks, 16 heads (304 M parameters), 16 frames of 224 px."""
    return build_model(VideoMAE, VideoMAE_L_Weights, weights, progress, kwargs, embed_dim=1024, depth=24, num_heads=16)


@register_model(VideoMAE_H_Weights)
def videomae_h(*, weights: VideoMAE_H_Weights | str | None = None, progress: bool = True, **kwargs: Any) -> VideoMAE:
    """VideoMAE ViT-H/16: width 1280, 32 blocks, 16 heads (632 M parameters), 16 frames of 224 px."""
    return build_model(VideoMAE, VideoMAE_H_Weights, weights, progress, kwargs, embed_dim=1280, depth=32, num_heads=16)


_V2 = {"norm_eps": 1e-6, "fc_norm_eps": 1e-6}  # the authors' LayerNorms


@register_model(VideoMAE_V2_S_Weights)
def videomae_v2_s(
    *, weights: VideoMAE_V2_S_Weights | str | None = None, progress: bool = True, **kwargs: Any
) -> VideoMAE:
    """VideoMAE V2 ViT-S/16 (distilled): VideoMAE's ViT-S (width 384, 12 blocks, 6 heads, 22 M parameters),
    LayerNorms at 1e-6, 16 frames of 224 px."""
    return build_model(VideoMAE, VideoMAE_V2_S_Weights, weights, progress, kwargs, embed_dim=384, depth=12, num_heads=6, **_V2)


@register_model(VideoMAE_V2_B_Weights)
def videomae_v2_b(
    *, weights: VideoMAE_V2_B_Weights | str | None = None, progress: bool = True, **kwargs: Any
) -> VideoMAE:
    """VideoMAE V2 ViT-B/16 (distilled): VideoMAE's ViT-B (width 768, 12 blocks, 12 heads, 87 M parameters),
    LayerNorms at 1e-6, 16 frames of 224 px."""
    return build_model(VideoMAE, VideoMAE_V2_B_Weights, weights, progress, kwargs, embed_dim=768, depth=12, num_heads=12, **_V2)


for _builder, _enum in (
    (videomae_v2_s, "VideoMAE_V2_S_Weights"),
    (videomae_v2_b, "VideoMAE_V2_B_Weights"),
    (videomae_s, "VideoMAE_S_Weights"),
    (videomae_b, "VideoMAE_B_Weights"),
    (videomae_l, "VideoMAE_L_Weights"),
    (videomae_h, "VideoMAE_H_Weights"),
):
    _builder.__doc__ = (_builder.__doc__ or "").rstrip() + "\n" + _WEIGHTS_DOC.format(enum=_enum)
