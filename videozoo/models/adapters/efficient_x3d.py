"""Efficient X3D: PyTorchVideo's accelerator checkpoint layout (a bare ``EfficientX3d`` state_dict) -> ours."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from videozoo.models.adapters import RenameRule, rename_keys
from videozoo.models.adapters.x3d import linear_se_weights

__all__ = ["from_pytorchvideo_state_dict"]

def _block_rule(theirs: str, ours: str) -> RenameRule:
    """PyTorchVideo's stage ``s2``-``s5``, block ``pathway0_res<j>``, part ``theirs`` -> our
    ``layer1``-``layer4``, block ``j``, part ``ours`` (the tensor's name kept)."""
    pattern = rf"s([2-5])\.pathway0_res(\d+)\.{theirs}\.(\w+)"
    return pattern, lambda m: f"layer{int(m[1]) - 1}.{m[2]}.{ours}.{m[3]}"


_PYTORCHVIDEO_RULES: list[RenameRule] = [
    (r"s1\.pathway0_stem_conv_xy\.kernel\.conv\.weight", "stem.conv_xy.weight"),
    (r"s1\.pathway0_stem_conv\.kernel\.conv\.weight", "stem.conv_t.conv.weight"),
    (r"s1\.pathway0_stem_conv\.kernel\.bn\.(\w+)", r"stem.conv_t.bn.\1"),
    _block_rule(r"_res_proj\.kernel\.conv", "downsample.conv"),
    _block_rule(r"_res_proj\.kernel\.bn", "downsample.bn"),
    _block_rule(r"layers\.conv_0\.kernel\.conv", "conv1.conv"),
    _block_rule(r"layers\.conv_0\.kernel\.bn", "conv1.bn"),
    _block_rule(r"layers\.conv_1\.kernel\.conv", "conv2.conv"),
    _block_rule(r"layers\.conv_1\.kernel\.bn", "conv2.bn"),
    _block_rule(r"layers\.se\.se\.block\.0", "se.fc1"),
    _block_rule(r"layers\.se\.se\.block\.2", "se.fc2"),
    _block_rule(r"layers\.conv_2\.kernel\.conv", "conv3.conv"),
    _block_rule(r"layers\.conv_2\.kernel\.bn", "conv3.bn"),
    (r"head\.conv_5\.kernel\.conv\.weight", "conv5.conv.weight"),
    (r"head\.conv_5\.kernel\.bn\.(\w+)", r"conv5.bn.\1"),
    (r"head\.lin_5\.kernel\.conv\.weight", "lin5.weight"),
    (r"projection\.model\.(weight|bias)", r"fc.\1"),
]


def from_pytorchvideo_state_dict(checkpoint: Any) -> dict[str, Tensor]:
    """Our ``state_dict`` from a PyTorchVideo efficient X3D file: a bare ``state_dict`` of its
    ``EfficientX3d`` (as ``efficient_x3d_*_original_form.pyth`` are published).

    Keys are renamed and SE weights lose their 1x1x1 tail. ``ValueError`` for anything else: a
    ``{"model_state": ...}`` file (the format of PyTorchVideo's other checkpoints, e.g. its X3D_XS.pyth
    for ``x3d_xs``), a value that is not a dict of tensors, or a key of another layout.
    """
    if not isinstance(checkpoint, Mapping):
        raise ValueError(
            f"Expected a bare state_dict (a dict of tensors), as PyTorchVideo publishes its efficient X3D "
            f"files, but got a {type(checkpoint).__name__}."
        )
    if "model_state" in checkpoint:
        raise ValueError(
            "Expected a bare state_dict, as PyTorchVideo publishes its efficient X3D files, but got a dict "
            "with the weights under 'model_state', the format of its other checkpoints (X3D_XS.pyth and "
            "X3D_S.pyth load with x3d_xs / x3d_s)."
        )
    if not all(isinstance(value, Tensor) for value in checkpoint.values()):
        keys = list(checkpoint)
        raise ValueError(
            f"Expected a bare state_dict (a dict of tensors), as PyTorchVideo publishes its efficient X3D "
            f"files, but got a dict with non-tensor values (keys {keys[:5]}{' ...' if len(keys) > 5 else ''})."
        )
    return linear_se_weights(rename_keys(checkpoint, _PYTORCHVIDEO_RULES, "PyTorchVideo's efficient X3D layout"))
