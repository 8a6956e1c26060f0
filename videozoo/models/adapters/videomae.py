"""VideoMAE: Hugging Face's checkpoint layout (``VideoMAEForVideoClassification``) -> ours."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from videozoo.models.adapters import fuse_qkv, rename_keys, state_dict_of

__all__ = ["from_huggingface_state_dict"]

_HUGGINGFACE_RULES = [
    (r"videomae\.embeddings\.patch_embeddings\.projection\.(weight|bias)", r"patch_embed.proj.\1"),
    (r"videomae\.encoder\.layer\.(\d+)\.attention\.attention\.(qkv\.weight|q_bias|v_bias)", r"blocks.\1.attn.\2"),
    (r"videomae\.encoder\.layer\.(\d+)\.attention\.output\.dense\.(weight|bias)", r"blocks.\1.attn.proj.\2"),
    (r"videomae\.encoder\.layer\.(\d+)\.intermediate\.dense\.(weight|bias)", r"blocks.\1.mlp.fc1.\2"),
    (r"videomae\.encoder\.layer\.(\d+)\.output\.dense\.(weight|bias)", r"blocks.\1.mlp.fc2.\2"),
    (r"videomae\.encoder\.layer\.(\d+)\.layernorm_before\.(weight|bias)", r"blocks.\1.norm1.\2"),
    (r"videomae\.encoder\.layer\.(\d+)\.layernorm_after\.(weight|bias)", r"blocks.\1.norm2.\2"),
    (r"fc_norm\.(weight|bias)", r"fc_norm.\1"),
    (r"classifier\.(weight|bias)", r"head.\1"),
]


def from_huggingface_state_dict(checkpoint: Any) -> dict[str, Tensor]:
    """Our ``state_dict`` from a ``VideoMAEForVideoClassification`` file (``model.safetensors`` or
    ``pytorch_model.bin``: a flat dict of tensors).

    Query, key and value weights are concatenated into ``qkv``; ``q_bias`` and ``v_bias`` are kept (the
    attention adds ``cat(q_bias, 0, v_bias)``). Raises ``ValueError`` for any other layout, such as a
    pre-training checkpoint (``VideoMAEForPreTraining``: a decoder, no classifier) or the authors'
    original ``{"module": ...}`` files.
    """
    state = state_dict_of(checkpoint, "a Hugging Face state_dict")
    state = fuse_qkv(state, r"videomae\.encoder\.layer\.\d+\.attention\.attention")
    return rename_keys(state, _HUGGINGFACE_RULES, "Hugging Face's VideoMAEForVideoClassification layout")
