"""TimeSformer: Hugging Face's checkpoint layout (``TimesformerForVideoClassification``) -> ours."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from videozoo.models.adapters import rename_keys, state_dict_of

__all__ = ["from_huggingface_state_dict"]

_HUGGINGFACE_RULES = [
    (r"timesformer\.embeddings\.cls_token", "cls_token"),
    (r"timesformer\.embeddings\.position_embeddings", "pos_embed"),
    (r"timesformer\.embeddings\.time_embeddings", "time_embed"),
    (r"timesformer\.embeddings\.patch_embeddings\.projection\.(weight|bias)", r"patch_embed.\1"),
    (r"timesformer\.encoder\.layer\.(\d+)\.temporal_layernorm\.(weight|bias)", r"blocks.\1.temporal_norm1.\2"),
    (r"timesformer\.encoder\.layer\.(\d+)\.temporal_attention\.attention\.qkv\.(weight|bias)", r"blocks.\1.temporal_attn.qkv.\2"),
    (r"timesformer\.encoder\.layer\.(\d+)\.temporal_attention\.output\.dense\.(weight|bias)", r"blocks.\1.temporal_attn.proj.\2"),
    (r"timesformer\.encoder\.layer\.(\d+)\.temporal_dense\.(weight|bias)", r"blocks.\1.temporal_fc.\2"),
    (r"timesformer\.encoder\.layer\.(\d+)\.layernorm_before\.(weight|bias)", r"blocks.\1.norm1.\2"),
    (r"timesformer\.encoder\.layer\.(\d+)\.attention\.attention\.qkv\.(weight|bias)", r"blocks.\1.attn.qkv.\2"),
    (r"timesformer\.encoder\.layer\.(\d+)\.attention\.output\.dense\.(weight|bias)", r"blocks.\1.attn.proj.\2"),
    (r"timesformer\.encoder\.layer\.(\d+)\.layernorm_after\.(weight|bias)", r"blocks.\1.norm2.\2"),
    (r"timesformer\.encoder\.layer\.(\d+)\.intermediate\.dense\.(weight|bias)", r"blocks.\1.mlp.fc1.\2"),
    (r"timesformer\.encoder\.layer\.(\d+)\.output\.dense\.(weight|bias)", r"blocks.\1.mlp.fc2.\2"),
    (r"timesformer\.layernorm\.(weight|bias)", r"norm.\1"),
    (r"classifier\.(weight|bias)", r"head.\1"),
]


def from_huggingface_state_dict(checkpoint: Any) -> dict[str, Tensor]:
    """Our ``state_dict`` from a Hugging Face ``TimesformerForVideoClassification`` file (a flat state
    dict, from ``model.safetensors`` or ``pytorch_model.bin``): every key renamed, no tensor changed
    (the port already fuses q, k and v into one ``qkv``). A key outside that layout raises ``ValueError``."""
    state = state_dict_of(checkpoint, "a Hugging Face state_dict")
    return rename_keys(state, _HUGGINGFACE_RULES, "Hugging Face's TimeSformer layout")
