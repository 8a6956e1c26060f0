"""PE-Core: Meta's Perception Encoder, a CLIP model whose frame embeddings, averaged, embed a video.

Bolya et al., "Perception Encoder: The best visual embeddings are not at the output of the network",
2025 (https://arxiv.org/abs/2504.13181); code at https://github.com/facebookresearch/perception_models,
ported to open_clip (``PE-Core-*`` configs, the timm ``vit_pe_core_*`` vision towers) and published in
that layout as ``timm/PE-Core-*`` on the Hugging Face Hub: the reference these modules reproduce.

The vision tower, on one frame. Patches are cut by a strided convolution without bias; B/16 and L/14
put a class token before them (G/14 has none), and a learned absolute position table is added to all
tokens. A LayerNorm (``norm_pre``) comes *before* the blocks. Every block is pre-norm (LayerNorm at
1e-5) with no layer scale; its attention rotates the queries and keys of the patch tokens (not the class
token) by their 2D position (below), and a GELU MLP of 4x width (G: 8960) follows. A LayerNorm closes
the tower. Attention pooling reads it: one learned query token attends (8 heads) to all tokens (class
token included), then an output projection, and a residual GELU MLP on the LayerNorm-ed result; a
linear head (with bias) maps the pooled token into the shared space of ``embed_dim`` (B, L: 1024, G:
1280).

2D rotary positions, as timm's ``RotaryEmbeddingCat`` computes them for PE: a head of ``h`` channels
uses ``h / 4`` frequencies ``w_j = 10000^(-j / (h / 4))``; a patch in column ``x`` and row ``y``
(counted from 1 for B and L, from 0 for G: ``rope_grid_offset``) has the angles ``x w_0 .. x w_{h/4-1},
y w_0 .. y w_{h/4-1}``, each used for a pair of adjacent channels ``(2i, 2i + 1)`` rotated together.

The text tower is CLIP's: token and position embeddings, pre-norm blocks with causal self-attention and
a GELU MLP, a final LayerNorm, the token at the end-of-text position (the highest token id, as CLIP
numbers its vocabulary) projected by ``text_projection`` (no bias). Prompts are 32 tokens (G: 72).

The video embedding (the publisher's zero-shot video evaluation, ``CLIP.encode_video`` in
perception_models): each of the clip's frames is embedded alone, the *unnormalised* frame embeddings
are averaged, and the mean is L2-normalised. :meth:`PECore.forward_features` returns the frame
embeddings ``(B, T, D)``; :meth:`~videozoo.models.VideoTextModel.forward_head` averages them.

Key layout: open_clip's ``CustomTextCLIP`` with a timm tower: ``visual.trunk.*`` (timm's names) and
``text.*``; the adapter drops ``visual.trunk.``'s ``trunk``. The tokenizer is the publisher's
``tokenizer.json`` beside the weights (:mod:`videozoo.zoo.tokenizer`).
"""

from __future__ import annotations

import math
import re
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from videozoo.models._video_text import VideoTextModel
from videozoo.models.adapters import state_dict_of
from videozoo.models.layers.blocks import (
    Mlp,
    TransformerBlock,
    merge_heads,
    split_heads,
)
from videozoo.models.publishers.huggingface import HF_URL
from videozoo.video.transforms import VideoClassification
from videozoo.zoo import ExtraFile, Weights, WeightsEnum, build_model, register_model
from videozoo.zoo.tokenizer import ClipTokenizer

__all__ = [
    "PECore",
    "PECore_B16_Weights",
    "PECore_G14_Weights",
    "PECore_L14_Weights",
    "pe_core_b16",
    "pe_core_g14",
    "pe_core_l14",
]


# ----------------------------------------------------------------------------------------------------
# The vision tower


