"""Rebuild a videozoo model with a fixture's reference weights and compute its comparable output."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import videozoo
from parity.common import fixture_weights, reference_state_dict

# Fixtures store the reference's constructor arguments; where videozoo names the concept otherwise
# (torchvision's MViT takes the clip size as temporal_size / spatial_size) they are renamed here.
OUR_ARGUMENT_NAMES = {"temporal_size": "num_frames", "spatial_size": "crop_size"}


def model_kwargs(fixture: dict[str, Any]) -> dict[str, Any]:
    """The fixture's reference constructor arguments, in videozoo's names."""
    return {OUR_ARGUMENT_NAMES.get(key, key): value for key, value in fixture["kwargs"].items()}


def build_from_fixture(fixture: dict[str, Any]) -> nn.Module:
    """Our model, loaded through ``videozoo.load_weights`` from a file in the publisher's format that
    holds the reference's filled tensors (so the weights' own adapter and strict checks run)."""
    name = fixture["model"]
    model = videozoo.get_model(name, **model_kwargs(fixture)).eval()
    member = videozoo.get_model_weights(name)[fixture_weights(fixture)]
    ref_sd = reference_state_dict(fixture)
    own = model.state_dict()
    for key, value in ref_sd.items():  # integer buffers (index tables, counters) come from our model
        if not value.is_floating_point() and key in own:
            ref_sd[key] = own[key]
    checkpoint = {fixture["wrap"]: ref_sd} if fixture["wrap"] else ref_sd
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "checkpoint.pth"
        torch.save(checkpoint, path)
        videozoo.load_weights(model, member, path)
    return model


def videozoo_output(model: nn.Module, fixture: dict[str, Any], x: Tensor) -> Tensor:
    with torch.inference_mode():
        out = model(x).float()
    return out.softmax(-1) if fixture["compare"] == "probs" else out
