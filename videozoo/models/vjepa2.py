"""V-JEPA 2: a plain ViT over space-time tubelets with 3D rotary positions, and its attentive probes.

Assran et al., "V-JEPA 2: Self-Supervised Video Models Enable Understanding, Prediction and Planning",
2025 (https://arxiv.org/abs/2506.09985); code and checkpoints at https://github.com/facebookresearch/vjepa2,
ported to Hugging Face as ``facebook/vjepa2-*`` (``transformers.VJEPA2Model`` and
``VJEPA2ForVideoClassification``, the reference these modules reproduce).

The encoder. A clip is cut into 2x16x16 tubelets (a strided 3D convolution); there is no position
table and no class token. Every block is pre-norm (LayerNorm at 1e-6), its attention rotates queries
and keys by their token's (t, h, w) position (below), and a GELU MLP follows; a last LayerNorm closes
the encoder. :meth:`VJEPA2.forward_features` returns its tokens, ``(B, T/2 * H/16 * W/16, C)`` in
(t, h, w) order.

3D rotary positions, as the reference computes them. A head of ``D`` channels is split into three
sections of ``d = 2 * floor(floor(D / 3) / 2)`` channels, for the frame, row and column index of the
token, and the last ``D - 3d`` channels are left as they are (ViT-L and ViT-g: D = 64, d = 20, 4 left;
ViT-H: D = 80, d = 26, 2 left). Within a section the channels are taken in pairs ``(2i, 2i + 1)`` and
rotated, ``(x0, x1) -> (x0 cos a - x1 sin a, x1 cos b + x0 sin b)``, where the angles come from the
frequencies ``w_j = 10000^(-j / (d / 2))``, ``j < d / 2``, laid out *twice in a row* over the section
(channel ``c`` uses ``pos * w_(c mod d/2)``): channel ``2i`` and ``2i + 1`` of a pair use different
frequencies. This is the publisher's layout (a repeat, not an interleave); it is reproduced, not
"fixed". The angles are computed in float32 from the token grid of the clip at hand.

Clip sizes. The rotary positions follow the clip's own token grid, so any clip whose frame count is a
multiple of the tubelet (2) and whose sides are multiples of the patch (16) runs, square or not, with
no resampling. (transformers numbers rows and columns with the grid of its configured ``crop_size``, so
it agrees with this model for square clips of that size; the publisher's code, like this model, uses the
clip's own grid.)

The probe. The classifiers are the publisher's *attentive probes*, trained on the frozen encoder: three
pre-norm self-attention blocks over the encoder's tokens (fused ``qkv`` with biases, an output
projection, a GELU MLP of 4x width), then one cross-attention block in which a single learned query
token attends to the LayerNorm-ed tokens (query, key and value projections, *no* output projection),
with a residual on the query and a GELU MLP; a linear classifier reads the query token. The publisher's
probes have 16 heads whatever the encoder's (the ViT-g's has 22) and LayerNorms at torch's default 1e-5
(``probe_heads``, ``probe_norm_eps``: every builder's defaults); transformers' pooler, which loads the same
tensors, splits them into the encoder's heads and normalises at 1e-6, so its outputs differ from the
authors' code, the reference these classifiers follow.

Multilevel probes. The publisher's Diving-48 probes read four intermediate layers of the encoder (its
multilevel wrapper's ``out_layers``: blocks 17, 19, 21, 23 of the ViT-L, 24, 29, 34, 39 of the ViT-g), each
passed through the encoder's last LayerNorm, their tokens one after the other: the probe attends over four
times the tokens (it has no positions, so their order does not matter). ``probe_layers`` builds that; such a
model's :meth:`VJEPA2.forward_features` returns those concatenated tokens, the probe's input. transformers'
``VJEPA2ForVideoClassification`` loads the Hugging Face ports of these probes but runs them on the last
layer alone, which is not the probe the publisher trained and evaluated; the Diving-48 members follow the
authors' code (``vjepa2_vitl_256_diving48``, ``vjepa2_vitg_384_diving48``).

Encoder-only weights (``num_classes=0``). The pre-trained encoders are published without a probe. Built
with ``num_classes=0`` (their weights pin it: their ``meta["categories"]`` is empty and
``meta["embedding_only"]`` is True), the model has no pooler and no classifier (``classifier`` is an
``nn.Identity``, as timm's models with ``num_classes=0``): :meth:`~VJEPA2.forward_head` and ``forward``
return the mean of the encoder's tokens, ``(B, embed_dim)``. ``reset_classifier(n)`` gives such a
model a freshly initialised probe and classifier, the publisher's recipe for a new task. The
pre-training predictor, which the encoders' files also hold, is not built (its tensors are skipped).

Key layout. Hugging Face's files keep query, key and value apart;
:func:`videozoo.models.adapters.vjepa2.from_huggingface_state_dict` fuses them and renames the keys. The
blocks (the shared :class:`~videozoo.models.layers.TransformerBlock`, given the rotary tables), the
rotary positions and the attentive probe are shared layers (:mod:`videozoo.models.layers.blocks`,
:mod:`videozoo.models.layers.rotary`, :mod:`videozoo.models.layers.attentive`).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from videozoo.zoo import Weights, WeightsEnum, build_model, register_model
from videozoo.zoo.categories import DIVING48_CATEGORIES, SSV2_CATEGORIES
from videozoo.models._base import VideoModel, check_num_classes
from videozoo.models.adapters.vjepa2 import from_huggingface_state_dict
from videozoo.models.layers import AttentivePooler, TubeletEmbed, init_weights, rope_3d_tables, transformer_blocks
from videozoo.video.transforms import VideoClassification

__all__ = [
    "VJEPA2",
    "VJEPA2_ViTH_256_Weights",
    "VJEPA2_ViTL_256_Diving48_Weights",
    "VJEPA2_ViTL_256_Weights",
    "VJEPA2_ViTg_256_Weights",
    "VJEPA2_ViTg_384_Diving48_Weights",
    "VJEPA2_ViTg_384_Weights",
    "vjepa2_vitg_256",
    "vjepa2_vitg_384",
    "vjepa2_vitg_384_diving48",
    "vjepa2_vith_256",
    "vjepa2_vitl_256",
    "vjepa2_vitl_256_diving48",
]


# ----------------------------------------------------------------------------------------------------
# The encoder


class VJEPA2(VideoModel):
    """The V-JEPA 2 encoder with its attentive probe and classifier (or, ``num_classes=0``, the encoder alone).

    Args:
        embed_dim: token width.
        depth: encoder blocks.
        num_heads: attention heads of the encoder and of the probe.
        mlp_ratio: hidden width of the encoder's MLPs relative to ``embed_dim`` (the probe's are 4x).
        patch_size: height and width of a tubelet, in pixels.
        tubelet_size: frames per tubelet.
        num_classes: outputs of the classifier; 0 builds the encoder alone (no probe, no classifier:
            ``forward`` returns the mean-pooled tokens).
        probe_blocks: blocks of the attentive probe, the cross-attention block included (the
            publisher's ``num_probe_blocks``; transformers' ``num_pooler_layers`` is this minus one).
        probe_layers: the encoder blocks (0-based, increasing) whose tokens, each after the encoder's last
            LayerNorm, the probe reads, one layer's tokens after the other (the publisher's ``out_layers``
            of its multilevel probes); ``None``: the last block only.
        probe_heads: heads of the probe's attention; ``None``: ``num_heads``.
        probe_norm_eps: epsilon of the probe's LayerNorms; ``None``: ``norm_eps``.
        norm_eps: epsilon of every LayerNorm.
        stochastic_depth_prob: drop-path probability of the last encoder block, growing linearly from 0.
        dropout: before the classifier, while training.
    """

    classifier_name = "classifier"
    layers_are_blocks = True
    stem_params = ("patch_embed",)  # no position table, no class token: nothing without weight decay
    head_params = ("norm", "pooler", "classifier")

    def __init__(
        self,
        embed_dim: int = 1024,
        depth: int = 24,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        patch_size: int = 16,
        tubelet_size: int = 2,
        num_classes: int = 174,
        probe_blocks: int = 4,
        probe_layers: Sequence[int] | None = None,
        probe_heads: int | None = None,
        probe_norm_eps: float | None = None,
        norm_eps: float = 1e-6,
        stochastic_depth_prob: float = 0.0,
        dropout: float = 0.0,
    ) -> None:
        probe_heads = num_heads if probe_heads is None else probe_heads
        if depth < 1 or probe_blocks < 1 or embed_dim % num_heads or (num_classes and embed_dim % probe_heads):
            raise ValueError(
                f"VJEPA2 needs depth >= 1, probe_blocks >= 1 and embed_dim divisible by num_heads and probe_heads; got "
                f"depth={depth}, probe_blocks={probe_blocks}, embed_dim={embed_dim}, num_heads={num_heads}, "
                f"probe_heads={probe_heads}."
            )
        layers = [depth - 1] if probe_layers is None else [int(i) for i in probe_layers]
        if not layers or layers != sorted(set(layers)) or layers[0] < 0 or layers[-1] >= depth:
            raise ValueError(
                f"probe_layers must be increasing indices of encoder blocks, each in 0..{depth - 1} (depth={depth}), "
                f"e.g. [{max(depth - 3, 0)}, {depth - 1}]; got {probe_layers!r}."
            )
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
            raise ValueError(f"num_classes must be 0 (the encoder alone) or a positive integer, got {num_classes!r}.")
        # VideoModel demands a classifier; the encoder alone (num_classes=0) is V-JEPA 2's own case.
        super().__init__(max(num_classes, 1), embed_dim, min_temporal_size=tubelet_size, min_size=patch_size)
        self.num_classes = num_classes
        self.patch_size = patch_size
        self.tubelet_size = tubelet_size
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.probe_blocks = probe_blocks
        self.probe_layers = layers
        self.probe_heads = probe_heads
        self.probe_norm_eps = norm_eps if probe_norm_eps is None else probe_norm_eps
        self.norm_eps = norm_eps
        self.num_layers = depth

        self.patch_embed = TubeletEmbed(embed_dim, patch_size, tubelet_size)
        # Pre-norm blocks whose attention rotates queries and keys by the tokens' 3D positions.
        self.blocks = transformer_blocks(
            depth, embed_dim, num_heads, stochastic_depth_prob, mlp_ratio=mlp_ratio, norm_eps=norm_eps
        )
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        self.pooler: AttentivePooler | None = None
        self.head_drop = nn.Dropout(dropout)
        self.classifier: nn.Module = nn.Identity()

        # transformers' initialisation: truncated normal 0.02 for linear and convolution weights, zero
        # biases, unit norms.
        init_weights(self, (nn.Linear, nn.Conv3d), truncated=True)
        if num_classes > 0:
            self.pooler = AttentivePooler(embed_dim, probe_heads, probe_blocks - 1, norm_eps=self.probe_norm_eps)
            self.pooler.init_weights()
            self.classifier = nn.Linear(embed_dim, num_classes)
            self.init_classifier(self.classifier)

    # -- input ---------------------------------------------------------------------------------------

    def check_input_grid(self, x: Tensor) -> None:
        t, h, w = x.shape[2], x.shape[3], x.shape[4]
        if t % self.tubelet_size != 0 or h % self.patch_size != 0 or w % self.patch_size != 0:
            raise ValueError(
                f"{self._name()} cuts clips into {self.tubelet_size}x{self.patch_size}x{self.patch_size} tubelets: "
                f"it expects T divisible by {self.tubelet_size} and H, W by {self.patch_size} (any such clip: the "
                f"rotary positions follow its token grid), e.g. (B, 3, 16, 256, 256); got {list(x.shape)}."
            )

    # -- forward -------------------------------------------------------------------------------------

    def forward_features(self, x: Tensor) -> Tensor:
        """The tokens the probe reads: the encoder's after its last LayerNorm, ``(B, T' * H' * W', embed_dim)``
        in (t, h, w) order; with several ``probe_layers``, those of each such block (after the same LayerNorm),
        one layer's after the other, ``(B, len(probe_layers) * T' * H' * W', embed_dim)``."""
        x = self.patch_embed(x)  # (B, C, T', H', W')
        grid = [x.shape[2], x.shape[3], x.shape[4]]
        x = x.flatten(2).transpose(1, 2)
        cos, sin = rope_3d_tables(grid, self.head_dim, x.device)
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
        levels: list[Tensor] = []
        for i, block in enumerate(self.blocks):
            x = block(x, cos, sin) if torch.jit.is_scripting() else self.checkpointed(block, x, cos, sin)
            if i in self.probe_layers:
                levels.append(self.norm(x))
        return levels[0] if len(levels) == 1 else torch.cat(levels, dim=1)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """The probe's pooled query token (the embedding) or the logits; with no probe
        (``num_classes=0``) the mean of the tokens, for both."""
        pooler = self.pooler
        if pooler is None:
            return x.mean(1)
        x = pooler(x)
        return x if pre_logits else self.classifier(self.head_drop(x))

    # -- classifier ----------------------------------------------------------------------------------

    def reset_classifier(self, num_classes: int) -> None:
        """A fresh classifier for ``num_classes``; an encoder built alone also gets a fresh attentive probe."""
        check_num_classes(num_classes)
        if self.pooler is None:
            weight = self.patch_embed.proj.weight
            pooler = AttentivePooler(self.num_features, self.probe_heads, self.probe_blocks - 1, norm_eps=self.probe_norm_eps)
            pooler.init_weights()
            self.pooler = pooler.to(device=weight.device, dtype=weight.dtype)
            self.classifier = nn.Linear(self.num_features, 1, device=weight.device, dtype=weight.dtype)
        super().reset_classifier(num_classes)

    def init_classifier(self, layer: nn.Module) -> None:
        """transformers' initialisation: truncated normal 0.02, zero bias."""
        nn.init.trunc_normal_(layer.weight, std=0.02)
        nn.init.zeros_(layer.bias)

    # -- fine-tuning ---------------------------------------------------------------------------------


