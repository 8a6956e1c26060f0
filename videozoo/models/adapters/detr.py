"""DETR's checkpoints (facebookresearch/detr: ``{"model": state_dict}``) -> :class:`~videozoo.models.detr.DETR`.

The publisher's names differ from ours in one place: its backbone is ``Joiner(Backbone, PositionEmbedding)``
holding torchvision's ResNet under ``body`` (``backbone.0.body.layer1.0.conv1.weight``), ours is the ResNet
itself (``backbone.layer1.0.conv1.weight``). The transformer, the queries and the heads keep their names.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from videozoo.models.adapters import RenameRule, rename_keys, wrapped_state_dict

__all__ = ["from_detr_state_dict"]

_DETR_RULES: list[RenameRule] = [
    (r"backbone\.0\.body\.(.+)", r"backbone.\1"),
    (r"(transformer\.(?:encoder|decoder)\..+)", r"\1"),
    (r"((?:input_proj|query_embed|class_embed|bbox_embed)\..+)", r"\1"),
]


def from_detr_state_dict(checkpoint: Any) -> dict[str, Tensor]:
    """The state_dict under the file's ``"model"`` key, its backbone's keys renamed (anything else in the file,
    such as a training run's optimizer state, is ignored). Batch-norm counters (``num_batches_tracked``) are
    dropped, as the publisher's frozen batch norm drops them when it loads."""
    state = wrapped_state_dict(checkpoint, "model", "DETR")
    state = {k: v for k, v in state.items() if not k.endswith(".num_batches_tracked")}
    return rename_keys(state, _DETR_RULES, "DETR's layout")
