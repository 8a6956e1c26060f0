"""SlowFast: PyTorchVideo's checkpoint layout -> ours."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from torch import Tensor

from videozoo.models.adapters import rename_keys, renamed
from videozoo.models.adapters.resnet3d import BRANCH
from videozoo.models.publishers.pytorchvideo import unwrap_model_state

__all__ = ["from_pytorchvideo_state_dict"]

# PyTorchVideo's keys -> ours. <p> is the pathway (0 slow, 1 fast), <s> the stage, <b> the block.
# blocks.0 holds the stems, blocks.1-4 the stages, blocks.5 the pooling and blocks.6 the head; the
# lateral connections live in blocks.0-3 as multipathway_fusion.
_PATHWAY = {"0": "slow", "1": "fast"}
_STAGE = r"blocks\.(?P<s>[1-4])\.multipathway_blocks\.(?P<p>[01])\.res_blocks\.(?P<b>\d+)\."


def _to(template: str) -> Callable[[re.Match[str]], str]:
    """A rule's replacement: ``template`` with the pathway and branch indices given our names."""
    return renamed(template, p=_PATHWAY, n=BRANCH)


_PYTORCHVIDEO_RULES = [
    (r"blocks\.0\.multipathway_blocks\.(?P<p>[01])\.conv\.(?P<t>\w+)", _to("{p}.stem.conv.{t}")),
    (r"blocks\.0\.multipathway_blocks\.(?P<p>[01])\.norm\.(?P<t>\w+)", _to("{p}.stem.bn.{t}")),
    (_STAGE + r"branch1_conv\.(?P<t>\w+)", _to("{p}.layer{s}.{b}.downsample.0.{t}")),
    (_STAGE + r"branch1_norm\.(?P<t>\w+)", _to("{p}.layer{s}.{b}.downsample.1.{t}")),
    (_STAGE + r"branch2\.conv_(?P<n>[abc])\.(?P<t>\w+)", _to("{p}.layer{s}.{b}.conv{n}.{t}")),
    (_STAGE + r"branch2\.norm_(?P<n>[abc])\.(?P<t>\w+)", _to("{p}.layer{s}.{b}.bn{n}.{t}")),
    (r"blocks\.(?P<s>[0-3])\.multipathway_fusion\.conv_fast_to_slow\.(?P<t>\w+)", _to("fuse{s}.conv.{t}")),
    (r"blocks\.(?P<s>[0-3])\.multipathway_fusion\.norm\.(?P<t>\w+)", _to("fuse{s}.bn.{t}")),
    (r"blocks\.6\.proj\.(?P<t>\w+)", _to("fc.{t}")),
]


def from_pytorchvideo_state_dict(checkpoint: Any) -> dict[str, Tensor]:
    """Our ``state_dict`` from a PyTorchVideo SlowFast checkpoint (``{"model_state": state_dict}``).

    Every key is renamed; one that is not part of PyTorchVideo's SlowFast layout raises ``ValueError``.
    """
    return rename_keys(unwrap_model_state(checkpoint), _PYTORCHVIDEO_RULES, "PyTorchVideo's SlowFast layout")