# ----------------------------------------------------------------------------------------------------
# Weights
#
# Checked against the publisher (github.com/facebookresearch/vjepa2: README, src/models/vision_transformer.py,
# configs/inference/*): the architectures (vit_large 1024/24/16, vit_huge 1280/32/16, vit_giant_xformers
# 1408/40/22 with 48/11 MLPs; tubelets 2x16x16), the probes' 4 blocks and 16 heads (LayerNorms at 1e-5), the accuracies (ViT-L/16 SSv2 73.7,
# ViT-g/16 384 SSv2 77.3) and their evaluation clips (16 frames every 4 and 64 every 2, 2 segments x 3
# views). The parameter counts below are this module's (the published files also hold the 22 M-parameter
# predictor: 326.0 M, 653.9 M and 1034.6 M for the ViT-L, H and g encoders, as a port states them). Not
# checked (no network): the ports' config.json files (id2label, num_pooler_layers) and file listings.
#
# The Diving-48 probes (facebook/vjepa2-vitl-fpc32-256-diving48, -vitg-fpc32-384-diving48; the publisher's
# dl.fbaipublicfiles.com/vjepa2/evals/diving48-vitl-256.pt and diving48-vitg-384-32x4x3.pt converted by
# transformers' convert_vjepa2_classifier_to_hf.py onto the fpc64 encoders) read four intermediate layers of
# the encoder (out_layers [17, 19, 21, 23] and [24, 29, 34, 39]: the multilevel wrapper of
# configs/{eval,inference}/*/diving48.yaml) with 16 heads; they have builders of their own, which build that
# probe (the accuracies 89.0 / 90.2 are the README's for the probes so run). Their parity reference is the
# authors' code (tests/parity/ref_vjepa2.py), not transformers, which runs them on the last layer only.

