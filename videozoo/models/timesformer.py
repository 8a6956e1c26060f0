"""TimeSformer: divided space-time attention.

Bertasius, Wang and Torresani, "Is Space-Time Attention All You Need for Video Understanding?",
ICML 2021 (https://arxiv.org/abs/2102.05095). A ViT-B/16 over the frames of a clip: every frame is cut
into 16x16 patches (one linear embedding shared by all frames), a class token is prepended, and each of
the 12 blocks runs

1. *temporal* attention: every patch position attends over its own position in all frames (class token
   excluded), followed by an extra linear layer (``temporal_fc``) before the residual;
2. *spatial* attention: every frame attends over its patches plus a copy of the class token; the class
   token's new value is the mean of its per-frame outputs;
3. the MLP, over all tokens.

Behaviour, weights and preprocessing follow Hugging Face's port (``transformers``'
``TimesformerForVideoClassification``, the ``facebook/timesformer-*`` repositories), whose files
:func:`from_huggingface_state_dict` renames to the authors' module names used here. Tokens are kept in
the port's order: class token, then the patches position-major, frame-minor (``s * T + t``), so
:meth:`TimeSformer.forward_features` equals the port's ``last_hidden_state``.

Other clip sizes. The position embeddings are learned for the built clip: ``pos_embed`` for the class
token and the ``H' x W'`` patch grid, ``time_embed`` for the ``T`` frames. For another frame size or clip
length both are resampled by *nearest-neighbour* interpolation (``F.interpolate``'s ``"nearest"``), as
the authors' code and the port do, and the class token keeps its own entry. The port then reshapes its
tokens with the *built* frame count, which mixes positions and frames for any other clip length; here
every block uses the input's frame count, as the authors' code does (so the parity fixtures check other
lengths against the port run with its configuration set to the input's size).

Training differs from the port in one detail: stochastic depth drops a residual branch per clip, where
the port (and the authors' code) draws the temporal branch's mask per patch position and the spatial
branch's per frame.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from videozoo.zoo import Weights, WeightsEnum, build_model, register_model
from videozoo.zoo.categories import KINETICS400_CATEGORIES, SSV2_CATEGORIES
from videozoo.models._base import VideoModel
from videozoo.models.adapters.timesformer import from_huggingface_state_dict
from videozoo.models.publishers.huggingface import hf_files
from videozoo.models.publishers.pytorchvideo import PTV_MEAN, PTV_STD
from videozoo.models.layers import Mlp, SelfAttention, drop_path, drop_path_rates, init_weights, linear, resize_pos_embed
from videozoo.video.transforms import VideoClassification

__all__ = [
    "TimeSformer",
    "TimeSformer_B_Weights",
    "TimeSformer_HR_Weights",
    "timesformer_b",
    "timesformer_hr",
]


class DividedSpaceTimeBlock(nn.Module):
    """Temporal attention (+ ``temporal_fc``), spatial attention with the shared class token, MLP.

    Module names are the authors' (``temporal_norm1``, ``temporal_attn``, ``temporal_fc``, ``norm1``,
    ``attn``, ``norm2``, ``mlp``).
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, norm_eps: float, stochastic_depth_prob: float) -> None:
        super().__init__()
        self.temporal_norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.temporal_attn = SelfAttention(dim, num_heads)
        self.temporal_fc = nn.Linear(dim, dim)
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = SelfAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.stochastic_depth_prob = stochastic_depth_prob

    def forward(self, x: Tensor, num_frames: int) -> Tensor:
        """``(B, 1 + S*T, C)`` tokens (class token, then position-major, frame-minor) -> the same."""
        b, n, c = x.shape
        t = num_frames
        s = (n - 1) // t
        p = self.stochastic_depth_prob
        cls = x[:, :1]
        patches = x[:, 1:]

        # Temporal: each patch position over its T frames (a free view in this token order).
        y = self.temporal_attn(self.temporal_norm1(patches).reshape(b * s, t, c)).reshape(b, s * t, c)
        y = drop_path(y, p, self.training)
        patches = patches + linear(y, self.temporal_fc.weight, self.temporal_fc.bias)

        # Spatial: each frame over its S patches and a copy of the class token.
        frames = torch.cat([cls.unsqueeze(1).expand([b, t, 1, c]), patches.view(b, s, t, c).transpose(1, 2)], dim=2)
        y = self.attn(self.norm1(frames.reshape(b * t, 1 + s, c))).view(b, t, 1 + s, c)
        y = drop_path(y, p, self.training)
        cls = cls + y[:, :, 0].mean(dim=1, keepdim=True)  # the class token: mean over the frames
        patches = patches + y[:, :, 1:].transpose(1, 2).reshape(b, s * t, c)

        x = torch.cat([cls, patches], dim=1)
        return x + drop_path(self.mlp(self.norm2(x)), p, self.training)