def rope_2d_table(grid: tuple[int, int], ref_grid: tuple[int, int], head_dim: int, offset: float) -> Tensor:
    """``(H * W, 2 * head_dim)``: the sines then the cosines of the rotation angles of each patch, in
    row-major order, each angle repeated for its pair of channels (timm's "cat" layout for PE)."""
    bands = 1.0 / (10000.0 ** (torch.arange(head_dim // 4, dtype=torch.float32) / (head_dim // 4)))
    rows, cols = grid
    xs = torch.arange(cols, dtype=torch.float32) + offset
    ys = torch.arange(rows, dtype=torch.float32) + offset
    xs, ys = xs / cols * ref_grid[1], ys / rows * ref_grid[0]  # timm rescales to the reference grid
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    angles = torch.stack([x, y], dim=-1)[..., None] * bands  # (H, W, 2, head_dim / 4)
    angles = angles.flatten(-2).flatten(0, 1).repeat_interleave(2, dim=-1)  # (H * W, head_dim)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class AttentionPool(nn.Module):
    """One learned query attends to all tokens; a projection, then a residual MLP on the LayerNorm-ed token."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.latent = nn.Parameter(torch.zeros(1, 1, dim))
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim, eps=1e-5)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        h = self.num_heads
        q = split_heads(self.q(self.latent.expand(b, -1, -1)), h)
        k, v = self.kv(x).reshape(b, n, 2, c).unbind(2)  # (B, N, C) views
        y = merge_heads(F.scaled_dot_product_attention(q, split_heads(k, h), split_heads(v, h)))
        y = self.proj(y)
        y = y + self.mlp(self.norm(y))
        return y[:, 0]


class PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, width: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class VisionTower(nn.Module):
    """PE's ViT on frames ``(N, 3, S, S)``: ``(N, embed_dim)`` frame embeddings (not normalised)."""

    def __init__(
        self, image_size: int, patch_size: int, width: int, depth: int, num_heads: int, mlp_dim: int, embed_dim: int,
        class_token: bool, rope_grid_offset: float, pool_heads: int = 8,
    ) -> None:  # fmt: skip
        super().__init__()
        grid = image_size // patch_size
        self.grid = (grid, grid)
        self.num_prefix_tokens = 1 if class_token else 0
        self.patch_embed = PatchEmbed(patch_size, width)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width)) if class_token else None
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + self.num_prefix_tokens, width))
        self.register_buffer(
            "rope", rope_2d_table(self.grid, self.grid, width // num_heads, rope_grid_offset), persistent=False
        )
        self.norm_pre = nn.LayerNorm(width, eps=1e-5)
        # Pre-norm blocks whose attention rotates the patch tokens' queries and keys (the shared TransformerBlock).
        self.blocks = nn.ModuleList(
            TransformerBlock(width, num_heads, mlp_dim / width, norm_eps=1e-5, num_prefix_tokens=self.num_prefix_tokens)
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(width, eps=1e-5)
        self.attn_pool = AttentionPool(width, pool_heads)
        self.head = nn.Linear(width, embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        x = self.patch_embed(x)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)
        x = self.norm_pre(x + self.pos_embed.to(x.dtype))
        sin, cos = self.rope.chunk(2, dim=-1)
        for block in self.blocks:
            x = block(x, cos, sin)
        return self.head(self.attn_pool(self.norm(x)))


# ----------------------------------------------------------------------------------------------------
# The text tower


class TextAttention(nn.Module):
    """Causal self-attention with CLIP's parameter names (``in_proj_weight``, ``out_proj``)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.in_proj_weight = nn.Parameter(torch.zeros(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        q, k, v = qkv.reshape(b, n, 3, c).unbind(2)  # (B, N, C) views
        h = self.num_heads
        y = F.scaled_dot_product_attention(split_heads(q, h), split_heads(k, h), split_heads(v, h), is_causal=True)
        return self.out_proj(merge_heads(y))


class TextMlp(nn.Module):
    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.c_fc = nn.Linear(dim, hidden_dim)
        self.c_proj = nn.Linear(hidden_dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.c_proj(F.gelu(self.c_fc(x)))


class TextBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim)
        self.attn = TextAttention(dim, num_heads)
        self.ln_2 = nn.LayerNorm(dim)
        self.mlp = TextMlp(dim, 4 * dim)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class TextBlocks(nn.Module):
    def __init__(self, dim: int, depth: int, num_heads: int) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList(TextBlock(dim, num_heads) for _ in range(depth))


class TextTower(nn.Module):
    """CLIP's text transformer: token ids ``(N, context_length)`` -> ``(N, embed_dim)`` (not normalised)."""

    def __init__(self, vocab_size: int, context_length: int, width: int, depth: int, num_heads: int, embed_dim: int) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.zeros(context_length, width))
        self.transformer = TextBlocks(width, depth, num_heads)
        self.ln_final = nn.LayerNorm(width)
        self.text_projection = nn.Parameter(torch.zeros(width, embed_dim))

    def forward(self, tokens: Tensor) -> Tensor:
        x = self.token_embedding(tokens) + self.positional_embedding
        for block in self.transformer.resblocks:
            x = block(x)
        x = self.ln_final(x)
        pooled = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]  # the end-of-text token
        return pooled @ self.text_projection