_HF = "https://huggingface.co/facebook"
_README = "https://github.com/facebookresearch/vjepa2#evaluation-attentive-probes"
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _transforms(crop: int) -> Any:
    """transformers' VJEPA2VideoProcessor (the publisher's eval transform): the short side resized to
    ``int(crop * 256 / 224)`` (292 for 256, 438 for 384) bilinearly, a centre crop of ``crop``, ImageNet
    statistics."""
    return partial(
        VideoClassification,
        crop_size=(crop, crop),
        resize_size=(int(crop * 256 / 224),),
        mean=_IMAGENET_MEAN,
        std=_IMAGENET_STD,
    )


def _common(crop: int, num_params: int, gflops: float, license: str) -> dict[str, Any]:
    return {
        "min_size": (16, 16),
        "min_temporal_size": 2,
        "num_params": num_params,
        "recipe": _README,
        "license": license,
        "_ops": gflops,
        "_file_size": None,  # not stated by the publisher
        "model_args": {},  # nothing in the network depends on the clip size
    }


def _encoder(repo: str, size: str, crop: int, num_params: int, gflops: float, license: str, license_note: str) -> Weights:
    """A pre-trained encoder (``VJEPA2Model``), published without a probe: features only."""
    meta = _common(crop, num_params, gflops, license)
    meta.update({
        "categories": [],
        "embedding_only": True,
        "_metrics": {},
        "_docs": (
            f"The pre-trained V-JEPA 2 {size} encoder (facebook/{repo}: 64 frames per clip in the last pre-training "
            f"phase, {crop} px), without a classifier: forward and forward_head(pre_logits=True) give the mean of the "
            f"encoder's tokens, forward_features the tokens. The publisher evaluates its encoders only through "
            f"attentive probes trained on them (other members), so these weights state no accuracy. The clip "
            f"recipe is the model card's feature-extraction example (64 consecutive frames, one centre crop), not "
            f"an evaluation protocol. GFLOPs: multiply-adds of that clip, counted with torch.utils.flop_counter. "
            f"Licence: {license_note}"
        ),
        "num_frames": 64,
        "sampling_rate": 1,
        "frame_rate": None,
        "num_clips": 1,
        "num_crops": 1,
    })  # fmt: skip
    return _weights(repo, crop, meta)


