"""X-CLIP: CLIP expanded to video with cross-frame messages, a frame-integration transformer and prompts
written by the video itself.

Ni et al., "Expanding Language-Image Pretrained Models for General Video Recognition", ECCV 2022
(https://arxiv.org/abs/2208.02816); code at https://github.com/microsoft/VideoX (X-CLIP), ported to
Hugging Face as ``microsoft/xclip-*`` (``transformers.XCLIPModel``, the reference these modules
reproduce, whose key names they keep).

The video tower. Each frame is a CLIP ViT's input (patch convolution without bias, class token, learned
positions, a LayerNorm before the blocks). In every block, *cross-frame communication* comes first: the
class token of each frame, through ``message_fc``, becomes a message token; the clip's ``T`` messages
attend to one another (``message_ln``, ``message_attn``, residual), and each frame's message is appended to
its tokens for the block's self-attention; the message is dropped again before the MLP. After the blocks,
each frame's class token (``post_layernorm``, ``visual_projection``) goes through the *multi-frame
integration transformer* (``mit``: learned temporal positions, one CLIP block, a residual around it) and
the mean over the frames is the video embedding.

The text tower is CLIP's (causal self-attention, QuickGELU, the end-of-text token projected). The
*video-specific prompt generator* rewrites each label's text embedding for the clip at hand: the frames'
patch tokens (``prompts_visual_layernorm``, projected by ``prompts_visual_projection``, averaged over the
frames) are the keys and values of two cross-attention blocks whose queries are the text embeddings;
``alpha`` times the result is added to each text embedding. The logits are ``logit_scale.exp()`` times
the cosine similarity of the video embedding with those prompted text embeddings.

Where the contract meets it. :meth:`XCLIP.forward_features` returns the video tower's last tokens
``(B, T, 1 + N, C)``; ``forward_head(f, pre_logits=True)`` is the normalised video embedding; the logits
need the patch tokens too, so ``forward_head(f)`` computes the prompts from ``f`` (the labels' text
embeddings, from :meth:`~videozoo.models.VideoTextModel.set_labels`, are the *unnormalised* projected text
embeddings, one template ``"{}"``, as X-CLIP evaluates). :meth:`encode_text` gives the normalised text
embeddings *without* the video-specific prompt (what a search over stored video embeddings can compare).
The clip must have the ``num_frames`` the checkpoint was trained with (the temporal positions are fixed).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from videozoo.models._video_text import VideoTextModel
from videozoo.models.adapters import state_dict_of
from videozoo.models.layers.blocks import merge_heads, split_heads
from videozoo.models.publishers.huggingface import hf_files
from videozoo.video.transforms import VideoClassification
from videozoo.zoo import ExtraFile, Weights, WeightsEnum, build_model, register_model
from videozoo.zoo.tokenizer import ClipTokenizer

__all__ = ["XCLIP", "XCLIP_B16_Weights", "XCLIP_B16_ZeroShot_Weights", "XCLIP_B32_Weights", "xclip_b16", "xclip_b16_zero_shot", "xclip_b32"]


def quick_gelu(x: Tensor) -> Tensor:
    return x * torch.sigmoid(1.702 * x)


class Attention(nn.Module):
    """Multi-head attention with separate ``q_proj``, ``k_proj``, ``v_proj`` and ``out_proj`` (CLIP's names)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, causal: bool = False) -> Tensor:
        h = self.num_heads
        q, k, v = (split_heads(p(x), h) for p in (self.q_proj, self.k_proj, self.v_proj))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        return self.out_proj(merge_heads(y))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(quick_gelu(self.fc1(x)))


class Block(nn.Module):
    """CLIP's pre-norm block (``layer_norm1``, ``self_attn``, ``layer_norm2``, ``mlp``)."""

    def __init__(self, dim: int, hidden_dim: int, num_heads: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(dim, eps=eps)
        self.self_attn = Attention(dim, num_heads)
        self.layer_norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, hidden_dim)

    def forward(self, x: Tensor, causal: bool = False) -> Tensor:
        x = x + self.self_attn(self.layer_norm1(x), causal)
        return x + self.mlp(self.layer_norm2(x))


class Encoder(nn.Module):
    def __init__(self, dim: int, hidden_dim: int, depth: int, num_heads: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(Block(dim, hidden_dim, num_heads) for _ in range(depth))


class CrossFrameBlock(Block):
    """A block of the video tower: the frames' messages attend to one another, then each frame's tokens
    and its message go through self-attention; the MLP sees the frame's tokens only."""

    def __init__(self, dim: int, hidden_dim: int, num_heads: int, num_frames: int) -> None:
        super().__init__(dim, hidden_dim, num_heads)
        self.num_frames = num_frames
        self.message_fc = nn.Linear(dim, dim)
        self.message_ln = nn.LayerNorm(dim, eps=1e-5)
        self.message_attn = Attention(dim, num_heads)

    def forward(self, x: Tensor, causal: bool = False) -> Tensor:
        bt, n, c = x.shape
        message = self.message_fc(x[:, 0]).reshape(bt // self.num_frames, self.num_frames, c)
        message = message + self.message_attn(self.message_ln(message))
        x = torch.cat([x, message.reshape(bt, 1, c)], dim=1)
        x = (x + self.self_attn(self.layer_norm1(x)))[:, :n]
        return x + self.mlp(self.layer_norm2(x))


class VisionEmbeddings(nn.Module):
    def __init__(self, image_size: int, patch_size: int, width: int) -> None:
        super().__init__()
        self.class_embedding = nn.Parameter(torch.zeros(width))
        self.patch_embedding = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)
        self.position_embedding = nn.Embedding((image_size // patch_size) ** 2 + 1, width)

    def forward(self, x: Tensor) -> Tensor:
        patches = self.patch_embedding(x).flatten(2).transpose(1, 2)
        cls = self.class_embedding.expand(x.shape[0], 1, -1).to(patches.dtype)
        return torch.cat([cls, patches], dim=1) + self.position_embedding.weight


class VisionEncoder(nn.Module):
    def __init__(self, width: int, hidden_dim: int, depth: int, num_heads: int, num_frames: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(CrossFrameBlock(width, hidden_dim, num_heads, num_frames) for _ in range(depth))


class VisionModel(nn.Module):
    """The cross-frame communication transformer: frames ``(B * T, 3, S, S)`` -> tokens ``(B * T, 1 + N, C)``."""

    def __init__(self, image_size: int, patch_size: int, width: int, depth: int, num_heads: int, num_frames: int) -> None:
        super().__init__()
        self.embeddings = VisionEmbeddings(image_size, patch_size, width)
        self.pre_layernorm = nn.LayerNorm(width, eps=1e-5)
        self.encoder = VisionEncoder(width, 4 * width, depth, num_heads, num_frames)
        self.post_layernorm = nn.LayerNorm(width, eps=1e-5)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pre_layernorm(self.embeddings(x))
        for layer in self.encoder.layers:
            x = layer(x)
        return x


class TextEmbeddings(nn.Module):
    def __init__(self, vocab_size: int, context_length: int, width: int) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.position_embedding = nn.Embedding(context_length, width)


class TextModel(nn.Module):
    def __init__(self, vocab_size: int, context_length: int, width: int, depth: int, num_heads: int) -> None:
        super().__init__()
        self.embeddings = TextEmbeddings(vocab_size, context_length, width)
        self.encoder = Encoder(width, 4 * width, depth, num_heads)
        self.final_layer_norm = nn.LayerNorm(width, eps=1e-5)

    def forward(self, tokens: Tensor) -> Tensor:
        x = self.embeddings.token_embedding(tokens) + self.embeddings.position_embedding.weight[: tokens.shape[1]]
        for layer in self.encoder.layers:
            x = layer(x, causal=True)
        x = self.final_layer_norm(x)
        return x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]


class MultiframeIntegration(nn.Module):
    """Temporal positions, one CLIP block, a residual around it; the mean over the frames."""

    def __init__(self, num_frames: int, dim: int, depth: int = 1, num_heads: int = 8) -> None:
        super().__init__()
        self.position_embedding = nn.Parameter(torch.zeros(1, num_frames, dim))
        self.encoder = Encoder(dim, 4 * dim, depth, num_heads)

    def forward(self, x: Tensor) -> Tensor:
        y = x + self.position_embedding
        for layer in self.encoder.layers:
            y = layer(y)
        return (y + x).mean(dim=1)


class CrossAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.k_proj = nn.Linear(dim, dim, bias=False)
        self.v_proj = nn.Linear(dim, dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, queries: Tensor, keys: Tensor) -> Tensor:
        h = self.num_heads
        q = split_heads(self.q_proj(queries), h)
        k, v = split_heads(self.k_proj(keys), h), split_heads(self.v_proj(keys), h)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.proj(merge_heads(y))


class PromptLayer(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.cross_attn = CrossAttention(dim, num_heads)
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.norm3 = nn.LayerNorm(dim, eps=1e-5)
        # the publisher's Sequential(Linear, QuickGELU, Dropout, Linear): its keys are mlp.0 and mlp.3
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.Identity(), nn.Identity(), nn.Linear(4 * dim, dim))

    def forward(self, text: Tensor, visual: Tensor) -> Tensor:
        text = text + self.cross_attn(self.norm1(text), visual)
        hidden = quick_gelu(self.mlp[0](self.norm3(text)))
        return text + self.mlp[3](hidden)


class PromptGenerator(nn.Module):
    """The video-specific prompt: two cross-attention blocks from the text embeddings to the frames' patches."""

    def __init__(self, dim: int, depth: int = 2, num_heads: int = 8, alpha: float = 0.1) -> None:
        super().__init__()
        self.layernorm = nn.LayerNorm(dim, eps=1e-5)
        self.decoder = nn.ModuleList(PromptLayer(dim, num_heads) for _ in range(depth))
        self.alpha = nn.Parameter(torch.full((dim,), alpha))

    def forward(self, text: Tensor, visual: Tensor) -> Tensor:
        visual = self.layernorm(visual)
        for layer in self.decoder:
            text = layer(text, visual)
        return self.alpha * text


class XCLIP(VideoTextModel):
    """X-CLIP.

    Args:
        num_frames: frames per clip the checkpoint was trained with (8, 16 or 32; fixed by its temporal
            positions and its cross-frame messages).
        image_size, patch_size, width, depth, num_heads: the video tower's ViT.
        embed_dim: the projection width (512), also the integration transformer's and the prompts'.
        vocab_size, context_length, text_width, text_depth, text_heads: the text tower (CLIP's).
        mit_depth, prompt_depth: blocks of the integration transformer (1) and of the prompt generator (2).
    """

    layers_are_blocks = True
    stem_params = ("vision_model.embeddings", "vision_model.pre_layernorm")
    no_decay_params = ("vision_model.embeddings.class_embedding", "mit.position_embedding", "logit_scale")

    def __init__(
        self, num_frames: int = 8, image_size: int = 224, patch_size: int = 32, width: int = 768, depth: int = 12,
        num_heads: int = 12, embed_dim: int = 512, vocab_size: int = 49408, context_length: int = 77,
        text_width: int = 512, text_depth: int = 12, text_heads: int = 8, mit_depth: int = 1, prompt_depth: int = 2,
        num_classes: int = 0,
    ) -> None:  # fmt: skip
        if num_classes != 0:
            raise ValueError(
                f"XCLIP has no classifier (num_classes={num_classes}): it classifies into labels given as text, "
                f"model.set_labels([...])."
            )
        super().__init__(embed_dim, context_length, ("{}",), min_temporal_size=num_frames, min_size=image_size)
        self.num_frames = num_frames
        self.image_size = image_size
        self.num_layers = depth
        self.head_params = (
            "vision_model.post_layernorm", "visual_projection", "mit", "prompts_visual_layernorm",
            "prompts_visual_projection", "prompts_generator", "logit_scale",
        )  # fmt: skip
        self.text_model = TextModel(vocab_size, context_length, text_width, text_depth, text_heads)
        self.vision_model = VisionModel(image_size, patch_size, width, depth, num_heads, num_frames)
        self.visual_projection = nn.Linear(width, embed_dim, bias=False)
        self.text_projection = nn.Linear(text_width, embed_dim, bias=False)
        self.prompts_visual_layernorm = nn.LayerNorm(width, eps=1e-5)
        self.prompts_visual_projection = nn.Parameter(torch.zeros(width, embed_dim))
        self.mit = MultiframeIntegration(num_frames, embed_dim, mit_depth)
        self.prompts_generator = PromptGenerator(embed_dim, prompt_depth)
        nn.init.constant_(self.logit_scale, 2.6592)

    def check_input_grid(self, x: Tensor) -> None:
        if x.shape[2] != self.num_frames or x.shape[3] != self.image_size or x.shape[4] != self.image_size:
            raise ValueError(
                f"{self._name()} takes clips of exactly {self.num_frames} frames of {self.image_size}x{self.image_size} "
                f"pixels (its temporal and spatial positions are fixed); got {list(x.shape)}. Sample and resize "
                f"with the weights' recipe and weights.transforms()."
            )

    def feature_layers(self) -> Any:
        return self.named_layers([f"vision_model.encoder.layers.{i}" for i in range(self.num_layers)])

    def forward_features(self, x: Tensor) -> Tensor:
        """The video tower's last tokens, ``(B, T, 1 + N, width)``."""
        b, c, t, h, w = x.shape
        tokens = self.vision_model(x.transpose(1, 2).reshape(b * t, c, h, w))
        return tokens.reshape(b, t, tokens.shape[1], tokens.shape[2])

    def _video(self, f: Tensor) -> Tensor:
        frames = self.visual_projection(self.vision_model.post_layernorm(f[:, :, 0]))
        return self.mit(frames)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        video = F.normalize(self._video(x), dim=-1)
        if pre_logits:
            return video
        if self.label_embeddings.shape[0] == 0:
            raise ValueError(
                "This video-text model has no labels to classify into: call model.set_labels([...]) (or pass "
                "labels=[...] to videozoo.predict, --labels on the command line) first."
            )
        patches = self.prompts_visual_layernorm(x[:, :, 1:]) @ self.prompts_visual_projection
        patches = patches.mean(dim=1)  # (B, N, D): averaged over the frames
        text = self.label_embeddings.to(patches.dtype).expand(x.shape[0], -1, -1)
        text = F.normalize(text + self.prompts_generator(text, patches), dim=-1)
        return self.logit_scale.exp() * torch.einsum("bd,bkd->bk", video, text)

    def encode_tokens(self, tokens: Tensor) -> Tensor:
        return self.text_projection(self.text_model(tokens))

    @torch.jit.unused
    def embed_labels(self, labels: Any, template: Any = None) -> Tensor:
        """The labels' projected text embeddings, *not* normalised (the prompt generator adds to them)."""
        from videozoo.models._video_text import check_labels, prompts_for

        labels = check_labels(labels)
        templates = self._templates(template) or self.templates
        if self.tokenizer is None:
            self.encode_text([])  # raises the error that says how to set a tokenizer
        with torch.no_grad():
            rows = []
            for label in labels:
                tokens = self.tokenizer(prompts_for(label, templates)).to(self.logit_scale.device)  # type: ignore[misc]
                rows.append(self.encode_tokens(tokens).mean(dim=0))
        return torch.stack(rows)


# ----------------------------------------------------------------------------------------------------
# Weights

_README = "https://github.com/microsoft/VideoX/tree/master/X-CLIP"
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def from_huggingface_state_dict(checkpoint: Any) -> dict[str, Tensor]:
    """Hugging Face's ``XCLIPModel`` file -> ours: the same names, without the ``position_ids`` index buffers
    that files saved by older transformers versions carry."""
    state = state_dict_of(checkpoint, "a Hugging Face XCLIPModel state_dict")
    return {k: v for k, v in state.items() if not k.endswith("embeddings.position_ids")}


def _transforms() -> Any:
    """The X-CLIP processor's preset: the short side to 224, a 224 centre crop, ImageNet statistics."""
    return partial(VideoClassification, crop_size=224, resize_size=224, mean=_IMAGENET_MEAN, std=_IMAGENET_STD)


def _weights(
    repo: str, frames: int, num_params: int, gflops: float, metrics: dict[str, dict[str, float]], docs: str
) -> Weights:
    files = hf_files(f"microsoft/{repo}")
    meta = {
        "categories": [], "embedding_only": True, "num_params": num_params, "min_size": (224, 224),
        "min_temporal_size": frames, "recipe": _README, "license": "MIT", "_metrics": metrics, "_ops": gflops,
        "_file_size": None, "model_args": {"num_frames": frames}, "num_frames": frames, "sampling_rate": None,
        "frame_rate": None, "num_clips": 1, "num_crops": 1, "sampling": "segments", "_docs": docs,
    }  # fmt: skip
    base = f"https://huggingface.co/microsoft/{repo}/resolve/main"
    return Weights(
        files["url"], _transforms(), meta, from_huggingface_state_dict, fallbacks=files["fallbacks"],
        extra_files=(ExtraFile("vocab", f"{base}/vocab.json"), ExtraFile("merges", f"{base}/merges.txt")),
    )  # fmt: skip


_LICENCE = (
    " Frames: segments of the whole video (the Hugging Face cards give the frame count, not the sampling; the "
    "X-CLIP repository's test recipe takes several temporal views). Labels go into the text tower as written "
    "(template \"{}\"), the video-specific prompt is added to each. GFLOPs: multiply-adds of the video tower and "
    "the integration transformer on one view, counted with torch.utils.flop_counter (the text tower runs once per "
    "label set, the prompt generator once per clip). Licence: MIT, as the Hugging Face card's metadata states it "
    "(the VideoX repository's code is MIT); the figures are the card's. The tokenizer is CLIP's vocab.json and "
    "merges.txt from the same repository, read with the tokenizers library as transformers' CLIPTokenizerFast "
    "reads them; their sha256 is not pinned (the server's stated sha256 is checked where it states one)."
)


class XCLIP_B32_Weights(WeightsEnum):
    KINETICS400_8_FRAMES = _weights(
        "xclip-base-patch32", 8, 196_585_729, 35.8, {"Kinetics-400": {"acc@1": 80.4, "acc@5": 95.0}},
        "X-CLIP B/32 trained fully supervised on Kinetics-400 with 8 frames per video (microsoft/xclip-base-patch32). "
        "Give it the Kinetics-400 class names as labels to reproduce its classifier." + _LICENCE,
    )  # fmt: skip
    DEFAULT = KINETICS400_8_FRAMES


class XCLIP_B16_Weights(WeightsEnum):
    KINETICS400_8_FRAMES = _weights(
        "xclip-base-patch16", 8, 194_929_153, 141.1, {"Kinetics-400": {"acc@1": 83.8, "acc@5": 95.7}},
        "X-CLIP B/16 trained fully supervised on Kinetics-400 with 8 frames per video (microsoft/xclip-base-patch16). "
        "Give it the Kinetics-400 class names as labels to reproduce its classifier." + _LICENCE,
    )  # fmt: skip
    DEFAULT = KINETICS400_8_FRAMES


class XCLIP_B16_ZeroShot_Weights(WeightsEnum):
    ZERO_SHOT = _weights(
        "xclip-base-patch16-zero-shot", 32, 194_941_441, 564.4, {"HMDB-51 (zero-shot)": {"acc@1": 44.6}},
        "X-CLIP B/16 trained on Kinetics-400 with 32 frames per video for zero-shot transfer "
        "(microsoft/xclip-base-patch16-zero-shot). Zero-shot top-1 as its card states it: HMDB-51 44.6, UCF101 72.0, "
        "Kinetics-600 65.2." + _LICENCE,
    )  # fmt: skip
    DEFAULT = ZERO_SHOT


_B = {"image_size": 224, "width": 768, "depth": 12, "num_heads": 12, "embed_dim": 512, "text_width": 512,
      "text_depth": 12, "text_heads": 8}  # fmt: skip


def _build(enum: type[WeightsEnum], weights: Any, progress: bool, kwargs: dict[str, Any], arch: dict[str, Any]) -> XCLIP:
    model = build_model(XCLIP, enum, weights, progress, kwargs, **arch)
    member, _ = enum.resolve(weights)
    if member is not None:
        vocab, merges = (member.extra_file(role, progress=progress) for role in ("vocab", "merges"))
        model.set_tokenizer(ClipTokenizer.from_vocab_and_merges(vocab, merges, model.context_length))
    return model


@register_model(XCLIP_B32_Weights, task="video_text")
def xclip_b32(*, weights: XCLIP_B32_Weights | str | None = None, progress: bool = True, **kwargs: Any) -> XCLIP:
    """X-CLIP B/32: a ViT-B/32 video tower with cross-frame messages, CLIP's text tower, 512-d space.

    Args:
        weights: a member of :class:`XCLIP_B32_Weights`, its name, ``"DEFAULT"``, or the path of a local file in
            the published format (Hugging Face's); ``None`` for random initialisation (then no tokenizer).
        progress: show a progress bar while downloading.
        kwargs: passed to :class:`XCLIP` (``num_frames`` without weights).
    """
    return _build(XCLIP_B32_Weights, weights, progress, kwargs, {**_B, "patch_size": 32})


@register_model(XCLIP_B16_ZeroShot_Weights, task="video_text")
def xclip_b16_zero_shot(
    *, weights: XCLIP_B16_ZeroShot_Weights | str | None = None, progress: bool = True, **kwargs: Any
) -> XCLIP:
    """X-CLIP B/16 for zero-shot transfer: :func:`xclip_b16` on 32-frame clips. Arguments as :func:`xclip_b32`'s."""
    return _build(XCLIP_B16_ZeroShot_Weights, weights, progress, kwargs, {**_B, "patch_size": 16, "num_frames": 32})


@register_model(XCLIP_B16_Weights, task="video_text")
def xclip_b16(*, weights: XCLIP_B16_Weights | str | None = None, progress: bool = True, **kwargs: Any) -> XCLIP:
    """X-CLIP B/16: as :func:`xclip_b32` with 16-pixel patches. Arguments as :func:`xclip_b32`'s."""
    return _build(XCLIP_B16_Weights, weights, progress, kwargs, {**_B, "patch_size": 16})
