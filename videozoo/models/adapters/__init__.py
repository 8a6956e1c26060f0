"""Publishers' checkpoint layouts -> ours: one module per family, holding its ``from_<publisher>_state_dict``
converters (a weights member's ``state_dict_adapter``) and their key-renaming rule tables
``_<PUBLISHER>_RULES``.

An adapter unwraps the publisher's file and renames each key with :func:`rename_keys`. A key no rule
knows is an error, never dropped: a file of another network or release fails loudly instead of loading
half of itself. The helpers here are what several adapters share.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Union

import torch
from torch import Tensor

__all__ = [
    "RenameRule",
    "fuse_qkv",
    "huggingface_vit_rules",
    "module_rules",
    "rename_keys",
    "renamed",
    "state_dict_of",
    "wrapped_state_dict",
]

#: ``(pattern, replacement)``: the pattern must match the whole key; the replacement is a template for
#: ``re.Match.expand`` (``r"layer\1.conv"``, ``r"\g<name>"``) or a function of the match.
RenameRule = tuple[str, Union[str, Callable[["re.Match[str]"], str]]]


def rename_keys(state: Mapping[str, Tensor], rules: Sequence[RenameRule], layout: str) -> dict[str, Tensor]:
    """``state`` with each key renamed by the first rule whose pattern matches it in full.

    Args:
        state: the publisher's state_dict.
        rules: the renaming, tried in order.
        layout: what the rules describe, for the error (e.g. ``"PyTorchVideo's X3D layout"``).

    Raises ``ValueError`` listing the keys no rule matches.
    """
    compiled = [(re.compile(pattern), replacement) for pattern, replacement in rules]
    out: dict[str, Tensor] = {}
    unknown = []
    for key, value in state.items():
        for pattern, replacement in compiled:
            m = pattern.fullmatch(key)
            if m is not None:
                out[m.expand(replacement) if isinstance(replacement, str) else replacement(m)] = value
                break
        else:
            unknown.append(key)
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise ValueError(f"{len(unknown)} of its {len(state)} keys are not in {layout} ({shown})")
    return out


def renamed(template: str, **names: Mapping[str, str]) -> Callable[["re.Match[str]"], str]:
    """A rule's replacement: ``template`` formatted with the match's named groups, the groups named in
    ``names`` first translated by their table (e.g. ``n={"a": "1", "b": "2", "c": "3"}``)."""

    def rename(m: re.Match[str]) -> str:
        groups = m.groupdict()
        for group, table in names.items():
            if groups.get(group) is not None:
                groups[group] = table[groups[group]]
        return template.format(**groups)

    return rename


def module_rules(theirs: str, ours: str, names: Mapping[str, str]) -> list[RenameRule]:
    r"""One rule per entry of ``names`` (their module's dotted name -> ours): the ``weight`` and ``bias`` of
    ``<theirs><their module>`` become those of ``<ours><our module>``. ``theirs`` is a pattern and may hold a
    group that ``ours`` refers to (``r"encoder\.layer\.(\d+)\."``, ``r"blocks.\1."``)."""
    return [
        (theirs + re.escape(their_module) + r"\.(?P<tensor>weight|bias)", ours + our_module + r".\g<tensor>")
        for their_module, our_module in names.items()
    ]


# Hugging Face's names of a ViT layer's modules -> :class:`~videozoo.models.layers.TransformerBlock`'s.
_HF_VIT_LAYER = {
    "layernorm_before": "norm1",
    "attention.attention.qkv": "attn.qkv",  # after fuse_qkv where the file has query, key and value apart
    "attention.output.dense": "attn.proj",
    "layernorm_after": "norm2",
    "intermediate.dense": "mlp.fc1",
    "output.dense": "mlp.fc2",
}


def huggingface_vit_rules(model: str, layer: Mapping[str, str] | None = None) -> list[RenameRule]:
    """Rules for the encoder of a Hugging Face ViT-style port: ``<model>.encoder.layer.<i>``'s modules ->
    ``blocks.<i>``'s (a :class:`~videozoo.models.layers.TransformerBlock`'s names, and ``layer``'s where the
    family's block has more), ``<model>.layernorm`` -> ``norm``, ``classifier`` -> ``head``.

    Args:
        model: the port's prefix, e.g. ``"vivit"``.
        layer: more of the layer's modules, theirs -> ours (TimeSformer's temporal attention).
    """
    return [
        *module_rules(rf"{model}\.encoder\.layer\.(\d+)\.", r"blocks.\1.", {**_HF_VIT_LAYER, **(layer or {})}),
        *module_rules(rf"{model}\.", "", {"layernorm": "norm"}),
        *module_rules("", "", {"classifier": "head"}),
    ]


def _found(checkpoint: Any) -> str:
    """What a file that is not in the expected format holds, for an error."""
    if isinstance(checkpoint, Mapping):
        keys = list(checkpoint)
        return f"a dict with keys {keys[:5]}{' ...' if len(keys) > 5 else ''}"
    return f"a {type(checkpoint).__name__}"


def state_dict_of(checkpoint: Any, expected: str) -> dict[str, Tensor]:
    """``checkpoint`` itself when it is a flat state_dict (a dict of tensors), as a new dict.

    Raises ``ValueError`` naming ``expected`` (the publisher's format, e.g. ``"a Hugging Face state_dict"``)
    and what the file holds otherwise."""
    if not isinstance(checkpoint, Mapping) or not all(isinstance(v, Tensor) for v in checkpoint.values()):
        raise ValueError(f"Expected {expected} (a flat dict of tensors), but got {_found(checkpoint)}.")
    return dict(checkpoint)


def wrapped_state_dict(checkpoint: Any, key: str, publisher: str) -> dict[str, Tensor]:
    """The state_dict under ``checkpoint[key]`` (e.g. PySlowFast's ``{"model_state": state_dict, ...}``;
    anything else in the file is ignored). Raises ``ValueError`` for any other file, e.g. a bare state_dict."""
    if not isinstance(checkpoint, Mapping) or key not in checkpoint:
        raise ValueError(
            f"Expected a {publisher} checkpoint, a dict with the weights under {key!r}, but got "
            f"{_found(checkpoint)}. A state_dict saved from a videozoo model loads with model.load_state_dict() directly."
        )
    state = checkpoint[key]
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"The checkpoint's {key!r} is not a state_dict (a dict of tensors).")
    return dict(state)


def fuse_qkv(state: Mapping[str, Tensor], pattern: str) -> dict[str, Tensor]:
    r"""``state`` with each attention's separate ``query``/``key``/``value`` tensors concatenated (rows q, k,
    v) into one ``qkv`` tensor, as Hugging Face's ports store them and our :class:`SelfAttention` fuses.

    Args:
        state: the publisher's state_dict.
        pattern: a regular expression matching the attention's prefix in full (e.g.
            ``r"vivit\.encoder\.layer\.\d+\.attention\.attention"``); ``<prefix>.query.weight`` becomes
            ``<prefix>.qkv.weight``, and likewise the biases where the file has them.

    Raises ``ValueError`` when an attention lacks one of the three.
    """
    compiled = re.compile(rf"({pattern})\.(query|key|value)\.(weight|bias)")
    out: dict[str, Tensor] = {}
    parts: dict[str, dict[str, Tensor]] = {}
    for key, value in state.items():
        m = compiled.fullmatch(key)
        if m is None:
            out[key] = value
        else:
            parts.setdefault(f"{m.group(1)}.qkv.{m.group(3)}", {})[m.group(2)] = value
    for key, qkv in parts.items():
        missing = [name for name in ("query", "key", "value") if name not in qkv]
        if missing:
            prefix, _, leaf = key.rpartition(".qkv.")
            raise ValueError(
                f"{prefix}.{missing[0]}.{leaf} is missing: the file has no {missing[0]} projection to fuse "
                f"(each attention needs query, key and value)"
            )
        out[key] = torch.cat([qkv["query"], qkv["key"], qkv["value"]], dim=0)
    return out