def _weights(repo: str, crop: int, meta: dict[str, Any]) -> Weights:
    """A Hugging Face repository's ``model.safetensors`` in its layout, with the preset for ``crop``."""
    return Weights(f"{_HF}/{repo}/resolve/main/model.safetensors", _transforms(crop), meta, from_huggingface_state_dict)


def _ssv2(
    repo: str, size: str, crop: int, frames: int, step: int, num_params: int, acc1: float, gflops: float, license: str,
    license_note: str, note: str = "",
) -> Weights:  # fmt: skip
    """An attentive probe on Something-Something V2 with its encoder (``VJEPA2ForVideoClassification``)."""
    heads_note = " and the encoder's 22 heads" if "ViT-g" in size else ""
    meta = _common(crop, num_params, gflops, license)
    meta.update({
        "categories": list(SSV2_CATEGORIES),
        "_metrics": {"Something-Something-V2": {"acc@1": acc1}},
        "_docs": (
            f"The publisher's attentive probe (4 blocks, 16 heads, LayerNorms at 1e-5) on the frozen V-JEPA 2 {size} "
            f"encoder, trained on Something-Something V2, as ported to Hugging Face (facebook/{repo}), run as the "
            f"authors' code runs it (src/models/attentive_pooler.py with configs/inference/*/ssv2.yaml's 16 heads; "
            f"transformers' VJEPA2ForVideoClassification runs the same tensors with LayerNorms at 1e-6{heads_note}). "
            f"Top-1 accuracy as the V-JEPA 2 "
            f"README states it (top-5 is not published), measured by the publisher with {frames} frames every {step} "
            f"(at the videos' own frame rate) from each of 2 segments x 3 spatial views of {crop} px: the probe "
            f"attends over the tokens of both segments at once, whereas videozoo classifies each clip alone and "
            f"averages the probabilities, so this recipe approximates the published protocol. Class order: "
            f"something-something-v2-labels.json's, which the publisher's SSv2 lists number the classes by; the "
            f"checkpoint's config.json id2label was not available to check against. GFLOPs: multiply-adds of one "
            f"{frames}-frame view, counted with torch.utils.flop_counter. Licence: {license_note}{note}"
        ),
        "model_args": {"probe_heads": 16, "probe_norm_eps": 1e-5},
        "num_frames": frames,
        "sampling_rate": step,
        "frame_rate": None,
        "num_clips": 2,
        "num_crops": 3,
        "hflip": False,
    })  # fmt: skip
    return _weights(repo, crop, meta)


