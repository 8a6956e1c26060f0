r"""Reference cases for MViT: torchvision's models.

MViT's token grid is fixed at construction (v1's position embeddings, both versions' pooling
geometry), so the main fixtures replay at the published 16x224x224, the only size the published
models accept; the generator also checks batch 2.

torchvision's builders hard-code that size, but its ``MViT`` class takes others. ``EXTRA_CASES``
build it with the builders' block settings at non-square sizes, which exercise what 16x224x224
cannot (v1's embedding shapes, v2's linearly resampled relative position tables). Their fixtures
replay like the others; write them with

    cd tests && ~/ref-env/bin/python -m parity.ref_mvit

PyTorchVideo's MViT-B 16x4 / 32x3 (``mvit_base_16x4``, ``mvit_base_32x3``): its hub builders take the
clip size, so their stored fixtures are small, non-square clips (fast to replay; only names and shapes
are stored). ``PUBLISHED_CASES`` are the same models at the published clip sizes, at batch 1 and 2;
they are checked in the side environment only, without writing a fixture,

    cd tests && ~/ref-env/bin/python -m parity.ref_mvit --published

and are the pairs to time for these models (``bench_models.py`` builds its pairs from ``CASES``):

    ~/ref-env/bin/python -c "import sys; sys.path[:0] = ['tests', 'benchmarks']; import bench_models as b, \
        parity.ref_mvit as r; b.reference_cases = lambda: r.PUBLISHED_CASES; \
        b.main(['--models', 'mvit_base_16x4', 'mvit_base_32x3', '--batch-sizes', '1', '--dtypes', 'fp32'])"
"""

from __future__ import annotations

from functools import partial
from unittest import mock

import torchvision.models.video.mvit as tvm
from pytorchvideo.models.hub import vision_transformers as ptv
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


def _ptv_case(name: str, batch: int, frames: int, height: int, width: int, extra: list[tuple[int, ...]]) -> Case:
    """PyTorchVideo's hub builder ``name`` for ``frames`` x ``height`` x ``width`` clips."""
    return Case(
        factory=partial(getattr(ptv, name), temporal_size=frames, spatial_size=(height, width)),
        input_shape=(batch, 3, frames, height, width),
        kwargs={"num_frames": frames, "crop_size": (height, width)},
        wrap="model_state",
        extra_shapes=extra,
    )


# Token grids 4 x 16 x 12 and 6 x 12 x 16: every stage's pooling, grids that halve unevenly (3 -> 2).
CASES.update(
    {
        "mvit_base_16x4": _ptv_case("mvit_base_16x4", 1, 8, 64, 48, [(3, 3, 8, 64, 48)]),
        "mvit_base_32x3": _ptv_case("mvit_base_32x3", 2, 12, 48, 64, [(1, 3, 12, 48, 64)]),
    }
)

PUBLISHED_CASES = {
    "mvit_base_16x4": _ptv_case("mvit_base_16x4", 1, 16, 224, 224, [(2, 3, 16, 224, 224)]),
    "mvit_base_32x3": _ptv_case("mvit_base_32x3", 1, 32, 224, 224, [(2, 3, 32, 224, 224)]),
}


def check_published(name: str, case: Case) -> None:
    """Replay ``case`` against videozoo in memory (its fixture would be the small case's, larger)."""
    from parity.common import fill_state_dict
    from parity.make_fixtures import check_against_videozoo

    ref = case.factory().eval()
    sd = ref.state_dict()
    keys, shapes = list(sd), [list(t.shape) for t in sd.values()]
    dtypes = [str(t.dtype).split(".")[1] for t in sd.values()]
    ref.load_state_dict(fill_state_dict(keys, shapes, dtypes))
    fixture = {"model": name, "kwargs": case.kwargs, "keys": keys, "shapes": shapes, "dtypes": dtypes}
    check_against_videozoo(name, case, ref, fixture | {"wrap": case.wrap, "compare": case.compare})


if __name__ == "__main__":
    import sys

    if "--published" in sys.argv:
        for model_name, case in PUBLISHED_CASES.items():
            check_published(model_name, case)
        raise SystemExit

    from parity.common import FIXTURES
    from parity.make_fixtures import check_against_videozoo, generate

    for model_name, case in EXTRA_CASES:
        made = generate(model_name, case)
        path = FIXTURES / f"{case.fixture_name}.pt"
        print(f"{path.stem}: {len(made['fixture']['keys'])} tensors, {path.stat().st_size / 1e3:.0f} kB")
        check_against_videozoo(model_name, case, made["ref"], made["fixture"])
