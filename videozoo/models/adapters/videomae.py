"""VideoMAE: Hugging Face's checkpoint layout (``VideoMAEForVideoClassification``) -> ours; VideoMAE V2: the
authors' files (their key names are ours)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from videozoo.models.adapters import fuse_qkv, huggingface_vit_rules, module_rules, rename_keys, state_dict_of
from videozoo.zoo.categories import KINETICS710_TO_400

__all__ = ["from_huggingface_state_dict", "from_videomae_v2_state_dict", "kinetics400_from_videomae_v2_k710"]

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


def from_videomae_v2_state_dict(checkpoint: Any) -> dict[str, Tensor]:
    """Our ``state_dict`` from a checkpoint of OpenGVLab/VideoMAEv2 (``models/modeling_finetune.py``'s
    ``VisionTransformer`` with mean pooling: the key names and shapes are ours), bare or under ``"model"``
    or ``"module"``, the keys its ``run_class_finetuning.py`` reads; anything else in the file is ignored.
    Raises ``ValueError`` for any other file."""
    if isinstance(checkpoint, Mapping):
        for key in ("model", "module"):
            if isinstance(checkpoint.get(key), Mapping):
                return state_dict_of(checkpoint[key], f"a VideoMAE V2 state_dict under {key!r}")
    return state_dict_of(checkpoint, "a VideoMAE V2 checkpoint (a state_dict, bare or under 'model' or 'module')")


def kinetics400_from_videomae_v2_k710(checkpoint: Any) -> dict[str, Tensor]:
    """:func:`from_videomae_v2_state_dict` of a Kinetics-710 classifier with its head cut to the Kinetics-400
    classes: the rows of :data:`~videozoo.zoo.categories.KINETICS710_TO_400` (VideoMAE V2's
    ``label_710to400.json``), in Kinetics-400's order. Raises ``ValueError`` unless the head has 710 rows."""
    state = from_videomae_v2_state_dict(checkpoint)
    for key in ("head.weight", "head.bias"):
        rows = state.get(key)
        if rows is None or rows.shape[0] != 710:
            found = "none" if rows is None else f"{rows.shape[0]} rows"
            raise ValueError(f"Expected a Kinetics-710 classifier ({key} with 710 rows), found {found}")
        state[key] = rows[list(KINETICS710_TO_400)]
    return state