# ----------------------------------------------------------------------------------------------------
# The model


class PECore(VideoTextModel):
    """PE-Core: the vision tower on each frame, frame embeddings averaged; CLIP's text tower.

    Args:
        image_size: frame side the tower was built for (its position table is fixed: B 224, L 336, G 448).
        patch_size, width, depth, num_heads, mlp_dim: the vision tower.
        embed_dim: width of the shared space.
        class_token: a class token before the patches (B and L; not G).
        rope_grid_offset: the first patch's rotary coordinate (B and L: 1, G: 0).
        vocab_size, context_length, text_width, text_depth, text_heads: the text tower.
        templates: the publisher's prompt templates (:data:`K400_TEMPLATES`).
        num_classes: 0 (what weights without categories pin); the classes are the labels of ``set_labels``.
    """

    layers_are_blocks = True
    stem_params = ("visual.patch_embed", "visual.cls_token", "visual.pos_embed", "visual.norm_pre")
    head_params = ("visual.norm", "visual.attn_pool", "visual.head", "logit_scale")
    no_decay_params = ("visual.cls_token", "visual.pos_embed", "visual.attn_pool.latent", "logit_scale")

    def __init__(
        self, image_size: int = 224, patch_size: int = 16, width: int = 768, depth: int = 12, num_heads: int = 12,
        mlp_dim: int = 3072, embed_dim: int = 1024, class_token: bool = True, rope_grid_offset: float = 1.0,
        vocab_size: int = 49408, context_length: int = 32, text_width: int = 1024, text_depth: int = 24,
        text_heads: int = 16, templates: tuple[str, ...] | None = None, num_classes: int = 0,
    ) -> None:  # fmt: skip
        if num_classes != 0:
            raise ValueError(
                f"PECore has no classifier (num_classes={num_classes}): it classifies into labels given as text, "
                f"model.set_labels([...])."
            )
        super().__init__(
            embed_dim, context_length, templates or K400_TEMPLATES, min_temporal_size=1, min_size=image_size
        )
        self.image_size = image_size
        self.patch_size = patch_size
        self.num_layers = depth
        self.visual = VisionTower(
            image_size, patch_size, width, depth, num_heads, mlp_dim, embed_dim, class_token, rope_grid_offset
        )
        self.text = TextTower(vocab_size, context_length, text_width, text_depth, text_heads, embed_dim)
        nn.init.constant_(self.logit_scale, math.log(1 / 0.07))

    def check_input_grid(self, x: Tensor) -> None:
        if x.shape[3] != self.image_size or x.shape[4] != self.image_size:
            raise ValueError(
                f"{self._name()} takes frames of exactly {self.image_size}x{self.image_size} pixels (its position "
                f"table is fixed); got {x.shape[3]}x{x.shape[4]} in {list(x.shape)}. Resize with weights.transforms()."
            )

    def feature_layers(self) -> Any:
        return self.named_layers([f"visual.blocks.{i}" for i in range(self.num_layers)])

    def forward_features(self, x: Tensor) -> Tensor:
        """The embeddings of the clip's frames, each alone: ``(B, T, embed_dim)``, not normalised."""
        b, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(b * t, c, h, w)
        return self.visual(frames).reshape(b, t, -1)

    def encode_tokens(self, tokens: Tensor) -> Tensor:
        return self.text(tokens)


