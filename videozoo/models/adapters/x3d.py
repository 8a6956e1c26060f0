"""X3D: PyTorchVideo's checkpoint layout -> ours."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from videozoo.models.adapters import rename_keys
from videozoo.models.publishers.pytorchvideo import unwrap_model_state

__all__ = ["from_pytorchvideo_state_dict", "linear_se_weights"]

# PyTorchVideo's keys -> ours. Its stem calls the spatial convolution "conv_t" and the temporal one
# "conv_xy" (sic); its SE block is "norm_b.1.block.{0,2}", 1x1x1 convolutions where we have linear
# layers (same numbers, the trailing 1x1x1 dropped).
_BLOCK = r"blocks\.([1-4])\.res_blocks\.(\d+)\."  # -> layer\1.\2.
_PYTORCHVIDEO_RULES = [
    (r"blocks\.0\.conv\.conv_t\.weight", "stem.conv_xy.weight"),
    (r"blocks\.0\.conv\.conv_xy\.weight", "stem.conv_t.conv.weight"),
    (r"blocks\.0\.norm\.(\w+)", r"stem.conv_t.bn.\1"),
    (_BLOCK + r"branch1_conv\.weight", r"layer\1.\2.downsample.conv.weight"),
    (_BLOCK + r"branch1_norm\.(\w+)", r"layer\1.\2.downsample.bn.\3"),
    (_BLOCK + r"branch2\.conv_a\.weight", r"layer\1.\2.conv1.conv.weight"),
    (_BLOCK + r"branch2\.norm_a\.(\w+)", r"layer\1.\2.conv1.bn.\3"),
    (_BLOCK + r"branch2\.conv_b\.weight", r"layer\1.\2.conv2.conv.weight"),
    (_BLOCK + r"branch2\.norm_b\.0\.(\w+)", r"layer\1.\2.conv2.bn.\3"),
    (_BLOCK + r"branch2\.norm_b\.1\.block\.0\.(\w+)", r"layer\1.\2.se.fc1.\3"),
    (_BLOCK + r"branch2\.norm_b\.1\.block\.2\.(\w+)", r"layer\1.\2.se.fc2.\3"),
    (_BLOCK + r"branch2\.conv_c\.weight", r"layer\1.\2.conv3.conv.weight"),
    (_BLOCK + r"branch2\.norm_c\.(\w+)", r"layer\1.\2.conv3.bn.\3"),
    (r"blocks\.5\.pool\.pre_conv\.weight", "conv5.conv.weight"),
    (r"blocks\.5\.pool\.pre_norm\.(\w+)", r"conv5.bn.\1"),
    (r"blocks\.5\.pool\.post_conv\.weight", "lin5.weight"),
    (r"blocks\.5\.proj\.(weight|bias)", r"fc.\1"),
]


def from_pytorchvideo_state_dict(checkpoint: Any) -> dict[str, Tensor]:
    """Our ``state_dict`` from a PyTorchVideo X3D checkpoint (``{"model_state": state_dict}``).

    Keys are renamed and SE weights lose their 1x1x1 tail; a key of another layout raises
    ``ValueError`` (nothing is dropped silently), and so does a file without ``"model_state"``.
    """
    return linear_se_weights(rename_keys(unwrap_model_state(checkpoint), _PYTORCHVIDEO_RULES, "PyTorchVideo's X3D layout"))


def linear_se_weights(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """``state`` with the SE weights of PyTorchVideo's 1x1x1 convolutions as our linear layers' (the
    trailing 1x1x1 dropped)."""
    return {key: value.flatten(1) if ".se.fc" in key and key.endswith(".weight") else value for key, value in state.items()}
