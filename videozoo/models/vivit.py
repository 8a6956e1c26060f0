"""ViViT-B/16x2: the unfactorised ("spatio-temporal attention") Video Vision Transformer.

Arnab et al., "ViViT: A Video Vision Transformer", ICCV 2021 (https://arxiv.org/abs/2103.15691). The
published Kinetics-400 ViViT-B/16x2 checkpoint (``google/vivit-b-16x2-kinetics400``, converted by
Hugging Face from Scenic's ``vivit_base_16x2_unfactorized``) is the paper's *Model 1*, not the
factorised encoder: a clip is cut into 2x16x16 tubelets (a strided 3D convolution), a class token is
prepended, learned position embeddings are added (one per tubelet and one for the class token), and one
ViT-B over *all* tokens follows: 12 pre-norm blocks of global self-attention over every tubelet of the
clip (3136 + 1 tokens for 32x224x224), then a LayerNorm and a linear classifier on the class token.
The MLPs use the tanh approximation of GELU (the port's ``"gelu_fast"``), the LayerNorms epsilon 1e-6.

Behaviour follows Hugging Face's ``VivitForVideoClassification``; :func:`from_huggingface_state_dict`
renames its keys to ours and fuses its separate query/key/value projections into one ``qkv``.

Other clip sizes. The port accepts only its built clip (its ``interpolate_pos_encoding`` treats the
3136 tubelet positions as a square 56x56 image grid, so it cannot serve other lengths). Here the tubelet
position embeddings are laid out on their ``(T/2, H/16, W/16)`` grid and resampled *trilinearly*
(``align_corners=False``) to the input's grid, the class token's entry kept; at the built size they are
used as they are. Frames and pixels beyond whole tubelets are ignored, as by the port's convolution.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from videozoo.zoo import Weights, WeightsEnum, build_model, register_model
from videozoo.zoo.categories import KINETICS400_CATEGORIES
from videozoo.models._base import VideoModel
from videozoo.models.adapters.vivit import from_huggingface_state_dict
from videozoo.models.publishers.huggingface import hf_files
from videozoo.models.layers import init_weights, linear, resize_pos_embed, transformer_blocks
from videozoo.video.transforms import VideoClassification

__all__ = ["ViViT", "ViViT_B_16x2_Weights", "vivit_b_16x2"]


class ViViT(VideoModel):
    """Unfactorised ViViT: tubelet embedding, class token, learned position embeddings, a ViT encoder
    over all tokens, a linear classifier on the class token.

    Stochastic depth grows linearly from 0 in the first block to ``stochastic_depth_prob`` in the last.

    Args:
        num_frames: frames of the clip the position embeddings are built for (32).
        crop_size: (H, W) of its frames, or one int for square frames (224).
        tubelet_size: (T, H, W) of the tubelets.
        embed_dim: token width.
        depth: number of blocks.
        num_heads: attention heads.
        mlp_ratio: hidden width of the MLPs, relative to ``embed_dim``.
        norm_eps: epsilon of every LayerNorm (1e-6 in the checkpoint).
        approximate: the MLPs' GELU: ``"tanh"`` (the checkpoint's ``gelu_fast``) or ``"none"`` (exact).
        stochastic_depth_prob: drop-path probability of the last block.
        num_classes: outputs of the classifier.
    """

    classifier_name = "head"
    layers_are_blocks = True
    stem_params = ("patch_embed", "cls_token", "pos_embed")
    head_params = ("norm", "head")
    no_decay_params = ("cls_token", "pos_embed")  # position embeddings and the class token

    def __init__(
        self, num_frames: int = 32, crop_size: int | tuple[int, int] = 224,
        tubelet_size: tuple[int, int, int] = (2, 16, 16), embed_dim: int = 768, depth: int = 12,
        num_heads: int = 12, mlp_ratio: float = 4.0, norm_eps: float = 1e-6, approximate: str = "tanh",
        stochastic_depth_prob: float = 0.0, num_classes: int = 400,
    ) -> None:
        height, width = (crop_size, crop_size) if isinstance(crop_size, int) else tuple(crop_size)
        pt, ph, pw = tubelet_size
        if num_frames < pt or height < ph or width < pw:
            raise ValueError(
                f"ViViT needs a clip of at least one {pt}x{ph}x{pw} tubelet; got num_frames={num_frames}, "
                f"crop_size={(height, width)}."
            )
        super().__init__(num_classes, embed_dim, min_temporal_size=pt, min_size=max(ph, pw))
        self.num_frames = num_frames
        self.crop_size = (height, width)
        self.tubelet_size = [pt, ph, pw]
        self.grid = [num_frames // pt, height // ph, width // pw]  # the built tubelet grid
        self.num_layers = depth

        self.patch_embed = nn.Conv3d(3, embed_dim, (pt, ph, pw), (pt, ph, pw))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid[0] * self.grid[1] * self.grid[2], embed_dim))
        self.blocks = transformer_blocks(
            depth, embed_dim, num_heads, stochastic_depth_prob,
            mlp_ratio=mlp_ratio, norm_eps=norm_eps, approximate=approximate,
        )
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        self.head = nn.Linear(embed_dim, num_classes)

        # The port's initialisation: N(0, 0.02) weights, zero biases, class token and position embeddings.
        init_weights(self, (nn.Linear, nn.Conv3d))

    def forward_features(self, x: Tensor) -> Tensor:
        """The normalised tokens ``(B, 1 + T'*H'*W', C)``: the class token, then the tubelets in
        ``(T', H', W')`` row-major order (the port's ``last_hidden_state``)."""
        b = x.shape[0]
        pt, ph, pw = self.tubelet_size[0], self.tubelet_size[1], self.tubelet_size[2]
        t, h, w = x.shape[2] // pt, x.shape[3] // ph, x.shape[4] // pw
        weight = self.patch_embed.weight
        c = weight.shape[0]
        # Non-overlapping tubelets: the strided convolution as one matrix product over flattened tubelets.
        x = x[:, :, : t * pt, : h * ph, : w * pw].reshape(b, 3, t, pt, h, ph, w, pw)
        x = x.permute(0, 2, 4, 6, 1, 3, 5, 7).reshape(b, t * h * w, 3 * pt * ph * pw)
        x = linear(x, weight.reshape(c, -1), self.patch_embed.bias)
        pos = resize_pos_embed(self.pos_embed[:, 1:], self.grid, [t, h, w], mode="trilinear")
        cls = (self.cls_token + self.pos_embed[:, :1]).expand([b, 1, c])
        x = torch.cat([cls, x + pos], dim=1)
        for block in self.blocks:
            x = block(x) if torch.jit.is_scripting() else self.checkpointed(block, x)
        return self.norm(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = x[:, 0]  # the class token
        return x if pre_logits else self.head(x)

    def init_classifier(self, layer: nn.Module) -> None:
        nn.init.normal_(layer.weight, std=0.02)
        nn.init.zeros_(layer.bias)


# ----------------------------------------------------------------------------------------------------
# Weights



class ViViT_B_16x2_Weights(WeightsEnum):
    KINETICS400_V1 = Weights(
        **hf_files("google/vivit-b-16x2-kinetics400"),
        # Scenic's recipe (vivit_base_k400.py): short side 256, centre crop 224, zero centering
        # x / 127.5 - 1, i.e. mean 0.5 / std 0.5 on [0, 1].
        transforms=partial(
            VideoClassification, crop_size=(224, 224), resize_size=(256,), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)
        ),
        meta={
            "categories": list(KINETICS400_CATEGORIES),
            "min_size": (16, 16),
            "min_temporal_size": 2,
            "num_params": 88954000,
            "recipe": "https://github.com/google-research/scenic/blob/main/scenic/projects/vivit/configs/kinetics400/vivit_base_k400.py",
            "_metrics": {"Kinetics-400": {"acc@1": 79.9}},  # Scenic publishes no top-5 for this model
            "_ops": 451.52,
            "_file_size": 356.0,
            "_docs": (
                "Scenic's unfactorised ViViT-B/16x2 Kinetics-400 checkpoint (the paper's Model 1, spatio-temporal "
                "attention over all 3136 tubelets), as converted to Hugging Face (google/vivit-b-16x2-kinetics400). "
                "Top-1 from Scenic's model zoo: 4 clips of 32 frames 2 apart x 3 crops of 224 after a 256 short-side "
                "resize, frames scaled to [-1, 1]."
            ),
            "num_frames": 32,
            "sampling_rate": 2,
            "frame_rate": 25.0,
            "num_clips": 4,
            "num_crops": 3,
            "license": "MIT",  # the model card of google/vivit-b-16x2-kinetics400 (Scenic's code: Apache-2.0)
            "model_args": {"num_frames": 32, "crop_size": 224},  # the position table's size
        },
        state_dict_adapter=from_huggingface_state_dict,
    )
    DEFAULT = KINETICS400_V1


# ----------------------------------------------------------------------------------------------------
# Builders


@register_model(ViViT_B_16x2_Weights)
def vivit_b_16x2(
    *, weights: ViViT_B_16x2_Weights | str | None = None, progress: bool = True, **kwargs: Any
) -> ViViT:
    """ViViT-B/16x2, unfactorised (spatio-temporal attention over all tubelets), for 32x224x224 clips
    (89 M parameters).

    Args:
        weights: :class:`ViViT_B_16x2_Weights` (a member, its name or ``"DEFAULT"``), a file's path, or ``None``
            (Hugging Face's format).
        progress: show a progress bar while downloading.
        kwargs: passed to :class:`ViViT`; ``num_frames`` and ``crop_size`` are fixed by weights.
    """
    return build_model(ViViT, ViViT_B_16x2_Weights, weights, progress, kwargs, num_frames=32, crop_size=224)
