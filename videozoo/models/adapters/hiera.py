"""Hiera: facebookresearch/hiera's checkpoint files -> ours."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from videozoo.models.adapters import wrapped_state_dict

__all__ = ["from_hiera_state_dict"]


def from_hiera_state_dict(checkpoint: Any) -> dict[str, Tensor]:
    """Our ``state_dict`` from a checkpoint of facebookresearch/hiera: ``{"model_state": state_dict}``
    with our key names and shapes (anything else in the file is ignored). Raises ``ValueError`` for
    any other file."""
    return wrapped_state_dict(checkpoint, "model_state", "Hiera")