# ----------------------------------------------------------------------------------------------------
# Weights

#: The prompts of the publisher's zero-shot Kinetics-400 evaluation (perception_models,
#: ``apps/pe/clip_benchmark/datasets/en_zeroshot_classification_templates.json``, ``k400_val``).
K400_TEMPLATES: tuple[str, ...] = tuple(
    f"{kind} of {who}{{c}}."
    for kind in ("a photo", "a video", "a example", "a demonstration")
    for who in ("", "a person ", "a person using ", "a person doing ", "a person during ", "a person performing ",
                "a person practicing ")
)  # fmt: skip

_README = "https://github.com/facebookresearch/perception_models/tree/main/apps/pe#perception-encoder-core"

_TRUNK = re.compile(r"visual\.trunk\.(.+)")


def from_open_clip_state_dict(checkpoint: Any) -> dict[str, Tensor]:
    """open_clip's ``CustomTextCLIP`` file (``visual.trunk.*`` from timm, ``text.*``, ``logit_scale``) ->
    ours: ``visual.trunk.`` becomes ``visual.``; every other key is ours already."""
    state = state_dict_of(checkpoint, "open_clip's PE-Core state_dict")
    out = {}
    for key, value in state.items():
        m = _TRUNK.fullmatch(key)
        if m is not None:
            out[f"visual.{m.group(1)}"] = value
        elif key.startswith(("text.", "logit_scale")):
            out[key] = value
        else:
            raise ValueError(f"unexpected key {key!r} in an open_clip PE-Core file")
    return out


def _transforms(size: int) -> Any:
    """open_clip's PE preprocessing: the frame squashed to ``size`` x ``size`` (bilinear), mean and std 0.5."""
    return partial(
        VideoClassification, crop_size=(size, size), resize_size=(size, size), mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5), interpolation="bilinear",
    )  # fmt: skip


def _weights(
    repo: str, original: str, scale: str, size: int, context: int, k400: float, num_params: int, gflops: float
) -> Weights:
    meta = {
        "categories": [],
        "embedding_only": True,
        "num_params": num_params,
        "min_size": (size, size),
        "min_temporal_size": 1,
        "recipe": _README,
        "license": "Apache-2.0",
        "_metrics": {"Kinetics-400 (zero-shot)": {"acc@1": k400}},
        "_ops": gflops,
        "_file_size": None,  # not stated here
        "model_args": {},
        "context_length": context,
        "num_frames": 8,
        "sampling_rate": None,
        "frame_rate": None,
        "num_clips": 1,
        "num_crops": 1,
        "sampling": "segments",
        "_docs": (
            f"Meta's Perception Encoder PE-Core {scale} (the weights of facebook/{original}), in open_clip's "
            f"layout as published at huggingface.co/{repo} (open_clip_model.safetensors, with the publisher's "
            f"tokenizer.json beside it). A video-text model: give it labels (set_labels, --labels) to classify, "
            f"or search videos with text. Kinetics-400 zero-shot top-1 as the perception_models README states it: "
            f"8 frames spread over each video (the publisher takes frames i * (n - 1) / 7 of n, end frames "
            f"included; videozoo's segment recipe takes the centre frame of 8 equal segments), each frame "
            f"squashed to {size} px, the frame embeddings averaged, and each class's {len(K400_TEMPLATES)} prompts "
            f"(K400_TEMPLATES) averaged. Prompts are cut to {context} tokens. GFLOPs: multiply-adds of the vision tower on "
            f"one 8-frame view, counted with torch.utils.flop_counter (the text tower runs once per label set). Licence: Apache-2.0 (the "
            f"perception_models README, for all its checkpoints). The tokenizer file's sha256 is not pinned "
            f"(it could not be read here): the sha256 the Hugging Face server states for it is checked."
        ),
    }
    return Weights(
        f"{HF_URL}/{repo}/resolve/main/open_clip_model.safetensors",
        _transforms(size),
        meta,
        from_open_clip_state_dict,
        extra_files=(ExtraFile("tokenizer", f"{HF_URL}/{repo}/resolve/main/tokenizer.json"),),
    )


