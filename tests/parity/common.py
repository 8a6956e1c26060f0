"""Shared by the fixture generator (side environment) and the parity tests (videozoo alone).

A fixture holds what is needed to rebuild the reference's exact network without its code: state_dict
key names, shapes and dtypes, a deterministic rule to fill every tensor (``fill_state_dict``), a
seeded input (``make_input``) and the reference output on it.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

FIXTURES = Path(__file__).parent / "fixtures"
TOLERANCE = 1e-4  # max |ours - reference| relative to max |reference|


def _generator(key: str) -> torch.Generator:
    return torch.Generator().manual_seed(zlib.crc32(key.encode()))


def fill_value(key: str, shape: Sequence[int], dtype: torch.dtype) -> Tensor:
    """The deterministic value of one state_dict entry: a function of its name and shape only.

    Scales keep activations of random deep networks in a sane range: fan-in scaled weights, norm scales
    near 1, BatchNorm running variances in [0.5, 1.5]. Integer tensors (counters, index tables) are
    zeros here; the test takes them from the model and checks them against the stored checksums.
    """
    if not dtype.is_floating_point:
        return torch.zeros(shape, dtype=dtype)
    g = _generator(key)
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "running_var":
        value = torch.rand(shape, generator=g) + 0.5
    elif leaf == "running_mean":
        value = 0.1 * torch.randn(shape, generator=g)
    elif len(shape) <= 1:
        base = 1.0 if leaf == "weight" else 0.0
        value = base + 0.1 * torch.randn(shape, generator=g)
    else:
        fan_in = math.prod(shape[1:])
        value = torch.randn(shape, generator=g) / math.sqrt(max(fan_in, 1))
    return value.to(dtype)


def fill_state_dict(keys: Sequence[str], shapes: Sequence[Sequence[int]], dtypes: Sequence[str]) -> dict[str, Tensor]:
    return {k: fill_value(k, s, getattr(torch, d)) for k, s, d in zip(keys, shapes, dtypes)}


def make_input(shape: Sequence[int], seed: int = 0) -> Tensor:
    """A seeded clip batch, roughly normalised-image statistics."""
    return torch.randn(tuple(shape), generator=torch.Generator().manual_seed(seed))


def relative_error(ours: Tensor, reference: Tensor) -> float:
    return float((ours.double() - reference.double()).abs().max() / reference.double().abs().max().clamp_min(1e-12))


@dataclass
class Case:
    """How to build and run the reference for one videozoo model.

    ``wrap`` is the key the publisher nests the state_dict under in its checkpoint files (e.g.
    ``"model_state"`` for PyTorchVideo), ``compare`` says whether the reference returns logits or
    probabilities, ``run`` calls the reference on our single-tensor input (SlowFast takes a list).
    ``extra_shapes`` are further input shapes the generator checks in the side environment only;
    ``weights`` names the member whose format the reference's tensors are in (``DEFAULT`` unless said).
    """

    factory: Callable[[], nn.Module]
    input_shape: tuple[int, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    wrap: str | None = None
    compare: str = "logits"
    run: Callable[[nn.Module, Tensor], Tensor] | None = None
    extra_shapes: list[tuple[int, ...]] = field(default_factory=list)
    fixture_name: str | None = None
    weights: str = "DEFAULT"  # the member whose file format (adapter) the fixture's tensors are in


def save_fixture(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(data, path)


def load_fixture(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def fixture_weights(fixture: dict[str, Any]) -> str:
    """The name of the weights member a fixture's tensors are published as (``DEFAULT`` for older fixtures)."""
    return fixture.get("weights", "DEFAULT")


def reference_state_dict(fixture: dict[str, Any]) -> dict[str, Tensor]:
    return fill_state_dict(fixture["keys"], fixture["shapes"], fixture["dtypes"])