def _diving48(
    repo: str, size: str, crop: int, probe_layers: tuple[int, ...], num_params: int, acc1: float, gflops: float,
    license: str, license_note: str,
) -> Weights:  # fmt: skip
    """The publisher's multilevel attentive probe on Diving-48 with its encoder (a ``VJEPA2ForVideoClassification``
    file read as the publisher's probe runs: ``probe_layers``, 16 heads, LayerNorms at 1e-5)."""
    heads_note = " and with the encoder's 22 heads" if crop == 384 else ""
    paths = ("diving48-vitl-256.pt", "vitl") if crop == 256 else ("diving48-vitg-384-32x4x3.pt", "vitg-384")
    meta = _common(crop, num_params, gflops, license)
    meta.update({
        "categories": list(DIVING48_CATEGORIES),
        "_metrics": {"Diving-48": {"acc@1": acc1}},
        "_docs": (
            f"The publisher's attentive probe (4 blocks, 16 heads) on the frozen V-JEPA 2 {size} encoder, trained on "
            f"Diving-48 (V2 labels), as ported to Hugging Face (facebook/{repo}: the encoder of the "
            f"fpc64 pre-trained file and the probe of dl.fbaipublicfiles.com/vjepa2/evals/"
            f"{paths[0]}, converted by transformers' "
            f"convert_vjepa2_classifier_to_hf.py). This probe reads four layers of the encoder, blocks "
            f"{', '.join(map(str, probe_layers))}, each after the encoder's last LayerNorm, their tokens one "
            f"after the other (configs/inference/{paths[1]}/diving48.yaml: the "
            f"multilevel wrapper's out_layers), with 16 heads and LayerNorms at 1e-5 (src/models/attentive_pooler.py); "
            f"videozoo runs it so (probe_layers, probe_heads, probe_norm_eps), matching the authors' code. "
            f"transformers' VJEPA2ForVideoClassification (4.57) loads the same file but runs the probe on the last "
            f"layer only{heads_note}, which is not the probe "
            f"that was trained and evaluated; its outputs differ from these. Top-1 accuracy as the V-JEPA 2 README "
            f"states it (top-5 is not published), measured by the publisher with 32 frames every 2 (at the videos' "
            f"own frame rate) from each of 4 segments x 3 spatial views of {crop} px: the probe attends over the "
            f"tokens of all four segments at once, whereas videozoo classifies each clip alone and averages the "
            f"probabilities, so this recipe approximates the published protocol. Class order: the 48 dives of "
            f"Diving48_vocab.json (www.svcl.ucsd.edu/projects/resound/), whose index the dataset's V2 annotations "
            f"label videos by; Hugging Face's id2label (huggingface/label-files' diving48-id2label.json, which "
            f"writes each class as its four-word list) was not available to read, but transformers' converter "
            f"names class 22 ['Forward', '25som', '2Twis', 'PIKE'] and class 35 ['Inward', '35som', 'NoTwis', "
            f"'TUCK'], as here. Not verified offline: the Hugging Face repository's file listing and config.json. "
            f"GFLOPs: multiply-adds of one 32-frame view, counted with torch.utils.flop_counter (the probe's "
            f"self-attention over four layers' tokens included). Licence: {license_note}"
        ),
        "model_args": {"probe_layers": probe_layers, "probe_heads": 16, "probe_norm_eps": 1e-5},
        "num_frames": 32,
        "sampling_rate": 2,
        "frame_rate": None,
        "num_clips": 4,
        "num_crops": 3,
        "hflip": False,
    })  # fmt: skip
    return _weights(repo, crop, meta)


