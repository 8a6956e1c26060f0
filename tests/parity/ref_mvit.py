"""Reference cases for MViT: torchvision's models.

MViT's token grid is fixed at construction (v1's position embeddings, both versions' pooling
geometry), so the main fixtures replay at the published 16x224x224, the only size the published
models accept; the generator also checks batch 2.

torchvision's builders hard-code that size, but its ``MViT`` class takes others. ``EXTRA_CASES``
build it with the builders' block settings at non-square sizes, which exercise what 16x224x224
cannot (v1's embedding shapes, v2's linearly resampled relative position tables). Their fixtures
replay like the others; write them with

    cd tests && ~/ref-env/bin/python -m parity.ref_mvit
"""

from __future__ import annotations

from functools import partial
from unittest import mock

import torchvision.models.video.mvit as tvm
from torch import nn

from parity.common import Case

CASES = {
    name: Case(factory=getattr(tvm, name), input_shape=(1, 3, 16, 224, 224), extra_shapes=[(2, 3, 16, 224, 224)])
    for name in ("mvit_v1_b", "mvit_v2_s")
}


def reference_at(name: str, spatial_size: tuple[int, int], temporal_size: int) -> nn.Module:
    """torchvision's ``name`` for other clip sizes: its builder's arguments, passed to the MViT class."""
    with mock.patch.object(tvm, "_mvit") as build:
        getattr(tvm, name)()
    kwargs = dict(build.call_args.kwargs)
    del kwargs["weights"], kwargs["progress"]
    kwargs.setdefault("rel_pos_embed", False)
    kwargs.setdefault("proj_after_attn", False)
    return tvm.MViT(**{**kwargs, "spatial_size": spatial_size, "temporal_size": temporal_size})


def _extra(name: str, temporal_size: int, height: int, width: int) -> tuple[str, Case]:
    return name, Case(
        factory=partial(reference_at, name, (height, width), temporal_size),
        input_shape=(2, 3, temporal_size, height, width),
        kwargs={"spatial_size": (height, width), "temporal_size": temporal_size},
        fixture_name=f"{name}-{temporal_size}x{height}x{width}",
    )


EXTRA_CASES = [_extra("mvit_v1_b", 6, 80, 96), _extra("mvit_v2_s", 10, 96, 64)]


if __name__ == "__main__":
    from parity.common import FIXTURES
    from parity.make_fixtures import check_against_videozoo, generate

    for model_name, case in EXTRA_CASES:
        made = generate(model_name, case)
        path = FIXTURES / f"{case.fixture_name}.pt"
        print(f"{path.stem}: {len(made['fixture']['keys'])} tensors, {path.stat().st_size / 1e3:.0f} kB")
        check_against_videozoo(model_name, case, made["ref"], made["fixture"])
