"""VideoMAE: Hugging Face's checkpoint layout (``VideoMAEForVideoClassification``) -> ours."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from videozoo.models.adapters import fuse_qkv, huggingface_vit_rules, module_rules, rename_keys, state_dict_of

__all__ = ["from_huggingface_state_dict"]

_HUGGINGFACE_RULES = [
    *module_rules(r"videomae\.embeddings\.", "", {"patch_embeddings.projection": "patch_embed.proj"}),
    (r"videomae\.encoder\.layer\.(\d+)\.attention\.attention\.(q_bias|v_bias)", r"blocks.\1.attn.\2"),
    *huggingface_vit_rules("videomae"),
    *module_rules("", "", {"fc_norm": "fc_norm"}),
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
