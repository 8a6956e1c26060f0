"""InternVideo2: the authors' single-modality checkpoint files -> ours."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from videozoo.models.adapters import state_dict_of

__all__ = ["from_internvideo2_state_dict"]


def from_internvideo2_state_dict(checkpoint: Any) -> dict[str, Tensor]:
    """Our ``state_dict`` from a fine-tuned checkpoint of OpenGVLab/InternVideo's ``single_modality`` code.

    The key names and shapes are the publisher's (ours follow them), as a flat state_dict or under
    ``"module"`` or ``"model"`` (the two keys the publisher's ``run_finetuning.py`` reads, DeepSpeed's
    and its own); anything else in the file is ignored. Raises ``ValueError`` for any other file.
    """
    if isinstance(checkpoint, Mapping):
        for key in ("module", "model"):
            if isinstance(checkpoint.get(key), Mapping):
                return state_dict_of(checkpoint[key], f"an InternVideo2 state_dict under {key!r}")
    return state_dict_of(checkpoint, "an InternVideo2 checkpoint (a state_dict, bare or under 'module' or 'model')")
