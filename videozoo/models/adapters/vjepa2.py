"""V-JEPA 2: Hugging Face's checkpoint layout (``VJEPA2Model``, ``VJEPA2ForVideoClassification``) -> ours."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from videozoo.models.adapters import rename_keys

__all__ = ["from_huggingface_state_dict"]


_QKV = re.compile(r"(?:vjepa2\.)?encoder\.layer\.(\d+)\.attention\.query\.(weight|bias)")
_POOLER_QKV = re.compile(r"pooler\.self_attention_layers\.(\d+)\.self_attn\.q_proj\.(weight|bias)")
_CROSS_KV = re.compile(r"pooler\.cross_attention_layer\.cross_attn\.k_proj\.(weight|bias)")
#: The pre-training predictor (``VJEPA2Model.predictor``), stored in every published file and not built here.
_PREDICTOR = re.compile(r"(?:vjepa2\.)?predictor\..*")


def _fuse(state: dict[str, Tensor], parts: list[str], fused: str) -> None:
    missing = [p for p in parts if p not in state]
    if missing:
        raise ValueError(f"{missing[0]} is missing (it is fused with {', '.join(p for p in parts if p != missing[0])})")
    state[fused] = torch.cat([state.pop(p) for p in parts])


def _fuse_projections(checkpoint: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Hugging Face's separate projections fused as ours: the encoder's and the probe's self-attention
    ``query``/``key``/``value`` into ``qkv`` (rows q, k, v), the cross-attention's ``k_proj``/``v_proj``
    into ``kv``; the predictor's tensors dropped."""
    state = {k: v for k, v in checkpoint.items() if _PREDICTOR.fullmatch(k) is None}
    for key in list(state):
        m = _QKV.fullmatch(key)
        if m is not None:
            prefix = key[: key.index(".attention.")] + ".attention."
            _fuse(state, [f"{prefix}{p}.{m.group(2)}" for p in ("query", "key", "value")], f"{prefix}qkv.{m.group(2)}")
            continue
        m = _POOLER_QKV.fullmatch(key)
        if m is not None:
            prefix = f"pooler.self_attention_layers.{m.group(1)}.self_attn."
            _fuse(state, [f"{prefix}{p}_proj.{m.group(2)}" for p in "qkv"], f"{prefix}qkv.{m.group(2)}")
            continue
        m = _CROSS_KV.fullmatch(key)
        if m is not None:
            prefix = "pooler.cross_attention_layer.cross_attn."
            _fuse(state, [f"{prefix}{p}_proj.{m.group(1)}" for p in "kv"], f"{prefix}kv.{m.group(1)}")
    return state


_ENC = r"(?:vjepa2\.)?encoder\."
_POOL = r"pooler\.self_attention_layers\.(\d+)\."
_CROSS = r"pooler\.cross_attention_layer\."
_HUGGINGFACE_RULES = [
    (_ENC + r"embeddings\.patch_embeddings\.proj\.(weight|bias)", r"patch_embed.proj.\1"),
    (_ENC + r"layer\.(\d+)\.norm(1|2)\.(weight|bias)", r"blocks.\1.norm\2.\3"),
    (_ENC + r"layer\.(\d+)\.attention\.qkv\.(weight|bias)", r"blocks.\1.attn.qkv.\2"),
    (_ENC + r"layer\.(\d+)\.attention\.proj\.(weight|bias)", r"blocks.\1.attn.proj.\2"),
    (_ENC + r"layer\.(\d+)\.mlp\.(fc1|fc2)\.(weight|bias)", r"blocks.\1.mlp.\2.\3"),
    (_ENC + r"layernorm\.(weight|bias)", r"norm.\1"),
    (r"pooler\.query_tokens", r"pooler.query_tokens"),
    (_POOL + r"layer_norm(1|2)\.(weight|bias)", r"pooler.blocks.\1.norm\2.\3"),
    (_POOL + r"self_attn\.qkv\.(weight|bias)", r"pooler.blocks.\1.attn.qkv.\2"),
    (_POOL + r"self_attn\.out_proj\.(weight|bias)", r"pooler.blocks.\1.attn.proj.\2"),
    (_POOL + r"mlp\.(fc1|fc2)\.(weight|bias)", r"pooler.blocks.\1.mlp.\2.\3"),
    (_CROSS + r"layer_norm(1|2)\.(weight|bias)", r"pooler.cross.norm\1.\2"),
    (_CROSS + r"cross_attn\.q_proj\.(weight|bias)", r"pooler.cross.attn.q.\1"),
    (_CROSS + r"cross_attn\.kv\.(weight|bias)", r"pooler.cross.attn.kv.\1"),
    (_CROSS + r"mlp\.(fc1|fc2)\.(weight|bias)", r"pooler.cross.mlp.\1.\2"),
    (r"classifier\.(weight|bias)", r"classifier.\1"),
]


def from_huggingface_state_dict(checkpoint: Any) -> dict[str, Tensor]:
    """Our ``state_dict`` from a ``VJEPA2Model`` file (an encoder: ``encoder.*`` and ``predictor.*``) or a
    ``VJEPA2ForVideoClassification`` file (``vjepa2.encoder.*``, ``vjepa2.predictor.*``, ``pooler.*`` and
    ``classifier.*``): ``model.safetensors``, a flat dict of tensors.

    Query, key and value are fused (``_fuse_projections``), the pre-training predictor's tensors are
    dropped, and every other key is renamed by ``_HUGGINGFACE_RULES``; a key no rule knows is an error. Raises
    ``ValueError`` for any other layout (the publisher's own ``.pt`` files, ``{"encoder": ...}``).
    """
    if not isinstance(checkpoint, Mapping) or not all(isinstance(v, Tensor) for v in checkpoint.values()):
        found = f"a dict with keys {list(checkpoint)[:5]}" if isinstance(checkpoint, Mapping) else f"a {type(checkpoint).__name__}"
        raise ValueError(f"expected a Hugging Face state_dict (a flat dict of tensors), got {found}")
    return rename_keys(_fuse_projections(checkpoint), _HUGGINGFACE_RULES, "Hugging Face's VJEPA2 layout")