class TimeSformer(VideoModel):
    """TimeSformer with divided space-time attention and a linear classifier on the class token.

    Any clip of at least one frame of ``patch_size`` pixels works: pixels beyond whole patches are
    ignored (as by the publisher's strided convolution), and the position embeddings are resampled
    (nearest neighbour) to other grids. Stochastic depth grows linearly from 0 in the first block to
    ``stochastic_depth_prob`` in the last.

    Args:
        num_frames: frames of the clip the time embeddings are built for (8 for TimeSformer, 16 for -HR).
        crop_size: (H, W) of its frames, or one int for square frames (224, or 448 for -HR).
        patch_size: side of the square patches.
        embed_dim: token width.
        depth: number of blocks.
        num_heads: attention heads.
        mlp_ratio: hidden width of the MLPs, relative to ``embed_dim``.
        norm_eps: epsilon of every LayerNorm (1e-6 in the checkpoints).
        stochastic_depth_prob: drop-path probability of the last block.
        num_classes: outputs of the classifier.
    """

    classifier_name = "head"
    layers_are_blocks = True
    stem_params = ("patch_embed", "cls_token", "pos_embed", "time_embed")
    head_params = ("norm", "head")
    no_decay_params = ("cls_token", "pos_embed", "time_embed")  # position embeddings and the class token

    def __init__(
        self, num_frames: int = 8, crop_size: int | tuple[int, int] = 224, patch_size: int = 16,
        embed_dim: int = 768, depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0, norm_eps: float = 1e-6,
        stochastic_depth_prob: float = 0.0, num_classes: int = 400,
    ) -> None:
        height, width = (crop_size, crop_size) if isinstance(crop_size, int) else tuple(crop_size)
        if num_frames < 1 or height < patch_size or width < patch_size:
            raise ValueError(
                f"TimeSformer needs num_frames >= 1 and crop_size of at least one {patch_size}x{patch_size} patch; "
                f"got num_frames={num_frames}, crop_size={(height, width)}."
            )
        super().__init__(num_classes, embed_dim, min_temporal_size=1, min_size=patch_size)
        self.num_frames = num_frames
        self.crop_size = (height, width)
        self.patch_size = patch_size
        self.grid = [height // patch_size, width // patch_size]  # the built patch grid
        self.num_layers = depth

        self.patch_embed = nn.Conv2d(3, embed_dim, patch_size, patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid[0] * self.grid[1], embed_dim))
        self.time_embed = nn.Parameter(torch.zeros(1, num_frames, embed_dim))
        self.blocks = nn.ModuleList(
            DividedSpaceTimeBlock(embed_dim, num_heads, mlp_ratio, norm_eps, p)
            for p in drop_path_rates(stochastic_depth_prob, depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        self.head = nn.Linear(embed_dim, num_classes)

        # The authors' initialisation: truncated normal (std 0.02) for the linear layers, the position
        # embeddings and the class token; zero time embeddings; temporal_fc zero in every block but the
        # first, so that each later block starts as a spatial-only one.
        init_weights(self, (nn.Linear, nn.Conv2d), truncated=True)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for i, block in enumerate(self.blocks):
            if i > 0:
                nn.init.zeros_(block.temporal_fc.weight)
                nn.init.zeros_(block.temporal_fc.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        """The normalised tokens ``(B, 1 + H'*W'*T, C)``: the class token, then the patches
        position-major, frame-minor (the port's ``last_hidden_state``)."""
        b, _, t, height, width = x.shape
        p = self.patch_size
        h, w = height // p, width // p
        c = self.cls_token.shape[-1]
        frames = x[:, :, :, : h * p, : w * p].transpose(1, 2).reshape(b * t, 3, h * p, w * p)
        patches = self.patch_embed(frames).reshape(b, t, c, h * w)  # (B, T, C, S)
        pos = resize_pos_embed(self.pos_embed[:, 1:], self.grid, [h, w], mode="nearest")  # (1, S, C)
        time = resize_pos_embed(self.time_embed, [self.num_frames], [t], mode="nearest")  # (1, T, C)
        patches = patches.permute(0, 3, 1, 2) + pos.unsqueeze(2) + time.unsqueeze(1)  # (B, S, T, C)
        cls = (self.cls_token + self.pos_embed[:, :1]).expand([b, 1, c])
        x = torch.cat([cls, patches.reshape(b, h * w * t, c)], dim=1)
        for block in self.blocks:
            x = block(x, t) if torch.jit.is_scripting() else self.checkpointed(block, x, t)
        return self.norm(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = x[:, 0]  # the class token
        return x if pre_logits else self.head(x)

    def init_classifier(self, layer: nn.Module) -> None:
        nn.init.trunc_normal_(layer.weight, std=0.02)
        nn.init.zeros_(layer.bias)


# ----------------------------------------------------------------------------------------------------
# Weights

_CONFIGS = "https://github.com/facebookresearch/TimeSformer/blob/main/configs"


def _weights(
    repo: str,
    clip: tuple[int, int],
    figures: tuple[int, float, float, float, float],
    config: str,
    docs: str,
    dataset: str = "Kinetics-400",
    categories: tuple[str, ...] = KINETICS400_CATEGORIES,
    **recipe: Any,
) -> Weights:
    """The Hugging Face port ``facebook/<repo>`` of one of the authors' checkpoints, evaluated on 1 clip x
    3 crops at 30 fps.

    Args:
        repo: the repository's name.
        clip: (frames, crop size) the network is built for.
        figures: (parameters, top-1, top-5, GFLOPs, file size in MB), as published.
        config: the authors' configuration file, under ``configs/``.
        docs: how the accuracy was measured.
        dataset, categories: what the classifier was fine-tuned on.
        recipe: more meta: the clip sampling (``sampling_rate``, ``sampling``, ``hflip``).
    """
    (num_frames, crop_size), (num_params, acc1, acc5, gflops, file_size) = clip, figures
    meta = {
        "categories": list(categories),
        "min_size": (16, 16),
        "min_temporal_size": 1,
        "num_params": num_params,
        "recipe": f"{_CONFIGS}/{config}",
        "_metrics": {dataset: {"acc@1": acc1, "acc@5": acc5}},
        "_ops": gflops,
        "_file_size": file_size,
        "_docs": docs,
        "num_frames": num_frames,
        "frame_rate": 30.0,
        "num_clips": 1,
        "num_crops": 3,
        "license": "CC-BY-NC-4.0",  # the repositories' model cards (and the authors' code and models)
        "model_args": {"num_frames": num_frames, "crop_size": crop_size},  # the position tables' sizes
        **recipe,
    }
    # The repositories' VideoMAEImageProcessor: short side to the crop size (bilinear), centre crop, /255,
    # mean 0.45 / std 0.225 (PySlowFast's Kinetics statistics, which the authors trained with).
    transforms = partial(
        VideoClassification, crop_size=(crop_size, crop_size), resize_size=(crop_size,), mean=PTV_MEAN, std=PTV_STD
    )
    adapter = from_huggingface_state_dict
    return Weights(**hf_files(f"facebook/{repo}"), transforms=transforms, meta=meta, state_dict_adapter=adapter)


class TimeSformer_B_Weights(WeightsEnum):
    KINETICS400_V1 = _weights(
        "timesformer-base-finetuned-k400", (8, 224), (121566352, 77.9, 93.2, 195.78, 486.0),
        "Kinetics/TimeSformer_divST_8x32_224.yaml",
        "The authors' TimeSformer (divided space-time attention) K400 checkpoint, as ported to Hugging Face "
        "(facebook/timesformer-base-finetuned-k400). Accuracy from the authors' model zoo for this file "
        "(the paper reports 78.0/93.7 for its own run): 1 clip of 8 frames 32 apart at 30 fps x 3 crops "
        "of 224 after a 224 short-side resize.",
        sampling_rate=32,
    )
    SSV2_V1 = _weights(
        "timesformer-base-finetuned-ssv2", (8, 224), (121392558, 59.1, 85.6, 195.78, 486.0),
        "SSv2/TimeSformer_divST_8_224.yaml",
        "The authors' TimeSformer Something-Something V2 checkpoint, as ported to Hugging Face "
        "(facebook/timesformer-base-finetuned-ssv2; the port's configuration keeps 8 frames). Accuracy "
        "from the authors' model zoo for this file (the paper reports 59.5 top-1): 8 frames, one from "
        "each of 8 equal segments, 1 clip x 3 crops of 224.",
        "Something-Something-V2",
        SSV2_CATEGORIES,
        sampling_rate=None,
        sampling="segments",
        hflip=False,
    )
    DEFAULT = KINETICS400_V1


class TimeSformer_HR_Weights(WeightsEnum):
    KINETICS400_V1 = DEFAULT = _weights(
        "timesformer-hr-finetuned-k400", (16, 448), (122024080, 79.6, 94.0, 1702.68, 488.0),
        "Kinetics/TimeSformer_divST_16x16_448.yaml",
        "The authors' TimeSformer-HR K400 checkpoint, as ported to Hugging Face "
        "(facebook/timesformer-hr-finetuned-k400). Accuracy from the authors' model zoo for this file "
        "(the paper reports 79.7/94.4): 1 clip of 16 frames 16 apart at 30 fps x 3 crops of 448 after a "
        "448 short-side resize.",
        sampling_rate=16,
    )


# ----------------------------------------------------------------------------------------------------
# Builders


@register_model(TimeSformer_B_Weights)
def timesformer_b(
    *, weights: TimeSformer_B_Weights | str | None = None, progress: bool = True, **kwargs: Any
) -> TimeSformer:
    """TimeSformer (ViT-B/16, divided space-time attention) for 8x224x224 clips (121 M parameters).

    Args:
        weights: a member of :class:`TimeSformer_B_Weights` (Kinetics-400, Something-Something V2), its
            name, ``"DEFAULT"``, or the path of a local file in Hugging Face's format; ``None`` for random
            initialisation.
        progress: show a progress bar while downloading.
        kwargs: passed to :class:`TimeSformer`; ``num_frames`` and ``crop_size`` are fixed by weights.
    """
    return build_model(TimeSformer, TimeSformer_B_Weights, weights, progress, kwargs, num_frames=8, crop_size=224)


@register_model(TimeSformer_HR_Weights)
def timesformer_hr(
    *, weights: TimeSformer_HR_Weights | str | None = None, progress: bool = True, **kwargs: Any
) -> TimeSformer:
    """TimeSformer-HR: :func:`timesformer_b`'s network for 16x448x448 clips (122 M parameters).

    Args: as :func:`timesformer_b`, with :class:`TimeSformer_HR_Weights`.
    """
    return build_model(TimeSformer, TimeSformer_HR_Weights, weights, progress, kwargs, num_frames=16, crop_size=448)
