"""MViT: PyTorchVideo's (MViT-B) and PySlowFast's (MViTv2-B/L) checkpoint layouts -> ours."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from videozoo.models.adapters import module_rules, rename_keys
from videozoo.models.publishers.pytorchvideo import unwrap_model_state

__all__ = ["from_pyslowfast_state_dict", "from_pytorchvideo_state_dict"]

# The blocks' modules both name alike (PyTorchVideo's MViT is PySlowFast's, repackaged), except the input
# projection: theirs -> ours.
_BLOCK = {
    "norm1": "norm1",
    "norm2": "norm2",
    "attn.proj": "attn.project.0",
    **{f"attn.pool_{x}": f"attn.pool_{x}.pool" for x in "qkv"},
    **{f"attn.norm_{x}": f"attn.pool_{x}.norm_act.0" for x in "qkv"},
    "mlp.fc1": "mlp.0",
    "mlp.fc2": "mlp.3",
    "proj": "project",
}

_PYTORCHVIDEO_RULES = [
    *module_rules("", "", {"patch_embed.patch_model": "conv_proj", "norm_embed": "norm", "head.proj": "head.1"}),
    (r"cls_positional_encoding\.cls_token", "pos_encoding.class_token"),
    (r"cls_positional_encoding\.pos_embed_(spatial|temporal|class)", r"pos_encoding.\1_pos"),
    *module_rules(r"blocks\.(\d+)\.", r"blocks.\1.", {**_BLOCK, **{f"attn.{x}": f"attn.{x}" for x in "qkv"}}),
]

# PySlowFast's MViT (slowfast/models/video_model_builder.py, attention.py) with MViTv2's options:
# no absolute position embeddings, one qkv projection, relative position tables in every block.
_PYSLOWFAST_RULES = [
    *module_rules("", "", {"patch_embed.proj": "conv_proj", "norm": "norm", "head.projection": "head.1"}),
    (r"cls_token", "pos_encoding.class_token"),
    (r"blocks\.(\d+)\.attn\.rel_pos_(h|w|t)", r"blocks.\1.attn.rel_pos_\2"),
    *module_rules(r"blocks\.(\d+)\.", r"blocks.\1.", {**_BLOCK, "attn.qkv": "attn.qkv"}),
]

# Our position embeddings without PyTorchVideo's leading singleton dimensions: (1, 1, C) -> (C,), (1, N, C) -> (N, C).
_POSITION_DIMS = {
    "pos_encoding.class_token": 1,
    "pos_encoding.class_pos": 1,
    "pos_encoding.spatial_pos": 2,
    "pos_encoding.temporal_pos": 2,
}


def from_pytorchvideo_state_dict(checkpoint: Any) -> dict[str, Tensor]:
    """Our ``state_dict`` from a PyTorchVideo MViT checkpoint (``{"model_state": state_dict}``).

    Every key is renamed (the model is built with ``separate_qkv=True``) and the position embeddings
    lose their leading singleton dimensions; a key that is not part of PyTorchVideo's MViT layout raises
    ``ValueError``.
    """
    state = rename_keys(unwrap_model_state(checkpoint), _PYTORCHVIDEO_RULES, "PyTorchVideo's MViT layout")
    return _drop_leading_ones(state)


def from_pyslowfast_state_dict(checkpoint: Any) -> dict[str, Tensor]:
    """Our ``state_dict`` from a PySlowFast MViTv2 checkpoint (``{"model_state": state_dict, ...}``;
    the optimizer state and config beside it are ignored).

    Every key is renamed and the class token loses its leading singleton dimensions (``(1, 1, C)``
    there); a key that is not part of PySlowFast's MViTv2 layout raises ``ValueError``.
    """
    state = rename_keys(unwrap_model_state(checkpoint), _PYSLOWFAST_RULES, "PySlowFast's MViTv2 layout")
    return _drop_leading_ones(state)


def _drop_leading_ones(state: dict[str, Tensor]) -> dict[str, Tensor]:
    for key, dims in _POSITION_DIMS.items():
        value = state.get(key)
        while value is not None and value.dim() > dims and value.shape[0] == 1:
            value = value[0]
        if value is not None:
            state[key] = value
    return state
