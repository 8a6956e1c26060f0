"""Rebuild a videozoo model with a fixture's reference weights and compute its comparable output."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

import videozoo
from videozoo._api import load_weights
from parity.common import reference_state_dict


def build_from_fixture(fixture: dict[str, Any]) -> nn.Module:
    """Our model, loaded strictly through the weights' own adapter with the reference's filled tensors."""
    name = fixture["model"]
    model = videozoo.get_model(name, **fixture["kwargs"]).eval()
    member = videozoo.get_model_weights(name).DEFAULT
    ref_sd = reference_state_dict(fixture)
    checkpoint = {fixture["wrap"]: ref_sd} if fixture["wrap"] else ref_sd
    sd = member.adapt_state_dict(checkpoint)
    own = model.state_dict()
    for key, value in sd.items():  # integer buffers (index tables, counters) come from our model
        if not value.is_floating_point() and key in own:
            sd[key] = own[key]
    load_weights(model, member, sd)
    return model


def videozoo_output(model: nn.Module, fixture: dict[str, Any], x: Tensor) -> Tensor:
    with torch.inference_mode():
        out = model(x).float()
    return out.softmax(-1) if fixture["compare"] == "probs" else out
