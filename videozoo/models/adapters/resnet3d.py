"""The bottleneck 3D ResNets (Slow, C2D, I3D, CSN, R(2+1)D-50): PyTorchVideo's checkpoint layout -> ours."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from torch import Tensor

from videozoo.models.adapters import RenameRule, rename_keys, renamed
from videozoo.models.publishers.pytorchvideo import unwrap_model_state

__all__ = ["from_pytorchvideo_state_dict"]

# PyTorchVideo's Net keeps its parts in one list, ``blocks``: the stem (0), the four stages, and the
# head (``proj`` is the classifier). C2D and I3D have a parameter-free max-pool after the first stage,
# which moves the later stages and the head one index up; so the stages are found by their
# ``res_blocks`` and numbered in order. (2+1)D middle convolutions are ``conv_b.{conv_t,norm,conv_xy}``.
#: PyTorchVideo's convolutions of a bottleneck's residual branch, ``conv_a``-``conv_c`` -> our ``conv1``-``conv3``.
BRANCH = {"a": "1", "b": "2", "c": "3"}


def _pytorchvideo_rules(stages: dict[str, str], head: str) -> list[RenameRule]:
    """The rules for a file whose stages are ``blocks.<index>`` (``stages``: index -> our stage number)
    and whose head is ``blocks.<head>``."""
    stage = r"blocks\.(?P<s>\d+)\.res_blocks\.(?P<b>\d+)\."

    def block(template: str) -> Callable[[re.Match[str]], str]:
        return renamed(template, s=stages, n=BRANCH)

    return [
        (r"blocks\.0\.conv\.weight", "stem.conv.weight"),
        (r"blocks\.0\.norm\.(\w+)", r"stem.bn.\1"),
        (stage + r"branch1_conv\.weight", block("layer{s}.{b}.downsample.0.weight")),
        (stage + r"branch1_norm\.(?P<t>\w+)", block("layer{s}.{b}.downsample.1.{t}")),
        (stage + r"branch2\.conv_b\.conv_t\.weight", block("layer{s}.{b}.conv2.conv_t.weight")),
        (stage + r"branch2\.conv_b\.norm\.(?P<t>\w+)", block("layer{s}.{b}.conv2.bn.{t}")),
        (stage + r"branch2\.conv_b\.conv_xy\.weight", block("layer{s}.{b}.conv2.conv_xy.weight")),
        (stage + r"branch2\.conv_(?P<n>[abc])\.weight", block("layer{s}.{b}.conv{n}.weight")),
        (stage + r"branch2\.norm_(?P<n>[abc])\.(?P<t>\w+)", block("layer{s}.{b}.bn{n}.{t}")),
        (rf"blocks\.{head}\.proj\.(weight|bias)", r"fc.\1"),
    ]


def from_pytorchvideo_state_dict(checkpoint: Any) -> dict[str, Tensor]:
    """Our ``state_dict`` from a PyTorchVideo Slow, C2D, I3D, CSN or R(2+1)D checkpoint
    (``{"model_state": state_dict}``).

    Every key is renamed; one that is not part of PyTorchVideo's ResNet layout raises ``ValueError``.
    Which network the file holds is left to the strict load, which names the tensors that differ.
    """
    state = unwrap_model_state(checkpoint)
    indices = sorted({int(m.group(1)) for key in state if (m := re.match(r"blocks\.(\d+)\.res_blocks\.", key))})
    stages = {str(index): str(i) for i, index in enumerate(indices, start=1)}
    head = str(indices[-1] + 1) if indices else "5"
    return rename_keys(state, _pytorchvideo_rules(stages, head), "PyTorchVideo's ResNet layout")
