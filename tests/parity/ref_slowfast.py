"""Reference cases for SlowFast: PyTorchVideo 0.1.5's models, fed the way its ``PackPathway`` recipe does.

PyTorchVideo's head pools with a fixed window sized for the training clip, (T/alpha, 7, 7) and (T, 7, 7),
and fails on smaller clips. The stored fixtures (replayed in CI) therefore build each published
configuration with the window of a small clip (``num_frames``/``crop_size`` on our side,
``head_pool_kernel_sizes`` on PyTorchVideo's); their extra shapes slide that window over larger frames,
as the 3-crop test size (256) does with the published window. (Only spatially: on a longer clip
PyTorchVideo's two pathways pool to different grids and it cannot concatenate them.)

The published windows themselves at 224 and 256 are too slow to replay in CI; check them here with

    ~/ref-env/bin/python tests/parity/ref_slowfast.py

PyTorchVideo's Something-Something V2 (174 classes) and Charades (157 classes) checkpoints of SlowFast
R50 and Slow R50 are the Kinetics networks with another class count: ``DATASET_CASES`` builds them
with PyTorchVideo's class counts (fixtures ``<model>-ssv2`` / ``<model>-charades``); write them with

    ~/ref-env/bin/python tests/parity/ref_slowfast.py --datasets
"""

from __future__ import annotations

import sys
from dataclasses import replace
from functools import partial
from pathlib import Path

import torch
from pytorchvideo.models.hub import slowfast as hub
from pytorchvideo.models.slowfast import create_slowfast
from torch import Tensor, nn

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from parity.common import Case  # noqa: E402


def pack_pathways(alpha: int):
    """``run`` for a Case: PyTorchVideo's ``PackPathway`` on a batch, then the model on ``[slow, fast]``."""

    def run(model: nn.Module, frames: Tensor) -> Tensor:
        t = frames.shape[2]
        slow = torch.index_select(frames, 2, torch.linspace(0, t - 1, t // alpha).long())
        return model([slow, frames])

    return run


# PySlowFast's PTVSlowFast with configs/Kinetics/pytorchvideo/SLOWFAST_4x16_R50.yaml (not in the hub).
slowfast_r50_4x16 = partial(
    create_slowfast,
    model_depth=50,
    slowfast_fusion_conv_kernel_size=(5, 1, 1),
    slowfast_fusion_conv_stride=(8, 1, 1),
    head_pool_kernel_sizes=((4, 7, 7), (32, 7, 7)),
)



def slowfast_16x8_r101_50_50(**kwargs) -> nn.Module:
    """The hub builder's configuration, with a head window that can be replaced (the hub's cannot)."""
    res4 = ((3, 1, 1),) * 6 + ((1, 1, 1),) * 17
    kwargs.setdefault("head_pool_kernel_sizes", ((16, 7, 7), (64, 7, 7)))
    return create_slowfast(
        model_depth=101,
        slowfast_fusion_conv_kernel_size=(5, 1, 1),
        stage_conv_a_kernel_sizes=(((1, 1, 1), (1, 1, 1), res4, (3, 1, 1)), ((3, 1, 1), (3, 1, 1), res4, (3, 1, 1))),
        **kwargs,
    )


# name: (published builder, alpha, published fast frames)
PUBLISHED = {
    "slowfast_r50": (hub.slowfast_r50, 4, 32),
    "slowfast_r50_4x16": (slowfast_r50_4x16, 8, 32),
    "slowfast_r101": (hub.slowfast_r101, 4, 32),
    "slowfast_16x8_r101_50_50": (hub.slowfast_16x8_r101_50_50, 4, 64),
}


def _small_case(builder, alpha: int) -> Case:
    t = 2 * alpha  # two Slow frames; 64 pixels -> a 2x2 map at stride 32
    return Case(
        factory=partial(builder, head_pool_kernel_sizes=((t // alpha, 2, 2), (t, 2, 2))),
        kwargs={"num_frames": t, "crop_size": 64},
        input_shape=(1, 3, t, 64, 64),
        wrap="model_state",
        run=pack_pathways(alpha),
        extra_shapes=[(2, 3, t, 96, 80), (1, 3, t, 128, 160)],
    )


CASES = {
    name: _small_case(slowfast_16x8_r101_50_50 if name == "slowfast_16x8_r101_50_50" else builder, alpha)
    for name, (builder, alpha, _) in PUBLISHED.items()
}


def _published_case(name: str) -> Case:
    """The published configuration with its own head windows, at 224 (1-crop) and 256 pixels (3-crop)."""
    builder, alpha, frames = PUBLISHED[name]
    return Case(
        factory=builder,
        input_shape=(1, 3, frames, 224, 224),
        wrap="model_state",
        run=pack_pathways(alpha),
        extra_shapes=[(1, 3, frames, 256, 256)],
    )


# Checked here without writing a fixture, and the pairs bench_models.py times.
PUBLISHED_CASES = {name: _published_case(name) for name in PUBLISHED}


# PyTorchVideo's SSv2 and Charades checkpoints: (model, fixture suffix, classes).
DATASETS = [("ssv2", 174), ("charades", 157)]


def _dataset_case(model: str, dataset: str, num_classes: int) -> Case:
    if model == "slowfast_r50":
        case = _small_case(partial(hub.slowfast_r50, model_num_class=num_classes), 4)
    else:  # Slow R50: the Slow pathway alone, as PyTorchVideo's create_resnet builds it
        from parity.ref_resnet3d import _small_case as slow_case
        from parity.ref_resnet3d import slow_r50

        small = slow_case("slow_r50")
        window = small.factory.keywords["head_pool_kernel_size"]
        case = replace(small, factory=partial(slow_r50, head_pool_kernel_size=window, model_num_class=num_classes))
    return replace(case, kwargs={**case.kwargs, "num_classes": num_classes}, fixture_name=f"{model}-{dataset}")


DATASET_CASES = [(model, _dataset_case(model, dataset, n)) for model in ("slowfast_r50", "slow_r50") for dataset, n in DATASETS]


def make_dataset_fixtures() -> None:
    from make_fixtures import check_against_videozoo, generate

    from parity.common import FIXTURES

    for model_name, case in DATASET_CASES:
        made = generate(model_name, case)
        path = FIXTURES / f"{case.fixture_name}.pt"
        print(f"{path.stem}: {len(made['fixture']['keys'])} tensors, {path.stat().st_size / 1e3:.0f} kB")
        check_against_videozoo(model_name, case, made["ref"], made["fixture"])


if __name__ == "__main__":
    torch.set_num_threads(max(torch.get_num_threads(), 2))
    if "--datasets" in sys.argv:
        make_dataset_fixtures()
    else:
        from make_fixtures import check_published

        for model_name, published in PUBLISHED_CASES.items():
            print(f"{model_name}: published head windows")
            check_published(model_name, published)
