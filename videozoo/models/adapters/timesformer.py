"""TimeSformer: Hugging Face's checkpoint layout (``TimesformerForVideoClassification``) -> ours."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from videozoo.models.adapters import huggingface_vit_rules, module_rules, rename_keys, state_dict_of

__all__ = ["from_huggingface_state_dict"]

_HUGGINGFACE_RULES = [
    (r"timesformer\.embeddings\.cls_token", "cls_token"),
    (r"timesformer\.embeddings\.position_embeddings", "pos_embed"),
    (r"timesformer\.embeddings\.time_embeddings", "time_embed"),
    *module_rules(r"timesformer\.embeddings\.", "", {"patch_embeddings.projection": "patch_embed"}),
    *huggingface_vit_rules(
        "timesformer",
        {
            "temporal_layernorm": "temporal_norm1",
            "temporal_attention.attention.qkv": "temporal_attn.qkv",
            "temporal_attention.output.dense": "temporal_attn.proj",
            "temporal_dense": "temporal_fc",
        },
    ),
]


def from_huggingface_state_dict(checkpoint: Any) -> dict[str, Tensor]:
    """Our ``state_dict`` from a Hugging Face ``TimesformerForVideoClassification`` file (a flat state
    dict, from ``model.safetensors`` or ``pytorch_model.bin``): every key renamed, no tensor changed
    (the port already fuses q, k and v into one ``qkv``). A key outside that layout raises ``ValueError``."""
    state = state_dict_of(checkpoint, "a Hugging Face state_dict")
    return rename_keys(state, _HUGGINGFACE_RULES, "Hugging Face's TimeSformer layout")