_MIT = "the V-JEPA 2 repository's (MIT); the Hugging Face card's licence tag was not checked."
_APACHE = "the Hugging Face card's (apache-2.0); the V-JEPA 2 repository's code is MIT."
_G_PROBE = (
    " transformers' converter (convert_vjepa2_classifier_to_hf.py) copies the publisher's probe tensors as they are "
    "(query, key and value split, nothing re-arranged or re-trained), so the 16 heads they were trained with are "
    "theirs; the 77.3 is the publisher's for the probe so run."
)


class VJEPA2_ViTL_256_Weights(WeightsEnum):
    SSV2_FPC16 = _ssv2(
        "vjepa2-vitl-fpc16-256-ssv2", "ViT-L/16", 256, 16, 4, 353_399_982, 73.7, 935.2, "MIT", _MIT
    )
    PRETRAINED_FPC64 = _encoder("vjepa2-vitl-fpc64-256", "ViT-L/16", 256, 303_885_312, 5785.3, "MIT", _MIT)
    DEFAULT = SSV2_FPC16


class VJEPA2_ViTH_256_Weights(WeightsEnum):
    PRETRAINED_FPC64 = _encoder(
        "vjepa2-vith-fpc64-256", "ViT-H/16", 256, 631_648_000, 10667.6, "Apache-2.0",
        "apache-2.0, as a port of these weights states it (the Hugging Face card itself was not checked); the V-JEPA 2 "
        "repository's code is MIT.",
    )  # fmt: skip
    DEFAULT = PRETRAINED_FPC64