class PECore_B16_Weights(WeightsEnum):
    ZERO_SHOT = _weights("timm/PE-Core-B-16", "PE-Core-B16-224", "B/16 (224 px)", 224, 32, 65.6, 447_660_545, 142.4)
    DEFAULT = ZERO_SHOT


class PECore_L14_Weights(WeightsEnum):
    ZERO_SHOT = _weights("timm/PE-Core-L-14-336", "PE-Core-L14-336", "L/14 (336 px)", 336, 32, 73.4, 671_138_817, 1537.5)
    DEFAULT = ZERO_SHOT


class PECore_G14_Weights(WeightsEnum):
    ZERO_SHOT = _weights("timm/PE-Core-bigG-14-448", "PE-Core-G14-448", "G/14 (448 px)", 448, 72, 76.9, 2_419_267_841, 16474.5)
    DEFAULT = ZERO_SHOT


# ----------------------------------------------------------------------------------------------------
# Builders

_B = {
    "image_size": 224, "patch_size": 16, "width": 768, "depth": 12, "num_heads": 12, "mlp_dim": 3072,
    "embed_dim": 1024, "class_token": True, "rope_grid_offset": 1.0, "context_length": 32, "text_width": 1024,
    "text_depth": 24, "text_heads": 16,
}  # fmt: skip
_L = {
    "image_size": 336, "patch_size": 14, "width": 1024, "depth": 24, "num_heads": 16, "mlp_dim": 4096,
    "embed_dim": 1024, "class_token": True, "rope_grid_offset": 1.0, "context_length": 32, "text_width": 1024,
    "text_depth": 24, "text_heads": 16,
}  # fmt: skip
_G = {
    "image_size": 448, "patch_size": 14, "width": 1536, "depth": 50, "num_heads": 16, "mlp_dim": 8960,
    "embed_dim": 1280, "class_token": False, "rope_grid_offset": 0.0, "context_length": 72, "text_width": 1280,
    "text_depth": 24, "text_heads": 20,
}  # fmt: skip


def _build(enum: type[WeightsEnum], weights: Any, progress: bool, kwargs: dict[str, Any], arch: dict[str, Any]) -> PECore:
    model = build_model(PECore, enum, weights, progress, kwargs, **arch)
    member, _ = enum.resolve(weights)
    if member is not None:
        path = member.extra_file("tokenizer", progress=progress)
        model.set_tokenizer(ClipTokenizer(path, model.context_length))
    return model


@register_model(PECore_B16_Weights, task="video_text")
def pe_core_b16(*, weights: PECore_B16_Weights | str | None = None, progress: bool = True, **kwargs: Any) -> PECore:
    """PE-Core B/16 at 224 px: vision width 768, 12 blocks; text width 1024, 24 blocks; 1024-d space.

    Args:
        weights: a member of :class:`PECore_B16_Weights`, its name, ``"DEFAULT"``, or the path of a local
            ``open_clip_model.safetensors``; ``None`` for random initialisation (then no tokenizer).
        progress: show a progress bar while downloading.
        kwargs: passed to :class:`PECore`.
    """
    return _build(PECore_B16_Weights, weights, progress, kwargs, _B)


@register_model(PECore_L14_Weights, task="video_text")
def pe_core_l14(*, weights: PECore_L14_Weights | str | None = None, progress: bool = True, **kwargs: Any) -> PECore:
    """PE-Core L/14 at 336 px: vision width 1024, 24 blocks; text width 1024, 24 blocks; 1024-d space.
    Arguments as :func:`pe_core_b16`'s."""
    return _build(PECore_L14_Weights, weights, progress, kwargs, _L)


@register_model(PECore_G14_Weights, task="video_text")
def pe_core_g14(*, weights: PECore_G14_Weights | str | None = None, progress: bool = True, **kwargs: Any) -> PECore:
    """PE-Core G/14 at 448 px: vision width 1536, 50 blocks, no class token; text width 1280, 24 blocks,
    72-token prompts; 1280-d space. Arguments as :func:`pe_core_b16`'s."""
    return _build(PECore_G14_Weights, weights, progress, kwargs, _G)
