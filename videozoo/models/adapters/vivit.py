"""ViViT: Hugging Face's checkpoint layout (``VivitForVideoClassification``) -> ours."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from videozoo.models.adapters import fuse_qkv, huggingface_vit_rules, module_rules, rename_keys, state_dict_of

__all__ = ["from_huggingface_state_dict"]

_HUGGINGFACE_RULES = [
    (r"vivit\.embeddings\.cls_token", "cls_token"),
    (r"vivit\.embeddings\.position_embeddings", "pos_embed"),
    *module_rules(r"vivit\.embeddings\.", "", {"patch_embeddings.projection": "patch_embed"}),
    *huggingface_vit_rules("vivit"),
]


def from_huggingface_state_dict(checkpoint: Any) -> dict[str, Tensor]:
    """Our ``state_dict`` from a Hugging Face ``VivitForVideoClassification`` file (a flat state dict,
    from ``model.safetensors`` or ``pytorch_model.bin``).

    Keys are renamed, and each block's ``query``/``key``/``value`` projections are concatenated (in that
    order) into ``attn.qkv``. A ``vivit.pooler`` (of ``VivitModel``, unused by the classifier, which the
    port also ignores) is dropped; any other key outside that layout raises ``ValueError``.
    """
    state = state_dict_of(checkpoint, "a Hugging Face state_dict")
    state = {k: v for k, v in state.items() if not k.startswith("vivit.pooler.")}
    state = fuse_qkv(state, r"vivit\.encoder\.layer\.\d+\.attention\.attention")
    return rename_keys(state, _HUGGINGFACE_RULES, "Hugging Face's ViViT layout")