class VJEPA2_ViTg_256_Weights(WeightsEnum):
    PRETRAINED_FPC64 = _encoder("vjepa2-vitg-fpc64-256", "ViT-g/16", 256, 1_012_173_952, 15844.7, "Apache-2.0", _APACHE)
    DEFAULT = PRETRAINED_FPC64


class VJEPA2_ViTg_384_Weights(WeightsEnum):
    SSV2_FPC64 = _ssv2(
        "vjepa2-vitg-fpc64-384-ssv2", "ViT-g/16 (384 px)", 384, 64, 2, 1_105_668_142, 77.3, 61169.3, "Apache-2.0",
        "unverified for this repository; the ViT-g encoders' Hugging Face cards state apache-2.0, the V-JEPA 2 "
        "repository's code is MIT.", _G_PROBE,
    )  # fmt: skip
    PRETRAINED_FPC64 = _encoder("vjepa2-vitg-fpc64-384", "ViT-g/16 (384 px)", 384, 1_012_173_952, 56910.6, "Apache-2.0", _APACHE)
    DEFAULT = SSV2_FPC64


_L_DIVING48_LAYERS = (17, 19, 21, 23)
_G_DIVING48_LAYERS = (24, 29, 34, 39)


class VJEPA2_ViTL_256_Diving48_Weights(WeightsEnum):
    DIVING48_FPC32 = _diving48(
        "vjepa2-vitl-fpc32-256-diving48", "ViT-L/16", 256, _L_DIVING48_LAYERS, 353_270_832, 89.0, 4370.2, "MIT", _MIT
    )
    DEFAULT = DIVING48_FPC32


class VJEPA2_ViTg_384_Diving48_Weights(WeightsEnum):
    DIVING48_FPC32 = _diving48(
        "vjepa2-vitg-fpc32-384-diving48", "ViT-g/16 (384 px)", 384, _G_DIVING48_LAYERS, 1_105_490_608, 90.2, 33145.9,
        "Apache-2.0",
        "unverified for this repository; the ViT-g encoders' Hugging Face cards state apache-2.0, the V-JEPA 2 "
        "repository's code is MIT.",
    )  # fmt: skip
    DEFAULT = DIVING48_FPC32


# ----------------------------------------------------------------------------------------------------
# Builders

_WEIGHTS_DOC = """
    Args:
        weights: a member of :class:`{enum}`, its name, ``"DEFAULT"``, or the path of a local file in the
            published format (Hugging Face's ``model.safetensors``); ``None`` for random initialisation.
            An encoder-only member builds the encoder alone (``num_classes=0``).
        progress: show a progress bar while downloading.
        kwargs: passed to :class:`VJEPA2` (e.g. ``num_classes``, ``probe_blocks`` without weights;
            ``stochastic_depth_prob`` for fine-tuning).
"""

# The publisher's probes (AttentiveClassifier as configs/{eval,inference}/* build it): 16 heads, whatever the
# encoder's, and torch's default LayerNorm epsilon; a new probe (reset_classifier) is built so too.
_PROBE_16 = {"probe_heads": 16, "probe_norm_eps": 1e-5}
_L = {"embed_dim": 1024, "depth": 24, "num_heads": 16, "mlp_ratio": 4.0, **_PROBE_16}
_H = {"embed_dim": 1280, "depth": 32, "num_heads": 16, "mlp_ratio": 4.0, **_PROBE_16}
_G = {"embed_dim": 1408, "depth": 40, "num_heads": 22, "mlp_ratio": 48 / 11, **_PROBE_16}


@register_model(VJEPA2_ViTL_256_Weights)
def vjepa2_vitl_256(
    *, weights: VJEPA2_ViTL_256_Weights | str | None = None, progress: bool = True, **kwargs: Any
) -> VJEPA2:
    """V-JEPA 2 ViT-L/16 at 256 px: width 1024, 24 blocks, 16 heads (304 M parameters in the encoder)."""
    return build_model(VJEPA2, VJEPA2_ViTL_256_Weights, weights, progress, kwargs, **_L)


@register_model(VJEPA2_ViTH_256_Weights)
def vjepa2_vith_256(
    *, weights: VJEPA2_ViTH_256_Weights | str | None = None, progress: bool = True, **kwargs: Any
) -> VJEPA2:
    """V-JEPA 2 ViT-H/16 at 256 px: width 1280, 32 blocks, 16 heads (632 M parameters in the encoder)."""
    return build_model(VJEPA2, VJEPA2_ViTH_256_Weights, weights, progress, kwargs, **_H)


@register_model(VJEPA2_ViTg_256_Weights)
def vjepa2_vitg_256(
    *, weights: VJEPA2_ViTg_256_Weights | str | None = None, progress: bool = True, **kwargs: Any
) -> VJEPA2:
    """V-JEPA 2 ViT-g/16 at 256 px: width 1408, 40 blocks, 22 heads, MLPs 48/11 wide (1.01 B parameters)."""
    return build_model(VJEPA2, VJEPA2_ViTg_256_Weights, weights, progress, kwargs, **_G)


@register_model(VJEPA2_ViTg_384_Weights)
def vjepa2_vitg_384(
    *, weights: VJEPA2_ViTg_384_Weights | str | None = None, progress: bool = True, **kwargs: Any
) -> VJEPA2:
    """V-JEPA 2 ViT-g/16 at 384 px (the 256 px encoder's high-resolution cool-down): the same network as
    :func:`vjepa2_vitg_256`, with 384 px presets."""
    return build_model(VJEPA2, VJEPA2_ViTg_384_Weights, weights, progress, kwargs, **_G)


# The Diving-48 probes read four of the encoder's layers: the same encoder and probe as the builders above,
# the probe reading the publisher's out_layers.


@register_model(VJEPA2_ViTL_256_Diving48_Weights)
def vjepa2_vitl_256_diving48(
    *, weights: VJEPA2_ViTL_256_Diving48_Weights | str | None = None, progress: bool = True, **kwargs: Any
) -> VJEPA2:
    """V-JEPA 2 ViT-L/16 at 256 px with the publisher's Diving-48 probe, which reads blocks 17, 19, 21 and 23
    (the encoder of :func:`vjepa2_vitl_256`)."""
    config = {**_L, "probe_layers": _L_DIVING48_LAYERS, "num_classes": 48}
    return build_model(VJEPA2, VJEPA2_ViTL_256_Diving48_Weights, weights, progress, kwargs, **config)


@register_model(VJEPA2_ViTg_384_Diving48_Weights)
def vjepa2_vitg_384_diving48(
    *, weights: VJEPA2_ViTg_384_Diving48_Weights | str | None = None, progress: bool = True, **kwargs: Any
) -> VJEPA2:
    """V-JEPA 2 ViT-g/16 at 384 px with the publisher's Diving-48 probe, which reads blocks 24, 29, 34 and 39
    (the encoder of :func:`vjepa2_vitg_384`)."""
    config = {**_G, "probe_layers": _G_DIVING48_LAYERS, "num_classes": 48}
    return build_model(VJEPA2, VJEPA2_ViTg_384_Diving48_Weights, weights, progress, kwargs, **config)


for _builder, _enum in (
    (vjepa2_vitl_256_diving48, "VJEPA2_ViTL_256_Diving48_Weights"),
    (vjepa2_vitg_384_diving48, "VJEPA2_ViTg_384_Diving48_Weights"),
    (vjepa2_vitl_256, "VJEPA2_ViTL_256_Weights"),
    (vjepa2_vith_256, "VJEPA2_ViTH_256_Weights"),
    (vjepa2_vitg_256, "VJEPA2_ViTg_256_Weights"),
    (vjepa2_vitg_384, "VJEPA2_ViTg_384_Weights"),
):
    _builder.__doc__ = (_builder.__doc__ or "").rstrip() + "\n" + _WEIGHTS_DOC.format(enum=_enum)
